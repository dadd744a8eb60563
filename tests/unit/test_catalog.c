/*
 * test_catalog.c: the SQLite catalog back end (catalog_sqlite.c) against a file in a temp dir.
 */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "test.h"
#include "util/column_type.h"
#include "util/error.h"

static char tmp_dir[256];

static void make_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmp_dir, name);
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

static void test_open_creates_schema(void)
{
    char path[512], err[256] = "";
    make_path(path, sizeof path, "schema.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    const char *tables[] = {"namespace", "table_name", "column_name", "partition", "parquet_file"};
    for (int i = 0; i < 5; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='%s'", tables[i]);
        CHECK_EQ_INT(count_rows(path, sql), 1);
    }
    CHECK_EQ_INT(count_rows(path, "PRAGMA user_version"), 1);
    /* journal mode WAL is persistent in the file */
    sqlite3 *db;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* the sort_key default and the max_sequence_number default exist */
    CHECK(sqlite3_prepare_v2(db, "SELECT sort_key FROM partition", -1, &st, NULL) == SQLITE_OK);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v2(db, "SELECT max_sequence_number, object_store_id FROM parquet_file",
                             -1, &st, NULL) == SQLITE_OK);
    sqlite3_finalize(st);
    sqlite3_close(db);
    cat.close(cat.self);
}

static void test_open_failure_describes_path(void)
{
    char err[512] = "";
    catalog cat;
    int rc = catalog_sqlite_open("/nonexistent-dir-ingot/x/catalog.sqlite", &cat, err, sizeof err);
    CHECK(rc < 0);
    CHECK(strstr(err, "/nonexistent-dir-ingot/x/catalog.sqlite") != NULL);

    /* a newer schema version is refused */
    char path[512];
    make_path(path, sizeof path, "future.sqlite");
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    err[0] = 0;
    rc = catalog_sqlite_open(path, &cat, err, sizeof err);
    CHECK_EQ_INT(rc, INGOT_E_CATALOG);
    CHECK(strstr(err, "version 9") != NULL);
}

static void test_get_or_create_idempotent(void)
{
    char path[512], err[256];
    make_path(path, sizeof path, "idem.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    int64_t a = 0, b = 0, c = 0;
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, "db", &a), INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "db", &a), 0);
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "db", &b), 0);
    CHECK_EQ_INT(a, b);
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, "db", &c), 0);
    CHECK_EQ_INT(a, c);
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "db2", &c), 0);
    CHECK(c != a);

    int64_t t1 = 0, t2 = 0, t3 = 0;
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, a, "cpu", &t1), 0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, a, "cpu", &t2), 0);
    CHECK_EQ_INT(t1, t2);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, c, "cpu", &t3), 0); /* other namespace */
    CHECK(t3 != t1);
    /* a table in a namespace that does not exist breaks the foreign key */
    int64_t tx;
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, 99999, "cpu", &tx), INGOT_E_CATALOG);

    int64_t c1 = 0, c2 = 0;
    int et = -1;
    CHECK_EQ_INT(cat.column_upsert(cat.self, t1, "usage", COLUMN_F64, &c1, &et), 0);
    CHECK_EQ_INT(cat.column_upsert(cat.self, t1, "usage", COLUMN_F64, &c2, &et), 0);
    CHECK_EQ_INT(c1, c2);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM namespace"), 2);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM table_name"), 2);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM column_name"), 1);
    CHECK_EQ_INT(count_rows(path, "SELECT min(created_at) > 1600000000000000000 FROM namespace"),
                 1);
    cat.close(cat.self);
}

static void test_column_conflict(void)
{
    char path[512], err[256];
    make_path(path, sizeof path, "conflict.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    int64_t ns, t, id1 = 0, id2 = -1;
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "db", &ns), 0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "cpu", &t), 0);
    int et = 0;
    CHECK_EQ_INT(cat.column_upsert(cat.self, t, "x", COLUMN_I64, &id1, &et), 0);
    et = 0;
    CHECK_EQ_INT(cat.column_upsert(cat.self, t, "x", COLUMN_F64, &id2, &et), INGOT_E_SCHEMA);
    CHECK_EQ_INT(et, COLUMN_I64);
    CHECK_EQ_INT(id2, id1);
    et = 0;
    CHECK_EQ_INT(cat.column_upsert(cat.self, t, "x", COLUMN_TAG, &id2, &et), INGOT_E_SCHEMA);
    CHECK_EQ_INT(et, COLUMN_I64);
    CHECK_EQ_INT(cat.column_upsert(cat.self, t, "y", 0, &id2, &et), INGOT_E_INVALID);
    CHECK_EQ_INT(cat.column_upsert(cat.self, t, "y", 8, &id2, &et), INGOT_E_INVALID);
    CHECK_EQ_INT(count_rows(path, "SELECT column_type FROM column_name WHERE name='x'"),
                 COLUMN_I64);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM column_name"), 1);
    cat.close(cat.self);
}

struct collect {
    int n;
    int64_t ids[16];
    char names[16][32];
    int types[16];
};

static void collect_table(void *arg, int64_t id, const char *name)
{
    struct collect *c = arg;
    if (c->n < 16) {
        c->ids[c->n] = id;
        snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
        c->n++;
    }
}

static void collect_column(void *arg, int64_t id, const char *name, int type)
{
    struct collect *c = arg;
    if (c->n < 16) c->types[c->n] = type;
    collect_table(arg, id, name);
}

static void test_reopen_keeps_data(void)
{
    char path[512], err[256];
    make_path(path, sizeof path, "reopen.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    int64_t ns, t1, t2, c1, c2, c3;
    int et;
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "metrics", &ns), 0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "mem", &t1), 0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "cpu", &t2), 0);
    CHECK_EQ_INT(cat.column_upsert(cat.self, t2, "time", COLUMN_TIME, &c1, &et), 0);
    CHECK_EQ_INT(cat.column_upsert(cat.self, t2, "host", COLUMN_TAG, &c2, &et), 0);
    CHECK_EQ_INT(cat.column_upsert(cat.self, t2, "usage", COLUMN_F64, &c3, &et), 0);
    cat.close(cat.self);

    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    int64_t id;
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, "metrics", &id), 0);
    CHECK_EQ_INT(id, ns);
    struct collect tc = {0};
    CHECK_EQ_INT(cat.list_tables(cat.self, ns, collect_table, &tc), 0);
    CHECK_EQ_INT(tc.n, 2);
    CHECK_EQ_INT(tc.ids[0], t1);
    CHECK_EQ_STR(tc.names[0], "mem");
    CHECK_EQ_STR(tc.names[1], "cpu");
    struct collect cc = {0};
    CHECK_EQ_INT(cat.list_columns(cat.self, t2, collect_column, &cc), 0);
    CHECK_EQ_INT(cc.n, 3);
    CHECK_EQ_STR(cc.names[0], "time");
    CHECK_EQ_INT(cc.types[0], COLUMN_TIME);
    CHECK_EQ_STR(cc.names[1], "host");
    CHECK_EQ_INT(cc.types[1], COLUMN_TAG);
    CHECK_EQ_INT(cc.ids[2], c3);
    CHECK_EQ_INT(cc.types[2], COLUMN_F64);
    struct collect empty = {0};
    CHECK_EQ_INT(cat.list_columns(cat.self, t1, collect_column, &empty), 0);
    CHECK_EQ_INT(empty.n, 0);
    cat.close(cat.self);
}

static void test_two_handles_agree(void)
{
    char path[512], err[256];
    make_path(path, sizeof path, "shared.sqlite");
    catalog a, b;
    CHECK_EQ_INT(catalog_sqlite_open(path, &a, err, sizeof err), 0);
    CHECK_EQ_INT(catalog_sqlite_open(path, &b, err, sizeof err), 0);
    int64_t nsa, nsb, ta, tb, ca, cb;
    int et = 0;
    CHECK_EQ_INT(a.namespace_get_or_create(a.self, "db", &nsa), 0);
    CHECK_EQ_INT(b.namespace_get_or_create(b.self, "db", &nsb), 0);
    CHECK_EQ_INT(nsa, nsb);
    CHECK_EQ_INT(b.table_get_or_create(b.self, nsb, "cpu", &tb), 0);
    CHECK_EQ_INT(a.table_get_or_create(a.self, nsa, "cpu", &ta), 0);
    CHECK_EQ_INT(ta, tb);
    CHECK_EQ_INT(a.column_upsert(a.self, ta, "v", COLUMN_U64, &ca, &et), 0);
    CHECK_EQ_INT(b.column_upsert(b.self, tb, "v", COLUMN_BOOL, &cb, &et), INGOT_E_SCHEMA);
    CHECK_EQ_INT(et, COLUMN_U64);
    CHECK_EQ_INT(cb, ca);
    CHECK_EQ_INT(b.column_upsert(b.self, tb, "v", COLUMN_U64, &cb, &et), 0);
    CHECK_EQ_INT(cb, ca);
    a.close(a.self);
    b.close(b.self);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ingot_test_catalog_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_open_creates_schema);
    TEST_RUN(test_open_failure_describes_path);
    TEST_RUN(test_get_or_create_idempotent);
    TEST_RUN(test_column_conflict);
    TEST_RUN(test_reopen_keeps_data);
    TEST_RUN(test_two_handles_agree);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    TEST_MAIN_END();
}
