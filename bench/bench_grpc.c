/*
 * bench_grpc.c: end-to-end throughput of ingot's front ends, measured from outside against a real
 * `ingot serve` process: writes as columnar DatabaseBatch over gRPC vs line protocol over gRPC vs
 * line protocol over HTTP, and Arrow Flight DoGet reads.
 *
 *   build/bench/bench_grpc [-n ROWS] [-c WRITERS] [-b BATCH] [-r READ_ROWS] [-H HOSTS] [-k RUNS]
 *                          [-m columnar,lp-grpc,lp-http] [INGOT_BIN]
 *
 * Defaults: -n 2000000 -c 8 -b 5000 -r 10000000 -H 1000 -k 3, all three modes; INGOT_BIN from
 * the argument, else $INGOT_BIN, else build/ingot. -n 0 skips the write part, -r 0 the read
 * part. Temporary data
 * directories go under $TMPDIR (default /tmp) and are removed afterwards.
 *
 * DATASET. TSBS "cpu-only"-shaped rows, generated statelessly from the row number so that any
 * batch can be built by any thread: row r belongs to host r % HOSTS at 2026-01-01T00:00:00Z +
 * (r / HOSTS) seconds (1 s apart per host; with the defaults every row falls in one UTC day, i.e.
 * one partition). Each host has 10 tags drawn once from the TSBS vocabularies (hostname,
 * region (9), datacenter (region + a/b/c), rack (100), os (3), arch (2), team (4), service (20),
 * service_version (2), service_environment (3)) and each row 10 fields: usage_user ..
 * usage_iowait as f64 with one decimal (0.0-100.0), usage_irq .. usage_guest_nice as i64
 * (0-100). The line protocol prints a float as "58.3" and the columnar batch carries 583 / 10.0,
 * which is the same double (both are the correctly rounded value of 58.3), so every mode writes
 * exactly the same rows.
 *
 * WRITE. For each of RUNS runs and each mode in turn, a fresh ingot is started in an empty data
 * directory (so every run starts from an empty buffer, and the namespace and columns are created
 * before the clock starts by one warm-up row per writer), WRITERS threads each open their own
 * connection (a gRPC channel with a local subchannel pool, or a libcurl keep-alive handle), and
 * take batches of BATCH rows from a shared counter until ROWS rows were acknowledged. Request
 * bodies are encoded before the clock starts (the line protocol once: the HTTP body is the
 * line_protocol bytes inside the packed gRPC request). Printed per mode: rows/s and MB/s of
 * request bytes (the packed WriteRequest for gRPC, the body for HTTP; no framing or headers) of
 * the median run, p50/p99 latency over every request of every run, and the CPU seconds of the
 * server and of this client process of the median run (the machine may have 2 shared cores: a
 * client that eats one of them is part of the picture). The server runs with
 * --persist-hot-partition-bytes, --wal-segment-bytes and --wal-rotation-period so large that
 * nothing is persisted during the run; it is killed (SIGKILL) afterwards, its data discarded.
 *
 * READ. A fresh ingot is loaded with READ_ROWS rows (columnar gRPC, WRITERS threads encoding on
 * the fly; the load rate is printed for information), then Flight DoGet with the ticket
 * {"namespace":"bench","table":"cpu"} is timed RUNS times. The stream is, per partition, one
 * FlightData holding only app_metadata, then the Arrow IPC stream of that partition as FlightData
 * messages whose data_header is a flatbuffer Message and data_body its body. The rows received
 * are counted by reading RecordBatch.length out of each header with the small flatbuffer reader
 * below (Message.header_type / header / bodyLength, RecordBatch.length; every offset bounds-
 * checked) and must equal READ_ROWS (rows are unique by host and time, so de-duplication keeps
 * them all); bodyLength must equal the data_body size. MB/s counts data_header + data_body bytes.
 * The physical limit is a single-threaded memcpy of the same number of bytes through 64 MiB
 * buffers on this machine; the ratio Flight MB/s / memcpy MB/s is printed.
 *
 * Any failed request (other than RESOURCE_EXHAUSTED / UNAVAILABLE / HTTP 503, which are retried
 * after 20 ms and counted) stops the benchmark with the server's message and exit status 1.
 * ingot is started with posix_spawn before and while gRPC runs: posix_spawn execs at once in the
 * child, so gRPC's rule "never fork after grpc_init" holds.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arrow/flight/protocol/flight.pb-c.h"
#include "bench_util.h"
#include "ingot/write/v1/write.pb-c.h"

extern char **environ;

#define NAMESPACE "bench"
#define TABLE "cpu"
#define START_NS 1767225600000000000ll /* 2026-01-01T00:00:00Z */
#define TAG_COUNT 10
#define F64_COUNT 5
#define I64_COUNT 5
#define COLUMN_COUNT (TAG_COUNT + F64_COUNT + I64_COUNT + 1)
#define TAG_MAX 24
#define WRITE_METHOD "/ingot.write.v1.WriteService/Write"
#define DOGET_METHOD "/arrow.flight.protocol.FlightService/DoGet"
#define RETRY_LIMIT_S 120.0
#define MEMCPY_CHUNK (64u << 20)

static const char *tag_names[TAG_COUNT] = {"hostname", "region",  "datacenter", "rack",
                                           "os",       "arch",    "team",       "service",
                                           "service_version", "service_environment"};
static const char *field_names[F64_COUNT + I64_COUNT] = {
    "usage_user", "usage_system", "usage_idle",  "usage_nice",  "usage_iowait",
    "usage_irq",  "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"};

typedef struct options {
    uint64_t rows, read_rows;
    unsigned writers, batch_rows, hosts, runs;
    unsigned modes; /* bit m: write mode m is measured */
    const char *ingot_bin, *tmp_root;
} options;

/* ---- dataset ---------------------------------------------------------------------------- */

typedef struct dataset {
    uint32_t hosts;
    char (*tags)[TAG_COUNT][TAG_MAX]; /* [hosts]: the tag values of each host */
    char **prefix;                    /* [hosts]: "cpu,hostname=...,service_environment=..." */
    size_t *prefix_len;
} dataset;

typedef struct row_values {
    uint32_t host;
    int64_t time_ns;
    int f64_tenths[F64_COUNT]; /* value * 10, 0..1000 */
    int i64[I64_COUNT];        /* 0..100 */
} row_values;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void dataset_free(dataset *ds)
{
    if (ds->prefix)
        for (uint32_t h = 0; h < ds->hosts; h++) free(ds->prefix[h]);
    free(ds->prefix);
    free(ds->prefix_len);
    free(ds->tags);
    memset(ds, 0, sizeof *ds);
}

static int dataset_init(dataset *ds, uint32_t hosts)
{
    static const char *regions[] = {"us-east-1",      "us-west-1",      "us-west-2",
                                    "eu-west-1",      "eu-central-1",   "ap-southeast-1",
                                    "ap-southeast-2", "ap-northeast-1", "sa-east-1"};
    static const char *oses[] = {"Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"};
    static const char *arches[] = {"x64", "x86"};
    static const char *teams[] = {"SF", "NYC", "LON", "CHI"};
    static const char *envs[] = {"production", "staging", "test"};
    memset(ds, 0, sizeof *ds);
    ds->hosts = hosts;
    ds->tags = calloc(hosts, sizeof *ds->tags);
    ds->prefix = calloc(hosts, sizeof *ds->prefix);
    ds->prefix_len = calloc(hosts, sizeof *ds->prefix_len);
    if (!ds->tags || !ds->prefix || !ds->prefix_len) goto fail;
    for (uint32_t h = 0; h < hosts; h++) {
        uint64_t r = splitmix64(h * 0x100000001B3ull + 7);
        char(*t)[TAG_MAX] = ds->tags[h];
        const char *region = regions[r % 9];
        snprintf(t[0], TAG_MAX, "host_%" PRIu32, h);
        snprintf(t[1], TAG_MAX, "%s", region);
        snprintf(t[2], TAG_MAX, "%s%c", region, (char)('a' + (r >> 8) % 3));
        snprintf(t[3], TAG_MAX, "%u", (unsigned)((r >> 12) % 100));
        snprintf(t[4], TAG_MAX, "%s", oses[(r >> 20) % 3]);
        snprintf(t[5], TAG_MAX, "%s", arches[(r >> 24) % 2]);
        snprintf(t[6], TAG_MAX, "%s", teams[(r >> 28) % 4]);
        snprintf(t[7], TAG_MAX, "%u", (unsigned)((r >> 32) % 20));
        snprintf(t[8], TAG_MAX, "%u", (unsigned)((r >> 40) % 2));
        snprintf(t[9], TAG_MAX, "%s", envs[(r >> 44) % 3]);
        char buf[512];
        size_t len = (size_t)snprintf(buf, sizeof buf, TABLE);
        for (int i = 0; i < TAG_COUNT; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, ",%s=%s", tag_names[i], t[i]);
        ds->prefix[h] = strdup(buf);
        if (!ds->prefix[h]) goto fail;
        ds->prefix_len[h] = len;
    }
    return 0;
fail:
    dataset_free(ds);
    return -1;
}

static void dataset_row(const dataset *ds, uint64_t row, row_values *out)
{
    out->host = (uint32_t)(row % ds->hosts);
    out->time_ns = START_NS + (int64_t)(row / ds->hosts) * 1000000000ll;
    uint64_t a = splitmix64(row ^ 0xA5A5A5A5ull), b = splitmix64(a);
    for (int f = 0; f < F64_COUNT; f++) out->f64_tenths[f] = (int)((a >> (f * 12)) % 1001);
    for (int f = 0; f < I64_COUNT; f++) out->i64[f] = (int)((b >> (f * 12)) % 101);
}

static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* Line protocol of rows [first, first + count), NUL-terminated, malloc'd; *len excludes the NUL. */
static char *encode_lp(const dataset *ds, uint64_t first, size_t count, size_t *len)
{
    char *buf = malloc(count * 512 + 1), *p = buf;
    if (!buf) return NULL;
    for (size_t i = 0; i < count; i++) {
        row_values v;
        dataset_row(ds, first + i, &v);
        memcpy(p, ds->prefix[v.host], ds->prefix_len[v.host]);
        p += ds->prefix_len[v.host];
        for (int f = 0; f < F64_COUNT + I64_COUNT; f++) {
            *p++ = f ? ',' : ' ';
            size_t n = strlen(field_names[f]);
            memcpy(p, field_names[f], n);
            p += n;
            *p++ = '=';
            if (f < F64_COUNT) {
                p = put_uint(p, (uint64_t)v.f64_tenths[f] / 10);
                *p++ = '.';
                *p++ = (char)('0' + v.f64_tenths[f] % 10);
            } else {
                p = put_uint(p, (uint64_t)v.i64[f - F64_COUNT]);
                *p++ = 'i';
            }
        }
        *p++ = ' ';
        p = put_uint(p, (uint64_t)v.time_ns);
        *p++ = '\n';
    }
    *p = '\0';
    *len = (size_t)(p - buf);
    return buf;
}

static uint8_t *pack_request(const Ingot__Write__V1__WriteRequest *req, size_t *len)
{
    size_t n = ingot__write__v1__write_request__get_packed_size(req);
    uint8_t *out = malloc(n ? n : 1);
    if (!out) return NULL;
    *len = ingot__write__v1__write_request__pack(req, out);
    return out;
}

/* A packed WriteRequest{namespace, line_protocol} of rows [first, first + count). The LP text is
 * the tail of the message (proto3 omits precision 0): *lp_offset / *lp_len locate it. */
static uint8_t *encode_lp_request(const dataset *ds, uint64_t first, size_t count, size_t *len,
                                  size_t *lp_offset, size_t *lp_len)
{
    size_t text_len;
    char *text = encode_lp(ds, first, count, &text_len);
    if (!text) return NULL;
    Ingot__Write__V1__WriteRequest req = INGOT__WRITE__V1__WRITE_REQUEST__INIT;
    req.namespace_ = NAMESPACE;
    req.precision = INGOT__WRITE__V1__PRECISION__PRECISION_NANOSECOND;
    req.payload_case = INGOT__WRITE__V1__WRITE_REQUEST__PAYLOAD_LINE_PROTOCOL;
    req.line_protocol = text;
    uint8_t *out = pack_request(&req, len);
    if (out && (*len < text_len || memcmp(out + *len - text_len, text, text_len) != 0)) {
        fprintf(stderr, "bench_grpc: line protocol is not the tail of the packed request\n");
        free(out);
        out = NULL;
    }
    *lp_offset = out ? *len - text_len : 0;
    *lp_len = text_len;
    free(text);
    return out;
}

/* Reusable arrays for building one columnar batch with protobuf-c. */
typedef struct columnar_scratch {
    size_t cap;
    char **tag_values[TAG_COUNT];
    double *f64[F64_COUNT];
    int64_t *i64[I64_COUNT];
    int64_t *time;
} columnar_scratch;

static void columnar_scratch_free(columnar_scratch *s)
{
    for (int i = 0; i < TAG_COUNT; i++) free(s->tag_values[i]);
    for (int i = 0; i < F64_COUNT; i++) free(s->f64[i]);
    for (int i = 0; i < I64_COUNT; i++) free(s->i64[i]);
    free(s->time);
    memset(s, 0, sizeof *s);
}

static int columnar_scratch_init(columnar_scratch *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->cap = cap;
    bool ok = (s->time = malloc(cap * sizeof *s->time)) != NULL;
    for (int i = 0; i < TAG_COUNT; i++)
        ok &= (s->tag_values[i] = malloc(cap * sizeof(char *))) != NULL;
    for (int i = 0; i < F64_COUNT; i++) ok &= (s->f64[i] = malloc(cap * sizeof(double))) != NULL;
    for (int i = 0; i < I64_COUNT; i++) ok &= (s->i64[i] = malloc(cap * sizeof(int64_t))) != NULL;
    if (!ok) columnar_scratch_free(s);
    return ok ? 0 : -1;
}

/* A packed WriteRequest{namespace, batch: one TableBatch of rows [first, first + count)}. */
static uint8_t *encode_columnar_request(const dataset *ds, columnar_scratch *s, uint64_t first,
                                        size_t count, size_t *len)
{
    if (count > s->cap) return NULL;
    for (size_t i = 0; i < count; i++) {
        row_values v;
        dataset_row(ds, first + i, &v);
        for (int t = 0; t < TAG_COUNT; t++) s->tag_values[t][i] = ds->tags[v.host][t];
        for (int f = 0; f < F64_COUNT; f++) s->f64[f][i] = v.f64_tenths[f] / 10.0;
        for (int f = 0; f < I64_COUNT; f++) s->i64[f][i] = v.i64[f];
        s->time[i] = v.time_ns;
    }
    Ingot__Write__V1__Column cols[COLUMN_COUNT];
    Ingot__Write__V1__Values vals[COLUMN_COUNT];
    Ingot__Write__V1__Column *colp[COLUMN_COUNT];
    for (int c = 0; c < COLUMN_COUNT; c++) {
        ingot__write__v1__column__init(&cols[c]);
        ingot__write__v1__values__init(&vals[c]);
        cols[c].values = &vals[c];
        colp[c] = &cols[c];
        if (c < TAG_COUNT) {
            cols[c].column_name = (char *)tag_names[c];
            cols[c].semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__TAG;
            vals[c].n_string_values = count;
            vals[c].string_values = s->tag_values[c];
        } else if (c < TAG_COUNT + F64_COUNT) {
            int f = c - TAG_COUNT;
            cols[c].column_name = (char *)field_names[f];
            cols[c].semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__FIELD;
            vals[c].n_f64_values = count;
            vals[c].f64_values = s->f64[f];
        } else if (c < COLUMN_COUNT - 1) {
            int f = c - TAG_COUNT - F64_COUNT;
            cols[c].column_name = (char *)field_names[F64_COUNT + f];
            cols[c].semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__FIELD;
            vals[c].n_i64_values = count;
            vals[c].i64_values = s->i64[f];
        } else {
            cols[c].column_name = "time";
            cols[c].semantic_type = INGOT__WRITE__V1__SEMANTIC_TYPE__TIME;
            vals[c].n_i64_values = count;
            vals[c].i64_values = s->time;
        }
    }
    Ingot__Write__V1__TableBatch tb = INGOT__WRITE__V1__TABLE_BATCH__INIT;
    tb.table_name = TABLE;
    tb.n_columns = COLUMN_COUNT;
    tb.columns = colp;
    tb.row_count = (uint32_t)count;
    Ingot__Write__V1__TableBatch *tbp = &tb;
    Ingot__Write__V1__DatabaseBatch db = INGOT__WRITE__V1__DATABASE_BATCH__INIT;
    db.n_table_batches = 1;
    db.table_batches = &tbp;
    Ingot__Write__V1__WriteRequest req = INGOT__WRITE__V1__WRITE_REQUEST__INIT;
    req.namespace_ = NAMESPACE;
    req.precision = INGOT__WRITE__V1__PRECISION__PRECISION_NANOSECOND;
    req.payload_case = INGOT__WRITE__V1__WRITE_REQUEST__PAYLOAD_BATCH;
    req.batch = &db;
    return pack_request(&req, len);
}

/* ---- the ingot process ------------------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    char dir[256];
    int http_port, grpc_port;
    char grpc_target[64];
    char http_url[128];
} server;

static int free_ports(int *a, int *b)
{
    int fds[2] = {-1, -1}, ports[2];
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof sa;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &sl) != 0)
            goto fail;
        ports[i] = ntohs(sa.sin_port);
    }
    close(fds[0]);
    close(fds[1]);
    *a = ports[0];
    *b = ports[1];
    return 0;
fail:
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0) close(fds[i]);
    return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void print_log_tail(const server *s)
{
    char path[300];
    snprintf(path, sizeof path, "%s/server.log", s->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 4000 ? size - 4000 : 0, SEEK_SET);
    char buf[4001];
    size_t n = fread(buf, 1, 4000, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- tail of %s ---\n%s\n---\n", path, buf);
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* Kill (SIGKILL) and reap the server, remove its directory. */
static void server_stop(server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0]) nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

/* Start `ingot serve` in a new temporary directory and wait until /health answers 200. */
static int server_start(server *s, const options *o, uint64_t max_request_bytes)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s/bench_grpc.XXXXXX", o->tmp_root);
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "bench_grpc: mkdtemp %s: %s\n", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    if (free_ports(&s->http_port, &s->grpc_port) != 0) goto fail;
    char data_dir[300], log_path[300], http_bind[64], grpc_bind[64], max_req[32];
    snprintf(data_dir, sizeof data_dir, "%s/data", s->dir);
    snprintf(log_path, sizeof log_path, "%s/server.log", s->dir);
    snprintf(http_bind, sizeof http_bind, "127.0.0.1:%d", s->http_port);
    snprintf(grpc_bind, sizeof grpc_bind, "127.0.0.1:%d", s->grpc_port);
    snprintf(max_req, sizeof max_req, "%" PRIu64, max_request_bytes);
    snprintf(s->grpc_target, sizeof s->grpc_target, "127.0.0.1:%d", s->grpc_port);
    char *argv[] = {(char *)o->ingot_bin, "serve", "--data-dir", data_dir, "--http-bind", http_bind,
                    "--grpc-bind", grpc_bind, "--persist-hot-partition-bytes", "1024G",
                    "--wal-segment-bytes", "1024G", "--wal-rotation-period", "24h",
                    "--max-request-bytes", max_req, "--log-level", "warn", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&s->pid, o->ingot_bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench_grpc: spawn %s: %s\n", o->ingot_bin, strerror(rc));
        s->pid = 0;
        goto fail;
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", s->http_port);
    CURL *h = curl_easy_init();
    if (!h) goto fail;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    long code = 0;
    for (double t0 = bench_now_s(); bench_now_s() - t0 < 60;) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            fprintf(stderr, "bench_grpc: ingot exited during start-up\n");
            break;
        }
        if (curl_easy_perform(h) == CURLE_OK &&
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
            break;
        code = 0;
        usleep(50000);
    }
    curl_easy_cleanup(h);
    if (code != 200) {
        fprintf(stderr, "bench_grpc: ingot did not become healthy\n");
        print_log_tail(s);
        goto fail;
    }
    snprintf(s->http_url, sizeof s->http_url,
             "http://127.0.0.1:%d/api/v2/write?bucket=" NAMESPACE "&precision=ns", s->http_port);
    return 0;
fail:
    server_stop(s);
    return -1;
}

/* utime + stime of the server in seconds, or -1. */
static double server_cpu_s(const server *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* fields 3.. after the command: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double server_rss_mib(const server *s)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    double kib = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf", &kib) == 1) break;
    fclose(f);
    return kib / 1024.0;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- gRPC client ------------------------------------------------------------------------- */

static grpc_channel *channel_open(const char *target)
{
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = -1;
    args[1].type = GRPC_ARG_INTEGER; /* one connection per channel, as one keep-alive per curl */
    args[1].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[1].value.integer = 1;
    grpc_channel_args ca = {.num_args = 2, .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    return ch;
}

static gpr_timespec deadline_in(double seconds)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis((int64_t)(seconds * 1000), GPR_TIMESPAN));
}

static bool cq_wait(grpc_completion_queue *cq, void *tag)
{
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static void status_text(grpc_status_code st, grpc_slice details, char *err, size_t errlen)
{
    char *d = grpc_slice_to_c_string(details);
    snprintf(err, errlen, "gRPC status %d: %s", (int)st, d ? d : "");
    gpr_free(d);
}

/*
 * One unary call of `method` with request bytes `req` (consumed: one reference of the slice is
 * released). On GRPC_STATUS_OK *resp holds the reply (the caller unrefs it). Returns the status,
 * or GRPC_STATUS_INTERNAL with err set when the call could not be made.
 */
static grpc_status_code grpc_unary(grpc_channel *ch, grpc_completion_queue *cq, const char *method,
                                   grpc_slice req, double timeout_s, uint32_t md_flags,
                                   grpc_slice *resp, char *err, size_t errlen)
{
    grpc_status_code st = GRPC_STATUS_INTERNAL;
    grpc_slice details = grpc_empty_slice();
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req, 1), *recv = NULL;
    grpc_slice_unref(req);
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               grpc_slice_from_static_string(method), NULL,
                                               deadline_in(timeout_s), NULL);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = md_flags;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &st;
    ops[5].data.recv_status_on_client.status_details = &details;
    if (!call || grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
        snprintf(err, errlen, "cannot start a call");
        st = GRPC_STATUS_INTERNAL;
        goto done;
    }
    if (!cq_wait(cq, call)) {
        snprintf(err, errlen, "call failed on the completion queue");
        st = GRPC_STATUS_INTERNAL;
        goto done;
    }
    if (st != GRPC_STATUS_OK) {
        status_text(st, details, err, errlen);
    } else if (!recv) {
        snprintf(err, errlen, "OK without a reply message");
        st = GRPC_STATUS_INTERNAL;
    } else {
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, recv)) {
            snprintf(err, errlen, "unreadable reply");
            st = GRPC_STATUS_INTERNAL;
        } else {
            *resp = grpc_byte_buffer_reader_readall(&r);
            grpc_byte_buffer_reader_destroy(&r);
        }
    }
done:
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_slice_unref(details);
    if (call) grpc_call_unref(call);
    return st;
}

/* ---- writers ----------------------------------------------------------------------------- */

enum write_mode { MODE_COLUMNAR, MODE_LP_GRPC, MODE_LP_HTTP, MODE_COUNT };
static const char *mode_names[MODE_COUNT] = {"columnar gRPC", "LP gRPC", "LP HTTP"};

typedef struct request {
    uint8_t *data; /* packed WriteRequest */
    size_t len;
    size_t lp_offset, lp_len; /* LP modes: the text inside data (the HTTP body) */
    uint32_t rows;
} request;

typedef struct request_set {
    request *reqs;
    size_t count;
    uint64_t req_bytes[MODE_COUNT]; /* bytes a mode sends for the whole set */
} request_set;

typedef struct phase {
    enum write_mode mode;
    const options *o;
    const server *srv;
    const dataset *ds;
    const request *reqs;   /* pre-encoded requests, or NULL: encode columnar on the fly */
    size_t count;          /* batches */
    uint64_t first_rows;   /* on-the-fly: total rows */
    request warmup;        /* one row, sent by every writer before the clock starts */
    atomic_size_t next;
    atomic_uint_fast64_t rows_acked;
    atomic_int failed;
    pthread_mutex_t gate_lock; /* guards ready, go */
    pthread_cond_t gate_cond;
    unsigned ready; /* writers done with their warm-up */
    bool go;        /* the clock started */
} phase;

typedef struct writer {
    phase *ph;
    pthread_t thread;
    double *latency_s; /* one per request sent */
    size_t latency_count, latency_cap;
    uint64_t retries;
    int failed;
    char err[512];
} writer;

static bool retryable_grpc(grpc_status_code st)
{
    return st == GRPC_STATUS_RESOURCE_EXHAUSTED || st == GRPC_STATUS_UNAVAILABLE;
}

typedef struct writer_conn {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    CURL *curl;
    struct curl_slist *headers;
} writer_conn;

/* Send one request until acknowledged (retrying back-pressure). slice_owned: r->data is handed
 * over (freed with its last slice reference; HTTP never owns). Returns 0 or -1 with w->err set. */
static int send_write(writer *w, writer_conn *c, const request *r, bool slice_owned,
                      double timeout_s, uint32_t md_flags)
{
    phase *ph = w->ph;
    double t0 = bench_now_s();
    int rv = -1;
    grpc_slice s = grpc_empty_slice();
    if (ph->mode != MODE_LP_HTTP)
        s = slice_owned ? grpc_slice_new(r->data, r->len, free)
                        : grpc_slice_from_static_buffer(r->data, r->len);
    for (;;) {
        if (ph->mode == MODE_LP_HTTP) {
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, (const char *)r->data + r->lp_offset);
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->lp_len);
            CURLcode cc = curl_easy_perform(c->curl);
            long code = 0;
            curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
            if (cc == CURLE_OK && code == 204) break;
            if (cc != CURLE_OK || code != 503 || bench_now_s() - t0 > RETRY_LIMIT_S) {
                snprintf(w->err, sizeof w->err, "HTTP write: %s, status %ld",
                         curl_easy_strerror(cc), code);
                goto done;
            }
        } else {
            grpc_slice resp = grpc_empty_slice();
            grpc_status_code st = grpc_unary(c->ch, c->cq, WRITE_METHOD, grpc_slice_ref(s),
                                             timeout_s, md_flags, &resp, w->err, sizeof w->err);
            if (st == GRPC_STATUS_OK) {
                Ingot__Write__V1__WriteResponse *wr = ingot__write__v1__write_response__unpack(
                    NULL, GRPC_SLICE_LENGTH(resp), GRPC_SLICE_START_PTR(resp));
                grpc_slice_unref(resp);
                bool ok = wr && wr->rows == r->rows;
                if (!ok)
                    snprintf(w->err, sizeof w->err, "WriteResponse.rows %" PRIu64 ", expected %u",
                             wr ? wr->rows : 0, r->rows);
                if (wr) ingot__write__v1__write_response__free_unpacked(wr, NULL);
                if (!ok) goto done;
                break;
            }
            if (!retryable_grpc(st) || bench_now_s() - t0 > RETRY_LIMIT_S) goto done;
        }
        w->retries++;
        usleep(20000);
    }
    if (w->latency_count == w->latency_cap) {
        size_t cap = w->latency_cap ? w->latency_cap * 2 : 1024;
        double *n = realloc(w->latency_s, cap * sizeof *n);
        if (!n) {
            snprintf(w->err, sizeof w->err, "out of memory");
            goto done;
        }
        w->latency_s = n;
        w->latency_cap = cap;
    }
    w->latency_s[w->latency_count++] = bench_now_s() - t0;
    atomic_fetch_add(&ph->rows_acked, r->rows);
    rv = 0;
done:
    grpc_slice_unref(s);
    return rv;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    phase *ph = w->ph;
    writer_conn c = {0};
    columnar_scratch scratch = {0};
    bool ready = false;
    if (ph->mode == MODE_LP_HTTP) {
        c.curl = curl_easy_init();
        c.headers = curl_slist_append(NULL, "Content-Type: text/plain; charset=utf-8");
        if (c.headers) c.headers = curl_slist_append(c.headers, "Expect:");
        if (!c.curl || !c.headers) {
            snprintf(w->err, sizeof w->err, "curl init failed");
            goto gate;
        }
        curl_easy_setopt(c.curl, CURLOPT_URL, ph->srv->http_url);
        curl_easy_setopt(c.curl, CURLOPT_HTTPHEADER, c.headers);
        curl_easy_setopt(c.curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c.curl, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, discard_body);
    } else {
        c.ch = channel_open(ph->srv->grpc_target);
        c.cq = grpc_completion_queue_create_for_pluck(NULL);
        if (!ph->reqs && columnar_scratch_init(&scratch, ph->o->batch_rows) != 0) {
            snprintf(w->err, sizeof w->err, "out of memory");
            goto gate;
        }
    }
    /* Warm-up: connect and create the schema; row 0 again is an upsert, not a new row. */
    ready = send_write(w, &c, &ph->warmup, false, 60, GRPC_INITIAL_METADATA_WAIT_FOR_READY) == 0;
    w->latency_count = 0;
    atomic_fetch_sub(&ph->rows_acked, ready ? ph->warmup.rows : 0);
gate:
    if (!ready) atomic_store(&ph->failed, 1);
    pthread_mutex_lock(&ph->gate_lock);
    ph->ready++;
    pthread_cond_broadcast(&ph->gate_cond);
    while (!ph->go) pthread_cond_wait(&ph->gate_cond, &ph->gate_lock);
    pthread_mutex_unlock(&ph->gate_lock);
    while (ready && !atomic_load(&ph->failed)) {
        size_t i = atomic_fetch_add(&ph->next, 1);
        int rc;
        if (ph->reqs) {
            if (i >= ph->count) break;
            rc = send_write(w, &c, &ph->reqs[i], false, 120, 0);
        } else {
            uint64_t first = (uint64_t)i * ph->o->batch_rows;
            if (first >= ph->first_rows) break;
            uint64_t left = ph->first_rows - first;
            request r = {.rows = (uint32_t)(left < ph->o->batch_rows ? left : ph->o->batch_rows)};
            r.data = encode_columnar_request(ph->ds, &scratch, first, r.rows, &r.len);
            rc = r.data ? send_write(w, &c, &r, true, 120, 0) : -1;
            if (!r.data) snprintf(w->err, sizeof w->err, "out of memory");
        }
        if (rc != 0) {
            w->failed = 1;
            atomic_store(&ph->failed, 1);
        }
    }
    if (!ready) w->failed = 1;
    columnar_scratch_free(&scratch);
    if (c.curl) curl_easy_cleanup(c.curl);
    curl_slist_free_all(c.headers);
    if (c.ch) grpc_channel_destroy(c.ch);
    if (c.cq) {
        grpc_completion_queue_shutdown(c.cq);
        while (grpc_completion_queue_pluck(c.cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(c.cq);
    }
    return NULL;
}

typedef struct phase_result {
    double seconds, server_cpu_s, client_cpu_s;
    uint64_t rows, retries;
    double *latency_s; /* all requests, malloc'd */
    size_t latency_count;
} phase_result;

/* Run the writers of ph against a started server; fills res. Returns 0 or -1. */
static int run_phase(phase *ph, phase_result *res)
{
    unsigned n = ph->o->writers;
    writer *ws = calloc(n, sizeof *ws);
    int rv = -1;
    unsigned started = 0;
    memset(res, 0, sizeof *res);
    if (!ws) return -1;
    atomic_init(&ph->next, 0);
    atomic_init(&ph->rows_acked, 0);
    atomic_init(&ph->failed, 0);
    pthread_mutex_init(&ph->gate_lock, NULL);
    pthread_cond_init(&ph->gate_cond, NULL);
    ph->ready = 0;
    ph->go = false;
    for (; started < n; started++) {
        ws[started].ph = ph;
        if (pthread_create(&ws[started].thread, NULL, writer_main, &ws[started]) != 0) {
            fprintf(stderr, "bench_grpc: pthread_create failed\n");
            atomic_store(&ph->failed, 1);
            break;
        }
    }
    pthread_mutex_lock(&ph->gate_lock);
    while (ph->ready < started) pthread_cond_wait(&ph->gate_cond, &ph->gate_lock);
    double cpu_srv0 = server_cpu_s(ph->srv), cpu_cli0 = self_cpu_s(), t0 = bench_now_s();
    ph->go = true;
    pthread_cond_broadcast(&ph->gate_cond);
    pthread_mutex_unlock(&ph->gate_lock);
    for (unsigned i = 0; i < started; i++) pthread_join(ws[i].thread, NULL);
    res->seconds = bench_now_s() - t0;
    res->server_cpu_s = server_cpu_s(ph->srv) - cpu_srv0;
    res->client_cpu_s = self_cpu_s() - cpu_cli0;
    res->rows = atomic_load(&ph->rows_acked);
    pthread_cond_destroy(&ph->gate_cond);
    pthread_mutex_destroy(&ph->gate_lock);
    size_t total = 0;
    for (unsigned i = 0; i < started; i++) {
        total += ws[i].latency_count;
        res->retries += ws[i].retries;
        if (ws[i].failed) fprintf(stderr, "bench_grpc: %s writer %u: %s\n", mode_names[ph->mode], i,
                                  ws[i].err);
    }
    res->latency_s = malloc((total ? total : 1) * sizeof(double));
    if (!res->latency_s) goto done;
    for (unsigned i = 0; i < started; i++) {
        memcpy(res->latency_s + res->latency_count, ws[i].latency_s,
               ws[i].latency_count * sizeof(double));
        res->latency_count += ws[i].latency_count;
    }
    rv = atomic_load(&ph->failed) ? -1 : 0;
done:
    for (unsigned i = 0; i < n; i++) free(ws[i].latency_s);
    free(ws);
    return rv;
}

/* Encode rows [0, o->rows) in batches for every mode (the LP requests serve both LP modes). */
static int build_requests(const options *o, const dataset *ds, request_set *lp, request_set *col)
{
    size_t count = (size_t)((o->rows + o->batch_rows - 1) / o->batch_rows);
    columnar_scratch scratch;
    memset(lp, 0, sizeof *lp);
    memset(col, 0, sizeof *col);
    lp->reqs = calloc(count, sizeof *lp->reqs);
    col->reqs = calloc(count, sizeof *col->reqs);
    if (!lp->reqs || !col->reqs || columnar_scratch_init(&scratch, o->batch_rows) != 0) return -1;
    lp->count = col->count = count;
    for (size_t i = 0; i < count; i++) {
        uint64_t first = (uint64_t)i * o->batch_rows, left = o->rows - first;
        uint32_t rows = (uint32_t)(left < o->batch_rows ? left : o->batch_rows);
        request *l = &lp->reqs[i], *c = &col->reqs[i];
        l->rows = c->rows = rows;
        l->data = encode_lp_request(ds, first, rows, &l->len, &l->lp_offset, &l->lp_len);
        c->data = encode_columnar_request(ds, &scratch, first, rows, &c->len);
        if (!l->data || !c->data) {
            columnar_scratch_free(&scratch);
            return -1;
        }
        col->req_bytes[MODE_COLUMNAR] += c->len;
        lp->req_bytes[MODE_LP_GRPC] += l->len;
        lp->req_bytes[MODE_LP_HTTP] += l->lp_len;
    }
    columnar_scratch_free(&scratch);
    return 0;
}

static void request_set_free(request_set *s)
{
    for (size_t i = 0; s->reqs && i < s->count; i++) free(s->reqs[i].data);
    free(s->reqs);
    memset(s, 0, sizeof *s);
}

static uint64_t max_request_len(const request_set *s)
{
    uint64_t m = 0;
    for (size_t i = 0; i < s->count; i++) m = s->reqs[i].len > m ? s->reqs[i].len : m;
    return m;
}

static double quantile(double *sorted, size_t n, double q)
{
    if (n == 0) return 0;
    size_t k = (size_t)ceil(q * (double)n);
    return sorted[k ? k - 1 : 0];
}

/* The index of the median of v[0..n) (n <= 16); *min and *max get the extremes. */
static unsigned median_index(const double *v, unsigned n, double *min, double *max)
{
    unsigned idx[16];
    for (unsigned i = 0; i < n; i++) idx[i] = i;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[idx[j]] < v[idx[j - 1]]; j--) {
            unsigned t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    *min = v[idx[0]];
    *max = v[idx[n - 1]];
    return idx[n / 2];
}

static int write_benchmark(const options *o, const dataset *ds)
{
    request_set lp, col;
    phase_result results[MODE_COUNT][16];
    request warm[MODE_COUNT];
    columnar_scratch scratch;
    size_t warm_len;
    int rv = -1;
    memset(results, 0, sizeof results);
    memset(warm, 0, sizeof warm);
    printf("encoding %" PRIu64 " rows in batches of %u ...\n", o->rows, o->batch_rows);
    fflush(stdout);
    double t0 = bench_now_s();
    if (build_requests(o, ds, &lp, &col) != 0) {
        fprintf(stderr, "bench_grpc: encoding failed\n");
        goto done;
    }
    printf("encoded in %.1f s: columnar %.1f bytes/row, line protocol %.1f bytes/row\n",
           bench_now_s() - t0, (double)col.req_bytes[MODE_COLUMNAR] / (double)o->rows,
           (double)lp.req_bytes[MODE_LP_HTTP] / (double)o->rows);
    uint64_t max_req = max_request_len(&lp) > max_request_len(&col) ? max_request_len(&lp)
                                                                     : max_request_len(&col);
    max_req = max_req * 2 > 10485760 ? max_req * 2 : 10485760;
    if (columnar_scratch_init(&scratch, 1) != 0) goto done;
    warm[MODE_COLUMNAR].data = encode_columnar_request(ds, &scratch, 0, 1, &warm[0].len);
    columnar_scratch_free(&scratch);
    warm[MODE_LP_GRPC].data = encode_lp_request(ds, 0, 1, &warm_len, &warm[1].lp_offset,
                                                &warm[1].lp_len);
    warm[MODE_LP_GRPC].len = warm_len;
    if (!warm[0].data || !warm[1].data) goto done;
    warm[MODE_LP_HTTP] = warm[MODE_LP_GRPC];
    for (int m = 0; m < MODE_COUNT; m++) warm[m].rows = 1;

    for (unsigned run = 0; run < o->runs; run++) {
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!(o->modes & (1u << m))) continue;
            server srv;
            if (server_start(&srv, o, max_req) != 0) goto done;
            phase ph = {.mode = (enum write_mode)m, .o = o, .srv = &srv, .ds = ds,
                        .reqs = m == MODE_COLUMNAR ? col.reqs : lp.reqs, .count = lp.count,
                        .warmup = warm[m]};
            phase_result *r = &results[m][run];
            int prv = run_phase(&ph, r);
            if (prv != 0) print_log_tail(&srv);
            server_stop(&srv);
            if (prv != 0) goto done;
            if (r->rows != o->rows) {
                fprintf(stderr, "bench_grpc: %s acknowledged %" PRIu64 " rows of %" PRIu64 "\n",
                        mode_names[m], r->rows, o->rows);
                goto done;
            }
            printf("run %u %-14s %10.0f rows/s  %6.2f s\n", run + 1, mode_names[m],
                   (double)r->rows / r->seconds, r->seconds);
            fflush(stdout);
        }
    }

    printf("\nwrite: %" PRIu64 " rows, %u writers, %u rows/batch, %u hosts; fresh server per run; "
           "median of %u runs; latency over all requests of all runs\n",
           o->rows, o->writers, o->batch_rows, o->hosts, o->runs);
    printf("%-14s %9s %9s %9s %7s %9s %7s %7s %8s %8s %7s\n", "mode", "rows/s", "min", "max",
           "MB/s", "bytes/row", "p50 ms", "p99 ms", "srv cpu", "cli cpu", "retries");
    double median_rate[MODE_COUNT];
    for (int m = 0; m < MODE_COUNT; m++) {
        median_rate[m] = 0;
        if (!(o->modes & (1u << m))) continue;
        double rates[16] = {0}, lo, hi;
        for (unsigned run = 0; run < o->runs; run++)
            rates[run] = (double)results[m][run].rows / results[m][run].seconds;
        /* the median run (by rows/s) supplies the other per-run columns */
        unsigned mi = median_index(rates, o->runs, &lo, &hi);
        phase_result *med = &results[m][mi];
        median_rate[m] = rates[mi];
        size_t total = 0;
        uint64_t retries = 0;
        for (unsigned run = 0; run < o->runs; run++) {
            total += results[m][run].latency_count;
            retries += results[m][run].retries;
        }
        double *lat = malloc((total ? total : 1) * sizeof *lat);
        if (!lat) goto done;
        size_t k = 0;
        for (unsigned run = 0; run < o->runs; run++) {
            memcpy(lat + k, results[m][run].latency_s,
                   results[m][run].latency_count * sizeof *lat);
            k += results[m][run].latency_count;
        }
        qsort(lat, total, sizeof *lat, bench_cmp_double);
        uint64_t bytes = m == MODE_COLUMNAR ? col.req_bytes[m] : lp.req_bytes[m];
        printf("%-14s %9.0f %9.0f %9.0f %7.1f %9.1f %7.1f %7.1f %7.2fs %7.2fs %7" PRIu64 "\n",
               mode_names[m], median_rate[m], lo, hi, (double)bytes / med->seconds / 1e6,
               (double)bytes / (double)o->rows, quantile(lat, total, 0.50) * 1e3,
               quantile(lat, total, 0.99) * 1e3, med->server_cpu_s, med->client_cpu_s, retries);
        free(lat);
    }
    for (int m = 0; m < MODE_LP_HTTP && median_rate[MODE_LP_HTTP] > 0; m++)
        if (median_rate[m] > 0)
            printf("ratio rows/s %s / LP HTTP: %.2f\n", mode_names[m],
                   median_rate[m] / median_rate[MODE_LP_HTTP]);
    rv = 0;
done:
    for (int m = 0; m < MODE_COUNT; m++)
        for (unsigned run = 0; run < 16; run++) free(results[m][run].latency_s);
    free(warm[MODE_COLUMNAR].data);
    free(warm[MODE_LP_GRPC].data);
    request_set_free(&lp);
    request_set_free(&col);
    return rv;
}

/* ---- Arrow IPC flatbuffer reader ---------------------------------------------------------- */

/*
 * Just enough FlatBuffers to read Arrow's Message: the buffer starts with the root table's
 * uoffset; a table starts with an soffset to its vtable (table - soffset); a vtable is
 * [u16 vtable bytes][u16 table bytes][u16 field offset]*; a field offset of 0 or past the vtable
 * means absent; an offset field holds a uoffset relative to its own position. All little-endian,
 * any alignment (read with memcpy). Returns -1 on any out-of-bounds position.
 */
typedef struct fb_buf {
    const uint8_t *p;
    size_t len;
} fb_buf;

static int fb_read(const fb_buf *b, size_t pos, size_t n, void *out)
{
    if (pos > b->len || n > b->len - pos) return -1;
    memcpy(out, b->p + pos, n);
    return 0;
}

/* Position of field `id` of the table at `table`: 1 and *pos if present, 0 if absent, -1 bad. */
static int fb_field(const fb_buf *b, size_t table, unsigned id, size_t *pos)
{
    int32_t soff;
    uint16_t vt_size, off;
    if (fb_read(b, table, 4, &soff) != 0) return -1;
    int64_t vt = (int64_t)table - soff;
    if (vt < 0 || fb_read(b, (size_t)vt, 2, &vt_size) != 0 || vt_size < 4) return -1;
    if (4 + 2 * (size_t)id + 2 > vt_size) return 0;
    if (fb_read(b, (size_t)vt + 4 + 2 * id, 2, &off) != 0) return -1;
    if (off == 0) return 0;
    *pos = table + off;
    return 1;
}

static int fb_scalar(const fb_buf *b, size_t table, unsigned id, size_t size, void *out)
{
    size_t pos;
    int r = fb_field(b, table, id, &pos);
    if (r <= 0) return r;
    return fb_read(b, pos, size, out) == 0 ? 1 : -1;
}

static int fb_table_ref(const fb_buf *b, size_t table, unsigned id, size_t *target)
{
    size_t pos;
    uint32_t uoff;
    int r = fb_field(b, table, id, &pos);
    if (r <= 0) return r;
    if (fb_read(b, pos, 4, &uoff) != 0 || pos + uoff >= b->len) return -1;
    *target = pos + uoff;
    return 1;
}

enum { ARROW_HEADER_SCHEMA = 1, ARROW_HEADER_DICTIONARY_BATCH = 2, ARROW_HEADER_RECORD_BATCH = 3 };

/* Read Message.header_type, Message.bodyLength and, for a RecordBatch, its length. */
static int arrow_message_read(const uint8_t *p, size_t len, uint8_t *header_type,
                              int64_t *body_length, int64_t *record_rows)
{
    fb_buf b = {p, len};
    uint32_t root;
    size_t header;
    *header_type = 0;
    *body_length = 0;
    *record_rows = 0;
    if (fb_read(&b, 0, 4, &root) != 0 || root >= len) return -1;
    if (fb_scalar(&b, root, 1, 1, header_type) < 0 || fb_scalar(&b, root, 3, 8, body_length) < 0)
        return -1;
    if (*header_type != ARROW_HEADER_RECORD_BATCH) return 0;
    if (fb_table_ref(&b, root, 2, &header) != 1) return -1;
    return fb_scalar(&b, header, 0, 8, record_rows) < 0 ? -1 : 0;
}

/* ---- Flight read ------------------------------------------------------------------------- */

typedef struct flight_result {
    double seconds, server_cpu_s, client_cpu_s;
    uint64_t rows, bytes, messages, partitions, record_batches, dictionary_batches, schemas;
} flight_result;

static int flight_doget(grpc_channel *ch, const server *srv, flight_result *res)
{
    static const char ticket_json[] = "{\"namespace\":\"" NAMESPACE "\",\"table\":\"" TABLE "\"}";
    int rv = -1;
    memset(res, 0, sizeof *res);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    Arrow__Flight__Protocol__Ticket ticket = ARROW__FLIGHT__PROTOCOL__TICKET__INIT;
    ticket.ticket.data = (uint8_t *)ticket_json;
    ticket.ticket.len = sizeof ticket_json - 1;
    uint8_t tbuf[128];
    size_t tlen = arrow__flight__protocol__ticket__pack(&ticket, tbuf);
    grpc_slice ts = grpc_slice_from_copied_buffer((const char *)tbuf, tlen);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&ts, 1), *recv = NULL;
    grpc_slice_unref(ts);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_status_code st = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    double cpu_srv0 = server_cpu_s(srv), cpu_cli0 = self_cpu_s(), t0 = bench_now_s();
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               grpc_slice_from_static_string(DOGET_METHOD), NULL,
                                               deadline_in(1800), NULL);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    bool streaming = call && grpc_call_start_batch(call, ops, 4, (void *)1, NULL) == GRPC_CALL_OK &&
                     cq_wait(cq, (void *)1);
    while (streaming) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &recv;
        if (grpc_call_start_batch(call, &op, 1, (void *)2, NULL) != GRPC_CALL_OK ||
            !cq_wait(cq, (void *)2) || !recv)
            break;
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, recv)) break;
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(recv);
        recv = NULL;
        Arrow__Flight__Protocol__FlightData *fd = arrow__flight__protocol__flight_data__unpack(
            NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
        grpc_slice_unref(all);
        if (!fd) {
            fprintf(stderr, "bench_grpc: message %" PRIu64 ": not a FlightData\n", res->messages);
            goto cancel;
        }
        res->messages++;
        if (fd->data_header.len == 0) {
            if (fd->app_metadata.len == 0 || fd->data_body.len != 0) {
                fprintf(stderr, "bench_grpc: message %" PRIu64 ": FlightData without a header\n",
                        res->messages);
                arrow__flight__protocol__flight_data__free_unpacked(fd, NULL);
                goto cancel;
            }
            res->partitions++;
        } else {
            uint8_t type;
            int64_t body_length, rows;
            if (arrow_message_read(fd->data_header.data, fd->data_header.len, &type, &body_length,
                                   &rows) != 0 ||
                body_length != (int64_t)fd->data_body.len || rows < 0 ||
                type < ARROW_HEADER_SCHEMA || type > ARROW_HEADER_RECORD_BATCH) {
                fprintf(stderr,
                        "bench_grpc: message %" PRIu64 ": bad Arrow Message (type %u, bodyLength "
                        "%" PRId64 ", body %zu bytes)\n",
                        res->messages, (unsigned)type, body_length, fd->data_body.len);
                arrow__flight__protocol__flight_data__free_unpacked(fd, NULL);
                goto cancel;
            }
            res->schemas += type == ARROW_HEADER_SCHEMA;
            res->dictionary_batches += type == ARROW_HEADER_DICTIONARY_BATCH;
            res->record_batches += type == ARROW_HEADER_RECORD_BATCH;
            res->rows += (uint64_t)rows;
        }
        res->bytes += fd->data_header.len + fd->data_body.len;
        arrow__flight__protocol__flight_data__free_unpacked(fd, NULL);
    }
    goto status;
cancel:
    grpc_call_cancel(call, NULL);
status:
    if (call) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        op.data.recv_status_on_client.trailing_metadata = &trail_md;
        op.data.recv_status_on_client.status = &st;
        op.data.recv_status_on_client.status_details = &details;
        if (grpc_call_start_batch(call, &op, 1, (void *)3, NULL) == GRPC_CALL_OK)
            cq_wait(cq, (void *)3);
    }
    res->seconds = bench_now_s() - t0;
    res->server_cpu_s = server_cpu_s(srv) - cpu_srv0;
    res->client_cpu_s = self_cpu_s() - cpu_cli0;
    if (st == GRPC_STATUS_OK) {
        rv = 0;
    } else {
        char err[512];
        status_text(st, details, err, sizeof err);
        fprintf(stderr, "bench_grpc: DoGet: %s\n", err);
    }
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_slice_unref(details);
    if (call) grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return rv;
}

/* MB/s of a single-threaded memcpy of `bytes` bytes through MEMCPY_CHUNK-sized buffers. */
static double memcpy_mbs(uint64_t bytes)
{
    size_t chunk = bytes < MEMCPY_CHUNK ? (size_t)bytes : MEMCPY_CHUNK;
    char *src = malloc(chunk ? chunk : 1), *dst = malloc(chunk ? chunk : 1);
    double mbs = 0;
    if (!src || !dst) goto done;
    memset(src, 0x5A, chunk);
    memset(dst, 0, chunk);
    memcpy(dst, src, chunk); /* warm-up: TLB and caches as in the timed passes */
    double t0 = bench_now_s();
    for (uint64_t left = bytes; left;) {
        size_t n = left < chunk ? (size_t)left : chunk;
        memcpy(dst, src, n);
        __asm__ volatile("" : : "r"(dst) : "memory");
        left -= n;
    }
    double el = bench_now_s() - t0;
    mbs = el > 0 ? (double)bytes / el / 1e6 : 0;
done:
    free(src);
    free(dst);
    return mbs;
}

static int read_benchmark(const options *o, const dataset *ds)
{
    server srv;
    flight_result fr[16];
    double memcpy_runs[16];
    int rv = -1;
    grpc_channel *ch = NULL;
    if (server_start(&srv, o, 10485760 > 4 * 512 * (uint64_t)o->batch_rows
                                  ? 10485760
                                  : 4 * 512 * (uint64_t)o->batch_rows) != 0)
        return -1;
    columnar_scratch scratch;
    if (columnar_scratch_init(&scratch, 1) != 0) goto done;
    request warm = {.rows = 1};
    warm.data = encode_columnar_request(ds, &scratch, 0, 1, &warm.len);
    columnar_scratch_free(&scratch);
    if (!warm.data) goto done;
    phase ph = {.mode = MODE_COLUMNAR, .o = o, .srv = &srv, .ds = ds, .reqs = NULL,
                .first_rows = o->read_rows, .warmup = warm};
    phase_result load;
    printf("\nloading %" PRIu64 " rows for the read (columnar gRPC, %u writers, encoding on the "
           "fly) ...\n", o->read_rows, o->writers);
    fflush(stdout);
    int lrv = run_phase(&ph, &load);
    free(warm.data);
    free(load.latency_s);
    if (lrv != 0 || load.rows != o->read_rows) {
        fprintf(stderr, "bench_grpc: load failed (%" PRIu64 " rows acknowledged)\n", load.rows);
        print_log_tail(&srv);
        goto done;
    }
    printf("loaded in %.1f s (%.0f rows/s incl. client encoding); server RSS %.0f MiB\n",
           load.seconds, (double)load.rows / load.seconds, server_rss_mib(&srv));
    ch = channel_open(srv.grpc_target);
    for (unsigned run = 0; run < o->runs; run++) {
        if (flight_doget(ch, &srv, &fr[run]) != 0) {
            print_log_tail(&srv);
            goto done;
        }
        if (fr[run].rows != o->read_rows) {
            fprintf(stderr, "bench_grpc: DoGet returned %" PRIu64 " rows, %" PRIu64 " written\n",
                    fr[run].rows, o->read_rows);
            goto done;
        }
        printf("run %u DoGet %10.0f rows/s  %6.2f s  %" PRIu64 " bytes\n", run + 1,
               (double)fr[run].rows / fr[run].seconds, fr[run].seconds, fr[run].bytes);
        fflush(stdout);
    }
    grpc_channel_destroy(ch);
    ch = NULL;
    double rss = server_rss_mib(&srv);
    server_stop(&srv);
    double rates[16], lo, hi, cpy_lo, cpy_hi;
    for (unsigned run = 0; run < o->runs; run++) {
        rates[run] = (double)fr[run].rows / fr[run].seconds;
        memcpy_runs[run] = memcpy_mbs(fr[run].bytes);
    }
    flight_result *m = &fr[median_index(rates, o->runs, &lo, &hi)];
    double mbs = (double)m->bytes / m->seconds / 1e6;
    double cpy = memcpy_runs[median_index(memcpy_runs, o->runs, &cpy_lo, &cpy_hi)];
    printf("\nread: Flight DoGet of %" PRIu64 " rows (%" PRIu64 " partitions, %" PRIu64
           " schemas, %" PRIu64 " dictionary batches, %" PRIu64 " record batches, %.1f bytes/row); "
           "median of %u runs; server RSS %.0f MiB after\n",
           m->rows, m->partitions, m->schemas, m->dictionary_batches, m->record_batches,
           (double)m->bytes / (double)m->rows, o->runs, rss);
    printf("%-14s %9s %9s %9s %7s %7s %8s %8s %11s %9s\n", "", "rows/s", "min", "max", "MB/s",
           "s", "srv cpu", "cli cpu", "memcpy MB/s", "of memcpy");
    printf("%-14s %9.0f %9.0f %9.0f %7.1f %7.2f %7.2fs %7.2fs %11.0f %8.2f%%\n", "Flight DoGet",
           rates[median_index(rates, o->runs, &lo, &hi)], lo, hi, mbs, m->seconds,
           m->server_cpu_s, m->client_cpu_s, cpy, cpy > 0 ? 100.0 * mbs / cpy : 0.0);
    rv = 0;
done:
    if (ch) grpc_channel_destroy(ch);
    server_stop(&srv);
    return rv;
}

/* ---- main -------------------------------------------------------------------------------- */

static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max) return -1;
    *out = v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_grpc [-n ROWS] [-c WRITERS] [-b BATCH] [-r READ_ROWS] "
                    "[-H HOSTS] [-k RUNS] [-m columnar,lp-grpc,lp-http] [INGOT_BIN]\n");
}

/* A comma-separated list of write modes -> bit set, or 0 if a name is unknown. */
static unsigned parse_modes(const char *list)
{
    static const char *keys[MODE_COUNT] = {"columnar", "lp-grpc", "lp-http"};
    unsigned bits = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int m = 0;
        while (m < MODE_COUNT && (strlen(keys[m]) != n || strncmp(p, keys[m], n) != 0)) m++;
        if (m == MODE_COUNT) return 0;
        bits |= 1u << m;
        p += n + (p[n] == ',');
    }
    return bits;
}

int main(int argc, char **argv)
{
    options o = {.rows = 2000000, .read_rows = 10000000, .writers = 8, .batch_rows = 5000,
                 .hosts = 1000, .runs = 3, .modes = (1u << MODE_COUNT) - 1};
    const char *env_bin = getenv("INGOT_BIN"), *tmp = getenv("TMPDIR");
    o.ingot_bin = env_bin && *env_bin ? env_bin : "build/ingot";
    o.tmp_root = tmp && *tmp ? tmp : "/tmp";
    int opt;
    while ((opt = getopt(argc, argv, "n:c:b:r:H:k:m:h")) != -1) {
        uint64_t v;
        int bad = 0;
        switch (opt) {
        case 'n': bad = parse_count(optarg, UINT64_MAX / 2, &o.rows); break;
        case 'r': bad = parse_count(optarg, UINT64_MAX / 2, &o.read_rows); break;
        case 'c': bad = parse_count(optarg, 256, &v) || v == 0, o.writers = (unsigned)v; break;
        case 'b': bad = parse_count(optarg, 1000000, &v) || v == 0, o.batch_rows = (unsigned)v; break;
        case 'H': bad = parse_count(optarg, 10000000, &v) || v == 0, o.hosts = (unsigned)v; break;
        case 'k': bad = parse_count(optarg, 15, &v) || v == 0, o.runs = (unsigned)v; break;
        case 'm': bad = (o.modes = parse_modes(optarg)) == 0; break;
        default: bad = 1;
        }
        if (bad) {
            usage();
            return 2;
        }
    }
    if (optind < argc) o.ingot_bin = argv[optind++];
    if (optind < argc) {
        usage();
        return 2;
    }
    if (access(o.ingot_bin, X_OK) != 0) {
        fprintf(stderr, "bench_grpc: %s: %s\n", o.ingot_bin, strerror(errno));
        return 1;
    }
    dataset ds;
    if (dataset_init(&ds, o.hosts) != 0) {
        fprintf(stderr, "bench_grpc: out of memory\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    grpc_init();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_grpc: %s; %ld cores; dataset TSBS cpu: %u hosts, 10 tags, 5 f64 + 5 i64 fields, "
           "1 s apart per host from 2026-01-01\n",
           o.ingot_bin, cores, o.hosts);
    int rv = 0;
    if (o.rows && write_benchmark(&o, &ds) != 0) rv = 1;
    if (rv == 0 && o.read_rows && read_benchmark(&o, &ds) != 0) rv = 1;
    grpc_shutdown();
    curl_global_cleanup();
    dataset_free(&ds);
    if (rv) fprintf(stderr, "bench_grpc: failed\n");
    return rv;
}
