/*
 * test_buffer.c: unit tests of the BufferTree: appends of every type with nulls, column
 * back-fill, day partitions (negative times too), de-duplication by sequence, projection, time
 * filter, snapshot semantics, NOT_FOUND, accounting, rollback on allocation failure, escapes.
 * Schema tables and batches are built by hand (test_buffer_util.h).
 */
#include "test.h"
#include "test_buffer_util.h"

#include "buffer/buffer_internal.h"

static void test_partition_key(void)
{
    char k[11];
    buffer_partition_key(0, k);
    CHECK_EQ_STR(k, "1970-01-01");
    buffer_partition_key(-1, k);
    CHECK_EQ_STR(k, "1969-12-31");
    buffer_partition_key(-NS_PER_DAY, k);
    CHECK_EQ_STR(k, "1969-12-31");
    buffer_partition_key(-NS_PER_DAY - 1, k);
    CHECK_EQ_STR(k, "1969-12-30");
    buffer_partition_key(NS_PER_DAY - 1, k);
    CHECK_EQ_STR(k, "1970-01-01");
    buffer_partition_key(NS_PER_DAY, k);
    CHECK_EQ_STR(k, "1970-01-02");
    buffer_partition_key(1709164800LL * 1000000000LL, k); /* 2024-02-29T00:00:00Z */
    CHECK_EQ_STR(k, "2024-02-29");
    buffer_partition_key(1709164800LL * 1000000000LL - 1, k);
    CHECK_EQ_STR(k, "2024-02-28");
    buffer_partition_key(951782400LL * 1000000000LL, k); /* 2000-02-29 */
    CHECK_EQ_STR(k, "2000-02-29");
    buffer_partition_key(INT64_MIN, k);
    CHECK_EQ_STR(k, "1677-09-21");
    buffer_partition_key(INT64_MAX, k);
    CHECK_EQ_STR(k, "2262-04-11");
}

static void test_types_and_nulls(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("cpu");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 30);
    tb_tag(&o, "host", "b");
    tb_i64(&o, "i", -5);
    tb_u64(&o, "u", 18446744073709551615ull);
    tb_f64(&o, "f", 1.5);
    tb_bool(&o, "b", true);
    tb_string(&o, "s", "hello");
    tb_line(&o, t, 10); /* only some fields; the empty string is not null */
    tb_tag(&o, "host", "a");
    tb_i64(&o, "i", 7);
    tb_string(&o, "s", "");
    tb_line(&o, t, 20);
    tb_tag(&o, "host", "a");
    tb_bool(&o, "b", false);
    tb_f64(&o, "f", -0.25);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    char *got = tb_query_all(tree, "db", "cpu");
    CHECK_EQ_STR(got, "1970-01-01 rows=3: host,b,f,i,s,u,time\n"
                      "a|null|null|7|\"\"|null|10\n"
                      "a|false|-0.25|null|null|null|20\n"
                      "b|true|1.5|-5|\"hello\"|18446744073709551615u|30\n");
    free(got);
    CHECK_EQ_INT(buffer_tree_rows(tree), 3);
    tb_op_free(&o);
    buffer_tree_free(tree);
    free(t);
}

static void test_new_column_backfill(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    for (int i = 0; i < 3; i++) {
        tb_op o;
        tb_op_init(&o, "db", (uint64_t)i + 1);
        tb_line(&o, t, i);
        tb_i64(&o, "a", i);
        CHECK_EQ_INT(tb_apply(tree, &o), 0);
        tb_op_free(&o);
    }
    /* 300 rows so the new column appears past the first allocation */
    tb_op o;
    tb_op_init(&o, "db", 10);
    for (int i = 3; i < 303; i++) {
        tb_line(&o, t, i);
        tb_string(&o, "z", "s");
        tb_tag(&o, "host", i % 2 ? "x" : "y");
    }
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    const char *cols[] = {"time", "a", "z", "host"};
    char *got = tb_query(tree, "db", "m", cols, 4, INT64_MIN, 5);
    CHECK_EQ_STR(got, "1970-01-01 rows=5: time,a,z,host\n"
                      "0|0|null|null\n"
                      "1|1|null|null\n"
                      "2|2|null|null\n"
                      "3|null|\"s\"|x\n"
                      "4|null|\"s\"|y\n");
    free(got);
    got = tb_query(tree, "db", "m", cols, 4, 301, 303);
    CHECK_EQ_STR(got, "1970-01-01 rows=2: time,a,z,host\n"
                      "301|null|\"s\"|x\n"
                      "302|null|\"s\"|y\n");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

static void test_partitions_by_day(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    int64_t times[] = {NS_PER_DAY + 5, -1, 0, -NS_PER_DAY - 1, NS_PER_DAY - 1, -NS_PER_DAY};
    for (size_t i = 0; i < 6; i++) {
        tb_line(&o, t, times[i]);
        tb_i64(&o, "v", (int64_t)i);
    }
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1969-12-30 rows=1: v,time\n3|-86400000000001\n"
                      "1969-12-31 rows=2: v,time\n5|-86400000000000\n1|-1\n"
                      "1970-01-01 rows=2: v,time\n2|0\n4|86399999999999\n"
                      "1970-01-02 rows=1: v,time\n0|86400000000005\n");
    free(got);
    CHECK_EQ_INT(buffer_tree_rows(tree), 6);
    buffer_tree_free(tree);
    free(t);
}

static void test_dedup(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    /* seq 10 applied first, then seq 5: seq 10 must win where both set a value */
    tb_op_init(&o, "db", 10);
    tb_line(&o, t, 100);
    tb_tag(&o, "host", "a");
    tb_i64(&o, "x", 10);
    tb_line(&o, t, 100); /* same key twice in one op: the later line wins */
    tb_tag(&o, "host", "a");
    tb_i64(&o, "y", 11);
    tb_i64(&o, "x", 12);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_op_init(&o, "db", 5);
    tb_line(&o, t, 100);
    tb_tag(&o, "host", "a");
    tb_i64(&o, "x", 5);
    tb_i64(&o, "y", 6);
    tb_i64(&o, "z", 7);
    tb_line(&o, t, 100); /* another host: another row */
    tb_tag(&o, "host", "b");
    tb_i64(&o, "x", 1);
    tb_line(&o, t, 100); /* no host: a key of its own */
    tb_i64(&o, "x", 2);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_op_init(&o, "db", 20); /* later write without x: cannot null it */
    tb_line(&o, t, 100);
    tb_tag(&o, "host", "a");
    tb_i64(&o, "z", 70);
    tb_line(&o, t, 100);
    tb_i64(&o, "y", 3);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=3: host,x,y,z,time\n"
                      "null|2|3|null|100\n"
                      "a|12|11|70|100\n"
                      "b|1|null|null|100\n");
    free(got);
    /* the tag is part of the key even when not projected */
    const char *cols[] = {"x"};
    got = tb_query(tree, "db", "m", cols, 1, INT64_MIN, INT64_MAX);
    CHECK_EQ_STR(got, "1970-01-01 rows=3: x\n2\n12\n1\n");
    free(got);
    CHECK_EQ_INT(buffer_tree_rows(tree), 7); /* rows buffered, before de-duplication */
    buffer_tree_free(tree);
    free(t);
}

static void test_projection(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 1);
    tb_tag(&o, "zone", "z1");
    tb_tag(&o, "host", "h1");
    tb_f64(&o, "b", 2);
    tb_f64(&o, "a", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_col(t, "never", COLUMN_I64); /* in the schema, never written */
    const char *cols[] = {"time", "nope", "a", "zone", "never", "time"};
    char *got = tb_query(tree, "db", "m", cols, 6, INT64_MIN, INT64_MAX);
    CHECK_EQ_STR(got, "1970-01-01 rows=1: time,a,zone,never,time\n1|1|z1|null|1\n");
    free(got);
    got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=1: host,zone,a,b,never,time\nh1|z1|1|2|null|1\n");
    free(got);
    const char *none[] = {"nope"};
    got = tb_query(tree, "db", "m", none, 1, INT64_MIN, INT64_MAX);
    CHECK_EQ_STR(got, "1970-01-01 rows=1:\n\n");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

static void test_sort_and_dictionary(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    const char *hosts[] = {"c", "a", "b", "a", "c", "bb"};
    for (int i = 0; i < 6; i++) {
        tb_line(&o, t, 10 - i);
        tb_tag(&o, "host", hosts[i]);
        tb_i64(&o, "v", i);
    }
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    char *got = tb_query(tree, "db", "m", NULL, 0, 6, 10); /* rows 1..4 */
    CHECK_EQ_STR(got, "1970-01-01 rows=4: host,v,time\n" /* time first, then the tags */
                      "c|4|6\n"
                      "a|3|7\n"
                      "b|2|8\n"
                      "a|1|9\n");
    free(got);
    /* dictionary: only the values used, sorted */
    query_exec qe = buffer_tree_as_query_exec(tree);
    query_request req = {
        .namespace_name = "db", .table_name = "m", .min_time_ns = 6, .max_time_ns = 10};
    query_stream *s;
    CHECK_EQ_INT(qe.query(qe.self, &req, &s, NULL, 0), 0);
    query_batch *b;
    CHECK_EQ_INT(query_stream_next(s, &b), 1);
    CHECK(b->columns[0].type == COLUMN_TAG);
    CHECK_EQ_INT(b->columns[0].data.tag.dict_count, 3);
    CHECK(b->columns[0].validity == NULL);
    CHECK(memcmp(b->columns[0].data.tag.dict_bytes, "abc", 3) == 0);
    CHECK_EQ_INT(b->columns[0].data.tag.ids[0], 2); /* "c" */
    CHECK_EQ_INT(b->columns[0].data.tag.ids[3], 0); /* "a" */
    CHECK(b->columns[2].type == COLUMN_TIME && b->columns[2].validity == NULL);
    query_batch_free(b);
    CHECK_EQ_INT(query_stream_next(s, &b), 0);
    query_stream_close(s);
    /* at one time, rows follow the tag values */
    tb_op_init(&o, "db", 2);
    const char *same[] = {"bb", "a", "c"};
    for (int i = 0; i < 3; i++) {
        tb_line(&o, t, 20);
        tb_tag(&o, "host", same[i]);
        tb_i64(&o, "v", 20 + i);
    }
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    got = tb_query(tree, "db", "m", NULL, 0, 11, 21);
    CHECK_EQ_STR(got, "1970-01-01 rows=3: host,v,time\n"
                      "a|21|20\n"
                      "bb|20|20\n"
                      "c|22|20\n");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

static void test_time_filter(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 10);
    tb_i64(&o, "v", 1);
    tb_line(&o, t, 20);
    tb_i64(&o, "v", 2);
    tb_line(&o, t, 30);
    tb_i64(&o, "v", 3);
    tb_line(&o, t, NS_PER_DAY);
    tb_i64(&o, "v", 4);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    char *got = tb_query(tree, "db", "m", NULL, 0, 20, 30);
    CHECK_EQ_STR(got, "1970-01-01 rows=1: v,time\n2|20\n1970-01-02 rows=0: v,time\n");
    free(got);
    got = tb_query(tree, "db", "m", NULL, 0, 11, 20);
    CHECK_EQ_STR(got, "1970-01-01 rows=0: v,time\n1970-01-02 rows=0: v,time\n");
    free(got);
    got = tb_query(tree, "db", "m", NULL, 0, 30, NS_PER_DAY + 1);
    CHECK_EQ_STR(got, "1970-01-01 rows=1: v,time\n3|30\n"
                      "1970-01-02 rows=1: v,time\n4|86400000000000\n");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

static void test_snapshot(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 1);
    tb_i64(&o, "v", 1);
    tb_line(&o, t, NS_PER_DAY + 1);
    tb_i64(&o, "v", 2);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);

    query_exec qe = buffer_tree_as_query_exec(tree);
    query_request req = {.namespace_name = "db",
                         .table_name = "m",
                         .min_time_ns = INT64_MIN,
                         .max_time_ns = INT64_MAX};
    query_stream *s;
    CHECK_EQ_INT(qe.query(qe.self, &req, &s, NULL, 0), 0);
    /* a new partition after the start: invisible; a write before the pull: visible */
    tb_op_init(&o, "db", 2);
    tb_line(&o, t, 5 * NS_PER_DAY);
    tb_i64(&o, "v", 3);
    tb_line(&o, t, 2);
    tb_i64(&o, "v", 4);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    query_batch *b;
    tb_text txt = {0};
    CHECK_EQ_INT(query_stream_next(s, &b), 1);
    tb_render_batch(&txt, b);
    query_batch_free(b);
    /* a write after the pull of day 1 is not in it; day 2 is pulled after it: visible */
    tb_op_init(&o, "db", 3);
    tb_line(&o, t, 3);
    tb_i64(&o, "v", 5);
    tb_line(&o, t, NS_PER_DAY + 2);
    tb_i64(&o, "v", 6);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    CHECK_EQ_INT(query_stream_next(s, &b), 1);
    tb_render_batch(&txt, b);
    query_batch_free(b);
    CHECK_EQ_INT(query_stream_next(s, &b), 0);
    query_stream_close(s);
    CHECK_EQ_STR(txt.s, "1970-01-01 rows=2: v,time\n1|1\n4|2\n"
                        "1970-01-02 rows=2: v,time\n2|86400000000001\n6|86400000000002\n");
    free(txt.s);
    /* the stream keeps its partitions alive after the tree is gone */
    CHECK_EQ_INT(qe.query(qe.self, &req, &s, NULL, 0), 0);
    buffer_tree_free(tree);
    CHECK_EQ_INT(query_stream_next(s, &b), 1);
    CHECK_EQ_INT(b->row_count, 3);
    query_batch_free(b);
    query_stream_close(s);
    free(t);
}

static void test_not_found(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "ERR -1006: namespace \"db\" not found");
    free(got);
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 1);
    tb_i64(&o, "v", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    got = tb_query_all(tree, "db", "cpu");
    CHECK_EQ_STR(got, "ERR -1006: table \"cpu\" not found in namespace \"db\"");
    free(got);
    got = tb_query_all(tree, "db2", "m");
    CHECK_EQ_STR(got, "ERR -1006: namespace \"db2\" not found");
    free(got);
    /* namespaces are separate */
    tb_op_init(&o, "db2", 2);
    tb_line(&o, t, 1);
    tb_i64(&o, "v", 2);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    got = tb_query_all(tree, "db2", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=1: v,time\n2|1\n");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

static void test_accounting(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    CHECK_EQ_INT(buffer_tree_bytes(tree), 0);
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 1);
    tb_i64(&o, "v", 1);
    tb_line(&o, t, 2);
    tb_i64(&o, "v", 2);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    /* run 16 + time 2*8 + v 2*8 + validity 1 */
    CHECK_EQ_INT(buffer_tree_bytes(tree), 49);
    tb_op_init(&o, "db", 2);
    tb_line(&o, t, 3);
    tb_tag(&o, "host", "ab");
    tb_string(&o, "s", "xyz");
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    /* 3 rows: runs 32, time 24, v 24+1, host ids 12+1 + dict 2 + entry 12, s offsets 16+1 + 3 */
    CHECK_EQ_INT(buffer_tree_bytes(tree), 32 + 24 + 25 + 27 + 20);
    CHECK_EQ_INT(buffer_tree_rows(tree), 3);
    /* a second table adds its own */
    schema_table *t2 = tb_table("n");
    tb_op_init(&o, "db", 3);
    tb_line(&o, t2, 1);
    tb_i64(&o, "v", 1);
    tb_line(&o, t, 4);
    tb_i64(&o, "v", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    CHECK_EQ_INT(buffer_tree_rows(tree), 5);
    CHECK_EQ_INT(buffer_tree_bytes(tree), (16 + 8 + 9) + (48 + 32 + 33 + 31 + 24));
    buffer_tree_free(tree);
    free(t);
    free(t2);
}

/* One op that needs everything new: partitions, columns, dictionary values, string bytes. */
static void make_big_op(tb_op *o, schema_table *t, schema_table *t2, uint64_t seq)
{
    tb_op_init(o, "db", seq);
    for (int i = 0; i < 600; i++) {
        static const char *hosts[] = {"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7"};
        tb_line(o, i % 3 ? t : t2, (int64_t)(i % 4) * NS_PER_DAY + i);
        tb_tag(o, "host", hosts[i % 8]);
        tb_tag(o, "region", i % 2 ? "eu" : "us");
        tb_i64(o, "n", i);
        tb_string(o, "msg", "some text that needs room");
        if (i % 5 == 0) tb_bool(o, "flag", true);
    }
}

static void test_rollback_on_nomem(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m"), *t2 = tb_table("n");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 5);
    tb_tag(&o, "host", "h0");
    tb_i64(&o, "n", -1);
    tb_line(&o, t2, 5);
    tb_i64(&o, "n", -2);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_op big; /* built first: the schema gains its columns before the write, as in ingot */
    make_big_op(&big, t, t2, 2);
    char *before_m = tb_query_all(tree, "db", "m");
    char *before_n = tb_query_all(tree, "db", "n");
    size_t rows = buffer_tree_rows(tree), bytes = buffer_tree_bytes(tree);
    int failures = 0, rc = -1;
    for (long n = 1; n < 200 && rc != 0; n++) {
        atomic_store(&buffer_fail_alloc_countdown, n);
        rc = tb_apply(tree, &big);
        atomic_store(&buffer_fail_alloc_countdown, 0);
        if (rc == 0) break;
        failures++;
        CHECK_EQ_INT(rc, INGOT_E_NOMEM);
        CHECK_EQ_INT(buffer_tree_rows(tree), rows);
        CHECK_EQ_INT(buffer_tree_bytes(tree), bytes);
        char *m = tb_query_all(tree, "db", "m"), *nn = tb_query_all(tree, "db", "n");
        CHECK_EQ_STR(m, before_m);
        CHECK_EQ_STR(nn, before_n);
        free(m);
        free(nn);
    }
    CHECK_EQ_INT(rc, 0);
    CHECK(failures >= 10); /* several distinct allocations were each made to fail */
    CHECK_EQ_INT(buffer_tree_rows(tree), rows + 600);
    /* the op that finally succeeded equals the same op applied to a fresh tree */
    buffer_tree *fresh = buffer_tree_new();
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 5);
    tb_tag(&o, "host", "h0");
    tb_i64(&o, "n", -1);
    tb_line(&o, t2, 5);
    tb_i64(&o, "n", -2);
    CHECK_EQ_INT(tb_apply(fresh, &o), 0);
    tb_op_free(&o);
    CHECK_EQ_INT(tb_apply(fresh, &big), 0);
    tb_op_free(&big);
    char *a = tb_query_all(tree, "db", "m"), *b = tb_query_all(fresh, "db", "m");
    CHECK_EQ_STR(a, b);
    CHECK(strstr(a, "1970-01-04 rows=") != NULL);
    free(a);
    free(b);
    a = tb_query_all(tree, "db", "n");
    b = tb_query_all(fresh, "db", "n");
    CHECK_EQ_STR(a, b);
    free(a);
    free(b);
    CHECK_EQ_INT(buffer_tree_bytes(tree), buffer_tree_bytes(fresh));
    free(before_m);
    free(before_n);
    buffer_tree_free(fresh);
    buffer_tree_free(tree);
    free(t);
    free(t2);
}

static void test_invalid_op(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 1);
    tb_i64(&o, "v", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    tb_op_init(&o, "db", 2);
    tb_line(&o, t, 2);
    tb_i64(&o, "w", 2);
    tb_line(&o, t, 3);
    tb_i64(&o, "v", 3);
    o.b.fields[1].type = LP_FIELD_F64; /* does not match the column's type */
    CHECK_EQ_INT(tb_apply(tree, &o), INGOT_E_INVALID);
    o.b.fields[1].type = LP_FIELD_I64;
    o.b.lines[1].table_slot = 7; /* no such table slot */
    CHECK_EQ_INT(tb_apply(tree, &o), INGOT_E_INVALID);
    tb_op_free(&o);
    char *got = tb_query(tree, "db", "m", NULL, 0, INT64_MIN, INT64_MAX);
    CHECK_EQ_STR(got, "1970-01-01 rows=1: v,w,time\n1|null|1\n");
    free(got);
    CHECK_EQ_INT(buffer_tree_rows(tree), 1);
    buffer_tree_free(tree);
    free(t);
}

static void test_escapes(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    tb_line(&o, t, 1);
    tb_tag_esc(&o, "host", "a\\ b\\,c\\=d\\x", LP_ESC_KEY);
    tb_string_esc(&o, "s", "say \\\"hi\\\" \\\\ \\n", LP_ESC_STRING);
    tb_line(&o, t, 2);
    tb_tag(&o, "host", "a b,c=d\\x"); /* same value sent unescaped: same dictionary entry */
    tb_string(&o, "s", "plain\\");
    CHECK_EQ_INT(tb_apply(tree, &o), 0);
    tb_op_free(&o);
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "1970-01-01 rows=2: host,s,time\n"
                      "a b,c=d\\x|\"say \"hi\" \\ \\n\"|1\n"
                      "a b,c=d\\x|\"plain\\\"|2\n");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

static void test_empty_table_and_op(void)
{
    buffer_tree *tree = buffer_tree_new();
    schema_table *t = tb_table("m");
    tb_op o;
    tb_op_init(&o, "db", 1);
    CHECK_EQ_INT(tb_apply(tree, &o), 0); /* no lines: nothing */
    CHECK_EQ_INT(buffer_tree_rows(tree), 0);
    tb_op_free(&o);
    /* a failed op leaves a table and an empty partition behind: queries see no batch */
    tb_op_init(&o, "db", 2);
    tb_line(&o, t, 1);
    tb_i64(&o, "v", 1);
    atomic_store(&buffer_fail_alloc_countdown, 1);
    CHECK_EQ_INT(tb_apply(tree, &o), INGOT_E_NOMEM);
    atomic_store(&buffer_fail_alloc_countdown, 0);
    tb_op_free(&o);
    char *got = tb_query_all(tree, "db", "m");
    CHECK_EQ_STR(got, "");
    free(got);
    buffer_tree_free(tree);
    free(t);
}

int main(void)
{
    TEST_RUN(test_partition_key);
    TEST_RUN(test_types_and_nulls);
    TEST_RUN(test_new_column_backfill);
    TEST_RUN(test_partitions_by_day);
    TEST_RUN(test_dedup);
    TEST_RUN(test_projection);
    TEST_RUN(test_sort_and_dictionary);
    TEST_RUN(test_time_filter);
    TEST_RUN(test_snapshot);
    TEST_RUN(test_not_found);
    TEST_RUN(test_accounting);
    TEST_RUN(test_rollback_on_nomem);
    TEST_RUN(test_invalid_op);
    TEST_RUN(test_escapes);
    TEST_RUN(test_empty_table_and_op);
    TEST_MAIN_END();
}
