/*
 * persist.h: the persister: turns buffer snapshots into Parquet files in the object store,
 * recorded in the catalog (ARCHITECTURE §6), on the PersistHandle's workers.
 *
 * One job per snapshot: catalog partition (create) -> sort key (computed, compare-and-swap in the
 * catalog, redone on conflict) -> sort + de-duplicate (compaction pool) -> Parquet -> object
 * store put -> parquet_file row (it records the WAL sequences the file covers) -> detach the
 * snapshot from the buffer -> release the permit -> notify. A failed step is retried with
 * back-off (100 ms doubling to 10 s, per job), forever, without occupying a worker meanwhile: the
 * job is parked, keeps its permit, and resumes at the step that failed (a put is retried with the
 * same bytes and path; an object put once is not put again).
 *
 * Order: the snapshots of one partition are recorded in the catalog in the order they were
 * handed to the persister (by any of the calls below), whatever fails and is retried, and the
 * buffer hands them over in the order it took them, none skipped (buffer.h, Handover): a snapshot
 * the persister cannot queue (out of memory) is refused, not dropped, and offered again before
 * the partition's later ones. See persist.c (ORDER) for why replay needs it.
 *
 * Idempotence: a snapshot is detached only after its catalog row exists, and replay skips every
 * op the catalog says is persisted for a partition, so a crash at any step leaves each row in
 * exactly one Parquet file (an orphan object without a catalog row is possible and harmless).
 */
#ifndef INGOT_PERSIST_H
#define INGOT_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer/buffer.h"
#include "catalog/catalog.h"
#include "store/object_store.h"
#include "util/error.h"
#include "util/strbuf.h"

typedef struct persister persister;

typedef struct persister_options {
    unsigned workers;            /* --persist-workers */
    unsigned queue_depth;        /* --persist-queue-depth */
    unsigned compaction_threads; /* threads sorting and de-duplicating */
    catalog *cat;                /* borrowed */
    object_store *store;         /* borrowed */
    const char *wal_id;          /* borrowed: the WAL the snapshots' sequences are of (wal.h) */
    /* After every completed job, on a worker thread; must not block. May be NULL. */
    void (*on_persisted)(void *arg);
    void *arg;
} persister_options;

persister *persister_new(const persister_options *opts);

/*
 * Queue a snapshot, blocking while the queue is full (until the dispatcher thread, which queues
 * every job in handover order, has queued it). Returns 0 (the reference passed to the
 * persister), INGOT_E_CLOSED (the reference passed and was dropped: the persister is closing, the
 * snapshot stays buffered) or INGOT_E_NOMEM (nothing was taken: the caller keeps its reference,
 * so a buffer_snapshot_cb can refuse the snapshot with it). Blocks: meant for tests; the daemon
 * uses the calls below.
 */
int persister_enqueue(persister *p, buffer_snapshot *snap);

/*
 * Queue a snapshot without blocking the caller (hot partitions): a dispatcher thread waits for
 * the permit. Shaped as a buffer_snapshot_cb's answer: 0 when it took the reference;
 * INGOT_E_NOMEM (logged) when it took nothing (the caller keeps its reference and the buffer
 * offers the snapshot again later).
 */
int persister_enqueue_async(persister *p, buffer_snapshot *snap);

/*
 * Snapshot every partition of tree with rows and queue them, with every snapshot not queued yet
 * (refused earlier), without waiting. 0, or INGOT_E_NOMEM when a snapshot could not be taken or
 * queued (it stays buffered; the next call offers it again).
 */
int persister_snapshot_all_async(persister *p, buffer_tree *tree);

/*
 * The same, then wait until the snapshots queued are persisted. 0, INGOT_E_NOMEM as above, or the
 * handle's refusal (closing).
 */
int persister_persist_all(persister *p, buffer_tree *tree);

/* Wait until no job is queued, running or waiting for the dispatcher. */
void persister_wait_idle(persister *p);

/* True while writes must be refused: the queue is full (see persist_handle.h). */
bool persister_saturated(persister *p);

/* Prometheus metrics of the persister. */
void persister_metrics(persister *p, strbuf *out);

/* Finish every queued job (retried ones included: this waits for them), stop the threads, free. */
void persister_free(persister *p);

/*
 * The sort key of a partition (ARCHITECTURE §1): tag columns in ascending order of distinct
 * values (ties by name), then time; an existing key only gains columns, inserted before time.
 * Exposed for tests. stored_json is the catalog's key ("[]" if none); the snapshot's tags and their
 * cardinalities come from info. On return *data_key_out (malloc'd array of table column indexes of
 * tags, in sort order, tags absent from the data left out) and *updated_json_out (malloc'd JSON of
 * the catalog key after adding the data's new tags, or NULL if the stored key needs no change).
 */
int persist_sort_key(const char *stored_json, const buffer_snapshot_info *info,
                     uint32_t **data_key_out, size_t *data_key_count, char **updated_json_out);

#endif
