/*
 * ingester_replay.c: start-up replay of the WAL (ARCHITECTURE §3, §9).
 *
 * For each segment in id order: every entry is decoded, parsed and resolved against the catalog
 * again, and applied straight to the buffer sink (not the WalSink: nothing is logged twice) with
 * its logged sequence number; then everything buffered is persisted, and the segment deleted.
 * Replay, persist, delete, repeat: a crash loop still makes progress (IOx #6461).
 * The crash point "replay-before-segment-delete" (util/sysio.h) ends the process between the
 * persist and the delete of a replayed segment: the next start must skip what is persisted.
 *
 * Idempotence: the catalog records, per partition, what its Parquet files cover of the WAL (the
 * largest watermark and the sequences above it), and of which WAL (its identity, wal.h). An op,
 * or the part of it that falls into a partition, that the catalog says this WAL persisted is
 * skipped, so a crash after a persist and before the segment's deletion never puts a row into two
 * Parquet files; what other ingesters sharing the catalog persisted is of their own sequence
 * numbers and never counts here (counting it lost acknowledged writes). Sequence numbers of the
 * new segment start past every one replayed or persisted, so they never repeat across restarts.
 *
 * Orphans: a crash between a Parquet put and its catalog row leaves an object no catalog row
 * names, holding rows that replay persists again. The `file` store belongs to this process alone,
 * so at start-up every *.parquet object the catalog does not know is removed before replay. (An
 * S3 store may be shared by a fleet, where another ingester's object can be between its put and
 * its catalog row: orphans there are left to an external collector, as in IOx.)
 *
 * A logged op that no longer validates (the catalog was replaced?) stops start-up naming the
 * segment and sequence: it was acknowledged, so dropping it silently is not an option.
 *
 * Pipeline: the frame check, decoding and parsing of op N+1 (on the WAL's callback thread) run
 * while an applier thread checks op N against the schema, drops what is persisted of it and
 * applies it to the buffer, through REPLAY_SLOTS slots that own their rows. The schema check is
 * the applier's because it is sequential by nature (an op may create the columns the next one
 * uses) and because it balances the stages (with the check on the parse side, that stage alone
 * bounded start-up replay of TSBS lines at 2.9M lines/s while the applier idled 40% of the
 * time; with it here, 3.5M in bench_replay). Ops are
 * checked and applied one at a time in log order, and replay_watermark advances after each, so
 * hot-partition snapshots taken meanwhile see a correct watermark. The rows point into the
 * mapped segment, so the pipeline drains at on_segment_scanned, before the mapping goes; an
 * applier error stops replay at the next entry or at that drain.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingester_internal.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/sysio.h"

#define PERSISTED_BUCKETS 1024
#define REPLAY_SLOTS 2

/* What the catalog says is persisted of one partition. */
typedef struct persisted_partition {
    int64_t table_id;
    char key[11];
    uint64_t max_sequence;
    uint64_t *extras; /* ascending, all > max_sequence */
    size_t extra_count;
    struct persisted_partition *next;
} persisted_partition;

/* One op between the parse stage and the applier; its arrays are reused from op to op. */
typedef struct replay_slot {
    lp_batch batch;           /* parsed rows (parse stage) */
    schema_op_tables tables;  /* resolved tables (applier) */
    dml_decoded decoded;      /* the logged op; points into the mapped segment */
    schema_namespace *ns;
    uint64_t segment_id, sequence;
} replay_slot;

typedef struct replay_ctx {
    ingester *ing;
    dml_sink buffer_sink;
    persisted_partition *persisted[PERSISTED_BUCKETS];
    uint64_t persisted_max; /* the largest sequence any Parquet file covers */
    uint64_t ops;
    int oom;
    char err[512];
    /* the pipeline (see above) */
    replay_slot slots[REPLAY_SLOTS];
    pthread_t applier;
    bool applier_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* mu: ready, stop or apply_rc changed */
    size_t head, ready;     /* mu: next slot to fill (parse stage); slots filled, not applied */
    bool stop;              /* mu: the applier ends once ready is 0 */
    int apply_rc;           /* mu: the applier's first error (then apply_err says what) */
    char apply_err[512];    /* mu */
} replay_ctx;

static size_t bucket_of(int64_t table_id, const char *key)
{
    return (size_t)(hash_bytes(key, strlen(key), (uint64_t)table_id) % PERSISTED_BUCKETS);
}

static void load_persisted(void *arg, int64_t table_id, const char *partition_key,
                           uint64_t max_sequence, const char *sequence_extras)
{
    replay_ctx *rc = arg;
    persisted_partition *p = calloc(1, sizeof *p);
    if (!p) {
        rc->oom = 1;
        return;
    }
    p->table_id = table_id;
    snprintf(p->key, sizeof p->key, "%s", partition_key);
    p->max_sequence = max_sequence;
    if (max_sequence > rc->persisted_max) rc->persisted_max = max_sequence;
    size_t n = *sequence_extras ? 1 : 0;
    for (const char *c = sequence_extras; *c; c++) n += *c == ',';
    if (n && !(p->extras = calloc(n, sizeof *p->extras))) rc->oom = 1;
    for (const char *c = sequence_extras; p->extras && *c;) {
        char *end;
        uint64_t v = strtoull(c, &end, 10);
        p->extras[p->extra_count++] = v;
        if (v > rc->persisted_max) rc->persisted_max = v;
        c = *end == ',' ? end + 1 : end;
        if (end == c && *c) break; /* not a number: stop rather than loop */
    }
    size_t b = bucket_of(table_id, partition_key);
    p->next = rc->persisted[b];
    rc->persisted[b] = p;
}

static bool is_persisted(replay_ctx *rc, int64_t table_id, const char *key, uint64_t sequence)
{
    for (persisted_partition *p = rc->persisted[bucket_of(table_id, key)]; p; p = p->next) {
        if (p->table_id != table_id || strcmp(p->key, key) != 0) continue;
        if (sequence <= p->max_sequence) return true;
        for (size_t i = 0; i < p->extra_count; i++)
            if (p->extras[i] == sequence) return true;
        return false;
    }
    return false;
}

/* Drop the lines of the slot's batch whose partition already holds this op in Parquet. */
static size_t drop_persisted_lines(replay_ctx *rc, replay_slot *slot, uint64_t sequence)
{
    lp_batch *b = &slot->batch;
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < b->line_count; i++) {
        const lp_line *line = &b->lines[i];
        char key[11];
        buffer_partition_key(line->time_ns, key);
        if (is_persisted(rc, slot->tables.tables[line->table_slot]->catalog_id, key, sequence)) {
            dropped++;
            continue;
        }
        b->lines[kept++] = *line;
    }
    b->line_count = kept;
    return dropped;
}

static int replay_check_apply(replay_ctx *rc, replay_slot *slot, char *err, size_t errlen);

/* The applier thread: check and apply the filled slots in order. */
static void *replay_applier(void *arg)
{
    replay_ctx *rc = arg;
    size_t tail = 0;
    pthread_mutex_lock(&rc->mu);
    for (;;) {
        while (rc->ready == 0 && !rc->stop)
            pthread_cond_wait(&rc->cv, &rc->mu);
        if (rc->ready == 0) break;
        replay_slot *slot = &rc->slots[tail];
        int failed = rc->apply_rc;
        pthread_mutex_unlock(&rc->mu);
        char err[sizeof rc->apply_err];
        int rv = failed ? 0 : replay_check_apply(rc, slot, err, sizeof err);
        pthread_mutex_lock(&rc->mu);
        if (rv != 0 && rc->apply_rc == 0) {
            rc->apply_rc = rv;
            memcpy(rc->apply_err, err, sizeof err);
        }
        tail = (tail + 1) % REPLAY_SLOTS;
        rc->ready--;
        pthread_cond_broadcast(&rc->cv);
    }
    pthread_mutex_unlock(&rc->mu);
    return NULL;
}

/* The applier's error (copied into rc->err), or 0. mu held. */
static int replay_apply_error(replay_ctx *rc)
{
    if (rc->apply_rc) snprintf(rc->err, sizeof rc->err, "%s", rc->apply_err);
    return rc->apply_rc;
}

/* Wait until the applier applied every filled slot. */
static int replay_drain(void *arg, uint64_t segment_id)
{
    (void)segment_id;
    replay_ctx *rc = arg;
    pthread_mutex_lock(&rc->mu);
    while (rc->ready > 0)
        pthread_cond_wait(&rc->cv, &rc->mu);
    int rv = replay_apply_error(rc);
    pthread_mutex_unlock(&rc->mu);
    return rv;
}

/* Decode and parse one logged op into slot (the parse stage). */
static int replay_prepare(replay_ctx *rc, replay_slot *slot, uint64_t segment_id,
                          uint64_t sequence, const uint8_t *payload, size_t len)
{
    ingester *ing = rc->ing;
    dml_decoded *d = &slot->decoded;
    int rv = dml_op_decode(payload, len, d, rc->err, sizeof rc->err);
    if (rv != 0) return rv;
    char ns_name[SCHEMA_MAX_NAMESPACE_BYTES + 1];
    if (d->namespace_len > SCHEMA_MAX_NAMESPACE_BYTES) {
        snprintf(rc->err, sizeof rc->err, "segment %" PRIu64 ", sequence %" PRIu64 ": namespace name too long",
                 segment_id, sequence);
        return INGOT_E_CORRUPT;
    }
    memcpy(ns_name, d->namespace_name, d->namespace_len);
    ns_name[d->namespace_len] = '\0';
    if ((rv = schema_namespace_get(ing->schema, ns_name, true, &slot->ns, rc->err, sizeof rc->err)) != 0)
        return rv;
    lp_batch_reset(&slot->batch);
    char why[256];
    rv = dml_decoded_rows(d, &slot->batch, why, sizeof why);
    if (rv == INGOT_E_INVALID) {
        snprintf(rc->err, sizeof rc->err,
                 "segment %" PRIu64 ", sequence %" PRIu64 ": logged batch does not decode: %s",
                 segment_id, sequence, why);
        return INGOT_E_CORRUPT;
    }
    if (rv != 0) return rv;
    slot->segment_id = segment_id;
    slot->sequence = sequence;
    return 0;
}

/*
 * On the applier: check the slot's op against the schema, drop its lines that are persisted
 * already, apply the rest and advance the replay watermark. Errors are described in err.
 */
static int replay_check_apply(replay_ctx *rc, replay_slot *slot, char *err, size_t errlen)
{
    ingester *ing = rc->ing;
    int rv = schema_check(ing->schema, slot->ns, &slot->batch, false, &slot->tables, err, errlen);
    if (rv == 0 && slot->batch.bad_line_count > 0) {
        const lp_error *e = &slot->batch.errors[0];
        snprintf(err, errlen,
                 "segment %" PRIu64 ", sequence %" PRIu64 ": logged write no longer validates "
                 "(line %u, column %u: %s); was the catalog replaced?",
                 slot->segment_id, slot->sequence, e->line_number, e->column, e->message);
        return INGOT_E_CORRUPT;
    }
    if (rv != 0) return rv;
    /* past every sequence a Parquet file covers, no line can be persisted already */
    if (slot->sequence <= rc->persisted_max && drop_persisted_lines(rc, slot, slot->sequence) > 0)
        ing->replay_ops_skipped++;
    const dml_decoded *d = &slot->decoded;
    dml_op op = {.sequence = slot->sequence,
                 .ns = slot->ns,
                 .namespace_name = d->namespace_name,
                 .namespace_len = d->namespace_len,
                 .batch = &slot->batch,
                 .tables = &slot->tables,
                 .body_kind = d->body_kind,
                 .body = d->body,
                 .body_len = d->body_len,
                 .precision = d->precision,
                 .default_time_ns = d->default_time_ns,
                 .row_count = slot->batch.line_count};
    if (op.row_count > 0 && (rv = dml_sink_apply(&rc->buffer_sink, &op)) != 0) {
        snprintf(err, errlen, "segment %" PRIu64 ": applying sequence %" PRIu64 ": %s",
                 slot->segment_id, slot->sequence, ingot_strerror(rv));
        return rv;
    }
    atomic_store(&ing->replay_watermark, slot->sequence);
    return 0;
}

static int replay_entry(void *arg, uint64_t segment_id, uint64_t sequence, const uint8_t *payload,
                        size_t len)
{
    replay_ctx *rc = arg;
    pthread_mutex_lock(&rc->mu);
    while (rc->ready == REPLAY_SLOTS && rc->apply_rc == 0)
        pthread_cond_wait(&rc->cv, &rc->mu);
    int rv = replay_apply_error(rc);
    replay_slot *slot = &rc->slots[rc->head];
    pthread_mutex_unlock(&rc->mu);
    if (rv != 0) return rv;
    /* the slot is free: the applier only touches slots counted in ready */
    if ((rv = replay_prepare(rc, slot, segment_id, sequence, payload, len)) != 0) return rv;
    pthread_mutex_lock(&rc->mu);
    rc->head = (rc->head + 1) % REPLAY_SLOTS;
    rc->ready++;
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
    rc->ops++;
    return 0;
}

/* The segment is in the buffer: persist all of it, then the segment can go. */
static int replay_segment_end(void *arg, uint64_t segment_id, const char *path)
{
    replay_ctx *rc = arg;
    ingester *ing = rc->ing;
    double t0 = (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
    int rv = persister_persist_all(ing->persist, ing->buffer);
    persister_wait_idle(ing->persist); /* hot partitions queued during the replay */
    if (rv != 0) {
        snprintf(rc->err, sizeof rc->err, "persisting segment %" PRIu64 ": %s", segment_id,
                 ingot_strerror(rv));
        return rv;
    }
    INGOT_CRASH_POINT("replay-before-segment-delete"); /* replayed and persisted, not deleted */
    if ((rv = wal_delete_segment(ing->cfg->wal_dir, segment_id)) != 0) {
        snprintf(rc->err, sizeof rc->err, "deleting %s: %s", path, ingot_strerror(rv));
        return rv;
    }
    ing->replay_persist_seconds += (double)clock_ns(CLOCK_MONOTONIC) / 1e9 - t0;
    atomic_fetch_add(&ing->segments_deleted, 1);
    log_info("wal replay: segment %" PRIu64 " replayed, persisted and deleted", segment_id);
    return 0;
}

typedef struct orphan_sweep {
    ingester *ing;
    char **paths; /* objects to remove */
    size_t count, cap;
    int rv;
} orphan_sweep;

static void collect_orphan(void *arg, const char *path, uint64_t size_bytes)
{
    (void)size_bytes;
    orphan_sweep *o = arg;
    size_t len = strlen(path);
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    if (len < 8 || strcmp(path + len - 8, ".parquet") != 0 || strlen(name) != 36 + 8) return;
    char uuid[37];
    memcpy(uuid, name, 36);
    uuid[36] = '\0';
    int64_t id;
    int rv = o->ing->cat.parquet_file_lookup(o->ing->cat.self, uuid, &id);
    if (rv == 0) return;
    if (rv != INGOT_E_NOT_FOUND) {
        o->rv = rv;
        return;
    }
    if (o->count == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        char **grown = realloc(o->paths, cap * sizeof *grown);
        if (!grown) {
            o->rv = INGOT_E_NOMEM;
            return;
        }
        o->paths = grown;
        o->cap = cap;
    }
    if (!(o->paths[o->count] = strdup(path))) o->rv = INGOT_E_NOMEM;
    else o->count++;
}

/* Remove the Parquet objects of the file store that no catalog row names (see above). */
static int remove_orphans(ingester *ing, char *err, size_t errlen)
{
    if (strcmp(ing->cfg->object_store, "file") != 0) return 0;
    orphan_sweep o = {.ing = ing};
    int rv = ing->store.list(ing->store.self, "", collect_orphan, &o);
    if (rv == 0) rv = o.rv;
    for (size_t i = 0; i < o.count; i++) {
        if (rv == 0) {
            rv = ing->store.remove(ing->store.self, o.paths[i]);
            if (rv == 0) log_warn("object store: removed %s: no catalog row names it (a crash "
                                  "between its put and its catalog row)", o.paths[i]);
        }
        free(o.paths[i]);
    }
    free(o.paths);
    if (rv != 0) snprintf(err, errlen, "removing orphaned Parquet objects: %s", ingot_strerror(rv));
    return rv;
}

int ingester_replay(ingester *ing, uint64_t *next_sequence, char *err, size_t errlen)
{
    replay_ctx *rc = calloc(1, sizeof *rc);
    if (!rc) return INGOT_E_NOMEM;
    rc->ing = ing;
    rc->buffer_sink = buffer_tree_as_sink(ing->buffer);
    pthread_mutex_init(&rc->mu, NULL);
    pthread_cond_init(&rc->cv, NULL);
    double t0 = (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
    int rv = remove_orphans(ing, err, errlen);
    if (rv != 0) goto done;
    if (pthread_create(&rc->applier, NULL, replay_applier, rc) != 0) {
        snprintf(err, errlen, "cannot start the replay applier thread");
        rv = INGOT_E_NOMEM;
        goto done;
    }
    rc->applier_running = true;
    rv = ing->cat.persisted_sequences(ing->cat.self, ing->wal_id, load_persisted, rc);
    if (rv == 0 && rc->oom) rv = INGOT_E_NOMEM;
    if (rv != 0) {
        snprintf(err, errlen, "reading what is persisted from the catalog: %s", ingot_strerror(rv));
        goto done;
    }
    wal_replay_callbacks cb = {.on_entry = replay_entry,
                               .on_segment_scanned = replay_drain,
                               .on_segment_end = replay_segment_end,
                               .arg = rc};
    rv = wal_replay(ing->cfg->wal_dir, ing->cfg->wal_skip_corrupt, &cb, &ing->replay, err, errlen);
    if (rv != 0) {
        size_t n = strlen(err);
        if (rc->err[0]) snprintf(err + n, errlen - n, "%swal replay: %s", n ? ": " : "", rc->err);
        goto done;
    }
    ing->replay_seconds = (double)clock_ns(CLOCK_MONOTONIC) / 1e9 - t0;
    uint64_t last = ing->replay.max_sequence > rc->persisted_max ? ing->replay.max_sequence
                                                                  : rc->persisted_max;
    *next_sequence = last + 1;
    atomic_store(&ing->replay_watermark, last);
    log_info("wal replay: %" PRIu64 " segments, %" PRIu64 " ops (%" PRIu64 " skipped as persisted), %"
             PRIu64 " torn tails truncated (%" PRIu64 " bytes), %" PRIu64
             " corrupt segments set aside, %.3f s; next sequence %" PRIu64,
             ing->replay.segments, rc->ops, ing->replay_ops_skipped, ing->replay.torn_tails,
             ing->replay.torn_bytes, ing->replay.corrupt_skipped, ing->replay_seconds, *next_sequence);
done:
    if (rc->applier_running) {
        pthread_mutex_lock(&rc->mu);
        rc->stop = true;
        pthread_cond_broadcast(&rc->cv);
        pthread_mutex_unlock(&rc->mu);
        pthread_join(rc->applier, NULL);
    }
    pthread_cond_destroy(&rc->cv);
    pthread_mutex_destroy(&rc->mu);
    for (size_t b = 0; b < PERSISTED_BUCKETS; b++)
        for (persisted_partition *p = rc->persisted[b], *next; p; p = next) {
            next = p->next;
            free(p->extras);
            free(p);
        }
    for (size_t i = 0; i < REPLAY_SLOTS; i++) {
        lp_batch_free(&rc->slots[i].batch);
        schema_op_tables_free(&rc->slots[i].tables);
    }
    free(rc);
    return rv;
}
