/*
 * wal.c: the write side of the write-ahead log: segment files, the writer thread, group commit,
 * rotation and sticky failure. Reading (replay, inspect) lives in wal_replay.c.
 *
 * ON DISK (all integers little-endian; see wal.h). A directory of segments "<id>.wal":
 *   segment header, 32 bytes:
 *     0  "INGOTWAL"   8  u32 version (2)   12  u32 reserved (0)   16  u64 segment_id
 *     24 u32 CRC32C of bytes 0..24          28  u32 reserved (0)
 *   then entries back to back, each (a 16-byte frame header, then the payload):
 *     0  u32 payload_length (1 .. WAL_MAX_ENTRY_BYTES)
 *     4  u32 CRC32C(payload || sequence as 8 little-endian bytes)
 *     8  u64 sequence (>= 1, strictly increasing through the log)
 *     16 payload
 * The checksum covers the sequence, so a flipped sequence bit is caught like a flipped payload
 * bit. Version 1 (8-byte frames without a sequence) is not read any more: nothing was released
 * with it.
 * A segment is created with O_CREAT|O_EXCL, its header written and fdatasynced and the directory
 * fsynced before any entry goes in, so a segment that exists after a crash either has a durable
 * header or is a header-less torn file that replay deletes.
 *
 * SEQUENCES. wal_append() runs in the caller's thread: it sums the payload length and computes
 * the CRC32C over the caller's iovecs (so checksumming is parallel across appenders), then, under
 * `mu`, gives the record the next ticket (1, 2, 3 ... in queue order) and the next sequence
 * (first_sequence, +1, ... in the same order), extends the CRC with the 8 sequence bytes
 * (crc32c_update over 8 bytes: the only checksum work under the mutex), fills in the 16-byte
 * frame header of the record on its own stack, links it onto the queue and waits on a condition
 * variable. The queue is FIFO and the writer writes it in order, so file order == ticket order ==
 * sequence order, and every segment holds a contiguous sequence range. An append refused before
 * queueing (invalid, too large, failed, closing) gets no sequence (reported as 0).
 *
 * GROUP COMMIT.
 * The one writer thread takes the whole queue at once (a batch is a contiguous ticket range),
 * drops the mutex, writes every frame header and payload iovec with writev() in chunks of
 * IOV_MAX, publishes written_ticket (releasing WAL_WAIT_WRITTEN waiters), fdatasyncs once,
 * publishes synced_ticket and done_ticket and broadcasts. While it syncs, the next batch gathers:
 * there is no timer and no sleep. An empty payload is refused (a zero frame is how replay
 * recognises a zero-filled tail).
 *
 * Record lifetime: a record lives on its appender's stack. The writer reads records only
 * between taking the batch and publishing written_ticket (success) or done_ticket (failure);
 * after that their owners may return, so the writer never touches them again.
 *
 * FAILURE. The first write, fdatasync or segment-creation error is stored in `failed_cause` and is
 * sticky: the batch that saw it and every record queued behind it are completed with
 * INGOT_E_WAL_FAILED, every later append and wal_rotate() returns INGOT_E_WAL_FAILED at once,
 * and the writer never writes or fsyncs again (an fsync is never retried: after a failed fsync
 * the kernel may have dropped the dirty pages, so a retry that "succeeds" proves nothing). An
 * entry is acknowledged only when the fdatasync that covers it returned 0. Short writes and EINTR
 * are looped over; they are not failures.
 *
 * ROTATION. After a batch, if the open segment exceeds segment_bytes, the writer creates id+1
 * and closes the old file (already synced), then calls on_segment_closed(id, first, last,
 * entries) for it, on the writer thread, without `mu` (appends queue up meanwhile: the callback
 * must not block). The writer tracks the open segment's range itself: `next_write_sequence` is
 * the sequence after the last entry it wrote, and a segment's first sequence is its value when
 * the segment was opened, so an empty segment reports first == last + 1. wal_rotate() from any
 * thread raises a request counter and waits until the writer has served it; the writer serves
 * requests after the batch it is on (and after calling the callback), so every entry
 * acknowledged before wal_rotate() returned is in a closed, reported segment. Explicit rotation
 * always rotates, even an empty segment. wal_close() closes the open segment without the
 * callback. A failed rotation (segment creation error) is a sticky failure and closes nothing.
 *
 * TESTING SEAMS. Every file system call goes through util/sysio.h, whose fault injector tests
 * arm (tests/unit/test_faults.c). Crash points (INGOT_CRASH_AT, sysio.h): "wal-mid-entry" writes
 * the frame header and half the payload of a batch's first entry, then ends the process;
 * "wal-rotate-empty-segment" ends it after a rotation created the next segment file, before its
 * header is written; "wal-rotate-before-report" after the new segment is durable and the old one
 * closed, before on_segment_closed. Replay must cope with each (torn tail, header-less last file,
 * an unreported closed segment).
 *
 * LOCKING. One mutex `mu` guards the queue, the tickets, the failure state, the close and rotate
 * flags and the stats. Fields marked "writer" belong to the writer thread alone (and to
 * wal_open/wal_close while the thread is not running). No I/O happens under `mu`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/sysio.h"
#include "wal/wal.h"
#include "wal/wal_internal.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

const uint64_t wal_fsync_bucket_us[WAL_FSYNC_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000, UINT64_MAX,
};

/* One queued entry; lives on the appender's stack (see "Record lifetime" above). */
typedef struct wal_record {
    struct wal_record *next; /* mu while queued; the writer's once taken */
    const struct iovec *iov; /* the caller's payload pieces */
    int iovcnt;
    uint8_t frame[WAL_ENTRY_HEADER_BYTES]; /* complete once queued (sequence and CRC in it) */
    uint64_t payload_bytes;
    uint64_t sequence; /* assigned under mu, with the ticket */
    uint64_t ticket;
} wal_record;

struct wal {
    char *dir;                               /* immutable */
    uint64_t segment_bytes;                  /* immutable */
    wal_segment_closed_cb on_segment_closed; /* immutable (may be NULL) */
    void *cb_arg;                            /* immutable */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* mu: the writer waits here for records, rotations, close */
    pthread_cond_t written_cv; /* mu: WAL_WAIT_WRITTEN appenders wait here */
    pthread_cond_t done_cv;    /* mu: WAL_WAIT_SYNCED appenders and wal_rotate() wait here */

    wal_record *queue_head;    /* mu */
    wal_record *queue_tail;    /* mu */
    uint64_t last_ticket;      /* mu: the ticket last handed out */
    uint64_t next_sequence;    /* mu: the sequence the next queued record gets */
    uint64_t written_ticket;   /* mu: every ticket <= this was written (write(2) returned) */
    uint64_t synced_ticket;    /* mu: every ticket <= this is durable */
    uint64_t done_ticket;      /* mu: the writer is finished with every record <= this */
    int failed_cause;          /* mu: 0, or the first I/O error (-errno); sticky */
    bool closing;              /* mu */
    uint64_t rotate_requested; /* mu */
    uint64_t rotate_served;    /* mu */
    wal_stats stats;           /* mu */

    int fd;                       /* writer: the open segment */
    uint64_t segment_id;          /* writer */
    uint64_t segment_size;        /* writer: bytes in the open segment, header included */
    uint64_t segment_entries;     /* writer */
    uint64_t segment_first_seq;   /* writer: next_write_sequence when the segment was opened */
    uint64_t next_write_sequence; /* writer: the sequence after the last entry written */
    struct iovec iovbuf[IOV_MAX]; /* writer: one writev's worth */
};

void wal_segment_header_encode(uint64_t segment_id, uint8_t out[WAL_SEGMENT_HEADER_BYTES])
{
    memcpy(out, WAL_MAGIC, 8);
    wal_put_u32(out + 8, WAL_FORMAT_VERSION);
    wal_put_u32(out + 12, 0);
    wal_put_u64(out + 16, segment_id);
    wal_put_u32(out + 24, crc32c(out, 24));
    wal_put_u32(out + 28, 0);
}

int wal_segment_path(char *buf, size_t buflen, const char *dir, uint64_t segment_id)
{
    return snprintf(buf, buflen, "%s/%llu.wal", dir, (unsigned long long)segment_id);
}

int wal_fsync_dir(const char *dir)
{
    int fd = sysio_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = 0;
    if (sysio_fsync(fd) != 0) rc = -errno;
    sysio_close(fd);
    return rc;
}

/* Write every byte of iov[0..cnt) (modifies iov), looping over short writes and EINTR. */
static int wal_writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = sysio_writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        size_t left = (size_t)n;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static int wal_fdatasync(int fd)
{
    if (sysio_fdatasync(fd) == 0) return 0;
    return -errno;
}

/*
 * Create segment id in dir: O_EXCL, header, fdatasync, fsync dir. *fd_out on success. rotating:
 * called by a rotation (where the crash point "wal-rotate-empty-segment" sits).
 */
static int wal_segment_create(const char *dir, uint64_t id, bool rotating, int *fd_out, char *err,
                              size_t errlen)
{
    char path[PATH_MAX];
    uint8_t hdr[WAL_SEGMENT_HEADER_BYTES];
    struct iovec iov = {.iov_base = hdr, .iov_len = sizeof hdr};
    const char *what = "create";
    int rc;
    wal_segment_path(path, sizeof path, dir, id);
    int fd = sysio_open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (rotating) INGOT_CRASH_POINT("wal-rotate-empty-segment"); /* a header-less last file */
    wal_segment_header_encode(id, hdr);
    what = "write header of";
    if ((rc = wal_writev_all(fd, &iov, 1)) != 0) goto fail;
    what = "fdatasync";
    if ((rc = wal_fdatasync(fd)) != 0) goto fail;
    what = "fsync the directory of";
    if ((rc = wal_fsync_dir(dir)) != 0) goto fail;
    *fd_out = fd;
    return 0;
fail:
    snprintf(err, errlen, "%s: cannot %s segment: %s", path, what, ingot_strerror(rc));
    if (fd >= 0) {
        sysio_close(fd);
        sysio_unlink(path); /* holds no entry; best effort */
    }
    return rc;
}

/* The writer's segment bookkeeping line for the segment it closes. */
static void wal_log_segment_closed(wal *w)
{
    if (w->segment_entries)
        log_debug("wal: closed segment %llu: %llu entries, %llu bytes, sequences %llu..%llu",
                  (unsigned long long)w->segment_id, (unsigned long long)w->segment_entries,
                  (unsigned long long)w->segment_size, (unsigned long long)w->segment_first_seq,
                  (unsigned long long)(w->next_write_sequence - 1));
    else
        log_debug("wal: closed segment %llu: no entries", (unsigned long long)w->segment_id);
}

/* Writer thread, mu not held: open id+1, close the current segment, report it. */
static int wal_writer_rotate(wal *w)
{
    char err[PATH_MAX + 128];
    int fd = -1;
    int rc = wal_segment_create(w->dir, w->segment_id + 1, true, &fd, err, sizeof err);
    if (rc != 0) {
        log_error("wal: rotation failed: %s", err);
        return rc;
    }
    wal_log_segment_closed(w);
    if (sysio_close(w->fd) != 0)
        log_warn("wal: close of segment %llu: %s (its entries were already synced)",
                 (unsigned long long)w->segment_id, strerror(errno));
    uint64_t closed_id = w->segment_id, closed_entries = w->segment_entries;
    uint64_t closed_first = w->segment_first_seq, closed_last = w->next_write_sequence - 1;
    w->fd = fd;
    w->segment_id++;
    w->segment_size = WAL_SEGMENT_HEADER_BYTES;
    w->segment_entries = 0;
    w->segment_first_seq = w->next_write_sequence;
    log_debug("wal: opened segment %llu", (unsigned long long)w->segment_id);
    /* both segments are on disk, the closed one not yet reported to anyone */
    INGOT_CRASH_POINT("wal-rotate-before-report");
    pthread_mutex_lock(&w->mu);
    w->stats.segment_id = w->segment_id;
    w->stats.rotations++;
    pthread_mutex_unlock(&w->mu);
    if (w->on_segment_closed)
        w->on_segment_closed(w->cb_arg, closed_id, closed_first, closed_last, closed_entries);
    return 0;
}

/*
 * Writer thread: write every record of the batch (frame header + payload pieces) with writev in
 * chunks of IOV_MAX.
 */
static int wal_write_records(wal *w, wal_record *head)
{
    int n = 0;
    for (wal_record *r = head; r; r = r->next) {
        for (int i = -1; i < r->iovcnt; i++) {
            struct iovec piece;
            if (i < 0) {
                piece.iov_base = r->frame;
                piece.iov_len = WAL_ENTRY_HEADER_BYTES;
            } else {
                piece = r->iov[i];
                if (piece.iov_len == 0) continue;
            }
            if (n == IOV_MAX) {
                int rc = wal_writev_all(w->fd, w->iovbuf, n);
                if (rc != 0) return rc;
                n = 0;
            }
            w->iovbuf[n++] = piece;
        }
    }
    if (n > 0) return wal_writev_all(w->fd, w->iovbuf, n);
    return 0;
}

/*
 * Crash point "wal-mid-entry": write the frame header and the first half of the payload of the
 * batch's first entry (as a power cut in the middle of the write would leave it), then end the
 * process. None of the batch was acknowledged.
 */
static void wal_crash_mid_entry(wal *w, const wal_record *r)
{
    uint64_t want = r->payload_bytes / 2;
    int n = 0;
    w->iovbuf[n++] =
        (struct iovec){.iov_base = (void *)r->frame, .iov_len = WAL_ENTRY_HEADER_BYTES};
    for (int i = 0; i < r->iovcnt && want > 0 && n < IOV_MAX; i++) {
        struct iovec piece = r->iov[i];
        if (piece.iov_len > want) piece.iov_len = want;
        want -= piece.iov_len;
        if (piece.iov_len) w->iovbuf[n++] = piece;
    }
    if (wal_writev_all(w->fd, w->iovbuf, n) != 0) log_error("wal: crash point: write failed");
    sysio_crash_now("wal-mid-entry");
}

/* Writer thread, mu held on entry and exit: take the whole queue, write, sync, publish. */
static void wal_writer_batch(wal *w)
{
    wal_record *head = w->queue_head;
    w->queue_head = w->queue_tail = NULL;
    int rc = w->failed_cause;
    pthread_mutex_unlock(&w->mu);

    uint64_t last_ticket = 0, last_sequence = 0, entries = 0, bytes = 0;
    for (wal_record *r = head; r; r = r->next) {
        last_ticket = r->ticket;
        last_sequence = r->sequence;
        entries++;
        bytes += WAL_ENTRY_HEADER_BYTES + r->payload_bytes;
    }
    uint64_t sync_us = 0;
    bool wrote = false;
    if (rc == 0) {
        if (INGOT_CRASH_POINT_HIT("wal-mid-entry")) wal_crash_mid_entry(w, head);
        rc = wal_write_records(w, head);
        if (rc == 0) {
            /* From here on the records are not touched: WRITTEN waiters may now return. */
            w->segment_size += bytes;
            w->segment_entries += entries;
            w->next_write_sequence = last_sequence + 1; /* the batch is a contiguous range */
            wrote = true;
            pthread_mutex_lock(&w->mu);
            w->written_ticket = last_ticket;
            pthread_cond_broadcast(&w->written_cv);
            pthread_mutex_unlock(&w->mu);
            uint64_t t0 = (uint64_t)(clock_ns(CLOCK_MONOTONIC) / 1000);
            rc = wal_fdatasync(w->fd);
            sync_us = (uint64_t)(clock_ns(CLOCK_MONOTONIC) / 1000) - t0;
        }
        if (rc != 0)
            log_error("wal: segment %llu: %s failed: %s; the WAL refuses all further writes",
                      (unsigned long long)w->segment_id, wrote ? "fdatasync" : "write",
                      ingot_strerror(rc));
    }

    pthread_mutex_lock(&w->mu);
    if (rc != 0) {
        if (w->failed_cause == 0) w->failed_cause = rc;
        w->stats.failed = true;
    } else {
        w->synced_ticket = last_ticket;
        w->stats.batches++;
        w->stats.entries += entries;
        w->stats.bytes += bytes;
        w->stats.fsync_count++;
        w->stats.fsync_sum_us += sync_us;
        int b = 0;
        while (b < WAL_FSYNC_BUCKETS - 1 && sync_us > wal_fsync_bucket_us[b])
            b++;
        w->stats.fsync_buckets[b]++;
    }
    w->done_ticket = last_ticket;
    pthread_cond_broadcast(&w->done_cv);
    pthread_cond_broadcast(&w->written_cv);
}

static void *wal_writer_main(void *arg)
{
    wal *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->queue_head && w->rotate_requested == w->rotate_served && !w->closing)
            pthread_cond_wait(&w->work_cv, &w->mu);
        if (w->queue_head) {
            wal_writer_batch(w);
            if (w->failed_cause == 0 && w->segment_size > w->segment_bytes) {
                pthread_mutex_unlock(&w->mu);
                int rc = wal_writer_rotate(w);
                pthread_mutex_lock(&w->mu);
                if (rc != 0 && w->failed_cause == 0) {
                    w->failed_cause = rc;
                    w->stats.failed = true;
                }
            }
            continue; /* drain the queue before serving rotations or closing */
        }
        if (w->rotate_requested != w->rotate_served) {
            uint64_t target = w->rotate_requested;
            if (w->failed_cause == 0) {
                pthread_mutex_unlock(&w->mu);
                int rc = wal_writer_rotate(w);
                pthread_mutex_lock(&w->mu);
                if (rc != 0 && w->failed_cause == 0) {
                    w->failed_cause = rc;
                    w->stats.failed = true;
                }
            }
            w->rotate_served = target;
            pthread_cond_broadcast(&w->done_cv);
            continue;
        }
        if (w->closing) break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int wal_open(const char *dir, uint64_t segment_bytes, uint64_t first_segment_id,
             uint64_t first_sequence, wal_segment_closed_cb on_segment_closed, void *cb_arg,
             wal **out, char *err, size_t errlen)
{
    int rc;
    bool mu_init = false, cv_init = false;
    *out = NULL;
    if (first_sequence == 0) {
        snprintf(err, errlen, "wal: the first sequence must be at least 1");
        return INGOT_E_INVALID;
    }
    wal *w = calloc(1, sizeof *w);
    if (w) w->fd = -1;
    if (!w || !(w->dir = strdup(dir))) {
        snprintf(err, errlen, "wal: out of memory");
        rc = INGOT_E_NOMEM;
        goto fail;
    }
    w->segment_bytes = segment_bytes;
    w->on_segment_closed = on_segment_closed;
    w->cb_arg = cb_arg;
    w->next_sequence = first_sequence;
    w->segment_first_seq = first_sequence;
    w->next_write_sequence = first_sequence;
    w->segment_id = first_segment_id;
    w->segment_size = WAL_SEGMENT_HEADER_BYTES;
    if ((rc = sysio_mkdirs(dir)) != 0) {
        snprintf(err, errlen, "%s: cannot create WAL directory: %s", dir, ingot_strerror(rc));
        goto fail;
    }
    rc = wal_segment_create(dir, first_segment_id, false, &w->fd, err, errlen);
    if (rc != 0) goto fail;
    pthread_mutex_init(&w->mu, NULL);
    mu_init = true;
    pthread_cond_init(&w->work_cv, NULL);
    pthread_cond_init(&w->written_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    cv_init = true;
    w->stats.segment_id = first_segment_id;
    w->stats.next_sequence = first_sequence;
    if ((rc = pthread_create(&w->thread, NULL, wal_writer_main, w)) != 0) {
        rc = -rc;
        snprintf(err, errlen, "wal: cannot start the writer thread: %s", ingot_strerror(rc));
        goto fail;
    }
    log_info("wal: opened %s, segment %llu, next sequence %llu", dir,
             (unsigned long long)first_segment_id, (unsigned long long)first_sequence);
    *out = w;
    return 0;
fail:
    if (w) {
        if (w->fd >= 0) sysio_close(w->fd);
        if (cv_init) {
            pthread_cond_destroy(&w->work_cv);
            pthread_cond_destroy(&w->written_cv);
            pthread_cond_destroy(&w->done_cv);
        }
        if (mu_init) pthread_mutex_destroy(&w->mu);
        free(w->dir);
        free(w);
    }
    return rc;
}

int wal_append(wal *w, const struct iovec *iov, int iovcnt, enum wal_wait wait,
               uint64_t *sequence_out)
{
    uint64_t unused;
    if (!sequence_out) sequence_out = &unused;
    *sequence_out = 0;
    if (iovcnt < 0 || (iovcnt > 0 && !iov)) return INGOT_E_INVALID;
    uint64_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > WAL_MAX_ENTRY_BYTES - len) return INGOT_E_TOO_LARGE;
        len += iov[i].iov_len;
    }
    if (len == 0) return INGOT_E_INVALID;
    uint32_t crc = 0;
    for (int i = 0; i < iovcnt; i++)
        crc = crc32c_update(crc, iov[i].iov_base, iov[i].iov_len);
    wal_record r = {.iov = iov, .iovcnt = iovcnt, .payload_bytes = len};
    wal_put_u32(r.frame, (uint32_t)len);

    int rc;
    pthread_mutex_lock(&w->mu);
    if (w->failed_cause != 0) {
        rc = INGOT_E_WAL_FAILED;
        goto out;
    }
    if (w->closing) {
        rc = INGOT_E_CLOSED;
        goto out;
    }
    r.ticket = ++w->last_ticket;
    r.sequence = w->next_sequence++;
    w->stats.next_sequence = w->next_sequence;
    *sequence_out = r.sequence;
    wal_put_u64(r.frame + 8, r.sequence);
    wal_put_u32(r.frame + 4, crc32c_update(crc, r.frame + 8, 8));
    if (w->queue_tail)
        w->queue_tail->next = &r;
    else
        w->queue_head = &r;
    w->queue_tail = &r;
    pthread_cond_signal(&w->work_cv);
    if (wait == WAL_WAIT_WRITTEN) {
        while (w->written_ticket < r.ticket && w->done_ticket < r.ticket)
            pthread_cond_wait(&w->written_cv, &w->mu);
        rc = w->written_ticket >= r.ticket ? 0 : INGOT_E_WAL_FAILED;
    } else {
        while (w->done_ticket < r.ticket)
            pthread_cond_wait(&w->done_cv, &w->mu);
        rc = w->synced_ticket >= r.ticket ? 0 : INGOT_E_WAL_FAILED;
    }
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int wal_append_thunk(void *self, const struct iovec *iov, int iovcnt, enum wal_wait wait,
                            uint64_t *sequence_out)
{
    return wal_append(self, iov, iovcnt, wait, sequence_out);
}

wal_appender wal_as_appender(wal *w)
{
    return (wal_appender){.self = w, .append = wal_append_thunk};
}

int wal_rotate(wal *w)
{
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (w->failed_cause != 0) {
        rc = INGOT_E_WAL_FAILED;
    } else if (w->closing) {
        rc = INGOT_E_CLOSED;
    } else {
        uint64_t mine = ++w->rotate_requested;
        pthread_cond_signal(&w->work_cv);
        while (w->rotate_served < mine)
            pthread_cond_wait(&w->done_cv, &w->mu);
        if (w->failed_cause != 0) rc = INGOT_E_WAL_FAILED;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int wal_delete_segment(const char *dir, uint64_t segment_id)
{
    char path[PATH_MAX];
    int n = wal_segment_path(path, sizeof path, dir, segment_id);
    if (n < 0 || (size_t)n >= sizeof path) return -ENAMETOOLONG;
    if (sysio_unlink(path) != 0) {
        if (errno == ENOENT) return 0;
        return -errno;
    }
    int rc = wal_fsync_dir(dir);
    if (rc != 0)
        log_warn("wal: deleted %s but cannot fsync %s: %s", path, dir, ingot_strerror(rc));
    else
        log_debug("wal: deleted segment %s", path);
    return rc;
}

void wal_get_stats(wal *w, wal_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
}

void wal_close(wal *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->closing = true;
    pthread_cond_signal(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    wal_log_segment_closed(w);
    if (w->fd >= 0 && sysio_close(w->fd) != 0)
        log_warn("wal: close of segment %llu: %s", (unsigned long long)w->segment_id,
                 strerror(errno));
    log_info("wal: closed %s%s", w->dir, w->failed_cause ? " (in failed state)" : "");
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->written_cv);
    pthread_cond_destroy(&w->done_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    free(w);
}
