/*
 * persist_handle.h: the PersistHandle (ARCHITECTURE §6): a pool of persist workers behind one
 * bounded queue, and a small general thread pool for compaction.
 *
 * The handle does not know what a job does: a persist_task carries its routing facts (the hash
 * of its partition and whether it changes the partition's sort key) and two callbacks.
 *
 * Topology: `workers` threads, one shared (global) FIFO queue, one FIFO queue per worker, a set
 * of parked tasks, and a counting semaphore of `queue_depth` permits. A task holds one permit
 * from enqueue until its run() returned PERSIST_RUN_DONE; the permit is released before done()
 * is called. So whatever the number of workers, at most queue_depth tasks are queued, running
 * or parked.
 * Routing: a task with changes_sort_key goes to the queue of worker (partition_hash mod workers),
 * which serialises sort-key updates of one partition; every other task goes to the global queue.
 * A worker takes from its own queue first, then from the global one.
 *
 * Parking: run() may give its worker back without finishing: PERSIST_RUN_RETRY parks the task
 * until retry_delay_ms from now (a back-off), PERSIST_RUN_WAIT until persist_handle_wake(). A
 * parked task keeps its permit (a task that keeps failing still counts against queue_depth) and
 * its routing: once ready it is run again (run() called anew, on its owner worker if routed, else
 * on any), ahead of the tasks queued on the same queue. Meanwhile its worker takes the next ready
 * task; a worker with nothing ready sleeps until the earliest retry time of a task it may take,
 * a new task or a wake (never polls).
 *
 * Back-pressure: persist_handle_enqueue() blocks while no permit is free. When an enqueuer finds
 * no free permit the handle becomes *saturated* (persist_handle_saturated() is true, and the
 * ingester refuses writes with 503/RESOURCE_EXHAUSTED); it stays saturated until nobody waits to
 * enqueue and at least half of the permits are free (checked whenever a permit is released, so
 * no polling is involved).
 *
 * Stop: persist_handle_free() lets every queued and parked task run to completion, then joins
 * the workers.
 */
#ifndef INGOT_PERSIST_HANDLE_H
#define INGOT_PERSIST_HANDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct persist_task persist_task;

/* What a task's run() asks of the handle. */
typedef enum persist_run_result {
    PERSIST_RUN_DONE = 0, /* finished: release the permit, then call done() */
    PERSIST_RUN_RETRY,    /* park, keeping the permit; run again retry_delay_ms from now */
    PERSIST_RUN_WAIT,     /* park, keeping the permit; run again after persist_handle_wake() */
} persist_run_result;

struct persist_task {
    uint64_t partition_hash;
    bool changes_sort_key;
    /* Set by run() before it returns PERSIST_RUN_RETRY: how long to park (0: ready at once). */
    uint32_t retry_delay_ms;
    /*
     * The work, on a worker thread; called again after a RETRY or WAIT (the task resumes
     * wherever it left off: the handle keeps no state of its own for it).
     */
    persist_run_result (*run)(persist_task *task);
    /*
     * After run() returned PERSIST_RUN_DONE and after the permit is released, on the same
     * worker thread; may free the task or enqueue it (or another) again. May be NULL. The handle
     * reads done before calling run() and never touches the task after calling done(), nor
     * after a run() that returned PERSIST_RUN_DONE if done is NULL.
     */
    void (*done)(persist_task *task);
    /* private to the handle (its mutex) */
    persist_task *next;
    uint64_t not_before_ns; /* parked: CLOCK_MONOTONIC time it is ready; UINT64_MAX: until woken */
    uint8_t state;
    bool wake_pending;
};

typedef struct persist_handle persist_handle;

typedef struct persist_handle_stats {
    unsigned workers;
    unsigned queue_depth;
    unsigned permits_in_use;     /* tasks queued, running or parked */
    unsigned max_permits_in_use; /* the high-water mark since start */
    unsigned waiting_to_enqueue;
    unsigned running; /* tasks inside run() now */
    unsigned parked;  /* tasks parked now (RETRY or WAIT), permits held */
    uint64_t enqueued;
    uint64_t completed;
    uint64_t parks;       /* run() calls that returned RETRY or WAIT */
    uint64_t saturations; /* times the handle became saturated */
    bool saturated;
} persist_handle_stats;

/* Start workers threads. queue_depth >= 1, workers >= 1. NULL on failure. */
persist_handle *persist_handle_new(unsigned workers, unsigned queue_depth);

/*
 * Queue task, blocking while no permit is free. Returns 0, or INGOT_E_CLOSED once
 * persist_handle_free() began (the task was not queued); an enqueuer blocked when free() begins
 * is woken with INGOT_E_CLOSED. Safe from any thread, done() callbacks included; not after
 * persist_handle_free() returned.
 */
int persist_handle_enqueue(persist_handle *h, persist_task *task);

/* True while ingest should be paused (see above). Atomic read. */
bool persist_handle_saturated(persist_handle *h);

void persist_handle_get_stats(persist_handle *h, persist_handle_stats *out);

/*
 * Make a task that is parked with PERSIST_RUN_WAIT (or RETRY) ready at once. If its run() is
 * still executing, the next RETRY or WAIT it returns is ready at once instead (so a wake that
 * races the park is never lost). A task that is queued and has not run yet is not affected.
 * The task must be enqueued and not finished (run() has not returned PERSIST_RUN_DONE). Safe
 * from any thread, including another task's run() or done().
 */
void persist_handle_wake(persist_handle *h, persist_task *task);

/*
 * Refuse further enqueues, run every queued and parked task to completion (done() included),
 * wait for blocked enqueuers to leave, stop the workers, free the handle. Not from a worker
 * thread. A task parked with PERSIST_RUN_WAIT must be woken by someone, or this waits forever.
 */
void persist_handle_free(persist_handle *h);

/*
 * worker_pool: `threads` threads running submitted functions; worker_pool_run() blocks the caller
 * until its function returned. The compaction pool of the persist jobs.
 */
typedef struct worker_pool worker_pool;

worker_pool *worker_pool_new(unsigned threads);
/* Run fn(arg) on a pool thread and wait for it. Not from a thread of the same pool. */
void worker_pool_run(worker_pool *p, void (*fn)(void *arg), void *arg);
/* Join the threads (after every running call returned) and free. */
void worker_pool_free(worker_pool *p);

#endif
