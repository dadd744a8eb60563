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
 * with the rows and does not jump with the doubling of arrays. It covers the live buffer only;
 * a snapshot keeps the bytes it took (buffer_snapshot.c).
 *
 * Frozen copies (buffer_partition_freeze): a reader's private copy of the rows held, built from
 * "sources" (the live buffer, snapshots) concatenated in order: snapshots oldest first, then the
 * buffer. Under the mutex only the live buffer is copied and the attached snapshots are
 * referenced; the snapshots' rows are copied after unlocking (they are immutable), so one query
 * sees one consistent state of the partition (each row exactly once) and holds the lock for the
 * buffer's rows only. Tag dictionaries of several sources are concatenated (ids shifted), so a
 * string may have several ids in a copy; de-duplication compares strings, never ids.
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

buffer_partition *buffer_partition_new(const schema_table *table, int64_t day,
                                       const char *namespace_name, buffer_totals *totals)
{
    buffer_partition *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_mutex_init(&p->handover_mu, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->id = atomic_fetch_add(&buffer_next_partition_id, 1);
    p->day = day;
    p->table = table;
    p->namespace_name = namespace_name;
    p->totals = totals;
    buffer_day_key(day, p->key);
    atomic_init(&p->refs, 1);
    atomic_init(&p->visible_rows, 0);
    atomic_init(&p->min_sequence, UINT64_MAX);
    p->buf_min_sequence = UINT64_MAX;
    return p;
}

void buffer_partition_ref(buffer_partition *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void buffer_column_free(buffer_column *c)
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
    free(p->snaps); /* empty: every attached snapshot holds a reference on p */
    pthread_mutex_destroy(&p->handover_mu);
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
/* Room for rows values; a column's first allocation takes hint rows if that is more. */
static int buffer_column_reserve(buffer_column *c, uint8_t type, size_t rows, size_t hint)
{
    if (c->cap >= rows) return 0;
    size_t cap = c->cap ? c->cap * 2 : hint;
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
    if (len) memcpy(d->bytes + d->len, s, len);
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

/* The bytes of str (of batch b), unescaped into the scratch buffer when needed (room was made). */
static const char *buffer_str_bytes(buffer_append_scratch *s, const lp_batch *b, lp_str str,
                                    size_t *len)
{
    if (!str.escaped) {
        *len = str.len;
        return lp_str_ptr(b, str);
    }
    *len = lp_str_unescape(b, str, s->unescape);
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
            const char *str = buffer_str_bytes(s, b, tg->value, &len);
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
    int rc = buffer_column_reserve(&p->columns[0], COLUMN_TIME, rows, p->row_hint);
    if (rc) return rc;
    for (uint32_t i = 1; i < p->column_count; i++) {
        buffer_column *c = &p->columns[i];
        uint8_t type = t->columns[i].type;
        if (!c->type && !(i < ncols && used[i])) continue;
        rc = buffer_column_reserve(c, type, rows, p->row_hint);
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
        /* runs, then the same number of u64s of room for a snapshot's sequence list */
        buffer_run *r = buffer_realloc(p->runs, cap * (sizeof *r + sizeof(uint64_t)));
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
                const char *str = buffer_str_bytes(s, b, tg->value, &len);
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
                    c->str_len += lp_str_unescape(b, v, c->str_bytes + c->str_len);
                else if (v.len) {
                    if (v.len) memcpy(c->str_bytes + c->str_len, lp_str_ptr(b, v), v.len);
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
    if (op->sequence < p->buf_min_sequence) p->buf_min_sequence = op->sequence;
    if (op->sequence > p->buf_max_sequence) p->buf_max_sequence = op->sequence;
    p->bytes = buffer_partition_data_bytes(p);
    g->bytes_delta = (int64_t)p->bytes - (int64_t)before;
    buffer_partition_publish(p);
}

void buffer_partition_publish(buffer_partition *p)
{
    uint64_t m = p->row_count ? p->buf_min_sequence : UINT64_MAX;
    for (size_t i = 0; i < p->snap_count; i++)
        if (p->snaps[i]->min_sequence < m) m = p->snaps[i]->min_sequence;
    atomic_store_explicit(&p->min_sequence, m, memory_order_relaxed);
    atomic_store_explicit(&p->visible_rows, p->row_count + p->snap_rows, memory_order_release);
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

/*
 * One source of rows for a frozen copy: a partition's buffer, a snapshot, or an earlier frozen
 * copy. Row sequences come from seq[] when set, else from the runs.
 */
typedef struct buffer_source {
    const buffer_column *columns;
    uint32_t column_count;
    size_t row_count;
    const buffer_run *runs;
    size_t run_count;
    const uint64_t *seq;
    /* the selection (filled by buffer_frozen_build) */
    uint32_t *sel; /* selected rows, or NULL for all */
    size_t n;      /* rows selected */
} buffer_source;

/* Select the rows of s in [min, max). */
static int buffer_source_select(buffer_source *s, int64_t min_time_ns, int64_t max_time_ns)
{
    size_t rows = s->row_count, n = 0;
    const int64_t *time = rows ? s->columns[0].values : NULL;
    s->sel = NULL;
    for (size_t r = 0; r < rows; r++)
        n += time[r] >= min_time_ns && time[r] < max_time_ns;
    s->n = n;
    if (n == rows) return 0;
    s->sel = malloc((n ? n : 1) * sizeof *s->sel);
    if (!s->sel) return INGOT_E_NOMEM;
    size_t k = 0;
    for (size_t r = 0; r < rows; r++)
        if (time[r] >= min_time_ns && time[r] < max_time_ns) s->sel[k++] = (uint32_t)r;
    return 0;
}

static inline const buffer_column *buffer_source_column(const buffer_source *s, uint32_t i)
{
    return i < s->column_count && s->columns[i].type ? &s->columns[i] : NULL;
}

/* Rows of source s (selected) into dst at rows [at, at + s->n); dst has room and is zeroed. */
static void buffer_column_put(buffer_column *dst, const buffer_column *src, const buffer_source *s,
                              size_t at, uint32_t dict_base)
{
    const uint32_t *sel = s->sel;
    size_t n = s->n;
    uint8_t type = dst->type;
    if (type != COLUMN_TIME) {
        if (!sel && at == 0) {
            memcpy(dst->validity, src->validity, (n + 7) / 8);
            if (n & 7) /* clear bits past n (none are set in src anyway) */
                dst->validity[n / 8] &= (uint8_t)((1u << (n & 7)) - 1);
        } else {
            for (size_t i = 0; i < n; i++)
                if (buffer_bit(src->validity, sel ? sel[i] : i))
                    buffer_set_bit(dst->validity, at + i);
        }
    }
    switch (type) {
    case COLUMN_BOOL:
        for (size_t i = 0; i < n; i++)
            if (buffer_bit(src->values, sel ? sel[i] : i)) buffer_set_bit(dst->values, at + i);
        break;
    case COLUMN_STRING: {
        const uint32_t *so = src->values;
        uint32_t *o = dst->values;
        size_t len0 = dst->str_len;
        if (!sel) {
            size_t bytes = so[n] - so[0];
            if (bytes) memcpy(dst->str_bytes + len0, src->str_bytes + so[0], bytes);
            for (size_t i = 0; i < n; i++)
                o[at + i + 1] = (uint32_t)(len0 + so[i + 1] - so[0]);
            dst->str_len = len0 + bytes;
        } else {
            size_t len = len0;
            for (size_t i = 0; i < n; i++) {
                size_t r = sel[i], l = so[r + 1] - so[r];
                if (l) memcpy(dst->str_bytes + len, src->str_bytes + so[r], l);
                len += l;
                o[at + i + 1] = (uint32_t)len;
            }
            dst->str_len = len;
        }
        break;
    }
    case COLUMN_TAG: {
        const uint32_t *si = src->values;
        uint32_t *di = dst->values;
        if (!sel && dict_base == 0)
            memcpy(di + at, si, n * sizeof *di);
        else
            for (size_t i = 0; i < n; i++)
                di[at + i] = si[sel ? sel[i] : i] + dict_base;
        const buffer_dict *sd = &src->dict;
        buffer_dict *dd = &dst->dict;
        for (uint32_t e = 0; e < sd->count; e++) {
            dd->entries[dd->count + e] = sd->entries[e];
            dd->entries[dd->count + e].offset += (uint32_t)dd->len;
        }
        if (sd->len) memcpy(dd->bytes + dd->len, sd->bytes, sd->len);
        dd->count += sd->count;
        dd->len += sd->len;
        break;
    }
    default: { /* 8-byte values */
        const uint64_t *sv = src->values;
        uint64_t *dv = dst->values;
        if (!sel)
            memcpy(dv + at, sv, n * 8);
        else
            for (size_t i = 0; i < n; i++)
                dv[at + i] = sv[sel[i]];
        break;
    }
    }
}

/* Column i of the sources (of type) as a fresh column of total rows. */
static int buffer_column_gather(buffer_column *dst, uint8_t type, uint32_t i,
                                const buffer_source *src, size_t nsrc, size_t total)
{
    size_t str_bytes = 0, dict_count = 0, dict_bytes = 0;
    for (size_t k = 0; k < nsrc; k++) {
        const buffer_column *c = buffer_source_column(&src[k], i);
        if (!c) continue;
        if (type == COLUMN_STRING) {
            const uint32_t *so = c->values;
            if (!src[k].sel)
                str_bytes += so[src[k].n] - so[0];
            else
                for (size_t j = 0; j < src[k].n; j++)
                    str_bytes += so[src[k].sel[j] + 1] - so[src[k].sel[j]];
        } else if (type == COLUMN_TAG) {
            dict_count += c->dict.count;
            dict_bytes += c->dict.len;
        }
    }
    if (str_bytes > UINT32_MAX || dict_bytes > UINT32_MAX || dict_count >= UINT32_MAX)
        return INGOT_E_TOO_LARGE;
    dst->type = type;
    dst->cap = total;
    size_t vb = buffer_values_bytes(type, total);
    dst->values = calloc(1, vb ? vb : 1);
    if (!dst->values) return INGOT_E_NOMEM;
    if (type != COLUMN_TIME) {
        dst->validity = calloc(1, (total + 7) / 8 + 1);
        if (!dst->validity) return INGOT_E_NOMEM;
    }
    if (type == COLUMN_STRING) {
        dst->str_bytes = malloc(str_bytes ? str_bytes : 1);
        if (!dst->str_bytes) return INGOT_E_NOMEM;
        dst->str_cap = str_bytes;
    }
    if (type == COLUMN_TAG) {
        dst->dict.entries = malloc((dict_count ? dict_count : 1) * sizeof *dst->dict.entries);
        dst->dict.bytes = malloc(dict_bytes ? dict_bytes : 1);
        if (!dst->dict.entries || !dst->dict.bytes) return INGOT_E_NOMEM;
        dst->dict.cap = (uint32_t)dict_count;
        dst->dict.bytes_cap = dict_bytes;
    }
    size_t at = 0;
    for (size_t k = 0; k < nsrc; k++) {
        const buffer_column *c = buffer_source_column(&src[k], i);
        if (c) {
            buffer_column_put(dst, c, &src[k], at, dst->dict.count);
        } else if (type == COLUMN_STRING) { /* absent: empty null strings */
            uint32_t *o = dst->values;
            for (size_t j = 0; j < src[k].n; j++)
                o[at + j + 1] = (uint32_t)dst->str_len;
        }
        at += src[k].n;
    }
    dst->str_filled = type == COLUMN_STRING ? total : 0;
    return 0;
}

/*
 * The rows of the sources (in order) in [min, max), with the columns wanted (plus time and the
 * tags), as out. INGOT_E_NOMEM / INGOT_E_TOO_LARGE (out empty).
 */
static int buffer_frozen_build(buffer_source *src, size_t nsrc, const bool *want, size_t want_count,
                               int64_t min_time_ns, int64_t max_time_ns, buffer_frozen *out)
{
    int rc = INGOT_E_NOMEM;
    size_t total = 0;
    uint32_t column_count = 0;
    for (size_t k = 0; k < nsrc; k++)
        src[k].sel = NULL;
    for (size_t k = 0; k < nsrc; k++) {
        rc = buffer_source_select(&src[k], min_time_ns, max_time_ns);
        if (rc) goto fail;
        total += src[k].n;
        if (src[k].column_count > column_count) column_count = src[k].column_count;
    }
    rc = INGOT_E_NOMEM;
    out->row_count = total;
    out->seq = malloc((total ? total : 1) * sizeof *out->seq);
    out->columns = calloc(column_count ? column_count : 1, sizeof *out->columns);
    if (!out->seq || !out->columns) goto fail;
    out->column_count = column_count;
    size_t at = 0;
    for (size_t k = 0; k < nsrc; k++) {
        const buffer_source *s = &src[k];
        if (s->seq) {
            for (size_t i = 0; i < s->n; i++)
                out->seq[at + i] = s->seq[s->sel ? s->sel[i] : i];
        } else {
            size_t run = 0;
            for (size_t i = 0; i < s->n; i++) {
                size_t r = s->sel ? s->sel[i] : i;
                while (run + 1 < s->run_count && s->runs[run + 1].first_row <= r)
                    run++;
                out->seq[at + i] = s->runs[run].sequence;
            }
        }
        at += s->n;
    }
    for (uint32_t i = 0; i < column_count && total; i++) {
        uint8_t type = 0;
        for (size_t k = 0; k < nsrc && !type; k++) {
            const buffer_column *c = buffer_source_column(&src[k], i);
            if (c) type = c->type;
        }
        if (!type) continue;
        if (i != 0 && type != COLUMN_TAG && !(i < want_count && want[i])) continue;
        rc = buffer_column_gather(&out->columns[i], type, i, src, nsrc, total);
        if (rc) goto fail;
    }
    rc = 0;
fail:
    for (size_t k = 0; k < nsrc; k++) {
        free(src[k].sel);
        src[k].sel = NULL;
    }
    if (rc) buffer_frozen_free(out);
    return rc;
}

int buffer_partition_freeze(buffer_partition *p, const bool *want, size_t want_count,
                            int64_t min_time_ns, int64_t max_time_ns, buffer_frozen *out)
{
    buffer_snapshot **snaps = NULL;
    buffer_source *src = NULL;
    buffer_frozen live = {0};
    size_t nsnap = 0;
    int rc = INGOT_E_NOMEM;
    memset(out, 0, sizeof *out);
    out->table = p->table;

    pthread_mutex_lock(&p->mu);
    if (p->snap_count) {
        snaps = malloc(p->snap_count * sizeof *snaps);
        if (!snaps) {
            pthread_mutex_unlock(&p->mu);
            goto done;
        }
        for (; nsnap < p->snap_count; nsnap++) {
            snaps[nsnap] = p->snaps[nsnap];
            buffer_snapshot_retain(snaps[nsnap]);
        }
    }
    buffer_source buf = {.columns = p->columns,
                         .column_count = p->column_count,
                         .row_count = p->row_count,
                         .runs = p->runs,
                         .run_count = p->run_count};
    live.table = p->table;
    out->persisted_count = p->persisted_count;
    rc = buffer_frozen_build(&buf, 1, want, want_count, min_time_ns, max_time_ns,
                             nsnap ? &live : out);
    pthread_mutex_unlock(&p->mu);
    if (rc || !nsnap) goto done;

    /* the snapshots, oldest first, then the buffer's copy; outside the lock (they are frozen) */
    rc = INGOT_E_NOMEM;
    src = calloc(nsnap + 1, sizeof *src);
    if (!src) goto done;
    for (size_t k = 0; k < nsnap; k++) {
        const buffer_snapshot *s = snaps[k];
        src[k] = (buffer_source){.columns = s->columns,
                                 .column_count = s->column_count,
                                 .row_count = s->row_count,
                                 .runs = s->runs,
                                 .run_count = s->run_count};
    }
    src[nsnap] = (buffer_source){.columns = live.columns,
                                 .column_count = live.column_count,
                                 .row_count = live.row_count,
                                 .seq = live.seq};
    /* (the buffer's copy is in the range already: selecting it again keeps every row) */
    rc = buffer_frozen_build(src, nsnap + 1, want, want_count, min_time_ns, max_time_ns, out);
done:
    for (size_t k = 0; k < nsnap; k++)
        buffer_snapshot_release(snaps[k]);
    free(snaps);
    free(src);
    buffer_frozen_free(&live);
    if (rc) buffer_frozen_free(out);
    return rc;
}
