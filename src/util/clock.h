/*
 * clock.h: the one place that reads the clock (header only). clock_ns gives "now" on a clock in
 * nanoseconds as int64_t (CLOCK_REALTIME: since the epoch, good until 2262; CLOCK_MONOTONIC:
 * since an arbitrary start, for durations); callers divide for coarser units (/1000 us,
 * /1000000 ms, / 1e9 as double for seconds) and keep their clock choice. clock_deadline_ms gives
 * a deadline for timed waits: "now + ms" on the clock the condition variable waits on
 * (CLOCK_MONOTONIC for conditions initialised with that clock, CLOCK_REALTIME otherwise), with
 * tv_nsec kept below one second as pthread_cond_timedwait needs. Neither can fail for the clocks
 * used here (clock_gettime only fails for an invalid clock id).
 * Not here: code that needs the timespec itself (log.c formats tv_sec/tv_nsec as a wall-clock
 * stamp; ingester_lifecycle.c keeps timespecs).
 */
#ifndef INGOT_CLOCK_H
#define INGOT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ns(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

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
