/*
 * wal.h: the segmented, checksummed write-ahead log (ARCHITECTURE §3), its WalAppender interface,
 * replay, inspection, and the WalSink decorator.
 *
 * On disk: a directory of segment files "<id>.wal" (decimal id, no padding, ascending). A segment
 * is a 32-byte header followed by entries:
 *   header: "INGOTWAL" (8) | u32 version=2 | u32 reserved=0 | u64 segment_id | u32 CRC32C of the
 *           previous 24 bytes | u32 reserved=0            (little-endian)
 *   entry:  u32 payload_length | u32 CRC32C(payload || sequence_le64) | u64 sequence | payload
 *                                                                     (little-endian)
 * The payload is opaque to the WAL (dml.h defines the op payload). A new segment's header is
 * written and fdatasynced, and the directory fsynced, before any entry goes in. Version-1
 * segments (no sequence in the frame) are refused as corrupt ("unsupported WAL format version").
 *
 * Sequence numbers: the WAL numbers its entries. The first entry appended after wal_open() gets
 * first_sequence, each next one +1, assigned under the queue mutex in queue order, so the log
 * order IS the sequence order and a segment holds one contiguous sequence range. A number is
 * spent once assigned, even if the entry's batch then fails (the WAL is failed from then on).
 *
 * Group commit: wal_append() queues the entry and waits; one writer thread takes every entry
 * queued since its last write, writes them with one writev() and one fdatasync(), then wakes
 * their waiters. No timer: while one fsync runs, the next batch gathers. Any write or fsync error
 * is sticky: the WAL refuses every later append with INGOT_E_WAL_FAILED and never acknowledges an
 * entry that was not synced. When the open segment exceeds segment_bytes the writer rotates
 * (closes it, opens id+1) before its next batch, and reports the closed segment through the
 * on_segment_closed callback (the persister deletes it once all its ops are persisted).
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
#define WAL_ENTRY_HEADER_BYTES 16
#define WAL_MAX_ENTRY_BYTES (1u << 30)

enum wal_wait {
    WAL_WAIT_SYNCED = 0,  /* return once the entry is fdatasynced */
    WAL_WAIT_WRITTEN = 1, /* return once write(2) returned (no_sync writes) */
};

/* The interface the WalSink commits through; tests and benchmarks plug in their own. */
typedef struct wal_appender {
    void *self;
    /*
     * Append one entry whose payload is the concatenation of iov[0..iovcnt). Blocks until the
     * entry is durable (or written, per wait). Returns 0, INGOT_E_WAL_FAILED (sticky failure:
     * nothing more will be acknowledged), INGOT_E_TOO_LARGE (over WAL_MAX_ENTRY_BYTES),
     * INGOT_E_INVALID (empty payload) or INGOT_E_CLOSED. *sequence_out (never NULL) gets the
     * sequence number the entry was given, also when the entry then failed with its batch, or 0
     * if none was (refused before it was queued: invalid, too large, failed or closed WAL).
     */
    int (*append)(void *self, const struct iovec *iov, int iovcnt, enum wal_wait wait,
                  uint64_t *sequence_out);
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
    uint64_t next_sequence; /* the sequence the next appended entry will get */
    bool failed;            /* sticky failure state */
} wal_stats;

/*
 * A segment was closed by rotation (size-based in the writer, or wal_rotate()): every entry in it
 * is synced, the file is closed, and its successor is open. first_sequence..last_sequence are the
 * sequences of its `entries` entries (a contiguous range); entries == 0 means it holds nothing,
 * and then first_sequence == last_sequence + 1 (the sequence the next entry will get). Called
 * once per rotated segment, in segment order, on the rotating thread (the WAL writer thread),
 * WITHOUT any WAL lock held but while the writer is stopped: it must not block and must not call
 * back into the WAL (record the segment and signal another thread). wal_close() does not call it
 * for the segment it closes.
 */
typedef void (*wal_segment_closed_cb)(void *arg, uint64_t segment_id, uint64_t first_sequence,
                                      uint64_t last_sequence, uint64_t entries);

/*
 * Create the directory if needed and open a fresh segment with id first_segment_id (callers pass
 * one past the highest id that replay saw), then start the writer thread. The first appended
 * entry gets sequence first_sequence (>= 1; callers pass one past the highest sequence replay
 * saw). on_segment_closed may be NULL.
 */
int wal_open(const char *dir, uint64_t segment_bytes, uint64_t first_segment_id,
             uint64_t first_sequence, wal_segment_closed_cb on_segment_closed, void *cb_arg,
             wal **out, char *err, size_t errlen) INGOT_MUST_CHECK;

/* The WalAppender view of w (valid while w is open). */
wal_appender wal_as_appender(wal *w);

/* See wal_appender.append (sequence_out may be NULL here). */
int wal_append(wal *w, const struct iovec *iov, int iovcnt, enum wal_wait wait,
               uint64_t *sequence_out);

/*
 * Close the open segment (even an empty one) and open the next one. Every entry acknowledged
 * before the call is in the closed segment. Returns 0 once on_segment_closed has run for the
 * closed segment, or the sticky error (then no segment was closed by this call).
 */
int wal_rotate(wal *w);

/*
 * Delete segment <dir>/<segment_id>.wal and fsync dir. The caller guarantees the segment is closed
 * (reported by on_segment_closed, or replayed). A segment that does not exist is not an error.
 * Returns 0 or -errno.
 */
int wal_delete_segment(const char *dir, uint64_t segment_id);

void wal_get_stats(wal *w, wal_stats *out);

/*
 * Let every queued entry be written and synced, stop the writer thread, close the files, free.
 * The open segment is closed without on_segment_closed: the next start replays it.
 */
void wal_close(wal *w);

/* What replay saw. */
typedef struct wal_replay_stats {
    uint64_t segments;        /* segments read */
    uint64_t entries;         /* entries handed to on_entry */
    uint64_t bytes;           /* bytes of the segments read */
    uint64_t torn_tails;      /* torn tails truncated */
    uint64_t torn_bytes;      /* bytes truncated away */
    uint64_t corrupt_skipped; /* segments moved to corrupt/ */
    uint64_t max_segment_id;  /* highest segment id seen (0 if none) */
    uint64_t first_sequence;  /* sequence of the first entry handed to on_entry (0 if none) */
    uint64_t max_sequence;    /* sequence of the last (= highest) entry handed over (0 if none) */
} wal_replay_stats;

typedef struct wal_replay_callbacks {
    /*
     * One entry, in log order, which is strictly increasing sequence order (replay checks it: a
     * sequence not above the previous entry's is corruption). payload is valid during the call,
     * and until on_segment_scanned returns when that callback is set. Nonzero return stops
     * replay.
     */
    int (*on_entry)(void *arg, uint64_t segment_id, uint64_t sequence, const uint8_t *payload,
                    size_t len);
    /*
     * After the last entry of a segment was handed over, whatever the segment turns out to be
     * (clean, torn or corrupt), while its payloads are still valid: a caller that keeps payloads
     * past on_entry (a pipeline) must be done with them before it returns. May be NULL. Nonzero
     * return stops replay.
     */
    int (*on_segment_scanned)(void *arg, uint64_t segment_id);
    /*
     * After the last entry of a segment that replayed cleanly (may be NULL); the segment is closed
     * and may be deleted here (wal_delete_segment) once its ops are persisted. Nonzero return
     * stops replay.
     */
    int (*on_segment_end)(void *arg, uint64_t segment_id, const char *path);
    void *arg;
} wal_replay_callbacks;

/*
 * Replay every segment in dir (a missing dir is an empty WAL). Returns 0, the first nonzero
 * callback result, or INGOT_E_CORRUPT with "file: offset N: reason" in err.
 */
int wal_replay(const char *dir, bool skip_corrupt, const wal_replay_callbacks *cb,
               wal_replay_stats *stats, char *err, size_t errlen);

/*
 * The identity of the WAL in dir: the UUID in <dir>/wal.id. Sequence numbers are per WAL, so the
 * catalog records with each Parquet file which WAL its coverage is of (catalog.h, wal_id), and
 * two ingesters sharing a catalog never take each other's coverage for their own. When the file
 * is absent (a new WAL directory, or one from before identities) fresh_id becomes the identity:
 * written to a temporary file, fsynced, renamed into place and the directory fsynced, creating
 * dir if needed, so an identity once returned survives a crash and every later start. The file
 * outlives the segments (an empty WAL keeps its identity); copying a WAL directory copies its
 * identity, so a copy must not run as a second ingester on the same catalog.
 * Returns 0 with the identity in id_out, or an error described in err (a damaged file is
 * INGOT_E_CORRUPT and names it).
 */
int wal_identity(const char *dir, const char *fresh_id, char id_out[37], char *err,
                 size_t errlen);

/*
 * `ingot wal inspect`: one line per segment in dir with its entry count, bytes, sequence range
 * (from the entry frames) and checksum verdict, then a total (payloads that dml_op_decode
 * rejects are reported next to the verdict). Changes nothing on disk.
 * Returns 0 when every segment is clean (a torn tail of the last one counts as clean), 1 if
 * any is damaged, negative on error.
 */
int wal_inspect(const char *dir, FILE *out);

/*
 * WalSink: the decorator that makes the write path durable. apply(op) commits op through the
 * appender, sets op->sequence to the sequence the WAL gave it, and only after the commit passes
 * op to inner. If the commit fails, inner never sees op. Once an op is finished (applied, or
 * failed in the WAL or in inner) its sequence is complete; the sink tracks the applied
 * watermark over them (wal_sink.c explains what a snapshot may conclude from it).
 */
typedef struct wal_sink wal_sink;

/*
 * applied_watermark: the watermark to start from; every sequence the appender will hand out is
 * above it and the first one is applied_watermark + 1 (pass the last replayed sequence, i.e. the
 * WAL's first_sequence - 1). NULL when out of memory.
 */
wal_sink *wal_sink_new(wal_appender appender, dml_sink inner, uint64_t applied_watermark);
dml_sink wal_sink_as_dml(wal_sink *s);

/*
 * The largest S such that every op with sequence <= S is finished: applied to inner (apply
 * returned) or failed. Thread-safe and cheap (one atomic load); never decreases.
 */
uint64_t wal_sink_applied_watermark(wal_sink *s);

void wal_sink_free(wal_sink *s);

#endif
