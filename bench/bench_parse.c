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

#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_RUNS 5
#define BENCH_RUN_SECONDS 0.5

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
    } else if (bench_tsbs_bodies(40, 1, &bodies, &nbodies) != 0) {
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
    double t0 = bench_now_s();
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
    double warm = bench_now_s() - t0;
    int rounds = (int)(BENCH_RUN_SECONDS / (warm > 1e-6 ? warm : 1e-6)) + 1;

    double mbs[BENCH_RUNS], lps[BENCH_RUNS];
    uint64_t sink = 0;
    for (int r = 0; r < BENCH_RUNS; r++) {
        double start = bench_now_s();
        for (int k = 0; k < rounds; k++) {
            for (size_t i = 0; i < nbodies; i++) {
                lp_batch_reset(&batch);
                if (lp_parse(bodies[i].data, bodies[i].len, &opts, &batch) != 0) return 1;
                sink += batch.field_count + batch.line_count;
            }
        }
        double el = bench_now_s() - start;
        mbs[r] = (double)total_bytes * rounds / el / 1e6;
        lps[r] = (double)total_lines * rounds / el;
    }
    qsort(mbs, BENCH_RUNS, sizeof mbs[0], bench_cmp_double);
    qsort(lps, BENCH_RUNS, sizeof lps[0], bench_cmp_double);
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
