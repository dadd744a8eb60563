/*
 * persist.c: the persist jobs (see persist.h) on top of the PersistHandle.
 *
 * A job owns one buffer snapshot. Steps, each retried with back-off (100 ms doubling to 10 s,
 * forever: the data must get out, and a stalled store or catalog makes the queue fill up, which
 * pauses ingest instead of growing memory):
 *   1. catalog partition_get_or_create -> catalog partition id and stored sort key;
 *   2. sort key: computed from the stored key and the snapshot's tags (persist_sort_key); if the
 *      catalog key must gain columns, compare-and-swap it, and on a conflict start over with the
 *      key another writer stored (keys only gain columns, so this converges);
 *   3. sort + de-duplicate on the compaction pool (buffer_snapshot_sorted_batch);
 *   4. encode Parquet; put it at <ns>/<table>/<day>/<uuid>.parquet;
 *   5. insert the parquet_file row: min/max time, rows, size, and the WAL coverage of the file
 *      (the snapshot's watermark and the sequences above it that it holds);
 *   6. detach the snapshot from the buffer, release the permit, notify.
 * Jobs whose partition key is unknown or must gain columns are routed to the worker that owns
 * the partition (hash), so sort-key changes of one partition never race inside this process.
 *
 * The partition cache (catalog id + sort key per table/day) is guarded by cache_mu; the
 * dispatcher's list and the wait groups by mu. Lock order: mu and cache_mu are leaves.
 *
 * Crash points (util/sysio.h): "persist-after-put" (an object no catalog row names: removed as
 * an orphan at the next start, its rows persisted again from the WAL) and "persist-after-catalog"
 * (the file is recorded, the snapshot still buffered and its ops still in the WAL: replay skips
 * them).
 */
#include "persist/persist.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dml/schema.h"
#include "parquet/parquet.h"
#include "persist/persist_handle.h"
#include "query/query_text.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/log.h"
#include "util/sysio.h"

/* Cached catalog facts of one partition (table id + day). */
typedef struct partition_state {
    int64_t table_id;
    char key[11];
    int64_t catalog_id;   /* 0 until the catalog was asked */
    char *sort_key_json;  /* the catalog's key as last seen; NULL until known */
    struct partition_state *next;
} partition_state;

#define PARTITION_BUCKETS 4096

/* Jobs started together that someone waits for (persister_persist_all). */
typedef struct wait_group {
    size_t pending; /* mu */
    pthread_cond_t cond;
} wait_group;

typedef struct persist_job {
    persist_task task; /* first: the handle sees the job as its task */
    persister *p;
    buffer_snapshot *snap;
    buffer_snapshot_info info;
    wait_group *group; /* NULL if nobody waits */
    struct persist_job *next_async;
} persist_job;

struct persister {
    persister_options opts;
    persist_handle *handle;
    worker_pool *compaction;

    pthread_mutex_t cache_mu;
    partition_state *partitions[PARTITION_BUCKETS]; /* cache_mu */

    pthread_mutex_t mu;
    pthread_cond_t changed;       /* mu: the async list or the job counts changed */
    persist_job *async_head;      /* mu: jobs waiting for the dispatcher */
    persist_job *async_tail;      /* mu */
    size_t jobs_outstanding;      /* mu: queued via any path and not yet done */
    bool stopping;                /* mu */
    pthread_t dispatcher;

    /* counters (atomic) */
    atomic_uint_fast64_t files;
    atomic_uint_fast64_t file_bytes;
    atomic_uint_fast64_t rows_in;     /* rows of the snapshots, before de-duplication */
    atomic_uint_fast64_t rows_out;    /* rows written to Parquet */
    atomic_uint_fast64_t put_retries;
    atomic_uint_fast64_t catalog_retries;
    atomic_uint_fast64_t sort_key_conflicts;
    atomic_uint_fast64_t hot_async;
    atomic_uint_fast64_t busy_us;     /* time spent inside jobs */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void backoff(unsigned *delay_ms)
{
    struct timespec ts = {*delay_ms / 1000, (long)(*delay_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    *delay_ms = *delay_ms >= 5000 ? 10000 : *delay_ms * 2;
}

static uint64_t partition_hash(int64_t table_id, const char *key)
{
    return hash_bytes(key, strlen(key), (uint64_t)table_id);
}

/* The cache entry of (table, day), created empty if absent; NULL on OOM. cache_mu held. */
static partition_state *partition_state_get(persister *p, int64_t table_id, const char *key)
{
    uint64_t h = partition_hash(table_id, key) % PARTITION_BUCKETS;
    for (partition_state *s = p->partitions[h]; s; s = s->next)
        if (s->table_id == table_id && !strcmp(s->key, key)) return s;
    partition_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->table_id = table_id;
    snprintf(s->key, sizeof s->key, "%s", key);
    s->next = p->partitions[h];
    p->partitions[h] = s;
    return s;
}

/* --- sort key ------------------------------------------------------------------------------ */

static const char *column_name(const buffer_snapshot_info *info, uint32_t col)
{
    return info->table->columns[col].name;
}

/* qsort context for the first sort key of a partition: cardinality, then name. */
typedef struct tag_rank {
    uint32_t column;
    uint32_t cardinality;
    const char *name;
} tag_rank;

static int compare_tag_rank(const void *a, const void *b)
{
    const tag_rank *x = a, *y = b;
    if (x->cardinality != y->cardinality) return x->cardinality < y->cardinality ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int compare_tag_name(const void *a, const void *b)
{
    const tag_rank *x = a, *y = b;
    return strcmp(x->name, y->name);
}

int persist_sort_key(const char *stored_json, const buffer_snapshot_info *info,
                     uint32_t **data_key_out, size_t *data_key_count, char **updated_json_out)
{
    char **stored = NULL;
    size_t stored_count = 0;
    int rv = json_parse_string_array(stored_json ? stored_json : "[]", &stored, &stored_count);
    if (rv != 0) return rv;
    size_t n = info->tag_column_count;
    tag_rank *tags = calloc(n ? n : 1, sizeof *tags);
    uint32_t *key = calloc(n ? n : 1, sizeof *key);
    const char **names = calloc(stored_count + n + 1, sizeof *names);
    strbuf json = {0};
    rv = INGOT_E_NOMEM;
    if (!tags || !key || !names) goto done;
    for (size_t i = 0; i < n; i++)
        tags[i] = (tag_rank){info->tag_columns[i], info->tag_cardinality[i],
                             column_name(info, info->tag_columns[i])};
    size_t k = 0, name_count = 0;
    bool gained = false;
    if (stored_count == 0) {
        qsort(tags, n, sizeof *tags, compare_tag_rank);
        for (size_t i = 0; i < n; i++) key[k++] = tags[i].column, names[name_count++] = tags[i].name;
        gained = true;
    } else {
        /* the stored order for the tags the data has, then the data's new tags by name */
        for (size_t s = 0; s < stored_count; s++)
            for (size_t i = 0; i < n; i++)
                if (!strcmp(stored[s], tags[i].name)) key[k++] = tags[i].column;
        qsort(tags, n, sizeof *tags, compare_tag_name);
        for (size_t s = 0; s < stored_count; s++)
            if (strcmp(stored[s], "time") != 0) names[name_count++] = stored[s];
        for (size_t i = 0; i < n; i++) {
            bool known = false;
            for (size_t s = 0; s < stored_count && !known; s++) known = !strcmp(stored[s], tags[i].name);
            if (known) continue;
            key[k++] = tags[i].column;
            names[name_count++] = tags[i].name;
            gained = true;
        }
    }
    *updated_json_out = NULL;
    if (gained) {
        names[name_count++] = "time";
        json_put_string_array(&json, names, name_count);
        if (strbuf_failed(&json)) goto done;
        *updated_json_out = json.data;
        json.data = NULL;
    }
    *data_key_out = key;
    *data_key_count = k;
    key = NULL;
    rv = 0;
done:
    json_free_string_array(stored, stored_count);
    free(tags);
    free(key);
    free(names);
    strbuf_free(&json);
    return rv;
}

/* --- one job ------------------------------------------------------------------------------- */

typedef struct compaction_call {
    const buffer_snapshot *snap;
    const uint32_t *key;
    size_t key_count;
    query_batch *batch; /* out */
    int rv;             /* out */
} compaction_call;

static void compaction_run(void *arg)
{
    compaction_call *c = arg;
    c->rv = buffer_snapshot_sorted_batch(c->snap, c->key, c->key_count, &c->batch);
}

/* Catalog partition id and the sort key to write with; the catalog key updated by CAS if needed. */
static void resolve_sort_key(persist_job *job, int64_t *partition_id, uint32_t **key,
                             size_t *key_count)
{
    persister *p = job->p;
    const buffer_snapshot_info *info = &job->info;
    int64_t table_id = info->table->catalog_id;
    unsigned delay = 100;
    char *stored = NULL;
    for (;;) {
        if (!stored) {
            int rv = p->opts.cat->partition_get_or_create(p->opts.cat->self, table_id,
                                                          info->partition_key, partition_id, &stored);
            if (rv != 0) {
                log_warn("persist %s/%s/%s: catalog partition: %s; retrying", info->namespace_name,
                         info->table->name, info->partition_key, ingot_strerror(rv));
                atomic_fetch_add(&p->catalog_retries, 1);
                backoff(&delay);
                continue;
            }
        }
        char *updated = NULL;
        int rv = persist_sort_key(stored, info, key, key_count, &updated);
        if (rv == 0 && updated) {
            char *observed = NULL;
            rv = p->opts.cat->partition_cas_sort_key(p->opts.cat->self, *partition_id, stored,
                                                     updated, &observed);
            if (rv == INGOT_E_CONFLICT) {
                /* another writer changed the key: redo with what it stored */
                atomic_fetch_add(&p->sort_key_conflicts, 1);
                free(stored);
                stored = observed;
                free(updated);
                free(*key);
                *key = NULL;
                continue;
            }
            if (rv == 0) {
                free(stored);
                stored = updated;
                updated = NULL;
            }
        }
        free(updated);
        if (rv != 0) {
            free(*key);
            *key = NULL;
            log_warn("persist %s/%s/%s: sort key: %s; retrying", info->namespace_name,
                     info->table->name, info->partition_key, ingot_strerror(rv));
            atomic_fetch_add(&p->catalog_retries, 1);
            backoff(&delay);
            continue;
        }
        break;
    }
    pthread_mutex_lock(&p->cache_mu);
    partition_state *s = partition_state_get(p, table_id, info->partition_key);
    if (s) {
        s->catalog_id = *partition_id;
        free(s->sort_key_json);
        s->sort_key_json = stored;
        stored = NULL;
    }
    pthread_mutex_unlock(&p->cache_mu);
    free(stored);
}

/* The "ingot" key-value metadata of the file. */
static void file_metadata(strbuf *m, const buffer_snapshot_info *info, const char *const *sort_names,
                          size_t sort_count, int64_t min_time, int64_t max_time, size_t rows)
{
    char created[64];
    query_text_format_time(now_ns(), created);
    strbuf_puts(m, "{\"namespace\":");
    json_put_string(m, info->namespace_name, strlen(info->namespace_name));
    strbuf_puts(m, ",\"table\":");
    json_put_string(m, info->table->name, info->table->name_len);
    strbuf_printf(m, ",\"partition_key\":\"%s\",\"sort_key\":", info->partition_key);
    json_put_string_array(m, sort_names, sort_count);
    strbuf_printf(m, ",\"min_time\":%" PRId64 ",\"max_time\":%" PRId64 ",\"row_count\":%zu,\"created\":\"%s\"}",
                  min_time, max_time, rows, created);
}

/* The WAL sequences above the watermark that the snapshot holds, as "a,b,c". */
static void sequence_extras(strbuf *out, const buffer_snapshot_info *info)
{
    strbuf_append(out, "", 0);
    for (size_t i = 0; i < info->sequence_count; i++)
        if (info->sequences[i] > info->watermark)
            strbuf_printf(out, "%s%" PRIu64, out->len ? "," : "", info->sequences[i]);
}

static void job_run(persist_task *task)
{
    persist_job *job = (persist_job *)task;
    persister *p = job->p;
    const buffer_snapshot_info *info = &job->info;
    uint64_t t0 = monotonic_us();
    int64_t partition_id = 0;
    uint32_t *key = NULL;
    size_t key_count = 0;
    resolve_sort_key(job, &partition_id, &key, &key_count);

    unsigned delay = 100;
    compaction_call call = {.snap = job->snap, .key = key, .key_count = key_count};
    for (;;) {
        worker_pool_run(p->compaction, compaction_run, &call);
        if (call.rv == 0) break;
        log_warn("persist %s/%s/%s: compaction: %s; retrying", info->namespace_name,
                 info->table->name, info->partition_key, ingot_strerror(call.rv));
        backoff(&delay);
    }
    query_batch *batch = call.batch;

    int64_t min_time = INT64_MAX, max_time = INT64_MIN;
    for (size_t c = 0; c < batch->column_count; c++)
        if (batch->columns[c].type == COLUMN_TIME)
            for (size_t r = 0; r < batch->row_count; r++) {
                int64_t t = batch->columns[c].data.i64[r];
                if (t < min_time) min_time = t;
                if (t > max_time) max_time = t;
            }
    strbuf meta = {0}, file = {0}, extras = {0};
    char err[256], uuid[37], path[1024];
    /* the file's sort order: the data key, then time */
    const char **sort_names = NULL;
    for (delay = 100; !(sort_names = calloc(key_count + 1, sizeof *sort_names)); backoff(&delay)) {
    }
    for (size_t i = 0; i < key_count; i++) sort_names[i] = column_name(info, key[i]);
    sort_names[key_count] = "time";
    for (delay = 100;; backoff(&delay)) {
        strbuf_reset(&meta);
        strbuf_reset(&file);
        file_metadata(&meta, info, sort_names, key_count + 1, min_time, max_time, batch->row_count);
        parquet_write_options po = {.sorting_columns = sort_names,
                                    .sorting_column_count = key_count + 1,
                                    .metadata_json = meta.data};
        int rv = strbuf_failed(&meta) ? INGOT_E_NOMEM : parquet_write(batch, &po, &file, err, sizeof err);
        if (rv == 0 && strbuf_failed(&file)) rv = INGOT_E_NOMEM;
        if (rv == 0) break;
        log_error("persist %s/%s/%s: parquet encoding: %s; retrying", info->namespace_name,
                  info->table->name, info->partition_key, rv == INGOT_E_NOMEM ? "out of memory" : err);
        strbuf_free(&meta);
        strbuf_free(&file);
    }
    object_store_uuid_v4(uuid);
    if (object_store_parquet_path(info->namespace_name, info->table->name, info->partition_key, uuid,
                                  path, sizeof path) != 0)
        snprintf(path, sizeof path, "%" PRId64 "/%" PRId64 "/%s/%s.parquet",
                 schema_namespace_id(info->table->ns), info->table->catalog_id, info->partition_key,
                 uuid);
    for (delay = 100;; backoff(&delay)) {
        int rv = p->opts.store->put(p->opts.store->self, path, file.data, file.len);
        if (rv == 0) break;
        atomic_fetch_add(&p->put_retries, 1);
        log_warn("persist: put %s: %s; retrying", path, ingot_strerror(rv));
    }
    INGOT_CRASH_POINT("persist-after-put"); /* an object no catalog row names */
    sequence_extras(&extras, info);
    catalog_parquet_file row = {.namespace_id = schema_namespace_id(info->table->ns),
                                .table_id = info->table->catalog_id,
                                .partition_id = partition_id,
                                .min_time = min_time,
                                .max_time = max_time,
                                .row_count = (int64_t)batch->row_count,
                                .file_size_bytes = (int64_t)file.len,
                                .max_sequence_number = info->watermark,
                                .sequence_extras = extras.data ? extras.data : "",
                                .created_at = now_ns()};
    memcpy(row.object_store_id, uuid, sizeof row.object_store_id);
    for (delay = 100;; backoff(&delay)) {
        int rv = p->opts.cat->parquet_file_insert(p->opts.cat->self, &row, NULL);
        if (rv == 0) break;
        atomic_fetch_add(&p->catalog_retries, 1);
        log_warn("persist: catalog row for %s: %s; retrying", path, ingot_strerror(rv));
    }
    INGOT_CRASH_POINT("persist-after-catalog"); /* persisted, still in the buffer and the WAL */
    buffer_snapshot_persisted(job->snap);
    atomic_fetch_add(&p->files, 1);
    atomic_fetch_add(&p->file_bytes, file.len);
    atomic_fetch_add(&p->rows_in, info->row_count);
    atomic_fetch_add(&p->rows_out, batch->row_count);
    atomic_fetch_add(&p->busy_us, monotonic_us() - t0);
    log_debug("persisted %s: %zu rows (%zu before de-duplication), %zu bytes", path,
              batch->row_count, info->row_count, file.len);
    query_batch_free(batch);
    strbuf_free(&meta);
    strbuf_free(&file);
    strbuf_free(&extras);
    free(sort_names);
    free(key);
}

static void job_done(persist_task *task)
{
    persist_job *job = (persist_job *)task;
    persister *p = job->p;
    buffer_snapshot_release(job->snap);
    /* notify before the job stops counting, so a waiter sees the notification's effects */
    if (p->opts.on_persisted) p->opts.on_persisted(p->opts.arg);
    pthread_mutex_lock(&p->mu);
    if (job->group && --job->group->pending == 0) pthread_cond_broadcast(&job->group->cond);
    p->jobs_outstanding--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    free(job);
}

/* A job for snap with its routing decided from the cached sort key. NULL on OOM. */
static persist_job *job_new(persister *p, buffer_snapshot *snap, wait_group *group)
{
    persist_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->p = p;
    job->snap = snap;
    job->group = group;
    buffer_snapshot_get_info(snap, &job->info);
    job->task.run = job_run;
    job->task.done = job_done;
    job->task.partition_hash = partition_hash(job->info.table->catalog_id, job->info.partition_key);
    bool changes = true;
    pthread_mutex_lock(&p->cache_mu);
    partition_state *s = partition_state_get(p, job->info.table->catalog_id, job->info.partition_key);
    if (s && s->sort_key_json) {
        char **names;
        size_t count;
        if (json_parse_string_array(s->sort_key_json, &names, &count) == 0) {
            changes = count == 0;
            for (size_t i = 0; i < job->info.tag_column_count && !changes; i++) {
                bool found = false;
                for (size_t k = 0; k < count && !found; k++)
                    found = !strcmp(names[k], column_name(&job->info, job->info.tag_columns[i]));
                changes = !found;
            }
            json_free_string_array(names, count);
        }
    }
    pthread_mutex_unlock(&p->cache_mu);
    job->task.changes_sort_key = changes;
    pthread_mutex_lock(&p->mu);
    p->jobs_outstanding++;
    if (group) group->pending++;
    pthread_mutex_unlock(&p->mu);
    return job;
}

/* --- queueing ------------------------------------------------------------------------------ */

static int enqueue_job(persister *p, persist_job *job)
{
    int rv = persist_handle_enqueue(p->handle, &job->task);
    if (rv != 0) {
        /* the handle is closing: the snapshot stays in the buffer (and the WAL) */
        log_warn("persist: not queued (%s): %s/%s/%s stays buffered", ingot_strerror(rv),
                 job->info.namespace_name, job->info.table->name, job->info.partition_key);
        job->task.done(&job->task);
    }
    return rv;
}

int persister_enqueue(persister *p, buffer_snapshot *snap)
{
    persist_job *job = job_new(p, snap, NULL);
    if (!job) {
        buffer_snapshot_release(snap);
        return INGOT_E_NOMEM;
    }
    return enqueue_job(p, job);
}

/* Hand job to the dispatcher thread. */
static void push_async(persister *p, persist_job *job)
{
    pthread_mutex_lock(&p->mu);
    if (p->async_tail) p->async_tail->next_async = job;
    else p->async_head = job;
    p->async_tail = job;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

void persister_enqueue_async(persister *p, buffer_snapshot *snap)
{
    persist_job *job = job_new(p, snap, NULL);
    if (!job) {
        log_error("persist: out of memory queueing a snapshot; it stays buffered");
        buffer_snapshot_release(snap);
        return;
    }
    atomic_fetch_add(&p->hot_async, 1);
    push_async(p, job);
}

static void *dispatcher_main(void *arg)
{
    persister *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->async_head && !p->stopping) pthread_cond_wait(&p->changed, &p->mu);
        persist_job *job = p->async_head;
        if (!job) break; /* stopping and nothing left */
        p->async_head = job->next_async;
        if (!p->async_head) p->async_tail = NULL;
        pthread_mutex_unlock(&p->mu);
        enqueue_job(p, job); /* blocks while the queue is full */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

typedef struct snapshot_all_ctx {
    persister *p;
    wait_group *group;
    int rv;
} snapshot_all_ctx;

static void snapshot_to_group(void *arg, buffer_snapshot *snap)
{
    snapshot_all_ctx *c = arg;
    persist_job *job = job_new(c->p, snap, c->group);
    if (!job) {
        buffer_snapshot_release(snap);
        c->rv = INGOT_E_NOMEM;
        return;
    }
    if (!c->group) {
        push_async(c->p, job);
        return;
    }
    int rv = enqueue_job(c->p, job);
    if (rv != 0) c->rv = rv;
}

int persister_snapshot_all_async(persister *p, buffer_tree *tree)
{
    snapshot_all_ctx c = {.p = p};
    int n = buffer_tree_snapshot_all(tree, snapshot_to_group, &c);
    return n < 0 ? n : c.rv;
}

int persister_persist_all(persister *p, buffer_tree *tree)
{
    wait_group g = {0};
    pthread_cond_init(&g.cond, NULL);
    snapshot_all_ctx c = {.p = p, .group = &g};
    int n = buffer_tree_snapshot_all(tree, snapshot_to_group, &c);
    pthread_mutex_lock(&p->mu);
    while (g.pending > 0) pthread_cond_wait(&g.cond, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&g.cond);
    return n < 0 ? n : c.rv;
}

void persister_wait_idle(persister *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->jobs_outstanding > 0) pthread_cond_wait(&p->changed, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

bool persister_saturated(persister *p)
{
    return persist_handle_saturated(p->handle);
}

/* --- life cycle ---------------------------------------------------------------------------- */

persister *persister_new(const persister_options *opts)
{
    persister *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->opts = *opts;
    pthread_mutex_init(&p->cache_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->handle = persist_handle_new(opts->workers, opts->queue_depth);
    p->compaction = worker_pool_new(opts->compaction_threads ? opts->compaction_threads : 1);
    if (!p->handle || !p->compaction || pthread_create(&p->dispatcher, NULL, dispatcher_main, p) != 0) {
        if (p->handle) persist_handle_free(p->handle);
        if (p->compaction) worker_pool_free(p->compaction);
        free(p);
        return NULL;
    }
    return p;
}

void persister_free(persister *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->dispatcher, NULL);
    persist_handle_free(p->handle);
    worker_pool_free(p->compaction);
    for (size_t b = 0; b < PARTITION_BUCKETS; b++)
        for (partition_state *s = p->partitions[b], *next; s; s = next) {
            next = s->next;
            free(s->sort_key_json);
            free(s);
        }
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->cache_mu);
    free(p);
}

void persister_metrics(persister *p, strbuf *out)
{
    persist_handle_stats s;
    persist_handle_get_stats(p->handle, &s);
    pthread_mutex_lock(&p->mu);
    size_t outstanding = p->jobs_outstanding;
    pthread_mutex_unlock(&p->mu);
    strbuf_printf(out,
                  "# HELP ingot_persist_files_total Parquet files written.\n"
                  "# TYPE ingot_persist_files_total counter\n"
                  "ingot_persist_files_total %" PRIuFAST64 "\n"
                  "# HELP ingot_persist_file_bytes_total Bytes of Parquet written.\n"
                  "# TYPE ingot_persist_file_bytes_total counter\n"
                  "ingot_persist_file_bytes_total %" PRIuFAST64 "\n"
                  "# HELP ingot_persist_rows_total Rows persisted, before and after de-duplication.\n"
                  "# TYPE ingot_persist_rows_total counter\n"
                  "ingot_persist_rows_total{stage=\"snapshot\"} %" PRIuFAST64 "\n"
                  "ingot_persist_rows_total{stage=\"parquet\"} %" PRIuFAST64 "\n"
                  "# HELP ingot_persist_retries_total Retried object store puts and catalog calls.\n"
                  "# TYPE ingot_persist_retries_total counter\n"
                  "ingot_persist_retries_total{op=\"put\"} %" PRIuFAST64 "\n"
                  "ingot_persist_retries_total{op=\"catalog\"} %" PRIuFAST64 "\n"
                  "# HELP ingot_persist_sort_key_conflicts_total Sort key CAS conflicts (job redone).\n"
                  "# TYPE ingot_persist_sort_key_conflicts_total counter\n"
                  "ingot_persist_sort_key_conflicts_total %" PRIuFAST64 "\n"
                  "# HELP ingot_persist_busy_seconds_total Time spent inside persist jobs.\n"
                  "# TYPE ingot_persist_busy_seconds_total counter\n"
                  "ingot_persist_busy_seconds_total %.6f\n",
                  atomic_load(&p->files), atomic_load(&p->file_bytes), atomic_load(&p->rows_in),
                  atomic_load(&p->rows_out), atomic_load(&p->put_retries),
                  atomic_load(&p->catalog_retries), atomic_load(&p->sort_key_conflicts),
                  (double)atomic_load(&p->busy_us) / 1e6);
    strbuf_printf(out,
                  "# HELP ingot_persist_jobs Persist jobs by state.\n"
                  "# TYPE ingot_persist_jobs gauge\n"
                  "ingot_persist_jobs{state=\"outstanding\"} %zu\n"
                  "ingot_persist_jobs{state=\"holding_permit\"} %u\n"
                  "ingot_persist_jobs{state=\"running\"} %u\n"
                  "ingot_persist_jobs{state=\"waiting_to_enqueue\"} %u\n"
                  "# HELP ingot_persist_queue_depth Permits of the persist queue.\n"
                  "# TYPE ingot_persist_queue_depth gauge\n"
                  "ingot_persist_queue_depth %u\n"
                  "# HELP ingot_persist_workers Persist worker threads.\n"
                  "# TYPE ingot_persist_workers gauge\n"
                  "ingot_persist_workers %u\n"
                  "# HELP ingot_persist_saturated 1 while the persist queue is full and writes are refused.\n"
                  "# TYPE ingot_persist_saturated gauge\n"
                  "ingot_persist_saturated %d\n"
                  "# HELP ingot_persist_saturations_total Times the persist queue filled up.\n"
                  "# TYPE ingot_persist_saturations_total counter\n"
                  "ingot_persist_saturations_total %" PRIu64 "\n"
                  "# HELP ingot_persist_hot_partition_enqueues_total Hot partitions queued for persistence.\n"
                  "# TYPE ingot_persist_hot_partition_enqueues_total counter\n"
                  "ingot_persist_hot_partition_enqueues_total %" PRIuFAST64 "\n",
                  outstanding, s.permits_in_use, s.running, s.waiting_to_enqueue, s.queue_depth,
                  s.workers, s.saturated ? 1 : 0, s.saturations, atomic_load(&p->hot_async));
}
