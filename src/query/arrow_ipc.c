/*
 * arrow_ipc.c: the Arrow IPC stream writer (see arrow_ipc.h).
 *
 * It owns nothing but the schema copied from the first batch and scratch space reused from
 * message to message. Wire format of one stream message (Arrow columnar format, "Encapsulated
 * message format"):
 *   uint32 0xFFFFFFFF   continuation marker
 *   int32  N            length of the flatbuffer Message that follows, padding included; N is a
 *                       multiple of 8, so the body starts 8-byte aligned in the stream
 *   N bytes             flatbuffer Message {version V5, header (Schema | DictionaryBatch |
 *                       RecordBatch), bodyLength}, built with flatbuf.c
 *   bodyLength bytes    the buffers, each starting 8-byte aligned and zero-padded to 8 bytes
 * and the stream ends with 0xFFFFFFFF 0x00000000.
 *
 * Body of a RecordBatch, per column in schema order (one FieldNode {length, null_count} per
 * column, the buffers listed in the same order in RecordBatch.buffers as {offset, length}):
 *   time, i64, u64, f64   validity, 8-byte values
 *   bool                  validity, value bitmap
 *   string                validity, int32 offsets (row_count + 1, from 0), UTF-8 bytes
 *   tag                   validity, int32 dictionary indices
 * A validity buffer is empty (length 0) when the column has no null in the batch, which Arrow
 * reads as all valid. A DictionaryBatch {id = column index, isDelta = false} carries a one-column
 * RecordBatch of the dictionary's strings (no validity, offsets, bytes).
 *
 * Invariants: what is written is exactly what the header describes: the body is planned first (a
 * list of pieces with offset and length), the header is built from the plan, then the pieces are
 * copied out. Bits past row_count in copied bitmaps are cleared; string offsets are rebased to
 * start at 0; the index of a null tag is written as 0 so it is always inside the dictionary.
 * Batches are checked against the schema and for internal consistency while planning, before
 * anything is appended; a bad batch is INGOT_E_INVALID and leaves the output untouched.
 */
#include "query/arrow_ipc.h"

#include "query/flatbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Schema.fbs / Message.fbs constants. */
enum {
    FB_METADATA_V5 = 4,
    FB_HEADER_SCHEMA = 1,
    FB_HEADER_DICTIONARY_BATCH = 2,
    FB_HEADER_RECORD_BATCH = 3,
    FB_TYPE_INT = 2,
    FB_TYPE_FLOATING_POINT = 3,
    FB_TYPE_UTF8 = 5,
    FB_TYPE_BOOL = 6,
    FB_TYPE_TIMESTAMP = 10,
    FB_PRECISION_DOUBLE = 2,
    FB_TIME_UNIT_NANOSECOND = 3,
};

enum piece_kind {
    PIECE_RAW,     /* count bytes copied from src (src may be NULL when count is 0) */
    PIECE_BITMAP,  /* count bits from src, bits past count cleared */
    PIECE_OFFSETS, /* count + 1 int32 offsets from src minus base (zeros when src is NULL) */
    PIECE_IDS,     /* count int32 indices from src; rows null in `validity` written as 0 */
};

typedef struct body_piece {
    enum piece_kind kind;
    const void *src;
    size_t count;
    int32_t base;
    const uint8_t *validity;
    uint64_t offset; /* in the body */
    uint64_t length; /* unpadded */
} body_piece;

struct arrow_ipc_writer {
    size_t column_count;
    char **names;
    enum column_type *types;
    size_t tag_count;
    size_t *tag_columns; /* column index of each tag column, in column order */
    /* Scratch, sized for column_count columns. */
    body_piece *pieces; /* 3 per column */
    size_t piece_count;
    uint64_t body_length;
    int64_t *nodes;   /* {length, null_count} per column */
    int64_t *buffers; /* {offset, length} per piece */
    strbuf header;    /* stream functions build headers here */
};

static uint64_t pad8(uint64_t v)
{
    return (v + 7) & ~(uint64_t)7;
}

void arrow_ipc_writer_free(arrow_ipc_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->column_count; i++)
        free(w->names ? w->names[i] : NULL);
    free(w->names);
    free(w->types);
    free(w->tag_columns);
    free(w->pieces);
    free(w->nodes);
    free(w->buffers);
    strbuf_free(&w->header);
    free(w);
}

int arrow_ipc_writer_new(const query_batch *first, arrow_ipc_writer **out)
{
    *out = NULL;
    size_t n = first->column_count;
    for (size_t i = 0; i < n; i++) {
        int t = first->columns[i].type;
        if (t < COLUMN_I64 || t > COLUMN_TAG || !first->columns[i].name) return INGOT_E_INVALID;
    }
    arrow_ipc_writer *w = calloc(1, sizeof *w);
    if (!w) return INGOT_E_NOMEM;
    size_t slots = n ? n : 1;
    w->names = calloc(slots, sizeof *w->names);
    w->types = calloc(slots, sizeof *w->types);
    w->tag_columns = calloc(slots, sizeof *w->tag_columns);
    w->pieces = calloc(3 * slots, sizeof *w->pieces);
    w->nodes = calloc(2 * slots, sizeof *w->nodes);
    w->buffers = calloc(6 * slots, sizeof *w->buffers);
    if (!w->names || !w->types || !w->tag_columns || !w->pieces || !w->nodes || !w->buffers)
        goto fail;
    w->column_count = n;
    for (size_t i = 0; i < n; i++) {
        w->names[i] = strdup(first->columns[i].name);
        if (!w->names[i]) goto fail;
        w->types[i] = first->columns[i].type;
        if (w->types[i] == COLUMN_TAG) w->tag_columns[w->tag_count++] = i;
    }
    *out = w;
    return 0;
fail:
    arrow_ipc_writer_free(w);
    return INGOT_E_NOMEM;
}

size_t arrow_ipc_batch_message_count(const arrow_ipc_writer *w)
{
    return w->tag_count + 1;
}

/* ---- body planning ---- */

static void plan_piece(arrow_ipc_writer *w, enum piece_kind kind, const void *src, size_t count,
                       int32_t base, const uint8_t *validity)
{
    body_piece *p = &w->pieces[w->piece_count++];
    p->kind = kind;
    p->src = src;
    p->count = count;
    p->base = base;
    p->validity = validity;
    switch (kind) {
    case PIECE_RAW:
        p->length = count;
        break;
    case PIECE_BITMAP:
        p->length = (count + 7) / 8;
        break;
    case PIECE_OFFSETS:
        p->length = 4 * ((uint64_t)count + 1);
        break;
    case PIECE_IDS:
        p->length = 4 * (uint64_t)count;
        break;
    }
    p->offset = w->body_length;
    w->body_length += pad8(p->length);
}

static bool row_valid(const uint8_t *validity, size_t row)
{
    return !validity || (validity[row / 8] >> (row % 8)) & 1;
}

static size_t count_nulls(const uint8_t *validity, size_t rows)
{
    if (!validity) return 0;
    size_t valid = 0;
    for (size_t i = 0; i < rows / 8; i++)
        valid += (size_t)__builtin_popcount(validity[i]);
    if (rows % 8)
        valid += (size_t)__builtin_popcount(validity[rows / 8] & ((1u << (rows % 8)) - 1));
    return rows - valid;
}

/* Offsets [0..count] must start at >= 0 and never decrease. */
static bool offsets_ok(const int32_t *offsets, size_t count)
{
    if (!offsets) return count == 0;
    if (offsets[0] < 0) return false;
    for (size_t i = 0; i < count; i++) {
        if (offsets[i + 1] < offsets[i]) return false;
    }
    return true;
}

/* Plan validity + the values of column c (rows rows); fills its FieldNode. */
static int plan_column(arrow_ipc_writer *w, size_t ci, const query_column *c, size_t rows)
{
    if (c->type != w->types[ci] || !c->name || strcmp(c->name, w->names[ci]) != 0)
        return INGOT_E_INVALID;
    size_t nulls = count_nulls(c->validity, rows);
    if (c->type == COLUMN_TIME && nulls) return INGOT_E_INVALID;
    w->nodes[2 * ci] = (int64_t)rows;
    w->nodes[2 * ci + 1] = (int64_t)nulls;
    plan_piece(w, PIECE_BITMAP, nulls ? c->validity : NULL, nulls ? rows : 0, 0, NULL);
    switch (c->type) {
    case COLUMN_I64:
    case COLUMN_TIME:
        plan_piece(w, PIECE_RAW, c->data.i64, 8 * rows, 0, NULL);
        break;
    case COLUMN_U64:
        plan_piece(w, PIECE_RAW, c->data.u64, 8 * rows, 0, NULL);
        break;
    case COLUMN_F64:
        plan_piece(w, PIECE_RAW, c->data.f64, 8 * rows, 0, NULL);
        break;
    case COLUMN_BOOL:
        plan_piece(w, PIECE_BITMAP, c->data.bits, rows, 0, NULL);
        break;
    case COLUMN_STRING: {
        const int32_t *off = c->data.str.offsets;
        if (!offsets_ok(off, rows)) return INGOT_E_INVALID;
        int32_t base = off ? off[0] : 0;
        size_t bytes = off ? (size_t)(off[rows] - base) : 0;
        plan_piece(w, PIECE_OFFSETS, off, rows, base, NULL);
        plan_piece(w, PIECE_RAW, bytes ? c->data.str.bytes + base : NULL, bytes, 0, NULL);
        break;
    }
    case COLUMN_TAG: {
        uint32_t dict = c->data.tag.dict_count;
        for (size_t r = 0; r < rows; r++) {
            if (!row_valid(c->validity, r)) continue;
            int32_t id = c->data.tag.ids[r];
            if (id < 0 || (uint32_t)id >= dict) return INGOT_E_INVALID;
        }
        plan_piece(w, PIECE_IDS, c->data.tag.ids, rows, 0, c->validity);
        break;
    }
    }
    return 0;
}

static int plan_record_batch(arrow_ipc_writer *w, const query_batch *b)
{
    w->piece_count = 0;
    w->body_length = 0;
    if (b->column_count != w->column_count) return INGOT_E_INVALID;
    for (size_t i = 0; i < b->column_count; i++) {
        int rc = plan_column(w, i, &b->columns[i], b->row_count);
        if (rc) return rc;
    }
    return 0;
}

static int plan_dictionary(arrow_ipc_writer *w, const query_column *c)
{
    w->piece_count = 0;
    w->body_length = 0;
    const int32_t *off = c->data.tag.dict_offsets;
    size_t n = c->data.tag.dict_count;
    if (!offsets_ok(off, n)) return INGOT_E_INVALID;
    int32_t base = off ? off[0] : 0;
    size_t bytes = off ? (size_t)(off[n] - base) : 0;
    w->nodes[0] = (int64_t)n;
    w->nodes[1] = 0;
    plan_piece(w, PIECE_BITMAP, NULL, 0, 0, NULL);
    plan_piece(w, PIECE_OFFSETS, off, n, base, NULL);
    plan_piece(w, PIECE_RAW, bytes ? c->data.tag.dict_bytes + base : NULL, bytes, 0, NULL);
    return 0;
}

/* Append the planned body to out. */
static void emit_body(const arrow_ipc_writer *w, strbuf *out)
{
    if (!strbuf_reserve(out, w->body_length)) return;
    for (size_t i = 0; i < w->piece_count; i++) {
        const body_piece *p = &w->pieces[i];
        char *dst = out->data + out->len;
        size_t padded = pad8(p->length);
        memset(dst + (p->length & ~(uint64_t)7), 0, padded - (p->length & ~(uint64_t)7));
        switch (p->kind) {
        case PIECE_RAW:
            if (p->length) memcpy(dst, p->src, p->length);
            break;
        case PIECE_BITMAP:
            if (p->length) {
                memcpy(dst, p->src, p->length);
                if (p->count % 8) dst[p->length - 1] &= (char)((1u << (p->count % 8)) - 1);
            }
            break;
        case PIECE_OFFSETS: {
            const int32_t *src = p->src;
            for (size_t r = 0; r <= p->count; r++) {
                int32_t v = src ? src[r] - p->base : 0;
                memcpy(dst + 4 * r, &v, 4);
            }
            break;
        }
        case PIECE_IDS: {
            const int32_t *src = p->src;
            if (p->count) memcpy(dst, src, 4 * p->count);
            if (p->validity) {
                for (size_t r = 0; r < p->count; r++) {
                    if (!row_valid(p->validity, r)) memset(dst + 4 * r, 0, 4);
                }
            }
            break;
        }
        }
        out->len += padded;
    }
    out->data[out->len] = '\0';
}

/* ---- headers ---- */

/* Begin a Message; returns the slot of its `header` offset. Writes the table at *msg. */
static size_t put_message(strbuf *h, uint8_t header_type, uint64_t body_length, size_t *msg)
{
    flatbuf_field f[] = {
        {.id = 0, .size = 2, .value = FB_METADATA_V5},
        {.id = 1, .size = 1, .value = header_type},
        {.id = 2, .is_offset = true},
        {.id = 3, .size = 8, .value = body_length},
    };
    *msg = flatbuf_table(h, f, 4);
    return f[2].slot;
}

/* The RecordBatch table for the current plan (node_count FieldNodes), referenced from slot. */
static void put_record_batch(arrow_ipc_writer *w, strbuf *h, size_t slot, int64_t length,
                             size_t node_count)
{
    flatbuf_field f[] = {
        {.id = 0, .size = 8, .value = (uint64_t)length},
        {.id = 1, .is_offset = true},
        {.id = 2, .is_offset = true},
    };
    flatbuf_patch(h, slot, flatbuf_table(h, f, 3));
    flatbuf_patch(h, f[1].slot, flatbuf_vector(h, w->nodes, 16, node_count, 8));
    for (size_t i = 0; i < w->piece_count; i++) {
        w->buffers[2 * i] = (int64_t)w->pieces[i].offset;
        w->buffers[2 * i + 1] = (int64_t)w->pieces[i].length;
    }
    flatbuf_patch(h, f[2].slot, flatbuf_vector(h, w->buffers, 16, w->piece_count, 8));
}

static size_t put_int_type(strbuf *h, int bits, bool is_signed)
{
    flatbuf_field f[] = {
        {.id = 0, .size = 4, .value = (uint64_t)bits},
        {.id = 1, .size = 1, .value = is_signed},
    };
    return flatbuf_table(h, f, 2);
}

/* A Field table for column ci, referenced from slot. */
static void put_field(const arrow_ipc_writer *w, strbuf *h, size_t slot, size_t ci)
{
    enum column_type t = w->types[ci];
    uint8_t type_type = FB_TYPE_INT;
    switch (t) {
    case COLUMN_I64:
    case COLUMN_U64:
        type_type = FB_TYPE_INT;
        break;
    case COLUMN_F64:
        type_type = FB_TYPE_FLOATING_POINT;
        break;
    case COLUMN_BOOL:
        type_type = FB_TYPE_BOOL;
        break;
    case COLUMN_STRING:
    case COLUMN_TAG:
        type_type = FB_TYPE_UTF8;
        break;
    case COLUMN_TIME:
        type_type = FB_TYPE_TIMESTAMP;
        break;
    }
    /* name, nullable, type_type, type, children; the dictionary last so only tags pass it */
    flatbuf_field f[] = {
        {.id = 0, .is_offset = true},
        {.id = 1, .size = 1, .value = t != COLUMN_TIME},
        {.id = 2, .size = 1, .value = type_type},
        {.id = 3, .is_offset = true},
        {.id = 5, .is_offset = true},
        {.id = 4, .is_offset = true}, /* dictionary: tags only */
    };
    flatbuf_patch(h, slot, flatbuf_table(h, f, t == COLUMN_TAG ? 6 : 5));
    flatbuf_patch(h, f[0].slot, flatbuf_string(h, w->names[ci], strlen(w->names[ci])));
    switch (t) {
    case COLUMN_I64:
    case COLUMN_U64:
        flatbuf_patch(h, f[3].slot, put_int_type(h, 64, t == COLUMN_I64));
        break;
    case COLUMN_F64: {
        flatbuf_field p[] = {{.id = 0, .size = 2, .value = FB_PRECISION_DOUBLE}};
        flatbuf_patch(h, f[3].slot, flatbuf_table(h, p, 1));
        break;
    }
    case COLUMN_BOOL:
    case COLUMN_STRING:
    case COLUMN_TAG:
        flatbuf_patch(h, f[3].slot, flatbuf_table(h, NULL, 0));
        break;
    case COLUMN_TIME: {
        flatbuf_field ts[] = {
            {.id = 0, .size = 2, .value = FB_TIME_UNIT_NANOSECOND},
            {.id = 1, .is_offset = true},
        };
        flatbuf_patch(h, f[3].slot, flatbuf_table(h, ts, 2));
        flatbuf_patch(h, ts[1].slot, flatbuf_string(h, "UTC", 3));
        break;
    }
    }
    flatbuf_patch(h, f[4].slot, flatbuf_vector(h, NULL, 4, 0, 4));
    if (t == COLUMN_TAG) {
        flatbuf_field d[] = {
            {.id = 0, .size = 8, .value = ci},
            {.id = 1, .is_offset = true},
            {.id = 2, .size = 1, .value = 0}, /* isOrdered */
        };
        flatbuf_patch(h, f[5].slot, flatbuf_table(h, d, 3));
        flatbuf_patch(h, d[1].slot, put_int_type(h, 32, true));
    }
}

int arrow_ipc_schema_message(arrow_ipc_writer *w, strbuf *header)
{
    flatbuf_begin(header);
    size_t msg;
    size_t slot = put_message(header, FB_HEADER_SCHEMA, 0, &msg);
    flatbuf_field s[] = {
        {.id = 0, .size = 2, .value = 0}, /* endianness: Little */
        {.id = 1, .is_offset = true},
    };
    flatbuf_patch(header, slot, flatbuf_table(header, s, 2));
    size_t fields = flatbuf_vector(header, NULL, 4, w->column_count, 4);
    flatbuf_patch(header, s[1].slot, fields);
    for (size_t i = 0; i < w->column_count; i++)
        put_field(w, header, fields + 4 + 4 * i, i);
    flatbuf_finish(header, msg);
    return strbuf_failed(header) ? INGOT_E_NOMEM : 0;
}

/* Plan message `index` of batch b and build its header. */
static int encode_batch_message(arrow_ipc_writer *w, const query_batch *b, size_t index,
                                strbuf *header)
{
    if (index > w->tag_count) return INGOT_E_INVALID;
    if (b->column_count != w->column_count) return INGOT_E_INVALID;
    int rc;
    flatbuf_begin(header);
    size_t msg;
    if (index < w->tag_count) {
        size_t ci = w->tag_columns[index];
        const query_column *c = &b->columns[ci];
        if (c->type != COLUMN_TAG || !c->name || strcmp(c->name, w->names[ci]) != 0)
            return INGOT_E_INVALID;
        if ((rc = plan_dictionary(w, c))) return rc;
        size_t slot = put_message(header, FB_HEADER_DICTIONARY_BATCH, w->body_length, &msg);
        flatbuf_field d[] = {
            {.id = 0, .size = 8, .value = ci},
            {.id = 1, .is_offset = true},
            {.id = 2, .size = 1, .value = 0}, /* isDelta */
        };
        flatbuf_patch(header, slot, flatbuf_table(header, d, 3));
        put_record_batch(w, header, d[1].slot, (int64_t)c->data.tag.dict_count, 1);
    } else {
        if ((rc = plan_record_batch(w, b))) return rc;
        size_t slot = put_message(header, FB_HEADER_RECORD_BATCH, w->body_length, &msg);
        put_record_batch(w, header, slot, (int64_t)b->row_count, w->column_count);
    }
    flatbuf_finish(header, msg);
    return strbuf_failed(header) ? INGOT_E_NOMEM : 0;
}

int arrow_ipc_batch_message(arrow_ipc_writer *w, const query_batch *b, size_t index, strbuf *header,
                            strbuf *body)
{
    int rc = encode_batch_message(w, b, index, header);
    if (rc) return rc;
    if (body) {
        emit_body(w, body);
        if (strbuf_failed(body)) return INGOT_E_NOMEM;
    }
    return 0;
}

void arrow_ipc_frame(strbuf *out, const void *header, size_t header_len, const void *body,
                     size_t body_len)
{
    uint32_t prefix[2] = {0xFFFFFFFFu, (uint32_t)header_len};
    strbuf_append(out, prefix, sizeof prefix);
    strbuf_append(out, header, header_len);
    if (body_len) strbuf_append(out, body, body_len);
}

int arrow_ipc_write_schema(arrow_ipc_writer *w, strbuf *out)
{
    int rc = arrow_ipc_schema_message(w, &w->header);
    if (rc) return rc;
    arrow_ipc_frame(out, w->header.data, w->header.len, NULL, 0);
    return strbuf_failed(out) ? INGOT_E_NOMEM : 0;
}

int arrow_ipc_write_batch(arrow_ipc_writer *w, const query_batch *b, strbuf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i <= w->tag_count; i++) {
        int rc = encode_batch_message(w, b, i, &w->header);
        if (rc) {
            if (rc == INGOT_E_INVALID && !strbuf_failed(out) && out->data) {
                out->len = start;
                out->data[start] = '\0';
            }
            return rc;
        }
        arrow_ipc_frame(out, w->header.data, w->header.len, NULL, 0);
        emit_body(w, out);
    }
    return strbuf_failed(out) ? INGOT_E_NOMEM : 0;
}

void arrow_ipc_write_end(strbuf *out)
{
    uint32_t eos[2] = {0xFFFFFFFFu, 0};
    strbuf_append(out, eos, sizeof eos);
}
