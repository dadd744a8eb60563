/*
 * ingester.c: wiring and life cycle (ARCHITECTURE §9), the write path, queries, metrics.
 *
 * Start: lock the data and WAL directories (util/dir_lock.h: a second ingot on either refuses to
 * start) -> open the catalog -> the object store -> the WAL directory's identity (wal_identity:
 * the catalog records it with every file, so replay counts only what this WAL persisted, not
 * what another ingester sharing the catalog did with its own sequence numbers) -> schema cache
 * -> buffer -> persister (its workers run from here on) -> replay every WAL segment: apply,
 * persist, delete, segment by segment (ingester_replay.c; replay feeds the buffer sink directly,
 * never the WalSink, so nothing is logged twice, and skips ops the catalog says this WAL
 * persisted) -> open a fresh segment
 * past the highest id seen, its sequence numbers past every one replayed or persisted -> WalSink
 * over the buffer sink -> rotation, deletion and disk-full thread (ingester_lifecycle.c). Only
 * then do the front ends start.
 *
 * Write: refused while stopping (503 "shutting down"), while the persist queue is full or the
 * WAL volume is full (503 + Retry-After); else parse -> namespace (created on the first good
 * write) -> schema check (creates new tables and columns in the catalog) -> WalSink (commit,
 * then buffer) -> acknowledge. Everything that can fail for reasons of the data happens before
 * the WAL commit. The front ends wrap each write in a write slot (ingester_write_admit: at most
 * --max-concurrent-writes, a util/fifo_gate.h): waiting writes get slots first come, first
 * served, so a write's wait is bounded by the writes ahead of it, not by luck (with a plain
 * condition variable a newcomer could overtake it: at 32 connections of 5,000-line batches the
 * p99 went from 249 ms to about 150). A write starts from a spare batch (arrays of an earlier
 * write, reset) when one is kept, and ingester_write_result_free gives it back.
 *
 * Memory back-pressure: before it parses, a write waits while the snapshots not yet persisted
 * hold more than 4 x --persist-hot-partition-bytes (buffer_tree_wait_snapshot_bytes; 503 after
 * 10 s). Without it a persister slower than the writers lets hot snapshots pile up in memory
 * until the persist queue is full (250 of them); with it they stay near the bound (writes already
 * past the check add at most one snapshot per partition they touch).
 *
 * Stop: ingester_stop_writes() sets `stopping` and waits until no write is in flight; a write
 * increments `writes_in_flight` BEFORE it looks at `stopping` (both sequentially consistent), so
 * once the count drains to zero with the flag set, no write can still reach the WAL. Then
 * ingester_drain() persists until the buffer is empty (queries are still answered), rotates and
 * deletes every segment; ingester_close() closes the WAL and removes its last, empty segment.
 *
 * Lock order (whole process): the ingester's life_mu and seg_mu are never held while calling
 * another component, except that seg_mu is a leaf taken inside the WAL's segment-closed callback;
 * schema cache locks (namespace map, a namespace's table map, a table's column mutex) are never
 * held while calling into the WAL or the buffer; the WAL's queue mutex and the WalSink's watermark
 * mutex are leaves; the buffer takes its map locks, then partition mutexes in ascending partition
 * id, and reads the watermark (WalSink mutex) under a partition mutex; the persister's locks are
 * leaves and it calls the buffer, store and catalog without holding them.
 */
#include "ingester.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dml/pbdata.h"
#include "ingester_internal.h"
#include "util/clock.h"
#include "util/dir_lock.h"
#include "util/log.h"
#include "util/sysio.h"

/* --- open / close ------------------------------------------------------------------------- */

/* Create and lock the data and WAL directories (util/dir_lock.h): one ingot per directory. */
static int lock_dirs(ingester *ing, char *err, size_t errlen)
{
    const char *dirs[2] = {ing->cfg->data_dir, ing->cfg->wal_dir};
    int *locks[2] = {&ing->data_dir_lock, &ing->wal_dir_lock};
    struct stat seen[2];
    for (int i = 0; i < 2; i++) {
        int rv = sysio_mkdirs(dirs[i]);
        if (rv == 0 && stat(dirs[i], &seen[i]) != 0) rv = -errno;
        if (rv != 0) {
            snprintf(err, errlen, "cannot create %s: %s", dirs[i], ingot_strerror(rv));
            return rv;
        }
        if (i == 1 && seen[1].st_dev == seen[0].st_dev && seen[1].st_ino == seen[0].st_ino)
            break; /* --wal-dir is the data dir: locked already */
        if ((*locks[i] = dir_lock(dirs[i], err, errlen)) < 0) return *locks[i];
    }
    return 0;
}

/* The hot-partition callback: 0 when the persister took snap, nonzero when it refused it. */
static int on_hot_partition(void *arg, buffer_snapshot *snap)
{
    ingester *ing = arg;
    return persister_enqueue_async(ing->persist, snap);
}

static int open_store(ingester *ing, char *err, size_t errlen)
{
    const ingot_config *cfg = ing->cfg;
    if (!strcmp(cfg->object_store, "s3"))
        return object_store_s3_open(cfg->s3_endpoint, cfg->s3_bucket, cfg->s3_region,
                                    (unsigned)cfg->object_store_timeout_s, &ing->store, err,
                                    errlen);
    char root[4096];
    snprintf(root, sizeof root, "%s/objects", cfg->data_dir);
    return object_store_file_open(root, &ing->store, err, errlen);
}

int ingester_open(const ingot_config *cfg, ingester **out, char *err, size_t errlen)
{
    int rv;
    ingester *ing = calloc(1, sizeof *ing);
    if (!ing) return INGOT_E_NOMEM;
    ing->cfg = cfg;
    ing->data_dir_lock = ing->wal_dir_lock = -1;
    ingester_lifecycle_init(ing);
    if ((rv = lock_dirs(ing, err, errlen)) != 0) goto fail;
    if ((rv = catalog_open(cfg->catalog, (unsigned)cfg->catalog_timeout_s, &ing->cat, err,
                           errlen)) != 0)
        goto fail;
    ing->cat_open = true;
    if ((rv = open_store(ing, err, errlen)) != 0) goto fail;
    ing->store_open = true;
    char fresh_id[37];
    object_store_uuid_v4(fresh_id);
    if ((rv = wal_identity(cfg->wal_dir, fresh_id, ing->wal_id, err, errlen)) != 0) goto fail;
    log_info("wal: identity %s (%s/wal.id)%s", ing->wal_id, cfg->wal_dir,
             strcmp(ing->wal_id, fresh_id) == 0 ? ", new" : "");
    rv = INGOT_E_NOMEM;
    if (!(ing->schema = schema_cache_new(&ing->cat))) goto fail;
    if (!(ing->buffer = buffer_tree_new())) goto fail;
    persister_options po = {.workers = (unsigned)cfg->persist_workers,
                            .queue_depth = (unsigned)cfg->persist_queue_depth,
                            .compaction_threads = (unsigned)cfg->compaction_threads,
                            .cat = &ing->cat,
                            .store = &ing->store,
                            .wal_id = ing->wal_id,
                            .on_persisted = ingester_on_persisted,
                            .arg = ing};
    if (!(ing->persist = persister_new(&po))) goto fail;
    buffer_tree_set_watermark_source(ing->buffer, ingester_watermark, ing);
    buffer_tree_set_hot_partition(ing->buffer, cfg->persist_hot_partition_bytes, on_hot_partition, ing);

    uint64_t next_sequence = 1;
    if ((rv = ingester_replay(ing, &next_sequence, err, errlen)) != 0) goto fail;
    rv = wal_open(cfg->wal_dir, cfg->wal_segment_bytes, ing->replay.max_segment_id + 1,
                  next_sequence, ingester_on_segment_closed, ing, &ing->log, err, errlen);
    if (rv != 0) goto fail;
    rv = INGOT_E_NOMEM;
    ing->sink = wal_sink_new(wal_as_appender(ing->log), buffer_tree_as_sink(ing->buffer),
                             next_sequence - 1);
    if (!ing->sink) goto fail;
    ing->write_sink = wal_sink_as_dml(ing->sink);
    if ((rv = ingester_lifecycle_start(ing)) != 0) {
        snprintf(err, errlen, "cannot start the rotation thread: %s", ingot_strerror(rv));
        goto fail;
    }
    *out = ing;
    return 0;
fail:
    ingester_close(ing);
    return rv;
}

void ingester_close(ingester *ing)
{
    if (!ing) return;
    ingester_lifecycle_stop(ing);
    if (ing->persist) persister_free(ing->persist); /* finishes queued jobs */
    if (ing->log) {
        wal_stats ws;
        wal_get_stats(ing->log, &ws);
        wal_close(ing->log);
        /* after a complete drain the open segment holds nothing: the WAL ends empty */
        if (atomic_load(&ing->drained)) wal_delete_segment(ing->cfg->wal_dir, ws.segment_id);
    }
    wal_sink_free(ing->sink);
    buffer_tree_free(ing->buffer);
    schema_cache_free(ing->schema);
    if (ing->store_open) ing->store.close(ing->store.self);
    if (ing->cat_open) ing->cat.close(ing->cat.self);
    for (closed_segment *c = ing->closed, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&ing->seg_mu);
    pthread_cond_destroy(&ing->life_cond);
    pthread_mutex_destroy(&ing->life_mu);
    for (size_t i = 0; i < ing->spare_count; i++) lp_batch_free(&ing->spare_batches[i]);
    pthread_mutex_destroy(&ing->spare_mu);
    fifo_gate_destroy(&ing->write_slots);
    dir_unlock(ing->wal_dir_lock);
    dir_unlock(ing->data_dir_lock);
    free(ing);
}

void ingester_stop_writes(ingester *ing)
{
    atomic_store(&ing->stopping, true);
    fifo_gate_close(&ing->write_slots); /* waiters for a slot answer "shutting down" */
    while (atomic_load(&ing->writes_in_flight) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

bool ingester_accepting_writes(ingester *ing)
{
    return !atomic_load(&ing->stopping);
}

/* --- write -------------------------------------------------------------------------------- */

int ingester_write_admit(ingester *ing, unsigned timeout_ms)
{
    int rv = atomic_load(&ing->stopping) ? INGOT_E_SHUTTING_DOWN
                                         : fifo_gate_acquire(&ing->write_slots, 1, timeout_ms);
    if (rv == INGOT_E_BUSY) atomic_fetch_add(&ing->writes_refused_busy, 1);
    return rv;
}

void ingester_write_release(ingester *ing)
{
    fifo_gate_release(&ing->write_slots, 1);
}

static int apply_op(ingester *ing, const ingester_write_request *req, schema_namespace *ns,
                    lp_batch *batch, schema_op_tables *tables, const char *text, size_t text_len,
                    int64_t default_time_ns)
{
    dml_op op = {.ns = ns,
                 .namespace_name = req->namespace_name,
                 .namespace_len = strlen(req->namespace_name),
                 .batch = batch,
                 .tables = tables,
                 .body_kind = req->body_kind,
                 .body = text,
                 .body_len = text_len,
                 .precision = req->precision,
                 .default_time_ns = default_time_ns,
                 .row_count = batch->line_count,
                 .durability = req->durability};
    return dml_sink_apply(&ing->write_sink, &op);
}

/* The write itself, once the caller is counted in writes_in_flight. */
static int write_counted(ingester *ing, const ingester_write_request *req, ingester_write_result *res)
{
    int rv;
    lp_options opts = {.precision = req->precision,
                       .default_time_ns = clock_ns(CLOCK_REALTIME),
                       .max_errors = 100};
    if (req->body_kind == DML_BODY_DATABASE_BATCH) {
        opts.default_time_ns = 0; /* every row has its time */
        rv = pbdata_decode_batch((const uint8_t *)req->body, req->body_len, req->precision,
                                 &res->batch, res->message, sizeof res->message);
    } else {
        rv = lp_parse(req->body, req->body_len, &opts, &res->batch);
    }
    if (rv != 0) return rv;
    if (res->batch.bad_line_count > 0 && !req->partial_ok) return INGOT_E_INVALID;
    if (res->batch.line_count == 0) return res->batch.bad_line_count ? INGOT_E_INVALID : 0;

    schema_namespace *ns;
    rv = schema_namespace_get(ing->schema, req->namespace_name, true, &ns, res->message,
                              sizeof res->message);
    if (rv != 0) return rv;
    schema_op_tables tables = {0};
    rv = schema_check(ing->schema, ns, &res->batch, req->partial_ok, &tables, res->message,
                      sizeof res->message);
    if (rv == 0 && res->batch.bad_line_count > 0 && !req->partial_ok) rv = INGOT_E_INVALID;
    if (rv == 0 && res->batch.line_count == 0) rv = INGOT_E_INVALID;
    if (rv == 0 && res->batch.bad_line_count == 0) {
        rv = apply_op(ing, req, ns, &res->batch, &tables, req->body, req->body_len,
                      opts.default_time_ns);
    } else if (rv == 0) {
        /*
         * Partial write: the WAL logs only the good lines (parsing them again with the same
         * precision and default time gives the same rows), while the op's rows keep pointing
         * into the body.
         */
        strbuf good = {0};
        for (size_t i = 0; i < res->batch.line_count; i++) {
            strbuf_append(&good, lp_line_text(&res->batch, &res->batch.lines[i]),
                          res->batch.lines[i].text_len);
            strbuf_putc(&good, '\n');
        }
        rv = strbuf_failed(&good) ? INGOT_E_NOMEM
                                  : apply_op(ing, req, ns, &res->batch, &tables, good.data,
                                             good.len, opts.default_time_ns);
        strbuf_free(&good);
    }
    if (rv == 0) res->lines_written = res->batch.line_count;
    schema_op_tables_free(&tables);
    return rv;
}

static size_t batch_bytes(const lp_batch *b)
{
    return b->line_cap * sizeof *b->lines + b->tag_cap * sizeof *b->tags +
           b->field_cap * sizeof *b->fields + b->error_cap * sizeof *b->errors;
}

/* The most bytes snapshots not yet persisted may hold before writes wait (0: no limit). */
static size_t ingester_snapshot_limit(const ingester *ing)
{
    return (size_t)ing->cfg->persist_hot_partition_bytes * 4;
}

/*
 * Wait while the snapshots not yet persisted hold more than the limit (memory back-pressure, see
 * the essay); true when they still did after 10 s.
 */
static bool snapshot_backlog(ingester *ing)
{
    size_t limit = ingester_snapshot_limit(ing);
    if (!limit || buffer_tree_snapshot_bytes(ing->buffer) <= limit) return false;
    atomic_fetch_add(&ing->writes_persist_waits, 1);
    return buffer_tree_wait_snapshot_bytes(ing->buffer, limit, INGESTER_WRITE_ADMIT_TIMEOUT_MS) != 0;
}

int ingester_write(ingester *ing, const ingester_write_request *req, ingester_write_result *res)
{
    memset(res, 0, sizeof *res);
    res->owner = ing;
    pthread_mutex_lock(&ing->spare_mu);
    if (ing->spare_count > 0) {
        res->batch = ing->spare_batches[--ing->spare_count];
        ing->spare_bytes -= batch_bytes(&res->batch);
    }
    pthread_mutex_unlock(&ing->spare_mu);
    atomic_fetch_add(&ing->writes_in_flight, 1);
    int rv;
    if (atomic_load(&ing->stopping)) {
        snprintf(res->message, sizeof res->message, "ingot is shutting down");
        rv = INGOT_E_SHUTTING_DOWN;
    } else if (persister_saturated(ing->persist)) {
        snprintf(res->message, sizeof res->message,
                 "ingester overloaded: persisting a backlog (the persist queue is full); retry later");
        rv = INGOT_E_BUSY;
    } else if (atomic_load(&ing->disk_full)) {
        snprintf(res->message, sizeof res->message,
                 "the WAL volume is at least %u%% full: writes are paused while everything is "
                 "persisted; retry later", (unsigned)ing->cfg->disk_full_percent);
        rv = INGOT_E_BUSY;
    } else if (snapshot_backlog(ing)) {
        snprintf(res->message, sizeof res->message,
                 "ingester overloaded: snapshots waiting to be persisted held more than %zu bytes "
                 "(4 x --persist-hot-partition-bytes) for 10 s; retry later",
                 ingester_snapshot_limit(ing));
        rv = INGOT_E_BUSY;
    } else {
        rv = write_counted(ing, req, res);
    }
    atomic_fetch_sub(&ing->writes_in_flight, 1);
    if (rv == INGOT_E_BUSY) atomic_fetch_add(&ing->writes_refused_busy, 1);
    if (rv == 0) {
        atomic_fetch_add(&ing->lines_written, res->lines_written);
        atomic_fetch_add(&ing->bytes_written, req->body_len);
    } else if (rv == INGOT_E_WAL_FAILED && !res->message[0]) {
        snprintf(res->message, sizeof res->message,
                 "the write-ahead log failed; no more writes are taken (see the server log)");
    } else if (!res->message[0] && rv != INGOT_E_INVALID) {
        snprintf(res->message, sizeof res->message, "%s", ingot_strerror(rv));
    }
    atomic_fetch_add(&ing->lines_rejected, res->batch.bad_line_count);
    return rv;
}

void ingester_write_result_free(ingester_write_result *res)
{
    ingester *ing = res->owner;
    size_t bytes = batch_bytes(&res->batch);
    if (ing && bytes > 0) {
        lp_batch_reset(&res->batch);
        pthread_mutex_lock(&ing->spare_mu);
        size_t keep = ing->cfg->max_concurrent_writes < INGESTER_SPARE_BATCHES
                          ? (size_t)ing->cfg->max_concurrent_writes
                          : INGESTER_SPARE_BATCHES;
        bool kept = ing->spare_count < keep && ing->spare_bytes + bytes <= INGESTER_SPARE_BATCH_TOTAL;
        if (kept) {
            ing->spare_batches[ing->spare_count++] = res->batch;
            ing->spare_bytes += bytes;
        }
        pthread_mutex_unlock(&ing->spare_mu);
        if (kept) memset(&res->batch, 0, sizeof res->batch);
    }
    lp_batch_free(&res->batch);
}

void ingester_describe_bad_rows(const ingester_write_request *req, const ingester_write_result *res,
                                strbuf *out)
{
    const lp_batch *b = &res->batch;
    bool rows = req->body_kind == DML_BODY_DATABASE_BATCH;
    strbuf_printf(out, "%zu bad %s%s: ", b->bad_line_count, rows ? "row" : "line",
                  b->bad_line_count == 1 ? "" : "s");
    for (size_t i = 0; i < b->error_count; i++) {
        const lp_error *e = &b->errors[i];
        if (rows) /* a batch row's text is its table name (pbdata.h) */
            strbuf_printf(out, "%srow %u (table %.*s): %s", i ? "; " : "", e->line_number,
                          (int)e->line_len, e->line_text, e->message);
        else
            strbuf_printf(out, "%sline %u, column %u: %s", i ? "; " : "", e->line_number,
                          e->column, e->message);
    }
    if (b->bad_line_count > b->error_count)
        strbuf_printf(out, "; and %zu more", b->bad_line_count - b->error_count);
}

/* --- query -------------------------------------------------------------------------------- */

/*
 * A stream wrapper that gives the concurrency slot back when the stream closes. inner is NULL for
 * a table the catalog knows but the buffer holds nothing of: an empty stream.
 */
typedef struct limited_stream {
    query_stream base;
    query_stream *inner;
    ingester *ing;
} limited_stream;

static int limited_next(query_stream *s, query_batch **out)
{
    limited_stream *ls = (limited_stream *)s;
    return ls->inner ? query_stream_next(ls->inner, out) : 0;
}

static void limited_close(query_stream *s)
{
    limited_stream *ls = (limited_stream *)s;
    if (ls->inner) query_stream_close(ls->inner);
    atomic_fetch_sub(&ls->ing->queries_open, 1);
    free(ls);
}

static const query_stream_ops limited_ops = {limited_next, limited_close};

int ingester_query(ingester *ing, const query_request *req, query_stream **out, char *err,
                   size_t errlen)
{
    long open = atomic_fetch_add(&ing->queries_open, 1);
    if ((uint64_t)open >= ing->cfg->concurrent_query_limit) {
        atomic_fetch_sub(&ing->queries_open, 1);
        atomic_fetch_add(&ing->queries_rejected, 1);
        snprintf(err, errlen, "too many queries at once (--concurrent-query-limit %" PRIu64 ")",
                 ing->cfg->concurrent_query_limit);
        return INGOT_E_BUSY;
    }
    int rv = INGOT_E_NOMEM;
    limited_stream *ls = calloc(1, sizeof *ls);
    if (!ls) goto fail;
    /*
     * The buffer only knows what it holds; a namespace or table that the catalog knows but that
     * has nothing buffered is an empty answer, not a 404.
     */
    query_exec qe = buffer_tree_as_query_exec(ing->buffer);
    rv = qe.query(qe.self, req, &ls->inner, err, errlen);
    if (rv == INGOT_E_NOT_FOUND) {
        schema_namespace *ns;
        char ignored[256];
        int nrv = schema_namespace_get(ing->schema, req->namespace_name, false, &ns, ignored,
                                       sizeof ignored);
        if (nrv == 0 && schema_table_find(ns, req->table_name, strlen(req->table_name))) {
            ls->inner = NULL;
            rv = 0;
        }
    }
    if (rv != 0) goto fail;
    ls->base.ops = &limited_ops;
    ls->ing = ing;
    *out = &ls->base;
    return 0;
fail:
    free(ls);
    atomic_fetch_sub(&ing->queries_open, 1);
    return rv;
}

catalog *ingester_catalog(ingester *ing)
{
    return &ing->cat;
}

/* --- metrics ------------------------------------------------------------------------------ */

void ingester_metrics(ingester *ing, strbuf *out)
{
    wal_stats ws;
    wal_get_stats(ing->log, &ws);
    strbuf_printf(out,
                  "# HELP ingot_write_lines_total Lines of line protocol applied.\n"
                  "# TYPE ingot_write_lines_total counter\n"
                  "ingot_write_lines_total %" PRIuFAST64 "\n"
                  "# HELP ingot_write_bytes_total Request body bytes (inflated) of applied writes.\n"
                  "# TYPE ingot_write_bytes_total counter\n"
                  "ingot_write_bytes_total %" PRIuFAST64 "\n"
                  "# HELP ingot_write_lines_rejected_total Bad lines refused or skipped.\n"
                  "# TYPE ingot_write_lines_rejected_total counter\n"
                  "ingot_write_lines_rejected_total %" PRIuFAST64 "\n",
                  atomic_load(&ing->lines_written), atomic_load(&ing->bytes_written),
                  atomic_load(&ing->lines_rejected));
    strbuf_printf(out,
                  "# HELP ingot_wal_batches_total Group commits (one write and one fdatasync each).\n"
                  "# TYPE ingot_wal_batches_total counter\n"
                  "ingot_wal_batches_total %" PRIu64 "\n"
                  "# HELP ingot_wal_entries_total Ops written to the WAL.\n"
                  "# TYPE ingot_wal_entries_total counter\n"
                  "ingot_wal_entries_total %" PRIu64 "\n"
                  "# HELP ingot_wal_bytes_total Bytes written to the WAL, framing included.\n"
                  "# TYPE ingot_wal_bytes_total counter\n"
                  "ingot_wal_bytes_total %" PRIu64 "\n"
                  "# HELP ingot_wal_segment_id The open WAL segment.\n"
                  "# TYPE ingot_wal_segment_id gauge\n"
                  "ingot_wal_segment_id %" PRIu64 "\n"
                  "# HELP ingot_wal_rotations_total WAL segment rotations.\n"
                  "# TYPE ingot_wal_rotations_total counter\n"
                  "ingot_wal_rotations_total %" PRIu64 "\n"
                  "# HELP ingot_wal_failed 1 once a WAL write or fsync failed (sticky).\n"
                  "# TYPE ingot_wal_failed gauge\n"
                  "ingot_wal_failed %d\n",
                  ws.batches, ws.entries, ws.bytes, ws.segment_id, ws.rotations, ws.failed ? 1 : 0);
    strbuf_puts(out, "# HELP ingot_wal_fsync_duration_seconds Latency of WAL fdatasync calls.\n"
                     "# TYPE ingot_wal_fsync_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (int i = 0; i < WAL_FSYNC_BUCKETS; i++) {
        cumulative += ws.fsync_buckets[i];
        if (wal_fsync_bucket_us[i] == UINT64_MAX)
            strbuf_printf(out, "ingot_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                          cumulative);
        else
            strbuf_printf(out, "ingot_wal_fsync_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                          (double)wal_fsync_bucket_us[i] / 1e6, cumulative);
    }
    strbuf_printf(out,
                  "ingot_wal_fsync_duration_seconds_sum %.6f\n"
                  "ingot_wal_fsync_duration_seconds_count %" PRIu64 "\n",
                  (double)ws.fsync_sum_us / 1e6, ws.fsync_count);
    strbuf_printf(out,
                  "# HELP ingot_buffer_bytes Bytes held by the in-memory buffer.\n"
                  "# TYPE ingot_buffer_bytes gauge\n"
                  "ingot_buffer_bytes %zu\n"
                  "# HELP ingot_buffer_rows Rows held by the in-memory buffer.\n"
                  "# TYPE ingot_buffer_rows gauge\n"
                  "ingot_buffer_rows %zu\n"
                  "# HELP ingot_buffer_snapshot_bytes Bytes of the buffer in snapshots not yet persisted.\n"
                  "# TYPE ingot_buffer_snapshot_bytes gauge\n"
                  "ingot_buffer_snapshot_bytes %zu\n"
                  "# HELP ingot_write_persist_waits_total Writes that waited for snapshots to be persisted (over 4 x --persist-hot-partition-bytes).\n"
                  "# TYPE ingot_write_persist_waits_total counter\n"
                  "ingot_write_persist_waits_total %" PRIuFAST64 "\n"
                  "# HELP ingot_queries_open Queries being answered.\n"
                  "# TYPE ingot_queries_open gauge\n"
                  "ingot_queries_open %ld\n"
                  "# HELP ingot_queries_rejected_total Queries refused by --concurrent-query-limit.\n"
                  "# TYPE ingot_queries_rejected_total counter\n"
                  "ingot_queries_rejected_total %" PRIuFAST64 "\n",
                  buffer_tree_bytes(ing->buffer), buffer_tree_rows(ing->buffer),
                  buffer_tree_snapshot_bytes(ing->buffer), atomic_load(&ing->writes_persist_waits),
                  atomic_load(&ing->queries_open), atomic_load(&ing->queries_rejected));
    strbuf_printf(out,
                  "# HELP ingot_wal_replay_segments Segments replayed at start-up.\n"
                  "# TYPE ingot_wal_replay_segments gauge\n"
                  "ingot_wal_replay_segments %" PRIu64 "\n"
                  "# HELP ingot_wal_replay_entries Ops replayed at start-up.\n"
                  "# TYPE ingot_wal_replay_entries gauge\n"
                  "ingot_wal_replay_entries %" PRIu64 "\n"
                  "# HELP ingot_wal_replay_torn_tails Torn segment tails truncated at start-up.\n"
                  "# TYPE ingot_wal_replay_torn_tails gauge\n"
                  "ingot_wal_replay_torn_tails %" PRIu64 "\n"
                  "# HELP ingot_wal_replay_corrupt_segments Damaged segments moved aside at start-up.\n"
                  "# TYPE ingot_wal_replay_corrupt_segments gauge\n"
                  "ingot_wal_replay_corrupt_segments %" PRIu64 "\n",
                  ing->replay.segments, ing->replay.entries, ing->replay.torn_tails,
                  ing->replay.corrupt_skipped);
    pthread_mutex_lock(&ing->seg_mu);
    size_t closed = 0;
    for (closed_segment *c = ing->closed; c; c = c->next) closed++;
    pthread_mutex_unlock(&ing->seg_mu);
    strbuf_printf(out,
                  "# HELP ingot_wal_replay_skipped_ops Replayed ops (or their rows of a partition) "
                  "skipped as already persisted.\n"
                  "# TYPE ingot_wal_replay_skipped_ops gauge\n"
                  "ingot_wal_replay_skipped_ops %" PRIu64 "\n"
                  "# HELP ingot_wal_closed_segments Closed WAL segments not yet deleted.\n"
                  "# TYPE ingot_wal_closed_segments gauge\n"
                  "ingot_wal_closed_segments %zu\n"
                  "# HELP ingot_wal_segments_deleted_total WAL segments deleted once persisted.\n"
                  "# TYPE ingot_wal_segments_deleted_total counter\n"
                  "ingot_wal_segments_deleted_total %" PRIuFAST64 "\n"
                  "# HELP ingot_wal_applied_watermark Every op up to this sequence number is applied.\n"
                  "# TYPE ingot_wal_applied_watermark gauge\n"
                  "ingot_wal_applied_watermark %" PRIu64 "\n"
                  "# HELP ingot_disk_full 1 while the WAL volume is too full to take writes.\n"
                  "# TYPE ingot_disk_full gauge\n"
                  "ingot_disk_full %d\n"
                  "# HELP ingot_disk_full_events_total Times the WAL volume became too full.\n"
                  "# TYPE ingot_disk_full_events_total counter\n"
                  "ingot_disk_full_events_total %" PRIuFAST64 "\n"
                  "# HELP ingot_write_refused_busy_total Writes refused with 503 (persist backlog, disk full, no write slot).\n"
                  "# TYPE ingot_write_refused_busy_total counter\n"
                  "ingot_write_refused_busy_total %" PRIuFAST64 "\n",
                  ing->replay_ops_skipped, closed, atomic_load(&ing->segments_deleted),
                  ingester_watermark(ing), atomic_load(&ing->disk_full) ? 1 : 0,
                  atomic_load(&ing->disk_full_events), atomic_load(&ing->writes_refused_busy));
    strbuf_printf(out,
                  "# HELP ingot_write_slots_in_use Writes holding one of the --max-concurrent-writes slots.\n"
                  "# TYPE ingot_write_slots_in_use gauge\n"
                  "ingot_write_slots_in_use %" PRIu64 "\n"
                  "# HELP ingot_write_slot_waits_total Writes that had to wait for a slot.\n"
                  "# TYPE ingot_write_slot_waits_total counter\n"
                  "ingot_write_slot_waits_total %" PRIuFAST64 "\n"
                  "# HELP ingot_write_slot_timeouts_total Writes refused with 503 after waiting 10 s for a slot.\n"
                  "# TYPE ingot_write_slot_timeouts_total counter\n"
                  "ingot_write_slot_timeouts_total %" PRIuFAST64 "\n",
                  fifo_gate_held(&ing->write_slots), atomic_load(&ing->write_slots.waits),
                  atomic_load(&ing->write_slots.timeouts));
    persister_metrics(ing->persist, out);
}
