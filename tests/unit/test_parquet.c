/*
 * test_parquet.c: the Parquet writer. (a) Structural tests of the encoders: Thrift compact
 * varints/zigzag/field headers, the RLE/bit-packed hybrid and DELTA_BINARY_PACKED (exact bytes
 * for spec examples, and round trips through small decoders written here), the dictionary
 * builder, and the writer's validation. (b) With INGOT_PARQUET_SAMPLES=DIR, it also writes
 * sample files into DIR for tests/readers/verify_parquet.mjs: X.parquet, X.expected.jsonl (every
 * row, every column: null as null, i64/u64/time as decimal strings, floats %.17g) and
 * X.meta.json (row count, row groups, columns, sorting columns, "ingot" metadata).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

#include "parquet/parquet.h"
#include "parquet/parquet_encoding.h"
#include "parquet/thrift_compact.h"
#include "test.h"

/* ---- small decoders for round trips --------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p, *end;
    int bad;
} reader;

static uint64_t rd_varint(reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) {
            r->bad = 1;
            return 0;
        }
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* LSB-first bit reader */
static uint64_t rd_bits(reader *r, size_t *bitpos, int width)
{
    uint64_t v = 0;
    for (int k = 0; k < width; k++) {
        size_t byte = *bitpos >> 3;
        if (r->p + byte >= r->end) {
            r->bad = 1;
            return 0;
        }
        v |= (uint64_t)((r->p[byte] >> (*bitpos & 7)) & 1) << k;
        (*bitpos)++;
    }
    return v;
}

static size_t decode_hybrid(reader *r, int bw, uint32_t *out, size_t n)
{
    size_t got = 0;
    while (got < n && !r->bad) {
        uint64_t h = rd_varint(r);
        if (h & 1) {
            size_t count = (size_t)(h >> 1) * 8, bitpos = 0;
            for (size_t k = 0; k < count; k++) {
                uint32_t v = (uint32_t)rd_bits(r, &bitpos, bw);
                if (got < n) {
                    out[got++] = v;
                }
            }
            r->p += (bitpos + 7) / 8;
        } else {
            uint32_t v = 0;
            for (int k = 0; k < (bw + 7) / 8; k++) {
                v |= (uint32_t)*r->p++ << (8 * k);
            }
            for (size_t k = 0; k < (size_t)(h >> 1) && got < n; k++) {
                out[got++] = v;
            }
        }
    }
    return got;
}

static size_t decode_delta(reader *r, int64_t *out, size_t cap)
{
    uint64_t block = rd_varint(r), mbs = rd_varint(r), total = rd_varint(r);
    int64_t first = unzigzag(rd_varint(r));
    if (r->bad || total > cap || block != 128 || mbs != 4) {
        r->bad = 1;
        return 0;
    }
    if (total == 0) {
        return 0;
    }
    out[0] = first;
    size_t got = 1;
    while (got < total && !r->bad) {
        int64_t min_delta = unzigzag(rd_varint(r));
        uint8_t widths[4];
        for (int m = 0; m < 4; m++) {
            widths[m] = *r->p++;
        }
        for (int m = 0; m < 4 && got < total; m++) {
            size_t bitpos = 0;
            for (int k = 0; k < 32; k++) {
                uint64_t adj = rd_bits(r, &bitpos, widths[m]);
                if (got < total) {
                    out[got] = (int64_t)((uint64_t)out[got - 1] + adj + (uint64_t)min_delta);
                    got++;
                }
            }
            r->p += (bitpos + 7) / 8;
        }
    }
    return got;
}

static int bytes_equal(const strbuf *b, const uint8_t *want, size_t n)
{
    return b->len == n && memcmp(b->data, want, n) == 0;
}

/* ---- (a) encoder tests -------------------------------------------------------------------- */

static void test_varint_zigzag(void)
{
    strbuf b = {0};
    thrift_put_varint(&b, 0);
    thrift_put_varint(&b, 127);
    thrift_put_varint(&b, 128);
    thrift_put_varint(&b, 300);
    const uint8_t want[] = {0x00, 0x7f, 0x80, 0x01, 0xac, 0x02};
    CHECK(bytes_equal(&b, want, sizeof want));
    strbuf_reset(&b);
    thrift_put_varint(&b, UINT64_MAX);
    CHECK_EQ_INT(b.len, 10);
    CHECK_EQ_INT((uint8_t)b.data[9], 0x01);
    CHECK(thrift_zigzag64(0) == 0);
    CHECK(thrift_zigzag64(-1) == 1);
    CHECK(thrift_zigzag64(1) == 2);
    CHECK(thrift_zigzag64(-2) == 3);
    CHECK(thrift_zigzag64(INT64_MAX) == UINT64_MAX - 1);
    CHECK(thrift_zigzag64(INT64_MIN) == UINT64_MAX);
    CHECK(unzigzag(thrift_zigzag64(INT64_MIN)) == INT64_MIN);
    strbuf_free(&b);
}

static void test_thrift_struct(void)
{
    strbuf b = {0};
    thrift_writer t;
    thrift_writer_init(&t, &b);
    thrift_field_i32(&t, 1, 5);         /* 0x15 0x0a */
    thrift_field_bool(&t, 2, true);     /* 0x11 */
    thrift_field_bool(&t, 3, false);    /* 0x12 */
    thrift_field_i64(&t, 20, -1);       /* delta 17: 0x06, zigzag(20)=0x28, value 0x01 */
    thrift_field_struct_begin(&t, 21);  /* 0x1c */
    thrift_field_string(&t, 1, "ab");   /* 0x18 0x02 'a' 'b' */
    thrift_struct_end(&t);              /* 0x00 */
    thrift_field_list_begin(&t, 22, THRIFT_I32, 2); /* 0x19 0x25 */
    thrift_elem_i32(&t, 1);             /* 0x02 */
    thrift_elem_i32(&t, -1);            /* 0x01 */
    thrift_field_list_begin(&t, 23, THRIFT_STRUCT, 15); /* 0x19 0xfc 0x0f */
    for (int i = 0; i < 15; i++) {
        thrift_elem_struct_begin(&t);
        thrift_struct_end(&t);
    }
    thrift_field_i8(&t, 24, -3);        /* 0x13 0xfd */
    thrift_field_i32(&t, 2, 7);         /* id goes down: long form 0x05 0x04 0x0e */
    thrift_struct_end(&t);              /* 0x00 */
    CHECK(!thrift_writer_failed(&t));
    uint8_t want[64];
    size_t n = 0;
    const uint8_t head[] = {0x15, 0x0a, 0x11, 0x12, 0x06, 0x28, 0x01, 0x1c, 0x18, 0x02, 'a', 'b',
                            0x00, 0x19, 0x25, 0x02, 0x01, 0x19, 0xfc, 0x0f};
    memcpy(want, head, sizeof head);
    n = sizeof head;
    for (int i = 0; i < 15; i++) {
        want[n++] = 0x00;
    }
    const uint8_t tail[] = {0x13, 0xfd, 0x05, 0x04, 0x0e, 0x00};
    memcpy(want + n, tail, sizeof tail);
    n += sizeof tail;
    CHECK(bytes_equal(&b, want, n));
    /* unbalanced end is reported */
    thrift_struct_end(&t);
    CHECK(thrift_writer_failed(&t));
    strbuf_free(&b);
}

static void test_rle_hybrid_exact(void)
{
    strbuf b = {0};
    uint32_t v[100];
    for (int i = 0; i < 100; i++) {
        v[i] = 3;
    }
    parquet_rle_hybrid(&b, v, 100, 2);
    const uint8_t want_rle[] = {0xc8, 0x01, 0x03};
    CHECK(bytes_equal(&b, want_rle, sizeof want_rle));
    /* Encodings.md example: 0..7 at bit width 3 */
    strbuf_reset(&b);
    for (int i = 0; i < 8; i++) {
        v[i] = (uint32_t)i;
    }
    parquet_rle_hybrid(&b, v, 8, 3);
    const uint8_t want_bp[] = {0x03, 0x88, 0xc6, 0xfa};
    CHECK(bytes_equal(&b, want_bp, sizeof want_bp));
    /* 3 literals then a run of 10: literals padded to one group; the run continues after */
    strbuf_reset(&b);
    uint32_t w[18] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    parquet_rle_hybrid(&b, w, 18, 1);
    const uint8_t want_mix[] = {0x03, 0xfd, 0x14, 0x01};
    CHECK(bytes_equal(&b, want_mix, sizeof want_mix));
    /* a run of 5 after a literal group stays literal: two groups, the last zero-padded */
    strbuf_reset(&b);
    parquet_rle_hybrid(&b, w, 13, 1);
    const uint8_t want_lit[] = {0x05, 0xfd, 0x1f};
    CHECK(bytes_equal(&b, want_lit, sizeof want_lit));
    /* 16-bit values take two bytes in an RLE run */
    strbuf_reset(&b);
    for (int i = 0; i < 9; i++) {
        v[i] = 0x1234;
    }
    parquet_rle_hybrid(&b, v, 9, 13);
    const uint8_t want_wide[] = {0x12, 0x34, 0x12};
    CHECK(bytes_equal(&b, want_wide, sizeof want_wide));
    strbuf_free(&b);
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_rle_hybrid_roundtrip(void)
{
    enum { N = 5000 };
    static uint32_t in[N], out[N];
    strbuf b = {0};
    const int widths[] = {1, 2, 3, 7, 8, 9, 16, 17, 31, 32};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        int bw = widths[wi];
        uint32_t mask = bw == 32 ? 0xffffffffu : (1u << bw) - 1;
        for (size_t i = 0; i < N;) {
            /* alternate random stretches and runs of random length */
            size_t len = 1 + rng() % 40;
            uint32_t v = (uint32_t)rng() & mask;
            bool run = rng() & 1;
            for (size_t k = 0; k < len && i < N; k++, i++) {
                in[i] = run ? v : ((uint32_t)rng() & mask);
            }
        }
        for (size_t n = 0; n <= N; n += (n < 20 ? 1 : 997)) {
            strbuf_reset(&b);
            parquet_rle_hybrid(&b, in, n, bw);
            reader r = {(const uint8_t *)b.data, (const uint8_t *)b.data + b.len, 0};
            memset(out, 0xAA, sizeof out);
            size_t got = decode_hybrid(&r, bw, out, n);
            CHECK(!r.bad);
            CHECK_EQ_INT(got, n);
            CHECK(memcmp(in, out, n * sizeof in[0]) == 0);
            CHECK(r.p == r.end);
        }
    }
    strbuf_free(&b);
}

static void test_delta_exact(void)
{
    strbuf b = {0};
    /* Encodings.md example 1: 1..5 -> header, min delta 1, all widths 0, no packed bytes */
    const int64_t v[] = {1, 2, 3, 4, 5};
    parquet_delta_binary_packed(&b, v, 5);
    const uint8_t want[] = {0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00};
    CHECK(bytes_equal(&b, want, sizeof want));
    /* empty and single value: header only */
    strbuf_reset(&b);
    parquet_delta_binary_packed(&b, v, 0);
    const uint8_t want0[] = {0x80, 0x01, 0x04, 0x00, 0x00};
    CHECK(bytes_equal(&b, want0, sizeof want0));
    strbuf_reset(&b);
    const int64_t one[] = {-3};
    parquet_delta_binary_packed(&b, one, 1);
    const uint8_t want1[] = {0x80, 0x01, 0x04, 0x01, 0x05};
    CHECK(bytes_equal(&b, want1, sizeof want1));
    /* Encodings.md example 2: 7 5 3 1 2 3 4 5: min delta -2, width 2 for the first miniblock */
    strbuf_reset(&b);
    const int64_t v2[] = {7, 5, 3, 1, 2, 3, 4, 5};
    parquet_delta_binary_packed(&b, v2, 8);
    /* adjusted deltas 0 0 0 3 3 3 3 at 2 bits: 0xc0 0xff 0x00 ... (8 bytes for 32 values) */
    CHECK_EQ_INT(b.len, 5 + 1 + 4 + 8);
    CHECK_EQ_INT((uint8_t)b.data[5], 0x03); /* zigzag(-2) */
    CHECK_EQ_INT((uint8_t)b.data[6], 2);
    CHECK_EQ_INT((uint8_t)b.data[10], 0xc0);
    CHECK_EQ_INT((uint8_t)b.data[11], 0x3f);
    strbuf_free(&b);
}

static void delta_roundtrip(const int64_t *in, size_t n)
{
    strbuf b = {0};
    int64_t *out = malloc((n + 1) * sizeof *out);
    parquet_delta_binary_packed(&b, in, n);
    reader r = {(const uint8_t *)b.data, (const uint8_t *)b.data + b.len, 0};
    size_t got = decode_delta(&r, out, n);
    CHECK(!r.bad);
    CHECK_EQ_INT(got, n);
    CHECK(n == 0 || memcmp(in, out, n * sizeof *in) == 0);
    CHECK(r.p == r.end);
    free(out);
    strbuf_free(&b);
}

static void test_delta_roundtrip(void)
{
    const int64_t edge[] = {INT64_MIN, INT64_MAX, INT64_MIN, 0,  -1,        1,        INT64_MAX,
                            INT64_MAX, INT64_MIN, -5,        -6, INT64_MIN, INT64_MIN};
    delta_roundtrip(edge, sizeof edge / sizeof edge[0]);
    enum { N = 1000 };
    static int64_t v[N];
    for (size_t n = 0; n <= 300; n++) { /* every block/miniblock boundary case */
        for (size_t i = 0; i < n; i++) {
            v[i] = (int64_t)(i * 10) - (int64_t)(rng() % 7);
        }
        delta_roundtrip(v, n);
    }
    for (size_t i = 0; i < N; i++) { /* negative deltas, decreasing */
        v[i] = 1000000 - (int64_t)(i * i);
    }
    delta_roundtrip(v, N);
    for (size_t i = 0; i < N; i++) { /* full 64-bit noise: width 64 */
        v[i] = (int64_t)rng();
    }
    delta_roundtrip(v, N);
    for (size_t i = 0; i < N; i++) { /* constant */
        v[i] = -42;
    }
    delta_roundtrip(v, N);
    for (size_t i = 0; i < N; i++) { /* alternating extremes */
        v[i] = (i & 1) ? INT64_MAX : INT64_MIN;
    }
    delta_roundtrip(v, N);
}

static void test_plain_bools(void)
{
    strbuf b = {0};
    const uint8_t v[] = {1, 0, 1, 1, 0, 0, 0, 0, 1, 1};
    parquet_plain_bools(&b, v, 10);
    const uint8_t want[] = {0x0d, 0x03};
    CHECK(bytes_equal(&b, want, sizeof want));
    strbuf_free(&b);
}

static void test_dict(void)
{
    parquet_dict d;
    CHECK_EQ_INT(parquet_dict_init(&d, 3), 0);
    uint32_t id = 99;
    CHECK_EQ_INT(parquet_dict_add(&d, "abc", 3, &id), 0);
    CHECK_EQ_INT(id, 0);
    CHECK_EQ_INT(parquet_dict_add(&d, "", 0, &id), 0);
    CHECK_EQ_INT(id, 1);
    CHECK_EQ_INT(parquet_dict_add(&d, "abcd", 3, &id), 0); /* "abc" again */
    CHECK_EQ_INT(id, 0);
    CHECK_EQ_INT(parquet_dict_add(&d, "x", 1, &id), 0);
    CHECK_EQ_INT(id, 2);
    CHECK_EQ_INT(parquet_dict_add(&d, "y", 1, &id), 1); /* full */
    CHECK_EQ_INT(parquet_dict_add(&d, "x", 1, &id), 0); /* existing still found */
    CHECK_EQ_INT(id, 2);
    CHECK_EQ_INT(d.count, 3);
    CHECK_EQ_INT(d.plain_bytes, 4 + 3 + 4 + 0 + 4 + 1);
    parquet_dict_free(&d);
    CHECK_EQ_INT(parquet_dict_init(&d, 0), 0);
    CHECK_EQ_INT(parquet_dict_add(&d, "a", 1, &id), 1);
    parquet_dict_free(&d);
}

/* ---- batch building ------------------------------------------------------------------------ */

static query_batch *batch_new(size_t rows)
{
    query_batch *b = calloc(1, sizeof *b);
    b->columns = calloc(16, sizeof *b->columns);
    b->row_count = rows;
    memcpy(b->partition_key, "2026-01-01", 11);
    return b;
}

static query_column *col_add(query_batch *b, const char *name, enum column_type t, bool nullable)
{
    query_column *c = &b->columns[b->column_count++];
    size_t n = b->row_count;
    c->name = strdup(name);
    c->type = t;
    if (nullable) {
        c->validity = calloc(n / 8 + 1, 1);
    }
    switch (t) {
    case COLUMN_I64:
    case COLUMN_TIME:
    case COLUMN_U64:
    case COLUMN_F64:
        c->data.i64 = calloc(n + 1, 8);
        break;
    case COLUMN_BOOL:
        c->data.bits = calloc(n / 8 + 1, 1);
        break;
    case COLUMN_STRING:
        c->data.str.offsets = calloc(n + 1, sizeof(int32_t));
        break;
    case COLUMN_TAG:
        c->data.tag.ids = calloc(n + 1, sizeof(int32_t));
        break;
    }
    return c;
}

static void set_valid(query_column *c, size_t i, bool v)
{
    if (c->validity && v) {
        c->validity[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
}

static void set_bit(uint8_t *bits, size_t i, bool v)
{
    if (v) {
        bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
}

/* Strings: values[i] (NULL = null row), appended in order. */
static void col_set_strings(query_column *c, size_t n, const char *(*value)(size_t, char *))
{
    size_t cap = 1024, len = 0;
    char *bytes = malloc(cap);
    char tmp[256];
    for (size_t i = 0; i < n; i++) {
        const char *s = value(i, tmp);
        c->data.str.offsets[i] = (int32_t)len;
        set_valid(c, i, s != NULL);
        if (s) {
            size_t l = strlen(s);
            while (len + l > cap) {
                cap *= 2;
                bytes = realloc(bytes, cap);
            }
            memcpy(bytes + len, s, l);
            len += l;
        }
    }
    c->data.str.offsets[n] = (int32_t)len;
    c->data.str.bytes = bytes;
}

static void tag_set_dict(query_column *c, const char *const *entries, uint32_t count)
{
    size_t total = 0;
    for (uint32_t k = 0; k < count; k++) {
        total += strlen(entries[k]);
    }
    c->data.tag.dict_offsets = malloc((count + 1) * sizeof(int32_t));
    c->data.tag.dict_bytes = malloc(total + 1);
    c->data.tag.dict_count = count;
    size_t at = 0;
    for (uint32_t k = 0; k < count; k++) {
        c->data.tag.dict_offsets[k] = (int32_t)at;
        memcpy(c->data.tag.dict_bytes + at, entries[k], strlen(entries[k]));
        at += strlen(entries[k]);
    }
    c->data.tag.dict_offsets[count] = (int32_t)at;
}

static bool row_is_valid(const query_column *c, size_t i)
{
    return !c->validity || (c->validity[i >> 3] >> (i & 7)) & 1;
}

/* ---- writer tests -------------------------------------------------------------------------- */

static void test_writer_rejects(void)
{
    query_batch *b = batch_new(3);
    query_column *t = col_add(b, "time", COLUMN_TIME, true);
    set_valid(t, 0, true);
    set_valid(t, 2, true); /* row 1 null */
    query_column *g = col_add(b, "host", COLUMN_TAG, false);
    const char *entries[] = {"a"};
    tag_set_dict(g, entries, 1);
    strbuf out = {0};
    strbuf_append(&out, "keep", 4);
    char err[200];
    CHECK_EQ_INT(parquet_write(b, NULL, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK(strstr(err, "row 1") != NULL);
    CHECK_EQ_INT(out.len, 4);
    set_valid(t, 1, true);
    g->data.tag.ids[2] = 1; /* out of range */
    CHECK_EQ_INT(parquet_write(b, NULL, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK(strstr(err, "out of range") != NULL);
    g->data.tag.ids[2] = 0;
    const char *sort[] = {"host", "nope"};
    parquet_write_options o = {.sorting_columns = sort, .sorting_column_count = 2};
    CHECK_EQ_INT(parquet_write(b, &o, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK(strstr(err, "nope") != NULL);
    CHECK_EQ_INT(out.len, 4);
    o.sorting_column_count = 1;
    CHECK_EQ_INT(parquet_write(b, &o, &out, err, sizeof err), 0);
    /* appended after "keep": PAR1 ... footer length ... PAR1 */
    CHECK(out.len > 4 + 12);
    CHECK(memcmp(out.data + 4, "PAR1", 4) == 0);
    CHECK(memcmp(out.data + out.len - 4, "PAR1", 4) == 0);
    uint32_t flen;
    memcpy(&flen, out.data + out.len - 8, 4);
    CHECK(flen > 0 && flen < out.len - 12);
    CHECK(memmem(out.data, out.len, "ingot", 5) != NULL); /* created_by */
    strbuf_free(&out);
    query_batch_free(b);
}

/* ---- (b) samples ----------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *p, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void write_expected(const query_batch *b, const char *path)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    for (size_t i = 0; i < b->row_count; i++) {
        fputc('{', f);
        for (size_t ci = 0; ci < b->column_count; ci++) {
            const query_column *c = &b->columns[ci];
            if (ci) {
                fputc(',', f);
            }
            json_string(f, c->name, strlen(c->name));
            fputc(':', f);
            if (!row_is_valid(c, i)) {
                fputs("null", f);
                continue;
            }
            switch (c->type) {
            case COLUMN_TIME:
            case COLUMN_I64:
                fprintf(f, "\"%" PRId64 "\"", c->data.i64[i]);
                break;
            case COLUMN_U64:
                fprintf(f, "\"%" PRIu64 "\"", c->data.u64[i]);
                break;
            case COLUMN_F64:
                fprintf(f, "%.17g", c->data.f64[i]);
                break;
            case COLUMN_BOOL:
                fputs((c->data.bits[i >> 3] >> (i & 7)) & 1 ? "true" : "false", f);
                break;
            case COLUMN_STRING:
                json_string(f, c->data.str.bytes + c->data.str.offsets[i],
                            (size_t)(c->data.str.offsets[i + 1] - c->data.str.offsets[i]));
                break;
            case COLUMN_TAG: {
                int32_t id = c->data.tag.ids[i];
                json_string(f, c->data.tag.dict_bytes + c->data.tag.dict_offsets[id],
                            (size_t)(c->data.tag.dict_offsets[id + 1] - c->data.tag.dict_offsets[id]));
                break;
            }
            }
        }
        fputs("}\n", f);
    }
    fclose(f);
}

/* encodings_json: {"column": "ENCODING"} the value pages of that column must use (or NULL). */
static void write_sample(const char *dir, const char *name, const query_batch *b,
                         const char *const *sort, size_t nsort, size_t row_group_rows,
                         const char *encodings_json)
{
    char path[1024], meta[512];
    snprintf(meta, sizeof meta,
             "{\"namespace\":\"ns\",\"table\":\"%s\",\"partition_key\":\"2026-01-01\","
             "\"note\":\"h\\u00e9 \\\"quoted\\\" \xe2\x9c\x93\"}",
             name);
    parquet_write_options o = {.sorting_columns = sort, .sorting_column_count = nsort,
                               .metadata_json = meta, .row_group_rows = row_group_rows};
    strbuf out = {0};
    char err[256] = "";
    int rc = parquet_write(b, &o, &out, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s: %s\n", name, err);
        strbuf_free(&out);
        return;
    }
    snprintf(path, sizeof path, "%s/%s.parquet", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(out.data, 1, out.len, f) == out.len);
    if (f) {
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/%s.expected.jsonl", dir, name);
    write_expected(b, path);
    snprintf(path, sizeof path, "%s/%s.meta.json", dir, name);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) {
        strbuf_free(&out);
        return;
    }
    size_t rg = row_group_rows ? row_group_rows : PARQUET_DEFAULT_ROW_GROUP_ROWS;
    fprintf(f, "{\"rows\":%zu,\"row_groups\":%zu,\"bytes\":%zu,\"ingot\":", b->row_count,
            (b->row_count + rg - 1) / rg, out.len);
    json_string(f, meta, strlen(meta));
    fputs(",\"sorting_columns\":[", f);
    for (size_t s = 0; s < nsort; s++) {
        fprintf(f, "%s\"%s\"", s ? "," : "", sort[s]);
    }
    fprintf(f, "],\"encodings\":%s,\"columns\":[", encodings_json ? encodings_json : "{}");
    for (size_t ci = 0; ci < b->column_count; ci++) {
        fprintf(f, "%s{\"name\":", ci ? "," : "");
        json_string(f, b->columns[ci].name, strlen(b->columns[ci].name));
        fprintf(f, ",\"type\":\"%s\"}", column_type_name(b->columns[ci].type));
    }
    fputs("]}\n", f);
    fclose(f);
    strbuf_free(&out);
}

static const char *str_mixed(size_t i, char *tmp)
{
    static const char *const fixed[] = {"", "plain", "h\xc3\xa9llo w\xc3\xb6rld",
                                        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                        "emoji \xf0\x9f\x98\x80", "quote \" back\\slash\ttab\nnl"};
    if (i % 9 == 4) {
        return NULL;
    }
    if (i % 3 == 0) {
        return fixed[(i / 3) % 6];
    }
    snprintf(tmp, 256, "unique-%zu", i * 7919);
    return tmp;
}

static const char *str_unique(size_t i, char *tmp)
{
    if (i % 11 == 5) {
        return NULL;
    }
    snprintf(tmp, 256, "value-%016zx-%zu", (size_t)(i * 0x9E3779B97F4A7C15ull), i);
    return tmp;
}

static const char *str_low(size_t i, char *tmp)
{
    (void)tmp;
    static const char *const v[] = {"ok", "warn", "", "crit \xe2\x9a\xa0"};
    return i % 13 == 7 ? NULL : v[(i / 5) % 4];
}

static const char *str_null(size_t i, char *tmp)
{
    (void)i;
    (void)tmp;
    return NULL;
}

/* Every type, nulls everywhere optional, edge values; rows sorted by (host, region, time). */
static query_batch *sample_types(size_t n)
{
    query_batch *b = batch_new(n);
    query_column *host = col_add(b, "host", COLUMN_TAG, true);
    query_column *region = col_add(b, "region", COLUMN_TAG, true);
    query_column *t = col_add(b, "time", COLUMN_TIME, false);
    query_column *i64 = col_add(b, "i64", COLUMN_I64, true);
    query_column *u64 = col_add(b, "u64", COLUMN_U64, true);
    query_column *f64 = col_add(b, "f64", COLUMN_F64, true);
    query_column *bl = col_add(b, "flag", COLUMN_BOOL, true);
    query_column *s = col_add(b, "msg", COLUMN_STRING, true);
    query_column *unicode_name = col_add(b, "t\xc3\xa9mp \xc2\xb0" "C", COLUMN_F64, true);
    const char *hosts[] = {"unused-entry", "host-a", "", "h\xc3\xb4te-\xe2\x82\xac"};
    const char *regions[] = {"eu", "us-west", "never-used"};
    tag_set_dict(host, hosts, 4);
    tag_set_dict(region, regions, 3);
    static const int64_t i64_edge[] = {INT64_MIN, INT64_MAX, 0, -1, 1};
    static const uint64_t u64_edge[] = {UINT64_MAX, (1ull << 63), (1ull << 63) + 1, 0,
                                        UINT64_MAX - 1};
    static const double f64_edge[] = {-0.0, 0.0, 1e308, -1e-308, 4.9e-324, 0.1, -2.5};
    for (size_t i = 0; i < n; i++) {
        int32_t hid = i < n / 3 ? 1 : i < 2 * n / 3 ? 2 : 3;
        host->data.tag.ids[i] = hid;
        set_valid(host, i, i != n / 2 || n < 3); /* one null in the middle */
        region->data.tag.ids[i] = (int32_t)((i / 7) % 2);
        set_valid(region, i, i % 17 != 3);
        t->data.i64[i] = -1000000000123456789ll + (int64_t)(i % (n / 3 + 1)) * 1000000007ll;
        i64->data.i64[i] = i % 10 < 5 ? i64_edge[i % 5] : (int64_t)(rng() >> (rng() % 64)) * ((i & 1) ? -1 : 1);
        set_valid(i64, i, i % 6 != 5);
        u64->data.u64[i] = i % 10 < 5 ? u64_edge[i % 5] : rng();
        set_valid(u64, i, i % 8 != 2);
        f64->data.f64[i] = i % 10 < 7 ? f64_edge[i % 7] : (double)(int64_t)rng() / 3.0;
        set_valid(f64, i, i % 5 != 1);
        set_bit(bl->data.bits, i, (i % 3) == 0);
        set_valid(bl, i, i % 7 != 6);
        unicode_name->data.f64[i] = 20.0 + (double)(i % 100) / 8;
        set_valid(unicode_name, i, i % 4 != 0);
    }
    col_set_strings(s, n, str_mixed);
    return b;
}

/* TSBS-like: 2 tags, time, numeric fields, a high-cardinality string; n rows. */
static query_batch *sample_wide(size_t n, bool with_strings)
{
    query_batch *b = batch_new(n);
    query_column *host = col_add(b, "hostname", COLUMN_TAG, false);
    query_column *dc = col_add(b, "datacenter", COLUMN_TAG, true);
    query_column *t = col_add(b, "time", COLUMN_TIME, false);
    query_column *usage = col_add(b, "usage_user", COLUMN_F64, true);
    query_column *cnt = col_add(b, "count", COLUMN_I64, true);
    query_column *bytes = col_add(b, "bytes", COLUMN_U64, true);
    query_column *up = col_add(b, "up", COLUMN_BOOL, true);
    enum { HOSTS = 100 };
    static char names[HOSTS][32];
    const char *hp[HOSTS];
    for (int h = 0; h < HOSTS; h++) {
        snprintf(names[h], sizeof names[h], "host_%d", h);
        hp[h] = names[h];
    }
    tag_set_dict(host, hp, HOSTS);
    const char *dcs[] = {"us-east-1a", "eu-central-1b", "ap-south-1c"};
    tag_set_dict(dc, dcs, 3);
    size_t per_host = (n + HOSTS - 1) / HOSTS;
    for (size_t i = 0; i < n; i++) {
        size_t h = i / per_host;
        host->data.tag.ids[i] = (int32_t)h;
        dc->data.tag.ids[i] = (int32_t)(h % 3);
        set_valid(dc, i, h % 10 != 9);
        t->data.i64[i] = 1767225600000000000ll + (int64_t)(i % per_host) * 10000000000ll;
        usage->data.f64[i] = (double)(rng() % 10000) / 100.0;
        set_valid(usage, i, i % 1000 != 999);
        cnt->data.i64[i] = (int64_t)(i % per_host) * 3 - 5000;
        set_valid(cnt, i, i % 333 != 1);
        bytes->data.u64[i] = (i % 1000 == 0) ? UINT64_MAX - i : (uint64_t)i * 4096;
        set_valid(bytes, i, true);
        set_bit(up->data.bits, i, (rng() & 15) != 0);
        set_valid(up, i, i % 100 != 42);
    }
    if (with_strings) {
        query_column *s = col_add(b, "trace", COLUMN_STRING, true);
        col_set_strings(s, n, str_unique);
        query_column *st = col_add(b, "status", COLUMN_STRING, true);
        col_set_strings(st, n, str_low);
    }
    return b;
}

#define TYPES_ENC                                                                                  \
    "{\"host\":\"RLE_DICTIONARY\",\"time\":\"DELTA_BINARY_PACKED\",\"i64\":\"DELTA_BINARY_PACKED\","     \
    "\"u64\":\"DELTA_BINARY_PACKED\",\"f64\":\"PLAIN\",\"flag\":\"PLAIN\",\"msg\":\"PLAIN\"}"
#define WIDE_ENC                                                                                   \
    "{\"hostname\":\"RLE_DICTIONARY\",\"datacenter\":\"RLE_DICTIONARY\",\"trace\":\"PLAIN\","         \
    "\"status\":\"RLE_DICTIONARY\"}"

static void make_samples(const char *dir)
{
    mkdir(dir, 0755);
    const char *sort_types[] = {"host", "region", "time"};
    const char *sort_wide[] = {"hostname", "datacenter", "time"};

    query_batch *b = sample_types(1000);
    write_sample(dir, "types", b, sort_types, 3, 0, TYPES_ENC);
    query_batch_free(b);

    b = sample_types(1000);
    write_sample(dir, "types_small_groups", b, sort_types, 3, 64, TYPES_ENC); /* 16 row groups */
    query_batch_free(b);

    b = sample_types(1);
    write_sample(dir, "one_row", b, sort_types, 3, 0, NULL);
    query_batch_free(b);

    b = sample_types(0);
    write_sample(dir, "empty", b, sort_types, 3, 0, NULL);
    query_batch_free(b);

    /* all-null fields and an all-null tag; strings high and low cardinality */
    b = batch_new(500);
    query_column *t = col_add(b, "time", COLUMN_TIME, false);
    query_column *g = col_add(b, "tag_all_null", COLUMN_TAG, true);
    const char *e[] = {"x"};
    tag_set_dict(g, e, 1);
    col_add(b, "f_all_null", COLUMN_F64, true);
    col_add(b, "i_all_null", COLUMN_I64, true);
    col_add(b, "u_all_null", COLUMN_U64, true);
    col_add(b, "b_all_null", COLUMN_BOOL, true);
    query_column *s = col_add(b, "s_all_null", COLUMN_STRING, true);
    col_set_strings(s, 500, str_null);
    query_column *hi = col_add(b, "s_high_card", COLUMN_STRING, true);
    col_set_strings(hi, 500, str_unique);
    query_column *lo = col_add(b, "s_low_card", COLUMN_STRING, true);
    col_set_strings(lo, 500, str_low);
    query_column *one = col_add(b, "tag_one_value", COLUMN_TAG, false);
    const char *oe[] = {"only"};
    tag_set_dict(one, oe, 1);
    for (size_t i = 0; i < 500; i++) {
        t->data.i64[i] = (int64_t)i - 250;
    }
    write_sample(dir, "nulls_and_strings", b, NULL, 0, 0,
                 "{\"s_high_card\":\"PLAIN\",\"s_low_card\":\"RLE_DICTIONARY\","
                 "\"tag_one_value\":\"RLE_DICTIONARY\",\"s_all_null\":\"PLAIN\"}");
    query_batch_free(b);

    b = sample_wide(1000003, true);
    write_sample(dir, "large_300k_groups", b, sort_wide, 3, 300000, WIDE_ENC);
    query_batch_free(b);

    b = sample_wide(PARQUET_DEFAULT_ROW_GROUP_ROWS + 5, false);
    write_sample(dir, "large_default_groups", b, sort_wide, 3, 0, WIDE_ENC);
    query_batch_free(b);
}

/* A column source over a batch that lends deep copies and poisons + frees them on unload, so
 * anything the writer kept pointing into a column after giving it back is caught (ASan) or
 * changes the bytes. */
typedef struct clone_source {
    const query_batch *b;
    const char *names[16];
    enum column_type types[16];
    int live, max_live, loads;
} clone_source;

static void *dup_bytes(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

static int clone_load(void *self, size_t ci, query_column *out)
{
    clone_source *cs = self;
    const query_column *c = &cs->b->columns[ci];
    size_t n = cs->b->row_count;
    *out = *c;
    out->name = NULL;
    out->validity = c->validity ? dup_bytes(c->validity, (n + 7) / 8) : NULL;
    switch (c->type) {
    case COLUMN_BOOL:
        out->data.bits = dup_bytes(c->data.bits, (n + 7) / 8);
        break;
    case COLUMN_STRING:
        out->data.str.offsets = dup_bytes(c->data.str.offsets, (n + 1) * sizeof(int32_t));
        out->data.str.bytes = dup_bytes(c->data.str.bytes, (size_t)c->data.str.offsets[n]);
        break;
    case COLUMN_TAG:
        out->data.tag.ids = dup_bytes(c->data.tag.ids, n * sizeof(int32_t));
        out->data.tag.dict_offsets =
            dup_bytes(c->data.tag.dict_offsets, (c->data.tag.dict_count + 1) * sizeof(int32_t));
        out->data.tag.dict_bytes = dup_bytes(c->data.tag.dict_bytes,
                                             (size_t)c->data.tag.dict_offsets[c->data.tag.dict_count]);
        break;
    default:
        out->data.i64 = dup_bytes(c->data.i64, n * 8);
        break;
    }
    cs->loads++;
    if (++cs->live > cs->max_live) cs->max_live = cs->live;
    return 0;
}

static void clone_unload(void *self, query_column *col)
{
    clone_source *cs = self;
    size_t n = cs->b->row_count;
    if (col->type == COLUMN_STRING && col->data.str.offsets)
        memset(col->data.str.bytes, 0x5a, (size_t)col->data.str.offsets[n]);
    if (col->type == COLUMN_TAG && col->data.tag.dict_offsets)
        memset(col->data.tag.dict_bytes, 0x5a,
               (size_t)col->data.tag.dict_offsets[col->data.tag.dict_count]);
    query_column_free(col);
    cs->live--;
}

static void source_matches_batch(query_batch *b, size_t rg_rows)
{
    clone_source cs = {.b = b};
    CHECK(b->column_count <= 16);
    for (size_t i = 0; i < b->column_count && i < 16; i++) {
        cs.names[i] = b->columns[i].name;
        cs.types[i] = b->columns[i].type;
    }
    parquet_column_source src = {.self = &cs, .row_count = b->row_count,
                                 .column_count = b->column_count, .names = cs.names,
                                 .types = cs.types, .load = clone_load, .unload = clone_unload};
    const char *sort[] = {b->columns[0].name, "time"};
    parquet_write_options o = {.sorting_columns = sort, .sorting_column_count = 2,
                               .metadata_json = "{}", .row_group_rows = rg_rows};
    strbuf whole = {0}, lent = {0};
    char err[256];
    CHECK_EQ_INT(parquet_write(b, &o, &whole, err, sizeof err), 0);
    CHECK_EQ_INT(parquet_write_source(&src, &o, &lent, err, sizeof err), 0);
    CHECK(whole.len > 0 && whole.len == lent.len && memcmp(whole.data, lent.data, whole.len) == 0);
    size_t groups = (b->row_count + rg_rows - 1) / rg_rows;
    CHECK_EQ_INT(cs.loads, (int)(groups * b->column_count)); /* each column once per row group */
    CHECK_EQ_INT(cs.max_live, 1);                            /* never two columns at once */
    CHECK_EQ_INT(cs.live, 0);
    strbuf_free(&whole);
    strbuf_free(&lent);
    query_batch_free(b);
}

static void test_column_source_same_bytes_one_column_at_a_time(void)
{
    source_matches_batch(sample_types(1000), 1000);
    source_matches_batch(sample_types(1000), 300); /* 4 row groups */
    source_matches_batch(sample_wide(5000, true), 2048);
}

static void test_samples(void)
{
    make_samples(getenv("INGOT_PARQUET_SAMPLES"));
}

int main(void)
{
    TEST_RUN(test_varint_zigzag);
    TEST_RUN(test_thrift_struct);
    TEST_RUN(test_rle_hybrid_exact);
    TEST_RUN(test_rle_hybrid_roundtrip);
    TEST_RUN(test_delta_exact);
    TEST_RUN(test_delta_roundtrip);
    TEST_RUN(test_plain_bools);
    TEST_RUN(test_dict);
    TEST_RUN(test_writer_rejects);
    TEST_RUN(test_column_source_same_bytes_one_column_at_a_time);
    const char *dir = getenv("INGOT_PARQUET_SAMPLES");
    if (dir && *dir) {
        TEST_RUN(test_samples);
    }
    TEST_MAIN_END();
}
