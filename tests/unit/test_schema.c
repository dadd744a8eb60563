/*
 * test_schema.c: the schema cache and schema_check (src/dml/schema.c) over the real SQLite
 * catalog in a temp dir, with batches from the real line-protocol parser.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "dml/schema.h"
#include "lp/lp.h"
#include "test.h"
#include "util/column_type.h"
#include "util/error.h"

static char tmp_dir[256];

typedef struct fixture {
    char path[512];
    catalog cat;
    schema_cache *cache;
    schema_namespace *ns;
} fixture;

static bool fx_open(fixture *f, const char *name)
{
    char err[256] = "";
    snprintf(f->path, sizeof f->path, "%s/%s.sqlite", tmp_dir, name);
    if (catalog_sqlite_open(f->path, &f->cat, err, sizeof err) != 0) {
        fprintf(stderr, "open catalog: %s\n", err);
        return false;
    }
    f->cache = schema_cache_new(&f->cat);
    if (!f->cache) return false;
    return schema_namespace_get(f->cache, "db", true, &f->ns, err, sizeof err) == 0;
}

static void fx_close(fixture *f)
{
    schema_cache_free(f->cache);
    f->cat.close(f->cat.self);
}

/* Parse body into b (reset first) with max_errors 100. */
static void parse(lp_batch *b, const char *body)
{
    lp_batch_reset(b);
    lp_options o = {.precision = LP_PRECISION_NS, .default_time_ns = 1, .max_errors = 100};
    if (lp_parse(body, strlen(body), &o, b) != 0) fprintf(stderr, "lp_parse failed\n");
}

/* Parse and check; returns schema_check's code. */
static int check(fixture *f, lp_batch *b, const char *body, bool partial_ok, schema_op_tables *t)
{
    char err[256] = "";
    parse(b, body);
    int rc = schema_check(f->cache, f->ns, b, partial_ok, t, err, sizeof err);
    if (rc) fprintf(stderr, "  schema_check: %s (%s)\n", ingot_strerror(rc), err);
    return rc;
}

static int count_rows(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) goto out;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) goto out;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static const char *col_name(const schema_table *t, uint16_t idx)
{
    return idx < atomic_load(&t->column_count) ? t->columns[idx].name : "(bad index)";
}

static void test_create_namespace_table_columns(void)
{
    fixture f;
    CHECK(fx_open(&f, "create"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "cpu,host=a usage=1.5,count=3i 10\nmem free=1u\ncpu,host=b usage=2",
                       false, &t),
                 0);
    CHECK_EQ_INT(b.bad_line_count, 0);
    CHECK_EQ_INT(b.line_count, 3);
    CHECK_EQ_INT(t.count, 2);
    schema_table *cpu = schema_table_find(f.ns, "cpu", 3);
    schema_table *mem = schema_table_find(f.ns, "mem", 3);
    CHECK(cpu && mem);
    if (!cpu || !mem) goto out;
    CHECK(t.tables[0] == cpu);
    CHECK(t.tables[1] == mem);
    CHECK_EQ_INT(b.lines[0].table_slot, 0);
    CHECK_EQ_INT(b.lines[1].table_slot, 1);
    CHECK_EQ_INT(b.lines[2].table_slot, 0);
    CHECK_EQ_INT(atomic_load(&cpu->column_count), 4);
    CHECK_EQ_STR(cpu->columns[0].name, "time");
    CHECK_EQ_INT(cpu->columns[0].type, COLUMN_TIME);
    CHECK_EQ_STR(mem->columns[0].name, "time");
    CHECK_EQ_STR(col_name(cpu, b.tags[b.lines[0].first_tag].column), "host");
    CHECK_EQ_INT(cpu->columns[b.tags[b.lines[0].first_tag].column].type, COLUMN_TAG);
    lp_field *f0 = &b.fields[b.lines[0].first_field];
    CHECK_EQ_STR(col_name(cpu, f0[0].column), "usage");
    CHECK_EQ_INT(cpu->columns[f0[0].column].type, COLUMN_F64);
    CHECK_EQ_STR(col_name(cpu, f0[1].column), "count");
    CHECK_EQ_INT(cpu->columns[f0[1].column].type, COLUMN_I64);
    CHECK_EQ_INT(schema_column_find(cpu, "count", 5), f0[1].column);
    CHECK_EQ_INT(schema_column_find(cpu, "nope", 4), -1);
    CHECK_EQ_STR(col_name(mem, b.fields[b.lines[1].first_field].column), "free");
    CHECK_EQ_INT(b.fields[b.lines[2].first_field].column, f0[0].column);
    /* the catalog holds the same */
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name"), 2);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name"), 6);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name WHERE name='time' AND "
                                    "column_type=6"),
                 2);
    CHECK_EQ_STR(schema_namespace_name(f.ns), "db");
    CHECK(schema_namespace_id(f.ns) > 0);
    /* a second identical request creates nothing and resolves the same */
    CHECK_EQ_INT(check(&f, &b, "cpu,host=c usage=3,count=4i", false, &t), 0);
    CHECK_EQ_INT(b.fields[b.lines[0].first_field + 1].column, schema_column_find(cpu, "count", 5));
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name"), 6);
    /* a namespace that is not there */
    schema_namespace *other;
    char err[128];
    CHECK_EQ_INT(schema_namespace_get(f.cache, "nothere", false, &other, err, sizeof err),
                 INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM namespace"), 1);
    schema_namespace *again;
    CHECK_EQ_INT(schema_namespace_get(f.cache, "db", false, &again, err, sizeof err), 0);
    CHECK(again == f.ns);
out:
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_type_conflict_stored(void)
{
    fixture f;
    CHECK(fx_open(&f, "stored"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "cpu,host=a x=1i", false, &t), 0);
    CHECK_EQ_INT(check(&f, &b, "cpu,host=a x=1.5", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(b.line_count, 0);
    CHECK_EQ_INT(t.count, 0);
    CHECK_EQ_INT(b.error_count, 1);
    CHECK_EQ_STR(b.errors[0].message,
                 "column \"x\" of table \"cpu\" has type i64; the write sends f64");
    CHECK_EQ_INT(b.errors[0].line_number, 1);
    CHECK_EQ_INT(b.errors[0].column, 12);
    /* tag stored, sent as field */
    CHECK_EQ_INT(check(&f, &b, "cpu host=\"a\"", false, &t), 0);
    CHECK_EQ_INT(b.error_count, 1);
    CHECK_EQ_STR(b.errors[0].message,
                 "column \"host\" of table \"cpu\" has type tag; the write sends string");
    CHECK_EQ_INT(b.errors[0].column, 5);
    /* field stored, sent as tag */
    CHECK_EQ_INT(check(&f, &b, "cpu,x=1 y=1", false, &t), 0);
    CHECK_EQ_INT(b.error_count, 1);
    CHECK_EQ_STR(b.errors[0].message,
                 "column \"x\" of table \"cpu\" has type i64; the write sends tag");
    CHECK_EQ_INT(schema_column_find(schema_table_find(f.ns, "cpu", 3), "y", 1), -1);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_conflict_in_one_request(void)
{
    fixture f;
    CHECK(fx_open(&f, "inrequest"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    const char *body = "cpu x=1i\ncpu x=2.5\ncpu,x=a y=1\nmem,h=a v=1\nmem h=1i";
    CHECK_EQ_INT(check(&f, &b, body, false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 3);
    CHECK_EQ_INT(b.error_count, 3);
    CHECK_EQ_INT(b.errors[0].line_number, 2);
    CHECK_EQ_STR(b.errors[0].message, "column \"x\" is i64 but the write sends f64");
    CHECK_EQ_INT(b.errors[0].column, 5);
    CHECK_EQ_INT(b.errors[1].line_number, 3);
    CHECK_EQ_STR(b.errors[1].message, "column \"x\" is i64 but the write sends tag");
    CHECK_EQ_INT(b.errors[2].line_number, 5);
    CHECK_EQ_STR(b.errors[2].message, "column \"h\" is tag but the write sends i64");
    /* refused without partial_ok: phase 1 created nothing */
    CHECK_EQ_INT(t.count, 0);
    CHECK(schema_table_find(f.ns, "cpu", 3) == NULL);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name"), 0);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name"), 0);
    /* partial: the good lines go through */
    CHECK_EQ_INT(check(&f, &b, body, true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 3);
    CHECK_EQ_INT(b.line_count, 2);
    CHECK_EQ_INT(b.lines[0].line_number, 1);
    CHECK_EQ_INT(b.lines[1].line_number, 4);
    CHECK_EQ_INT(t.count, 2);
    schema_table *cpu = schema_table_find(f.ns, "cpu", 3);
    CHECK(cpu != NULL);
    if (cpu) {
        CHECK_EQ_INT(atomic_load(&cpu->column_count), 2); /* time, x; not y (only a bad line) */
        CHECK_EQ_INT(cpu->columns[schema_column_find(cpu, "x", 1)].type, COLUMN_I64);
    }
    CHECK_EQ_INT(b.lines[1].table_slot, 1);
    CHECK(t.tables[1] == schema_table_find(f.ns, "mem", 3));
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_phase1_no_side_effects(void)
{
    fixture f;
    CHECK(fx_open(&f, "noside"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "cpu,host=a v=1", false, &t), 0);
    int tables = count_rows(f.path, "SELECT count(*) FROM table_name");
    int cols = count_rows(f.path, "SELECT count(*) FROM column_name");
    schema_table *cpu = schema_table_find(f.ns, "cpu", 3);
    uint32_t before = atomic_load(&cpu->column_count);
    /* new table, new tag, new field in good lines; one bad line refuses it all */
    CHECK_EQ_INT(
        check(&f, &b, "disk,dev=sda used=1i\ncpu,host=a,region=eu w=1i\ncpu v=1i", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name"), tables);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name"), cols);
    CHECK(schema_table_find(f.ns, "disk", 4) == NULL);
    CHECK_EQ_INT(atomic_load(&cpu->column_count), before);
    /* a parse error alone also keeps phase 2 from running without partial_ok */
    CHECK_EQ_INT(check(&f, &b, "disk,dev=sda used=1i\ncpu,host=a w=\n", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK(schema_table_find(f.ns, "disk", 4) == NULL);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name"), tables);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_errors_merge_and_cap(void)
{
    fixture f;
    CHECK(fx_open(&f, "merge"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    /* schema error on lines 1 and 3, parse error on line 2 */
    CHECK_EQ_INT(check(&f, &b, "c x=1i\nc x=1i,y=2i\n", false, &t), 0);
    CHECK_EQ_INT(check(&f, &b, "c x=1.0\nc x=\nc y=1u\nc x=5i", true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 3);
    CHECK_EQ_INT(b.error_count, 3);
    CHECK_EQ_INT(b.errors[0].line_number, 1);
    CHECK_EQ_INT(b.errors[1].line_number, 2);
    CHECK_EQ_INT(b.errors[2].line_number, 3);
    CHECK_EQ_STR(b.errors[2].message,
                 "column \"y\" of table \"c\" has type i64; the write sends u64");
    CHECK_EQ_INT(b.line_count, 1);
    CHECK_EQ_INT(b.lines[0].line_number, 4);
    /* 150 bad lines: 100 described, all counted */
    size_t cap = 150 * 16 + 16;
    char *body = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(body + n, cap - n, "c x=%d.5\n", i);
    n += (size_t)snprintf(body + n, cap - n, "c x=7i\n");
    CHECK_EQ_INT(check(&f, &b, body, true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 150);
    CHECK_EQ_INT(b.error_count, 100);
    CHECK_EQ_INT(b.errors[99].line_number, 100);
    CHECK_EQ_INT(b.line_count, 1);
    CHECK_EQ_INT(b.lines[0].line_number, 151);
    free(body);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_column_limit(void)
{
    fixture f;
    CHECK(fx_open(&f, "collimit"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    size_t cap = 64 * 1024;
    char *body = malloc(cap);
    /* one line of 200 fields: 201 columns with time */
    size_t n = (size_t)snprintf(body, cap, "wide ");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(body + n, cap - n, "%sf%d=1", i ? "," : "", i);
    CHECK_EQ_INT(check(&f, &b, body, false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_STR(b.errors[0].message, "column limit of 200 reached in table \"wide\"");
    CHECK_EQ_INT(b.errors[0].column, (int)(strstr(body, ",f199=") - body) + 2);
    CHECK(schema_table_find(f.ns, "wide", 4) == NULL);
    /* 199 fields over two lines of one request: exactly 200 columns */
    n = (size_t)snprintf(body, cap, "wide ");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(body + n, cap - n, "%sf%d=1", i ? "," : "", i);
    n += (size_t)snprintf(body + n, cap - n, "\nwide ");
    for (int i = 100; i < 199; i++)
        n += (size_t)snprintf(body + n, cap - n, "%sf%d=1", i > 100 ? "," : "", i);
    CHECK_EQ_INT(check(&f, &b, body, false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 0);
    schema_table *w = schema_table_find(f.ns, "wide", 4);
    CHECK(w != NULL);
    if (w) CHECK_EQ_INT(atomic_load(&w->column_count), 200);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name"), 200);
    /* one more column is refused; existing ones still work */
    CHECK_EQ_INT(check(&f, &b, "wide f0=2,extra=1\nwide f5=1", true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_STR(b.errors[0].message, "column limit of 200 reached in table \"wide\"");
    CHECK_EQ_INT(b.errors[0].column, 11);
    CHECK_EQ_INT(b.line_count, 1);
    CHECK_EQ_INT(b.fields[b.lines[0].first_field].column, 6);
    free(body);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

/* Fill the catalog with `count` tables t0.. in namespace "db" (one transaction, fast). */
static void fill_tables(const char *path, int64_t ns_id, int count)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_stmt *st, *sc;
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO table_name(namespace_id, name) VALUES(?1, ?2)", -1,
                             &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db,
                             "INSERT INTO column_name(table_id, name, column_type) "
                             "VALUES(?1, 'time', 6)",
                             -1, &sc, NULL) == SQLITE_OK);
    for (int i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        sqlite3_bind_int64(st, 1, ns_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) CHECK(0);
        sqlite3_reset(st);
        sqlite3_bind_int64(sc, 1, sqlite3_last_insert_rowid(db));
        if (sqlite3_step(sc) != SQLITE_DONE) CHECK(0);
        sqlite3_reset(sc);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(sc);
    CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

static void test_table_limit(void)
{
    fixture f;
    char err[256];
    CHECK(fx_open(&f, "tablelimit"));
    int64_t ns_id = schema_namespace_id(f.ns);
    fx_close(&f);
    fill_tables(f.path, ns_id, SCHEMA_MAX_TABLES - 1);
    /* a fresh cache loads all of them */
    CHECK(catalog_sqlite_open(f.path, &f.cat, err, sizeof err) == 0);
    f.cache = schema_cache_new(&f.cat);
    CHECK_EQ_INT(schema_namespace_get(f.cache, "db", false, &f.ns, err, sizeof err), 0);
    CHECK(schema_table_find(f.ns, "t9998", 5) != NULL);
    lp_batch b = {0};
    schema_op_tables t = {0};
    /* two new tables, room for one: refused whole, phase 1 created nothing */
    CHECK_EQ_INT(check(&f, &b, "new1 v=1\nnew2 v=1", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(b.errors[0].line_number, 2);
    CHECK(schema_table_find(f.ns, "new1", 4) == NULL);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name"), SCHEMA_MAX_TABLES - 1);
    /* with partial_ok the second line is refused, the first goes in */
    CHECK_EQ_INT(check(&f, &b, "t5 v=1\nnew1 v=1\nnew1 v=2\nnew2 v=1", true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(b.errors[0].line_number, 4);
    CHECK_EQ_STR(b.errors[0].message, "table limit of 10000 reached in namespace \"db\"");
    CHECK_EQ_INT(b.errors[0].column, 1);
    CHECK_EQ_INT(b.line_count, 3);
    CHECK(schema_table_find(f.ns, "new1", 4) != NULL);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name"), SCHEMA_MAX_TABLES);
    CHECK_EQ_INT(check(&f, &b, "new3 v=1", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(check(&f, &b, "t77 v=1", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 0);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_reload_from_catalog(void)
{
    fixture f;
    char err[256];
    CHECK(fx_open(&f, "reload"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "cpu,host=a u=1,c=2i,s=\"x\",ok=t,n=1u\nmem v=1", false, &t), 0);
    schema_table *a = schema_table_find(f.ns, "cpu", 3);
    schema_cache *fresh = schema_cache_new(&f.cat);
    schema_namespace *ns2;
    CHECK_EQ_INT(schema_namespace_get(fresh, "db", false, &ns2, err, sizeof err), 0);
    CHECK(ns2 != f.ns);
    schema_table *b2 = schema_table_find(ns2, "cpu", 3);
    CHECK(a && b2);
    if (a && b2) {
        CHECK(a != b2);
        CHECK_EQ_INT(a->catalog_id, b2->catalog_id);
        CHECK_EQ_INT(atomic_load(&b2->column_count), 7);
        CHECK_EQ_INT(atomic_load(&a->column_count), atomic_load(&b2->column_count));
        for (uint32_t i = 0; i < atomic_load(&a->column_count); i++) {
            int j = schema_column_find(b2, a->columns[i].name, a->columns[i].name_len);
            CHECK(j >= 0);
            if (j < 0) continue;
            CHECK_EQ_INT(b2->columns[j].type, a->columns[i].type);
            CHECK_EQ_INT(b2->columns[j].catalog_id, a->columns[i].catalog_id);
        }
        CHECK_EQ_STR(b2->columns[0].name, "time");
    }
    CHECK(schema_table_find(ns2, "mem", 3) != NULL);
    schema_cache_free(fresh);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_missing_time_repaired(void)
{
    fixture f;
    char err[256];
    CHECK(fx_open(&f, "repair"));
    int64_t tid, cid;
    int et;
    /* a crash between the table's and its time column's creation */
    CHECK_EQ_INT(f.cat.table_get_or_create(f.cat.self, schema_namespace_id(f.ns), "cpu", &tid), 0);
    CHECK_EQ_INT(f.cat.column_upsert(f.cat.self, tid, "v", COLUMN_F64, &cid, &et), 0);
    schema_cache *fresh = schema_cache_new(&f.cat);
    schema_namespace *ns2;
    CHECK_EQ_INT(schema_namespace_get(fresh, "db", false, &ns2, err, sizeof err), 0);
    schema_table *t = schema_table_find(ns2, "cpu", 3);
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_STR(t->columns[0].name, "time");
        CHECK_EQ_STR(t->columns[1].name, "v");
        CHECK_EQ_INT(t->columns[1].catalog_id, cid);
    }
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name WHERE name='time'"), 1);
    schema_cache_free(fresh);
    fx_close(&f);
}

/* Another writer creates a column with another type between phase 1 and phase 2. */
static void test_catalog_conflict_becomes_line_error(void)
{
    fixture f;
    CHECK(fx_open(&f, "raced"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "cpu v=1", false, &t), 0);
    schema_table *cpu = schema_table_find(f.ns, "cpu", 3);
    int64_t id;
    int et;
    CHECK_EQ_INT(f.cat.column_upsert(f.cat.self, cpu->catalog_id, "x", COLUMN_I64, &id, &et), 0);
    CHECK_EQ_INT(check(&f, &b, "cpu x=1.5,v=2\ncpu v=3", true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_STR(b.errors[0].message,
                 "column \"x\" of table \"cpu\" has type i64; the write sends f64");
    CHECK_EQ_INT(b.errors[0].column, 5);
    CHECK_EQ_INT(b.line_count, 1);
    CHECK_EQ_INT(b.lines[0].line_number, 2);
    /* the cache learnt the stored type */
    int x = schema_column_find(cpu, "x", 1);
    CHECK(x > 0);
    if (x > 0) {
        CHECK_EQ_INT(cpu->columns[x].type, COLUMN_I64);
        CHECK_EQ_INT(cpu->columns[x].catalog_id, id);
    }
    /* without partial_ok the caller sees the bad line and gets no tables */
    CHECK_EQ_INT(f.cat.column_upsert(f.cat.self, cpu->catalog_id, "y", COLUMN_BOOL, &id, &et), 0);
    CHECK_EQ_INT(check(&f, &b, "cpu v=4\ncpu y=\"s\"", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(t.count, 0);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

/* A catalog whose column_upsert fails: the check fails with INGOT_E_CATALOG. */
static int failing_upsert(void *self, int64_t table_id, const char *name, int type, int64_t *id,
                          int *et)
{
    (void)self, (void)table_id, (void)name, (void)type, (void)id, (void)et;
    return INGOT_E_CATALOG;
}

static void test_catalog_failure(void)
{
    fixture f;
    CHECK(fx_open(&f, "catfail"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "cpu v=1", false, &t), 0);
    f.cat.column_upsert = failing_upsert; /* the cache borrows &f.cat */
    char err[256] = "";
    parse(&b, "cpu w=1");
    CHECK_EQ_INT(schema_check(f.cache, f.ns, &b, false, &t, err, sizeof err), INGOT_E_CATALOG);
    CHECK(strstr(err, "\"w\"") != NULL);
    CHECK_EQ_INT(schema_column_find(schema_table_find(f.ns, "cpu", 3), "w", 1), -1);
    parse(&b, "cpu v=2");
    CHECK_EQ_INT(schema_check(f.cache, f.ns, &b, false, &t, err, sizeof err), 0);
    CHECK_EQ_INT(t.count, 1);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_escaped_names(void)
{
    fixture f;
    CHECK(fx_open(&f, "escaped"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    CHECK_EQ_INT(check(&f, &b, "c\\ pu\\,x,ho\\,st=a,k\\=y=b va\\ l=1", false, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 0);
    schema_table *tb = schema_table_find(f.ns, "c pu,x", 6);
    CHECK(tb != NULL);
    if (!tb) goto out;
    CHECK(schema_column_find(tb, "ho,st", 5) > 0);
    CHECK(schema_column_find(tb, "k=y", 3) > 0);
    CHECK(schema_column_find(tb, "va l", 4) > 0);
    CHECK_EQ_INT(atomic_load(&tb->column_count), 4);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM column_name WHERE name='ho,st'"), 1);
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM table_name WHERE name='c pu,x'"), 1);
    /* a later request resolves the escaped keys to the same columns */
    CHECK_EQ_INT(check(&f, &b, "c\\ pu\\,x,k\\=y=z va\\ l=2", false, &t), 0);
    CHECK_EQ_INT(b.tags[b.lines[0].first_tag].column, schema_column_find(tb, "k=y", 3));
    CHECK_EQ_INT(b.fields[b.lines[0].first_field].column, schema_column_find(tb, "va l", 4));
    CHECK(t.count == 1 && t.tables[0] == tb);
out:
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_invalid_names(void)
{
    fixture f;
    CHECK(fx_open(&f, "invalid"));
    lp_batch b = {0};
    schema_op_tables t = {0};
    char body[2048];
    CHECK_EQ_INT(
        check(&f, &b, "cp\x01u v=1\ncpu b\xff=1\ncpu,a\x7f=1 v=1\ncpu v\xc0\x80=1", true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 4);
    CHECK_EQ_INT(b.error_count, 4);
    CHECK_EQ_STR(b.errors[0].message, "invalid table name: the name contains a control character");
    CHECK_EQ_STR(b.errors[1].message, "invalid column name: the name is not valid UTF-8");
    CHECK_EQ_INT(b.errors[1].column, 5);
    CHECK_EQ_STR(b.errors[2].message, "invalid column name: the name contains a control character");
    CHECK_EQ_STR(b.errors[3].message, "invalid column name: the name is not valid UTF-8");
    CHECK(schema_table_find(f.ns, "cpu", 3) == NULL);
    /* 255 bytes is fine, 256 is not; multi-byte UTF-8 is fine */
    memset(body, 0, sizeof body);
    memcpy(body, "cpu ", 4);
    memset(body + 4, 'k', 255);
    memcpy(body + 4 + 255, "=1\ncpu ", 7);
    memset(body + 4 + 255 + 7, 'k', 256);
    strcpy(body + 4 + 255 + 7 + 256, "=1\n\xc3\xa9t\xc3\xa9 \xe2\x82\xac=1");
    CHECK_EQ_INT(check(&f, &b, body, true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(b.errors[0].line_number, 2);
    CHECK_EQ_STR(b.errors[0].message, "invalid column name: the name is longer than 255 bytes");
    CHECK_EQ_INT(b.line_count, 2);
    CHECK(schema_table_find(f.ns, "\xc3\xa9t\xc3\xa9", 5) != NULL);
    /* an escaped key over 255 bytes after unescaping */
    size_t n = (size_t)snprintf(body, sizeof body, "cpu ");
    for (int i = 0; i < 128; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "a\\ ");
    snprintf(body + n, sizeof body - n, "=1");
    CHECK_EQ_INT(check(&f, &b, body, true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_STR(b.errors[0].message, "invalid column name: the name is longer than 255 bytes");
    /* the same 255-byte name escaped is fine (and short escaped measurement works) */
    n = (size_t)snprintf(body, sizeof body, "cpu ");
    for (int i = 0; i < 127; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "a\\ ");
    snprintf(body + n, sizeof body - n, "b=1");
    CHECK_EQ_INT(check(&f, &b, body, true, &t), 0);
    CHECK_EQ_INT(b.bad_line_count, 0);
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

/* "time" as a key: the parser refuses it; the check refuses it too (hand-built line). */
static void test_time_reserved(void)
{
    fixture f;
    CHECK(fx_open(&f, "reserved"));
    const char *text = "cpu time=1i";
    lp_line line = {.measurement = {.off = 0, .len = 3},
                    .text_off = 0,
                    .text_len = (uint32_t)strlen(text),
                    .line_number = 1,
                    .first_field = 0,
                    .field_count = 1};
    lp_field field = {.key_off = 4,
                      .key_len = 4,
                      .type = LP_FIELD_I64,
                      .column = LP_COLUMN_UNRESOLVED,
                      .value.i64 = 1};
    lp_batch b = {.base = text};
    b.lines = malloc(sizeof line);
    b.fields = malloc(sizeof field);
    b.lines[0] = line;
    b.fields[0] = field;
    b.line_count = b.line_cap = 1;
    b.field_count = b.field_cap = 1;
    schema_op_tables t = {0};
    char err[128];
    CHECK_EQ_INT(schema_check(f.cache, f.ns, &b, true, &t, err, sizeof err), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_INT(b.line_count, 0);
    CHECK_EQ_STR(b.errors[0].message, "column name \"time\" is reserved for the timestamp");
    CHECK_EQ_INT(b.errors[0].column, 5);
    /* once the table exists, `time` resolves to the time column: a type conflict */
    b.lines[0] = line;
    b.line_count = 1;
    b.error_count = b.bad_line_count = 0;
    lp_field_set_key(&b.fields[0], (lp_str){.off = 4, .len = 1}); /* "t" */
    CHECK_EQ_INT(schema_check(f.cache, f.ns, &b, true, &t, err, sizeof err), 0);
    CHECK_EQ_INT(b.bad_line_count, 0);
    lp_field_set_key(&b.fields[0], (lp_str){.off = 4, .len = 4});
    CHECK_EQ_INT(schema_check(f.cache, f.ns, &b, true, &t, err, sizeof err), 0);
    CHECK_EQ_INT(b.bad_line_count, 1);
    CHECK_EQ_STR(b.errors[0].message,
                 "column \"time\" of table \"cpu\" has type time; the write sends i64");
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    fx_close(&f);
}

static void test_namespace_names(void)
{
    char err[128];
    CHECK(schema_namespace_name_valid("db", 2, err, sizeof err));
    CHECK(schema_namespace_name_valid("My-db_1.x", 9, err, sizeof err));
    CHECK(schema_namespace_name_valid("...", 3, err, sizeof err));
    CHECK(!schema_namespace_name_valid("", 0, err, sizeof err));
    CHECK(!schema_namespace_name_valid(".", 1, err, sizeof err));
    CHECK(!schema_namespace_name_valid("..", 2, err, sizeof err));
    CHECK(!schema_namespace_name_valid("a/b", 3, err, sizeof err));
    CHECK(strstr(err, "0x2f") != NULL);
    CHECK(!schema_namespace_name_valid("a b", 3, err, sizeof err));
    CHECK(!schema_namespace_name_valid("caf\xc3\xa9", 5, err, sizeof err));
    char longname[80];
    memset(longname, 'a', sizeof longname);
    CHECK(schema_namespace_name_valid(longname, 64, err, sizeof err));
    CHECK(!schema_namespace_name_valid(longname, 65, err, sizeof err));
    fixture f;
    CHECK(fx_open(&f, "nsnames"));
    schema_namespace *ns;
    CHECK_EQ_INT(schema_namespace_get(f.cache, "../etc", true, &ns, err, sizeof err),
                 INGOT_E_INVALID);
    CHECK_EQ_INT(schema_namespace_get(f.cache, "ok.name", true, &ns, err, sizeof err), 0);
    CHECK_EQ_STR(schema_namespace_name(ns), "ok.name");
    CHECK_EQ_INT(count_rows(f.path, "SELECT count(*) FROM namespace"), 2);
    fx_close(&f);
}

/* ---- concurrency ---- */

typedef struct worker {
    schema_cache *cache;
    int id;
    int rc;
    int bad;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char err[256];
    schema_namespace *ns;
    w->rc = schema_namespace_get(w->cache, "db", true, &ns, err, sizeof err);
    if (w->rc) return NULL;
    lp_batch b = {0};
    schema_op_tables t = {0};
    char body[4096];
    for (int round = 0; round < 20 && !w->rc; round++) {
        /* overlapping fields: f(round+id) .. f(round+id+5); tags h(id%2); a contested x */
        size_t n = (size_t)snprintf(body, sizeof body, "tab%d,h%d=a ", round % 3, w->id % 2);
        for (int k = 0; k < 6; k++)
            n += (size_t)snprintf(body + n, sizeof body - n, "%sf%d=%di", k ? "," : "",
                                  round + w->id + k, k);
        n += (size_t)snprintf(body + n, sizeof body - n, "\ntab%d x=%s\n", round % 3,
                              w->id % 2 ? "1.5" : "1i");
        parse(&b, body);
        w->rc = schema_check(w->cache, ns, &b, true, &t, err, sizeof err);
        if (w->rc) break;
        w->bad += (int)b.bad_line_count;
        for (size_t l = 0; l < b.line_count; l++) {
            lp_line *line = &b.lines[l];
            schema_table *tb = t.tables[line->table_slot];
            for (uint32_t k = 0; k < line->field_count; k++) {
                lp_field *fl = &b.fields[line->first_field + k];
                /* the index must name the key's column, of the right type */
                if (fl->column >= atomic_load(&tb->column_count) ||
                    strlen(tb->columns[fl->column].name) != fl->key_len ||
                    memcmp(tb->columns[fl->column].name, lp_str_ptr(&b, lp_field_key(fl)),
                           fl->key_len) != 0 ||
                    tb->columns[fl->column].type != fl->type)
                    w->rc = -1;
            }
        }
    }
    schema_op_tables_free(&t);
    lp_batch_free(&b);
    return NULL;
}

static void test_concurrent_checks(void)
{
    fixture f, g;
    char err[256];
    CHECK(fx_open(&f, "concurrent"));
    /* a second "ingester": its own catalog handle on the same file and its own cache */
    g = f;
    CHECK_EQ_INT(catalog_sqlite_open(f.path, &g.cat, err, sizeof err), 0);
    g.cache = schema_cache_new(&g.cat);
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].cache = i < 2 ? f.cache : g.cache;
        w[i].id = i;
        CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].rc, 0);
        bad += w[i].bad;
    }
    /* x per table has one type: every losing write was refused (20 rounds x 2 losing threads
     * at least, unless their type won in that table) */
    CHECK(bad > 0);
    schema_namespace *nf, *ng;
    CHECK_EQ_INT(schema_namespace_get(f.cache, "db", false, &nf, err, sizeof err), 0);
    CHECK_EQ_INT(schema_namespace_get(g.cache, "db", false, &ng, err, sizeof err), 0);
    for (int tb = 0; tb < 3; tb++) {
        char name[16];
        snprintf(name, sizeof name, "tab%d", tb);
        schema_table *a = schema_table_find(nf, name, strlen(name));
        schema_table *c = schema_table_find(ng, name, strlen(name));
        CHECK(a && c);
        if (!a || !c) continue;
        CHECK_EQ_INT(a->catalog_id, c->catalog_id);
        uint32_t na = atomic_load(&a->column_count);
        for (uint32_t i = 0; i < na; i++) {
            int j = schema_column_find(c, a->columns[i].name, a->columns[i].name_len);
            if (j < 0) continue; /* only one side may have needed it */
            CHECK_EQ_INT(c->columns[j].catalog_id, a->columns[i].catalog_id);
            CHECK_EQ_INT(c->columns[j].type, a->columns[i].type);
        }
    }
    /* the catalog agrees with a fresh cache */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM column_name WHERE name='x'");
    CHECK_EQ_INT(count_rows(f.path, sql), 3);
    schema_cache_free(g.cache);
    g.cat.close(g.cat.self);
    fx_close(&f);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ingot_test_schema_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_create_namespace_table_columns);
    TEST_RUN(test_type_conflict_stored);
    TEST_RUN(test_conflict_in_one_request);
    TEST_RUN(test_phase1_no_side_effects);
    TEST_RUN(test_errors_merge_and_cap);
    TEST_RUN(test_column_limit);
    TEST_RUN(test_table_limit);
    TEST_RUN(test_reload_from_catalog);
    TEST_RUN(test_missing_time_repaired);
    TEST_RUN(test_catalog_conflict_becomes_line_error);
    TEST_RUN(test_catalog_failure);
    TEST_RUN(test_escaped_names);
    TEST_RUN(test_invalid_names);
    TEST_RUN(test_time_reserved);
    TEST_RUN(test_namespace_names);
    TEST_RUN(test_concurrent_checks);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    TEST_MAIN_END();
}
