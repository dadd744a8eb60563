/*
 * test_arrow_ipc.c: the Arrow IPC stream writer (src/query/arrow_ipc.c).
 *
 * (a) Structural checks with a small independent reader of the stream written here (flatbuffer
 * tables through their vtables): continuation markers, 8-byte aligned metadata lengths and
 * bodies, message order (Schema, per batch the DictionaryBatches then the RecordBatch, EOS),
 * the schema's types, FieldNodes and buffers (aligned, inside the body, matching the bytes of the
 * source batch), rebased string offsets, masked bitmaps, null tag indices, rejected bad batches,
 * and the per-message API (Flight) producing the same bytes as the stream.
 * (b) With INGOT_ARROW_SAMPLES=DIR it also writes sample streams DIR/X.arrows with
 * DIR/X.expected.jsonl (one JSON object per row: null; i64/u64/time as decimal strings; floats
 * as numbers; booleans; strings) and DIR/X.meta.json ({"columns":[{name,type}],"batches":[rows
 * per batch]}) for tests/readers/verify_arrow.mjs, which reads them with apache-arrow and arrow-rs.
 */
#include "query/arrow_ipc.h"
#include "query/flatbuf.h"
#include "util/json.h"

#include "test.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ batches from value rows */

typedef struct tval {
    bool null;
    int64_t i; /* i64, time */
    uint64_t u;
    double f;
    bool b;
    const char *s; /* string, tag */
} tval;

typedef struct col_spec {
    const char *name;
    enum column_type type;
} col_spec;

typedef void (*value_fn)(void *ctx, size_t col, size_t row, tval *out);

typedef struct batch_opts {
    int32_t string_base; /* junk bytes before the first string: offsets start here */
    bool dirty;          /* garbage in null slots, validity bits past row_count, bad null ids */
} batch_opts;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void set_bit(uint8_t *bits, size_t i, bool v)
{
    if (v)
        bits[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

/* Strings of rows into offsets + bytes (base junk bytes first). */
static void build_strings(const char **vals, size_t n, int32_t base, int32_t **offsets,
                          char **bytes)
{
    size_t total = (size_t)base;
    for (size_t i = 0; i < n; i++)
        total += vals[i] ? strlen(vals[i]) : 0;
    *offsets = xcalloc(n + 1, sizeof **offsets);
    *bytes = xcalloc(total + 1, 1);
    memset(*bytes, '#', (size_t)base);
    size_t at = (size_t)base;
    (*offsets)[0] = base;
    for (size_t i = 0; i < n; i++) {
        size_t len = vals[i] ? strlen(vals[i]) : 0;
        memcpy(*bytes + at, vals[i] ? vals[i] : "", len);
        at += len;
        (*offsets)[i + 1] = (int32_t)at;
    }
}

static query_batch *make_batch(const col_spec *cols, size_t ncols, size_t rows, value_fn fn,
                               void *ctx, const batch_opts *o)
{
    batch_opts none = {0};
    if (!o) o = &none;
    query_batch *b = xcalloc(1, sizeof *b);
    b->row_count = rows;
    b->column_count = ncols;
    b->columns = xcalloc(ncols, sizeof *b->columns);
    const char **strs = xcalloc(rows, sizeof *strs);
    for (size_t c = 0; c < ncols; c++) {
        query_column *qc = &b->columns[c];
        qc->name = strdup(cols[c].name);
        qc->type = cols[c].type;
        size_t vbytes = (rows + 7) / 8 + 1;
        uint8_t *validity = xcalloc(vbytes, 1);
        if (o->dirty) memset(validity, 0xff, vbytes);
        bool any_null = false;
        const char **dict = NULL;
        uint32_t dict_count = 0;
        switch (qc->type) {
        case COLUMN_I64:
        case COLUMN_TIME:
            qc->data.i64 = xcalloc(rows, 8);
            break;
        case COLUMN_U64:
            qc->data.u64 = xcalloc(rows, 8);
            break;
        case COLUMN_F64:
            qc->data.f64 = xcalloc(rows, 8);
            break;
        case COLUMN_BOOL:
            qc->data.bits = xcalloc(vbytes, 1);
            if (o->dirty) memset(qc->data.bits, 0xff, vbytes);
            break;
        case COLUMN_TAG:
            qc->data.tag.ids = xcalloc(rows, 4);
            dict = xcalloc(rows, sizeof *dict);
            break;
        default:
            break;
        }
        for (size_t r = 0; r < rows; r++) {
            tval v = {0};
            fn(ctx, c, r, &v);
            set_bit(validity, r, !v.null);
            any_null |= v.null;
            strs[r] = NULL;
            switch (qc->type) {
            case COLUMN_I64:
            case COLUMN_TIME:
                qc->data.i64[r] = v.null ? (o->dirty ? 777 : 0) : v.i;
                break;
            case COLUMN_U64:
                qc->data.u64[r] = v.null ? 0 : v.u;
                break;
            case COLUMN_F64:
                qc->data.f64[r] = v.null ? 0 : v.f;
                break;
            case COLUMN_BOOL:
                if (!v.null || !o->dirty) set_bit(qc->data.bits, r, !v.null && v.b);
                break;
            case COLUMN_STRING:
                strs[r] = v.null ? (o->dirty ? "garbage" : "") : v.s;
                break;
            case COLUMN_TAG: {
                if (v.null) {
                    qc->data.tag.ids[r] = o->dirty ? 12345 : 0;
                    break;
                }
                uint32_t id = 0;
                while (id < dict_count && strcmp(dict[id], v.s) != 0)
                    id++;
                if (id == dict_count) dict[dict_count++] = v.s;
                qc->data.tag.ids[r] = (int32_t)id;
                break;
            }
            }
        }
        if (qc->type == COLUMN_STRING)
            build_strings(strs, rows, o->string_base, &qc->data.str.offsets, &qc->data.str.bytes);
        if (qc->type == COLUMN_TAG) {
            build_strings(dict, dict_count, o->string_base, &qc->data.tag.dict_offsets,
                          &qc->data.tag.dict_bytes);
            qc->data.tag.dict_count = dict_count;
        }
        free(dict);
        if (any_null || o->dirty)
            qc->validity = validity;
        else
            free(validity);
    }
    free(strs);
    return b;
}

/* ------------------------------------------------------------------ a small stream reader */

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static int64_t rd64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Address of field id of a table, NULL when absent. */
static const uint8_t *fb_field(const uint8_t *table, int id)
{
    int32_t soff;
    memcpy(&soff, table, 4);
    const uint8_t *vt = table - soff;
    uint16_t vt_bytes = rd16(vt);
    if (4 + 2 * id >= vt_bytes) return NULL;
    uint16_t off = rd16(vt + 4 + 2 * id);
    return off ? table + off : NULL;
}
static int64_t fb_int(const uint8_t *table, int id, int size, int64_t dflt)
{
    const uint8_t *p = fb_field(table, id);
    if (!p) return dflt;
    switch (size) {
    case 1:
        return p[0];
    case 2:
        return (int16_t)rd16(p);
    case 4:
        return (int32_t)rd32(p);
    default:
        return rd64(p);
    }
}
static const uint8_t *fb_ref(const uint8_t *table, int id)
{
    const uint8_t *p = fb_field(table, id);
    return p ? p + rd32(p) : NULL;
}
static bool fb_str_eq(const uint8_t *s, const char *want)
{
    return s && rd32(s) == strlen(want) && !memcmp(s + 4, want, strlen(want)) &&
           s[4 + rd32(s)] == 0;
}

typedef struct ipc_msg {
    int type;              /* MessageHeader: 1 schema, 2 dictionary, 3 record batch */
    const uint8_t *header; /* the header table */
    const uint8_t *meta;   /* the flatbuffer */
    size_t meta_len;
    const uint8_t *body;
    int64_t body_length;
} ipc_msg;

/*
 * Split a stream into messages, checking the framing; returns the message count, -1 on a
 * framing error (reported through CHECK), and requires the EOS marker to end the stream exactly.
 */
static int read_stream(const uint8_t *s, size_t len, ipc_msg *out, int max)
{
    size_t at = 0;
    int n = 0;
    for (;;) {
        if (at + 8 > len) {
            CHECK(!"stream ends without EOS");
            return -1;
        }
        if (rd32(s + at) != 0xFFFFFFFFu) {
            CHECK(!"missing continuation marker");
            return -1;
        }
        uint32_t meta_len = rd32(s + at + 4);
        if (meta_len == 0) {
            CHECK_EQ_INT(at + 8, len);
            return n;
        }
        CHECK_EQ_INT(meta_len % 8, 0);
        CHECK_EQ_INT((at + 8 + meta_len) % 8, 0);
        if (at + 8 + meta_len > len || n == max) {
            CHECK(!"message past the end");
            return -1;
        }
        ipc_msg *m = &out[n++];
        m->meta = s + at + 8;
        m->meta_len = meta_len;
        const uint8_t *root = m->meta + rd32(m->meta);
        CHECK_EQ_INT(fb_int(root, 0, 2, -1), 4); /* V5 */
        m->type = (int)fb_int(root, 1, 1, 0);
        m->header = fb_ref(root, 2);
        CHECK(m->header != NULL);
        m->body_length = fb_int(root, 3, 8, 0);
        CHECK_EQ_INT(m->body_length % 8, 0);
        m->body = s + at + 8 + meta_len;
        at += 8 + meta_len + (size_t)m->body_length;
        if (at > len) {
            CHECK(!"body past the end");
            return -1;
        }
    }
}

typedef struct rb_view {
    int64_t length;
    size_t node_count;
    const uint8_t *nodes; /* {length, null_count} x node_count */
    size_t buffer_count;
    const uint8_t *buffers; /* {offset, length} x buffer_count */
    const uint8_t *body;
} rb_view;

/* A RecordBatch table; checks the buffers lie 8-aligned, in order, inside the body. */
static void rb_open(const uint8_t *rb, const ipc_msg *m, rb_view *v)
{
    v->length = fb_int(rb, 0, 8, -1);
    const uint8_t *nodes = fb_ref(rb, 1);
    const uint8_t *bufs = fb_ref(rb, 2);
    CHECK(nodes && bufs);
    v->node_count = rd32(nodes);
    v->nodes = nodes + 4;
    v->buffer_count = rd32(bufs);
    v->buffers = bufs + 4;
    CHECK_EQ_INT(((uintptr_t)v->nodes - (uintptr_t)m->meta) % 8, 0);
    CHECK_EQ_INT(((uintptr_t)v->buffers - (uintptr_t)m->meta) % 8, 0);
    v->body = m->body;
    int64_t end = 0;
    for (size_t i = 0; i < v->buffer_count; i++) {
        int64_t off = rd64(v->buffers + 16 * i), blen = rd64(v->buffers + 16 * i + 8);
        CHECK_EQ_INT(off % 8, 0);
        CHECK(off >= end);
        CHECK(off + blen <= m->body_length);
        end = off + blen;
    }
}
static const uint8_t *rb_buffer(const rb_view *v, size_t i, int64_t *len)
{
    *len = rd64(v->buffers + 16 * i + 8);
    return v->body + rd64(v->buffers + 16 * i);
}

/* ------------------------------------------------------------------ sample data */

static const col_spec all_cols[] = {
    {"time", COLUMN_TIME}, {"host", COLUMN_TAG}, {"region", COLUMN_TAG}, {"i", COLUMN_I64},
    {"u", COLUMN_U64},     {"f", COLUMN_F64},    {"b", COLUMN_BOOL},     {"s", COLUMN_STRING},
};
#define ALL_COLS (sizeof all_cols / sizeof all_cols[0])

static const char *const words[] = {"",        "a",         "héllo wörld",        "日本語",
                                    "emoji 🚀", "tab\there", "quote\"back\\slash", "line\nbreak",
                                    "x"};
#define WORD_COUNT (sizeof words / sizeof words[0])

/* ctx: batch number (int *). Every nullable column has nulls, on different rows. */
static void all_values(void *ctx, size_t col, size_t row, tval *v)
{
    int batch = *(int *)ctx;
    uint64_t k = (uint64_t)row * 7 + (uint64_t)batch * 13;
    v->null = col != 0 && (row + col + (size_t)batch) % 5 == 0;
    switch (col) {
    case 0:
        v->i = (int64_t)row * 1000000007 - (batch == 0 ? 5000000000000000000LL : 0) +
               (int64_t)batch * 86400000000000LL;
        break;
    case 1:
        v->s = (const char *[]){"host-a", "host-b", "", "höst-ü"}[(row + (size_t)batch) % 4];
        break;
    case 2:
        v->s = batch % 2 ? (const char *[]){"us-west", "eu"}[row % 2]
                         : (const char *[]){"eu", "ap-日本", "us-east"}[row % 3];
        break;
    case 3:
        v->i = row % 3 == 0   ? INT64_MIN + (int64_t)row
               : row % 3 == 1 ? INT64_MAX - (int64_t)k
                              : -(int64_t)k;
        break;
    case 4:
        v->u = row % 2 ? UINT64_MAX - k : (1ULL << 63) + k;
        break;
    case 5:
        v->f = row % 4 == 0 ? -0.0 : row % 4 == 1 ? 1e308 / (double)(k + 1) : (double)k / 3.0 - 7.5;
        break;
    case 6:
        v->b = (row * 3 + (size_t)batch) % 2 == 1;
        break;
    case 7:
        v->s = words[k % WORD_COUNT];
        break;
    }
}

/* ------------------------------------------------------------------ tests */

static strbuf write_stream(query_batch **batches, size_t n)
{
    strbuf out = {0};
    arrow_ipc_writer *w = NULL;
    CHECK_EQ_INT(arrow_ipc_writer_new(batches[0], &w), 0);
    if (!w) return out;
    CHECK_EQ_INT(arrow_ipc_write_schema(w, &out), 0);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(arrow_ipc_write_batch(w, batches[i], &out), 0);
    arrow_ipc_write_end(&out);
    arrow_ipc_writer_free(w);
    CHECK(!strbuf_failed(&out));
    return out;
}

static void test_schema(void)
{
    int batch = 0;
    query_batch *b = make_batch(all_cols, ALL_COLS, 3, all_values, &batch, NULL);
    strbuf out = write_stream(&b, 1);
    ipc_msg m[8];
    int n = read_stream((const uint8_t *)out.data, out.len, m, 8);
    CHECK_EQ_INT(n, 4); /* schema, 2 dictionaries, record batch */
    if (n < 1) goto done;
    CHECK_EQ_INT(m[0].type, 1);
    CHECK_EQ_INT(m[0].body_length, 0);
    const uint8_t *schema = m[0].header;
    CHECK_EQ_INT(fb_int(schema, 0, 2, 0), 0); /* little-endian */
    const uint8_t *fields = fb_ref(schema, 1);
    CHECK_EQ_INT(rd32(fields), ALL_COLS);
    /* type_type per column and its parameters */
    static const int want_type[] = {10, 5, 5, 2, 2, 3, 6, 5};
    for (size_t i = 0; i < ALL_COLS && i < rd32(fields); i++) {
        const uint8_t *slot = fields + 4 + 4 * i;
        const uint8_t *f = slot + rd32(slot);
        CHECK(fb_str_eq(fb_ref(f, 0), all_cols[i].name));
        CHECK_EQ_INT(fb_int(f, 1, 1, 0), i != 0); /* nullable except time */
        CHECK_EQ_INT(fb_int(f, 2, 1, 0), want_type[i]);
        const uint8_t *t = fb_ref(f, 3);
        CHECK(t != NULL);
        const uint8_t *children = fb_ref(f, 5);
        CHECK(children && rd32(children) == 0);
        const uint8_t *dict = fb_ref(f, 4);
        CHECK_EQ_INT(dict != NULL, all_cols[i].type == COLUMN_TAG);
        if (!t) continue;
        switch (all_cols[i].type) {
        case COLUMN_TIME:
            CHECK_EQ_INT(fb_int(t, 0, 2, -1), 3); /* NANOSECOND */
            CHECK(fb_str_eq(fb_ref(t, 1), "UTC"));
            break;
        case COLUMN_I64:
        case COLUMN_U64:
            CHECK_EQ_INT(fb_int(t, 0, 4, 0), 64);
            CHECK_EQ_INT(fb_int(t, 1, 1, 0), all_cols[i].type == COLUMN_I64);
            break;
        case COLUMN_F64:
            CHECK_EQ_INT(fb_int(t, 0, 2, 0), 2); /* DOUBLE */
            break;
        case COLUMN_TAG:
            if (!dict) break;
            CHECK_EQ_INT(fb_int(dict, 0, 8, -1), (int64_t)i);
            CHECK_EQ_INT(fb_int(dict, 2, 1, 0), 0);
            const uint8_t *it = fb_ref(dict, 1);
            CHECK(it && fb_int(it, 0, 4, 0) == 32 && fb_int(it, 1, 1, 0) == 1);
            break;
        default:
            break;
        }
    }
done:
    strbuf_free(&out);
    query_batch_free(b);
}

static void test_stream_structure(void)
{
    int n0 = 0, n1 = 1, n2 = 2;
    query_batch *b[3] = {
        make_batch(all_cols, ALL_COLS, 10, all_values, &n0, NULL),
        make_batch(all_cols, ALL_COLS, 0, all_values, &n1, NULL),
        make_batch(all_cols, ALL_COLS, 37, all_values, &n2, NULL),
    };
    strbuf out = write_stream(b, 3);
    ipc_msg m[16];
    int n = read_stream((const uint8_t *)out.data, out.len, m, 16);
    CHECK_EQ_INT(n, 10);
    static const int want[] = {1, 2, 2, 3, 2, 2, 3, 2, 2, 3};
    for (int i = 0; i < n && i < 10; i++) {
        CHECK_EQ_INT(m[i].type, want[i]);
        if (m[i].type == 1) continue;
        const uint8_t *rb = m[i].header;
        if (m[i].type == 2) {
            CHECK_EQ_INT(fb_int(rb, 0, 8, -1), i % 3 == 1 ? 1 : 2); /* id = column index */
            CHECK_EQ_INT(fb_int(rb, 2, 1, 0), 0);                   /* not a delta */
            rb = fb_ref(rb, 1);
        }
        rb_view v;
        rb_open(rb, &m[i], &v);
        size_t bi = (size_t)(i - 1) / 3;
        if (m[i].type == 3) {
            CHECK_EQ_INT(v.length, b[bi]->row_count);
            CHECK_EQ_INT(v.node_count, ALL_COLS);
            CHECK_EQ_INT(v.buffer_count, 2 * ALL_COLS + 1); /* string: 3 */
            for (size_t c = 0; c < v.node_count; c++) {
                CHECK_EQ_INT(rd64(v.nodes + 16 * c), b[bi]->row_count);
            }
        } else {
            const query_column *qc = &b[bi]->columns[i % 3 == 1 ? 1 : 2];
            CHECK_EQ_INT(v.length, qc->data.tag.dict_count);
            CHECK_EQ_INT(v.node_count, 1);
            CHECK_EQ_INT(v.buffer_count, 3);
        }
    }
    /* Last message's end + EOS == stream end (read_stream checks the EOS position). */
    CHECK(out.len >= 8 && rd32((const uint8_t *)out.data + out.len - 8) == 0xFFFFFFFFu &&
          rd32((const uint8_t *)out.data + out.len - 4) == 0);
    strbuf_free(&out);
    for (int i = 0; i < 3; i++)
        query_batch_free(b[i]);
}

/* Every buffer of a dirty batch (junk before strings, garbage in null slots) decodes right. */
/*
 * Check record batch message m against rows [first, first + rows) of b, made by all_values with
 * batch number ctx: null counts, validity masked past the rows, every value, string offsets from 0.
 */
static void check_values(const query_batch *b, int ctx, size_t first, size_t rows, const ipc_msg *m)
{
    rb_view v;
    rb_open(m->header, m, &v);
    size_t buf = 0;
    for (size_t c = 0; c < ALL_COLS; c++) {
        const query_column *qc = &b->columns[c];
        int64_t nulls = 0;
        for (size_t r = 0; r < rows; r++) {
            tval t = {0};
            all_values(&ctx, c, first + r, &t);
            nulls += t.null;
        }
        CHECK_EQ_INT(rd64(v.nodes + 16 * c + 8), nulls);
        int64_t vlen;
        const uint8_t *validity = rb_buffer(&v, buf++, &vlen);
        CHECK_EQ_INT(vlen, nulls ? (int64_t)(rows + 7) / 8 : 0);
        if (vlen && rows % 8) CHECK_EQ_INT(validity[vlen - 1] >> (rows % 8), 0); /* masked */
        int64_t len;
        const uint8_t *data = rb_buffer(&v, buf++, &len);
        for (size_t r = 0; r < rows; r++) {
            tval t = {0};
            all_values(&ctx, c, first + r, &t);
            bool valid = !vlen || ((validity[r / 8] >> (r % 8)) & 1);
            CHECK_EQ_INT(valid, !t.null);
            if (t.null) {
                if (qc->type == COLUMN_TAG) CHECK_EQ_INT(rd32(data + 4 * r), 0);
                continue;
            }
            switch (qc->type) {
            case COLUMN_TIME:
            case COLUMN_I64:
                CHECK_EQ_INT(rd64(data + 8 * r), t.i);
                break;
            case COLUMN_U64:
                CHECK((uint64_t)rd64(data + 8 * r) == t.u);
                break;
            case COLUMN_F64: {
                double d;
                memcpy(&d, data + 8 * r, 8);
                CHECK(d == t.f && signbit(d) == signbit(t.f));
                break;
            }
            case COLUMN_BOOL:
                CHECK_EQ_INT((data[r / 8] >> (r % 8)) & 1, t.b);
                break;
            case COLUMN_TAG: {
                int32_t id = (int32_t)rd32(data + 4 * r);
                CHECK_EQ_INT(id, qc->data.tag.ids[first + r]);
                break;
            }
            case COLUMN_STRING: {
                const int32_t *off = (const int32_t *)data;
                int64_t blen;
                const uint8_t *bytes = rb_buffer(&v, buf, &blen);
                CHECK_EQ_INT(off[0], 0);
                CHECK_EQ_INT(off[r + 1] - off[r], strlen(t.s));
                CHECK(!memcmp(bytes + off[r], t.s, strlen(t.s)));
                break;
            }
            }
        }
        if (qc->type == COLUMN_BOOL && rows % 8) CHECK_EQ_INT(data[len - 1] >> (rows % 8), 0);
        if (qc->type == COLUMN_STRING) buf++;
    }
}

static void test_values(void)
{
    int n0 = 3;
    batch_opts o = {.string_base = 5, .dirty = true};
    const size_t rows = 21;
    query_batch *b = make_batch(all_cols, ALL_COLS, rows, all_values, &n0, &o);
    strbuf out = write_stream(&b, 1);
    ipc_msg m[8];
    int n = read_stream((const uint8_t *)out.data, out.len, m, 8);
    CHECK_EQ_INT(n, 4);
    if (n != 4) goto done;
    /* dictionary of `host`: offsets from 0, bytes as the source */
    {
        rb_view v;
        rb_open(fb_ref(m[1].header, 1), &m[1], &v);
        const query_column *qc = &b->columns[1];
        int64_t len;
        rb_buffer(&v, 0, &len);
        CHECK_EQ_INT(len, 0);
        const int32_t *off = (const int32_t *)rb_buffer(&v, 1, &len);
        CHECK_EQ_INT(len, 4 * (qc->data.tag.dict_count + 1));
        const uint8_t *bytes = rb_buffer(&v, 2, &len);
        CHECK_EQ_INT(off[0], 0);
        for (uint32_t d = 0; d < qc->data.tag.dict_count; d++) {
            int32_t s = qc->data.tag.dict_offsets[d], e = qc->data.tag.dict_offsets[d + 1];
            CHECK_EQ_INT(off[d + 1] - off[d], e - s);
            CHECK(!memcmp(bytes + off[d], qc->data.tag.dict_bytes + s, (size_t)(e - s)));
        }
    }
    check_values(b, n0, 0, rows, &m[3]);
done:
    strbuf_free(&out);
    query_batch_free(b);
}

/* query_batch_slice views encode as the rows they cover (Flight sends big batches in slices). */
static void test_slices(void)
{
    int n0 = 2;
    batch_opts o = {.string_base = 3, .dirty = true};
    const size_t rows = 37;
    query_batch *b = make_batch(all_cols, ALL_COLS, rows, all_values, &n0, &o);
    const size_t cuts[][2] = {{0, 8}, {8, 16}, {24, 13}, {32, 5}, {16, 0}};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        query_column cols[ALL_COLS];
        query_batch view, *vp = &view;
        query_batch_slice(b, cuts[k][0], cuts[k][1], &view, cols);
        CHECK_EQ_INT(view.row_count, cuts[k][1]);
        strbuf out = write_stream(&vp, 1);
        ipc_msg m[8];
        int n = read_stream((const uint8_t *)out.data, out.len, m, 8);
        CHECK_EQ_INT(n, 4);
        if (n == 4) check_values(b, n0, cuts[k][0], cuts[k][1], &m[3]);
        strbuf_free(&out);
    }
    query_batch_free(b);
}

static void test_invalid_batches(void)
{
    int n0 = 0;
    query_batch *b = make_batch(all_cols, ALL_COLS, 6, all_values, &n0, NULL);
    arrow_ipc_writer *w = NULL;
    CHECK_EQ_INT(arrow_ipc_writer_new(b, &w), 0);
    if (!w) goto done;
    strbuf out = {0};
    strbuf_puts(&out, "prefix");
    /* fewer columns */
    b->column_count--;
    CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &out), INGOT_E_INVALID);
    b->column_count++;
    /* a renamed column */
    b->columns[4].name[0] = 'X';
    CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &out), INGOT_E_INVALID);
    b->columns[4].name[0] = 'u';
    /* a tag id past its dictionary (after the dictionaries were planned: output rolled back) */
    int32_t *ids = b->columns[2].data.tag.ids;
    int32_t saved = ids[1];
    ids[1] = (int32_t)b->columns[2].data.tag.dict_count;
    CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &out), INGOT_E_INVALID);
    ids[1] = saved;
    /* decreasing string offsets */
    int32_t *off = b->columns[7].data.str.offsets;
    int32_t so = off[3];
    off[3] = off[2] - 1;
    CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &out), INGOT_E_INVALID);
    off[3] = so;
    /* a null time */
    b->columns[0].validity = xcalloc(1, 1);
    CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &out), INGOT_E_INVALID);
    free(b->columns[0].validity);
    b->columns[0].validity = NULL;
    CHECK_EQ_INT(out.len, 6);
    CHECK_EQ_STR(out.data, "prefix");
    CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &out), 0);
    CHECK(out.len > 6);
    strbuf_free(&out);
    arrow_ipc_writer_free(w);
    /* an unknown column type */
    b->columns[3].type = 99;
    CHECK_EQ_INT(arrow_ipc_writer_new(b, &w), INGOT_E_INVALID);
    CHECK(w == NULL);
    b->columns[3].type = COLUMN_I64;
done:
    query_batch_free(b);
}

/* The per-message API (Flight) gives the stream's bytes, message by message. */
static void test_messages_match_stream(void)
{
    int n1 = 1;
    query_batch *b = make_batch(all_cols, ALL_COLS, 9, all_values, &n1, NULL);
    strbuf stream = write_stream(&b, 1);
    arrow_ipc_writer *w = NULL;
    CHECK_EQ_INT(arrow_ipc_writer_new(b, &w), 0);
    if (!w) goto done;
    CHECK_EQ_INT(arrow_ipc_batch_message_count(w), 3);
    strbuf header = {0}, body = {0}, framed = {0};
    CHECK_EQ_INT(arrow_ipc_schema_message(w, &header), 0);
    CHECK_EQ_INT(header.len % 8, 0);
    arrow_ipc_frame(&framed, header.data, header.len, NULL, 0);
    for (size_t i = 0; i < arrow_ipc_batch_message_count(w); i++) {
        strbuf_reset(&body);
        CHECK_EQ_INT(arrow_ipc_batch_message(w, b, i, &header, &body), 0);
        CHECK_EQ_INT(header.len % 8, 0);
        CHECK_EQ_INT(body.len % 8, 0);
        arrow_ipc_frame(&framed, header.data, header.len, body.data, body.len);
    }
    CHECK_EQ_INT(arrow_ipc_batch_message(w, b, 3, &header, &body), INGOT_E_INVALID);
    arrow_ipc_write_end(&framed);
    CHECK_EQ_INT(framed.len, stream.len);
    CHECK(framed.len == stream.len && !memcmp(framed.data, stream.data, stream.len));
    strbuf_free(&header);
    strbuf_free(&body);
    strbuf_free(&framed);
    arrow_ipc_writer_free(w);
done:
    strbuf_free(&stream);
    query_batch_free(b);
}

/* flatbuf.c on its own: vtable layout, alignment, forward offsets. */
static void test_flatbuf(void)
{
    strbuf b = {0};
    flatbuf_begin(&b);
    flatbuf_field f[] = {
        {.id = 2, .size = 1, .value = 7},
        {.id = 0, .size = 8, .value = 0x0102030405060708ULL},
        {.id = 3, .is_offset = true},
        {.id = 1, .size = 2, .value = 0xBEEF},
    };
    size_t t = flatbuf_table(&b, f, 4);
    size_t s = flatbuf_string(&b, "abc", 3);
    flatbuf_patch(&b, f[2].slot, s);
    int64_t pairs[2] = {5, 6};
    size_t v = flatbuf_vector(&b, pairs, 16, 1, 8);
    flatbuf_string(&b, "tail", 4); /* ends 4 mod 8: finish must pad */
    flatbuf_finish(&b, t);
    CHECK(!strbuf_failed(&b));
    CHECK_EQ_INT(b.len % 8, 0);
    CHECK_EQ_INT((v + 4) % 8, 0);
    CHECK_EQ_INT(f[1].slot % 8, 0);
    const uint8_t *base = (const uint8_t *)b.data;
    const uint8_t *root = base + rd32(base);
    CHECK(root == base + t);
    CHECK((uint64_t)fb_int(root, 0, 8, 0) == 0x0102030405060708ULL);
    CHECK_EQ_INT((uint16_t)fb_int(root, 1, 2, 0), 0xBEEF);
    CHECK_EQ_INT(fb_int(root, 2, 1, 0), 7);
    CHECK(fb_str_eq(fb_ref(root, 3), "abc"));
    CHECK(fb_field(root, 4) == NULL);
    CHECK_EQ_INT(rd64(base + v + 4), 5);
    strbuf_free(&b);
}

/* ------------------------------------------------------------------ samples for verify_arrow.mjs
 */

static void put_expected(strbuf *e, const col_spec *cols, size_t ncols, size_t rows, value_fn fn,
                         void *ctx)
{
    for (size_t r = 0; r < rows; r++) {
        strbuf_putc(e, '{');
        for (size_t c = 0; c < ncols; c++) {
            if (c) strbuf_putc(e, ',');
            json_put_string(e, cols[c].name, strlen(cols[c].name));
            strbuf_putc(e, ':');
            tval v = {0};
            fn(ctx, c, r, &v);
            if (v.null) {
                strbuf_puts(e, "null");
                continue;
            }
            switch (cols[c].type) {
            case COLUMN_TIME:
            case COLUMN_I64:
                strbuf_printf(e, "\"%" PRId64 "\"", v.i);
                break;
            case COLUMN_U64:
                strbuf_printf(e, "\"%" PRIu64 "\"", v.u);
                break;
            case COLUMN_F64:
                strbuf_printf(e, "%.17g", v.f);
                break;
            case COLUMN_BOOL:
                strbuf_puts(e, v.b ? "true" : "false");
                break;
            default:
                json_put_string(e, v.s, strlen(v.s));
                break;
            }
        }
        strbuf_puts(e, "}\n");
    }
}

static int write_file(const char *dir, const char *name, const char *ext, const strbuf *s)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = s->len ? fwrite(s->data, 1, s->len, f) : 0;
    return (fclose(f) == 0 && n == s->len) ? 0 : -1;
}

/* One sample: batch i has rows[i] rows of fn(ctx = &i) values. */
static void sample(const char *dir, const char *name, const col_spec *cols, size_t ncols,
                   const size_t *rows, int batches, value_fn fn, const batch_opts *o)
{
    strbuf stream = {0}, expected = {0}, meta = {0};
    arrow_ipc_writer *w = NULL;
    strbuf_puts(&meta, "{\"columns\":[");
    for (size_t c = 0; c < ncols; c++) {
        strbuf_printf(&meta, "%s{\"name\":", c ? "," : "");
        json_put_string(&meta, cols[c].name, strlen(cols[c].name));
        strbuf_printf(&meta, ",\"type\":\"%s\"}", column_type_name(cols[c].type));
    }
    strbuf_puts(&meta, "],\"batches\":[");
    for (int i = 0; i < batches; i++) {
        query_batch *b = make_batch(cols, ncols, rows[i], fn, &i, o);
        if (i == 0) {
            CHECK_EQ_INT(arrow_ipc_writer_new(b, &w), 0);
            if (w) CHECK_EQ_INT(arrow_ipc_write_schema(w, &stream), 0);
        }
        if (w) CHECK_EQ_INT(arrow_ipc_write_batch(w, b, &stream), 0);
        put_expected(&expected, cols, ncols, rows[i], fn, &i);
        strbuf_printf(&meta, "%s%zu", i ? "," : "", rows[i]);
        query_batch_free(b);
    }
    strbuf_puts(&meta, "]}\n");
    arrow_ipc_write_end(&stream);
    CHECK(!strbuf_failed(&stream) && !strbuf_failed(&expected) && !strbuf_failed(&meta));
    CHECK_EQ_INT(write_file(dir, name, ".arrows", &stream), 0);
    CHECK_EQ_INT(write_file(dir, name, ".expected.jsonl", &expected), 0);
    CHECK_EQ_INT(write_file(dir, name, ".meta.json", &meta), 0);
    arrow_ipc_writer_free(w);
    strbuf_free(&stream);
    strbuf_free(&expected);
    strbuf_free(&meta);
}

/* 100,000 rows: 50 hosts, values from a xorshift generator seeded by the row. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}
static void large_values(void *ctx, size_t col, size_t row, tval *v)
{
    (void)ctx;
    static char names[50][24];
    static char strs[64][32];
    if (!names[0][0]) {
        for (int i = 0; i < 50; i++)
            snprintf(names[i], sizeof names[i], "host-%02d", i);
        for (int i = 0; i < 64; i++)
            snprintf(strs[i], sizeof strs[i], "value %d ✓", i * 31);
    }
    uint64_t h = mix(row * 8 + col + 1);
    v->null = col != 0 && h % 17 == 0;
    switch (col) {
    case 0:
        v->i = 1700000000000000000LL + (int64_t)row * 1000;
        break;
    case 1:
        v->s = names[h % 50];
        break;
    case 2:
        v->i = (int64_t)h;
        break;
    case 3:
        v->u = h;
        break;
    case 4:
        v->f = (double)(int64_t)(h >> 11) / 1024.0;
        break;
    case 5:
        v->b = h & 1;
        break;
    case 6:
        v->s = strs[h % 64];
        break;
    }
}

/* Only tags, one of them null on every row (an empty dictionary). */
static void tag_values(void *ctx, size_t col, size_t row, tval *v)
{
    int batch = *(int *)ctx;
    if (col == 0) {
        v->i = -(int64_t)row - 1;
        return;
    }
    v->null = col == 2 || (col == 1 && row % 2 == (size_t)batch % 2);
    v->s = (const char *[]){"z", "y", "x", "w"}[(row + (size_t)batch) % 4];
}

static void make_samples(const char *dir)
{
    if (!dir) return;
    size_t all_rows[] = {12, 0, 25, 1, 9};
    sample(dir, "all_types", all_cols, ALL_COLS, all_rows, 5, all_values, NULL);
    batch_opts dirty = {.string_base = 3, .dirty = true};
    sample(dir, "dirty_source", all_cols, ALL_COLS, all_rows, 5, all_values, &dirty);
    size_t zero[] = {0};
    sample(dir, "zero_rows", all_cols, ALL_COLS, zero, 1, all_values, NULL);
    static const col_spec large_cols[] = {
        {"time", COLUMN_TIME}, {"host", COLUMN_TAG}, {"i", COLUMN_I64},    {"u", COLUMN_U64},
        {"f", COLUMN_F64},     {"b", COLUMN_BOOL},   {"s", COLUMN_STRING},
    };
    size_t large_rows[] = {100000};
    sample(dir, "large", large_cols, 7, large_rows, 1, large_values, NULL);
    static const col_spec tag_cols[] = {
        {"time", COLUMN_TIME}, {"t1", COLUMN_TAG}, {"t2", COLUMN_TAG}};
    size_t tag_rows[] = {7, 4};
    sample(dir, "tags_only", tag_cols, 3, tag_rows, 2, tag_values, NULL);
    static const col_spec time_cols[] = {{"time", COLUMN_TIME}};
    size_t time_rows[] = {3, 0, 2};
    sample(dir, "time_only", time_cols, 1, time_rows, 3, tag_values, NULL);
}

static void test_samples(void)
{
    make_samples(getenv("INGOT_ARROW_SAMPLES"));
}

int main(void)
{
    TEST_RUN(test_flatbuf);
    TEST_RUN(test_schema);
    TEST_RUN(test_stream_structure);
    TEST_RUN(test_values);
    TEST_RUN(test_slices);
    TEST_RUN(test_invalid_batches);
    TEST_RUN(test_messages_match_stream);
    TEST_RUN(test_samples);
    TEST_MAIN_END();
}
