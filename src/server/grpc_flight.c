/*
 * grpc_flight.c: arrow.flight.protocol.FlightService: DoGet (queries) and Handshake (echo).
 *
 * DoGet ticket: UTF-8 JSON {"namespace","table","columns":[…],"min_time","max_time"} (columns
 * optional = all, in the order asked; times optional, ns, min inclusive, max exclusive, as JSON
 * integers or decimal strings, since JSON numbers lose precision past 2^53 in many clients).
 * Unknown keys are ignored. A ticket that does not decode is INVALID_ARGUMENT.
 *
 * The stream is pulled one message at a time (one SEND_MESSAGE outstanding, the next produced
 * when it completed), so a slow client holds back the query instead of filling memory. For each
 * partition of the snapshot, pulled from QueryExec only when its turn comes:
 *   1. a FlightData with only app_metadata: JSON {"partition_key","partition_id",
 *      "ingester_uuid","completed_persistence_count"};
 *   2. the partition's Arrow IPC stream as FlightData messages (data_header = the flatbuffer
 *      Message, data_body = its body): the Schema, then for each batch QueryExec gives for the
 *      partition (a big one comes in several) one DictionaryBatch per tag column (replacing the
 *      previous ones) and the batch as RecordBatches of at most ~1 MiB each (rows sliced at
 *      multiples of 8, sharing the dictionaries), because gRPC clients refuse messages over
 *      4 MiB by default.
 * The query's concurrency slot is given back after the last partition, before the status.
 *
 * FlightData is encoded here, not by protobuf-c: the body is handed to gRPC as a slice that owns
 * the buffer the IPC writer filled, so the data is never copied after the query made its batch.
 */
#include <errno.h>
#include <grpc/slice.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrow/flight/protocol/flight.pb-c.h"
#include "query/arrow_ipc.h"
#include "server/grpc_internal.h"
#include "util/json.h"

#define FLIGHT_CHUNK_BYTES (1u << 20)

enum flight_state { FS_NEXT_BATCH, FS_METADATA, FS_SCHEMA, FS_DICTIONARIES, FS_RECORDS };

struct flight_stream {
    query_stream *query; /* NULL once ended */
    json_member *ticket; /* owns the strings req points to */
    size_t ticket_members;
    query_batch *batch;    /* the batch being sent */
    uint64_t partition_id; /* its partition (QueryExec may cut a big partition in batches) */
    arrow_ipc_writer *ipc; /* the partition's writer (its schema) */
    enum flight_state state;
    size_t dictionary; /* next dictionary message */
    size_t row;        /* next row of the record batches */
    size_t chunk_rows;
    bool records_sent; /* at least one record batch of this partition went out */
    strbuf header;
};

void flight_stream_free(flight_stream *fs)
{
    if (!fs) return;
    if (fs->query) query_stream_close(fs->query);
    if (fs->batch) query_batch_free(fs->batch);
    arrow_ipc_writer_free(fs->ipc);
    json_free_members(fs->ticket, fs->ticket_members);
    strbuf_free(&fs->header);
    free(fs);
}

/* --- the ticket --------------------------------------------------------------------------- */

static bool member_time(const json_member *m, int64_t *out)
{
    if (m->kind == JSON_MEMBER_INTEGER) {
        *out = m->integer;
        return true;
    }
    if (m->kind != JSON_MEMBER_STRING) return false;
    char *end;
    errno = 0;
    long long v = strtoll(m->string, &end, 10);
    if (errno || end == m->string || *end) return false;
    *out = v;
    return true;
}

static int parse_ticket(flight_stream *fs, const char *json, query_request *req, char *err,
                        size_t errlen)
{
    if (json_parse_flat_object(json, &fs->ticket, &fs->ticket_members) != 0) {
        snprintf(err, errlen,
                 "invalid ticket: expected a JSON object {\"namespace\",\"table\","
                 "\"columns\",\"min_time\",\"max_time\"}");
        return INGOT_E_INVALID;
    }
    *req = (query_request){.min_time_ns = INT64_MIN, .max_time_ns = INT64_MAX};
    for (size_t i = 0; i < fs->ticket_members; i++) {
        const json_member *m = &fs->ticket[i];
        bool ok = true;
        if (!strcmp(m->key, "namespace")) {
            ok = m->kind == JSON_MEMBER_STRING;
            req->namespace_name = m->string;
        } else if (!strcmp(m->key, "table")) {
            ok = m->kind == JSON_MEMBER_STRING;
            req->table_name = m->string;
        } else if (!strcmp(m->key, "columns")) {
            ok = m->kind == JSON_MEMBER_STRING_ARRAY || m->kind == JSON_MEMBER_NULL;
            req->columns = (const char *const *)m->items;
            req->column_count = m->count;
        } else if (!strcmp(m->key, "min_time")) {
            ok = m->kind == JSON_MEMBER_NULL || member_time(m, &req->min_time_ns);
        } else if (!strcmp(m->key, "max_time")) {
            ok = m->kind == JSON_MEMBER_NULL || member_time(m, &req->max_time_ns);
        }
        if (!ok) {
            snprintf(err, errlen, "invalid ticket: \"%s\" has the wrong type", m->key);
            return INGOT_E_INVALID;
        }
    }
    if (!req->namespace_name || !req->table_name) {
        snprintf(err, errlen, "invalid ticket: \"namespace\" and \"table\" are required");
        return INGOT_E_INVALID;
    }
    return 0;
}

/* --- FlightData --------------------------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/*
 * FlightData {data_header = 2, app_metadata = 3, data_body = 1000}: the small fields are copied
 * into one slice; the body (if any) becomes a slice that owns body->data (body is emptied).
 */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static grpc_byte_buffer *flight_data(const strbuf *header, const char *metadata,
                                     size_t metadata_len, strbuf *body)
{
    size_t hlen = header ? header->len : 0, blen = body ? body->len : 0;
    size_t head_len = (hlen ? 1 + varint_len(hlen) + hlen : 0) +
                      (metadata_len ? 1 + varint_len(metadata_len) + metadata_len : 0) +
                      (blen ? varint_len(1000 << 3 | 2) + varint_len(blen) : 0);
    grpc_slice slices[2] = {grpc_slice_malloc(head_len), grpc_empty_slice()};
    uint8_t *p = GRPC_SLICE_START_PTR(slices[0]);
    if (hlen) {
        *p++ = 2 << 3 | 2;
        p += put_varint(p, hlen);
        memcpy(p, header->data, hlen);
        p += hlen;
    }
    if (metadata_len) {
        *p++ = 3 << 3 | 2;
        p += put_varint(p, metadata_len);
        memcpy(p, metadata, metadata_len);
        p += metadata_len;
    }
    size_t n = 1;
    if (blen) {
        p += put_varint(p, 1000 << 3 | 2);
        put_varint(p, blen);
        slices[n++] = grpc_slice_new(body->data, blen, free);
        *body = (strbuf){0};
    } else if (body) {
        strbuf_free(body); /* an empty body may still hold an allocation */
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
    for (size_t i = 0; i < n; i++)
        grpc_slice_unref(slices[i]);
    return bb;
}

/* --- the stream --------------------------------------------------------------------------- */

/* Rows per record batch so that one carries about FLIGHT_CHUNK_BYTES (a multiple of 8). */
static size_t chunk_rows(const query_batch *b)
{
    size_t per_row = 1;
    for (size_t i = 0; i < b->column_count; i++) {
        const query_column *c = &b->columns[i];
        switch (c->type) {
        case COLUMN_TAG:
            per_row += 4;
            break;
        case COLUMN_BOOL:
            per_row += 1;
            break;
        case COLUMN_STRING:
            per_row +=
                4 + (b->row_count
                         ? (size_t)(c->data.str.offsets[b->row_count] - c->data.str.offsets[0]) /
                               b->row_count
                         : 0);
            break;
        default:
            per_row += 8;
            break;
        }
    }
    size_t rows = FLIGHT_CHUNK_BYTES / per_row;
    return rows < 8 ? 8 : rows & ~(size_t)7;
}

/* The next message of the stream: 1 and *out, 0 at the end, or a negative code (err). */
static int produce(rpc *r, grpc_byte_buffer **out, char *err, size_t errlen)
{
    flight_stream *fs = r->flight;
    int rv;
    strbuf body = {0};
    for (;;) {
        switch (fs->state) {
        case FS_NEXT_BATCH:
            if (fs->batch) query_batch_free(fs->batch);
            fs->batch = NULL;
            rv = query_stream_next(fs->query, &fs->batch);
            if (rv == 0) return 0;
            if (rv < 0) {
                snprintf(err, errlen, "query failed: %s", ingot_strerror(rv));
                return rv;
            }
            if (fs->ipc && fs->batch->partition_id == fs->partition_id) {
                fs->state = FS_DICTIONARIES; /* more of the same partition: same stream */
                fs->dictionary = 0;
                continue;
            }
            arrow_ipc_writer_free(fs->ipc);
            fs->ipc = NULL;
            fs->partition_id = fs->batch->partition_id;
            fs->state = FS_METADATA;
            continue;
        case FS_METADATA: {
            char meta[256];
            int n =
                snprintf(meta, sizeof meta,
                         "{\"partition_key\":\"%s\",\"partition_id\":%" PRIu64
                         ",\"ingester_uuid\":\"%s\",\"completed_persistence_count\":%" PRIu64 "}",
                         fs->batch->partition_key, fs->batch->partition_id, r->srv->ingester_uuid,
                         fs->batch->completed_persistence_count);
            fs->state = FS_SCHEMA;
            *out = flight_data(NULL, meta, (size_t)n, NULL);
            return 1;
        }
        case FS_SCHEMA:
            if ((rv = arrow_ipc_writer_new(fs->batch, &fs->ipc)) != 0 ||
                (rv = arrow_ipc_schema_message(fs->ipc, &fs->header)) != 0)
                goto encode_failed;
            fs->state = FS_DICTIONARIES;
            fs->dictionary = 0;
            *out = flight_data(&fs->header, NULL, 0, NULL);
            return 1;
        case FS_DICTIONARIES:
            if (fs->dictionary + 1 < arrow_ipc_batch_message_count(fs->ipc)) {
                rv = arrow_ipc_batch_message(fs->ipc, fs->batch, fs->dictionary++, &fs->header,
                                             &body);
                if (rv != 0) goto encode_failed;
                *out = flight_data(&fs->header, NULL, 0, &body);
                return 1;
            }
            fs->state = FS_RECORDS;
            fs->row = 0;
            fs->records_sent = false;
            fs->chunk_rows = chunk_rows(fs->batch);
            continue;
        case FS_RECORDS: {
            size_t left = fs->batch->row_count - fs->row;
            if (left == 0 && fs->records_sent) {
                fs->state = FS_NEXT_BATCH;
                continue;
            }
            size_t n = left < fs->chunk_rows ? left : fs->chunk_rows;
            query_column *cols =
                calloc(fs->batch->column_count ? fs->batch->column_count : 1, sizeof *cols);
            if (!cols) {
                rv = INGOT_E_NOMEM;
                goto encode_failed;
            }
            query_batch view;
            query_batch_slice(fs->batch, fs->row, n, &view, cols);
            rv = arrow_ipc_batch_message(fs->ipc, &view, arrow_ipc_batch_message_count(fs->ipc) - 1,
                                         &fs->header, &body);
            free(cols);
            if (rv != 0) goto encode_failed;
            fs->row += n;
            fs->records_sent = true;
            *out = flight_data(&fs->header, NULL, 0, &body);
            return 1;
        }
        }
    }
encode_failed:
    strbuf_free(&body);
    snprintf(err, errlen, "encoding the Arrow IPC stream failed: %s", ingot_strerror(rv));
    return rv;
}

/* Send the next message, or end the call. */
static void advance(rpc *r)
{
    grpc_byte_buffer *msg = NULL;
    char err[256];
    int rv = produce(r, &msg, err, sizeof err);
    if (rv == 1) {
        rpc_send_step(r, msg);
        return;
    }
    query_stream_close(r->flight->query); /* the slot is free before the status goes out */
    r->flight->query = NULL;
    if (rv == 0)
        rpc_finish(r, NULL, GRPC_STATUS_OK, NULL);
    else
        rpc_finish(r, NULL,
                   rv == INGOT_E_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
                   err);
}

void flight_do_get(rpc *r)
{
    char err[300];
    grpc_slice bytes = rpc_request_bytes(r);
    Arrow__Flight__Protocol__Ticket *ticket = arrow__flight__protocol__ticket__unpack(
        NULL, GRPC_SLICE_LENGTH(bytes), GRPC_SLICE_START_PTR(bytes));
    grpc_slice_unref(bytes);
    flight_stream *fs = calloc(1, sizeof *fs);
    char *json = NULL;
    int rv = INGOT_E_NOMEM;
    if (!fs) goto fail;
    rv = INGOT_E_INVALID;
    if (!ticket || (ticket->ticket.len && memchr(ticket->ticket.data, '\0', ticket->ticket.len))) {
        snprintf(err, sizeof err, "invalid ticket: expected a Ticket whose bytes are UTF-8 JSON");
        goto fail;
    }
    rv = INGOT_E_NOMEM;
    if (!(json = malloc(ticket->ticket.len + 1))) goto fail;
    if (ticket->ticket.len) memcpy(json, ticket->ticket.data, ticket->ticket.len);
    json[ticket->ticket.len] = '\0';
    query_request req;
    if ((rv = parse_ticket(fs, json, &req, err, sizeof err)) != 0) goto fail;
    if ((rv = ingester_query(r->srv->ing, &req, &fs->query, err, sizeof err)) != 0) goto fail;
    free(json);
    arrow__flight__protocol__ticket__free_unpacked(ticket, NULL);
    r->flight = fs;
    advance(r);
    return;
fail:
    if (rv == INGOT_E_NOMEM) snprintf(err, sizeof err, "out of memory");
    rpc_finish(r, NULL, rpc_status_of(rv), err);
    free(json);
    if (ticket) arrow__flight__protocol__ticket__free_unpacked(ticket, NULL);
    flight_stream_free(fs);
}

void flight_do_get_step(rpc *r, bool ok)
{
    if (!ok) { /* the client went away: end the call (the status cannot reach it) */
        rpc_finish(r, NULL, GRPC_STATUS_CANCELLED, "cancelled");
        return;
    }
    advance(r);
}

/* --- Handshake ---------------------------------------------------------------------------- */

void flight_handshake(rpc *r)
{
    rpc_recv_step(r);
}

/*
 * A step of the echo: after a receive, send the message back (HandshakeResponse has the fields
 * of HandshakeRequest, so the bytes are echoed as they came); after a send, receive the next.
 * The client closing its side ends the call with OK.
 */
void flight_handshake_step(rpc *r, bool ok)
{
    if (!ok) {
        rpc_finish(r, NULL, GRPC_STATUS_CANCELLED, "cancelled");
        return;
    }
    if (r->handshake_sent) {
        r->handshake_sent = false;
        rpc_recv_step(r);
        return;
    }
    grpc_byte_buffer *msg = r->received;
    r->received = NULL;
    if (!msg) {
        rpc_finish(r, NULL, GRPC_STATUS_OK, NULL);
        return;
    }
    r->handshake_sent = true;
    rpc_send_step(r, msg);
}
