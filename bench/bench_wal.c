/*
 * bench_wal.c: WAL group-commit throughput with real fdatasync.
 *
 *   bench_wal [DIR] [SECONDS]     DIR defaults to /tmp, SECONDS (per run) to 1
 *
 * For each entry size (1 KiB, 64 KiB, 1 MiB) and each number of concurrent appenders (1, 8, 32):
 * three runs, each in a fresh WAL directory under DIR (128 MiB segments), every appender calling
 * wal_append(WAL_WAIT_SYNCED) in a loop until the deadline. Prints the median run's commits/s,
 * MB/s (payload bytes), entries per batch and mean fdatasync latency. The directories are
 * removed afterwards.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "wal/wal.h"

typedef struct bench_arg {
    wal *w;
    const uint8_t *payload;
    size_t size;
    double deadline;
    uint64_t commits;
    int errors;
} bench_arg;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_thread(void *p)
{
    bench_arg *a = p;
    struct iovec iov = {(void *)a->payload, a->size};
    while (now_s() < a->deadline) {
        uint64_t seq;
        if (wal_append(a->w, &iov, 1, WAL_WAIT_SYNCED, &seq) != 0) {
            a->errors++;
            break;
        }
        a->commits++;
    }
    return NULL;
}

typedef struct bench_result {
    double commits_per_s, mb_per_s, per_batch, fsync_us;
} bench_result;

static int bench_cmp(const void *x, const void *y)
{
    double a = ((const bench_result *)x)->commits_per_s,
           b = ((const bench_result *)y)->commits_per_s;
    return a < b ? -1 : a > b;
}

static int bench_run(const char *base, size_t size, int threads, double seconds,
                     const uint8_t *payload, bench_result *out)
{
    char dir[1024], err[512], cmd[1100];
    snprintf(dir, sizeof dir, "%s/ingot_bench_wal_%d", base, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return -1;
    wal *w = NULL;
    if (wal_open(dir, 128u << 20, 1, 1, NULL, NULL, &w, err, sizeof err) != 0) {
        fprintf(stderr, "wal_open: %s\n", err);
        return -1;
    }
    bench_arg *args = calloc((size_t)threads, sizeof *args);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    double start = now_s();
    for (int t = 0; t < threads; t++) {
        args[t] =
            (bench_arg){.w = w, .payload = payload, .size = size, .deadline = start + seconds};
        pthread_create(&th[t], NULL, bench_thread, &args[t]);
    }
    uint64_t commits = 0;
    int errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        commits += args[t].commits;
        errors += args[t].errors;
    }
    double elapsed = now_s() - start;
    wal_stats st;
    wal_get_stats(w, &st);
    wal_close(w);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    free(args);
    free(th);
    if (errors) {
        fprintf(stderr, "%d append errors\n", errors);
        return -1;
    }
    out->commits_per_s = (double)commits / elapsed;
    out->mb_per_s = (double)commits * (double)size / elapsed / 1e6;
    out->per_batch = st.batches ? (double)st.entries / (double)st.batches : 0;
    out->fsync_us = st.fsync_count ? (double)st.fsync_sum_us / (double)st.fsync_count : 0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "/tmp";
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    if (seconds <= 0) seconds = 1.0;
    log_set_level(LOG_WARN);
    static const size_t sizes[] = {1024, 64 * 1024, 1024 * 1024};
    static const int threads[] = {1, 8, 32};
    uint8_t *payload = malloc(sizes[2]);
    if (!payload) return 1;
    for (size_t i = 0; i < sizes[2]; i++)
        payload[i] = (uint8_t)(i * 2654435761u >> 13);
    printf("WAL group commit, fdatasync per batch, dir %s, %.1f s per run, median of 3\n", base,
           seconds);
    printf("%10s %9s %12s %10s %12s %14s\n", "entry", "appenders", "commits/s", "MB/s",
           "entries/batch", "fsync mean us");
    for (int si = 0; si < 3; si++) {
        for (int ti = 0; ti < 3; ti++) {
            bench_result r[3];
            for (int k = 0; k < 3; k++)
                if (bench_run(base, sizes[si], threads[ti], seconds, payload, &r[k]) != 0) {
                    free(payload);
                    return 1;
                }
            qsort(r, 3, sizeof r[0], bench_cmp);
            printf("%8zuKi %9d %12.0f %10.1f %12.1f %14.0f\n", sizes[si] / 1024, threads[ti],
                   r[1].commits_per_s, r[1].mb_per_s, r[1].per_batch, r[1].fsync_us);
            fflush(stdout);
        }
    }
    free(payload);
    return 0;
}
