/*
 * schema.h: the in-memory schema cache in front of the catalog, and the schema check of a parsed
 * write.
 *
 * The cache holds namespace -> table -> columns as the catalog stores them. It is filled lazily
 * (a namespace is loaded from the catalog on first use) and only grows: tables and columns are
 * never removed or retyped while the process runs, so a pointer to a schema_namespace or
 * schema_table stays valid until schema_cache_free(), and a column index never changes.
 *
 * Concurrency: lookups may run concurrently with creations. A namespace's table map is guarded by
 * the namespace's rwlock; a table's columns live in a fixed array of SCHEMA_MAX_COLUMNS entries
 * that never moves, and column_count is published with release semantics after the entry is
 * complete, so readers that load it with acquire semantics see whole entries without a lock.
 * Column creation is serialised per table by the table's mutex.
 *
 * Every table's column 0 is `time` (COLUMN_TIME), created with the table.
 */
#ifndef INGOT_SCHEMA_H
#define INGOT_SCHEMA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "lp/lp.h"

#define SCHEMA_MAX_COLUMNS 200    /* per table, `time` included */
#define SCHEMA_MAX_TABLES 10000   /* per namespace */
#define SCHEMA_MAX_NAME_BYTES 255 /* table and column names */
#define SCHEMA_MAX_NAMESPACE_BYTES 64

typedef struct schema_cache schema_cache;
typedef struct schema_namespace schema_namespace;

typedef struct schema_column {
    const char *name; /* NUL-terminated, unescaped; owned by the cache */
    uint32_t name_len;
    uint8_t type; /* enum column_type */
    int64_t catalog_id;
} schema_column;

typedef struct schema_table {
    int64_t catalog_id;
    const char *name; /* NUL-terminated, unescaped; owned by the cache */
    uint32_t name_len;
    schema_namespace *ns;
    _Atomic uint32_t column_count; /* atomic; entries below it are complete and immutable */
    schema_column columns[SCHEMA_MAX_COLUMNS];
} schema_table;

/* Create an empty cache over cat (borrowed; must outlive the cache). NULL on OOM. */
schema_cache *schema_cache_new(catalog *cat);
void schema_cache_free(schema_cache *cache);

/*
 * Is name acceptable as a namespace name: 1..64 bytes of [A-Za-z0-9_-] and '.', not "." or ".."?
 * On refusal writes the reason into err.
 */
bool schema_namespace_name_valid(const char *name, size_t len, char *err, size_t errlen);

/*
 * The namespace called name. With create, it is created in the catalog if absent; without,
 * INGOT_E_NOT_FOUND if the catalog does not have it. Returns 0, INGOT_E_INVALID (bad name, message
 * in err), INGOT_E_NOT_FOUND or INGOT_E_CATALOG.
 */
int schema_namespace_get(schema_cache *cache, const char *name, bool create, schema_namespace **out,
                         char *err, size_t errlen);

const char *schema_namespace_name(const schema_namespace *ns);
int64_t schema_namespace_id(const schema_namespace *ns);

/* The table called name (unescaped bytes), or NULL. */
schema_table *schema_table_find(schema_namespace *ns, const char *name, size_t len);

/* Index of column name in table, or -1. */
int schema_column_find(const schema_table *table, const char *name, size_t len);

/* Tables touched by one write op, in first-use order; lp_line.table_slot indexes into it. */
typedef struct schema_op_tables {
    schema_table **tables;
    size_t count, cap;
} schema_op_tables;

void schema_op_tables_free(schema_op_tables *t);

/*
 * The schema check of a parsed write against namespace ns.
 *
 * Phase 1 (no side effects): every good line of batch is checked against the cached schema and
 * against the columns that earlier lines of the same request would create: names valid, types
 * equal to the stored ones (a conflict names the column, its stored type and the type sent),
 * at most SCHEMA_MAX_TABLES tables per namespace and SCHEMA_MAX_COLUMNS columns per table.
 * A line that fails is removed from batch->lines and described in batch->errors (which stays in
 * line-number order; bad_line_count grows).
 * Phase 2, only if no line failed or partial_ok: the new tables and columns are created in the
 * catalog (upserts), then every remaining line gets table_slot (index into tables_out) and every
 * tag and field its column index.
 *
 * Returns 0 when the remaining lines are resolved (batch->bad_line_count says whether some were
 * dropped; without partial_ok any bad line means nothing was created and the caller must refuse
 * the request), INGOT_E_NOMEM, or INGOT_E_CATALOG (a catalog failure: message in err).
 * A column created concurrently with another type by someone else shows up as a line error.
 */
int schema_check(schema_cache *cache, schema_namespace *ns, lp_batch *batch, bool partial_ok,
                 schema_op_tables *tables_out, char *err, size_t errlen);

#endif
