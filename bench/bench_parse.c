/*
 * bench_parse.c: throughput of the line protocol parser on one core.
 *
 *   build/bench/bench_parse [FILE...]
 *
 * Each FILE is one request body (e.g. the batch_*.lp files of /work/shared/bench/gen_lp.py).
 * Without files, TSBS "cpu-only"-shaped data (10 tags, 10 integer fields, ns timestamps, about
 * 345 bytes a line) is generated in memory: 40 batches of 5,000 lines. The bodies are parsed one
 * after another into one reused lp_batch (as an HTTP thread would), enough rounds to take about
 * half a second per run; after one warm-up run, 5 runs are timed and the median, min and max of
 * MB/s (10^6 bytes) and lines/s are printed. Bad lines are counted and reported, never hidden.
 */
#include "lp/lp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_RUNS 5
#define BENCH_RUN_SECONDS 0.5

typedef struct bench_body {
    char *data;
    size_t len;
} bench_body;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int load_file(const char *path, bench_body *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) goto fail;
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) goto fail;
        buf = nb;
    }
    if (ferror(f)) goto fail;
    fclose(f);
    out->data = buf;
    out->len = len;
    return 0;
fail:
    fprintf(stderr, "%s: read failed\n", path);
    free(buf);
    fclose(f);
    return -1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

/* TSBS devops cpu-only lines: hosts x rows, ordered by time then host. */
static int synth_bodies(bench_body **out, size_t *count)
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
    const size_t hosts = 1000, batches = 40, lines_per_batch = 5000;
    bench_body *bodies = calloc(batches, sizeof *bodies);
    if (!bodies) return -1;
    int values[1000][10];
    for (size_t h = 0; h < hosts; h++)
        for (int f = 0; f < 10; f++) values[h][f] = (int)(rng_next() % 101);
    size_t row = 0;
    for (size_t b = 0; b < batches; b++) {
        size_t cap = lines_per_batch * 512, len = 0;
        char *buf = malloc(cap);
        if (!buf) return -1;
        for (size_t i = 0; i < lines_per_batch; i++, row++) {
            size_t h = row % hosts;
            uint64_t t = 1767225600000000000ull + (uint64_t)(row / hosts) * 10000000000ull;
            const char *region = regions[h % 9];
            len += (size_t)snprintf(buf + len, cap - len,
                                    "cpu,hostname=host_%zu,region=%s,datacenter=%s%c,rack=%zu,"
                                    "os=%s,arch=%s,team=%s,service=%zu,service_version=%zu,"
                                    "service_environment=%s",
                                    h, region, region, (char)('a' + h % 3), h % 100,
                                    oses[h % 3], arches[h % 2], teams[h % 4], h % 20, h % 2,
                                    envs[h % 3]);
            for (int f = 0; f < 10; f++) {
                int v = values[h][f] + (int)(rng_next() % 11) - 5;
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    bench_body *bodies = NULL;
    size_t nbodies = 0;
    if (argc > 1) {
        bodies = calloc((size_t)argc - 1, sizeof *bodies);
        if (!bodies) return 1;
        for (int i = 1; i < argc; i++) {
            if (load_file(argv[i], &bodies[nbodies]) != 0) return 1;
            nbodies++;
        }
    } else if (synth_bodies(&bodies, &nbodies) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    size_t total_bytes = 0;
    for (size_t i = 0; i < nbodies; i++) total_bytes += bodies[i].len;
    lp_options opts = {.precision = LP_PRECISION_NS, .default_time_ns = 0, .max_errors = 100};
    lp_batch batch;
    memset(&batch, 0, sizeof batch);

    /* Warm-up round: also counts lines and checks that the data parses. */
    size_t total_lines = 0, total_bad = 0;
    double t0 = now_s();
    for (size_t i = 0; i < nbodies; i++) {
        lp_batch_reset(&batch);
        if (lp_parse(bodies[i].data, bodies[i].len, &opts, &batch) != 0) {
            fprintf(stderr, "lp_parse failed\n");
            return 1;
        }
        total_lines += batch.line_count;
        total_bad += batch.bad_line_count;
        if (batch.bad_line_count && batch.error_count)
            fprintf(stderr, "body %zu line %u col %u: %s\n", i, batch.errors[0].line_number,
                    batch.errors[0].column, batch.errors[0].message);
    }
    double warm = now_s() - t0;
    int rounds = (int)(BENCH_RUN_SECONDS / (warm > 1e-6 ? warm : 1e-6)) + 1;

    double mbs[BENCH_RUNS], lps[BENCH_RUNS];
    uint64_t sink = 0;
    for (int r = 0; r < BENCH_RUNS; r++) {
        double start = now_s();
        for (int k = 0; k < rounds; k++) {
            for (size_t i = 0; i < nbodies; i++) {
                lp_batch_reset(&batch);
                if (lp_parse(bodies[i].data, bodies[i].len, &opts, &batch) != 0) return 1;
                sink += batch.field_count + batch.line_count;
            }
        }
        double el = now_s() - start;
        mbs[r] = (double)total_bytes * rounds / el / 1e6;
        lps[r] = (double)total_lines * rounds / el;
    }
    qsort(mbs, BENCH_RUNS, sizeof mbs[0], cmp_double);
    qsort(lps, BENCH_RUNS, sizeof lps[0], cmp_double);
    printf("bench_parse: %zu bodies, %zu bytes, %zu lines (%zu bad), %.1f bytes/line, %s data\n",
           nbodies, total_bytes, total_lines, total_bad,
           total_lines ? (double)total_bytes / (double)total_lines : 0.0,
           argc > 1 ? "file" : "synthetic");
    printf("bench_parse: %d runs x %d rounds: MB/s median %.0f (min %.0f, max %.0f); "
           "lines/s median %.0f (min %.0f, max %.0f); %.0f ns/line\n",
           BENCH_RUNS, rounds, mbs[BENCH_RUNS / 2], mbs[0], mbs[BENCH_RUNS - 1],
           lps[BENCH_RUNS / 2], lps[0], lps[BENCH_RUNS - 1],
           lps[BENCH_RUNS / 2] > 0 ? 1e9 / lps[BENCH_RUNS / 2] : 0.0);
    if (sink == 42) printf("\n"); /* keep the results alive */
    lp_batch_free(&batch);
    for (size_t i = 0; i < nbodies; i++) free(bodies[i].data);
    free(bodies);
    return total_bad ? 2 : 0;
}
