/*
 * fuzz_names.c: libFuzzer target for the name rules and the schema check (src/dml/schema.c).
 *
 * Input: byte 0 holds flags (bit 0: partial_ok, bit 1: run a second request over the same cache);
 * the rest is a line-protocol body. The body is parsed with lp_parse and checked against a fresh
 * cache over an in-memory catalog (defined here, so no disk I/O). Properties checked, trapping on
 * violation:
 *   - schema_check returns 0 (the fake catalog never fails);
 *   - every remaining line names a table in tables_out whose name is the unescaped measurement,
 *     and every tag/field index names a column whose name is the unescaped key and whose type is
 *     tag / the field's type;
 *   - errors are in line order, at most bad_line_count of them, with a column inside the line;
 *   - every name in the cache is 1..255 bytes of valid UTF-8 without control bytes;
 *   - schema_namespace_name_valid agrees with a straightforward reference of the rule.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "dml/schema.h"
#include "lp/lp.h"
#include "util/error.h"

#define FAKE_MAX 4096

typedef struct fake_row {
    int64_t parent;
    char *name;
    int type;
} fake_row;

typedef struct fake_catalog {
    fake_row ns[FAKE_MAX], tables[FAKE_MAX], cols[FAKE_MAX * 4];
    int64_t n_ns, n_tables, n_cols;
} fake_catalog;

static int64_t fake_find(fake_row *rows, int64_t n, int64_t parent, const char *name)
{
    for (int64_t i = 0; i < n; i++)
        if (rows[i].parent == parent && strcmp(rows[i].name, name) == 0) return i;
    return -1;
}

static int fake_add(fake_row *rows, int64_t *n, int64_t cap, int64_t parent, const char *name,
                    int type)
{
    if (*n >= cap) return INGOT_E_CATALOG;
    char *copy = strdup(name);
    if (!copy) return INGOT_E_NOMEM;
    rows[*n] = (fake_row){.parent = parent, .name = copy, .type = type};
    (*n)++;
    return 0;
}

static int fake_ns_lookup(void *self, const char *name, int64_t *id)
{
    fake_catalog *c = self;
    int64_t i = fake_find(c->ns, c->n_ns, 0, name);
    if (i < 0) return INGOT_E_NOT_FOUND;
    *id = i + 1;
    return 0;
}

static int fake_ns_create(void *self, const char *name, int64_t *id)
{
    fake_catalog *c = self;
    if (fake_ns_lookup(self, name, id) == 0) return 0;
    int rc = fake_add(c->ns, &c->n_ns, FAKE_MAX, 0, name, 0);
    if (rc == 0) *id = c->n_ns;
    return rc;
}

static int fake_table_create(void *self, int64_t ns, const char *name, int64_t *id)
{
    fake_catalog *c = self;
    int64_t i = fake_find(c->tables, c->n_tables, ns, name);
    if (i >= 0) {
        *id = i + 1;
        return 0;
    }
    int rc = fake_add(c->tables, &c->n_tables, FAKE_MAX, ns, name, 0);
    if (rc == 0) *id = c->n_tables;
    return rc;
}

static int fake_list_tables(void *self, int64_t ns, catalog_table_cb cb, void *arg)
{
    fake_catalog *c = self;
    for (int64_t i = 0; i < c->n_tables; i++)
        if (c->tables[i].parent == ns) cb(arg, i + 1, c->tables[i].name);
    return 0;
}

static int fake_list_columns(void *self, int64_t table, catalog_column_cb cb, void *arg)
{
    fake_catalog *c = self;
    for (int64_t i = 0; i < c->n_cols; i++)
        if (c->cols[i].parent == table) cb(arg, i + 1, c->cols[i].name, c->cols[i].type);
    return 0;
}

static int fake_column_upsert(void *self, int64_t table, const char *name, int type, int64_t *id,
                              int *existing)
{
    fake_catalog *c = self;
    int64_t i = fake_find(c->cols, c->n_cols, table, name);
    if (i < 0) {
        int rc = fake_add(c->cols, &c->n_cols, FAKE_MAX * 4, table, name, type);
        if (rc) return rc;
        i = c->n_cols - 1;
    }
    *id = i + 1;
    if (c->cols[i].type != type) {
        *existing = c->cols[i].type;
        return INGOT_E_SCHEMA;
    }
    return 0;
}

static void fake_close(void *self)
{
    fake_catalog *c = self;
    for (int64_t i = 0; i < c->n_ns; i++)
        free(c->ns[i].name);
    for (int64_t i = 0; i < c->n_tables; i++)
        free(c->tables[i].name);
    for (int64_t i = 0; i < c->n_cols; i++)
        free(c->cols[i].name);
    free(c);
}

static bool ref_namespace_valid(const uint8_t *s, size_t len)
{
    if (len < 1 || len > 64) return false;
    if (len == 1 && s[0] == '.') return false;
    if (len == 2 && s[0] == '.' && s[1] == '.') return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", s[i]) ||
            s[i] == 0)
            return false;
    return true;
}

static bool same_name(const lp_batch *b, const schema_column *col, lp_str key, char *buf)
{
    size_t n = lp_str_unescape(b, key, buf);
    return col->name_len == n && memcmp(col->name, buf, n) == 0;
}

/* Reference: the length of the well-formed UTF-8 sequence at s (Unicode Table 3-7), or 0. */
static size_t ref_utf8_len(const unsigned char *s, size_t avail)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
               : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (n == 0 || avail < n) return 0;
    unsigned char lo = s[0] == 0xE0 ? 0xA0 : s[0] == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = s[0] == 0xED ? 0x9F : s[0] == 0xF4 ? 0x8F : 0xBF;
    if (n > 1 && (s[1] < lo || s[1] > hi)) return 0;
    for (size_t k = 2; k < n; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return n;
}

static void check_name_ok(const char *name, uint32_t len)
{
    if (len < 1 || len > SCHEMA_MAX_NAME_BYTES || strlen(name) != len) __builtin_trap();
    for (uint32_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7F) __builtin_trap();
    for (uint32_t i = 0; i < len;) {
        size_t n = ref_utf8_len((const unsigned char *)name + i, len - i);
        if (n == 0) __builtin_trap(); /* names are valid UTF-8 */
        i += (uint32_t)n;
    }
}

static void run_check(schema_cache *cache, schema_namespace *ns, const char *body, size_t len,
                      bool partial_ok)
{
    lp_batch b = {0};
    schema_op_tables t = {0};
    lp_options o = {.precision = LP_PRECISION_NS, .max_errors = 100};
    char err[256];
    char *buf = malloc(len + 1);
    if (!buf || lp_parse(body, len, &o, &b) != 0) goto out;
    size_t bad_before = b.bad_line_count;
    if (schema_check(cache, ns, &b, partial_ok, &t, err, sizeof err) != 0) __builtin_trap();
    if (b.error_count > b.bad_line_count || b.bad_line_count < bad_before) __builtin_trap();
    for (size_t i = 0; i < b.error_count; i++) {
        const lp_error *e = &b.errors[i];
        if (i && e->line_number < b.errors[i - 1].line_number) __builtin_trap();
        if (e->column < 1 || e->column > e->line_len + 1) __builtin_trap();
    }
    if (!partial_ok && b.bad_line_count) goto out; /* refused: nothing is resolved */
    for (size_t l = 0; l < b.line_count; l++) {
        const lp_line *line = &b.lines[l];
        if (line->table_slot >= t.count) __builtin_trap();
        const schema_table *tb = t.tables[line->table_slot];
        size_t n = lp_str_unescape(&b, line->measurement, buf);
        if (tb->name_len != n || memcmp(tb->name, buf, n) != 0) __builtin_trap();
        uint32_t count = atomic_load(&tb->column_count);
        for (uint32_t k = 0; k < line->tag_count; k++) {
            const lp_tag *tag = &b.tags[line->first_tag + k];
            if (tag->column >= count || tb->columns[tag->column].type != 7 ||
                !same_name(&b, &tb->columns[tag->column], lp_tag_key(tag), buf))
                __builtin_trap();
        }
        for (uint32_t k = 0; k < line->field_count; k++) {
            const lp_field *f = &b.fields[line->first_field + k];
            if (f->column >= count || tb->columns[f->column].type != f->type ||
                !same_name(&b, &tb->columns[f->column], lp_field_key(f), buf))
                __builtin_trap();
        }
    }
    for (size_t i = 0; i < t.count; i++) {
        const schema_table *tb = t.tables[i];
        check_name_ok(tb->name, tb->name_len);
        uint32_t count = atomic_load(&tb->column_count);
        if (count < 1 || count > SCHEMA_MAX_COLUMNS || strcmp(tb->columns[0].name, "time") != 0)
            __builtin_trap();
        for (uint32_t c = 0; c < count; c++) {
            check_name_ok(tb->columns[c].name, tb->columns[c].name_len);
            if (schema_column_find(tb, tb->columns[c].name, tb->columns[c].name_len) != (int)c)
                __builtin_trap();
        }
    }
out:
    free(buf);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char err[256];
    size_t nl = size - 1 < 80 ? size - 1 : 80;
    if (schema_namespace_name_valid((const char *)data + 1, nl, err, sizeof err) !=
        ref_namespace_valid(data + 1, nl))
        __builtin_trap();

    fake_catalog *fc = calloc(1, sizeof *fc);
    if (!fc) return 0;
    catalog cat = {.self = fc,
                   .namespace_get_or_create = fake_ns_create,
                   .namespace_lookup = fake_ns_lookup,
                   .table_get_or_create = fake_table_create,
                   .list_tables = fake_list_tables,
                   .list_columns = fake_list_columns,
                   .column_upsert = fake_column_upsert,
                   .close = fake_close};
    schema_cache *cache = schema_cache_new(&cat);
    schema_namespace *ns;
    if (cache && schema_namespace_get(cache, "db", true, &ns, err, sizeof err) == 0) {
        bool partial_ok = data[0] & 1;
        run_check(cache, ns, (const char *)data + 1, size - 1, partial_ok);
        if (data[0] & 2) run_check(cache, ns, (const char *)data + 1, size - 1, !partial_ok);
        /* a fresh cache over the same catalog loads what the first one created */
        schema_cache *again = schema_cache_new(&cat);
        schema_namespace *ns2;
        if (again && schema_namespace_get(again, "db", false, &ns2, err, sizeof err) == 0)
            run_check(again, ns2, (const char *)data + 1, size - 1, true);
        schema_cache_free(again);
    }
    schema_cache_free(cache);
    cat.close(cat.self);
    return 0;
}
