/*
 * bench_util.h: what the benchmarks share: a monotonic clock, a comparator for medians, and the
 * generator of TSBS "devops cpu-only"-shaped line protocol (1,000 hosts, 10 tags, 10 integer
 * fields, one row per host every 10 s from 2026-01-01, about 345 bytes a line) in request bodies
 * of 5,000 lines, the same shape as ../shared/bench/gen_lp.py produces.
 */
#ifndef INGOT_BENCH_UTIL_H
#define INGOT_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct bench_body {
    char *data;
    size_t len;
} bench_body;

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t bench_rng_state = 0x9E3779B97F4A7C15ull;

static inline uint64_t bench_rng_next(void)
{
    uint64_t x = bench_rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    bench_rng_state = x;
    return x;
}

/* TSBS devops cpu-only lines: hosts x rows, ordered by time then host. */
/* batches bodies of 5,000 lines; body b is shifted by (b % days) UTC days (days >= 1). */
static inline int bench_tsbs_bodies(size_t batches, size_t days, bench_body **out, size_t *count)
{
    static const char *regions[] = {"us-east-1", "us-west-1", "us-west-2", "eu-west-1",
                                    "eu-central-1", "ap-southeast-1", "ap-southeast-2",
                                    "ap-northeast-1", "sa-east-1"};
    static const char *oses[] = {"Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"};
    static const char *arches[] = {"x64", "x86"};
    static const char *teams[] = {"SF", "NYC", "LON", "CHI"};
    static const char *envs[] = {"production", "staging", "test"};
    static const char *fields[] = {"usage_user",   "usage_system", "usage_idle",  "usage_nice",
                                   "usage_iowait", "usage_irq",    "usage_softirq",
                                   "usage_steal",  "usage_guest",  "usage_guest_nice"};
    const size_t hosts = 1000, lines_per_batch = 5000;
    bench_body *bodies = calloc(batches, sizeof *bodies);
    if (!bodies) return -1;
    int values[1000][10];
    for (size_t h = 0; h < hosts; h++)
        for (int f = 0; f < 10; f++) values[h][f] = (int)(bench_rng_next() % 101);
    size_t row = 0;
    for (size_t b = 0; b < batches; b++) {
        size_t cap = lines_per_batch * 512, len = 0;
        char *buf = malloc(cap);
        if (!buf) return -1;
        for (size_t i = 0; i < lines_per_batch; i++, row++) {
            size_t h = row % hosts;
            uint64_t t = 1767225600000000000ull + (uint64_t)(row / hosts) * 10000000000ull +
                         (uint64_t)(b % days) * 86400000000000ull;
            const char *region = regions[h % 9];
            len += (size_t)snprintf(buf + len, cap - len,
                                    "cpu,hostname=host_%zu,region=%s,datacenter=%s%c,rack=%zu,"
                                    "os=%s,arch=%s,team=%s,service=%zu,service_version=%zu,"
                                    "service_environment=%s",
                                    h, region, region, (char)('a' + h % 3), h % 100,
                                    oses[h % 3], arches[h % 2], teams[h % 4], h % 20, h % 2,
                                    envs[h % 3]);
            for (int f = 0; f < 10; f++) {
                int v = values[h][f] + (int)(bench_rng_next() % 11) - 5;
                v = v < 0 ? 0 : v > 100 ? 100 : v;
                values[h][f] = v;
                len += (size_t)snprintf(buf + len, cap - len, "%c%s=%di", f ? ',' : ' ',
                                        fields[f], v);
            }
            len += (size_t)snprintf(buf + len, cap - len, " %llu\n", (unsigned long long)t);
        }
        bodies[b].data = buf;
        bodies[b].len = len;
    }
    *out = bodies;
    *count = batches;
    return 0;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
