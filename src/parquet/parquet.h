/*
 * parquet.h: our Parquet writer (ARCHITECTURE §7). No Parquet library exists in Debian, so this
 * is ours, proven against DuckDB, arrow-rs (parquet-wasm) and hyparquet in the test suite.
 *
 * Input is one sorted, de-duplicated batch in the Arrow-like layout of query.h (the persist
 * job's compaction output), whole or a column at a time; output is a complete Parquet file in
 * memory. Mapping:
 *   time    INT64, TIMESTAMP(NANOS, isAdjustedToUTC=true), REQUIRED, DELTA_BINARY_PACKED
 *   tag     BYTE_ARRAY, STRING (UTF8), OPTIONAL, dictionary page + RLE_DICTIONARY indices
 *   i64     INT64, OPTIONAL                      u64  INT64 + INTEGER(64, unsigned) (UINT_64)
 *   f64     DOUBLE, OPTIONAL                     bool BOOLEAN, OPTIONAL
 *   string  BYTE_ARRAY, STRING, OPTIONAL, dictionary-encoded while the dictionary stays small,
 *           PLAIN otherwise
 * Integers use DELTA_BINARY_PACKED, doubles PLAIN; every page is ZSTD-compressed; optional
 * columns carry RLE/bit-packed definition levels. Each column chunk has statistics (min_value,
 * max_value, null_count; u64 and strings compared unsigned/bytewise, with column_orders set).
 * Row groups hold at most row_group_rows rows and carry sorting_columns. The file's key-value
 * metadata has the key "ingot" with the caller's JSON.
 *
 * Thread-safe (no shared state). Errors: INGOT_E_INVALID for a batch it cannot represent,
 * INGOT_E_NOMEM, with a message in err.
 */
#ifndef INGOT_PARQUET_H
#define INGOT_PARQUET_H

#include <stddef.h>
#include <stdint.h>

#include "query/query.h"
#include "util/error.h"
#include "util/strbuf.h"

#define PARQUET_DEFAULT_ROW_GROUP_ROWS 1048576

typedef struct parquet_write_options {
    const char *const *sorting_columns; /* column names in sort order (ascending, nulls first) */
    size_t sorting_column_count;
    const char *metadata_json;          /* value of the key-value metadata "ingot"; NULL: none */
    size_t row_group_rows;              /* 0: PARQUET_DEFAULT_ROW_GROUP_ROWS */
    int zstd_level;                     /* 0: 3 */
} parquet_write_options;

/* Append a Parquet file holding every row of batch to out. */
int parquet_write(const query_batch *batch, const parquet_write_options *opts, strbuf *out,
                  char *err, size_t errlen) INGOT_MUST_CHECK;

/*
 * The same rows given one column at a time: the writer loads a column when it writes its chunk
 * (once per row group) and gives it back right after, so only one column is ever materialised
 * (a persist job's sorted output is never whole in memory). names and types describe the columns
 * up front (the schema); load must fill out with all row_count rows of column ci, of that type.
 */
typedef struct parquet_column_source {
    void *self;
    size_t row_count;
    size_t column_count;
    const char *const *names;
    const enum column_type *types;
    int (*load)(void *self, size_t ci, query_column *out); /* 0 or a negative code */
    void (*unload)(void *self, query_column *col);          /* after every load, even failed */
} parquet_column_source;

int parquet_write_source(const parquet_column_source *src, const parquet_write_options *opts,
                         strbuf *out, char *err, size_t errlen) INGOT_MUST_CHECK;

#endif
