/*
 * grpc_server.h: the gRPC front end (gRPC C core, protobuf-c; ARCHITECTURE §5, §10):
 * ingot.write.v1.WriteService/Write, arrow.flight.protocol.FlightService/DoGet and Handshake,
 * ingot.catalog.v1.CatalogService; every other method answers UNIMPLEMENTED. Like the HTTP front
 * end it talks to the ingester only (ingester.h).
 *
 * The process must block SIGTERM/SIGINT before starting it (gRPC starts threads of its own that
 * must not take them) and must not fork afterwards.
 */
#ifndef INGOT_GRPC_SERVER_H
#define INGOT_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ingester.h"
#include "util/strbuf.h"

typedef struct grpc_front grpc_front;

typedef struct grpc_front_options {
    const char *bind;           /* host:port */
    uint64_t max_request_bytes; /* largest request message; larger ones get RESOURCE_EXHAUSTED */
    const char *auth_token;     /* NULL: no authentication */
    unsigned threads;           /* completion-queue threads (handlers run on them and may block) */
} grpc_front_options;

/* Listen and serve on threads of its own. ing is borrowed and must outlive the server. */
int grpc_front_start(const grpc_front_options *opts, ingester *ing, grpc_front **out, char *err,
                     size_t errlen) INGOT_MUST_CHECK;

/* Append the gRPC front end's Prometheus metrics (calls by method and status) to out. */
void grpc_front_metrics(void *srv, strbuf *out);

/*
 * Stop taking calls, let the calls in flight finish (up to grace_ms, then cancel them), stop
 * the threads and free the server.
 */
void grpc_front_stop(grpc_front *srv, unsigned grace_ms);

#endif
