/*
 * parquet.h: our Parquet writer (ARCHITECTURE §7). No Parquet library exists in Debian, so this
 * is ours, proven against DuckDB, arrow-rs (parquet-wasm) and hyparquet in the test suite.
 *
 * Input is one sorted, de-duplicated batch in the Arrow-like layout of query.h (the persist
 * job's compaction output); output is a complete Parquet file in memory. Mapping:
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

#endif
