/*
 * catalog.h: the catalog interface (ARCHITECTURE §8) and its SQLite back end.
 *
 * The catalog is the durable record of names and types: namespace(id, name unique),
 * table_name(id, namespace_id, name), column_name(id, table_id, name, column_type),
 * partition(id, table_id, partition_key, sort_key), parquet_file(...). All tables exist from the
 * first open, so later work only adds rows. Column creation is an upsert that fails on a type
 * conflict, so two ingesters sharing a catalog agree on types.
 *
 * Interface: a struct of function pointers with a self pointer; tests may plug in their own.
 * Every function is thread-safe (the SQLite back end serialises calls on one connection) and
 * returns 0 or a negative ingot code (INGOT_E_CATALOG for database failures, with a message
 * logged; INGOT_E_NOT_FOUND; INGOT_E_SCHEMA for a type conflict).
 */
#ifndef INGOT_CATALOG_H
#define INGOT_CATALOG_H

#include <stddef.h>
#include <stdint.h>

/* List callbacks: name is valid only during the call. */
typedef void (*catalog_table_cb)(void *arg, int64_t table_id, const char *name);
typedef void (*catalog_column_cb)(void *arg, int64_t column_id, const char *name, int column_type);

typedef struct catalog {
    void *self;
    /* id of the namespace called name, creating it if absent */
    int (*namespace_get_or_create)(void *self, const char *name, int64_t *id_out);
    /* id of an existing namespace, or INGOT_E_NOT_FOUND */
    int (*namespace_lookup)(void *self, const char *name, int64_t *id_out);
    /* id of table name in namespace ns_id, creating it if absent */
    int (*table_get_or_create)(void *self, int64_t ns_id, const char *name, int64_t *id_out);
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
    /* Close and free; the struct itself belongs to the caller. */
    void (*close)(void *self);
} catalog;

/*
 * Open (creating if needed, with every table of §8) the SQLite catalog at path and fill *out.
 * On failure returns a negative code and writes a message to err.
 */
int catalog_sqlite_open(const char *path, catalog *out, char *err, size_t errlen);

#endif
