/*
 * wal.h: the segmented, checksummed write-ahead log (ARCHITECTURE §3), its WalAppender interface,
 * replay, inspection, and the WalSink decorator.
 *
 * On disk: a directory of segment files "<id>.wal" (decimal id, no padding, ascending). A segment
 * is a 32-byte header followed by entries:
 *   header: "INGOTWAL" (8) | u32 version=1 | u32 reserved=0 | u64 segment_id | u32 CRC32C of the
 *           previous 24 bytes | u32 reserved=0            (little-endian)
 *   entry:  u32 payload_length | u32 CRC32C(payload) | payload       (little-endian)
 * The payload is opaque to the WAL (dml.h defines the op payload). A new segment's header is
 * written and fdatasynced, and the directory fsynced, before any entry goes in.
 *
 * Group commit: wal_append() queues the entry and waits; one writer thread takes every entry
 * queued since its last write, writes them with one writev() and one fdatasync(), then wakes
 * their waiters. No timer: while one fsync runs, the next batch gathers. Any write or fsync error
 * is sticky: the WAL refuses every later append with INGOT_E_WAL_FAILED and never acknowledges an
 * entry that was not synced. When the open segment exceeds segment_bytes the writer rotates
 * (closes it, opens id+1) before its next batch.
 *
 * Replay reads closed segments in id order. A torn tail in the LAST segment (an entry cut short
 * by EOF, a frame that runs past EOF, zeros to the end, or a zero-length / header-less file, as a
 * crash or power cut leaves them) is an un-acknowledged write: it is logged, counted and truncated
 * away. Any other damage stops replay naming file, offset and reason, unless skip_corrupt, which
 * moves the damaged segment into <dir>/corrupt/ and goes on.
 */
#ifndef INGOT_WAL_H
#define INGOT_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include "dml/dml.h"
#include "util/error.h"

#define WAL_SEGMENT_HEADER_BYTES 32
#define WAL_ENTRY_HEADER_BYTES 8
#define WAL_MAX_ENTRY_BYTES (1u << 30)

enum wal_wait {
    WAL_WAIT_SYNCED = 0,  /* return once the entry is fdatasynced */
    WAL_WAIT_WRITTEN = 1, /* return once write(2) returned (no_sync writes) */
};

/* The interface the WalSink commits through; tests and benchmarks plug in their own. */
typedef struct wal_appender {
    void *self;
    /*
     * Append one entry whose payload is the concatenation of iov[0..iovcnt), tagged with the op's
     * sequence number (for per-segment bookkeeping). Blocks until the entry is durable (or
     * written, per wait). Returns 0, INGOT_E_WAL_FAILED (sticky failure: nothing more will be
     * acknowledged), INGOT_E_TOO_LARGE (over WAL_MAX_ENTRY_BYTES), INGOT_E_INVALID (empty
     * payload) or INGOT_E_CLOSED.
     */
    int (*append)(void *self, uint64_t sequence, const struct iovec *iov, int iovcnt,
                  enum wal_wait wait);
} wal_appender;

typedef struct wal wal;

#define WAL_FSYNC_BUCKETS 12
/* Upper bounds of the fsync latency histogram buckets, in microseconds (the last is +Inf). */
extern const uint64_t wal_fsync_bucket_us[WAL_FSYNC_BUCKETS];

typedef struct wal_stats {
    uint64_t batches;       /* group commits (one writev + one fdatasync each) */
    uint64_t entries;
    uint64_t bytes;         /* bytes written, framing included */
    uint64_t fsync_count;
    uint64_t fsync_sum_us;
    uint64_t fsync_buckets[WAL_FSYNC_BUCKETS]; /* cumulative counts are built by the reader */
    uint64_t segment_id;    /* the open segment */
    uint64_t rotations;
    bool failed;            /* sticky failure state */
} wal_stats;

/*
 * Create the directory if needed and open a fresh segment with id first_segment_id (callers pass
 * one past the highest id that replay saw), then start the writer thread.
 */
int wal_open(const char *dir, uint64_t segment_bytes, uint64_t first_segment_id, wal **out,
             char *err, size_t errlen) INGOT_MUST_CHECK;

/* The WalAppender view of w (valid while w is open). */
wal_appender wal_as_appender(wal *w);

/* See wal_appender.append. */
int wal_append(wal *w, uint64_t sequence, const struct iovec *iov, int iovcnt, enum wal_wait wait);

/* Close the open segment and open the next one. Returns 0 or the sticky error. */
int wal_rotate(wal *w);

void wal_get_stats(wal *w, wal_stats *out);

/* Let every queued entry be written and synced, stop the writer thread, close the files, free. */
void wal_close(wal *w);

/* What replay saw. */
typedef struct wal_replay_stats {
    uint64_t segments;         /* segments read */
    uint64_t entries;          /* entries handed to on_entry */
    uint64_t bytes;            /* bytes of the segments read */
    uint64_t torn_tails;       /* torn tails truncated */
    uint64_t torn_bytes;       /* bytes truncated away */
    uint64_t corrupt_skipped;  /* segments moved to corrupt/ */
    uint64_t max_segment_id;   /* highest segment id seen (0 if none) */
} wal_replay_stats;

typedef struct wal_replay_callbacks {
    /* One entry, in log order. payload is valid during the call. Nonzero return stops replay. */
    int (*on_entry)(void *arg, uint64_t segment_id, const uint8_t *payload, size_t len);
    /* After the last entry of a segment (may be NULL). Nonzero return stops replay. */
    int (*on_segment_end)(void *arg, uint64_t segment_id, const char *path);
    void *arg;
} wal_replay_callbacks;

/*
 * Replay every segment in dir (a missing dir is an empty WAL). Returns 0, the first nonzero
 * callback result, or INGOT_E_CORRUPT with "file, offset, reason" in err.
 */
int wal_replay(const char *dir, bool skip_corrupt, const wal_replay_callbacks *cb,
               wal_replay_stats *stats, char *err, size_t errlen);

/*
 * `ingot wal inspect`: one line per segment in dir with its entry count, bytes, sequence range
 * (read through dml_op_decode) and checksum verdict, then a total. Changes nothing on disk.
 * Returns 0 when every segment is clean (a torn tail of the last one counts as clean), 1 if
 * any is damaged, negative on error.
 */
int wal_inspect(const char *dir, FILE *out);

/*
 * WalSink: the decorator that makes the write path durable. apply(op) gives op the next sequence
 * number, commits it through the appender, and only after the commit passes op to inner. If the
 * commit fails, inner never sees op. Sequence numbers come from one atomic counter starting at
 * first_sequence (callers seed it past the highest replayed one).
 */
typedef struct wal_sink wal_sink;

wal_sink *wal_sink_new(wal_appender appender, dml_sink inner, uint64_t first_sequence);
dml_sink wal_sink_as_dml(wal_sink *s);
void wal_sink_free(wal_sink *s);

#endif
