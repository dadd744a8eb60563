/*
 * persist.c: the persist jobs (see persist.h) on top of the PersistHandle.
 *
 * A job owns one buffer snapshot and is a small state machine; run() does the steps in order:
 *   1. RESOLVE: catalog partition_get_or_create -> catalog partition id and stored sort key; the
 *      key to write with is computed from it and the snapshot's tags (persist_sort_key); if the
 *      catalog key must gain columns, compare-and-swap it, and on a conflict start over at once
 *      with the key another writer stored (keys only gain columns, so this converges);
 *   2. COMPACT: sort + de-duplicate on the compaction pool (buffer_snapshot_sort: the order and
 *      the winning rows, not yet the values);
 *   3. ENCODE: the Parquet bytes, kept by the job, written a column at a time (each column's
 *      sorted values are built, encoded and freed before the next: the sorted copy of the
 *      snapshot is never whole in memory); the object's path
 *      <ns>/<table>/<day>/<uuid>.parquet is chosen here, once per job;
 *   4. PUT: the bytes to the object store;
 *   5. TURN: wait until every earlier snapshot of the partition is recorded (ORDER, below);
 *   6. RECORD: the parquet_file row: min/max time, rows, size, and the WAL coverage of the file
 *      (the snapshot's watermark and the sequences above it that it holds); then the turn passes
 *      to the partition's next job;
 *   7. detach the snapshot from the buffer; the handle releases the permit; done() notifies.
 * Jobs whose partition key is unknown or must gain columns are routed to the worker that owns
 * the partition (hash), so sort-key changes of one partition never race inside this process.
 *
 * RETRIES. A step that fails (object store, catalog, out of memory) is retried, forever: the
 * data must get out, and a stalled store or catalog makes the queue fill up, which pauses ingest
 * instead of growing memory. The job does not sleep on its worker: run() returns
 * PERSIST_RUN_RETRY with the job's back-off (100 ms doubling to 10 s, kept per job, back to
 * 100 ms whenever a step succeeds), the handle parks the job, which keeps its permit (so a job
 * that keeps failing still counts against --persist-queue-depth, ARCHITECTURE §6), and the worker
 * takes the next ready job: one partition whose puts fail holds back no other partition. The job
 * resumes at the step that failed, with everything the steps before it produced: a retried put
 * sends the same Parquet bytes (not re-encoded) to the same path, a retried catalog row names the
 * object already put, and an object that was put is never put again. Every failed put counts in
 * put_retries and every failed catalog call in catalog_retries (/metrics
 * ingot_persist_retries_total{op="put"|"catalog"}); busy_us counts time inside run() only.
 *
 * ORDER. The snapshots of one partition are recorded in the catalog in the order they were handed
 * to the persister. This matters for crashes: replay skips every op of a partition at or below
 * the largest watermark its catalog rows hold, so a later snapshot recorded before an earlier one
 * would, after a crash in between, make replay skip the earlier one's ops (rows lost). Each
 * partition_state keeps a line: its jobs in handover order (push_async). A job may record only at
 * the head of its line (TURN); otherwise it returns PERSIST_RUN_WAIT (parked, keeping its permit)
 * and the job ahead of it wakes it (persist_handle_wake) once recorded. Sort, encoding and put
 * still run in parallel for snapshots of one partition, and a failing job holds back only the
 * later snapshots of its own partition.
 * No deadlock: every job, persister_enqueue()'s and persist_all's included, is handed to the
 * handle by the one dispatcher thread in handover order, so a job parked for its turn has every
 * job ahead of it in its line already holding a permit (or done); the head of a line never waits
 * for a turn, and its retries end once the store or catalog is back.
 * Handover order is the order the snapshots of a partition were taken, and none is skipped: the
 * buffer holds the partition's handover mutex from the take until our callback returned (which
 * pushes the job onto the line), so two threads never interleave one partition's snapshots; and
 * when a job cannot be made (out of memory) the callback refuses the snapshot instead of dropping
 * it: the buffer keeps it attached and unhanded and offers it again, before any later snapshot
 * of that partition, at the partition's next handover (buffer.h, Handover), so persist_all at
 * shutdown gets every snapshot still unhanded. Each refusal is logged (warn). A job the handle
 * refuses (closing) leaves its line; since the dispatcher hands jobs over in order, every later
 * job of the line is refused too.
 *
 * LOCKING. cache_mu guards the partition cache (catalog id + sort key per table/day: the
 * partition_state entries, created on first use, freed with the persister). mu guards the
 * dispatcher's list, the wait groups, the job count and every line (line_head/line_tail of a
 * partition_state, line_next and waiting_turn of a job). Both are leaves: the buffer, store,
 * catalog and handle are called without them (persist_handle_wake after mu is released: the job
 * to wake waits for exactly that wake, so it cannot go away in between). The state a job carries
 * from step to step is touched only by the worker running it; the handle's mutex orders runs of
 * one job on different workers.
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
#include "util/clock.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/log.h"
#include "util/sysio.h"

#define PERSIST_RETRY_FIRST_MS 100u
#define PERSIST_RETRY_MAX_MS 10000u

typedef struct persist_job persist_job;

/* Cached catalog facts of one partition (table id + day), and its line of jobs. */
typedef struct partition_state {
    int64_t table_id;             /* immutable */
    char key[11];                 /* immutable */
    int64_t catalog_id;           /* cache_mu: 0 until the catalog was asked */
    char *sort_key_json;          /* cache_mu: the catalog's key as last seen; NULL until known */
    persist_job *line_head;       /* mu: jobs not yet recorded, in handover order */
    persist_job *line_tail;       /* mu */
    struct partition_state *next; /* cache_mu */
} partition_state;

#define PARTITION_BUCKETS 4096

/* Jobs started together that someone waits for (persister_persist_all). */
typedef struct wait_group {
    size_t pending; /* mu */
    int rv;         /* mu: the first refusal of a job by the handle */
    pthread_cond_t cond;
} wait_group;

/* persister_enqueue() waits for the dispatcher to hand its job over. */
typedef struct dispatch_wait {
    bool done; /* mu */
    int rv;    /* mu */
} dispatch_wait;

typedef enum job_step {
    JOB_RESOLVE,
    JOB_COMPACT,
    JOB_ENCODE,
    JOB_PUT,
    JOB_TURN,
    JOB_RECORD,
    JOB_FINISH,
} job_step;

/* A step's result besides 0 (next step) and a negative error (retry after the back-off). */
#define JOB_NOT_MY_TURN 1

struct persist_job {
    persist_task task; /* first: the handle sees the job as its task */
    persister *p;
    buffer_snapshot *snap;
    buffer_snapshot_info info;
    wait_group *group;       /* NULL if nobody waits */
    partition_state *part;   /* its partition's cache entry and line */
    dispatch_wait *dispatch; /* mu: NULL unless persister_enqueue() waits for the handover */
    persist_job *next_async; /* mu */
    persist_job *line_next;  /* mu */
    bool waiting_turn;       /* mu: parked (WAIT) until the job ahead in the line recorded */
    int refused;             /* the handle's refusal (closing), or 0 */
    /* carried from step to step; touched only by the worker running the job */
    job_step step;
    unsigned delay_ms; /* the next back-off */
    int64_t partition_id;
    char *stored_json; /* RESOLVE: the catalog's key as last seen; NULL: ask again */
    uint32_t *key;     /* RESOLVE -> ENCODE: the data's sort key (tag column indexes) */
    size_t key_count;
    buffer_sorted_rows *sorted; /* COMPACT -> ENCODE */
    int64_t min_time, max_time;
    size_t rows_out; /* rows after de-duplication */
    strbuf file;     /* ENCODE -> the end: the Parquet bytes */
    char uuid[37];   /* ENCODE: the object's id ... */
    char path[1024]; /* ... and path */
};

struct persister {
    persister_options opts;
    persist_handle *handle;
    worker_pool *compaction;

    pthread_mutex_t cache_mu;
    partition_state *partitions[PARTITION_BUCKETS]; /* cache_mu */

    pthread_mutex_t mu;
    pthread_cond_t changed;  /* mu: the async list, a handover or the job counts changed */
    persist_job *async_head; /* mu: jobs waiting for the dispatcher */
    persist_job *async_tail; /* mu */
    size_t jobs_outstanding; /* mu: handed over and not yet done */
    bool stopping;           /* mu */
    pthread_t dispatcher;

    /* counters (atomic) */
    atomic_uint_fast64_t files;
    atomic_uint_fast64_t file_bytes;
    atomic_uint_fast64_t rows_in;  /* rows of the snapshots, before de-duplication */
    atomic_uint_fast64_t rows_out; /* rows written to Parquet */
    atomic_uint_fast64_t put_retries;
    atomic_uint_fast64_t catalog_retries;
    atomic_uint_fast64_t sort_key_conflicts;
    atomic_uint_fast64_t hot_async;
    atomic_uint_fast64_t busy_us; /* time spent inside run() of jobs */
};

static unsigned backoff_next(unsigned delay_ms)
{
    return delay_ms >= PERSIST_RETRY_MAX_MS / 2 ? PERSIST_RETRY_MAX_MS : delay_ms * 2;
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

/* The "ingot" key-value metadata of the file. */
static void file_metadata(strbuf *m, const buffer_snapshot_info *info, const char *const *sort_names,
                          size_t sort_count, int64_t min_time, int64_t max_time, size_t rows)
{
    char created[64];
    query_text_format_time(clock_ns(CLOCK_REALTIME), created);
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

typedef struct compaction_call {
    const buffer_snapshot *snap;
    const uint32_t *key;
    size_t key_count;
    buffer_sorted_rows *sorted; /* out */
    int rv;             /* out */
} compaction_call;

static void compaction_run(void *arg)
{
    compaction_call *c = arg;
    c->rv = buffer_snapshot_sort(c->snap, c->key, c->key_count, &c->sorted);
}

/*
 * Take job off its partition's line (normally its head, after it recorded; anywhere if the
 * handle refused it) and wake the new head if it waits for its turn.
 */
static void job_leave_line(persist_job *job)
{
    persister *p = job->p;
    partition_state *s = job->part;
    persist_job *wake = NULL;
    pthread_mutex_lock(&p->mu);
    persist_job *prev = NULL;
    for (persist_job *j = s->line_head; j; prev = j, j = j->line_next) {
        if (j != job) continue;
        if (prev)
            prev->line_next = j->line_next;
        else
            s->line_head = j->line_next;
        if (s->line_tail == j) s->line_tail = prev;
        j->line_next = NULL;
        if (!prev && s->line_head && s->line_head->waiting_turn) {
            wake = s->line_head;
            wake->waiting_turn = false;
        }
        break;
    }
    pthread_mutex_unlock(&p->mu);
    if (wake) persist_handle_wake(p->handle, &wake->task);
}

/* RESOLVE: catalog partition id and the data's sort key; the catalog key CAS-updated if needed. */
static int job_resolve(persist_job *job)
{
    persister *p = job->p;
    const buffer_snapshot_info *info = &job->info;
    int64_t table_id = info->table->catalog_id;
    for (;;) {
        if (!job->stored_json) {
            int rv = p->opts.cat->partition_get_or_create(p->opts.cat->self, table_id,
                                                          info->partition_key, &job->partition_id,
                                                          &job->stored_json);
            if (rv != 0) {
                job->stored_json = NULL;
                log_warn("persist %s/%s/%s: catalog partition: %s; retrying", info->namespace_name,
                         info->table->name, info->partition_key, ingot_strerror(rv));
                atomic_fetch_add(&p->catalog_retries, 1);
                return rv;
            }
        }
        char *updated = NULL;
        free(job->key);
        job->key = NULL;
        int rv = persist_sort_key(job->stored_json, info, &job->key, &job->key_count, &updated);
        if (rv == 0 && updated) {
            char *observed = NULL;
            rv = p->opts.cat->partition_cas_sort_key(p->opts.cat->self, job->partition_id,
                                                     job->stored_json, updated, &observed);
            if (rv == INGOT_E_CONFLICT) {
                /* another writer changed the key: redo with what it stored */
                atomic_fetch_add(&p->sort_key_conflicts, 1);
                free(job->stored_json);
                job->stored_json = observed;
                free(updated);
                continue;
            }
            if (rv == 0) {
                free(job->stored_json);
                job->stored_json = updated;
                updated = NULL;
            }
        }
        free(updated);
        if (rv != 0) {
            free(job->key);
            job->key = NULL;
            log_warn("persist %s/%s/%s: sort key: %s; retrying", info->namespace_name,
                     info->table->name, info->partition_key, ingot_strerror(rv));
            atomic_fetch_add(&p->catalog_retries, 1);
            return rv;
        }
        break;
    }
    /* the cache takes the catalog's key: later jobs of the partition route without a change */
    pthread_mutex_lock(&p->cache_mu);
    job->part->catalog_id = job->partition_id;
    free(job->part->sort_key_json);
    job->part->sort_key_json = job->stored_json;
    job->stored_json = NULL;
    pthread_mutex_unlock(&p->cache_mu);
    return 0;
}

/* COMPACT: the snapshot's rows sorted by the key and de-duplicated, and their time range. */
static int job_compact(persist_job *job)
{
    const buffer_snapshot_info *info = &job->info;
    compaction_call call = {.snap = job->snap, .key = job->key, .key_count = job->key_count};
    worker_pool_run(job->p->compaction, compaction_run, &call);
    if (call.rv != 0) {
        log_warn("persist %s/%s/%s: compaction: %s; retrying", info->namespace_name,
                 info->table->name, info->partition_key, ingot_strerror(call.rv));
        return call.rv;
    }
    job->sorted = call.sorted;
    job->rows_out = buffer_sorted_rows_count(call.sorted);
    /* de-duplication merges rows of equal key and time only: the time range is the snapshot's */
    job->min_time = info->min_time_ns;
    job->max_time = info->max_time_ns;
    return 0;
}

/* The sorted rows as the Parquet writer's column source: each column built on demand. */
static int sorted_column_load(void *self, size_t ci, query_column *out)
{
    return buffer_sorted_rows_column(self, ci, out);
}

static void sorted_column_unload(void *self, query_column *col)
{
    (void)self;
    query_column_free(col);
}

/* ENCODE: the Parquet bytes into job->file, the sorted rows freed, the object's path chosen. */
static int job_encode(persist_job *job)
{
    const buffer_snapshot_info *info = &job->info;
    char err[256] = "out of memory";
    strbuf meta = {0};
    int rv = INGOT_E_NOMEM;
    /* the file's sort order: the data key, then time */
    const char **sort_names = calloc(job->key_count + 1, sizeof *sort_names);
    if (!sort_names) goto fail;
    for (size_t i = 0; i < job->key_count; i++)
        sort_names[i] = column_name(info, job->key[i]);
    sort_names[job->key_count] = "time";
    file_metadata(&meta, info, sort_names, job->key_count + 1, job->min_time, job->max_time,
                  job->rows_out);
    if (strbuf_failed(&meta)) goto fail;
    parquet_write_options po = {.sorting_columns = sort_names,
                                .sorting_column_count = job->key_count + 1,
                                .metadata_json = meta.data};
    strbuf_free(&job->file);
    parquet_column_source src = {.self = job->sorted,
                                 .row_count = buffer_sorted_rows_count(job->sorted),
                                 .column_count = buffer_sorted_rows_columns(job->sorted),
                                 .names = buffer_sorted_rows_names(job->sorted),
                                 .types = buffer_sorted_rows_types(job->sorted),
                                 .load = sorted_column_load,
                                 .unload = sorted_column_unload};
    rv = parquet_write_source(&src, &po, &job->file, err, sizeof err);
    if (rv == 0 && strbuf_failed(&job->file)) {
        rv = INGOT_E_NOMEM;
        snprintf(err, sizeof err, "out of memory");
    }
    if (rv != 0) goto fail;
    strbuf_free(&meta);
    free(sort_names);
    buffer_sorted_rows_free(job->sorted);
    job->sorted = NULL;
    object_store_uuid_v4(job->uuid);
    if (object_store_parquet_path(info->namespace_name, info->table->name, info->partition_key,
                                  job->uuid, job->path, sizeof job->path) != 0)
        snprintf(job->path, sizeof job->path, "%" PRId64 "/%" PRId64 "/%s/%s.parquet",
                 schema_namespace_id(info->table->ns), info->table->catalog_id, info->partition_key,
                 job->uuid);
    return 0;
fail:
    log_error("persist %s/%s/%s: parquet encoding: %s; retrying", info->namespace_name,
              info->table->name, info->partition_key, err);
    strbuf_free(&job->file);
    strbuf_free(&meta);
    free(sort_names);
    return rv;
}

/* PUT: the Parquet bytes to the object store (the same bytes and path on every retry). */
static int job_put(persist_job *job)
{
    persister *p = job->p;
    int rv = p->opts.store->put(p->opts.store->self, job->path, job->file.data, job->file.len);
    if (rv != 0) {
        atomic_fetch_add(&p->put_retries, 1);
        log_warn("persist: put %s: %s; retrying", job->path, ingot_strerror(rv));
        return rv;
    }
    INGOT_CRASH_POINT("persist-after-put"); /* an object no catalog row names */
    return 0;
}

/* TURN: 0 if job heads its partition's line, else JOB_NOT_MY_TURN (the head will wake it). */
static int job_turn(persist_job *job)
{
    persister *p = job->p;
    pthread_mutex_lock(&p->mu);
    bool mine = job->part->line_head == job;
    job->waiting_turn = !mine;
    pthread_mutex_unlock(&p->mu);
    return mine ? 0 : JOB_NOT_MY_TURN;
}

/* RECORD: the parquet_file row; then the turn passes to the partition's next job. */
static int job_record(persist_job *job)
{
    persister *p = job->p;
    const buffer_snapshot_info *info = &job->info;
    strbuf extras = {0};
    sequence_extras(&extras, info);
    if (strbuf_failed(&extras)) {
        strbuf_free(&extras);
        log_warn("persist: catalog row for %s: out of memory; retrying", job->path);
        return INGOT_E_NOMEM;
    }
    catalog_parquet_file row = {.namespace_id = schema_namespace_id(info->table->ns),
                                .table_id = info->table->catalog_id,
                                .partition_id = job->partition_id,
                                .min_time = job->min_time,
                                .max_time = job->max_time,
                                .row_count = (int64_t)job->rows_out,
                                .file_size_bytes = (int64_t)job->file.len,
                                .max_sequence_number = info->watermark,
                                .sequence_extras = extras.data ? extras.data : "",
                                .wal_id = p->opts.wal_id,
                                .created_at = clock_ns(CLOCK_REALTIME)};
    memcpy(row.object_store_id, job->uuid, sizeof row.object_store_id);
    int rv = p->opts.cat->parquet_file_insert(p->opts.cat->self, &row, NULL);
    strbuf_free(&extras);
    if (rv != 0) {
        atomic_fetch_add(&p->catalog_retries, 1);
        log_warn("persist: catalog row for %s: %s; retrying", job->path, ingot_strerror(rv));
        return rv;
    }
    job_leave_line(job);
    INGOT_CRASH_POINT("persist-after-catalog"); /* persisted, still in the buffer and the WAL */
    return 0;
}

/* The last step: the rows are in Parquet and the catalog; they leave the buffer. */
static void job_finish(persist_job *job)
{
    persister *p = job->p;
    buffer_snapshot_persisted(job->snap);
    atomic_fetch_add(&p->files, 1);
    atomic_fetch_add(&p->file_bytes, job->file.len);
    atomic_fetch_add(&p->rows_in, job->info.row_count);
    atomic_fetch_add(&p->rows_out, job->rows_out);
    log_debug("persisted %s: %zu rows (%zu before de-duplication), %zu bytes", job->path,
              job->rows_out, job->info.row_count, job->file.len);
}

static int job_step_run(persist_job *job)
{
    switch (job->step) {
    case JOB_RESOLVE:
        return job_resolve(job);
    case JOB_COMPACT:
        return job_compact(job);
    case JOB_ENCODE:
        return job_encode(job);
    case JOB_PUT:
        return job_put(job);
    case JOB_TURN:
        return job_turn(job);
    case JOB_RECORD:
        return job_record(job);
    case JOB_FINISH:
        break;
    }
    return 0;
}

/* The handle's run(): steps from where the job left off until it finishes, fails or must wait. */
static persist_run_result job_run(persist_task *task)
{
    persist_job *job = (persist_job *)task;
    uint64_t t0 = (uint64_t)(clock_ns(CLOCK_MONOTONIC) / 1000);
    persist_run_result result = PERSIST_RUN_DONE;
    while (job->step != JOB_FINISH) {
        int rv = job_step_run(job);
        if (rv == JOB_NOT_MY_TURN) {
            result = PERSIST_RUN_WAIT;
            break;
        }
        if (rv != 0) {
            task->retry_delay_ms = job->delay_ms;
            job->delay_ms = backoff_next(job->delay_ms);
            result = PERSIST_RUN_RETRY;
            break;
        }
        job->step++;
        job->delay_ms = PERSIST_RETRY_FIRST_MS;
    }
    if (job->step == JOB_FINISH) job_finish(job);
    atomic_fetch_add(&job->p->busy_us, (uint64_t)(clock_ns(CLOCK_MONOTONIC) / 1000) - t0);
    return result;
}

static void job_free(persist_job *job)
{
    free(job->stored_json);
    free(job->key);
    buffer_sorted_rows_free(job->sorted);
    strbuf_free(&job->file);
    free(job);
}

static void job_done(persist_task *task)
{
    persist_job *job = (persist_job *)task;
    persister *p = job->p;
    buffer_snapshot_release(job->snap);
    /* notify before the job stops counting, so a waiter sees the notification's effects */
    if (p->opts.on_persisted) p->opts.on_persisted(p->opts.arg);
    pthread_mutex_lock(&p->mu);
    if (job->group) {
        if (job->refused && job->group->rv == 0) job->group->rv = job->refused;
        if (--job->group->pending == 0) pthread_cond_broadcast(&job->group->cond);
    }
    p->jobs_outstanding--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    job_free(job);
}

/* A job for snap with its routing decided from the cached sort key. NULL on OOM. */
static persist_job *job_new(persister *p, buffer_snapshot *snap, wait_group *group)
{
    persist_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->p = p;
    job->snap = snap;
    job->group = group;
    job->step = JOB_RESOLVE;
    job->delay_ms = PERSIST_RETRY_FIRST_MS;
    buffer_snapshot_get_info(snap, &job->info);
    job->task.run = job_run;
    job->task.done = job_done;
    job->task.partition_hash = partition_hash(job->info.table->catalog_id, job->info.partition_key);
    bool changes = true;
    pthread_mutex_lock(&p->cache_mu);
    partition_state *s =
        partition_state_get(p, job->info.table->catalog_id, job->info.partition_key);
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
    if (!s) {
        free(job);
        return NULL;
    }
    job->part = s;
    job->task.changes_sort_key = changes;
    pthread_mutex_lock(&p->mu);
    p->jobs_outstanding++;
    if (group) group->pending++;
    pthread_mutex_unlock(&p->mu);
    return job;
}

/* --- queueing ------------------------------------------------------------------------------ */

/* On the dispatcher thread: hand job to the handle, blocking while the queue is full. */
static int enqueue_job(persister *p, persist_job *job)
{
    int rv = persist_handle_enqueue(p->handle, &job->task);
    if (rv != 0) {
        /* the handle is closing: the snapshot stays in the buffer (and the WAL) */
        log_warn("persist: not queued (%s): %s/%s/%s stays buffered", ingot_strerror(rv),
                 job->info.namespace_name, job->info.table->name, job->info.partition_key);
        job->refused = rv;
        job_leave_line(job);
        job->task.done(&job->task);
    }
    return rv;
}

/*
 * Hand job over: it joins its partition's line and the dispatcher's list, in one step under mu,
 * so the line order is the order the dispatcher enqueues in (ORDER in the essay).
 */
static void push_async(persister *p, persist_job *job, dispatch_wait *wait)
{
    pthread_mutex_lock(&p->mu);
    job->dispatch = wait;
    if (p->async_tail)
        p->async_tail->next_async = job;
    else
        p->async_head = job;
    p->async_tail = job;
    partition_state *s = job->part;
    if (s->line_tail)
        s->line_tail->line_next = job;
    else
        s->line_head = job;
    s->line_tail = job;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

/* job_new failed for snap: the caller refuses it (the buffer offers it again later). */
static int refuse_snapshot(buffer_snapshot *snap)
{
    buffer_snapshot_info info;
    buffer_snapshot_get_info(snap, &info);
    log_warn("persist: out of memory queueing a snapshot of %s/%s/%s (sequences %" PRIu64
             "..%" PRIu64 "); it stays buffered and is offered again at the partition's next "
             "snapshot",
             info.namespace_name, info.table->name, info.partition_key, info.min_sequence,
             info.max_sequence);
    return INGOT_E_NOMEM;
}

int persister_enqueue(persister *p, buffer_snapshot *snap)
{
    persist_job *job = job_new(p, snap, NULL);
    if (!job) return refuse_snapshot(snap);
    dispatch_wait wait = {0};
    push_async(p, job, &wait);
    pthread_mutex_lock(&p->mu);
    while (!wait.done)
        pthread_cond_wait(&p->changed, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return wait.rv;
}

int persister_enqueue_async(persister *p, buffer_snapshot *snap)
{
    persist_job *job = job_new(p, snap, NULL);
    if (!job) return refuse_snapshot(snap);
    atomic_fetch_add(&p->hot_async, 1);
    push_async(p, job, NULL);
    return 0;
}

static void *dispatcher_main(void *arg)
{
    persister *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->async_head && !p->stopping)
            pthread_cond_wait(&p->changed, &p->mu);
        persist_job *job = p->async_head;
        if (!job) break; /* stopping and nothing left */
        p->async_head = job->next_async;
        if (!p->async_head) p->async_tail = NULL;
        dispatch_wait *wait = job->dispatch; /* job may be gone once enqueued */
        pthread_mutex_unlock(&p->mu);
        int rv = enqueue_job(p, job); /* blocks while the queue is full */
        pthread_mutex_lock(&p->mu);
        if (wait) {
            wait->done = true;
            wait->rv = rv;
            pthread_cond_broadcast(&p->changed);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

typedef struct snapshot_all_ctx {
    persister *p;
    wait_group *group;
    int rv;
} snapshot_all_ctx;

static int snapshot_to_group(void *arg, buffer_snapshot *snap)
{
    snapshot_all_ctx *c = arg;
    persist_job *job = job_new(c->p, snap, c->group);
    if (!job) return c->rv = refuse_snapshot(snap);
    push_async(c->p, job, NULL);
    return 0;
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
    while (g.pending > 0)
        pthread_cond_wait(&g.cond, &p->mu);
    int refused = g.rv;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&g.cond);
    if (n < 0) return n;
    return c.rv ? c.rv : refused;
}

void persister_wait_idle(persister *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->jobs_outstanding > 0)
        pthread_cond_wait(&p->changed, &p->mu);
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
                  "# HELP ingot_persist_busy_seconds_total Time spent running persist jobs (not back-off).\n"
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
                  "ingot_persist_jobs{state=\"parked\"} %u\n"
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
                  outstanding, s.permits_in_use, s.running, s.parked, s.waiting_to_enqueue,
                  s.queue_depth, s.workers, s.saturated ? 1 : 0, s.saturations,
                  atomic_load(&p->hot_async));
}
