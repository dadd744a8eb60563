/*
 * arrow_ipc.h: query batches as an Arrow IPC stream (the Arrow columnar format's "streaming
 * format", MetadataVersion V5, little-endian, no compression), for the HTTP read endpoint
 * (application/vnd.apache.arrow.stream) and, message by message, for Arrow Flight.
 *
 * Stream: a Schema message; then for each batch one DictionaryBatch message per tag column
 * (isDelta false: it replaces that column's dictionary; the dictionary id is the column's index)
 * followed by the RecordBatch; then the end-of-stream marker 0xFFFFFFFF 0x00000000.
 *
 * Arrow types: time -> Timestamp(NANOSECOND, "UTC"), not nullable; tag -> Dictionary(Int32 ->
 * Utf8); i64 -> Int64; u64 -> UInt64; f64 -> Float64 (DOUBLE); bool -> Boolean; string -> Utf8.
 * Every column but time is nullable. The schema comes from the first batch: every later batch
 * must have the same column names and types in the same order (else INGOT_E_INVALID).
 *
 * Ownership: the writer copies what it needs of the first batch (names, types); batches are only
 * read during the call. Output is appended to caller-owned strbufs. A batch is checked before any
 * byte of it is written, so INGOT_E_INVALID leaves the output as it was; after INGOT_E_NOMEM the
 * strbuf is failed (strbuf_failed()) and must be discarded.
 */
#ifndef INGOT_ARROW_IPC_H
#define INGOT_ARROW_IPC_H

#include <stddef.h>

#include "query/query.h"
#include "util/error.h"
#include "util/strbuf.h"

typedef struct arrow_ipc_writer arrow_ipc_writer;

/*
 * A writer whose schema is that of `first` (read only during the call). Returns 0, or
 * INGOT_E_INVALID (a column type the format has no mapping for), INGOT_E_NOMEM.
 */
int arrow_ipc_writer_new(const query_batch *first, arrow_ipc_writer **out) INGOT_MUST_CHECK;
void arrow_ipc_writer_free(arrow_ipc_writer *w);

/* ---- the stream format: framed messages appended to out ---- */

/* Append the Schema message. Returns 0 or INGOT_E_NOMEM. */
int arrow_ipc_write_schema(arrow_ipc_writer *w, strbuf *out) INGOT_MUST_CHECK;
/*
 * Append b's dictionaries and its record batch. Returns 0, INGOT_E_INVALID (b's columns differ
 * from the schema, a tag id outside its dictionary, decreasing string offsets, a null time) or
 * INGOT_E_NOMEM.
 */
int arrow_ipc_write_batch(arrow_ipc_writer *w, const query_batch *b, strbuf *out) INGOT_MUST_CHECK;
/* Append the end-of-stream marker. */
void arrow_ipc_write_end(strbuf *out);

/* ---- single messages, e.g. for Flight's FlightData {data_header, data_body} ---- */

/*
 * A batch is sent as arrow_ipc_batch_message_count(w) messages: index i < count - 1 is the
 * dictionary of the i-th tag column, the last is the record batch.
 */
size_t arrow_ipc_batch_message_count(const arrow_ipc_writer *w);
/*
 * Encode one message: *header is reset and receives the flatbuffer Message (a multiple of 8
 * bytes), and body (if not NULL) gets the message body appended (a multiple of 8 bytes). The
 * Schema message has an empty body. Errors as for arrow_ipc_write_batch, and INGOT_E_INVALID
 * for index >= arrow_ipc_batch_message_count(w).
 */
int arrow_ipc_schema_message(arrow_ipc_writer *w, strbuf *header) INGOT_MUST_CHECK;
int arrow_ipc_batch_message(arrow_ipc_writer *w, const query_batch *b, size_t index, strbuf *header,
                            strbuf *body) INGOT_MUST_CHECK;
/*
 * Append a framed stream message: 0xFFFFFFFF, int32 header length (padded to 8 bytes), header,
 * body. header_len and body_len must be multiples of 8.
 */
void arrow_ipc_frame(strbuf *out, const void *header, size_t header_len, const void *body,
                     size_t body_len);

#endif
