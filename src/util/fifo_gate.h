/*
 * fifo_gate.h: a counting gate that lets callers through first come, first served.
 *
 * A gate has a capacity (slots, bytes: any unit) and a held amount. fifo_gate_acquire(amount)
 * returns once amount fits under the capacity and every caller that came earlier got through;
 * a release hands the room straight to the oldest waiter that fits, so a newcomer never overtakes
 * a waiter and a large amount is not starved by small ones. An amount over the whole capacity is
 * clamped to it (it goes through once the gate is empty): fifo_gate_fit says what acquire will
 * hold for an amount, and a caller releases in the end everything it acquired and added. A
 * waiter whose time runs out leaves the queue
 * (the ones behind it move up). fifo_gate_close wakes every waiter with INGOT_E_SHUTTING_DOWN and
 * refuses later acquires; releases still work.
 *
 * fifo_gate_add takes room without waiting (it may go past the capacity): for amounts learnt
 * while the caller already holds room and must not wait (a body that grows as it arrives).
 *
 * Thread-safe. Waiters wait on a condition variable of their own (CLOCK_MONOTONIC deadline).
 */
#ifndef INGOT_FIFO_GATE_H
#define INGOT_FIFO_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct fifo_gate_waiter fifo_gate_waiter;

typedef struct fifo_gate {
    pthread_mutex_t mu;
    uint64_t capacity;               /* immutable after init, > 0 */
    uint64_t held;                   /* mu */
    bool closed;                     /* mu */
    fifo_gate_waiter *head, *tail;   /* mu: waiters, oldest first */
    atomic_uint_fast64_t waits;      /* acquires that had to wait */
    atomic_uint_fast64_t timeouts;   /* acquires whose time ran out */
} fifo_gate;

void fifo_gate_init(fifo_gate *g, uint64_t capacity);
void fifo_gate_destroy(fifo_gate *g);

/* What fifo_gate_acquire(g, amount) holds: amount, at most the capacity. */
uint64_t fifo_gate_fit(const fifo_gate *g, uint64_t amount);
/* Holds fifo_gate_fit(g, amount). 0, INGOT_E_BUSY (no room within timeout_ms) or
 * INGOT_E_SHUTTING_DOWN (closed). */
int fifo_gate_acquire(fifo_gate *g, uint64_t amount, unsigned timeout_ms);
void fifo_gate_add(fifo_gate *g, uint64_t amount);
void fifo_gate_release(fifo_gate *g, uint64_t amount);
void fifo_gate_close(fifo_gate *g);
uint64_t fifo_gate_held(fifo_gate *g);

#endif
