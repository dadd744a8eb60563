/*
 * catalog_sqlite.c: the SQLite back end of the catalog interface (catalog.h, ARCHITECTURE §8).
 *
 * What it owns: one SQLite connection to <data-dir>/catalog.sqlite, the prepared statements of
 * every catalog call (prepared once at open, reset after each use) and the mutex that serialises
 * all calls on the connection. Several handles (threads of one process, or several ingesters) may
 * share one file: SQLite's file locks order their writes, and busy_timeout makes a writer wait up
 * to 5 s for another one instead of failing at once.
 *
 * On-disk format (schema version 2, kept in PRAGMA user_version):
 *   namespace(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL)
 *   table_name(id, namespace_id -> namespace, name; UNIQUE(namespace_id, name))
 *   column_name(id, table_id -> table_name, name, column_type; UNIQUE(table_id, name))
 *   partition(id, table_id -> table_name, partition_key, sort_key JSON array of column names;
 *             UNIQUE(table_id, partition_key))
 *   parquet_file(id, namespace_id, table_id, partition_id, object_store_id UNIQUE, min_time,
 *                max_time, row_count, file_size_bytes, max_sequence_number, sequence_extras TEXT
 *                (comma list of sequence numbers, see catalog_open.c), created_at, wal_id TEXT
 *                (the WAL the sequence numbers belong to, '' before version 2);
 *                indexed by partition_id and by table_id)
 * created_at is nanoseconds since the Unix epoch (UTC). column_type uses the codes of
 * column_type.h. A u64 sequence number is stored as its two's-complement int64. All five tables are
 * created at the first open in one transaction together with user_version = 2, so a catalog either
 * has the whole schema or none of it. A version 1 catalog is upgraded in place at open, in one
 * transaction: parquet_file gains wal_id, '' for the rows it has.
 *
 * Invariants: rows are only ever added (no call here deletes or retypes a row), so an id, once
 * returned, names the same object forever, and "INSERT ... ON CONFLICT DO NOTHING, then SELECT"
 * always finds the row. A column's type never changes: column_upsert reports a different stored
 * type as INGOT_E_SCHEMA, which is how two ingesters sharing a catalog agree on types. The lookups
 * try a SELECT first so that the common case (the row exists) takes no write lock. A partition's
 * sort key changes only through partition_cas_sort_key, one UPDATE ... WHERE sort_key = old, so
 * of two ingesters racing from the same key exactly one wins; the loser gets the stored key. A
 * Parquet file row is keyed by its object_store_id, so a retried insert adds nothing.
 * persisted_sequences groups the files per partition (MAX of max_sequence_number, the
 * concatenated sequence_extras) and normalises the lists in C (catalog_extras_merge).
 * list_partitions orders by partition_key in SQLite's BINARY collation (byte order), which the
 * PostgreSQL back end matches with COLLATE "C".
 *
 * File I/O: the connection is opened on the VFS of sqlite_vfs.c (SQLite's unix VFS with the
 * util/sysio.h fault injector in front of its file calls), so fault tests can fail the catalog's
 * reads, writes, syncs, truncates, opens, deletes and closes like any other file call.
 *
 * Durability and recovery: WAL journal mode with synchronous=FULL, so a call that returned 0 has
 * its rows on disk; a crash mid-call leaves the last committed state (SQLite's own recovery). Every
 * statement runs in autocommit mode, so there is never an open transaction between calls.
 * Database failures are logged with sqlite3_errmsg and returned as INGOT_E_CATALOG; the handle
 * stays usable (statements are reset on every path).
 *
 * Every list call (namespaces, tables, columns, partitions, Parquet files, persisted sequences)
 * reads all its rows into a private array under the mutex (list_read) and runs the callbacks
 * after the mutex is released, so a callback may call into the catalog again.
 */
#include "catalog/catalog.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "catalog/sqlite_vfs.h"
#include "util/column_type.h"
#include "util/error.h"
#include "util/log.h"

#define CATALOG_SQLITE_SCHEMA_VERSION 2

enum catalog_stmt {
    ST_NS_SELECT,
    ST_NS_INSERT,
    ST_NS_LIST,
    ST_TABLE_SELECT,
    ST_TABLE_INSERT,
    ST_TABLE_LIST,
    ST_COL_SELECT,
    ST_COL_INSERT,
    ST_COL_LIST,
    ST_PART_SELECT,
    ST_PART_INSERT,
    ST_PART_CAS,
    ST_PART_SORT_KEY,
    ST_PART_LIST,
    ST_FILE_INSERT,
    ST_FILE_ID,
    ST_FILE_LIST,
    ST_PERSISTED,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_NS_SELECT] = "SELECT id FROM namespace WHERE name = ?1",
    [ST_NS_INSERT] = "INSERT INTO namespace(name, created_at) VALUES(?1, ?2) "
                     "ON CONFLICT(name) DO NOTHING",
    [ST_NS_LIST] = "SELECT id, name FROM namespace ORDER BY id",
    [ST_TABLE_SELECT] = "SELECT id FROM table_name WHERE namespace_id = ?1 AND name = ?2",
    [ST_TABLE_INSERT] = "INSERT INTO table_name(namespace_id, name) VALUES(?1, ?2) "
                        "ON CONFLICT(namespace_id, name) DO NOTHING",
    [ST_TABLE_LIST] = "SELECT id, name FROM table_name WHERE namespace_id = ?1 ORDER BY id",
    [ST_COL_SELECT] = "SELECT id, column_type FROM column_name WHERE table_id = ?1 AND name = ?2",
    [ST_COL_INSERT] = "INSERT INTO column_name(table_id, name, column_type) VALUES(?1, ?2, ?3) "
                      "ON CONFLICT(table_id, name) DO NOTHING",
    [ST_COL_LIST] = "SELECT id, name, column_type FROM column_name WHERE table_id = ?1 ORDER BY id",
    [ST_PART_SELECT] =
        "SELECT id, sort_key FROM partition WHERE table_id = ?1 AND partition_key = ?2",
    [ST_PART_INSERT] = "INSERT INTO partition(table_id, partition_key) VALUES(?1, ?2) "
                       "ON CONFLICT(table_id, partition_key) DO NOTHING",
    [ST_PART_CAS] = "UPDATE partition SET sort_key = ?1 WHERE id = ?2 AND sort_key = ?3",
    [ST_PART_SORT_KEY] = "SELECT sort_key FROM partition WHERE id = ?1",
    [ST_PART_LIST] = "SELECT id, partition_key, sort_key FROM partition WHERE table_id = ?1 "
                     "ORDER BY partition_key",
    [ST_FILE_INSERT] = "INSERT INTO parquet_file(namespace_id, table_id, partition_id, "
                       "object_store_id, min_time, max_time, row_count, file_size_bytes, "
                       "max_sequence_number, sequence_extras, created_at, wal_id) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                       "ON CONFLICT(object_store_id) DO NOTHING",
    [ST_FILE_ID] = "SELECT id FROM parquet_file WHERE object_store_id = ?1",
    [ST_FILE_LIST] = "SELECT f.id, f.namespace_id, f.table_id, f.partition_id, f.object_store_id, "
                     "f.min_time, f.max_time, f.row_count, f.file_size_bytes, "
                     "f.max_sequence_number, f.sequence_extras, f.created_at, p.partition_key "
                     "FROM parquet_file f JOIN partition p ON p.id = f.partition_id "
                     "WHERE f.table_id = ?1 ORDER BY f.id",
    [ST_PERSISTED] = "SELECT p.table_id, p.partition_key, MAX(f.max_sequence_number), "
                     "group_concat(NULLIF(f.sequence_extras, ''), ',') "
                     "FROM parquet_file f JOIN partition p ON p.id = f.partition_id "
                     "WHERE f.wal_id IN (?1, '') GROUP BY p.id ORDER BY p.id",
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
    " sequence_extras TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " wal_id TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS parquet_file_partition ON parquet_file(partition_id);"
    "CREATE INDEX IF NOT EXISTS parquet_file_table ON parquet_file(table_id);";

typedef struct catalog_sqlite {
    pthread_mutex_t lock;          /* guards db and every stmts[] entry */
    sqlite3 *db;                   /* lock */
    sqlite3_stmt *stmts[ST_COUNT]; /* lock; prepared at open, reset after each use */
} catalog_sqlite;

/* One row of a namespace, table, column or partition listing (see list_read). */
typedef struct list_row {
    int64_t id;
    char *name; /* or the partition key */
    int column_type;
    char *sort_key; /* partitions only */
} list_row;

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

/* Copy a text column (NULL reads as "") into a malloc'd string; NULL when out of memory. */
static char *column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    return strdup(s ? (const char *)s : "");
}

/*
 * Reads the current row of st into row (zeroed beforehand): 0 or a negative code. Whatever it
 * allocated before failing stays in row for the caller's free function.
 */
typedef int (*row_read_fn)(sqlite3_stmt *st, void *row);

/*
 * The body of every list call: under the lock, bind text_key, or if NULL key, to the statement
 * `which` (if it takes a parameter), step it to its end and read each row with read_row into a
 * growing array of elements of elem_size bytes. Returns that array (NULL if empty) with *n_out
 * elements and the result in *ret_out (0 or a negative code). On failure the array still holds
 * every row read so far, a partly read one included, for the caller to free; the statement is reset
 * either way.
 */
static void *list_read(catalog_sqlite *c, enum catalog_stmt which, int64_t key,
                       const char *text_key, const char *what, size_t elem_size,
                       row_read_fn read_row, size_t *n_out, int *ret_out)
{
    unsigned char *rows = NULL;
    size_t n = 0, cap = 0;
    int ret = 0;
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *st = c->stmts[which];
    if (text_key)
        sqlite3_bind_text(st, 1, text_key, -1, SQLITE_TRANSIENT);
    else if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, key);
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            ret = db_fail(c, what);
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            unsigned char *grown =
                ncap <= SIZE_MAX / elem_size ? realloc(rows, ncap * elem_size) : NULL;
            if (!grown) {
                ret = INGOT_E_NOMEM;
                break;
            }
            rows = grown;
            cap = ncap;
        }
        void *row = rows + n++ * elem_size;
        memset(row, 0, elem_size);
        if ((ret = read_row(st, row))) break;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&c->lock);
    *n_out = n;
    *ret_out = ret;
    return rows;
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
    sqlite3_bind_int64(st, 2, catalog_now_ns());
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
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].sort_key);
    }
    free(rows);
}

/* list_read row readers for list_row: (id, name), (id, name, type), (id, key, sort key) */
static int read_name_row(sqlite3_stmt *st, void *row)
{
    list_row *r = row;
    r->id = sqlite3_column_int64(st, 0);
    r->name = column_strdup(st, 1);
    return r->name ? 0 : INGOT_E_NOMEM;
}

static int read_column_row(sqlite3_stmt *st, void *row)
{
    list_row *r = row;
    r->column_type = sqlite3_column_int(st, 2);
    return read_name_row(st, row);
}

static int read_partition_row(sqlite3_stmt *st, void *row)
{
    list_row *r = row;
    r->sort_key = column_strdup(st, 2);
    if (!r->sort_key) return INGOT_E_NOMEM;
    return read_name_row(st, row);
}

static int cat_list_namespaces(void *self, catalog_namespace_cb cb, void *arg)
{
    size_t n;
    int ret;
    list_row *rows = list_read(self, ST_NS_LIST, 0, NULL, "list namespaces", sizeof *rows,
                               read_name_row, &n, &ret);
    for (size_t i = 0; ret == 0 && i < n; i++)
        cb(arg, rows[i].id, rows[i].name);
    free_rows(rows, n);
    return ret;
}

static int cat_list_tables(void *self, int64_t ns_id, catalog_table_cb cb, void *arg)
{
    size_t n;
    int ret;
    list_row *rows = list_read(self, ST_TABLE_LIST, ns_id, NULL, "list tables", sizeof *rows,
                               read_name_row, &n, &ret);
    for (size_t i = 0; ret == 0 && i < n; i++)
        cb(arg, rows[i].id, rows[i].name);
    free_rows(rows, n);
    return ret;
}

static int cat_list_columns(void *self, int64_t table_id, catalog_column_cb cb, void *arg)
{
    size_t n;
    int ret;
    list_row *rows = list_read(self, ST_COL_LIST, table_id, NULL, "list columns", sizeof *rows,
                               read_column_row, &n, &ret);
    for (size_t i = 0; ret == 0 && i < n; i++)
        cb(arg, rows[i].id, rows[i].name, rows[i].column_type);
    free_rows(rows, n);
    return ret;
}

/* ---- partitions ---- */

/* Find partition (table_id, key). 0, INGOT_E_NOT_FOUND, or an error. Caller holds the lock. */
static int cat_partition_lookup_locked(catalog_sqlite *c, int64_t table_id, const char *key,
                                       int64_t *id_out, char **sort_key_out)
{
    sqlite3_stmt *st = c->stmts[ST_PART_SELECT];
    sqlite3_bind_int64(st, 1, table_id);
    int ret = bind_text(c, st, 2, key, "select partition");
    if (ret) return ret;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id_out = sqlite3_column_int64(st, 0);
        ret = 0;
        if (sort_key_out) {
            *sort_key_out = column_strdup(st, 1);
            if (!*sort_key_out) ret = INGOT_E_NOMEM;
        }
    } else if (rc == SQLITE_DONE) {
        ret = INGOT_E_NOT_FOUND;
    } else {
        ret = db_fail(c, "select partition");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int cat_partition_get_or_create(void *self, int64_t table_id, const char *partition_key,
                                       int64_t *id_out, char **sort_key_out)
{
    catalog_sqlite *c = self;
    if (sort_key_out) *sort_key_out = NULL;
    pthread_mutex_lock(&c->lock);
    int ret = cat_partition_lookup_locked(c, table_id, partition_key, id_out, sort_key_out);
    if (ret != INGOT_E_NOT_FOUND) goto out;
    sqlite3_stmt *st = c->stmts[ST_PART_INSERT];
    sqlite3_bind_int64(st, 1, table_id);
    ret = bind_text(c, st, 2, partition_key, "insert partition");
    if (ret) goto out;
    ret = step_done(c, st, "insert partition");
    if (ret) goto out;
    ret = cat_partition_lookup_locked(c, table_id, partition_key, id_out, sort_key_out);
    if (ret == INGOT_E_NOT_FOUND) {
        log_error("catalog: partition \"%s\" missing right after its insert", partition_key);
        ret = INGOT_E_CATALOG;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int cat_partition_cas_sort_key(void *self, int64_t partition_id, const char *old_key,
                                      const char *new_key, char **observed_out)
{
    catalog_sqlite *c = self;
    char *stored = NULL;
    if (observed_out) *observed_out = NULL;
    if (!old_key || !new_key) return INGOT_E_INVALID;
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *st = c->stmts[ST_PART_CAS];
    int ret = bind_text(c, st, 1, new_key, "update sort key");
    if (ret) goto out;
    sqlite3_bind_int64(st, 2, partition_id);
    if ((ret = bind_text(c, st, 3, old_key, "update sort key"))) goto out;
    if ((ret = step_done(c, st, "update sort key"))) goto out;
    if (sqlite3_changes(c->db) > 0) goto out; /* swapped */

    /* Lost (or the partition does not exist): report what is stored. */
    st = c->stmts[ST_PART_SORT_KEY];
    sqlite3_bind_int64(st, 1, partition_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        stored = column_strdup(st, 0);
        ret = stored ? 0 : INGOT_E_NOMEM;
    } else if (rc == SQLITE_DONE) {
        ret = INGOT_E_NOT_FOUND;
    } else {
        ret = db_fail(c, "select sort key");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ret) goto out;
    if (strcmp(stored, new_key) == 0) goto out; /* someone already made this change */
    ret = INGOT_E_CONFLICT;
    if (observed_out) {
        *observed_out = stored;
        stored = NULL;
    }
out:
    pthread_mutex_unlock(&c->lock);
    free(stored);
    return ret;
}

static int cat_list_partitions(void *self, int64_t table_id, catalog_partition_cb cb, void *arg)
{
    size_t n;
    int ret;
    list_row *rows = list_read(self, ST_PART_LIST, table_id, NULL, "list partitions", sizeof *rows,
                               read_partition_row, &n, &ret);
    for (size_t i = 0; ret == 0 && i < n; i++)
        cb(arg, rows[i].id, rows[i].name, rows[i].sort_key);
    free_rows(rows, n);
    return ret;
}

/* ---- Parquet files ---- */

/* Check what catalog_parquet_file_insert needs of a row. */
static int check_file_row(const catalog_parquet_file *f)
{
    size_t n = strnlen(f->object_store_id, sizeof f->object_store_id);
    if (n == 0 || n == sizeof f->object_store_id) return INGOT_E_INVALID;
    return catalog_extras_validate(f->sequence_extras, f->max_sequence_number);
}

static int cat_parquet_file_insert(void *self, const catalog_parquet_file *f, int64_t *id_out)
{
    catalog_sqlite *c = self;
    int ret = check_file_row(f);
    if (ret) return ret;
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *st = c->stmts[ST_FILE_INSERT];
    sqlite3_bind_int64(st, 1, f->namespace_id);
    sqlite3_bind_int64(st, 2, f->table_id);
    sqlite3_bind_int64(st, 3, f->partition_id);
    if ((ret = bind_text(c, st, 4, f->object_store_id, "insert parquet file"))) goto out;
    sqlite3_bind_int64(st, 5, f->min_time);
    sqlite3_bind_int64(st, 6, f->max_time);
    sqlite3_bind_int64(st, 7, f->row_count);
    sqlite3_bind_int64(st, 8, f->file_size_bytes);
    sqlite3_bind_int64(st, 9, (int64_t)f->max_sequence_number);
    const char *extras = f->sequence_extras ? f->sequence_extras : "";
    if ((ret = bind_text(c, st, 10, extras, "insert parquet file"))) goto out;
    sqlite3_bind_int64(st, 11, f->created_at ? f->created_at : catalog_now_ns());
    if ((ret = bind_text(c, st, 12, f->wal_id ? f->wal_id : "", "insert parquet file"))) goto out;
    if ((ret = step_done(c, st, "insert parquet file"))) goto out;
    if (id_out) {
        st = c->stmts[ST_FILE_ID];
        if ((ret = bind_text(c, st, 1, f->object_store_id, "select parquet file"))) goto out;
        ret = step_select_id(c, st, "select parquet file", id_out, NULL);
        if (ret == INGOT_E_NOT_FOUND) {
            log_error("catalog: parquet file %s missing right after its insert",
                      f->object_store_id);
            ret = INGOT_E_CATALOG;
        }
    }
out:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int cat_parquet_file_lookup(void *self, const char *object_store_id, int64_t *id_out)
{
    catalog_sqlite *c = self;
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *st = c->stmts[ST_FILE_ID];
    int ret = bind_text(c, st, 1, object_store_id, "select parquet file");
    if (ret == 0) ret = step_select_id(c, st, "select parquet file", id_out, NULL);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* A listed file with its own copies of the strings. */
typedef struct file_row {
    catalog_parquet_file f;
    char *partition_key;
    char *sequence_extras;
} file_row;

static void free_file_rows(file_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].partition_key);
        free(rows[i].sequence_extras);
    }
    free(rows);
}

/* row reader of list_read for ST_FILE_LIST */
static int read_file_row(sqlite3_stmt *st, void *row)
{
    file_row *r = row;
    r->f.id = sqlite3_column_int64(st, 0);
    r->f.namespace_id = sqlite3_column_int64(st, 1);
    r->f.table_id = sqlite3_column_int64(st, 2);
    r->f.partition_id = sqlite3_column_int64(st, 3);
    const unsigned char *uuid = sqlite3_column_text(st, 4);
    snprintf(r->f.object_store_id, sizeof r->f.object_store_id, "%s",
             uuid ? (const char *)uuid : "");
    r->f.min_time = sqlite3_column_int64(st, 5);
    r->f.max_time = sqlite3_column_int64(st, 6);
    r->f.row_count = sqlite3_column_int64(st, 7);
    r->f.file_size_bytes = sqlite3_column_int64(st, 8);
    r->f.max_sequence_number = (uint64_t)sqlite3_column_int64(st, 9);
    r->f.created_at = sqlite3_column_int64(st, 11);
    r->f.sequence_extras = r->sequence_extras = column_strdup(st, 10);
    r->f.partition_key = r->partition_key = column_strdup(st, 12);
    return r->sequence_extras && r->partition_key ? 0 : INGOT_E_NOMEM;
}

static int cat_parquet_file_list(void *self, int64_t table_id, catalog_parquet_file_cb cb,
                                 void *arg)
{
    size_t n;
    int ret;
    file_row *rows = list_read(self, ST_FILE_LIST, table_id, NULL, "list parquet files",
                               sizeof *rows, read_file_row, &n, &ret);
    for (size_t i = 0; ret == 0 && i < n; i++)
        cb(arg, &rows[i].f);
    free_file_rows(rows, n);
    return ret;
}

/* One partition's coverage, read by persisted_sequences. */
typedef struct persisted_row {
    int64_t table_id;
    uint64_t max_sequence_number;
    char *partition_key;
    char *sequence_extras; /* merged: ascending, unique, all above max_sequence_number */
} persisted_row;

static void free_persisted_rows(persisted_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].partition_key);
        free(rows[i].sequence_extras);
    }
    free(rows);
}

/* row reader of list_read for ST_PERSISTED: merges the partition's extras lists */
static int read_persisted_row(sqlite3_stmt *st, void *row)
{
    persisted_row *r = row;
    r->table_id = sqlite3_column_int64(st, 0);
    r->max_sequence_number = (uint64_t)sqlite3_column_int64(st, 2);
    r->partition_key = column_strdup(st, 1);
    if (!r->partition_key) return INGOT_E_NOMEM;
    const unsigned char *concat = sqlite3_column_text(st, 3);
    int ret =
        catalog_extras_merge((const char *)concat, r->max_sequence_number, &r->sequence_extras);
    if (ret == INGOT_E_CORRUPT)
        log_error("catalog: partition \"%s\" of table %lld has a malformed sequence_extras list",
                  r->partition_key, (long long)r->table_id);
    return ret;
}

static int cat_persisted_sequences(void *self, const char *wal_id, catalog_persisted_cb cb,
                                   void *arg)
{
    size_t n;
    int ret;
    persisted_row *rows =
        list_read(self, ST_PERSISTED, 0, wal_id ? wal_id : "", "read persisted sequences",
                  sizeof *rows, read_persisted_row, &n, &ret);
    for (size_t i = 0; ret == 0 && i < n; i++)
        cb(arg, rows[i].table_id, rows[i].partition_key, rows[i].max_sequence_number,
           rows[i].sequence_extras);
    free_persisted_rows(rows, n);
    return ret;
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
    } else if (version == 1) {
        ret = exec_sql(db, "ALTER TABLE parquet_file ADD COLUMN wal_id TEXT NOT NULL DEFAULT ''",
                       path, "upgrade schema to version 2", err, errlen);
        if (ret) goto fail;
    }
    if (version < CATALOG_SQLITE_SCHEMA_VERSION) {
        ret = exec_sql(db, "PRAGMA user_version = 2", path, "set schema version", err, errlen);
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
    const char *vfs = catalog_sqlite_vfs();
    if (!vfs) {
        snprintf(err, errlen, "catalog %s: cannot register the SQLite VFS %s", path,
                 CATALOG_SQLITE_VFS_NAME);
        goto fail;
    }
    int rc = sqlite3_open_v2(path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
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
        .list_namespaces = cat_list_namespaces,
        .list_tables = cat_list_tables,
        .list_columns = cat_list_columns,
        .column_upsert = cat_column_upsert,
        .partition_get_or_create = cat_partition_get_or_create,
        .partition_cas_sort_key = cat_partition_cas_sort_key,
        .list_partitions = cat_list_partitions,
        .parquet_file_insert = cat_parquet_file_insert,
        .parquet_file_lookup = cat_parquet_file_lookup,
        .parquet_file_list = cat_parquet_file_list,
        .persisted_sequences = cat_persisted_sequences,
        .close = cat_close,
    };
    return 0;
fail:
    if (ret == 0) ret = INGOT_E_CATALOG;
    cat_close(c);
    return ret;
}
