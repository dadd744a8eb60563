/*
 * bench_replay.c: WAL replay throughput: N segments of TSBS line protocol, written through the
 * real WAL, read back with wal_replay (frames, CRC32C, payload decode) and applied to the buffer
 * through parse and schema check, as start-up replay does (the persist that follows each segment
 * at start-up is bench_persist's business and is not timed here).
 *
 *   build/bench/bench_replay [BATCHES]      (default 200 batches of 5,000 lines = 1M lines)
 *
 * Prints lines/s and MB/s of replay into the buffer (median of 3, min, max), and of the read
 * alone (frames + CRC + decode, no apply). Segments are 32 MiB, so 1M lines make ~11 segments.
 * Then the ingester's own start-up replay (ingester_open on a copy of the WAL: the parse/apply
 * pipeline, persisted-op skipping, and the persist + delete of each segment), split into the
 * replay into the buffer (hot partitions persisting alongside, as at a real start) and the
 * persist-and-delete that follows each segment.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ingest.h"
#include "bench_util.h"
#include "config.h"
#include "dml/dml.h"
#include "ingester_internal.h"
#include "util/log.h"
#include "wal/wal.h"

#define RUNS 3

typedef struct replay_run {
    bench_env *env; /* NULL: read and decode only */
    uint64_t lines, bytes;
    int failed;
} replay_run;

static int on_entry(void *arg, uint64_t segment_id, uint64_t sequence, const uint8_t *payload,
                    size_t len)
{
    (void)segment_id;
    replay_run *r = arg;
    dml_decoded d;
    char err[256];
    if (dml_op_decode(payload, len, &d, err, sizeof err) != 0) return r->failed = 1;
    r->bytes += d.body_len;
    if (!r->env) return 0;
    long n = bench_apply(r->env, d.body, d.body_len, sequence);
    if (n < 0) return r->failed = 1;
    r->lines += (uint64_t)n;
    return 0;
}

/*
 * Start an ingester on a copy of the WAL in wal_dir: *apply_s and *total_s are its replay time
 * without and with the persist + delete of each segment. Returns 0 or -1.
 */
static int startup_replay(const char *wal_dir, uint64_t *entries, double *apply_s, double *total_s)
{
    char dir[64] = "/tmp/ingot-bench-start-XXXXXX", cmd[256], wal_copy[128], err[512] = "";
    if (!mkdtemp(dir)) return -1;
    snprintf(wal_copy, sizeof wal_copy, "%s/wal", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s %s", wal_dir, wal_copy);
    int rv = -1;
    ingot_config cfg;
    char *argv[] = {"--data-dir", dir, "--wal-dir", wal_copy, "--persist-hot-partition-bytes", "1024G"};
    if (system(cmd) != 0 || config_parse(&cfg, 6, argv, stdout, err, sizeof err) != 0) goto out;
    ingester *ing = NULL;
    if (ingester_open(&cfg, &ing, err, sizeof err) == 0) {
        *entries = ing->replay.entries;
        *total_s = ing->replay_seconds;
        *apply_s = ing->replay_seconds - ing->replay_persist_seconds;
        ingester_close(ing);
        rv = 0;
    } else {
        fprintf(stderr, "start-up replay: %s\n", err);
    }
    config_free(&cfg);
out:
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rv;
}

static void report(const char *what, double *lps, double *mbs)
{
    qsort(lps, RUNS, sizeof lps[0], bench_cmp_double);
    qsort(mbs, RUNS, sizeof mbs[0], bench_cmp_double);
    printf("%-28s lines/s median %10.0f (min %.0f, max %.0f)   MB/s median %7.1f\n", what,
           lps[RUNS / 2], lps[0], lps[RUNS - 1], mbs[RUNS / 2]);
}

int main(int argc, char **argv)
{
    size_t batches = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
    bench_body *bodies;
    size_t count;
    if (bench_tsbs_bodies(batches, 1, &bodies, &count) != 0) return 1;
    char dir[64] = "/tmp/ingot-bench-wal-XXXXXX", err[256];
    if (!mkdtemp(dir)) return 1;
    wal *w;
    if (wal_open(dir, 32u << 20, 1, 1, NULL, NULL, &w, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (size_t b = 0; b < count; b++) {
        dml_op op = {.namespace_name = "bench", .namespace_len = 5, .body = bodies[b].data,
                     .body_len = bodies[b].len, .precision = LP_PRECISION_NS};
        uint8_t header[DML_PAYLOAD_HEADER_BYTES];
        struct iovec iov[3];
        dml_op_encode(&op, header, iov);
        if (wal_append(w, iov, 3, WAL_WAIT_WRITTEN, NULL) != 0) return 1;
    }
    wal_stats ws;
    wal_get_stats(w, &ws);
    wal_close(w);
    printf("replay of %zu lines in %" PRIu64 " segments (%.1f MB of line protocol)\n", count * 5000,
           ws.segment_id, (double)ws.bytes / 1e6);
    double lps[RUNS], mbs[RUNS], read_lps[RUNS], read_mbs[RUNS];
    for (int run = 0; run < RUNS; run++) {
        for (int apply = 0; apply < 2; apply++) {
            bench_env e;
            if (apply && bench_env_open(&e) != 0) return 1;
            replay_run r = {.env = apply ? &e : NULL};
            wal_replay_callbacks cb = {.on_entry = on_entry, .arg = &r};
            wal_replay_stats st;
            double t0 = bench_now_s();
            int rv = wal_replay(dir, false, &cb, &st, err, sizeof err);
            double el = bench_now_s() - t0;
            if (rv != 0 || r.failed) {
                fprintf(stderr, "replay failed: %s\n", err);
                return 1;
            }
            double lines = apply ? (double)r.lines : (double)count * 5000;
            (apply ? lps : read_lps)[run] = lines / el;
            (apply ? mbs : read_mbs)[run] = (double)r.bytes / 1e6 / el;
            if (apply) bench_env_close(&e);
        }
    }
    report("read + CRC + decode", read_lps, read_mbs);
    report("replay into the buffer", lps, mbs);
    log_set_level(LOG_WARN);
    double start_lps[RUNS], start_mbs[RUNS], total_lps[RUNS], total_mbs[RUNS];
    for (int run = 0; run < RUNS; run++) {
        uint64_t entries = 0;
        double apply_s = 0, total_s = 0;
        if (startup_replay(dir, &entries, &apply_s, &total_s) != 0 || entries != count) return 1;
        double lines = (double)count * 5000, mb = (double)ws.bytes / 1e6;
        start_lps[run] = lines / apply_s;
        start_mbs[run] = mb / apply_s;
        total_lps[run] = lines / total_s;
        total_mbs[run] = mb / total_s;
    }
    report("start-up: into the buffer", start_lps, start_mbs);
    report("start-up: with persist", total_lps, total_mbs);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    for (size_t b = 0; b < count; b++) free(bodies[b].data);
    free(bodies);
    return 0;
}
