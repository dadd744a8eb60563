/*
 * ingester.h: the ingester: wiring and life cycle of every component (ARCHITECTURE §9), and the
 * narrow interface the front ends (HTTP now, gRPC later) use: write line protocol, query, metrics,
 * state. The front ends never see the WAL or the buffer.
 */
#ifndef INGOT_INGESTER_H
#define INGOT_INGESTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "config.h"
#include "dml/dml.h"
#include "lp/lp.h"
#include "query/query.h"
#include "util/error.h"
#include "util/strbuf.h"

typedef struct ingester ingester;

/*
 * Open the catalog, replay the WAL into the buffer, open a fresh WAL segment. cfg is borrowed and
 * must outlive the ingester. Returns 0 or a negative code with the reason in err.
 */
int ingester_open(const ingot_config *cfg, ingester **out, char *err, size_t errlen) INGOT_MUST_CHECK;

typedef struct ingester_write_request {
    const char *namespace_name; /* NUL-terminated */
    enum dml_body body_kind;    /* line protocol, or a serialized DatabaseBatch (gRPC, pbdata.h) */
    const char *body;           /* borrowed for the call */
    size_t body_len;
    enum lp_precision precision; /* AUTO only for line protocol */
    bool partial_ok;            /* line protocol, /api/v3/write_lp accept_partial: apply the good lines */
    enum dml_durability durability;
} ingester_write_request;

typedef struct ingester_write_result {
    lp_batch batch;       /* after the call: errors[] describes bad lines or rows (in order) */
    size_t lines_written; /* lines applied */
    char message[512];    /* a request-level error (bad namespace, WAL failure, ...) */
    ingester *owner;      /* private: where ingester_write_result_free returns the batch's arrays */
} ingester_write_result;

/*
 * Write admission: at most --max-concurrent-writes writes hold a slot at once, so the parsed
 * batches in flight (about 3x the size of their line protocol) are bounded whatever the number
 * of connections, and the CPU goes to finishing writes rather than to starting more of them;
 * group commit still gathers the slots' writes into one fdatasync. A front end takes a slot
 * around ingester_write, once the request is received (a slow client must not hold one). Waits
 * at most timeout_ms: INGOT_E_BUSY (503 + Retry-After) if no slot came free;
 * INGOT_E_SHUTTING_DOWN once writes stop.
 */
#define INGESTER_WRITE_ADMIT_TIMEOUT_MS 10000u
int ingester_write_admit(ingester *ing, unsigned timeout_ms);
void ingester_write_release(ingester *ing);

/*
 * Parse (or decode), validate, commit to the WAL and apply to the buffer. The result must be
 * freed with ingester_write_result_free whatever the outcome. Returns:
 *   0                     every good line applied (with partial_ok, bad lines may have been
 *                         skipped: result->batch.bad_line_count);
 *   INGOT_E_INVALID       bad lines or rows (result->batch.errors; nothing applied), or a bad
 *                         namespace name or malformed DatabaseBatch (message);
 *   INGOT_E_SHUTTING_DOWN, INGOT_E_WAL_FAILED, INGOT_E_CATALOG, INGOT_E_NOMEM (message).
 */
int ingester_write(ingester *ing, const ingester_write_request *req, ingester_write_result *result);
void ingester_write_result_free(ingester_write_result *result);

/*
 * The bad lines or rows of a refused write as one sentence: "2 bad lines: line 2, column 5: …;
 * line 7, column 1: …" for line protocol, "1 bad row: row 3 (table cpu): …" for a batch.
 */
void ingester_describe_bad_rows(const ingester_write_request *req,
                                const ingester_write_result *result, strbuf *out);

/*
 * Start a query (see query.h). Beyond --concurrent-query-limit open streams: INGOT_E_BUSY.
 * An unknown namespace or table: INGOT_E_NOT_FOUND. Closing the stream frees the slot.
 */
int ingester_query(ingester *ing, const query_request *req, query_stream **out, char *err,
                   size_t errlen);

/* The catalog, for the front ends' read-only listings (the gRPC CatalogService). */
catalog *ingester_catalog(ingester *ing);

/* Append the ingester's Prometheus metrics (WAL, buffer, writes, replay) to out. */
void ingester_metrics(ingester *ing, strbuf *out);

/* Stop taking writes (they get INGOT_E_SHUTTING_DOWN) and wait for the writes in flight. */
void ingester_stop_writes(ingester *ing);

/* True while the ingester takes writes. */
bool ingester_accepting_writes(ingester *ing);

/*
 * The graceful stop's persist (after ingester_stop_writes): persist every partition, again until
 * the buffer is empty, while queries keep being answered; then rotate the WAL and delete every
 * segment. Returns 0, or the error that left data in the WAL (it is replayed at the next start).
 */
int ingester_drain(ingester *ing);

/* Close the WAL (every acknowledged write is synced; after a drain it is left empty), free
 * everything. */
void ingester_close(ingester *ing);

#endif
