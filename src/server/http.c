/*
 * http.c: the HTTP/1.1 front end on libmicrohttpd (MHD).
 *
 * Threading: MHD runs one thread per connection (plus its listening thread). A write request is
 * handled on its connection's thread from parse to acknowledgement; the thread waits inside the
 * WAL's group commit, so many concurrent writers share one fdatasync. Once its body is complete,
 * a write takes one of the ingester's --max-concurrent-writes slots for its parse, commit and
 * apply (503 + Retry-After after 10 s without one), so the parsed batches in flight do not grow
 * with the connections. Not before the body: a client trickling its body would hold a slot.
 * Bodies waiting for a slot are bounded by memory instead (--max-body-memory, a
 * util/fifo_gate.h in bytes): a plain body whose Content-Length would take the bodies held past
 * it waits, first come first served, before a byte of it is read (503 after 10 s), so with more
 * connections than slots the excess bodies wait in the kernel's socket buffers, not in ours (at
 * 32 connections of 1.75 MB bodies, 9 held instead of 32). A body of unknown length (chunked,
 * gzip) never waits: it is counted as it grows. A body over the whole budget is read once nothing
 * else is held.
 * Body buffers of finished writes are kept for the next ones (spare_bodies: at most
 * HTTP_SPARE_BODIES, HTTP_SPARE_BODY_TOTAL bytes together): no fresh pages per request. Nothing
 * else here is shared between requests but the counters (atomics) and the ingester
 * (thread-safe).
 *
 * Request bodies: MHD hands the body over in pieces; http_body.c appends them (or, with
 * `Content-Encoding: gzip`, inflates them piece by piece) into one buffer per request, never more
 * than --max-request-bytes of it: past the limit the rest is read and dropped and the answer is
 * 413, also for a small gzip body that inflates big. A Content-Length over the limit is refused
 * before the body is read. Chunked bodies (no Content-Length) work the same way.
 *
 * Errors are JSON: {"code":"…","message":"…"} (+ "line" for line protocol) on v1/v2 and the
 * other endpoints; InfluxDB 3's {"error":"…","data":…} on /api/v3/write_lp.
 *
 * Hostile clients. Headers: MHD keeps a request's headers in a per-connection pool of
 * HTTP_CONNECTION_POOL_BYTES (beyond it MHD answers 431 itself; the pool is also the
 * connection's read buffer, so an uploading connection touches all of it: at 512 KiB, 32 writers
 * held 16 MiB in pools); ours are cut lower, at HTTP_MAX_HEADER_FIELDS fields or
 * HTTP_MAX_HEADER_BYTES bytes (431, JSON). A query parameter with a NUL byte (%00) is refused
 * (400): MHD hands parameters over as C strings, which would silently cut "db=a%00b" to "a".
 * Connections: at most --http-max-connections (MHD closes the ones beyond at once). Slow
 * clients: MHD closes a connection idle for --http-idle-timeout (default 30 s), but a
 * client that trickles a byte a second is never idle (slowloris), so a watchdog thread also gives
 * each request's headers that long to arrive, counted from the connection's start or the end of
 * the previous request on it; past it the connection gets a 408 and is shut down. The watchdog
 * knows the connections through MHD's connection notifications: a conn_watch per connection in
 * a list under watch_lock. It touches a socket only under that lock and only while the
 * connection is in the list; MHD removes it (NOTIFY_CLOSED) before it closes the socket, so the
 * watchdog never shuts down a descriptor that was reused. Who closes a connection waiting for
 * headers is decided by one compare-and-swap on its state: the watchdog (HEADERS -> EXPIRED) or
 * the first call of its request (HEADERS -> REQUEST), never both.
 *
 * Reads stream: the response is produced by a pull callback that takes one partition at a time
 * from the query stream and encodes it (query_text.h, or arrow_ipc.h for format=arrow) at the
 * socket's pace.
 */
#include "server/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "query/arrow_ipc.h"
#include "query/query_text.h"
#include "server/http_body.h"
#include "server/server_addr.h"
#include "util/clock.h"
#include "util/fifo_gate.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

enum endpoint {
    EP_WRITE_V2,
    EP_WRITE_V1,
    EP_WRITE_V3,
    EP_QUERY,
    EP_HEALTH,
    EP_READY,
    EP_METRICS,
    EP_PING,
    EP_OTHER,
    EP_COUNT
};

static const struct {
    const char *path;
    const char *method;
} routes[EP_COUNT] = {
    [EP_WRITE_V2] = {"/api/v2/write", "POST"},   [EP_WRITE_V1] = {"/write", "POST"},
    [EP_WRITE_V3] = {"/api/v3/write_lp", "POST"}, [EP_QUERY] = {"/api/v1/query_table", "GET"},
    [EP_HEALTH] = {"/health", "GET"},            [EP_READY] = {"/ready", "GET"},
    [EP_METRICS] = {"/metrics", "GET"},          [EP_PING] = {"/ping", "GET"},
    [EP_OTHER] = {"other", NULL},
};

static const unsigned counted_status[] = {200, 204, 400, 401, 404, 405, 413, 431, 500, 503, 0};
#define STATUS_SLOTS (sizeof counted_status / sizeof counted_status[0])

#define HTTP_MAX_HEADER_FIELDS 100
#define HTTP_MAX_HEADER_BYTES (32 * 1024) /* names + values + 4 bytes of framing per field */
/* Write bodies' buffers kept for reuse: at most this many, of at most this capacity together. */
#define HTTP_SPARE_BODIES 16
#define HTTP_SPARE_BODY_TOTAL ((size_t)32 << 20)
#define HTTP_CONNECTION_POOL_BYTES (128 * 1024)
#define HTTP_IDLE_TIMEOUT_DEFAULT_S 30
#define HTTP_WATCH_TICK_MS 200

enum watch_state { WATCH_HEADERS, WATCH_REQUEST, WATCH_EXPIRED };

/* One open connection (MHD's socket context), for the header deadline. */
typedef struct conn_watch {
    struct conn_watch *prev, *next; /* in http_server.watch_head; guarded by watch_lock */
    int fd;                         /* the socket; valid while in the list */
    atomic_int_fast64_t wait_since_ms; /* when the wait for the current request's headers began */
    atomic_int state;               /* enum watch_state */
} conn_watch;

struct http_server {
    struct MHD_Daemon *daemon;
    ingester *ing;
    uint64_t max_request_bytes;
    char *auth_token;
    atomic_long requests_active; /* requests between their first call and completion */
    atomic_uint_fast64_t requests[EP_COUNT][STATUS_SLOTS];
    atomic_uint_fast64_t headers_timed_out; /* connections closed by the header deadline */
    void (*more_metrics)(void *arg, strbuf *out);
    void *more_metrics_arg;
    int64_t idle_timeout_ms;     /* immutable after start */
    pthread_mutex_t watch_lock;  /* guards watch_head and the list links, watch_stop */
    pthread_cond_t watch_wake;   /* signalled to stop the watchdog */
    conn_watch *watch_head;
    bool watch_stop;
    bool watch_started;          /* the watchdog thread exists (start/stop thread only) */
    pthread_t watch_thread;
    pthread_mutex_t spare_lock;  /* guards the spare bodies */
    strbuf spare_bodies[HTTP_SPARE_BODIES]; /* buffers of finished write bodies, for the next */
    size_t spare_body_count;
    size_t spare_body_bytes;     /* spare_lock: their capacities together */
    fifo_gate body_memory;       /* bytes of the request bodies held (--max-body-memory) */
};

/* Per-request state (MHD's con_cls), freed by on_completed. */
typedef struct request {
    http_server *srv;
    enum endpoint ep;
    unsigned status;      /* the status answered, for the counters */
    http_body body;       /* POST: the body (inflated), with the size limit */
    uint64_t body_held;   /* bytes of srv->body_memory this request holds */
    bool answered;        /* a response was queued */
} request;

/* --- responses ---------------------------------------------------------------------------- */

static void count(http_server *srv, enum endpoint ep, unsigned status)
{
    size_t slot = STATUS_SLOTS - 1;
    for (size_t i = 0; i + 1 < STATUS_SLOTS; i++)
        if (counted_status[i] == status) slot = i;
    atomic_fetch_add(&srv->requests[ep][slot], 1);
}

static enum MHD_Result respond(struct MHD_Connection *conn, request *rq, unsigned status,
                               const char *content_type, strbuf *body, unsigned retry_after_s)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body ? body->len : 0, body ? body->data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    if (content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    if (retry_after_s) {
        char v[16];
        snprintf(v, sizeof v, "%u", retry_after_s);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    MHD_add_response_header(resp, "X-Ingot-Version", "0.1");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    rq->status = status;
    rq->answered = true;
    return r;
}

/* A JSON error in the shape of the request's endpoint. */
static enum MHD_Result respond_error(struct MHD_Connection *conn, request *rq, unsigned status,
                                     const char *code, const char *message, unsigned retry_after_s)
{
    strbuf b = {0};
    if (rq->ep == EP_WRITE_V3) {
        strbuf_puts(&b, "{\"error\":");
        json_put_string(&b, message, strlen(message));
        strbuf_puts(&b, ",\"data\":null}");
    } else {
        strbuf_puts(&b, "{\"code\":");
        json_put_string(&b, code, strlen(code));
        strbuf_puts(&b, ",\"message\":");
        json_put_string(&b, message, strlen(message));
        strbuf_putc(&b, '}');
    }
    enum MHD_Result r = strbuf_failed(&b)
                            ? MHD_NO
                            : respond(conn, rq, status, "application/json", &b, retry_after_s);
    strbuf_free(&b);
    return r;
}

/* --- authentication ----------------------------------------------------------------------- */

static bool equal_constant_time(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++) diff |= (unsigned char)(a[i] ^ (i < blen ? b[i] : 0));
    return diff == 0;
}

static bool authorized(http_server *srv, struct MHD_Connection *conn, enum endpoint ep)
{
    if (!srv->auth_token || ep == EP_HEALTH) return true;
    size_t tlen = strlen(srv->auth_token);
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (h) {
        const char *cred = NULL;
        if (!strncasecmp(h, "Token ", 6)) cred = h + 6;
        else if (!strncasecmp(h, "Bearer ", 7)) cred = h + 7;
        if (cred && equal_constant_time(cred, strlen(cred), srv->auth_token, tlen)) return true;
    }
    /* InfluxDB 1.x clients send the token as the password parameter. */
    const char *p = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "p");
    return ep == EP_WRITE_V1 && p && equal_constant_time(p, strlen(p), srv->auth_token, tlen);
}

/* --- writes ------------------------------------------------------------------------------- */

static const char *arg(struct MHD_Connection *conn, const char *name)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

static bool arg_bool(struct MHD_Connection *conn, const char *name, bool dflt, bool *ok)
{
    const char *v = arg(conn, name);
    if (!v) return dflt;
    if (!strcmp(v, "true") || !strcmp(v, "1")) return true;
    if (!strcmp(v, "false") || !strcmp(v, "0")) return false;
    *ok = false;
    return dflt;
}

/* "line 3, column 17: invalid field value" for each bad line, up to 100. */
static enum MHD_Result respond_line_errors(struct MHD_Connection *conn, request *rq,
                                           const ingester_write_request *wr,
                                           const ingester_write_result *res, bool partial_applied)
{
    const lp_batch *b = &res->batch;
    strbuf out = {0};
    if (rq->ep == EP_WRITE_V3) {
        strbuf_puts(&out, partial_applied ? "{\"error\":\"partial write of line protocol occurred\""
                                          : "{\"error\":\"parsing failed for write_lp endpoint\"");
        strbuf_puts(&out, ",\"data\":[");
        for (size_t i = 0; i < b->error_count; i++) {
            const lp_error *e = &b->errors[i];
            strbuf_puts(&out, i ? ",{\"error_message\":" : "{\"error_message\":");
            json_put_string(&out, e->message, strlen(e->message));
            strbuf_printf(&out, ",\"line_number\":%u,\"original_line\":", e->line_number);
            json_put_string(&out, e->line_text, e->line_len);
            strbuf_putc(&out, '}');
        }
        strbuf_puts(&out, "]}");
    } else {
        strbuf msg = {0};
        ingester_describe_bad_rows(wr, res, &msg);
        strbuf_printf(&out, "{\"code\":\"invalid\",\"line\":%u,\"message\":",
                      b->error_count ? b->errors[0].line_number : 0);
        json_put_string(&out, msg.data ? msg.data : "", msg.len);
        strbuf_putc(&out, '}');
        strbuf_free(&msg);
    }
    enum MHD_Result r = strbuf_failed(&out) ? MHD_NO
                                            : respond(conn, rq, 400, "application/json", &out, 0);
    strbuf_free(&out);
    return r;
}

/* The answer to a body that failed (http_body_finish's code). */
static enum MHD_Result respond_body_failure(struct MHD_Connection *conn, request *rq, int failure)
{
    if (failure == INGOT_E_TOO_LARGE) {
        char m[128];
        snprintf(m, sizeof m, "request body exceeds the limit of %llu bytes (--max-request-bytes)",
                 (unsigned long long)rq->srv->max_request_bytes);
        return respond_error(conn, rq, 413, "request too large", m, 0);
    }
    if (failure == INGOT_E_INVALID)
        return respond_error(conn, rq, 400, "invalid", "the gzip request body is not valid", 0);
    return respond_error(conn, rq, 503, "unavailable", "out of memory", 1);
}

static enum MHD_Result handle_write(struct MHD_Connection *conn, request *rq)
{
    int failure = http_body_finish(&rq->body);
    if (failure != 0) return respond_body_failure(conn, rq, failure);

    ingester_write_request wr = {.body = rq->body.data.data ? rq->body.data.data : "",
                                 .body_len = rq->body.data.len,
                                 .precision = LP_PRECISION_NS,
                                 .durability = DML_DURABILITY_SYNCED};
    const char *precision = arg(conn, "precision");
    bool ok = true;
    switch (rq->ep) {
    case EP_WRITE_V2:
        wr.namespace_name = arg(conn, "bucket");
        break;
    case EP_WRITE_V1:
        wr.namespace_name = arg(conn, "db");
        break;
    default:
        wr.namespace_name = arg(conn, "db");
        wr.precision = LP_PRECISION_AUTO;
        wr.partial_ok = arg_bool(conn, "accept_partial", true, &ok);
        if (arg_bool(conn, "no_sync", false, &ok)) wr.durability = DML_DURABILITY_WRITTEN;
        break;
    }
    if (!ok)
        return respond_error(conn, rq, 400, "invalid",
                             "accept_partial and no_sync take true or false", 0);
    if (!wr.namespace_name)
        return respond_error(conn, rq, 400, "invalid",
                             rq->ep == EP_WRITE_V2 ? "missing the bucket parameter"
                                                   : "missing the db parameter",
                             0);
    if (precision && (lp_precision_parse(precision, &wr.precision) != 0 ||
                      (wr.precision == LP_PRECISION_AUTO && rq->ep != EP_WRITE_V3))) {
        char m[160];
        snprintf(m, sizeof m, "invalid precision '%.60s'", precision);
        return respond_error(conn, rq, 400, "invalid", m, 0);
    }

    /* a write slot once the body is here: a client that sends its body slowly never holds one */
    int admit = ingester_write_admit(rq->srv->ing, INGESTER_WRITE_ADMIT_TIMEOUT_MS);
    if (admit == INGOT_E_BUSY)
        return respond_error(conn, rq, 503, "unavailable",
                             "too many writes in flight (--max-concurrent-writes): no slot came "
                             "free within 10 s; retry later", 1);
    if (admit != 0) return respond_error(conn, rq, 503, "unavailable", "ingot is shutting down", 5);
    ingester_write_result res;
    int rv = ingester_write(rq->srv->ing, &wr, &res);
    ingester_write_release(rq->srv->ing);
    enum MHD_Result r;
    if (rv == 0 && res.batch.bad_line_count == 0) r = respond(conn, rq, 204, NULL, NULL, 0);
    else if (rv == 0 || (rv == INGOT_E_INVALID && res.batch.bad_line_count > 0))
        r = respond_line_errors(conn, rq, &wr, &res, rv == 0 && res.lines_written > 0);
    else if (rv == INGOT_E_INVALID) r = respond_error(conn, rq, 400, "invalid", res.message, 0);
    else if (rv == INGOT_E_BUSY) /* persist backlog or disk full: retry soon */
        r = respond_error(conn, rq, 503, "unavailable", res.message, 1);
    else if (rv == INGOT_E_SHUTTING_DOWN || rv == INGOT_E_NOMEM)
        r = respond_error(conn, rq, 503, "unavailable", res.message, 5);
    else if (rv == INGOT_E_CATALOG) /* the catalog failed (I/O, connection): nothing applied */
        r = respond_error(conn, rq, 503, "unavailable", res.message, 1);
    else if (rv == INGOT_E_WAL_FAILED) /* sticky until an operator restarts ingot */
        r = respond_error(conn, rq, 503, "unavailable", res.message, 30);
    else r = respond_error(conn, rq, 500, "internal error", res.message, 0);
    ingester_write_result_free(&res);
    return r;
}

/* --- reads -------------------------------------------------------------------------------- */

typedef struct read_stream {
    query_stream *stream;
    query_batch *batch; /* the partition being encoded */
    size_t row;
    bool arrow;           /* format=arrow: an Arrow IPC stream instead of text */
    arrow_ipc_writer *ipc; /* format=arrow: created with the first batch (its schema) */
    query_text_encoder enc;
    strbuf out;         /* encoded bytes not yet handed to MHD */
    size_t out_pos;
    bool ended;         /* the stream has no more batches; the trailer is in out */
    char **columns;     /* the projection (owned) */
} read_stream;

static void read_stream_free(void *cls)
{
    read_stream *rs = cls;
    if (rs->batch) query_batch_free(rs->batch);
    if (rs->stream) query_stream_close(rs->stream);
    query_text_encoder_free(&rs->enc);
    arrow_ipc_writer_free(rs->ipc);
    strbuf_free(&rs->out);
    if (rs->columns)
        for (char **c = rs->columns; *c; c++) free(*c);
    free(rs->columns);
    free(rs);
}

/* format=arrow: the schema comes with the first batch, then each batch's dictionaries + rows. */
static int arrow_batch(read_stream *rs, const query_batch *b)
{
    int rv = 0;
    if (!rs->ipc && (rv = arrow_ipc_writer_new(b, &rs->ipc)) == 0)
        rv = arrow_ipc_write_schema(rs->ipc, &rs->out);
    return rv ? rv : arrow_ipc_write_batch(rs->ipc, b, &rs->out);
}

/* format=arrow at the end: a stream with no batch still has a schema (of no columns). */
static int arrow_end(read_stream *rs)
{
    if (!rs->ipc) {
        query_batch none = {.partition_key = ""};
        int rv = arrow_ipc_writer_new(&none, &rs->ipc);
        if (rv == 0) rv = arrow_ipc_write_schema(rs->ipc, &rs->out);
        if (rv != 0) return rv;
    }
    arrow_ipc_write_end(&rs->out);
    return 0;
}

/* MHD pulls the response: refill `out` from the stream, one partition at a time. */
static ssize_t read_stream_pull(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    read_stream *rs = cls;
    const size_t soft_limit = 64 * 1024;
    while (rs->out_pos == rs->out.len) {
        if (rs->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        strbuf_reset(&rs->out);
        rs->out_pos = 0;
        while (rs->out.len < soft_limit && !rs->ended) {
            if (!rs->batch) {
                int rv = query_stream_next(rs->stream, &rs->batch);
                if (rv < 0) {
                    log_error("query: reading a partition failed: %s", ingot_strerror(rv));
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                }
                if (rv == 0) {
                    if (rs->arrow ? arrow_end(rs) != 0 : (query_text_end(&rs->enc, &rs->out), 0))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                    rs->ended = true;
                    break;
                }
                rs->row = 0;
            }
            if (rs->arrow) {
                int rv = arrow_batch(rs, rs->batch);
                query_batch_free(rs->batch);
                rs->batch = NULL;
                if (rv != 0) {
                    log_error("query: encoding Arrow IPC failed: %s", ingot_strerror(rv));
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                }
            } else if (query_text_rows(&rs->enc, rs->batch, &rs->row, soft_limit, &rs->out)) {
                query_batch_free(rs->batch);
                rs->batch = NULL;
            }
        }
        if (strbuf_failed(&rs->out)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = rs->out.len - rs->out_pos;
    if (n > max) n = max;
    memcpy(buf, rs->out.data + rs->out_pos, n);
    rs->out_pos += n;
    return (ssize_t)n;
}

static bool parse_time_arg(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

/* Split "a,b,c" into a NULL-terminated array of names. */
static char **split_columns(const char *s, size_t *count)
{
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    char **cols = calloc(n + 1, sizeof *cols);
    if (!cols) return NULL;
    size_t k = 0;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0) {
            if (!(cols[k] = strndup(p, len))) {
                for (size_t i = 0; i < k; i++) free(cols[i]);
                free(cols);
                return NULL;
            }
            k++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    *count = k;
    return cols;
}

static enum MHD_Result handle_query(struct MHD_Connection *conn, request *rq)
{
    const char *db = arg(conn, "db"), *table = arg(conn, "table");
    if (!db || !table) return respond_error(conn, rq, 400, "invalid", "db and table are required", 0);
    enum query_text_format fmt = QUERY_TEXT_JSON;
    const char *f = arg(conn, "format");
    bool arrow = f && !strcmp(f, "arrow");
    if (f && !arrow && query_text_format_parse(f, &fmt) != 0)
        return respond_error(conn, rq, 400, "invalid", "format must be jsonl, json, csv or arrow", 0);
    query_request q = {.namespace_name = db, .table_name = table, .min_time_ns = INT64_MIN,
                       .max_time_ns = INT64_MAX};
    const char *tmin = arg(conn, "min_time"), *tmax = arg(conn, "max_time");
    if ((tmin && !parse_time_arg(tmin, &q.min_time_ns)) || (tmax && !parse_time_arg(tmax, &q.max_time_ns)))
        return respond_error(conn, rq, 400, "invalid",
                             "min_time and max_time are integers (nanoseconds since the epoch)", 0);
    read_stream *rs = calloc(1, sizeof *rs);
    if (!rs) return respond_error(conn, rq, 503, "unavailable", "out of memory", 1);
    const char *cols = arg(conn, "columns");
    if (cols) {
        if (!(rs->columns = split_columns(cols, &q.column_count))) {
            read_stream_free(rs);
            return respond_error(conn, rq, 503, "unavailable", "out of memory", 1);
        }
        q.columns = (const char *const *)rs->columns;
    }
    char err[256] = "";
    int rv = ingester_query(rq->srv->ing, &q, &rs->stream, err, sizeof err);
    if (rv != 0) {
        read_stream_free(rs);
        if (rv == INGOT_E_NOT_FOUND) return respond_error(conn, rq, 404, "not found", err, 0);
        if (rv == INGOT_E_BUSY) return respond_error(conn, rq, 503, "unavailable", err, 1);
        return respond_error(conn, rq, 500, "internal error", err[0] ? err : ingot_strerror(rv), 0);
    }
    rs->arrow = arrow;
    if (!arrow) query_text_begin(&rs->enc, fmt, &rs->out);
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 64 * 1024, read_stream_pull, rs, read_stream_free);
    if (!resp) {
        read_stream_free(rs);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", arrow ? "application/vnd.apache.arrow.stream"
                                                        : query_text_content_type(fmt));
    enum MHD_Result r = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    rq->status = 200;
    rq->answered = true;
    return r;
}

/* --- health, metrics ---------------------------------------------------------------------- */

static void http_metrics(http_server *srv, strbuf *out)
{
    strbuf_puts(out, "# HELP ingot_http_requests_total HTTP requests by endpoint and status.\n"
                     "# TYPE ingot_http_requests_total counter\n");
    for (int ep = 0; ep < EP_COUNT; ep++)
        for (size_t s = 0; s < STATUS_SLOTS; s++) {
            uint64_t n = atomic_load(&srv->requests[ep][s]);
            if (!n) continue;
            char status[16];
            if (counted_status[s]) snprintf(status, sizeof status, "%u", counted_status[s]);
            else snprintf(status, sizeof status, "other");
            strbuf_printf(out, "ingot_http_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
                          routes[ep].path, status, (unsigned long long)n);
        }
    strbuf_printf(out,
                  "# HELP ingot_http_header_timeouts_total HTTP connections closed because a "
                  "request's headers did not arrive within the idle timeout.\n"
                  "# TYPE ingot_http_header_timeouts_total counter\n"
                  "ingot_http_header_timeouts_total %llu\n"
                  "# HELP ingot_http_body_bytes_held Bytes of request bodies held (--max-body-memory).\n"
                  "# TYPE ingot_http_body_bytes_held gauge\n"
                  "ingot_http_body_bytes_held %llu\n"
                  "# HELP ingot_http_body_waits_total Write requests that waited for room for their body.\n"
                  "# TYPE ingot_http_body_waits_total counter\n"
                  "ingot_http_body_waits_total %llu\n"
                  "# HELP ingot_http_body_timeouts_total Write requests refused with 503 after waiting 10 s for room for their body.\n"
                  "# TYPE ingot_http_body_timeouts_total counter\n"
                  "ingot_http_body_timeouts_total %llu\n",
                  (unsigned long long)atomic_load(&srv->headers_timed_out),
                  (unsigned long long)fifo_gate_held(&srv->body_memory),
                  (unsigned long long)atomic_load(&srv->body_memory.waits),
                  (unsigned long long)atomic_load(&srv->body_memory.timeouts));
}

static enum MHD_Result handle_get(struct MHD_Connection *conn, request *rq)
{
    strbuf b = {0};
    enum MHD_Result r;
    switch (rq->ep) {
    case EP_HEALTH:
        strbuf_puts(&b, "{\"status\":\"pass\"}\n");
        r = respond(conn, rq, 200, "application/json", &b, 0);
        break;
    case EP_READY:
        if (ingester_accepting_writes(rq->srv->ing)) {
            strbuf_puts(&b, "{\"status\":\"ready\"}\n");
            r = respond(conn, rq, 200, "application/json", &b, 0);
        } else {
            r = respond_error(conn, rq, 503, "unavailable", "shutting down", 5);
        }
        break;
    case EP_PING:
        r = respond(conn, rq, 204, NULL, NULL, 0);
        break;
    case EP_METRICS:
        http_metrics(rq->srv, &b);
        if (rq->srv->more_metrics) rq->srv->more_metrics(rq->srv->more_metrics_arg, &b);
        ingester_metrics(rq->srv->ing, &b);
        r = strbuf_failed(&b) ? respond_error(conn, rq, 503, "unavailable", "out of memory", 1)
                              : respond(conn, rq, 200, "text/plain; version=0.0.4", &b, 0);
        break;
    default:
        r = handle_query(conn, rq);
        break;
    }
    strbuf_free(&b);
    return r;
}

/* --- MHD callbacks ------------------------------------------------------------------------ */

static enum endpoint route(const char *url)
{
    for (int ep = 0; ep < EP_OTHER; ep++)
        if (!strcmp(url, routes[ep].path)) return (enum endpoint)ep;
    return EP_OTHER;
}

typedef struct header_tally {
    size_t fields;
    size_t bytes;
} header_tally;

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    header_tally *t = cls;
    t->fields++;
    t->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* Finds a query parameter with a NUL byte (%00) in its name or value: MHD's C strings would cut
 * it short, so "db=a%00b" would silently name the namespace "a". */
static enum MHD_Result find_nul_argument(void *cls, enum MHD_ValueKind kind, const char *key,
                                         size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    const char **bad = cls;
    if (memchr(key, '\0', key_size) || (value && memchr(value, '\0', value_size))) {
        *bad = key;
        return MHD_NO;
    }
    return MHD_YES;
}

/* The first call for a request: headers are known, no body yet. */
static enum MHD_Result begin_request(http_server *srv, struct MHD_Connection *conn, const char *url,
                                     const char *method, request *rq)
{
    rq->srv = srv;
    rq->ep = route(url);
    header_tally t = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, tally_header, &t);
    if (t.fields > HTTP_MAX_HEADER_FIELDS || t.bytes > HTTP_MAX_HEADER_BYTES) {
        char m[160];
        snprintf(m, sizeof m,
                 "%zu header fields of %zu bytes; the limits are %d fields and %d bytes", t.fields,
                 t.bytes, HTTP_MAX_HEADER_FIELDS, HTTP_MAX_HEADER_BYTES);
        return respond_error(conn, rq, 431, "request header fields too large", m, 0);
    }
    const char *nul_arg = NULL;
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, find_nul_argument, &nul_arg);
    if (nul_arg) {
        char m[128];
        snprintf(m, sizeof m, "the query parameter '%.40s' contains a NUL byte", nul_arg);
        return respond_error(conn, rq, 400, "invalid", m, 0);
    }
    if (rq->ep == EP_OTHER) return respond_error(conn, rq, 404, "not found", "no such endpoint", 0);
    if (strcmp(method, routes[rq->ep].method) != 0 &&
        !(rq->ep == EP_PING && !strcmp(method, "HEAD"))) {
        char m[96];
        snprintf(m, sizeof m, "%s takes %s", routes[rq->ep].path, routes[rq->ep].method);
        return respond_error(conn, rq, 405, "method not allowed", m, 0);
    }
    if (!authorized(srv, conn, rq->ep))
        return respond_error(conn, rq, 401, "unauthorized", "missing or wrong token", 0);
    if (strcmp(method, "POST") != 0) return MHD_YES;
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    bool gzip = enc && !strcasecmp(enc, "gzip");
    if (enc && !gzip && strcasecmp(enc, "identity") != 0)
        return respond_error(conn, rq, 400, "invalid", "unsupported Content-Encoding", 0);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    uint64_t expected = cl ? strtoull(cl, NULL, 10) : 0;
    if (!ingester_accepting_writes(srv->ing))
        return respond_error(conn, rq, 503, "unavailable", "ingot is shutting down", 5);
    if (!gzip && expected > 0 && expected <= srv->max_request_bytes) {
        /* room for the body before a byte of it is read (see the header comment) */
        uint64_t want = fifo_gate_fit(&srv->body_memory, expected);
        int rv = fifo_gate_acquire(&srv->body_memory, want, INGESTER_WRITE_ADMIT_TIMEOUT_MS);
        if (rv == INGOT_E_BUSY)
            return respond_error(conn, rq, 503, "unavailable",
                                 "too many request bodies in memory (--max-body-memory): no room "
                                 "came free within 10 s; retry later", 1);
        if (rv != 0) return respond_error(conn, rq, 503, "unavailable", "ingot is shutting down", 5);
        rq->body_held = want;
    }
    strbuf spare = {0};
    pthread_mutex_lock(&srv->spare_lock);
    if (srv->spare_body_count > 0) {
        spare = srv->spare_bodies[--srv->spare_body_count];
        srv->spare_body_bytes -= spare.cap;
    }
    pthread_mutex_unlock(&srv->spare_lock);
    int failure = http_body_init_reusing(&rq->body, &spare, gzip, srv->max_request_bytes, expected);
    /* a plain body announced over the limit: 413 before reading it */
    if (failure != 0) return respond_body_failure(conn, rq, failure);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server *srv = cls;
    request *rq = *con_cls;
    if (!rq) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        conn_watch *w = ci ? ci->socket_context : NULL;
        int expect = WATCH_HEADERS;
        if (w && !atomic_compare_exchange_strong(&w->state, &expect, WATCH_REQUEST))
            return MHD_NO; /* the watchdog timed it out first: close */
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        *con_cls = rq;
        atomic_fetch_add(&srv->requests_active, 1);
        return begin_request(srv, conn, url, method, rq);
    }
    if (rq->answered) { /* answered early (413, 401 ...): drop the rest of the body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        (void)http_body_append(&rq->body, upload_data, *upload_data_size); /* finish reports */
        *upload_data_size = 0;
        if (rq->body.data.len > rq->body_held) { /* a body of unknown length: count it */
            fifo_gate_add(&srv->body_memory, rq->body.data.len - rq->body_held);
            rq->body_held = rq->body.data.len;
        }
        return MHD_YES;
    }
    if (rq->ep == EP_WRITE_V1 || rq->ep == EP_WRITE_V2 || rq->ep == EP_WRITE_V3)
        return handle_write(conn, rq);
    return handle_get(conn, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    http_server *srv = cls;
    request *rq = *con_cls;
    if (!rq) return;
    /* the next request on this connection gets a fresh header deadline */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_watch *w = ci ? ci->socket_context : NULL;
    if (w) {
        atomic_store(&w->wait_since_ms, clock_ns(CLOCK_MONOTONIC) / 1000000);
        int expect = WATCH_REQUEST;
        atomic_compare_exchange_strong(&w->state, &expect, WATCH_HEADERS);
    }
    count(srv, rq->ep, rq->answered ? rq->status : 0);
    strbuf spare = http_body_take_buffer(&rq->body);
    if (spare.cap > 0) {
        pthread_mutex_lock(&srv->spare_lock);
        if (srv->spare_body_count < HTTP_SPARE_BODIES &&
            srv->spare_body_bytes + spare.cap <= HTTP_SPARE_BODY_TOTAL) {
            srv->spare_body_bytes += spare.cap;
            srv->spare_bodies[srv->spare_body_count++] = spare;
            spare = (strbuf){0};
        }
        pthread_mutex_unlock(&srv->spare_lock);
    }
    strbuf_free(&spare);
    http_body_free(&rq->body);
    if (rq->body_held) fifo_gate_release(&srv->body_memory, rq->body_held);
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->requests_active, 1);
}

/* MHD's connection notifications: keep the watch list (see the header comment). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *w = ci ? calloc(1, sizeof *w) : NULL;
        *socket_context = w;
        if (!w) return; /* out of memory: this connection has only MHD's idle timeout */
        w->fd = ci->connect_fd;
        atomic_init(&w->wait_since_ms, clock_ns(CLOCK_MONOTONIC) / 1000000);
        atomic_init(&w->state, WATCH_HEADERS);
        pthread_mutex_lock(&srv->watch_lock);
        w->next = srv->watch_head;
        if (w->next) w->next->prev = w;
        srv->watch_head = w;
        pthread_mutex_unlock(&srv->watch_lock);
        return;
    }
    conn_watch *w = *socket_context; /* MHD_CONNECTION_NOTIFY_CLOSED: the socket is still open */
    if (!w) return;
    pthread_mutex_lock(&srv->watch_lock);
    if (w->prev) w->prev->next = w->next;
    else srv->watch_head = w->next;
    if (w->next) w->next->prev = w->prev;
    pthread_mutex_unlock(&srv->watch_lock);
    free(w);
    *socket_context = NULL;
}

/* The watchdog: every tick, time out the connections whose headers are late. */
static void *watch_main(void *arg)
{
    http_server *srv = arg;
    static const char timeout_response[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                           "Content-Length: 0\r\n\r\n";
    pthread_mutex_lock(&srv->watch_lock);
    while (!srv->watch_stop) {
        int64_t now = clock_ns(CLOCK_MONOTONIC) / 1000000;
        for (conn_watch *w = srv->watch_head; w; w = w->next) {
            if (now - atomic_load(&w->wait_since_ms) <= srv->idle_timeout_ms) continue;
            int expect = WATCH_HEADERS;
            if (!atomic_compare_exchange_strong(&w->state, &expect, WATCH_EXPIRED)) continue;
            /* MHD has not parsed this request and sends nothing on it: the 408 is whole */
            ssize_t sent = send(w->fd, timeout_response, sizeof timeout_response - 1,
                                MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)sent;
            shutdown(w->fd, SHUT_RDWR); /* MHD's thread wakes up, reads EOF and closes */
            atomic_fetch_add(&srv->headers_timed_out, 1);
            log_debug("http: closed a connection whose request headers took over %lld ms",
                      (long long)srv->idle_timeout_ms);
        }
        struct timespec until = clock_deadline_ms(CLOCK_MONOTONIC, HTTP_WATCH_TICK_MS);
        pthread_cond_timedwait(&srv->watch_wake, &srv->watch_lock, &until);
    }
    pthread_mutex_unlock(&srv->watch_lock);
    return NULL;
}

static void watch_stop(http_server *srv)
{
    if (!srv->watch_started) return;
    pthread_mutex_lock(&srv->watch_lock);
    srv->watch_stop = true;
    pthread_cond_signal(&srv->watch_wake);
    pthread_mutex_unlock(&srv->watch_lock);
    pthread_join(srv->watch_thread, NULL);
    srv->watch_started = false;
}

/* Free the server after the daemon stopped (or never started). */
static void server_free(http_server *srv)
{
    watch_stop(srv);
    while (srv->watch_head) { /* MHD notified every close; nothing should be left */
        conn_watch *w = srv->watch_head;
        srv->watch_head = w->next;
        free(w);
    }
    pthread_cond_destroy(&srv->watch_wake);
    pthread_mutex_destroy(&srv->watch_lock);
    for (size_t i = 0; i < srv->spare_body_count; i++) strbuf_free(&srv->spare_bodies[i]);
    pthread_mutex_destroy(&srv->spare_lock);
    fifo_gate_destroy(&srv->body_memory);
    free(srv->auth_token);
    free(srv);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    log_debug("http: %s", line);
}

int http_server_start(const http_options *opts, ingester *ing, http_server **out, char *err,
                      size_t errlen)
{
    struct addrinfo *ai = NULL;
    if (server_resolve_bind(opts->bind, &ai, err, errlen) != 0) return INGOT_E_INVALID;
    int rv = INGOT_E_NOMEM;
    pthread_condattr_t ca;
    http_server *srv = calloc(1, sizeof *srv);
    if (!srv) goto fail_addr;
    srv->ing = ing;
    srv->max_request_bytes = opts->max_request_bytes;
    srv->more_metrics = opts->more_metrics;
    srv->more_metrics_arg = opts->more_metrics_arg;
    unsigned idle_timeout_s = opts->idle_timeout_s ? opts->idle_timeout_s : HTTP_IDLE_TIMEOUT_DEFAULT_S;
    srv->idle_timeout_ms = (int64_t)idle_timeout_s * 1000;
    pthread_mutex_init(&srv->watch_lock, NULL);
    pthread_mutex_init(&srv->spare_lock, NULL);
    fifo_gate_init(&srv->body_memory, opts->max_body_memory);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->watch_wake, &ca);
    pthread_condattr_destroy(&ca);
    if (opts->auth_token && !(srv->auth_token = strdup(opts->auth_token))) goto fail;
    if (pthread_create(&srv->watch_thread, NULL, watch_main, srv) != 0) goto fail;
    srv->watch_started = true;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(ai->ai_family == AF_INET6
                              ? ((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_port
                              : ((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_port);
    srv->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_CONNECTION_POOL_BYTES, MHD_OPTION_CONNECTION_LIMIT, (unsigned)opts->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not available)", opts->bind);
        rv = INGOT_E_INVALID;
        goto fail;
    }
    freeaddrinfo(ai);
    *out = srv;
    return 0;
fail:
    server_free(srv);
fail_addr:
    freeaddrinfo(ai);
    return rv;
}

void http_server_stop(http_server *srv, unsigned grace_ms)
{
    if (!srv) return;
    MHD_socket listen_fd = MHD_quiesce_daemon(srv->daemon);
    fifo_gate_close(&srv->body_memory); /* bodies waiting for room: 503 */
    int64_t deadline = clock_ns(CLOCK_MONOTONIC) / 1000000 + grace_ms;
    while (atomic_load(&srv->requests_active) > 0 &&
           clock_ns(CLOCK_MONOTONIC) / 1000000 < deadline) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(srv->daemon);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    server_free(srv);
}
