/*
 * clock.h: deadlines for timed waits (header only). A deadline is "now + ms" on the clock the
 * condition variable waits on (CLOCK_MONOTONIC for conditions initialised with that clock,
 * CLOCK_REALTIME otherwise), with tv_nsec kept below one second as pthread_cond_timedwait needs.
 */
#ifndef INGOT_CLOCK_H
#define INGOT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline struct timespec clock_deadline_ms(clockid_t clock, uint64_t ms)
{
    struct timespec t;
    clock_gettime(clock, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

#endif
