/*
 * bench_parquet.c: Parquet encoding speed and size on a TSBS-like batch.
 *
 *   bench_parquet [OUT.parquet]      OUT defaults to /tmp/bench_parquet.parquet
 *
 * Builds 1,000,000 rows directly as a query_batch, sorted like a persisted partition: 10 tag
 * columns (TSBS cpu-only: hostname of 1,000 hosts, region, datacenter, rack, os, arch, team,
 * service, service_version, service_environment), time every 10 s per host, and 10 i64 fields
 * (usage_* in 0..100, random walks). Encodes it three times with the default options (ZSTD level
 * 3, one row group of 1,000,000 rows) and prints the median run's rows/s and bytes/row, then
 * writes the file to OUT so tests/readers/duckdb_size.mjs can compare with DuckDB's own ZSTD
 * Parquet of the same rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parquet/parquet.h"

#define ROWS 1000000
#define HOSTS 1000
#define TAGS 10
#define FIELDS 10

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A tag column whose value for host h is entry (h * mult / div) % card of "prefix_N". */
static void make_tag(query_column *c, const char *name, const char *prefix, unsigned card,
                     unsigned div)
{
    c->name = strdup(name);
    c->type = COLUMN_TAG;
    c->data.tag.ids = malloc(ROWS * sizeof(int32_t));
    c->data.tag.dict_offsets = malloc((card + 1) * sizeof(int32_t));
    c->data.tag.dict_bytes = malloc((size_t)card * 48);
    c->data.tag.dict_count = card;
    size_t at = 0;
    for (unsigned k = 0; k < card; k++) {
        c->data.tag.dict_offsets[k] = (int32_t)at;
        at += (size_t)sprintf(c->data.tag.dict_bytes + at, "%s_%u", prefix, k);
    }
    c->data.tag.dict_offsets[card] = (int32_t)at;
    for (size_t i = 0; i < ROWS; i++) {
        unsigned h = (unsigned)(i / (ROWS / HOSTS));
        c->data.tag.ids[i] = (int32_t)((h / div) % card);
    }
}

int main(int argc, char **argv)
{
    const char *out_path = argc > 1 ? argv[1] : "/tmp/bench_parquet.parquet";
    query_batch *b = calloc(1, sizeof *b);
    b->row_count = ROWS;
    b->column_count = TAGS + 1 + FIELDS;
    b->columns = calloc(b->column_count, sizeof *b->columns);
    static const struct { const char *name, *prefix; unsigned card, div; } tags[TAGS] = {
        {"hostname", "host", HOSTS, 1},   {"region", "region", 9, 112},
        {"datacenter", "dc", 27, 38},    {"rack", "rack", 100, 10},
        {"os", "Ubuntu", 3, 7},          {"arch", "x", 2, 5},
        {"team", "team", 4, 3},          {"service", "svc", 20, 2},
        {"service_version", "v", 2, 11}, {"service_environment", "env", 3, 13},
    };
    for (int t = 0; t < TAGS; t++) {
        make_tag(&b->columns[t], tags[t].name, tags[t].prefix, tags[t].card, tags[t].div);
    }
    query_column *tc = &b->columns[TAGS];
    tc->name = strdup("time");
    tc->type = COLUMN_TIME;
    tc->data.i64 = malloc(ROWS * sizeof(int64_t));
    for (size_t i = 0; i < ROWS; i++) {
        tc->data.i64[i] = 1767225600000000000ll + (int64_t)(i % (ROWS / HOSTS)) * 10000000000ll;
    }
    static const char *fields[FIELDS] = {"usage_user",   "usage_system", "usage_idle",
                                         "usage_nice",   "usage_iowait", "usage_irq",
                                         "usage_softirq", "usage_steal", "usage_guest",
                                         "usage_guest_nice"};
    for (int f = 0; f < FIELDS; f++) {
        query_column *c = &b->columns[TAGS + 1 + f];
        c->name = strdup(fields[f]);
        c->type = COLUMN_I64;
        c->data.i64 = malloc(ROWS * sizeof(int64_t));
        int64_t v = 50;
        for (size_t i = 0; i < ROWS; i++) {
            v += (int64_t)(rng() % 11) - 5;
            v = v < 0 ? 0 : v > 100 ? 100 : v;
            c->data.i64[i] = v;
        }
    }
    const char *sort[TAGS + 1];
    for (int t = 0; t < TAGS; t++) {
        sort[t] = tags[t].name;
    }
    sort[TAGS] = "time";
    parquet_write_options o = {.sorting_columns = sort, .sorting_column_count = TAGS + 1,
                               .metadata_json = "{\"bench\":true}"};
    double secs[3];
    strbuf out = {0};
    char err[256];
    for (int r = 0; r < 3; r++) {
        strbuf_reset(&out);
        double t0 = now_s();
        int rc = parquet_write(b, &o, &out, err, sizeof err);
        secs[r] = now_s() - t0;
        if (rc != 0) {
            fprintf(stderr, "parquet_write: %s\n", err);
            return 1;
        }
    }
    qsort(secs, 3, sizeof secs[0], cmp_double);
    printf("bench_parquet: %d rows, %d tags + time + %d i64 fields: %.0f rows/s (median of 3, "
           "%.3f s), %zu bytes = %.2f bytes/row\n",
           ROWS, TAGS, FIELDS, ROWS / secs[1], secs[1], out.len, (double)out.len / ROWS);
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(out.data, 1, out.len, f) != out.len) {
        fprintf(stderr, "cannot write %s\n", out_path);
        return 1;
    }
    fclose(f);
    printf("bench_parquet: wrote %s\n", out_path);
    strbuf_free(&out);
    query_batch_free(b);
    return 0;
}
