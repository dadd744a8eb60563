/*
 * fuzz_gzip.c: libFuzzer target of the HTTP request body path (src/server/http_body.c): bodies
 * taken in arbitrary pieces, plain or gzip, under arbitrary size limits.
 *
 * Input: byte 0 picks the mode (low 2 bits) and options, bytes 1..4 the limit, bytes 5..8 seed
 * the piece sizes (0 to 8 KiB, empty pieces included); the rest is the payload. Modes:
 *   0  raw gzip: the payload itself is the gzip body. The outcome must equal a one-shot inflate
 *      of the whole payload by a reference (zlib in one call, output cut at limit + 1): too
 *      large iff the reference produced more than the limit, else accepted iff it is exactly one
 *      complete member with nothing after it, with the same bytes.
 *   1  valid gzip: the payload is gzipped here (level from the options), optionally followed by
 *      a second member or one garbage byte. It inflates to the payload iff that fits the limit
 *      and nothing follows; too large iff the payload exceeds the limit; invalid otherwise.
 *   2  plain: the payload as a plain body, with or without its Content-Length announced.
 *   3  plain or gzip with the limit at UINT64_MAX or limit 0 (the arithmetic's edges).
 * In every mode, after every piece: the buffer never holds more than limit + 1 bytes, and never
 * more than the limit while the body has not failed. Violations trap.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "server/http_body.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

#define RAW_LIMIT_MAX (1u << 20) /* the reference's output buffer: limit + 1 at most */

static uint32_t rng_state;

static uint32_t rng(void)
{
    uint32_t x = rng_state ? rng_state : 0x9E3779B9u;
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    return rng_state = x;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Feed body bytes in pieces of random size; checks the buffer bound after each; returns the
 * first failure or finish's code. */
static int feed(http_body *b, const uint8_t *data, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t piece = rng() % 4 == 0 ? 0 : rng() % (1u + (rng() % 8192));
        if (piece > len - off) piece = len - off;
        int rv = http_body_append(b, data + off, piece);
        REQUIRE(b->data.len <= b->limit_bytes || (rv != 0 && b->data.len - 1 <= b->limit_bytes));
        if (rv != 0) {
            REQUIRE(rv == INGOT_E_TOO_LARGE || rv == INGOT_E_INVALID || rv == INGOT_E_NOMEM);
            REQUIRE(http_body_append(b, data, len) == rv); /* sticky, and drops the bytes */
            REQUIRE(http_body_finish(b) == rv);
            return rv;
        }
        off += piece;
        if (off == len && rng() % 2) break; /* sometimes a few empty pieces at the end */
        if (off == len && rng() % 2) break;
    }
    return http_body_finish(b);
}

/* gzip of src (one member); out is malloc'd. */
static size_t gzip_of(const uint8_t *src, size_t len, int level, uint8_t **out)
{
    z_stream z = {0};
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    size_t cap = deflateBound(&z, len) + 16;
    *out = malloc(cap);
    REQUIRE(*out);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)len;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void mode_raw_gzip(const uint8_t *p, size_t n, uint64_t limit)
{
    limit %= RAW_LIMIT_MAX;
    uint8_t *ref = malloc(limit + 1);
    REQUIRE(ref);
    z_stream z = {0};
    REQUIRE(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = ref;
    z.avail_out = (uInt)(limit + 1);
    int zr = inflate(&z, Z_FINISH);
    size_t ref_len = limit + 1 - z.avail_out;
    int expect = ref_len > limit                         ? INGOT_E_TOO_LARGE
                 : zr == Z_STREAM_END && z.avail_in == 0 ? 0
                                                         : INGOT_E_INVALID;
    inflateEnd(&z);

    http_body b;
    REQUIRE(http_body_init(&b, true, limit, n) == 0);
    int rv = feed(&b, p, n);
    REQUIRE(rv == expect);
    if (rv == 0) REQUIRE(b.data.len == ref_len && memcmp(b.data.data, ref, ref_len) == 0);
    http_body_free(&b);
    free(ref);
}

static void mode_valid_gzip(const uint8_t *p, size_t n, uint64_t limit, uint8_t opts)
{
    uint8_t *gz = NULL;
    size_t gz_len = gzip_of(p, n, opts % 10, &gz);
    REQUIRE(gz_len >= 20);
    int extra = (opts >> 4) % 3; /* 0 nothing, 1 a second member, 2 one garbage byte */
    size_t total = gz_len + (extra == 1 ? gz_len : extra == 2 ? 1 : 0);
    uint8_t *body = malloc(total);
    REQUIRE(body);
    memcpy(body, gz, gz_len);
    if (extra == 1) memcpy(body + gz_len, gz, gz_len);
    if (extra == 2) body[gz_len] = (uint8_t)(opts | 1);
    limit = limit % (2 * (uint64_t)n + 2); /* around the payload's size, on both sides */

    http_body b;
    REQUIRE(http_body_init(&b, true, limit, total) == 0);
    int rv = feed(&b, body, total);
    if (n > limit) REQUIRE(rv == INGOT_E_TOO_LARGE);
    else if (extra) REQUIRE(rv == INGOT_E_INVALID);
    else REQUIRE(rv == 0 && b.data.len == n && (n == 0 || memcmp(b.data.data, p, n) == 0));
    http_body_free(&b);
    free(body);
    free(gz);
}

static void mode_plain(const uint8_t *p, size_t n, uint64_t limit, bool announce)
{
    http_body b;
    int irv = http_body_init(&b, false, limit, announce ? n : 0);
    if (announce && n > limit) {
        REQUIRE(irv == INGOT_E_TOO_LARGE && http_body_finish(&b) == INGOT_E_TOO_LARGE);
        http_body_free(&b);
        return;
    }
    REQUIRE(irv == 0);
    int rv = feed(&b, p, n);
    if (n > limit) REQUIRE(rv == INGOT_E_TOO_LARGE);
    else REQUIRE(rv == 0 && b.data.len == n && (n == 0 || memcmp(b.data.data, p, n) == 0));
    http_body_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9 || size > 65536) return 0;
    uint8_t opts = data[0];
    uint64_t limit = le32(data + 1);
    rng_state = le32(data + 5);
    /* the payload in an exact-size heap buffer, so ASan sees any read past its end */
    size_t n = size - 9;
    uint8_t *p = malloc(n ? n : 1);
    REQUIRE(p);
    memcpy(p, data + 9, n);
    switch (opts & 3) {
    case 0:
        mode_raw_gzip(p, n, limit);
        break;
    case 1:
        mode_valid_gzip(p, n, limit, opts >> 2);
        break;
    case 2:
        mode_plain(p, n, limit % (2 * (uint64_t)n + 2), opts & 4);
        break;
    default: {
        uint64_t edge = opts & 4 ? UINT64_MAX : 0;
        if (opts & 8) {
            mode_plain(p, n, edge, opts & 16);
        } else {
            uint8_t *gz = NULL;
            size_t gz_len = gzip_of(p, n, 1, &gz);
            http_body b;
            REQUIRE(http_body_init(&b, true, edge, gz_len) == 0);
            int rv = feed(&b, gz, gz_len);
            REQUIRE(edge ? rv == 0 && b.data.len == n : rv == (n ? INGOT_E_TOO_LARGE : 0));
            http_body_free(&b);
            free(gz);
        }
        break;
    }
    }
    free(p);
    return 0;
}
