/*
 * catalog_sqlite.c: the SQLite back end of the catalog interface (catalog.h, ARCHITECTURE §8).
 *
 * What it owns: one SQLite connection to <data-dir>/catalog.sqlite, the prepared statements of
 * every catalog call (prepared once at open, reset after each use) and the mutex that serialises
 * all calls on the connection. Several handles (threads of one process, or several ingesters) may
 * share one file: SQLite's file locks order their writes, and busy_timeout makes a writer wait up
 * to 5 s for another one instead of failing at once.
 *
 * On-disk format (schema version 1, kept in PRAGMA user_version):
 *   namespace(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL)
 *   table_name(id, namespace_id -> namespace, name; UNIQUE(namespace_id, name))
 *   column_name(id, table_id -> table_name, name, column_type; UNIQUE(table_id, name))
 *   partition(id, table_id -> table_name, partition_key, sort_key JSON array of column names;
 *             UNIQUE(table_id, partition_key))
 *   parquet_file(id, namespace_id, table_id, partition_id, object_store_id UNIQUE, min_time,
 *                max_time, row_count, file_size_bytes, max_sequence_number, created_at)
 * created_at is nanoseconds since the Unix epoch (UTC). column_type uses the codes of
 * column_type.h. All five tables are created at the first open in one transaction together with
 * user_version = 1, so a catalog either has the whole schema or none of it.
 *
 * Invariants: rows are only ever added (no call here deletes or retypes a row), so an id, once
 * returned, names the same object forever, and "INSERT ... ON CONFLICT DO NOTHING, then SELECT"
 * always finds the row. A column's type never changes: column_upsert reports a different stored
 * type as INGOT_E_SCHEMA, which is how two ingesters sharing a catalog agree on types. The lookups
 * try a SELECT first so that the common case (the row exists) takes no write lock.
 *
 * Durability and recovery: WAL journal mode with synchronous=FULL, so a call that returned 0 has
 * its rows on disk; a crash mid-call leaves the last committed state (SQLite's own recovery). Every
 * statement runs in autocommit mode, so there is never an open transaction between calls.
 * Database failures are logged with sqlite3_errmsg and returned as INGOT_E_CATALOG; the handle
 * stays usable (statements are reset on every path).
 *
 * Callbacks of list_tables/list_columns run after the rows are read and the mutex is released, so
 * a callback may call into the catalog again.
 */
#include "catalog/catalog.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/column_type.h"
#include "util/error.h"
#include "util/log.h"

#define CATALOG_SQLITE_SCHEMA_VERSION 1

enum catalog_stmt {
    ST_NS_SELECT,
    ST_NS_INSERT,
    ST_TABLE_SELECT,
    ST_TABLE_INSERT,
    ST_TABLE_LIST,
    ST_COL_SELECT,
    ST_COL_INSERT,
    ST_COL_LIST,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_NS_SELECT] = "SELECT id FROM namespace WHERE name = ?1",
    [ST_NS_INSERT] = "INSERT INTO namespace(name, created_at) VALUES(?1, ?2) "
                     "ON CONFLICT(name) DO NOTHING",
    [ST_TABLE_SELECT] = "SELECT id FROM table_name WHERE namespace_id = ?1 AND name = ?2",
    [ST_TABLE_INSERT] = "INSERT INTO table_name(namespace_id, name) VALUES(?1, ?2) "
                        "ON CONFLICT(namespace_id, name) DO NOTHING",
    [ST_TABLE_LIST] = "SELECT id, name FROM table_name WHERE namespace_id = ?1 ORDER BY id",
    [ST_COL_SELECT] = "SELECT id, column_type FROM column_name WHERE table_id = ?1 AND name = ?2",
    [ST_COL_INSERT] = "INSERT INTO column_name(table_id, name, column_type) VALUES(?1, ?2, ?3) "
                      "ON CONFLICT(table_id, name) DO NOTHING",
    [ST_COL_LIST] = "SELECT id, name, column_type FROM column_name WHERE table_id = ?1 ORDER BY id",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS namespace("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS table_name("
    " id INTEGER PRIMARY KEY,"
    " namespace_id INTEGER NOT NULL REFERENCES namespace(id),"
    " name TEXT NOT NULL,"
    " UNIQUE(namespace_id, name));"
    "CREATE TABLE IF NOT EXISTS column_name("
    " id INTEGER PRIMARY KEY,"
    " table_id INTEGER NOT NULL REFERENCES table_name(id),"
    " name TEXT NOT NULL,"
    " column_type INTEGER NOT NULL,"
    " UNIQUE(table_id, name));"
    "CREATE TABLE IF NOT EXISTS partition("
    " id INTEGER PRIMARY KEY,"
    " table_id INTEGER NOT NULL REFERENCES table_name(id),"
    " partition_key TEXT NOT NULL,"
    " sort_key TEXT NOT NULL DEFAULT '[]',"
    " UNIQUE(table_id, partition_key));"
    "CREATE TABLE IF NOT EXISTS parquet_file("
    " id INTEGER PRIMARY KEY,"
    " namespace_id INTEGER NOT NULL REFERENCES namespace(id),"
    " table_id INTEGER NOT NULL REFERENCES table_name(id),"
    " partition_id INTEGER NOT NULL REFERENCES partition(id),"
    " object_store_id TEXT NOT NULL UNIQUE,"
    " min_time INTEGER,"
    " max_time INTEGER,"
    " row_count INTEGER,"
    " file_size_bytes INTEGER,"
    " max_sequence_number INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS parquet_file_partition ON parquet_file(partition_id);";

typedef struct catalog_sqlite {
    pthread_mutex_t lock;          /* guards db and every stmts[] entry */
    sqlite3 *db;                   /* lock */
    sqlite3_stmt *stmts[ST_COUNT]; /* lock; prepared at open, reset after each use */
} catalog_sqlite;

/* One row read by a list call, handed to the callback after the lock is released. */
typedef struct list_row {
    int64_t id;
    char *name;
    int column_type;
} list_row;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Log a database failure of operation what and return INGOT_E_CATALOG. Caller holds the lock. */
static int db_fail(catalog_sqlite *c, const char *what)
{
    log_error("catalog: %s: %s (sqlite code %d)", what, sqlite3_errmsg(c->db),
              sqlite3_extended_errcode(c->db));
    return INGOT_E_CATALOG;
}

/* Run a statement that returns no rows. Caller holds the lock. */
static int step_done(catalog_sqlite *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc != SQLITE_DONE) ret = db_fail(c, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

/*
 * Run a SELECT of one id (column 0) and optionally a type (column 1). Returns 0 with the values,
 * INGOT_E_NOT_FOUND, or INGOT_E_CATALOG. Caller holds the lock; st is reset on return.
 */
static int step_select_id(catalog_sqlite *c, sqlite3_stmt *st, const char *what, int64_t *id_out,
                          int *type_out)
{
    int rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        *id_out = sqlite3_column_int64(st, 0);
        if (type_out) *type_out = sqlite3_column_int(st, 1);
        ret = 0;
    } else if (rc == SQLITE_DONE) {
        ret = INGOT_E_NOT_FOUND;
    } else {
        ret = db_fail(c, what);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int bind_text(catalog_sqlite *c, sqlite3_stmt *st, int idx, const char *s, const char *what)
{
    if (sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC) != SQLITE_OK) {
        int ret = db_fail(c, what);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return ret;
    }
    return 0;
}

static int cat_namespace_lookup_locked(catalog_sqlite *c, const char *name, int64_t *id_out)
{
    sqlite3_stmt *st = c->stmts[ST_NS_SELECT];
    int ret = bind_text(c, st, 1, name, "select namespace");
    if (ret) return ret;
    return step_select_id(c, st, "select namespace", id_out, NULL);
}

static int cat_namespace_lookup(void *self, const char *name, int64_t *id_out)
{
    catalog_sqlite *c = self;
    pthread_mutex_lock(&c->lock);
    int ret = cat_namespace_lookup_locked(c, name, id_out);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int cat_namespace_get_or_create(void *self, const char *name, int64_t *id_out)
{
    catalog_sqlite *c = self;
    pthread_mutex_lock(&c->lock);
    int ret = cat_namespace_lookup_locked(c, name, id_out);
    if (ret != INGOT_E_NOT_FOUND) goto out;
    sqlite3_stmt *st = c->stmts[ST_NS_INSERT];
    ret = bind_text(c, st, 1, name, "insert namespace");
    if (ret) goto out;
    sqlite3_bind_int64(st, 2, now_ns());
    ret = step_done(c, st, "insert namespace");
    if (ret) goto out;
    ret = cat_namespace_lookup_locked(c, name, id_out);
    if (ret == INGOT_E_NOT_FOUND) {
        log_error("catalog: namespace \"%s\" missing right after its insert", name);
        ret = INGOT_E_CATALOG;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int cat_table_lookup_locked(catalog_sqlite *c, int64_t ns_id, const char *name,
                                   int64_t *id_out)
{
    sqlite3_stmt *st = c->stmts[ST_TABLE_SELECT];
    sqlite3_bind_int64(st, 1, ns_id);
    int ret = bind_text(c, st, 2, name, "select table");
    if (ret) return ret;
    return step_select_id(c, st, "select table", id_out, NULL);
}

static int cat_table_get_or_create(void *self, int64_t ns_id, const char *name, int64_t *id_out)
{
    catalog_sqlite *c = self;
    pthread_mutex_lock(&c->lock);
    int ret = cat_table_lookup_locked(c, ns_id, name, id_out);
    if (ret != INGOT_E_NOT_FOUND) goto out;
    sqlite3_stmt *st = c->stmts[ST_TABLE_INSERT];
    sqlite3_bind_int64(st, 1, ns_id);
    ret = bind_text(c, st, 2, name, "insert table");
    if (ret) goto out;
    ret = step_done(c, st, "insert table");
    if (ret) goto out;
    ret = cat_table_lookup_locked(c, ns_id, name, id_out);
    if (ret == INGOT_E_NOT_FOUND) {
        log_error("catalog: table \"%s\" missing right after its insert", name);
        ret = INGOT_E_CATALOG;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int cat_column_lookup_locked(catalog_sqlite *c, int64_t table_id, const char *name,
                                    int64_t *id_out, int *type_out)
{
    sqlite3_stmt *st = c->stmts[ST_COL_SELECT];
    sqlite3_bind_int64(st, 1, table_id);
    int ret = bind_text(c, st, 2, name, "select column");
    if (ret) return ret;
    return step_select_id(c, st, "select column", id_out, type_out);
}

static int cat_column_upsert(void *self, int64_t table_id, const char *name, int column_type,
                             int64_t *id_out, int *existing_type_out)
{
    catalog_sqlite *c = self;
    if (column_type < COLUMN_I64 || column_type > COLUMN_TAG) return INGOT_E_INVALID;
    int stored_type = 0;
    int64_t id = 0;
    pthread_mutex_lock(&c->lock);
    int ret = cat_column_lookup_locked(c, table_id, name, &id, &stored_type);
    if (ret == INGOT_E_NOT_FOUND) {
        sqlite3_stmt *st = c->stmts[ST_COL_INSERT];
        sqlite3_bind_int64(st, 1, table_id);
        ret = bind_text(c, st, 2, name, "insert column");
        if (ret) goto out;
        sqlite3_bind_int(st, 3, column_type);
        ret = step_done(c, st, "insert column");
        if (ret) goto out;
        ret = cat_column_lookup_locked(c, table_id, name, &id, &stored_type);
        if (ret == INGOT_E_NOT_FOUND) {
            log_error("catalog: column \"%s\" missing right after its insert", name);
            ret = INGOT_E_CATALOG;
        }
    }
    if (ret) goto out;
    *id_out = id;
    if (stored_type != column_type) {
        if (existing_type_out) *existing_type_out = stored_type;
        ret = INGOT_E_SCHEMA;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static void free_rows(list_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].name);
    free(rows);
}

/*
 * Read every row of the list statement st (bound to key) into *rows_out. with_type says whether
 * column 2 is a column type. Takes and releases the lock.
 */
static int read_rows(catalog_sqlite *c, enum catalog_stmt which, int64_t key, bool with_type,
                     list_row **rows_out, size_t *n_out)
{
    list_row *rows = NULL;
    size_t n = 0, cap = 0;
    int ret = 0;
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *st = c->stmts[which];
    sqlite3_bind_int64(st, 1, key);
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            ret = db_fail(c, which == ST_TABLE_LIST ? "list tables" : "list columns");
            goto fail;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            list_row *nr = realloc(rows, ncap * sizeof *nr);
            if (!nr) {
                ret = INGOT_E_NOMEM;
                goto fail;
            }
            rows = nr;
            cap = ncap;
        }
        const unsigned char *name = sqlite3_column_text(st, 1);
        rows[n].id = sqlite3_column_int64(st, 0);
        rows[n].name = strdup(name ? (const char *)name : "");
        rows[n].column_type = with_type ? sqlite3_column_int(st, 2) : 0;
        if (!rows[n].name) {
            ret = INGOT_E_NOMEM;
            goto fail;
        }
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&c->lock);
    *rows_out = rows;
    *n_out = n;
    return 0;
fail:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&c->lock);
    free_rows(rows, n);
    return ret;
}

static int cat_list_tables(void *self, int64_t ns_id, catalog_table_cb cb, void *arg)
{
    list_row *rows;
    size_t n;
    int ret = read_rows(self, ST_TABLE_LIST, ns_id, false, &rows, &n);
    if (ret) return ret;
    for (size_t i = 0; i < n; i++)
        cb(arg, rows[i].id, rows[i].name);
    free_rows(rows, n);
    return 0;
}

static int cat_list_columns(void *self, int64_t table_id, catalog_column_cb cb, void *arg)
{
    list_row *rows;
    size_t n;
    int ret = read_rows(self, ST_COL_LIST, table_id, true, &rows, &n);
    if (ret) return ret;
    for (size_t i = 0; i < n; i++)
        cb(arg, rows[i].id, rows[i].name, rows[i].column_type);
    free_rows(rows, n);
    return 0;
}

static void cat_close(void *self)
{
    catalog_sqlite *c = self;
    if (!c) return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    if (c->db) sqlite3_close(c->db);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Execute sql (no rows expected); on failure describe it in err. */
static int exec_sql(sqlite3 *db, const char *sql, const char *path, const char *what, char *err,
                    size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "catalog %s: %s: %s", path, what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return INGOT_E_CATALOG;
    }
    return 0;
}

static int read_user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Create the schema if the file has none; refuse a schema version we do not know. */
static int ensure_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int ret = exec_sql(db, "BEGIN IMMEDIATE", path, "begin schema transaction", err, errlen);
    if (ret) return ret;
    int version = 0;
    if (read_user_version(db, &version) != 0) {
        snprintf(err, errlen, "catalog %s: cannot read schema version: %s", path,
                 sqlite3_errmsg(db));
        ret = INGOT_E_CATALOG;
        goto fail;
    }
    if (version > CATALOG_SQLITE_SCHEMA_VERSION || version < 0) {
        snprintf(err, errlen,
                 "catalog %s: schema version %d is not supported (this build knows %d)", path,
                 version, CATALOG_SQLITE_SCHEMA_VERSION);
        ret = INGOT_E_CATALOG;
        goto fail;
    }
    if (version == 0) {
        ret = exec_sql(db, schema_sql, path, "create schema", err, errlen);
        if (ret) goto fail;
        ret = exec_sql(db, "PRAGMA user_version = 1", path, "set schema version", err, errlen);
        if (ret) goto fail;
    }
    return exec_sql(db, "COMMIT", path, "commit schema", err, errlen);
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

int catalog_sqlite_open(const char *path, catalog *out, char *err, size_t errlen)
{
    int ret = INGOT_E_CATALOG;
    catalog_sqlite *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "catalog %s: out of memory", path);
        return INGOT_E_NOMEM;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        snprintf(err, errlen, "catalog %s: cannot create mutex", path);
        return INGOT_E_NOMEM;
    }
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "catalog %s: cannot open: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, 5000);
    /* journal_mode answers with the mode in force; anything but "wal" means it was refused. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "catalog %s: cannot set WAL journal mode: %s", path,
                 sqlite3_errmsg(c->db));
        sqlite3_finalize(st);
        goto fail;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        snprintf(err, errlen, "catalog %s: journal mode is \"%s\", wanted \"wal\"", path,
                 mode ? (const char *)mode : "?");
        sqlite3_finalize(st);
        goto fail;
    }
    sqlite3_finalize(st);
    if ((ret = exec_sql(c->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", path,
                        "set pragmas", err, errlen)))
        goto fail;
    if ((ret = ensure_schema(c->db, path, err, errlen))) goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "catalog %s: cannot prepare \"%s\": %s", path, stmt_sql[i],
                     sqlite3_errmsg(c->db));
            ret = INGOT_E_CATALOG;
            goto fail;
        }
    }
    *out = (catalog){
        .self = c,
        .namespace_get_or_create = cat_namespace_get_or_create,
        .namespace_lookup = cat_namespace_lookup,
        .table_get_or_create = cat_table_get_or_create,
        .list_tables = cat_list_tables,
        .list_columns = cat_list_columns,
        .column_upsert = cat_column_upsert,
        .close = cat_close,
    };
    return 0;
fail:
    if (ret == 0) ret = INGOT_E_CATALOG;
    cat_close(c);
    return ret;
}
