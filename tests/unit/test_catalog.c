/*
 * test_catalog.c: the SQLite catalog back end (catalog_sqlite.c) against files in a temp dir:
 * SQLite-specific checks (schema on disk, versions, row counts) and the back-end independent
 * scenarios of catalog_scenarios.h, each on a fresh file. Also the shared helpers of
 * catalog_open.c (sequence_extras lists, the back-end choice).
 */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "catalog_scenarios.h"
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
    CHECK(sqlite3_prepare_v2(db,
                             "SELECT max_sequence_number, sequence_extras, object_store_id "
                             "FROM parquet_file",
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

/* Open a fresh catalog file called name (removing an older one). */
/* Open the catalog file name in tmp_dir, removing it first if fresh. */
static int open_file(const char *name, bool fresh, catalog *cat)
{
    char path[512], err[256] = "";
    make_path(path, sizeof path, name);
    if (fresh) unlink(path);
    int rc = catalog_sqlite_open(path, cat, err, sizeof err);
    if (rc) fprintf(stderr, "  open %s: %s\n", path, err);
    return rc;
}

/* Run a one-handle scenario on a fresh file. */
#define SCENARIO_TEST(name)                                                                        \
    static void test_##name(void)                                                                  \
    {                                                                                              \
        catalog cat;                                                                               \
        CHECK_EQ_INT(open_file(#name ".sqlite", true, &cat), 0);                                   \
        sc_##name(&cat);                                                                           \
        cat.close(cat.self);                                                                       \
    }

SCENARIO_TEST(get_or_create_idempotent)
SCENARIO_TEST(column_conflict)
SCENARIO_TEST(lists)
SCENARIO_TEST(partition_get_or_create)
SCENARIO_TEST(cas_sort_key)
SCENARIO_TEST(file_insert_and_list)
SCENARIO_TEST(file_insert_invalid)
SCENARIO_TEST(persisted_sequences)
SCENARIO_TEST(concurrent)

static void test_row_counts(void)
{
    char path[512];
    catalog cat;
    CHECK_EQ_INT(open_file("counts.sqlite", true, &cat), 0);
    make_path(path, sizeof path, "counts.sqlite");
    sc_get_or_create_idempotent(&cat);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM namespace"), 2);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM table_name"), 2);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM column_name"), 1);
    CHECK_EQ_INT(count_rows(path, "SELECT min(created_at) > 1600000000000000000 FROM namespace"),
                 1);
    sc_file_insert_and_list(&cat);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM parquet_file"), 3);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM partition"), 2);
    sc_cas_sort_key(&cat);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM partition WHERE sort_key = "
                                  "'[\"host\",\"region\",\"time\"]'"),
                 1);
    cat.close(cat.self);
}

static void test_two_handles_agree(void)
{
    char path[512], err[256];
    make_path(path, sizeof path, "shared.sqlite");
    catalog a, b;
    CHECK_EQ_INT(catalog_sqlite_open(path, &a, err, sizeof err), 0);
    CHECK_EQ_INT(catalog_sqlite_open(path, &b, err, sizeof err), 0);
    sc_two_handles(&a, &b);
    a.close(a.self);
    b.close(b.self);
}

static void test_cas_race_two_handles(void)
{
    char path[512], err[256];
    make_path(path, sizeof path, "race.sqlite");
    catalog a, b;
    CHECK_EQ_INT(catalog_sqlite_open(path, &a, err, sizeof err), 0);
    CHECK_EQ_INT(catalog_sqlite_open(path, &b, err, sizeof err), 0);
    sc_cas_race(&a, &b);
    a.close(a.self);
    b.close(b.self);
}

static int open_reopen_file(void *arg, catalog *out)
{
    char err[256] = "";
    return catalog_sqlite_open(arg, out, err, sizeof err);
}

static void test_reopen_keeps_data(void)
{
    char path[512];
    make_path(path, sizeof path, "reopen.sqlite");
    sc_reopen_keeps_data(open_reopen_file, path);
}

static void test_catalog_open_dispatch(void)
{
    char path[512], err[256] = "";
    make_path(path, sizeof path, "dispatch.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_open(path, &cat, err, sizeof err), 0);
    sc_lists(&cat);
    cat.close(cat.self);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM table_name"), 2);
    CHECK_EQ_INT(catalog_open("", &cat, err, sizeof err), INGOT_E_INVALID);
    /* a postgres:// spec goes to libpq, which cannot reach port 1 */
    err[0] = 0;
    CHECK_EQ_INT(catalog_open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", &cat, err,
                              sizeof err),
                 INGOT_E_CATALOG);
    CHECK(strstr(err, "127.0.0.1") != NULL);
}

/* ---- the listings (catalog_scenarios.h), and again through a second handle ---- */

SCENARIO_TEST(list_empty)
SCENARIO_TEST(list_namespaces)
SCENARIO_TEST(list_partitions)

/* Both listings on one file, then again through a new handle on it: same rows, same order. */
static void test_lists_after_reopen(void)
{
    catalog cat;
    CHECK_EQ_INT(open_file("reopen.sqlite", true, &cat), 0);
    sc_list_namespaces(&cat);
    int64_t ns = -1, t = -1, p = -1;
    char name[128];
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, sc_name(name, sizeof name, "listpart"), &ns),
                 INGOT_E_NOT_FOUND);
    sc_list_partitions(&cat);
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, name, &ns), 0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "cpu", &t), 0);
    struct sc_ns_list before = {.ascending = true};
    CHECK_EQ_INT(cat.list_namespaces(cat.self, sc_collect_namespace, &before), 0);
    cat.close(cat.self);

    CHECK_EQ_INT(open_file("reopen.sqlite", false, &cat), 0);
    struct sc_ns_list after = {.ascending = true};
    CHECK_EQ_INT(cat.list_namespaces(cat.self, sc_collect_namespace, &after), 0);
    CHECK_EQ_INT(after.total, 4); /* zeta, alpha, mid, listpart */
    CHECK_EQ_INT(after.total, before.total);
    CHECK(after.ascending);
    CHECK_EQ_INT(after.n, before.n);
    for (int i = 0; i < after.n && i < before.n; i++) {
        CHECK_EQ_INT(after.ids[i], before.ids[i]);
        CHECK_EQ_STR(after.names[i], before.names[i]);
    }
    struct sc_part_list parts = {.cat = &cat, .table_id = t};
    CHECK_EQ_INT(cat.list_partitions(cat.self, t, sc_collect_partition, &parts), 0);
    CHECK_EQ_INT(parts.n, 5);
    CHECK_EQ_INT(parts.reentry_failures, 0);
    CHECK_EQ_STR(parts.keys[0], "2026-01-01");
    CHECK_EQ_STR(parts.keys[4], "a");
    CHECK_EQ_STR(parts.sort_keys[1], "[\"host\",\"region\",\"time\"]");
    /* a partition added now goes to its place in key order */
    CHECK_EQ_INT(cat.partition_get_or_create(cat.self, t, "2026-01-00", &p, NULL), 0);
    struct sc_part_list more = {.cat = &cat, .table_id = t};
    CHECK_EQ_INT(cat.list_partitions(cat.self, t, sc_collect_partition, &more), 0);
    CHECK_EQ_INT(more.n, 6);
    CHECK_EQ_STR(more.keys[0], "2026-01-00");
    CHECK_EQ_INT(more.ids[0], p);
    CHECK_EQ_STR(more.keys[1], "2026-01-01");
    cat.close(cat.self);
}

static void test_extras_helpers(void)
{
    CHECK_EQ_INT(catalog_extras_validate(NULL, 0), 0);
    CHECK_EQ_INT(catalog_extras_validate("", 5), 0);
    CHECK_EQ_INT(catalog_extras_validate("6", 5), 0);
    CHECK_EQ_INT(catalog_extras_validate("18446744073709551615,7", 5), 0);
    CHECK_EQ_INT(catalog_extras_validate("5", 5), INGOT_E_INVALID);
    CHECK_EQ_INT(catalog_extras_validate("18446744073709551616", 5), INGOT_E_INVALID);
    CHECK_EQ_INT(catalog_extras_validate("7;8", 5), INGOT_E_INVALID);
    CHECK_EQ_INT(catalog_extras_validate("+7", 5), INGOT_E_INVALID);
    char *out = NULL;
    CHECK_EQ_INT(catalog_extras_merge(NULL, 0, &out), 0);
    CHECK_EQ_STR(out, "");
    free(out);
    CHECK_EQ_INT(catalog_extras_merge("9,3,9,12,1,18446744073709551615,12", 3, &out), 0);
    CHECK_EQ_STR(out, "9,12,18446744073709551615");
    free(out);
    CHECK_EQ_INT(catalog_extras_merge("1,2", 2, &out), 0);
    CHECK_EQ_STR(out, "");
    free(out);
    out = NULL;
    CHECK_EQ_INT(catalog_extras_merge("1,,2", 0, &out), INGOT_E_CORRUPT);
    CHECK(out == NULL);
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
    TEST_RUN(test_lists);
    TEST_RUN(test_row_counts);
    TEST_RUN(test_reopen_keeps_data);
    TEST_RUN(test_two_handles_agree);
    TEST_RUN(test_cas_race_two_handles);
    TEST_RUN(test_partition_get_or_create);
    TEST_RUN(test_cas_sort_key);
    TEST_RUN(test_file_insert_and_list);
    TEST_RUN(test_file_insert_invalid);
    TEST_RUN(test_persisted_sequences);
    TEST_RUN(test_concurrent);
    TEST_RUN(test_catalog_open_dispatch);
    TEST_RUN(test_extras_helpers);
    TEST_RUN(test_list_empty);
    TEST_RUN(test_list_namespaces);
    TEST_RUN(test_list_partitions);
    TEST_RUN(test_lists_after_reopen);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    TEST_MAIN_END();
}
