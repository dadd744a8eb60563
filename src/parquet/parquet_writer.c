/*
 * parquet_writer.c: writes one query_batch, or a column source that lends its columns one at a
 * time, as a complete Parquet file (see parquet.h for the type mapping). Proven against DuckDB, arrow-rs (parquet-wasm) and hyparquet by
 * tests/readers/verify_parquet.mjs.
 *
 * File layout (parquet-format, data page V1):
 *   "PAR1"
 *   for each row group (at most row_group_rows rows), for each column in batch order:
 *     [dictionary page]  PageHeader + ZSTD(PLAIN entries)          (dictionary columns only)
 *     data pages         PageHeader + ZSTD(levels + values), each at most PARQUET_PAGE_ROWS rows
 *                        and, for PLAIN strings, cut once PARQUET_PAGE_BYTES of values are in
 *   FileMetaData (Thrift compact), u32 LE length of it, "PAR1"
 * A V1 data page body is: for OPTIONAL columns the definition levels (u32 LE byte length, then
 * the RLE/bit-packed hybrid at bit width 1: 1 = value present); then the non-null values:
 *   INT64 (time, i64, u64)  DELTA_BINARY_PACKED          DOUBLE    PLAIN (8 bytes LE)
 *   BOOLEAN                 PLAIN (bits, LSB-first)      BYTE_ARRAY PLAIN (u32 LE length + bytes)
 *   dictionary columns      RLE_DICTIONARY: one byte bit width, then the hybrid of the indices
 * Tags always use a dictionary (the batch's tag dictionary, re-numbered per row group to the
 * entries that occur in it). String fields use one while it holds at most half of the chunk's
 * non-null values and PARQUET_DICT_MAX_BYTES of PLAIN entries, else PLAIN. A chunk with no
 * non-null value is written PLAIN (no dictionary page).
 *
 * Statistics per column chunk: null_count, and min_value/max_value (fields 5/6, exact) when the
 * chunk has a non-null value: INT64 signed (u64 unsigned, announced by INTEGER(64, unsigned)),
 * DOUBLE ignoring NaN (no min/max if all NaN; a zero min is written -0.0, a zero max +0.0),
 * BOOLEAN false < true, strings bytewise unsigned. Every column gets ColumnOrder TYPE_ORDER.
 *
 * Invariants: offsets in the metadata are relative to the start of this file (the length of
 * out when parquet_write was called); the batch is only read; nothing is shared between calls. A
 * column is held only while its chunk is written: string min/max statistics are copied out of
 * it (chunk_meta.owned) before it is given back, since the footer is written last.
 * The host is little-endian (x86-64/arm64), so doubles and u32 lengths are copied as they are.
 * Failure: the shape (names, types, sorting columns) is validated before anything is written,
 * each column's data when it is loaded (INGOT_E_INVALID with the column and row); on any error
 * out is truncated back to its length at entry.
 */
#include "parquet/parquet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "parquet/parquet_encoding.h"
#include "parquet/thrift_compact.h"

#define PARQUET_PAGE_ROWS 65536
#define PARQUET_PAGE_BYTES (1u << 20)
#define PARQUET_DICT_MAX_BYTES (1u << 20)

/* parquet.thrift enum values used here. */
enum {
    PQ_BOOLEAN = 0,
    PQ_INT64 = 2,
    PQ_DOUBLE = 5,
    PQ_BYTE_ARRAY = 6,
    PQ_REQUIRED = 0,
    PQ_OPTIONAL = 1,
    PQ_CONVERTED_UTF8 = 0,
    PQ_CONVERTED_UINT_64 = 14,
    PQ_ENC_PLAIN = 0,
    PQ_ENC_RLE = 3,
    PQ_ENC_DELTA_BINARY_PACKED = 5,
    PQ_ENC_RLE_DICTIONARY = 8,
    PQ_CODEC_ZSTD = 6,
    PQ_PAGE_DATA = 0,
    PQ_PAGE_DICTIONARY = 2,
};

typedef struct chunk_meta {
    int value_encoding;       /* of the data pages */
    bool has_dict;
    int64_t num_values;       /* rows, nulls included */
    int64_t null_count;
    int64_t uncompressed_bytes; /* pages with headers */
    int64_t compressed_bytes;
    int64_t start_offset;     /* first page (dictionary page if any) */
    int64_t data_page_offset;
    bool has_minmax;
    const void *min_ptr, *max_ptr; /* into the column (until keep_minmax), min_buf/max_buf or owned */
    size_t min_len, max_len;
    uint8_t min_buf[8], max_buf[8];
    uint8_t *owned; /* min then max, copied out of the column before it is given back */
} chunk_meta;

typedef struct pq_writer {
    const parquet_column_source *src;
    strbuf *out;
    size_t base; /* out->len at entry: file offset 0 */
    ZSTD_CCtx *cctx;
    int level;
    strbuf body;   /* uncompressed page body */
    strbuf header; /* page header */
    void *comp;    /* compressed page */
    size_t comp_cap;
    int64_t *vals;     /* [PARQUET_PAGE_ROWS] non-null values of a page */
    uint32_t *u32;     /* [PARQUET_PAGE_ROWS] levels or dictionary indices of a page */
    uint8_t *bools;    /* [PARQUET_PAGE_ROWS] */
    uint32_t *rg_ids;  /* [row group rows] string-field dictionary id per row */
    int32_t *tag_map;  /* [tag_cap] column id -> chunk id, -1 unused */
    uint32_t *tag_used; /* [tag_cap] chunk id -> column id */
    size_t tag_cap;    /* the largest tag dictionary so far */
    char *err;
    size_t errlen;
} pq_writer;

static int fail_msg(pq_writer *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_msg(pq_writer *w, int code, const char *fmt, ...)
{
    if (w->err && w->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, w->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static inline bool row_valid(const query_column *c, size_t i)
{
    return !c->validity || (c->validity[i >> 3] >> (i & 7)) & 1;
}

static inline void put_u32le(strbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    strbuf_append(b, x, 4);
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int r = n ? memcmp(a, b, n) : 0;
    if (r != 0) {
        return r;
    }
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* ---- validation ---------------------------------------------------------------------------- */

/* The shape: names (present, distinct), types, row count, sorting columns. */
static int validate_shape(pq_writer *w, const parquet_write_options *opts)
{
    const parquet_column_source *src = w->src;
    if (src->column_count == 0) {
        return fail_msg(w, INGOT_E_INVALID, "parquet: a batch needs at least one column");
    }
    if (src->row_count > (size_t)INT64_MAX / 2) {
        return fail_msg(w, INGOT_E_INVALID, "parquet: row count too large");
    }
    for (size_t ci = 0; ci < src->column_count; ci++) {
        const char *name = src->names[ci];
        if (!name || !name[0]) {
            return fail_msg(w, INGOT_E_INVALID, "parquet: column %zu has no name", ci);
        }
        for (size_t cj = 0; cj < ci; cj++) {
            if (strcmp(src->names[cj], name) == 0) {
                return fail_msg(w, INGOT_E_INVALID, "parquet: duplicate column \"%s\"", name);
            }
        }
        if (src->types[ci] < COLUMN_I64 || src->types[ci] > COLUMN_TAG) {
            return fail_msg(w, INGOT_E_INVALID, "parquet: column \"%s\": unknown type %d", name,
                            (int)src->types[ci]);
        }
    }
    for (size_t s = 0; s < opts->sorting_column_count; s++) {
        size_t ci = 0;
        while (ci < src->column_count && strcmp(src->names[ci], opts->sorting_columns[s]) != 0) {
            ci++;
        }
        if (ci == src->column_count) {
            return fail_msg(w, INGOT_E_INVALID, "parquet: sorting column \"%s\" not in the batch",
                            opts->sorting_columns[s]);
        }
    }
    return 0;
}

/* The data of one column as loaded: it must match the shape and be self-consistent. */
static int validate_column(pq_writer *w, size_t ci, const query_column *c)
{
    size_t rows = w->src->row_count;
    const char *name = w->src->names[ci];
    if (c->type != w->src->types[ci]) {
        return fail_msg(w, INGOT_E_INVALID, "parquet: column \"%s\" loaded as type %d, not %d",
                        name, (int)c->type, (int)w->src->types[ci]);
    }
    switch (c->type) {
    case COLUMN_TIME:
        for (size_t i = 0; i < rows && c->validity; i++) {
            if (!row_valid(c, i)) {
                return fail_msg(w, INGOT_E_INVALID, "parquet: column \"%s\", row %zu: time is null",
                                name, i);
            }
        }
        break;
    case COLUMN_STRING:
        if (rows && (!c->data.str.offsets || c->data.str.offsets[0] < 0)) {
            return fail_msg(w, INGOT_E_INVALID, "parquet: column \"%s\": bad string offsets", name);
        }
        for (size_t i = 0; i < rows; i++) {
            if (c->data.str.offsets[i + 1] < c->data.str.offsets[i]) {
                return fail_msg(w, INGOT_E_INVALID,
                                "parquet: column \"%s\", row %zu: decreasing string offset", name, i);
            }
        }
        break;
    case COLUMN_TAG: {
        uint32_t n = c->data.tag.dict_count;
        if (n > INT32_MAX - 1 ||
            (n && (!c->data.tag.dict_offsets || c->data.tag.dict_offsets[0] < 0))) {
            return fail_msg(w, INGOT_E_INVALID, "parquet: column \"%s\": bad tag dictionary", name);
        }
        for (uint32_t k = 0; k < n; k++) {
            if (c->data.tag.dict_offsets[k + 1] < c->data.tag.dict_offsets[k]) {
                return fail_msg(w, INGOT_E_INVALID,
                                "parquet: column \"%s\": decreasing dictionary offset %u", name, k);
            }
        }
        for (size_t i = 0; i < rows; i++) {
            if (row_valid(c, i) && (c->data.tag.ids[i] < 0 || (uint32_t)c->data.tag.ids[i] >= n)) {
                return fail_msg(w, INGOT_E_INVALID,
                                "parquet: column \"%s\", row %zu: tag id %d out of range", name, i,
                                (int)c->data.tag.ids[i]);
            }
        }
        if (n > w->tag_cap) { /* room to renumber this dictionary per row group */
            int32_t *map = realloc(w->tag_map, n * sizeof *map);
            if (map) w->tag_map = map;
            uint32_t *used = map ? realloc(w->tag_used, n * sizeof *used) : NULL;
            if (used) w->tag_used = used;
            if (!map || !used) return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory");
            w->tag_cap = n;
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

/* Copy a chunk's string min/max out of its column, which is about to be given back. */
static int keep_minmax(pq_writer *w, chunk_meta *m)
{
    if (!m->has_minmax || m->min_ptr == m->min_buf) {
        return 0;
    }
    m->owned = malloc(m->min_len + m->max_len + 1);
    if (!m->owned) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory");
    }
    if (m->min_len) memcpy(m->owned, m->min_ptr, m->min_len);
    if (m->max_len) memcpy(m->owned + m->min_len, m->max_ptr, m->max_len);
    m->min_ptr = m->owned;
    m->max_ptr = m->owned + m->min_len;
    return 0;
}

/* ---- pages ----------------------------------------------------------------------------------- */

/*
 * Compress w->body and append header + compressed body to the file. dict_values >= 0 makes a
 * dictionary page, else a data page of num_values with value encoding enc.
 */
static int emit_page(pq_writer *w, chunk_meta *m, int page_type, int32_t num_values, int enc)
{
    if (strbuf_failed(&w->body)) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory encoding a page");
    }
    if (w->body.len > INT32_MAX) {
        return fail_msg(w, INGOT_E_INVALID, "parquet: a page exceeds 2 GiB");
    }
    size_t bound = ZSTD_compressBound(w->body.len);
    if (bound > w->comp_cap) {
        void *p = realloc(w->comp, bound);
        if (!p) {
            return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory compressing a page");
        }
        w->comp = p;
        w->comp_cap = bound;
    }
    size_t clen = ZSTD_compressCCtx(w->cctx, w->comp, w->comp_cap, w->body.data, w->body.len,
                                    w->level);
    if (ZSTD_isError(clen)) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: zstd: %s", ZSTD_getErrorName(clen));
    }
    strbuf_reset(&w->header);
    thrift_writer t;
    thrift_writer_init(&t, &w->header);
    thrift_field_i32(&t, 1, page_type);
    thrift_field_i32(&t, 2, (int32_t)w->body.len);
    thrift_field_i32(&t, 3, (int32_t)clen);
    if (page_type == PQ_PAGE_DICTIONARY) {
        thrift_field_struct_begin(&t, 7); /* DictionaryPageHeader */
        thrift_field_i32(&t, 1, num_values);
        thrift_field_i32(&t, 2, PQ_ENC_PLAIN);
        thrift_struct_end(&t);
    } else {
        thrift_field_struct_begin(&t, 5); /* DataPageHeader */
        thrift_field_i32(&t, 1, num_values);
        thrift_field_i32(&t, 2, enc);
        thrift_field_i32(&t, 3, PQ_ENC_RLE);
        thrift_field_i32(&t, 4, PQ_ENC_RLE);
        thrift_struct_end(&t);
    }
    thrift_struct_end(&t);
    if (thrift_writer_failed(&t)) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory writing a page header");
    }
    int64_t offset = (int64_t)(w->out->len - w->base);
    if (page_type != PQ_PAGE_DICTIONARY && m->data_page_offset < 0) {
        m->data_page_offset = offset;
    }
    if (m->start_offset < 0) {
        m->start_offset = offset;
    }
    strbuf_append(w->out, w->header.data, w->header.len);
    strbuf_append(w->out, w->comp, clen);
    if (strbuf_failed(w->out)) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory appending a page");
    }
    m->uncompressed_bytes += (int64_t)(w->header.len + w->body.len);
    m->compressed_bytes += (int64_t)(w->header.len + clen);
    return 0;
}

static void set_minmax_i64(chunk_meta *m, int64_t lo, int64_t hi)
{
    memcpy(m->min_buf, &lo, 8);
    memcpy(m->max_buf, &hi, 8);
    m->min_ptr = m->min_buf;
    m->max_ptr = m->max_buf;
    m->min_len = m->max_len = 8;
    m->has_minmax = true;
}

/* Statistics of a chunk with a non-dictionary representation (dictionary chunks: see below). */
static void chunk_stats(const query_column *c, size_t r0, size_t r1, chunk_meta *m)
{
    bool any = false;
    switch (c->type) {
    case COLUMN_TIME:
    case COLUMN_I64: {
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (size_t i = r0; i < r1; i++) {
            if (row_valid(c, i)) {
                int64_t v = c->data.i64[i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                any = true;
            }
        }
        if (any) {
            set_minmax_i64(m, lo, hi);
        }
        break;
    }
    case COLUMN_U64: {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t i = r0; i < r1; i++) {
            if (row_valid(c, i)) {
                uint64_t v = c->data.u64[i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                any = true;
            }
        }
        if (any) {
            set_minmax_i64(m, (int64_t)lo, (int64_t)hi);
        }
        break;
    }
    case COLUMN_F64: {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = r0; i < r1; i++) {
            double v = c->data.f64[i];
            if (row_valid(c, i) && !isnan(v)) {
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                any = true;
            }
        }
        if (any) {
            if (lo == 0.0) {
                lo = -0.0;
            }
            if (hi == 0.0) {
                hi = 0.0;
            }
            memcpy(m->min_buf, &lo, 8);
            memcpy(m->max_buf, &hi, 8);
            m->min_ptr = m->min_buf;
            m->max_ptr = m->max_buf;
            m->min_len = m->max_len = 8;
            m->has_minmax = true;
        }
        break;
    }
    case COLUMN_BOOL: {
        bool seen[2] = {false, false};
        for (size_t i = r0; i < r1; i++) {
            if (row_valid(c, i)) {
                seen[(c->data.bits[i >> 3] >> (i & 7)) & 1] = true;
            }
        }
        if (seen[0] || seen[1]) {
            m->min_buf[0] = seen[0] ? 0 : 1;
            m->max_buf[0] = seen[1] ? 1 : 0;
            m->min_ptr = m->min_buf;
            m->max_ptr = m->max_buf;
            m->min_len = m->max_len = 1;
            m->has_minmax = true;
        }
        break;
    }
    case COLUMN_STRING: {
        const int32_t *off = c->data.str.offsets;
        for (size_t i = r0; i < r1; i++) {
            if (!row_valid(c, i)) {
                continue;
            }
            const char *p = c->data.str.bytes + off[i];
            size_t len = (size_t)(off[i + 1] - off[i]);
            if (!any || bytes_cmp(p, len, m->min_ptr, m->min_len) < 0) {
                m->min_ptr = p;
                m->min_len = len;
            }
            if (!any || bytes_cmp(p, len, m->max_ptr, m->max_len) > 0) {
                m->max_ptr = p;
                m->max_len = len;
            }
            any = true;
        }
        m->has_minmax = any;
        break;
    }
    default:
        break;
    }
}

/* Min/max over dictionary entries (every entry occurs in the chunk). */
static void dict_stats(chunk_meta *m, const char *const *ptrs, const uint32_t *lens, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (k == 0 || bytes_cmp(ptrs[k], lens[k], m->min_ptr, m->min_len) < 0) {
            m->min_ptr = ptrs[k];
            m->min_len = lens[k];
        }
        if (k == 0 || bytes_cmp(ptrs[k], lens[k], m->max_ptr, m->max_len) > 0) {
            m->max_ptr = ptrs[k];
            m->max_len = lens[k];
        }
    }
    m->has_minmax = n > 0;
}

/* End of the page starting at row a (exclusive), for a chunk ending at r1. */
static size_t page_end(const query_column *c, bool plain_strings, size_t a, size_t r1)
{
    size_t end = r1 - a > PARQUET_PAGE_ROWS ? a + PARQUET_PAGE_ROWS : r1;
    if (plain_strings) {
        const int32_t *off = c->data.str.offsets;
        size_t bytes = 0;
        for (size_t i = a; i < end; i++) {
            bytes += 4 + (size_t)(off[i + 1] - off[i]);
            if (bytes >= PARQUET_PAGE_BYTES) {
                return i + 1;
            }
        }
    }
    return end;
}

/* Data page body of rows [a, b) into w->body. dict_ids: per-row ids relative to r0, or NULL. */
static void encode_data_page(pq_writer *w, const query_column *c, size_t a, size_t b,
                             const chunk_meta *m, size_t r0, int dict_bit_width)
{
    strbuf_reset(&w->body);
    size_t n = b - a;
    if (c->type != COLUMN_TIME) {
        for (size_t i = 0; i < n; i++) {
            w->u32[i] = row_valid(c, a + i);
        }
        size_t at = w->body.len;
        put_u32le(&w->body, 0);
        parquet_rle_hybrid(&w->body, w->u32, n, 1);
        if (!strbuf_failed(&w->body)) {
            uint32_t len = (uint32_t)(w->body.len - at - 4);
            uint8_t x[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                            (uint8_t)(len >> 24)};
            memcpy(w->body.data + at, x, 4);
        }
    }
    size_t nv = 0;
    if (m->value_encoding == PQ_ENC_RLE_DICTIONARY) {
        for (size_t i = a; i < b; i++) {
            if (row_valid(c, i)) {
                w->u32[nv++] = c->type == COLUMN_TAG ? (uint32_t)w->tag_map[c->data.tag.ids[i]]
                                                     : w->rg_ids[i - r0];
            }
        }
        strbuf_putc(&w->body, (char)dict_bit_width);
        parquet_rle_hybrid(&w->body, w->u32, nv, dict_bit_width);
        return;
    }
    switch (c->type) {
    case COLUMN_TIME:
    case COLUMN_I64:
    case COLUMN_U64:
        for (size_t i = a; i < b; i++) {
            if (row_valid(c, i)) {
                w->vals[nv++] = c->data.i64[i];
            }
        }
        parquet_delta_binary_packed(&w->body, w->vals, nv);
        break;
    case COLUMN_F64:
        for (size_t i = a; i < b; i++) {
            if (row_valid(c, i)) {
                strbuf_append(&w->body, &c->data.f64[i], 8);
            }
        }
        break;
    case COLUMN_BOOL:
        for (size_t i = a; i < b; i++) {
            if (row_valid(c, i)) {
                w->bools[nv++] = (c->data.bits[i >> 3] >> (i & 7)) & 1;
            }
        }
        parquet_plain_bools(&w->body, w->bools, nv);
        break;
    case COLUMN_STRING: {
        const int32_t *off = c->data.str.offsets;
        for (size_t i = a; i < b; i++) {
            if (row_valid(c, i)) {
                uint32_t len = (uint32_t)(off[i + 1] - off[i]);
                put_u32le(&w->body, len);
                strbuf_append(&w->body, c->data.str.bytes + off[i], len);
            }
        }
        break;
    }
    default: /* COLUMN_TAG with no non-null value: nothing to write */
        break;
    }
}

/* Write the dictionary page of n entries; sets the dictionary statistics. */
static int emit_dict_page(pq_writer *w, chunk_meta *m, const char *const *ptrs,
                          const uint32_t *lens, size_t n)
{
    strbuf_reset(&w->body);
    for (size_t k = 0; k < n; k++) {
        put_u32le(&w->body, lens[k]);
        strbuf_append(&w->body, ptrs[k], lens[k]);
    }
    dict_stats(m, ptrs, lens, n);
    m->has_dict = true;
    return emit_page(w, m, PQ_PAGE_DICTIONARY, (int32_t)n, PQ_ENC_PLAIN);
}

static int write_chunk(pq_writer *w, const query_column *c, size_t r0, size_t r1, chunk_meta *m)
{
    memset(m, 0, sizeof *m);
    m->start_offset = m->data_page_offset = -1;
    m->num_values = (int64_t)(r1 - r0);
    size_t non_null = 0;
    for (size_t i = r0; i < r1; i++) {
        non_null += row_valid(c, i);
    }
    m->null_count = (int64_t)(r1 - r0 - non_null);
    int dict_bit_width = 0;
    parquet_dict d = {0};
    const char **tag_ptrs = NULL;
    uint32_t *tag_lens = NULL;
    int rc = 0;

    switch (c->type) {
    case COLUMN_TIME:
    case COLUMN_I64:
    case COLUMN_U64:
        m->value_encoding = PQ_ENC_DELTA_BINARY_PACKED;
        break;
    case COLUMN_TAG:
        m->value_encoding = non_null ? PQ_ENC_RLE_DICTIONARY : PQ_ENC_PLAIN;
        break;
    default:
        m->value_encoding = PQ_ENC_PLAIN;
        break;
    }

    if (c->type == COLUMN_STRING && non_null > 1) {
        rc = parquet_dict_init(&d, non_null / 2);
        if (rc < 0) {
            rc = fail_msg(w, rc, "parquet: out of memory building a dictionary");
            goto fail;
        }
        bool fits = true;
        const int32_t *off = c->data.str.offsets;
        for (size_t i = r0; i < r1 && fits; i++) {
            if (row_valid(c, i)) {
                fits = parquet_dict_add(&d, c->data.str.bytes + off[i],
                                        (uint32_t)(off[i + 1] - off[i]), &w->rg_ids[i - r0]) == 0 &&
                       d.plain_bytes <= PARQUET_DICT_MAX_BYTES;
            }
        }
        if (fits) {
            m->value_encoding = PQ_ENC_RLE_DICTIONARY;
            dict_bit_width = parquet_bit_width(d.count - 1);
            rc = emit_dict_page(w, m, d.entry_ptr, d.entry_len, d.count);
            if (rc < 0) {
                goto fail;
            }
        }
    } else if (c->type == COLUMN_TAG && non_null) {
        const int32_t *doff = c->data.tag.dict_offsets;
        size_t used = 0;
        for (uint32_t k = 0; k < c->data.tag.dict_count; k++) {
            w->tag_map[k] = -1;
        }
        for (size_t i = r0; i < r1; i++) {
            int32_t id = c->data.tag.ids[i];
            if (row_valid(c, i) && w->tag_map[id] < 0) {
                w->tag_map[id] = (int32_t)used;
                w->tag_used[used++] = (uint32_t)id;
            }
        }
        tag_ptrs = malloc(used * sizeof *tag_ptrs);
        tag_lens = malloc(used * sizeof *tag_lens);
        if (!tag_ptrs || !tag_lens) {
            rc = fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory building a dictionary");
            goto fail;
        }
        for (size_t k = 0; k < used; k++) {
            uint32_t id = w->tag_used[k];
            tag_ptrs[k] = c->data.tag.dict_bytes + doff[id];
            tag_lens[k] = (uint32_t)(doff[id + 1] - doff[id]);
        }
        dict_bit_width = parquet_bit_width(used - 1);
        rc = emit_dict_page(w, m, tag_ptrs, tag_lens, used);
        if (rc < 0) {
            goto fail;
        }
    }
    if (dict_bit_width == 0) {
        dict_bit_width = 1; /* a one-entry dictionary: width 1 is accepted by every reader */
    }
    if (!m->has_dict) {
        chunk_stats(c, r0, r1, m);
    }
    bool plain_strings = c->type == COLUMN_STRING && m->value_encoding == PQ_ENC_PLAIN;
    for (size_t a = r0; a < r1;) {
        size_t b = page_end(c, plain_strings, a, r1);
        encode_data_page(w, c, a, b, m, r0, dict_bit_width);
        rc = emit_page(w, m, PQ_PAGE_DATA, (int32_t)(b - a), m->value_encoding);
        if (rc < 0) {
            goto fail;
        }
        a = b;
    }
    rc = 0;
fail:
    parquet_dict_free(&d);
    free(tag_ptrs);
    free(tag_lens);
    return rc;
}

/* ---- footer ---------------------------------------------------------------------------------- */

static int physical_type(enum column_type t)
{
    switch (t) {
    case COLUMN_F64:
        return PQ_DOUBLE;
    case COLUMN_BOOL:
        return PQ_BOOLEAN;
    case COLUMN_STRING:
    case COLUMN_TAG:
        return PQ_BYTE_ARRAY;
    default:
        return PQ_INT64;
    }
}

static void write_schema(thrift_writer *t, const parquet_column_source *src)
{
    thrift_field_list_begin(t, 2, THRIFT_STRUCT, src->column_count + 1);
    thrift_elem_struct_begin(t); /* root */
    thrift_field_string(t, 4, "schema");
    thrift_field_i32(t, 5, (int32_t)src->column_count);
    thrift_struct_end(t);
    for (size_t ci = 0; ci < src->column_count; ci++) {
        enum column_type type = src->types[ci];
        thrift_elem_struct_begin(t);
        thrift_field_i32(t, 1, physical_type(type));
        thrift_field_i32(t, 3, type == COLUMN_TIME ? PQ_REQUIRED : PQ_OPTIONAL);
        thrift_field_string(t, 4, src->names[ci]);
        if (type == COLUMN_STRING || type == COLUMN_TAG) {
            thrift_field_i32(t, 6, PQ_CONVERTED_UTF8);
            thrift_field_struct_begin(t, 10); /* LogicalType */
            thrift_field_struct_begin(t, 1);  /* STRING */
            thrift_struct_end(t);
            thrift_struct_end(t);
        } else if (type == COLUMN_U64) {
            thrift_field_i32(t, 6, PQ_CONVERTED_UINT_64);
            thrift_field_struct_begin(t, 10);
            thrift_field_struct_begin(t, 10); /* INTEGER */
            thrift_field_i8(t, 1, 64);
            thrift_field_bool(t, 2, false);
            thrift_struct_end(t);
            thrift_struct_end(t);
        } else if (type == COLUMN_TIME) {
            thrift_field_struct_begin(t, 10);
            thrift_field_struct_begin(t, 8); /* TIMESTAMP */
            thrift_field_bool(t, 1, true);  /* isAdjustedToUTC */
            thrift_field_struct_begin(t, 2); /* unit */
            thrift_field_struct_begin(t, 3); /* NANOS */
            thrift_struct_end(t);
            thrift_struct_end(t);
            thrift_struct_end(t);
            thrift_struct_end(t);
        }
        thrift_struct_end(t);
    }
}

static void write_column_chunk(thrift_writer *t, enum column_type type, const char *name,
                               const chunk_meta *m)
{
    thrift_elem_struct_begin(t); /* ColumnChunk */
    thrift_field_i64(t, 2, m->start_offset);
    thrift_field_struct_begin(t, 3); /* ColumnMetaData */
    thrift_field_i32(t, 1, physical_type(type));
    int encs[3], ne = 0;
    if (m->has_dict) {
        encs[ne++] = PQ_ENC_PLAIN;
    }
    encs[ne++] = PQ_ENC_RLE;
    encs[ne++] = m->value_encoding;
    /* sorted, without duplicates */
    for (int i = 0; i < ne; i++) {
        for (int j = i + 1; j < ne; j++) {
            if (encs[j] < encs[i]) {
                int x = encs[i];
                encs[i] = encs[j];
                encs[j] = x;
            }
        }
    }
    int nu = 0;
    for (int i = 0; i < ne; i++) {
        if (nu == 0 || encs[nu - 1] != encs[i]) {
            encs[nu++] = encs[i];
        }
    }
    thrift_field_list_begin(t, 2, THRIFT_I32, (size_t)nu);
    for (int i = 0; i < nu; i++) {
        thrift_elem_i32(t, encs[i]);
    }
    thrift_field_list_begin(t, 3, THRIFT_BINARY, 1);
    thrift_elem_string(t, name);
    thrift_field_i32(t, 4, PQ_CODEC_ZSTD);
    thrift_field_i64(t, 5, m->num_values);
    thrift_field_i64(t, 6, m->uncompressed_bytes);
    thrift_field_i64(t, 7, m->compressed_bytes);
    thrift_field_i64(t, 9, m->data_page_offset);
    if (m->has_dict) {
        thrift_field_i64(t, 11, m->start_offset);
    }
    thrift_field_struct_begin(t, 12); /* Statistics */
    thrift_field_i64(t, 3, m->null_count);
    if (m->has_minmax) {
        thrift_field_binary(t, 5, m->max_ptr, m->max_len);
        thrift_field_binary(t, 6, m->min_ptr, m->min_len);
    }
    thrift_struct_end(t);
    thrift_struct_end(t); /* ColumnMetaData */
    thrift_struct_end(t); /* ColumnChunk */
}

static int write_footer(pq_writer *w, const parquet_write_options *opts, const chunk_meta *metas,
                        size_t rg_count, size_t rg_rows)
{
    const parquet_column_source *b = w->src;
    size_t footer_start = w->out->len;
    thrift_writer t;
    thrift_writer_init(&t, w->out);
    thrift_field_i32(&t, 1, 1); /* version */
    write_schema(&t, b);
    thrift_field_i64(&t, 3, (int64_t)b->row_count);
    thrift_field_list_begin(&t, 4, THRIFT_STRUCT, rg_count);
    for (size_t g = 0; g < rg_count; g++) {
        const chunk_meta *row = &metas[g * b->column_count];
        size_t r0 = g * rg_rows;
        size_t rows = b->row_count - r0 < rg_rows ? b->row_count - r0 : rg_rows;
        int64_t total_uncompressed = 0, total_compressed = 0;
        thrift_elem_struct_begin(&t);
        thrift_field_list_begin(&t, 1, THRIFT_STRUCT, b->column_count);
        for (size_t ci = 0; ci < b->column_count; ci++) {
            write_column_chunk(&t, b->types[ci], b->names[ci], &row[ci]);
            total_uncompressed += row[ci].uncompressed_bytes;
            total_compressed += row[ci].compressed_bytes;
        }
        thrift_field_i64(&t, 2, total_uncompressed);
        thrift_field_i64(&t, 3, (int64_t)rows);
        if (opts->sorting_column_count) {
            thrift_field_list_begin(&t, 4, THRIFT_STRUCT, opts->sorting_column_count);
            for (size_t s = 0; s < opts->sorting_column_count; s++) {
                size_t ci = 0;
                while (strcmp(b->names[ci], opts->sorting_columns[s]) != 0) {
                    ci++; /* validate_shape() checked every name exists */
                }
                thrift_elem_struct_begin(&t);
                thrift_field_i32(&t, 1, (int32_t)ci);
                thrift_field_bool(&t, 2, false); /* descending */
                thrift_field_bool(&t, 3, true);  /* nulls_first */
                thrift_struct_end(&t);
            }
        }
        thrift_field_i64(&t, 5, row[0].start_offset);
        thrift_field_i64(&t, 6, total_compressed);
        thrift_field_i16(&t, 7, (int16_t)g); /* ordinal */
        thrift_struct_end(&t);
    }
    if (opts->metadata_json) {
        thrift_field_list_begin(&t, 5, THRIFT_STRUCT, 1);
        thrift_elem_struct_begin(&t);
        thrift_field_string(&t, 1, "ingot");
        thrift_field_string(&t, 2, opts->metadata_json);
        thrift_struct_end(&t);
    }
    thrift_field_string(&t, 6, "ingot");
    thrift_field_list_begin(&t, 7, THRIFT_STRUCT, b->column_count);
    for (size_t ci = 0; ci < b->column_count; ci++) {
        thrift_elem_struct_begin(&t); /* ColumnOrder */
        thrift_field_struct_begin(&t, 1); /* TYPE_ORDER */
        thrift_struct_end(&t);
        thrift_struct_end(&t);
    }
    thrift_struct_end(&t);
    if (thrift_writer_failed(&t)) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory writing the footer");
    }
    put_u32le(w->out, (uint32_t)(w->out->len - footer_start));
    strbuf_append(w->out, "PAR1", 4);
    if (strbuf_failed(w->out)) {
        return fail_msg(w, INGOT_E_NOMEM, "parquet: out of memory writing the footer");
    }
    return 0;
}

/* ---- entry point ----------------------------------------------------------------------------- */

int parquet_write_source(const parquet_column_source *src, const parquet_write_options *opts_in,
                         strbuf *out, char *err, size_t errlen)
{
    static const parquet_write_options no_opts;
    const parquet_write_options *opts = opts_in ? opts_in : &no_opts;
    pq_writer w = {.src = src, .out = out, .base = out->len, .err = err, .errlen = errlen};
    w.level = opts->zstd_level ? opts->zstd_level : 3;
    size_t rg_rows = opts->row_group_rows ? opts->row_group_rows : PARQUET_DEFAULT_ROW_GROUP_ROWS;
    size_t rg_count = (src->row_count + rg_rows - 1) / rg_rows;
    size_t meta_count = rg_count * src->column_count;
    chunk_meta *metas = NULL;
    int rc = validate_shape(&w, opts);
    if (rc < 0) {
        goto fail;
    }
    if (err && errlen) {
        err[0] = '\0';
    }
    size_t rg_cap = src->row_count < rg_rows ? src->row_count : rg_rows;
    w.cctx = ZSTD_createCCtx();
    w.vals = malloc(PARQUET_PAGE_ROWS * sizeof *w.vals);
    w.u32 = malloc(PARQUET_PAGE_ROWS * sizeof *w.u32);
    w.bools = malloc(PARQUET_PAGE_ROWS);
    w.rg_ids = malloc((rg_cap ? rg_cap : 1) * sizeof *w.rg_ids);
    metas = calloc(meta_count + 1, sizeof *metas);
    if (!w.cctx || !w.vals || !w.u32 || !w.bools || !w.rg_ids || !metas) {
        rc = fail_msg(&w, INGOT_E_NOMEM, "parquet: out of memory");
        goto fail;
    }
    strbuf_append(out, "PAR1", 4);
    for (size_t g = 0; g < rg_count; g++) {
        size_t r0 = g * rg_rows;
        size_t r1 = src->row_count - r0 < rg_rows ? src->row_count : r0 + rg_rows;
        for (size_t ci = 0; ci < src->column_count; ci++) {
            chunk_meta *m = &metas[g * src->column_count + ci];
            query_column col = {0};
            rc = src->load(src->self, ci, &col);
            if (rc < 0) {
                fail_msg(&w, rc, "parquet: cannot load column \"%s\": %s", src->names[ci],
                         ingot_strerror(rc));
            } else if ((rc = validate_column(&w, ci, &col)) == 0 &&
                       (rc = write_chunk(&w, &col, r0, r1, m)) == 0) {
                rc = keep_minmax(&w, m);
            }
            src->unload(src->self, &col);
            if (rc < 0) {
                goto fail;
            }
        }
    }
    rc = write_footer(&w, opts, metas, rg_count, rg_rows);
fail:
    if (rc < 0 && out->len > w.base && !strbuf_failed(out)) {
        out->len = w.base;
        if (out->cap) {
            out->data[out->len] = '\0';
        }
    }
    ZSTD_freeCCtx(w.cctx);
    strbuf_free(&w.body);
    strbuf_free(&w.header);
    free(w.comp);
    free(w.vals);
    free(w.u32);
    free(w.bools);
    free(w.rg_ids);
    free(w.tag_map);
    free(w.tag_used);
    for (size_t i = 0; metas && i < meta_count; i++) {
        free(metas[i].owned);
    }
    free(metas);
    return rc;
}

/* A whole batch as a column source: columns are lent, not copied. */
typedef struct batch_source {
    const query_batch *batch;
    const char **names;
    enum column_type *types;
} batch_source;

static int batch_load(void *self, size_t ci, query_column *out)
{
    const batch_source *bs = self;
    *out = bs->batch->columns[ci];
    return 0;
}

static void batch_unload(void *self, query_column *col)
{
    (void)self;
    (void)col; /* lent: the batch keeps it */
}

int parquet_write(const query_batch *batch, const parquet_write_options *opts, strbuf *out,
                  char *err, size_t errlen)
{
    size_t n = batch->column_count;
    batch_source bs = {.batch = batch,
                       .names = malloc((n ? n : 1) * sizeof *bs.names),
                       .types = malloc((n ? n : 1) * sizeof *bs.types)};
    int rc = INGOT_E_NOMEM;
    if (bs.names && bs.types) {
        for (size_t ci = 0; ci < n; ci++) {
            bs.names[ci] = batch->columns[ci].name;
            bs.types[ci] = batch->columns[ci].type;
        }
        parquet_column_source src = {.self = &bs,
                                     .row_count = batch->row_count,
                                     .column_count = n,
                                     .names = bs.names,
                                     .types = bs.types,
                                     .load = batch_load,
                                     .unload = batch_unload};
        rc = parquet_write_source(&src, opts, out, err, errlen);
    } else if (err && errlen) {
        snprintf(err, errlen, "parquet: out of memory");
    }
    free(bs.names);
    free(bs.types);
    return rc;
}
