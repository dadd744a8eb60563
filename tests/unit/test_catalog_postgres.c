/*
 * test_catalog_postgres.c: the PostgreSQL catalog back end (catalog_postgres.c) against the server
 * named by INGOT_TEST_POSTGRES (a libpq conninfo; tests/pg.sh run starts a throwaway one). Runs
 * the back-end independent scenarios of catalog_scenarios.h (the empty listing only in a database
 * of its own; partition key order also in an ICU-collated database), two handles on one
 * database, a reopen, the schema version check, the reconnect after a lost connection and the
 * timeout of a call (and of the open) that a lock held elsewhere keeps waiting.
 *
 * The test creates a fresh database (ingot_test_<pid>_<time>) on that server and drops it at the
 * end; if it may not create databases it uses the named one (every scenario names its rows with
 * a per-run tag). Without INGOT_TEST_POSTGRES it prints "skipped" and "0 passed, 0 failed".
 */
#include <libpq-fe.h>
#include <time.h>
#include <unistd.h>

#include "catalog_scenarios.h"
#include "test.h"

static char test_conninfo[2048];

#define TIMEOUT_S 30 /* --catalog-timeout of the handles that are not testing it */

/* conninfo with its dbname replaced by dbname, as a key=value string; 0 or -1. */
static int conninfo_with_db(const char *conninfo, const char *dbname, char *out, size_t n)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts) {
        fprintf(stderr, "bad INGOT_TEST_POSTGRES: %s\n", errmsg ? errmsg : "?");
        PQfreemem(errmsg);
        return -1;
    }
    size_t len = 0;
    out[0] = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (!v) continue;
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s='", len ? " " : "",
                                o->keyword);
        for (const char *s = v; *s && len + 3 < n; s++) {
            if (*s == '\'' || *s == '\\') out[len++] = '\\';
            out[len++] = *s;
        }
        if (len + 2 < n) {
            out[len++] = '\'';
            out[len] = 0;
        }
    }
    PQconninfoFree(opts);
    return len + 2 < n ? 0 : -1;
}

/* Run one SQL command on a fresh connection to conninfo; 0 or -1 (message printed). */
static int admin_exec(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    int ret = -1;
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "  admin connect: %s", PQerrorMessage(conn));
        goto out;
    }
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        ret = 0;
    else
        fprintf(stderr, "  admin \"%s\": %s", sql, PQresultErrorMessage(res));
    PQclear(res);
out:
    PQfinish(conn);
    return ret;
}

/* The integer in the first cell of sql's answer, or -1. */
static long long admin_value(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    long long v = -1;
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
            v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    PQfinish(conn);
    return v;
}

/* An sc_open_fn: the catalog at conninfo (the reason printed if it does not open). */
static int open_conninfo(void *conninfo, catalog *out)
{
    char err[512] = "";
    int rc = catalog_postgres_open(conninfo, TIMEOUT_S, out, err, sizeof err);
    if (rc) fprintf(stderr, "  open: %s\n", err);
    return rc;
}

static int open_pg(catalog *cat)
{
    return open_conninfo(test_conninfo, cat);
}

#define SCENARIO_TEST(name)                                                                        \
    static void test_##name(void)                                                                  \
    {                                                                                              \
        catalog cat;                                                                               \
        CHECK_EQ_INT(open_pg(&cat), 0);                                                            \
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
SCENARIO_TEST(list_empty)
SCENARIO_TEST(list_namespaces)
SCENARIO_TEST(list_partitions)

static void test_two_handles_agree(void)
{
    catalog a, b;
    CHECK_EQ_INT(open_pg(&a), 0);
    CHECK_EQ_INT(open_pg(&b), 0);
    sc_two_handles(&a, &b);
    a.close(a.self);
    b.close(b.self);
}

static void test_cas_race_two_handles(void)
{
    catalog a, b;
    CHECK_EQ_INT(open_pg(&a), 0);
    CHECK_EQ_INT(open_pg(&b), 0);
    sc_cas_race(&a, &b);
    a.close(a.self);
    b.close(b.self);
}

static void test_reopen_keeps_data(void)
{
    sc_reopen_keeps_data(open_conninfo, test_conninfo);
}

static void test_schema_rows(void)
{
    catalog cat;
    CHECK_EQ_INT(open_pg(&cat), 0); /* creates the schema, or finds it and keeps it */
    cat.close(cat.self);
    CHECK_EQ_INT(admin_value(test_conninfo, "SELECT count(*) FROM ingot_catalog_version"), 1);
    CHECK_EQ_INT(admin_value(test_conninfo, "SELECT max(version) FROM ingot_catalog_version"), 2);
    CHECK_EQ_INT(admin_value(test_conninfo,
                             "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                             "('namespace','table_name','column_name','partition','parquet_file')"),
                 5);
    CHECK_EQ_INT(admin_value(test_conninfo,
                             "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                             "'parquet_file' AND column_name IN ('sequence_extras', "
                             "'max_sequence_number', 'object_store_id', 'wal_id')"),
                 4);
}

static void test_catalog_open_uri(void)
{
    char err[512] = "";
    catalog cat;
    const char *uri = getenv("INGOT_TEST_POSTGRES");
    if (strncmp(uri, "postgres://", 11) != 0 && strncmp(uri, "postgresql://", 13) != 0) return;
    CHECK_EQ_INT(catalog_open(uri, TIMEOUT_S, &cat, err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  %s\n", err);
    int64_t ns;
    char name[128];
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, sc_name(name, sizeof name, "viaopen"), &ns),
                 0);
    cat.close(cat.self);
    /* a server that is not there: an error naming it, no crash */
    err[0] = 0;
    CHECK_EQ_INT(
        catalog_open("postgres://nobody@127.0.0.1:1/none", TIMEOUT_S, &cat, err, sizeof err),
        INGOT_E_CATALOG);
    CHECK(strstr(err, "127.0.0.1") != NULL);
}

/*
 * Create the scratch database ingot_<what>_<tag> ("CREATE DATABASE name options") and write its
 * name to db and its conninfo to other. False, with a note on stderr saying what goes untested,
 * when the server refuses.
 */
static bool scratch_db(const char *what, const char *options, const char *untested, char db[96],
                       char other[2048])
{
    char sql[512];
    snprintf(db, 96, "ingot_%s_%s", what, sc_tag);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s %s", db, options);
    if (admin_exec(test_conninfo, sql) != 0) {
        fprintf(stderr, "  (no scratch database: %s not tested)\n", untested);
        return false;
    }
    CHECK_EQ_INT(conninfo_with_db(test_conninfo, db, other, 2048), 0);
    return true;
}

static void scratch_db_drop(const char *db)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
    CHECK_EQ_INT(admin_exec(test_conninfo, sql), 0);
}

/* A database whose schema version is newer than this build is refused (in a scratch db). */
static void test_future_version_refused(void)
{
    char db[96], other[2048], err[512] = "";
    if (!scratch_db("future", "", "the version check", db, other)) return;
    CHECK_EQ_INT(admin_exec(other, "CREATE TABLE ingot_catalog_version(version INTEGER NOT NULL);"
                                   "INSERT INTO ingot_catalog_version VALUES(9)"),
                 0);
    catalog cat;
    CHECK_EQ_INT(catalog_postgres_open(other, TIMEOUT_S, &cat, err, sizeof err), INGOT_E_CATALOG);
    CHECK(strstr(err, "version 9") != NULL);
    /* nothing was created */
    CHECK_EQ_INT(admin_value(other, "SELECT count(*) FROM information_schema.tables WHERE "
                                    "table_name = 'namespace'"),
                 0);
    scratch_db_drop(db);
}

/* The database at conninfo (a version 2 catalog) taken back to version 1's shape. */
static int to_version_1(void *conninfo)
{
    return admin_exec(conninfo, "ALTER TABLE parquet_file DROP COLUMN wal_id;"
                                "UPDATE ingot_catalog_version SET version = 1");
}

/* A version 1 database is upgraded at open (sc_upgrade_from_version_1), its version row too. */
static void test_version_1_database_is_upgraded(void)
{
    char db[96], other[2048];
    if (!scratch_db("v1", "", "the upgrade", db, other)) return;
    sc_upgrade_from_version_1(open_conninfo, other, to_version_1);
    CHECK_EQ_INT(admin_value(other, "SELECT count(*) FROM ingot_catalog_version"), 1);
    CHECK_EQ_INT(admin_value(other, "SELECT max(version) FROM ingot_catalog_version"), 2);
    CHECK_EQ_INT(admin_value(other, "SELECT count(*) FROM parquet_file WHERE wal_id = ''"), 1);
    scratch_db_drop(db);
}

/*
 * Partition keys list in byte order even in a database whose collation is locale-aware (an ICU
 * en-US scratch database, where "a" sorts before "B"), as in SQLite.
 */
static void test_list_partitions_icu_database(void)
{
    char db[96], other[2048];
    if (!scratch_db("icu", "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
                    "byte order of partition keys", db, other))
        return;
    /* the database really orders "a" before "B" */
    CHECK_EQ_INT(admin_value(other, "SELECT count(*) FROM (VALUES ('a'), ('B')) v(x) "
                                    "WHERE x < 'B' AND x = 'a'"),
                 1);
    catalog cat;
    if (open_conninfo(other, &cat) == 0) {
        sc_list_partitions(&cat);
        cat.close(cat.self);
    } else {
        CHECK(!"open the ICU database");
    }
    scratch_db_drop(db);
}

/* The server ends the handle's session: the next call reconnects once and succeeds. */
static void test_reconnect_after_lost_connection(void)
{
    catalog cat;
    CHECK_EQ_INT(open_pg(&cat), 0);
    int64_t ns = -1, again = -2, t = -1, p = -1;
    char name[128];
    sc_name(name, sizeof name, "reconnect");
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, name, &ns), 0);
    CHECK_EQ_INT(admin_exec(test_conninfo,
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "datname = current_database() AND pid <> pg_backend_pid()"),
                 0);
    /* wait until the server has really ended it (at most ~5 s) */
    for (int i = 0; i < 100; i++) {
        if (admin_value(test_conninfo, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                       "current_database() AND pid <> pg_backend_pid()") == 0)
            break;
        usleep(50000);
    }
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, name, &again), 0);
    CHECK_EQ_INT(again, ns);
    /* and the reconnected handle goes on working, writes included */
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "cpu", &t), 0);
    CHECK_EQ_INT(cat.partition_get_or_create(cat.self, t, "2026-06-01", &p, NULL), 0);
    CHECK_EQ_INT(cat.partition_cas_sort_key(cat.self, p, "[]", "[\"time\"]", NULL), 0);
    cat.close(cat.self);
}

/* A connection to conninfo that has run sql (a transaction or a session lock it keeps), or NULL. */
static PGconn *admin_hold(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    PGresult *res = PQstatus(conn) == CONNECTION_OK ? PQexec(conn, sql) : NULL;
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return conn;
    fprintf(stderr, "  admin hold \"%s\": %s", sql, PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * --catalog-timeout: a call that a lock held by another session keeps waiting fails after the
 * timeout (1 s) with INGOT_E_CATALOG instead of hanging; the handle drops that connection and
 * the next call connects again (a call the lock does not stop succeeds at once); once the lock
 * is gone the abandoned call's work is done exactly once (idempotent statements).
 */
static void test_call_times_out_while_a_lock_holds_it(void)
{
    char err[512] = "", name[128];
    catalog cat;
    CHECK_EQ_INT(catalog_postgres_open(test_conninfo, 1, &cat, err, sizeof err), 0);
    int64_t ns = -1, again = -2, t = -1, t2 = -2;
    CHECK_EQ_INT(cat.namespace_get_or_create(cat.self, sc_name(name, sizeof name, "locked"), &ns),
                 0);
    PGconn *locker =
        admin_hold(test_conninfo, "BEGIN; LOCK TABLE table_name IN ACCESS EXCLUSIVE MODE");
    CHECK(locker != NULL);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "held", &t), INGOT_E_CATALOG);
    double waited = seconds_since(&t0);
    CHECK(waited >= 0.9 && waited < 5.0);
    /* the dropped connection is made again by the next call; what the lock does not stop works */
    CHECK_EQ_INT(cat.namespace_lookup(cat.self, name, &again), 0);
    CHECK_EQ_INT(again, ns);
    PQclear(PQexec(locker, "COMMIT"));
    PQfinish(locker);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "held", &t), 0);
    CHECK_EQ_INT(cat.table_get_or_create(cat.self, ns, "held", &t2), 0);
    CHECK_EQ_INT(t2, t);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM table_name WHERE namespace_id = %lld",
             (long long)ns);
    CHECK_EQ_INT(admin_value(test_conninfo, sql), 1);
    cat.close(cat.self);
}

/* The open is bounded too: a schema lock held elsewhere makes it fail in time, saying why. */
static void test_open_times_out_while_the_schema_lock_is_held(void)
{
    PGconn *locker = admin_hold(test_conninfo, "SELECT pg_advisory_lock(7596562758577725812)");
    CHECK(locker != NULL);
    char err[512] = "";
    catalog cat;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(catalog_postgres_open(test_conninfo, 1, &cat, err, sizeof err), INGOT_E_CATALOG);
    double waited = seconds_since(&t0);
    CHECK(waited >= 0.9 && waited < 5.0);
    CHECK(strstr(err, "--catalog-timeout") != NULL);
    PQfinish(locker); /* ends the session and its lock */
    CHECK_EQ_INT(catalog_postgres_open(test_conninfo, 1, &cat, err, sizeof err), 0);
    cat.close(cat.self);
}

int main(void)
{
    const char *base = getenv("INGOT_TEST_POSTGRES");
    if (!base || !*base) {
        printf("skipped: INGOT_TEST_POSTGRES not set\n");
        printf("%s: 0 passed, 0 failed\n", __FILE__);
        return 0;
    }
    snprintf(sc_tag, sizeof sc_tag, "%ld_%ld", (long)getpid(), (long)time(NULL));
    char db[96], sql[256];
    snprintf(db, sizeof db, "ingot_test_%s", sc_tag);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    bool own_db = admin_exec(base, sql) == 0;
    if (own_db) {
        if (conninfo_with_db(base, db, test_conninfo, sizeof test_conninfo) != 0) return 1;
    } else {
        fprintf(stderr, "cannot create a database: using the one of INGOT_TEST_POSTGRES\n");
        snprintf(test_conninfo, sizeof test_conninfo, "%s", base);
    }
    TEST_RUN(test_schema_rows);
    if (own_db) TEST_RUN(test_list_empty); /* before any scenario writes a row */
    TEST_RUN(test_get_or_create_idempotent);
    TEST_RUN(test_column_conflict);
    TEST_RUN(test_lists);
    TEST_RUN(test_partition_get_or_create);
    TEST_RUN(test_cas_sort_key);
    TEST_RUN(test_file_insert_and_list);
    TEST_RUN(test_file_insert_invalid);
    TEST_RUN(test_persisted_sequences);
    TEST_RUN(test_persisted_sequences_per_wal);
    TEST_RUN(test_concurrent);
    TEST_RUN(test_list_namespaces);
    TEST_RUN(test_list_partitions);
    TEST_RUN(test_two_handles_agree);
    TEST_RUN(test_cas_race_two_handles);
    TEST_RUN(test_reopen_keeps_data);
    TEST_RUN(test_catalog_open_uri);
    TEST_RUN(test_future_version_refused);
    TEST_RUN(test_version_1_database_is_upgraded);
    TEST_RUN(test_list_partitions_icu_database);
    if (own_db) TEST_RUN(test_reconnect_after_lost_connection);
    if (own_db) TEST_RUN(test_call_times_out_while_a_lock_holds_it);
    TEST_RUN(test_open_times_out_while_the_schema_lock_is_held);
    if (own_db) {
        snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
        if (admin_exec(base, sql) != 0) fprintf(stderr, "could not drop database %s\n", db);
    }
    TEST_MAIN_END();
}
