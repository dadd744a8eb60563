/*
 * bench_persist.c: persist throughput: buffered TSBS rows -> sort + de-duplicate -> Parquet ->
 * file object store -> SQLite catalog, with the real persister.
 *
 *   build/bench/bench_persist [ROWS_IN_THOUSANDS]      (default 1000: 1M rows)
 *
 * Two shapes, 3 runs each (median, min, max printed), each run on a freshly filled buffer:
 *   one partition of all the rows, 1 worker          -> rows/s of one worker
 *   4 partitions (4 days) of rows/4, 2 workers       -> rows/s in total on this 2-core machine
 * plus the Parquet bytes per row. Filling the buffer is not timed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ingest.h"
#include "bench_util.h"
#include "persist/persist.h"
#include "store/object_store.h"

#define RUNS 3

typedef struct tally {
    int64_t bytes, rows;
} tally;

static void add_file(void *arg, const catalog_parquet_file *f)
{
    tally *t = arg;
    t->bytes += f->file_size_bytes;
    t->rows += f->row_count;
}

static int run_shape(const char *name, size_t batches, size_t days, unsigned workers)
{
    bench_body *bodies;
    size_t count;
    if (bench_tsbs_bodies(batches, days, &bodies, &count) != 0) return -1;
    double rates[RUNS];
    double bytes_per_row = 0;
    for (int run = 0; run < RUNS; run++) {
        bench_env e;
        if (bench_env_open(&e) != 0) return -1;
        char root[128], err[256];
        snprintf(root, sizeof root, "%s/objects", e.dir);
        object_store store;
        if (object_store_file_open(root, &store, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        persister_options po = {.workers = workers, .queue_depth = 16, .compaction_threads = workers,
                                .cat = &e.cat, .store = &store};
        persister *p = persister_new(&po);
        long rows = 0;
        for (size_t b = 0; b < count; b++) {
            long n = bench_apply(&e, bodies[b].data, bodies[b].len, b + 1);
            if (n < 0 || !p) return -1;
            rows += n;
        }
        double t0 = bench_now_s();
        int rv = persister_persist_all(p, e.tree);
        double el = bench_now_s() - t0;
        if (rv != 0) return -1;
        rates[run] = (double)rows / el;
        tally t = {0};
        schema_table *table = schema_table_find(e.ns, "cpu", 3);
        if (table) e.cat.parquet_file_list(e.cat.self, table->catalog_id, add_file, &t);
        bytes_per_row = t.rows ? (double)t.bytes / (double)t.rows : 0;
        persister_free(p);
        store.close(store.self);
        bench_env_close(&e);
    }
    qsort(rates, RUNS, sizeof rates[0], bench_cmp_double);
    printf("%-34s rows/s median %10.0f  (min %.0f, max %.0f)  parquet %.2f bytes/row\n", name,
           rates[RUNS / 2], rates[0], rates[RUNS - 1], bytes_per_row);
    for (size_t b = 0; b < count; b++) free(bodies[b].data);
    free(bodies);
    return 0;
}

int main(int argc, char **argv)
{
    size_t thousands = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    size_t batches = thousands / 5 ? thousands / 5 : 1;
    printf("persist of %zu TSBS rows (10 tags, 10 i64 fields), %d runs each\n", batches * 5000, RUNS);
    if (run_shape("1 partition, 1 worker", batches, 1, 1) != 0) goto fail;
    if (run_shape("4 partitions, 2 workers (total)", batches, 4, 2) != 0) goto fail;
    return 0;
fail:
    fprintf(stderr, "bench_persist: failed\n");
    return 1;
}
