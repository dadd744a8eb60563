/*
 * worker_pool.c: a fixed set of threads that run submitted functions, the caller waiting for its
 * own call (persist_handle.h). The persist jobs use it as their compaction pool: a persist worker
 * hands the sort + de-duplicate step to the pool and blocks until it is done, so CPU-heavy
 * compaction is bounded by the pool size whatever the number of persist workers.
 *
 * WHAT IT OWNS. `threads` threads and a FIFO of pending calls. A call (worker_pool_call) lives on
 * the stack of the thread inside worker_pool_run(), with its own condition variable; the pool
 * links it while pending and the running thread marks it finished. The finishing thread sets
 * `finished` and signals the call's condvar while holding `mu` and never touches the call after
 * unlocking; the caller re-checks `finished` under `mu` before returning (and destroying the call),
 * so the call outlives every access to it. A per-call condvar wakes exactly the caller whose
 * function returned, instead of every waiting caller.
 *
 * INVARIANTS. At most `threads` functions run at once (one per pool thread). Calls start in
 * submission order. worker_pool_run() returns only after fn(arg) returned, and everything fn wrote
 * is visible to the caller (the mutex orders it).
 *
 * STOP. worker_pool_free() is called after every worker_pool_run() returned (the contract): it
 * sets `closing`, wakes the threads and joins them; a thread exits only once the FIFO is empty.
 * A worker_pool_run() that still slips in after closing began runs fn in the caller's thread
 * rather than queue it behind exiting threads, so it can never hang.
 *
 * Must not be called from one of the pool's own threads (with every thread blocked in such a
 * nested call, nothing would run the inner functions).
 *
 * FAILURE. Only at start (allocation, pthread_create): worker_pool_new() stops what it started
 * and returns NULL. fn cannot fail as far as the pool is concerned; it reports through arg.
 *
 * LOCKING. One mutex `mu` guards the FIFO, `closing` and every pending call's `next` and
 * `finished`. work_cv (on mu): threads wait for a call or for closing; each call's done_cv (on
 * mu): its caller waits for `finished`. fn runs without `mu`.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "persist/persist_handle.h"
#include "util/log.h"

typedef struct worker_pool_call {
    void (*fn)(void *arg);         /* immutable */
    void *arg;                     /* immutable */
    struct worker_pool_call *next; /* mu */
    bool finished;                 /* mu */
    pthread_cond_t done_cv;        /* on mu: the caller waits here for `finished` */
} worker_pool_call;

struct worker_pool {
    unsigned thread_count; /* immutable */
    pthread_t *threads;    /* immutable once started */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* mu: threads wait here for a call or for closing */
    worker_pool_call *head; /* mu: pending calls, FIFO */
    worker_pool_call *tail; /* mu */
    bool closing;           /* mu */
};

static void *worker_pool_main(void *arg)
{
    worker_pool *p = arg;
    pthread_setname_np(pthread_self(), "compact");
    pthread_mutex_lock(&p->mu);
    for (;;) {
        worker_pool_call *c = p->head;
        if (!c) {
            if (p->closing) break;
            pthread_cond_wait(&p->work_cv, &p->mu);
            continue;
        }
        p->head = c->next;
        if (!p->head) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        c->fn(c->arg);

        pthread_mutex_lock(&p->mu);
        c->finished = true;
        pthread_cond_signal(&c->done_cv); /* c may be gone as soon as mu is released */
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void worker_pool_stop(worker_pool *p, unsigned started)
{
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

worker_pool *worker_pool_new(unsigned threads)
{
    unsigned started = 0;
    if (threads == 0) return NULL;
    worker_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->thread_count = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    p->threads = calloc(threads, sizeof *p->threads);
    if (!p->threads) goto fail;
    for (; started < threads; started++) {
        int rc = pthread_create(&p->threads[started], NULL, worker_pool_main, p);
        if (rc != 0) {
            log_error("worker_pool: cannot start thread %u of %u: %s", started, threads,
                      ingot_strerror(-rc));
            goto fail;
        }
    }
    return p;
fail:
    worker_pool_stop(p, started);
    return NULL;
}

void worker_pool_run(worker_pool *p, void (*fn)(void *arg), void *arg)
{
    worker_pool_call c = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        fn(arg);
        return;
    }
    pthread_cond_init(&c.done_cv, NULL);
    if (p->tail)
        p->tail->next = &c;
    else
        p->head = &c;
    p->tail = &c;
    pthread_cond_signal(&p->work_cv);
    while (!c.finished)
        pthread_cond_wait(&c.done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&c.done_cv);
}

void worker_pool_free(worker_pool *p)
{
    if (!p) return;
    worker_pool_stop(p, p->thread_count);
}
