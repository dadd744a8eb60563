/*
 * lp.h: the InfluxDB line protocol parser (a leaf: it depends on nothing else in ingot).
 *
 * One pass over the request body, no copy of the body: every name and string value is an lp_str
 * pointing into the caller's buffer, with a flag telling whether it still contains backslash
 * escapes (lp_str_unescape() materialises it). Numbers, booleans and timestamps are converted
 * during the pass. The parsed request is an lp_batch: arrays of lines, tags and fields, all
 * allocated by the batch and freed by lp_batch_free().
 *
 * Syntax (https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/):
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 * Escapes: measurement: comma, space; tag keys, tag values, field keys: comma, equals, space;
 * string field values: double quote, backslash. Any other backslash is literal.
 * Blank lines and lines starting with '#' (after optional leading spaces) are skipped; CRLF ends
 * a line like LF. Field values: float (1, 1.5, -1e-3, 1E9), integer 1i, unsigned 1u, string "…",
 * boolean t T true True TRUE f F false False FALSE.
 *
 * Refused (each an lp_error naming the 1-based line and column): bad syntax; integer, unsigned or
 * timestamp overflow (also after scaling by the precision); a key that is both tag and field;
 * `time` as a tag or field key; the same tag key twice; the same field twice with two types;
 * an empty measurement; a line without fields. The same field twice with one type keeps the last.
 *
 * Thread-safety: none needed; a batch belongs to one request.
 */
#ifndef INGOT_LP_H
#define INGOT_LP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A name or string value inside the parsed body. Valid as long as the body buffer. */
typedef struct lp_str {
    const char *ptr;
    uint32_t len;     /* bytes as they appear in the body (escapes included) */
    uint32_t escaped; /* 0: no escapes; else an enum lp_escape naming the escape rules in force */
} lp_str;

/* Which escapes apply to an lp_str (set only when the string really contains an escape). */
enum lp_escape {
    LP_ESC_NONE = 0,
    LP_ESC_MEASUREMENT = 1, /* \, and \space */
    LP_ESC_KEY = 2,         /* tag keys, tag values, field keys: \, \= \space */
    LP_ESC_STRING = 3,      /* string field values: \" and \\ */
};

enum lp_precision {
    LP_PRECISION_NS = 0,
    LP_PRECISION_US = 1,
    LP_PRECISION_MS = 2,
    LP_PRECISION_S = 3,
    LP_PRECISION_AUTO = 4, /* InfluxDB 3: unit guessed per timestamp from its magnitude */
};

/* Field value types; the numeric values equal the catalog's column type codes (ARCHITECTURE §1). */
enum lp_field_type {
    LP_FIELD_I64 = 1,
    LP_FIELD_U64 = 2,
    LP_FIELD_F64 = 3,
    LP_FIELD_BOOL = 4,
    LP_FIELD_STRING = 5,
};

#define LP_COLUMN_UNRESOLVED 0xFFFFu

typedef struct lp_tag {
    lp_str key;
    lp_str value;
    uint16_t column; /* filled by the schema check (dml); LP_COLUMN_UNRESOLVED from the parser */
} lp_tag;

typedef struct lp_field {
    lp_str key;
    uint8_t type; /* enum lp_field_type */
    uint16_t column; /* filled by the schema check (dml) */
    union {
        int64_t i64;
        uint64_t u64;
        double f64;
        bool boolean;
        lp_str str; /* without the surrounding quotes */
    } value;
} lp_field;

typedef struct lp_line {
    lp_str measurement;
    const char *text;     /* the whole line as sent (no line terminator) */
    uint32_t text_len;
    uint32_t line_number; /* 1-based, counted over every line of the body */
    uint32_t first_tag, tag_count;     /* index range into lp_batch.tags */
    uint32_t first_field, field_count; /* index range into lp_batch.fields */
    int64_t time_ns;      /* the line's timestamp, or the request's default time */
    uint32_t table_slot;  /* filled by the schema check (dml): index into the op's tables */
} lp_line;

typedef struct lp_error {
    uint32_t line_number; /* 1-based */
    uint32_t column;      /* 1-based byte column of the problem within the line */
    const char *line_text; /* the offending line inside the body */
    uint32_t line_len;
    char message[160];    /* "invalid field value" ... without the line/column prefix */
} lp_error;

typedef struct lp_batch {
    lp_line *lines;
    size_t line_count;
    lp_tag *tags;
    size_t tag_count;
    lp_field *fields;
    size_t field_count;
    lp_error *errors; /* bad lines in line order; at most max_errors of them are kept */
    size_t error_count;
    size_t bad_line_count; /* all bad lines, even those beyond max_errors */
    /* private bookkeeping of capacities */
    size_t line_cap, tag_cap, field_cap, error_cap;
} lp_batch;

typedef struct lp_options {
    enum lp_precision precision;
    int64_t default_time_ns; /* timestamp of lines without one (one value per request) */
    size_t max_errors;       /* bad lines described in errors[] (e.g. 100) */
} lp_options;

/*
 * Parse body[0..len) into batch (which must be zeroed or reset with lp_batch_reset). Good lines
 * land in batch->lines; bad lines in batch->errors and do not appear in lines. The body must stay
 * valid and unchanged while the batch is used.
 * Returns 0 (even when some lines are bad: check batch->bad_line_count), INGOT_E_NOMEM, or
 * INGOT_E_TOO_LARGE for a body of 4 GiB or more (lengths and line numbers are 32-bit).
 */
int lp_parse(const char *body, size_t len, const lp_options *opts, lp_batch *batch);

/* Empty the batch, keeping its allocations for reuse. */
void lp_batch_reset(lp_batch *batch);
/* Free everything the batch holds; the batch itself is not freed. */
void lp_batch_free(lp_batch *batch);

/*
 * Write s without its escapes into out (s.len bytes of room suffice: unescaping only shrinks),
 * following the rules named by s.escaped; a backslash before any other byte stays literal.
 * Returns the unescaped length.
 */
size_t lp_str_unescape(lp_str s, char *out);

/* "ns"/"n", "us"/"u", "ms", "s", and the v3 spellings "nanosecond" ... "second", "auto". */
int lp_precision_parse(const char *s, enum lp_precision *out);

#endif
