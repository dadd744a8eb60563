/*
 * buffer_snapshot.c: snapshots of partitions for persistence (buffer.h, "persistence:
 * snapshots"): taking them, their info, the sorted and de-duplicated batch a persist job
 * encodes, detaching them once persisted, and their reference counts.
 *
 * Taking (buffer_snapshot_take_locked, under the partition mutex): the partition's columns[],
 * runs[] and counters are moved into a new buffer_snapshot and the buffer restarts empty (no
 * column, no dictionary, no run): no row is copied, so the lock is held for O(1) work plus one
 * small allocation (the snapshot struct, with a copy of the namespace name) and, rarely, the
 * growth of the partition's snaps[] array. The watermark is read from the tree's source under
 * the same mutex just before the move. Everything that costs O(rows) is done by
 * buffer_snapshot_finish() after unlocking, on the snapshot alone (no other thread writes it;
 * readers only read the moved arrays): min/max time, which columns hold a value, the tag
 * columns and their cardinality (a tag dictionary holds exactly the distinct values appended),
 * and the distinct sequence list, sorted in the spare room the runs allocation keeps for it
 * (buffer_internal.h), so finishing cannot fail and a snapshot is never half-described.
 *
 * Handover (buffer_partition_hand_over): the snapshots of one partition reach the callback in the
 * order they were taken, each exactly once, and none is skipped. This is what persistence needs:
 * replay skips every op of a partition at or below the largest watermark the catalog holds for
 * it, so a later snapshot recorded while an earlier one is not would lose the earlier one's rows
 * at a crash. Three rules make it hold. (1) The partition's handover_mu is held from the take
 * until the callbacks returned, and every take happens under it, so two threads never interleave
 * the snapshots of one partition. (2) Each snapshot has a `handed` flag (handover_mu): every
 * handover first gives the callback the attached snapshots still unhanded, oldest first, then
 * the new one. (3) A callback may refuse a snapshot (its queue could not take it: out of memory);
 * the handover then stops, the refused snapshot and the later ones stay attached (queries still
 * see them) and unhanded, and the next handover of the partition (the next hot snapshot, or any
 * buffer_tree_snapshot_all, which hands over unhanded snapshots even when the buffer is empty)
 * starts again from the oldest. Hence the handed snapshots are always a prefix of snaps[]. The
 * flag is set before the callback is called (a callback that takes a snapshot may persist and
 * free it before returning) and cleared again on a refusal, while the caller's reference keeps
 * the refused snapshot alive.
 *
 * References: a new snapshot holds two: one for the partition's snaps[] (dropped when it is
 * detached) and one for whoever took it (the callback's). Queries take one for each snapshot
 * they read, under the partition mutex, so a snapshot persisted (detached) while a query reads it
 * stays valid until that query drops it. A snapshot holds a reference on its partition.
 *
 * Accounting: a snapshot's rows and bytes stay in the tree's totals (and in the partition's
 * visible_rows and min_sequence mirrors) until buffer_snapshot_persisted() detaches it; that
 * subtracts them under the partition mutex. When the tree is freed first, its partitions detach
 * their snapshots without touching the totals, and later persisted() calls do nothing.
 *
 * The sorted rows (buffer_snapshot_sort) read the snapshot's columns in place (no copy of the
 * rows) and run the query path's sort + de-duplication core (buffer_dedup_run) with the persist
 * key once; each output column is then built on demand (buffer_sorted_rows_column), and the
 * sorted batch (buffer_snapshot_sorted_batch) is all of them at once. Output columns: the key's
 * tag columns (in key order, the appended ones included), then the field columns in name order,
 * then `time` last; only columns with at least one non-null value in the snapshot appear.
 */
#include "buffer/buffer_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/column_type.h"
#include "util/error.h"

/* ---- taking ---------------------------------------------------------------------------------- */

buffer_snapshot *buffer_snapshot_take_locked(buffer_partition *p, uint64_t watermark, int *rc)
{
    *rc = 0;
    if (p->row_count == 0) return NULL;
    *rc = INGOT_E_NOMEM;
    if (p->snap_count == p->snap_cap) {
        size_t cap = p->snap_cap ? p->snap_cap * 2 : 4;
        buffer_snapshot **a = realloc(p->snaps, cap * sizeof *a);
        if (!a) return NULL;
        p->snaps = a;
        p->snap_cap = cap;
    }
    size_t nlen = strlen(p->namespace_name);
    buffer_snapshot *s = calloc(1, sizeof *s + nlen + 1);
    if (!s) return NULL;
    *rc = 0;
    memcpy(s->namespace_name, p->namespace_name, nlen + 1);
    atomic_init(&s->refs, 2); /* snaps[] + the caller */
    buffer_partition_ref(p);
    s->part = p;
    s->attached = true;
    s->watermark = watermark;
    s->row_count = p->row_count;
    s->column_count = p->column_count;
    s->columns = p->columns;
    s->runs = p->runs;
    s->run_count = p->run_count;
    s->run_cap = p->run_cap;
    s->bytes = p->bytes;
    atomic_fetch_add(&p->totals->snapshot_bytes, s->bytes);
    s->min_sequence = p->buf_min_sequence;
    s->max_sequence = p->buf_max_sequence;

    p->snaps[p->snap_count++] = s;
    p->snap_rows += p->row_count;
    p->row_count = 0;
    p->column_count = 0;
    p->columns = NULL;
    p->runs = NULL;
    p->run_count = p->run_cap = 0;
    p->bytes = 0;
    p->buf_min_sequence = UINT64_MAX;
    p->buf_max_sequence = 0;
    buffer_partition_publish(p);
    return s;
}

static int buffer_u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static bool buffer_bits_any(const uint8_t *bits, size_t n)
{
    size_t whole = n / 8;
    for (size_t i = 0; i < whole; i++)
        if (bits[i]) return true;
    return (n & 7) && (bits[whole] & ((1u << (n & 7)) - 1));
}

void buffer_snapshot_finish(buffer_snapshot *s)
{
    /* the distinct sequences, ascending (appends come mostly in order: sort only if needed) */
    uint64_t *seq = buffer_run_seq_room(s->runs, s->run_cap);
    bool sorted = true;
    for (size_t i = 0; i < s->run_count; i++) {
        seq[i] = s->runs[i].sequence;
        if (i && seq[i] < seq[i - 1]) sorted = false;
    }
    if (!sorted) qsort(seq, s->run_count, sizeof *seq, buffer_u64_cmp);
    size_t n = 0;
    for (size_t i = 0; i < s->run_count; i++)
        if (n == 0 || seq[i] != seq[n - 1]) seq[n++] = seq[i];
    s->sequences = seq;
    s->sequence_count = n;

    const int64_t *time = s->columns[0].values;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t r = 0; r < s->row_count; r++) {
        if (time[r] < lo) lo = time[r];
        if (time[r] > hi) hi = time[r];
    }
    s->min_time_ns = lo;
    s->max_time_ns = hi;

    s->tag_count = 0;
    memset(s->has_values, 0, sizeof s->has_values);
    for (uint32_t i = 0; i < s->column_count; i++) {
        const buffer_column *c = &s->columns[i];
        bool any;
        if (!c->type)
            any = false;
        else if (c->type == COLUMN_TIME)
            any = true;
        else if (c->type == COLUMN_TAG)
            any = c->dict.count > 0; /* a dictionary holds only values some row has */
        else
            any = buffer_bits_any(c->validity, s->row_count);
        if (!any) continue;
        s->has_values[i / 8] |= (uint8_t)(1u << (i % 8));
        if (c->type == COLUMN_TAG) {
            s->tag_columns[s->tag_count] = i;
            s->tag_cardinality[s->tag_count] = c->dict.count;
            s->tag_count++;
        }
    }
}

/* ---- handover -------------------------------------------------------------------------------- */

bool buffer_partition_unhanded_locked(const buffer_partition *p, const buffer_snapshot *fresh)
{
    size_t n = p->snap_count;
    if (n && p->snaps[n - 1] == fresh) n--;
    return n && !p->snaps[n - 1]->handed; /* the handed ones are a prefix */
}

/* Hand snap (holding a reference for the callee) to cb: true when cb took it. */
static bool buffer_snapshot_offer(buffer_snapshot *snap, buffer_snapshot_cb cb, void *arg)
{
    snap->handed = true; /* before: once cb took it, snap may be persisted and freed at once */
    if (cb(arg, snap) == 0) return true;
    snap->handed = false;
    buffer_snapshot_release(snap); /* cb kept nothing */
    return false;
}

int buffer_partition_hand_over(buffer_partition *p, buffer_snapshot *fresh, bool older,
                               buffer_snapshot_cb cb, void *arg)
{
    int took = 0;
    while (older) {
        buffer_snapshot *s = NULL;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->snap_count && !s; i++)
            if (!p->snaps[i]->handed) s = p->snaps[i];
        if (s == fresh) s = NULL; /* every older one is handed */
        if (s) buffer_snapshot_retain(s);
        pthread_mutex_unlock(&p->mu);
        if (!s) break;
        if (!buffer_snapshot_offer(s, cb, arg)) {
            buffer_snapshot_release(fresh); /* stays attached and unhanded */
            return took;
        }
        took++;
    }
    if (fresh && buffer_snapshot_offer(fresh, cb, arg)) took++;
    return took;
}

/* ---- references and detaching ---------------------------------------------------------------- */

void buffer_snapshot_retain(buffer_snapshot *snap)
{
    atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
}

void buffer_snapshot_release(buffer_snapshot *snap)
{
    if (!snap || atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1) return;
    for (uint32_t i = 0; i < snap->column_count; i++)
        buffer_column_free(&snap->columns[i]);
    free(snap->columns);
    free(snap->runs);
    buffer_partition_unref(snap->part);
    free(snap);
}

/* Under p->mu: remove snap from p->snaps; false when it is not there. */
static bool buffer_snapshot_unlink(buffer_partition *p, buffer_snapshot *snap)
{
    for (size_t i = 0; i < p->snap_count; i++) {
        if (p->snaps[i] != snap) continue;
        memmove(p->snaps + i, p->snaps + i + 1, (p->snap_count - i - 1) * sizeof *p->snaps);
        p->snap_count--;
        snap->attached = false;
        return true;
    }
    return false;
}

void buffer_snapshot_persisted(buffer_snapshot *snap)
{
    buffer_partition *p = snap->part;
    pthread_mutex_lock(&p->mu);
    bool found = buffer_snapshot_unlink(p, snap);
    if (found) {
        p->snap_rows -= snap->row_count;
        p->persisted_count++;
        buffer_partition_publish(p);
        atomic_fetch_sub(&p->totals->rows, snap->row_count);
        atomic_fetch_sub(&p->totals->bytes, snap->bytes);
        atomic_fetch_sub(&p->totals->snapshot_bytes, snap->bytes);
    }
    pthread_mutex_unlock(&p->mu);
    if (found && atomic_load(&p->totals->waiters) > 0) {
        pthread_mutex_lock(&p->totals->mu);
        pthread_cond_broadcast(&p->totals->lowered);
        pthread_mutex_unlock(&p->totals->mu);
    }
    if (found) buffer_snapshot_release(snap); /* the reference snaps[] held */
}

void buffer_partition_detach_all(buffer_partition *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->snap_count;
    buffer_snapshot **a = p->snaps;
    for (size_t i = 0; i < n; i++)
        a[i]->attached = false;
    p->snaps = NULL;
    p->snap_count = p->snap_cap = 0;
    p->snap_rows = 0;
    buffer_partition_publish(p);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < n; i++)
        buffer_snapshot_release(a[i]);
    free(a);
}

/* ---- info ------------------------------------------------------------------------------------ */

void buffer_snapshot_get_info(const buffer_snapshot *snap, buffer_snapshot_info *out)
{
    memset(out, 0, sizeof *out);
    out->namespace_name = snap->namespace_name;
    out->table = snap->part->table;
    memcpy(out->partition_key, snap->part->key, sizeof out->partition_key);
    out->partition_id = snap->part->id;
    out->row_count = snap->row_count;
    out->bytes = snap->bytes;
    out->min_time_ns = snap->min_time_ns;
    out->max_time_ns = snap->max_time_ns;
    out->min_sequence = snap->min_sequence;
    out->max_sequence = snap->max_sequence;
    out->sequences = snap->sequences;
    out->sequence_count = snap->sequence_count;
    out->tag_columns = snap->tag_columns;
    out->tag_cardinality = snap->tag_cardinality;
    out->tag_column_count = snap->tag_count;
    out->watermark = snap->watermark;
}

/* ---- the sorted batch ------------------------------------------------------------------------ */

static bool buffer_snapshot_has(const buffer_snapshot *s, uint32_t col)
{
    return col < s->column_count && ((s->has_values[col / 8] >> (col % 8)) & 1);
}

struct buffer_sorted_rows {
    const buffer_snapshot *snap;
    buffer_frozen view;  /* the snapshot's own arrays (read only), with per-row sequences */
    buffer_dedup d;
    uint32_t full_key[SCHEMA_MAX_COLUMNS];
    size_t kc;
    uint32_t cols[SCHEMA_MAX_COLUMNS]; /* output column i = table column cols[i] */
    size_t nc;
    const char *names[SCHEMA_MAX_COLUMNS];
    enum column_type types[SCHEMA_MAX_COLUMNS];
    uint32_t *pick;      /* scratch of d.row_count entries for buffer_batch_column */
};

void buffer_sorted_rows_free(buffer_sorted_rows *s)
{
    if (!s) return;
    free(s->pick);
    free(s->view.seq);
    buffer_dedup_free(&s->d);
    free(s);
}

int buffer_snapshot_sort(const buffer_snapshot *snap, const uint32_t *key, size_t key_count,
                         buffer_sorted_rows **out)
{
    const schema_table *t = snap->part->table;
    uint32_t ncols = atomic_load_explicit(&((schema_table *)t)->column_count, memory_order_acquire);
    bool in_key[SCHEMA_MAX_COLUMNS] = {false};
    uint32_t *by_name = NULL; /* the table's tags, by name */
    size_t n_by_name = 0;
    int rc = INGOT_E_INVALID;

    *out = NULL;
    buffer_sorted_rows *s = calloc(1, sizeof *s);
    if (!s) return INGOT_E_NOMEM;
    s->snap = snap;
    if (key_count && !key) goto fail;
    /* the key: the given tag columns the snapshot has, then its other tag columns by name */
    for (size_t k = 0; k < key_count; k++) {
        uint32_t c = key[k];
        if (c >= ncols || t->columns[c].type != COLUMN_TAG || in_key[c]) goto fail;
        in_key[c] = true;
        if (c < snap->column_count && snap->columns[c].type == COLUMN_TAG) s->full_key[s->kc++] = c;
    }
    rc = buffer_table_tags_by_name(t, snap->column_count, &by_name, &n_by_name);
    if (rc) goto fail;
    for (size_t k = 0; k < n_by_name; k++) {
        uint32_t c = by_name[k];
        if (!in_key[c] && snap->columns[c].type == COLUMN_TAG) s->full_key[s->kc++] = c;
    }
    /* output columns: key tags with values, fields with values by name, time */
    for (size_t k = 0; k < s->kc; k++)
        if (buffer_snapshot_has(snap, s->full_key[k])) s->cols[s->nc++] = s->full_key[k];
    size_t nf = 0;
    for (uint32_t c = 1; c < snap->column_count; c++) {
        uint8_t type = snap->columns[c].type;
        if (type && type != COLUMN_TAG && type != COLUMN_TIME && buffer_snapshot_has(snap, c))
            s->cols[s->nc + nf++] = c;
    }
    buffer_columns_sort_by_name(t, s->cols + s->nc, nf);
    s->nc += nf;
    s->cols[s->nc++] = 0;
    for (size_t i = 0; i < s->nc; i++) {
        s->names[i] = t->columns[s->cols[i]].name;
        s->types[i] = (enum column_type)t->columns[s->cols[i]].type;
    }

    rc = INGOT_E_NOMEM;
    s->view.table = t;
    s->view.row_count = snap->row_count;
    s->view.column_count = snap->column_count;
    s->view.columns = snap->columns;
    s->view.seq = malloc((snap->row_count ? snap->row_count : 1) * sizeof *s->view.seq);
    if (!s->view.seq) goto fail;
    for (size_t run = 0; run < snap->run_count; run++) {
        size_t end = run + 1 < snap->run_count ? snap->runs[run + 1].first_row : snap->row_count;
        for (size_t r = snap->runs[run].first_row; r < end; r++)
            s->view.seq[r] = snap->runs[run].sequence;
    }
    rc = buffer_dedup_run(&s->view, s->full_key, s->kc, BUFFER_ORDER_KEY_TIME, &s->d);
    if (rc) goto fail;
    rc = INGOT_E_NOMEM;
    s->pick = malloc((s->d.row_count ? s->d.row_count : 1) * sizeof *s->pick);
    if (!s->pick) goto fail;
    free(by_name);
    *out = s;
    return 0;
fail:
    free(by_name);
    buffer_sorted_rows_free(s);
    return rc;
}

size_t buffer_sorted_rows_count(const buffer_sorted_rows *s)
{
    return s->d.row_count;
}

size_t buffer_sorted_rows_columns(const buffer_sorted_rows *s)
{
    return s->nc;
}

const char *const *buffer_sorted_rows_names(const buffer_sorted_rows *s)
{
    return s->names;
}

const enum column_type *buffer_sorted_rows_types(const buffer_sorted_rows *s)
{
    return s->types;
}

int buffer_sorted_rows_column(buffer_sorted_rows *s, size_t i, query_column *out)
{
    memset(out, 0, sizeof *out);
    out->type = s->types[i];
    return buffer_batch_column(out, &s->view, &s->d, s->cols[i], s->full_key, s->kc, 0,
                               s->d.row_count, s->pick);
}

int buffer_snapshot_sorted_batch(const buffer_snapshot *snap, const uint32_t *key, size_t key_count,
                                 query_batch **out)
{
    buffer_sorted_rows *s;
    *out = NULL;
    int rc = buffer_snapshot_sort(snap, key, key_count, &s);
    if (rc) return rc;
    rc = INGOT_E_NOMEM;
    query_batch *batch = calloc(1, sizeof *batch);
    if (!batch) goto fail;
    memcpy(batch->partition_key, snap->part->key, sizeof batch->partition_key);
    batch->partition_id = snap->part->id;
    batch->row_count = s->d.row_count;
    batch->columns = calloc(s->nc, sizeof *batch->columns);
    if (!batch->columns) goto fail;
    batch->column_count = s->nc;
    for (size_t i = 0; i < s->nc; i++) {
        query_column *qc = &batch->columns[i];
        rc = buffer_sorted_rows_column(s, i, qc);
        if (rc) goto fail;
        qc->name = strdup(s->names[i]);
        if (!qc->name) {
            rc = INGOT_E_NOMEM;
            goto fail;
        }
    }
    *out = batch;
    batch = NULL;
    rc = 0;
fail:
    query_batch_free(batch);
    buffer_sorted_rows_free(s);
    return rc;
}
