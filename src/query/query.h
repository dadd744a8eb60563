/*
 * query.h: the QueryExec interface (ARCHITECTURE §5) and the record batches it streams.
 *
 * query(namespace, table, columns, time range) -> a stream of record batches, partition by
 * partition of a snapshot fixed when the query starts (partitions created later are invisible):
 * one batch per partition, or several of at most QUERY_BATCH_MAX_ROWS rows for a big one (the
 * batches of a partition come one after the other and carry its key and id). Each partition is
 * read only when the caller pulls its first batch: a write is visible iff it was applied before
 * that pull, and after it the partition's rows are frozen for this query. Rows are de-duplicated (same tags +
 * time: one row whose fields are each the last non-null value in write order) and filtered to
 * min_time_ns <= time < max_time_ns.
 *
 * Batches use Arrow's memory layout so encoders (text, Arrow IPC) only walk arrays:
 * validity bitmaps LSB-first (1 = valid), booleans as bitmaps, strings as int32 offsets + bytes,
 * tags as int32 dictionary ids + a dictionary of strings. A batch owns all its memory.
 *
 * Front ends (HTTP, gRPC) talk only to this interface; the buffer implements it.
 */
#ifndef INGOT_QUERY_H
#define INGOT_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/column_type.h"

/* Rows in one batch at most: bounds a query's output memory, whatever a partition holds. */
#define QUERY_BATCH_MAX_ROWS 65536

typedef struct query_request {
    const char *namespace_name;
    const char *table_name;
    const char *const *columns; /* projection in the order asked; NULL/0 = all columns */
    size_t column_count;        /* unknown names are skipped */
    int64_t min_time_ns;        /* inclusive; INT64_MIN for none */
    int64_t max_time_ns;        /* exclusive; INT64_MAX for none */
} query_request;

typedef struct query_column {
    char *name;
    enum column_type type;
    uint8_t *validity; /* NULL: every row valid; else bit i (LSB-first) = row i is not null */
    union {
        int64_t *i64;  /* COLUMN_I64, COLUMN_TIME */
        uint64_t *u64; /* COLUMN_U64 */
        double *f64;   /* COLUMN_F64 */
        uint8_t *bits; /* COLUMN_BOOL: value bitmap, LSB-first */
        struct {       /* COLUMN_STRING: row i is bytes[offsets[i] .. offsets[i+1]) */
            int32_t *offsets; /* row_count + 1 entries */
            char *bytes;
        } str;
        struct {               /* COLUMN_TAG: row i is dictionary entry ids[i] (null: validity) */
            int32_t *ids;
            int32_t *dict_offsets; /* dict_count + 1 entries */
            char *dict_bytes;
            uint32_t dict_count;
        } tag;
    } data;
} query_column;

typedef struct query_batch {
    char partition_key[11];  /* "YYYY-MM-DD" */
    uint64_t partition_id;   /* stable for the partition's life in this process */
    uint64_t completed_persistence_count; /* snapshots of the partition persisted before the pull */
    size_t row_count;        /* may be 0: a partition with no row in the time range */
    size_t column_count;
    query_column *columns;   /* in projection order; `time` is a column like the others */
} query_batch;

void query_batch_free(query_batch *batch); /* frees the contents and the batch */
void query_column_free(query_column *c);   /* frees a column's arrays and name (not c itself) */

/*
 * A view of rows [start, start + count) of b, for sending a big batch in pieces: start must be a
 * multiple of 8 so bitmaps slice at byte boundaries. view and cols (b->column_count entries)
 * borrow b's arrays (string offsets are not rebased: offsets[0] may be > 0, tag dictionaries are
 * b's); nothing is copied and the view must not be freed.
 */
void query_batch_slice(const query_batch *b, size_t start, size_t count, query_batch *view,
                       query_column *cols);

typedef struct query_stream query_stream;

typedef struct query_stream_ops {
    /*
     * Pull the next batch: 1 and *out (caller frees with query_batch_free), 0 at the end,
     * negative on error.
     */
    int (*next)(query_stream *s, query_batch **out);
    void (*close)(query_stream *s);
} query_stream_ops;

struct query_stream {
    const query_stream_ops *ops;
};

static inline int query_stream_next(query_stream *s, query_batch **out)
{
    return s->ops->next(s, out);
}
static inline void query_stream_close(query_stream *s)
{
    s->ops->close(s);
}

typedef struct query_exec {
    void *self;
    /*
     * Start a query. Returns 0 and *out, INGOT_E_NOT_FOUND for an unknown namespace or table
     * (message in err), or INGOT_E_NOMEM.
     */
    int (*query)(void *self, const query_request *req, query_stream **out, char *err,
                 size_t errlen);
} query_exec;

#endif
