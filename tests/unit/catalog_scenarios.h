/*
 * catalog_scenarios.h: back-end independent catalog tests, shared by test_catalog.c (SQLite)
 * and test_catalog_postgres.c (PostgreSQL). Each scenario talks to
 * the catalog only through the interface of catalog.h, so both back ends must give the same
 * answers.
 *
 * A PostgreSQL database outlives one run and is shared by all scenarios, so every scenario names
 * its namespaces with sc_name() (a per-run tag) and only looks at rows it made itself; the one
 * exception, sc_list_empty, wants a catalog nothing has been written to yet.
 * The including file sets sc_tag before running scenarios.
 */
#ifndef INGOT_CATALOG_SCENARIOS_H
#define INGOT_CATALOG_SCENARIOS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "test.h"
#include "util/column_type.h"
#include "util/error.h"

static char sc_tag[64] = "t"; /* unique per run (PostgreSQL) */

/* "<base>_<tag>" in buf */
static const char *sc_name(char *buf, size_t n, const char *base)
{
    snprintf(buf, n, "%s_%s", base, sc_tag);
    return buf;
}

/* A namespace and table of a fresh name for one scenario. */
static void sc_ns_table(catalog *cat, const char *base, int64_t *ns_out, int64_t *table_out)
{
    char name[128];
    *ns_out = -1;
    *table_out = -1;
    CHECK_EQ_INT(cat->namespace_get_or_create(cat->self, sc_name(name, sizeof name, base), ns_out),
                 0);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, *ns_out, "cpu", table_out), 0);
}

static void sc_get_or_create_idempotent(catalog *cat)
{
    char db[128], db2[128];
    sc_name(db, sizeof db, "idem");
    sc_name(db2, sizeof db2, "idem2");
    int64_t a = 0, b = 0, c = 0;
    CHECK_EQ_INT(cat->namespace_lookup(cat->self, db, &a), INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(cat->namespace_get_or_create(cat->self, db, &a), 0);
    CHECK_EQ_INT(cat->namespace_get_or_create(cat->self, db, &b), 0);
    CHECK_EQ_INT(a, b);
    CHECK_EQ_INT(cat->namespace_lookup(cat->self, db, &c), 0);
    CHECK_EQ_INT(a, c);
    CHECK_EQ_INT(cat->namespace_get_or_create(cat->self, db2, &c), 0);
    CHECK(c != a);

    int64_t t1 = 0, t2 = 0, t3 = 0, tx = 0;
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, a, "cpu", &t1), 0);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, a, "cpu", &t2), 0);
    CHECK_EQ_INT(t1, t2);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, c, "cpu", &t3), 0); /* other namespace */
    CHECK(t3 != t1);
    /* a table in a namespace that does not exist breaks the foreign key */
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, INT64_C(999999999), "cpu", &tx),
                 INGOT_E_CATALOG);
    /* the handle stays usable after a failed statement */
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, a, "cpu", &t2), 0);
    CHECK_EQ_INT(t1, t2);

    int64_t c1 = 0, c2 = 0;
    int et = -1;
    CHECK_EQ_INT(cat->column_upsert(cat->self, t1, "usage", COLUMN_F64, &c1, &et), 0);
    CHECK_EQ_INT(cat->column_upsert(cat->self, t1, "usage", COLUMN_F64, &c2, &et), 0);
    CHECK_EQ_INT(c1, c2);
}

static void sc_column_conflict(catalog *cat)
{
    int64_t ns, t, id1 = 0, id2 = -1;
    sc_ns_table(cat, "conflict", &ns, &t);
    int et = 0;
    CHECK_EQ_INT(cat->column_upsert(cat->self, t, "x", COLUMN_I64, &id1, &et), 0);
    CHECK_EQ_INT(cat->column_upsert(cat->self, t, "x", COLUMN_F64, &id2, &et), INGOT_E_SCHEMA);
    CHECK_EQ_INT(et, COLUMN_I64);
    CHECK_EQ_INT(id2, id1);
    et = 0;
    CHECK_EQ_INT(cat->column_upsert(cat->self, t, "x", COLUMN_TAG, &id2, &et), INGOT_E_SCHEMA);
    CHECK_EQ_INT(et, COLUMN_I64);
    CHECK_EQ_INT(cat->column_upsert(cat->self, t, "y", 0, &id2, &et), INGOT_E_INVALID);
    CHECK_EQ_INT(cat->column_upsert(cat->self, t, "y", 8, &id2, &et), INGOT_E_INVALID);
}

struct sc_collect {
    int n;
    int64_t ids[16];
    char names[16][32];
    int types[16];
};

static void sc_collect_table(void *arg, int64_t id, const char *name)
{
    struct sc_collect *c = arg;
    if (c->n < 16) {
        c->ids[c->n] = id;
        snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
        c->n++;
    }
}

static void sc_collect_column(void *arg, int64_t id, const char *name, int type)
{
    struct sc_collect *c = arg;
    if (c->n < 16) c->types[c->n] = type;
    sc_collect_table(arg, id, name);
}

/* Fill a namespace "metrics": tables mem and cpu, cpu with time, host, usage. */
static void sc_fill_metrics(catalog *cat, int64_t *ns_out, int64_t *cpu_out)
{
    char db[128];
    int64_t t1, c1, c2, c3;
    int et;
    CHECK_EQ_INT(cat->namespace_get_or_create(cat->self, sc_name(db, sizeof db, "metrics"), ns_out),
                 0);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, *ns_out, "mem", &t1), 0);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, *ns_out, "cpu", cpu_out), 0);
    CHECK_EQ_INT(cat->column_upsert(cat->self, *cpu_out, "time", COLUMN_TIME, &c1, &et), 0);
    CHECK_EQ_INT(cat->column_upsert(cat->self, *cpu_out, "host", COLUMN_TAG, &c2, &et), 0);
    CHECK_EQ_INT(cat->column_upsert(cat->self, *cpu_out, "usage", COLUMN_F64, &c3, &et), 0);
    CHECK(c1 < c2 && c2 < c3);
}

/* Check what sc_fill_metrics made, as seen through cat (maybe another handle). */
static void sc_check_metrics(catalog *cat, int64_t ns, int64_t cpu)
{
    char db[128];
    int64_t id = -1;
    CHECK_EQ_INT(cat->namespace_lookup(cat->self, sc_name(db, sizeof db, "metrics"), &id), 0);
    CHECK_EQ_INT(id, ns);
    struct sc_collect tc = {0};
    CHECK_EQ_INT(cat->list_tables(cat->self, ns, sc_collect_table, &tc), 0);
    CHECK_EQ_INT(tc.n, 2);
    CHECK_EQ_STR(tc.names[0], "mem");
    CHECK_EQ_STR(tc.names[1], "cpu");
    CHECK_EQ_INT(tc.ids[1], cpu);
    CHECK(tc.ids[0] < tc.ids[1]);
    struct sc_collect cc = {0};
    CHECK_EQ_INT(cat->list_columns(cat->self, cpu, sc_collect_column, &cc), 0);
    CHECK_EQ_INT(cc.n, 3);
    CHECK_EQ_STR(cc.names[0], "time");
    CHECK_EQ_INT(cc.types[0], COLUMN_TIME);
    CHECK_EQ_STR(cc.names[1], "host");
    CHECK_EQ_INT(cc.types[1], COLUMN_TAG);
    CHECK_EQ_STR(cc.names[2], "usage");
    CHECK_EQ_INT(cc.types[2], COLUMN_F64);
    struct sc_collect empty = {0};
    CHECK_EQ_INT(cat->list_columns(cat->self, tc.ids[0], sc_collect_column, &empty), 0);
    CHECK_EQ_INT(empty.n, 0);
}

static void sc_lists(catalog *cat)
{
    int64_t ns, cpu;
    sc_fill_metrics(cat, &ns, &cpu);
    sc_check_metrics(cat, ns, cpu);
}

static void sc_partition_get_or_create(catalog *cat)
{
    int64_t ns, t, t2, p1 = 0, p2 = 0, p3 = 0, p4 = 0;
    char *k1 = NULL, *k2 = NULL, *k3 = NULL;
    sc_ns_table(cat, "part", &ns, &t);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, ns, "mem", &t2), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-01", &p1, &k1), 0);
    CHECK_EQ_STR(k1, "[]");
    CHECK(p1 > 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-01", &p2, &k2), 0);
    CHECK_EQ_INT(p1, p2);
    CHECK_EQ_STR(k2, "[]");
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-02", &p3, &k3), 0);
    CHECK(p3 != p1);
    /* same key, other table: another partition; sort_key_out may be NULL */
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t2, "2026-01-01", &p4, NULL), 0);
    CHECK(p4 != p1 && p4 != p3);
    free(k1);
    free(k2);
    free(k3);
    /* a partition of a table that does not exist breaks the foreign key */
    CHECK_EQ_INT(
        cat->partition_get_or_create(cat->self, INT64_C(999999999), "2026-01-01", &p4, NULL),
        INGOT_E_CATALOG);
}

static void sc_cas_sort_key(catalog *cat)
{
    int64_t ns, t, p, p2;
    char *k = NULL, *obs = NULL;
    sc_ns_table(cat, "cas", &ns, &t);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-02-01", &p, &k), 0);
    CHECK_EQ_STR(k, "[]");
    free(k);
    k = NULL;
    /* swap from the empty key */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[]", "[\"host\",\"time\"]", &obs), 0);
    CHECK(obs == NULL);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-02-01", &p2, &k), 0);
    CHECK_EQ_INT(p2, p);
    CHECK_EQ_STR(k, "[\"host\",\"time\"]");
    free(k);
    /* a stale old key loses and sees the stored one */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[]", "[\"region\",\"time\"]", &obs),
                 INGOT_E_CONFLICT);
    CHECK_EQ_STR(obs, "[\"host\",\"time\"]");
    free(obs);
    obs = NULL;
    /* losing without asking what is stored */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[]", "[\"region\",\"time\"]", NULL),
                 INGOT_E_CONFLICT);
    /* a stale old key but the stored key is already the new one: nothing to do */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[]", "[\"host\",\"time\"]", &obs), 0);
    CHECK(obs == NULL);
    /* grow the key */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[\"host\",\"time\"]",
                                             "[\"host\",\"region\",\"time\"]", &obs),
                 0);
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[\"host\",\"time\"]",
                                             "[\"host\",\"cpu\",\"time\"]", &obs),
                 INGOT_E_CONFLICT);
    CHECK_EQ_STR(obs, "[\"host\",\"region\",\"time\"]");
    free(obs);
    obs = NULL;
    /* byte-equal comparison: the same JSON spelled with a space is another key */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, p, "[\"host\", \"region\",\"time\"]",
                                             "[\"time\"]", &obs),
                 INGOT_E_CONFLICT);
    free(obs);
    obs = NULL;
    /* unknown partition */
    CHECK_EQ_INT(
        cat->partition_cas_sort_key(cat->self, INT64_C(999999999), "[]", "[\"time\"]", &obs),
        INGOT_E_NOT_FOUND);
    CHECK(obs == NULL);
}

/* ---- list_namespaces, list_partitions ---- */

/*
 * What list_namespaces reported: every row's order, and the rows of sc_list_namespaces (named
 * "lsns_<base>_<tag>"; other scenarios of the run share the tag).
 */
struct sc_ns_list {
    int total;
    bool ascending; /* every id above the one before */
    int64_t last_id;
    int n; /* this run's rows */
    int64_t ids[8];
    char names[8][96];
};

static void sc_collect_namespace(void *arg, int64_t id, const char *name)
{
    struct sc_ns_list *c = arg;
    if (c->total > 0 && id <= c->last_id) c->ascending = false;
    c->last_id = id;
    c->total++;
    size_t len = strlen(name), tag = strlen(sc_tag);
    if (strncmp(name, "lsns_", 5) == 0 && len > tag + 5 && name[len - tag - 1] == '_' &&
        strcmp(name + len - tag, sc_tag) == 0 && c->n < 8) {
        c->ids[c->n] = id;
        snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
        c->n++;
    }
}

/* What list_partitions reported; each callback also looks its partition up again (re-entry). */
struct sc_part_list {
    catalog *cat;
    int64_t table_id;
    int n;
    int64_t ids[8];
    char keys[8][24];
    char sort_keys[8][64];
    int reentry_failures; /* lookups from inside the callback that failed or disagreed */
};

static void sc_collect_partition(void *arg, int64_t id, const char *key, const char *sort_key)
{
    struct sc_part_list *c = arg;
    if (c->n < 8) {
        c->ids[c->n] = id;
        snprintf(c->keys[c->n], sizeof c->keys[0], "%s", key);
        snprintf(c->sort_keys[c->n], sizeof c->sort_keys[0], "%s", sort_key);
    }
    c->n++;
    /* the catalog's lock is not held during callbacks: calling back in must work */
    int64_t again = -1;
    char *stored = NULL;
    if (c->cat->partition_get_or_create(c->cat->self, c->table_id, key, &again, &stored) != 0 ||
        again != id || !stored || strcmp(stored, sort_key) != 0)
        c->reentry_failures++;
    free(stored);
}

/* A fresh catalog (nothing written yet) lists nothing. */
static void sc_list_empty(catalog *cat)
{
    struct sc_ns_list ns = {.ascending = true};
    CHECK_EQ_INT(cat->list_namespaces(cat->self, sc_collect_namespace, &ns), 0);
    CHECK_EQ_INT(ns.total, 0);
    struct sc_part_list parts = {.cat = cat, .table_id = 1};
    CHECK_EQ_INT(cat->list_partitions(cat->self, 1, sc_collect_partition, &parts), 0);
    CHECK_EQ_INT(parts.n, 0);
}

/* Namespaces come in id order (here not name order), once each, with their names. */
static void sc_list_namespaces(catalog *cat)
{
    static const char *const bases[3] = {"lsns_zeta", "lsns_alpha", "lsns_mid"};
    char name[128];
    int64_t ids[3] = {-1, -1, -1}, again = -2;
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(
            cat->namespace_get_or_create(cat->self, sc_name(name, sizeof name, bases[i]), &ids[i]),
            0);
    CHECK_EQ_INT(
        cat->namespace_get_or_create(cat->self, sc_name(name, sizeof name, bases[0]), &again), 0);
    CHECK_EQ_INT(again, ids[0]);
    CHECK(ids[0] < ids[1] && ids[1] < ids[2]);

    struct sc_ns_list got = {.ascending = true};
    CHECK_EQ_INT(cat->list_namespaces(cat->self, sc_collect_namespace, &got), 0);
    CHECK(got.ascending);
    CHECK(got.total >= 3);
    CHECK_EQ_INT(got.n, 3);
    for (int i = 0; i < 3 && i < got.n; i++) {
        CHECK_EQ_INT(got.ids[i], ids[i]);
        CHECK_EQ_STR(got.names[i], sc_name(name, sizeof name, bases[i]));
    }
}

/*
 * The partitions of one table in partition_key byte order (created in another order), not those
 * of a neighbour table, each with its stored sort key: "[]" until a CAS, then the newest key.
 */
static void sc_list_partitions(catalog *cat)
{
    int64_t ns, t, t2;
    sc_ns_table(cat, "listpart", &ns, &t);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, ns, "mem", &t2), 0);
    struct sc_part_list got = {.cat = cat, .table_id = t};
    CHECK_EQ_INT(cat->list_partitions(cat->self, t, sc_collect_partition, &got), 0);
    CHECK_EQ_INT(got.n, 0); /* a table without partitions */

    /* byte order puts "B" before "a" (a locale-aware order would not) */
    static const char *const made[5] = {"2026-01-03", "a", "2026-01-01", "B", "2026-01-02"};
    static const char *const sorted[5] = {"2026-01-01", "2026-01-02", "2026-01-03", "B", "a"};
    int64_t ids[5];
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, made[i], &ids[i], NULL), 0);
    int64_t other[2];
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t2, "2026-01-01", &other[0], NULL), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t2, "2026-01-015", &other[1], NULL), 0);
    /* 2026-01-02 gets a sort key, then a longer one */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, ids[4], "[]", "[\"host\",\"time\"]", NULL),
                 0);
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, ids[4], "[\"host\",\"time\"]",
                                             "[\"host\",\"region\",\"time\"]", NULL),
                 0);
    /* a lost CAS changes nothing */
    CHECK_EQ_INT(cat->partition_cas_sort_key(cat->self, ids[2], "[\"x\"]", "[\"y\"]", NULL),
                 INGOT_E_CONFLICT);

    CHECK_EQ_INT(cat->list_partitions(cat->self, t, sc_collect_partition, &got), 0);
    CHECK_EQ_INT(got.n, 5);
    CHECK_EQ_INT(got.reentry_failures, 0);
    static const int made_index[5] = {2, 4, 0, 3, 1}; /* sorted[i] is made[made_index[i]] */
    for (int i = 0; i < 5 && i < got.n; i++) {
        CHECK_EQ_STR(got.keys[i], sorted[i]);
        CHECK_EQ_INT(got.ids[i], ids[made_index[i]]);
        CHECK_EQ_STR(got.sort_keys[i], i == 1 ? "[\"host\",\"region\",\"time\"]" : "[]");
    }

    struct sc_part_list mem = {.cat = cat, .table_id = t2};
    CHECK_EQ_INT(cat->list_partitions(cat->self, t2, sc_collect_partition, &mem), 0);
    CHECK_EQ_INT(mem.n, 2);
    CHECK_EQ_INT(mem.reentry_failures, 0);
    CHECK_EQ_STR(mem.keys[0], "2026-01-01");
    CHECK_EQ_INT(mem.ids[0], other[0]);
    CHECK_EQ_STR(mem.keys[1], "2026-01-015");
    CHECK_EQ_INT(mem.ids[1], other[1]);
    CHECK_EQ_STR(mem.sort_keys[1], "[]");

    struct sc_part_list none = {.cat = cat, .table_id = INT64_C(999999999)};
    CHECK_EQ_INT(cat->list_partitions(cat->self, INT64_C(999999999), sc_collect_partition, &none),
                 0);
    CHECK_EQ_INT(none.n, 0);
}

/* The WAL identity the scenarios record their files under (the format is the WAL's concern). */
#define SC_WAL "0a5c0a5c-0000-4000-8000-00000000000a"

/* A file row for partition p of table t in namespace ns, of WAL SC_WAL; uuid made from n. */
static catalog_parquet_file sc_file(int64_t ns, int64_t t, int64_t p, int n, uint64_t max_seq,
                                    const char *extras)
{
    catalog_parquet_file f = {0};
    f.namespace_id = ns;
    f.table_id = t;
    f.partition_id = p;
    snprintf(f.object_store_id, sizeof f.object_store_id, "%08x-0000-4000-8000-%012llx",
             (unsigned)n, (unsigned long long)(uintptr_t)(ns * 1000 + n));
    f.min_time = INT64_C(1767225600000000000) + n;
    f.max_time = INT64_C(1767225600000000000) + 1000 * n;
    f.row_count = 10 * n;
    f.file_size_bytes = 4096 + n;
    f.max_sequence_number = max_seq;
    f.sequence_extras = extras;
    f.wal_id = SC_WAL;
    f.created_at = INT64_C(1767225600123456789) + n;
    return f;
}

struct sc_files {
    int n;
    catalog_parquet_file f[8];
    char keys[8][16];
    char extras[8][64];
};

static void sc_collect_file(void *arg, const catalog_parquet_file *file)
{
    struct sc_files *c = arg;
    if (c->n >= 8) return;
    c->f[c->n] = *file;
    snprintf(c->keys[c->n], sizeof c->keys[0], "%s", file->partition_key);
    snprintf(c->extras[c->n], sizeof c->extras[0], "%s", file->sequence_extras);
    c->f[c->n].partition_key = c->keys[c->n];
    c->f[c->n].sequence_extras = c->extras[c->n];
    c->n++;
}

static void sc_file_insert_and_list(catalog *cat)
{
    int64_t ns, t, pa, pb, id1 = 0, id2 = 0, id3 = 0, id1b = 0;
    sc_ns_table(cat, "files", &ns, &t);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-02", &pb, NULL), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-01", &pa, NULL), 0);
    catalog_parquet_file f1 = sc_file(ns, t, pa, 1, 10, "12,15");
    catalog_parquet_file f2 = sc_file(ns, t, pb, 2, 11, NULL);
    catalog_parquet_file f3 = sc_file(ns, t, pa, 3, UINT64_C(0x7fffffffffffff00), "");
    f3.created_at = 0; /* now */
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f1, &id1), 0);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f2, &id2), 0);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f3, NULL), 0);
    CHECK(id1 > 0 && id2 > id1);
    /* a retried insert (same object_store_id) changes nothing and reports the stored id */
    catalog_parquet_file retry = f1;
    retry.row_count = 999;
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &retry, &id1b), 0);
    CHECK_EQ_INT(id1b, id1);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f3, &id3), 0);
    CHECK(id3 > id2);
    int64_t looked = 0;
    CHECK_EQ_INT(cat->parquet_file_lookup(cat->self, f2.object_store_id, &looked), 0);
    CHECK_EQ_INT(looked, id2);
    CHECK_EQ_INT(
        cat->parquet_file_lookup(cat->self, "00000000-0000-4000-8000-000000000000", &looked),
        INGOT_E_NOT_FOUND);

    struct sc_files got = {0};
    CHECK_EQ_INT(cat->parquet_file_list(cat->self, t, sc_collect_file, &got), 0);
    CHECK_EQ_INT(got.n, 3);
    if (got.n != 3) return;
    CHECK_EQ_INT(got.f[0].id, id1);
    CHECK_EQ_INT(got.f[1].id, id2);
    CHECK_EQ_INT(got.f[2].id, id3);
    CHECK_EQ_STR(got.keys[0], "2026-01-01");
    CHECK_EQ_STR(got.keys[1], "2026-01-02");
    CHECK_EQ_STR(got.keys[2], "2026-01-01");
    CHECK_EQ_STR(got.f[0].object_store_id, f1.object_store_id);
    CHECK_EQ_INT(got.f[0].namespace_id, ns);
    CHECK_EQ_INT(got.f[0].table_id, t);
    CHECK_EQ_INT(got.f[0].partition_id, pa);
    CHECK_EQ_INT(got.f[1].partition_id, pb);
    CHECK_EQ_INT(got.f[0].min_time, f1.min_time);
    CHECK_EQ_INT(got.f[0].max_time, f1.max_time);
    CHECK_EQ_INT(got.f[0].row_count, 10); /* not the retry's 999 */
    CHECK_EQ_INT(got.f[0].file_size_bytes, f1.file_size_bytes);
    CHECK(got.f[0].max_sequence_number == 10);
    CHECK_EQ_STR(got.extras[0], "12,15");
    CHECK_EQ_STR(got.extras[1], "");
    CHECK_EQ_INT(got.f[0].created_at, f1.created_at);
    CHECK(got.f[2].max_sequence_number == UINT64_C(0x7fffffffffffff00));
    CHECK(got.f[2].created_at > INT64_C(1600000000000000000)); /* filled in with "now" */

    /* another table lists nothing */
    int64_t t2;
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, ns, "mem", &t2), 0);
    struct sc_files none = {0};
    CHECK_EQ_INT(cat->parquet_file_list(cat->self, t2, sc_collect_file, &none), 0);
    CHECK_EQ_INT(none.n, 0);
}

static void sc_file_insert_invalid(catalog *cat)
{
    int64_t ns, t, p, id = -7;
    sc_ns_table(cat, "badfile", &ns, &t);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-01", &p, NULL), 0);
    const char *bad[] = {
        "5", "9,12", "12,", ",12", "12,,13", "x", "12 ,13", "-12", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        catalog_parquet_file f = sc_file(ns, t, p, 40 + (int)i, 10, bad[i]);
        CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, &id), INGOT_E_INVALID);
    }
    catalog_parquet_file f = sc_file(ns, t, p, 60, 10, NULL);
    f.object_store_id[0] = 0;
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, &id), INGOT_E_INVALID);
    memset(f.object_store_id, 'a', sizeof f.object_store_id); /* not terminated */
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, &id), INGOT_E_INVALID);
    /* a partition that does not exist breaks the foreign key */
    f = sc_file(ns, t, INT64_C(999999999), 61, 10, NULL);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, &id), INGOT_E_CATALOG);
    struct sc_files none = {0};
    CHECK_EQ_INT(cat->parquet_file_list(cat->self, t, sc_collect_file, &none), 0);
    CHECK_EQ_INT(none.n, 0);
}

struct sc_persisted {
    int64_t tables[2]; /* only rows of these tables are kept */
    int n;
    int64_t table_id[8];
    char key[8][16];
    uint64_t max_seq[8];
    char extras[8][128];
};

static void sc_collect_persisted(void *arg, int64_t table_id, const char *partition_key,
                                 uint64_t max_seq, const char *extras)
{
    struct sc_persisted *c = arg;
    if (table_id != c->tables[0] && table_id != c->tables[1]) return;
    if (c->n >= 8) return;
    c->table_id[c->n] = table_id;
    snprintf(c->key[c->n], sizeof c->key[0], "%s", partition_key);
    c->max_seq[c->n] = max_seq;
    snprintf(c->extras[c->n], sizeof c->extras[0], "%s", extras);
    c->n++;
}

static void sc_persisted_sequences(catalog *cat)
{
    int64_t ns, t, t2, pa, pb, pc, pd;
    sc_ns_table(cat, "persisted", &ns, &t);
    CHECK_EQ_INT(cat->table_get_or_create(cat->self, ns, "mem", &t2), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-01", &pa, NULL), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-02", &pb, NULL), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-03", &pc, NULL), 0);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t2, "2026-01-01", &pd, NULL), 0);

    struct sc_persisted got = {.tables = {t, t2}};
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, SC_WAL, sc_collect_persisted, &got), 0);
    CHECK_EQ_INT(got.n, 0); /* partitions without files are not listed */

    /* pa: three files; extras below the overall max vanish, the rest merge sorted, unique */
    catalog_parquet_file f;
    f = sc_file(ns, t, pa, 1, 10, "25,12,40");
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    f = sc_file(ns, t, pa, 2, 20, "25,21,23");
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    f = sc_file(ns, t, pa, 3, 5, "");
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    /* pb: one file, no extras */
    f = sc_file(ns, t, pb, 4, 7, NULL);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    /* pd (other table): extras all covered by a later file's max */
    f = sc_file(ns, t2, pd, 5, 3, "4,9");
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    f = sc_file(ns, t2, pd, 6, 9, NULL);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    /* a retried insert adds nothing */
    f = sc_file(ns, t2, pd, 6, 9, NULL);
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);

    memset(&got, 0, sizeof got);
    got.tables[0] = t;
    got.tables[1] = t2;
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, SC_WAL, sc_collect_persisted, &got), 0);
    CHECK_EQ_INT(got.n, 3);
    if (got.n != 3) return;
    /* in partition id order: pa, pb, pd */
    CHECK_EQ_INT(got.table_id[0], t);
    CHECK_EQ_STR(got.key[0], "2026-01-01");
    CHECK(got.max_seq[0] == 20);
    CHECK_EQ_STR(got.extras[0], "21,23,25,40");
    CHECK_EQ_STR(got.key[1], "2026-01-02");
    CHECK(got.max_seq[1] == 7);
    CHECK_EQ_STR(got.extras[1], "");
    CHECK_EQ_INT(got.table_id[2], t2);
    CHECK_EQ_STR(got.key[2], "2026-01-01");
    CHECK(got.max_seq[2] == 9);
    CHECK_EQ_STR(got.extras[2], "");
}

/*
 * Coverage is per WAL: files of another WAL (another ingester on the same catalog) do not count
 * for this one, files of no WAL identity (recorded before identities; NULL is stored as "")
 * count for every WAL.
 */
static void sc_persisted_sequences_per_wal(catalog *cat)
{
    static const char other_wal[] = "0b0b0b0b-0000-4000-8000-00000000000b";
    int64_t ns, t, p;
    sc_ns_table(cat, "perwal", &ns, &t);
    CHECK_EQ_INT(cat->partition_get_or_create(cat->self, t, "2026-01-01", &p, NULL), 0);
    catalog_parquet_file f = sc_file(ns, t, p, 71, 50, "60");
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    f = sc_file(ns, t, p, 72, 500, "510");
    f.wal_id = other_wal;
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    struct sc_persisted mine = {.tables = {t, t}}, theirs = {.tables = {t, t}};
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, SC_WAL, sc_collect_persisted, &mine), 0);
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, other_wal, sc_collect_persisted, &theirs), 0);
    CHECK_EQ_INT(mine.n, 1);
    CHECK_EQ_INT(theirs.n, 1);
    CHECK(mine.max_seq[0] == 50);
    CHECK_EQ_STR(mine.extras[0], "60");
    CHECK(theirs.max_seq[0] == 500);
    CHECK_EQ_STR(theirs.extras[0], "510");
    /* a file of no identity counts for both, and for a WAL with no file of its own */
    f = sc_file(ns, t, p, 73, 55, "70");
    f.wal_id = NULL;
    CHECK_EQ_INT(cat->parquet_file_insert(cat->self, &f, NULL), 0);
    struct sc_persisted a = {.tables = {t, t}}, b = {.tables = {t, t}}, c = {.tables = {t, t}};
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, SC_WAL, sc_collect_persisted, &a), 0);
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, other_wal, sc_collect_persisted, &b), 0);
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, "", sc_collect_persisted, &c), 0);
    CHECK(a.n == 1 && a.max_seq[0] == 55);
    CHECK_EQ_STR(a.extras[0], "60,70");
    CHECK(b.n == 1 && b.max_seq[0] == 500);
    CHECK_EQ_STR(b.extras[0], "510");
    CHECK(c.n == 1 && c.max_seq[0] == 55);
    CHECK_EQ_STR(c.extras[0], "70");
}

/* Two handles on one database see each other's rows and lose each other's CAS races. */
static void sc_two_handles(catalog *a, catalog *b)
{
    char db[128];
    sc_name(db, sizeof db, "shared");
    int64_t nsa, nsb, ta, tb, ca, cb;
    int et = 0;
    CHECK_EQ_INT(a->namespace_get_or_create(a->self, db, &nsa), 0);
    CHECK_EQ_INT(b->namespace_get_or_create(b->self, db, &nsb), 0);
    CHECK_EQ_INT(nsa, nsb);
    CHECK_EQ_INT(b->table_get_or_create(b->self, nsb, "cpu", &tb), 0);
    CHECK_EQ_INT(a->table_get_or_create(a->self, nsa, "cpu", &ta), 0);
    CHECK_EQ_INT(ta, tb);
    CHECK_EQ_INT(a->column_upsert(a->self, ta, "v", COLUMN_U64, &ca, &et), 0);
    CHECK_EQ_INT(b->column_upsert(b->self, tb, "v", COLUMN_BOOL, &cb, &et), INGOT_E_SCHEMA);
    CHECK_EQ_INT(et, COLUMN_U64);
    CHECK_EQ_INT(cb, ca);
    CHECK_EQ_INT(b->column_upsert(b->self, tb, "v", COLUMN_U64, &cb, &et), 0);
    CHECK_EQ_INT(cb, ca);

    /* both read the empty key, a wins the swap, b loses and learns a's key */
    int64_t pa, pb;
    char *ka = NULL, *kb = NULL, *obs = NULL;
    CHECK_EQ_INT(a->partition_get_or_create(a->self, ta, "2026-03-01", &pa, &ka), 0);
    CHECK_EQ_INT(b->partition_get_or_create(b->self, tb, "2026-03-01", &pb, &kb), 0);
    CHECK_EQ_INT(pa, pb);
    CHECK_EQ_STR(ka, "[]");
    CHECK_EQ_STR(kb, "[]");
    CHECK_EQ_INT(a->partition_cas_sort_key(a->self, pa, ka, "[\"host\",\"time\"]", &obs), 0);
    CHECK_EQ_INT(b->partition_cas_sort_key(b->self, pb, kb, "[\"dc\",\"time\"]", &obs),
                 INGOT_E_CONFLICT);
    CHECK_EQ_STR(obs, "[\"host\",\"time\"]");
    /* b redoes its job with the stored key */
    CHECK_EQ_INT(b->partition_cas_sort_key(b->self, pb, obs, "[\"host\",\"dc\",\"time\"]", NULL),
                 0);
    free(obs);
    obs = NULL;
    free(ka);
    ka = NULL;
    CHECK_EQ_INT(a->partition_get_or_create(a->self, ta, "2026-03-01", &pa, &ka), 0);
    CHECK_EQ_STR(ka, "[\"host\",\"dc\",\"time\"]");
    free(ka);
    free(kb);

    /* a file inserted through b is listed through a, and a's retry of it is a no-op */
    catalog_parquet_file f = sc_file(nsb, tb, pb, 1, 42, "44");
    int64_t fb = 0, fa = 0;
    CHECK_EQ_INT(b->parquet_file_insert(b->self, &f, &fb), 0);
    CHECK_EQ_INT(a->parquet_file_insert(a->self, &f, &fa), 0);
    CHECK_EQ_INT(fa, fb);
    struct sc_files got = {0};
    CHECK_EQ_INT(a->parquet_file_list(a->self, ta, sc_collect_file, &got), 0);
    CHECK_EQ_INT(got.n, 1);
    CHECK_EQ_STR(got.keys[0], "2026-03-01");
    CHECK_EQ_STR(got.extras[0], "44");
}

/* Two handles race a CAS from the same key in threads: exactly one wins, the other sees its key. */
struct sc_cas_racer {
    catalog *cat;
    int64_t partition_id;
    const char *new_key;
    int result;
    char *observed;
};

static void *sc_cas_racer_main(void *p)
{
    struct sc_cas_racer *r = p;
    r->result = r->cat->partition_cas_sort_key(r->cat->self, r->partition_id, "[]", r->new_key,
                                               &r->observed);
    return NULL;
}

static void sc_cas_race(catalog *a, catalog *b)
{
    int64_t ns, t;
    sc_ns_table(a, "casrace", &ns, &t);
    for (int round = 0; round < 5; round++) {
        char key[24];
        int64_t p;
        snprintf(key, sizeof key, "2026-07-%02u", (unsigned)(round + 1) % 100u);
        CHECK_EQ_INT(a->partition_get_or_create(a->self, t, key, &p, NULL), 0);
        struct sc_cas_racer r[2] = {
            {.cat = a, .partition_id = p, .new_key = "[\"a\",\"time\"]"},
            {.cat = b, .partition_id = p, .new_key = "[\"b\",\"time\"]"},
        };
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            CHECK_EQ_INT(pthread_create(&th[i], NULL, sc_cas_racer_main, &r[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        int winner = r[0].result == 0 ? 0 : 1, loser = 1 - winner;
        CHECK_EQ_INT(r[winner].result, 0);
        CHECK_EQ_INT(r[loser].result, INGOT_E_CONFLICT);
        CHECK_EQ_STR(r[loser].observed, r[winner].new_key);
        char *stored = NULL;
        CHECK_EQ_INT(b->partition_get_or_create(b->self, t, key, &p, &stored), 0);
        CHECK_EQ_STR(stored, r[winner].new_key);
        free(stored);
        free(r[0].observed);
        free(r[1].observed);
    }
}

/* Data written through one handle is there after closing it and opening another. */
typedef int (*sc_open_fn)(void *arg, catalog *out);

static void sc_reopen_keeps_data(sc_open_fn open_fn, void *arg)
{
    catalog cat;
    int64_t ns = -1, cpu = -1, p = -1, p2 = -2;
    CHECK_EQ_INT(open_fn(arg, &cat), 0);
    sc_fill_metrics(&cat, &ns, &cpu);
    CHECK_EQ_INT(cat.partition_get_or_create(cat.self, cpu, "2026-04-01", &p, NULL), 0);
    CHECK_EQ_INT(cat.partition_cas_sort_key(cat.self, p, "[]", "[\"host\",\"time\"]", NULL), 0);
    catalog_parquet_file f = sc_file(ns, cpu, p, 1, 77, "79");
    CHECK_EQ_INT(cat.parquet_file_insert(cat.self, &f, NULL), 0);
    cat.close(cat.self);

    CHECK_EQ_INT(open_fn(arg, &cat), 0);
    sc_check_metrics(&cat, ns, cpu);
    char *k = NULL;
    CHECK_EQ_INT(cat.partition_get_or_create(cat.self, cpu, "2026-04-01", &p2, &k), 0);
    CHECK_EQ_INT(p2, p);
    CHECK_EQ_STR(k, "[\"host\",\"time\"]");
    free(k);
    struct sc_persisted got = {.tables = {cpu, cpu}};
    CHECK_EQ_INT(cat.persisted_sequences(cat.self, SC_WAL, sc_collect_persisted, &got), 0);
    CHECK_EQ_INT(got.n, 1);
    CHECK(got.max_seq[0] == 77);
    CHECK_EQ_STR(got.extras[0], "79");
    cat.close(cat.self);
}

/*
 * A version 1 catalog is upgraded at open: a file recorded through open_fn's catalog, which
 * to_version_1(arg) then takes back to version 1's shape (parquet_file without wal_id), still
 * counts after the reopen, now as a file of no WAL identity, for every WAL. The caller checks
 * the stored schema version itself (back-end specific).
 */
static void sc_upgrade_from_version_1(sc_open_fn open_fn, void *arg, int (*to_version_1)(void *arg))
{
    catalog cat;
    CHECK_EQ_INT(open_fn(arg, &cat), 0);
    int64_t ns, t, p;
    sc_ns_table(&cat, "upgrade", &ns, &t);
    CHECK_EQ_INT(cat.partition_get_or_create(cat.self, t, "2026-01-01", &p, NULL), 0);
    catalog_parquet_file f = sc_file(ns, t, p, 81, 42, "44");
    CHECK_EQ_INT(cat.parquet_file_insert(cat.self, &f, NULL), 0);
    cat.close(cat.self);
    CHECK_EQ_INT(to_version_1(arg), 0);
    int rc = open_fn(arg, &cat);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;
    struct sc_persisted got = {.tables = {t, t}};
    CHECK_EQ_INT(cat.persisted_sequences(cat.self, SC_WAL, sc_collect_persisted, &got), 0);
    CHECK(got.n == 1 && got.max_seq[0] == 42);
    cat.close(cat.self);
}

/* Several threads on one handle: get-or-create the same partitions and insert files. */
#define SC_THREADS 4
#define SC_FILES_PER_THREAD 10

struct sc_thread_arg {
    catalog *cat;
    int64_t ns, table;
    int index;
    int failures;
    int64_t partition_ids[3];
};

static void *sc_thread_main(void *p)
{
    struct sc_thread_arg *a = p;
    static const char *const keys[3] = {"2026-05-01", "2026-05-02", "2026-05-03"};
    for (int i = 0; i < SC_FILES_PER_THREAD; i++) {
        int64_t pid;
        int k = (i + a->index) % 3;
        if (a->cat->partition_get_or_create(a->cat->self, a->table, keys[k], &pid, NULL) != 0) {
            a->failures++;
            continue;
        }
        a->partition_ids[k] = pid;
        catalog_parquet_file f =
            sc_file(a->ns, a->table, pid, 100 + a->index * SC_FILES_PER_THREAD + i,
                    (uint64_t)(i + 1), NULL);
        if (a->cat->parquet_file_insert(a->cat->self, &f, NULL) != 0) a->failures++;
        /* every thread retries its first file once */
        if (i == SC_FILES_PER_THREAD - 1) {
            f = sc_file(a->ns, a->table, pid, 100 + a->index * SC_FILES_PER_THREAD, 1, NULL);
            f.partition_id = a->partition_ids[a->index % 3];
            if (a->cat->parquet_file_insert(a->cat->self, &f, NULL) != 0) a->failures++;
        }
    }
    return NULL;
}

static void sc_count_file(void *arg, const catalog_parquet_file *file)
{
    (void)file;
    (*(int *)arg)++;
}

static void sc_concurrent(catalog *cat)
{
    int64_t ns, t;
    sc_ns_table(cat, "threads", &ns, &t);
    pthread_t th[SC_THREADS];
    struct sc_thread_arg args[SC_THREADS];
    for (int i = 0; i < SC_THREADS; i++) {
        args[i] = (struct sc_thread_arg){.cat = cat, .ns = ns, .table = t, .index = i};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, sc_thread_main, &args[i]), 0);
    }
    for (int i = 0; i < SC_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].failures, 0);
        for (int k = 0; k < 3; k++)
            CHECK_EQ_INT(args[i].partition_ids[k], args[0].partition_ids[k]);
    }
    int count = 0;
    CHECK_EQ_INT(cat->parquet_file_list(cat->self, t, sc_count_file, &count), 0);
    CHECK_EQ_INT(count, SC_THREADS * SC_FILES_PER_THREAD); /* retries added nothing */
    struct sc_persisted per = {.tables = {t, t}};
    CHECK_EQ_INT(cat->persisted_sequences(cat->self, SC_WAL, sc_collect_persisted, &per), 0);
    CHECK_EQ_INT(per.n, 3);
    for (int k = 0; k < per.n; k++)
        CHECK(per.max_seq[k] == SC_FILES_PER_THREAD);
}

#endif
