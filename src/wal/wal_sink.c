/*
 * wal_sink.c: the WalSink, the dml_sink decorator that makes the write path durable.
 *
 * apply(op): take the next sequence number from one atomic counter, stamp it into op, encode op
 * as a WAL payload (dml_codec.c: a 24-byte header plus iovecs over the namespace and the
 * request's line-protocol text, no copy), commit it through the wal_appender and, only when the
 * appender returned 0, pass op to the inner sink. A failed commit returns the appender's code and
 * the inner sink never sees op, so nothing unlogged becomes visible.
 *
 * Sequence numbers are unique and increasing in the order apply() calls take them, but two
 * concurrent calls may reach the log in the other order; replay order is log order. A number is
 * spent even if its commit fails.
 *
 * Durability: op->durability == DML_DURABILITY_WRITTEN waits for write(2) only (no_sync
 * requests); everything else waits for fdatasync.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "wal/wal.h"

struct wal_sink {
    wal_appender appender;          /* immutable after wal_sink_new */
    dml_sink inner;                 /* immutable after wal_sink_new */
    _Atomic uint64_t next_sequence; /* atomic: the next number apply() hands out */
};

static int wal_sink_apply(void *self, dml_op *op)
{
    wal_sink *s = self;
    if (op->namespace_len > UINT16_MAX) return INGOT_E_INVALID;
    uint64_t seq = atomic_fetch_add_explicit(&s->next_sequence, 1, memory_order_relaxed);
    op->sequence = seq;
    uint8_t header[DML_PAYLOAD_HEADER_BYTES];
    struct iovec iov[3];
    dml_op_encode(op, header, iov);
    enum wal_wait wait =
        op->durability == DML_DURABILITY_WRITTEN ? WAL_WAIT_WRITTEN : WAL_WAIT_SYNCED;
    int rc = s->appender.append(s->appender.self, seq, iov, 3, wait);
    if (rc != 0) return rc;
    return s->inner.apply(s->inner.self, op);
}

wal_sink *wal_sink_new(wal_appender appender, dml_sink inner, uint64_t first_sequence)
{
    wal_sink *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->appender = appender;
    s->inner = inner;
    atomic_init(&s->next_sequence, first_sequence);
    return s;
}

dml_sink wal_sink_as_dml(wal_sink *s)
{
    return (dml_sink){.self = s, .apply = wal_sink_apply};
}

void wal_sink_free(wal_sink *s)
{
    free(s);
}
