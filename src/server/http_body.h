/*
 * http_body.h: one HTTP request body, taken piece by piece as the server reads it, either as is
 * or (Content-Encoding: gzip) inflated on the fly, never holding more than a limit of bytes after
 * inflation. Used by the HTTP front end (http.c) for every POST; it knows nothing of HTTP itself.
 *
 * A body is a value embedded in its request: http_body_init, then http_body_append for every
 * piece, then http_body_finish once, then http_body_free (always, whatever happened before).
 * The first failure is sticky: later pieces are dropped unread (the caller keeps reading the
 * socket and throws the bytes away) and finish reports that failure.
 */
#ifndef INGOT_HTTP_BODY_H
#define INGOT_HTTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/strbuf.h"

struct z_stream_s;

typedef struct http_body {
    strbuf data;            /* the body so far (inflated); owned; complete after finish gave 0 */
    uint64_t limit_bytes;   /* most bytes data may hold */
    bool gzip;              /* inflate the pieces (a gzip stream of one member) */
    bool z_done;            /* gzip: the member ended (its trailer checked) */
    int failure;            /* 0 or the first failure (sticky) */
    struct z_stream_s *z;   /* gzip: the inflater, created with the first piece */
} http_body;

/*
 * Start a body. expected_bytes is the request's Content-Length (0 if none or unknown): a plain
 * body announcing more than the limit fails at once with INGOT_E_TOO_LARGE (the caller answers
 * 413 without reading it); otherwise it is reserved up front. Returns 0, INGOT_E_TOO_LARGE or
 * INGOT_E_NOMEM; the body must be freed in every case.
 */
int http_body_init(http_body *b, bool gzip, uint64_t limit_bytes, uint64_t expected_bytes);

/*
 * The same, but the body's bytes go into spare's memory (a buffer an earlier body gave back with
 * http_body_take_buffer; its contents are dropped, its allocation kept). spare is moved into the
 * body and zeroed; it is freed with the body unless taken back.
 */
int http_body_init_reusing(http_body *b, strbuf *spare, bool gzip, uint64_t limit_bytes,
                           uint64_t expected_bytes);

/* Move the body's buffer out, emptied but with its allocation, for a later body to reuse. */
strbuf http_body_take_buffer(http_body *b);

/*
 * Take one piece (any length, 0 included). Returns 0 or the sticky failure: INGOT_E_TOO_LARGE
 * (more than limit_bytes, after inflation), INGOT_E_INVALID (not a gzip stream, or bytes after
 * its end: a second member or trailing garbage), INGOT_E_NOMEM.
 */
int http_body_append(http_body *b, const void *piece, size_t len);

/*
 * The body is complete: 0 and b->data holds it (data.data may be NULL for an empty body), or the
 * failure: as append, plus INGOT_E_INVALID for a gzip stream that is empty or cut short.
 */
int http_body_finish(http_body *b);

/* Release the buffer and the inflater. b may then be initialised again. */
void http_body_free(http_body *b);

#endif
