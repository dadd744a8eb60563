/*
 * bench_ingest.h: a write path without the WAL for the persist and replay benchmarks: a SQLite
 * catalog and a buffer in a scratch directory, and bodies applied to the buffer through parse and
 * schema check exactly as the ingester does after the WAL commit.
 */
#ifndef INGOT_BENCH_INGEST_H
#define INGOT_BENCH_INGEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/buffer.h"
#include "catalog/catalog.h"
#include "dml/schema.h"
#include "lp/lp.h"

typedef struct bench_env {
    char dir[64];
    catalog cat;
    schema_cache *schema;
    schema_namespace *ns;
    buffer_tree *tree;
    lp_batch batch;
    schema_op_tables tables;
} bench_env;

static inline int bench_env_open(bench_env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/ingot-bench-XXXXXX");
    if (!mkdtemp(e->dir)) return -1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/catalog.sqlite", e->dir);
    if (catalog_sqlite_open(path, &e->cat, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    e->schema = schema_cache_new(&e->cat);
    e->tree = buffer_tree_new();
    if (!e->schema || !e->tree) return -1;
    return schema_namespace_get(e->schema, "bench", true, &e->ns, err, sizeof err);
}

/* Parse, check and apply one body as op `sequence`; lines applied, or -1. */
static inline long bench_apply(bench_env *e, const char *body, size_t len, uint64_t sequence)
{
    char err[256];
    lp_batch_reset(&e->batch);
    lp_options o = {.precision = LP_PRECISION_NS, .max_errors = 1};
    if (lp_parse(body, len, &o, &e->batch) != 0 || e->batch.bad_line_count) return -1;
    if (schema_check(e->schema, e->ns, &e->batch, false, &e->tables, err, sizeof err) != 0 ||
        e->batch.bad_line_count)
        return -1;
    dml_op op = {.sequence = sequence, .ns = e->ns, .namespace_name = "bench", .namespace_len = 5,
                 .batch = &e->batch, .tables = &e->tables, .body = body, .body_len = len,
                 .row_count = e->batch.line_count};
    dml_sink sink = buffer_tree_as_sink(e->tree);
    return dml_sink_apply(&sink, &op) == 0 ? (long)e->batch.line_count : -1;
}

/* A fresh, empty buffer (the catalog keeps its tables). */
static inline void bench_env_new_buffer(bench_env *e)
{
    buffer_tree_free(e->tree);
    e->tree = buffer_tree_new();
}

static inline void bench_env_close(bench_env *e)
{
    lp_batch_free(&e->batch);
    schema_op_tables_free(&e->tables);
    buffer_tree_free(e->tree);
    schema_cache_free(e->schema);
    e->cat.close(e->cat.self);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", e->dir);
}

#endif
