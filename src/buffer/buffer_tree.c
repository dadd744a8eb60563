/*
 * buffer_tree.c: the BufferTree's maps (namespace -> table -> partition) and its DmlSink.
 *
 * Maps: the tree maps namespace names to namespaces; a namespace maps schema_table pointers (the
 * write path's key) and table names (the query path's key) to tables; a table keeps its
 * partitions in an array sorted by day. Each map is guarded by its own rwlock: lookups take it
 * for reading, an insertion takes it for writing and looks again first. Entries (namespaces,
 * tables, partitions) are never removed while the tree lives, so a pointer found under a lock
 * stays valid after the lock is released. The hash indexes are open addressing with linear
 * probing over (hash, index + 1) slots, grown at 3/4 load.
 *
 * Apply (the sink): an op's lines are grouped by partition (a per-table-slot cache of the last
 * day and its group makes the common case one comparison per line), the groups are sorted by
 * partition id and their mutexes taken in that order (so two ops that share partitions cannot
 * deadlock), every group reserves its room (buffer_partition_reserve), and only when all
 * succeeded are the rows appended. A failed reservation unlocks everything and returns the error
 * with no row of the op visible; it may leave an empty partition and spare capacity behind,
 * which readers never see (queries skip partitions that never held a row).
 *
 * Hot partitions: after the rows of an op are appended, and still under the same locks, every
 * partition of the op whose live buffer reached the threshold, and whose handover mutex is free
 * (try-locked), is snapshotted (buffer_snapshot_take_locked: O(1), moves the arrays); after
 * unlocking the partition mutexes, each snapshot's info is computed and it is handed to the
 * callback on the writer's thread, after any earlier snapshot of its partition not yet handed,
 * and only then is the handover mutex released. The op is thus either wholly in a snapshot or
 * wholly in the buffer, per partition. A snapshot that cannot be allocated is simply not taken,
 * and a busy handover mutex means another thread is handing this partition over right now: in
 * both cases the next append to that partition tries again. A partition snapshotted hot sizes its
 * next buffer for the rows it just held (row_hint, buffer_internal.h).
 * buffer_tree_snapshot_all() does the same for every partition, one at a time, waiting for the
 * handover mutex (but never while holding the partition mutex: buffer_partition_lock_handover):
 * it takes a snapshot when the buffer holds rows and hands over every unhanded snapshot, so a
 * refused one is handed again at the latest at the next rotation or at shutdown.
 * The invariant (buffer_snapshot.c, Handover): the callback sees the snapshots of one partition
 * in take order, each exactly once. The watermark source is called under the partition mutex
 * (it must not call into the buffer).
 *
 * Lock order: tree rwlock -> namespace rwlock -> table rwlock are never held together by this
 * file (each is released before the next is taken); partition mutexes are taken with no map
 * lock held, in ascending partition id. A partition's handover mutex comes before its partition
 * mutex: a thread holding a partition mutex only ever try-locks a handover mutex (the hot path,
 * and snapshot_all, which drops the partition mutex before it waits for the handover mutex), and
 * only the hot path holds several handover mutexes at once, all try-locked. Callbacks run with
 * no map lock and no partition mutex held, only the handover mutex of the snapshot's partition
 * (and, on the hot path, those of the op's other hot partitions): they must be quick and must
 * not call into the buffer (buffer_snapshot_persisted excepted).
 *
 * Totals: tree->totals (rows, bytes) are atomics, added to under the partition locks of each op
 * (so a snapshot of those rows, persisted at once, never subtracts before they were added) and
 * subtracted when a snapshot is persisted; snapshot_bytes, the part of bytes held by snapshots
 * not yet persisted, is added at the take and subtracted at the same persist, which wakes the
 * writers waiting for it to drop (buffer_tree_wait_snapshot_bytes). buffer_tree_min_sequence()
 * scans the partitions' atomic min_sequence mirrors.
 */
#include "buffer/buffer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buffer/buffer_internal.h"
#include "util/clock.h"
#include "util/error.h"

typedef struct buffer_slot {
    uint32_t hash;
    uint32_t idx1; /* entry index + 1; 0 = empty */
} buffer_slot;

typedef struct buffer_index {
    buffer_slot *slots;
    uint32_t cap; /* power of two, or 0 */
} buffer_index;

typedef struct buffer_table {
    const schema_table *schema; /* immutable, borrowed */
    const char *ns_name;        /* immutable, the namespace's */
    buffer_totals *totals;      /* immutable, the tree's */
    uint32_t ptr_hash;          /* immutable */
    uint32_t name_hash;         /* immutable */
    pthread_rwlock_t lock;
    buffer_partition **parts;    /* lock: sorted by day; each holds one reference */
    size_t part_count, part_cap; /* lock */
} buffer_table;

typedef struct buffer_namespace {
    char *name; /* immutable */
    size_t len;
    uint32_t hash;
    pthread_rwlock_t lock;
    buffer_table **tables;         /* lock */
    size_t table_count, table_cap; /* lock */
    buffer_index by_schema;        /* lock */
    buffer_index by_name;          /* lock */
} buffer_namespace;

struct buffer_tree {
    pthread_rwlock_t lock;
    buffer_namespace **nss;  /* lock */
    size_t ns_count, ns_cap; /* lock */
    buffer_index by_name;    /* lock */
    buffer_totals totals;    /* atomic */
    /* set before writes start, read-only afterwards: */
    uint64_t (*watermark)(void *arg);
    void *watermark_arg;
    size_t hot_bytes; /* 0: off */
    buffer_snapshot_cb hot_cb;
    void *hot_arg;
};

static uint32_t buffer_ptr_hash(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    return buffer_hash_bytes(&v, sizeof v);
}

/* Room for count entries (at 3/4 load). */
static int buffer_index_reserve(buffer_index *ix, size_t count)
{
    if (count * 4 <= (size_t)ix->cap * 3) return 0;
    uint32_t cap = ix->cap ? ix->cap * 2 : 16;
    while (count * 4 > (size_t)cap * 3)
        cap *= 2;
    buffer_slot *s = calloc(cap, sizeof *s);
    if (!s) return INGOT_E_NOMEM;
    for (uint32_t i = 0; i < ix->cap; i++) {
        if (!ix->slots[i].idx1) continue;
        uint32_t j = ix->slots[i].hash & (cap - 1);
        while (s[j].idx1)
            j = (j + 1) & (cap - 1);
        s[j] = ix->slots[i];
    }
    free(ix->slots);
    ix->slots = s;
    ix->cap = cap;
    return 0;
}

/* Insert idx under hash; room was reserved. */
static void buffer_index_put(buffer_index *ix, uint32_t hash, uint32_t idx)
{
    uint32_t j = hash & (ix->cap - 1);
    while (ix->slots[j].idx1)
        j = (j + 1) & (ix->cap - 1);
    ix->slots[j].hash = hash;
    ix->slots[j].idx1 = idx + 1;
}

/* ---- namespaces ----------------------------------------------------------------------------- */

/* Under tree->lock (either mode). */
static buffer_namespace *buffer_ns_lookup(buffer_tree *tree, const char *name, size_t len,
                                          uint32_t h)
{
    if (!tree->by_name.cap) return NULL;
    uint32_t mask = tree->by_name.cap - 1;
    for (uint32_t i = h & mask; tree->by_name.slots[i].idx1; i = (i + 1) & mask) {
        if (tree->by_name.slots[i].hash != h) continue;
        buffer_namespace *ns = tree->nss[tree->by_name.slots[i].idx1 - 1];
        if (ns->len == len && memcmp(ns->name, name, len) == 0) return ns;
    }
    return NULL;
}

static void buffer_table_free(buffer_table *t)
{
    for (size_t i = 0; i < t->part_count; i++) {
        buffer_partition_detach_all(t->parts[i]); /* breaks the snapshot -> partition refs */
        buffer_partition_unref(t->parts[i]);
    }
    free(t->parts);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static void buffer_ns_free(buffer_namespace *ns)
{
    for (size_t i = 0; i < ns->table_count; i++)
        buffer_table_free(ns->tables[i]);
    free(ns->tables);
    free(ns->by_schema.slots);
    free(ns->by_name.slots);
    pthread_rwlock_destroy(&ns->lock);
    free(ns->name);
    free(ns);
}

static int buffer_ns_get(buffer_tree *tree, const char *name, size_t len, buffer_namespace **out)
{
    uint32_t h = buffer_hash_bytes(name, len);
    pthread_rwlock_rdlock(&tree->lock);
    buffer_namespace *ns = buffer_ns_lookup(tree, name, len, h);
    pthread_rwlock_unlock(&tree->lock);
    if (ns) {
        *out = ns;
        return 0;
    }
    pthread_rwlock_wrlock(&tree->lock);
    ns = buffer_ns_lookup(tree, name, len, h);
    if (ns) goto done;
    if (tree->ns_count == tree->ns_cap) {
        size_t cap = tree->ns_cap ? tree->ns_cap * 2 : 8;
        buffer_namespace **a = realloc(tree->nss, cap * sizeof *a);
        if (!a) goto fail;
        tree->nss = a;
        tree->ns_cap = cap;
    }
    ns = calloc(1, sizeof *ns);
    if (!ns) goto fail;
    ns->name = malloc(len + 1);
    if (!ns->name || pthread_rwlock_init(&ns->lock, NULL) != 0) {
        free(ns->name);
        free(ns);
        goto fail;
    }
    memcpy(ns->name, name, len);
    ns->name[len] = '\0';
    ns->len = len;
    ns->hash = h;
    if (buffer_index_reserve(&tree->by_name, tree->ns_count + 1)) {
        buffer_ns_free(ns);
        goto fail;
    }
    buffer_index_put(&tree->by_name, h, (uint32_t)tree->ns_count);
    tree->nss[tree->ns_count++] = ns;
done:
    pthread_rwlock_unlock(&tree->lock);
    *out = ns;
    return 0;
fail:
    pthread_rwlock_unlock(&tree->lock);
    return INGOT_E_NOMEM;
}

/* ---- tables --------------------------------------------------------------------------------- */

/* Under ns->lock. */
static buffer_table *buffer_table_by_schema(buffer_namespace *ns, const schema_table *st,
                                            uint32_t h)
{
    if (!ns->by_schema.cap) return NULL;
    uint32_t mask = ns->by_schema.cap - 1;
    for (uint32_t i = h & mask; ns->by_schema.slots[i].idx1; i = (i + 1) & mask) {
        buffer_table *t = ns->tables[ns->by_schema.slots[i].idx1 - 1];
        if (t->schema == st) return t;
    }
    return NULL;
}

/* Under ns->lock. */
static buffer_table *buffer_table_by_name(buffer_namespace *ns, const char *name, size_t len)
{
    if (!ns->by_name.cap) return NULL;
    uint32_t h = buffer_hash_bytes(name, len);
    uint32_t mask = ns->by_name.cap - 1;
    for (uint32_t i = h & mask; ns->by_name.slots[i].idx1; i = (i + 1) & mask) {
        if (ns->by_name.slots[i].hash != h) continue;
        buffer_table *t = ns->tables[ns->by_name.slots[i].idx1 - 1];
        if (t->schema->name_len == len && memcmp(t->schema->name, name, len) == 0) return t;
    }
    return NULL;
}

static int buffer_table_get(buffer_tree *tree, buffer_namespace *ns, const schema_table *st,
                            buffer_table **out)
{
    uint32_t h = buffer_ptr_hash(st);
    pthread_rwlock_rdlock(&ns->lock);
    buffer_table *t = buffer_table_by_schema(ns, st, h);
    pthread_rwlock_unlock(&ns->lock);
    if (t) {
        *out = t;
        return 0;
    }
    pthread_rwlock_wrlock(&ns->lock);
    t = buffer_table_by_schema(ns, st, h);
    if (t) goto done;
    if (ns->table_count == ns->table_cap) {
        size_t cap = ns->table_cap ? ns->table_cap * 2 : 8;
        buffer_table **a = realloc(ns->tables, cap * sizeof *a);
        if (!a) goto fail;
        ns->tables = a;
        ns->table_cap = cap;
    }
    t = calloc(1, sizeof *t);
    if (!t) goto fail;
    if (pthread_rwlock_init(&t->lock, NULL) != 0) {
        free(t);
        goto fail;
    }
    t->schema = st;
    t->ns_name = ns->name;
    t->totals = &tree->totals;
    t->ptr_hash = h;
    t->name_hash = buffer_hash_bytes(st->name, st->name_len);
    /* both indexes grow before either is changed, so a failure leaves them consistent */
    if (buffer_index_reserve(&ns->by_schema, ns->table_count + 1) ||
        buffer_index_reserve(&ns->by_name, ns->table_count + 1)) {
        buffer_table_free(t);
        goto fail;
    }
    buffer_index_put(&ns->by_schema, h, (uint32_t)ns->table_count);
    buffer_index_put(&ns->by_name, t->name_hash, (uint32_t)ns->table_count);
    ns->tables[ns->table_count++] = t;
done:
    pthread_rwlock_unlock(&ns->lock);
    *out = t;
    return 0;
fail:
    pthread_rwlock_unlock(&ns->lock);
    return INGOT_E_NOMEM;
}

/* ---- partitions ----------------------------------------------------------------------------- */

/* Index of the first partition with day >= day (under t->lock). */
static size_t buffer_part_search(const buffer_table *t, int64_t day)
{
    size_t lo = 0, hi = t->part_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->parts[mid]->day < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int buffer_part_get(buffer_table *t, int64_t day, buffer_partition **out)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t i = buffer_part_search(t, day);
    buffer_partition *p = i < t->part_count && t->parts[i]->day == day ? t->parts[i] : NULL;
    pthread_rwlock_unlock(&t->lock);
    if (p) {
        *out = p;
        return 0;
    }
    pthread_rwlock_wrlock(&t->lock);
    i = buffer_part_search(t, day);
    if (i < t->part_count && t->parts[i]->day == day) {
        p = t->parts[i];
        goto done;
    }
    if (t->part_count == t->part_cap) {
        size_t cap = t->part_cap ? t->part_cap * 2 : 8;
        buffer_partition **a = realloc(t->parts, cap * sizeof *a);
        if (!a) goto fail;
        t->parts = a;
        t->part_cap = cap;
    }
    p = buffer_partition_new(t->schema, day, t->ns_name, t->totals);
    if (!p) goto fail;
    memmove(t->parts + i + 1, t->parts + i, (t->part_count - i) * sizeof *t->parts);
    t->parts[i] = p;
    t->part_count++;
done:
    pthread_rwlock_unlock(&t->lock);
    *out = p;
    return 0;
fail:
    pthread_rwlock_unlock(&t->lock);
    return INGOT_E_NOMEM;
}

/* ---- the tree ------------------------------------------------------------------------------- */

buffer_tree *buffer_tree_new(void)
{
    buffer_tree *tree = calloc(1, sizeof *tree);
    if (!tree) return NULL;
    if (pthread_rwlock_init(&tree->lock, NULL) != 0) {
        free(tree);
        return NULL;
    }
    atomic_init(&tree->totals.bytes, 0);
    atomic_init(&tree->totals.rows, 0);
    atomic_init(&tree->totals.snapshot_bytes, 0);
    atomic_init(&tree->totals.waiters, 0);
    pthread_mutex_init(&tree->totals.mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&tree->totals.lowered, &attr);
    pthread_condattr_destroy(&attr);
    return tree;
}

void buffer_tree_free(buffer_tree *tree)
{
    if (!tree) return;
    for (size_t i = 0; i < tree->ns_count; i++)
        buffer_ns_free(tree->nss[i]);
    free(tree->nss);
    free(tree->by_name.slots);
    pthread_rwlock_destroy(&tree->lock);
    pthread_cond_destroy(&tree->totals.lowered);
    pthread_mutex_destroy(&tree->totals.mu);
    free(tree);
}

size_t buffer_tree_bytes(buffer_tree *tree)
{
    return atomic_load(&tree->totals.bytes);
}

size_t buffer_tree_rows(buffer_tree *tree)
{
    return atomic_load(&tree->totals.rows);
}

size_t buffer_tree_snapshot_bytes(buffer_tree *tree)
{
    return atomic_load(&tree->totals.snapshot_bytes);
}

int buffer_tree_wait_snapshot_bytes(buffer_tree *tree, size_t limit, unsigned timeout_ms)
{
    buffer_totals *t = &tree->totals;
    if (atomic_load(&t->snapshot_bytes) <= limit) return 0;
    struct timespec deadline = clock_deadline_ms(CLOCK_MONOTONIC, timeout_ms);
    int rv = 0;
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->waiters, 1);
    while (atomic_load(&t->snapshot_bytes) > limit)
        if (pthread_cond_timedwait(&t->lowered, &t->mu, &deadline) == ETIMEDOUT &&
            atomic_load(&t->snapshot_bytes) > limit) {
            rv = INGOT_E_BUSY;
            break;
        }
    atomic_fetch_sub(&t->waiters, 1);
    pthread_mutex_unlock(&t->mu);
    return rv;
}

void buffer_partition_key(int64_t time_ns, char out[11])
{
    buffer_day_key(buffer_day_of(time_ns), out);
}

int buffer_tree_snapshot(buffer_tree *tree, const char *namespace_name, const char *table_name,
                         const schema_table **table_out, buffer_partition ***parts, size_t *count,
                         char *err, size_t errlen)
{
    size_t nlen = strlen(namespace_name);
    uint32_t h = buffer_hash_bytes(namespace_name, nlen);
    pthread_rwlock_rdlock(&tree->lock);
    buffer_namespace *ns = buffer_ns_lookup(tree, namespace_name, nlen, h);
    pthread_rwlock_unlock(&tree->lock);
    if (!ns) {
        if (err && errlen) snprintf(err, errlen, "namespace \"%s\" not found", namespace_name);
        return INGOT_E_NOT_FOUND;
    }
    pthread_rwlock_rdlock(&ns->lock);
    buffer_table *t = buffer_table_by_name(ns, table_name, strlen(table_name));
    pthread_rwlock_unlock(&ns->lock);
    if (!t) {
        if (err && errlen)
            snprintf(err, errlen, "table \"%s\" not found in namespace \"%s\"", table_name,
                     namespace_name);
        return INGOT_E_NOT_FOUND;
    }
    pthread_rwlock_rdlock(&t->lock);
    buffer_partition **a = malloc((t->part_count ? t->part_count : 1) * sizeof *a);
    if (!a) {
        pthread_rwlock_unlock(&t->lock);
        return INGOT_E_NOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->part_count; i++) {
        buffer_partition *p = t->parts[i];
        if (atomic_load_explicit(&p->visible_rows, memory_order_acquire) == 0)
            continue; /* never held a row: created by an op still applying, or a failed one */
        buffer_partition_ref(p);
        a[n++] = p;
    }
    pthread_rwlock_unlock(&t->lock);
    *table_out = t->schema;
    *parts = a;
    *count = n;
    return 0;
}

/* ---- snapshots ------------------------------------------------------------------------------ */

/* The applied watermark (0 without a source). */
static uint64_t buffer_tree_watermark(buffer_tree *tree)
{
    return tree->watermark ? tree->watermark(tree->watermark_arg) : 0;
}

void buffer_tree_set_watermark_source(buffer_tree *tree, uint64_t (*source)(void *arg), void *arg)
{
    tree->watermark = source;
    tree->watermark_arg = arg;
}

void buffer_tree_set_hot_partition(buffer_tree *tree, size_t threshold_bytes, buffer_snapshot_cb cb,
                                   void *arg)
{
    tree->hot_bytes = cb ? threshold_bytes : 0;
    tree->hot_cb = cb;
    tree->hot_arg = arg;
}

/*
 * Call fn(arg, table) for every table of the tree with the table's lock read-held; a nonzero
 * return stops the walk and is returned. Map locks are taken one at a time, never with a
 * partition mutex; namespace and table entries are never removed or moved, so the counts read
 * first stay valid.
 */
static int buffer_tree_each_table(buffer_tree *tree, int (*fn)(void *arg, buffer_table *t), void *arg)
{
    pthread_rwlock_rdlock(&tree->lock);
    size_t ns_count = tree->ns_count;
    pthread_rwlock_unlock(&tree->lock);
    for (size_t i = 0; i < ns_count; i++) {
        pthread_rwlock_rdlock(&tree->lock);
        buffer_namespace *ns = tree->nss[i];
        pthread_rwlock_unlock(&tree->lock);
        pthread_rwlock_rdlock(&ns->lock);
        size_t table_count = ns->table_count;
        pthread_rwlock_unlock(&ns->lock);
        for (size_t j = 0; j < table_count; j++) {
            pthread_rwlock_rdlock(&ns->lock);
            buffer_table *t = ns->tables[j];
            pthread_rwlock_unlock(&ns->lock);
            pthread_rwlock_rdlock(&t->lock);
            int rc = fn(arg, t);
            pthread_rwlock_unlock(&t->lock);
            if (rc) return rc;
        }
    }
    return 0;
}

typedef struct partition_list {
    buffer_partition **a;
    size_t n, cap;
} partition_list;

static int collect_partitions(void *arg, buffer_table *t)
{
    partition_list *l = arg;
    if (l->n + t->part_count > l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        while (c < l->n + t->part_count)
            c *= 2;
        buffer_partition **g = realloc(l->a, c * sizeof *g);
        if (!g) return INGOT_E_NOMEM;
        l->a = g;
        l->cap = c;
    }
    for (size_t k = 0; k < t->part_count; k++) {
        buffer_partition_ref(t->parts[k]);
        l->a[l->n++] = t->parts[k];
    }
    return 0;
}

/* Every partition of the tree, each holding a reference (the caller unrefs them and frees the
 * array). INGOT_E_NOMEM. */
static int buffer_tree_all_partitions(buffer_tree *tree, buffer_partition ***out, size_t *count)
{
    partition_list l = {0};
    int rc = buffer_tree_each_table(tree, collect_partitions, &l);
    if (rc) {
        for (size_t k = 0; k < l.n; k++)
            buffer_partition_unref(l.a[k]);
        free(l.a);
        return rc;
    }
    *out = l.a;
    *count = l.n;
    return 0;
}

/*
 * Lock p->mu and p->handover_mu for a handover by snapshot_all. Waiting for mu while holding
 * handover_mu would stop the hot path from snapshotting p for as long as writers keep mu busy
 * (mutexes are not fair: in test_buffer_snapshot that was up to 14 ms, and snapshots of tens of
 * thousands of rows instead of hundreds), so mu is taken first and handover_mu only tried (no
 * deadlock: code holding mu never waits for handover_mu); when a writer is handing p over at
 * that moment, wait for it to finish, without mu, and try again.
 */
static void buffer_partition_lock_handover(buffer_partition *p)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (pthread_mutex_trylock(&p->handover_mu) == 0) return;
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_lock(&p->handover_mu); /* the writer's callbacks return */
        pthread_mutex_unlock(&p->handover_mu);
    }
}

int buffer_tree_snapshot_all(buffer_tree *tree, buffer_snapshot_cb cb, void *arg)
{
    buffer_partition **parts;
    size_t count;
    int rc = buffer_tree_all_partitions(tree, &parts, &count);
    if (rc) return rc;
    int handed = 0;
    for (size_t i = 0; i < count; i++) {
        buffer_partition *p = parts[i];
        int take_rc;
        buffer_partition_lock_handover(p);
        buffer_snapshot *snap = buffer_snapshot_take_locked(p, buffer_tree_watermark(tree), &take_rc);
        if (snap) p->row_hint = 0; /* not hot: the next rows may be few */
        bool older = buffer_partition_unhanded_locked(p, snap);
        pthread_mutex_unlock(&p->mu);
        if (take_rc) rc = take_rc; /* the earlier unhanded ones still go */
        if (snap) buffer_snapshot_finish(snap);
        if (snap || older) handed += buffer_partition_hand_over(p, snap, older, cb, arg);
        pthread_mutex_unlock(&p->handover_mu);
    }
    for (size_t i = 0; i < count; i++)
        buffer_partition_unref(parts[i]);
    free(parts);
    return rc ? rc : handed;
}

static int lower_min_sequence(void *arg, buffer_table *t)
{
    uint64_t *m = arg;
    for (size_t k = 0; k < t->part_count; k++) {
        uint64_t v = atomic_load_explicit(&t->parts[k]->min_sequence, memory_order_acquire);
        if (v < *m) *m = v;
    }
    return 0;
}

uint64_t buffer_tree_min_sequence(buffer_tree *tree)
{
    uint64_t m = UINT64_MAX;
    buffer_tree_each_table(tree, lower_min_sequence, &m);
    return m;
}

/* ---- the sink ------------------------------------------------------------------------------- */

typedef struct buffer_apply {
    buffer_append_group *groups;
    size_t group_count, group_cap;
    uint32_t *map; /* open addressing: group index + 1, keyed by partition pointer */
    size_t map_cap;
} buffer_apply;

static int buffer_group_of(buffer_apply *a, buffer_partition *p, uint32_t *out)
{
    if ((a->group_count + 1) * 2 > a->map_cap) {
        size_t cap = a->map_cap ? a->map_cap * 2 : 16;
        uint32_t *m = calloc(cap, sizeof *m);
        if (!m) return INGOT_E_NOMEM;
        for (size_t g = 0; g < a->group_count; g++) {
            size_t j = buffer_ptr_hash(a->groups[g].p) & (cap - 1);
            while (m[j])
                j = (j + 1) & (cap - 1);
            m[j] = (uint32_t)g + 1;
        }
        free(a->map);
        a->map = m;
        a->map_cap = cap;
    }
    size_t mask = a->map_cap - 1;
    size_t j = buffer_ptr_hash(p) & mask;
    for (; a->map[j]; j = (j + 1) & mask) {
        if (a->groups[a->map[j] - 1].p == p) {
            *out = a->map[j] - 1;
            return 0;
        }
    }
    if (a->group_count == a->group_cap) {
        size_t cap = a->group_cap ? a->group_cap * 2 : 4;
        buffer_append_group *g = realloc(a->groups, cap * sizeof *g);
        if (!g) return INGOT_E_NOMEM;
        a->groups = g;
        a->group_cap = cap;
    }
    memset(&a->groups[a->group_count], 0, sizeof a->groups[0]);
    a->groups[a->group_count].p = p;
    a->map[j] = (uint32_t)a->group_count + 1;
    *out = (uint32_t)a->group_count++;
    return 0;
}

static int buffer_group_cmp(const void *x, const void *y)
{
    const buffer_append_group *a = x, *b = y;
    return a->p->id < b->p->id ? -1 : a->p->id > b->p->id;
}

/* A hot snapshot taken by an op: its partition's handover_mu is held until it is handed over. */
typedef struct buffer_hot {
    buffer_partition *p;
    buffer_snapshot *snap;
    bool older; /* p had unhanded snapshots before this one */
} buffer_hot;

typedef struct buffer_slot_cache {
    buffer_table *table;
    int64_t day;
    uint32_t group; /* UINT32_MAX: none yet */
} buffer_slot_cache;

static int buffer_tree_apply(void *self, dml_op *op)
{
    buffer_tree *tree = self;
    lp_batch *b = op->batch;
    buffer_apply a = {0};
    buffer_append_scratch scratch = {0};
    buffer_slot_cache *cache = NULL;
    uint32_t *line_group = NULL, *packed = NULL;
    buffer_namespace *ns;
    buffer_hot *hot = NULL;
    size_t locked = 0, hot_count = 0;
    int rc;

    if (!b || b->line_count == 0) return 0;
    if (!op->tables || !op->namespace_name || b->line_count > UINT32_MAX) return INGOT_E_INVALID;
    rc = buffer_ns_get(tree, op->namespace_name, op->namespace_len, &ns);
    if (rc) return rc;

    rc = INGOT_E_NOMEM;
    cache = malloc((op->tables->count ? op->tables->count : 1) * sizeof *cache);
    line_group = malloc(b->line_count * sizeof *line_group);
    packed = malloc(b->line_count * sizeof *packed);
    if (b->tag_count) {
        scratch.tag_ids = malloc(b->tag_count * sizeof *scratch.tag_ids);
        scratch.tag_cap = b->tag_count;
    }
    if (!cache || !line_group || !packed || (b->tag_count && !scratch.tag_ids)) goto fail;
    for (size_t i = 0; i < op->tables->count; i++) {
        cache[i].table = NULL;
        cache[i].group = UINT32_MAX;
    }

    /* group the lines by partition */
    for (size_t i = 0; i < b->line_count; i++) {
        const lp_line *ln = &b->lines[i];
        uint32_t slot = ln->table_slot;
        if (slot >= op->tables->count || !op->tables->tables[slot]) {
            rc = INGOT_E_INVALID;
            goto fail;
        }
        buffer_slot_cache *c = &cache[slot];
        int64_t day = buffer_day_of(ln->time_ns);
        if (c->group == UINT32_MAX || c->day != day) {
            if (!c->table) {
                rc = buffer_table_get(tree, ns, op->tables->tables[slot], &c->table);
                if (rc) goto fail;
            }
            buffer_partition *p;
            rc = buffer_part_get(c->table, day, &p);
            if (rc) goto fail;
            rc = buffer_group_of(&a, p, &c->group);
            if (rc) goto fail;
            c->day = day;
        }
        line_group[i] = c->group;
        a.groups[c->group].line_count++;
    }
    size_t at = 0;
    for (size_t g = 0; g < a.group_count; g++) {
        a.groups[g].lines = packed + at;
        at += a.groups[g].line_count;
        a.groups[g].line_count = 0;
    }
    for (size_t i = 0; i < b->line_count; i++) {
        buffer_append_group *g = &a.groups[line_group[i]];
        g->lines[g->line_count++] = (uint32_t)i;
    }
    if (a.group_count > 1) qsort(a.groups, a.group_count, sizeof *a.groups, buffer_group_cmp);

    /* room for the hot snapshots (without it this op takes none: the next append will) */
    if (tree->hot_bytes) hot = malloc(a.group_count * sizeof *hot);

    /* lock in partition id order, reserve everything, then append */
    for (; locked < a.group_count; locked++)
        pthread_mutex_lock(&a.groups[locked].p->mu);
    for (size_t g = 0; g < a.group_count; g++) {
        rc = buffer_partition_reserve(&a.groups[g], op, &scratch);
        if (rc) goto fail;
    }
    int64_t delta = 0;
    for (size_t g = 0; g < a.group_count; g++) {
        buffer_partition_append(&a.groups[g], op, &scratch);
        delta += a.groups[g].bytes_delta;
    }
    /* totals before unlocking, so that a snapshot of these rows is never subtracted first */
    atomic_fetch_add(&tree->totals.rows, b->line_count);
    atomic_fetch_add(&tree->totals.bytes, (size_t)delta);
    for (size_t g = 0; hot && g < a.group_count; g++) {
        buffer_partition *p = a.groups[g].p;
        if (p->bytes < tree->hot_bytes) continue;
        /* busy: another thread is handing p over right now; the next append retries */
        if (pthread_mutex_trylock(&p->handover_mu) != 0) continue;
        int src;
        buffer_snapshot *snap = buffer_snapshot_take_locked(p, buffer_tree_watermark(tree), &src);
        if (!snap) { /* NOMEM: the next append retries */
            pthread_mutex_unlock(&p->handover_mu);
            continue;
        }
        hot[hot_count++] = (buffer_hot){p, snap, buffer_partition_unhanded_locked(p, snap)};
        p->row_hint = snap->row_count + snap->row_count / 4;
    }
    while (locked > 0)
        pthread_mutex_unlock(&a.groups[--locked].p->mu);
    for (size_t i = 0; i < hot_count; i++) {
        buffer_snapshot_finish(hot[i].snap);
        buffer_partition_hand_over(hot[i].p, hot[i].snap, hot[i].older, tree->hot_cb, tree->hot_arg);
        pthread_mutex_unlock(&hot[i].p->handover_mu);
    }
    rc = 0;
fail:
    while (locked > 0)
        pthread_mutex_unlock(&a.groups[--locked].p->mu);
    free(a.groups);
    free(a.map);
    free(cache);
    free(line_group);
    free(packed);
    buffer_append_scratch_free(&scratch);
    free(hot);
    return rc;
}

dml_sink buffer_tree_as_sink(buffer_tree *tree)
{
    dml_sink s = {.self = tree, .apply = buffer_tree_apply};
    return s;
}
