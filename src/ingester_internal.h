/*
 * ingester_internal.h: the ingester's state, shared by ingester.c (wiring, writes, queries,
 * metrics), ingester_replay.c (start-up replay) and ingester_lifecycle.c (rotation, segment
 * deletion, disk-full protection, the final persist of a graceful stop).
 */
#ifndef INGOT_INGESTER_INTERNAL_H
#define INGOT_INGESTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buffer/buffer.h"
#include "catalog/catalog.h"
#include "dml/schema.h"
#include "ingester.h"
#include "persist/persist.h"
#include "store/object_store.h"
#include "util/fifo_gate.h"
#include "wal/wal.h"

#define INGESTER_SPARE_BATCHES 64
#define INGESTER_SPARE_BATCH_TOTAL ((size_t)64 << 20)

/* A closed WAL segment waiting until everything in it is persisted. */
typedef struct closed_segment {
    uint64_t id;
    uint64_t first_sequence, last_sequence;
    uint64_t entries;
    struct closed_segment *next;
} closed_segment;

struct ingester {
    const ingot_config *cfg;
    int data_dir_lock;            /* dir_lock of --data-dir, -1 if not held */
    int wal_dir_lock;             /* dir_lock of --wal-dir, -1 if not held (or the same dir) */
    catalog cat;
    bool cat_open;
    object_store store;
    bool store_open;
    schema_cache *schema;
    buffer_tree *buffer;
    persister *persist;
    wal *log;
    char wal_id[37];              /* the WAL directory's identity (wal_identity) */
    wal_sink *sink;
    dml_sink write_sink;          /* the WalSink's dml_sink view */
    atomic_uint_fast64_t replay_watermark; /* the last sequence replayed (before the sink exists) */

    atomic_bool stopping;         /* writes refused: graceful stop */
    atomic_bool disk_full;        /* writes refused: the WAL volume is too full */
    atomic_bool drained;          /* everything persisted, the WAL may be emptied at close */
    atomic_long writes_in_flight;
    atomic_long queries_open;

    fifo_gate write_slots;        /* ingester_write_admit: --max-concurrent-writes */
    pthread_mutex_t spare_mu;
    /*
     * spare_mu: parsed-batch arrays of finished writes, reset, kept for the next ones (at most
     * one per slot and INGESTER_SPARE_BATCHES, INGESTER_SPARE_BATCH_TOTAL bytes together): a
     * write reuses warm memory instead of growing fresh arrays, which on this path cost more in
     * page faults and heap fragmentation than the parse itself.
     */
    lp_batch spare_batches[INGESTER_SPARE_BATCHES];
    size_t spare_count;
    size_t spare_bytes;

    /* life cycle thread (ingester_lifecycle.c) */
    pthread_mutex_t life_mu;
    pthread_cond_t life_cond;     /* life_mu: one of the flags below changed */
    bool life_running;            /* life_mu */
    bool life_stop;               /* life_mu */
    bool segments_closed;         /* life_mu: a rotation closed a segment: persist everything */
    bool check_segments;          /* life_mu: a persist finished: maybe a segment can go */
    pthread_t life_thread;

    pthread_mutex_t seg_mu;
    closed_segment *closed;       /* seg_mu: closed segments not yet deleted, oldest first */

    /* counters (atomic) */
    atomic_uint_fast64_t lines_written;
    atomic_uint_fast64_t bytes_written;
    atomic_uint_fast64_t lines_rejected;
    atomic_uint_fast64_t queries_rejected;
    atomic_uint_fast64_t writes_refused_busy;
    atomic_uint_fast64_t writes_persist_waits;  /* writes that waited for the snapshot backlog */
    atomic_uint_fast64_t segments_deleted;
    atomic_uint_fast64_t disk_full_events;
    wal_replay_stats replay;      /* written once before the front ends start */
    uint64_t replay_ops_skipped;  /* ops (or parts) already persisted, skipped by replay */
    double replay_seconds;
    double replay_persist_seconds; /* of replay_seconds: persisting, then deleting, each segment */
};

/* Replay every WAL segment: apply, persist, delete, segment by segment. *next_sequence out. */
int ingester_replay(ingester *ing, uint64_t *next_sequence, char *err, size_t errlen);

/* The WAL calls this when it closed a segment (ingester_lifecycle.c). */
void ingester_on_segment_closed(void *arg, uint64_t segment_id, uint64_t first_sequence,
                                uint64_t last_sequence, uint64_t entries);
/* The persister calls this after each job. */
void ingester_on_persisted(void *arg);
/* The applied watermark snapshots read: the WalSink's, or replay's before the sink exists. */
uint64_t ingester_watermark(void *arg);

/* Locks and condition variable of the life cycle (before anything can signal them). */
void ingester_lifecycle_init(ingester *ing);
int ingester_lifecycle_start(ingester *ing);
void ingester_lifecycle_stop(ingester *ing);
/* Delete every closed segment whose ops are all applied and persisted. */
void ingester_delete_persisted_segments(ingester *ing);

#endif
