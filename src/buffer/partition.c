/*
 * partition.c: one partition of the buffer (one table, one UTC day): its columnar storage, the
 * transactional append of an op's rows, and the frozen copy a reader takes.
 *
 * Layout: see buffer_internal.h. Each column is indexed by its table column index and has room
 * for `cap` rows; everything past the rows in use is zero, so absent values read as null with a
 * zero value, and a column first seen after N rows needs no back-fill.
 *
 * Append is two-phase, both under the partition mutex (the caller holds the mutexes of every
 * partition of the op, taken in ascending partition id, so an op is atomic across partitions):
 *   reserve: check the rows against the schema, look every tag value up in its dictionary
 *            (remembering the ids), and grow every array to its worst case: rows, new columns,
 *            string bytes, dictionary entries / bytes / index for each value not yet found.
 *            Growth only changes capacity, never row_count, a dictionary's count or a string
 *            column's length, so a failure leaves nothing visible.
 *   append:  writes rows into the room made; it performs no allocation and cannot fail.
 * A column becomes present (type != 0) only in the append phase, so readers never see a column
 * without room for every row.
 *
 * Byte accounting: p->bytes is the size of the data held (values, validity, string and
 * dictionary bytes, dictionary entries, runs), not of the capacity allocated, so it grows
 * with the rows and does not jump with the doubling of arrays.
 */
#include "buffer/buffer_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/column_type.h"
#include "util/error.h"

#define BUFFER_MIN_ROWS 256
#define BUFFER_ID_UNKNOWN UINT32_MAX

_Atomic long buffer_fail_alloc_countdown;
static _Atomic uint64_t buffer_next_partition_id = 1;

/* realloc for the reservation phase, with the test seam. */
static void *buffer_realloc(void *ptr, size_t size)
{
    long n = atomic_load_explicit(&buffer_fail_alloc_countdown, memory_order_relaxed);
    if (n > 0) {
        if (atomic_fetch_sub(&buffer_fail_alloc_countdown, 1) == 1) return NULL;
    }
    return realloc(ptr, size);
}

void buffer_day_key(int64_t day, char out[11])
{
    /* civil date from a day count (proleptic Gregorian, eras of 400 years) */
    int64_t z = day + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
    if (y < 0) y = 0; /* outside the range of int64 nanoseconds anyway */
    int64_t yy = y % 10000;
    out[0] = (char)('0' + yy / 1000);
    out[1] = (char)('0' + yy / 100 % 10);
    out[2] = (char)('0' + yy / 10 % 10);
    out[3] = (char)('0' + yy % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

/* ---- partition life ------------------------------------------------------------------------ */

buffer_partition *buffer_partition_new(const schema_table *table, int64_t day)
{
    buffer_partition *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    p->id = atomic_fetch_add(&buffer_next_partition_id, 1);
    p->day = day;
    p->table = table;
    buffer_day_key(day, p->key);
    atomic_init(&p->refs, 1);
    atomic_init(&p->visible_rows, 0);
    return p;
}

void buffer_partition_ref(buffer_partition *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void buffer_column_free(buffer_column *c)
{
    free(c->validity);
    free(c->values);
    free(c->str_bytes);
    free(c->dict.entries);
    free(c->dict.bytes);
    free(c->dict.slots);
}

void buffer_partition_unref(buffer_partition *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) return;
    for (uint32_t i = 0; i < p->column_count; i++)
        buffer_column_free(&p->columns[i]);
    free(p->columns);
    free(p->runs);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- column storage ------------------------------------------------------------------------ */

/* Bytes of the value array of a column of type with room for rows. */
static size_t buffer_values_bytes(uint8_t type, size_t rows)
{
    switch (type) {
    case COLUMN_TAG:
        return rows * sizeof(uint32_t);
    case COLUMN_BOOL:
        return (rows + 7) / 8;
    case COLUMN_STRING:
        return (rows + 1) * sizeof(uint32_t);
    default:
        return rows * 8;
    }
}

/* Room for rows rows in column c (of type); new room is zeroed. */
static int buffer_column_reserve(buffer_column *c, uint8_t type, size_t rows)
{
    if (c->cap >= rows) return 0;
    size_t cap = c->cap * 2;
    if (cap < rows) cap = rows;
    if (cap < BUFFER_MIN_ROWS) cap = BUFFER_MIN_ROWS;
    size_t old_v = c->values ? buffer_values_bytes(type, c->cap) : 0;
    size_t new_v = buffer_values_bytes(type, cap);
    void *v = buffer_realloc(c->values, new_v);
    if (!v) return INGOT_E_NOMEM;
    memset((char *)v + old_v, 0, new_v - old_v);
    c->values = v;
    if (type != COLUMN_TIME) {
        size_t old_b = c->validity ? (c->cap + 7) / 8 : 0;
        size_t new_b = (cap + 7) / 8;
        uint8_t *b = buffer_realloc(c->validity, new_b);
        if (!b) return INGOT_E_NOMEM; /* values grew, cap did not: harmless, retried next time */
        memset(b + old_b, 0, new_b - old_b);
        c->validity = b;
    }
    c->cap = cap;
    return 0;
}

static int buffer_grow_bytes(char **buf, size_t *cap, size_t need)
{
    if (need > UINT32_MAX) return INGOT_E_TOO_LARGE; /* offsets are u32 */
    if (*cap >= need && *buf) return 0;
    size_t n = *cap * 2;
    if (n < need) n = need;
    if (n < 1024) n = 1024;
    if (n > UINT32_MAX) n = UINT32_MAX;
    char *b = buffer_realloc(*buf, n);
    if (!b) return INGOT_E_NOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

static uint32_t buffer_dict_find(const buffer_dict *d, const char *s, size_t len, uint32_t hash)
{
    if (!d->slot_cap) return BUFFER_ID_UNKNOWN;
    uint32_t mask = d->slot_cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t v = d->slots[i];
        if (!v) return BUFFER_ID_UNKNOWN;
        const buffer_dict_entry *e = &d->entries[v - 1];
        if (e->hash == hash && e->len == len && memcmp(d->bytes + e->offset, s, len) == 0)
            return v - 1;
    }
}

/* Room for extra more entries holding extra_bytes more bytes. */
static int buffer_dict_reserve(buffer_dict *d, size_t extra, size_t extra_bytes)
{
    if (!extra) return 0;
    size_t want = (size_t)d->count + extra;
    if (want >= UINT32_MAX / 2) return INGOT_E_TOO_LARGE;
    if (want > d->cap) {
        size_t cap = (size_t)d->cap * 2;
        if (cap < want) cap = want;
        if (cap < 16) cap = 16;
        buffer_dict_entry *e = buffer_realloc(d->entries, cap * sizeof *e);
        if (!e) return INGOT_E_NOMEM;
        d->entries = e;
        d->cap = (uint32_t)cap;
    }
    int rc = buffer_grow_bytes(&d->bytes, &d->bytes_cap, d->len + extra_bytes);
    if (rc) return rc;
    if (want * 4 > (size_t)d->slot_cap * 3) { /* keep the load factor at most 3/4 */
        size_t sc = d->slot_cap ? d->slot_cap : 16;
        while (want * 4 > sc * 3)
            sc *= 2;
        uint32_t *slots = buffer_realloc(NULL, sc * sizeof *slots);
        if (!slots) return INGOT_E_NOMEM;
        memset(slots, 0, sc * sizeof *slots);
        uint32_t mask = (uint32_t)sc - 1;
        for (uint32_t id = 0; id < d->count; id++) {
            uint32_t i = d->entries[id].hash & mask;
            while (slots[i])
                i = (i + 1) & mask;
            slots[i] = id + 1;
        }
        free(d->slots);
        d->slots = slots;
        d->slot_cap = (uint32_t)sc;
    }
    return 0;
}

/* Insert a string known to be absent; room was reserved. */
static uint32_t buffer_dict_insert(buffer_dict *d, const char *s, size_t len, uint32_t hash)
{
    uint32_t id = d->count++;
    buffer_dict_entry *e = &d->entries[id];
    e->offset = (uint32_t)d->len;
    e->len = (uint32_t)len;
    e->hash = hash;
    memcpy(d->bytes + d->len, s, len);
    d->len += len;
    uint32_t mask = d->slot_cap - 1;
    uint32_t i = hash & mask;
    while (d->slots[i])
        i = (i + 1) & mask;
    d->slots[i] = id + 1;
    return id;
}

/* Bytes of data held by p (see the essay). */
static size_t buffer_partition_data_bytes(const buffer_partition *p)
{
    size_t rows = p->row_count, total = p->run_count * sizeof(buffer_run);
    for (uint32_t i = 0; i < p->column_count; i++) {
        const buffer_column *c = &p->columns[i];
        if (!c->type) continue;
        total += buffer_values_bytes(c->type, rows);
        if (c->type != COLUMN_TIME) total += (rows + 7) / 8;
        total += c->str_len + c->dict.len + (size_t)c->dict.count * sizeof(buffer_dict_entry);
    }
    return total;
}

void buffer_append_scratch_free(buffer_append_scratch *s)
{
    free(s->tag_ids);
    free(s->unescape);
    memset(s, 0, sizeof *s);
}

/* The bytes of s, unescaped into the scratch buffer when needed (room was made for it). */
static const char *buffer_str_bytes(buffer_append_scratch *s, lp_str str, size_t *len)
{
    if (!str.escaped) {
        *len = str.len;
        return str.ptr;
    }
    *len = lp_str_unescape(str, s->unescape);
    return s->unescape;
}

/* ---- reserve ------------------------------------------------------------------------------- */

int buffer_partition_reserve(buffer_append_group *g, const dml_op *op, buffer_append_scratch *s)
{
    buffer_partition *p = g->p;
    const schema_table *t = p->table;
    const lp_batch *b = op->batch;
    uint32_t ncols = atomic_load_explicit(&((schema_table *)t)->column_count, memory_order_acquire);
    size_t str_need[SCHEMA_MAX_COLUMNS];
    size_t dict_new[SCHEMA_MAX_COLUMNS];
    size_t dict_bytes[SCHEMA_MAX_COLUMNS];
    bool used[SCHEMA_MAX_COLUMNS];
    uint32_t max_col = 0;
    size_t max_escaped = 0;

    if (ncols > SCHEMA_MAX_COLUMNS || ncols == 0) return INGOT_E_INVALID;
    memset(str_need, 0, ncols * sizeof str_need[0]);
    memset(dict_new, 0, ncols * sizeof dict_new[0]);
    memset(dict_bytes, 0, ncols * sizeof dict_bytes[0]);
    memset(used, 0, ncols * sizeof used[0]);

    /* pass 1: schema check, escaped sizes */
    for (size_t k = 0; k < g->line_count; k++) {
        const lp_line *ln = &b->lines[g->lines[k]];
        for (uint32_t j = 0; j < ln->tag_count; j++) {
            const lp_tag *tg = &b->tags[ln->first_tag + j];
            if (tg->column == 0 || tg->column >= ncols || t->columns[tg->column].type != COLUMN_TAG)
                return INGOT_E_INVALID;
            if (tg->value.escaped && tg->value.len > max_escaped) max_escaped = tg->value.len;
            used[tg->column] = true;
            if (tg->column > max_col) max_col = tg->column;
        }
        for (uint32_t j = 0; j < ln->field_count; j++) {
            const lp_field *f = &b->fields[ln->first_field + j];
            if (f->column == 0 || f->column >= ncols || t->columns[f->column].type != f->type ||
                f->type < COLUMN_I64 || f->type > COLUMN_STRING)
                return INGOT_E_INVALID;
            if (f->type == COLUMN_STRING) str_need[f->column] += f->value.str.len;
            used[f->column] = true;
            if (f->column > max_col) max_col = f->column;
        }
    }
    if (max_escaped > s->unescape_cap) {
        char *u = buffer_realloc(s->unescape, max_escaped);
        if (!u) return INGOT_E_NOMEM;
        s->unescape = u;
        s->unescape_cap = max_escaped;
    }

    /* columns array */
    if (max_col + 1 > p->column_count) {
        buffer_column *cols = buffer_realloc(p->columns, (max_col + 1) * sizeof *cols);
        if (!cols) return INGOT_E_NOMEM;
        memset(cols + p->column_count, 0, (max_col + 1 - p->column_count) * sizeof *cols);
        p->columns = cols;
        p->column_count = max_col + 1;
    }

    /* pass 2: tag lookups (ids remembered for the append phase) */
    for (size_t k = 0; k < g->line_count; k++) {
        const lp_line *ln = &b->lines[g->lines[k]];
        for (uint32_t j = 0; j < ln->tag_count; j++) {
            uint32_t ti = ln->first_tag + j;
            const lp_tag *tg = &b->tags[ti];
            size_t len;
            const char *str = buffer_str_bytes(s, tg->value, &len);
            uint32_t id = buffer_dict_find(&p->columns[tg->column].dict, str, len,
                                           buffer_hash_bytes(str, len));
            s->tag_ids[ti] = id;
            if (id == BUFFER_ID_UNKNOWN) {
                dict_new[tg->column]++;
                dict_bytes[tg->column] += len;
            }
        }
    }

    /* room */
    size_t rows = p->row_count + g->line_count;
    int rc = buffer_column_reserve(&p->columns[0], COLUMN_TIME, rows);
    if (rc) return rc;
    for (uint32_t i = 1; i < p->column_count; i++) {
        buffer_column *c = &p->columns[i];
        uint8_t type = t->columns[i].type;
        if (!c->type && !(i < ncols && used[i])) continue;
        rc = buffer_column_reserve(c, type, rows);
        if (rc) return rc;
        if (i >= ncols) continue;
        if (type == COLUMN_STRING && str_need[i]) {
            rc = buffer_grow_bytes(&c->str_bytes, &c->str_cap, c->str_len + str_need[i]);
            if (rc) return rc;
        }
        if (type == COLUMN_TAG && dict_new[i]) {
            rc = buffer_dict_reserve(&c->dict, dict_new[i], dict_bytes[i]);
            if (rc) return rc;
        }
    }
    if (p->run_count + 1 > p->run_cap) {
        size_t cap = p->run_cap ? p->run_cap * 2 : 16;
        buffer_run *r = buffer_realloc(p->runs, cap * sizeof *r);
        if (!r) return INGOT_E_NOMEM;
        p->runs = r;
        p->run_cap = cap;
    }
    return 0;
}

/* ---- append -------------------------------------------------------------------------------- */

static inline void buffer_set_bit(uint8_t *bits, size_t i)
{
    bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* End offsets of string column c written for every row below rows (rows without a value empty). */
static void buffer_string_fill(buffer_column *c, size_t rows)
{
    uint32_t *off = c->values;
    while (c->str_filled < rows) {
        off[c->str_filled + 1] = (uint32_t)c->str_len;
        c->str_filled++;
    }
}

void buffer_partition_append(buffer_append_group *g, const dml_op *op, buffer_append_scratch *s)
{
    buffer_partition *p = g->p;
    const schema_table *t = p->table;
    const lp_batch *b = op->batch;
    size_t base = p->row_count;
    size_t before = p->bytes;
    int64_t *time = p->columns[0].values;
    buffer_column *cols = p->columns;

    p->columns[0].type = COLUMN_TIME;
    for (size_t k = 0; k < g->line_count; k++) {
        const lp_line *ln = &b->lines[g->lines[k]];
        size_t r = base + k;
        time[r] = ln->time_ns;
        for (uint32_t j = 0; j < ln->tag_count; j++) {
            uint32_t ti = ln->first_tag + j;
            const lp_tag *tg = &b->tags[ti];
            buffer_column *c = &cols[tg->column];
            uint32_t id = s->tag_ids[ti];
            if (id == BUFFER_ID_UNKNOWN) { /* not found at reservation: maybe added since */
                size_t len;
                const char *str = buffer_str_bytes(s, tg->value, &len);
                uint32_t h = buffer_hash_bytes(str, len);
                id = buffer_dict_find(&c->dict, str, len, h);
                if (id == BUFFER_ID_UNKNOWN) id = buffer_dict_insert(&c->dict, str, len, h);
            }
            ((uint32_t *)c->values)[r] = id;
            buffer_set_bit(c->validity, r);
        }
        for (uint32_t j = 0; j < ln->field_count; j++) {
            const lp_field *f = &b->fields[ln->first_field + j];
            buffer_column *c = &cols[f->column];
            switch (f->type) {
            case LP_FIELD_I64:
                ((int64_t *)c->values)[r] = f->value.i64;
                break;
            case LP_FIELD_U64:
                ((uint64_t *)c->values)[r] = f->value.u64;
                break;
            case LP_FIELD_F64:
                ((double *)c->values)[r] = f->value.f64;
                break;
            case LP_FIELD_BOOL:
                if (f->value.boolean) buffer_set_bit(c->values, r);
                break;
            case LP_FIELD_STRING: {
                buffer_string_fill(c, r);
                lp_str v = f->value.str;
                if (v.escaped)
                    c->str_len += lp_str_unescape(v, c->str_bytes + c->str_len);
                else if (v.len) {
                    memcpy(c->str_bytes + c->str_len, v.ptr, v.len);
                    c->str_len += v.len;
                }
                ((uint32_t *)c->values)[r + 1] = (uint32_t)c->str_len;
                c->str_filled = r + 1;
                break;
            }
            default:
                break;
            }
            buffer_set_bit(c->validity, r);
        }
    }
    size_t rows = base + g->line_count;
    uint32_t ncols = atomic_load_explicit(&((schema_table *)t)->column_count, memory_order_acquire);
    for (uint32_t i = 1; i < p->column_count; i++) {
        buffer_column *c = &cols[i];
        if (!c->type && c->values && c->cap >= rows && i < ncols)
            c->type = t->columns[i].type; /* reserved for this append: now present */
        if (c->type == COLUMN_STRING) buffer_string_fill(c, rows);
    }
    p->runs[p->run_count].first_row = base;
    p->runs[p->run_count].sequence = op->sequence;
    p->run_count++;
    p->row_count = rows;
    p->bytes = buffer_partition_data_bytes(p);
    g->bytes_delta = (int64_t)p->bytes - (int64_t)before;
    atomic_store_explicit(&p->visible_rows, rows, memory_order_release);
}

/* ---- frozen copies ------------------------------------------------------------------------- */

void buffer_frozen_free(buffer_frozen *f)
{
    if (!f->columns && !f->seq) return;
    for (uint32_t i = 0; i < f->column_count; i++)
        buffer_column_free(&f->columns[i]);
    free(f->columns);
    free(f->seq);
    memset(f, 0, sizeof *f);
}

/* Copy rows sel[0..n) (or 0..n when sel is NULL) of src into dst (a fresh column). */
static int buffer_column_copy(buffer_column *dst, const buffer_column *src, const uint32_t *sel,
                              size_t n)
{
    uint8_t type = src->type;
    dst->type = type;
    dst->cap = n;
    size_t vb = buffer_values_bytes(type, n);
    dst->values = calloc(1, vb ? vb : 1);
    if (!dst->values) return INGOT_E_NOMEM;
    if (type != COLUMN_TIME) {
        dst->validity = calloc(1, (n + 7) / 8 + 1);
        if (!dst->validity) return INGOT_E_NOMEM;
        if (!sel) {
            memcpy(dst->validity, src->validity, (n + 7) / 8);
            if (n & 7) /* clear bits past n (none are set in src anyway) */
                dst->validity[n / 8] &= (uint8_t)((1u << (n & 7)) - 1);
        } else {
            for (size_t i = 0; i < n; i++)
                if (buffer_bit(src->validity, sel[i])) buffer_set_bit(dst->validity, i);
        }
    }
    switch (type) {
    case COLUMN_BOOL:
        for (size_t i = 0; i < n; i++)
            if (buffer_bit(src->values, sel ? sel[i] : i)) buffer_set_bit(dst->values, i);
        break;
    case COLUMN_STRING: {
        const uint32_t *so = src->values;
        uint32_t *o = dst->values;
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            size_t r = sel ? sel[i] : i;
            bytes += so[r + 1] - so[r];
        }
        dst->str_bytes = malloc(bytes ? bytes : 1);
        if (!dst->str_bytes) return INGOT_E_NOMEM;
        if (!sel) {
            memcpy(o, so, (n + 1) * sizeof *o);
            if (bytes) memcpy(dst->str_bytes, src->str_bytes, bytes);
        } else {
            size_t at = 0;
            for (size_t i = 0; i < n; i++) {
                size_t r = sel[i];
                size_t len = so[r + 1] - so[r];
                if (len) memcpy(dst->str_bytes + at, src->str_bytes + so[r], len);
                at += len;
                o[i + 1] = (uint32_t)at;
            }
        }
        dst->str_len = dst->str_cap = bytes;
        dst->str_filled = n;
        break;
    }
    case COLUMN_TAG: {
        const uint32_t *si = src->values;
        uint32_t *di = dst->values;
        if (!sel)
            memcpy(di, si, n * sizeof *di);
        else
            for (size_t i = 0; i < n; i++)
                di[i] = si[sel[i]];
        const buffer_dict *sd = &src->dict;
        buffer_dict *dd = &dst->dict;
        dd->entries = malloc((sd->count ? sd->count : 1) * sizeof *dd->entries);
        dd->bytes = malloc(sd->len ? sd->len : 1);
        if (!dd->entries || !dd->bytes) return INGOT_E_NOMEM;
        memcpy(dd->entries, sd->entries, sd->count * sizeof *dd->entries);
        memcpy(dd->bytes, sd->bytes, sd->len);
        dd->count = dd->cap = sd->count;
        dd->len = dd->bytes_cap = sd->len;
        break;
    }
    default: { /* 8-byte values */
        const uint64_t *sv = src->values;
        uint64_t *dv = dst->values;
        if (!sel)
            memcpy(dv, sv, n * 8);
        else
            for (size_t i = 0; i < n; i++)
                dv[i] = sv[sel[i]];
        break;
    }
    }
    return 0;
}

int buffer_partition_freeze(buffer_partition *p, const bool *want, size_t want_count,
                            int64_t min_time_ns, int64_t max_time_ns, buffer_frozen *out)
{
    uint32_t *sel = NULL;
    int rc = INGOT_E_NOMEM;
    memset(out, 0, sizeof *out);
    out->table = p->table;

    pthread_mutex_lock(&p->mu);
    size_t rows = p->row_count, n = 0;
    const int64_t *time = rows ? p->columns[0].values : NULL;
    for (size_t r = 0; r < rows; r++)
        n += time[r] >= min_time_ns && time[r] < max_time_ns;
    if (n != rows) {
        sel = malloc((n ? n : 1) * sizeof *sel);
        if (!sel) goto fail;
        size_t k = 0;
        for (size_t r = 0; r < rows; r++)
            if (time[r] >= min_time_ns && time[r] < max_time_ns) sel[k++] = (uint32_t)r;
    }
    out->row_count = n;
    out->seq = malloc((n ? n : 1) * sizeof *out->seq);
    out->columns = calloc(p->column_count ? p->column_count : 1, sizeof *out->columns);
    if (!out->seq || !out->columns) goto fail;
    out->column_count = p->column_count;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = sel ? sel[i] : i;
        while (run + 1 < p->run_count && p->runs[run + 1].first_row <= r)
            run++;
        out->seq[i] = p->runs[run].sequence;
    }
    for (uint32_t i = 0; i < p->column_count && n; i++) {
        const buffer_column *c = &p->columns[i];
        if (!c->type) continue;
        if (i != 0 && c->type != COLUMN_TAG && !(i < want_count && want[i])) continue;
        rc = buffer_column_copy(&out->columns[i], c, sel, n);
        if (rc) goto fail;
    }
    pthread_mutex_unlock(&p->mu);
    free(sel);
    return 0;
fail:
    pthread_mutex_unlock(&p->mu);
    free(sel);
    buffer_frozen_free(out);
    return INGOT_E_NOMEM;
}
