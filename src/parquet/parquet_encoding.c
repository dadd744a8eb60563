/*
 * parquet_encoding.c: Parquet's RLE/bit-packed hybrid, DELTA_BINARY_PACKED and PLAIN booleans,
 * and the dictionary builder used for string columns (parquet-format Encodings.md).
 *
 * RLE/bit-packed hybrid (levels and dictionary indices), a sequence of runs:
 *   RLE run:        varint(count << 1), then the value in ceil(bit_width / 8) little-endian bytes
 *   bit-packed run: varint(groups << 1 | 1), then groups * 8 values packed LSB-first, bit_width
 *                   bits each (a group of 8 values is exactly bit_width bytes); the last group
 *                   is zero-padded, readers stop at the count they know from the page header.
 *   We emit an RLE run for every stretch of >= 8 equal values and bit-pack the rest, always
 *   cutting literal runs at a multiple of 8 so a following RLE run starts on a group boundary.
 *
 * DELTA_BINARY_PACKED (INT64):
 *   header:  varint block_size (128), varint miniblocks_per_block (4), varint total_count,
 *            zigzag varint first_value
 *   blocks:  for each run of up to 128 deltas d[i] = v[i] - v[i-1] (computed modulo 2^64, so
 *            INT64_MIN..INT64_MAX steps are exact): zigzag varint min_delta, 4 bit-width bytes,
 *            then each miniblock of 32 values (d - min_delta, modulo 2^64) packed LSB-first at
 *            its width; the last present miniblock is zero-padded to 32 values, absent ones at
 *            the end of the last block get width 0 and no bytes. 0 or 1 values: header only.
 *
 * PLAIN BOOLEAN: one bit per value, LSB-first.
 *
 * Dictionary builder: open addressing (linear probing) over a power-of-two table at most half
 * full; entries point into the caller's bytes. It refuses entries past max_entries so the
 * writer can fall back to PLAIN without building a large table.
 *
 * No state beyond the arguments; failures are allocation failures, reported by the strbuf or
 * INGOT_E_NOMEM.
 */
#include "parquet/parquet_encoding.h"

#include <stdlib.h>
#include <string.h>

#include "parquet/thrift_compact.h"
#include "util/error.h"
#include "util/hash.h"

int parquet_bit_width(uint64_t v)
{
    return v ? 64 - __builtin_clzll(v) : 0;
}

/* LSB-first bit accumulator. */
typedef struct bit_writer {
    strbuf *out;
    uint64_t acc;
    int nbits;
} bit_writer;

static inline void bits_put(bit_writer *bw, uint64_t v, int width)
{
    if (width > 32) {
        bits_put(bw, v & 0xffffffffu, 32);
        bits_put(bw, v >> 32, width - 32);
        return;
    }
    if (width == 0) {
        return;
    }
    v &= (width == 64) ? ~0ull : ((1ull << width) - 1);
    bw->acc |= v << bw->nbits;
    bw->nbits += width;
    if (bw->nbits >= 32) {
        uint8_t b[4] = {(uint8_t)bw->acc, (uint8_t)(bw->acc >> 8), (uint8_t)(bw->acc >> 16),
                        (uint8_t)(bw->acc >> 24)};
        strbuf_append(bw->out, b, 4);
        bw->acc >>= 32;
        bw->nbits -= 32;
    }
}

static void bits_flush(bit_writer *bw)
{
    while (bw->nbits > 0) {
        strbuf_putc(bw->out, (char)(uint8_t)bw->acc);
        bw->acc >>= 8;
        bw->nbits -= 8;
    }
    bw->acc = 0;
    bw->nbits = 0;
}

static size_t run_length(const uint32_t *v, size_t i, size_t n)
{
    size_t j = i + 1;
    while (j < n && v[j] == v[i]) {
        j++;
    }
    return j - i;
}

void parquet_rle_hybrid(strbuf *out, const uint32_t *values, size_t n, int bit_width)
{
    uint32_t mask = bit_width >= 32 ? 0xffffffffu : ((1u << bit_width) - 1);
    int value_bytes = (bit_width + 7) / 8;
    size_t i = 0;
    while (i < n) {
        size_t run = run_length(values, i, n);
        if (run >= 8) {
            thrift_put_varint(out, (uint64_t)run << 1);
            uint32_t v = values[i] & mask;
            for (int k = 0; k < value_bytes; k++) {
                strbuf_putc(out, (char)(uint8_t)(v >> (8 * k)));
            }
            i += run;
            continue;
        }
        /* Literal groups of 8 until a run of >= 8 begins at a group boundary (or the end). */
        size_t start = i;
        do {
            i += 8;
        } while (i < n && run_length(values, i, n) < 8);
        if (i > n) {
            i = n;
        }
        size_t groups = (i - start + 7) / 8;
        thrift_put_varint(out, ((uint64_t)groups << 1) | 1);
        bit_writer bw = {out, 0, 0};
        for (size_t k = 0; k < groups * 8; k++) {
            size_t idx = start + k;
            bits_put(&bw, idx < i ? (values[idx] & mask) : 0, bit_width);
        }
        bits_flush(&bw);
    }
}

void parquet_delta_binary_packed(strbuf *out, const int64_t *values, size_t n)
{
    enum { MB_VALUES = PARQUET_DELTA_BLOCK_VALUES / PARQUET_DELTA_MINIBLOCKS };
    thrift_put_varint(out, PARQUET_DELTA_BLOCK_VALUES);
    thrift_put_varint(out, PARQUET_DELTA_MINIBLOCKS);
    thrift_put_varint(out, n);
    thrift_put_varint(out, thrift_zigzag64(n ? values[0] : 0));
    uint64_t adj[PARQUET_DELTA_BLOCK_VALUES];
    for (size_t pos = 1; pos < n; pos += PARQUET_DELTA_BLOCK_VALUES) {
        size_t count = n - pos < PARQUET_DELTA_BLOCK_VALUES ? n - pos : PARQUET_DELTA_BLOCK_VALUES;
        int64_t min_delta = INT64_MAX;
        for (size_t k = 0; k < count; k++) {
            int64_t d = (int64_t)((uint64_t)values[pos + k] - (uint64_t)values[pos + k - 1]);
            adj[k] = (uint64_t)d;
            if (d < min_delta) {
                min_delta = d;
            }
        }
        uint8_t widths[PARQUET_DELTA_MINIBLOCKS];
        for (int m = 0; m < PARQUET_DELTA_MINIBLOCKS; m++) {
            uint64_t max_adj = 0;
            for (size_t k = (size_t)m * MB_VALUES; k < count && k < (size_t)(m + 1) * MB_VALUES;
                 k++) {
                adj[k] -= (uint64_t)min_delta;
                if (adj[k] > max_adj) {
                    max_adj = adj[k];
                }
            }
            widths[m] = (uint8_t)parquet_bit_width(max_adj);
        }
        thrift_put_varint(out, thrift_zigzag64(min_delta));
        strbuf_append(out, widths, sizeof widths);
        bit_writer bw = {out, 0, 0};
        for (int m = 0; m < PARQUET_DELTA_MINIBLOCKS && (size_t)m * MB_VALUES < count; m++) {
            for (size_t k = (size_t)m * MB_VALUES; k < (size_t)(m + 1) * MB_VALUES; k++) {
                bits_put(&bw, k < count ? adj[k] : 0, widths[m]);
            }
            bits_flush(&bw);
        }
    }
}

void parquet_plain_bools(strbuf *out, const uint8_t *bools, size_t n)
{
    uint8_t byte = 0;
    for (size_t i = 0; i < n; i++) {
        if (bools[i]) {
            byte |= (uint8_t)(1u << (i & 7));
        }
        if ((i & 7) == 7) {
            strbuf_putc(out, (char)byte);
            byte = 0;
        }
    }
    if (n & 7) {
        strbuf_putc(out, (char)byte);
    }
}

int parquet_dict_init(parquet_dict *d, size_t max_entries)
{
    memset(d, 0, sizeof *d);
    size_t slots = 16;
    while (slots < 2 * max_entries) {
        slots <<= 1;
    }
    d->slots = calloc(slots, sizeof *d->slots);
    d->entry_ptr = malloc((max_entries ? max_entries : 1) * sizeof *d->entry_ptr);
    d->entry_len = malloc((max_entries ? max_entries : 1) * sizeof *d->entry_len);
    if (!d->slots || !d->entry_ptr || !d->entry_len) {
        parquet_dict_free(d);
        return INGOT_E_NOMEM;
    }
    d->slot_mask = slots - 1;
    d->max_entries = max_entries;
    return 0;
}

int parquet_dict_add(parquet_dict *d, const char *ptr, uint32_t len, uint32_t *id)
{
    size_t s = (size_t)hash_bytes(ptr, len, 0) & d->slot_mask;
    for (;;) {
        uint32_t e = d->slots[s];
        if (e == 0) {
            break;
        }
        if (d->entry_len[e - 1] == len && (len == 0 || memcmp(d->entry_ptr[e - 1], ptr, len) == 0)) {
            *id = e - 1;
            return 0;
        }
        s = (s + 1) & d->slot_mask;
    }
    if (d->count >= d->max_entries) {
        return 1;
    }
    d->entry_ptr[d->count] = ptr;
    d->entry_len[d->count] = len;
    d->plain_bytes += 4 + (size_t)len;
    d->slots[s] = (uint32_t)(d->count + 1);
    *id = (uint32_t)d->count++;
    return 0;
}

void parquet_dict_free(parquet_dict *d)
{
    free(d->slots);
    free(d->entry_ptr);
    free(d->entry_len);
    memset(d, 0, sizeof *d);
}
