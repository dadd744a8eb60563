/*
 * catalog.h: the catalog interface (ARCHITECTURE §8) and its back ends (SQLite, PostgreSQL).
 *
 * The catalog is the durable record of names and types: namespace(id, name unique),
 * table_name(id, namespace_id, name), column_name(id, table_id, name, column_type),
 * partition(id, table_id, partition_key, sort_key), parquet_file(...). All tables exist from the
 * first open, so later work only adds rows. Column creation is an upsert that fails on a type
 * conflict, so two ingesters sharing a catalog agree on types. Each Parquet file names the WAL
 * whose ops it holds (wal_id: the WAL directory's identity, wal.h), because sequence numbers are
 * per WAL: what one ingester persisted says nothing about another's log (persisted_sequences).
 *
 * Interface: a struct of function pointers with a self pointer; tests may plug in their own.
 * Every function is thread-safe (each back end serialises calls on one connection) and
 * returns 0 or a negative ingot code (INGOT_E_CATALOG for database failures, with a message
 * logged; INGOT_E_NOT_FOUND; INGOT_E_SCHEMA for a type conflict; INGOT_E_CONFLICT for a lost
 * sort-key compare-and-swap; INGOT_E_INVALID for arguments out of range).
 */
#ifndef INGOT_CATALOG_H
#define INGOT_CATALOG_H

#include <stddef.h>
#include <stdint.h>

/* List callbacks: name is valid only during the call. */
typedef void (*catalog_namespace_cb)(void *arg, int64_t namespace_id, const char *name);
typedef void (*catalog_table_cb)(void *arg, int64_t table_id, const char *name);
typedef void (*catalog_column_cb)(void *arg, int64_t column_id, const char *name, int column_type);

/* A row of parquet_file (ARCHITECTURE §8). */
typedef struct catalog_parquet_file {
    int64_t id; /* set by the catalog */
    int64_t namespace_id;
    int64_t table_id;
    int64_t partition_id;
    const char *partition_key; /* for listings: the partition's key (ignored on insert) */
    char object_store_id[37];  /* the file's UUID, also its name in the object store */
    int64_t min_time;          /* ns, inclusive */
    int64_t max_time;          /* ns, inclusive */
    int64_t row_count;
    int64_t file_size_bytes;
    /*
     * What the file covers of the WAL for its partition: every op with a sequence number
     * <= max_sequence_number that touched the partition is in this file or an earlier one, and
     * so is every op listed in sequence_extras (a comma-separated list of sequence numbers above
     * max_sequence_number, usually empty: ops applied out of order at snapshot time).
     */
    uint64_t max_sequence_number;
    const char *sequence_extras;
    /*
     * The identity of the WAL those sequence numbers belong to (wal_identity, wal.h). NULL is
     * stored as "", as are the files recorded before the catalog knew WAL identities (schema
     * version 1). Set on insert; listings leave it NULL.
     */
    const char *wal_id;
    int64_t created_at; /* ns since the epoch */
} catalog_parquet_file;

typedef void (*catalog_parquet_file_cb)(void *arg, const catalog_parquet_file *file);
/* sort_key: the partition's sort key as stored (a JSON array, "[]" until first persisted). */
typedef void (*catalog_partition_cb)(void *arg, int64_t partition_id, const char *partition_key,
                                     const char *sort_key);
typedef void (*catalog_persisted_cb)(void *arg, int64_t table_id, const char *partition_key,
                                     uint64_t max_sequence_number, const char *sequence_extras);

typedef struct catalog {
    void *self;
    /* id of the namespace called name, creating it if absent */
    int (*namespace_get_or_create)(void *self, const char *name, int64_t *id_out);
    /* id of an existing namespace, or INGOT_E_NOT_FOUND */
    int (*namespace_lookup)(void *self, const char *name, int64_t *id_out);
    /* id of table name in namespace ns_id, creating it if absent */
    int (*table_get_or_create)(void *self, int64_t ns_id, const char *name, int64_t *id_out);
    /* every namespace, in id order */
    int (*list_namespaces)(void *self, catalog_namespace_cb cb, void *arg);
    /* every table of a namespace, in id order */
    int (*list_tables)(void *self, int64_t ns_id, catalog_table_cb cb, void *arg);
    /* every column of a table, in id order */
    int (*list_columns)(void *self, int64_t table_id, catalog_column_cb cb, void *arg);
    /*
     * Create column name of the given type in table_id, or find it. If it exists with another
     * type: INGOT_E_SCHEMA, *existing_type_out holds the stored type and *id_out its id.
     */
    int (*column_upsert)(void *self, int64_t table_id, const char *name, int column_type,
                         int64_t *id_out, int *existing_type_out);

    /* --- partitions and Parquet files (persistence) --- */

    /*
     * id and sort key of the partition (table_id, partition_key), creating it with an empty sort
     * key ("[]") if absent. The sort key is a JSON array of column names, e.g.
     * ["region","host","time"]; *sort_key_out is malloc'd (caller frees).
     */
    int (*partition_get_or_create)(void *self, int64_t table_id, const char *partition_key,
                                   int64_t *id_out, char **sort_key_out);
    /*
     * Compare-and-swap the sort key: set it to new_key only if it is old_key (byte-equal JSON).
     * On a mismatch: INGOT_E_CONFLICT and *observed_out (malloc'd) holds the stored key. If the
     * stored key already is new_key (another ingester made the same change, or a retry after a
     * lost reply) the result is 0. observed_out may be NULL; it is set to NULL unless the result
     * is INGOT_E_CONFLICT. Unknown partition_id: INGOT_E_NOT_FOUND.
     */
    int (*partition_cas_sort_key)(void *self, int64_t partition_id, const char *old_key,
                                  const char *new_key, char **observed_out);
    /* Every partition of a table, in partition_key order. Strings are valid during the call. */
    int (*list_partitions)(void *self, int64_t table_id, catalog_partition_cb cb, void *arg);
    /*
     * Record a persisted Parquet file. Inserting a row whose object_store_id exists already is
     * 0 and changes nothing (a retried insert); *id_out (may be NULL) gets the stored row's id.
     * sequence_extras may be NULL (= ""); a malformed list or a value not above
     * max_sequence_number is INGOT_E_INVALID. created_at 0 means "now".
     */
    int (*parquet_file_insert)(void *self, const catalog_parquet_file *file, int64_t *id_out);
    /* id of the Parquet file named object_store_id, or INGOT_E_NOT_FOUND. */
    int (*parquet_file_lookup)(void *self, const char *object_store_id, int64_t *id_out);
    /* Every Parquet file of a table, in id order. Strings are valid during the call only. */
    int (*parquet_file_list)(void *self, int64_t table_id, catalog_parquet_file_cb cb, void *arg);
    /*
     * For every partition with at least one Parquet file of the WAL wal_id: what those files
     * cover of it (largest max_sequence_number and the union of sequence_extras), for replay to
     * skip ops already persisted. Files of other WALs (other ingesters sharing the catalog) do
     * not count; files of no identity ("", recorded before identities existed) count for every
     * WAL: their sequence numbers are below every later one of each WAL, which starts past them.
     * Strings are valid during the call only.
     */
    int (*persisted_sequences)(void *self, const char *wal_id, catalog_persisted_cb cb, void *arg);

    /* Close and free; the struct itself belongs to the caller. */
    void (*close)(void *self);
} catalog;

/*
 * Open (creating if needed, with every table of §8) the SQLite catalog at path and fill *out.
 * On failure returns a negative code and writes a message to err.
 */
int catalog_sqlite_open(const char *path, catalog *out, char *err, size_t errlen);

/*
 * Connect to the PostgreSQL catalog named by conninfo (a libpq URI such as
 * "postgres://user@host:5432/db" or a "key=value" string), create every table of §8 if absent
 * (one transaction) and fill *out. Same schema and semantics as the SQLite back end. Every call,
 * this open included, ends within timeout_s seconds (--catalog-timeout): one that gets no answer
 * in time fails with INGOT_E_CATALOG. On failure returns a negative code and writes a message to
 * err.
 */
int catalog_postgres_open(const char *conninfo, unsigned timeout_s, catalog *out, char *err,
                          size_t errlen);

/*
 * Open the catalog named by spec (the --catalog value): "postgres://..." or "postgresql://..."
 * selects PostgreSQL, whose calls end within timeout_s; anything else is the path of a SQLite
 * file (local: no timeout).
 */
int catalog_open(const char *spec, unsigned timeout_s, catalog *out, char *err, size_t errlen);

#endif
