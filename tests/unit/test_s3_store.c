/*
 * test_s3_store.c: the `s3` object store (s3_store.c).
 *
 * Part 1, always: the request timeouts against a fake S3 endpoint in this process (a loopback
 * socket served by a thread), which can stop answering the way a SIGSTOPped server does: the
 * kernel still accepts connections and buffers requests, nothing is ever answered. Every
 * operation must then fail with -ETIMEDOUT after about T seconds (not before, not never), a
 * server that only trickles must be cut off by the total limit, and the same store must work
 * again once the server answers.
 *
 * Part 2, against a real S3-compatible server named by INGOT_TEST_S3_ENDPOINT /
 * INGOT_TEST_S3_BUCKET (and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); tests/s3.sh runs s3rver
 * and sets them. Without INGOT_TEST_S3_ENDPOINT this part is skipped. Runs the shared scenarios
 * (store_scenarios.h) under a fresh "run-<uuid>/" prefix, then what is particular to S3:
 * signing, listing across pages, errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#include "store_scenarios.h"

/* ---- part 1: a fake endpoint that can stop answering ----------------------------------- */

enum fake_mode {
    FAKE_ANSWER,  /* answer every request at once */
    FAKE_STOPPED, /* accept nothing, read nothing, answer nothing (a SIGSTOPped server) */
    FAKE_TRICKLE, /* answer 200 with a body of one byte every 250 ms, forever */
    FAKE_SLOW_8,  /* answer 200 with a body of 8 bytes, one every 250 ms, then close */
};

#define FAKE_CONNS 32

typedef struct fake_conn {
    int fd; /* -1: free */
    char buf[16384];
    size_t len;
    int trickle_left; /* body bytes still to trickle; -1 forever; 0 not trickling */
    bool continued;   /* "100 Continue" sent for the request in buf */
} fake_conn;

typedef struct fake_s3 {
    int listen_fd;
    int port;
    atomic_int mode;
    atomic_bool quit;
    atomic_int requests; /* complete requests read */
    pthread_t thread;
    fake_conn conns[FAKE_CONNS]; /* the server thread's */
} fake_s3;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fake_close(fake_conn *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
    c->trickle_left = 0;
    c->continued = false;
}

static void fake_send(fake_conn *c, const char *text)
{
    if (send(c->fd, text, strlen(text), MSG_NOSIGNAL) < 0) fake_close(c);
}

/* Answer every complete request in c->buf (headers and Content-Length body). */
static void fake_serve(fake_s3 *f, fake_conn *c)
{
    while (c->fd >= 0 && c->trickle_left == 0) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end - c->buf) + 4, body = 0;
        bool expect = false;
        for (char *p = c->buf; p < end; p++) {
            if (*p != '\n') continue;
            if (strncasecmp(p + 1, "content-length:", 15) == 0) body = strtoul(p + 16, NULL, 10);
            if (strncasecmp(p + 1, "expect: 100-continue", 20) == 0) expect = true;
        }
        if (c->len < head + body) {
            if (expect && !c->continued) fake_send(c, "HTTP/1.1 100 Continue\r\n\r\n");
            c->continued = true;
            return;
        }
        c->continued = false;
        atomic_fetch_add(&f->requests, 1);
        int mode = atomic_load(&f->mode);
        if (mode == FAKE_TRICKLE || mode == FAKE_SLOW_8) {
            fake_send(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            c->trickle_left = mode == FAKE_TRICKLE ? -1 : 8;
        } else if (!strncmp(c->buf, "PUT ", 4)) {
            fake_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        } else if (!strncmp(c->buf, "DELETE ", 7)) {
            fake_send(c, "HTTP/1.1 204 No Content\r\n\r\n");
        } else if (memmem(c->buf, head, "list-type=2", 11)) {
            static const char xml[] = "<ListBucketResult><Contents><Key>a/b.parquet</Key>"
                                      "<Size>4</Size></Contents><IsTruncated>false</IsTruncated>"
                                      "</ListBucketResult>";
            char r[512];
            snprintf(r, sizeof r, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof xml - 1, xml);
            fake_send(c, r);
        } else {
            fake_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfake");
        }
        if (c->fd < 0) return;
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

static void *fake_main(void *arg)
{
    fake_s3 *f = arg;
    double next_trickle = now_s();
    while (!atomic_load(&f->quit)) {
        if (atomic_load(&f->mode) == FAKE_STOPPED) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd pfd[FAKE_CONNS + 1];
        int idx[FAKE_CONNS + 1], n = 0;
        pfd[n] = (struct pollfd){.fd = f->listen_fd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < FAKE_CONNS; i++)
            if (f->conns[i].fd >= 0) {
                pfd[n] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        poll(pfd, (nfds_t)n, 50);
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (idx[k] < 0) {
                int fd = accept(f->listen_fd, NULL, NULL);
                if (fd < 0) continue;
                int i = 0;
                while (i < FAKE_CONNS && f->conns[i].fd >= 0)
                    i++;
                if (i == FAKE_CONNS) {
                    close(fd);
                    continue;
                }
                f->conns[i].fd = fd;
                continue;
            }
            fake_conn *c = &f->conns[idx[k]];
            ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (got <= 0) {
                fake_close(c);
                continue;
            }
            c->len += (size_t)got;
            fake_serve(f, c);
        }
        if (now_s() >= next_trickle) {
            next_trickle = now_s() + 0.25;
            for (int i = 0; i < FAKE_CONNS; i++) {
                fake_conn *c = &f->conns[i];
                if (c->fd < 0 || c->trickle_left == 0) continue;
                fake_send(c, "x");
                if (c->fd >= 0 && c->trickle_left > 0 && --c->trickle_left == 0) fake_close(c);
            }
        }
    }
    return NULL;
}

/* Listen on 127.0.0.1 (a free port) without serving yet; 0 or -1. */
static int fake_listen(fake_s3 *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < FAKE_CONNS; i++)
        f->conns[i].fd = -1;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->listen_fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->listen_fd, 64) != 0 ||
        getsockname(f->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        close(f->listen_fd);
        return -1;
    }
    f->port = ntohs(a.sin_port);
    return 0;
}

static int fake_start(fake_s3 *f)
{
    if (fake_listen(f) != 0) return -1;
    if (pthread_create(&f->thread, NULL, fake_main, f) != 0) {
        close(f->listen_fd);
        return -1;
    }
    return 0;
}

static void fake_stop(fake_s3 *f)
{
    atomic_store(&f->quit, true);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < FAKE_CONNS; i++)
        if (f->conns[i].fd >= 0) fake_close(&f->conns[i]);
    close(f->listen_fd);
}

static void fake_endpoint(const fake_s3 *f, char *out, size_t len)
{
    snprintf(out, len, "http://127.0.0.1:%d", f->port);
}

static void list_count_cb(void *arg, const char *path, uint64_t size_bytes)
{
    (void)path;
    (void)size_bytes;
    ++*(int *)arg;
}

/* A server that accepts (in the kernel) and never answers: open fails in about T seconds. */
static void test_timeout_open_never_answered(void)
{
    fake_s3 f;
    CHECK_EQ_INT(fake_listen(&f), 0); /* listening, never accepting: like SIGSTOP */
    char ep[64], err[256] = "";
    fake_endpoint(&f, ep, sizeof ep);
    object_store s;
    double t0 = now_s();
    int rc = object_store_s3_open(ep, "b", "us-east-1", 1, &s, err, sizeof err);
    double took = now_s() - t0;
    CHECK_EQ_INT(rc, -ETIMEDOUT);
    CHECK(strstr(err, ep) != NULL);
    CHECK(took >= 0.9 && took < 3.5);
    if (rc == 0) s.close(s.self);
    close(f.listen_fd);
}

/* A running fake server and a store (timeout 1 s) open on it; nonzero (server stopped) if not. */
static int fake_open_store(fake_s3 *f, object_store *s)
{
    CHECK_EQ_INT(fake_start(f), 0);
    char ep[64], err[256] = "";
    fake_endpoint(f, ep, sizeof ep);
    int rc = object_store_s3_open(ep, "b", "us-east-1", 1, s, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  open: %s\n", err);
        fake_stop(f);
    }
    return rc;
}

/* Every operation of an open store stalls out with -ETIMEDOUT; once the server answers again,
 * the same store works. */
static void test_timeout_each_operation_then_recovery(void)
{
    fake_s3 f;
    object_store s;
    if (fake_open_store(&f, &s) != 0) return;
    int rc;
    CHECK_EQ_INT(s.put(s.self, "a/b.parquet", "abcd", 4), 0);
    atomic_store(&f.mode, FAKE_STOPPED);
    for (int op = 0; op < 4; op++) {
        void *data = NULL;
        size_t len = 0;
        int listed = 0;
        double t0 = now_s();
        switch (op) {
        case 0: rc = s.put(s.self, "a/b.parquet", "abcd", 4); break;
        case 1: rc = s.get(s.self, "a/b.parquet", &data, &len); break;
        case 2: rc = s.list(s.self, "a/", list_count_cb, &listed); break;
        default: rc = s.remove(s.self, "a/b.parquet");
        }
        double took = now_s() - t0;
        CHECK_EQ_INT(rc, -ETIMEDOUT);
        /* not abandoned before T = 1 s; abandoned for moving nothing, well before 4 T */
        if (took < 0.9 || took >= 3.5) fprintf(stderr, "  op %d took %.2f s\n", op, took);
        CHECK(took >= 0.9 && took < 3.5);
        CHECK(data == NULL && listed == 0);
    }
    atomic_store(&f.mode, FAKE_ANSWER);
    CHECK_EQ_INT(s.put(s.self, "a/b.parquet", "abcd", 4), 0);
    void *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(s.get(s.self, "a/b.parquet", &data, &len), 0);
    CHECK(len == 4 && data && memcmp(data, "fake", 4) == 0);
    free(data);
    int listed = 0;
    CHECK_EQ_INT(s.list(s.self, "a/", list_count_cb, &listed), 0);
    CHECK_EQ_INT(listed, 1);
    CHECK_EQ_INT(s.remove(s.self, "a/b.parquet"), 0);
    s.close(s.self);
    fake_stop(&f);
}

/* A body that keeps coming, a byte at a time, is not a stall; one that never ends is cut off
 * by the total limit (4 T here: its length is not announced). */
static void test_timeout_trickle(void)
{
    fake_s3 f;
    object_store s;
    if (fake_open_store(&f, &s) != 0) return;
    void *data = NULL;
    size_t len = 0;
    atomic_store(&f.mode, FAKE_SLOW_8); /* 2 s in all, a byte every 0.25 s: no stall */
    double t0 = now_s();
    CHECK_EQ_INT(s.get(s.self, "a/b.parquet", &data, &len), 0);
    CHECK(now_s() - t0 >= 1.5);
    CHECK(len == 8 && data && memcmp(data, "xxxxxxxx", 8) == 0);
    free(data);
    data = NULL;
    atomic_store(&f.mode, FAKE_TRICKLE);
    t0 = now_s();
    CHECK_EQ_INT(s.get(s.self, "a/b.parquet", &data, &len), -ETIMEDOUT);
    double took = now_s() - t0;
    if (took < 3.9 || took >= 7) fprintf(stderr, "  trickle took %.2f s\n", took);
    CHECK(took >= 3.9 && took < 7);
    CHECK(data == NULL);
    s.close(s.self);
    fake_stop(&f);
}

static void test_timeout_out_of_range(void)
{
    char err[256] = "";
    object_store s;
    CHECK_EQ_INT(object_store_s3_open("http://127.0.0.1:1", "b", "us-east-1", 0, &s, err,
                                              sizeof err),
                 INGOT_E_INVALID);
    CHECK_EQ_INT(object_store_s3_open("http://127.0.0.1:1", "b", "us-east-1", 86401, &s,
                                              err, sizeof err),
                 INGOT_E_INVALID);
}

/* ---- part 2: a real S3-compatible server ------------------------------------------------ */

static const char *endpoint, *bucket;
static object_store s3;

static void test_open(void)
{
    char err[256] = "";
    int rc = object_store_s3_open(endpoint, bucket, "us-east-1", 30, &s3, err, sizeof err);
    if (rc) fprintf(stderr, "  open: %s\n", err);
    CHECK_EQ_INT(rc, 0);
}

static void test_open_errors(void)
{
    char err[256] = "";
    object_store s;
    CHECK_EQ_INT(object_store_s3_open("", bucket, "us-east-1", 30, &s, err, sizeof err),
                 INGOT_E_INVALID);
    CHECK_EQ_INT(object_store_s3_open("ftp://x", bucket, "us-east-1", 30, &s, err, sizeof err),
                 INGOT_E_INVALID);
    /* nobody listens on port 1 */
    err[0] = '\0';
    CHECK(object_store_s3_open("http://127.0.0.1:1", bucket, "us-east-1", 30, &s, err, sizeof err) <
          0);
    CHECK(err[0] != '\0');
    /* a bucket that does not exist */
    err[0] = '\0';
    CHECK(object_store_s3_open(endpoint, "no-such-bucket-ingot", "us-east-1", 30, &s, err,
                               sizeof err) < 0);
    CHECK(strstr(err, "no-such-bucket-ingot") != NULL);
}

/*
 * An unknown access key is refused (InvalidAccessKeyId): the requests carry the AWS4 header.
 * s3rver does not verify SigV4 signatures themselves, so a wrong secret would pass here.
 */
static void test_unknown_key_refused(void)
{
    char *saved = strdup(getenv("AWS_ACCESS_KEY_ID"));
    setenv("AWS_ACCESS_KEY_ID", "NOT-A-KEY", 1);
    char err[256] = "";
    object_store s;
    int rc = object_store_s3_open(endpoint, bucket, "us-east-1", 30, &s, err, sizeof err);
    CHECK_EQ_INT(rc, -EACCES);
    CHECK(strstr(err, "403") != NULL);
    setenv("AWS_ACCESS_KEY_ID", saved, 1);
    free(saved);
    if (rc == 0) s.close(s.self);
}

/* More objects than one ListObjectsV2 page holds (INGOT_S3_LIST_MAX_KEYS=7 for this store). */
static void test_list_pages(void)
{
    setenv("INGOT_S3_LIST_MAX_KEYS", "7", 1);
    char err[256] = "";
    object_store s;
    int rc = object_store_s3_open(endpoint, bucket, "us-east-1", 30, &s, err, sizeof err);
    unsetenv("INGOT_S3_LIST_MAX_KEYS");
    CHECK_EQ_INT(rc, 0);
    if (rc) return;
    char path[256];
    for (int i = 0; i < 30; i++) {
        snprintf(path, sizeof path, "%spages/o%02d", scenario_base, i);
        CHECK_EQ_INT(s.put(s.self, path, path, (size_t)i), 0);
    }
    scenario_listing l = {0};
    snprintf(path, sizeof path, "%spages/", scenario_base);
    CHECK_EQ_INT(s.list(s.self, path, scenario_list_cb, &l), 0);
    CHECK_EQ_INT(l.count, 30);
    for (int i = 0; i < 30; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "pages/o%02d", i);
        long k = scenario_find(&l, rel);
        CHECK(k >= 0);
        if (k >= 0) CHECK_EQ_INT(l.sizes[k], i);
    }
    scenario_listing_free(&l);
    s.close(s.self);
}

int main(void)
{
    if (!getenv("AWS_ACCESS_KEY_ID")) setenv("AWS_ACCESS_KEY_ID", "FAKE", 1);
    if (!getenv("AWS_SECRET_ACCESS_KEY")) setenv("AWS_SECRET_ACCESS_KEY", "FAKE", 1);
    alarm(90); /* a request that is never abandoned hangs part 1: end the process instead */
    TEST_RUN(test_timeout_out_of_range);
    TEST_RUN(test_timeout_open_never_answered);
    TEST_RUN(test_timeout_each_operation_then_recovery);
    TEST_RUN(test_timeout_trickle);
    alarm(0);

    endpoint = getenv("INGOT_TEST_S3_ENDPOINT");
    bucket = getenv("INGOT_TEST_S3_BUCKET");
    if (!endpoint || !*endpoint) {
        printf("%s: the tests against a real server are skipped (INGOT_TEST_S3_ENDPOINT is not "
               "set; see tests/s3.sh)\n",
               __FILE__);
        TEST_MAIN_END();
    }
    if (!bucket || !*bucket) bucket = "ingot-test";
    char uuid[37];
    object_store_uuid_v4(uuid);
    snprintf(scenario_base, sizeof scenario_base, "run-%s/", uuid);
    TEST_RUN(test_open);
    if (test_failed_count) TEST_MAIN_END();
    scenario_store = &s3;
    scenario_long_name_len = 80;         /* s3rver: each key segment is a file name */
    scenario_reads_during_overwrite = 0; /* s3rver overwrites in place */
    TEST_RUN(test_open_errors);
    TEST_RUN(test_unknown_key_refused);
    store_scenarios_run_all();
    TEST_RUN(test_list_pages);
    s3.close(s3.self);
    TEST_MAIN_END();
}
