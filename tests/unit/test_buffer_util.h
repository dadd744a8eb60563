/*
 * test_buffer_util.h: helpers shared by the buffer's unit tests: schema tables and line-protocol
 * batches built by hand (no parser, no schema cache), applying them through the sink, and
 * rendering query answers as text so tests can compare whole answers.
 */
#ifndef INGOT_TEST_BUFFER_UTIL_H
#define INGOT_TEST_BUFFER_UTIL_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/buffer.h"
#include "util/error.h"

#define NS_PER_DAY (86400LL * 1000000000LL)

static inline schema_table *tb_table(const char *name)
{
    schema_table *t = calloc(1, sizeof *t);
    t->name = name;
    t->name_len = (uint32_t)strlen(name);
    t->columns[0].name = "time";
    t->columns[0].name_len = 4;
    t->columns[0].type = COLUMN_TIME;
    atomic_store(&t->column_count, 1);
    return t;
}

/* Index of column name, created with type if absent. */
static inline uint16_t tb_col(schema_table *t, const char *name, uint8_t type)
{
    uint32_t n = atomic_load(&t->column_count);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(t->columns[i].name, name) == 0) return (uint16_t)i;
    t->columns[n].name = name;
    t->columns[n].name_len = (uint32_t)strlen(name);
    t->columns[n].type = type;
    atomic_store_explicit(&t->column_count, n + 1, memory_order_release);
    return (uint16_t)n;
}

typedef struct tb_op {
    lp_batch b;
    char *text; /* the batch's base: every string of the batch is copied here */
    size_t text_len, text_cap;
    schema_op_tables tables;
    schema_table *slots[8];
    dml_op op;
} tb_op;

static inline void tb_op_init(tb_op *o, const char *ns, uint64_t seq)
{
    memset(o, 0, sizeof *o);
    o->tables.tables = o->slots;
    o->op.sequence = seq;
    o->op.namespace_name = ns;
    o->op.namespace_len = strlen(ns);
    o->op.batch = &o->b;
    o->op.tables = &o->tables;
}

static inline void tb_op_free(tb_op *o)
{
    free(o->b.lines);
    free(o->b.tags);
    free(o->b.fields);
    free(o->text);
}

/* s copied into the op's text, as an lp_str of its batch (whose base follows the text). */
static inline lp_str tb_str(tb_op *o, const char *s, uint32_t escaped)
{
    size_t n = strlen(s);
    if (!o->text || o->text_len + n > o->text_cap) {
        o->text_cap = (o->text_len + n) * 2 + 64;
        o->text = realloc(o->text, o->text_cap);
    }
    memcpy(o->text + o->text_len, s, n);
    lp_str r = {.off = (uint32_t)o->text_len, .len = (uint32_t)n, .escaped = escaped};
    o->text_len += n;
    o->b.base = o->text;
    return r;
}

/* Start a line of table t at time_ns. */
static inline void tb_line(tb_op *o, schema_table *t, int64_t time_ns)
{
    uint32_t slot = 0;
    while (slot < o->tables.count && o->slots[slot] != t)
        slot++;
    if (slot == o->tables.count) o->slots[o->tables.count++] = t;
    if (o->b.line_count == o->b.line_cap) {
        o->b.line_cap = o->b.line_cap ? o->b.line_cap * 2 : 16;
        o->b.lines = realloc(o->b.lines, o->b.line_cap * sizeof *o->b.lines);
    }
    lp_line *ln = &o->b.lines[o->b.line_count++];
    memset(ln, 0, sizeof *ln);
    ln->measurement = tb_str(o, t->name, 0);
    ln->line_number = (uint32_t)o->b.line_count;
    ln->first_tag = (uint32_t)o->b.tag_count;
    ln->first_field = (uint32_t)o->b.field_count;
    ln->time_ns = time_ns;
    ln->table_slot = slot;
    o->op.row_count = o->b.line_count;
}

static inline lp_line *tb_cur(tb_op *o, schema_table **t)
{
    lp_line *ln = &o->b.lines[o->b.line_count - 1];
    *t = o->slots[ln->table_slot];
    return ln;
}

static inline void tb_tag_esc(tb_op *o, const char *key, const char *value, uint32_t escaped)
{
    schema_table *t;
    lp_line *ln = tb_cur(o, &t);
    if (o->b.tag_count == o->b.tag_cap) {
        o->b.tag_cap = o->b.tag_cap ? o->b.tag_cap * 2 : 16;
        o->b.tags = realloc(o->b.tags, o->b.tag_cap * sizeof *o->b.tags);
    }
    lp_tag *tg = &o->b.tags[o->b.tag_count++];
    lp_tag_set_key(tg, tb_str(o, key, 0));
    tg->value = tb_str(o, value, escaped);
    tg->column = tb_col(t, key, COLUMN_TAG);
    ln->tag_count++;
}

static inline void tb_tag(tb_op *o, const char *key, const char *value)
{
    tb_tag_esc(o, key, value, 0);
}

static inline lp_field *tb_field(tb_op *o, const char *key, uint8_t type)
{
    schema_table *t;
    lp_line *ln = tb_cur(o, &t);
    if (o->b.field_count == o->b.field_cap) {
        o->b.field_cap = o->b.field_cap ? o->b.field_cap * 2 : 16;
        o->b.fields = realloc(o->b.fields, o->b.field_cap * sizeof *o->b.fields);
    }
    lp_field *f = &o->b.fields[o->b.field_count++];
    memset(f, 0, sizeof *f);
    lp_field_set_key(f, tb_str(o, key, 0));
    f->type = type;
    f->column = tb_col(t, key, type);
    ln->field_count++;
    return f;
}

static inline void tb_i64(tb_op *o, const char *key, int64_t v)
{
    tb_field(o, key, LP_FIELD_I64)->value.i64 = v;
}
static inline void tb_u64(tb_op *o, const char *key, uint64_t v)
{
    tb_field(o, key, LP_FIELD_U64)->value.u64 = v;
}
static inline void tb_f64(tb_op *o, const char *key, double v)
{
    tb_field(o, key, LP_FIELD_F64)->value.f64 = v;
}
static inline void tb_bool(tb_op *o, const char *key, bool v)
{
    tb_field(o, key, LP_FIELD_BOOL)->value.boolean = v;
}
static inline void tb_string_esc(tb_op *o, const char *key, const char *v, uint32_t escaped)
{
    lp_field *f = tb_field(o, key, LP_FIELD_STRING);
    f->value.str = tb_str(o, v, escaped);
}
static inline void tb_string(tb_op *o, const char *key, const char *v)
{
    tb_string_esc(o, key, v, 0);
}

static inline int tb_apply(buffer_tree *tree, tb_op *o)
{
    dml_sink sink = buffer_tree_as_sink(tree);
    return dml_sink_apply(&sink, &o->op);
}

/* ---- rendering answers ---------------------------------------------------------------------- */

typedef struct tb_text {
    char *s;
    size_t len, cap;
} tb_text;

static inline void tb_printf(tb_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void tb_printf(tb_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->s = realloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static inline int tb_bit(const uint8_t *b, size_t i)
{
    return (b[i >> 3] >> (i & 7)) & 1;
}

static inline void tb_cell(tb_text *t, const query_column *c, size_t r)
{
    if (c->validity && !tb_bit(c->validity, r)) {
        tb_printf(t, "null");
        return;
    }
    switch (c->type) {
    case COLUMN_I64:
    case COLUMN_TIME:
        tb_printf(t, "%" PRId64, c->data.i64[r]);
        break;
    case COLUMN_U64:
        tb_printf(t, "%" PRIu64 "u", c->data.u64[r]);
        break;
    case COLUMN_F64:
        tb_printf(t, "%g", c->data.f64[r]);
        break;
    case COLUMN_BOOL:
        tb_printf(t, "%s", tb_bit(c->data.bits, r) ? "true" : "false");
        break;
    case COLUMN_STRING: {
        int32_t a = c->data.str.offsets[r], b = c->data.str.offsets[r + 1];
        tb_printf(t, "\"%.*s\"", (int)(b - a), c->data.str.bytes + a);
        break;
    }
    case COLUMN_TAG: {
        int32_t id = c->data.tag.ids[r];
        if (id < 0 || (uint32_t)id >= c->data.tag.dict_count) {
            tb_printf(t, "<bad id %d>", id);
            break;
        }
        int32_t a = c->data.tag.dict_offsets[id], b = c->data.tag.dict_offsets[id + 1];
        tb_printf(t, "%.*s", (int)(b - a), c->data.tag.dict_bytes + a);
        break;
    }
    default:
        tb_printf(t, "?");
    }
}

/* A batch as "key rows=N: col,col\nv|v\n..." */
static inline void tb_render_batch(tb_text *t, const query_batch *b)
{
    tb_printf(t, "%s rows=%zu:", b->partition_key, b->row_count);
    for (size_t c = 0; c < b->column_count; c++)
        tb_printf(t, "%s%s", c ? "," : " ", b->columns[c].name);
    tb_printf(t, "\n");
    for (size_t r = 0; r < b->row_count; r++) {
        for (size_t c = 0; c < b->column_count; c++) {
            if (c) tb_printf(t, "|");
            tb_cell(t, &b->columns[c], r);
        }
        tb_printf(t, "\n");
    }
}

/* The whole answer of a query as text (caller frees), or "ERR <code>: <message>". */
static inline char *tb_query(buffer_tree *tree, const char *ns, const char *table,
                             const char *const *cols, size_t ncols, int64_t min_ns, int64_t max_ns)
{
    query_exec qe = buffer_tree_as_query_exec(tree);
    query_request req = {.namespace_name = ns,
                         .table_name = table,
                         .columns = cols,
                         .column_count = ncols,
                         .min_time_ns = min_ns,
                         .max_time_ns = max_ns};
    query_stream *s;
    char err[256] = "";
    tb_text t = {0};
    tb_printf(&t, "%s", "");
    int rc = qe.query(qe.self, &req, &s, err, sizeof err);
    if (rc) {
        tb_printf(&t, "ERR %d: %s", rc, err);
        return t.s;
    }
    query_batch *b;
    while ((rc = query_stream_next(s, &b)) == 1) {
        tb_render_batch(&t, b);
        query_batch_free(b);
    }
    if (rc < 0) tb_printf(&t, "ERR %d\n", rc);
    query_stream_close(s);
    return t.s;
}

static inline char *tb_query_all(buffer_tree *tree, const char *ns, const char *table)
{
    return tb_query(tree, ns, table, NULL, 0, INT64_MIN, INT64_MAX);
}

#endif
