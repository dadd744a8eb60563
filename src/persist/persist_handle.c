/*
 * persist_handle.c: the PersistHandle (ARCHITECTURE §6): persist worker threads behind one bounded
 * queue with back-pressure, where a task that cannot make progress gives its worker back. The
 * compaction pool lives in worker_pool.c.
 *
 * WHAT IT OWNS. `workers` threads, the global FIFO queue, one FIFO queue per worker, the parked
 * set and the permit count. It owns no task: a persist_task belongs to its submitter; the handle
 * only links it through task->next while it is queued or parked, and keeps its private fields
 * (state, not_before_ns, wake_pending). It reads task->done before the first run(), and never
 * touches the task after calling done() (which may free it), nor after a run() that returned
 * PERSIST_RUN_DONE when done is NULL (so such a task may free itself at the end of run()).
 *
 * TASK STATES. QUEUED (on a FIFO) -> RUNNING (inside run()) -> either finished (permit released,
 * done() called) or PARKED (on the parked set, with a not-before time: now + retry_delay_ms for
 * PERSIST_RUN_RETRY, UINT64_MAX "until woken" for PERSIST_RUN_WAIT) -> RUNNING again once ready,
 * and so on. persist_handle_wake() makes a PARKED task ready now (not_before 0) or, while the task
 * is RUNNING, sets wake_pending so that the park that follows is ready at once: a wake racing the
 * park is never lost.
 *
 * PERMITS. A counting semaphore of queue_depth permits, kept as `permits_in_use` under `mu`. An
 * enqueuer takes a permit before the task is linked onto a queue; the worker gives it back after
 * run() returned PERSIST_RUN_DONE and before done() is called. A parked task keeps its permit.
 * So permits_in_use = queued + running + parked, and it never exceeds queue_depth: memory held by
 * persist jobs is bounded whatever the object store does, and a store that keeps failing fills
 * the queue (saturation, below) even though no worker sits in a failing task.
 * done() runs outside the permit (and outside `mu`), so a done() that enqueues the next job (a
 * follow-up) cannot deadlock against its own permit, even with queue_depth 1.
 *
 * ROUTING. A task with changes_sort_key goes to queue[partition_hash % workers]; only that worker
 * takes from that queue, or runs that task again after a park, and it runs one task at a time, so
 * the sort-key updates of one partition never run at once (in enqueue order, except that a task
 * of that queue that parks lets the ones behind it run meanwhile). Every other task goes to the
 * global queue and, once parked, may be run again by any worker. A worker picks, in this order:
 * the ready parked task routed to it with the earliest not-before time, its own queue, the ready
 * parked global task with the earliest not-before time, the global queue. A parked task is older
 * than everything queued behind it, so it goes first among its class. The routing facts
 * (partition_hash, changes_sort_key) must not change while the task is enqueued.
 *
 * SLEEPING. A worker that finds nothing to run sleeps on work_cv (CLOCK_MONOTONIC): until the
 * earliest not-before time among the parked tasks it may take, or without a deadline if there is
 * none (only tasks waiting for a wake, or routed to other workers). It never spins: a timed wait
 * ends at a time some task becomes ready. Waking: a routed task broadcasts work_cv (one condvar
 * serves all workers, and only the owner may take a routed task, so a single signal could wake
 * the wrong one); a global task signals it (any worker may take it; a worker signalled for a
 * global task that finds its own queue non-empty was also woken by that routed task's broadcast,
 * as were the others, so the global task is not stranded). Parking a global task and every wake
 * broadcast work_cv, so a sleeping worker recomputes its deadline. Scanning the parked set is
 * O(parked) <= queue_depth under `mu`, once per pick: small next to a persist job.
 *
 * SATURATION. `saturated` is an atomic bool, read without the lock by the ingester on every write.
 * It is set (and `saturations` counted on the false -> true edge) by an enqueuer that finds no
 * free permit, before it starts to wait. It is cleared, under `mu`, when a permit is released and
 * then nobody waits to enqueue and at least ceil(queue_depth / 2) permits are free. The check runs
 * on every release, so nothing polls; the hysteresis keeps the ingester from flapping between
 * accepting and refusing writes at the edge of the bound. Enqueuers are not FIFO among
 * themselves: a newcomer may take a permit freed while older enqueuers were still waking up;
 * while saturated the ingester refuses writes anyway, so the waiters are few and all drain.
 *
 * STOP. persist_handle_free() sets `closing` and wakes everybody: waiting enqueuers return
 * INGOT_E_CLOSED, and so does every later enqueue (including enqueues from done() callbacks of
 * draining tasks). A worker keeps going until its own queue and the global queue are empty and no
 * parked task it may take is left, and then exits. That exit condition is stable: nothing can be
 * queued once `closing` is set, and a task parks only on the worker that ran it, which may take it
 * (a routed task runs on its owner only), so every parked task keeps a live worker that may run
 * it. Parked tasks are waited for like queued ones, retries and back-off included: stop waits for
 * the data to get out. free() then waits on idle_cv until no enqueuer is inside the handle any
 * more (so none of them touches freed memory) and joins the workers (so every queued or parked
 * task finished and every done() returned).
 *
 * FAILURE. Nothing here does I/O; the only failures are at start (allocation, pthread_create),
 * where persist_handle_new() stops the threads it started and returns NULL. A task's own errors
 * are the task's business (it parks to retry, or its done() reports them).
 *
 * LOCKING. One mutex `mu` guards the queues, the parked set, every enqueued task's private
 * fields, the permit count, the counters and `closing`; three condition variables wait on it:
 * work_cv (workers, for a task, a ready time or closing), permit_cv (enqueuers, for a free permit
 * or closing), idle_cv (free(), for the last enqueuer to leave). run() and done() are called
 * without `mu`. `saturated` is atomic, written only under `mu`. The handle takes no other lock,
 * so it sits below every lock of its callers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "persist/persist_handle.h"
#include "util/clock.h"
#include "util/log.h"

enum persist_task_state {
    PERSIST_TASK_QUEUED = 0,
    PERSIST_TASK_RUNNING,
    PERSIST_TASK_PARKED,
};

/* not_before_ns of a task parked until persist_handle_wake(). */
#define PERSIST_UNTIL_WOKEN UINT64_MAX

typedef struct persist_queue {
    persist_task *head; /* mu */
    persist_task *tail; /* mu */
} persist_queue;

typedef struct persist_worker {
    struct persist_handle *h; /* immutable */
    unsigned index;           /* immutable */
    pthread_t thread;         /* immutable once started */
} persist_worker;

struct persist_handle {
    unsigned worker_count;      /* immutable */
    unsigned queue_depth;       /* immutable */
    persist_worker *workers;    /* immutable array of worker_count */
    persist_queue *own_queue;   /* mu: array of worker_count, queue i is taken by worker i only */
    persist_queue global_queue; /* mu */
    persist_task *parked;       /* mu: parked tasks, unordered, linked through next */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* mu, CLOCK_MONOTONIC: workers wait for work or a time */
    pthread_cond_t permit_cv; /* mu: enqueuers wait here for a free permit or for closing */
    pthread_cond_t idle_cv;   /* mu: free() waits here until no enqueuer is waiting */

    bool closing;                /* mu: free() began; no enqueue succeeds any more */
    unsigned permits_in_use;     /* mu: tasks queued, running or parked */
    unsigned max_permits_in_use; /* mu */
    unsigned waiting_to_enqueue; /* mu: enqueuers blocked on permit_cv */
    unsigned running;            /* mu: tasks inside run() */
    unsigned parked_count;       /* mu: tasks on `parked` */
    uint64_t enqueued;           /* mu */
    uint64_t completed;          /* mu: run() returned DONE and the permit was released */
    uint64_t parks;              /* mu: run() returned RETRY or WAIT */
    uint64_t saturations;        /* mu: false -> true transitions of `saturated` */
    atomic_bool saturated;       /* atomic; written under mu */
};

static void persist_queue_push(persist_queue *q, persist_task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static persist_task *persist_queue_pop(persist_queue *q)
{
    persist_task *t = q->head;
    if (!t) return NULL;
    q->head = t->next;
    if (!q->head) q->tail = NULL;
    t->next = NULL;
    return t;
}

/* Free permits needed (with nobody waiting) to leave the saturated state: ceil(depth / 2). */
static unsigned persist_unsaturate_free_permits(const persist_handle *h)
{
    return (h->queue_depth + 1) / 2;
}

/* Give back one permit after a task's run() returned PERSIST_RUN_DONE. Caller holds mu. */
static void persist_release_permit(persist_handle *h)
{
    h->permits_in_use--;
    h->completed++;
    if (atomic_load(&h->saturated) && h->waiting_to_enqueue == 0 &&
        h->queue_depth - h->permits_in_use >= persist_unsaturate_free_permits(h))
        atomic_store(&h->saturated, false);
    if (h->waiting_to_enqueue > 0) pthread_cond_signal(&h->permit_cv);
}

/* Whether worker w may run t: a routed task runs on its owner only. */
static bool persist_may_take(const persist_handle *h, unsigned w, const persist_task *t)
{
    return !t->changes_sort_key || t->partition_hash % h->worker_count == w;
}

static persist_task *persist_unlink_parked(persist_handle *h, persist_task **link)
{
    persist_task *t = *link;
    *link = t->next;
    t->next = NULL;
    h->parked_count--;
    return t;
}

/*
 * The next task worker w runs (unlinked), or NULL. With NULL, *ready_at is the earliest
 * not-before time (> now) of a parked task w may take (UINT64_MAX: none on a timer) and
 * *has_parked whether w may take any parked task at all. Caller holds mu.
 */
static persist_task *persist_take(persist_handle *h, unsigned w, uint64_t now, uint64_t *ready_at,
                                  bool *has_parked)
{
    persist_task **own = NULL, **global = NULL; /* links to the ready parked tasks to prefer */
    *ready_at = UINT64_MAX;
    *has_parked = false;
    for (persist_task **link = &h->parked; *link; link = &(*link)->next) {
        persist_task *t = *link;
        if (!persist_may_take(h, w, t)) continue;
        *has_parked = true;
        if (t->not_before_ns > now) {
            if (t->not_before_ns < *ready_at) *ready_at = t->not_before_ns;
            continue;
        }
        persist_task ***best = t->changes_sort_key ? &own : &global;
        if (!*best || t->not_before_ns < (**best)->not_before_ns) *best = link;
    }
    if (own) return persist_unlink_parked(h, own);
    persist_task *t = persist_queue_pop(&h->own_queue[w]);
    if (t) return t;
    if (global) return persist_unlink_parked(h, global);
    return persist_queue_pop(&h->global_queue);
}

/* Park t after its run() returned RETRY or WAIT; it keeps its permit. Caller holds mu. */
static void persist_park(persist_handle *h, persist_task *t, persist_run_result r)
{
    uint64_t now = (uint64_t)clock_ns(CLOCK_MONOTONIC);
    if (t->wake_pending)
        t->not_before_ns = now;
    else if (r == PERSIST_RUN_RETRY)
        t->not_before_ns = now + (uint64_t)t->retry_delay_ms * 1000000u;
    else
        t->not_before_ns = PERSIST_UNTIL_WOKEN;
    t->wake_pending = false;
    t->state = PERSIST_TASK_PARKED;
    t->next = h->parked;
    h->parked = t;
    h->parked_count++;
    h->parks++;
    /* Another worker may take a global task; it may be asleep with a later deadline or none. */
    if (!t->changes_sort_key) pthread_cond_broadcast(&h->work_cv);
}

/* Sleep on work_cv until a task is signalled or (ready_at != UINT64_MAX) until ready_at. */
static void persist_worker_sleep(persist_handle *h, uint64_t ready_at)
{
    if (ready_at == UINT64_MAX) {
        pthread_cond_wait(&h->work_cv, &h->mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(ready_at / 1000000000u),
                          .tv_nsec = (long)(ready_at % 1000000000u)};
    pthread_cond_timedwait(&h->work_cv, &h->mu, &ts);
}

static void *persist_worker_main(void *arg)
{
    persist_worker *w = arg;
    persist_handle *h = w->h;
    char name[16];
    snprintf(name, sizeof name, "persist-%u", w->index);
    pthread_setname_np(pthread_self(), name);

    pthread_mutex_lock(&h->mu);
    for (;;) {
        uint64_t ready_at;
        bool has_parked;
        persist_task *t =
            persist_take(h, w->index, (uint64_t)clock_ns(CLOCK_MONOTONIC), &ready_at, &has_parked);
        if (!t) {
            if (h->closing && !has_parked) break;
            persist_worker_sleep(h, ready_at);
            continue;
        }
        /* Read before run(): with done NULL, a finished run() may free the task. */
        void (*done)(persist_task *) = t->done;
        t->state = PERSIST_TASK_RUNNING;
        h->running++;
        pthread_mutex_unlock(&h->mu);

        persist_run_result r = t->run(t);

        pthread_mutex_lock(&h->mu);
        h->running--;
        if (r != PERSIST_RUN_DONE) {
            persist_park(h, t, r);
            continue;
        }
        persist_release_permit(h);
        if (done) {
            pthread_mutex_unlock(&h->mu);
            done(t); /* may free t, may enqueue */
            pthread_mutex_lock(&h->mu);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Wake every worker and enqueuer and stop the workers once the queues are empty. */
static void persist_begin_close(persist_handle *h)
{
    pthread_mutex_lock(&h->mu);
    h->closing = true;
    pthread_cond_broadcast(&h->work_cv);
    pthread_cond_broadcast(&h->permit_cv);
    while (h->waiting_to_enqueue > 0)
        pthread_cond_wait(&h->idle_cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void persist_handle_destroy(persist_handle *h)
{
    pthread_cond_destroy(&h->work_cv);
    pthread_cond_destroy(&h->permit_cv);
    pthread_cond_destroy(&h->idle_cv);
    pthread_mutex_destroy(&h->mu);
    free(h->own_queue);
    free(h->workers);
    free(h);
}

persist_handle *persist_handle_new(unsigned workers, unsigned queue_depth)
{
    unsigned started = 0;
    if (workers == 0 || queue_depth == 0) return NULL;
    persist_handle *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->worker_count = workers;
    h->queue_depth = queue_depth;
    atomic_init(&h->saturated, false);
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->work_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&h->permit_cv, NULL);
    pthread_cond_init(&h->idle_cv, NULL);
    h->workers = calloc(workers, sizeof *h->workers);
    h->own_queue = calloc(workers, sizeof *h->own_queue);
    if (!h->workers || !h->own_queue) goto fail;
    for (; started < workers; started++) {
        persist_worker *w = &h->workers[started];
        w->h = h;
        w->index = started;
        int rc = pthread_create(&w->thread, NULL, persist_worker_main, w);
        if (rc != 0) {
            log_error("persist: cannot start worker %u of %u: %s", started, workers,
                      ingot_strerror(-rc));
            goto fail;
        }
    }
    return h;
fail:
    persist_begin_close(h);
    for (unsigned i = 0; i < started; i++)
        pthread_join(h->workers[i].thread, NULL);
    persist_handle_destroy(h);
    return NULL;
}

int persist_handle_enqueue(persist_handle *h, persist_task *task)
{
    pthread_mutex_lock(&h->mu);
    if (!h->closing && h->permits_in_use >= h->queue_depth) {
        if (!atomic_load(&h->saturated)) {
            atomic_store(&h->saturated, true);
            h->saturations++;
        }
        h->waiting_to_enqueue++;
        while (!h->closing && h->permits_in_use >= h->queue_depth)
            pthread_cond_wait(&h->permit_cv, &h->mu);
        h->waiting_to_enqueue--;
        if (h->closing && h->waiting_to_enqueue == 0) pthread_cond_broadcast(&h->idle_cv);
    }
    if (h->closing) {
        pthread_mutex_unlock(&h->mu);
        return INGOT_E_CLOSED;
    }
    h->permits_in_use++;
    if (h->permits_in_use > h->max_permits_in_use) h->max_permits_in_use = h->permits_in_use;
    h->enqueued++;
    task->state = PERSIST_TASK_QUEUED;
    task->wake_pending = false;
    if (task->changes_sort_key) {
        persist_queue_push(&h->own_queue[task->partition_hash % h->worker_count], task);
        pthread_cond_broadcast(&h->work_cv);
    } else {
        persist_queue_push(&h->global_queue, task);
        pthread_cond_signal(&h->work_cv);
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

bool persist_handle_saturated(persist_handle *h)
{
    return atomic_load(&h->saturated);
}

void persist_handle_get_stats(persist_handle *h, persist_handle_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&h->mu);
    out->workers = h->worker_count;
    out->queue_depth = h->queue_depth;
    out->permits_in_use = h->permits_in_use;
    out->max_permits_in_use = h->max_permits_in_use;
    out->waiting_to_enqueue = h->waiting_to_enqueue;
    out->running = h->running;
    out->parked = h->parked_count;
    out->enqueued = h->enqueued;
    out->completed = h->completed;
    out->parks = h->parks;
    out->saturations = h->saturations;
    out->saturated = atomic_load(&h->saturated);
    pthread_mutex_unlock(&h->mu);
}

void persist_handle_wake(persist_handle *h, persist_task *task)
{
    pthread_mutex_lock(&h->mu);
    if (task->state == PERSIST_TASK_PARKED) {
        task->not_before_ns = 0;
        pthread_cond_broadcast(&h->work_cv); /* a routed task's owner must be among the woken */
    } else if (task->state == PERSIST_TASK_RUNNING) {
        task->wake_pending = true;
    }
    pthread_mutex_unlock(&h->mu);
}

void persist_handle_free(persist_handle *h)
{
    if (!h) return;
    persist_begin_close(h);
    for (unsigned i = 0; i < h->worker_count; i++)
        pthread_join(h->workers[i].thread, NULL);
    persist_handle_destroy(h);
}
