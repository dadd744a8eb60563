/*
 * test_faults.c: the I/O fault loop (issue 5, "Fault injection"; SQLite's fault loops are the
 * model). A scenario runs in-process against the real ingester (WAL, buffer, persister, file
 * object store, SQLite catalog) with the util/sysio.h injector armed to fail call N of one kind,
 * for N = 1, 2, 3 ... until a run injects nothing:
 *
 *   session 1: open, write b0 b1 b2 and an invalid write, stop writes, drain (persist), close;
 *   session 2: open, write b3 b4, close (they stay in the WAL);
 *   (then the first bytes of a frame are appended to the last WAL segment: a torn tail)
 *   session 3: open (replays b3 b4: persist, delete; truncates the tail), write b5 b6, query,
 *              close.
 *
 * A run's directory holds data/ (the data dir: WAL, objects) and beside it catalog.sqlite (with
 * its -wal and -shm), so a loop's path filter aims at the one or the other. The catalog's file
 * calls reach the injector through the SQLite VFS shim (catalog/sqlite_vfs.c). b0 creates the
 * schema (namespace, table, columns) in the catalog; every persist asks it for the partition,
 * compares-and-swaps the sort key and inserts the Parquet file's row; every open reads it.
 *
 * Each batch bK is ROWS rows on day K (its own partition), so what the catalog's Parquet files
 * and the buffer hold of each batch can be counted per day. After each run the data directory is
 * opened again WITHOUT faults (replay) and checked: every acknowledged batch is there exactly once
 * and whole (Parquet row counts in the catalog + buffered rows == ROWS; every file covers the whole
 * batch), a batch whose WAL commit failed is there whole or not at all, anything refused before
 * the WAL (the invalid write; writes after the WAL failed; writes refused because the catalog
 * failed while creating their schema) is not there; the catalog file passes SQLite's
 * integrity_check and foreign_key_check; and the process holds exactly the descriptors it held
 * before the run. During the run: once the WAL reported its failure, no later write is
 * acknowledged, and a write whose own WAL write or fdatasync was failed is not acknowledged; a
 * write gets INGOT_E_CATALOG (HTTP 500) only in a catalog loop and only if a fault was injected
 * during it; transient faults in the object store are retried by the persister (a failed put of
 * a temporary object shows up as a put retry), and so are catalog faults while draining (only
 * persist jobs use the catalog then: a catalog retry must show up). A start that fails (the
 * catalog cannot be opened or read) must fail cleanly: the next one (a later session, the
 * verification) works, and ASan's leak check covers the failed one.
 *
 * Loops over the data dir: every kind transient (EIO / ENOSPC alternately), transient short
 * writes, and two persistent WAL faults (a dying WAL disk: every fdatasync from N on fails; a
 * full one: write N is short and every later write fails with ENOSPC). Persistent faults in the
 * object store are not looped: the persister retries a put forever by design (test_persist.c
 * covers a stalled store).
 *
 * Loops over the catalog: every kind SQLite makes (open, read, write, sync, truncate, unlink,
 * close) transient, EIO / ENOSPC alternately (ENOSPC on a write is SQLITE_FULL); a catalog that
 * cannot be opened any more (every open from N on fails: every later start fails); and a full
 * catalog disk (write N torn, half its bytes written, the next write fails with ENOSPC too, then
 * the space comes back: a fault that never heals would wedge every drain, as the persister
 * retries forever by design). A transient short write on the catalog is not looped on its own:
 * the full-disk loop starts with one at every N. A run that is not done after RUN_TIMEOUT_S
 * (a wedged persister, say) ends the test with its name.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer/buffer.h"
#include "config.h"
#include "failing_store.h"
#include "ingester.h"
#include "store/object_store.h"
#include "test.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/sysio.h"

#define T0 1767225600000000000LL /* 2026-01-01T00:00:00Z */
#define DAY 86400000000000LL
#define BATCHES 7       /* b0 .. b6 */
#define BAD_DAY BATCHES /* the invalid write's day */
#define ROWS 48
#define MAX_N 400               /* a loop that never runs dry is a bug */
#define CATALOG_FULL_FAILURES 2 /* the full catalog disk's failed calls before it is cleared */

enum fate {
    FATE_ABSENT = 0, /* never acknowledged and never reached the WAL: must not be there */
    FATE_ACKED,      /* acknowledged: must be there exactly once */
    FATE_MAYBE,      /* its WAL commit failed: there whole, or not at all */
};

typedef struct run {
    char dir[PATH_MAX];          /* the run's directory: data/ and catalog.sqlite */
    char data_dir[PATH_MAX + 8]; /* <dir>/data: WAL, objects */
    char catalog[PATH_MAX + 32]; /* <dir>/catalog.sqlite (and its -wal, -shm) */
    ingot_config cfg;
    const sysio_fault *fault;
    bool catalog_faults; /* the fault is aimed at the catalog's files */
    enum fate fate[BATCHES + 1];
    uint64_t put_retries, catalog_retries;
    unsigned open_failures, catalog_refusals;
    char label[160];
} run;

/* Totals over every loop, printed at the end. */
static unsigned total_runs;
static uint64_t total_faults, total_put_retries, total_open_failures, total_catalog_retries,
    total_catalog_refusals;

/* CHECK(cond) (cond evaluated once), naming the run when it fails. */
#define RUN_CHECK(r, cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  in run %s:\n", (r)->label);                                         \
            CHECK(!#cond);                                                                         \
        }                                                                                          \
    } while (0)

/* A fresh directory, on tmpfs when there is one (fsync is cheap there), as a real path. */
static int make_dir(char *out, size_t len)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/ingot_faults_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) return -1;
    if (!realpath(tmpl, out)) return -1;
    (void)len;
    return 0;
}

static void remove_dir(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static int run_init(run *r, const sysio_fault *f, const char *label)
{
    memset(r, 0, sizeof *r);
    r->fault = f;
    snprintf(r->label, sizeof r->label, "%s", label);
    if (make_dir(r->dir, sizeof r->dir) != 0) return -1;
    /* the catalog beside the data dir, so a path filter can aim at one or the other */
    snprintf(r->data_dir, sizeof r->data_dir, "%s/data", r->dir);
    snprintf(r->catalog, sizeof r->catalog, "%s/catalog.sqlite", r->dir);
    if (mkdir(r->data_dir, 0755) != 0) return -1;
    char *argv[] = {"--data-dir",
                    r->data_dir,
                    "--catalog",
                    r->catalog,
                    "--wal-segment-bytes",
                    "4096",
                    "--persist-workers",
                    "2",
                    "--compaction-threads",
                    "1",
                    "--wal-rotation-period",
                    "3600",
                    "--disk-full-percent",
                    "100"};
    char err[256];
    FILE *devnull = fopen("/dev/null", "w");
    int rv =
        config_parse(&r->cfg, (int)(sizeof argv / sizeof argv[0]), argv, devnull, err, sizeof err);
    if (devnull) fclose(devnull);
    if (rv != 0) fprintf(stderr, "config: %s\n", err);
    return rv;
}

static void run_free(run *r)
{
    config_free(&r->cfg);
    remove_dir(r->dir);
}

/* The value of the metric line "name value" (0 if absent). */
static uint64_t metric(ingester *ing, const char *name)
{
    strbuf m = {0};
    ingester_metrics(ing, &m);
    uint64_t v = 0;
    size_t n = strlen(name);
    for (const char *p = m.data; p && *p;) {
        if (!strncmp(p, name, n) && p[n] == ' ') {
            v = strtoull(p + n + 1, NULL, 10);
            break;
        }
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    strbuf_free(&m);
    return v;
}

static ingester *session_open(run *r)
{
    ingester *ing = NULL;
    char err[1024];
    if (ingester_open(&r->cfg, &ing, err, sizeof err) != 0) {
        r->open_failures++;
        return NULL;
    }
    return ing;
}

/*
 * Close; returns the put retries the session's metrics show (jobs finished by close are not).
 * The session's catalog retries go to r->catalog_retries, and to *catalog_retries if given.
 */
static uint64_t session_close(run *r, ingester *ing, uint64_t *catalog_retries)
{
    if (!ing) return 0;
    uint64_t retries = metric(ing, "ingot_persist_retries_total{op=\"put\"}");
    uint64_t cat = metric(ing, "ingot_persist_retries_total{op=\"catalog\"}");
    r->put_retries += retries;
    r->catalog_retries += cat;
    if (catalog_retries) *catalog_retries = cat;
    ingester_close(ing);
    return retries;
}

/* True if the first injected fault failed a put's temporary object (not a mere short write). */
static bool put_failed(const run *r)
{
    sysio_fault_report rep;
    sysio_fault_get_report(&rep);
    return rep.injected > 0 && !r->fault->short_write && strstr(rep.first_path, "/objects/") &&
           strstr(rep.first_path, ".tmp~");
}

static int write_lp(ingester *ing, const char *body, size_t len)
{
    ingester_write_request req = {.namespace_name = "db",
                                  .body_kind = DML_BODY_LINE_PROTOCOL,
                                  .body = body,
                                  .body_len = len,
                                  .precision = LP_PRECISION_NS};
    ingester_write_result res;
    int rv = ingester_write(ing, &req, &res);
    ingester_write_result_free(&res);
    return rv;
}

/* True if path names WAL segment `segment_id` ("/<id>.wal" at its end). */
static bool is_segment(const char *path, uint64_t segment_id)
{
    char tail[32];
    int n = snprintf(tail, sizeof tail, "/%llu.wal", (unsigned long long)segment_id);
    size_t len = strlen(path);
    return len >= (size_t)n && strcmp(path + len - (size_t)n, tail) == 0;
}

/* Write batch k and record its fate; check the WAL's failure rules around it. */
static void write_batch(run *r, ingester *ing, int k)
{
    strbuf body = {0};
    for (int j = 0; j < ROWS; j++)
        strbuf_printf(&body, "m,b=b%d,i=i%02d v=%di,f=%d.5 %lld\n", k, j, j, k,
                      (long long)(T0 + k * DAY + j));
    uint64_t segment = metric(ing, "ingot_wal_segment_id");
    bool failed_before = metric(ing, "ingot_wal_failed") != 0;
    sysio_fault_report before, after;
    sysio_fault_get_report(&before);
    int rv = write_lp(ing, body.data, body.len);
    sysio_fault_get_report(&after);
    strbuf_free(&body);

    /* a catalog failure while creating the schema refuses the write before the WAL */
    RUN_CHECK(r,
              rv == 0 || rv == INGOT_E_WAL_FAILED || (r->catalog_faults && rv == INGOT_E_CATALOG));
    if (rv == INGOT_E_CATALOG) {
        r->catalog_refusals++;
        RUN_CHECK(r, after.injected > before.injected);
    }
    if (rv == 0)
        r->fate[k] = FATE_ACKED;
    else if (rv == INGOT_E_WAL_FAILED && !failed_before)
        r->fate[k] = FATE_MAYBE; /* its entry may have been written before the failure */
    else
        r->fate[k] = FATE_ABSENT;
    /* sticky: once the WAL says it failed, nothing more is acknowledged */
    if (failed_before) RUN_CHECK(r, rv == INGOT_E_WAL_FAILED);
    /* the write's own entry could not be written or synced: it must not be acknowledged */
    bool own = before.injected == 0 && after.injected > 0 && !r->fault->short_write &&
               (after.first_op == SYSIO_OP_SYNC || after.first_op == SYSIO_OP_WRITE) &&
               is_segment(after.first_path, segment);
    if (own) RUN_CHECK(r, rv == INGOT_E_WAL_FAILED);
}

/* A request with one good line and one type conflict: refused whole, before the WAL. */
static void write_invalid(run *r, ingester *ing)
{
    char body[256];
    int n = snprintf(body, sizeof body, "m,b=bad,i=i00 v=1i %lld\nm,b=bad,i=i01 v=\"text\" %lld\n",
                     (long long)(T0 + BAD_DAY * DAY), (long long)(T0 + BAD_DAY * DAY + 1));
    int rv = write_lp(ing, body, (size_t)n);
    RUN_CHECK(r, rv == INGOT_E_INVALID || rv == INGOT_E_WAL_FAILED ||
                     (r->catalog_faults && rv == INGOT_E_CATALOG));
    if (rv == INGOT_E_CATALOG) r->catalog_refusals++;
    r->fate[BAD_DAY] = FATE_ABSENT;
}

/* The day (batch index) of a partition key, or -1. */
static int day_of_key(const char *key)
{
    for (int k = 0; k <= BATCHES; k++) {
        char want[11];
        buffer_partition_key(T0 + k * DAY, want);
        if (!strcmp(key, want)) return k;
    }
    return -1;
}

/* Rows per day in the buffer (what a query sees); checks each partition is whole. */
static void count_buffered(run *r, ingester *ing, uint64_t *rows)
{
    query_request q = {.namespace_name = "db",
                       .table_name = "m",
                       .min_time_ns = INT64_MIN,
                       .max_time_ns = INT64_MAX};
    query_stream *s = NULL;
    char err[256];
    int rv = ingester_query(ing, &q, &s, err, sizeof err);
    if (rv == INGOT_E_NOT_FOUND) return;
    RUN_CHECK(r, rv == 0);
    if (rv != 0) return;
    query_batch *b;
    while ((rv = query_stream_next(s, &b)) == 1) {
        int k = day_of_key(b->partition_key);
        RUN_CHECK(r, k >= 0);
        if (k >= 0) rows[k] += b->row_count;
        query_batch_free(b);
    }
    RUN_CHECK(r, rv == 0);
    query_stream_close(s);
}

typedef struct file_count {
    run *r;
    uint64_t rows[BATCHES + 1];
} file_count;

static void on_table(void *arg, int64_t table_id, const char *name)
{
    if (!strcmp(name, "m")) *(int64_t *)arg = table_id;
}

static void on_file(void *arg, const catalog_parquet_file *f)
{
    file_count *c = arg;
    int64_t k = (f->min_time - T0) / DAY;
    bool whole = k >= 0 && k <= BATCHES && f->min_time == T0 + k * DAY &&
                 f->max_time == T0 + k * DAY + ROWS - 1 && f->row_count == ROWS;
    if (!whole)
        fprintf(stderr, "  parquet file %s: min %lld max %lld rows %lld is not one whole batch\n",
                f->object_store_id, (long long)f->min_time, (long long)f->max_time,
                (long long)f->row_count);
    RUN_CHECK(c->r, whole);
    /* the object the row names is in the store, whole: its size, Parquet magic at both ends */
    char rel[512], path[PATH_MAX + 600];
    unsigned char head[4] = {0}, tail[4] = {0};
    struct stat st;
    RUN_CHECK(c->r, object_store_parquet_path("db", "m", f->partition_key, f->object_store_id, rel,
                                              sizeof rel) == 0);
    snprintf(path, sizeof path, "%s/objects/%s", c->r->data_dir, rel);
    FILE *obj = fopen(path, "rb");
    bool intact = obj && fstat(fileno(obj), &st) == 0 && st.st_size == f->file_size_bytes &&
                  st.st_size >= 8 && fread(head, 1, 4, obj) == 4 && fseek(obj, -4, SEEK_END) == 0 &&
                  fread(tail, 1, 4, obj) == 4 && !memcmp(head, "PAR1", 4) &&
                  !memcmp(tail, "PAR1", 4);
    if (obj) fclose(obj);
    if (!intact) fprintf(stderr, "  object %s is missing or not whole\n", path);
    RUN_CHECK(c->r, intact);
    if (k >= 0 && k <= BATCHES && intact) c->rows[k] += (uint64_t)f->row_count;
}

/* The first column of the first row of sql on the catalog file ("" if none), into out. */
static int catalog_query(const run *r, const char *sql, char *out, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(r->catalog, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    out[0] = '\0';
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, len, "%s", v ? (const char *)v : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* The catalog file, read behind ingot's back (SQLite's default VFS): whole and consistent. */
static void check_catalog_file(run *r)
{
    char v[256];
    RUN_CHECK(r, catalog_query(r, "PRAGMA integrity_check", v, sizeof v) == SQLITE_OK);
    if (strcmp(v, "ok") != 0) fprintf(stderr, "  catalog integrity_check: %s\n", v);
    RUN_CHECK(r, !strcmp(v, "ok"));
    RUN_CHECK(r, catalog_query(r, "PRAGMA foreign_key_check", v, sizeof v) == SQLITE_OK);
    RUN_CHECK(r, v[0] == '\0');
    RUN_CHECK(r, catalog_query(r, "PRAGMA user_version", v, sizeof v) == SQLITE_OK);
    RUN_CHECK(r, !strcmp(v, "2"));
}

/* Reopen without faults (replay) and check every batch against its fate. */
static void verify(run *r)
{
    ingester *ing = NULL;
    char err[1024];
    int rv = ingester_open(&r->cfg, &ing, err, sizeof err);
    if (rv != 0) fprintf(stderr, "  reopen without faults: %s\n", err);
    RUN_CHECK(r, rv == 0);
    if (rv != 0) return;
    file_count fc = {.r = r};
    uint64_t buffered[BATCHES + 1] = {0};
    catalog *cat = ingester_catalog(ing);
    int64_t ns_id = 0, table_id = -1;
    if (cat->namespace_lookup(cat->self, "db", &ns_id) == 0) {
        RUN_CHECK(r, cat->list_tables(cat->self, ns_id, on_table, &table_id) == 0);
        if (table_id >= 0)
            RUN_CHECK(r, cat->parquet_file_list(cat->self, table_id, on_file, &fc) == 0);
    }
    count_buffered(r, ing, buffered);
    for (int k = 0; k <= BATCHES; k++) {
        uint64_t total = fc.rows[k] + buffered[k];
        bool ok = r->fate[k] == FATE_ACKED   ? total == ROWS
                  : r->fate[k] == FATE_MAYBE ? total == 0 || total == ROWS
                                             : total == 0;
        if (!ok)
            fprintf(stderr, "  batch %d (fate %d): %llu rows in Parquet, %llu buffered\n", k,
                    (int)r->fate[k], (unsigned long long)fc.rows[k],
                    (unsigned long long)buffered[k]);
        RUN_CHECK(r, ok);
    }
    ingester_close(ing);
    check_catalog_file(r);
}

/*
 * What a crash in the middle of an entry leaves: the first bytes of a frame at the end of the
 * last segment (written behind the injector's back). Replay truncates it (ftruncate + fsync).
 */
static void tear_last_segment(run *r)
{
    char path[PATH_MAX + 48];
    unsigned long long last = 0;
    for (unsigned long long id = 1; id < 64; id++) {
        snprintf(path, sizeof path, "%s/wal/%llu.wal", r->data_dir, id);
        if (access(path, F_OK) == 0) last = id;
    }
    if (!last) return;
    snprintf(path, sizeof path, "%s/wal/%llu.wal", r->data_dir, last);
    FILE *f = fopen(path, "ab");
    if (!f) return;
    static const unsigned char torn[7] = {0x40, 0, 0, 0, 0xde, 0xad, 0xbe};
    fwrite(torn, 1, sizeof torn, f);
    fclose(f);
}

/* The scenario of the file comment, with the injector armed by the caller. */
static void scenario(run *r)
{
    ingester *ing = session_open(r);
    if (ing) {
        for (int k = 0; k < 3; k++)
            write_batch(r, ing, k);
        write_invalid(r, ing);
        ingester_stop_writes(ing);
        sysio_fault_report before;
        sysio_fault_get_report(&before);
        (void)ingester_drain(ing); /* fails when the WAL failed: the data stays in the WAL */
        sysio_fault_report after;
        sysio_fault_get_report(&after);
        /* the drain waited for every persist job: a failed put was retried, not dropped */
        bool retried = put_failed(r);
        /* with writes stopped only persist jobs use the catalog: a failed call was retried */
        bool catalog_failed = r->catalog_faults && before.injected == 0 && after.injected > 0;
        uint64_t catalog_retries = 0;
        uint64_t retries = session_close(r, ing, &catalog_retries);
        if (retried) RUN_CHECK(r, retries > 0);
        if (catalog_failed) RUN_CHECK(r, catalog_retries > 0);
    }
    if ((ing = session_open(r))) {
        for (int k = 3; k < 5; k++)
            write_batch(r, ing, k);
        session_close(r, ing, NULL);
    }
    tear_last_segment(r);
    if ((ing = session_open(r))) {
        for (int k = 5; k < 7; k++)
            write_batch(r, ing, k);
        uint64_t buffered[BATCHES + 1] = {0};
        count_buffered(r, ing, buffered);
        for (int k = 0; k <= BATCHES; k++) {
            RUN_CHECK(r, buffered[k] == 0 || buffered[k] == ROWS); /* never half a batch */
            if (r->fate[k] == FATE_ABSENT) RUN_CHECK(r, buffered[k] == 0);
        }
        session_close(r, ing, NULL);
    }
}

/* What a loop's path filter aims at: "<run dir>" + one of these. */
#define DATA_FILES "/data"              /* the WAL, the object store, the data dir itself */
#define WAL_FILES "/data/wal/"          /* the WAL only */
#define CATALOG_FILES "/catalog.sqlite" /* the SQLite catalog: the file, its -wal and -shm */

/* A run that takes longer than this is wedged (a persister retrying forever, say). */
#define RUN_TIMEOUT_S 120
#define RUN_TIMEOUT_TEXT "120"

static const char *volatile running_label = "";

static void on_run_timeout(int sig)
{
    (void)sig;
    static const char msg[] =
        "test_faults: a run is wedged (not done after " RUN_TIMEOUT_TEXT " s): ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, running_label, strlen(running_label)) < 0 ||
        write(2, "\n", 1) < 0)
        _exit(3);
    _exit(3);
}

/*
 * Run the scenario failing call n = 1, 2, ... of the calls `f` matches on paths containing
 * "<run dir><target>" (f->nth and f->path_contains are set here) until a run injects nothing.
 * Returns the number of runs.
 */
static unsigned fault_loop(const char *name, sysio_fault f, const char *target)
{
    unsigned runs = 0;
    const char *only = getenv("INGOT_FAULTS_ONLY"); /* a substring of the loop names to run */
    if (only && !strstr(name, only)) return 0;
    signal(SIGALRM, on_run_timeout);
    for (uint64_t n = 1; n <= MAX_N; n++) {
        run r;
        char label[160], path[PATH_MAX + 16];
        int fds = test_open_fds();
        snprintf(label, sizeof label, "%s, call %llu", name, (unsigned long long)n);
        if (run_init(&r, &f, label) != 0) {
            CHECK(!"cannot set up a run");
            return runs;
        }
        r.catalog_faults = !strcmp(target, CATALOG_FILES);
        snprintf(path, sizeof path, "%s%s", r.dir, target);
        f.nth = n;
        f.path_contains = path;
        if (!f.persistent && !f.short_write) f.errno_value = n % 2 ? EIO : ENOSPC;
        running_label = r.label;
        alarm(RUN_TIMEOUT_S);
        CHECK_EQ_INT(sysio_fault_arm(&f), 0);
        scenario(&r);
        sysio_fault_disarm();
        sysio_fault_report rep;
        sysio_fault_get_report(&rep);
        verify(&r);
        /* whatever failed, every session closed every descriptor it opened */
        RUN_CHECK(&r, test_open_fds() == fds);
        alarm(0);
        running_label = "";
        runs++;
        total_runs++;
        total_faults += rep.injected;
        total_put_retries += r.put_retries;
        total_open_failures += r.open_failures;
        total_catalog_retries += r.catalog_retries;
        total_catalog_refusals += r.catalog_refusals;
        run_free(&r);
        if (rep.injected == 0) {
            printf("  %-38s %3u runs (the last injected nothing after %llu matching calls)\n", name,
                   runs, (unsigned long long)rep.matched);
            return runs;
        }
    }
    CHECK(!"the fault loop did not run dry");
    return runs;
}

static void test_transient_faults_of_every_kind(void)
{
    for (int op = 0; op < SYSIO_OP_COUNT; op++) {
        char name[64];
        snprintf(name, sizeof name, "transient %s", sysio_op_name((enum sysio_op)op));
        fault_loop(name, (sysio_fault){.ops = SYSIO_MASK(op)}, DATA_FILES);
    }
}

static void test_transient_short_writes(void)
{
    fault_loop("transient short write",
               (sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_WRITE), .short_write = true}, DATA_FILES);
}

static void test_persistent_wal_faults(void)
{
    fault_loop(
        "persistent WAL sync EIO",
        (sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_SYNC), .persistent = true, .errno_value = EIO},
        WAL_FILES);
    fault_loop("persistent WAL write: short, ENOSPC",
               (sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_WRITE),
                             .persistent = true,
                             .short_write = true,
                             .errno_value = ENOSPC},
               WAL_FILES);
}

/* The catalog's calls (the SQLite VFS shim), every kind that SQLite makes. */
static void test_catalog_faults(void)
{
    static const enum sysio_op kinds[] = {SYSIO_OP_OPEN, SYSIO_OP_READ,     SYSIO_OP_WRITE,
                                          SYSIO_OP_SYNC, SYSIO_OP_TRUNCATE, SYSIO_OP_UNLINK,
                                          SYSIO_OP_CLOSE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "catalog transient %s", sysio_op_name(kinds[i]));
        fault_loop(name, (sysio_fault){.ops = SYSIO_MASK(kinds[i])}, CATALOG_FILES);
    }
    /* a catalog that cannot be opened any more: every later start fails, cleanly */
    fault_loop(
        "catalog persistent open EIO",
        (sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_OPEN), .persistent = true, .errno_value = EIO},
        CATALOG_FILES);
    /*
     * A full catalog disk: write N is torn (half its bytes) and the next ones fail with ENOSPC
     * until CATALOG_FULL_FAILURES calls have failed (then space is freed; persist jobs retry for
     * ever, so a fault that never heals would wedge every drain).
     */
    fault_loop("catalog persistent write: short, ENOSPC",
               (sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_WRITE),
                             .persistent = true,
                             .short_write = true,
                             .errno_value = ENOSPC,
                             .max_failures = CATALOG_FULL_FAILURES},
               CATALOG_FILES);
}

/* The seam itself: counting, path filter, transient vs persistent, short writes, close. */
static void test_injector(void)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], other[PATH_MAX + 16];
    CHECK_EQ_INT(make_dir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/a.dat", dir);
    snprintf(other, sizeof other, "%s/b.dat", dir);
    int fd = sysio_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int fo = sysio_open(other, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && fo >= 0);
    /* the 2nd write to a.dat fails once with ENOSPC; writes to b.dat do not count */
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_WRITE),
                                                .path_contains = "a.dat",
                                                .nth = 2,
                                                .errno_value = ENOSPC}),
                 0);
    CHECK_EQ_INT(sysio_write(fd, "12", 2), 2);
    CHECK_EQ_INT(sysio_write(fo, "xx", 2), 2);
    errno = 0;
    CHECK_EQ_INT(sysio_write(fd, "34", 2), -1);
    CHECK_EQ_INT(errno, ENOSPC);
    CHECK_EQ_INT(sysio_write(fd, "56", 2), 2); /* transient: the next one passes */
    CHECK_EQ_INT(sysio_fsync(fd), 0);          /* not a write: never counted */
    sysio_fault_report rep;
    sysio_fault_get_report(&rep);
    CHECK_EQ_INT(rep.matched, 3);
    CHECK_EQ_INT(rep.injected, 1);
    CHECK_EQ_INT(rep.first_op, SYSIO_OP_WRITE);
    CHECK_EQ_STR(rep.first_path, path);
    CHECK_EQ_INT(lseek(fd, 0, SEEK_END), 4); /* "12" "56": the failed write wrote nothing */

    /* persistent short write: half of call 1, then EIO for every later call */
    CHECK_EQ_INT(sysio_fault_arm(
                     &(sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_WRITE) | SYSIO_MASK(SYSIO_OP_SYNC),
                                    .nth = 1,
                                    .persistent = true,
                                    .short_write = true}),
                 0);
    struct iovec iov[2] = {{"abcd", 4}, {"efgh", 4}};
    CHECK_EQ_INT(sysio_writev(fd, iov, 2), 4);
    CHECK_EQ_INT(sysio_write(fd, "zz", 2), -1);
    CHECK_EQ_INT(errno, EIO);
    CHECK_EQ_INT(sysio_fdatasync(fd), -1);
    /* a persistent fault that heals after 2 failures; sysio_should_fail counts like a wrapper */
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_SYNC),
                                                .path_contains = "a.dat",
                                                .nth = 2,
                                                .persistent = true,
                                                .max_failures = 2,
                                                .errno_value = EROFS}),
                 0);
    int err = 0;
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_SYNC, path, &err), SYSIO_PASS);
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_WRITE, path, &err), SYSIO_PASS); /* not counted */
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_SYNC, other, &err), SYSIO_PASS); /* not counted */
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_SYNC, "", &err), SYSIO_PASS);    /* no path */
    CHECK_EQ_INT(sysio_fdatasync(fd), -1);
    CHECK_EQ_INT(errno, EROFS);
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_SYNC, path, &err), SYSIO_FAIL);
    CHECK_EQ_INT(err, EROFS);
    CHECK_EQ_INT(sysio_fdatasync(fd), 0); /* healed */
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_SYNC, path, &err), SYSIO_PASS);
    sysio_fault_get_report(&rep);
    CHECK_EQ_INT(rep.matched, 5);
    CHECK_EQ_INT(rep.injected, 2);
    CHECK_EQ_INT(rep.first_op, SYSIO_OP_SYNC);
    CHECK_EQ_STR(rep.first_path, path);
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_WRITE),
                                                .nth = 1,
                                                .short_write = true,
                                                .errno_value = ENOSPC}),
                 0);
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_WRITE, path, &err), SYSIO_SHORT);
    CHECK_EQ_INT(err, ENOSPC);
    sysio_fault_disarm();
    CHECK_EQ_INT(sysio_should_fail(SYSIO_OP_WRITE, path, &err), SYSIO_PASS);
    CHECK_EQ_INT(sysio_fdatasync(fd), 0);
    CHECK_EQ_INT(lseek(fd, 0, SEEK_END), 8);
    char buf[16] = {0};
    CHECK_EQ_INT(sysio_pread(fd, buf, sizeof buf, 0), 8);
    CHECK_EQ_STR(buf, "1256abcd");

    /* *at calls resolve their directory; a failed rename/unlink changes nothing; close frees */
    int dfd = sysio_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    CHECK(dfd >= 0);
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.ops = SYSIO_MASK(SYSIO_OP_RENAME) |
                                                       SYSIO_MASK(SYSIO_OP_UNLINK) |
                                                       SYSIO_MASK(SYSIO_OP_CLOSE),
                                                .path_contains = "b.dat",
                                                .nth = 1,
                                                .persistent = true}),
                 0);
    CHECK_EQ_INT(sysio_renameat(dfd, "b.dat", dfd, "c.dat"), -1);
    CHECK_EQ_INT(sysio_unlinkat(dfd, "b.dat", 0), -1);
    CHECK_EQ_INT(access(other, F_OK), 0);
    CHECK_EQ_INT(sysio_close(fo), -1);
    CHECK_EQ_INT(fcntl(fo, F_GETFD), -1); /* released all the same */
    sysio_fault_get_report(&rep);
    CHECK_EQ_INT(rep.injected, 3);
    CHECK_EQ_STR(rep.first_path, other);
    sysio_fault_disarm();
    CHECK_EQ_INT(sysio_fault_arm(&(sysio_fault){.nth = 0}), -EINVAL);
    CHECK_EQ_INT(sysio_renameat(dfd, "b.dat", dfd, "c.dat"), 0);
    CHECK_EQ_INT(sysio_close(dfd), 0);
    CHECK_EQ_INT(sysio_close(fd), 0);
    remove_dir(dir);
}

/* --- the file object store alone: every call of a replacing put failed in turn ------------- */

typedef struct listing {
    int objects;
    char last[256];
} listing;

static void on_object(void *arg, const char *path, uint64_t size)
{
    listing *l = arg;
    (void)size;
    l->objects++;
    snprintf(l->last, sizeof l->last, "%s", path);
}

/* The object is the old or the new contents, whole; it is the only object listed. */
static void check_object(object_store *st, const char *old, const char *new_, bool put_ok)
{
    void *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(st->get(st->self, "db/t/2026-01-01/x.parquet", &data, &len), 0);
    bool is_old = data && len == strlen(old) && !memcmp(data, old, len);
    bool is_new = data && len == strlen(new_) && !memcmp(data, new_, len);
    CHECK(put_ok ? is_new : is_old || is_new);
    free(data);
    listing l = {0};
    CHECK_EQ_INT(st->list(st->self, "", on_object, &l), 0);
    CHECK_EQ_INT(l.objects, 1);
}

static void test_file_store_put_faults(void)
{
    static const char old[] = "PAR1 the old contents PAR1";
    static const char new_[] = "PAR1 the new contents, a little longer PAR1";
    unsigned runs = 0;
    for (int op = 0; op < SYSIO_OP_COUNT; op++) {
        for (uint64_t n = 1; n <= MAX_N; n++) {
            char dir[PATH_MAX], root[PATH_MAX + 16], err[256];
            CHECK_EQ_INT(make_dir(dir, sizeof dir), 0);
            snprintf(root, sizeof root, "%s/objects", dir);
            object_store st;
            CHECK_EQ_INT(object_store_file_open(root, &st, err, sizeof err), 0);
            CHECK_EQ_INT(st.put(st.self, "db/t/2026-01-01/x.parquet", old, strlen(old)), 0);
            CHECK_EQ_INT(
                sysio_fault_arm(&(sysio_fault){.ops = SYSIO_MASK(op),
                                               .nth = n,
                                               .path_contains = dir,
                                               .short_write = op == SYSIO_OP_WRITE && n % 2 == 0}),
                0);
            int rv = st.put(st.self, "db/t/2026-01-01/x.parquet", new_, strlen(new_));
            sysio_fault_disarm();
            sysio_fault_report rep;
            sysio_fault_get_report(&rep);
            if (rep.injected == 0) CHECK_EQ_INT(rv, 0);
            check_object(&st, old, new_, rv == 0);
            st.close(st.self);
            /* reopening removes any temporary file the failed put left */
            CHECK_EQ_INT(object_store_file_open(root, &st, err, sizeof err), 0);
            check_object(&st, old, new_, rv == 0);
            st.close(st.self);
            remove_dir(dir);
            runs++;
            if (rep.injected == 0) break;
        }
    }
    total_runs += runs;
    printf("  %-34s %3u runs\n", "file store put, every kind", runs);
}

/* tests/unit/failing_store.h over the real file store. */
static void test_failing_store_decorator(void)
{
    char dir[PATH_MAX], root[PATH_MAX + 16], err[256];
    CHECK_EQ_INT(make_dir(dir, sizeof dir), 0);
    snprintf(root, sizeof root, "%s/objects", dir);
    object_store inner;
    CHECK_EQ_INT(object_store_file_open(root, &inner, err, sizeof err), 0);
    failing_store fs;
    failing_store_init(&fs, &inner);
    object_store st = failing_store_as_store(&fs);
    const char *path = "db/t/2026-01-01/x.parquet";
    CHECK_EQ_INT(st.put(st.self, path, "one", 3), 0);
    failing_store_arm(&fs, FAILING_STORE_PUT, 1, false, -EIO);
    CHECK_EQ_INT(st.put(st.self, path, "two", 3), -EIO);
    CHECK_EQ_INT(st.put(st.self, path, "three", 5), 0); /* transient */
    failing_store_arm(&fs, FAILING_STORE_GET | FAILING_STORE_LIST | FAILING_STORE_REMOVE, 2, true,
                      INGOT_E_NOT_FOUND);
    void *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(st.get(st.self, path, &data, &len), 0); /* call 1 passes */
    CHECK(len == 5 && !memcmp(data, "three", 5));
    free(data);
    CHECK_EQ_INT(st.get(st.self, path, &data, &len), INGOT_E_NOT_FOUND);
    CHECK(data == NULL && len == 0);
    listing l = {0};
    CHECK_EQ_INT(st.list(st.self, "", on_object, &l), INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(st.remove(st.self, path), INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(failing_store_injected(&fs), 3);
    failing_store_disarm(&fs);
    CHECK_EQ_INT(st.list(st.self, "", on_object, &l), 0);
    CHECK_EQ_INT(l.objects, 1); /* the failed remove removed nothing */
    CHECK_EQ_INT(st.remove(st.self, path), 0);
    st.close(st.self);
    inner.close(inner.self);
    remove_dir(dir);
}

int main(void)
{
    if (!getenv("INGOT_TEST_LOG")) log_set_level((enum log_level)(LOG_ERROR + 1)); /* quiet */
    TEST_RUN(test_injector);
    TEST_RUN(test_failing_store_decorator);
    TEST_RUN(test_file_store_put_faults);
    TEST_RUN(test_transient_faults_of_every_kind);
    TEST_RUN(test_transient_short_writes);
    TEST_RUN(test_persistent_wal_faults);
    TEST_RUN(test_catalog_faults);
    printf("fault loop: %u runs, %llu faults injected, %llu put retries, %llu catalog retries, "
           "%llu writes refused by a catalog failure, %llu failed opens\n",
           total_runs, (unsigned long long)total_faults, (unsigned long long)total_put_retries,
           (unsigned long long)total_catalog_retries, (unsigned long long)total_catalog_refusals,
           (unsigned long long)total_open_failures);
    TEST_MAIN_END();
}
