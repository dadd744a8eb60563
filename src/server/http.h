/*
 * http.h: the HTTP front end (libmicrohttpd): the write endpoints of InfluxDB v1, v2 and v3, the
 * read endpoint /api/v1/query_table, and /health, /ready, /metrics (ARCHITECTURE §10). It talks to
 * the ingester only (ingester.h), never to the WAL or the buffer.
 */
#ifndef INGOT_HTTP_H
#define INGOT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "ingester.h"

typedef struct http_server http_server;

typedef struct http_options {
    const char *bind;          /* host:port */
    uint64_t max_request_bytes;
    uint64_t max_body_memory;  /* bytes of request bodies held at once (--max-body-memory) */
    uint64_t max_connections;
    unsigned idle_timeout_s;   /* idle connections and late request headers; 0: 30 s */
    const char *auth_token;    /* NULL: no authentication */
    /* more /metrics text (the other front end's counters); may be NULL */
    void (*more_metrics)(void *arg, strbuf *out);
    void *more_metrics_arg;
} http_options;

/* Listen and serve on threads of its own. ing is borrowed and must outlive the server. */
int http_server_start(const http_options *opts, ingester *ing, http_server **out, char *err,
                      size_t errlen) INGOT_MUST_CHECK;

/*
 * Stop accepting connections, let the requests in flight finish (up to grace_ms), close every
 * connection and free the server.
 */
void http_server_stop(http_server *srv, unsigned grace_ms);

#endif
