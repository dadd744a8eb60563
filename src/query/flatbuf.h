/*
 * flatbuf.h: a tiny forward-writing FlatBuffers builder, enough for Arrow IPC metadata (tables of
 * scalars and offsets, strings, vectors of structs or of offsets; no vtable sharing).
 *
 * Objects are appended front to back into a strbuf that starts empty; a parent is written before
 * its children, so each offset field is left as a placeholder `slot` and patched with
 * flatbuf_patch() once the child exists (FlatBuffers offsets are unsigned and point forward, which
 * this order satisfies). Positions are byte offsets from the start of the buffer; alignment is
 * relative to it, so the finished buffer must be placed at an 8-byte-aligned address to be read.
 * Allocation failures mark the strbuf failed (check strbuf_failed() once at the end); positions
 * returned after a failure are meaningless but harmless.
 */
#ifndef INGOT_FLATBUF_H
#define INGOT_FLATBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

typedef struct flatbuf_field {
    uint16_t id;    /* field id: its position in the table's schema declaration; below 64 */
    uint8_t size;   /* 1, 2, 4 or 8 bytes; offsets are 4 */
    bool is_offset; /* a placeholder uoffset, patched later through slot */
    uint64_t value; /* scalar value (low `size` bytes, little-endian) */
    size_t slot;    /* out: where the field was written */
} flatbuf_field;

/* Reset b and reserve the root offset (position 0). */
void flatbuf_begin(strbuf *b);
/* Point the root offset at table `root`, pad the buffer to a multiple of 8 bytes. */
void flatbuf_finish(strbuf *b, size_t root);

/*
 * Append a table (its vtable first) with fields f[0..n) in any id order (ids unique). Fills each
 * f[i].slot; returns the table's position.
 */
size_t flatbuf_table(strbuf *b, flatbuf_field *f, size_t n);
/* Append a string (length, bytes, NUL); returns its position. */
size_t flatbuf_string(strbuf *b, const char *s, size_t len);
/*
 * Append a vector of count elements of elem_size bytes each, aligned to `align` (4 or 8), copied
 * from elems, or zeroed when elems is NULL (a vector of offsets to patch: element i's slot is
 * position + 4 + 4 * i). Returns its position (that of its length prefix).
 */
size_t flatbuf_vector(strbuf *b, const void *elems, size_t elem_size, size_t count, size_t align);
/* Make the uoffset at slot point at target (target > slot). */
void flatbuf_patch(strbuf *b, size_t slot, size_t target);

#endif
