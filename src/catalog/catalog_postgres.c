/*
 * catalog_postgres.c: the PostgreSQL back end of the catalog interface (catalog.h, ARCHITECTURE
 * §8), selected with `--catalog postgres://...`. Same schema and the same answers as the SQLite
 * back end (catalog_sqlite.c); tests/unit/catalog_scenarios.h runs the same scenarios on both.
 *
 * What it owns: one libpq connection (PGconn) and the mutex that serialises every call on it.
 * Several ingesters may share one database: PostgreSQL orders their writes, every write is one
 * autocommit statement, and the statements are written so that concurrent callers agree
 * (INSERT ... ON CONFLICT DO NOTHING then SELECT for get-or-create, UPDATE ... WHERE for the
 * sort-key compare-and-swap, a unique object_store_id for Parquet files).
 *
 * Schema (version 2, kept in ingot_catalog_version(version)); ids are BIGSERIAL, times and
 * sequence numbers BIGINT (a u64 sequence number is stored as its two's-complement int64):
 *   namespace(id, name TEXT UNIQUE, created_at)
 *   table_name(id, namespace_id -> namespace, name; UNIQUE(namespace_id, name))
 *   column_name(id, table_id -> table_name, name, column_type; UNIQUE(table_id, name))
 *   partition(id, table_id -> table_name, partition_key, sort_key TEXT holding a JSON array of
 *             column names, default '[]'; UNIQUE(table_id, partition_key))
 *   parquet_file(id, namespace_id, table_id, partition_id, object_store_id UNIQUE, min_time,
 *                max_time, row_count, file_size_bytes, max_sequence_number,
 *                sequence_extras TEXT (comma list, see catalog_open.c), created_at, wal_id TEXT
 *                (the WAL the sequence numbers belong to, '' before version 2))
 * The first open creates all of it in one transaction that holds a transaction-level advisory
 * lock, so two ingesters starting at once do not race on CREATE TABLE; a database whose version
 * is newer than this build's is refused. A version 1 database is upgraded in that transaction
 * (parquet_file gains wal_id, '' for the rows it has).
 *
 * Invariants: as in SQLite, rows are only added and an id names the same object forever; a
 * column's type never changes; a partition's sort key changes only through the CAS.
 *
 * Failure recovery: every statement runs in autocommit mode, so a failure leaves nothing half
 * done and no transaction open. When a statement fails because the connection broke (server
 * restart, idle timeout, network), the call connects again once and runs the statement again.
 * Re-running is safe because every statement is idempotent: the upserts do nothing the second
 * time, and a CAS whose first attempt did commit finds the stored key equal to new_key, which the
 * CAS reports as success. Other failures are logged with the server's message and returned as
 * INGOT_E_CATALOG; the handle stays usable.
 *
 * Timeout (--catalog-timeout): a server that stops answering (frozen, a network black hole, a
 * lock held by someone else) must not hold a persist worker, a writer creating a column or a
 * graceful stop forever. So libpq is used in its non-blocking form (send, then poll the socket
 * with a deadline) and every call, its connect and reconnect included, ends within the timeout.
 * A call that runs out of time drops its connection (the next call connects afresh) and returns
 * INGOT_E_CATALOG, which callers treat as any catalog failure: persist jobs retry with back-off,
 * writes get 503 + Retry-After, start-up fails with the reason. The statement may still run on
 * the server after we gave up (its backend learns of the closed socket only when it answers);
 * that is the same case as a retry after a broken connection, and idempotence covers it.
 *
 * Callbacks of the list calls run after the rows are read and the mutex is released, so a
 * callback may call into the catalog again. list_partitions orders partition keys with
 * COLLATE "C" (byte order), as SQLite's BINARY collation does, whatever the database's locale.
 */
#include "catalog/catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "util/clock.h"
#include "util/column_type.h"
#include "util/error.h"
#include "util/log.h"

#define CATALOG_PG_SCHEMA_VERSION 2
/* advisory lock key of the schema transaction ("ingotcat" in ASCII) */
#define CATALOG_PG_SCHEMA_LOCK "7596562758577725812"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS namespace("
    " id BIGSERIAL PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS table_name("
    " id BIGSERIAL PRIMARY KEY,"
    " namespace_id BIGINT NOT NULL REFERENCES namespace(id),"
    " name TEXT NOT NULL,"
    " UNIQUE(namespace_id, name));"
    "CREATE TABLE IF NOT EXISTS column_name("
    " id BIGSERIAL PRIMARY KEY,"
    " table_id BIGINT NOT NULL REFERENCES table_name(id),"
    " name TEXT NOT NULL,"
    " column_type INTEGER NOT NULL,"
    " UNIQUE(table_id, name));"
    "CREATE TABLE IF NOT EXISTS partition("
    " id BIGSERIAL PRIMARY KEY,"
    " table_id BIGINT NOT NULL REFERENCES table_name(id),"
    " partition_key TEXT NOT NULL,"
    " sort_key TEXT NOT NULL DEFAULT '[]',"
    " UNIQUE(table_id, partition_key));"
    "CREATE TABLE IF NOT EXISTS parquet_file("
    " id BIGSERIAL PRIMARY KEY,"
    " namespace_id BIGINT NOT NULL REFERENCES namespace(id),"
    " table_id BIGINT NOT NULL REFERENCES table_name(id),"
    " partition_id BIGINT NOT NULL REFERENCES partition(id),"
    " object_store_id TEXT NOT NULL UNIQUE,"
    " min_time BIGINT,"
    " max_time BIGINT,"
    " row_count BIGINT,"
    " file_size_bytes BIGINT,"
    " max_sequence_number BIGINT NOT NULL DEFAULT 0,"
    " sequence_extras TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL,"
    " wal_id TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS parquet_file_partition ON parquet_file(partition_id);"
    "CREATE INDEX IF NOT EXISTS parquet_file_table ON parquet_file(table_id);";

typedef struct catalog_postgres {
    pthread_mutex_t lock; /* guards conn */
    PGconn *conn;         /* lock; NULL after a call ran out of time or could not reconnect */
    char *conninfo;       /* to connect again */
    int64_t timeout_ns;   /* --catalog-timeout: the longest one call may take */
} catalog_postgres;

/* Text forms of statement parameters (libpq sends text; the server casts to the column type). */
typedef struct pg_params {
    int n;
    const char *values[12];
    char bufs[12][24];
} pg_params;

static void param_i64(pg_params *p, int64_t v)
{
    snprintf(p->bufs[p->n], sizeof p->bufs[0], "%" PRId64, v);
    p->values[p->n] = p->bufs[p->n];
    p->n++;
}

static void param_text(pg_params *p, const char *s)
{
    p->values[p->n++] = s;
}

static int64_t value_i64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* libpq's messages span lines ("ERROR: ...\nDETAIL: ..."); fold msg into one line in buf. */
static const char *one_line(const char *msg, char *buf, size_t n)
{
    size_t len = 0;
    bool space = false;
    for (const char *s = msg ? msg : ""; *s && len + 1 < n; s++) {
        bool ws = *s == '\n' || *s == '\r' || *s == '\t' || *s == ' ';
        if (ws) {
            space = len > 0;
            continue;
        }
        if (space && len + 2 < n) buf[len++] = ' ';
        space = false;
        buf[len++] = *s;
    }
    buf[len] = 0;
    return buf;
}

/* Notices ("relation already exists, skipping") are not errors: debug log only. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("catalog: postgres notice: %s", message);
}

/*
 * Wait until conn's socket is ready for events or deadline (CLOCK_MONOTONIC ns) has passed:
 * 1 ready, 0 out of time, -1 the socket failed.
 */
static int wait_socket(PGconn *conn, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = events};
    if (pfd.fd < 0) return -1;
    for (;;) {
        int64_t left_ms = (deadline - clock_ns(CLOCK_MONOTONIC) + 999999) / 1000000;
        if (left_ms <= 0) return 0;
        int n = poll(&pfd, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (n > 0) return 1;
        if (n == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/*
 * Run sql (params p, or NULL: then sql may hold several statements) on conn by deadline. Returns
 * its result (the first error if a statement failed), or NULL when the connection failed or,
 * with *timed_out set, time ran out (conn is then mid-statement: the caller drops it).
 */
static PGresult *exec_by(PGconn *conn, const char *sql, const pg_params *p, int64_t deadline,
                         bool *timed_out)
{
    *timed_out = false;
    int sent = p ? PQsendQueryParams(conn, sql, p->n, NULL, p->values, NULL, NULL, 0)
                 : PQsendQuery(conn, sql);
    if (!sent) return NULL;
    int flushed;
    while ((flushed = PQflush(conn)) == 1) { /* libpq: wait for either, consume what arrives */
        int w = wait_socket(conn, POLLIN | POLLOUT, deadline);
        *timed_out = w == 0;
        if (w <= 0 || !PQconsumeInput(conn)) return NULL;
    }
    if (flushed < 0) return NULL;
    PGresult *kept = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            int w = wait_socket(conn, POLLIN, deadline);
            *timed_out = w == 0;
            if (w <= 0 || !PQconsumeInput(conn)) {
                PQclear(kept);
                return NULL;
            }
        }
        PGresult *res = PQgetResult(conn);
        if (!res) return kept;
        ExecStatusType st = PQresultStatus(kept);
        if (kept && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            PQclear(res); /* keep the first failure */
        } else {
            PQclear(kept);
            kept = res;
        }
    }
}

/*
 * Connect with conninfo by deadline and set the session up (notices quiet, non-blocking). Returns
 * the connection, or NULL with the reason in err.
 */
static PGconn *connect_by(const char *conninfo, int64_t deadline, char *err, size_t errlen)
{
    PGconn *conn = PQconnectStart(conninfo);
    if (!conn) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int w = 1;
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        w = wait_socket(conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (w <= 0) break;
        st = PQconnectPoll(conn);
    }
    char msg[512];
    bool timed_out = false;
    PGresult *res = NULL;
    if (st == PGRES_POLLING_OK && PQstatus(conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(conn, quiet_notice, NULL);
        if (PQsetnonblocking(conn, 1) == 0)
            res = exec_by(conn, "SET client_min_messages = warning", NULL, deadline, &timed_out);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            return conn;
        }
    } else {
        timed_out = w == 0;
    }
    /* name the server but not the whole conninfo, which may hold a password */
    snprintf(err, errlen, "%s:%s/%s: cannot connect: %s", PQhost(conn) ? PQhost(conn) : "?",
             PQport(conn) ? PQport(conn) : "?", PQdb(conn) ? PQdb(conn) : "?",
             timed_out ? "no answer in time (--catalog-timeout)"
                       : one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), msg,
                                  sizeof msg));
    PQclear(res);
    PQfinish(conn);
    return NULL;
}

/* Drop c's connection (a call ran out of time, or it broke); the next call connects again. */
static void drop_connection(catalog_postgres *c)
{
    PQfinish(c->conn);
    c->conn = NULL;
}

/*
 * Run sql with params and return its result in *res_out (caller PQclears), all within the
 * timeout. A connection that is gone is made again first; one that breaks during the statement
 * is made again once and the statement run again (see the top of the file for why that is safe).
 * Errors are logged and returned as INGOT_E_CATALOG. Caller holds the lock.
 */
static int pg_run(catalog_postgres *c, const char *what, const char *sql, const pg_params *p,
                  PGresult **res_out)
{
    *res_out = NULL;
    int64_t deadline = clock_ns(CLOCK_MONOTONIC) + c->timeout_ns;
    char msg[512];
    for (int attempt = 0;; attempt++) {
        if (!c->conn && !(c->conn = connect_by(c->conninfo, deadline, msg, sizeof msg))) {
            log_error("catalog: %s: PostgreSQL %s", what, msg);
            return INGOT_E_CATALOG;
        }
        bool timed_out;
        PGresult *res = exec_by(c->conn, sql, p, deadline, &timed_out);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            *res_out = res;
            return 0;
        }
        if (timed_out) {
            log_error("catalog: %s: PostgreSQL gave no answer in %" PRId64
                      " s (--catalog-timeout); the connection is dropped",
                      what, c->timeout_ns / 1000000000);
            drop_connection(c);
            return INGOT_E_CATALOG;
        }
        if (attempt == 0 && PQstatus(c->conn) == CONNECTION_BAD) {
            log_warn("catalog: %s: connection to PostgreSQL lost (%s), reconnecting", what,
                     one_line(PQerrorMessage(c->conn), msg, sizeof msg));
            PQclear(res);
            drop_connection(c);
            continue;
        }
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        log_error(
            "catalog: %s: %s (sqlstate %s)", what,
            one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn), msg, sizeof msg),
            state ? state : "none");
        /* a connection in an unknown state (no result: it may be mid-statement) is not reused */
        if (!res || PQstatus(c->conn) != CONNECTION_OK ||
            PQtransactionStatus(c->conn) != PQTRANS_IDLE)
            drop_connection(c);
        PQclear(res);
        return INGOT_E_CATALOG;
    }
}

/*
 * Run a SELECT whose first row's column 0 is an id (and column 1 a type, if type_out).
 * 0, INGOT_E_NOT_FOUND, or INGOT_E_CATALOG. Caller holds the lock.
 */
static int pg_select_id(catalog_postgres *c, const char *what, const char *sql, const pg_params *p,
                        int64_t *id_out, int *type_out)
{
    PGresult *res;
    int ret = pg_run(c, what, sql, p, &res);
    if (ret) return ret;
    if (PQntuples(res) == 0) {
        ret = INGOT_E_NOT_FOUND;
    } else {
        *id_out = value_i64(res, 0, 0);
        if (type_out) *type_out = (int)value_i64(res, 0, 1);
    }
    PQclear(res);
    return ret;
}

/* Run a statement whose rows do not matter. Caller holds the lock. */
static int pg_command(catalog_postgres *c, const char *what, const char *sql, const pg_params *p)
{
    PGresult *res;
    int ret = pg_run(c, what, sql, p, &res);
    PQclear(res);
    return ret;
}

/*
 * Run a query under the lock and return its rows in *res_out (caller PQclears) for a list call,
 * whose callbacks then run without the lock. Takes and releases the lock.
 */
static int pg_read(catalog_postgres *c, const char *what, const char *sql, const pg_params *p,
                   PGresult **res_out)
{
    pthread_mutex_lock(&c->lock);
    int ret = pg_run(c, what, sql, p, res_out);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/*
 * The get-or-create pattern: SELECT; if absent INSERT ... ON CONFLICT DO NOTHING; SELECT again.
 * Caller holds the lock.
 */
static int pg_get_or_create(catalog_postgres *c, const char *what, const char *select_sql,
                            const pg_params *select_p, const char *insert_sql,
                            const pg_params *insert_p, int64_t *id_out, int *type_out)
{
    int ret = pg_select_id(c, what, select_sql, select_p, id_out, type_out);
    if (ret != INGOT_E_NOT_FOUND) return ret;
    ret = pg_command(c, what, insert_sql, insert_p);
    if (ret) return ret;
    ret = pg_select_id(c, what, select_sql, select_p, id_out, type_out);
    if (ret == INGOT_E_NOT_FOUND) {
        log_error("catalog: %s: row missing right after its insert", what);
        ret = INGOT_E_CATALOG;
    }
    return ret;
}

static const char ns_select_sql[] = "SELECT id FROM namespace WHERE name = $1";

static int pg_namespace_lookup(void *self, const char *name, int64_t *id_out)
{
    catalog_postgres *c = self;
    pg_params p = {0};
    param_text(&p, name);
    pthread_mutex_lock(&c->lock);
    int ret = pg_select_id(c, "select namespace", ns_select_sql, &p, id_out, NULL);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_namespace_get_or_create(void *self, const char *name, int64_t *id_out)
{
    catalog_postgres *c = self;
    pg_params sp = {0}, ip = {0};
    param_text(&sp, name);
    param_text(&ip, name);
    param_i64(&ip, catalog_now_ns());
    pthread_mutex_lock(&c->lock);
    int ret = pg_get_or_create(c, "namespace get-or-create", ns_select_sql, &sp,
                               "INSERT INTO namespace(name, created_at) VALUES($1, $2) "
                               "ON CONFLICT(name) DO NOTHING",
                               &ip, id_out, NULL);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_table_get_or_create(void *self, int64_t ns_id, const char *name, int64_t *id_out)
{
    catalog_postgres *c = self;
    pg_params p = {0};
    param_i64(&p, ns_id);
    param_text(&p, name);
    pthread_mutex_lock(&c->lock);
    int ret =
        pg_get_or_create(c, "table get-or-create",
                         "SELECT id FROM table_name WHERE namespace_id = $1 AND name = $2", &p,
                         "INSERT INTO table_name(namespace_id, name) VALUES($1, $2) "
                         "ON CONFLICT(namespace_id, name) DO NOTHING",
                         &p, id_out, NULL);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_column_upsert(void *self, int64_t table_id, const char *name, int column_type,
                            int64_t *id_out, int *existing_type_out)
{
    catalog_postgres *c = self;
    if (column_type < COLUMN_I64 || column_type > COLUMN_TAG) return INGOT_E_INVALID;
    pg_params sp = {0}, ip = {0};
    param_i64(&sp, table_id);
    param_text(&sp, name);
    param_i64(&ip, table_id);
    param_text(&ip, name);
    param_i64(&ip, column_type);
    int64_t id = 0;
    int stored_type = 0;
    pthread_mutex_lock(&c->lock);
    int ret = pg_get_or_create(
        c, "column upsert",
        "SELECT id, column_type FROM column_name WHERE table_id = $1 AND name = $2", &sp,
        "INSERT INTO column_name(table_id, name, column_type) VALUES($1, $2, $3) "
        "ON CONFLICT(table_id, name) DO NOTHING",
        &ip, &id, &stored_type);
    pthread_mutex_unlock(&c->lock);
    if (ret) return ret;
    *id_out = id;
    if (stored_type != column_type) {
        if (existing_type_out) *existing_type_out = stored_type;
        return INGOT_E_SCHEMA;
    }
    return 0;
}

/* One row of a name listing, handed to the callback after the lock is released. */
typedef struct pg_list_row {
    int64_t id;
    int column_type;
    char *name;
} pg_list_row;

/* Read the (id, name[, column_type]) rows of sql bound to key. Takes and releases the lock. */
static int pg_read_names(catalog_postgres *c, const char *what, const char *sql, int64_t key,
                         pg_list_row **rows_out, int *n_out)
{
    pg_params p = {0};
    param_i64(&p, key);
    PGresult *res;
    int ret = pg_read(c, what, sql, &p, &res);
    if (ret) return ret;
    int n = PQntuples(res), with_type = PQnfields(res) > 2;
    pg_list_row *rows = calloc(n ? (size_t)n : 1, sizeof *rows);
    if (!rows) {
        ret = INGOT_E_NOMEM;
        n = 0;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        rows[i].id = value_i64(res, i, 0);
        rows[i].column_type = with_type ? (int)value_i64(res, i, 2) : 0;
        rows[i].name = strdup(PQgetvalue(res, i, 1));
        if (!rows[i].name) ret = INGOT_E_NOMEM;
    }
done:
    PQclear(res);
    if (ret) {
        for (int i = 0; i < n; i++)
            free(rows[i].name);
        free(rows);
        return ret;
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

static void free_names(pg_list_row *rows, int n)
{
    for (int i = 0; i < n; i++)
        free(rows[i].name);
    free(rows);
}

static int pg_list_namespaces(void *self, catalog_namespace_cb cb, void *arg)
{
    PGresult *res;
    int ret =
        pg_read(self, "list namespaces", "SELECT id, name FROM namespace ORDER BY id", NULL, &res);
    if (ret) return ret;
    /* the PGresult owns the strings, and the lock is already released */
    for (int i = 0, n = PQntuples(res); i < n; i++)
        cb(arg, value_i64(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    return 0;
}

static int pg_list_tables(void *self, int64_t ns_id, catalog_table_cb cb, void *arg)
{
    pg_list_row *rows;
    int n;
    int ret = pg_read_names(self, "list tables",
                            "SELECT id, name FROM table_name WHERE namespace_id = $1 ORDER BY id",
                            ns_id, &rows, &n);
    if (ret) return ret;
    for (int i = 0; i < n; i++)
        cb(arg, rows[i].id, rows[i].name);
    free_names(rows, n);
    return 0;
}

static int pg_list_columns(void *self, int64_t table_id, catalog_column_cb cb, void *arg)
{
    pg_list_row *rows;
    int n;
    int ret = pg_read_names(
        self, "list columns",
        "SELECT id, name, column_type FROM column_name WHERE table_id = $1 ORDER BY id", table_id,
        &rows, &n);
    if (ret) return ret;
    for (int i = 0; i < n; i++)
        cb(arg, rows[i].id, rows[i].name, rows[i].column_type);
    free_names(rows, n);
    return 0;
}

/* ---- partitions ---- */

static const char part_select_sql[] =
    "SELECT id, sort_key FROM partition WHERE table_id = $1 AND partition_key = $2";

/* Find partition (table_id, key). 0, INGOT_E_NOT_FOUND, or an error. Caller holds the lock. */
static int pg_partition_lookup_locked(catalog_postgres *c, const pg_params *p, int64_t *id_out,
                                      char **sort_key_out)
{
    PGresult *res;
    int ret = pg_run(c, "select partition", part_select_sql, p, &res);
    if (ret) return ret;
    if (PQntuples(res) == 0) {
        ret = INGOT_E_NOT_FOUND;
    } else {
        *id_out = value_i64(res, 0, 0);
        if (sort_key_out) {
            *sort_key_out = strdup(PQgetvalue(res, 0, 1));
            if (!*sort_key_out) ret = INGOT_E_NOMEM;
        }
    }
    PQclear(res);
    return ret;
}

static int pg_partition_get_or_create(void *self, int64_t table_id, const char *partition_key,
                                      int64_t *id_out, char **sort_key_out)
{
    catalog_postgres *c = self;
    if (sort_key_out) *sort_key_out = NULL;
    pg_params p = {0};
    param_i64(&p, table_id);
    param_text(&p, partition_key);
    pthread_mutex_lock(&c->lock);
    int ret = pg_partition_lookup_locked(c, &p, id_out, sort_key_out);
    if (ret != INGOT_E_NOT_FOUND) goto out;
    ret = pg_command(c, "insert partition",
                     "INSERT INTO partition(table_id, partition_key) VALUES($1, $2) "
                     "ON CONFLICT(table_id, partition_key) DO NOTHING",
                     &p);
    if (ret) goto out;
    ret = pg_partition_lookup_locked(c, &p, id_out, sort_key_out);
    if (ret == INGOT_E_NOT_FOUND) {
        log_error("catalog: partition \"%s\" missing right after its insert", partition_key);
        ret = INGOT_E_CATALOG;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_partition_cas_sort_key(void *self, int64_t partition_id, const char *old_key,
                                     const char *new_key, char **observed_out)
{
    catalog_postgres *c = self;
    char *stored = NULL;
    PGresult *res = NULL;
    if (observed_out) *observed_out = NULL;
    if (!old_key || !new_key) return INGOT_E_INVALID;
    pg_params p = {0};
    param_text(&p, new_key);
    param_i64(&p, partition_id);
    param_text(&p, old_key);
    pthread_mutex_lock(&c->lock);
    int ret =
        pg_run(c, "update sort key",
               "UPDATE partition SET sort_key = $1 WHERE id = $2 AND sort_key = $3", &p, &res);
    if (ret) goto out;
    bool swapped = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    res = NULL;
    if (swapped) goto out;

    /* Lost (or the partition does not exist): report what is stored. */
    pg_params q = {0};
    param_i64(&q, partition_id);
    ret = pg_run(c, "select sort key", "SELECT sort_key FROM partition WHERE id = $1", &q, &res);
    if (ret) goto out;
    if (PQntuples(res) == 0) {
        ret = INGOT_E_NOT_FOUND;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), new_key) == 0) goto out; /* someone made this change */
    ret = INGOT_E_CONFLICT;
    if (observed_out) {
        stored = strdup(PQgetvalue(res, 0, 0));
        if (!stored) {
            ret = INGOT_E_NOMEM;
            goto out;
        }
        *observed_out = stored;
    }
out:
    PQclear(res);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_list_partitions(void *self, int64_t table_id, catalog_partition_cb cb, void *arg)
{
    pg_params p = {0};
    param_i64(&p, table_id);
    PGresult *res;
    int ret = pg_read(self, "list partitions",
                      "SELECT id, partition_key, sort_key FROM partition WHERE table_id = $1 "
                      "ORDER BY partition_key COLLATE \"C\"",
                      &p, &res);
    if (ret) return ret;
    for (int i = 0, n = PQntuples(res); i < n; i++)
        cb(arg, value_i64(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    PQclear(res);
    return 0;
}

/* ---- Parquet files ---- */

static int pg_parquet_file_insert(void *self, const catalog_parquet_file *f, int64_t *id_out)
{
    catalog_postgres *c = self;
    size_t uuid_len = strnlen(f->object_store_id, sizeof f->object_store_id);
    if (uuid_len == 0 || uuid_len == sizeof f->object_store_id) return INGOT_E_INVALID;
    int ret = catalog_extras_validate(f->sequence_extras, f->max_sequence_number);
    if (ret) return ret;
    pg_params p = {0};
    param_i64(&p, f->namespace_id);
    param_i64(&p, f->table_id);
    param_i64(&p, f->partition_id);
    param_text(&p, f->object_store_id);
    param_i64(&p, f->min_time);
    param_i64(&p, f->max_time);
    param_i64(&p, f->row_count);
    param_i64(&p, f->file_size_bytes);
    param_i64(&p, (int64_t)f->max_sequence_number);
    param_text(&p, f->sequence_extras ? f->sequence_extras : "");
    param_i64(&p, f->created_at ? f->created_at : catalog_now_ns());
    param_text(&p, f->wal_id ? f->wal_id : "");
    pg_params q = {0};
    param_text(&q, f->object_store_id);
    pthread_mutex_lock(&c->lock);
    ret = pg_command(c, "insert parquet file",
                     "INSERT INTO parquet_file(namespace_id, table_id, partition_id, "
                     "object_store_id, min_time, max_time, row_count, file_size_bytes, "
                     "max_sequence_number, sequence_extras, created_at, wal_id) "
                     "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                     "ON CONFLICT(object_store_id) DO NOTHING",
                     &p);
    if (ret == 0 && id_out) {
        ret = pg_select_id(c, "select parquet file",
                           "SELECT id FROM parquet_file WHERE object_store_id = $1", &q, id_out,
                           NULL);
        if (ret == INGOT_E_NOT_FOUND) {
            log_error("catalog: parquet file %s missing right after its insert",
                      f->object_store_id);
            ret = INGOT_E_CATALOG;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_parquet_file_lookup(void *self, const char *object_store_id, int64_t *id_out)
{
    catalog_postgres *c = self;
    pg_params q = {0};
    param_text(&q, object_store_id);
    pthread_mutex_lock(&c->lock);
    int ret =
        pg_select_id(c, "select parquet file",
                     "SELECT id FROM parquet_file WHERE object_store_id = $1", &q, id_out, NULL);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int pg_parquet_file_list(void *self, int64_t table_id, catalog_parquet_file_cb cb, void *arg)
{
    catalog_postgres *c = self;
    pg_params p = {0};
    param_i64(&p, table_id);
    PGresult *res;
    int ret = pg_read(c, "list parquet files",
                      "SELECT f.id, f.namespace_id, f.table_id, f.partition_id, "
                      "f.object_store_id, f.min_time, f.max_time, f.row_count, "
                      "f.file_size_bytes, f.max_sequence_number, f.sequence_extras, f.created_at, "
                      "p.partition_key "
                      "FROM parquet_file f JOIN partition p ON p.id = f.partition_id "
                      "WHERE f.table_id = $1 ORDER BY f.id",
                      &p, &res);
    if (ret) return ret;
    /* the PGresult owns the strings: no copies needed, and the lock is already released */
    for (int i = 0, n = PQntuples(res); i < n; i++) {
        catalog_parquet_file f = {0};
        f.id = value_i64(res, i, 0);
        f.namespace_id = value_i64(res, i, 1);
        f.table_id = value_i64(res, i, 2);
        f.partition_id = value_i64(res, i, 3);
        snprintf(f.object_store_id, sizeof f.object_store_id, "%s", PQgetvalue(res, i, 4));
        f.min_time = value_i64(res, i, 5);
        f.max_time = value_i64(res, i, 6);
        f.row_count = value_i64(res, i, 7);
        f.file_size_bytes = value_i64(res, i, 8);
        f.max_sequence_number = (uint64_t)value_i64(res, i, 9);
        f.sequence_extras = PQgetvalue(res, i, 10);
        f.created_at = value_i64(res, i, 11);
        f.partition_key = PQgetvalue(res, i, 12);
        cb(arg, &f);
    }
    PQclear(res);
    return 0;
}

static int pg_persisted_sequences(void *self, const char *wal_id, catalog_persisted_cb cb,
                                  void *arg)
{
    catalog_postgres *c = self;
    PGresult *res;
    pg_params p = {0};
    param_text(&p, wal_id ? wal_id : "");
    int ret = pg_read(c, "read persisted sequences",
                      "SELECT p.table_id, p.partition_key, MAX(f.max_sequence_number), "
                      "string_agg(NULLIF(f.sequence_extras, ''), ',') "
                      "FROM parquet_file f JOIN partition p ON p.id = f.partition_id "
                      "WHERE f.wal_id IN ($1, '') GROUP BY p.id ORDER BY p.id",
                      &p, &res);
    if (ret) return ret;
    int n = PQntuples(res);
    char **merged = calloc(n ? (size_t)n : 1, sizeof *merged);
    if (!merged) {
        ret = INGOT_E_NOMEM;
        goto out;
    }
    /* merge every list first, so a bad one fails the call before any callback ran */
    for (int i = 0; i < n; i++) {
        const char *concat = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
        ret = catalog_extras_merge(concat, (uint64_t)value_i64(res, i, 2), &merged[i]);
        if (ret) {
            if (ret == INGOT_E_CORRUPT)
                log_error("catalog: partition \"%s\" of table %s has a malformed "
                          "sequence_extras list",
                          PQgetvalue(res, i, 1), PQgetvalue(res, i, 0));
            goto out;
        }
    }
    for (int i = 0; i < n; i++)
        cb(arg, value_i64(res, i, 0), PQgetvalue(res, i, 1), (uint64_t)value_i64(res, i, 2),
           merged[i]);
out:
    if (merged)
        for (int i = 0; i < n; i++)
            free(merged[i]);
    free(merged);
    PQclear(res);
    return ret;
}

static void pg_close(void *self)
{
    catalog_postgres *c = self;
    if (!c) return;
    if (c->conn) PQfinish(c->conn);
    pthread_mutex_destroy(&c->lock);
    free(c->conninfo);
    free(c);
}

/* Run sql on a connection that is being opened, by deadline; on failure describe it in err. */
static int open_exec(PGconn *conn, const char *sql, const char *what, int64_t deadline, char *err,
                     size_t errlen, PGresult **res_out)
{
    bool timed_out;
    PGresult *res = exec_by(conn, sql, NULL, deadline, &timed_out);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(err, errlen, "catalog postgres: %s: %s", what,
                 timed_out ? "no answer in time (--catalog-timeout)"
                           : one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), msg,
                                      sizeof msg));
        PQclear(res);
        return INGOT_E_CATALOG;
    }
    if (res_out)
        *res_out = res;
    else
        PQclear(res);
    return 0;
}

/*
 * Create the schema if the database has none; refuse a schema version we do not know. On failure
 * the transaction is left open: the caller closes the connection, which rolls it back.
 */
static int ensure_schema(PGconn *conn, int64_t deadline, char *err, size_t errlen)
{
    PGresult *res = NULL;
    int ret = open_exec(conn,
                        "BEGIN; SELECT pg_advisory_xact_lock(" CATALOG_PG_SCHEMA_LOCK ");"
                        "CREATE TABLE IF NOT EXISTS ingot_catalog_version(version INTEGER NOT "
                        "NULL)",
                        "begin schema transaction", deadline, err, errlen, NULL);
    if (ret) return ret;
    ret = open_exec(conn, "SELECT max(version) FROM ingot_catalog_version", "read schema version",
                    deadline, err, errlen, &res);
    if (ret) return ret;
    long version = PQgetisnull(res, 0, 0) ? 0 : strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (version > CATALOG_PG_SCHEMA_VERSION || version < 0) {
        snprintf(err, errlen,
                 "catalog postgres: schema version %ld is not supported (this build knows %d)",
                 version, CATALOG_PG_SCHEMA_VERSION);
        return INGOT_E_CATALOG;
    }
    if (version == 0) {
        ret = open_exec(conn, schema_sql, "create schema", deadline, err, errlen, NULL);
        if (ret) return ret;
    } else if (version == 1) {
        ret = open_exec(conn, "ALTER TABLE parquet_file ADD COLUMN wal_id TEXT NOT NULL DEFAULT ''",
                        "upgrade schema to version 2", deadline, err, errlen, NULL);
        if (ret) return ret;
    }
    if (version < CATALOG_PG_SCHEMA_VERSION) {
        ret = open_exec(conn,
                        "DELETE FROM ingot_catalog_version;"
                        "INSERT INTO ingot_catalog_version(version) VALUES(2)",
                        "set schema version", deadline, err, errlen, NULL);
        if (ret) return ret;
    }
    return open_exec(conn, "COMMIT", "commit schema", deadline, err, errlen, NULL);
}

int catalog_postgres_open(const char *conninfo, unsigned timeout_s, catalog *out, char *err,
                          size_t errlen)
{
    int ret = INGOT_E_NOMEM;
    catalog_postgres *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "catalog postgres: out of memory");
        return INGOT_E_NOMEM;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        snprintf(err, errlen, "catalog postgres: cannot create mutex");
        return INGOT_E_NOMEM;
    }
    c->timeout_ns = (int64_t)(timeout_s ? timeout_s : 1) * 1000000000;
    if (!(c->conninfo = strdup(conninfo))) {
        snprintf(err, errlen, "catalog postgres: out of memory");
        goto fail;
    }
    int64_t deadline = clock_ns(CLOCK_MONOTONIC) + c->timeout_ns;
    char msg[512];
    ret = INGOT_E_CATALOG;
    if (!(c->conn = connect_by(conninfo, deadline, msg, sizeof msg))) {
        snprintf(err, errlen, "catalog postgres %s", msg);
        goto fail;
    }
    if ((ret = ensure_schema(c->conn, deadline, err, errlen))) goto fail;
    *out = (catalog){
        .self = c,
        .namespace_get_or_create = pg_namespace_get_or_create,
        .namespace_lookup = pg_namespace_lookup,
        .table_get_or_create = pg_table_get_or_create,
        .list_namespaces = pg_list_namespaces,
        .list_tables = pg_list_tables,
        .list_columns = pg_list_columns,
        .column_upsert = pg_column_upsert,
        .partition_get_or_create = pg_partition_get_or_create,
        .partition_cas_sort_key = pg_partition_cas_sort_key,
        .list_partitions = pg_list_partitions,
        .parquet_file_insert = pg_parquet_file_insert,
        .parquet_file_lookup = pg_parquet_file_lookup,
        .parquet_file_list = pg_parquet_file_list,
        .persisted_sequences = pg_persisted_sequences,
        .close = pg_close,
    };
    return 0;
fail:
    if (ret == 0) ret = INGOT_E_CATALOG;
    pg_close(c);
    return ret;
}
