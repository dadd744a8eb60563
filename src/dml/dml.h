/*
 * dml.h: the write operation (dml_op) that flows down the write path, the DmlSink interface every
 * stage implements, and the op's encoding as a WAL entry payload.
 *
 *   handler -> parse -> schema_check -> dml_sink (WalSink) -> dml_sink (BufferTree) -> ack
 *
 * A dml_op is one request's validated rows for one namespace: the rows as an lp_batch (resolved
 * by schema_check: every line has table_slot, every tag and field its column index), the tables
 * it touches, and the request body those rows came from: line-protocol text, or the serialized
 * DatabaseBatch of a gRPC columnar write (pbdata.h). The WAL logs that body; replay decodes it
 * again and gets the same rows because precision and default time travel with it. The op
 * borrows everything; it lives on the handler's stack for one request.
 *
 * WAL payload of an op (all integers little-endian):
 *   u8  kind            1 = line protocol, 2 = DatabaseBatch (protobuf, ingot.write.v1)
 *   u8  precision       enum lp_precision
 *   u16 namespace_len
 *   u32 reserved        0
 *   i64 default_time_ns
 *   namespace bytes
 *   line-protocol bytes (to the end of the payload)
 * The sequence number is not in the payload: the WAL assigns it and stores it in the entry frame
 * (wal.h); replay hands it to on_entry next to the payload.
 */
#ifndef INGOT_DML_H
#define INGOT_DML_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dml/schema.h"
#include "lp/lp.h"

#define DML_PAYLOAD_HEADER_BYTES 16

/* What an op's body is (the payload's kind byte is this + 1). */
enum dml_body {
    DML_BODY_LINE_PROTOCOL = 0,
    DML_BODY_DATABASE_BATCH = 1,
};

/* How long the WalSink waits before it passes the op on (and the request is acknowledged). */
enum dml_durability {
    DML_DURABILITY_SYNCED = 0,  /* after fdatasync: the default */
    DML_DURABILITY_WRITTEN = 1, /* after write(2), before the fsync (/api/v3/write_lp no_sync) */
};

typedef struct dml_op {
    uint64_t sequence;           /* assigned by the WAL through the WalSink (or by replay) */
    schema_namespace *ns;        /* borrowed (NULL in tests that bypass the schema cache) */
    const char *namespace_name;  /* borrowed; the sinks and the WAL use the name, not ns */
    size_t namespace_len;
    lp_batch *batch;             /* borrowed; resolved by schema_check */
    schema_op_tables *tables;    /* borrowed */
    enum dml_body body_kind;
    const char *body;            /* borrowed: the request body the batch's rows came from */
    size_t body_len;
    enum lp_precision precision;
    int64_t default_time_ns;
    size_t row_count;            /* == batch->line_count */
    enum dml_durability durability;
} dml_op;

/* The interface of every stage of the write path. */
typedef struct dml_sink {
    void *self;
    /*
     * Apply op. Returns 0, or a negative ingot code; on error nothing of op is visible in this
     * sink or any after it.
     */
    int (*apply)(void *self, dml_op *op);
} dml_sink;

static inline int dml_sink_apply(dml_sink *sink, dml_op *op)
{
    return sink->apply(sink->self, op);
}

/*
 * The payload header of op (DML_PAYLOAD_HEADER_BYTES bytes) into header_out, and the iovec array
 * {header, namespace, lp text} into iov (3 entries). The iovecs borrow from op and header_out.
 */
void dml_op_encode(const dml_op *op, uint8_t header_out[DML_PAYLOAD_HEADER_BYTES],
                   struct iovec iov[3]);

/* A payload read back from the WAL: the fields point into the payload buffer. */
typedef struct dml_decoded {
    enum dml_body body_kind;
    enum lp_precision precision;
    int64_t default_time_ns;
    const char *namespace_name;
    size_t namespace_len;
    const char *body;
    size_t body_len;
} dml_decoded;

/*
 * The rows of a decoded body into batch (zeroed or reset), for replay: line protocol is parsed
 * (a bad line, which a logged body cannot have, lands in batch->errors), a DatabaseBatch is decoded (pbdata.h; a malformed one is
 * INGOT_E_INVALID with the reason in err). The batch points into d's payload.
 */
int dml_decoded_rows(const dml_decoded *d, lp_batch *batch, char *err, size_t errlen);

/* Decode a WAL payload. INGOT_E_CORRUPT (message in err) if it is not a valid op payload. */
int dml_op_decode(const uint8_t *payload, size_t len, dml_decoded *out, char *err, size_t errlen);

#endif
