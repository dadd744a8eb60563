/*
 * http_body.c: a request body taken piece by piece, with the size limit (see http_body.h).
 *
 * What it owns: the body buffer (a strbuf that only grows; it may come from an earlier body and
 * go back to a later one, http_body_take_buffer) and, for Content-Encoding: gzip, one
 * zlib inflater created with the first piece and ended by http_body_free.
 *
 * Format: a plain body is the bytes as sent. A gzip body is exactly one gzip member (RFC 1952:
 * 10-byte header 1f 8b 08 FLG MTIME XFL OS, optional extra/name/comment/header CRC, a deflate
 * stream, then CRC-32 and ISIZE, little-endian); zlib checks the header, the CRC and the size. A
 * second member or any byte after the first member's trailer is refused (INGOT_E_INVALID), as is
 * an empty or truncated stream: the client sent something other than what it said.
 *
 * Invariants: data.len <= limit_bytes whenever failure is 0. Inflation writes at most
 * limit_bytes + 1 bytes into the buffer (the output window is cut to that), so a gzip bomb costs
 * at most the limit in memory and, once it has overflowed, no more CPU: the rest of its pieces
 * are dropped without being inflated. Output goes in windows of at most 256 KiB, so a small body
 * grows the buffer no further than it needs.
 *
 * Failure: every failure is recorded once and is sticky; the caller answers 413 (too large), 400
 * (invalid) or 503 (out of memory) and throws the rest of the request away. Nothing here is
 * shared between threads: a body belongs to its request's thread.
 */
#include "server/http_body.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define HTTP_BODY_WINDOW_BYTES (256 * 1024)

static int fail(http_body *b, int code)
{
    if (b->failure == 0) b->failure = code;
    return b->failure;
}

int http_body_init(http_body *b, bool gzip, uint64_t limit_bytes, uint64_t expected_bytes)
{
    return http_body_init_reusing(b, NULL, gzip, limit_bytes, expected_bytes);
}

int http_body_init_reusing(http_body *b, strbuf *spare, bool gzip, uint64_t limit_bytes,
                           uint64_t expected_bytes)
{
    memset(b, 0, sizeof *b);
    if (spare) {
        b->data = *spare;
        b->data.len = 0;
        b->data.failed = false;
        memset(spare, 0, sizeof *spare);
    }
    b->gzip = gzip;
    b->limit_bytes = limit_bytes;
    if (gzip || expected_bytes == 0) return 0; /* a gzip body's inflated size is not announced */
    if (expected_bytes > limit_bytes) return fail(b, INGOT_E_TOO_LARGE);
    if (expected_bytes > SIZE_MAX - 1 || !strbuf_reserve(&b->data, (size_t)expected_bytes))
        return fail(b, INGOT_E_NOMEM);
    return 0;
}

static int append_plain(http_body *b, const void *piece, size_t len)
{
    if ((uint64_t)len > b->limit_bytes - b->data.len) return fail(b, INGOT_E_TOO_LARGE);
    strbuf_append(&b->data, piece, len);
    return strbuf_failed(&b->data) ? fail(b, INGOT_E_NOMEM) : 0;
}

/* Bytes the next inflate may write: a window, cut so that the buffer ends at limit + 1. */
static size_t output_room(const http_body *b)
{
    uint64_t left = b->limit_bytes - b->data.len; /* data.len <= limit here */
    uint64_t room = left < HTTP_BODY_WINDOW_BYTES ? left + 1 : HTTP_BODY_WINDOW_BYTES;
    return (size_t)room;
}

/* Inflate the piece's bytes at z->next_in until they are used up or a failure. */
static int inflate_input(http_body *b)
{
    z_stream *z = b->z;
    for (;;) {
        size_t room = output_room(b);
        if (!strbuf_reserve(&b->data, room)) return fail(b, INGOT_E_NOMEM);
        z->next_out = (Bytef *)b->data.data + b->data.len;
        z->avail_out = (uInt)room;
        int zr = inflate(z, Z_NO_FLUSH);
        b->data.len += room - z->avail_out;
        b->data.data[b->data.len] = '\0';
        if (b->data.len > b->limit_bytes) return fail(b, INGOT_E_TOO_LARGE);
        if (zr == Z_STREAM_END) {
            b->z_done = true;
            return z->avail_in > 0 ? fail(b, INGOT_E_INVALID) : 0; /* bytes after the member */
        }
        if (zr == Z_MEM_ERROR) return fail(b, INGOT_E_NOMEM);
        if (zr != Z_OK && zr != Z_BUF_ERROR) return fail(b, INGOT_E_INVALID);
        /* all input taken and the window not filled: nothing more comes out until more input */
        if (z->avail_in == 0 && z->avail_out > 0) return 0;
        if (zr == Z_BUF_ERROR && z->avail_out > 0) return fail(b, INGOT_E_INVALID); /* stuck */
    }
}

static int append_gzip(http_body *b, const void *piece, size_t len)
{
    if (b->z_done) return len > 0 ? fail(b, INGOT_E_INVALID) : 0; /* a second member, garbage */
    if (!b->z) {
        if (!(b->z = calloc(1, sizeof *b->z))) return fail(b, INGOT_E_NOMEM);
        int zr = inflateInit2(b->z, 16 + MAX_WBITS); /* gzip framing only */
        if (zr != Z_OK) {
            free(b->z);
            b->z = NULL;
            return fail(b, zr == Z_MEM_ERROR ? INGOT_E_NOMEM : INGOT_E_INVALID);
        }
    }
    const unsigned char *p = piece;
    while (len > 0) {
        size_t n = len < UINT_MAX ? len : UINT_MAX;
        b->z->next_in = (Bytef *)p;
        b->z->avail_in = (uInt)n;
        int rv = inflate_input(b);
        b->z->next_in = NULL; /* the piece is the caller's: keep no pointer into it */
        b->z->avail_in = 0;
        if (rv != 0) return rv;
        if (b->z_done && n < len) return fail(b, INGOT_E_INVALID);
        p += n;
        len -= n;
    }
    return 0;
}

int http_body_append(http_body *b, const void *piece, size_t len)
{
    if (b->failure) return b->failure;
    return b->gzip ? append_gzip(b, piece, len) : append_plain(b, piece, len);
}

int http_body_finish(http_body *b)
{
    if (b->failure) return b->failure;
    if (b->gzip && !b->z_done) return fail(b, INGOT_E_INVALID); /* empty or cut short */
    return 0;
}

strbuf http_body_take_buffer(http_body *b)
{
    if (b->data.failed) strbuf_free(&b->data); /* nothing worth keeping */
    strbuf out = b->data;
    out.len = 0;
    out.failed = false;
    memset(&b->data, 0, sizeof b->data);
    return out;
}

void http_body_free(http_body *b)
{
    if (b->z) {
        inflateEnd(b->z);
        free(b->z);
    }
    strbuf_free(&b->data);
    memset(b, 0, sizeof *b);
}
