/*
 * thrift_compact.h: a small encoder for the Thrift compact protocol, enough to write Parquet's
 * metadata (page headers and the file footer). Encode-only: ingot never reads Thrift.
 *
 * A thrift_writer appends to a caller's strbuf. Structs nest (a stack of the last field id per
 * level, so field headers use the 4-bit delta form when they can). Lists are written by giving
 * their element type and count up front, then the elements with the thrift_elem_* calls.
 * Errors (allocation failure in the strbuf, nesting deeper than THRIFT_MAX_DEPTH, unbalanced
 * struct ends) are sticky: thrift_writer_failed() reports them once at the end.
 */
#ifndef INGOT_THRIFT_COMPACT_H
#define INGOT_THRIFT_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

/* Compact-protocol type codes (as they appear in field and list headers). */
enum thrift_type {
    THRIFT_STOP = 0,
    THRIFT_TRUE = 1, /* in a field header: a bool field holding true */
    THRIFT_FALSE = 2,
    THRIFT_BYTE = 3,
    THRIFT_I16 = 4,
    THRIFT_I32 = 5,
    THRIFT_I64 = 6,
    THRIFT_DOUBLE = 7,
    THRIFT_BINARY = 8,
    THRIFT_LIST = 9,
    THRIFT_SET = 10,
    THRIFT_MAP = 11,
    THRIFT_STRUCT = 12,
};

#define THRIFT_MAX_DEPTH 16

typedef struct thrift_writer {
    strbuf *out;
    int16_t last_id[THRIFT_MAX_DEPTH]; /* last field id written at each struct level */
    int depth;                         /* number of open structs */
    bool failed;
} thrift_writer;

/* Unsigned LEB128 varint; zigzag mapping of signed values. */
void thrift_put_varint(strbuf *b, uint64_t v);
static inline uint64_t thrift_zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* Start writing a top-level struct into out (opens the struct). */
void thrift_writer_init(thrift_writer *w, strbuf *out);
bool thrift_writer_failed(const thrift_writer *w);

/* Fields of the current struct. Ids must increase within a struct for the short form. */
void thrift_field_bool(thrift_writer *w, int16_t id, bool v);
void thrift_field_i8(thrift_writer *w, int16_t id, int8_t v);
void thrift_field_i16(thrift_writer *w, int16_t id, int16_t v);
void thrift_field_i32(thrift_writer *w, int16_t id, int32_t v);
void thrift_field_i64(thrift_writer *w, int16_t id, int64_t v);
void thrift_field_binary(thrift_writer *w, int16_t id, const void *data, size_t len);
void thrift_field_string(thrift_writer *w, int16_t id, const char *s);
/* A struct-valued field: fields of the nested struct follow, then thrift_struct_end(). */
void thrift_field_struct_begin(thrift_writer *w, int16_t id);
/* A list-valued field of count elements of elem_type, written next with thrift_elem_*(). */
void thrift_field_list_begin(thrift_writer *w, int16_t id, enum thrift_type elem_type,
                             size_t count);
/* Close the innermost open struct (writes the stop byte). Closing the top level ends the value. */
void thrift_struct_end(thrift_writer *w);

/* List elements. */
void thrift_elem_i32(thrift_writer *w, int32_t v);
void thrift_elem_string(thrift_writer *w, const char *s);
void thrift_elem_struct_begin(thrift_writer *w); /* then fields, then thrift_struct_end() */

#endif
