/*
 * Unit tests of the persister (persist.h): the sort key rules, and whole jobs against the real
 * buffer and SQLite catalog with a test-only object store that fails or blocks on demand:
 * failed puts are retried, back-pressure turns on and off, nothing is lost, memory stays bounded;
 * a partition whose puts keep failing parks its jobs (they keep their permits) without holding
 * back other partitions, a job resumes at the step that failed (same bytes, same path, no second
 * put), one partition's files reach the catalog in snapshot order, and stop waits for retried
 * jobs. Waiting is by polling with a deadline (the persister has no hook for "a put failed").
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "buffer/buffer.h"
#include "catalog/catalog.h"
#include "dml/schema.h"
#include "persist/persist.h"
#include "test.h"
#include "util/hash.h"

/* --- sort key ------------------------------------------------------------------------------ */

static schema_table key_table;

static buffer_snapshot_info info_with_tags(const uint32_t *cols, const uint32_t *card, size_t n)
{
    static const char *names[] = {"time", "host", "dc", "region", "v"};
    key_table.column_count = 5;
    for (int i = 0; i < 5; i++) {
        key_table.columns[i].name = names[i];
        key_table.columns[i].name_len = (uint32_t)strlen(names[i]);
        key_table.columns[i].type = i == 0 ? COLUMN_TIME : i == 4 ? COLUMN_I64 : COLUMN_TAG;
    }
    buffer_snapshot_info info = {.table = &key_table, .tag_columns = cols, .tag_cardinality = card,
                                 .tag_column_count = n};
    return info;
}

static void test_first_sort_key_by_cardinality_then_name(void)
{
    uint32_t cols[] = {1, 2, 3}, card[] = {7, 2, 2};
    buffer_snapshot_info info = info_with_tags(cols, card, 3);
    uint32_t *key;
    size_t n;
    char *updated;
    CHECK_EQ_INT(persist_sort_key("[]", &info, &key, &n, &updated), 0);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_INT(key[0], 2); /* dc: 2 values, before region (2 values) by name */
        CHECK_EQ_INT(key[1], 3);
        CHECK_EQ_INT(key[2], 1); /* host: 7 values */
    }
    CHECK_EQ_STR(updated, "[\"dc\",\"region\",\"host\",\"time\"]");
    free(key);
    free(updated);
}

static void test_stored_key_only_gains_columns_before_time(void)
{
    uint32_t cols[] = {1, 2}, card[] = {1, 100};
    buffer_snapshot_info info = info_with_tags(cols, card, 2);
    uint32_t *key;
    size_t n;
    char *updated;
    CHECK_EQ_INT(persist_sort_key("[\"region\",\"host\",\"time\"]", &info, &key, &n, &updated), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_INT(key[0], 1); /* host, in the stored order; region is absent from the data */
        CHECK_EQ_INT(key[1], 2); /* dc is new: after the stored columns */
    }
    CHECK_EQ_STR(updated, "[\"region\",\"host\",\"dc\",\"time\"]");
    free(key);
    free(updated);
    uint32_t one[] = {1}, c1[] = {5};
    info = info_with_tags(one, c1, 1);
    CHECK_EQ_INT(persist_sort_key("[\"region\",\"host\",\"time\"]", &info, &key, &n, &updated), 0);
    CHECK_EQ_INT(n, 1);
    CHECK(updated == NULL); /* nothing new: the catalog key stays */
    free(key);
    CHECK_EQ_INT(persist_sort_key("not json", &info, &key, &n, &updated), INGOT_E_INVALID);
}

/* --- a test object store ------------------------------------------------------------------- */

#define TS_MAX_PATHS 64

typedef struct test_store {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int fail_puts;      /* the next N puts fail with -EIO */
    bool blocked;       /* puts wait while set */
    int puts_ok;
    int puts_failed;
    size_t bytes;
    /* puts to paths containing fail_match fail with -EIO (all of them, or with fail_one_path
     * only those to the first such path, failing_path) */
    char fail_match[32];
    bool fail_one_path;
    char failing_path[256];
    uint64_t failing_hash;  /* of the bytes of failing_path's first attempt */
    int failing_changed;    /* attempts at failing_path with other bytes than the first */
    char ok_paths[TS_MAX_PATHS][256]; /* paths put successfully, in order */
    int ok_twice;           /* successful puts to a path already put successfully */
} test_store;

static bool ts_should_fail(test_store *t, const char *path, const void *data, size_t len)
{
    if (!t->fail_match[0] || !strstr(path, t->fail_match)) return false;
    uint64_t h = hash_bytes(data, len, len);
    if (!t->failing_path[0]) {
        snprintf(t->failing_path, sizeof t->failing_path, "%s", path);
        t->failing_hash = h;
        return true;
    }
    if (!strcmp(path, t->failing_path)) {
        if (h != t->failing_hash) t->failing_changed++;
        return true;
    }
    return !t->fail_one_path;
}

static int ts_put(void *self, const char *path, const void *data, size_t len)
{
    test_store *t = self;
    pthread_mutex_lock(&t->mu);
    while (t->blocked) pthread_cond_wait(&t->cond, &t->mu);
    int rv = 0;
    if (t->fail_puts > 0) {
        t->fail_puts--;
        t->puts_failed++;
        rv = -EIO;
    } else if (ts_should_fail(t, path, data, len)) {
        t->puts_failed++;
        rv = -EIO;
    } else {
        for (int i = 0; i < t->puts_ok && i < TS_MAX_PATHS; i++)
            if (!strcmp(t->ok_paths[i], path)) t->ok_twice++;
        if (t->puts_ok < TS_MAX_PATHS)
            snprintf(t->ok_paths[t->puts_ok], sizeof t->ok_paths[0], "%s", path);
        t->puts_ok++;
        t->bytes += len;
    }
    pthread_mutex_unlock(&t->mu);
    return rv;
}

/* Make puts to paths containing match fail (NULL: heal); one_path: only the first such path. */
static void ts_fail_matching(test_store *t, const char *match, bool one_path)
{
    pthread_mutex_lock(&t->mu);
    snprintf(t->fail_match, sizeof t->fail_match, "%s", match ? match : "");
    t->fail_one_path = one_path;
    if (!match) t->failing_path[0] = 0;
    pthread_mutex_unlock(&t->mu);
}

typedef struct ts_counts {
    int ok, failed, ok_twice, failing_changed;
    char failing_path[256];
} ts_counts;

static ts_counts ts_get_counts(test_store *t)
{
    ts_counts c;
    pthread_mutex_lock(&t->mu);
    c = (ts_counts){t->puts_ok, t->puts_failed, t->ok_twice, t->failing_changed, ""};
    snprintf(c.failing_path, sizeof c.failing_path, "%s", t->failing_path);
    pthread_mutex_unlock(&t->mu);
    return c;
}

static int ts_get(void *self, const char *path, void **data, size_t *len)
{
    (void)self, (void)path, (void)data, (void)len;
    return INGOT_E_NOT_FOUND;
}

static int ts_list(void *self, const char *prefix, object_store_list_cb cb, void *arg)
{
    (void)self, (void)prefix, (void)cb, (void)arg;
    return 0;
}

static int ts_remove(void *self, const char *path)
{
    (void)self, (void)path;
    return 0;
}

static void ts_close(void *self)
{
    (void)self;
}

static void ts_set(test_store *t, bool blocked, int fail_puts)
{
    pthread_mutex_lock(&t->mu);
    t->blocked = blocked;
    t->fail_puts = fail_puts;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

/* --- whole jobs ---------------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    catalog cat;
    catalog persist_cat; /* cat with parquet_file_insert failing on demand (failing_insert) */
    schema_cache *schema;
    schema_namespace *ns;
    buffer_tree *tree;
    test_store ts;
    object_store store;
    persister *p;
    atomic_int persisted;
} fixture;

/* parquet_file_insert calls still to fail, and the real catalog behind the decorator. */
static atomic_int insert_failures_left;
static catalog *insert_inner;

static int failing_insert(void *self, const catalog_parquet_file *file, int64_t *id_out)
{
    if (atomic_fetch_sub(&insert_failures_left, 1) > 0) return INGOT_E_CATALOG;
    atomic_store(&insert_failures_left, 0);
    return insert_inner->parquet_file_insert(self, file, id_out);
}

static void on_persisted(void *arg)
{
    fixture *f = arg;
    atomic_fetch_add(&f->persisted, 1);
}

static int fixture_open(fixture *f, unsigned depth)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ingot-persist-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/catalog.sqlite", f->dir);
    if (catalog_sqlite_open(path, &f->cat, err, sizeof err) != 0) return -1;
    f->schema = schema_cache_new(&f->cat);
    if (schema_namespace_get(f->schema, "db", true, &f->ns, err, sizeof err) != 0) return -1;
    f->tree = buffer_tree_new();
    pthread_mutex_init(&f->ts.mu, NULL);
    pthread_cond_init(&f->ts.cond, NULL);
    f->store = (object_store){&f->ts, ts_put, ts_get, ts_list, ts_remove, ts_close};
    atomic_store(&insert_failures_left, 0);
    insert_inner = &f->cat;
    f->persist_cat = f->cat;
    f->persist_cat.parquet_file_insert = failing_insert;
    persister_options po = {.workers = 2,
                            .queue_depth = depth,
                            .compaction_threads = 1,
                            .cat = &f->persist_cat,
                            .store = &f->store,
                            .on_persisted = on_persisted,
                            .arg = f};
    f->p = persister_new(&po);
    return f->p && f->tree && f->schema ? 0 : -1;
}

static void fixture_close(fixture *f)
{
    persister_free(f->p);
    buffer_tree_free(f->tree);
    schema_cache_free(f->schema);
    f->cat.close(f->cat.self);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    CHECK(system(cmd) == 0);
}

/* Apply `rows` rows of table t (one op, sequence seq) through parse + schema check. */
static int write_rows(fixture *f, const char *table, int rows, uint64_t seq, int64_t t0)
{
    strbuf lp = {0};
    for (int i = 0; i < rows; i++)
        strbuf_printf(&lp, "%s,host=h%d v=%di %lld\n", table, i % 10, i, (long long)(t0 + i));
    lp_batch b = {0};
    lp_options o = {.precision = LP_PRECISION_NS, .max_errors = 1};
    schema_op_tables tables = {0};
    char err[256];
    int rv = lp_parse(lp.data, lp.len, &o, &b);
    if (rv == 0) rv = schema_check(f->schema, f->ns, &b, false, &tables, err, sizeof err);
    if (rv == 0 && b.bad_line_count) rv = INGOT_E_INVALID;
    if (rv == 0) {
        dml_op op = {.sequence = seq, .ns = f->ns, .namespace_name = "db", .namespace_len = 2,
                     .batch = &b, .tables = &tables, .body = lp.data, .body_len = lp.len,
                     .row_count = b.line_count};
        dml_sink sink = buffer_tree_as_sink(f->tree);
        rv = dml_sink_apply(&sink, &op);
    }
    schema_op_tables_free(&tables);
    lp_batch_free(&b);
    strbuf_free(&lp);
    return rv;
}

#define TALLY_MAX_FILES 8

typedef struct file_tally {
    int files;
    int64_t rows;
    int64_t min_times[TALLY_MAX_FILES]; /* of the files, in catalog id order */
    uint64_t max_sequence;  /* of the last file */
    char extras[64];        /* of the last file */
} file_tally;

static void tally_file(void *arg, const catalog_parquet_file *file)
{
    file_tally *t = arg;
    if (t->files < TALLY_MAX_FILES) t->min_times[t->files] = file->min_time;
    t->files++;
    t->rows += file->row_count;
    t->max_sequence = file->max_sequence_number;
    snprintf(t->extras, sizeof t->extras, "%s", file->sequence_extras);
}

static file_tally catalog_files(fixture *f, const char *table)
{
    file_tally t = {0};
    schema_table *st = schema_table_find(f->ns, table, strlen(table));
    if (st) f->cat.parquet_file_list(f->cat.self, st->catalog_id, tally_file, &t);
    return t;
}

static void test_failed_puts_are_retried_and_nothing_is_lost(void)
{
    fixture f;
    CHECK(fixture_open(&f, 4) == 0);
    ts_set(&f.ts, false, 2);
    CHECK_EQ_INT(write_rows(&f, "cpu", 500, 1, 1767225600000000000LL), 0);
    CHECK_EQ_INT(persister_persist_all(f.p, f.tree), 0);
    CHECK_EQ_INT(f.ts.puts_failed, 2);
    CHECK_EQ_INT(f.ts.puts_ok, 1);
    file_tally t = catalog_files(&f, "cpu");
    CHECK_EQ_INT(t.files, 1);
    CHECK_EQ_INT(t.rows, 500);
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    CHECK(buffer_tree_min_sequence(f.tree) == UINT64_MAX);
    fixture_close(&f);
}

typedef struct enqueuer_arg {
    fixture *f;
    int snapshots;
} enqueuer_arg;

/* A buffer_snapshot_cb: refuses the snapshot only when the persister took nothing. */
static int enqueue_snapshot(void *arg, buffer_snapshot *snap)
{
    return persister_enqueue(((fixture *)arg)->p, snap) == INGOT_E_NOMEM;
}

static void *enqueuer_main(void *arg)
{
    enqueuer_arg *a = arg;
    for (int i = 0; i < a->snapshots; i++) {
        char table[16];
        snprintf(table, sizeof table, "t%d", i);
        write_rows(a->f, table, 100, (uint64_t)i + 1, 1767225600000000000LL);
        buffer_tree_snapshot_all(a->f->tree, enqueue_snapshot, a->f);
    }
    return NULL;
}

static void test_blocked_store_saturates_then_recovers_with_bounded_memory(void)
{
    fixture f;
    CHECK(fixture_open(&f, 2) == 0);
    ts_set(&f.ts, true, 0);
    enqueuer_arg a = {&f, 8};
    pthread_t th;
    pthread_create(&th, NULL, enqueuer_main, &a);
    /* 2 permits: two snapshots are held by jobs, the third enqueue blocks -> saturated */
    for (int i = 0; i < 2000 && !persister_saturated(f.p); i++) usleep(1000);
    CHECK(persister_saturated(f.p));
    size_t rows_held = buffer_tree_rows(f.tree);
    usleep(100000);
    CHECK(persister_saturated(f.p));
    CHECK(buffer_tree_rows(f.tree) == rows_held); /* memory bounded: nothing more is taken */
    CHECK(rows_held <= 300);                       /* 2 in jobs + 1 waiting to enqueue */
    ts_set(&f.ts, false, 0);
    pthread_join(th, NULL);
    persister_wait_idle(f.p);
    CHECK(!persister_saturated(f.p));
    CHECK_EQ_INT(f.ts.puts_ok, 8);
    CHECK_EQ_INT(atomic_load(&f.persisted), 8);
    for (int i = 0; i < 8; i++) {
        char table[16];
        snprintf(table, sizeof table, "t%d", i);
        file_tally t = catalog_files(&f, table);
        CHECK_EQ_INT(t.files, 1);
        CHECK_EQ_INT(t.rows, 100);
    }
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    fixture_close(&f);
}

static uint64_t watermark_eight(void *arg)
{
    (void)arg;
    return 8;
}

static void test_dedup_before_parquet_and_coverage_recorded(void)
{
    fixture f;
    CHECK(fixture_open(&f, 4) == 0);
    CHECK_EQ_INT(write_rows(&f, "d", 100, 7, 1767225600000000000LL), 0);
    CHECK_EQ_INT(write_rows(&f, "d", 100, 9, 1767225600000000000LL), 0); /* same keys again */
    CHECK_EQ_INT(persister_persist_all(f.p, f.tree), 0);
    file_tally t = catalog_files(&f, "d");
    CHECK_EQ_INT(t.files, 1);
    CHECK_EQ_INT(t.rows, 100);
    CHECK_EQ_INT(t.max_sequence, 0); /* no watermark source: every sequence is an extra */
    CHECK_EQ_STR(t.extras, "7,9");
    buffer_tree_set_watermark_source(f.tree, watermark_eight, NULL);
    CHECK_EQ_INT(write_rows(&f, "e", 10, 7, 1767225600000000000LL), 0);
    CHECK_EQ_INT(write_rows(&f, "e", 10, 9, 1767225600000000000LL), 0);
    CHECK_EQ_INT(persister_persist_all(f.p, f.tree), 0);
    t = catalog_files(&f, "e");
    CHECK_EQ_INT(t.max_sequence, 8);
    CHECK_EQ_STR(t.extras, "9");
    fixture_close(&f);
}

/* --- retries park the job; order, permits and stop ---------------------------------------- */

#define T0_NS 1767225600000000000LL /* 2026-01-01: one day, one partition per table */
#define WAIT_STEPS 2000             /* x 5 ms: the deadline of every wait below */

/* The value of the metric line `name` (e.g. ingot_persist_jobs{state="parked"}), or -1. */
static long long metric(fixture *f, const char *name)
{
    strbuf m = {0};
    strbuf_putc(&m, '\n');
    persister_metrics(f->p, &m);
    strbuf pat = {0};
    strbuf_printf(&pat, "\n%s ", name);
    long long v = -1;
    const char *at = m.data && pat.data ? strstr(m.data, pat.data) : NULL;
    if (at) v = strtoll(at + pat.len, NULL, 10);
    strbuf_free(&pat);
    strbuf_free(&m);
    return v;
}

#define PUT_RETRIES "ingot_persist_retries_total{op=\"put\"}"
#define CATALOG_RETRIES "ingot_persist_retries_total{op=\"catalog\"}"
#define JOBS_PARKED "ingot_persist_jobs{state=\"parked\"}"
#define JOBS_HOLDING "ingot_persist_jobs{state=\"holding_permit\"}"

static bool wait_metric(fixture *f, const char *name, long long at_least)
{
    for (int i = 0; i < WAIT_STEPS; i++) {
        if (metric(f, name) >= at_least) return true;
        usleep(5000);
    }
    return false;
}

static bool wait_files(fixture *f, const char *table, int files)
{
    for (int i = 0; i < WAIT_STEPS; i++) {
        if (catalog_files(f, table).files >= files) return true;
        usleep(5000);
    }
    return false;
}

static bool wait_failed_puts(fixture *f, int at_least)
{
    for (int i = 0; i < WAIT_STEPS; i++) {
        if (ts_get_counts(&f->ts).failed >= at_least) return true;
        usleep(5000);
    }
    return false;
}

/* Write rows of table (one op) and hand every partition with rows to the persister. */
static int write_and_snapshot(fixture *f, const char *table, int rows, uint64_t seq, int64_t t0)
{
    int rv = write_rows(f, table, rows, seq, t0);
    if (rv == 0) rv = buffer_tree_snapshot_all(f->tree, enqueue_snapshot, f) == 1 ? 0 : -1;
    return rv;
}

/*
 * 2 workers; every put of partition stuck fails, and it has two snapshots, one per worker:
 * retrying in place, they would occupy both workers and nothing else would be persisted.
 */
static void test_failing_partition_does_not_hold_back_others(void)
{
    fixture f;
    CHECK(fixture_open(&f, 16) == 0);
    ts_fail_matching(&f.ts, "/stuck/", false);
    CHECK_EQ_INT(write_and_snapshot(&f, "stuck", 100, 1, T0_NS), 0);
    CHECK_EQ_INT(write_and_snapshot(&f, "stuck", 100, 2, T0_NS + 1000000), 0);
    CHECK(wait_failed_puts(&f, 2));
    for (int i = 0; i < 6; i++) {
        char table[16];
        snprintf(table, sizeof table, "ok%d", i);
        CHECK_EQ_INT(write_and_snapshot(&f, table, 100, 3 + (uint64_t)i, T0_NS), 0);
    }
    for (int i = 0; i < 6; i++) {
        char table[16];
        snprintf(table, sizeof table, "ok%d", i);
        CHECK(wait_files(&f, table, 1));
        file_tally t = catalog_files(&f, table);
        CHECK_EQ_INT(t.files, 1);
        CHECK_EQ_INT(t.rows, 100);
    }
    /* the stuck jobs still retry, parked, each with its permit */
    CHECK_EQ_INT(catalog_files(&f, "stuck").files, 0);
    int failed = ts_get_counts(&f.ts).failed;
    CHECK(wait_failed_puts(&f, failed + 1));
    CHECK(wait_metric(&f, JOBS_PARKED, 2));
    CHECK_EQ_INT(metric(&f, JOBS_HOLDING), 2);
    CHECK(metric(&f, PUT_RETRIES) >= failed + 1);
    CHECK_EQ_INT(atomic_load(&f.persisted), 6);

    ts_fail_matching(&f.ts, NULL, false);
    persister_wait_idle(f.p);
    file_tally t = catalog_files(&f, "stuck");
    CHECK_EQ_INT(t.files, 2);
    CHECK_EQ_INT(t.rows, 200);
    CHECK(t.min_times[0] == T0_NS && t.min_times[1] == T0_NS + 1000000); /* snapshot order */
    ts_counts c = ts_get_counts(&f.ts);
    CHECK_EQ_INT(c.ok, 8);
    CHECK_EQ_INT(c.ok_twice, 0);
    CHECK_EQ_INT(c.failing_changed, 0); /* a retried put sends the same bytes */
    CHECK_EQ_INT(metric(&f, PUT_RETRIES), c.failed);
    CHECK_EQ_INT(metric(&f, JOBS_HOLDING), 0);
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    fixture_close(&f);
}

/*
 * Three snapshots of one partition; only the first one's put fails. The later two put their
 * objects but must not be recorded before the first: the catalog gets them in snapshot order.
 */
static void test_partition_files_recorded_in_snapshot_order(void)
{
    fixture f;
    CHECK(fixture_open(&f, 8) == 0);
    ts_fail_matching(&f.ts, "/ord/", true);
    /* the first snapshot's put fails before the others are taken: the failing path is its own,
     * whatever order the workers would have started the three puts in */
    CHECK_EQ_INT(write_and_snapshot(&f, "ord", 50, 1, T0_NS), 0);
    CHECK(wait_failed_puts(&f, 1));
    for (int k = 1; k < 3; k++)
        CHECK_EQ_INT(write_and_snapshot(&f, "ord", 50, 1 + (uint64_t)k, T0_NS + k * 1000000LL), 0);
    for (int i = 0; i < WAIT_STEPS && ts_get_counts(&f.ts).ok < 2; i++) usleep(5000);
    CHECK_EQ_INT(ts_get_counts(&f.ts).ok, 2);
    /* the first retries, the other two wait for their turn: all three parked with permits */
    CHECK(wait_metric(&f, JOBS_PARKED, 3));
    CHECK_EQ_INT(metric(&f, JOBS_HOLDING), 3);
    CHECK_EQ_INT(catalog_files(&f, "ord").files, 0);
    int failed = ts_get_counts(&f.ts).failed;
    CHECK(wait_failed_puts(&f, failed + 1));
    CHECK_EQ_INT(catalog_files(&f, "ord").files, 0);
    ts_counts before = ts_get_counts(&f.ts);

    ts_fail_matching(&f.ts, NULL, false);
    persister_wait_idle(f.p);
    file_tally t = catalog_files(&f, "ord");
    CHECK_EQ_INT(t.files, 3);
    CHECK_EQ_INT(t.rows, 150);
    for (int k = 0; k < 3 && k < t.files; k++) CHECK(t.min_times[k] == T0_NS + k * 1000000LL);
    ts_counts c = ts_get_counts(&f.ts);
    CHECK_EQ_INT(c.ok, 3);
    CHECK_EQ_INT(c.ok_twice, 0);
    CHECK_EQ_INT(c.failing_changed, 0);
    CHECK(before.failing_path[0] && !strcmp(f.ts.ok_paths[2], before.failing_path)); /* same path */
    CHECK_EQ_INT(atomic_load(&f.persisted), 3);
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    fixture_close(&f);
}

typedef struct snapshot_thread {
    fixture *f;
    const char *table;
    int rv;
} snapshot_thread;

static void *snapshot_thread_main(void *arg)
{
    snapshot_thread *a = arg;
    a->rv = write_and_snapshot(a->f, a->table, 100, 9, T0_NS);
    return NULL;
}

/* Depth 2, two jobs whose puts keep failing: their permits stay taken, the queue saturates. */
static void test_retrying_jobs_keep_permits_and_saturate(void)
{
    fixture f;
    CHECK(fixture_open(&f, 2) == 0);
    ts_fail_matching(&f.ts, "/stuck", false);
    CHECK_EQ_INT(write_and_snapshot(&f, "stuck0", 100, 1, T0_NS), 0);
    CHECK_EQ_INT(write_and_snapshot(&f, "stuck1", 100, 2, T0_NS), 0);
    CHECK(wait_metric(&f, JOBS_PARKED, 2)); /* both gave their workers back */
    CHECK(!persister_saturated(f.p));
    snapshot_thread a = {&f, "fine", 1};
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, snapshot_thread_main, &a), 0);
    for (int i = 0; i < WAIT_STEPS && !persister_saturated(f.p); i++) usleep(5000);
    CHECK(persister_saturated(f.p));
    CHECK_EQ_INT(metric(&f, JOBS_HOLDING), 2);
    CHECK_EQ_INT(metric(&f, "ingot_persist_jobs{state=\"waiting_to_enqueue\"}"), 1);
    CHECK_EQ_INT(catalog_files(&f, "fine").files, 0);

    ts_fail_matching(&f.ts, NULL, false);
    pthread_join(th, NULL);
    CHECK_EQ_INT(a.rv, 0);
    persister_wait_idle(f.p);
    CHECK(!persister_saturated(f.p));
    CHECK_EQ_INT(catalog_files(&f, "stuck0").files, 1);
    CHECK_EQ_INT(catalog_files(&f, "stuck1").files, 1);
    CHECK_EQ_INT(catalog_files(&f, "fine").files, 1);
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    fixture_close(&f);
}

typedef struct free_thread {
    persister *p;
    atomic_bool returned;
} free_thread;

static void *free_thread_main(void *arg)
{
    free_thread *a = arg;
    persister_free(a->p);
    atomic_store(&a->returned, true);
    return NULL;
}

/* persister_free() (the graceful stop's last step) waits for a job that is parked to retry. */
static void test_stop_waits_for_retried_job(void)
{
    fixture f;
    CHECK(fixture_open(&f, 4) == 0);
    ts_fail_matching(&f.ts, "/late/", false);
    CHECK_EQ_INT(write_and_snapshot(&f, "late", 100, 1, T0_NS), 0);
    CHECK(wait_failed_puts(&f, 2));
    free_thread a = {.p = f.p};
    atomic_init(&a.returned, false);
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, free_thread_main, &a), 0);
    int failed = ts_get_counts(&f.ts).failed;
    CHECK(wait_failed_puts(&f, failed + 1)); /* still retrying after free() began */
    CHECK(!atomic_load(&a.returned));
    ts_fail_matching(&f.ts, NULL, false);
    pthread_join(th, NULL);
    f.p = NULL;
    CHECK(atomic_load(&a.returned));
    file_tally t = catalog_files(&f, "late");
    CHECK_EQ_INT(t.files, 1);
    CHECK_EQ_INT(t.rows, 100);
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    CHECK_EQ_INT(atomic_load(&f.persisted), 1);
    fixture_close(&f);
}

/* A failing catalog row is retried without putting the object again. */
static void test_catalog_retry_resumes_without_second_put(void)
{
    fixture f;
    CHECK(fixture_open(&f, 4) == 0);
    atomic_store(&insert_failures_left, 3);
    CHECK_EQ_INT(write_rows(&f, "cat", 100, 1, T0_NS), 0);
    CHECK_EQ_INT(persister_persist_all(f.p, f.tree), 0);
    ts_counts c = ts_get_counts(&f.ts);
    CHECK_EQ_INT(c.ok, 1);
    CHECK_EQ_INT(c.failed, 0);
    CHECK_EQ_INT(metric(&f, CATALOG_RETRIES), 3);
    CHECK_EQ_INT(metric(&f, PUT_RETRIES), 0);
    file_tally t = catalog_files(&f, "cat");
    CHECK_EQ_INT(t.files, 1);
    CHECK_EQ_INT(t.rows, 100);
    CHECK_EQ_INT(buffer_tree_rows(f.tree), 0);
    fixture_close(&f);
}

int main(void)
{
    TEST_RUN(test_first_sort_key_by_cardinality_then_name);
    TEST_RUN(test_stored_key_only_gains_columns_before_time);
    TEST_RUN(test_failed_puts_are_retried_and_nothing_is_lost);
    TEST_RUN(test_blocked_store_saturates_then_recovers_with_bounded_memory);
    TEST_RUN(test_dedup_before_parquet_and_coverage_recorded);
    TEST_RUN(test_failing_partition_does_not_hold_back_others);
    TEST_RUN(test_partition_files_recorded_in_snapshot_order);
    TEST_RUN(test_retrying_jobs_keep_permits_and_saturate);
    TEST_RUN(test_stop_waits_for_retried_job);
    TEST_RUN(test_catalog_retry_resumes_without_second_put);
    TEST_MAIN_END();
}
