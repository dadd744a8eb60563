/*
 * lp.h: the InfluxDB line protocol parser (a leaf: it depends on nothing else in ingot).
 *
 * One pass over the request body, no copy of the body. The parsed request is an lp_batch: arrays
 * of lines, tags and fields, all allocated by the batch and freed by lp_batch_free().
 *
 * Representation (compact, because a batch lives for the whole write: a 5,000-line TSBS request
 * makes 50,000 tags and 50,000 fields). The batch records once, in lp_batch.base, the bytes its
 * strings live in (the body for line protocol; the DatabaseBatch message for pbdata.h). Every
 * name and string value is then an 8-byte lp_str: an offset from base, a length, and the escape
 * rule in force (escaped != 0 when it still contains backslash escapes; lp_str_unescape()
 * materialises it). lp_str_ptr() turns it into a pointer. Tag and field keys are stored more
 * compactly still (offset, 12-bit length, one escape bit, next to the column and the field type:
 * 16 bytes per lp_tag and per lp_field); lp_tag_key() / lp_field_key() give them back as lp_str.
 * So bodies are limited to LP_MAX_BODY_BYTES (lengths are 30-bit) and keys to LP_MAX_KEY_BYTES
 * (raw bytes, escapes included; the schema allows 255 unescaped bytes anyway). Numbers, booleans
 * and timestamps are converted during the pass. Errors (lp_error) keep real pointers: they are
 * few and are reported after the batch is used.
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
 * an empty measurement; a line without fields; a tag or field key longer than LP_MAX_KEY_BYTES.
 * The same field twice with one type keeps the last.
 *
 * Thread-safety: none needed; a batch belongs to one request.
 */
#ifndef INGOT_LP_H
#define INGOT_LP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest body lp_parse() (and pbdata_decode_batch()) takes: lp_str lengths are 30-bit. */
#define LP_MAX_BODY_BYTES 0x3FFFFFFFu
/* The longest tag or field key, in raw bytes (escapes included): lp_tag/lp_field keep 12 bits. */
#define LP_MAX_KEY_BYTES 4095u

/*
 * A name or string value: bytes [off, off + len) of the batch's base (lp_str_ptr()). Valid as
 * long as the bytes base points to.
 */
typedef struct lp_str {
    uint32_t off;          /* from lp_batch.base */
    uint32_t len : 30;     /* bytes as they appear in the body (escapes included) */
    uint32_t escaped : 2;  /* 0: no escapes; else an enum lp_escape naming the rules in force */
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

/* A tag: 16 bytes. The key is read with lp_tag_key() and written with lp_tag_set_key(). */
typedef struct lp_tag {
    uint32_t key_off;          /* the key: from lp_batch.base */
    uint16_t key_len : 12;     /* raw bytes, at most LP_MAX_KEY_BYTES */
    uint16_t key_escaped : 1;  /* 1: LP_ESC_KEY escapes present */
    uint16_t column;           /* by the schema check (dml); LP_COLUMN_UNRESOLVED from the parser */
    lp_str value;
} lp_tag;

/* A field: 16 bytes. The key is read with lp_field_key() and written with lp_field_set_key(). */
typedef struct lp_field {
    uint32_t key_off;          /* the key: from lp_batch.base */
    uint16_t key_len : 12;     /* raw bytes, at most LP_MAX_KEY_BYTES */
    uint16_t key_escaped : 1;  /* 1: LP_ESC_KEY escapes present */
    uint16_t type : 3;         /* enum lp_field_type */
    uint16_t column;           /* by the schema check (dml); LP_COLUMN_UNRESOLVED from the parser */
    union {
        int64_t i64;
        uint64_t u64;
        double f64;
        bool boolean;
        lp_str str; /* without the surrounding quotes */
    } value;
} lp_field;

/* A good line: 48 bytes. */
typedef struct lp_line {
    lp_str measurement;
    uint32_t text_off;    /* the whole line as sent (no line terminator): lp_line_text() */
    uint32_t text_len;
    uint32_t line_number; /* 1-based, counted over every line of the body */
    uint32_t first_tag, tag_count;     /* index range into lp_batch.tags */
    uint32_t first_field, field_count; /* index range into lp_batch.fields */
    uint32_t table_slot;  /* filled by the schema check (dml): index into the op's tables */
    int64_t time_ns;      /* the line's timestamp, or the request's default time */
} lp_line;

typedef struct lp_error {
    uint32_t line_number; /* 1-based */
    uint32_t column;      /* 1-based byte column of the problem within the line */
    const char *line_text; /* the offending line inside the body */
    uint32_t line_len;
    char message[160];    /* "invalid field value" ... without the line/column prefix */
} lp_error;

typedef struct lp_batch {
    const char *base; /* every lp_str's offset counts from here (the body); NULL when empty */
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
 * Parse body[0..len) into batch (which must be zeroed or reset with lp_batch_reset: a batch holds
 * the strings of one body). Good lines land in batch->lines; bad lines in batch->errors and do
 * not appear in lines. batch->base becomes body, which must stay valid and unchanged while the
 * batch is used.
 * Returns 0 (even when some lines are bad: check batch->bad_line_count), INGOT_E_NOMEM,
 * INGOT_E_TOO_LARGE for a body longer than LP_MAX_BODY_BYTES, or INGOT_E_INVALID when the batch
 * already holds lines of another body.
 */
int lp_parse(const char *body, size_t len, const lp_options *opts, lp_batch *batch);

/* Empty the batch, keeping its allocations for reuse. */
void lp_batch_reset(lp_batch *batch);
/* Free everything the batch holds; the batch itself is not freed. */
void lp_batch_free(lp_batch *batch);

/*
 * Write p[0..len) without its escapes into out (len bytes of room suffice: unescaping only
 * shrinks), following the rules named by escaped (enum lp_escape); a backslash before any other
 * byte stays literal. Returns the unescaped length.
 */
size_t lp_unescape(const char *p, size_t len, unsigned escaped, char *out);

/* The first byte of s. */
static inline const char *lp_str_ptr(const lp_batch *b, lp_str s)
{
    return b->base + s.off;
}

/* s without its escapes into out (s.len bytes of room suffice); returns the unescaped length. */
static inline size_t lp_str_unescape(const lp_batch *b, lp_str s, char *out)
{
    return lp_unescape(lp_str_ptr(b, s), s.len, s.escaped, out);
}

/* The first byte of the line's text (the line as sent, text_len bytes). */
static inline const char *lp_line_text(const lp_batch *b, const lp_line *ln)
{
    return b->base + ln->text_off;
}

static inline lp_str lp_tag_key(const lp_tag *t)
{
    lp_str s;
    s.off = t->key_off;
    s.len = t->key_len;
    s.escaped = t->key_escaped ? LP_ESC_KEY : LP_ESC_NONE;
    return s;
}

static inline lp_str lp_field_key(const lp_field *f)
{
    lp_str s;
    s.off = f->key_off;
    s.len = f->key_len;
    s.escaped = f->key_escaped ? LP_ESC_KEY : LP_ESC_NONE;
    return s;
}

/* Store key k (k.len <= LP_MAX_KEY_BYTES; k.escaped LP_ESC_NONE or LP_ESC_KEY). */
static inline void lp_tag_set_key(lp_tag *t, lp_str k)
{
    t->key_off = k.off;
    t->key_len = (uint16_t)(k.len & LP_MAX_KEY_BYTES);
    t->key_escaped = k.escaped != LP_ESC_NONE;
}

static inline void lp_field_set_key(lp_field *f, lp_str k)
{
    f->key_off = k.off;
    f->key_len = (uint16_t)(k.len & LP_MAX_KEY_BYTES);
    f->key_escaped = k.escaped != LP_ESC_NONE;
}

/* "ns"/"n", "us"/"u", "ms", "s", and the v3 spellings "nanosecond" ... "second", "auto". */
int lp_precision_parse(const char *s, enum lp_precision *out);

#endif
