/*
 * test_persist_handle.c: the PersistHandle (routing, permits, saturation, done() ordering, drain on
 * free) and the compaction worker_pool.
 *
 * Tests synchronise with condition variables (a counting gate tasks block on, a barrier, a
 * completion counter), all with a deadline so a broken handle fails a CHECK instead of hanging.
 * The handle's own waiting state (an enqueuer blocked on a permit) has no hook, so those few
 * points poll persist_handle_get_stats() with a 1 ms sleep. Short sleeps inside tasks only make
 * overlap likely.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "persist/persist_handle.h"
#include "test.h"

#define TEST_DEADLINE_S 10

static struct timespec deadline_in(int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return ts;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

static void atomic_max(atomic_int *max, int v)
{
    int cur = atomic_load(max);
    while (v > cur && !atomic_compare_exchange_weak(max, &cur, v)) {
    }
}

/* ---- sync helpers: counter, gate, barrier (each with a deadline) ---- */

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int value; /* mu */
} counter;

static void counter_init(counter *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->value = 0;
}

static void counter_destroy(counter *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void counter_add(counter *c, int n)
{
    pthread_mutex_lock(&c->mu);
    c->value += n;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int counter_get(counter *c)
{
    pthread_mutex_lock(&c->mu);
    int v = c->value;
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* Wait until value >= n; false on timeout. */
static bool counter_wait_at_least(counter *c, int n)
{
    struct timespec dl = deadline_in(TEST_DEADLINE_S);
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    while (c->value < n && ok)
        ok = pthread_cond_timedwait(&c->cv, &c->mu, &dl) != ETIMEDOUT;
    ok = c->value >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* A gate: gate_pass() takes one of the passes the test hands out with gate_open(). */
typedef counter gate;

static void gate_open(gate *g, int n)
{
    counter_add(g, n);
}

static bool gate_pass(gate *g)
{
    struct timespec dl = deadline_in(TEST_DEADLINE_S);
    bool ok = true;
    pthread_mutex_lock(&g->mu);
    while (g->value == 0 && ok)
        ok = pthread_cond_timedwait(&g->cv, &g->mu, &dl) != ETIMEDOUT;
    ok = g->value > 0;
    if (ok) g->value--;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

/* Arrive and wait for `parties` arrivals; false on timeout. */
static bool barrier_arrive(counter *b, int parties)
{
    struct timespec dl = deadline_in(TEST_DEADLINE_S);
    bool ok = true;
    pthread_mutex_lock(&b->mu);
    b->value++;
    pthread_cond_broadcast(&b->cv);
    while (b->value < parties && ok)
        ok = pthread_cond_timedwait(&b->cv, &b->mu, &dl) != ETIMEDOUT;
    ok = b->value >= parties;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

/* Poll the handle's stats until pred holds (no hook exists for "an enqueuer is waiting"). */
static bool wait_stats(persist_handle *h, bool (*pred)(const persist_handle_stats *, unsigned),
                       unsigned arg)
{
    for (int i = 0; i < TEST_DEADLINE_S * 1000; i++) {
        persist_handle_stats st;
        persist_handle_get_stats(h, &st);
        if (pred(&st, arg)) return true;
        sleep_us(1000);
    }
    return false;
}

static bool stats_waiting_is(const persist_handle_stats *st, unsigned n)
{
    return st->waiting_to_enqueue == n;
}

static bool stats_running_is(const persist_handle_stats *st, unsigned n)
{
    return st->running == n;
}

/* ---- arguments ---- */

static void test_new_rejects_zero(void)
{
    CHECK(persist_handle_new(0, 4) == NULL);
    CHECK(persist_handle_new(4, 0) == NULL);
    CHECK(worker_pool_new(0) == NULL);
    persist_handle *h = persist_handle_new(3, 7);
    CHECK(h != NULL);
    if (!h) return;
    persist_handle_stats st;
    persist_handle_get_stats(h, &st);
    CHECK_EQ_INT(st.workers, 3);
    CHECK_EQ_INT(st.queue_depth, 7);
    CHECK_EQ_INT(st.permits_in_use, 0);
    CHECK(!st.saturated);
    CHECK(!persist_handle_saturated(h));
    persist_handle_free(h);
}

/* ---- sort-key jobs of one partition never overlap, and run in enqueue order ---- */

#define SER_PARTS 4
#define SER_TASKS 200

typedef struct ser_task {
    persist_task base;
    int part;
    int seq; /* 1, 2, ... per partition, in enqueue order */
} ser_task;

static atomic_int ser_active[SER_PARTS];
static atomic_int ser_last_seq[SER_PARTS];
static atomic_int ser_overlaps;
static atomic_int ser_out_of_order;
static atomic_int ser_ran;
static counter ser_done;

static void ser_run(persist_task *t)
{
    ser_task *st = (ser_task *)t;
    if (atomic_fetch_add(&ser_active[st->part], 1) != 0) atomic_fetch_add(&ser_overlaps, 1);
    if (atomic_load(&ser_last_seq[st->part]) != st->seq - 1) atomic_fetch_add(&ser_out_of_order, 1);
    atomic_store(&ser_last_seq[st->part], st->seq);
    sleep_us(50);
    atomic_fetch_add(&ser_ran, 1);
    atomic_fetch_sub(&ser_active[st->part], 1);
}

static void ser_task_done(persist_task *t)
{
    (void)t;
    counter_add(&ser_done, 1);
}

static void test_sort_key_jobs_serialised_per_partition(void)
{
    static ser_task tasks[SER_TASKS];
    /* Hashes 2 and 7 share worker 2 of 5; the others have a worker each. */
    const uint64_t hashes[SER_PARTS] = {0x9e3779b97f4a7c10ull, 2, 7, 0xfffffffffffffff3ull};
    int seq[SER_PARTS] = {0};
    for (int p = 0; p < SER_PARTS; p++) {
        atomic_store(&ser_active[p], 0);
        atomic_store(&ser_last_seq[p], 0);
    }
    atomic_store(&ser_overlaps, 0);
    atomic_store(&ser_out_of_order, 0);
    atomic_store(&ser_ran, 0);
    counter_init(&ser_done);

    persist_handle *h = persist_handle_new(5, 16);
    CHECK(h != NULL);
    if (!h) return;
    for (int i = 0; i < SER_TASKS; i++) {
        int p = (i * 7 + i / 3) % SER_PARTS;
        tasks[i] = (ser_task){.base = {.partition_hash = hashes[p],
                                       .changes_sort_key = true,
                                       .run = ser_run,
                                       .done = ser_task_done},
                              .part = p,
                              .seq = ++seq[p]};
        CHECK_EQ_INT(persist_handle_enqueue(h, &tasks[i].base), 0);
    }
    CHECK(counter_wait_at_least(&ser_done, SER_TASKS));
    persist_handle_stats st;
    persist_handle_get_stats(h, &st);
    CHECK_EQ_INT(st.enqueued, SER_TASKS);
    CHECK_EQ_INT(st.completed, SER_TASKS);
    CHECK_EQ_INT(st.permits_in_use, 0);
    CHECK_EQ_INT(st.running, 0);
    CHECK(st.max_permits_in_use <= 16);
    persist_handle_free(h);
    CHECK_EQ_INT(atomic_load(&ser_ran), SER_TASKS);
    CHECK_EQ_INT(atomic_load(&ser_overlaps), 0);
    CHECK_EQ_INT(atomic_load(&ser_out_of_order), 0);
    counter_destroy(&ser_done);
}

/* ---- jobs that keep the sort key run on every worker at once ---- */

#define PAR_WORKERS 5

static counter par_barrier;
static atomic_int par_met;

static void par_run(persist_task *t)
{
    (void)t;
    if (barrier_arrive(&par_barrier, PAR_WORKERS)) atomic_fetch_add(&par_met, 1);
}

static void test_plain_jobs_run_in_parallel(void)
{
    persist_task tasks[PAR_WORKERS];
    counter_init(&par_barrier);
    atomic_store(&par_met, 0);
    persist_handle *h = persist_handle_new(PAR_WORKERS, PAR_WORKERS);
    CHECK(h != NULL);
    if (!h) return;
    for (int i = 0; i < PAR_WORKERS; i++) {
        /* One partition for all: without a sort-key change the hash does not route. */
        tasks[i] = (persist_task){.partition_hash = 42, .changes_sort_key = false, .run = par_run};
        CHECK_EQ_INT(persist_handle_enqueue(h, &tasks[i]), 0);
    }
    persist_handle_free(h);
    CHECK_EQ_INT(atomic_load(&par_met), PAR_WORKERS);
    counter_destroy(&par_barrier);
}

/* ---- the permit count bounds queued + running, with many enqueuers ---- */

#define BND_WORKERS 8
#define BND_DEPTH 3
#define BND_ENQUEUERS 8
#define BND_PER_ENQUEUER 40

static atomic_int bnd_in_run;
static atomic_int bnd_max_in_run;
static atomic_int bnd_ran;

static void bnd_run(persist_task *t)
{
    (void)t;
    atomic_max(&bnd_max_in_run, atomic_fetch_add(&bnd_in_run, 1) + 1);
    sleep_us(100);
    atomic_fetch_sub(&bnd_in_run, 1);
    atomic_fetch_add(&bnd_ran, 1);
}

typedef struct bnd_enqueuer {
    persist_handle *h;
    int index;
    persist_task tasks[BND_PER_ENQUEUER];
    int failures;
} bnd_enqueuer;

static void *bnd_enqueuer_main(void *arg)
{
    bnd_enqueuer *e = arg;
    for (int i = 0; i < BND_PER_ENQUEUER; i++) {
        /* Mix routed and global tasks: both take permits. */
        e->tasks[i] = (persist_task){.partition_hash = (uint64_t)(e->index * 31 + i),
                                     .changes_sort_key = (i % 3 == 0),
                                     .run = bnd_run};
        if (persist_handle_enqueue(e->h, &e->tasks[i]) != 0) e->failures++;
    }
    return NULL;
}

static void test_permits_bound_in_flight(void)
{
    static bnd_enqueuer enq[BND_ENQUEUERS];
    pthread_t th[BND_ENQUEUERS];
    atomic_store(&bnd_in_run, 0);
    atomic_store(&bnd_max_in_run, 0);
    atomic_store(&bnd_ran, 0);
    /* More workers than permits: only the permits keep the in-run count at BND_DEPTH. */
    persist_handle *h = persist_handle_new(BND_WORKERS, BND_DEPTH);
    CHECK(h != NULL);
    if (!h) return;
    for (int i = 0; i < BND_ENQUEUERS; i++) {
        enq[i] = (bnd_enqueuer){.h = h, .index = i};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, bnd_enqueuer_main, &enq[i]), 0);
    }
    for (int i = 0; i < BND_ENQUEUERS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(enq[i].failures, 0);
    }
    persist_handle_stats st;
    persist_handle_get_stats(h, &st);
    CHECK(st.max_permits_in_use >= 1);
    CHECK(st.max_permits_in_use <= BND_DEPTH);
    CHECK(st.permits_in_use <= BND_DEPTH);
    CHECK_EQ_INT(st.enqueued, BND_ENQUEUERS * BND_PER_ENQUEUER);
    persist_handle_free(h);
    CHECK_EQ_INT(atomic_load(&bnd_ran), BND_ENQUEUERS * BND_PER_ENQUEUER);
    CHECK(atomic_load(&bnd_max_in_run) >= 1);
    CHECK(atomic_load(&bnd_max_in_run) <= BND_DEPTH);
}

/* ---- saturation: on when an enqueuer blocks, off once nobody waits and half is free ---- */

static gate sat_gate;
static counter sat_done;
static atomic_int sat_gate_timeouts;

static void sat_run(persist_task *t)
{
    (void)t;
    if (!gate_pass(&sat_gate)) atomic_fetch_add(&sat_gate_timeouts, 1);
}

static void sat_task_done(persist_task *t)
{
    (void)t;
    counter_add(&sat_done, 1);
}

typedef struct sat_enqueuer {
    persist_handle *h;
    persist_task *task;
    int rc;
} sat_enqueuer;

static void *sat_enqueuer_main(void *arg)
{
    sat_enqueuer *e = arg;
    e->rc = persist_handle_enqueue(e->h, e->task);
    return NULL;
}

static persist_task sat_task(uint64_t hash)
{
    return (persist_task){.partition_hash = hash,
                          .changes_sort_key = (hash & 1) != 0,
                          .run = sat_run,
                          .done = sat_task_done};
}

static void saturation_scenario(unsigned depth, unsigned workers)
{
    persist_task tasks[32];
    pthread_t th[2];
    sat_enqueuer enq[2];
    unsigned half = (depth + 1) / 2;
    counter_init(&sat_gate);
    counter_init(&sat_done);
    atomic_store(&sat_gate_timeouts, 0);
    persist_handle *h = persist_handle_new(workers, depth);
    CHECK(h != NULL);
    if (!h) return;
    persist_handle_stats st;

    /* Fill every permit: full, but nobody had to wait, so not saturated. */
    for (unsigned i = 0; i < depth; i++) {
        tasks[i] = sat_task(i);
        CHECK_EQ_INT(persist_handle_enqueue(h, &tasks[i]), 0);
    }
    persist_handle_get_stats(h, &st);
    CHECK_EQ_INT(st.permits_in_use, depth);
    CHECK_EQ_INT(st.max_permits_in_use, depth);
    CHECK(!st.saturated);
    CHECK_EQ_INT(st.saturations, 0);

    /* Two enqueuers block: saturated from the first one, counted once. */
    for (int k = 0; k < 2; k++) {
        tasks[depth + k] = sat_task(100 + k);
        enq[k] = (sat_enqueuer){.h = h, .task = &tasks[depth + k], .rc = 1};
        CHECK_EQ_INT(pthread_create(&th[k], NULL, sat_enqueuer_main, &enq[k]), 0);
        CHECK(wait_stats(h, stats_waiting_is, k + 1));
        CHECK(persist_handle_saturated(h));
        persist_handle_get_stats(h, &st);
        CHECK(st.saturated);
        CHECK_EQ_INT(st.saturations, 1);
        CHECK_EQ_INT(st.permits_in_use, depth);
    }

    /*
     * Release one permit at a time. Releases 1 and 2 each let a waiter in (someone still waited
     * at release time: stays saturated, even where the free permit alone would be half of
     * depth 2). After that the count is full again and the flag drops at the release that
     * leaves `half` permits free.
     */
    for (unsigned r = 1; r <= depth + 2; r++) {
        gate_open(&sat_gate, 1);
        CHECK(counter_wait_at_least(&sat_done, (int)r));
        if (r <= 2) CHECK(wait_stats(h, stats_waiting_is, 2 - r));
        bool expect = r <= 2 || r - 2 < half;
        persist_handle_get_stats(h, &st);
        if (st.saturated != expect || persist_handle_saturated(h) != expect)
            fprintf(stderr, "  depth %u, release %u: saturated %d, expected %d\n", depth, r,
                    st.saturated, expect);
        CHECK(st.saturated == expect);
        CHECK(persist_handle_saturated(h) == expect);
        CHECK_EQ_INT(st.saturations, 1);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        CHECK_EQ_INT(enq[k].rc, 0);
    }

    /* A second episode is counted again. */
    for (unsigned i = 0; i < depth; i++) {
        tasks[i] = sat_task(200 + i);
        CHECK_EQ_INT(persist_handle_enqueue(h, &tasks[i]), 0);
    }
    CHECK(!persist_handle_saturated(h));
    tasks[depth] = sat_task(300);
    enq[0] = (sat_enqueuer){.h = h, .task = &tasks[depth], .rc = 1};
    CHECK_EQ_INT(pthread_create(&th[0], NULL, sat_enqueuer_main, &enq[0]), 0);
    CHECK(wait_stats(h, stats_waiting_is, 1));
    persist_handle_get_stats(h, &st);
    CHECK(st.saturated);
    CHECK_EQ_INT(st.saturations, 2);
    gate_open(&sat_gate, (int)depth + 1);
    pthread_join(th[0], NULL);
    CHECK_EQ_INT(enq[0].rc, 0);
    CHECK(counter_wait_at_least(&sat_done, 2 * (int)depth + 3));
    CHECK(!persist_handle_saturated(h));
    persist_handle_free(h);
    CHECK_EQ_INT(atomic_load(&sat_gate_timeouts), 0);
    CHECK_EQ_INT(counter_get(&sat_done), 2 * (int)depth + 3);
    counter_destroy(&sat_done);
    counter_destroy(&sat_gate);
}

static void test_saturation_hysteresis(void)
{
    saturation_scenario(2, 1);
    saturation_scenario(3, 2);
    saturation_scenario(4, 1);
    saturation_scenario(7, 3);
}

/* ---- done() runs after the permit release: it may enqueue, even with depth 1 ---- */

#define CHAIN_LENGTH 10

static persist_handle *chain_handle;
static counter chain_done;
static atomic_int chain_permit_held_in_done;
static atomic_int chain_enqueue_failures;
static atomic_int chain_ran;

static void chain_run(persist_task *t)
{
    (void)t;
    atomic_fetch_add(&chain_ran, 1);
}

static void chain_task_done(persist_task *t)
{
    persist_handle_stats st;
    persist_handle_get_stats(chain_handle, &st);
    int n = counter_get(&chain_done) + 1;
    if (st.permits_in_use != 0) {
        /* The permit is still held: enqueueing now would deadlock, so fail instead. */
        atomic_fetch_add(&chain_permit_held_in_done, 1);
    } else if (n < CHAIN_LENGTH) {
        t->partition_hash++;
        t->changes_sort_key = !t->changes_sort_key;
        if (persist_handle_enqueue(chain_handle, t) != 0)
            atomic_fetch_add(&chain_enqueue_failures, 1);
    }
    counter_add(&chain_done, 1);
}

static void test_done_after_permit_release(void)
{
    static persist_task task;
    counter_init(&chain_done);
    atomic_store(&chain_permit_held_in_done, 0);
    atomic_store(&chain_enqueue_failures, 0);
    atomic_store(&chain_ran, 0);
    chain_handle = persist_handle_new(1, 1);
    CHECK(chain_handle != NULL);
    if (!chain_handle) return;
    task = (persist_task){.partition_hash = 5, .run = chain_run, .done = chain_task_done};
    CHECK_EQ_INT(persist_handle_enqueue(chain_handle, &task), 0);
    CHECK(counter_wait_at_least(&chain_done, CHAIN_LENGTH));
    persist_handle_free(chain_handle);
    CHECK_EQ_INT(atomic_load(&chain_permit_held_in_done), 0);
    CHECK_EQ_INT(atomic_load(&chain_enqueue_failures), 0);
    CHECK_EQ_INT(atomic_load(&chain_ran), CHAIN_LENGTH);
    CHECK_EQ_INT(counter_get(&chain_done), CHAIN_LENGTH);
    counter_destroy(&chain_done);
}

/* ---- free drains the queues; enqueues after it began return INGOT_E_CLOSED ---- */

#define DRAIN_WORKERS 2
#define DRAIN_DEPTH 10

static persist_handle *drain_handle;
static gate drain_gate;
static atomic_int drain_ran;
static atomic_int drain_gate_timeouts;
static atomic_int drain_closed_in_done;
static atomic_int drain_other_in_done;
static atomic_int drain_probe_ran;

static void drain_gate_run(persist_task *t)
{
    (void)t;
    if (!gate_pass(&drain_gate)) atomic_fetch_add(&drain_gate_timeouts, 1);
    atomic_fetch_add(&drain_ran, 1);
}

static void drain_run(persist_task *t)
{
    (void)t;
    atomic_fetch_add(&drain_ran, 1);
}

static void drain_probe_run(persist_task *t)
{
    (void)t;
    atomic_fetch_add(&drain_probe_ran, 1);
}

static void drain_task_done(persist_task *t)
{
    (void)t;
    static persist_task probes[DRAIN_DEPTH];
    static atomic_int next_probe;
    persist_task *p = &probes[atomic_fetch_add(&next_probe, 1) % DRAIN_DEPTH];
    *p = (persist_task){.partition_hash = 1, .run = drain_probe_run};
    if (persist_handle_enqueue(drain_handle, p) == INGOT_E_CLOSED)
        atomic_fetch_add(&drain_closed_in_done, 1);
    else
        atomic_fetch_add(&drain_other_in_done, 1);
}

static void *drain_free_main(void *arg)
{
    persist_handle_free(arg);
    return NULL;
}

static void test_free_drains_and_closes(void)
{
    static persist_task tasks[DRAIN_DEPTH];
    persist_task probe = {.partition_hash = 3, .run = drain_probe_run};
    pthread_t freer;
    counter_init(&drain_gate);
    atomic_store(&drain_ran, 0);
    atomic_store(&drain_gate_timeouts, 0);
    atomic_store(&drain_closed_in_done, 0);
    atomic_store(&drain_other_in_done, 0);
    atomic_store(&drain_probe_ran, 0);
    drain_handle = persist_handle_new(DRAIN_WORKERS, DRAIN_DEPTH);
    CHECK(drain_handle != NULL);
    if (!drain_handle) return;

    /* Occupy both workers, then fill the rest of the permits with queued work. */
    for (int i = 0; i < DRAIN_WORKERS; i++) {
        tasks[i] = (persist_task){.run = drain_gate_run, .done = drain_task_done};
        CHECK_EQ_INT(persist_handle_enqueue(drain_handle, &tasks[i]), 0);
    }
    CHECK(wait_stats(drain_handle, stats_running_is, DRAIN_WORKERS));
    for (int i = DRAIN_WORKERS; i < DRAIN_DEPTH; i++) {
        tasks[i] = (persist_task){.partition_hash = (uint64_t)i,
                                  .changes_sort_key = (i % 2 == 0), /* both queue kinds */
                                  .run = drain_run,
                                  .done = drain_task_done};
        CHECK_EQ_INT(persist_handle_enqueue(drain_handle, &tasks[i]), 0);
    }
    CHECK(pthread_create(&freer, NULL, drain_free_main, drain_handle) == 0);
    /*
     * Every permit is held and no task can finish until the gate opens, so this enqueue returns
     * only once free() began: right away if it already had, or woken from its wait.
     */
    CHECK_EQ_INT(persist_handle_enqueue(drain_handle, &probe), INGOT_E_CLOSED);
    CHECK_EQ_INT(atomic_load(&drain_ran), 0);
    gate_open(&drain_gate, DRAIN_WORKERS);
    pthread_join(freer, NULL);
    CHECK_EQ_INT(atomic_load(&drain_ran), DRAIN_DEPTH);
    CHECK_EQ_INT(atomic_load(&drain_closed_in_done), DRAIN_DEPTH);
    CHECK_EQ_INT(atomic_load(&drain_other_in_done), 0);
    CHECK_EQ_INT(atomic_load(&drain_probe_ran), 0);
    CHECK_EQ_INT(atomic_load(&drain_gate_timeouts), 0);
    counter_destroy(&drain_gate);
}

/* ---- worker_pool ---- */

#define POOL_THREADS 4

static counter pool_barrier;

typedef struct pool_call {
    pthread_t caller;
    int parties;
    bool met;          /* written by fn, read by the caller after worker_pool_run */
    bool other_thread; /* fn ran on a thread other than the caller's */
    int value;
} pool_call;

static void pool_barrier_fn(void *arg)
{
    pool_call *c = arg;
    c->other_thread = !pthread_equal(pthread_self(), c->caller);
    c->met = barrier_arrive(&pool_barrier, c->parties);
}

typedef struct pool_caller {
    worker_pool *p;
    pool_call call;
} pool_caller;

static void *pool_barrier_caller(void *arg)
{
    pool_caller *pc = arg;
    pc->call.caller = pthread_self();
    worker_pool_run(pc->p, pool_barrier_fn, &pc->call);
    return NULL;
}

static void test_worker_pool_runs_in_parallel(void)
{
    pool_caller callers[POOL_THREADS];
    pthread_t th[POOL_THREADS];
    counter_init(&pool_barrier);
    worker_pool *p = worker_pool_new(POOL_THREADS);
    CHECK(p != NULL);
    if (!p) return;
    for (int i = 0; i < POOL_THREADS; i++) {
        callers[i] = (pool_caller){.p = p, .call = {.parties = POOL_THREADS}};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, pool_barrier_caller, &callers[i]), 0);
    }
    for (int i = 0; i < POOL_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(callers[i].call.met);
        CHECK(callers[i].call.other_thread);
    }
    worker_pool_free(p);
    counter_destroy(&pool_barrier);
}

#define BOUND_THREADS 3
#define BOUND_CALLERS 6
#define BOUND_CALLS 20

static atomic_int pool_active;
static atomic_int pool_max_active;

static void pool_bounded_fn(void *arg)
{
    pool_call *c = arg;
    atomic_max(&pool_max_active, atomic_fetch_add(&pool_active, 1) + 1);
    sleep_us(100);
    c->other_thread = !pthread_equal(pthread_self(), c->caller);
    c->value = 42; /* plain write: the caller reads it after run returns (TSan checks the order) */
    atomic_fetch_sub(&pool_active, 1);
}

typedef struct bounded_caller {
    worker_pool *p;
    int wrong;
} bounded_caller;

static void *pool_bounded_caller(void *arg)
{
    bounded_caller *bc = arg;
    for (int i = 0; i < BOUND_CALLS; i++) {
        pool_call c = {.caller = pthread_self()};
        worker_pool_run(bc->p, pool_bounded_fn, &c);
        if (c.value != 42 || !c.other_thread) bc->wrong++;
    }
    return NULL;
}

static void test_worker_pool_bounded_and_waits(void)
{
    bounded_caller callers[BOUND_CALLERS];
    pthread_t th[BOUND_CALLERS];
    atomic_store(&pool_active, 0);
    atomic_store(&pool_max_active, 0);
    worker_pool *p = worker_pool_new(BOUND_THREADS);
    CHECK(p != NULL);
    if (!p) return;
    for (int i = 0; i < BOUND_CALLERS; i++) {
        callers[i] = (bounded_caller){.p = p};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, pool_bounded_caller, &callers[i]), 0);
    }
    for (int i = 0; i < BOUND_CALLERS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(callers[i].wrong, 0);
    }
    CHECK(atomic_load(&pool_max_active) >= 1);
    CHECK(atomic_load(&pool_max_active) <= BOUND_THREADS);
    CHECK_EQ_INT(atomic_load(&pool_active), 0);
    worker_pool_free(p);
}

int main(void)
{
    TEST_RUN(test_new_rejects_zero);
    TEST_RUN(test_sort_key_jobs_serialised_per_partition);
    TEST_RUN(test_plain_jobs_run_in_parallel);
    TEST_RUN(test_permits_bound_in_flight);
    TEST_RUN(test_saturation_hysteresis);
    TEST_RUN(test_done_after_permit_release);
    TEST_RUN(test_free_drains_and_closes);
    TEST_RUN(test_worker_pool_runs_in_parallel);
    TEST_RUN(test_worker_pool_bounded_and_waits);
    TEST_MAIN_END();
}
