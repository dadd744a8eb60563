/*
 * query_text.c: JSON lines / JSON / CSV encoders of query batches (see query_text.h).
 *
 * Invariants: every byte written is valid UTF-8 (JSON) or the input bytes quoted per RFC 4180
 * (CSV); a row is written whole or not at all into the strbuf; CSV columns are matched by name to
 * the header of the first batch, so batches whose columns come in another order (or lack one)
 * still line up.
 */
#include "query/query_text.h"

#include "util/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int query_text_format_parse(const char *s, enum query_text_format *out)
{
    if (!strcmp(s, "jsonl")) *out = QUERY_TEXT_JSONL;
    else if (!strcmp(s, "json")) *out = QUERY_TEXT_JSON;
    else if (!strcmp(s, "csv")) *out = QUERY_TEXT_CSV;
    else return -1;
    return 0;
}

const char *query_text_content_type(enum query_text_format f)
{
    switch (f) {
    case QUERY_TEXT_JSONL:
        return "application/jsonl";
    case QUERY_TEXT_JSON:
        return "application/json";
    case QUERY_TEXT_CSV:
        return "text/csv; charset=utf-8";
    }
    return "application/octet-stream";
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

void query_text_format_time(int64_t time_ns, char out[64])
{
    int64_t secs = time_ns / 1000000000;
    int64_t nanos = time_ns % 1000000000;
    if (nanos < 0) {
        nanos += 1000000000;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, 64, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%09" PRId64 "Z", y, m, d,
             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60), nanos);
}

static void put_float(strbuf *out, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* JSON has no NaN or infinity; the parser never accepts them, so this cannot happen */
    if (!isfinite(v)) snprintf(buf, sizeof buf, "null");
    strbuf_puts(out, buf);
}

static bool is_valid(const query_column *c, size_t row)
{
    return !c->validity || (c->validity[row >> 3] >> (row & 7)) & 1;
}

/* The value of column c at row as JSON (the caller has checked validity). */
static void put_json_value(strbuf *out, const query_column *c, size_t row)
{
    char buf[64];
    switch (c->type) {
    case COLUMN_TIME:
        query_text_format_time(c->data.i64[row], buf);
        strbuf_putc(out, '"');
        strbuf_puts(out, buf);
        strbuf_putc(out, '"');
        break;
    case COLUMN_I64:
        strbuf_printf(out, "%" PRId64, c->data.i64[row]);
        break;
    case COLUMN_U64:
        strbuf_printf(out, "%" PRIu64, c->data.u64[row]);
        break;
    case COLUMN_F64:
        put_float(out, c->data.f64[row]);
        break;
    case COLUMN_BOOL:
        strbuf_puts(out, (c->data.bits[row >> 3] >> (row & 7)) & 1 ? "true" : "false");
        break;
    case COLUMN_STRING: {
        int32_t a = c->data.str.offsets[row], b = c->data.str.offsets[row + 1];
        json_put_string(out, c->data.str.bytes + a, (size_t)(b - a));
        break;
    }
    case COLUMN_TAG: {
        int32_t id = c->data.tag.ids[row];
        int32_t a = c->data.tag.dict_offsets[id], b = c->data.tag.dict_offsets[id + 1];
        json_put_string(out, c->data.tag.dict_bytes + a, (size_t)(b - a));
        break;
    }
    }
}

static void put_csv_field(strbuf *out, const char *s, size_t len)
{
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        strbuf_append(out, s, len);
        return;
    }
    strbuf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') strbuf_putc(out, '"');
        strbuf_putc(out, s[i]);
    }
    strbuf_putc(out, '"');
}

static void put_csv_value(strbuf *out, const query_column *c, size_t row)
{
    char buf[64];
    switch (c->type) {
    case COLUMN_TIME:
        query_text_format_time(c->data.i64[row], buf);
        strbuf_puts(out, buf);
        break;
    case COLUMN_STRING: {
        int32_t a = c->data.str.offsets[row], b = c->data.str.offsets[row + 1];
        put_csv_field(out, c->data.str.bytes + a, (size_t)(b - a));
        break;
    }
    case COLUMN_TAG: {
        int32_t id = c->data.tag.ids[row];
        int32_t a = c->data.tag.dict_offsets[id], b = c->data.tag.dict_offsets[id + 1];
        put_csv_field(out, c->data.tag.dict_bytes + a, (size_t)(b - a));
        break;
    }
    default:
        put_json_value(out, c, row); /* numbers and booleans read the same in both */
        break;
    }
}

void query_text_begin(query_text_encoder *e, enum query_text_format f, strbuf *out)
{
    memset(e, 0, sizeof *e);
    e->format = f;
    if (f == QUERY_TEXT_JSON) strbuf_putc(out, '[');
}

/* CSV: the header from the first batch, and the map of the current batch's columns to it. */
static bool csv_prepare(query_text_encoder *e, const query_batch *b, strbuf *out)
{
    if (!e->header) {
        e->header = calloc(b->column_count ? b->column_count : 1, sizeof *e->header);
        if (!e->header) return false;
        for (size_t i = 0; i < b->column_count; i++) {
            if (!(e->header[i] = strdup(b->columns[i].name))) return false;
            e->header_count = i + 1;
            if (i) strbuf_putc(out, ',');
            put_csv_field(out, b->columns[i].name, strlen(b->columns[i].name));
        }
        strbuf_puts(out, "\r\n");
    }
    if (e->mapped == b) return true;
    if (e->header_map_cap < e->header_count) {
        size_t *m = realloc(e->header_map, (e->header_count + 1) * sizeof *m);
        if (!m) return false;
        e->header_map = m;
        e->header_map_cap = e->header_count;
    }
    for (size_t h = 0; h < e->header_count; h++) {
        e->header_map[h] = SIZE_MAX;
        for (size_t i = 0; i < b->column_count; i++)
            if (!strcmp(b->columns[i].name, e->header[h])) e->header_map[h] = i;
    }
    e->mapped = b;
    return true;
}

bool query_text_rows(query_text_encoder *e, const query_batch *b, size_t *row, size_t soft_limit,
                     strbuf *out)
{
    if (e->format == QUERY_TEXT_CSV && !csv_prepare(e, b, out)) {
        out->failed = true;
        return true;
    }
    for (; *row < b->row_count; (*row)++) {
        if (out->len >= soft_limit || strbuf_failed(out)) return false;
        size_t r = *row;
        if (e->format == QUERY_TEXT_CSV) {
            for (size_t h = 0; h < e->header_count; h++) {
                if (h) strbuf_putc(out, ',');
                size_t ci = e->header_map[h];
                if (ci != SIZE_MAX && is_valid(&b->columns[ci], r)) put_csv_value(out, &b->columns[ci], r);
            }
            strbuf_puts(out, "\r\n");
        } else {
            if (e->format == QUERY_TEXT_JSON) strbuf_puts(out, e->rows_written ? ",\n" : "\n");
            strbuf_putc(out, '{');
            bool first = true;
            for (size_t i = 0; i < b->column_count; i++) {
                const query_column *c = &b->columns[i];
                if (!is_valid(c, r)) continue;
                if (!first) strbuf_putc(out, ',');
                first = false;
                json_put_string(out, c->name, strlen(c->name));
                strbuf_putc(out, ':');
                put_json_value(out, c, r);
            }
            strbuf_puts(out, e->format == QUERY_TEXT_JSONL ? "}\n" : "}");
        }
        e->rows_written++;
    }
    return true;
}

void query_text_end(query_text_encoder *e, strbuf *out)
{
    if (e->format == QUERY_TEXT_JSON) strbuf_puts(out, e->rows_written ? "\n]\n" : "]\n");
}

void query_text_encoder_free(query_text_encoder *e)
{
    for (size_t i = 0; i < e->header_count; i++) free(e->header[i]);
    free(e->header);
    free(e->header_map);
    memset(e, 0, sizeof *e);
}
