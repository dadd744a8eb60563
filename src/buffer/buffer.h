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

/* Bytes of the snapshots taken and not yet persisted (atomic read; part of buffer_tree_bytes). */
size_t buffer_tree_snapshot_bytes(buffer_tree *tree);

/*
 * Wait until the snapshots not yet persisted hold at most limit bytes: 0 at once or as soon as
 * persists brought them there, INGOT_E_BUSY when timeout_ms passed first. Any thread; it must
 * not be one a persist is waiting for.
 */
int buffer_tree_wait_snapshot_bytes(buffer_tree *tree, size_t limit, unsigned timeout_ms);

/* --- persistence: snapshots ------------------------------------------------------------------
 *
 * A snapshot is a partition's buffered rows frozen at one moment: taking it moves the rows out
 * of the partition's buffer (new writes start a fresh buffer) into an immutable, reference-counted
 * snapshot that stays attached to the partition, so queries keep seeing it (snapshots oldest
 * first, then the buffer, de-duplicated together) until buffer_snapshot_persisted() detaches it,
 * atomically under the partition mutex: a query sees the rows either in the buffer or gone (in
 * Parquet), never half. A partition may have several snapshots.
 *
 * Handover: snapshots reach a buffer_snapshot_cb (hot partitions and buffer_tree_snapshot_all
 * alike) in the order they were taken, per partition, each exactly once: the callbacks for one
 * partition never run at the same time, and a snapshot the callback refuses stays attached and
 * is offered again, before any later snapshot of its partition, at the partition's next handover
 * (its next hot snapshot or the next buffer_tree_snapshot_all). A persister that records each
 * partition's snapshots in the order it gets them therefore never records a later one while an
 * earlier one is left out.
 */
typedef struct buffer_snapshot buffer_snapshot;

typedef struct buffer_snapshot_info {
    const char *namespace_name;   /* valid while the snapshot is referenced */
    const schema_table *table;
    char partition_key[11];
    uint64_t partition_id;        /* the buffer's partition id (process-local) */
    size_t row_count;             /* rows before de-duplication */
    size_t bytes;                 /* bytes the snapshot holds (the buffer's accounting) */
    int64_t min_time_ns, max_time_ns;
    uint64_t min_sequence, max_sequence;
    const uint64_t *sequences;    /* the distinct op sequence numbers in it, ascending */
    size_t sequence_count;
    const uint32_t *tag_columns;  /* table column indexes of the tag columns it has rows for */
    const uint32_t *tag_cardinality; /* distinct non-null values of each of those tag columns */
    size_t tag_column_count;
    /*
     * The applied watermark read (from the source set with buffer_tree_set_watermark_source)
     * under the partition mutex just before the rows moved into the snapshot: every op with a
     * sequence number <= watermark that touched this partition is in this snapshot or an earlier
     * one. Sequences in the snapshot above it are the "extras" (ops applied out of order).
     */
    uint64_t watermark;
} buffer_snapshot_info;

/*
 * Where snapshots read the applied watermark (the WalSink's, or replay's position). Set before
 * writes start; without a source the watermark is 0. source is called under a partition mutex:
 * it must be quick and must not call into the buffer.
 */
void buffer_tree_set_watermark_source(buffer_tree *tree, uint64_t (*source)(void *arg), void *arg);

/*
 * Called with each snapshot, in take order per partition (Handover, above). Return 0 when the
 * callee took the snapshot: one reference is then the callee's (release or persist it). Return
 * nonzero to refuse it (e.g. out of memory queueing it): the callee keeps nothing and must not
 * release it; the snapshot stays attached, and the later snapshots of its partition are not
 * offered before it. Called with no partition mutex held but with the partition's handover
 * mutex held (meanwhile no other thread takes a snapshot of that partition): it must be quick
 * and must not call into the buffer, except buffer_snapshot_persisted / _release.
 */
typedef int (*buffer_snapshot_cb)(void *arg, buffer_snapshot *snap);

/*
 * Snapshot every partition whose buffer holds rows and hand cb, per partition, its snapshots not
 * yet handed (refused earlier), oldest first, then the new one (outside any partition mutex).
 * Returns how many snapshots cb took, or INGOT_E_NOMEM when a snapshot could not be allocated
 * (the other partitions are still snapshotted and handed over).
 */
int buffer_tree_snapshot_all(buffer_tree *tree, buffer_snapshot_cb cb, void *arg);

/*
 * Hot partitions: after an append leaves a partition's buffer at >= threshold_bytes, the sink
 * snapshots it inside the same lock and, after unlocking, hands it (after the partition's
 * unhanded snapshots, if any) to cb on the writer's thread; cb must not block (queue it). When
 * another thread is handing the partition over at that moment, no snapshot is taken (the next
 * append tries again). Set before writes start; 0 turns it off.
 */
void buffer_tree_set_hot_partition(buffer_tree *tree, size_t threshold_bytes, buffer_snapshot_cb cb,
                                   void *arg);

void buffer_snapshot_get_info(const buffer_snapshot *snap, buffer_snapshot_info *out);

/*
 * The snapshot's rows sorted by (key tags in the order given, then time) and de-duplicated
 * (ARCHITECTURE §1: each field its last non-null value in sequence order), as one batch with
 * every column the snapshot has (tags, fields, time). key lists table column indexes of tag
 * columns; tag columns of the snapshot missing from key are appended to the key in ascending
 * name order (they are part of the primary key). Caller frees with query_batch_free.
 */
int buffer_snapshot_sorted_batch(const buffer_snapshot *snap, const uint32_t *key, size_t key_count,
                                 query_batch **out);

/*
 * The same rows, sorted and de-duplicated once, handed out a column at a time: a persist job
 * encodes each column and frees it before the next is built, so the sorted copy of the
 * snapshot is never whole in memory. The snapshot must stay referenced until
 * buffer_sorted_rows_free. names[i]/types[i] describe output column i (order as below).
 */
typedef struct buffer_sorted_rows buffer_sorted_rows;
int buffer_snapshot_sort(const buffer_snapshot *snap, const uint32_t *key, size_t key_count,
                         buffer_sorted_rows **out);
size_t buffer_sorted_rows_count(const buffer_sorted_rows *s);   /* rows after de-duplication */
size_t buffer_sorted_rows_columns(const buffer_sorted_rows *s); /* output columns */
const char *const *buffer_sorted_rows_names(const buffer_sorted_rows *s);
const enum column_type *buffer_sorted_rows_types(const buffer_sorted_rows *s);
/* Output column i, all rows (free with query_column_free): 0, INGOT_E_NOMEM, INGOT_E_TOO_LARGE. */
int buffer_sorted_rows_column(buffer_sorted_rows *s, size_t i, query_column *out);
void buffer_sorted_rows_free(buffer_sorted_rows *s);

/*
 * Output columns of buffer_snapshot_sorted_batch and buffer_snapshot_sort: the key's tag
 * columns in key order (appended ones included), then the field columns in name order, then
 * `time` last; only columns with at least one non-null value in the snapshot. Returns 0,
 * INGOT_E_INVALID (a key entry that is not a tag column of the table, or twice), INGOT_E_NOMEM,
 * INGOT_E_TOO_LARGE.
 */

/*
 * The snapshot's rows are in the object store and catalog: detach it from its partition (its
 * rows and bytes leave the totals). Calling it again, or after buffer_tree_free, does nothing;
 * the caller still releases its reference.
 */
void buffer_snapshot_persisted(buffer_snapshot *snap);

/* References: a snapshot (its info and rows) stays valid while referenced, even after
 * buffer_tree_free. */
void buffer_snapshot_retain(buffer_snapshot *snap);
void buffer_snapshot_release(buffer_snapshot *snap);

/*
 * The smallest op sequence number whose rows are still held (buffered or in a snapshot not yet
 * persisted), or UINT64_MAX when the tree holds no row. A closed WAL segment whose ops all have
 * smaller sequence numbers (and were all applied) holds nothing that is not persisted.
 */
uint64_t buffer_tree_min_sequence(buffer_tree *tree);

/* "YYYY-MM-DD" (UTC) of the day holding time_ns, NUL-terminated; works for negative times. */
void buffer_partition_key(int64_t time_ns, char out[11]);

#endif
