/*
 * parquet_encoding.h: the value and level encodings of our Parquet writer (internal to
 * src/parquet; see parquet_encoding.c for the byte layouts). All encoders append to a strbuf and
 * report allocation failure through strbuf_failed().
 */
#ifndef INGOT_PARQUET_ENCODING_H
#define INGOT_PARQUET_ENCODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

/* DELTA_BINARY_PACKED layout parameters (values per block, miniblocks per block). */
#define PARQUET_DELTA_BLOCK_VALUES 128
#define PARQUET_DELTA_MINIBLOCKS 4

/* Bits needed to hold v (0 for v == 0). */
int parquet_bit_width(uint64_t v);

/*
 * RLE/bit-packed hybrid of n values, each < 2^bit_width (bit_width 0..32), without any length
 * prefix. Values at or above 2^bit_width are masked.
 */
void parquet_rle_hybrid(strbuf *out, const uint32_t *values, size_t n, int bit_width);

/* DELTA_BINARY_PACKED of n INT64 values (bit patterns; deltas wrap modulo 2^64). */
void parquet_delta_binary_packed(strbuf *out, const int64_t *values, size_t n);

/* PLAIN BOOLEAN: n bits, LSB-first, zero-padded to a whole byte. */
void parquet_plain_bools(strbuf *out, const uint8_t *bools, size_t n);

/*
 * A dictionary of byte strings under construction: entries reference the caller's memory (which
 * must outlive it). Ids are given in order of first insertion.
 */
typedef struct parquet_dict {
    uint32_t *slots;          /* open addressing: entry id + 1, 0 = empty */
    size_t slot_mask;
    const char **entry_ptr;   /* [max_entries] */
    uint32_t *entry_len;      /* [max_entries] */
    size_t count;
    size_t max_entries;
    size_t plain_bytes;       /* size of the entries PLAIN-encoded (4-byte length + bytes each) */
} parquet_dict;

/* 0, or INGOT_E_NOMEM. max_entries may be 0 (then every add reports full). */
int parquet_dict_init(parquet_dict *d, size_t max_entries);
/* Find or insert; 0 and *id, or 1 if inserting would exceed max_entries (nothing changed). */
int parquet_dict_add(parquet_dict *d, const char *ptr, uint32_t len, uint32_t *id);
void parquet_dict_free(parquet_dict *d);

#endif
