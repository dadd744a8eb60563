/*
 * query_text.h: text encodings of query batches for the HTTP read endpoint: JSON lines, a JSON
 * array, or CSV (RFC 4180). `time` is RFC 3339 UTC with exactly nine fractional digits; null
 * values are omitted from JSON objects and empty in CSV; tags and strings are JSON-escaped (bytes
 * that are not valid UTF-8 become U+FFFD); floats use the shortest form that reads back exactly.
 *
 * The encoder is incremental so the HTTP layer can stream: it appends rows to a strbuf until the
 * buffer holds at least `soft_limit` bytes, and remembers where it stopped.
 */
#ifndef INGOT_QUERY_TEXT_H
#define INGOT_QUERY_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "query/query.h"
#include "util/strbuf.h"

enum query_text_format { QUERY_TEXT_JSONL, QUERY_TEXT_JSON, QUERY_TEXT_CSV };

/* "jsonl", "json", "csv"; -1 for anything else. */
int query_text_format_parse(const char *s, enum query_text_format *out);
const char *query_text_content_type(enum query_text_format f);

typedef struct query_text_encoder {
    enum query_text_format format;
    size_t rows_written;
    char **header;      /* CSV: the column names of the header row, from the first batch */
    size_t header_count;
    size_t *header_map; /* CSV: for the current batch, its column index of each header column */
    size_t header_map_cap;
    const query_batch *mapped; /* the batch header_map was built for */
} query_text_encoder;

void query_text_begin(query_text_encoder *e, enum query_text_format f, strbuf *out);
/*
 * Append rows of batch from *row (advanced) while out->len < soft_limit. Returns true when the
 * batch is finished.
 */
bool query_text_rows(query_text_encoder *e, const query_batch *batch, size_t *row, size_t soft_limit,
                     strbuf *out);
void query_text_end(query_text_encoder *e, strbuf *out);
void query_text_encoder_free(query_text_encoder *e);

/* RFC 3339 UTC with nine fractional digits, e.g. 2026-01-01T00:00:00.000000000Z (31 bytes + NUL; 64 of room). */
void query_text_format_time(int64_t time_ns, char out[64]);

#endif
