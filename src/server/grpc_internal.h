/*
 * grpc_internal.h: what the gRPC front end's files share: the server, one call in progress (rpc)
 * and the helpers handlers use to answer. grpc_server.c owns the call machinery and the
 * WriteService; grpc_flight.c the Flight service; grpc_catalog.c the CatalogService.
 *
 * Life of a call (all driven by completion-queue tags, on the server's threads):
 *   TAG_NEW    the call arrived (the request message with it for unary-request methods); a new
 *              request for the same method is armed first, then RECV_CLOSE_ON_SERVER is started
 *              in a batch of its own (TAG_CLOSE) so a cancellation is seen early, then the
 *              method's handler runs.
 *   TAG_STEP   a streaming method's one outstanding SEND_MESSAGE or RECV_MESSAGE completed: the
 *              method continues (only one step is ever outstanding, so steps never run at once).
 *   TAG_DONE   the batch carrying SEND_STATUS_FROM_SERVER completed.
 *   TAG_CLOSE  the client side is closed (or the call was cancelled).
 * A call holds two references once started: TAG_CLOSE and TAG_DONE each drop one, and the last
 * frees the call. A handler therefore answers exactly once, with rpc_finish().
 */
#ifndef INGOT_GRPC_INTERNAL_H
#define INGOT_GRPC_INTERNAL_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "server/grpc_server.h"
#include "util/strbuf.h"

enum rpc_method {
    RPC_WRITE,
    RPC_FLIGHT_DO_GET,
    RPC_FLIGHT_HANDSHAKE,
    RPC_CATALOG_LIST_NAMESPACES,
    RPC_CATALOG_GET_SCHEMA,
    RPC_CATALOG_LIST_PARTITIONS,
    RPC_CATALOG_LIST_PARQUET_FILES,
    RPC_METHOD_COUNT,
    RPC_UNKNOWN = RPC_METHOD_COUNT, /* any other method: the generic request */
};

#define RPC_STATUS_COUNT (GRPC_STATUS_UNAUTHENTICATED + 1) /* status codes 0..16 */

enum rpc_tag_kind { TAG_NEW, TAG_CLOSE, TAG_STEP, TAG_DONE };

typedef struct rpc rpc;

typedef struct rpc_tag {
    enum rpc_tag_kind kind;
    rpc *call;
} rpc_tag;

typedef struct flight_stream flight_stream;

struct grpc_front {
    ingester *ing;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *methods[RPC_METHOD_COUNT]; /* registered method handles */
    const char *auth_token;
    char ingester_uuid[37]; /* random per process: Flight partition metadata */
    pthread_t *threads;
    unsigned thread_count;
    int listen_fd;                   /* our own listening socket (see grpc_server.c) */
    int wake_pipe[2];                /* written to stop the accept thread */
    pthread_t accept_thread;
    bool accepting;                  /* the accept thread runs */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* mu: shutdown_done changed */
    bool shutdown_done;  /* mu: the shutdown tag came back */
    rpc_tag shutdown_tag;
    atomic_uint_fast64_t calls[RPC_METHOD_COUNT + 1][RPC_STATUS_COUNT]; /* by status */
};

struct rpc {
    grpc_front *srv;
    enum rpc_method method;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array metadata; /* the request's initial metadata */
    grpc_call_details details;    /* RPC_UNKNOWN only */
    grpc_byte_buffer *request;    /* unary-request methods: the request message */
    rpc_tag tag_new, tag_close, tag_step, tag_done;
    int cancelled; /* set when TAG_CLOSE completes */
    atomic_int refs;
    grpc_byte_buffer *sending;  /* the message of the outstanding send (freed at its tag) */
    grpc_byte_buffer *received; /* Handshake: the message of the outstanding receive */
    grpc_slice status_details;
    bool initial_metadata_sent;
    bool handshake_sent;   /* Handshake: the outstanding step is a send (else a receive) */
    flight_stream *flight; /* DoGet: the query being streamed */
};

/* The request message as one contiguous slice (unref it). Empty for a missing message. */
grpc_slice rpc_request_bytes(rpc *r);

/*
 * Answer: initial metadata (if not sent yet), the response message (may be NULL; the call takes
 * it), and the status with details (may be NULL). The call's last batch (TAG_DONE).
 */
void rpc_finish(rpc *r, grpc_byte_buffer *response, grpc_status_code status, const char *details);

/* Start one SEND_MESSAGE (with the initial metadata the first time) or RECV_MESSAGE: TAG_STEP. */
void rpc_send_step(rpc *r, grpc_byte_buffer *message);
void rpc_recv_step(rpc *r);

/* A byte buffer holding a copy of len bytes / a protobuf-c message packed. NULL on OOM. */
grpc_byte_buffer *rpc_buffer_copy(const void *data, size_t len);
struct ProtobufCMessage;
grpc_byte_buffer *rpc_buffer_pack(const struct ProtobufCMessage *msg);

/* The gRPC status of an ingot error code. */
grpc_status_code rpc_status_of(int ingot_code);

/* Handlers (TAG_NEW), and the streaming methods' continuations (TAG_STEP, ok = the op worked). */
void flight_do_get(rpc *r);
void flight_do_get_step(rpc *r, bool ok);
void flight_handshake(rpc *r);
void flight_handshake_step(rpc *r, bool ok);
void flight_stream_free(flight_stream *fs);
void catalog_service_call(rpc *r);

#endif
