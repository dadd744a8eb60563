/*
 * Unit tests of server/http_body: plain and gzip bodies taken piece by piece, the size limit
 * (also for a gzip bomb, cut at the limit), and the refusals: a second gzip member, trailing
 * garbage, a truncated or corrupt stream, an empty gzip body.
 */
#include <stdint.h>
#include <zlib.h>

#include "server/http_body.h"
#include "test.h"

/* gzip of `len` bytes of src, or (src NULL) of `len` zero bytes, deflated in 64 KiB steps. */
static strbuf gzip_of(const void *src, size_t len, int level)
{
    static const unsigned char zeros[65536];
    strbuf out = {0};
    z_stream z = {0};
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        out.failed = true;
        return out;
    }
    size_t done = 0;
    int flush;
    do {
        size_t n = len - done < sizeof zeros ? len - done : sizeof zeros;
        z.next_in = (Bytef *)(src ? (const unsigned char *)src + done : zeros);
        z.avail_in = (uInt)n;
        done += n;
        flush = done == len ? Z_FINISH : Z_NO_FLUSH;
        do {
            if (!strbuf_reserve(&out, 65536)) goto end;
            z.next_out = (Bytef *)out.data + out.len;
            z.avail_out = 65536;
            deflate(&z, flush);
            out.len += 65536 - z.avail_out;
        } while (z.avail_out == 0);
    } while (flush != Z_FINISH);
end:
    deflateEnd(&z);
    return out;
}

/* Feed data in pieces of `piece` bytes; the first failure or 0, then finish's code. */
static int feed(http_body *b, const void *data, size_t len, size_t piece)
{
    const char *p = data;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        int rv = http_body_append(b, p + off, n);
        if (rv != 0) return rv;
    }
    return http_body_finish(b);
}

static void test_plain_pieces_and_limit(void)
{
    http_body b;
    CHECK_EQ_INT(http_body_init(&b, false, 10, 0), 0);
    CHECK_EQ_INT(feed(&b, "0123456789", 10, 3), 0); /* exactly the limit */
    CHECK_EQ_INT(b.data.len, 10);
    CHECK(memcmp(b.data.data, "0123456789", 10) == 0);
    http_body_free(&b);

    CHECK_EQ_INT(http_body_init(&b, false, 10, 0), 0);
    CHECK_EQ_INT(http_body_append(&b, "0123456789", 10), 0);
    CHECK_EQ_INT(http_body_append(&b, "x", 1), INGOT_E_TOO_LARGE);
    CHECK_EQ_INT(http_body_append(&b, "", 0), INGOT_E_TOO_LARGE); /* sticky */
    CHECK_EQ_INT(http_body_finish(&b), INGOT_E_TOO_LARGE);
    CHECK(b.data.len <= 10);
    http_body_free(&b);

    /* a Content-Length over the limit fails before any byte; one within it is reserved */
    CHECK_EQ_INT(http_body_init(&b, false, 10, 11), INGOT_E_TOO_LARGE);
    CHECK_EQ_INT(http_body_finish(&b), INGOT_E_TOO_LARGE);
    http_body_free(&b);
    CHECK_EQ_INT(http_body_init(&b, false, 10, 10), 0);
    CHECK(b.data.cap > 10);
    http_body_free(&b);
    /* gzip: the announced (compressed) length says nothing of the inflated size */
    CHECK_EQ_INT(http_body_init(&b, true, 10, 1000), 0);
    http_body_free(&b);
}

/* A buffer given back by one body and reused by the next keeps its memory, never its bytes. */
static void test_buffer_reuse(void)
{
    http_body b;
    CHECK_EQ_INT(http_body_init(&b, false, 1000, 600), 0);
    CHECK_EQ_INT(feed(&b, "first body, longer than the second", 34, 5), 0);
    strbuf spare = http_body_take_buffer(&b);
    http_body_free(&b);
    CHECK(spare.data != NULL && spare.cap >= 600 && spare.len == 0);
    char *memory = spare.data;

    CHECK_EQ_INT(http_body_init_reusing(&b, &spare, false, 1000, 6), 0);
    CHECK(spare.data == NULL && spare.cap == 0); /* moved into the body */
    CHECK_EQ_INT(feed(&b, "second", 6, 2), 0);
    CHECK(b.data.data == memory); /* the same allocation, no fresh pages */
    CHECK_EQ_INT(b.data.len, 6);
    CHECK(memcmp(b.data.data, "second", 6) == 0);
    /* a reused buffer is still limited and grows when a body needs more */
    spare = http_body_take_buffer(&b);
    http_body_free(&b);
    CHECK_EQ_INT(http_body_init_reusing(&b, &spare, false, 10, 0), 0);
    CHECK_EQ_INT(feed(&b, "0123456789x", 11, 4), INGOT_E_TOO_LARGE);
    spare = http_body_take_buffer(&b); /* a failed body's buffer is still reusable memory */
    http_body_free(&b);
    CHECK_EQ_INT(http_body_init_reusing(&b, &spare, false, 5000, 0), 0);
    char big[3000];
    memset(big, 'z', sizeof big);
    CHECK_EQ_INT(feed(&b, big, sizeof big, 700), 0);
    CHECK_EQ_INT(b.data.len, sizeof big);
    CHECK(memcmp(b.data.data, big, sizeof big) == 0);
    http_body_free(&b);
}

static void test_empty_bodies(void)
{
    http_body b;
    CHECK_EQ_INT(http_body_init(&b, false, 100, 0), 0);
    CHECK_EQ_INT(http_body_finish(&b), 0);
    CHECK_EQ_INT(b.data.len, 0);
    http_body_free(&b);
    /* limit 0 takes only the empty body */
    CHECK_EQ_INT(http_body_init(&b, false, 0, 0), 0);
    CHECK_EQ_INT(http_body_append(&b, "", 0), 0);
    CHECK_EQ_INT(http_body_append(&b, "a", 1), INGOT_E_TOO_LARGE);
    http_body_free(&b);
    /* Content-Encoding: gzip with no bytes at all is not a gzip stream */
    CHECK_EQ_INT(http_body_init(&b, true, 100, 0), 0);
    CHECK_EQ_INT(http_body_append(&b, "", 0), 0);
    CHECK_EQ_INT(http_body_finish(&b), INGOT_E_INVALID);
    http_body_free(&b);
    /* the gzip of nothing is a valid empty body, even with limit 0 */
    strbuf gz = gzip_of("", 0, 6);
    CHECK(!strbuf_failed(&gz) && gz.len >= 20);
    CHECK_EQ_INT(http_body_init(&b, true, 0, gz.len), 0);
    CHECK_EQ_INT(feed(&b, gz.data, gz.len, gz.len), 0);
    CHECK_EQ_INT(b.data.len, 0);
    http_body_free(&b);
    strbuf_free(&gz);
}

static void test_gzip_round_trip_in_one_byte_pieces(void)
{
    strbuf text = {0};
    for (int i = 0; i < 3000; i++)
        strbuf_printf(&text, "cpu,host=h%d usage=%d.5,n=%di %d\n", i % 17, i, i * 7, 1000 + i);
    CHECK(!strbuf_failed(&text));
    for (int level = 0; level <= 9; level += 9) { /* stored blocks and compressed ones */
        strbuf gz = gzip_of(text.data, text.len, level);
        http_body b;
        for (size_t piece = 1; piece <= 4096; piece *= 64) {
            CHECK_EQ_INT(http_body_init(&b, true, text.len, 0), 0); /* limit = exact size */
            CHECK_EQ_INT(feed(&b, gz.data, gz.len, piece), 0);
            CHECK_EQ_INT(b.data.len, text.len);
            CHECK(b.data.len == text.len && memcmp(b.data.data, text.data, text.len) == 0);
            http_body_free(&b);
        }
        /* one byte less of limit: too large, in any pieces */
        CHECK_EQ_INT(http_body_init(&b, true, text.len - 1, 0), 0);
        CHECK_EQ_INT(feed(&b, gz.data, gz.len, 1), INGOT_E_TOO_LARGE);
        http_body_free(&b);
        strbuf_free(&gz);
    }
    strbuf_free(&text);
}

/* 256 MiB of zeros in about 256 KiB of gzip, limit 1 MiB: refused, and never more than the
 * limit + 1 byte of it inflated, whatever the piece size; pieces after the overflow are dropped. */
static void test_gzip_bomb_cut_at_limit(void)
{
    const uint64_t limit = 1 << 20;
    strbuf gz = gzip_of(NULL, (size_t)256 << 20, 9);
    CHECK(!strbuf_failed(&gz) && gz.len < (1u << 20));
    size_t pieces[] = {1, 4096, gz.len};
    for (size_t i = 0; i < 3; i++) {
        http_body b;
        CHECK_EQ_INT(http_body_init(&b, true, limit, gz.len), 0);
        int rv = 0;
        for (size_t off = 0; off < gz.len && rv == 0; off += pieces[i]) {
            size_t k = gz.len - off < pieces[i] ? gz.len - off : pieces[i];
            rv = http_body_append(&b, gz.data + off, k);
            CHECK(b.data.len <= limit + 1);
        }
        CHECK_EQ_INT(rv, INGOT_E_TOO_LARGE);
        CHECK(b.data.cap <= 2 * limit + 2); /* the buffer grew to the limit, not beyond */
        size_t len_at_failure = b.data.len;
        CHECK_EQ_INT(http_body_append(&b, gz.data, gz.len), INGOT_E_TOO_LARGE);
        CHECK_EQ_INT(b.data.len, len_at_failure);
        CHECK_EQ_INT(http_body_finish(&b), INGOT_E_TOO_LARGE);
        http_body_free(&b);
    }
    strbuf_free(&gz);
}

static void test_gzip_refusals(void)
{
    const char *lp = "m,t=a v=1i 1\n";
    strbuf gz = gzip_of(lp, strlen(lp), 6);
    http_body b;

    /* two members back to back (RFC 1952 allows it; we refuse it, as before), in one piece ... */
    strbuf two = {0};
    strbuf_append(&two, gz.data, gz.len);
    strbuf_append(&two, gz.data, gz.len);
    CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
    CHECK_EQ_INT(feed(&b, two.data, two.len, two.len), INGOT_E_INVALID);
    http_body_free(&b);
    /* ... or the second in pieces of its own */
    CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
    CHECK_EQ_INT(feed(&b, two.data, two.len, gz.len), INGOT_E_INVALID);
    http_body_free(&b);

    /* one trailing garbage byte, in the last piece or alone */
    strbuf tail = {0};
    strbuf_append(&tail, gz.data, gz.len);
    strbuf_putc(&tail, 'x');
    for (size_t piece = 1; piece <= tail.len; piece = piece == 1 ? gz.len : piece + gz.len) {
        CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
        CHECK_EQ_INT(feed(&b, tail.data, tail.len, piece), INGOT_E_INVALID);
        http_body_free(&b);
    }

    /* cut short at every length: never accepted */
    for (size_t cut = 0; cut < gz.len; cut++) {
        CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
        int rv = feed(&b, gz.data, cut, 1);
        CHECK(rv == INGOT_E_INVALID);
        http_body_free(&b);
    }

    /* a flipped bit in the magic, the CRC-32 or the size of the trailer */
    size_t flips[] = {0, 1, gz.len - 8, gz.len - 7, gz.len - 6, gz.len - 5, gz.len - 4, gz.len - 1};
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        size_t at = flips[k];
        strbuf bad = {0};
        strbuf_append(&bad, gz.data, gz.len);
        bad.data[at] ^= 0x10;
        CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
        CHECK_EQ_INT(feed(&b, bad.data, bad.len, 5), INGOT_E_INVALID);
        http_body_free(&b);
        strbuf_free(&bad);
    }

    /* not gzip at all: plain text, a zlib (RFC 1950) stream */
    CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
    CHECK_EQ_INT(feed(&b, lp, strlen(lp), 4), INGOT_E_INVALID);
    http_body_free(&b);
    unsigned char zl[128];
    uLongf zl_len = sizeof zl;
    CHECK_EQ_INT(compress(zl, &zl_len, (const Bytef *)lp, strlen(lp)), Z_OK);
    CHECK_EQ_INT(http_body_init(&b, true, 1000, 0), 0);
    CHECK_EQ_INT(feed(&b, zl, zl_len, zl_len), INGOT_E_INVALID);
    http_body_free(&b);

    strbuf_free(&two);
    strbuf_free(&tail);
    strbuf_free(&gz);
}

/* Only one layer is inflated: a gzip of a gzip gives the inner gzip's bytes. */
static void test_gzip_of_gzip_inflates_one_layer(void)
{
    strbuf inner = gzip_of(NULL, 1 << 20, 9);
    strbuf outer = gzip_of(inner.data, inner.len, 9);
    http_body b;
    CHECK_EQ_INT(http_body_init(&b, true, 1 << 20, 0), 0);
    CHECK_EQ_INT(feed(&b, outer.data, outer.len, 100), 0);
    CHECK_EQ_INT(b.data.len, inner.len);
    CHECK(b.data.len == inner.len && memcmp(b.data.data, inner.data, inner.len) == 0);
    http_body_free(&b);
    strbuf_free(&inner);
    strbuf_free(&outer);
}

/* The largest limit does not overflow the window arithmetic. */
static void test_huge_limit(void)
{
    strbuf gz = gzip_of(NULL, 300000, 6);
    http_body b;
    CHECK_EQ_INT(http_body_init(&b, true, UINT64_MAX, 0), 0);
    CHECK_EQ_INT(feed(&b, gz.data, gz.len, 1000), 0);
    CHECK_EQ_INT(b.data.len, 300000);
    http_body_free(&b);
    CHECK_EQ_INT(http_body_init(&b, false, UINT64_MAX, 0), 0);
    CHECK_EQ_INT(feed(&b, "abc", 3, 1), 0);
    CHECK_EQ_INT(b.data.len, 3);
    http_body_free(&b);
    strbuf_free(&gz);
}

int main(void)
{
    TEST_RUN(test_plain_pieces_and_limit);
    TEST_RUN(test_empty_bodies);
    TEST_RUN(test_buffer_reuse);
    TEST_RUN(test_gzip_round_trip_in_one_byte_pieces);
    TEST_RUN(test_gzip_bomb_cut_at_limit);
    TEST_RUN(test_gzip_refusals);
    TEST_RUN(test_gzip_of_gzip_inflates_one_layer);
    TEST_RUN(test_huge_limit);
    TEST_MAIN_END();
}
