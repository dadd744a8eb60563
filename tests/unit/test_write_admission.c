/*
 * test_write_admission.c: the ingester's write slots (ingester_write_admit/release,
 * --max-concurrent-writes) and the reuse of parsed batches between writes, against a real
 * ingester (WAL, buffer, SQLite catalog) in a temporary directory.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ingester.h"
#include "test.h"
#include "util/log.h"


typedef struct fixture {
    char dir[PATH_MAX];
    ingot_config cfg;
    ingester *ing;
} fixture;

static int fixture_open(fixture *f, const char *slots)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ingot-admit-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char *argv[] = {"--data-dir", f->dir, "--max-concurrent-writes", (char *)slots,
                    "--wal-rotation-period", "3600"};
    char err[256];
    FILE *devnull = fopen("/dev/null", "w");
    int rv = config_parse(&f->cfg, (int)(sizeof argv / sizeof argv[0]), argv, devnull, err, sizeof err);
    if (devnull) fclose(devnull);
    if (rv != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    if (ingester_open(&f->cfg, &f->ing, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    return 0;
}

static void fixture_close(fixture *f)
{
    if (f->ing) {
        ingester_stop_writes(f->ing);
        ingester_close(f->ing);
    }
    config_free(&f->cfg);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_lp(ingester *ing, const char *lp, size_t *lines)
{
    ingester_write_request req = {.namespace_name = "db",
                                  .body = lp,
                                  .body_len = strlen(lp),
                                  .precision = LP_PRECISION_NS,
                                  .durability = DML_DURABILITY_SYNCED};
    ingester_write_result res;
    int rv = ingester_write(ing, &req, &res);
    if (lines) *lines = res.lines_written;
    ingester_write_result_free(&res);
    return rv;
}

static void test_slots_bound_and_time_out(void)
{
    fixture f;
    CHECK(fixture_open(&f, "2") == 0);
    if (!f.ing) return;
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), 0);
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), 0);
    double t0 = now_s();
    CHECK_EQ_INT(ingester_write_admit(f.ing, 200), INGOT_E_BUSY); /* both slots taken */
    double waited = now_s() - t0;
    CHECK(waited >= 0.19 && waited < 5.0);
    ingester_write_release(f.ing);
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), 0); /* the freed slot */
    ingester_write_release(f.ing);
    ingester_write_release(f.ing);
    strbuf m = {0};
    ingester_metrics(f.ing, &m);
    CHECK(m.data && strstr(m.data, "ingot_write_slots_in_use 0\n"));
    CHECK(m.data && strstr(m.data, "ingot_write_slot_timeouts_total 1\n"));
    strbuf_free(&m);
    fixture_close(&f);
}

typedef struct waiter {
    ingester *ing;
    unsigned timeout_ms; /* 0: 20 s */
    atomic_int result;
    atomic_bool done;
} waiter;

static void *wait_for_slot(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->result, ingester_write_admit(w->ing, w->timeout_ms ? w->timeout_ms : 20000));
    atomic_store(&w->done, true);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void test_waiter_gets_freed_slot_and_stop_wakes_waiters(void)
{
    fixture f;
    CHECK(fixture_open(&f, "1") == 0);
    if (!f.ing) return;
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), 0);
    waiter w = {.ing = f.ing};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_for_slot, &w) == 0);
    sleep_ms(100);
    CHECK(!atomic_load(&w.done)); /* waits while the slot is held */
    ingester_write_release(f.ing);
    pthread_join(t, NULL);
    CHECK_EQ_INT(atomic_load(&w.result), 0); /* handed the slot */

    /* the slot is held again (by w): a new waiter is woken by the stop, not by a timeout */
    waiter w2 = {.ing = f.ing};
    CHECK(pthread_create(&t, NULL, wait_for_slot, &w2) == 0);
    sleep_ms(100);
    CHECK(!atomic_load(&w2.done));
    double t0 = now_s();
    ingester_stop_writes(f.ing);
    pthread_join(t, NULL);
    CHECK(now_s() - t0 < 5.0);
    CHECK_EQ_INT(atomic_load(&w2.result), INGOT_E_SHUTTING_DOWN);
    ingester_write_release(f.ing);
    fixture_close(&f);
}

/* Waiters get slots first come, first served; one that gives up leaves no gap in the queue. */
static void test_slots_go_to_waiters_in_arrival_order(void)
{
    fixture f;
    CHECK(fixture_open(&f, "1") == 0);
    if (!f.ing) return;
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), 0);
    waiter a = {.ing = f.ing}, b = {.ing = f.ing, .timeout_ms = 200}, c = {.ing = f.ing};
    pthread_t ta, tb, tc;
    CHECK(pthread_create(&ta, NULL, wait_for_slot, &a) == 0);
    sleep_ms(50);
    CHECK(pthread_create(&tb, NULL, wait_for_slot, &b) == 0);
    sleep_ms(50);
    CHECK(pthread_create(&tc, NULL, wait_for_slot, &c) == 0);
    pthread_join(tb, NULL); /* b gives up while a is ahead of it and c behind */
    CHECK_EQ_INT(atomic_load(&b.result), INGOT_E_BUSY);
    CHECK(!atomic_load(&a.done) && !atomic_load(&c.done));
    ingester_write_release(f.ing);
    pthread_join(ta, NULL);
    CHECK_EQ_INT(atomic_load(&a.result), 0); /* the oldest waiter first */
    sleep_ms(50);
    CHECK(!atomic_load(&c.done));
    /* a newcomer does not overtake c: the slot a frees goes to c */
    CHECK_EQ_INT(ingester_write_admit(f.ing, 1), INGOT_E_BUSY);
    ingester_write_release(f.ing);
    pthread_join(tc, NULL);
    CHECK_EQ_INT(atomic_load(&c.result), 0);
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), INGOT_E_BUSY); /* c holds the only slot */
    ingester_write_release(f.ing);
    CHECK_EQ_INT(ingester_write_admit(f.ing, 100), 0);
    ingester_write_release(f.ing);
    fixture_close(&f);
}

/* Batches are reused between writes: a later write with fewer lines sees none of the earlier
 * write's rows or errors, and a refused write leaves nothing behind for the next one. */
static void test_reused_batches_carry_nothing_over(void)
{
    fixture f;
    CHECK(fixture_open(&f, "1") == 0);
    if (!f.ing) return;
    strbuf big = {0};
    for (int i = 0; i < 2000; i++)
        strbuf_printf(&big, "m,host=h%d,region=r%d a=%di,b=%d.5,c=\"s%d\" %d\n", i % 50, i % 3, i, i,
                      i, 1000 + i);
    size_t lines = 0;
    CHECK_EQ_INT(write_lp(f.ing, big.data, &lines), 0);
    CHECK_EQ_INT((int)lines, 2000);
    /* a refused write: one bad line among good ones; nothing applied */
    CHECK_EQ_INT(write_lp(f.ing, "m,host=x a=1i 5\nm,host=y a= 6\n", &lines), INGOT_E_INVALID);
    CHECK_EQ_INT(write_lp(f.ing, "m,host=z a=7i 7\n", &lines), 0);
    CHECK_EQ_INT((int)lines, 1);
    /* 20 rounds through the spare batch */
    for (int r = 0; r < 20; r++) {
        char lp[128];
        snprintf(lp, sizeof lp, "m,host=r%d a=%di %d\nm,host=r%d b=1.5 %d\n", r, r, 10000 + r, r,
                 20000 + r);
        CHECK_EQ_INT(write_lp(f.ing, lp, &lines), 0);
        CHECK_EQ_INT((int)lines, 2);
    }
    strbuf m = {0};
    ingester_metrics(f.ing, &m);
    CHECK(m.data && strstr(m.data, "ingot_buffer_rows 2041\n")); /* 2000 + 1 + 40, not the bad */
    strbuf_free(&m);
    strbuf_free(&big);
    fixture_close(&f);
}

int main(void)
{
    log_set_level(LOG_WARN);
    TEST_RUN(test_slots_bound_and_time_out);
    TEST_RUN(test_waiter_gets_freed_slot_and_stop_wakes_waiters);
    TEST_RUN(test_slots_go_to_waiters_in_arrival_order);
    TEST_RUN(test_reused_batches_carry_nothing_over);
    TEST_MAIN_END();
}
