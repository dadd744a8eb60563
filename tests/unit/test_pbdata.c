/*
 * test_pbdata.c: unit tests of the gRPC write request decoder (src/dml/pbdata.c).
 *
 * protobuf-c is the reference encoder: messages are built with its generated structs, packed,
 * and decoded with pbdata; a reference walk over the same structs (check_rows) says what every
 * line, tag and field must be. Shapes protobuf-c never produces (unpacked or split arrays,
 * merged sub-messages, unknown fields, malformed bytes) are written by hand with the small
 * wire writer below. Every refusal of pbdata.h is checked with the words of its message.
 */
#include "dml/pbdata.h"

#include "ingot/write/v1/write.pb-c.h"
#include "test.h"
#include "util/error.h"

#include <math.h>
#include <stdbool.h>

typedef Ingot__Write__V1__DatabaseBatch pb_db;
typedef Ingot__Write__V1__TableBatch pb_tb;
typedef Ingot__Write__V1__Column pb_col;
typedef Ingot__Write__V1__Values pb_vals;
typedef Ingot__Write__V1__WriteRequest pb_req;

#define SEM_UNSPEC 0
#define SEM_TAG 2
#define SEM_FIELD 3
#define SEM_TIME 4

static lp_batch batch;
static char err[512];

/* ---------------------------------------------------------------------------------------------
 * Allocation pool: everything a test builds is freed by pool_free().
 */

static void **pool;
static size_t pool_n, pool_cap;

static void *talloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) abort();
    if (pool_n == pool_cap) {
        pool_cap = pool_cap ? pool_cap * 2 : 256;
        pool = realloc(pool, pool_cap * sizeof *pool);
        if (!pool) abort();
    }
    pool[pool_n++] = p;
    return p;
}

static void pool_free(void)
{
    for (size_t i = 0; i < pool_n; i++)
        free(pool[i]);
    pool_n = 0;
}

static char *tstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = talloc(n + 1);
    memcpy(p, s, n);
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Building messages with protobuf-c
 */

static pb_db *db_new(void)
{
    pb_db *db = talloc(sizeof *db);
    ingot__write__v1__database_batch__init(db);
    db->table_batches = talloc(16 * sizeof *db->table_batches);
    return db;
}

static pb_tb *tb_new(pb_db *db, const char *name, uint32_t rows)
{
    pb_tb *tb = talloc(sizeof *tb);
    ingot__write__v1__table_batch__init(tb);
    tb->table_name = tstrdup(name);
    tb->row_count = rows;
    tb->columns = talloc(64 * sizeof *tb->columns);
    db->table_batches[db->n_table_batches++] = tb;
    return tb;
}

static pb_col *col_new(pb_tb *tb, const char *name, int sem)
{
    pb_col *c = talloc(sizeof *c);
    ingot__write__v1__column__init(c);
    c->column_name = tstrdup(name);
    c->semantic_type = (Ingot__Write__V1__SemanticType)sem;
    c->values = talloc(sizeof *c->values);
    ingot__write__v1__values__init(c->values);
    tb->columns[tb->n_columns++] = c;
    return c;
}

static void col_i64(pb_col *c, size_t n, const int64_t *v)
{
    c->values->i64_values = talloc(n * sizeof *v);
    if (n) memcpy(c->values->i64_values, v, n * sizeof *v);
    c->values->n_i64_values = n;
}

static void col_u64(pb_col *c, size_t n, const uint64_t *v)
{
    c->values->u64_values = talloc(n * sizeof *v);
    if (n) memcpy(c->values->u64_values, v, n * sizeof *v);
    c->values->n_u64_values = n;
}

static void col_f64(pb_col *c, size_t n, const double *v)
{
    c->values->f64_values = talloc(n * sizeof *v);
    if (n) memcpy(c->values->f64_values, v, n * sizeof *v);
    c->values->n_f64_values = n;
}

static void col_bool(pb_col *c, size_t n, const int *v)
{
    c->values->bool_values = talloc(n * sizeof *c->values->bool_values);
    for (size_t i = 0; i < n; i++)
        c->values->bool_values[i] = v[i] != 0;
    c->values->n_bool_values = n;
}

static void col_str(pb_col *c, size_t n, const char *const *v)
{
    c->values->string_values = talloc(n * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c->values->string_values[i] = tstrdup(v[i]);
    c->values->n_string_values = n;
}

/* Null mask from a pattern: one char per row, '1' = null. */
static void col_mask(pb_col *c, const char *pattern)
{
    size_t rows = strlen(pattern);
    uint8_t *m = talloc((rows + 7) / 8);
    for (size_t i = 0; i < rows; i++)
        if (pattern[i] == '1') m[i / 8] |= (uint8_t)(1u << (i % 8));
    c->null_mask.data = m;
    c->null_mask.len = (rows + 7) / 8;
}

static bool col_is_null(const pb_col *c, uint32_t r)
{
    return c->null_mask.len && (c->null_mask.data[r / 8] >> (r % 8)) & 1;
}

static pb_col *time_col(pb_tb *tb, size_t n, const int64_t *t)
{
    pb_col *c = col_new(tb, "time", SEM_TIME);
    col_i64(c, n, t);
    return c;
}

/* Packs into an exact-size heap buffer (so ASan sees any read past the end). */
static uint8_t *pack_db(const pb_db *db, size_t *len)
{
    *len = ingot__write__v1__database_batch__get_packed_size(db);
    uint8_t *buf = talloc(*len);
    CHECK_EQ_INT(ingot__write__v1__database_batch__pack(db, buf), *len);
    return buf;
}

static uint8_t *pack_req(const pb_req *rq, size_t *len)
{
    *len = ingot__write__v1__write_request__get_packed_size(rq);
    uint8_t *buf = talloc(*len);
    CHECK_EQ_INT(ingot__write__v1__write_request__pack(rq, buf), *len);
    return buf;
}

static int dec(const uint8_t *msg, size_t len, enum lp_precision prec)
{
    lp_batch_reset(&batch);
    memset(err, 0, sizeof err);
    return pbdata_decode_batch(msg, len, prec, &batch, err, sizeof err);
}

/* ---------------------------------------------------------------------------------------------
 * The reference: what pbdata must produce for a protobuf-c DatabaseBatch
 */

static int64_t prec_mult(enum lp_precision p)
{
    return p == LP_PRECISION_US   ? 1000
           : p == LP_PRECISION_MS ? 1000000
           : p == LP_PRECISION_S  ? 1000000000
                                  : 1;
}

#define FK(i) lp_field_key(&f[i]) /* the key of field f[i] */

/* s (a string of the global batch) equals c, without escapes. */
static int str_eq(lp_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(lp_str_ptr(&batch, s), c, s.len) == 0 && s.escaped == 0;
}

static int inside(const void *p, size_t n, const uint8_t *msg, size_t len)
{
    const uint8_t *q = p;
    return n == 0 || (q >= msg && q + n <= msg + len);
}

/* The values array a FIELD column uses (5 = bool ... as in pbdata), 0 when empty. */
static int col_array(const pb_col *c)
{
    const pb_vals *v = c->values;
    if (!v) return 0;
    if (v->n_i64_values) return 1;
    if (v->n_f64_values) return 2;
    if (v->n_u64_values) return 3;
    if (v->n_string_values) return 4;
    if (v->n_bool_values) return 5;
    return 0;
}

/*
 * Checks the decoded global batch against db field by field: one line per row, tags and fields
 * of the non-null columns in column order, types, values (doubles bit for bit), times scaled,
 * line numbers, strings pointing into msg and unescaped, columns unresolved.
 */
static void check_rows(const pb_db *db, enum lp_precision prec, const uint8_t *msg, size_t len)
{
    size_t line = 0, ntag = 0, nfield = 0;
    for (size_t t = 0; t < db->n_table_batches; t++) {
        const pb_tb *tb = db->table_batches[t];
        size_t next[64] = {0}; /* next value index per column */
        const pb_col *tc = NULL;
        for (size_t c = 0; c < tb->n_columns; c++)
            if (tb->columns[c]->semantic_type == SEM_TIME) tc = tb->columns[c];
        for (uint32_t r = 0; r < tb->row_count; r++, line++) {
            CHECK(line < batch.line_count);
            if (line >= batch.line_count) return;
            const lp_line *ln = &batch.lines[line];
            CHECK(str_eq(ln->measurement, tb->table_name));
            CHECK(inside(lp_str_ptr(&batch, ln->measurement), ln->measurement.len, msg, len));
            CHECK(ln->text_off == ln->measurement.off && ln->text_len == ln->measurement.len);
            CHECK_EQ_INT(ln->line_number, line + 1);
            CHECK_EQ_INT(ln->table_slot, 0);
            CHECK_EQ_INT(ln->time_ns, tc->values->i64_values[r] * prec_mult(prec));
            CHECK_EQ_INT(ln->first_tag, ntag);
            CHECK_EQ_INT(ln->first_field, nfield);
            uint32_t k = 0;
            for (size_t c = 0; c < tb->n_columns; c++) {
                const pb_col *col = tb->columns[c];
                if (col->semantic_type != SEM_TAG || col_is_null(col, r)) continue;
                CHECK(k < ln->tag_count);
                if (k >= ln->tag_count) break;
                const lp_tag *tg = &batch.tags[ln->first_tag + k++];
                CHECK(str_eq(lp_tag_key(tg), col->column_name));
                CHECK(str_eq(tg->value, col->values->string_values[next[c]++]));
                CHECK(inside(lp_str_ptr(&batch, lp_tag_key(tg)), tg->key_len, msg, len));
                CHECK(inside(lp_str_ptr(&batch, tg->value), tg->value.len, msg, len));
                CHECK_EQ_INT(tg->column, LP_COLUMN_UNRESOLVED);
            }
            CHECK_EQ_INT(ln->tag_count, k);
            ntag += ln->tag_count;
            k = 0;
            for (size_t c = 0; c < tb->n_columns; c++) {
                const pb_col *col = tb->columns[c];
                if (col->semantic_type != SEM_FIELD || col_is_null(col, r)) continue;
                CHECK(k < ln->field_count);
                if (k >= ln->field_count) break;
                const lp_field *f = &batch.fields[ln->first_field + k++];
                const pb_vals *v = col->values;
                size_t i = next[c]++;
                CHECK(str_eq(lp_field_key(f), col->column_name));
                CHECK(inside(lp_str_ptr(&batch, lp_field_key(f)), f->key_len, msg, len));
                CHECK_EQ_INT(f->column, LP_COLUMN_UNRESOLVED);
                switch (col_array(col)) {
                case 1:
                    CHECK_EQ_INT(f->type, LP_FIELD_I64);
                    CHECK(f->value.i64 == v->i64_values[i]);
                    break;
                case 2:
                    CHECK_EQ_INT(f->type, LP_FIELD_F64);
                    CHECK(memcmp(&f->value.f64, &v->f64_values[i], 8) == 0);
                    break;
                case 3:
                    CHECK_EQ_INT(f->type, LP_FIELD_U64);
                    CHECK(f->value.u64 == v->u64_values[i]);
                    break;
                case 4:
                    CHECK_EQ_INT(f->type, LP_FIELD_STRING);
                    CHECK(str_eq(f->value.str, v->string_values[i]));
                    CHECK(inside(lp_str_ptr(&batch, f->value.str), f->value.str.len, msg, len));
                    break;
                case 5:
                    CHECK_EQ_INT(f->type, LP_FIELD_BOOL);
                    CHECK(f->value.boolean == (v->bool_values[i] != 0));
                    break;
                default:
                    CHECK(!"a non-null row in a column without values");
                    break;
                }
            }
            CHECK_EQ_INT(ln->field_count, k);
            nfield += ln->field_count;
        }
    }
    CHECK_EQ_INT(batch.line_count, line);
    CHECK_EQ_INT(batch.tag_count, ntag);
    CHECK_EQ_INT(batch.field_count, nfield);
    CHECK_EQ_INT(batch.error_count, 0);
    CHECK_EQ_INT(batch.bad_line_count, 0);
}

/* ---------------------------------------------------------------------------------------------
 * A hand wire writer, for what protobuf-c never writes
 */

typedef struct wbuf {
    uint8_t b[8192];
    size_t n;
} wbuf;

static void w_raw(wbuf *w, const void *p, size_t n)
{
    if (w->n + n > sizeof w->b) abort();
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_varint(wbuf *w, uint64_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) b |= 0x80;
        w_raw(w, &b, 1);
    } while (v);
}

static void w_key(wbuf *w, uint32_t field, uint32_t wire)
{
    w_varint(w, (uint64_t)field << 3 | wire);
}

static void w_vint(wbuf *w, uint32_t field, uint64_t v)
{
    w_key(w, field, 0);
    w_varint(w, v);
}

static void w_bytes(wbuf *w, uint32_t field, const void *p, size_t n)
{
    w_key(w, field, 2);
    w_varint(w, n);
    w_raw(w, p, n);
}

static void w_str(wbuf *w, uint32_t field, const char *s)
{
    w_bytes(w, field, s, strlen(s));
}

static void w_sub(wbuf *w, uint32_t field, const wbuf *sub)
{
    w_bytes(w, field, sub->b, sub->n);
}

static void w_double(wbuf *w, uint32_t field, double d)
{
    w_key(w, field, 1);
    w_raw(w, &d, 8);
}

/* Packed varints of v[0..n) as one record. */
static void w_packed(wbuf *w, uint32_t field, size_t n, const uint64_t *v)
{
    wbuf in = {.n = 0};
    for (size_t i = 0; i < n; i++)
        w_varint(&in, v[i]);
    w_sub(w, field, &in);
}

/* A Column record (field 2 of TableBatch) into cols. values may be NULL. */
static void w_column(wbuf *cols, const char *name, uint64_t sem, const wbuf *values,
                     const uint8_t *mask, size_t mask_len)
{
    wbuf c = {.n = 0};
    w_str(&c, 1, name);
    w_vint(&c, 2, sem);
    if (values) w_sub(&c, 3, values);
    if (mask_len) w_bytes(&c, 4, mask, mask_len);
    w_sub(cols, 2, &c);
}

/* TIME column "time" with packed times 1000 + i. */
static void w_time(wbuf *cols, uint32_t rows)
{
    wbuf v = {.n = 0};
    uint64_t t[64];
    for (uint32_t i = 0; i < rows; i++)
        t[i] = 1000 + i;
    w_packed(&v, 1, rows, t);
    w_column(cols, "time", SEM_TIME, &v, NULL, 0);
}

/* FIELD column of rows packed doubles 0.5 + i. */
static void w_f64_field(wbuf *cols, const char *name, uint32_t rows)
{
    wbuf v = {.n = 0}, in = {.n = 0};
    for (uint32_t i = 0; i < rows; i++) {
        double d = 0.5 + i;
        w_raw(&in, &d, 8);
    }
    w_sub(&v, 2, &in);
    w_column(cols, name, SEM_FIELD, &v, NULL, 0);
}

/* A TableBatch record (field 1 of DatabaseBatch) with name, the column records, row_count. */
static void w_table(wbuf *db, const char *name, uint64_t rows, const wbuf *cols)
{
    wbuf t = {.n = 0};
    w_str(&t, 1, name);
    w_raw(&t, cols->b, cols->n);
    w_vint(&t, 3, rows);
    w_sub(db, 1, &t);
}

/* Decodes w (copied to an exact-size buffer); expects a refusal whose text holds the needles. */
static void expect_refused_prec(const wbuf *w, enum lp_precision prec, const char *n1,
                                const char *n2, const char *n3, int line)
{
    uint8_t *m = talloc(w->n);
    memcpy(m, w->b, w->n);
    int rv = dec(m, w->n, prec);
    const char *needles[] = {n1, n2, n3};
    int ok = rv == INGOT_E_INVALID && batch.line_count == 0 && batch.tag_count == 0 &&
             batch.field_count == 0;
    for (int i = 0; i < 3; i++)
        if (needles[i] && !strstr(err, needles[i])) ok = 0;
    if (!ok) fprintf(stderr, "  line %d: rv %d, message \"%s\"\n", line, rv, err);
    CHECK(ok);
}

#define EXPECT_REFUSED(w, n1, n2, n3) expect_refused_prec(w, LP_PRECISION_NS, n1, n2, n3, __LINE__)

/* ---------------------------------------------------------------------------------------------
 * Tests
 */

static void test_every_type(void)
{
    pb_db *db = db_new();
    pb_tb *tb = tb_new(db, "cpu", 3);
    const int64_t t[] = {1, -2, INT64_MAX};
    const char *const host[] = {"a", "b,c d=e\\", "\xc3\xa9t\xc3\xa9"};
    const int64_t iv[] = {INT64_MIN, -1, INT64_MAX};
    const uint64_t uv[] = {0, 127, UINT64_MAX};
    const double fv[] = {-0.0, 1e308, 4.9e-324};
    char longv[160]; /* more than 127 bytes: a two-byte length */
    memset(longv, 'L', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    const char *const sv[] = {"", "x\"y", longv};
    const int bv[] = {1, 0, 1};
    col_str(col_new(tb, "host", SEM_TAG), 3, host);
    col_i64(col_new(tb, "i", SEM_FIELD), 3, iv);
    col_u64(col_new(tb, "u", SEM_FIELD), 3, uv);
    time_col(tb, 3, t); /* anywhere among the columns */
    col_f64(col_new(tb, "f", SEM_FIELD), 3, fv);
    col_str(col_new(tb, "s", SEM_FIELD), 3, sv);
    col_bool(col_new(tb, "b", SEM_FIELD), 3, bv);
    size_t len;
    uint8_t *m = pack_db(db, &len);
    CHECK_EQ_INT(dec(m, len, LP_PRECISION_NS), 0);
    CHECK_EQ_STR(err, "");
    check_rows(db, LP_PRECISION_NS, m, len);

    /* The same, spelled out, so the reference itself is checked once. */
    CHECK_EQ_INT(batch.line_count, 3);
    CHECK_EQ_INT(batch.tag_count, 3);
    CHECK_EQ_INT(batch.field_count, 15);
    const lp_line *l2 = &batch.lines[2];
    CHECK_EQ_INT(l2->time_ns, INT64_MAX);
    CHECK_EQ_INT(l2->line_number, 3);
    CHECK_EQ_INT(l2->first_tag, 2);
    CHECK_EQ_INT(l2->first_field, 10);
    CHECK(str_eq(lp_tag_key(&batch.tags[2]), "host") &&
          str_eq(batch.tags[2].value, "\xc3\xa9t\xc3\xa9"));
    const lp_field *f = &batch.fields[10];
    CHECK(str_eq(FK(0), "i") && f[0].type == LP_FIELD_I64 && f[0].value.i64 == INT64_MAX);
    CHECK(str_eq(FK(1), "u") && f[1].type == LP_FIELD_U64 && f[1].value.u64 == UINT64_MAX);
    CHECK(str_eq(FK(2), "f") && f[2].type == LP_FIELD_F64 && f[2].value.f64 == 4.9e-324);
    CHECK(str_eq(FK(3), "s") && f[3].type == LP_FIELD_STRING);
    CHECK(f[3].value.str.len == strlen(sv[2]) && f[3].value.str.len > 128);
    CHECK(str_eq(FK(4), "b") && f[4].type == LP_FIELD_BOOL && f[4].value.boolean);
    CHECK(signbit(batch.fields[2].value.f64) && batch.fields[2].value.f64 == 0.0);
    CHECK(str_eq(batch.fields[3].value.str, ""));
    CHECK_EQ_INT(batch.lines[1].time_ns, -2);
    CHECK(!batch.fields[9].value.boolean);
    pool_free();
}

static void test_nulls_across_bytes(void)
{
    /* 17 rows: masks reach into a third byte. */
    pb_db *db = db_new();
    pb_tb *tb = tb_new(db, "m", 17);
    int64_t t[17];
    for (int i = 0; i < 17; i++)
        t[i] = 100 * i;
    time_col(tb, 17, t);
    const char *tag_mask = "10000001100000011"; /* rows 0 7 8 15 16 null */
    const char *fa_mask = "01010101010101010";
    const char *fb_mask = "10101010101010101"; /* complement: every row has one field */
    const char *tags[17], *sv[17];
    int64_t iv[17];
    double fv[17];
    size_t nt = 0, na = 0, nb = 0;
    for (int i = 0; i < 17; i++) {
        static char names[17][16];
        snprintf(names[i], sizeof names[i], "v%d", i);
        if (tag_mask[i] == '0') tags[nt++] = names[i];
        if (fa_mask[i] == '0') iv[na++] = -i;
        if (fb_mask[i] == '0') fv[nb++] = i + 0.25;
        sv[i] = names[i];
    }
    pb_col *c = col_new(tb, "tg", SEM_TAG);
    col_str(c, nt, tags);
    col_mask(c, tag_mask);
    c = col_new(tb, "a", SEM_FIELD);
    col_i64(c, na, iv);
    col_mask(c, fa_mask);
    c = col_new(tb, "b", SEM_FIELD);
    col_f64(c, nb, fv);
    col_mask(c, fb_mask);
    c = col_new(tb, "s", SEM_FIELD); /* a mask of all zeros: no nulls */
    col_str(c, 17, sv);
    col_mask(c, "00000000000000000");
    size_t len;
    uint8_t *m = pack_db(db, &len);
    CHECK_EQ_INT(dec(m, len, LP_PRECISION_NS), 0);
    check_rows(db, LP_PRECISION_NS, m, len);
    CHECK_EQ_INT(batch.tag_count, 12);
    CHECK_EQ_INT(batch.field_count, 17 + 17);
    CHECK_EQ_INT(batch.lines[16].tag_count, 0);
    CHECK_EQ_INT(batch.lines[9].tag_count, 1);
    CHECK(str_eq(batch.tags[batch.lines[9].first_tag].value, "v9"));
    CHECK_EQ_INT(batch.lines[16].field_count, 2);
    CHECK(str_eq(lp_field_key(&batch.fields[batch.lines[16].first_field]), "a"));
    CHECK_EQ_INT(batch.fields[batch.lines[16].first_field].value.i64, -16);
    CHECK(str_eq(lp_field_key(&batch.fields[batch.lines[15].first_field]), "b"));
    CHECK(batch.fields[batch.lines[15].first_field].value.f64 == 15.25);
    pool_free();
}

static void test_all_null_columns(void)
{
    pb_db *db = db_new();
    pb_tb *tb = tb_new(db, "m", 9);
    int64_t t[9] = {0};
    double fv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    time_col(tb, 9, t);
    col_mask(col_new(tb, "gone_tag", SEM_TAG), "111111111");
    col_mask(col_new(tb, "gone_field", SEM_FIELD), "111111111");
    col_f64(col_new(tb, "v", SEM_FIELD), 9, fv);
    size_t len;
    uint8_t *m = pack_db(db, &len);
    CHECK_EQ_INT(dec(m, len, LP_PRECISION_NS), 0);
    check_rows(db, LP_PRECISION_NS, m, len);
    CHECK_EQ_INT(batch.tag_count, 0);
    CHECK_EQ_INT(batch.field_count, 9);
    for (size_t i = 0; i < batch.field_count; i++)
        CHECK(str_eq(lp_field_key(&batch.fields[i]), "v"));
    pool_free();
}

static void test_several_tables(void)
{
    pb_db *db = db_new();
    const int64_t t[] = {10, 20};
    const double fv[] = {1.5, 2.5};
    const char *const hosts[] = {"h1", "h2"};
    pb_tb *a = tb_new(db, "cpu", 2);
    time_col(a, 2, t);
    col_str(col_new(a, "host", SEM_TAG), 2, hosts);
    col_f64(col_new(a, "usage", SEM_FIELD), 2, fv);
    pb_tb *empty = tb_new(db, "nothing", 0); /* contributes nothing */
    time_col(empty, 0, t);
    pb_tb *b = tb_new(db, "mem", 1);
    time_col(b, 1, t);
    const uint64_t free_b[] = {77};
    col_u64(col_new(b, "free", SEM_FIELD), 1, free_b);
    pb_tb *a2 = tb_new(db, "cpu", 2); /* the same table again */
    time_col(a2, 2, t);
    col_f64(col_new(a2, "usage", SEM_FIELD), 2, fv);
    col_str(col_new(a2, "host", SEM_TAG), 2, hosts);
    size_t len;
    uint8_t *m = pack_db(db, &len);
    CHECK_EQ_INT(dec(m, len, LP_PRECISION_MS), 0);
    check_rows(db, LP_PRECISION_MS, m, len);
    CHECK_EQ_INT(batch.line_count, 5);
    CHECK(str_eq(batch.lines[2].measurement, "mem"));
    CHECK(str_eq(batch.lines[4].measurement, "cpu"));
    CHECK_EQ_INT(batch.lines[4].line_number, 5);
    CHECK_EQ_INT(batch.lines[4].first_tag, 3);
    CHECK_EQ_INT(batch.lines[4].first_field, 4);
    CHECK_EQ_INT(batch.lines[4].time_ns, 20000000);

    /* An empty DatabaseBatch is no rows. */
    CHECK_EQ_INT(dec(m, 0, LP_PRECISION_NS), 0);
    CHECK_EQ_INT(batch.line_count, 0);
    pool_free();
}

static void test_precisions(void)
{
    static const enum lp_precision precs[] = {LP_PRECISION_NS, LP_PRECISION_US, LP_PRECISION_MS,
                                              LP_PRECISION_S};
    for (size_t p = 0; p < 4; p++) {
        int64_t mult = prec_mult(precs[p]);
        int64_t hi = INT64_MAX / mult, lo = INT64_MIN / mult;
        pb_db *db = db_new();
        pb_tb *tb = tb_new(db, "cpu", 4);
        const int64_t t[] = {hi, lo, 0, -1};
        const double fv[] = {1, 2, 3, 4};
        time_col(tb, 4, t);
        col_f64(col_new(tb, "v", SEM_FIELD), 4, fv);
        size_t len;
        uint8_t *m = pack_db(db, &len);
        CHECK_EQ_INT(dec(m, len, precs[p]), 0);
        check_rows(db, precs[p], m, len);
        CHECK_EQ_INT(batch.lines[0].time_ns, hi * mult);
        CHECK_EQ_INT(batch.lines[3].time_ns, -mult);
        if (mult == 1) continue;
        /* One step past the range, either way, on row 2. */
        for (int neg = 0; neg < 2; neg++) {
            wbuf cols = {.n = 0}, v = {.n = 0}, w = {.n = 0};
            const uint64_t tt[] = {5, neg ? (uint64_t)(lo - 1) : (uint64_t)(hi + 1)};
            w_packed(&v, 1, 2, tt);
            w_column(&cols, "time", SEM_TIME, &v, NULL, 0);
            w_f64_field(&cols, "v", 2);
            w_table(&w, "cpu", 2, &cols);
            expect_refused_prec(&w, precs[p], "\"cpu\"", "column \"time\": row 2", "overflows",
                                __LINE__);
        }
    }
    /* AUTO and values past S are not precisions of a DatabaseBatch. */
    wbuf cols = {.n = 0}, w = {.n = 0};
    w_time(&cols, 1);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    expect_refused_prec(&w, LP_PRECISION_AUTO, "precision 4", NULL, NULL, __LINE__);
    expect_refused_prec(&w, (enum lp_precision)9, "precision 9", NULL, NULL, __LINE__);
    pool_free();
}

/* Packed and unpacked, split arrays, merged Values, long strings, non-minimal varints. */
static void test_unpacked_and_split(void)
{
    wbuf cols = {.n = 0}, v = {.n = 0}, w = {.n = 0};
    /* time: unpacked varints 1, 2, -3 (ten bytes), 5 written non-minimally (0x85 0x00) */
    w_vint(&v, 1, 1);
    w_vint(&v, 1, 2);
    w_vint(&v, 1, (uint64_t)(int64_t)-3);
    w_key(&v, 1, 0);
    w_raw(&v, "\x85\x00", 2);
    w_column(&cols, "time", SEM_TIME, &v, NULL, 0);
    /* f64: unpacked, then a packed run of two */
    v.n = 0;
    w_double(&v, 2, 1.25);
    double two[] = {-2.5, 1e-300};
    w_bytes(&v, 2, two, sizeof two);
    w_double(&v, 2, 4.0);
    w_column(&cols, "f", SEM_FIELD, &v, NULL, 0);
    /* u64: packed [1, 2], unpacked 300, packed [] (empty run), packed [UINT64_MAX] */
    v.n = 0;
    const uint64_t u12[] = {1, 2}, umax[] = {UINT64_MAX};
    w_packed(&v, 3, 2, u12);
    w_vint(&v, 3, 300);
    w_packed(&v, 3, 0, NULL);
    w_packed(&v, 3, 1, umax);
    w_column(&cols, "u", SEM_FIELD, &v, NULL, 0);
    /* bool: unpacked 1, 0 and a packed [5, 0] (any non-zero varint is true) */
    v.n = 0;
    w_vint(&v, 5, 1);
    w_vint(&v, 5, 0);
    const uint64_t b50[] = {5, 0};
    w_packed(&v, 5, 2, b50);
    w_column(&cols, "b", SEM_FIELD, &v, NULL, 0);
    /* i64 across two `values` records of one Column (merged): [10] then [-20, 30, 40] */
    wbuf c = {.n = 0}, v1 = {.n = 0}, v2 = {.n = 0};
    const uint64_t i10[] = {10}, i234[] = {(uint64_t)(int64_t)-20, 30, 40};
    w_packed(&v1, 1, 1, i10);
    w_packed(&v2, 1, 3, i234);
    w_sub(&c, 3, &v1);
    w_str(&c, 1, "i");
    w_vint(&c, 2, SEM_FIELD);
    w_sub(&c, 3, &v2);
    w_sub(&cols, 2, &c);
    /* strings: a 200-byte value (2-byte length), unknown fields between the records */
    v.n = 0;
    char longs[201];
    memset(longs, 'z', 200);
    longs[200] = '\0';
    w_str(&v, 4, "s0");
    w_vint(&v, 9, 1);
    w_str(&v, 4, longs);
    w_bytes(&v, 10, "junk", 4);
    w_str(&v, 4, "");
    w_str(&v, 4, "s3");
    w_column(&cols, "s", SEM_FIELD, &v, NULL, 0);
    w_table(&w, "t", 4, &cols);
    CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_NS), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_INT(batch.line_count, 4);
    CHECK_EQ_INT(batch.field_count, 20);
    const int64_t want_t[] = {1, 2, -3, 5};
    const double want_f[] = {1.25, -2.5, 1e-300, 4.0};
    const uint64_t want_u[] = {1, 2, 300, UINT64_MAX};
    const bool want_b[] = {true, false, true, false};
    const int64_t want_i[] = {10, -20, 30, 40};
    const char *want_s[] = {"s0", longs, "", "s3"};
    for (int r = 0; r < 4; r++) {
        const lp_line *ln = &batch.lines[r];
        CHECK_EQ_INT(ln->time_ns, want_t[r]);
        CHECK_EQ_INT(ln->field_count, 5);
        const lp_field *f = &batch.fields[ln->first_field];
        CHECK(str_eq(FK(0), "f") && f[0].type == LP_FIELD_F64 && f[0].value.f64 == want_f[r]);
        CHECK(str_eq(FK(1), "u") && f[1].type == LP_FIELD_U64 && f[1].value.u64 == want_u[r]);
        CHECK(str_eq(FK(2), "b") && f[2].type == LP_FIELD_BOOL &&
              f[2].value.boolean == want_b[r]);
        CHECK(str_eq(FK(3), "i") && f[3].type == LP_FIELD_I64 && f[3].value.i64 == want_i[r]);
        CHECK(str_eq(FK(4), "s") && f[4].type == LP_FIELD_STRING &&
              str_eq(f[4].value.str, want_s[r]));
    }
    pool_free();
}

/* Unknown fields of every wire type at every level change nothing. */
static void build_with_unknowns(wbuf *w, int unknowns)
{
    wbuf cols = {.n = 0}, v = {.n = 0}, c = {.n = 0}, t = {.n = 0};
    const uint64_t times[] = {7, 8};
#define JUNK(buf)                                                                                  \
    do {                                                                                           \
        if (unknowns) {                                                                            \
            w_vint(buf, 6, 12345);                                                                 \
            w_double(buf, 15, 1.0);                                                                \
            w_bytes(buf, 100, "\x08\x01", 2);                                                      \
            w_key(buf, 536870911, 5);                                                              \
            w_raw(buf, "abcd", 4);                                                                 \
        }                                                                                          \
    } while (0)
    JUNK(&v);
    w_packed(&v, 1, 2, times);
    JUNK(&v);
    JUNK(&c);
    w_str(&c, 1, "time");
    w_vint(&c, 2, SEM_TIME);
    w_sub(&c, 3, &v);
    JUNK(&c);
    w_sub(&cols, 2, &c);
    c.n = 0;
    v.n = 0;
    w_str(&v, 4, "x");
    JUNK(&v);
    w_str(&v, 4, "y");
    w_str(&c, 1, "tg");
    JUNK(&c);
    w_vint(&c, 2, SEM_TAG);
    w_sub(&c, 3, &v);
    w_sub(&cols, 2, &c);
    w_f64_field(&cols, "v", 2);
    JUNK(&t);
    w_str(&t, 1, "cpu");
    w_raw(&t, cols.b, cols.n);
    JUNK(&t);
    w_vint(&t, 3, 2);
    JUNK(w);
    w_sub(w, 1, &t);
    JUNK(w);
#undef JUNK
}

static void test_unknown_fields(void)
{
    wbuf plain = {.n = 0}, junk = {.n = 0};
    build_with_unknowns(&plain, 0);
    build_with_unknowns(&junk, 1);
    CHECK(junk.n > plain.n + 40);
    lp_batch ref = {0};
    CHECK_EQ_INT(pbdata_decode_batch(plain.b, plain.n, LP_PRECISION_NS, &ref, err, sizeof err), 0);
    CHECK_EQ_INT(dec(junk.b, junk.n, LP_PRECISION_NS), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_INT(ref.line_count, 2);
    CHECK_EQ_INT(batch.line_count, ref.line_count);
    CHECK_EQ_INT(batch.tag_count, ref.tag_count);
    CHECK_EQ_INT(batch.field_count, ref.field_count);
    for (size_t i = 0; i < ref.line_count && i < batch.line_count; i++) {
        CHECK_EQ_INT(batch.lines[i].time_ns, ref.lines[i].time_ns);
        CHECK_EQ_INT(batch.lines[i].tag_count, 1);
        CHECK_EQ_INT(batch.lines[i].field_count, 1);
    }
    CHECK(str_eq(batch.tags[1].value, "y"));
    CHECK(batch.fields[1].value.f64 == 1.5);
    CHECK_EQ_INT(batch.lines[1].time_ns, 8);
    lp_batch_free(&ref);
    /* Field number 2^29 is past the largest. */
    wbuf bad = {.n = 0};
    w_raw(&bad, junk.b, junk.n);
    w_key(&bad, 536870912, 0);
    w_varint(&bad, 1);
    EXPECT_REFUSED(&bad, "DatabaseBatch, byte", "invalid field number", NULL);
    pool_free();
}

static void test_refusals_names_and_types(void)
{
    wbuf cols = {.n = 0}, w = {.n = 0}, v = {.n = 0};

    w_time(&cols, 1);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "", 1, &cols);
    EXPECT_REFUSED(&w, "table batch 1: ", "empty table_name", NULL);

    /* The second table batch is named in the message. */
    w.n = 0;
    w_table(&w, "ok", 1, &cols);
    cols.n = 0;
    w_time(&cols, 1);
    w_f64_field(&cols, "", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "table batch 2 \"cpu\", column 2: ", "empty column_name", NULL);

    cols.n = w.n = 0;
    w_time(&cols, 1);
    w_f64_field(&cols, "v", 1);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "table batch 1 \"cpu\", column \"v\": ", "duplicate column name",
                   "column 2");

    /* Many columns: the hash set finds the duplicate too. */
    cols.n = w.n = 0;
    w_time(&cols, 1);
    for (int i = 0; i < 30; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        w_f64_field(&cols, name, 1);
    }
    w_table(&w, "cpu", 1, &cols);
    CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_NS), 0);
    CHECK_EQ_INT(batch.field_count, 30);
    w.n = 0;
    w_f64_field(&cols, "c17", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"c17\"", "duplicate column name (also column 19)", NULL);

    cols.n = w.n = 0;
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "table batch 1 \"cpu\": ", "no TIME column", NULL);

    cols.n = w.n = 0;
    w_time(&cols, 1);
    w_time(&cols, 1);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"time\"", "duplicate column name", NULL);

    cols.n = w.n = 0;
    const uint64_t one[] = {1};
    w_packed(&v, 1, 1, one);
    w_column(&cols, "ts", SEM_TIME, &v, NULL, 0);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"ts\"", "the TIME column must be named \"time\"", NULL);

    cols.n = w.n = 0;
    w_column(&cols, "time", SEM_FIELD, &v, NULL, 0);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"time\"", "only the TIME column may be named \"time\"", NULL);

    cols.n = w.n = 0;
    w_time(&cols, 1);
    w_column(&cols, "v", SEM_UNSPEC, &v, NULL, 0);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "semantic_type is unspecified", NULL);

    cols.n = w.n = 0;
    w_time(&cols, 1);
    w_column(&cols, "v", 7, &v, NULL, 0);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "unknown semantic_type 7", NULL);

    /* TAG with i64; FIELD with two arrays. */
    cols.n = w.n = 0;
    w_time(&cols, 1);
    w_column(&cols, "host", SEM_TAG, &v, NULL, 0);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"host\"", "a TAG column holds i64_values, not string_values", NULL);

    cols.n = w.n = 0;
    w_time(&cols, 1);
    wbuf two = v;
    w_double(&two, 2, 1.0);
    w_column(&cols, "v", SEM_FIELD, &two, NULL, 0);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "values in both i64_values and f64_values", NULL);

    /* TIME holding doubles, TIME with a null, TIME one value short. */
    cols.n = w.n = 0;
    wbuf fv = {.n = 0};
    w_double(&fv, 2, 1.0);
    w_column(&cols, "time", SEM_TIME, &fv, NULL, 0);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "column \"time\"", "the TIME column holds f64_values, not i64_values", NULL);

    cols.n = w.n = 0;
    w_column(&cols, "time", SEM_TIME, &v, (const uint8_t *)"\x02", 1);
    w_f64_field(&cols, "v", 2);
    w_table(&w, "cpu", 2, &cols);
    EXPECT_REFUSED(&w, "column \"time\"", "the TIME column has nulls", NULL);

    cols.n = w.n = 0;
    w_column(&cols, "time", SEM_TIME, &v, NULL, 0);
    w_f64_field(&cols, "v", 3);
    w_table(&w, "cpu", 3, &cols);
    EXPECT_REFUSED(&w, "column \"time\"", "1 values for 3 non-null rows", NULL);
    pool_free();
}

static void test_refusals_masks_and_values(void)
{
    wbuf cols = {.n = 0}, w = {.n = 0}, v = {.n = 0};
    double d9[9] = {0};

    /* Mask length: 9 rows need 2 bytes. */
    w_time(&cols, 9);
    w_bytes(&v, 2, d9, 8 * 8);
    w_column(&cols, "v", SEM_FIELD, &v, (const uint8_t *)"\x01", 1);
    w_table(&w, "cpu", 9, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "null_mask has 1 bytes, 2 expected for 9 rows", NULL);

    /* Bit 9 set past row 9 (bits 0..8 are rows). */
    cols.n = w.n = 0;
    w_time(&cols, 9);
    w_column(&cols, "v", SEM_FIELD, &v, (const uint8_t *)"\x01\x02", 2);
    w_table(&w, "cpu", 9, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "null_mask has bits set past row_count 9", NULL);
    /* ... while bit 8 (row 9) is fine: the same column decodes. */
    cols.n = w.n = 0;
    w_time(&cols, 9);
    w_column(&cols, "v", SEM_FIELD, &v, (const uint8_t *)"\x00\x01", 2);
    w_f64_field(&cols, "w", 9);
    w_table(&w, "cpu", 9, &cols);
    CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_NS), 0);
    CHECK_EQ_INT(batch.field_count, 17);

    /* Value counts against non-null rows. */
    cols.n = w.n = 0;
    w_time(&cols, 3);
    w_column(&cols, "v", SEM_FIELD, NULL, NULL, 0);
    w_table(&w, "cpu", 3, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "0 values for 3 non-null rows", NULL);

    cols.n = w.n = 0;
    v.n = 0;
    w_bytes(&v, 2, d9, 4 * 8);
    w_time(&cols, 3);
    w_column(&cols, "v", SEM_FIELD, &v, (const uint8_t *)"\x02", 1);
    w_table(&w, "cpu", 3, &cols);
    EXPECT_REFUSED(&w, "column \"v\"", "4 values for 2 non-null rows", NULL);

    /* Empty tag value (row 2). */
    cols.n = w.n = 0;
    v.n = 0;
    w_str(&v, 4, "a");
    w_str(&v, 4, "");
    w_time(&cols, 2);
    w_column(&cols, "host", SEM_TAG, &v, NULL, 0);
    w_f64_field(&cols, "v", 2);
    w_table(&w, "cpu", 2, &cols);
    EXPECT_REFUSED(&w, "table batch 1 \"cpu\", column \"host\": ", "row 2: empty tag value", NULL);

    /* A row without a non-null field (row 2 of 3). */
    cols.n = w.n = 0;
    v.n = 0;
    w_bytes(&v, 2, d9, 2 * 8);
    w_time(&cols, 3);
    w_column(&cols, "v", SEM_FIELD, &v, (const uint8_t *)"\x02", 1);
    w_table(&w, "cpu", 3, &cols);
    EXPECT_REFUSED(&w, "table batch 1 \"cpu\": ", "row 2: no non-null field", NULL);

    /* Only tags and time: no row has a field. */
    cols.n = w.n = 0;
    v.n = 0;
    w_str(&v, 4, "a");
    w_time(&cols, 1);
    w_column(&cols, "host", SEM_TAG, &v, NULL, 0);
    w_table(&w, "cpu", 1, &cols);
    EXPECT_REFUSED(&w, "\"cpu\"", "row 1: no non-null field", NULL);

    /* Non-finite doubles, which line protocol cannot carry either (row 2, then row 1). */
    double odd[2][2] = {{1.5, NAN}, {-INFINITY, 2.0}};
    const char *why[2] = {"row 2: NaN is not a finite number", "row 1: an infinity is not a finite number"};
    for (int k = 0; k < 2; k++) {
        cols.n = w.n = 0;
        v.n = 0;
        w_bytes(&v, 2, odd[k], 2 * 8);
        w_time(&cols, 2);
        w_column(&cols, "v", SEM_FIELD, &v, NULL, 0);
        w_table(&w, "cpu", 2, &cols);
        EXPECT_REFUSED(&w, "table batch 1 \"cpu\", column \"v\": ", why[k], NULL);
    }

    /* row_count past uint32. */
    cols.n = w.n = 0;
    w_time(&cols, 1);
    w_f64_field(&cols, "v", 1);
    w_table(&w, "cpu", (uint64_t)UINT32_MAX + 1, &cols);
    EXPECT_REFUSED(&w, "\"cpu\"", "row_count 4294967296 out of range", NULL);
    pool_free();
}

static void test_refusals_malformed(void)
{
    wbuf cols = {.n = 0}, w = {.n = 0}, v = {.n = 0}, good = {.n = 0};
    w_time(&cols, 2);
    w_f64_field(&cols, "v", 2);
    w_table(&good, "cpu", 2, &cols);

    /* Truncated anywhere: only the record boundaries (0 and the end) decode. */
    for (size_t n = 0; n <= good.n; n++) {
        uint8_t *m = talloc(n);
        memcpy(m, good.b, n);
        int rv = dec(m, n, LP_PRECISION_NS);
        if (n == 0 || n == good.n) {
            CHECK_EQ_INT(rv, 0);
        } else {
            CHECK_EQ_INT(rv, INGOT_E_INVALID);
            CHECK(strstr(err, "DatabaseBatch, byte 0: ") != NULL);
            CHECK_EQ_INT(batch.line_count, 0);
        }
    }
    CHECK_EQ_INT(batch.line_count, 2);

    /* Errors inside a table batch and a column say where. */
    w.n = 0;
    wbuf t = {.n = 0};
    w_str(&t, 1, "cpu");
    w_key(&t, 2, 2);
    w_varint(&t, 50); /* column length past the table batch */
    w_raw(&t, "\x0a", 1);
    w_sub(&w, 1, &t);
    EXPECT_REFUSED(&w, "table batch 1 \"cpu\": byte 5: length past the end of the message", NULL,
                   NULL);

    /* Malformed Values messages, in a FIELD column "v" after a good time column. */
    static const struct {
        const char *values;
        size_t len;
        const char *want;
    } bad_values[] = {
        {"\x13", 1, "values, byte 0: groups are not supported"},
        {"\x00\x01", 2, "values, byte 0: invalid field number"},
        {"\x17", 1, "values, byte 0: invalid wire type"},
        {"\x0a\x02\x01\x80", 4, "i64_values: packed array ends inside a varint"},
        {"\x12\x0c"
         "123456789012",
         14, "f64_values: packed length 12 is not a multiple of 8"},
        {"\x20\x01", 2, "string_values: wire type 0 is not a string"},
        {"\x0d\x01\x00\x00\x00", 5, "i64_values: wire type 5 is not a varint array"},
        {"\x10\x01", 2, "f64_values: wire type 0 is not a double array"},
    };
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        cols.n = w.n = v.n = 0;
        w_time(&cols, 1);
        w_raw(&v, bad_values[i].values, bad_values[i].len);
        w_column(&cols, "v", SEM_FIELD, &v, NULL, 0);
        w_table(&w, "cpu", 1, &cols);
        EXPECT_REFUSED(&w, "table batch 1 \"cpu\", column \"v\": ", bad_values[i].want, NULL);
    }
    /* Column messages with a known field of the wrong wire type. */
    static const struct {
        const char *column, *where, *want;
    } bad_columns[] = {
        {"\x08\x03", "column 2: ", "column_name is not length-delimited"},
        {"\x0a\x01v\x12\x01x", "column \"v\": ", "semantic_type is not a varint"},
        {"\x0a\x01v\x18\x01", "column \"v\": ", "values is not length-delimited"},
        {"\x0a\x01v\x20\x01", "column \"v\": ", "null_mask is not length-delimited"},
    };
    for (size_t i = 0; i < sizeof bad_columns / sizeof bad_columns[0]; i++) {
        cols.n = w.n = 0;
        w_time(&cols, 1);
        w_str(&cols, 2, bad_columns[i].column);
        w_table(&w, "cpu", 1, &cols);
        EXPECT_REFUSED(&w, bad_columns[i].where, bad_columns[i].want, NULL);
    }

    /* Varints: eleven bytes, or a tenth byte above 1, are refused; ten bytes are fine. */
    static const char *const tails[] = {"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
                                        "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
                                        "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"};
    for (int k = 0; k < 3; k++) {
        /* as an unpacked element */
        cols.n = w.n = v.n = 0;
        w_key(&v, 1, 0);
        w_raw(&v, tails[k], strlen(tails[k]));
        w_column(&cols, "time", SEM_TIME, &v, NULL, 0);
        w_f64_field(&cols, "v", 1);
        w_table(&w, "cpu", 1, &cols);
        if (k < 2) {
            EXPECT_REFUSED(&w, "column \"time\"", "values, byte 0: malformed varint", NULL);
        } else {
            CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_NS), 0);
            CHECK_EQ_INT(batch.lines[0].time_ns, -1);
        }
        /* inside a packed run: found by the row pass */
        cols.n = w.n = v.n = 0;
        w_bytes(&v, 1, tails[k], strlen(tails[k]));
        w_column(&cols, "time", SEM_TIME, &v, NULL, 0);
        w_f64_field(&cols, "v", 1);
        w_table(&w, "cpu", 1, &cols);
        if (k < 2) {
            EXPECT_REFUSED(&w, "column \"time\"", "row 1: malformed time value", NULL);
        } else {
            CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_NS), 0);
            CHECK_EQ_INT(batch.lines[0].time_ns, -1);
        }
        /* as a field key */
        w.n = 0;
        w_raw(&w, tails[k], strlen(tails[k]));
        if (k < 2) EXPECT_REFUSED(&w, "DatabaseBatch, byte 0: malformed field key", NULL, NULL);
    }
    /* A malformed varint in a packed u64 field, row 2. */
    cols.n = w.n = v.n = 0;
    w_time(&cols, 2);
    w_bytes(&v, 3, "\x05\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12);
    w_column(&cols, "u", SEM_FIELD, &v, NULL, 0);
    w_table(&w, "cpu", 2, &cols);
    EXPECT_REFUSED(&w, "column \"u\"", "row 2: malformed value", NULL);

    w.n = t.n = 0;
    w_vint(&t, 1, 5);
    w_sub(&w, 1, &t);
    EXPECT_REFUSED(&w, "table batch 1: ", "table_name is not length-delimited", NULL);

    w.n = t.n = 0;
    w_str(&t, 1, "cpu");
    w_vint(&t, 3, 1);
    w_vint(&t, 2, 1);
    w_sub(&w, 1, &t);
    EXPECT_REFUSED(&w, "table batch 1 \"cpu\": ", "columns is not length-delimited", NULL);

    w.n = t.n = 0;
    w_str(&t, 1, "cpu");
    w_str(&t, 3, "x");
    w_sub(&w, 1, &t);
    EXPECT_REFUSED(&w, "\"cpu\"", "row_count is not a varint", NULL);

    w.n = 0;
    w_vint(&w, 1, 1);
    EXPECT_REFUSED(&w, "table batch 1: ", "table_batches is not length-delimited", NULL);

    /* Long or odd names are shortened and made printable in messages. */
    cols.n = w.n = 0;
    char longname[101];
    memset(longname, 'n', 100);
    longname[100] = '\0';
    longname[3] = '\n';
    longname[4] = '"';
    w_time(&cols, 1);
    w_table(&w, longname, 1, &cols);
    EXPECT_REFUSED(&w, "table batch 1 \"nnn??nnnnnnn", "nnnn\"...: row 1: no non-null field", NULL);

    /* A tiny error buffer is respected. */
    char small[8];
    memset(small, 'x', sizeof small);
    lp_batch_reset(&batch);
    CHECK_EQ_INT(pbdata_decode_batch(w.b, w.n, LP_PRECISION_NS, &batch, small, sizeof small),
                 INGOT_E_INVALID);
    CHECK_EQ_STR(small, "table b");
    lp_batch_reset(&batch);
    CHECK_EQ_INT(pbdata_decode_batch(w.b, w.n, LP_PRECISION_NS, &batch, NULL, 0), INGOT_E_INVALID);
    pool_free();
}

/* A refusal after good table batches leaves the batch empty; the batch is reused afterwards. */
static void test_rollback_and_reuse(void)
{
    wbuf cols = {.n = 0}, w = {.n = 0};
    w_time(&cols, 40);
    w_f64_field(&cols, "v", 40);
    w_table(&w, "a", 40, &cols);
    w_table(&w, "b", 40, &cols);
    CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_NS), 0);
    CHECK_EQ_INT(batch.line_count, 80);
    CHECK_EQ_INT(batch.lines[79].line_number, 80);
    size_t line_cap = batch.line_cap, field_cap = batch.field_cap;
    CHECK(line_cap >= 80 && field_cap >= 80);
    w_table(&w, "", 1, &cols);
    EXPECT_REFUSED(&w, "table batch 3: ", "empty table_name", NULL);
    CHECK_EQ_INT(batch.line_cap, line_cap);
    /* Reuse: the same capacity serves a smaller request. */
    cols.n = w.n = 0;
    w_time(&cols, 5);
    w_f64_field(&cols, "v", 5);
    w_table(&w, "c", 5, &cols);
    CHECK_EQ_INT(dec(w.b, w.n, LP_PRECISION_US), 0);
    CHECK_EQ_INT(batch.line_count, 5);
    CHECK_EQ_INT(batch.line_cap, line_cap);
    CHECK_EQ_INT(batch.field_cap, field_cap);
    CHECK_EQ_INT(batch.lines[4].time_ns, 1004000);
    /* Exact sizing: a fresh batch gets exactly the rows, tags and fields. */
    lp_batch fresh = {0};
    CHECK_EQ_INT(pbdata_decode_batch(w.b, w.n, LP_PRECISION_NS, &fresh, err, sizeof err), 0);
    CHECK_EQ_INT(fresh.line_cap, 5);
    CHECK_EQ_INT(fresh.field_cap, 5);
    lp_batch_free(&fresh);
    pool_free();
}

/* lp.h's compact batch: offsets from the message, 12-bit key lengths, one message per batch. */
static void test_compact_limits(void)
{
    /* Column names of LP_MAX_KEY_BYTES bytes are tag and field keys; one byte more is refused. */
    char name[LP_MAX_KEY_BYTES + 2];
    memset(name, 'k', LP_MAX_KEY_BYTES);
    name[LP_MAX_KEY_BYTES] = '\0';
    pb_db *db = db_new();
    pb_tb *tb = tb_new(db, "m", 1);
    const int64_t t[] = {5};
    const char *const tv[] = {"v"};
    const double fv[] = {2.5};
    time_col(tb, 1, t);
    col_str(col_new(tb, name, SEM_TAG), 1, tv);
    name[0] = 'f';
    col_f64(col_new(tb, name, SEM_FIELD), 1, fv);
    size_t len;
    uint8_t *m = pack_db(db, &len);
    CHECK_EQ_INT(dec(m, len, LP_PRECISION_NS), 0);
    check_rows(db, LP_PRECISION_NS, m, len);
    CHECK(batch.base == (const char *)m);
    if (batch.line_count == 1) {
        lp_str tk = lp_tag_key(&batch.tags[0]), fk = lp_field_key(&batch.fields[0]);
        CHECK_EQ_INT(tk.len, LP_MAX_KEY_BYTES);
        CHECK_EQ_INT(fk.len, LP_MAX_KEY_BYTES);
        CHECK(memcmp(lp_str_ptr(&batch, fk), name, LP_MAX_KEY_BYTES) == 0);
        CHECK_EQ_INT(lp_str_ptr(&batch, tk)[0], 'k');
    }
    wbuf cols = {.n = 0}, w = {.n = 0};
    w_time(&cols, 1);
    name[LP_MAX_KEY_BYTES] = 'f';
    name[LP_MAX_KEY_BYTES + 1] = '\0';
    w_f64_field(&cols, name, 1);
    w_table(&w, "m", 1, &cols);
    EXPECT_REFUSED(&w, "table batch 1 \"m\", column \"fkkk", "column_name longer than 4095 bytes",
                   NULL);

    /* A message past LP_MAX_BODY_BYTES is refused before a byte is read. */
    CHECK_EQ_INT(dec(m, (size_t)LP_MAX_BODY_BYTES + 1, LP_PRECISION_NS), INGOT_E_TOO_LARGE);
    CHECK(strstr(err, "too large") != NULL);
    CHECK_EQ_INT(batch.line_count, 0);

    /* A batch holds the strings of one message: rows of another one are refused. */
    CHECK_EQ_INT(dec(m, len, LP_PRECISION_NS), 0);
    uint8_t *copy = talloc(len);
    memcpy(copy, m, len);
    CHECK_EQ_INT(pbdata_decode_batch(copy, len, LP_PRECISION_NS, &batch, err, sizeof err),
                 INGOT_E_INVALID);
    CHECK(strstr(err, "another message") != NULL);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK(batch.base == (const char *)m);
    CHECK_EQ_INT(pbdata_decode_batch(m, len, LP_PRECISION_NS, &batch, err, sizeof err), 0);
    CHECK_EQ_INT(batch.line_count, 2); /* the same message appends */
    CHECK_EQ_INT(batch.lines[1].first_tag, 1);
    /* A refusal leaves base as it was. */
    lp_batch_reset(&batch);
    CHECK(batch.base == NULL);
    CHECK_EQ_INT(pbdata_decode_batch(copy, 3, LP_PRECISION_NS, &batch, err, sizeof err),
                 INGOT_E_INVALID);
    CHECK(batch.base == NULL);
    CHECK_EQ_INT(pbdata_decode_batch(copy, len, LP_PRECISION_NS, &batch, err, sizeof err), 0);
    CHECK(batch.base == (const char *)copy);
    pool_free();
}

static void test_write_request(void)
{
    pb_req rq = INGOT__WRITE__V1__WRITE_REQUEST__INIT;
    pbdata_write_request out;
    size_t len;

    rq.namespace_ = "db1";
    rq.payload_case = INGOT__WRITE__V1__WRITE_REQUEST__PAYLOAD_LINE_PROTOCOL;
    rq.line_protocol = "cpu v=1 5";
    rq.precision = INGOT__WRITE__V1__PRECISION__PRECISION_MILLISECOND;
    uint8_t *m = pack_req(&rq, &len);
    CHECK_EQ_INT(pbdata_decode_write_request(m, len, &out, err, sizeof err), 0);
    CHECK(out.namespace_len == 3 && memcmp(out.namespace_name, "db1", 3) == 0);
    CHECK_EQ_INT(out.payload, PBDATA_PAYLOAD_LINE_PROTOCOL);
    CHECK(out.line_protocol_len == 9 && memcmp(out.line_protocol, "cpu v=1 5", 9) == 0);
    CHECK(out.batch == NULL && out.batch_len == 0);
    CHECK_EQ_INT(out.precision, LP_PRECISION_MS);
    CHECK(inside(out.line_protocol, 9, m, len) && inside(out.namespace_name, 3, m, len));

    /* A batch payload, decoded in turn. */
    pb_db *db = db_new();
    pb_tb *tb = tb_new(db, "cpu", 2);
    const int64_t t[] = {3, 4};
    const double fv[] = {1, 2};
    time_col(tb, 2, t);
    col_f64(col_new(tb, "v", SEM_FIELD), 2, fv);
    pb_req rb = INGOT__WRITE__V1__WRITE_REQUEST__INIT;
    rb.namespace_ = "ns";
    rb.payload_case = INGOT__WRITE__V1__WRITE_REQUEST__PAYLOAD_BATCH;
    rb.batch = db;
    rb.precision = INGOT__WRITE__V1__PRECISION__PRECISION_SECOND;
    m = pack_req(&rb, &len);
    CHECK_EQ_INT(pbdata_decode_write_request(m, len, &out, err, sizeof err), 0);
    CHECK_EQ_INT(out.payload, PBDATA_PAYLOAD_BATCH);
    CHECK_EQ_INT(out.precision, LP_PRECISION_S);
    CHECK(out.line_protocol == NULL && inside(out.batch, out.batch_len, m, len));
    CHECK_EQ_INT(dec(out.batch, out.batch_len, out.precision), 0);
    check_rows(db, LP_PRECISION_S, m, len);
    CHECK_EQ_INT(batch.lines[1].time_ns, 4000000000);

    /* Empty message: all defaults. */
    CHECK_EQ_INT(pbdata_decode_write_request(m, 0, &out, err, sizeof err), 0);
    CHECK(out.payload == PBDATA_PAYLOAD_NONE && out.namespace_len == 0 &&
          out.precision == LP_PRECISION_NS);

    /* The last oneof member wins; precision: the last value, unknown ones refused. */
    wbuf w = {.n = 0}, dbw = {.n = 0};
    w_str(&w, 2, "a b=1");
    w_sub(&w, 3, &dbw);
    w_vint(&w, 4, 7);
    w_vint(&w, 4, 1);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), 0);
    CHECK(out.payload == PBDATA_PAYLOAD_BATCH && out.batch_len == 0 && out.line_protocol == NULL);
    CHECK_EQ_INT(out.precision, LP_PRECISION_US);
    w_str(&w, 2, "x y=2");
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), 0);
    CHECK(out.payload == PBDATA_PAYLOAD_LINE_PROTOCOL && out.batch == NULL);
    CHECK(out.line_protocol_len == 5 && memcmp(out.line_protocol, "x y=2", 5) == 0);
    w_sub(&w, 3, &dbw);
    w_str(&w, 1, "n");
    w_sub(&w, 3, &dbw);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK(strstr(err, "WriteRequest: batch given twice") != NULL);
    CHECK(out.payload == PBDATA_PAYLOAD_NONE && out.namespace_name == NULL);

    w.n = 0;
    w_vint(&w, 4, 4);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_STR(err, "WriteRequest: unknown precision 4");
    w.n = 0;
    w_vint(&w, 4, (uint64_t)(int64_t)-1);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_STR(err, "WriteRequest: unknown precision -1");

    w.n = 0;
    w_vint(&w, 1, 4);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_STR(err, "WriteRequest: namespace has the wrong wire type 0");
    w.n = 0;
    w_str(&w, 4, "ms");
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_STR(err, "WriteRequest: precision has the wrong wire type 2");
    w.n = 0;
    w_vint(&w, 3, 4);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_STR(err, "WriteRequest: batch has the wrong wire type 0");
    w.n = 0;
    w_double(&w, 2, 1);
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_STR(err, "WriteRequest: line_protocol has the wrong wire type 1");

    /* Unknown fields of every wire type are skipped. */
    w.n = 0;
    w_vint(&w, 5, 1);
    w_double(&w, 6, 2);
    w_str(&w, 1, "db");
    w_bytes(&w, 7, "zz", 2);
    w_key(&w, 1000, 5);
    w_raw(&w, "\x01\x02\x03\x04", 4);
    w_str(&w, 2, "lp");
    CHECK_EQ_INT(pbdata_decode_write_request(w.b, w.n, &out, err, sizeof err), 0);
    CHECK(out.namespace_len == 2 && out.payload == PBDATA_PAYLOAD_LINE_PROTOCOL);

    /* Every prefix: success exactly at record boundaries. */
    wbuf full = {.n = 0};
    size_t bounds[4], nb = 0;
    w_str(&full, 1, "namespace");
    bounds[nb++] = full.n;
    w_str(&full, 2, "cpu v=1");
    bounds[nb++] = full.n;
    w_vint(&full, 4, 300); /* two-byte varint: refused as a precision, but well-formed */
    bounds[nb++] = full.n;
    for (size_t n = 0; n <= full.n; n++) {
        uint8_t *p = talloc(n);
        memcpy(p, full.b, n);
        int rv = pbdata_decode_write_request(p, n, &out, err, sizeof err);
        bool boundary = n == 0 || n == bounds[0] || n == bounds[1];
        if (boundary) {
            CHECK_EQ_INT(rv, 0);
        } else if (n == bounds[2]) {
            CHECK_EQ_INT(rv, INGOT_E_INVALID);
            CHECK_EQ_STR(err, "WriteRequest: unknown precision 300");
        } else {
            CHECK_EQ_INT(rv, INGOT_E_INVALID);
            CHECK(strstr(err, "WriteRequest, byte ") == err);
            CHECK(out.payload == PBDATA_PAYLOAD_NONE && out.namespace_name == NULL);
        }
    }

    /* Garbage never crashes, and a refusal always says something. */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int it = 0; it < 2000; it++) {
        size_t n = (size_t)(s % 40);
        uint8_t *p = talloc(n);
        for (size_t i = 0; i < n; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            p[i] = (uint8_t)s;
        }
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int rv = pbdata_decode_write_request(p, n, &out, err, sizeof err);
        CHECK(rv == 0 || (rv == INGOT_E_INVALID && err[0] != '\0'));
        if (rv == 0) CHECK(out.precision <= LP_PRECISION_S);
        rv = dec(p, n, LP_PRECISION_NS);
        CHECK(rv == 0 || (rv == INGOT_E_INVALID && err[0] != '\0' && batch.line_count == 0));
        if (it % 256 == 255) pool_free();
    }
    pool_free();
}

/* ---------------------------------------------------------------------------------------------
 * Round trip of random batches
 */

static uint64_t rng_state = 20240601;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void rnd_string(char *out, size_t min_len)
{
    static const char alphabet[] = "abcXYZ019 ,=\\\"\t\xc3\xa9\x7f";
    size_t n = min_len + rnd() % 12;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd() % (sizeof alphabet - 1)];
    out[n] = '\0';
}

static int64_t rnd_i64(void)
{
    uint64_t v = rnd() >> (rnd() % 64);
    return (rnd() & 1) ? -(int64_t)(v >> 1) : (int64_t)v;
}

static void gen_table(pb_db *db, uint32_t rows, enum lp_precision prec)
{
    static const char *const tables[] = {"cpu", "mem", "disk,io", "net work"};
    pb_tb *tb = tb_new(db, tables[rnd() % 4], rows);
    int ntags = (int)(rnd() % 5), nfields = 1 + (int)(rnd() % 5);
    int ncols = 1 + ntags + nfields;
    int kinds[16];
    for (int c = 0; c < ncols; c++)
        kinds[c] = c == 0 ? SEM_TIME : c <= ntags ? SEM_TAG : SEM_FIELD;
    for (int c = ncols - 1; c > 0; c--) { /* shuffle the column order */
        int j = (int)(rnd() % (uint64_t)(c + 1)), k = kinds[c];
        kinds[c] = kinds[j];
        kinds[j] = k;
    }
    /* Masks first: per column no nulls, about a third, or all null. */
    char masks[16][72];
    int first_field = -1;
    for (int c = 0; c < ncols; c++) {
        int mode = kinds[c] == SEM_TIME ? 0 : (int)(rnd() % 4);
        for (uint32_t r = 0; r < rows; r++)
            masks[c][r] = mode == 0 ? '0' : mode == 3 ? '1' : (rnd() % 3 == 0 ? '1' : '0');
        masks[c][rows] = '\0';
        if (kinds[c] == SEM_FIELD && first_field < 0) first_field = c;
    }
    /* Every row needs a field: clear the first field column's bit where all fields are null. */
    for (uint32_t r = 0; r < rows; r++) {
        bool any = false;
        for (int c = 0; c < ncols; c++)
            if (kinds[c] == SEM_FIELD && masks[c][r] == '0') any = true;
        if (!any) masks[first_field][r] = '0';
    }
    int tag_i = 0, field_i = 0;
    for (int c = 0; c < ncols; c++) {
        char name[16];
        if (kinds[c] == SEM_TIME) {
            int64_t tv[64];
            int64_t lim = INT64_MAX / prec_mult(prec);
            for (uint32_t r = 0; r < rows; r++) {
                tv[r] = rnd_i64() % lim;
                if (rnd() % 16 == 0) tv[r] = (rnd() & 1) ? lim : -lim;
            }
            time_col(tb, rows, tv);
            continue;
        }
        pb_col *col;
        size_t nn = 0;
        for (uint32_t r = 0; r < rows; r++)
            nn += masks[c][r] == '0';
        char sbuf[64][16];
        const char *sv[64];
        if (kinds[c] == SEM_TAG) {
            snprintf(name, sizeof name, "t%d", tag_i++);
            col = col_new(tb, name, SEM_TAG);
            for (size_t i = 0; i < nn; i++) {
                rnd_string(sbuf[i], 1);
                sv[i] = sbuf[i];
            }
            col_str(col, nn, sv);
        } else {
            snprintf(name, sizeof name, "f%d", field_i++);
            col = col_new(tb, name, SEM_FIELD);
            int64_t iv[64];
            uint64_t uv[64];
            double dv[64];
            int bv[64];
            for (size_t i = 0; i < nn; i++) {
                iv[i] = rnd_i64();
                uv[i] = rnd() >> (rnd() % 64);
                uint64_t bits = rnd();
                memcpy(&dv[i], &bits, 8); /* any finite bit pattern: denormals, -0 */
                if (!isfinite(dv[i])) dv[i] = (double)(int64_t)bits;
                bv[i] = (int)(rnd() & 1);
                rnd_string(sbuf[i], 0);
                sv[i] = sbuf[i];
            }
            switch (1 + rnd() % 5) {
            case 1:
                col_i64(col, nn, iv);
                break;
            case 2:
                col_f64(col, nn, dv);
                break;
            case 3:
                col_u64(col, nn, uv);
                break;
            case 4:
                col_str(col, nn, sv);
                break;
            default:
                col_bool(col, nn, bv);
                break;
            }
        }
        if (strchr(masks[c], '1') || rnd() % 4 == 0) col_mask(col, masks[c]);
    }
}

static void test_round_trip_random(void)
{
    size_t total_lines = 0, total_fields = 0;
    int failed_before = test_failed_checks;
    for (int it = 0; it < 400; it++) {
        enum lp_precision prec = (enum lp_precision)(rnd() % 4);
        pb_db *db = db_new();
        int ntables = 1 + (int)(rnd() % 3);
        for (int t = 0; t < ntables; t++) {
            uint32_t rows = (uint32_t)(rnd() % 6 == 0 ? 17 : rnd() % 41);
            gen_table(db, rows, prec);
        }
        size_t len;
        uint8_t *m = pack_db(db, &len);
        int rv = dec(m, len, prec);
        if (rv != 0) fprintf(stderr, "  iteration %d: %s\n", it, err);
        CHECK_EQ_INT(rv, 0);
        check_rows(db, prec, m, len);
        total_lines += batch.line_count;
        total_fields += batch.field_count;
        /* protobuf-c reads the same bytes back to the same message (the encoder is sane). */
        pb_db *back = ingot__write__v1__database_batch__unpack(NULL, len, m);
        CHECK(back != NULL);
        if (back) {
            CHECK_EQ_INT(back->n_table_batches, db->n_table_batches);
            ingot__write__v1__database_batch__free_unpacked(back, NULL);
        }
        pool_free();
        if (test_failed_checks != failed_before) break; /* one report is enough */
    }
    CHECK(total_lines > 5000);
    CHECK(total_fields > total_lines);
}

int main(void)
{
    TEST_RUN(test_every_type);
    TEST_RUN(test_nulls_across_bytes);
    TEST_RUN(test_all_null_columns);
    TEST_RUN(test_several_tables);
    TEST_RUN(test_precisions);
    TEST_RUN(test_unpacked_and_split);
    TEST_RUN(test_unknown_fields);
    TEST_RUN(test_refusals_names_and_types);
    TEST_RUN(test_refusals_masks_and_values);
    TEST_RUN(test_refusals_malformed);
    TEST_RUN(test_rollback_and_reuse);
    TEST_RUN(test_compact_limits);
    TEST_RUN(test_write_request);
    TEST_RUN(test_round_trip_random);
    lp_batch_free(&batch);
    free(pool);
    TEST_MAIN_END();
}
