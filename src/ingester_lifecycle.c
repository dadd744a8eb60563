/*
 * ingester_lifecycle.c: the ingester's background duties and the end of a graceful stop.
 *
 * One thread ("lifecycle") wakes on a condition variable, never on a fixed sleep-and-hope:
 *  - every --wal-rotation-period it rotates the WAL; a closed segment (by time or by size, the
 *    WAL reports both through ingester_on_segment_closed) makes it snapshot every partition and
 *    queue them without waiting (a stalled store fills the persist queue, which pauses ingest,
 *    instead of stalling rotation: IOx #6889);
 *  - after every persisted snapshot (ingester_on_persisted) it deletes the closed segments whose
 *    ops are all applied (sequence <= the WalSink's applied watermark) and persisted (no row with
 *    a sequence <= the segment's last is held by the buffer any more): deletion by reference,
 *    no timer (IOx #6566);
 *  - every 2 s it samples the WAL volume: at >= --disk-full-percent writes are refused (503), the
 *    WAL rotated and everything persisted so segments can go; below it, writes resume (IOx #7899);
 *  - after persisted snapshots it gives the heap's free pages back to the kernel (malloc_trim):
 *    a persisted snapshot frees megabytes of columns in the middle of the heap, which glibc
 *    returns by itself only from its top, so without it the RSS stays at the high-water mark of
 *    everything ever buffered at once (TSBS, 5,000-line batches at 32 connections: peak RSS
 *    142-156 MiB without, 130-133 with, for about 10% of the lines/s: the trim holds the heap's
 *    lock for a walk of it, and the pages it returns fault in again when reused). It runs at
 *    most every TRIM_INTERVAL_MS: every 500 ms kept no peak lower.
 *
 * ingester_drain() is the graceful stop's persist: with writes already stopped, it persists until
 * the buffer is empty, rotates, deletes every closed segment, and marks the ingester drained so
 * ingester_close() removes the last (empty) segment: the WAL ends empty.
 *
 * The crash point "segment-before-delete" (util/sysio.h) ends the process just before a
 * persisted segment is deleted.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "ingester_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sysio.h"

#define DISK_CHECK_INTERVAL_S 2
#define TRIM_INTERVAL_MS 100

uint64_t ingester_watermark(void *arg)
{
    ingester *ing = arg;
    return ing->sink ? wal_sink_applied_watermark(ing->sink) : atomic_load(&ing->replay_watermark);
}

static void life_signal(ingester *ing, bool *flag)
{
    pthread_mutex_lock(&ing->life_mu);
    *flag = true;
    pthread_cond_signal(&ing->life_cond);
    pthread_mutex_unlock(&ing->life_mu);
}

void ingester_on_segment_closed(void *arg, uint64_t segment_id, uint64_t first_sequence,
                                uint64_t last_sequence, uint64_t entries)
{
    ingester *ing = arg;
    closed_segment *c = calloc(1, sizeof *c);
    if (!c) {
        /* it stays on disk and is replayed (and deleted) at the next start */
        log_error("wal: out of memory tracking closed segment %" PRIu64, segment_id);
        return;
    }
    *c = (closed_segment){segment_id, first_sequence, last_sequence, entries, NULL};
    pthread_mutex_lock(&ing->seg_mu);
    closed_segment **tail = &ing->closed;
    while (*tail) tail = &(*tail)->next;
    *tail = c;
    pthread_mutex_unlock(&ing->seg_mu);
    log_debug("wal: segment %" PRIu64 " closed (%" PRIu64 " entries, sequences %" PRIu64 "..%" PRIu64 ")",
              segment_id, entries, first_sequence, last_sequence);
    life_signal(ing, entries ? &ing->segments_closed : &ing->check_segments);
}

void ingester_on_persisted(void *arg)
{
    ingester *ing = arg;
    life_signal(ing, &ing->check_segments);
}

void ingester_delete_persisted_segments(ingester *ing)
{
    uint64_t applied = ing->sink ? wal_sink_applied_watermark(ing->sink) : 0;
    uint64_t held_min = buffer_tree_min_sequence(ing->buffer);
    closed_segment *done = NULL, **done_tail = &done;
    pthread_mutex_lock(&ing->seg_mu);
    for (closed_segment **c = &ing->closed; *c;) {
        /*
         * Every op of the segment is applied (last <= applied), so none can still arrive in the
         * buffer; none is held any more (held_min > last), so all are in Parquet. The buffer's
         * minimum can only grow once the watermark passed the segment, so reading the watermark
         * first makes the pair a safe (conservative) view.
         */
        bool empty = (*c)->entries == 0;
        if (empty || ((*c)->last_sequence <= applied && (*c)->last_sequence < held_min)) {
            *done_tail = *c;
            *c = (*c)->next;
            done_tail = &(*done_tail)->next;
            *done_tail = NULL;
        } else {
            c = &(*c)->next;
        }
    }
    pthread_mutex_unlock(&ing->seg_mu);
    for (closed_segment *c = done, *next; c; c = next) {
        next = c->next;
        INGOT_CRASH_POINT("segment-before-delete"); /* persisted, the segment still there */
        int rv = wal_delete_segment(ing->cfg->wal_dir, c->id);
        if (rv == 0) {
            atomic_fetch_add(&ing->segments_deleted, 1);
            log_debug("wal: segment %" PRIu64 " deleted: everything in it is persisted", c->id);
        } else {
            log_error("wal: deleting segment %" PRIu64 ": %s (it is replayed at the next start)",
                      c->id, ingot_strerror(rv));
        }
        free(c);
    }
}

/* Percentage of the WAL volume in use, or -1 if it cannot be read. */
static int disk_used_percent(const char *dir)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0 || st.f_blocks == 0) return -1;
    uint64_t avail = (uint64_t)st.f_bavail, total = (uint64_t)st.f_blocks - st.f_bfree + st.f_bavail;
    if (total == 0) return -1;
    return (int)(100 - avail * 100 / total);
}

static void check_disk(ingester *ing)
{
    int used = disk_used_percent(ing->cfg->wal_dir);
    if (used < 0) return;
    bool full = (uint64_t)used >= ing->cfg->disk_full_percent;
    bool was = atomic_exchange(&ing->disk_full, full);
    if (full && !was) {
        atomic_fetch_add(&ing->disk_full_events, 1);
        log_warn("WAL volume %d%% full (limit %" PRIu64 "%%): refusing writes, persisting everything",
                 used, ing->cfg->disk_full_percent);
        if (wal_rotate(ing->log) != 0) log_error("wal: rotation failed (the WAL is in its failed state)");
        persister_snapshot_all_async(ing->persist, ing->buffer);
    } else if (!full && was) {
        log_info("WAL volume %d%% full: taking writes again", used);
    }
}

static void add_seconds(struct timespec *t, uint64_t s)
{
    t->tv_sec += (time_t)s;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *lifecycle_main(void *arg)
{
    ingester *ing = arg;
    struct timespec now, next_rotation, next_disk_check, next_trim;
    bool trim_pending = false;
    clock_gettime(CLOCK_MONOTONIC, &now);
    next_rotation = next_disk_check = next_trim = now;
    add_seconds(&next_rotation, ing->cfg->wal_rotation_period_s);
    pthread_mutex_lock(&ing->life_mu);
    while (!ing->life_stop) {
        struct timespec wake = before(&next_rotation, &next_disk_check) ? next_rotation : next_disk_check;
        if (!ing->segments_closed && !ing->check_segments)
            pthread_cond_timedwait(&ing->life_cond, &ing->life_mu, &wake);
        if (ing->life_stop) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        bool rotate = !before(&now, &next_rotation);
        bool disk = !before(&now, &next_disk_check);
        bool closed = ing->segments_closed, check = ing->check_segments;
        ing->segments_closed = ing->check_segments = false;
        pthread_mutex_unlock(&ing->life_mu);
        if (rotate) {
            next_rotation = now;
            add_seconds(&next_rotation, ing->cfg->wal_rotation_period_s);
            if (wal_rotate(ing->log) != 0) log_error("wal: rotation failed (the WAL is in its failed state)");
        }
        if (disk) {
            next_disk_check = now;
            add_seconds(&next_disk_check, DISK_CHECK_INTERVAL_S);
            check_disk(ing);
        }
        if (closed) persister_snapshot_all_async(ing->persist, ing->buffer);
        if (check || closed) ingester_delete_persisted_segments(ing);
        trim_pending |= check;
        if (trim_pending && !before(&now, &next_trim)) { /* else at a later wake (<= 2 s) */
            malloc_trim(0);
            trim_pending = false;
            next_trim = clock_deadline_ms(CLOCK_MONOTONIC, TRIM_INTERVAL_MS);
        }
        pthread_mutex_lock(&ing->life_mu);
    }
    pthread_mutex_unlock(&ing->life_mu);
    return NULL;
}

void ingester_lifecycle_init(ingester *ing)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ing->life_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&ing->spare_mu, NULL);
    fifo_gate_init(&ing->write_slots, ing->cfg->max_concurrent_writes);
    pthread_mutex_init(&ing->life_mu, NULL);
    pthread_mutex_init(&ing->seg_mu, NULL);
}

int ingester_lifecycle_start(ingester *ing)
{
    int rv = pthread_create(&ing->life_thread, NULL, lifecycle_main, ing);
    if (rv != 0) return -rv;
    ing->life_running = true;
    return 0;
}

void ingester_lifecycle_stop(ingester *ing)
{
    if (!ing->life_running) return;
    pthread_mutex_lock(&ing->life_mu);
    ing->life_stop = true;
    pthread_cond_signal(&ing->life_cond);
    pthread_mutex_unlock(&ing->life_mu);
    pthread_join(ing->life_thread, NULL);
    ing->life_running = false;
}

int ingester_drain(ingester *ing)
{
    for (int round = 1;; round++) {
        int rv = persister_persist_all(ing->persist, ing->buffer);
        persister_wait_idle(ing->persist);
        size_t rows = buffer_tree_rows(ing->buffer);
        log_info("stop: persist round %d done, %zu rows still buffered", round, rows);
        if (rv != 0) return rv;
        if (rows == 0) break;
    }
    ingester_lifecycle_stop(ing); /* no rotation may race the last one */
    int rv = wal_rotate(ing->log);
    if (rv != 0) return rv;
    ingester_delete_persisted_segments(ing);
    pthread_mutex_lock(&ing->seg_mu);
    bool left = ing->closed != NULL;
    pthread_mutex_unlock(&ing->seg_mu);
    if (left) {
        log_error("stop: WAL segments left after the final persist; they are replayed at the next start");
        return INGOT_E_CORRUPT;
    }
    atomic_store(&ing->drained, true);
    return 0;
}
