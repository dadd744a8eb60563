/*
 * Unit tests of the persister (persist.h): the sort key rules, and whole jobs against the real
 * buffer and SQLite catalog with a test-only object store that fails or blocks on demand:
 * failed puts are retried, back-pressure turns on and off, nothing is lost, memory stays bounded.
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

typedef struct test_store {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int fail_puts;      /* the next N puts fail with -EIO */
    bool blocked;       /* puts wait while set */
    int puts_ok;
    int puts_failed;
    size_t bytes;
} test_store;

static int ts_put(void *self, const char *path, const void *data, size_t len)
{
    (void)path;
    (void)data;
    test_store *t = self;
    pthread_mutex_lock(&t->mu);
    while (t->blocked) pthread_cond_wait(&t->cond, &t->mu);
    int rv = 0;
    if (t->fail_puts > 0) {
        t->fail_puts--;
        t->puts_failed++;
        rv = -EIO;
    } else {
        t->puts_ok++;
        t->bytes += len;
    }
    pthread_mutex_unlock(&t->mu);
    return rv;
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
    schema_cache *schema;
    schema_namespace *ns;
    buffer_tree *tree;
    test_store ts;
    object_store store;
    persister *p;
    atomic_int persisted;
} fixture;

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
    persister_options po = {.workers = 2, .queue_depth = depth, .compaction_threads = 1,
                            .cat = &f->cat, .store = &f->store, .on_persisted = on_persisted, .arg = f};
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

typedef struct file_tally {
    int files;
    int64_t rows;
    uint64_t max_sequence;  /* of the last file */
    char extras[64];        /* of the last file */
} file_tally;

static void tally_file(void *arg, const catalog_parquet_file *file)
{
    file_tally *t = arg;
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

static void enqueue_snapshot(void *arg, buffer_snapshot *snap)
{
    persister_enqueue(((fixture *)arg)->p, snap);
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

int main(void)
{
    TEST_RUN(test_first_sort_key_by_cardinality_then_name);
    TEST_RUN(test_stored_key_only_gains_columns_before_time);
    TEST_RUN(test_failed_puts_are_retried_and_nothing_is_lost);
    TEST_RUN(test_blocked_store_saturates_then_recovers_with_bounded_memory);
    TEST_RUN(test_dedup_before_parquet_and_coverage_recorded);
    TEST_MAIN_END();
}
