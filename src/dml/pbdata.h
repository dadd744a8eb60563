/*
 * pbdata.h: the gRPC write request (proto/ingot/write/v1/write.proto) decoded without copies.
 *
 * Our own reader of the protobuf wire format for the two messages of the write hot path:
 * WriteRequest (namespace, line_protocol | batch, precision) and DatabaseBatch (table batches of
 * typed columns with null masks). Strings and packed arrays are read in place from the request
 * bytes: nothing is allocated per value (protobuf-c's unpack mallocs every string). The result is
 * the same lp_batch the line-protocol parser produces, so a columnar write takes exactly the
 * path of an LP write (schema check, WalSink, buffer): its base is the DatabaseBatch message and
 * every name and string value an offset into it (lp.h's compact representation). protobuf-c
 * remains the reference: the unit tests encode with it and decode with this.
 *
 * The WAL logs a columnar op as the DatabaseBatch bytes themselves (dml.h, kind
 * DML_KIND_DATABASE_BATCH); replay decodes them here again, with the same precision, and gets the
 * same rows.
 *
 * Rules of a DatabaseBatch (anything else is INGOT_E_INVALID with a message naming the table
 * batch, the column and the problem):
 *   - table_name non-empty; row_count rows (0 allowed: contributes nothing);
 *   - column names non-empty, at most LP_MAX_KEY_BYTES bytes (lp_tag / lp_field keep 12 bits of
 *     key length; the schema allows 255 anyway) and unique within the table batch; exactly one
 *     column with semantic_type TIME, named "time", holding row_count i64_values and no nulls;
 *     no other column named "time"; SEMANTIC_TYPE_UNSPECIFIED or unknown semantic types are
 *     refused;
 *   - null_mask empty (no nulls) or exactly ceil(row_count / 8) bytes with the bits past
 *     row_count clear; bit i (LSB first, byte i / 8) set = row i is null;
 *   - a TAG column holds string_values only; a FIELD column holds values in exactly one of the
 *     five arrays (none at all is allowed only if every row is null: the column is then ignored);
 *     the number of values equals the number of non-null rows;
 *   - tag values are non-empty (as in line protocol, where an empty tag value is a syntax error);
 *   - f64 values are finite (line protocol has no NaN or infinity either);
 *   - every row has at least one non-null field (line protocol cannot express a row without one);
 *   - times are scaled from the precision to nanoseconds without overflow.
 * Unknown fields are skipped (wire types 0, 1, 2, 5); groups (3, 4) and malformed varints or
 * lengths are INGOT_E_INVALID. For repeated numeric fields both the packed and the unpacked
 * encoding are accepted, as protobuf requires. proto3 string validity (UTF-8) is not checked,
 * as the line-protocol path does not check it either.
 */
#ifndef INGOT_PBDATA_H
#define INGOT_PBDATA_H

#include <stddef.h>
#include <stdint.h>

#include "lp/lp.h"
#include "util/error.h"

enum pbdata_payload {
    PBDATA_PAYLOAD_NONE = 0,
    PBDATA_PAYLOAD_LINE_PROTOCOL = 2, /* the oneof's field numbers */
    PBDATA_PAYLOAD_BATCH = 3,
};

/* A decoded WriteRequest: every pointer points into the request bytes. */
typedef struct pbdata_write_request {
    const char *namespace_name; /* not NUL-terminated */
    size_t namespace_len;
    enum pbdata_payload payload; /* the last oneof member on the wire wins, as protobuf says */
    const char *line_protocol;   /* PBDATA_PAYLOAD_LINE_PROTOCOL */
    size_t line_protocol_len;
    const uint8_t *batch;        /* PBDATA_PAYLOAD_BATCH: the serialized DatabaseBatch */
    size_t batch_len;
    enum lp_precision precision; /* NS, US, MS or S (Precision enum 0..3; others refused) */
} pbdata_write_request;

/* Decode a serialized WriteRequest. Returns 0, or INGOT_E_INVALID with the reason in err. */
int pbdata_decode_write_request(const uint8_t *msg, size_t len, pbdata_write_request *out,
                                char *err, size_t errlen) INGOT_MUST_CHECK;

/*
 * Decode a serialized DatabaseBatch into batch (zeroed or lp_batch_reset), one lp_line per row in
 * table-batch order then row order: measurement = the table name, tags = the row's non-null tag
 * columns, fields = its non-null field columns (lp_field.type from the values array), time_ns =
 * the time scaled to nanoseconds. batch->base becomes msg and every lp_str is an offset into it
 * with escaped = 0; line_number is the 1-based row number over the whole DatabaseBatch;
 * text_off / text_len name the table (so an error found later, e.g. a schema conflict, can say
 * which table). msg must outlive the batch.
 * Returns 0, INGOT_E_INVALID (err says what; batch->lines is then empty; also when the batch
 * already holds rows of another message), INGOT_E_NOMEM, or INGOT_E_TOO_LARGE (a message longer
 * than LP_MAX_BODY_BYTES, more than UINT32_MAX rows).
 */
int pbdata_decode_batch(const uint8_t *msg, size_t len, enum lp_precision precision,
                        lp_batch *batch, char *err, size_t errlen) INGOT_MUST_CHECK;

#endif
