/*
 * buffer.h: the BufferTree (ARCHITECTURE §4): namespace -> table -> partition (UTC day), the
 * in-memory columnar store that takes committed ops and answers queries.
 *
 * Each level is a concurrent map; each partition has its own mutex; there is no global write
 * lock. Column storage per partition: `time` as i64; tags dictionary-encoded (u32 ids into a
 * per-column dictionary); fields as typed arrays with validity bitmaps; strings as offsets +
 * bytes. A partition also records, for each append, the op's sequence number, so that
 * de-duplication orders rows by sequence number (then by position) and gives the same answer
 * before a crash and after replay, whatever order concurrent ops were applied in.
 *
 * Applying an op is atomic: the partitions it touches are locked in a fixed order (partition id),
 * every allocation is made first, and only then are rows appended, so either every row of the op
 * is visible or none (INGOT_E_NOMEM). Byte accounting is kept per partition and in total.
 */
#ifndef INGOT_BUFFER_H
#define INGOT_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "dml/dml.h"
#include "dml/schema.h"
#include "query/query.h"

typedef struct buffer_tree buffer_tree;

/* An empty tree. Tables are found by the schema_table pointers of the ops (which outlive the
 * tree) and by name for queries. NULL on OOM. */
buffer_tree *buffer_tree_new(void);
void buffer_tree_free(buffer_tree *tree);

/* The DmlSink that appends committed ops to the tree. */
dml_sink buffer_tree_as_sink(buffer_tree *tree);

/* The QueryExec that reads the tree. */
query_exec buffer_tree_as_query_exec(buffer_tree *tree);

/* Bytes buffered in all partitions (atomic read). */
size_t buffer_tree_bytes(buffer_tree *tree);

/* Rows buffered in all partitions (atomic read). */
size_t buffer_tree_rows(buffer_tree *tree);

/* "YYYY-MM-DD" (UTC) of the day holding time_ns, NUL-terminated; works for negative times. */
void buffer_partition_key(int64_t time_ns, char out[11]);

#endif
