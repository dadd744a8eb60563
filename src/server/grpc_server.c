/*
 * grpc_server.c: the gRPC front end's call machinery (see grpc_internal.h for the life of a
 * call), authentication, and ingot.write.v1.WriteService/Write.
 *
 * Threads: `threads` threads wait on one completion queue and run handlers inline. Handlers may
 * block (a write waits for its group commit, a DoGet step copies a partition), so there are
 * several threads, as HTTP has a thread per connection; gRPC core also makes its I/O progress on
 * them. Every registered method keeps REQUESTS_PER_METHOD requests armed, and a call re-arms its
 * method before it is handled, so a blocked handler never leaves a method without a listener.
 * A generic request stays armed too: without it a call to an unknown method would hang the
 * client forever (DEPENDENCIES.md); it is answered UNIMPLEMENTED.
 *
 * Write: the request is decoded in place (dml/pbdata.h: no copy of the batch, strings read from
 * the message) and handed to ingester_write with the line protocol or the serialized
 * DatabaseBatch as body, so the WAL logs the batch bytes as received; it holds one of the
 * ingester's write slots (--max-concurrent-writes, shared with HTTP) meanwhile. Status codes: bad request,
 * bad rows, type conflicts INVALID_ARGUMENT; paused ingest RESOURCE_EXHAUSTED; stopping
 * FAILED_PRECONDITION; a failed WAL UNAVAILABLE.
 *
 * Listening: the socket is ours (socket, bind, listen on exactly the address of --grpc-bind, as
 * the HTTP front end does), and an accept thread hands every connection to gRPC with
 * grpc_server_add_channel_from_fd. gRPC's own listener would open a dual-stack IPv6 socket even
 * for 127.0.0.1 ([::ffff:127.0.0.1]), which tools that check "loopback only" do not recognise.
 *
 * Stop (grpc_front_stop): stop accepting -> shutdown_and_notify -> wait for its tag (every call
 * finished) up to the grace period -> cancel_all_calls and wait again -> destroy the server ->
 * shut the completion queue down and join the threads (they drain it: armed requests come back
 * with ok = 0 and are freed) -> grpc_shutdown.
 */
#include "server/grpc_server.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dml/pbdata.h"
#include "dml/schema.h"
#include "ingot/write/v1/write.pb-c.h"
#include "server/grpc_internal.h"
#include "server/server_addr.h"
#include "store/object_store.h"
#include "util/clock.h"
#include "util/log.h"

#define REQUESTS_PER_METHOD 4

static const struct {
    const char *path;
    bool request_with_call; /* the request message arrives with the call */
} method_table[RPC_METHOD_COUNT] = {
    [RPC_WRITE] = {"/ingot.write.v1.WriteService/Write", true},
    [RPC_FLIGHT_DO_GET] = {"/arrow.flight.protocol.FlightService/DoGet", true},
    [RPC_FLIGHT_HANDSHAKE] = {"/arrow.flight.protocol.FlightService/Handshake", false},
    [RPC_CATALOG_LIST_NAMESPACES] = {"/ingot.catalog.v1.CatalogService/ListNamespaces", true},
    [RPC_CATALOG_GET_SCHEMA] = {"/ingot.catalog.v1.CatalogService/GetSchema", true},
    [RPC_CATALOG_LIST_PARTITIONS] = {"/ingot.catalog.v1.CatalogService/ListPartitions", true},
    [RPC_CATALOG_LIST_PARQUET_FILES] = {"/ingot.catalog.v1.CatalogService/ListParquetFiles", true},
};

/* --- helpers for handlers ----------------------------------------------------------------- */

grpc_status_code rpc_status_of(int code)
{
    switch (code) {
    case 0:
        return GRPC_STATUS_OK;
    case INGOT_E_INVALID:
    case INGOT_E_SCHEMA:
    case INGOT_E_LIMIT:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case INGOT_E_NOT_FOUND:
        return GRPC_STATUS_NOT_FOUND;
    case INGOT_E_BUSY:
    case INGOT_E_NOMEM:
    case INGOT_E_TOO_LARGE:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case INGOT_E_SHUTTING_DOWN:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case INGOT_E_WAL_FAILED:
    case INGOT_E_CATALOG:
        return GRPC_STATUS_UNAVAILABLE;
    default:
        return GRPC_STATUS_INTERNAL;
    }
}

grpc_slice rpc_request_bytes(rpc *r)
{
    if (!r->request) return grpc_empty_slice();
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, r->request)) return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    return s;
}

grpc_byte_buffer *rpc_buffer_copy(const void *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_byte_buffer *rpc_buffer_pack(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static void start_batch(rpc *r, const grpc_op *ops, size_t n, rpc_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(r->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) /* a contract bug of ours: the tag would never come back */
        log_error("grpc: start_batch failed (%d) for method %d", (int)e, (int)r->method);
}

/* SEND_INITIAL_METADATA into ops[0] unless it went out already; returns the ops used (0 or 1). */
static size_t initial_metadata_op(rpc *r, grpc_op *ops)
{
    if (r->initial_metadata_sent) return 0;
    r->initial_metadata_sent = true;
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    return 1;
}

void rpc_finish(rpc *r, grpc_byte_buffer *response, grpc_status_code status, const char *details)
{
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = initial_metadata_op(r, ops);
    if (response) {
        r->sending = response;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = response;
    }
    if ((unsigned)status < RPC_STATUS_COUNT) atomic_fetch_add(&r->srv->calls[r->method][status], 1);
    r->status_details = grpc_slice_from_copied_string(details ? details : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    ops[n++].data.send_status_from_server.status_details = &r->status_details;
    start_batch(r, ops, n, &r->tag_done);
}

void rpc_send_step(rpc *r, grpc_byte_buffer *message)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = initial_metadata_op(r, ops);
    r->sending = message;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = message;
    start_batch(r, ops, n, &r->tag_step);
}

void rpc_recv_step(rpc *r)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = initial_metadata_op(r, ops);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &r->received;
    start_batch(r, ops, n, &r->tag_step);
}

/* --- calls -------------------------------------------------------------------------------- */

static void rpc_free(rpc *r)
{
    if (r->flight) flight_stream_free(r->flight);
    if (r->sending) grpc_byte_buffer_destroy(r->sending);
    if (r->received) grpc_byte_buffer_destroy(r->received);
    if (r->request) grpc_byte_buffer_destroy(r->request);
    grpc_slice_unref(r->status_details);
    grpc_metadata_array_destroy(&r->metadata);
    if (r->method == RPC_UNKNOWN) grpc_call_details_destroy(&r->details);
    if (r->call) grpc_call_unref(r->call);
    free(r);
}

static void rpc_release(rpc *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) rpc_free(r);
}

/* Arm a request for one more call of method m (RPC_UNKNOWN: any unregistered method). */
static void request_call(grpc_front *srv, enum rpc_method m)
{
    rpc *r = calloc(1, sizeof *r);
    if (!r) {
        log_error("grpc: out of memory arming a request");
        return;
    }
    r->srv = srv;
    r->method = m;
    r->status_details = grpc_empty_slice();
    r->tag_new = (rpc_tag){TAG_NEW, r};
    r->tag_close = (rpc_tag){TAG_CLOSE, r};
    r->tag_step = (rpc_tag){TAG_STEP, r};
    r->tag_done = (rpc_tag){TAG_DONE, r};
    grpc_metadata_array_init(&r->metadata);
    grpc_call_error e;
    if (m == RPC_UNKNOWN) {
        grpc_call_details_init(&r->details);
        e = grpc_server_request_call(srv->server, &r->call, &r->details, &r->metadata, srv->cq,
                                     srv->cq, &r->tag_new);
    } else {
        e = grpc_server_request_registered_call(
            srv->server, srv->methods[m], &r->call, &r->deadline, &r->metadata,
            method_table[m].request_with_call ? &r->request : NULL, srv->cq, srv->cq, &r->tag_new);
    }
    if (e != GRPC_CALL_OK) {
        log_error("grpc: cannot arm a request (%d)", (int)e);
        rpc_free(r);
    }
}

static bool slice_equals(grpc_slice s, const char *text, size_t len)
{
    return GRPC_SLICE_LENGTH(s) == len && memcmp(GRPC_SLICE_START_PTR(s), text, len) == 0;
}

/* `authorization: Bearer <token>` or `Token <token>`, compared in constant time. */
static bool authorized(const rpc *r)
{
    const char *token = r->srv->auth_token;
    if (!token) return true;
    size_t tlen = strlen(token);
    for (size_t i = 0; i < r->metadata.count; i++) {
        const grpc_metadata *m = &r->metadata.metadata[i];
        if (!slice_equals(m->key, "authorization", 13)) continue;
        const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
        size_t n = GRPC_SLICE_LENGTH(m->value);
        size_t skip = n > 7 && !strncasecmp(v, "Bearer ", 7)  ? 7
                      : n > 6 && !strncasecmp(v, "Token ", 6) ? 6
                                                              : 0;
        if (!skip || n - skip != tlen) continue;
        unsigned char diff = 0;
        for (size_t k = 0; k < tlen; k++)
            diff |= (unsigned char)(v[skip + k] ^ token[k]);
        if (!diff) return true;
    }
    return false;
}

static void handle_write(rpc *r)
{
    grpc_slice bytes = rpc_request_bytes(r);
    pbdata_write_request pr;
    char err[256];
    char ns[SCHEMA_MAX_NAMESPACE_BYTES + 1];
    int rv = pbdata_decode_write_request(GRPC_SLICE_START_PTR(bytes), GRPC_SLICE_LENGTH(bytes), &pr,
                                         err, sizeof err);
    if (rv != 0) {
        rpc_finish(r, NULL, GRPC_STATUS_INVALID_ARGUMENT, err);
        goto out;
    }
    if (pr.namespace_len > SCHEMA_MAX_NAMESPACE_BYTES ||
        memchr(pr.namespace_name, '\0', pr.namespace_len)) {
        rpc_finish(r, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                   "invalid namespace name: 1 to 64 bytes of letters, digits, '_', '-' and '.'");
        goto out;
    }
    if (pr.payload == PBDATA_PAYLOAD_NONE) {
        rpc_finish(r, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                   "the request has neither line_protocol nor batch");
        goto out;
    }
    memcpy(ns, pr.namespace_name, pr.namespace_len);
    ns[pr.namespace_len] = '\0';
    bool batch = pr.payload == PBDATA_PAYLOAD_BATCH;
    ingester_write_request wr = {
        .namespace_name = ns,
        .body_kind = batch ? DML_BODY_DATABASE_BATCH : DML_BODY_LINE_PROTOCOL,
        .body = batch ? (const char *)pr.batch : pr.line_protocol,
        .body_len = batch ? pr.batch_len : pr.line_protocol_len,
        .precision = pr.precision,
        .durability = DML_DURABILITY_SYNCED,
    };
    if (!wr.body) wr.body = "";
    rv = ingester_write_admit(r->srv->ing, INGESTER_WRITE_ADMIT_TIMEOUT_MS);
    if (rv != 0) {
        rpc_finish(r, NULL, rpc_status_of(rv),
                   rv == INGOT_E_BUSY ? "too many writes in flight (--max-concurrent-writes); retry later"
                                      : "ingot is shutting down");
        goto out;
    }
    ingester_write_result res;
    rv = ingester_write(r->srv->ing, &wr, &res);
    ingester_write_release(r->srv->ing);
    if (rv == 0) {
        Ingot__Write__V1__WriteResponse resp = INGOT__WRITE__V1__WRITE_RESPONSE__INIT;
        resp.rows = res.lines_written;
        rpc_finish(r, rpc_buffer_pack(&resp.base), GRPC_STATUS_OK, NULL);
    } else if (rv == INGOT_E_INVALID && res.batch.bad_line_count > 0) {
        strbuf msg = {0};
        ingester_describe_bad_rows(&wr, &res, &msg);
        rpc_finish(r, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                   strbuf_failed(&msg) ? "bad rows" : msg.data);
        strbuf_free(&msg);
    } else {
        rpc_finish(r, NULL, rpc_status_of(rv), res.message[0] ? res.message : ingot_strerror(rv));
    }
    ingester_write_result_free(&res);
out:
    grpc_slice_unref(bytes);
}

/* A call arrived: re-arm, watch for the close, dispatch. */
static void on_new_call(rpc *r)
{
    grpc_front *srv = r->srv;
    request_call(srv, r->method);
    atomic_store(&r->refs, 2);
    grpc_op close = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    close.data.recv_close_on_server.cancelled = &r->cancelled;
    start_batch(r, &close, 1, &r->tag_close);

    if (r->method == RPC_UNKNOWN) {
        char m[300];
        snprintf(m, sizeof m, "method %.*s is not implemented by ingot",
                 (int)GRPC_SLICE_LENGTH(r->details.method),
                 (const char *)GRPC_SLICE_START_PTR(r->details.method));
        rpc_finish(r, NULL, GRPC_STATUS_UNIMPLEMENTED, m);
        return;
    }
    if (!authorized(r)) {
        rpc_finish(r, NULL, GRPC_STATUS_UNAUTHENTICATED,
                   "missing or wrong token (metadata authorization: Bearer <token>)");
        return;
    }
    switch (r->method) {
    case RPC_WRITE:
        handle_write(r);
        break;
    case RPC_FLIGHT_DO_GET:
        flight_do_get(r);
        break;
    case RPC_FLIGHT_HANDSHAKE:
        flight_handshake(r);
        break;
    default:
        catalog_service_call(r);
        break;
    }
}

static void on_step(rpc *r, bool ok)
{
    if (r->sending) {
        grpc_byte_buffer_destroy(r->sending);
        r->sending = NULL;
    }
    if (r->method == RPC_FLIGHT_DO_GET)
        flight_do_get_step(r, ok);
    else
        flight_handshake_step(r, ok);
}

static void *cq_thread(void *arg)
{
    grpc_front *srv = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        rpc_tag *tag = ev.tag;
        if (tag == &srv->shutdown_tag) {
            pthread_mutex_lock(&srv->mu);
            srv->shutdown_done = true;
            pthread_cond_broadcast(&srv->cond);
            pthread_mutex_unlock(&srv->mu);
            continue;
        }
        rpc *r = tag->call;
        switch (tag->kind) {
        case TAG_NEW:
            if (ev.success)
                on_new_call(r);
            else
                rpc_free(r); /* the server is shutting down */
            break;
        case TAG_STEP:
            on_step(r, ev.success);
            break;
        case TAG_CLOSE:
        case TAG_DONE:
            rpc_release(r);
            break;
        }
    }
    return NULL;
}

static const char *const status_names[RPC_STATUS_COUNT] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

void grpc_front_metrics(void *arg, strbuf *out)
{
    grpc_front *srv = arg;
    strbuf_puts(out, "# HELP ingot_grpc_calls_total gRPC calls answered, by method and status.\n"
                     "# TYPE ingot_grpc_calls_total counter\n");
    for (int m = 0; m <= RPC_METHOD_COUNT; m++) {
        for (int s = 0; s < RPC_STATUS_COUNT; s++) {
            uint64_t n = atomic_load(&srv->calls[m][s]);
            if (!n) continue;
            strbuf_printf(out, "ingot_grpc_calls_total{method=\"%s\",status=\"%s\"} %llu\n",
                          m < RPC_METHOD_COUNT ? method_table[m].path : "other", status_names[s],
                          (unsigned long long)n);
        }
    }
}

/* --- listening ---------------------------------------------------------------------------- */

/* A listening TCP socket on bind (host:port, [v6]:port). Returns the fd, or -1 with err. */
static int listen_on(const char *address, char *err, size_t errlen)
{
    struct addrinfo *ai = NULL;
    char why[300];
    if (server_resolve_bind(address, &ai, why, sizeof why) != 0) {
        snprintf(err, errlen, "gRPC: %s", why);
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "gRPC: cannot listen on %s: %s", address, strerror(errno));
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* The accept thread: every connection becomes a gRPC channel of the server. */
static void *accept_main(void *arg)
{
    grpc_front *srv = arg;
    struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                          {.fd = srv->wake_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            log_error("gRPC: poll: %s; no longer accepting", strerror(errno));
            break;
        }
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("gRPC: accept: %s", strerror(errno));
                poll(NULL, 0, 100); /* let connections close before trying again */
            }
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        grpc_server_add_channel_from_fd(srv->server, fd, creds); /* gRPC owns fd now */
        grpc_server_credentials_release(creds);
    }
    return NULL;
}

/* Stop the accept thread and close the listening socket. */
static void stop_accepting(grpc_front *srv)
{
    if (srv->accepting) {
        char b = 1;
        while (write(srv->wake_pipe[1], &b, 1) < 0 && errno == EINTR) {
        }
        pthread_join(srv->accept_thread, NULL);
        srv->accepting = false;
    }
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    srv->listen_fd = -1;
    for (int i = 0; i < 2; i++)
        if (srv->wake_pipe[i] >= 0) close(srv->wake_pipe[i]);
    srv->wake_pipe[0] = srv->wake_pipe[1] = -1;
}

/* --- start / stop ------------------------------------------------------------------------- */

int grpc_front_start(const grpc_front_options *opts, ingester *ing, grpc_front **out, char *err,
                     size_t errlen)
{
    grpc_init();
    grpc_front *srv = calloc(1, sizeof *srv);
    if (!srv) {
        grpc_shutdown();
        return INGOT_E_NOMEM;
    }
    srv->ing = ing;
    srv->auth_token = opts->auth_token;
    object_store_uuid_v4(srv->ingester_uuid);
    srv->shutdown_tag = (rpc_tag){TAG_DONE, NULL};
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cond, NULL);

    grpc_arg args[2] = {
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer =
             opts->max_request_bytes > INT32_MAX ? INT32_MAX : (int)opts->max_request_bytes},
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         .value.integer = -1},
    };
    grpc_channel_args channel_args = {.num_args = 2, .args = args};
    srv->server = grpc_server_create(&channel_args, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    for (int m = 0; m < RPC_METHOD_COUNT; m++) {
        srv->methods[m] = grpc_server_register_method(
            srv->server, method_table[m].path, NULL,
            method_table[m].request_with_call ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                              : GRPC_SRM_PAYLOAD_NONE,
            0);
    }
    srv->wake_pipe[0] = srv->wake_pipe[1] = -1;
    srv->listen_fd = listen_on(opts->bind, err, errlen);
    bool port = srv->listen_fd >= 0 && pipe2(srv->wake_pipe, O_CLOEXEC) == 0;
    if (srv->listen_fd >= 0 && !port) snprintf(err, errlen, "gRPC: pipe: %s", strerror(errno));
    unsigned want = opts->threads ? opts->threads : 1;
    srv->threads = port ? calloc(want, sizeof *srv->threads) : NULL;
    for (; srv->threads && srv->thread_count < want; srv->thread_count++) {
        if (pthread_create(&srv->threads[srv->thread_count], NULL, cq_thread, srv) != 0) break;
    }
    if (srv->thread_count == 0) {
        if (port) snprintf(err, errlen, "gRPC: cannot start threads");
        stop_accepting(srv);
        grpc_server_destroy(srv->server); /* never started: no call to wait for */
        grpc_completion_queue_shutdown(srv->cq);
        while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(srv->cq);
        pthread_mutex_destroy(&srv->mu);
        pthread_cond_destroy(&srv->cond);
        free(srv->threads);
        free(srv);
        grpc_shutdown();
        return port ? INGOT_E_NOMEM : INGOT_E_INVALID;
    }
    grpc_server_start(srv->server);
    for (int m = 0; m <= RPC_METHOD_COUNT; m++) {
        for (int k = 0; k < REQUESTS_PER_METHOD; k++)
            request_call(srv, (enum rpc_method)m);
    }
    if (pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0) {
        snprintf(err, errlen, "gRPC: cannot start the accept thread");
        grpc_front_stop(srv, 0);
        return INGOT_E_NOMEM;
    }
    srv->accepting = true;
    log_info("gRPC listening on %s (%u threads)", opts->bind, srv->thread_count);
    *out = srv;
    return 0;
}

/* Wait until the shutdown tag came back or until deadline_ms (0: forever). */
static bool wait_shutdown(grpc_front *srv, unsigned grace_ms)
{
    struct timespec until = clock_deadline_ms(CLOCK_REALTIME, grace_ms);
    pthread_mutex_lock(&srv->mu);
    while (!srv->shutdown_done) {
        if (grace_ms == 0)
            pthread_cond_wait(&srv->cond, &srv->mu);
        else if (pthread_cond_timedwait(&srv->cond, &srv->mu, &until) != 0)
            break;
    }
    bool done = srv->shutdown_done;
    pthread_mutex_unlock(&srv->mu);
    return done;
}

void grpc_front_stop(grpc_front *srv, unsigned grace_ms)
{
    if (!srv) return;
    stop_accepting(srv);
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    if (!wait_shutdown(srv, grace_ms ? grace_ms : 1)) {
        log_warn("gRPC: calls still running after %u ms: cancelling them", grace_ms);
        grpc_server_cancel_all_calls(srv->server);
        wait_shutdown(srv, 0);
    }
    grpc_server_destroy(srv->server);
    grpc_completion_queue_shutdown(srv->cq);
    for (unsigned i = 0; i < srv->thread_count; i++)
        pthread_join(srv->threads[i], NULL);
    grpc_completion_queue_destroy(srv->cq);
    free(srv->threads);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cond);
    free(srv);
    grpc_shutdown();
}
