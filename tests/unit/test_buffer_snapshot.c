/*
 * test_buffer_snapshot.c: snapshots of buffer partitions for persistence (buffer.h, "persistence:
 * snapshots"): queries see snapshots + buffer as before, persisted snapshots leave queries and
 * accounting, de-duplication across snapshots by sequence, the hot-partition trigger, the
 * watermark read under the partition lock, min_sequence through the life cycle, the sorted batch
 * for persist, references, the handover (a refused snapshot is offered again before the later
 * ones; a busy handover mutex skips the hot snapshot; concurrent hot and snapshot_all handovers
 * keep take order), and a concurrent run (writers, snapshotters, queries, persisters on one
 * partition; run it under -fsanitize=thread too).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "test.h"
#include "test_buffer_util.h"

#include "buffer/buffer_internal.h"

/* ---- helpers ----------------------------------------------------------------------------------
 */

typedef struct snap_list {
    buffer_snapshot *s[64];
    int n;
} snap_list;

static int collect(void *arg, buffer_snapshot *snap)
{
    snap_list *l = arg;
    if (l->n < 64)
        l->s[l->n++] = snap;
    else
        buffer_snapshot_release(snap);
    return 0;
}

static void release_all(snap_list *l)
{
    for (int i = 0; i < l->n; i++)
        buffer_snapshot_release(l->s[i]);
    l->n = 0;
}

/* One row of m at time t: host tag, optional region tag, field v (i64) and s (string). */
static int put(buffer_tree *tree, schema_table *t, uint64_t seq, int64_t time_ns, const char *host,
               const char *region, int64_t v, const char *s)
{
    tb_op o;
    tb_op_init(&o, "db", seq);
    tb_line(&o, t, time_ns);
    if (host) tb_tag(&o, "host", host);
    if (region) tb_tag(&o, "region", region);
    tb_i64(&o, "v", v);
    if (s) tb_string(&o, "s", s);
    int rc = tb_apply(tree, &o);
    tb_op_free(&o);
    return rc;
}

static char *sorted_text(const buffer_snapshot *snap, const uint32_t *key, size_t n, int *rc)
{
    query_batch *b = NULL;
    tb_text t = {0};
    tb_printf(&t, "%s", "");
    *rc = buffer_snapshot_sorted_batch(snap, key, n, &b);
    if (*rc == 0) {
        tb_render_batch(&t, b);
        query_batch_free(b);
    }
    return t.s;
}

/* ---- snapshot, query, persisted ----------------------------------------------------------------
 */

static void test_snapshot_query_same(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    CHECK_EQ_INT(put(tree, t, 1, 30, "b", "eu", 1, "x"), 0);
    CHECK_EQ_INT(put(tree, t, 2, 10, "a", NULL, 2, NULL), 0);
    CHECK_EQ_INT(put(tree, t, 4, 20, "a", "us", 3, "y"), 0);
    CHECK_EQ_INT(put(tree, t, 3, NS_PER_DAY + 5, "c", NULL, 4, NULL), 0);
    char *before = tb_query_all(tree, "db", "m");
    size_t bytes = buffer_tree_bytes(tree);
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 2);
    CHECK_EQ_INT(l.n, 2);
    char *after = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(after, before);
    CHECK_EQ_INT(buffer_tree_bytes(tree), bytes);
    CHECK_EQ_INT(buffer_tree_rows(tree), 4);
    /* nothing left in the buffers: a second round takes nothing */
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 0);

    buffer_snapshot_info a, b;
    buffer_snapshot_get_info(l.s[0], &a);
    buffer_snapshot_get_info(l.s[1], &b);
    if (strcmp(a.partition_key, "1970-01-01") != 0) { /* order of partitions is the tree's */
        buffer_snapshot_info x = a;
        a = b;
        b = x;
    }
    CHECK_EQ_STR(a.partition_key, "1970-01-01");
    CHECK_EQ_STR(a.namespace_name, "db");
    CHECK(a.table == t);
    CHECK_EQ_INT(a.row_count, 3);
    CHECK_EQ_INT(a.min_time_ns, 10);
    CHECK_EQ_INT(a.max_time_ns, 30);
    CHECK_EQ_INT(a.min_sequence, 1);
    CHECK_EQ_INT(a.max_sequence, 4);
    CHECK_EQ_INT(a.sequence_count, 3);
    if (a.sequence_count == 3) {
        CHECK_EQ_INT(a.sequences[0], 1);
        CHECK_EQ_INT(a.sequences[1], 2);
        CHECK_EQ_INT(a.sequences[2], 4);
    }
    CHECK_EQ_INT(a.tag_column_count, 2);
    if (a.tag_column_count == 2) {
        CHECK_EQ_STR(t->columns[a.tag_columns[0]].name, "host");
        CHECK_EQ_INT(a.tag_cardinality[0], 2);
        CHECK_EQ_STR(t->columns[a.tag_columns[1]].name, "region");
        CHECK_EQ_INT(a.tag_cardinality[1], 2);
    }
    CHECK_EQ_INT(a.watermark, 0);
    CHECK_EQ_STR(b.partition_key, "1970-01-02");
    CHECK_EQ_INT(b.row_count, 1);
    CHECK_EQ_INT(b.sequence_count, 1);
    CHECK_EQ_INT(b.tag_column_count, 1); /* region was never set in that partition */
    CHECK_EQ_INT(a.bytes + b.bytes, bytes);
    CHECK(a.partition_id != b.partition_id);

    /* writes after the snapshot go to a fresh buffer and are seen with the snapshot */
    CHECK_EQ_INT(put(tree, t, 5, 10, "a", NULL, 20, NULL), 0); /* overwrites v of (a, 10) */
    char *third = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(third, "1970-01-01 rows=3: host,region,s,v,time\n"
                        "a|null|null|20|10\n"
                        "a|us|\"y\"|3|20\n"
                        "b|eu|\"x\"|1|30\n"
                        "1970-01-02 rows=1: host,region,s,v,time\n"
                        "c|null|null|4|86400000000005\n");
    CHECK_EQ_INT(buffer_tree_rows(tree), 5);
    free(before);
    free(after);
    free(third);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

static void test_persisted_leaves_queries(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    CHECK_EQ_INT(put(tree, t, 1, 10, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(put(tree, t, 2, NS_PER_DAY, "a", NULL, 2, NULL), 0);
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 2);
    CHECK_EQ_INT(put(tree, t, 3, 20, "b", NULL, 3, NULL), 0);
    size_t bytes_all = buffer_tree_bytes(tree);
    buffer_snapshot_info info;
    buffer_snapshot_get_info(l.s[0], &info);
    CHECK_EQ_STR(info.partition_key, "1970-01-01");
    buffer_snapshot_persisted(l.s[0]);
    CHECK_EQ_INT(buffer_tree_rows(tree), 2);
    CHECK_EQ_INT(buffer_tree_bytes(tree), bytes_all - info.bytes);
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=1: host,v,time\n"
                      "b|3|20\n"
                      "1970-01-02 rows=1: host,v,time\n"
                      "a|2|86400000000000\n");
    free(got);
    buffer_snapshot_persisted(l.s[0]); /* twice: nothing more happens */
    CHECK_EQ_INT(buffer_tree_rows(tree), 2);
    /* the second day persisted: its partition holds nothing and leaves the answer */
    buffer_snapshot_persisted(l.s[1]);
    got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=1: host,v,time\n"
                      "b|3|20\n");
    free(got);
    /* snapshot and persist the rest: accounting goes back to zero */
    release_all(&l);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    buffer_snapshot_persisted(l.s[0]);
    CHECK_EQ_INT(buffer_tree_rows(tree), 0);
    CHECK_EQ_INT(buffer_tree_bytes(tree), 0);
    got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "");
    free(got);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

/* The snapshot bytes writers wait on: counted from the take to the persist, and a persist wakes a
 * waiter at once. */
typedef struct snap_waiter {
    buffer_tree *tree;
    size_t limit;
    atomic_int rv;
    atomic_bool done;
} snap_waiter;

static void *snap_waiter_main(void *arg)
{
    snap_waiter *w = arg;
    atomic_store(&w->rv, buffer_tree_wait_snapshot_bytes(w->tree, w->limit, 20000));
    atomic_store(&w->done, true);
    return NULL;
}

static void test_wait_snapshot_bytes(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    CHECK_EQ_INT(put(tree, t, 1, 10, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(put(tree, t, 2, NS_PER_DAY, "a", NULL, 2, NULL), 0);
    CHECK_EQ_INT(buffer_tree_snapshot_bytes(tree), 0); /* live rows are not snapshots */
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 2);
    buffer_snapshot_info a, b;
    buffer_snapshot_get_info(l.s[0], &a);
    buffer_snapshot_get_info(l.s[1], &b);
    CHECK_EQ_INT(buffer_tree_snapshot_bytes(tree), a.bytes + b.bytes);
    CHECK_EQ_INT(buffer_tree_wait_snapshot_bytes(tree, a.bytes + b.bytes, 0), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(buffer_tree_wait_snapshot_bytes(tree, b.bytes, 100), INGOT_E_BUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(waited >= 0.09 && waited < 5.0);
    snap_waiter w = {.tree = tree, .limit = b.bytes};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, snap_waiter_main, &w) == 0);
    struct timespec pause = {0, 100 * 1000000};
    nanosleep(&pause, NULL);
    CHECK(!atomic_load(&w.done));
    buffer_snapshot_persisted(l.s[0]); /* down to b's bytes: the waiter goes */
    pthread_join(th, NULL);
    CHECK_EQ_INT(atomic_load(&w.rv), 0);
    CHECK_EQ_INT(buffer_tree_snapshot_bytes(tree), b.bytes);
    buffer_snapshot_persisted(l.s[1]);
    CHECK_EQ_INT(buffer_tree_snapshot_bytes(tree), 0);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

/* ---- de-duplication across snapshots
 * -------------------------------------------------------------- */

static void test_dedup_across_snapshots(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    snap_list l = {0};
    tb_op o;
    /* snapshot 1: seq 1 sets x and y for (a, 1); b is added first so ids differ per snapshot */
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 5);
    tb_tag(&o, "host", "b");
    tb_i64(&o, "x", 100);
    tb_line(&o, t, 1);
    tb_tag(&o, "host", "a");
    tb_i64(&o, "x", 1);
    tb_i64(&o, "y", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    /* snapshot 2: seq 3 sets x only */
    tb_op_init(&o, "db", 3);
    tb_line(&o, t, 1);
    tb_tag(&o, "host", "a");
    tb_i64(&o, "x", 3);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    /* buffer: seq 2 (applied late) sets y and z: y wins over seq 1, x stays seq 3's */
    tb_op_init(&o, "db", 2);
    tb_line(&o, t, 1);
    tb_tag(&o, "host", "a");
    tb_i64(&o, "y", 2);
    tb_i64(&o, "z", 2);
    tb_line(&o, t, 5);
    tb_tag(&o, "host", "b");
    tb_i64(&o, "z", 7);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=2: host,x,y,z,time\n"
                      "a|3|2|2|1\n"
                      "b|100|null|7|5\n");
    free(got);
    /* a time filter applies to snapshot rows too */
    got = tb_query(tree, "db", "m", NULL, 0, 2, 10);
    CHECK_EQ_STR(got, "1970-01-01 rows=1: host,x,y,z,time\n"
                      "b|100|null|7|5\n");
    free(got);
    /* the second snapshot persisted: seq 3's x is gone from the buffer's view (it is in Parquet) */
    buffer_snapshot_persisted(l.s[1]);
    got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=2: host,x,y,z,time\n"
                      "a|1|2|2|1\n"
                      "b|100|null|7|5\n");
    free(got);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

/* ---- hot partitions
 * ------------------------------------------------------------------------------- */

typedef struct hot_ctx {
    snap_list list;
    int fired;
    int unlocked; /* the callback could lock the partition: it runs outside the lock */
} hot_ctx;

static int hot_cb(void *arg, buffer_snapshot *snap)
{
    hot_ctx *h = arg;
    h->fired++;
    if (pthread_mutex_trylock(&snap->part->mu) == 0) {
        h->unlocked++;
        pthread_mutex_unlock(&snap->part->mu);
    }
    return collect(&h->list, snap);
}

static void test_hot_partition(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    hot_ctx h = {0};
    buffer_tree_set_hot_partition(tree, 2000, hot_cb, &h);
    /* each op: one row of day 0 (~42 bytes) and, every 10th op, one row of day 1 */
    int fired_at[8], nf = 0;
    size_t rows_day0 = 0;
    for (int i = 1; i <= 200; i++) {
        tb_op o;
        tb_op_init(&o, "db", (uint64_t)i);
        tb_line(&o, t, i);
        tb_tag(&o, "host", "h");
        tb_i64(&o, "v", i);
        if (i % 10 == 0) {
            tb_line(&o, t, NS_PER_DAY + i);
            tb_i64(&o, "v", i);
        }
        int before = h.fired;
        CHECK_EQ_INT(tb_apply(tree, &o), 0);
        tb_op_free(&o);
        rows_day0++;
        if (h.fired != before) {
            CHECK_EQ_INT(h.fired, before + 1);
            if (nf < 8) fired_at[nf++] = i;
            buffer_snapshot_info info;
            buffer_snapshot_get_info(h.list.s[h.list.n - 1], &info);
            CHECK_EQ_STR(info.partition_key, "1970-01-01");
            CHECK(info.bytes >= 2000);
            CHECK_EQ_INT(info.row_count, rows_day0);
            CHECK_EQ_INT(info.max_sequence, i);
            rows_day0 = 0;
        }
    }
    /* 200 rows of ~42 bytes cross 2000 bytes every ~48 rows, at regular intervals */
    CHECK(h.fired >= 3 && h.fired <= 5);
    CHECK_EQ_INT(h.unlocked, h.fired);
    for (int k = 1; k < nf; k++)
        CHECK(fired_at[k] - fired_at[k - 1] >= 40);
    CHECK_EQ_INT(buffer_tree_rows(tree), 220);
    char *got = tb_query(tree, "db", "m", NULL, 0, 0, 1000);
    CHECK(strstr(got, "1970-01-01 rows=200:") != NULL);
    free(got);
    /* an op touching two hot partitions snapshots both, whole */
    buffer_tree_set_hot_partition(tree, 1, hot_cb, &h);
    int before = h.fired;
    tb_op o;
    tb_op_init(&o, "db", 1000);
    tb_line(&o, t, 7);
    tb_i64(&o, "v", 1);
    tb_line(&o, t, NS_PER_DAY + 7);
    tb_i64(&o, "v", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    CHECK_EQ_INT(h.fired, before + 2);
    release_all(&h.list);
    buffer_tree_free(tree);
    free(t);
}

/* ---- watermark --------------------------------------------------------------------------------
 */

static buffer_partition *g_wm_part;
static uint64_t g_wm_counter;
static int g_wm_locked_calls;

static uint64_t wm_source(void *arg)
{
    (void)arg;
    if (g_wm_part) {
        int rc = pthread_mutex_trylock(&g_wm_part->mu);
        if (rc == EBUSY) g_wm_locked_calls++; /* held (by this thread: the caller) */
        if (rc == 0) pthread_mutex_unlock(&g_wm_part->mu);
    }
    return ++g_wm_counter * 10;
}

static void test_watermark(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    buffer_tree_set_watermark_source(tree, wm_source, NULL);
    CHECK_EQ_INT(put(tree, t, 1, 1, "a", NULL, 1, NULL), 0);
    const schema_table *st;
    buffer_partition **parts;
    size_t n;
    CHECK_EQ_INT(buffer_tree_snapshot(tree, "db", "m", &st, &parts, &n, NULL, 0), 0);
    CHECK_EQ_INT(n, 1);
    g_wm_part = parts[0];
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    CHECK_EQ_INT(put(tree, t, 2, 2, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 0); /* empty: no snapshot */
    CHECK_EQ_INT(l.n, 2);
    buffer_snapshot_info a, b;
    buffer_snapshot_get_info(l.s[0], &a);
    buffer_snapshot_get_info(l.s[1], &b);
    CHECK_EQ_INT(a.watermark, 10);
    CHECK_EQ_INT(b.watermark, 20);
    CHECK(g_wm_counter >= 2);
    CHECK_EQ_INT(g_wm_locked_calls, (int)g_wm_counter); /* every read was under the mutex */
    /* the hot trigger reads it under the lock too */
    hot_ctx h = {0};
    buffer_tree_set_hot_partition(tree, 1, hot_cb, &h);
    CHECK_EQ_INT(put(tree, t, 3, 3, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(h.fired, 1);
    if (h.list.n == 1) {
        buffer_snapshot_get_info(h.list.s[0], &a);
        CHECK_EQ_INT(a.watermark, g_wm_counter * 10);
    }
    CHECK_EQ_INT(g_wm_locked_calls, (int)g_wm_counter);
    g_wm_part = NULL;
    buffer_partition_unref(parts[0]);
    free(parts);
    release_all(&h.list);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

/* ---- min_sequence -----------------------------------------------------------------------------
 */

static void test_min_sequence(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    schema_table *t2 = tb_table("n");
    snap_list l = {0};
    CHECK(buffer_tree_min_sequence(tree) == UINT64_MAX);
    CHECK_EQ_INT(put(tree, t, 7, 1, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 7);
    CHECK_EQ_INT(put(tree, t2, 5, 1, "a", NULL, 1, NULL), 0); /* another table */
    CHECK_EQ_INT(put(tree, t, 9, NS_PER_DAY, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 5);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 3);
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 5); /* snapshots still hold them */
    CHECK_EQ_INT(put(tree, t, 12, 2, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(put(tree, t, 4, 3, "a", NULL, 1, NULL), 0); /* applied late */
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 4);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    for (int i = 0; i < l.n; i++) {
        buffer_snapshot_info info;
        buffer_snapshot_get_info(l.s[i], &info);
        if (info.min_sequence == 4) buffer_snapshot_persisted(l.s[i]);
    }
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 5);
    for (int i = 0; i < l.n; i++) {
        buffer_snapshot_info info;
        buffer_snapshot_get_info(l.s[i], &info);
        if (info.table == t2) buffer_snapshot_persisted(l.s[i]);
    }
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 7);
    for (int i = 0; i < l.n; i++)
        buffer_snapshot_persisted(l.s[i]);
    CHECK(buffer_tree_min_sequence(tree) == UINT64_MAX);
    CHECK_EQ_INT(put(tree, t, 20, 2, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 20);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
    free(t2);
}

/* ---- the sorted batch -------------------------------------------------------------------------
 */

static void test_sorted_batch(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    uint32_t host = tb_col(t, "host", COLUMN_TAG);
    uint32_t region = tb_col(t, "region", COLUMN_TAG);
    uint32_t az = tb_col(t, "az", COLUMN_TAG);
    uint32_t v = tb_col(t, "v", COLUMN_I64);
    uint32_t unused_tag = tb_col(t, "zone", COLUMN_TAG);
    tb_op o;
    tb_op_init(&o, "db", 2);
    tb_line(&o, t, 30);
    tb_tag(&o, "host", "b");
    tb_tag(&o, "region", "us");
    tb_i64(&o, "v", 1);
    tb_line(&o, t, 10);
    tb_tag(&o, "host", "a");
    tb_tag(&o, "region", "us");
    tb_tag(&o, "az", "1");
    tb_i64(&o, "v", 2);
    tb_string(&o, "s", "old");
    tb_line(&o, t, 20);
    tb_tag(&o, "host", "a");
    tb_tag(&o, "region", "eu");
    tb_i64(&o, "v", 3);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_op_init(&o, "db", 1); /* older: loses to seq 2 where both set a field */
    tb_line(&o, t, 10);
    tb_tag(&o, "host", "a");
    tb_tag(&o, "region", "us");
    tb_tag(&o, "az", "1");
    tb_i64(&o, "v", 9);
    tb_string(&o, "s", "older");
    tb_bool(&o, "ok", true);
    tb_line(&o, t, 5);
    tb_tag(&o, "host", "c");
    tb_tag(&o, "region", "eu");
    tb_i64(&o, "v", 4);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_op_init(&o, "db", 3); /* newest: s set again, v not */
    tb_line(&o, t, 10);
    tb_tag(&o, "host", "a");
    tb_tag(&o, "region", "us");
    tb_tag(&o, "az", "1");
    tb_string(&o, "s", "new");
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    buffer_snapshot *snap = l.s[0];
    int rc;

    /* key (region, host): az is appended; tags in key order, fields by name, time last */
    uint32_t key1[] = {region, host};
    char *got = sorted_text(snap, key1, 2, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, "1970-01-01 rows=4: region,host,az,ok,s,v,time\n"
                      "eu|a|null|null|null|3|20\n"
                      "eu|c|null|null|null|4|5\n"
                      "us|a|1|true|\"new\"|2|10\n"
                      "us|b|null|null|null|1|30\n");
    free(got);
    /* no key: every tag by name (az, host, region); an unknown-to-snapshot key tag is skipped */
    uint32_t key2[] = {unused_tag};
    got = sorted_text(snap, key2, 1, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, "1970-01-01 rows=4: az,host,region,ok,s,v,time\n"
                      "null|a|eu|null|null|3|20\n"
                      "null|b|us|null|null|1|30\n"
                      "null|c|eu|null|null|4|5\n"
                      "1|a|us|true|\"new\"|2|10\n");
    free(got);
    /* the dictionaries hold only used values, sorted */
    query_batch *b;
    uint32_t key3[] = {host, az, region};
    CHECK_EQ_INT(buffer_snapshot_sorted_batch(snap, key3, 3, &b), 0);
    CHECK_EQ_STR(b->columns[0].name, "host");
    CHECK_EQ_INT(b->columns[0].data.tag.dict_count, 3);
    CHECK_EQ_STR(b->columns[2].name, "region");
    CHECK_EQ_INT(b->columns[2].data.tag.dict_count, 2);
    CHECK_EQ_INT(b->columns[2].data.tag.dict_offsets[1], 2); /* "eu" first */
    CHECK(memcmp(b->columns[2].data.tag.dict_bytes, "euus", 4) == 0);
    query_batch_free(b);
    /* bad keys: a field, a duplicate, out of range */
    uint32_t bad1[] = {v};
    CHECK_EQ_INT(buffer_snapshot_sorted_batch(snap, bad1, 1, &b), INGOT_E_INVALID);
    uint32_t bad2[] = {host, host};
    CHECK_EQ_INT(buffer_snapshot_sorted_batch(snap, bad2, 2, &b), INGOT_E_INVALID);
    uint32_t bad3[] = {999};
    CHECK_EQ_INT(buffer_snapshot_sorted_batch(snap, bad3, 1, &b), INGOT_E_INVALID);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

/* Many tags (ranks packed into more than one 64-bit word): order and de-duplication. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_sorted_batch_many_tags(void)
{
    enum { TAGS = 20, ROWS = 3000, KEYLEN = TAGS * 4 + 24 };
    static const char *names[TAGS] = {"t00", "t01", "t02", "t03", "t04", "t05", "t06",
                                      "t07", "t08", "t09", "t10", "t11", "t12", "t13",
                                      "t14", "t15", "t16", "t17", "t18", "t19"};
    static char values[17][4];
    for (int v = 0; v < 17; v++)
        memcpy(values[v], (char[4]){'v', (char)('0' + v / 10), (char)('0' + v % 10), 0}, 4);
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    char **want = malloc(ROWS * sizeof *want);
    unsigned seed = 7;
    /* 200 tag patterns of 20 tags with up to 9 choices (4 bits a rank: 80 bits in all) */
    static uint8_t pattern[200][TAGS];
    for (int p = 0; p < 200; p++)
        for (int g = 0; g < TAGS; g++)
            pattern[p][g] = (uint8_t)(rand_r(&seed) % 10);
    tb_op o;
    tb_op_init(&o, "db", 1);
    for (int r = 0; r < ROWS; r++) {
        int p = (int)(rand_r(&seed) % 200);
        want[r] = malloc(KEYLEN);
        char *k = want[r];
        int64_t time_ns = rand_r(&seed) % 3;
        tb_line(&o, t, time_ns);
        for (int g = 0; g < TAGS; g++) {
            int v = pattern[p][g];
            if (v == 0) {
                k += sprintf(k, "0---");
            } else {
                tb_tag(&o, names[g], values[v - 1]);
                k += sprintf(k, "1%s", values[v - 1]);
            }
        }
        sprintf(k, "%020" PRId64, time_ns);
        tb_i64(&o, "v", r);
    }
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    qsort(want, ROWS, sizeof *want, cmp_str);
    size_t distinct = 0;
    for (int r = 0; r < ROWS; r++)
        distinct += r == 0 || strcmp(want[r], want[r - 1]) != 0;
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    uint32_t key[TAGS];
    for (int g = 0; g < TAGS; g++)
        key[g] = tb_col(t, names[g], COLUMN_TAG);
    query_batch *b;
    CHECK_EQ_INT(buffer_snapshot_sorted_batch(l.s[0], key, TAGS, &b), 0);
    CHECK_EQ_INT(b->row_count, distinct);
    CHECK_EQ_INT(b->column_count, TAGS + 2);
    /* the rows, rendered like the expected keys, are exactly the distinct keys in order */
    size_t at = 0, bad = 0;
    for (size_t r = 0; r < b->row_count; r++) {
        char got[KEYLEN], *k = got;
        for (int g = 0; g < TAGS; g++) {
            const query_column *c = &b->columns[g];
            if (c->validity && !tb_bit(c->validity, r)) {
                k += sprintf(k, "0---");
            } else {
                int32_t id = c->data.tag.ids[r];
                k += sprintf(k, "1%.*s", 3, c->data.tag.dict_bytes + c->data.tag.dict_offsets[id]);
            }
        }
        sprintf(k, "%020" PRId64, b->columns[TAGS + 1].data.i64[r]);
        while (at < ROWS && at > 0 && strcmp(want[at], want[at - 1]) == 0)
            at++;
        if (at >= ROWS || strcmp(got, want[at]) != 0) bad++;
        at++;
    }
    CHECK_EQ_INT(bad, 0);
    query_batch_free(b);
    for (int r = 0; r < ROWS; r++)
        free(want[r]);
    free(want);
    release_all(&l);
    buffer_tree_free(tree);
    free(t);
}

/* ---- references --------------------------------------------------------------------------------
 */

static void test_retain_release(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    for (int i = 0; i < 300; i++)
        CHECK_EQ_INT(put(tree, t, (uint64_t)i + 1, i, i % 2 ? "a" : "b", NULL, i, "str"), 0);
    snap_list l = {0};
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    buffer_snapshot *snap = l.s[0];
    /* a reader (a query stream or a persist job) holds its own reference */
    buffer_snapshot_retain(snap);
    buffer_snapshot_persisted(snap);
    buffer_snapshot_release(snap); /* the taker's */
    l.n = 0;
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "");
    free(got);
    /* the reader's data is still whole, even after the tree is gone */
    buffer_tree_free(tree);
    buffer_snapshot_info info;
    buffer_snapshot_get_info(snap, &info);
    CHECK_EQ_STR(info.namespace_name, "db");
    CHECK_EQ_INT(info.row_count, 300);
    query_batch *b;
    CHECK_EQ_INT(buffer_snapshot_sorted_batch(snap, NULL, 0, &b), 0);
    CHECK_EQ_INT(b->row_count, 300);
    query_batch_free(b);
    buffer_snapshot_release(snap);

    /* snapshots never persisted are dropped with the tree */
    tree = buffer_tree_new();
    CHECK_EQ_INT(put(tree, t, 1, 1, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, collect, &l), 1);
    buffer_tree_free(tree);
    buffer_snapshot_persisted(l.s[0]); /* after the tree: a no-op */
    release_all(&l);
    free(t);
}

/* ---- handover: refusals and order ---------------------------------------------------------------
 */

/* A callback that refuses the next `refuse` snapshots offered, and records every offer. */
typedef struct offer_ctx {
    int refuse;
    buffer_snapshot *offered[32]; /* every offer, refused ones included */
    bool took[32];
    int n;
    snap_list taken;
} offer_ctx;

static int offer_cb(void *arg, buffer_snapshot *snap)
{
    offer_ctx *c = arg;
    bool refuse = c->refuse > 0;
    if (refuse) c->refuse--;
    if (c->n < 32) {
        c->offered[c->n] = snap;
        c->took[c->n] = !refuse;
        c->n++;
    }
    if (refuse) return 1; /* keeps nothing: the buffer drops its reference */
    return collect(&c->taken, snap);
}

static void check_seq(buffer_snapshot *snap, uint64_t min, uint64_t max)
{
    buffer_snapshot_info info;
    buffer_snapshot_get_info(snap, &info);
    CHECK_EQ_INT(info.min_sequence, min);
    CHECK_EQ_INT(info.max_sequence, max);
}

/* Persist (detach) and release everything c took. */
static void persist_taken(offer_ctx *c)
{
    for (int i = 0; i < c->taken.n; i++)
        buffer_snapshot_persisted(c->taken.s[i]);
    release_all(&c->taken);
}

static void test_refused_snapshot_offered_again(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    offer_ctx c = {0};
    CHECK_EQ_INT(put(tree, t, 1, 10, "a", NULL, 1, NULL), 0);
    CHECK_EQ_INT(put(tree, t, 2, 20, "a", NULL, 2, NULL), 0);
    c.refuse = 1;
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 0); /* s1 taken, refused */
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(c.taken.n, 0);
    buffer_snapshot *s1 = c.offered[0];
    /* still attached: queries see its rows, the totals keep them */
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=2: host,v,time\n"
                      "a|1|10\n"
                      "a|2|20\n");
    free(got);
    CHECK_EQ_INT(buffer_tree_rows(tree), 2);
    CHECK_EQ_INT(buffer_tree_min_sequence(tree), 1);

    /* the next handover offers s1 first, then s2 */
    CHECK_EQ_INT(put(tree, t, 3, 30, "b", NULL, 3, NULL), 0);
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 2);
    CHECK_EQ_INT(c.n, 3);
    CHECK_EQ_INT(c.taken.n, 2);
    if (c.taken.n == 2) {
        CHECK(c.taken.s[0] == s1);
        check_seq(c.taken.s[0], 1, 2);
        check_seq(c.taken.s[1], 3, 3);
    }
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 0); /* nothing left to offer */
    CHECK_EQ_INT(c.n, 3);
    persist_taken(&c);
    CHECK_EQ_INT(buffer_tree_rows(tree), 0);

    /* a refusal stops the handover: the later snapshot is not offered before the refused one */
    CHECK_EQ_INT(put(tree, t, 4, 40, "a", NULL, 4, NULL), 0);
    c.refuse = 1;
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 0); /* s3 refused */
    CHECK_EQ_INT(put(tree, t, 5, 50, "a", NULL, 5, NULL), 0);
    c.refuse = 1;
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 0); /* s3 refused, s4 not offered */
    CHECK_EQ_INT(c.n, 5);
    CHECK(c.offered[3] == c.offered[4]);
    CHECK_EQ_INT(buffer_tree_rows(tree), 2);
    /* an empty buffer still hands over what is unhanded (persist_all at shutdown) */
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 2);
    CHECK_EQ_INT(c.taken.n, 2);
    if (c.taken.n == 2) {
        CHECK(c.taken.s[0] == c.offered[3]);
        check_seq(c.taken.s[0], 4, 4);
        check_seq(c.taken.s[1], 5, 5);
    }
    persist_taken(&c);
    CHECK_EQ_INT(buffer_tree_rows(tree), 0);
    CHECK(buffer_tree_min_sequence(tree) == UINT64_MAX);

    /* refused snapshots never handed are dropped with the tree (ASan: no leak, no double free) */
    CHECK_EQ_INT(put(tree, t, 6, 60, "a", NULL, 6, NULL), 0);
    c.refuse = 1;
    CHECK_EQ_INT(buffer_tree_snapshot_all(tree, offer_cb, &c), 0);
    buffer_tree_free(tree);
    free(t);
}

static void test_hot_refusal_and_busy_handover(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    offer_ctx c = {0};
    buffer_tree_set_hot_partition(tree, 1, offer_cb, &c); /* every append is hot */
    c.refuse = 1;
    CHECK_EQ_INT(put(tree, t, 1, 10, "a", NULL, 1, NULL), 0); /* s1 refused */
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(put(tree, t, 2, 20, "a", NULL, 2, NULL), 0); /* s1, then s2 */
    CHECK_EQ_INT(c.n, 3);
    CHECK_EQ_INT(c.taken.n, 2);
    if (c.taken.n == 2) {
        CHECK(c.taken.s[0] == c.offered[0]);
        check_seq(c.taken.s[0], 1, 1);
        check_seq(c.taken.s[1], 2, 2);
    }
    persist_taken(&c);
    /* refused twice in a row: the second hot snapshot waits behind the first */
    c.refuse = 2;
    CHECK_EQ_INT(put(tree, t, 3, 30, "a", NULL, 3, NULL), 0); /* s3 refused */
    CHECK_EQ_INT(put(tree, t, 4, 40, "a", NULL, 4, NULL), 0); /* s3 refused, s4 not offered */
    CHECK_EQ_INT(c.n, 5);
    CHECK(c.offered[3] == c.offered[4]);
    CHECK_EQ_INT(put(tree, t, 5, 50, "a", NULL, 5, NULL), 0); /* s3, s4, s5 */
    CHECK_EQ_INT(c.taken.n, 3);
    if (c.taken.n == 3) {
        check_seq(c.taken.s[0], 3, 3);
        check_seq(c.taken.s[1], 4, 4);
        check_seq(c.taken.s[2], 5, 5);
    }
    persist_taken(&c);

    /* another thread handing the partition over (its handover mutex held): no hot snapshot */
    const schema_table *st;
    buffer_partition **parts;
    size_t np;
    CHECK_EQ_INT(put(tree, t, 6, 60, "a", NULL, 6, NULL), 0);
    CHECK_EQ_INT(buffer_tree_snapshot(tree, "db", "m", &st, &parts, &np, NULL, 0), 0);
    persist_taken(&c);
    CHECK_EQ_INT(np, 1);
    if (np == 1) {
        int before = c.n;
        pthread_mutex_lock(&parts[0]->handover_mu);
        CHECK_EQ_INT(put(tree, t, 7, 70, "a", NULL, 7, NULL), 0);
        CHECK_EQ_INT(c.n, before);
        pthread_mutex_lock(&parts[0]->mu);
        CHECK_EQ_INT(parts[0]->row_count, 1); /* still in the buffer */
        pthread_mutex_unlock(&parts[0]->mu);
        pthread_mutex_unlock(&parts[0]->handover_mu);
        CHECK_EQ_INT(put(tree, t, 8, 80, "a", NULL, 8, NULL), 0); /* the next append takes it */
        CHECK_EQ_INT(c.n, before + 1);
        CHECK_EQ_INT(c.taken.n, 1);
        if (c.taken.n == 1) check_seq(c.taken.s[0], 7, 8);
        persist_taken(&c);
        buffer_partition_unref(parts[0]);
    }
    free(parts);
    CHECK_EQ_INT(buffer_tree_rows(tree), 0);
    buffer_tree_free(tree);
    free(t);
}

/*
 * Order under concurrency: writers append to one partition with every append hot, and a thread
 * runs snapshot_all in a loop, both handing snapshots over; the callback refuses some. Every
 * snapshot taken must be the oldest attached one of its partition when it is offered (the
 * callback persists it at once), and every row must be handed exactly once.
 */
#define O_WRITERS 3
#define O_OPS 2500 /* per writer */

static buffer_tree *o_tree;
static schema_table *o_table;
static _Atomic uint64_t o_next_seq = 1;
static _Atomic int o_writers_done, o_out_of_order, o_bad;
static _Atomic long o_offers, o_refusals, o_all_handed;
static _Atomic size_t o_rows_handed;

static int o_cb(void *arg, buffer_snapshot *snap)
{
    (void)arg;
    buffer_partition *p = snap->part;
    long k = atomic_fetch_add(&o_offers, 1);
    if (k % 4 == 0) sched_yield(); /* a slow callback: others may take snapshots meanwhile */
    pthread_mutex_lock(&p->mu);
    bool first = p->snap_count > 0 && p->snaps[0] == snap;
    pthread_mutex_unlock(&p->mu);
    if (!first) atomic_fetch_add(&o_out_of_order, 1);
    if (!atomic_load(&o_writers_done) && k % 7 == 3) { /* refused: offered again later */
        atomic_fetch_add(&o_refusals, 1);
        return 1;
    }
    buffer_snapshot_info info;
    buffer_snapshot_get_info(snap, &info);
    atomic_fetch_add(&o_rows_handed, info.row_count);
    buffer_snapshot_persisted(snap);
    buffer_snapshot_release(snap);
    return 0;
}

static void *o_writer(void *arg)
{
    (void)arg;
    for (int k = 0; k < O_OPS; k++) {
        uint64_t id = atomic_fetch_add(&o_next_seq, 1);
        tb_op o;
        tb_op_init(&o, "db", id);
        tb_line(&o, o_table, (int64_t)id);
        tb_i64(&o, "v", (int64_t)id);
        if (tb_apply(o_tree, &o) != 0) atomic_fetch_add(&o_bad, 1);
        tb_op_free(&o);
    }
    return NULL;
}

static void *o_snapshotter(void *arg)
{
    (void)arg;
    while (!atomic_load(&o_writers_done)) {
        int n = buffer_tree_snapshot_all(o_tree, o_cb, NULL);
        if (n < 0)
            atomic_fetch_add(&o_bad, 1);
        else
            atomic_fetch_add(&o_all_handed, n);
    }
    return NULL;
}

static void test_handover_order_concurrent(void)
{
    o_tree = buffer_tree_new();
    o_table = tb_table("m");
    buffer_tree_set_hot_partition(o_tree, 1, o_cb, NULL);
    pthread_t w[O_WRITERS], sn;
    pthread_create(&sn, NULL, o_snapshotter, NULL);
    for (int i = 0; i < O_WRITERS; i++)
        pthread_create(&w[i], NULL, o_writer, NULL);
    for (int i = 0; i < O_WRITERS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&o_writers_done, 1);
    pthread_join(sn, NULL);
    /* what is left (the buffer, refused snapshots) goes now, in order */
    CHECK(buffer_tree_snapshot_all(o_tree, o_cb, NULL) >= 0);
    CHECK_EQ_INT(atomic_load(&o_out_of_order), 0);
    CHECK_EQ_INT(atomic_load(&o_bad), 0);
    CHECK_EQ_INT(atomic_load(&o_rows_handed), O_WRITERS * O_OPS);
    CHECK_EQ_INT(buffer_tree_rows(o_tree), 0);
    CHECK(atomic_load(&o_refusals) > 0);
    printf("offers %ld (refused %ld, by snapshot_all %ld), out of order %d\n",
           atomic_load(&o_offers), atomic_load(&o_refusals), atomic_load(&o_all_handed),
           atomic_load(&o_out_of_order));
    buffer_tree_free(o_tree);
    free(o_table);
}

/* ---- concurrency -------------------------------------------------------------------------------
 */

/*
 * Writers append ops to one partition (rows: marker = op id, n = rows of the op, distinct times);
 * snapshotters snapshot it (snapshot_all and the hot trigger) and queue the snapshots; a
 * persister detaches them. Readers check every query answer (each op all or nothing) and every raw
 * frozen copy (each op's rows exactly once: no row both in a snapshot and in the buffer, none
 * twice). At the end, rows persisted + rows held = rows written.
 */
#define C_WRITERS 2
#define C_OPS 2000       /* per writer at least, and on until the readers did enough rounds */
#define C_MIN_CHECKS 300 /* query answers and raw copies each */
#define C_MAX_ROWS 20
#define C_MAX_OPS 400000 /* ids stay below: writers stop there whatever happens */

static buffer_tree *c_tree;
static schema_table *c_table;
static _Atomic uint64_t c_next_seq = 1;
static _Atomic int c_writers_done, c_bad, c_persister_done;
static _Atomic size_t c_rows_written, c_rows_persisted;
static _Atomic long c_batches, c_freezes, c_snapshots; /* checks of non-empty answers/copies */
static pthread_mutex_t c_q_mu = PTHREAD_MUTEX_INITIALIZER;
static buffer_snapshot *c_queue[4096]; /* c_q_mu */
static size_t c_q_head, c_q_tail;      /* c_q_mu */

static int c_enqueue(void *arg, buffer_snapshot *snap)
{
    (void)arg;
    atomic_fetch_add(&c_snapshots, 1);
    pthread_mutex_lock(&c_q_mu);
    while (c_q_tail - c_q_head == 4096) { /* full: wait for the persister */
        pthread_mutex_unlock(&c_q_mu);
        sched_yield();
        pthread_mutex_lock(&c_q_mu);
    }
    c_queue[c_q_tail++ % 4096] = snap;
    pthread_mutex_unlock(&c_q_mu);
    return 0;
}

static void *c_writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 31u + 3;
    for (int k = 0;; k++) {
        if (k >= C_OPS && atomic_load(&c_batches) >= C_MIN_CHECKS &&
            atomic_load(&c_freezes) >= C_MIN_CHECKS)
            break;
        /* stay close to the readers: ~16 ops per check (they always find rows: see persister) */
        while (atomic_load(&c_next_seq) >
               (uint64_t)(atomic_load(&c_batches) + atomic_load(&c_freezes) + 64) * 16)
            usleep(20);
        uint64_t id = atomic_fetch_add(&c_next_seq, 1);
        if (id >= C_MAX_OPS) break;
        int rows = 1 + (int)(rand_r(&seed) % C_MAX_ROWS);
        tb_op o;
        tb_op_init(&o, "db", id);
        for (int r = 0; r < rows; r++) {
            tb_line(&o, c_table, (int64_t)id * 1000 + r);
            tb_tag(&o, "host", r % 2 ? "h1" : "h0");
            tb_i64(&o, "marker", (int64_t)id);
            tb_i64(&o, "n", rows);
        }
        if (tb_apply(c_tree, &o) != 0) atomic_fetch_add(&c_bad, 1);
        tb_op_free(&o);
        atomic_fetch_add(&c_rows_written, (size_t)rows);
    }
    return NULL;
}

static void *c_snapshotter(void *arg)
{
    (void)arg;
    while (!atomic_load(&c_writers_done)) {
        if (buffer_tree_snapshot_all(c_tree, c_enqueue, NULL) < 0) atomic_fetch_add(&c_bad, 1);
        usleep(100);
    }
    return NULL;
}

static void *c_persister(void *arg)
{
    (void)arg;
    for (;;) {
        /* while writers run, three snapshots stay unpersisted: queries merge several */
        size_t keep = atomic_load(&c_writers_done) ? 0 : 3;
        buffer_snapshot *s = NULL;
        pthread_mutex_lock(&c_q_mu);
        if (c_q_tail - c_q_head > keep) s = c_queue[c_q_head++ % 4096];
        pthread_mutex_unlock(&c_q_mu);
        if (!s) {
            if (atomic_load(&c_persister_done) && keep == 0) return NULL;
            sched_yield();
            continue;
        }
        buffer_snapshot_info info;
        buffer_snapshot_get_info(s, &info);
        /* a persist job reads the sorted batch while queries may read the snapshot */
        query_batch *b;
        if (info.min_sequence % 4 == 0) {
            if (buffer_snapshot_sorted_batch(s, NULL, 0, &b) != 0 || b->row_count != info.row_count)
                atomic_fetch_add(&c_bad, 1);
            else
                query_batch_free(b);
        }
        buffer_snapshot_persisted(s);
        atomic_fetch_add(&c_rows_persisted, info.row_count);
        buffer_snapshot_release(s);
    }
}

/* Per marker, rows seen must equal n (whole op, once). */
static int c_check_rows(const int64_t *marker, const int64_t *n, size_t rows, int *counts)
{
    for (size_t r = 0; r < rows; r++) {
        if (marker[r] <= 0 || marker[r] >= C_MAX_OPS) return -1;
        counts[marker[r]] = 0;
    }
    for (size_t r = 0; r < rows; r++)
        counts[marker[r]]++;
    for (size_t r = 0; r < rows; r++)
        if (counts[marker[r]] != n[r]) return -1;
    return 0;
}

static void *c_reader(void *arg)
{
    int *counts = calloc(C_MAX_OPS, sizeof *counts);
    int64_t *q_marker = NULL, *q_n = NULL; /* a query's rows */
    size_t rows_cap = 0;
    bool raw = (uintptr_t)arg == 1;
    while (!atomic_load(&c_writers_done)) {
        if (!raw) {
            query_exec qe = buffer_tree_as_query_exec(c_tree);
            query_request req = {.namespace_name = "db",
                                 .table_name = "m",
                                 .min_time_ns = INT64_MIN,
                                 .max_time_ns = INT64_MAX};
            query_stream *s;
            char err[64];
            if (qe.query(qe.self, &req, &s, err, sizeof err) != 0) continue; /* no table yet */
            /* the partition's rows may come in several batches (QUERY_BATCH_MAX_ROWS): an op
             * may span two, so the rows of the whole answer (one partition) are checked */
            query_batch *b;
            int rc;
            size_t rows = 0;
            while ((rc = query_stream_next(s, &b)) == 1) {
                const query_column *m = NULL, *n = NULL;
                for (size_t c = 0; c < b->column_count; c++) {
                    if (strcmp(b->columns[c].name, "marker") == 0) m = &b->columns[c];
                    if (strcmp(b->columns[c].name, "n") == 0) n = &b->columns[c];
                }
                if (b->row_count && (!m || !n)) atomic_fetch_add(&c_bad, 1);
                if (b->row_count && m && n) {
                    if (rows + b->row_count > rows_cap) {
                        rows_cap = (rows + b->row_count) * 2;
                        int64_t *qm = realloc(q_marker, rows_cap * sizeof *qm);
                        if (qm) q_marker = qm;
                        int64_t *qn = realloc(q_n, rows_cap * sizeof *qn);
                        if (qn) q_n = qn;
                        if (!qm || !qn) abort(); /* a test out of memory */
                    }
                    memcpy(q_marker + rows, m->data.i64, b->row_count * sizeof *q_marker);
                    memcpy(q_n + rows, n->data.i64, b->row_count * sizeof *q_n);
                    rows += b->row_count;
                }
                query_batch_free(b);
            }
            if (rows && c_check_rows(q_marker, q_n, rows, counts)) atomic_fetch_add(&c_bad, 1);
            if (rows) atomic_fetch_add(&c_batches, 1);
            if (rc < 0) atomic_fetch_add(&c_bad, 1);
            query_stream_close(s);
        } else {
            const schema_table *st;
            buffer_partition **parts;
            size_t np;
            if (buffer_tree_snapshot(c_tree, "db", "m", &st, &parts, &np, NULL, 0) != 0) continue;
            bool want[SCHEMA_MAX_COLUMNS] = {false};
            want[1] = want[2] = want[3] = true;
            for (size_t i = 0; i < np; i++) {
                buffer_frozen f;
                if (buffer_partition_freeze(parts[i], want, 4, INT64_MIN, INT64_MAX, &f) != 0) {
                    atomic_fetch_add(&c_bad, 1);
                } else {
                    if (f.row_count) {
                        /* raw rows, before de-duplication: each op's rows exactly once */
                        uint32_t mc = 0, nc = 0;
                        for (uint32_t c = 1; c < f.column_count && c < 4; c++) {
                            if (strcmp(st->columns[c].name, "marker") == 0) mc = c;
                            if (strcmp(st->columns[c].name, "n") == 0) nc = c;
                        }
                        if (!mc || !nc ||
                            c_check_rows(f.columns[mc].values, f.columns[nc].values, f.row_count,
                                         counts))
                            atomic_fetch_add(&c_bad, 1);
                    }
                    if (f.row_count) atomic_fetch_add(&c_freezes, 1);
                    buffer_frozen_free(&f);
                }
                buffer_partition_unref(parts[i]);
            }
            free(parts);
        }
    }
    free(counts);
    free(q_marker);
    free(q_n);
    return NULL;
}

static void test_concurrent_snapshots(void)
{
    c_tree = buffer_tree_new();
    c_table = tb_table("m");
    tb_col(c_table, "host", COLUMN_TAG);
    tb_col(c_table, "marker", COLUMN_I64);
    tb_col(c_table, "n", COLUMN_I64);
    buffer_tree_set_hot_partition(c_tree, 16 * 1024, c_enqueue, NULL);
    pthread_t w[C_WRITERS], sn, pe, rd[2];
    pthread_create(&pe, NULL, c_persister, NULL);
    pthread_create(&sn, NULL, c_snapshotter, NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&rd[i], NULL, c_reader, (void *)(uintptr_t)i);
    for (int i = 0; i < C_WRITERS; i++)
        pthread_create(&w[i], NULL, c_writer, (void *)(uintptr_t)i);
    for (int i = 0; i < C_WRITERS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&c_writers_done, 1);
    pthread_join(sn, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    atomic_store(&c_persister_done, 1);
    pthread_join(pe, NULL);
    size_t held = buffer_tree_rows(c_tree);
    CHECK_EQ_INT(held + atomic_load(&c_rows_persisted), atomic_load(&c_rows_written));
    /* what is held is what a query shows (distinct times: no row collapses) */
    char *all = tb_query_all(c_tree, "db", "m");
    size_t lines = 0;
    for (char *p = all; *p; p++)
        lines += *p == '\n';
    CHECK_EQ_INT(lines, held ? held + 1 : 0);
    free(all);
    CHECK_EQ_INT(atomic_load(&c_bad), 0);
    CHECK(atomic_load(&c_snapshots) > 1);
    CHECK(atomic_load(&c_batches) >= C_MIN_CHECKS);
    CHECK(atomic_load(&c_freezes) >= C_MIN_CHECKS);
    printf("snapshots %ld, queries %ld, raw copies %ld, rows persisted %zu of %zu\n",
           atomic_load(&c_snapshots), atomic_load(&c_batches), atomic_load(&c_freezes),
           atomic_load(&c_rows_persisted), atomic_load(&c_rows_written));
    buffer_tree_free(c_tree);
    free(c_table);
}

int main(void)
{
    TEST_RUN(test_snapshot_query_same);
    TEST_RUN(test_persisted_leaves_queries);
    TEST_RUN(test_wait_snapshot_bytes);
    TEST_RUN(test_dedup_across_snapshots);
    TEST_RUN(test_hot_partition);
    TEST_RUN(test_watermark);
    TEST_RUN(test_min_sequence);
    TEST_RUN(test_sorted_batch);
    TEST_RUN(test_sorted_batch_many_tags);
    TEST_RUN(test_retain_release);
    TEST_RUN(test_refused_snapshot_offered_again);
    TEST_RUN(test_hot_refusal_and_busy_handover);
    TEST_RUN(test_handover_order_concurrent);
    TEST_RUN(test_concurrent_snapshots);
    TEST_MAIN_END();
}
