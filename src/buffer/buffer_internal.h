/*
 * buffer_internal.h: what the files of the buffer share (partition.c, buffer_tree.c,
 * buffer_query.c) and what later subsystems of the buffer's side (persist) may reuse: the
 * partition's columnar storage, its transactional append, the frozen copy a reader takes, and the
 * sort + de-duplication core.
 *
 * Storage of one partition (all guarded by buffer_partition.mu):
 *   columns[i] holds table column i (schema_table.columns[i]); the array only covers the columns
 *   this partition has seen, and an entry whose type is 0 is absent (every row null).
 *   columns[0] is `time` (no validity bitmap: time is never null).
 *   Each present column has room for `cap` rows; every byte past the rows in use is zero, so a
 *   column created after N rows, or a row that does not set a column, reads as null (validity 0)
 *   with a zero value, and nothing has to be back-filled by hand.
 *     i64/u64/f64/time: values[cap] of 8 bytes; tag: u32 dictionary ids[cap];
 *     bool: a value bitmap of cap bits; string: u32 offsets[cap + 1] + bytes (unescaped).
 *   A tag column has a dictionary: entries (offset, len, hash) into an arena of unescaped bytes,
 *   and an open-addressing index (power-of-two slots of id + 1, 0 = empty, linear probing).
 *   runs[]: (first_row, sequence) for every append, in row order; rows of one run came from one
 *   op. De-duplication orders rows by (sequence, row), so the answer after a replay equals the
 *   answer before the crash whatever order concurrent ops were applied in. The runs allocation
 *   holds run_cap runs followed by run_cap u64s of spare room (buffer_run_seq_room): a snapshot
 *   taking the runs writes its sorted sequence list there, so taking it needs no allocation
 *   sized by the data.
 *
 * Snapshots (buffer_snapshot.c): taking one moves columns[], runs[] and the counters out of the
 *   partition into an immutable buffer_snapshot (the buffer restarts empty, dictionaries too) and
 *   appends it to snaps[] (oldest first). Readers copy, under the mutex, the live buffer and take
 *   a reference on every attached snapshot, so the set they read is one consistent state; the
 *   snapshot's rows are then read outside the lock (they never change). Detaching
 *   (buffer_snapshot_persisted) removes it from snaps[] under the mutex.
 *
 * Handover (buffer_partition_hand_over): handover_mu is held from taking a snapshot until the
 *   callback for it, and for every earlier one not yet handed, has returned; every take happens
 *   under it (both takers try-lock it under p->mu: the hot path takes no snapshot when it is
 *   busy, snapshot_all drops p->mu, waits for it and tries again). A handover gives the
 *   callback the attached snapshots whose `handed` flag is clear, oldest first, and stops at the
 *   first refusal. So the handed snapshots of a partition are always a prefix of snaps[], and
 *   the callback sees the snapshots of one partition in take order, each exactly once. Lock
 *   order: handover_mu before mu (whoever holds mu only try-locks handover_mu); several
 *   handover_mu are held together only by the hot path, which try-locks them.
 *
 * Invariants under the partition mutex, between appends: every string column's offsets are
 * complete up to row_count (str_filled == row_count); dictionaries hold each string once.
 */
#ifndef INGOT_BUFFER_INTERNAL_H
#define INGOT_BUFFER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer/buffer.h"
#include "dml/dml.h"
#include "dml/schema.h"
#include "util/hash.h"
#include "query/query.h"

/* ---- test seam ---------------------------------------------------------------------------- */

/*
 * Fault injection for the reservation phase of an append: when set to N > 0, the Nth allocation
 * made by partition reservation from now on fails (and the counter goes back to 0). Tests only.
 */
extern _Atomic long buffer_fail_alloc_countdown;

/* A 32-bit hash of n bytes (util/hash.h). */
static inline uint32_t buffer_hash_bytes(const void *data, size_t n)
{
    return (uint32_t)hash_bytes(data, n, 0);
}

/* ---- storage ------------------------------------------------------------------------------ */

typedef struct buffer_dict_entry {
    uint32_t offset; /* into buffer_dict.bytes */
    uint32_t len;
    uint32_t hash;
} buffer_dict_entry;

typedef struct buffer_dict {
    buffer_dict_entry *entries; /* id -> string */
    uint32_t count, cap;
    char *bytes;
    size_t len, bytes_cap;
    uint32_t *slots; /* id + 1, 0 = empty; slot_cap is a power of two (or 0) */
    uint32_t slot_cap;
} buffer_dict;

typedef struct buffer_column {
    uint8_t type;      /* enum column_type; 0 = absent */
    size_t cap;        /* rows of room */
    uint8_t *validity; /* cap bits, LSB-first, 1 = valid; NULL for time */
    void *values;      /* see the essay above */
    char *str_bytes;   /* string columns */
    size_t str_len, str_cap;
    size_t str_filled; /* rows whose end offset (offsets[row + 1]) is written */
    buffer_dict dict;  /* tag columns */
} buffer_column;

typedef struct buffer_run {
    size_t first_row;
    uint64_t sequence;
} buffer_run;

/*
 * The tree's totals: rows and bytes held in buffers and in snapshots not yet persisted, and the
 * bytes of those snapshots alone (snapshot_bytes), which writers may wait on
 * (buffer_tree_wait_snapshot_bytes: waiters is counted before snapshot_bytes is read, and a
 * persist that lowers snapshot_bytes broadcasts `lowered` under mu when waiters is not 0; both
 * are sequentially consistent, so a waiter never misses the drop it waits for).
 */
typedef struct buffer_totals {
    _Atomic size_t bytes;          /* atomic */
    _Atomic size_t rows;           /* atomic */
    _Atomic size_t snapshot_bytes; /* atomic */
    _Atomic int waiters;           /* atomic */
    pthread_mutex_t mu;
    pthread_cond_t lowered;        /* mu: snapshot_bytes went down */
} buffer_totals;

typedef struct buffer_partition {
    uint64_t id;                   /* process-unique, immutable */
    int64_t day;                   /* days since the epoch (UTC), immutable */
    char key[11];                  /* "YYYY-MM-DD", immutable */
    const schema_table *table;     /* borrowed, immutable; outlives the tree */
    const char *namespace_name;    /* borrowed from the tree's namespace, immutable */
    buffer_totals *totals;         /* the tree's, immutable */
    _Atomic long refs;             /* atomic: the table's + one per query + one per snapshot */
    _Atomic size_t visible_rows;   /* atomic mirror of row_count + snap_rows (rows held) */
    _Atomic uint64_t min_sequence; /* atomic mirror of the smallest sequence held (or MAX) */

    /*
     * Held from taking a snapshot of p until the callbacks for it and for every earlier one not
     * yet handed returned (Handover, above). Ordered before mu: with mu held it is only
     * try-locked.
     */
    pthread_mutex_t handover_mu;
    pthread_mutex_t mu;
    size_t row_count;            /* mu */
    uint32_t column_count;       /* mu: entries of columns[] */
    buffer_column *columns;      /* mu */
    buffer_run *runs;            /* mu: run_cap runs, then run_cap u64s of room */
    size_t run_count, run_cap;   /* mu */
    size_t bytes;                /* mu: data bytes held (see partition_data_bytes) */
    uint64_t buf_min_sequence;   /* mu: smallest sequence in the buffer (MAX when empty) */
    uint64_t buf_max_sequence;   /* mu: largest (0 when empty) */
    buffer_snapshot **snaps;     /* mu: attached snapshots, oldest first; each holds a ref */
    size_t snap_count, snap_cap; /* mu */
    size_t snap_rows;            /* mu: rows of the attached snapshots */
    uint64_t persisted_count;    /* mu: snapshots persisted and detached so far */
    /*
     * mu: rows the columns of an empty buffer are first sized for: a quarter more than the last
     * hot snapshot took (0 after a snapshot that was not hot). A hot partition refills to about
     * the same size before its next snapshot, so it is sized once instead of doubling through
     * copies to up to twice what it needs.
     */
    size_t row_hint;
} buffer_partition;

/* The spare u64 room after the runs (run_cap entries). */
static inline uint64_t *buffer_run_seq_room(buffer_run *runs, size_t run_cap)
{
    return (uint64_t *)(void *)(runs + run_cap);
}

/* A new empty partition holding one reference. NULL on OOM. */
buffer_partition *buffer_partition_new(const schema_table *table, int64_t day,
                                       const char *namespace_name, buffer_totals *totals);
void buffer_partition_ref(buffer_partition *p);
void buffer_partition_unref(buffer_partition *p); /* frees it at the last reference */
void buffer_column_free(buffer_column *c);

/* Under p->mu: store the atomic mirrors (visible_rows, min_sequence) from the state. */
void buffer_partition_publish(buffer_partition *p);

/* ---- snapshots (buffer_snapshot.c) ---------------------------------------------------------- */

struct buffer_snapshot {
    _Atomic long refs;      /* atomic */
    buffer_partition *part; /* immutable; holds a partition reference */
    bool attached;          /* part->mu: in part->snaps */
    bool handed;            /* part->handover_mu: a callback took it (buffer_partition_hand_over) */
    /* immutable once taken (moved out of the partition under part->mu): */
    size_t row_count;
    uint32_t column_count;
    buffer_column *columns;
    buffer_run *runs; /* run_cap runs, then the sorted distinct sequences */
    size_t run_count, run_cap;
    size_t bytes;
    uint64_t min_sequence, max_sequence;
    uint64_t watermark;
    /* written by the taker after unlocking, before the snapshot is handed out; immutable then: */
    uint64_t *sequences; /* in the runs allocation */
    size_t sequence_count;
    int64_t min_time_ns, max_time_ns;
    uint32_t tag_count;
    uint32_t tag_columns[SCHEMA_MAX_COLUMNS];
    uint32_t tag_cardinality[SCHEMA_MAX_COLUMNS];
    uint8_t has_values[(SCHEMA_MAX_COLUMNS + 7) / 8]; /* column i has a non-null value */
    char namespace_name[];                            /* a copy */
};

/*
 * Under p->mu: when p's buffer holds rows, move them into a new snapshot attached to p, with
 * the watermark given, and return it holding one reference for the caller (*rc = 0); NULL with
 * *rc = 0 when the buffer is empty, NULL with *rc = INGOT_E_NOMEM when the snapshot could not be
 * allocated (nothing changed). O(1) apart from one small allocation. The caller must call
 * buffer_snapshot_finish() after unlocking and before handing the snapshot to anyone.
 */
buffer_snapshot *buffer_snapshot_take_locked(buffer_partition *p, uint64_t watermark, int *rc);
/* Compute the snapshot's info (sequence list, time range, tags): O(rows), no allocation. */
void buffer_snapshot_finish(buffer_snapshot *snap);

/*
 * Under p->mu and p->handover_mu: whether p has an attached snapshot other than fresh (the one
 * just taken, or NULL) that no callback took yet. O(1): the handed ones are a prefix of snaps[].
 */
bool buffer_partition_unhanded_locked(const buffer_partition *p, const buffer_snapshot *fresh);

/*
 * With p->handover_mu held and p->mu not: hand cb, in snaps[] order, every attached snapshot of
 * p not yet handed (when older says there are any: buffer_partition_unhanded_locked), each with a
 * reference of its own, then fresh (finished, or NULL) with the caller's reference. cb returns 0
 * when it took the snapshot (and the reference), nonzero when it refused it (it keeps nothing);
 * the first refusal stops the handover: the refused snapshot and every later one stay attached
 * and unhanded, and the caller's reference on fresh is dropped. Returns how many cb took.
 */
int buffer_partition_hand_over(buffer_partition *p, buffer_snapshot *fresh, bool older,
                               buffer_snapshot_cb cb, void *arg);
/* Detach every snapshot of p without touching the totals (the tree is being freed). */
void buffer_partition_detach_all(buffer_partition *p);

/* Day (floor) holding time_ns. */
static inline int64_t buffer_day_of(int64_t time_ns)
{
    const int64_t ns_per_day = 86400LL * 1000000000LL;
    int64_t d = time_ns / ns_per_day;
    if (time_ns % ns_per_day < 0) d--;
    return d;
}

/* "YYYY-MM-DD" of day (days since 1970-01-01). */
void buffer_day_key(int64_t day, char out[11]);

/* ---- transactional append (partition.c) ---------------------------------------------------- */

/*
 * One op's lines for one partition: the line indexes into op->batch->lines (in order). The caller
 * holds p->mu of every group's partition, taken in ascending partition id.
 */
typedef struct buffer_append_group {
    buffer_partition *p;
    uint32_t *lines;
    size_t line_count;
    size_t lines_cap;
    int64_t bytes_delta; /* out: change of p->bytes */
} buffer_append_group;

/*
 * Scratch shared by the groups of one op (owned by the caller, freed with
 * buffer_append_scratch_free): per tag of the batch, the dictionary id found during reservation.
 */
typedef struct buffer_append_scratch {
    uint32_t *tag_ids; /* batch->tag_count entries */
    size_t tag_cap;
    char *unescape; /* room to unescape one name or value */
    size_t unescape_cap;
} buffer_append_scratch;

void buffer_append_scratch_free(buffer_append_scratch *s);

/*
 * Phase 1 (may fail; changes nothing visible): check the group's lines against the table's
 * schema (INGOT_E_INVALID on a column index or type that does not match), look up tag values,
 * and make room for every row, column, dictionary entry and string byte the group needs
 * (INGOT_E_NOMEM, INGOT_E_TOO_LARGE when a column would pass 4 GiB).
 */
int buffer_partition_reserve(buffer_append_group *g, const dml_op *op, buffer_append_scratch *s);

/* Phase 2 (cannot fail): append the group's rows, record the run, update byte accounting. */
void buffer_partition_append(buffer_append_group *g, const dml_op *op, buffer_append_scratch *s);

/* ---- the tree's maps (buffer_tree.c), for the query side ---------------------------------- */

typedef struct buffer_tree buffer_tree;

/*
 * The table called table_name in namespace namespace_name: 0 and its schema, or
 * INGOT_E_NOT_FOUND with the message in err. On success *parts is a snapshot of the table's
 * non-empty partitions in ascending day order, each holding a reference the caller drops with
 * buffer_partition_unref (then frees the array); INGOT_E_NOMEM otherwise.
 */
int buffer_tree_snapshot(buffer_tree *tree, const char *namespace_name, const char *table_name,
                         const schema_table **table_out, buffer_partition ***parts, size_t *count,
                         char *err, size_t errlen);

/* ---- frozen copies and de-duplication ------------------------------------------------------ */

/*
 * A reader's private copy of some rows of a partition (buffer_partition_freeze): the attached
 * snapshots' rows (oldest first), then the buffer's. Columns use the storage layout above with
 * cap == row_count, indexed by table column like the partition's; dictionaries are copied
 * without their index (slots == NULL) and, when several sources are merged, are the sources'
 * dictionaries one after the other, so a string may appear under several ids (de-duplication
 * compares strings through ranks, never ids). seq[r] is row r's op sequence, and rows keep their
 * write order within each op, so (seq, row) is write order.
 */
typedef struct buffer_frozen {
    const schema_table *table;
    uint64_t persisted_count; /* the partition's, when the copy was taken */
    size_t row_count;
    uint64_t *seq;
    uint32_t column_count;
    buffer_column *columns;
} buffer_frozen;

/*
 * Copy the rows held by p (attached snapshots and buffer) with min_time_ns <= time <
 * max_time_ns, with the columns flagged in want[0 .. want_count) (time and every tag column are
 * always copied: they are the key). Under p->mu only the buffer is copied and the snapshots are
 * referenced; their rows are copied after unlocking. INGOT_E_NOMEM on failure (out is then
 * empty).
 */
int buffer_partition_freeze(buffer_partition *p, const bool *want, size_t want_count,
                            int64_t min_time_ns, int64_t max_time_ns, buffer_frozen *out);
void buffer_frozen_free(buffer_frozen *f);

static inline bool buffer_bit(const uint8_t *bits, size_t i)
{
    return (bits[i >> 3] >> (i & 7)) & 1;
}

/*
 * The sort + de-duplication core, for queries and (later) persist.
 *
 * Rows of f are sorted by the key columns key[0 .. key_count) (tag columns compared as strings,
 * null before every value), then time, then (sequence, row) (BUFFER_ORDER_KEY_TIME, for Parquet
 * files), or by time first, then the key, then (sequence, row) (BUFFER_ORDER_TIME_KEY, for
 * queries: writes arrive roughly in time order, so reading rows in this order walks the copy
 * nearly sequentially, where key order jumps across all of it). Rows with equal key and time form
 * one output row. order[] holds the f->row_count rows in that sort order; output row i is the
 * group order[group_end[i-1] .. group_end[i]) (group_end[-1] = 0), whose last element is the
 * latest write. buffer_dedup_pick() names the row giving a column's value in an output row: the
 * latest row of the group where the column is not null, or UINT32_MAX when none is.
 * key must list every tag column present in f (type COLUMN_TAG), each once: together with time
 * they are the primary key; their order decides the sort only, not which rows collapse.
 * Sorting works on integers only (value ranks, then one ordinal per distinct tag tuple) with
 * radix / counting passes, so it costs O(rows) passes whatever the number of tags.
 * INGOT_E_NOMEM on failure (out empty).
 */
typedef struct buffer_dedup {
    size_t row_count;    /* output rows */
    uint32_t *order;     /* f->row_count entries */
    uint32_t *group_end; /* row_count entries */
    uint32_t **rank;     /* per key column: dictionary id -> rank of its string (1 = least) */
    size_t key_count;
} buffer_dedup;

enum buffer_row_order { BUFFER_ORDER_KEY_TIME, BUFFER_ORDER_TIME_KEY };

int buffer_dedup_run(const buffer_frozen *f, const uint32_t *key, size_t key_count,
                     enum buffer_row_order row_order, buffer_dedup *out);
uint32_t buffer_dedup_pick(const buffer_frozen *f, const buffer_dedup *d, uint32_t column,
                           size_t out_row);
void buffer_dedup_free(buffer_dedup *d);

/*
 * Column col of f as out (whose name and type are set), one row per output row first ..
 * first + n - 1 of d: the de-duplicated values (a tag column's dictionary holds only the values
 * these rows use, sorted). key and key_count are d's key (a present tag column must be in it).
 * pick is scratch of n entries. INGOT_E_NOMEM / INGOT_E_TOO_LARGE / INGOT_E_INVALID; out is
 * then freed by the batch's owner (query_batch_free).
 */
int buffer_batch_column(query_column *out, const buffer_frozen *f, const buffer_dedup *d,
                        uint32_t col, const uint32_t *key, size_t key_count, size_t first,
                        size_t n, uint32_t *pick);

/* Sort the table column indexes cols[0 .. n) by column name. */
void buffer_columns_sort_by_name(const schema_table *table, uint32_t *cols, size_t n);

/* Tag column indexes of table (below column_count) in ascending name order. Caller frees. */
int buffer_table_tags_by_name(const schema_table *table, uint32_t column_count, uint32_t **out,
                              size_t *count_out);

#endif
