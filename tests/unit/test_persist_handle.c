/*
 * test_persist_handle.c: the PersistHandle (routing, permits, saturation, done() ordering, drain on
 * free; parking: retry after a delay or wait for a wake, with the permit kept and the worker given
 * back) and the compaction worker_pool.
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
#include <string.h>
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

static persist_run_result ser_run(persist_task *t)
{
    ser_task *st = (ser_task *)t;
    if (atomic_fetch_add(&ser_active[st->part], 1) != 0) atomic_fetch_add(&ser_overlaps, 1);
    if (atomic_load(&ser_last_seq[st->part]) != st->seq - 1) atomic_fetch_add(&ser_out_of_order, 1);
    atomic_store(&ser_last_seq[st->part], st->seq);
    sleep_us(50);
    atomic_fetch_add(&ser_ran, 1);
    atomic_fetch_sub(&ser_active[st->part], 1);
    return PERSIST_RUN_DONE;
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

static persist_run_result par_run(persist_task *t)
{
    (void)t;
    if (barrier_arrive(&par_barrier, PAR_WORKERS)) atomic_fetch_add(&par_met, 1);
    return PERSIST_RUN_DONE;
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

static persist_run_result bnd_run(persist_task *t)
{
    (void)t;
    atomic_max(&bnd_max_in_run, atomic_fetch_add(&bnd_in_run, 1) + 1);
    sleep_us(100);
    atomic_fetch_sub(&bnd_in_run, 1);
    atomic_fetch_add(&bnd_ran, 1);
    return PERSIST_RUN_DONE;
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

static persist_run_result sat_run(persist_task *t)
{
    (void)t;
    if (!gate_pass(&sat_gate)) atomic_fetch_add(&sat_gate_timeouts, 1);
    return PERSIST_RUN_DONE;
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

static persist_run_result chain_run(persist_task *t)
{
    (void)t;
    atomic_fetch_add(&chain_ran, 1);
    return PERSIST_RUN_DONE;
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

static persist_run_result drain_gate_run(persist_task *t)
{
    (void)t;
    if (!gate_pass(&drain_gate)) atomic_fetch_add(&drain_gate_timeouts, 1);
    atomic_fetch_add(&drain_ran, 1);
    return PERSIST_RUN_DONE;
}

static persist_run_result drain_run(persist_task *t)
{
    (void)t;
    atomic_fetch_add(&drain_ran, 1);
    return PERSIST_RUN_DONE;
}

static persist_run_result drain_probe_run(persist_task *t)
{
    (void)t;
    atomic_fetch_add(&drain_probe_ran, 1);
    return PERSIST_RUN_DONE;
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

/* ---- parking: RETRY gives the worker back, keeps the permit, honours the delay ---- */

#define RETRY_TIMES 3
#define RETRY_DELAY_MS 100

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct retry_task {
    persist_task base;
    int runs;    /* run() calls so far (only the running worker writes) */
    int retries; /* RETRY results before DONE */
    uint32_t delay_ms;
    uint64_t run_at_ns[RETRY_TIMES + 2]; /* when each run() began */
    char worker[RETRY_TIMES + 2][16];    /* the thread name of each run() */
    counter *done_count;
} retry_task;

static persist_run_result retry_run(persist_task *t)
{
    retry_task *rt = (retry_task *)t;
    if (rt->runs < RETRY_TIMES + 2) {
        rt->run_at_ns[rt->runs] = mono_ns();
        pthread_getname_np(pthread_self(), rt->worker[rt->runs], sizeof rt->worker[0]);
    }
    if (rt->runs++ < rt->retries) {
        t->retry_delay_ms = rt->delay_ms;
        return PERSIST_RUN_RETRY;
    }
    return PERSIST_RUN_DONE;
}

static void retry_task_done(persist_task *t)
{
    counter_add(((retry_task *)t)->done_count, 1);
}

static retry_task make_retry_task(uint64_t hash, bool routed, int retries, uint32_t delay_ms,
                                  counter *done_count)
{
    return (retry_task){.base = {.partition_hash = hash,
                                 .changes_sort_key = routed,
                                 .run = retry_run,
                                 .done = retry_task_done},
                        .retries = retries,
                        .delay_ms = delay_ms,
                        .done_count = done_count};
}

static bool stats_parked_is(const persist_handle_stats *st, unsigned n)
{
    return st->parked == n;
}

static void test_retry_parks_and_frees_the_worker(void)
{
    counter done;
    counter_init(&done);
    /* one worker: if the retrying task held it, nothing else could run */
    persist_handle *h = persist_handle_new(1, 4);
    CHECK(h != NULL);
    if (!h) return;
    retry_task r = make_retry_task(1, false, RETRY_TIMES, RETRY_DELAY_MS, &done);
    retry_task others[2];
    CHECK_EQ_INT(persist_handle_enqueue(h, &r.base), 0);
    CHECK(wait_stats(h, stats_parked_is, 1));
    for (int i = 0; i < 2; i++) {
        others[i] = make_retry_task(10 + (uint64_t)i, i == 1, 0, 0, &done);
        CHECK_EQ_INT(persist_handle_enqueue(h, &others[i].base), 0);
    }
    CHECK(counter_wait_at_least(&done, 2));
    persist_handle_stats st;
    persist_handle_get_stats(h, &st);
    if (counter_get(&done) == 2) { /* r still retrying: it is parked and holds its permit */
        CHECK_EQ_INT(st.parked + st.running, 1);
        CHECK_EQ_INT(st.permits_in_use, 1);
    }
    CHECK(counter_wait_at_least(&done, 3));
    persist_handle_get_stats(h, &st);
    CHECK_EQ_INT(st.parked, 0);
    CHECK_EQ_INT(st.permits_in_use, 0);
    CHECK_EQ_INT(st.completed, 3);
    CHECK_EQ_INT(st.parks, RETRY_TIMES);
    persist_handle_free(h);
    CHECK_EQ_INT(r.runs, RETRY_TIMES + 1);
    /* never run again before its delay (a lower bound only: nothing here times the handle) */
    for (int i = 1; i <= RETRY_TIMES; i++)
        CHECK(r.run_at_ns[i] - r.run_at_ns[i - 1] >= (uint64_t)RETRY_DELAY_MS * 1000000u);
    /* the others ran while r was parked, between its first and its last run */
    CHECK(others[0].run_at_ns[0] < r.run_at_ns[RETRY_TIMES]);
    CHECK(others[1].run_at_ns[0] < r.run_at_ns[RETRY_TIMES]);
    counter_destroy(&done);
}

/* A routed task that retries runs on its owner worker every time. */
static void test_routed_retry_stays_on_owner(void)
{
    counter done;
    counter_init(&done);
    persist_handle *h = persist_handle_new(3, 4);
    CHECK(h != NULL);
    if (!h) return;
    retry_task r = make_retry_task(7, true, RETRY_TIMES, 1, &done); /* owner: 7 % 3 = 1 */
    retry_task g = make_retry_task(8, false, RETRY_TIMES, 1, &done);
    CHECK_EQ_INT(persist_handle_enqueue(h, &r.base), 0);
    CHECK_EQ_INT(persist_handle_enqueue(h, &g.base), 0);
    CHECK(counter_wait_at_least(&done, 2));
    persist_handle_free(h);
    CHECK_EQ_INT(r.runs, RETRY_TIMES + 1);
    CHECK_EQ_INT(g.runs, RETRY_TIMES + 1);
    for (int i = 0; i <= RETRY_TIMES; i++)
        CHECK_EQ_STR(r.worker[i], "persist-1");
    counter_destroy(&done);
}

/* Parked tasks keep their permits: with depth 2 and two of them, the next enqueue saturates. */
static atomic_bool keep_failing;

static persist_run_result failing_run(persist_task *t)
{
    if (!atomic_load(&keep_failing)) return PERSIST_RUN_DONE;
    t->retry_delay_ms = 5;
    return PERSIST_RUN_RETRY;
}

static void test_parked_tasks_keep_permits(void)
{
    persist_task tasks[3];
    pthread_t th;
    atomic_store(&keep_failing, true);
    persist_handle *h = persist_handle_new(2, 2);
    CHECK(h != NULL);
    if (!h) return;
    for (int i = 0; i < 2; i++) {
        tasks[i] = (persist_task){.partition_hash = (uint64_t)i, .run = failing_run};
        CHECK_EQ_INT(persist_handle_enqueue(h, &tasks[i]), 0);
    }
    tasks[2] = (persist_task){.partition_hash = 2, .run = failing_run};
    sat_enqueuer e = {.h = h, .task = &tasks[2], .rc = 1};
    CHECK_EQ_INT(pthread_create(&th, NULL, sat_enqueuer_main, &e), 0);
    CHECK(wait_stats(h, stats_waiting_is, 1));
    persist_handle_stats st;
    persist_handle_get_stats(h, &st);
    CHECK(st.saturated);
    CHECK_EQ_INT(st.permits_in_use, 2);
    CHECK(st.parks >= 2);
    atomic_store(&keep_failing, false);
    pthread_join(th, NULL);
    CHECK_EQ_INT(e.rc, 0);
    persist_handle_free(h);
}

/* ---- parking: WAIT until woken, a wake racing the park, no spinning, stop waits ---- */

typedef struct wait_task {
    persist_task base;
    atomic_int runs;
    bool wake_self; /* wake itself inside run(), before returning WAIT */
    persist_handle *h;
    counter *done_count;
} wait_task;

static persist_run_result wait_run(persist_task *t)
{
    wait_task *wt = (wait_task *)t;
    if (atomic_fetch_add(&wt->runs, 1) > 0) return PERSIST_RUN_DONE;
    if (wt->wake_self) persist_handle_wake(wt->h, t); /* the wake arrives before the park */
    return PERSIST_RUN_WAIT;
}

static void wait_task_done(persist_task *t)
{
    counter_add(((wait_task *)t)->done_count, 1);
}

static void wait_task_init(wait_task *w, persist_handle *h, uint64_t hash, bool wake_self,
                           counter *done_count)
{
    *w = (wait_task){.base = {.partition_hash = hash, .run = wait_run, .done = wait_task_done},
                     .wake_self = wake_self,
                     .h = h,
                     .done_count = done_count};
    atomic_init(&w->runs, 0);
}

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_wait_until_woken(void)
{
    counter done;
    counter_init(&done);
    persist_handle *h = persist_handle_new(2, 8);
    CHECK(h != NULL);
    if (!h) return;
    wait_task w, self;
    wait_task_init(&w, h, 1, false, &done);
    wait_task_init(&self, h, 2, true, &done);
    CHECK_EQ_INT(persist_handle_enqueue(h, &w.base), 0);
    CHECK(wait_stats(h, stats_parked_is, 1));
    /* the self-waking task is not lost: it runs again at once */
    CHECK_EQ_INT(persist_handle_enqueue(h, &self.base), 0);
    bool self_ran = counter_wait_at_least(&done, 1);
    CHECK(self_ran);
    if (!self_ran) { /* the wake was lost: wake it now, so the test goes on instead of hanging */
        persist_handle_wake(h, &self.base);
        CHECK(counter_wait_at_least(&done, 1));
    }
    CHECK_EQ_INT(atomic_load(&self.runs), 2);
    /* other tasks come and go; w is not run again without a wake */
    retry_task quick[4];
    for (int i = 0; i < 4; i++) {
        quick[i] = make_retry_task(10 + (uint64_t)i, (i & 1) != 0, 0, 0, &done);
        CHECK_EQ_INT(persist_handle_enqueue(h, &quick[i].base), 0);
    }
    CHECK(counter_wait_at_least(&done, 5));
    /* parked with nothing else to do, the workers sleep: (almost) no CPU while time passes */
    double cpu0 = process_cpu_seconds();
    sleep_us(200000);
    double cpu = process_cpu_seconds() - cpu0;
    if (cpu >= 0.05) fprintf(stderr, "  %.3f s of CPU while idle\n", cpu);
    CHECK(cpu < 0.05);
    CHECK_EQ_INT(atomic_load(&w.runs), 1);
    persist_handle_stats st;
    persist_handle_get_stats(h, &st);
    CHECK_EQ_INT(st.parked, 1);
    CHECK_EQ_INT(st.permits_in_use, 1);
    persist_handle_wake(h, &w.base);
    CHECK(counter_wait_at_least(&done, 6));
    CHECK_EQ_INT(atomic_load(&w.runs), 2);
    persist_handle_free(h);
    counter_destroy(&done);
}

typedef struct free_arg {
    persist_handle *h;
    atomic_bool returned;
} free_arg;

static void *free_main(void *arg)
{
    free_arg *a = arg;
    persist_handle_free(a->h);
    atomic_store(&a->returned, true);
    return NULL;
}

static void test_free_waits_for_parked(void)
{
    counter done;
    counter_init(&done);
    persist_handle *h = persist_handle_new(2, 4);
    CHECK(h != NULL);
    if (!h) return;
    retry_task r = make_retry_task(1, true, RETRY_TIMES, 50, &done);
    wait_task w;
    wait_task_init(&w, h, 2, false, &done);
    CHECK_EQ_INT(persist_handle_enqueue(h, &r.base), 0);
    CHECK_EQ_INT(persist_handle_enqueue(h, &w.base), 0);
    CHECK(wait_stats(h, stats_parked_is, 2));
    free_arg a = {.h = h};
    atomic_init(&a.returned, false);
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, free_main, &a), 0);
    /* the retrying task finishes during free(); the waiting one keeps free() waiting */
    CHECK(counter_wait_at_least(&done, 1));
    sleep_us(50000);
    CHECK(!atomic_load(&a.returned));
    CHECK_EQ_INT(atomic_load(&w.runs), 1);
    persist_handle_wake(h, &w.base);
    pthread_join(th, NULL);
    CHECK(atomic_load(&a.returned));
    CHECK_EQ_INT(r.runs, RETRY_TIMES + 1);
    CHECK_EQ_INT(atomic_load(&w.runs), 2);
    CHECK_EQ_INT(counter_get(&done), 2);
    counter_destroy(&done);
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
    TEST_RUN(test_retry_parks_and_frees_the_worker);
    TEST_RUN(test_routed_retry_stays_on_owner);
    TEST_RUN(test_parked_tasks_keep_permits);
    TEST_RUN(test_wait_until_woken);
    TEST_RUN(test_free_waits_for_parked);
    TEST_RUN(test_worker_pool_runs_in_parallel);
    TEST_RUN(test_worker_pool_bounded_and_waits);
    TEST_MAIN_END();
}
