/*
 * pbdata.c: the gRPC write request and its DatabaseBatch read straight off the wire (contract in
 * pbdata.h; messages in proto/ingot/write/v1/write.proto).
 *
 * What it owns. Nothing that outlives a call except the lp_batch arrays it fills (lines, tags,
 * fields: grown here, freed by lp_batch_free()). Every string in the result is an offset into
 * the message: lp_batch.base is the DatabaseBatch's first byte, so the message is limited to
 * LP_MAX_BODY_BYTES (lp.h's 30-bit lengths) and column names to LP_MAX_KEY_BYTES (the 12-bit key
 * length of lp_tag / lp_field), as for line protocol; a batch holds the strings of one message,
 * so decoding into a batch that holds rows of another message is refused. Per call there are
 * three scratch arrays (the column index of a table batch, its row-pass order, a name hash set
 * for wide tables), reused from one table batch to the next and freed on return; nothing is
 * allocated per row or per value.
 *
 * Wire format (https://protobuf.dev/programming-guides/encoding/). A message is a sequence of
 * records, each a varint key (field_number << 3 | wire_type) and a payload:
 *   wire 0 VARINT  1..10 bytes, 7 bits each, least significant group first, MSB = "more follows"
 *   wire 1 I64     8 bytes little-endian (double)
 *   wire 2 LEN     varint length, then that many bytes (string, bytes, sub-message, packed array)
 *   wire 5 I32     4 bytes
 * Groups (3, 4), wire types 6 and 7, field number 0 or above 2^29 - 1, a varint longer than 10
 * bytes or with bits beyond 64 in its tenth byte, and a length past the end are malformed.
 * Non-minimal varints (0x80 0x00) are accepted, as protobuf parsers do. Unknown field
 * numbers are skipped. A known field with a wire type it cannot have is refused. The messages:
 *   WriteRequest  1 namespace LEN | 2 line_protocol LEN | 3 batch LEN | 4 precision VARINT
 *   DatabaseBatch 1 table_batches LEN (repeated)
 *   TableBatch    1 table_name LEN | 2 columns LEN (repeated) | 3 row_count VARINT (uint32)
 *   Column        1 column_name LEN | 2 semantic_type VARINT | 3 values LEN | 4 null_mask LEN
 *   Values        1 i64 | 2 f64 | 3 u64 | 4 string (LEN, one record each) | 5 bool
 * Repeated numerics come packed (one LEN record of concatenated varints or 8-byte doubles) or
 * unpacked (one VARINT or I64 record per element), possibly both and split over several records;
 * the elements are the concatenation in wire order. Scalars and strings: the last record wins.
 * An embedded message given twice is merged, so a Column with two `values` records has the
 * concatenation of both. The one merge not supported is a WriteRequest carrying `batch` twice in
 * a row (its bytes would no longer be one range): that is refused.
 *
 * How a DatabaseBatch is decoded, per table batch, in two passes:
 *   1. index: walk the TableBatch, then each Column, without decoding a value: note the name,
 *      semantic type and null mask, and count the elements of each Values array (a packed varint
 *      array counts the bytes below 0x80, 8 at a time). Every rule of pbdata.h is checked here
 *      except those that need the values themselves (see 2.). The counts give the exact number
 *      of lines, tags and fields the table batch adds, so the batch arrays are sized once.
 *   2. rows: one cursor per live column (time, tags, fields) walks its values in wire order;
 *      row r takes the next value of every column whose null bit r is clear. Checked here: tag
 *      values non-empty, at least one field per row, time scaling, malformed varints inside
 *      packed arrays. The common shapes (one packed array, one string record after another)
 *      take the inline fast path; unpacked or split arrays take the same cursor's slow path.
 * Doubles are copied with memcpy: the host is little-endian, like the wire (checked at build).
 *
 * Invariants of a successful decode: lines[] holds exactly one line per row in table-batch then
 * row order, line_number k+1 for the k-th row of the whole DatabaseBatch; each line has >= 1
 * field, its tags and fields in column order, no key twice, no key "time", no empty tag value;
 * tag/field `column` is LP_COLUMN_UNRESOLVED and table_slot 0, as lp_parse() leaves them.
 *
 * Failure recovery. Any refusal restores the batch counts and base to what they were on entry
 * (so a reset batch is empty again) and leaves the arrays allocated for reuse; err says which
 * table batch, column and row, and what. Out of memory leaves the batch the same way.
 */
#include "dml/pbdata.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pbdata.c copies packed doubles with memcpy: it needs a little-endian host"
#endif

enum pb_wire { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* Field numbers of write.proto. */
enum {
    PB_REQ_NAMESPACE = 1,
    PB_REQ_LINE_PROTOCOL = 2,
    PB_REQ_BATCH = 3,
    PB_REQ_PRECISION = 4,
    PB_DB_TABLE_BATCHES = 1,
    PB_TB_NAME = 1,
    PB_TB_COLUMNS = 2,
    PB_TB_ROW_COUNT = 3,
    PB_COL_NAME = 1,
    PB_COL_SEMANTIC = 2,
    PB_COL_VALUES = 3,
    PB_COL_NULL_MASK = 4,
};

/* The Values arrays, by field number. */
enum pbd_array {
    PBD_NONE = 0,
    PBD_I64 = 1,
    PBD_F64 = 2,
    PBD_U64 = 3,
    PBD_STRING = 4,
    PBD_BOOL = 5,
};

enum { PBD_SEM_TAG = 2, PBD_SEM_FIELD = 3, PBD_SEM_TIME = 4 };

#define PBD_HASH_MIN_COLUMNS 16u /* from this many columns, names are checked with a hash set */

static const char *const pbd_array_names[] = {"",           "i64_values",    "f64_values",
                                              "u64_values", "string_values", "bool_values"};

/* ---------------------------------------------------------------------------------------------
 * Wire primitives
 */

typedef struct pb_field {
    uint32_t number;
    uint32_t wire;
    uint64_t value;      /* PB_VARINT */
    const uint8_t *data; /* PB_I64 (8 bytes), PB_LEN (len bytes), PB_I32 (4 bytes) */
    size_t len;
} pb_field;

static int pb_varint_slow(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p == end) return -1;
        uint8_t b = *p++;
        if (i == 9 && b > 1) return -1; /* bits beyond 64, or an eleventh byte */
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (b < 0x80) {
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

/* A varint at *pp (not past end) into *out; advances *pp. 0, or -1 if truncated or overlong. */
static inline int pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    return pb_varint_slow(pp, end, out);
}

/*
 * The record at *pp into *f and advances *pp. Returns 1 (a record), 0 (end of the message) or
 * -1 with *why saying what is malformed and *pp left at the record's start.
 */
static int pb_next(const uint8_t **pp, const uint8_t *end, pb_field *f, const char **why)
{
    const uint8_t *p = *pp;
    uint64_t key, len;
    if (p == end) return 0;
    if (pb_varint(&p, end, &key) != 0) {
        *why = "malformed field key";
        return -1;
    }
    if (key >> 3 == 0 || key >> 3 > 0x1FFFFFFFu) {
        *why = "invalid field number";
        return -1;
    }
    f->number = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    switch (f->wire) {
    case PB_VARINT:
        if (pb_varint(&p, end, &f->value) != 0) {
            *why = "malformed varint";
            return -1;
        }
        break;
    case PB_I64:
    case PB_I32:
        f->len = f->wire == PB_I64 ? 8 : 4;
        if ((size_t)(end - p) < f->len) {
            *why = "truncated fixed-size field";
            return -1;
        }
        f->data = p;
        p += f->len;
        break;
    case PB_LEN:
        if (pb_varint(&p, end, &len) != 0) {
            *why = "malformed length";
            return -1;
        }
        if (len > (uint64_t)(end - p)) {
            *why = "length past the end of the message";
            return -1;
        }
        f->data = p;
        f->len = (size_t)len;
        p += len;
        break;
    default:
        *why = f->wire == 3 || f->wire == 4 ? "groups are not supported" : "invalid wire type";
        return -1;
    }
    *pp = p;
    return 1;
}

/* Number of varints in a packed run: the bytes without the continuation bit. */
static size_t pb_count_varints(const uint8_t *p, size_t len)
{
    size_t n = 0, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        n += (size_t)__builtin_popcountll(~w & 0x8080808080808080ull);
    }
    for (; i < len; i++)
        n += p[i] < 0x80;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Value cursors: the elements of one Values array of one Column, in wire order
 */

typedef struct pbd_cursor {
    const uint8_t *run, *run_end; /* rest of the current packed run */
    const uint8_t *vp, *vend;     /* rest of the current Values message */
    const uint8_t *cp, *cend;     /* rest of the Column message (further `values` records) */
    uint32_t field;               /* enum pbd_array followed */
} pbd_cursor;

static void pbd_cursor_init(pbd_cursor *c, const uint8_t *col, size_t col_len, uint32_t field)
{
    c->run = c->run_end = NULL;
    c->vp = c->vend = NULL;
    c->cp = col;
    c->cend = col + col_len;
    c->field = field;
}

/*
 * The next record of the followed array. Returns 1 (an element record in *f: a scalar, or one
 * string), 2 (a packed run, now in c->run), or -1 (none left or malformed: the index pass has
 * checked both, so this only guards memory safety).
 */
static int pbd_cursor_refill(pbd_cursor *c, pb_field *f)
{
    const char *why;
    for (;;) {
        if (c->vp == c->vend) {
            int r;
            while ((r = pb_next(&c->cp, c->cend, f, &why)) == 1) {
                if (f->number == PB_COL_VALUES && f->wire == PB_LEN) break;
            }
            if (r != 1) return -1;
            c->vp = f->data;
            c->vend = f->data + f->len;
            continue;
        }
        if (pb_next(&c->vp, c->vend, f, &why) != 1) return -1;
        if (f->number != c->field) continue;
        if (f->wire == PB_LEN && c->field != PBD_STRING) {
            c->run = f->data;
            c->run_end = f->data + f->len;
            return 2;
        }
        return 1;
    }
}

static int pbd_next_varint_slow(pbd_cursor *c, uint64_t *v)
{
    for (;;) {
        if (c->run < c->run_end) return pb_varint(&c->run, c->run_end, v);
        pb_field f;
        int r = pbd_cursor_refill(c, &f);
        if (r < 0) return -1;
        if (r == 1) {
            if (f.wire != PB_VARINT) return -1;
            *v = f.value;
            return 0;
        }
    }
}

static inline int pbd_next_varint(pbd_cursor *c, uint64_t *v)
{
    if (c->run < c->run_end && *c->run < 0x80) {
        *v = *c->run++;
        return 0;
    }
    return pbd_next_varint_slow(c, v);
}

static int pbd_next_f64_slow(pbd_cursor *c, double *v)
{
    for (;;) {
        if (c->run_end - c->run >= 8) {
            memcpy(v, c->run, 8);
            c->run += 8;
            return 0;
        }
        if (c->run != c->run_end) return -1;
        pb_field f;
        int r = pbd_cursor_refill(c, &f);
        if (r < 0) return -1;
        if (r == 1) {
            if (f.wire != PB_I64) return -1;
            memcpy(v, f.data, 8);
            return 0;
        }
    }
}

static inline int pbd_next_f64(pbd_cursor *c, double *v)
{
    if (c->run_end - c->run >= 8) {
        memcpy(v, c->run, 8);
        c->run += 8;
        return 0;
    }
    return pbd_next_f64_slow(c, v);
}

/* data[0..len) of the message at base as an lp_str (the message size limit: every offset fits). */
static inline lp_str pbd_str(const uint8_t *base, const uint8_t *data, size_t len)
{
    lp_str s;
    s.off = (uint32_t)(data - base);
    s.len = (uint32_t)len;
    s.escaped = LP_ESC_NONE;
    return s;
}

static int pbd_next_string_slow(pbd_cursor *c, const uint8_t *base, lp_str *s)
{
    pb_field f;
    if (pbd_cursor_refill(c, &f) != 1 || f.wire != PB_LEN || f.len > LP_MAX_BODY_BYTES) return -1;
    *s = pbd_str(base, f.data, f.len);
    return 0;
}

static inline int pbd_next_string(pbd_cursor *c, const uint8_t *base, lp_str *s)
{
    const uint8_t *p = c->vp;
    /* key 0x22 = field 4, LEN; a length below 128 is one byte */
    if (c->vend - p >= 2 && p[0] == 0x22 && p[1] < 0x80 && (size_t)(c->vend - p - 2) >= p[1]) {
        *s = pbd_str(base, p + 2, p[1]);
        c->vp = p + 2 + p[1];
        return 0;
    }
    return pbd_next_string_slow(c, base, s);
}

/* ---------------------------------------------------------------------------------------------
 * Decoder state and error messages
 */

typedef struct pbd_column {
    const uint8_t *msg; /* the Column message */
    size_t msg_len;
    const uint8_t *name;
    size_t name_len;
    const uint8_t *mask; /* NULL: no nulls */
    size_t mask_len;
    uint64_t semantic;
    uint32_t array;     /* enum pbd_array: the one non-empty Values array, or PBD_NONE */
    uint64_t counts[6]; /* elements per Values array, by field number */
    uint64_t nonnull;   /* rows whose null bit is clear */
    pbd_cursor cur;     /* row pass */
} pbd_column;

typedef struct pbd_decoder {
    lp_batch *batch;
    const uint8_t *base; /* the DatabaseBatch: lp_batch.base, where every lp_str counts from */
    enum lp_precision precision;
    char *err;
    size_t errlen;
    size_t table_index;        /* 1-based, for messages */
    const uint8_t *table_name; /* NULL until known */
    size_t table_name_len;
    uint32_t row_count;
    uint32_t rows_before; /* rows of the earlier table batches */
    pbd_column *cols;     /* the current table batch's columns, in wire order */
    size_t col_count, col_cap;
    pbd_column **live; /* the row pass's columns: tags, then fields holding values */
    uint32_t *slots;   /* name hash set (open addressing, UINT32_MAX = free) */
    size_t slot_cap;
} pbd_decoder;

/* Appends name to out (quoted, at most 64 bytes, control bytes, quotes and backslashes as '?'). */
static size_t pbd_put_name(char *out, size_t room, const uint8_t *name, size_t len)
{
    char tmp[72];
    size_t n = 0, shown = len > 64 ? 64 : len;
    tmp[n++] = '"';
    for (size_t i = 0; i < shown; i++) {
        uint8_t b = name[i];
        tmp[n++] = (char)(b < 0x20 || b == 0x7F || b == '"' || b == '\\' ? '?' : b);
    }
    tmp[n++] = '"';
    tmp[n] = '\0';
    int w = snprintf(out, room, "%s%s", tmp, len > shown ? "..." : "");
    return w < 0 ? 0 : (size_t)w >= room ? (room ? room - 1 : 0) : (size_t)w;
}

/*
 * err = "table batch N \"name\"[, column \"c\" | column K]: <fmt>" (col may be NULL; the table
 * part is left out when table_index is 0). Returns INGOT_E_INVALID.
 */
__attribute__((format(printf, 3, 4))) static int pbd_fail(pbd_decoder *d, const pbd_column *col,
                                                          const char *fmt, ...)
{
    if (!d->err || d->errlen == 0) return INGOT_E_INVALID;
    size_t n = 0, room = d->errlen;
    int w;
    if (d->table_index) {
        w = snprintf(d->err, room, "table batch %zu", d->table_index);
        n = w < 0 ? 0 : (size_t)w < room ? (size_t)w : room - 1;
        if (d->table_name && d->table_name_len && n + 1 < room) {
            d->err[n++] = ' ';
            n += pbd_put_name(d->err + n, room - n, d->table_name, d->table_name_len);
        }
        if (col && n + 1 < room) {
            if (col->name_len) {
                w = snprintf(d->err + n, room - n, ", column ");
                n += w < 0 ? 0 : (size_t)w < room - n ? (size_t)w : room - n - 1;
                n += pbd_put_name(d->err + n, room - n, col->name, col->name_len);
            } else {
                w = snprintf(d->err + n, room - n, ", column %zu", (size_t)(col - d->cols) + 1);
                n += w < 0 ? 0 : (size_t)w < room - n ? (size_t)w : room - n - 1;
            }
        }
        if (n + 2 < room) {
            d->err[n++] = ':';
            d->err[n++] = ' ';
            d->err[n] = '\0';
        }
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err + n, room - n, fmt, ap);
    va_end(ap);
    return INGOT_E_INVALID;
}

static int pbd_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap > SIZE_MAX / 2 ? need : *cap * 2;
    if (nc < need) nc = need;
    if (nc > SIZE_MAX / elem) return INGOT_E_NOMEM;
    void *na = realloc(*arr, nc * elem);
    if (!na) return INGOT_E_NOMEM;
    *arr = na;
    *cap = nc;
    return 0;
}

static int pbd_reserve_columns(pbd_decoder *d, size_t need)
{
    if (need <= d->col_cap) return 0;
    size_t cap = d->col_cap;
    if (pbd_grow((void **)&d->cols, &cap, need, sizeof *d->cols) != 0) return INGOT_E_NOMEM;
    d->col_cap = cap;
    pbd_column **live = realloc(d->live, cap * sizeof *live);
    if (!live) return INGOT_E_NOMEM;
    d->live = live;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Pass 1: index a table batch
 */

/* Counts the elements of each array of one Values message into col->counts. */
static int pbd_count_values(pbd_decoder *d, pbd_column *col, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len, *start = p;
    pb_field f;
    const char *why;
    int r;
    while ((r = pb_next(&p, end, &f, &why)) == 1) {
        switch (f.number) {
        case PBD_I64:
        case PBD_U64:
        case PBD_BOOL:
            if (f.wire == PB_VARINT) {
                col->counts[f.number]++;
            } else if (f.wire == PB_LEN) {
                if (f.len && f.data[f.len - 1] >= 0x80)
                    return pbd_fail(d, col, "%s: packed array ends inside a varint",
                                    pbd_array_names[f.number]);
                col->counts[f.number] += pb_count_varints(f.data, f.len);
            } else {
                return pbd_fail(d, col, "%s: wire type %u is not a varint array",
                                pbd_array_names[f.number], f.wire);
            }
            break;
        case PBD_F64:
            if (f.wire == PB_I64) {
                col->counts[PBD_F64]++;
            } else if (f.wire == PB_LEN) {
                if (f.len % 8)
                    return pbd_fail(d, col, "f64_values: packed length %zu is not a multiple of 8",
                                    f.len);
                col->counts[PBD_F64] += f.len / 8;
            } else {
                return pbd_fail(d, col, "f64_values: wire type %u is not a double array", f.wire);
            }
            break;
        case PBD_STRING:
            if (f.wire != PB_LEN)
                return pbd_fail(d, col, "string_values: wire type %u is not a string", f.wire);
            if (f.len > UINT32_MAX) return INGOT_E_TOO_LARGE;
            col->counts[PBD_STRING]++;
            break;
        default:
            break; /* unknown field */
        }
    }
    if (r < 0) return pbd_fail(d, col, "values, byte %zu: %s", (size_t)(p - start), why);
    return 0;
}

/* Reads one Column message into col (names, mask, counts); checks only its wire shape. */
static int pbd_index_column(pbd_decoder *d, pbd_column *col)
{
    const uint8_t *p = col->msg, *end = col->msg + col->msg_len;
    pb_field f;
    const char *why;
    int r, rv;
    while ((r = pb_next(&p, end, &f, &why)) == 1) {
        switch (f.number) {
        case PB_COL_NAME:
            if (f.wire != PB_LEN) return pbd_fail(d, col, "column_name is not length-delimited");
            if (f.len > UINT32_MAX) return INGOT_E_TOO_LARGE;
            col->name = f.data;
            col->name_len = f.len;
            break;
        case PB_COL_SEMANTIC:
            if (f.wire != PB_VARINT) return pbd_fail(d, col, "semantic_type is not a varint");
            col->semantic = f.value;
            break;
        case PB_COL_VALUES:
            if (f.wire != PB_LEN) return pbd_fail(d, col, "values is not length-delimited");
            if ((rv = pbd_count_values(d, col, f.data, f.len)) != 0) return rv;
            break;
        case PB_COL_NULL_MASK:
            if (f.wire != PB_LEN) return pbd_fail(d, col, "null_mask is not length-delimited");
            col->mask = f.len ? f.data : NULL;
            col->mask_len = f.len;
            break;
        default:
            break;
        }
    }
    if (r < 0) return pbd_fail(d, col, "byte %zu: %s", (size_t)(p - col->msg), why);
    return 0;
}

static uint32_t pbd_name_hash(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static bool pbd_same_name(const pbd_column *a, const pbd_column *b)
{
    return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
}

/* Returns the earlier column with the same name as cols[i], or NULL (hash set when large). */
static const pbd_column *pbd_find_duplicate(pbd_decoder *d, size_t i, uint32_t mask)
{
    const pbd_column *c = &d->cols[i];
    if (d->col_count < PBD_HASH_MIN_COLUMNS) {
        for (size_t j = 0; j < i; j++)
            if (pbd_same_name(&d->cols[j], c)) return &d->cols[j];
        return NULL;
    }
    uint32_t s = pbd_name_hash(c->name, c->name_len) & mask;
    while (d->slots[s] != UINT32_MAX) {
        if (pbd_same_name(&d->cols[d->slots[s]], c)) return &d->cols[d->slots[s]];
        s = (s + 1) & mask;
    }
    d->slots[s] = (uint32_t)i;
    return NULL;
}

static bool pbd_is_time_name(const pbd_column *c)
{
    return c->name_len == 4 && memcmp(c->name, "time", 4) == 0;
}

/*
 * Checks one indexed column against the rules of pbdata.h and settles col->array and
 * col->nonnull.
 */
static int pbd_check_column(pbd_decoder *d, pbd_column *col)
{
    uint32_t rows = d->row_count;
    if (col->semantic != PBD_SEM_TAG && col->semantic != PBD_SEM_FIELD &&
        col->semantic != PBD_SEM_TIME) {
        if (col->semantic == 0) return pbd_fail(d, col, "semantic_type is unspecified");
        return pbd_fail(d, col, "unknown semantic_type %llu", (unsigned long long)col->semantic);
    }
    if (col->semantic == PBD_SEM_TIME && !pbd_is_time_name(col))
        return pbd_fail(d, col, "the TIME column must be named \"time\"");
    if (col->semantic != PBD_SEM_TIME && pbd_is_time_name(col))
        return pbd_fail(d, col, "only the TIME column may be named \"time\"");

    /* Null mask. */
    col->nonnull = rows;
    if (col->mask) {
        size_t want = ((size_t)rows + 7) / 8;
        if (col->mask_len != want)
            return pbd_fail(d, col, "null_mask has %zu bytes, %zu expected for %u rows",
                            col->mask_len, want, rows);
        if ((rows & 7) && (col->mask[want - 1] >> (rows & 7)) != 0)
            return pbd_fail(d, col, "null_mask has bits set past row_count %u", rows);
        uint64_t nulls = 0;
        size_t i = 0;
        for (; i + 8 <= col->mask_len; i += 8) {
            uint64_t w;
            memcpy(&w, col->mask + i, 8);
            nulls += (uint64_t)__builtin_popcountll(w);
        }
        for (; i < col->mask_len; i++)
            nulls += (uint64_t)__builtin_popcount(col->mask[i]);
        col->nonnull = rows - nulls;
    }

    /* The one non-empty array. */
    col->array = PBD_NONE;
    for (uint32_t a = PBD_I64; a <= PBD_BOOL; a++) {
        if (!col->counts[a]) continue;
        if (col->array != PBD_NONE)
            return pbd_fail(d, col, "values in both %s and %s", pbd_array_names[col->array],
                            pbd_array_names[a]);
        col->array = a;
    }
    uint64_t n = col->array ? col->counts[col->array] : 0;
    switch (col->semantic) {
    case PBD_SEM_TIME:
        if (col->nonnull != rows) return pbd_fail(d, col, "the TIME column has nulls");
        if (col->array != PBD_NONE && col->array != PBD_I64)
            return pbd_fail(d, col, "the TIME column holds %s, not i64_values",
                            pbd_array_names[col->array]);
        break;
    case PBD_SEM_TAG:
        if (col->array != PBD_NONE && col->array != PBD_STRING)
            return pbd_fail(d, col, "a TAG column holds %s, not string_values",
                            pbd_array_names[col->array]);
        break;
    default:
        break;
    }
    if (n != col->nonnull)
        return pbd_fail(d, col, "%llu values for %llu non-null rows", (unsigned long long)n,
                        (unsigned long long)col->nonnull);
    return 0;
}

/*
 * Pass 1 over the TableBatch msg[0..len): fills d->cols, d->table_name, d->row_count, checks
 * every rule that does not need the values, and counts the tags and fields the rows will add.
 */
static int pbd_index_table(pbd_decoder *d, const uint8_t *msg, size_t len, size_t *tag_total,
                           size_t *field_total)
{
    const uint8_t *p = msg, *end = msg + len;
    pb_field f;
    const char *why;
    int r, rv;
    uint64_t rows = 0;
    d->col_count = 0;
    d->table_name = NULL;
    d->table_name_len = 0;
    d->row_count = 0;
    while ((r = pb_next(&p, end, &f, &why)) == 1) {
        switch (f.number) {
        case PB_TB_NAME:
            if (f.wire != PB_LEN) return pbd_fail(d, NULL, "table_name is not length-delimited");
            if (f.len > UINT32_MAX) return INGOT_E_TOO_LARGE;
            d->table_name = f.data;
            d->table_name_len = f.len;
            break;
        case PB_TB_COLUMNS:
            if (f.wire != PB_LEN) return pbd_fail(d, NULL, "columns is not length-delimited");
            if ((rv = pbd_reserve_columns(d, d->col_count + 1)) != 0) return rv;
            memset(&d->cols[d->col_count], 0, sizeof d->cols[0]);
            d->cols[d->col_count].msg = f.data;
            d->cols[d->col_count].msg_len = f.len;
            d->col_count++;
            break;
        case PB_TB_ROW_COUNT:
            if (f.wire != PB_VARINT) return pbd_fail(d, NULL, "row_count is not a varint");
            rows = f.value;
            break;
        default:
            break;
        }
    }
    if (r < 0) return pbd_fail(d, NULL, "byte %zu: %s", (size_t)(p - msg), why);
    if (d->table_name_len == 0) return pbd_fail(d, NULL, "empty table_name");
    if (rows > UINT32_MAX)
        return pbd_fail(d, NULL, "row_count %llu out of range", (unsigned long long)rows);
    d->row_count = (uint32_t)rows;

    for (size_t i = 0; i < d->col_count; i++)
        if ((rv = pbd_index_column(d, &d->cols[i])) != 0) return rv;

    uint32_t hmask = 0;
    if (d->col_count >= PBD_HASH_MIN_COLUMNS) {
        size_t slots = 1;
        while (slots < 2 * d->col_count)
            slots <<= 1;
        if (slots - 1 > UINT32_MAX) return INGOT_E_TOO_LARGE;
        if (pbd_grow((void **)&d->slots, &d->slot_cap, slots, sizeof *d->slots) != 0)
            return INGOT_E_NOMEM;
        hmask = (uint32_t)(slots - 1);
        memset(d->slots, 0xFF, slots * sizeof *d->slots);
    }
    const pbd_column *time_col = NULL;
    size_t tags = 0, fields = 0;
    for (size_t i = 0; i < d->col_count; i++) {
        pbd_column *c = &d->cols[i];
        if (c->name_len == 0) return pbd_fail(d, c, "empty column_name");
        if (c->name_len > LP_MAX_KEY_BYTES)
            return pbd_fail(d, c, "column_name longer than %u bytes", LP_MAX_KEY_BYTES);
        const pbd_column *dup = pbd_find_duplicate(d, i, hmask);
        if (dup)
            return pbd_fail(d, c, "duplicate column name (also column %zu)",
                            (size_t)(dup - d->cols) + 1);
        if ((rv = pbd_check_column(d, c)) != 0) return rv;
        if (c->semantic == PBD_SEM_TIME) {
            if (time_col) return pbd_fail(d, c, "more than one TIME column");
            time_col = c;
        } else if (c->semantic == PBD_SEM_TAG) {
            tags += (size_t)c->nonnull;
        } else {
            fields += (size_t)c->nonnull;
        }
    }
    if (!time_col) return pbd_fail(d, NULL, "no TIME column");
    *tag_total = tags;
    *field_total = fields;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Pass 2: rows
 */

static const char *const pbd_precision_names[] = {"ns", "us", "ms", "s"};

/* Appends the rows of the indexed table batch; room for them is reserved. */
static int pbd_fill_rows(pbd_decoder *d, const pbd_column *time_c, size_t tag_cols,
                         size_t live_count)
{
    static const int64_t mult[] = {1, 1000, 1000000, 1000000000};
    lp_batch *b = d->batch;
    const int64_t m = mult[d->precision];
    const uint8_t *base = d->base;
    const lp_str measurement = pbd_str(base, d->table_name, d->table_name_len);
    pbd_cursor time_cur = time_c->cur;
    pbd_column **live = d->live;
    lp_line *ln = b->lines + b->line_count;
    lp_tag *tag = b->tags + b->tag_count;
    lp_field *fld = b->fields + b->field_count;
    const lp_tag *tag0 = b->tags;
    const lp_field *fld0 = b->fields;
    uint32_t line_number = d->rows_before;

    for (uint32_t r = 0; r < d->row_count; r++, ln++) {
        const size_t byte = r >> 3;
        const unsigned bit = r & 7;
        uint64_t tv;
        if (pbd_next_varint(&time_cur, &tv) != 0)
            return pbd_fail(d, time_c, "row %u: malformed time value", r + 1);
        int64_t t = (int64_t)tv;
        int64_t t_ns;
        if (__builtin_mul_overflow(t, m, &t_ns))
            return pbd_fail(d, time_c, "row %u: time %lld %s overflows int64 nanoseconds", r + 1,
                            (long long)t, pbd_precision_names[d->precision]);
        ln->measurement = measurement;
        ln->text_off = measurement.off;
        ln->text_len = measurement.len;
        ln->line_number = ++line_number;
        ln->first_tag = (uint32_t)(tag - tag0);
        ln->first_field = (uint32_t)(fld - fld0);
        ln->time_ns = t_ns;
        ln->table_slot = 0;

        size_t k = 0;
        for (; k < tag_cols; k++) {
            pbd_column *c = live[k];
            if (c->mask && (c->mask[byte] >> bit) & 1) continue;
            lp_tag_set_key(tag, pbd_str(base, c->name, c->name_len));
            if (pbd_next_string(&c->cur, base, &tag->value) != 0)
                return pbd_fail(d, c, "row %u: malformed value", r + 1);
            if (tag->value.len == 0) return pbd_fail(d, c, "row %u: empty tag value", r + 1);
            tag->column = LP_COLUMN_UNRESOLVED;
            tag++;
        }
        for (; k < live_count; k++) {
            pbd_column *c = live[k];
            if (c->mask && (c->mask[byte] >> bit) & 1) continue;
            uint64_t v;
            int bad;
            lp_field_set_key(fld, pbd_str(base, c->name, c->name_len));
            fld->column = LP_COLUMN_UNRESOLVED;
            switch (c->array) {
            case PBD_F64:
                fld->type = LP_FIELD_F64;
                bad = pbd_next_f64(&c->cur, &fld->value.f64);
                break;
            case PBD_I64:
                fld->type = LP_FIELD_I64;
                bad = pbd_next_varint(&c->cur, &v);
                fld->value.i64 = (int64_t)v;
                break;
            case PBD_U64:
                fld->type = LP_FIELD_U64;
                bad = pbd_next_varint(&c->cur, &v);
                fld->value.u64 = v;
                break;
            case PBD_BOOL:
                fld->type = LP_FIELD_BOOL;
                bad = pbd_next_varint(&c->cur, &v);
                fld->value.boolean = v != 0;
                break;
            default:
                fld->type = LP_FIELD_STRING;
                bad = pbd_next_string(&c->cur, base, &fld->value.str);
                break;
            }
            if (bad) return pbd_fail(d, c, "row %u: malformed value", r + 1);
            if (fld->type == LP_FIELD_F64 && !isfinite(fld->value.f64)) /* as line protocol */
                return pbd_fail(d, c, "row %u: %s is not a finite number", r + 1,
                                isnan(fld->value.f64) ? "NaN" : "an infinity");
            fld++;
        }
        ln->tag_count = (uint32_t)(tag - tag0) - ln->first_tag;
        ln->field_count = (uint32_t)(fld - fld0) - ln->first_field;
        if (ln->field_count == 0) return pbd_fail(d, NULL, "row %u: no non-null field", r + 1);
    }
    b->line_count += d->row_count;
    b->tag_count = (size_t)(tag - tag0);
    b->field_count = (size_t)(fld - fld0);
    d->rows_before += d->row_count;
    return 0;
}

/* Index, reserve, fill: one TableBatch msg[0..len). */
static int pbd_decode_table(pbd_decoder *d, const uint8_t *msg, size_t len)
{
    size_t tag_total = 0, field_total = 0;
    int rv = pbd_index_table(d, msg, len, &tag_total, &field_total);
    if (rv != 0) return rv;
    lp_batch *b = d->batch;
    if ((uint64_t)d->rows_before + d->row_count > UINT32_MAX) return INGOT_E_TOO_LARGE;
    if (b->tag_count + tag_total > UINT32_MAX || b->field_count + field_total > UINT32_MAX)
        return INGOT_E_TOO_LARGE; /* first_tag / first_field are 32-bit */
    if (d->row_count == 0) return 0;
    /* Room for at least one of each: pbd_fill_rows takes pointers into all three arrays. */
    size_t tag_need = b->tag_count + tag_total, field_need = b->field_count + field_total;
    if (pbd_grow((void **)&b->lines, &b->line_cap, b->line_count + d->row_count,
                 sizeof *b->lines) != 0 ||
        pbd_grow((void **)&b->tags, &b->tag_cap, tag_need ? tag_need : 1, sizeof *b->tags) != 0 ||
        pbd_grow((void **)&b->fields, &b->field_cap, field_need ? field_need : 1,
                 sizeof *b->fields) != 0)
        return INGOT_E_NOMEM;

    /* Live columns: time, then tags, then fields holding values (all-null ones are ignored). */
    const pbd_column *time_c = NULL;
    size_t n = 0;
    for (size_t i = 0; i < d->col_count; i++) {
        pbd_column *c = &d->cols[i];
        pbd_cursor_init(&c->cur, c->msg, c->msg_len, c->array);
        if (c->semantic == PBD_SEM_TIME)
            time_c = c;
        else if (c->semantic == PBD_SEM_TAG && c->nonnull)
            d->live[n++] = c;
    }
    size_t tag_cols = n;
    for (size_t i = 0; i < d->col_count; i++) {
        pbd_column *c = &d->cols[i];
        if (c->semantic == PBD_SEM_FIELD && c->nonnull) d->live[n++] = c;
    }
    return pbd_fill_rows(d, time_c, tag_cols, n);
}

int pbdata_decode_batch(const uint8_t *msg, size_t len, enum lp_precision precision,
                        lp_batch *batch, char *err, size_t errlen)
{
    pbd_decoder d = {
        .batch = batch, .base = msg, .precision = precision, .err = err, .errlen = errlen};
    const size_t lines0 = batch->line_count, tags0 = batch->tag_count, fields0 = batch->field_count;
    const char *const base0 = batch->base;
    const uint8_t *p = msg, *end = msg + len;
    pb_field f;
    const char *why;
    int r, rv = 0;
    if (err && errlen) err[0] = '\0';
    if ((unsigned)precision > LP_PRECISION_S) {
        rv = pbd_fail(&d, NULL, "precision %d is not ns, us, ms or s", (int)precision);
        goto fail;
    }
    if (len && !msg) {
        rv = pbd_fail(&d, NULL, "no message");
        goto fail;
    }
    if (len > LP_MAX_BODY_BYTES) {
        rv = INGOT_E_TOO_LARGE;
        goto fail;
    }
    if (batch->line_count && batch->base != (const char *)msg) {
        rv = pbd_fail(&d, NULL, "the batch already holds rows of another message");
        goto fail;
    }
    batch->base = (const char *)msg;
    while ((r = pb_next(&p, end, &f, &why)) == 1) {
        if (f.number != PB_DB_TABLE_BATCHES) continue;
        d.table_index++;
        if (f.wire != PB_LEN) {
            rv = pbd_fail(&d, NULL, "table_batches is not length-delimited");
            goto fail;
        }
        if ((rv = pbd_decode_table(&d, f.data, f.len)) != 0) goto fail;
    }
    if (r < 0) {
        d.table_index = 0;
        rv = pbd_fail(&d, NULL, "DatabaseBatch, byte %zu: %s", (size_t)(p - msg), why);
        goto fail;
    }
    free(d.cols);
    free(d.live);
    free(d.slots);
    return 0;

fail:
    batch->line_count = lines0;
    batch->tag_count = tags0;
    batch->field_count = fields0;
    batch->base = base0;
    if (rv == INGOT_E_NOMEM)
        pbd_fail(&d, NULL, "out of memory");
    else if (rv == INGOT_E_TOO_LARGE)
        pbd_fail(&d, NULL, "too large (a message of more than %u bytes, or more than 2^32 - 1 "
                           "rows, tags or fields)", LP_MAX_BODY_BYTES);
    free(d.cols);
    free(d.live);
    free(d.slots);
    return rv;
}

/* ---------------------------------------------------------------------------------------------
 * WriteRequest
 */

int pbdata_decode_write_request(const uint8_t *msg, size_t len, pbdata_write_request *out,
                                char *err, size_t errlen)
{
    pbd_decoder d = {.err = err, .errlen = errlen};
    const uint8_t *p = msg, *end = msg + len;
    pb_field f;
    const char *why;
    int r;
    uint64_t precision = 0;
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = '\0';
    if (len && !msg) return pbd_fail(&d, NULL, "WriteRequest: no message");
    while ((r = pb_next(&p, end, &f, &why)) == 1) {
        const char *field = NULL;
        switch (f.number) {
        case PB_REQ_NAMESPACE:
            if (f.wire != PB_LEN) {
                field = "namespace";
                break;
            }
            out->namespace_name = (const char *)f.data;
            out->namespace_len = f.len;
            break;
        case PB_REQ_LINE_PROTOCOL:
            if (f.wire != PB_LEN) {
                field = "line_protocol";
                break;
            }
            out->payload = PBDATA_PAYLOAD_LINE_PROTOCOL;
            out->line_protocol = (const char *)f.data;
            out->line_protocol_len = f.len;
            out->batch = NULL;
            out->batch_len = 0;
            break;
        case PB_REQ_BATCH:
            if (f.wire != PB_LEN) {
                field = "batch";
                break;
            }
            if (out->payload == PBDATA_PAYLOAD_BATCH) {
                memset(out, 0, sizeof *out);
                return pbd_fail(&d, NULL,
                                "WriteRequest: batch given twice in a row (a split "
                                "DatabaseBatch is not supported)");
            }
            out->payload = PBDATA_PAYLOAD_BATCH;
            out->batch = f.data;
            out->batch_len = f.len;
            out->line_protocol = NULL;
            out->line_protocol_len = 0;
            break;
        case PB_REQ_PRECISION:
            if (f.wire != PB_VARINT) {
                field = "precision";
                break;
            }
            precision = f.value;
            break;
        default:
            break;
        }
        if (field) {
            memset(out, 0, sizeof *out);
            return pbd_fail(&d, NULL, "WriteRequest: %s has the wrong wire type %u", field, f.wire);
        }
    }
    if (r < 0) {
        memset(out, 0, sizeof *out);
        return pbd_fail(&d, NULL, "WriteRequest, byte %zu: %s", (size_t)(p - msg), why);
    }
    if (precision > LP_PRECISION_S) {
        memset(out, 0, sizeof *out);
        return pbd_fail(&d, NULL, "WriteRequest: unknown precision %lld",
                        (long long)(int64_t)precision);
    }
    out->precision = (enum lp_precision)precision;
    return 0;
}
