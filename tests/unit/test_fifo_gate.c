/*
 * test_fifo_gate.c: the first-come, first-served gate (util/fifo_gate.h): weights, strict
 * order, waiters that give up, amounts over the capacity, and close.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "test.h"
#include "util/error.h"
#include "util/fifo_gate.h"

typedef struct waiter {
    fifo_gate *g;
    uint64_t amount;
    unsigned timeout_ms;
    atomic_int result;
    atomic_bool done;
    pthread_t thread;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->result, fifo_gate_acquire(w->g, w->amount, w->timeout_ms));
    atomic_store(&w->done, true);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Start w and give it time to queue. */
static void waiter_start(waiter *w, fifo_gate *g, uint64_t amount, unsigned timeout_ms)
{
    w->g = g;
    w->amount = amount;
    w->timeout_ms = timeout_ms;
    atomic_init(&w->result, 1);
    atomic_init(&w->done, false);
    CHECK(pthread_create(&w->thread, NULL, waiter_main, w) == 0);
    sleep_ms(50);
}

static void test_weights_and_timeout(void)
{
    fifo_gate g;
    fifo_gate_init(&g, 10);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 6, 100), 0);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 6, 100), INGOT_E_BUSY); /* 12 > 10 */
    CHECK_EQ_INT(fifo_gate_acquire(&g, 4, 100), 0);            /* exactly full */
    CHECK_EQ_INT((int)fifo_gate_held(&g), 10);
    fifo_gate_release(&g, 6);
    CHECK_EQ_INT((int)fifo_gate_held(&g), 4);
    fifo_gate_add(&g, 9); /* without waiting, past the capacity */
    CHECK_EQ_INT((int)fifo_gate_held(&g), 13);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 1, 50), INGOT_E_BUSY);
    fifo_gate_release(&g, 13);
    CHECK_EQ_INT((int)fifo_gate_held(&g), 0);
    CHECK_EQ_INT((int)atomic_load(&g.waits), 2);
    CHECK_EQ_INT((int)atomic_load(&g.timeouts), 2);
    /* an amount over the capacity holds the whole capacity, once the gate is empty */
    CHECK_EQ_INT((int)fifo_gate_fit(&g, 100), 10);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 100, 100), 0);
    CHECK_EQ_INT((int)fifo_gate_held(&g), 10);
    fifo_gate_release(&g, fifo_gate_fit(&g, 100));
    fifo_gate_destroy(&g);
}

/* A small amount that would fit waits behind a large one that came first. */
static void test_strict_order(void)
{
    fifo_gate g;
    fifo_gate_init(&g, 10);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 8, 100), 0);
    waiter a, b;
    waiter_start(&a, &g, 5, 20000);
    waiter_start(&b, &g, 1, 20000); /* 8 + 1 fits, but a is ahead */
    sleep_ms(50);
    CHECK(!atomic_load(&a.done) && !atomic_load(&b.done));
    CHECK_EQ_INT(fifo_gate_acquire(&g, 1, 20), INGOT_E_BUSY); /* nor does a newcomer overtake */
    fifo_gate_release(&g, 8);
    pthread_join(a.thread, NULL);
    pthread_join(b.thread, NULL);
    CHECK_EQ_INT(atomic_load(&a.result), 0);
    CHECK_EQ_INT(atomic_load(&b.result), 0);
    CHECK_EQ_INT((int)fifo_gate_held(&g), 6);
    fifo_gate_release(&g, 6);
    fifo_gate_destroy(&g);
}

/* A head that gives up lets the waiters behind it move up at once. */
static void test_head_gives_up(void)
{
    fifo_gate g;
    fifo_gate_init(&g, 10);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 5, 100), 0);
    waiter a, b;
    waiter_start(&a, &g, 10, 200);  /* cannot fit while 5 are held */
    waiter_start(&b, &g, 3, 20000); /* fits, but behind a */
    CHECK(!atomic_load(&b.done));
    pthread_join(a.thread, NULL);
    CHECK_EQ_INT(atomic_load(&a.result), INGOT_E_BUSY);
    pthread_join(b.thread, NULL); /* granted when a left, with no release */
    CHECK_EQ_INT(atomic_load(&b.result), 0);
    CHECK_EQ_INT((int)fifo_gate_held(&g), 8);
    fifo_gate_release(&g, 8);
    fifo_gate_destroy(&g);
}

static void test_close_wakes_waiters(void)
{
    fifo_gate g;
    fifo_gate_init(&g, 1);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 1, 100), 0);
    waiter a;
    waiter_start(&a, &g, 1, 20000);
    fifo_gate_close(&g);
    pthread_join(a.thread, NULL);
    CHECK_EQ_INT(atomic_load(&a.result), INGOT_E_SHUTTING_DOWN);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 1, 100), INGOT_E_SHUTTING_DOWN);
    fifo_gate_release(&g, 1); /* still works */
    CHECK_EQ_INT((int)fifo_gate_held(&g), 0);
    CHECK_EQ_INT(fifo_gate_acquire(&g, 1, 100), INGOT_E_SHUTTING_DOWN);
    fifo_gate_destroy(&g);
}

int main(void)
{
    TEST_RUN(test_weights_and_timeout);
    TEST_RUN(test_strict_order);
    TEST_RUN(test_head_gives_up);
    TEST_RUN(test_close_wakes_waiters);
    TEST_MAIN_END();
}
