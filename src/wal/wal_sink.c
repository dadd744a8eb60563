/*
 * wal_sink.c: the WalSink, the dml_sink decorator that makes the write path durable, and the
 * applied watermark that persistence reads.
 *
 * apply(op): encode op as a WAL payload (dml_codec.c: a 16-byte header plus iovecs over the
 * namespace and the request's line-protocol text, no copy), commit it through the wal_appender,
 * which assigns its sequence number, set op->sequence to it and, only when the appender returned
 * 0, pass op to the inner sink. A failed commit returns the appender's code and the inner sink
 * never sees op, so nothing unlogged becomes visible. Durability: op->durability ==
 * DML_DURABILITY_WRITTEN waits for write(2) only (no_sync requests); everything else waits for
 * fdatasync.
 *
 * SEQUENCES. The WAL hands out sequence numbers contiguously (first_sequence, +1, ...) in log
 * order, including to entries that then fail with their batch; an append refused before it was
 * queued gets none (0). So every number the WAL assigns reaches exactly one apply() call here.
 *
 * APPLIED WATERMARK. A sequence is complete once its apply() is finished with it: inner.apply
 * returned (success or error), or the commit failed. The watermark W is the largest S such that
 * every sequence <= S is complete. Completions arrive out of order (apply runs on many threads),
 * so the sink keeps the completed sequences above W + 1 in a small sorted array `done` under
 * `mu` and, when W + 1 completes, advances W over it and over every contiguous successor in
 * `done`. W itself is an atomic, stored (release) under `mu` and read (acquire) without it, so
 * wal_sink_applied_watermark() is one load.
 *
 * No allocation at completion time: before it appends, apply() reserves one slot (`inflight`),
 * growing `done` so that cap >= n_done + inflight. A completion turns one reserved slot into one
 * `done` entry at most, so the array never has to grow then; an out-of-memory is reported by
 * apply() before anything is logged (INGOT_E_NOMEM, no sequence spent).
 *
 * WHAT A SNAPSHOT MAY CONCLUDE. Let a persister, holding partition P's lock, read W. Then its
 * view of P contains every op with sequence s <= W that touches P. Why: s <= W means s is
 * complete, and its completion was recorded (under `mu`, W stored with release) after its
 * inner.apply returned, i.e. after the buffer wrote the op's rows into P and released P's lock.
 * The persister's acquire load of W synchronises with that store, so the op's unlock of P
 * happens before the persister's read of W, which is inside the persister's critical section on
 * P. Critical sections on P are totally ordered; if the persister's came first, the op's lock of
 * P would come after the persister's unlock, i.e. after its read of W, contradicting the order
 * just shown. So the op's writes to P precede the snapshot and are in it. (An op that failed is
 * complete too; per the dml_sink contract none of it is visible anywhere, so there is nothing to
 * cover.) The converse does not hold: ops above W may be in the snapshot as well, and the buffer
 * must apply each op's rows to a partition within one critical section on that partition, before
 * inner.apply returns (BufferTree does).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "wal/wal.h"

struct wal_sink {
    wal_appender appender;      /* immutable after wal_sink_new */
    dml_sink inner;             /* immutable after wal_sink_new */
    pthread_mutex_t mu;         /* guards the fields below except `watermark` reads */
    _Atomic uint64_t watermark; /* written under mu (release); read anywhere (acquire) */
    uint64_t *done;             /* mu: completed sequences > watermark + 1, ascending */
    size_t n_done;              /* mu */
    size_t cap;                 /* mu: capacity of done; >= n_done + inflight */
    size_t inflight;            /* mu: apply() calls between reserve and complete */
};

/* Reserve a completion slot for one apply() (see "No allocation at completion time"). */
static int wal_sink_reserve(wal_sink *s)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    size_t need = s->n_done + s->inflight + 1;
    if (need > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        while (ncap < need)
            ncap *= 2;
        uint64_t *nd = realloc(s->done, ncap * sizeof *nd);
        if (!nd) {
            rc = INGOT_E_NOMEM;
            goto out;
        }
        s->done = nd;
        s->cap = ncap;
    }
    s->inflight++;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Give back a reserved slot; seq != 0 marks that sequence complete. */
static void wal_sink_complete(wal_sink *s, uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    uint64_t w = atomic_load_explicit(&s->watermark, memory_order_relaxed);
    if (seq == 0) {
        /* nothing was assigned */
    } else if (seq <= w) {
        log_error("wal sink: sequence %llu completed twice or below the start watermark %llu",
                  (unsigned long long)seq, (unsigned long long)w);
    } else if (seq == w + 1) {
        w = seq;
        size_t k = 0;
        while (k < s->n_done && s->done[k] == w + 1) {
            w++;
            k++;
        }
        if (k) {
            memmove(s->done, s->done + k, (s->n_done - k) * sizeof *s->done);
            s->n_done -= k;
        }
        atomic_store_explicit(&s->watermark, w, memory_order_release);
    } else {
        /* insert in order; completions mostly arrive near the end, so search from there */
        size_t i = s->n_done;
        while (i > 0 && s->done[i - 1] > seq)
            i--;
        if (i > 0 && s->done[i - 1] == seq) {
            log_error("wal sink: sequence %llu completed twice", (unsigned long long)seq);
        } else {
            memmove(s->done + i + 1, s->done + i, (s->n_done - i) * sizeof *s->done);
            s->done[i] = seq;
            s->n_done++; /* cap >= n_done + inflight held before this call's inflight-- */
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static int wal_sink_apply(void *self, dml_op *op)
{
    wal_sink *s = self;
    if (op->namespace_len > UINT16_MAX) return INGOT_E_INVALID;
    int rc = wal_sink_reserve(s);
    if (rc != 0) return rc;
    uint8_t header[DML_PAYLOAD_HEADER_BYTES];
    struct iovec iov[3];
    dml_op_encode(op, header, iov);
    enum wal_wait wait =
        op->durability == DML_DURABILITY_WRITTEN ? WAL_WAIT_WRITTEN : WAL_WAIT_SYNCED;
    uint64_t seq = 0;
    rc = s->appender.append(s->appender.self, iov, 3, wait, &seq);
    if (seq != 0) op->sequence = seq;
    if (rc == 0) rc = s->inner.apply(s->inner.self, op);
    wal_sink_complete(s, seq);
    return rc;
}

wal_sink *wal_sink_new(wal_appender appender, dml_sink inner, uint64_t applied_watermark)
{
    wal_sink *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->appender = appender;
    s->inner = inner;
    atomic_init(&s->watermark, applied_watermark);
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

dml_sink wal_sink_as_dml(wal_sink *s)
{
    return (dml_sink){.self = s, .apply = wal_sink_apply};
}

uint64_t wal_sink_applied_watermark(wal_sink *s)
{
    return atomic_load_explicit(&s->watermark, memory_order_acquire);
}

void wal_sink_free(wal_sink *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->done);
    free(s);
}
