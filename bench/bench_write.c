/*
 * bench_write.c: the write handler without a network: ingester_write (parse or decode, schema
 * check, WAL commit with fdatasync, buffer apply) on a real ingester in a scratch directory, as
 * the HTTP and gRPC handlers call it. TSBS cpu bodies of 5,000 lines (bench_util.h), sent as line
 * protocol and as the same rows in a columnar DatabaseBatch (packed with protobuf-c), by 1 writer
 * (every write waits for its own fsync) and by 8 (group commit batches them). Persistence and
 * rotation are pushed out of the way so only the write path is measured.
 *
 *   build/bench/bench_write [batches (200)] [runs (3)]
 *
 * Each run opens a fresh ingester; lines/s and MB/s (of request bytes) are the median of the
 * runs, with min and max.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "config.h"
#include "ingester.h"
#include "ingot/write/v1/write.pb-c.h"
#include "util/log.h"

#define MAX_RUNS 9

typedef struct request_set {
    bench_body *bodies;
    size_t count;
    enum dml_body kind;
    size_t lines;
    size_t bytes;
} request_set;

/* --- the same rows as a DatabaseBatch -------------------------------------------------------- */

typedef struct col_builder {
    Ingot__Write__V1__Column col;
    Ingot__Write__V1__Values values;
} col_builder;

/* One TableBatch "cpu" from a parsed body without escapes and without nulls (the TSBS shape). */
static int to_database_batch(const bench_body *lp, bench_body *out)
{
    lp_batch b = {0};
    lp_options opts = {.precision = LP_PRECISION_NS, .max_errors = 1};
    if (lp_parse(lp->data, lp->len, &opts, &b) != 0 || b.bad_line_count || !b.line_count)
        return -1;
    const lp_line *first = &b.lines[0];
    size_t ntags = first->tag_count, nfields = first->field_count, n = b.line_count;
    size_t ncols = 1 + ntags + nfields;
    col_builder *cb = calloc(ncols, sizeof *cb);
    Ingot__Write__V1__Column **cols = calloc(ncols, sizeof *cols);
    int64_t *times = malloc(n * sizeof *times);
    char **strs = malloc(ntags * n * sizeof *strs);
    int64_t *ints = malloc(nfields * n * sizeof *ints);
    char **names = calloc(ncols, sizeof *names);
    if (!cb || !cols || !times || !strs || !ints || !names) return -1;
    for (size_t c = 0; c < ncols; c++) {
        ingot__write__v1__column__init(&cb[c].col);
        ingot__write__v1__values__init(&cb[c].values);
        cb[c].col.values = &cb[c].values;
        cols[c] = &cb[c].col;
    }
    cb[0].col.column_name = "time";
    cb[0].col.semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__TIME;
    cb[0].values.i64_values = times;
    cb[0].values.n_i64_values = n;
    for (size_t t = 0; t < ntags; t++) {
        lp_str k = lp_tag_key(&b.tags[first->first_tag + t]);
        names[1 + t] = strndup(lp_str_ptr(&b, k), k.len);
        cb[1 + t].col.column_name = names[1 + t];
        cb[1 + t].col.semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__TAG;
        cb[1 + t].values.string_values = strs + t * n;
        cb[1 + t].values.n_string_values = n;
    }
    for (size_t f = 0; f < nfields; f++) {
        lp_str k = lp_field_key(&b.fields[first->first_field + f]);
        names[1 + ntags + f] = strndup(lp_str_ptr(&b, k), k.len);
        cb[1 + ntags + f].col.column_name = names[1 + ntags + f];
        cb[1 + ntags + f].col.semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__FIELD;
        cb[1 + ntags + f].values.i64_values = ints + f * n;
        cb[1 + ntags + f].values.n_i64_values = n;
    }
    for (size_t r = 0; r < n; r++) {
        const lp_line *ln = &b.lines[r];
        if (ln->tag_count != ntags || ln->field_count != nfields) return -1;
        times[r] = ln->time_ns;
        for (size_t t = 0; t < ntags; t++) {
            lp_str v = b.tags[ln->first_tag + t].value;
            strs[t * n + r] = strndup(lp_str_ptr(&b, v), v.len);
        }
        for (size_t f = 0; f < nfields; f++)
            ints[f * n + r] = b.fields[ln->first_field + f].value.i64;
    }
    Ingot__Write__V1__TableBatch tb = INGOT__WRITE__V1__TABLE_BATCH__INIT;
    tb.table_name = "cpu";
    tb.row_count = (uint32_t)n;
    tb.columns = cols;
    tb.n_columns = ncols;
    Ingot__Write__V1__TableBatch *tbs[1] = {&tb};
    Ingot__Write__V1__DatabaseBatch db = INGOT__WRITE__V1__DATABASE_BATCH__INIT;
    db.table_batches = tbs;
    db.n_table_batches = 1;
    out->len = ingot__write__v1__database_batch__get_packed_size(&db);
    out->data = malloc(out->len);
    if (!out->data) return -1;
    ingot__write__v1__database_batch__pack(&db, (uint8_t *)out->data);
    for (size_t i = 0; i < ntags * n; i++)
        free(strs[i]);
    for (size_t c = 0; c < ncols; c++)
        free(names[c]);
    free(names);
    free(strs);
    free(ints);
    free(times);
    free(cols);
    free(cb);
    lp_batch_free(&b);
    return 0;
}

/* --- a run --------------------------------------------------------------------------------- */

typedef struct run_ctx {
    ingester *ing;
    const request_set *set;
    atomic_size_t next;
    atomic_int failed;
} run_ctx;

static void *writer(void *arg)
{
    run_ctx *rc = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&rc->next, 1);
        if (i >= rc->set->count) break;
        ingester_write_request req = {.namespace_name = "bench",
                                      .body_kind = rc->set->kind,
                                      .body = rc->set->bodies[i].data,
                                      .body_len = rc->set->bodies[i].len,
                                      .precision = LP_PRECISION_NS};
        ingester_write_result res;
        if (ingester_write(rc->ing, &req, &res) != 0) {
            if (!atomic_exchange(&rc->failed, 1))
                fprintf(stderr, "write failed: %s\n", res.message);
        }
        ingester_write_result_free(&res);
    }
    return NULL;
}

/* One fresh ingester, every request of set by `writers` threads. Seconds, or -1. */
static double run_once(const request_set *set, int writers)
{
    char dir[] = "/tmp/ingot_bench_write_XXXXXX";
    if (!mkdtemp(dir)) return -1;
    char *argv[] = {"--data-dir", dir, "--persist-hot-partition-bytes", "1024G",
                    "--wal-segment-bytes", "1024G", "--wal-rotation-period", "24h"};
    ingot_config cfg;
    char err[512] = "";
    double secs = -1;
    if (config_parse(&cfg, 8, argv, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    run_ctx rc = {.set = set};
    if (ingester_open(&cfg, &rc.ing, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        goto out;
    }
    pthread_t th[64];
    double t0 = bench_now_s();
    for (int i = 0; i < writers; i++)
        pthread_create(&th[i], NULL, writer, &rc);
    for (int i = 0; i < writers; i++)
        pthread_join(th[i], NULL);
    secs = bench_now_s() - t0;
    if (atomic_load(&rc.failed)) secs = -1;
    ingester_close(rc.ing);
out:
    config_free(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return secs;
}

static void measure(const char *what, const request_set *set, int writers, int runs)
{
    double rate[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double s = run_once(set, writers);
        if (s <= 0) {
            printf("%-34s failed\n", what);
            return;
        }
        rate[r] = (double)set->lines / s;
    }
    qsort(rate, (size_t)runs, sizeof *rate, bench_cmp_double);
    double med = rate[runs / 2];
    printf("%-34s lines/s median %10.0f (min %.0f, max %.0f)   MB/s %7.1f\n", what, med, rate[0],
           rate[runs - 1], med * (double)set->bytes / (double)set->lines / 1e6);
}

int main(int argc, char **argv)
{
    size_t batches = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1 || runs > MAX_RUNS || batches == 0) {
        fprintf(stderr, "usage: bench_write [batches] [runs 1..%d]\n", MAX_RUNS);
        return 2;
    }
    log_set_level(LOG_WARN);
    request_set lp = {.kind = DML_BODY_LINE_PROTOCOL};
    if (bench_tsbs_bodies(batches, 1, &lp.bodies, &lp.count) != 0) return 1;
    request_set col = {.kind = DML_BODY_DATABASE_BATCH, .count = lp.count};
    col.bodies = calloc(lp.count, sizeof *col.bodies);
    if (!col.bodies) return 1;
    for (size_t i = 0; i < lp.count; i++) {
        if (to_database_batch(&lp.bodies[i], &col.bodies[i]) != 0) {
            fprintf(stderr, "cannot build the columnar form of body %zu\n", i);
            return 1;
        }
        lp.bytes += lp.bodies[i].len;
        col.bytes += col.bodies[i].len;
    }
    lp.lines = col.lines = lp.count * 5000;
    printf("write handler (parse/decode + schema + WAL fdatasync + buffer), %zu lines in %zu "
           "requests; line protocol %.0f bytes/line, DatabaseBatch %.0f bytes/row; median of %d\n",
           lp.lines, lp.count, (double)lp.bytes / (double)lp.lines,
           (double)col.bytes / (double)col.lines, runs);
    measure("line protocol, 1 writer", &lp, 1, runs);
    measure("DatabaseBatch, 1 writer", &col, 1, runs);
    measure("line protocol, 8 writers", &lp, 8, runs);
    measure("DatabaseBatch, 8 writers", &col, 8, runs);
    for (size_t i = 0; i < lp.count; i++) {
        free(lp.bodies[i].data);
        free(col.bodies[i].data);
    }
    free(lp.bodies);
    free(col.bodies);
    return 0;
}
