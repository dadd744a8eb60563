/*
 * test_wal_sink.c: unit tests of the WalSink decorator: an op reaches the inner sink only after
 * its WAL commit and never after a failed one, and the applied watermark (the largest sequence
 * up to which every op is finished) under out-of-order and concurrent completion, also over the
 * real WAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dml/dml.h"
#include "test.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "wal/wal.h"
#include "wal/wal_internal.h"
#include "wal_test_util.h"

/* ---- WalSink ---- */

/* A fake WAL: assigns sequences like the real one (thread-safe), can fail with or without one. */
typedef struct fake_wal {
    pthread_mutex_t mu;
    int rc;               /* what append returns */
    bool assign_on_error; /* rc != 0: still assign a sequence (a failed batch) */
    int calls;
    uint64_t next_seq;
    enum wal_wait last_wait;
    uint8_t payload[256];
    size_t len;
} fake_wal;

static int fake_append(void *self, const struct iovec *iov, int iovcnt, enum wal_wait wait,
                       uint64_t *sequence_out)
{
    fake_wal *f = self;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    f->last_wait = wait;
    f->len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (f->len + iov[i].iov_len <= sizeof f->payload)
            memcpy(f->payload + f->len, iov[i].iov_base, iov[i].iov_len);
        f->len += iov[i].iov_len;
    }
    *sequence_out = f->rc == 0 || f->assign_on_error ? f->next_seq++ : 0;
    int rc = f->rc;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* A fake inner sink; ops whose text starts with "block" wait in apply until released. */
typedef struct fake_inner {
    fake_wal *wal;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int wal_calls_seen; /* how many commits had happened when apply ran */
    uint64_t seq_seen;
    int rc;
    int blocked;  /* ops waiting in apply */
    bool release; /* let them go */
} fake_inner;

static int fake_apply(void *self, dml_op *op)
{
    fake_inner *in = self;
    pthread_mutex_lock(&in->mu);
    in->calls++;
    if (in->wal) in->wal_calls_seen = in->wal->calls;
    in->seq_seen = op->sequence;
    if (op->body_len >= 5 && memcmp(op->body, "block", 5) == 0) {
        in->blocked++;
        pthread_cond_broadcast(&in->cv);
        while (!in->release)
            pthread_cond_wait(&in->cv, &in->mu);
        in->blocked--;
    }
    int rc = in->rc;
    pthread_mutex_unlock(&in->mu);
    return rc;
}

static void fake_init(fake_wal *fw, fake_inner *fi, uint64_t first_seq)
{
    memset(fw, 0, sizeof *fw);
    memset(fi, 0, sizeof *fi);
    pthread_mutex_init(&fw->mu, NULL);
    fw->next_seq = first_seq;
    fi->wal = fw;
    pthread_mutex_init(&fi->mu, NULL);
    pthread_cond_init(&fi->cv, NULL);
}

static void fake_destroy(fake_wal *fw, fake_inner *fi)
{
    pthread_mutex_destroy(&fw->mu);
    pthread_mutex_destroy(&fi->mu);
    pthread_cond_destroy(&fi->cv);
}

static void test_wal_sink(void)
{
    static fake_wal fw;
    static fake_inner fi;
    fake_init(&fw, &fi, 77);
    wal_sink *s = wal_sink_new((wal_appender){.self = &fw, .append = fake_append},
                               (dml_sink){.self = &fi, .apply = fake_apply}, 76);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 76);
    dml_sink sink = wal_sink_as_dml(s);
    dml_op op = {.namespace_name = "db",
                 .namespace_len = 2,
                 .body = "m v=1 5",
                 .body_len = 7,
                 .precision = LP_PRECISION_S,
                 .default_time_ns = 99};
    CHECK_EQ_INT(dml_sink_apply(&sink, &op), 0);
    CHECK_EQ_INT(op.sequence, 77);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 77);
    CHECK_EQ_INT(fw.calls, 1);
    CHECK_EQ_INT(fw.last_wait, WAL_WAIT_SYNCED);
    CHECK_EQ_INT(fi.calls, 1);
    CHECK_EQ_INT(fi.wal_calls_seen, 1); /* inner ran after the commit */
    CHECK_EQ_INT(fi.seq_seen, 77);      /* and saw the WAL's sequence */
    dml_decoded d;
    char err[128];
    CHECK_EQ_INT(dml_op_decode(fw.payload, fw.len, &d, err, sizeof err), 0);
    CHECK_EQ_INT(fw.len, 16 + 2 + 7);
    CHECK_EQ_INT(d.precision, LP_PRECISION_S);
    CHECK_EQ_INT(d.default_time_ns, 99);
    CHECK(d.body_len == 7 && memcmp(d.body, "m v=1 5", 7) == 0);

    op.durability = DML_DURABILITY_WRITTEN;
    CHECK_EQ_INT(dml_sink_apply(&sink, &op), 0);
    CHECK_EQ_INT(op.sequence, 78);
    CHECK_EQ_INT(fw.last_wait, WAL_WAIT_WRITTEN);
    CHECK_EQ_INT(fi.calls, 2);

    /* failed in the WAL after a sequence was assigned: complete, inner never saw it */
    fw.rc = INGOT_E_WAL_FAILED;
    fw.assign_on_error = true;
    op.sequence = 0;
    CHECK_EQ_INT(dml_sink_apply(&sink, &op), INGOT_E_WAL_FAILED);
    CHECK_EQ_INT(op.sequence, 79);
    CHECK_EQ_INT(fw.calls, 3);
    CHECK_EQ_INT(fi.calls, 2);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 79);
    /* refused without a sequence: op->sequence untouched, watermark unchanged */
    fw.assign_on_error = false;
    op.sequence = 12345;
    CHECK_EQ_INT(dml_sink_apply(&sink, &op), INGOT_E_WAL_FAILED);
    CHECK_EQ_INT(op.sequence, 12345);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 79);
    /* inner's error goes up; the op is complete all the same */
    fw.rc = 0;
    fi.rc = INGOT_E_LIMIT;
    CHECK_EQ_INT(dml_sink_apply(&sink, &op), INGOT_E_LIMIT);
    CHECK_EQ_INT(op.sequence, 80);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 80);
    op.namespace_len = 70000;
    CHECK_EQ_INT(dml_sink_apply(&sink, &op), INGOT_E_INVALID);
    CHECK_EQ_INT(fw.calls, 5);
    wal_sink_free(s);
    fake_destroy(&fw, &fi);
}

typedef struct sink_call {
    dml_sink sink;
    const char *text;
    int rc;
    uint64_t seq;
} sink_call;

static void *sink_call_thread(void *p)
{
    sink_call *c = p;
    dml_op op = {
        .namespace_name = "db", .namespace_len = 2, .body = c->text, .body_len = strlen(c->text)};
    c->rc = dml_sink_apply(&c->sink, &op);
    c->seq = op.sequence;
    return NULL;
}

/* Wait (bounded) until n ops are blocked in fake_apply. */
static bool wait_blocked(fake_inner *fi, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&fi->mu);
    int rc = 0;
    while (fi->blocked < n && rc == 0)
        rc = pthread_cond_timedwait(&fi->cv, &fi->mu, &until);
    bool ok = fi->blocked >= n;
    pthread_mutex_unlock(&fi->mu);
    return ok;
}

static void release_blocked(fake_inner *fi)
{
    pthread_mutex_lock(&fi->mu);
    fi->release = true;
    pthread_cond_broadcast(&fi->cv);
    pthread_mutex_unlock(&fi->mu);
}

/*
 * Out-of-order completion: while the op with sequence 11 is still in the inner sink, later ops
 * (applied, failed in the WAL, failed in inner) complete, and the watermark stays at 10; when
 * 11 finishes the watermark jumps over everything completed behind it.
 */
static void test_wal_sink_watermark_out_of_order(void)
{
    static fake_wal fw;
    static fake_inner fi;
    fake_init(&fw, &fi, 11);
    wal_sink *s = wal_sink_new((wal_appender){.self = &fw, .append = fake_append},
                               (dml_sink){.self = &fi, .apply = fake_apply}, 10);
    if (!s) {
        CHECK(s != NULL);
        return;
    }
    dml_sink sink = wal_sink_as_dml(s);
    sink_call blocked = {.sink = sink, .text = "block m v=1"};
    pthread_t th;
    pthread_create(&th, NULL, sink_call_thread, &blocked);
    CHECK(wait_blocked(&fi, 1)); /* it has sequence 11 and sits in inner */
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 10);
    sink_call c = {.sink = sink, .text = "m v=2"};
    for (int i = 0; i < 200; i++) { /* 12..211: more than the initial capacity */
        sink_call_thread(&c);
        CHECK_EQ_INT(c.rc, 0);
    }
    CHECK_EQ_INT(c.seq, 211);
    pthread_mutex_lock(&fw.mu);
    fw.rc = INGOT_E_WAL_FAILED;
    fw.assign_on_error = true;
    pthread_mutex_unlock(&fw.mu);
    sink_call_thread(&c); /* 212, failed in the WAL */
    CHECK_EQ_INT(c.rc, INGOT_E_WAL_FAILED);
    CHECK_EQ_INT(c.seq, 212);
    pthread_mutex_lock(&fw.mu);
    fw.rc = 0;
    pthread_mutex_unlock(&fw.mu);
    pthread_mutex_lock(&fi.mu);
    fi.rc = INGOT_E_LIMIT;
    pthread_mutex_unlock(&fi.mu);
    sink_call_thread(&c); /* 213, failed in inner */
    CHECK_EQ_INT(c.rc, INGOT_E_LIMIT);
    CHECK_EQ_INT(c.seq, 213);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 10); /* 11 is still running */
    pthread_mutex_lock(&fi.mu);
    fi.rc = INGOT_E_LIMIT; /* the blocked op fails too: still complete */
    pthread_mutex_unlock(&fi.mu);
    release_blocked(&fi);
    pthread_join(th, NULL);
    CHECK_EQ_INT(blocked.seq, 11);
    CHECK_EQ_INT(blocked.rc, INGOT_E_LIMIT);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 213);

    /* two blocked ops, the later one released first: no jump past the earlier one */
    pthread_mutex_lock(&fi.mu);
    fi.rc = 0;
    fi.release = false;
    pthread_mutex_unlock(&fi.mu);
    sink_call b1 = {.sink = sink, .text = "block a"}, b2 = {.sink = sink, .text = "block b"};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, sink_call_thread, &b1);
    CHECK(wait_blocked(&fi, 1));
    pthread_create(&t2, NULL, sink_call_thread, &b2);
    CHECK(wait_blocked(&fi, 2));
    sink_call_thread(&c); /* 216 */
    CHECK_EQ_INT(c.seq, 216);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 213);
    release_blocked(&fi);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(b1.seq == 214 && b2.seq == 215);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 216);
    wal_sink_free(s);
    fake_destroy(&fw, &fi);
}

/* Many threads through the WalSink over the real WAL; a reader sees a monotonic watermark. */
typedef struct wm_arg {
    wal_sink *s;
    int thread;
    int failures;
    atomic_bool *stop;
    int regressions;
    uint64_t reads;
} wm_arg;

#define WM_THREADS 8
#define WM_PER_THREAD 150

static void *wm_writer(void *p)
{
    wm_arg *a = p;
    dml_sink sink = wal_sink_as_dml(a->s);
    for (int i = 0; i < WM_PER_THREAD; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "m t=%d,i=%d", a->thread, i);
        dml_op op = {.namespace_name = "db",
                     .namespace_len = 2,
                     .body = text,
                     .body_len = (size_t)n,
                     .durability = i % 3 ? DML_DURABILITY_SYNCED : DML_DURABILITY_WRITTEN};
        if (dml_sink_apply(&sink, &op) != 0) a->failures++;
    }
    return NULL;
}

static void *wm_reader(void *p)
{
    wm_arg *a = p;
    uint64_t prev = 0;
    while (!atomic_load(a->stop)) {
        uint64_t w = wal_sink_applied_watermark(a->s);
        if (w < prev) a->regressions++;
        prev = w;
        a->reads++;
        sched_yield();
    }
    return NULL;
}

static void test_wal_sink_watermark_concurrent(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 1, 501, NULL, NULL, &w, err, sizeof err), 0);
    if (!w) goto out;
    static fake_wal unused;
    static fake_inner fi;
    fake_init(&unused, &fi, 1);
    wal_sink *s =
        wal_sink_new(wal_as_appender(w), (dml_sink){.self = &fi, .apply = fake_apply}, 500);
    atomic_bool stop = false;
    wm_arg args[WM_THREADS + 1];
    pthread_t th[WM_THREADS + 1];
    for (int t = 0; t <= WM_THREADS; t++) {
        args[t] = (wm_arg){.s = s, .thread = t, .stop = &stop};
        pthread_create(&th[t], NULL, t == WM_THREADS ? wm_reader : wm_writer, &args[t]);
    }
    for (int t = 0; t < WM_THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(args[t].failures, 0);
    }
    atomic_store(&stop, true);
    pthread_join(th[WM_THREADS], NULL);
    CHECK_EQ_INT(args[WM_THREADS].regressions, 0);
    CHECK_EQ_INT(fi.calls, WM_THREADS * WM_PER_THREAD);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 500 + WM_THREADS * WM_PER_THREAD);
    wal_sink_free(s);
    wal_close(w);
    fake_destroy(&unused, &fi);
    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, WM_THREADS * WM_PER_THREAD);
    CHECK_EQ_INT(rs.first_sequence, 501);
    CHECK_EQ_INT(rs.max_sequence, 500 + WM_THREADS * WM_PER_THREAD);
out:
    rm_rf(dir);
    free(dir);
}

/* WalSink over the real WAL: what replay reads back decodes to what was applied. */
static void test_wal_sink_real_wal(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 1, 1, NULL, NULL, &w, err, sizeof err), 0);
    if (!w) goto out;
    static fake_wal unused;
    static fake_inner fi;
    fake_init(&unused, &fi, 1);
    wal_sink *s = wal_sink_new(wal_as_appender(w), (dml_sink){.self = &fi, .apply = fake_apply}, 0);
    dml_sink sink = wal_sink_as_dml(s);
    for (int i = 0; i < 10; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "m v=%d", i);
        dml_op op = {.namespace_name = "dbx",
                     .namespace_len = 3,
                     .body = text,
                     .body_len = (size_t)n,
                     .default_time_ns = i};
        CHECK_EQ_INT(dml_sink_apply(&sink, &op), 0);
        CHECK_EQ_INT(op.sequence, (uint64_t)i + 1);
    }
    CHECK_EQ_INT(fi.calls, 10);
    CHECK_EQ_INT(wal_sink_applied_watermark(s), 10);
    wal_sink_free(s);
    wal_close(w);
    fake_destroy(&unused, &fi);
    static collect c;
    CHECK_EQ_INT(replay_into(dir, false, &c, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 10);
    int rc;
    char *text = inspect_text(dir, &rc);
    CHECK(text && strstr(text, "1..10") && strstr(text, " ok"));
    free(text);
out:
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    TEST_RUN(test_wal_sink);
    TEST_RUN(test_wal_sink_watermark_out_of_order);
    TEST_RUN(test_wal_sink_watermark_concurrent);
    TEST_RUN(test_wal_sink_real_wal);
    TEST_MAIN_END();
}
