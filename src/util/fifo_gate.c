/*
 * fifo_gate.c: a first-come, first-served counting gate, see fifo_gate.h.
 *
 * Invariants (under mu): held counts room given out (acquired, added, or granted to a waiter
 * that has not returned yet); a waiter is in the queue until it is granted (fifo_gate_grant
 * removes it and adds its amount to held before signalling it) or gives up (it removes itself).
 * So room is never granted twice, and a waiter that times out just as it is granted keeps the
 * room (it was granted: it returns 0). Only the head of the queue is ever granted: the order is
 * strict even when a later, smaller amount would fit.
 */
#include "util/fifo_gate.h"

#include <errno.h>
#include <time.h>

#include "util/clock.h"
#include "util/error.h"

struct fifo_gate_waiter {
    pthread_cond_t cond;       /* signalled when granted, or at close */
    uint64_t amount;
    bool granted;              /* mu */
    fifo_gate_waiter *next;    /* mu */
};

void fifo_gate_init(fifo_gate *g, uint64_t capacity)
{
    pthread_mutex_init(&g->mu, NULL);
    g->capacity = capacity ? capacity : 1;
    g->held = 0;
    g->closed = false;
    g->head = g->tail = NULL;
    atomic_init(&g->waits, 0);
    atomic_init(&g->timeouts, 0);
}

void fifo_gate_destroy(fifo_gate *g)
{
    pthread_mutex_destroy(&g->mu);
}

uint64_t fifo_gate_fit(const fifo_gate *g, uint64_t amount)
{
    return amount < g->capacity ? amount : g->capacity;
}

/* Under mu: grant the oldest waiters while they fit. */
static void fifo_gate_grant(fifo_gate *g)
{
    fifo_gate_waiter *w;
    while ((w = g->head) && g->held + w->amount <= g->capacity) {
        g->head = w->next;
        if (!g->head) g->tail = NULL;
        g->held += w->amount;
        w->granted = true;
        pthread_cond_signal(&w->cond);
    }
}

/* Under mu: take w out of the queue (it gave up). */
static void fifo_gate_leave(fifo_gate *g, fifo_gate_waiter *w)
{
    fifo_gate_waiter **pp = &g->head, *prev = NULL;
    while (*pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = w->next;
    if (g->tail == w) g->tail = prev;
}

int fifo_gate_acquire(fifo_gate *g, uint64_t amount, unsigned timeout_ms)
{
    amount = fifo_gate_fit(g, amount);
    int rv = 0;
    pthread_mutex_lock(&g->mu);
    if (g->closed) {
        rv = INGOT_E_SHUTTING_DOWN;
    } else if (!g->head && g->held + amount <= g->capacity) {
        g->held += amount;
    } else {
        struct timespec deadline = clock_deadline_ms(CLOCK_MONOTONIC, timeout_ms);
        fifo_gate_waiter w = {.amount = amount};
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&w.cond, &attr);
        pthread_condattr_destroy(&attr);
        if (g->tail)
            g->tail->next = &w;
        else
            g->head = &w;
        g->tail = &w;
        atomic_fetch_add(&g->waits, 1);
        while (!w.granted && !g->closed && rv == 0)
            if (pthread_cond_timedwait(&w.cond, &g->mu, &deadline) == ETIMEDOUT && !w.granted)
                rv = INGOT_E_BUSY;
        if (w.granted) {
            rv = 0;
        } else {
            bool was_head = g->head == &w;
            fifo_gate_leave(g, &w);
            if (was_head) fifo_gate_grant(g); /* the next one may fit where this one did not */
            if (rv == 0) rv = INGOT_E_SHUTTING_DOWN;
            if (rv == INGOT_E_BUSY) atomic_fetch_add(&g->timeouts, 1);
        }
        pthread_cond_destroy(&w.cond);
    }
    pthread_mutex_unlock(&g->mu);
    return rv;
}

void fifo_gate_add(fifo_gate *g, uint64_t amount)
{
    pthread_mutex_lock(&g->mu);
    g->held += amount;
    pthread_mutex_unlock(&g->mu);
}

void fifo_gate_release(fifo_gate *g, uint64_t amount)
{
    pthread_mutex_lock(&g->mu);
    g->held = amount < g->held ? g->held - amount : 0;
    fifo_gate_grant(g);
    pthread_mutex_unlock(&g->mu);
}

void fifo_gate_close(fifo_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->closed = true;
    for (fifo_gate_waiter *w = g->head; w; w = w->next)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&g->mu);
}

uint64_t fifo_gate_held(fifo_gate *g)
{
    pthread_mutex_lock(&g->mu);
    uint64_t h = g->held;
    pthread_mutex_unlock(&g->mu);
    return h;
}
