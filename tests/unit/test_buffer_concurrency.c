/*
 * test_buffer_concurrency.c: writers and readers on the same partitions at once (run it under
 * -fsanitize=thread too). Every op writes rows whose field `marker` is the op's id and whose
 * field `n` is the number of rows that op wrote into that row's partition (ops span two days),
 * with distinct times so de-duplication keeps them all. A query batch must never show part of an
 * op: for every marker seen in a batch, the batch holds exactly n rows of it.
 */
#include <pthread.h>

#include "test.h"
#include "test_buffer_util.h"

#define WRITERS 3
#define READERS 2
#define OPS_PER_WRITER 3000
#define MAX_OP_ROWS 40
#define MAX_OPS (WRITERS * OPS_PER_WRITER + 1)

static buffer_tree *g_tree;
static schema_table *g_table;
static _Atomic uint64_t g_next_seq = 1;
static _Atomic int g_writers_done;
static _Atomic size_t g_rows_written;
static _Atomic int g_bad_batches;
static _Atomic long g_batches_checked;

static const char *g_hosts[] = {"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"};
static const char *g_extra[] = {"e0", "e1", "e2", "e3"};

static void *writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
    for (int k = 0; k < OPS_PER_WRITER; k++) {
        uint64_t id = atomic_fetch_add(&g_next_seq, 1);
        int rows = 1 + (int)(rand_r(&seed) % MAX_OP_ROWS);
        int day_rows[2] = {0, 0};
        for (int r = 0; r < rows; r++)
            day_rows[r % 2]++;
        tb_op o;
        tb_op_init(&o, "db", id);
        for (int r = 0; r < rows; r++) {
            int day = r % 2;
            tb_line(&o, g_table, (int64_t)day * NS_PER_DAY + (int64_t)id * 1000 + r);
            tb_tag(&o, "host", g_hosts[(id + (uint64_t)r) % 10]);
            tb_i64(&o, "marker", (int64_t)id);
            tb_i64(&o, "n", day_rows[day]);
            if (id % 3 == 0) tb_string(&o, g_extra[id % 4], "x");
        }
        int rc = tb_apply(g_tree, &o);
        tb_op_free(&o);
        if (rc != 0) {
            fprintf(stderr, "apply failed: %d\n", rc);
            atomic_fetch_add(&g_bad_batches, 1);
        }
        atomic_fetch_add(&g_rows_written, (size_t)rows);
    }
    return NULL;
}

/*
 * The rows of one partition (it may come in several batches): per marker, the number of rows
 * must equal the rows' n, i.e. every op is visible whole or not at all.
 */
typedef struct part_rows {
    uint64_t partition_id;
    char key[11];
    int64_t *marker, *n;
    size_t count, cap;
} part_rows;

static void check_partition(part_rows *pr, int *counts)
{
    memset(counts, 0, MAX_OPS * sizeof *counts);
    for (size_t r = 0; r < pr->count; r++)
        counts[pr->marker[r]]++;
    for (size_t r = 0; r < pr->count; r++) {
        int64_t m = pr->marker[r];
        if (counts[m] != pr->n[r]) {
            fprintf(stderr, "partition %s: op %" PRId64 " has %d of %" PRId64 " rows\n", pr->key,
                    m, counts[m], pr->n[r]);
            atomic_fetch_add(&g_bad_batches, 1);
            break;
        }
    }
    pr->count = 0;
}

/* Add batch b's rows to pr (checking pr first when b starts another partition). Returns rows. */
static size_t add_batch(part_rows *pr, const query_batch *b, int *counts)
{
    if (b->partition_id != pr->partition_id) {
        check_partition(pr, counts);
        pr->partition_id = b->partition_id;
        memcpy(pr->key, b->partition_key, sizeof pr->key);
    }
    const query_column *marker = NULL, *n = NULL;
    for (size_t c = 0; c < b->column_count; c++) {
        if (strcmp(b->columns[c].name, "marker") == 0) marker = &b->columns[c];
        if (strcmp(b->columns[c].name, "n") == 0) n = &b->columns[c];
    }
    if (b->row_count == 0) return 0;
    if (!marker || !n) {
        atomic_fetch_add(&g_bad_batches, 1);
        return 0;
    }
    if (pr->count + b->row_count > pr->cap) {
        pr->cap = (pr->count + b->row_count) * 2;
        pr->marker = realloc(pr->marker, pr->cap * sizeof *pr->marker);
        pr->n = realloc(pr->n, pr->cap * sizeof *pr->n);
    }
    for (size_t r = 0; r < b->row_count; r++) {
        int64_t m = marker->data.i64[r];
        if (m <= 0 || m >= MAX_OPS) {
            atomic_fetch_add(&g_bad_batches, 1);
            return 0;
        }
        pr->marker[pr->count] = m;
        pr->n[pr->count++] = n->data.i64[r];
    }
    return b->row_count;
}

/* A query over [min_ns, max_ns) (windows start at whole ops: an op's rows of one day lie in
 * [day + id * 1000, day + id * 1000 + MAX_OP_ROWS)). Returns the rows seen. */
static size_t query_and_check(int *counts, int64_t min_ns, int64_t max_ns)
{
    query_exec qe = buffer_tree_as_query_exec(g_tree);
    query_request req = {
        .namespace_name = "db", .table_name = "m", .min_time_ns = min_ns, .max_time_ns = max_ns};
    query_stream *s;
    char err[128];
    if (qe.query(qe.self, &req, &s, err, sizeof err) != 0)
        return 0; /* the table may not exist yet */
    query_batch *b;
    size_t rows = 0;
    int rc;
    part_rows pr = {.partition_id = UINT64_MAX};
    while ((rc = query_stream_next(s, &b)) == 1) {
        rows += add_batch(&pr, b, counts);
        atomic_fetch_add(&g_batches_checked, 1);
        query_batch_free(b);
    }
    check_partition(&pr, counts);
    free(pr.marker);
    free(pr.n);
    if (rc < 0) atomic_fetch_add(&g_bad_batches, 1);
    query_stream_close(s);
    return rows;
}

static void *reader(void *arg)
{
    (void)arg;
    int *counts = malloc(MAX_OPS * sizeof *counts);
    unsigned seed = (unsigned)(uintptr_t)arg + 17;
    for (long q = 0; !atomic_load(&g_writers_done); q++) {
        if (q % 16 == 0) {
            query_and_check(counts, INT64_MIN, INT64_MAX);
            continue;
        }
        /* a window of 64 recent ops in one day */
        int64_t top = (int64_t)atomic_load(&g_next_seq);
        int64_t first = top - 64 - (int64_t)(rand_r(&seed) % 64);
        int64_t day = (int64_t)(rand_r(&seed) % 2) * NS_PER_DAY;
        if (first < 0) first = 0;
        query_and_check(counts, day + first * 1000, day + (first + 64) * 1000);
    }
    free(counts);
    return NULL;
}

static void test_concurrent_writers_and_readers(void)
{
    g_tree = buffer_tree_new();
    g_table = tb_table("m");
    /* the schema knows every column before the threads start (as the schema check ensures) */
    tb_col(g_table, "host", COLUMN_TAG);
    tb_col(g_table, "marker", COLUMN_I64);
    tb_col(g_table, "n", COLUMN_I64);
    for (int i = 0; i < 4; i++)
        tb_col(g_table, g_extra[i], COLUMN_STRING);
    pthread_t w[WRITERS], r[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)i);
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&g_writers_done, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    int *counts = malloc(MAX_OPS * sizeof *counts);
    size_t rows = query_and_check(counts, INT64_MIN, INT64_MAX);
    free(counts);
    CHECK_EQ_INT(rows, atomic_load(&g_rows_written));
    CHECK_EQ_INT(buffer_tree_rows(g_tree), atomic_load(&g_rows_written));
    CHECK_EQ_INT(atomic_load(&g_bad_batches), 0);
    CHECK(atomic_load(&g_batches_checked) > 2);
    printf("batches checked: %ld\n", atomic_load(&g_batches_checked));
    buffer_tree_free(g_tree);
    free(g_table);
}

int main(void)
{
    TEST_RUN(test_concurrent_writers_and_readers);
    TEST_MAIN_END();
}
