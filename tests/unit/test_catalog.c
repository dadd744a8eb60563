/*
 * test_catalog.c: the SQLite catalog back end (catalog_sqlite.c) against files in a temp dir:
 * SQLite-specific checks (schema on disk, versions, row counts) and the back-end independent
 * scenarios of catalog_scenarios.h, each on a fresh file. Also the shared helpers of
 * catalog_open.c (sequence_extras lists, the back-end choice), and the I/O seam under the SQLite
 * back end (sqlite_vfs.c): its calls reach the util/sysio.h injector, an injected failure gets
 * the SQLite code a real one would, changes nothing, and leaves the handle usable; a failed open
 * or close leaks no descriptor. (tests/unit/test_faults.c runs the whole ingester over it.)
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "catalog/sqlite_vfs.h"
#include "catalog_scenarios.h"
#include "test.h"
#include "util/column_type.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sysio.h"

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
    CHECK_EQ_INT(count_rows(path, "PRAGMA user_version"), 2);
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
SCENARIO_TEST(persisted_sequences_per_wal)
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

/* The file at path (a version 2 catalog) taken back to version 1's shape. */
static int to_version_1(void *path)
{
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc =
            sqlite3_exec(db, "ALTER TABLE parquet_file DROP COLUMN wal_id; PRAGMA user_version = 1",
                         NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A version 1 catalog is upgraded at open (sc_upgrade_from_version_1), in user_version too. */
static void test_version_1_catalog_is_upgraded(void)
{
    char path[512];
    make_path(path, sizeof path, "v1.sqlite");
    unlink(path);
    sc_upgrade_from_version_1(open_reopen_file, path, to_version_1);
    CHECK_EQ_INT(count_rows(path, "PRAGMA user_version"), 2);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM parquet_file WHERE wal_id = ''"), 1);
}

static void test_catalog_open_dispatch(void)
{
    char path[512], err[256] = "";
    make_path(path, sizeof path, "dispatch.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_open(path, 30, &cat, err, sizeof err), 0);
    sc_lists(&cat);
    cat.close(cat.self);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM table_name"), 2);
    CHECK_EQ_INT(catalog_open("", 30, &cat, err, sizeof err), INGOT_E_INVALID);
    /* a postgres:// spec goes to libpq, which cannot reach port 1 */
    err[0] = 0;
    CHECK_EQ_INT(catalog_open("postgresql://nobody@127.0.0.1:1/none", 30, &cat, err, sizeof err),
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

/* ---- the I/O seam (sqlite_vfs.c) ---- */

/* Arm the injector: call nth of the kinds in ops on paths containing path fails with errno_value.
 */
static void arm(unsigned ops, const char *path, uint64_t nth, int errno_value, bool short_write)
{
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.ops = ops,
                                                .path_contains = path,
                                                .nth = nth,
                                                .errno_value = errno_value,
                                                .short_write = short_write}),
                 0);
}

/* Run sql on db; the extended result code. */
static int exec_code(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
}

/* Every kind of injected failure gets the code the unix VFS gives a real one; nothing changes. */
static void test_vfs_error_codes(void)
{
    char path[512];
    make_path(path, sizeof path, "vfs_codes.sqlite");
    const char *vfs = catalog_sqlite_vfs();
    CHECK(vfs != NULL);
    CHECK_EQ_STR(vfs, CATALOG_SQLITE_VFS_NAME);
    CHECK(sqlite3_vfs_find(NULL) != sqlite3_vfs_find(vfs)); /* never the default */
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                 SQLITE_OK);
    sqlite3_extended_result_codes(db, 1);
    CHECK_EQ_INT(exec_code(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                               "CREATE TABLE t(x INTEGER PRIMARY KEY, v TEXT)"),
                 SQLITE_OK);
    struct {
        unsigned ops;
        int errno_value;
        bool short_write;
        int code;
    } cases[] = {
        {SYSIO_MASK(SYSIO_OP_WRITE), EIO, false, SQLITE_IOERR_WRITE},
        {SYSIO_MASK(SYSIO_OP_WRITE), ENOSPC, false, SQLITE_FULL},
        {SYSIO_MASK(SYSIO_OP_WRITE), EIO, true, SQLITE_IOERR_WRITE},
        {SYSIO_MASK(SYSIO_OP_WRITE), ENOSPC, true, SQLITE_FULL},
        {SYSIO_MASK(SYSIO_OP_SYNC), EIO, false, SQLITE_IOERR_FSYNC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arm(cases[i].ops, "vfs_codes.sqlite", 1, cases[i].errno_value, cases[i].short_write);
        CHECK_EQ_INT(exec_code(db, "INSERT INTO t(v) VALUES('refused')"), cases[i].code);
        sysio_fault_disarm();
        sysio_fault_report rep;
        sysio_fault_get_report(&rep);
        CHECK_EQ_INT(rep.injected, 1);
        CHECK(strstr(rep.first_path, "vfs_codes.sqlite-wal") != NULL);
        /* the connection goes on; the refused row is not there */
        CHECK_EQ_INT(exec_code(db, "INSERT INTO t(v) VALUES('kept')"), SQLITE_OK);
    }
    sqlite3_close(db);
    /* a fresh connection (recovery from the WAL the failures left) sees exactly the kept rows */
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM t WHERE v = 'kept'"), 5);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM t WHERE v = 'refused'"), 0);

    /* reads: a fresh connection reads the header at open; opens: the database file itself */
    arm(SYSIO_MASK(SYSIO_OP_READ), "vfs_codes.sqlite", 1, EIO, false);
    db = NULL;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vfs) != SQLITE_OK);
    CHECK_EQ_INT(sqlite3_extended_errcode(db), SQLITE_IOERR_READ);
    sysio_fault_disarm();
    sqlite3_close(db);
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vfs), SQLITE_OK);
    CHECK_EQ_INT(exec_code(db, "SELECT count(*) FROM t"), SQLITE_OK);
    sqlite3_close(db);
    arm(SYSIO_MASK(SYSIO_OP_OPEN), "vfs_codes.sqlite", 1, EACCES, false);
    db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vfs), SQLITE_CANTOPEN);
    sysio_fault_disarm();
    sqlite3_close(db);
}

/* The catalog over the seam: a failed call changes nothing, the handle stays usable. */
static void test_vfs_catalog_calls(void)
{
    char path[512], err[512] = "";
    make_path(path, sizeof path, "vfs_calls.sqlite");
    catalog cat;
    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    int64_t a = 0, b = 0, t = 0;
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "a", &a), 0);
    /* every call goes through the seam: armed but never failing, the injector counts them */
    arm(0, "vfs_calls.sqlite", UINT64_MAX, EIO, false);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, a, "cpu", &t), 0);
    sysio_fault_report rep;
    sysio_fault_get_report(&rep);
    CHECK(rep.matched >= 2); /* at least the WAL frame write and its sync */
    CHECK_EQ_INT(rep.injected, 0);
    /* write, sync and read failures: INGOT_E_CATALOG, nothing created, the next call works */
    unsigned kinds[] = {SYSIO_MASK(SYSIO_OP_WRITE), SYSIO_MASK(SYSIO_OP_SYNC)};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        arm(kinds[i], "vfs_calls.sqlite", 1, i ? EIO : ENOSPC, false);
        CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "b", &b), INGOT_E_CATALOG);
        sysio_fault_disarm();
        CHECK_EQ_INT(cat.namespace_lookup(cat.self, "b", &b), INGOT_E_NOT_FOUND);
    }
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, "b", &b), 0);
    CHECK(b != a);
    cat.close(cat.self);

    /* a failed open (the file's open, the schema's read) fails cleanly and leaks nothing */
    int fds = test_open_fds();
    unsigned open_kinds[] = {SYSIO_MASK(SYSIO_OP_OPEN), SYSIO_MASK(SYSIO_OP_READ)};
    for (size_t i = 0; i < sizeof open_kinds / sizeof open_kinds[0]; i++) {
        arm(open_kinds[i], "vfs_calls.sqlite", 1, EIO, false);
        err[0] = '\0';
        CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), INGOT_E_CATALOG);
        CHECK(strstr(err, path) != NULL);
        sysio_fault_disarm();
        CHECK_EQ_INT(test_open_fds(), fds);
    }
    /* a failing close still closes every file */
    CHECK_EQ_INT(catalog_sqlite_open(path, &cat, err, sizeof err), 0);
    int64_t id = 0;
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, "b", &id), 0);
    CHECK_EQ_INT(id, b);
    CHECK(test_open_fds() > fds);
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_CLOSE),
                                                .path_contains = "vfs_calls.sqlite",
                                                .nth = 1,
                                                .persistent = true}),
                 0);
    cat.close(cat.self);
    sysio_fault_get_report(&rep);
    sysio_fault_disarm();
    CHECK(rep.injected >= 1);
    CHECK_EQ_INT(test_open_fds(), fds);
    CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM namespace"), 2);
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
    TEST_RUN(test_persisted_sequences_per_wal);
    TEST_RUN(test_version_1_catalog_is_upgraded);
    TEST_RUN(test_concurrent);
    TEST_RUN(test_catalog_open_dispatch);
    TEST_RUN(test_extras_helpers);
    TEST_RUN(test_list_empty);
    TEST_RUN(test_list_namespaces);
    TEST_RUN(test_list_partitions);
    TEST_RUN(test_lists_after_reopen);
    log_set_level((enum log_level)(LOG_ERROR + 1)); /* the injected failures are logged */
    TEST_RUN(test_vfs_error_codes);
    TEST_RUN(test_vfs_catalog_calls);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    TEST_MAIN_END();
}
