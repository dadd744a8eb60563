/*
 * buffer_query.c: the buffer's QueryExec (ARCHITECTURE §5) and the sort + de-duplication core.
 *
 * A query finds its table by name and takes a snapshot of the table's partitions: references
 * (not locks), in ascending day order, fixed when the query starts; partitions that never held a
 * row are left out, so one created later, or only by a failed op, is invisible. The stream
 * yields at least one batch per partition of the snapshot, even with 0 rows. Pulling a partition's
 * first batch locks it just long enough to copy the rows in the time range, the columns wanted,
 * every tag column and the sequence of every row (buffer_partition_freeze); sorting and
 * de-duplication then run outside the lock, on that private copy, which the stream keeps while it
 * hands out the partition QUERY_BATCH_MAX_ROWS rows at a time (so the output of a query never
 * needs the memory of a whole big partition a second time). A write is therefore visible iff it
 * was applied before the partition's first pull.
 *
 * De-duplication (buffer_dedup_run, also used by persist): the primary key is every tag
 * column of the table plus time; a null tag is a value of its own ("null", sorting first).
 * Rows are sorted by the key and time (the caller gives the tag order: by name here, by sort
 * key for persist; queries put time first, persist last), then by (sequence, row), i.e. write
 * order. Sorting uses no comparison sort on rows:
 * each tag value gets its rank in string order (equal strings share a rank, as a copy merged
 * from several snapshots may hold a string under several ids); each distinct tuple of ranks (a
 * series) is found once by hashing; the series are radix-sorted on their ranks packed into
 * 64-bit words; rows are then ordered by stable radix passes, least significant first: sequence
 * (only when the rows are not already in sequence order), time (bytes every row shares are
 * skipped), series ordinal (one counting pass). Cost O(rows x passes), no per-row allocation. Each run of equal keys becomes one row
 * whose every field is the last non-null value in write order (buffer_dedup_pick), so a later
 * write never sets a field back to null, and the answer does not depend on the order in which
 * concurrent ops were applied, only on their sequence numbers.
 *
 * Batches (query.h): columns in projection order; with no projection: the tag columns sorted by
 * name, then the field columns sorted by name, then `time`. Unknown names are skipped; a known
 * column this partition never saw is all null. Rows come sorted by (time; tag values as strings,
 * tags in name order, null first): time first because rows are stored roughly in time order, so
 * the batch is gathered by walking the copy almost sequentially (key order would jump across all
 * of it, a cache and TLB miss per value on big partitions). A tag column's dictionary holds only
 * the values its batch's rows use, sorted, so ids are in string order. A column with no null has validity NULL; `time`
 * never has one.
 */
#include "buffer/buffer.h"

#include <stdlib.h>
#include <string.h>

#include "buffer/buffer_internal.h"
#include "util/error.h"

/* ---- sort + de-duplication ------------------------------------------------------------------ */

static int buffer_name_cmp(const schema_column *a, const schema_column *b)
{
    uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c) return c;
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int buffer_col_name_cmp(const void *x, const void *y, void *arg)
{
    const schema_table *t = arg;
    return buffer_name_cmp(&t->columns[*(const uint32_t *)x], &t->columns[*(const uint32_t *)y]);
}

void buffer_columns_sort_by_name(const schema_table *table, uint32_t *cols, size_t n)
{
    qsort_r(cols, n, sizeof *cols, buffer_col_name_cmp, (void *)table);
}

/* Tag columns (tags) or field columns (!tags) of table below column_count, by name. */
static int buffer_columns_by_name(const schema_table *table, uint32_t column_count, bool tags,
                                  uint32_t **out, size_t *count_out)
{
    uint32_t *a = malloc((column_count ? column_count : 1) * sizeof *a);
    if (!a) return INGOT_E_NOMEM;
    size_t n = 0;
    for (uint32_t i = 1; i < column_count; i++) {
        uint8_t type = table->columns[i].type;
        if (type == COLUMN_TIME) continue;
        if ((type == COLUMN_TAG) == tags) a[n++] = i;
    }
    qsort_r(a, n, sizeof *a, buffer_col_name_cmp, (void *)table);
    *out = a;
    *count_out = n;
    return 0;
}

int buffer_table_tags_by_name(const schema_table *table, uint32_t column_count, uint32_t **out,
                              size_t *count_out)
{
    return buffer_columns_by_name(table, column_count, true, out, count_out);
}

static int buffer_dict_id_cmp(const void *x, const void *y, void *arg)
{
    const buffer_dict *d = arg;
    const buffer_dict_entry *a = &d->entries[*(const uint32_t *)x];
    const buffer_dict_entry *b = &d->entries[*(const uint32_t *)y];
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(d->bytes + a->offset, d->bytes + b->offset, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/*
 * Sorting works on integers only: each tag value becomes its rank in string order (0 = null),
 * each distinct tuple of ranks (a series) is found once through a hash table, the series are
 * sorted by their tuples, and each row's series ordinal then stands for all its tags.
 */
/*
 * Stable counting sort of idx[0 .. n) by keys[idx[i] * stride], every key below buckets; tmp
 * and counts are scratch of n and buckets entries.
 */
static void buffer_count_sort(uint32_t *idx, uint32_t *tmp, size_t n, const uint32_t *keys,
                              size_t stride, uint32_t *counts, size_t buckets)
{
    memset(counts, 0, buckets * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        counts[keys[(size_t)idx[i] * stride]]++;
    uint32_t sum = 0;
    for (size_t b = 0; b < buckets; b++) {
        uint32_t c = counts[b];
        counts[b] = sum;
        sum += c;
    }
    for (size_t i = 0; i < n; i++)
        tmp[counts[keys[(size_t)idx[i] * stride]]++] = idx[i];
    memcpy(idx, tmp, n * sizeof *idx);
}

/*
 * Stable LSD radix sort of idx[0 .. n), a permutation of 0 .. n), by keys[idx[i]] ^ flip
 * (flip = 1 << 63 orders signed values), a byte at a time, skipping the bytes every key shares.
 * tmp: n entries of scratch.
 */
static void buffer_radix_u64(uint32_t *idx, uint32_t *tmp, size_t n, const uint64_t *keys,
                             uint64_t flip)
{
    uint32_t hist[8][256];
    memset(hist, 0, sizeof hist);
    for (size_t r = 0; r < n; r++) {
        uint64_t v = keys[r] ^ flip;
        for (int b = 0; b < 8; b++)
            hist[b][(v >> (8 * b)) & 255]++;
    }
    uint32_t *src = idx, *dst = tmp;
    for (int b = 0; b < 8; b++) {
        uint32_t *h = hist[b], sum = 0;
        bool trivial = false;
        for (int d = 0; d < 256; d++) {
            if (h[d] == n) trivial = true;
            uint32_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        if (trivial) continue;
        for (size_t i = 0; i < n; i++) {
            uint32_t r = src[i];
            dst[h[((keys[r] ^ flip) >> (8 * b)) & 255]++] = r;
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx) memcpy(idx, src, n * sizeof *idx);
}

void buffer_dedup_free(buffer_dedup *d)
{
    if (d->rank)
        for (size_t k = 0; k < d->key_count; k++)
            free(d->rank[k]);
    free(d->rank);
    free(d->order);
    free(d->group_end);
    memset(d, 0, sizeof *d);
}

/*
 * Per row of f, the ordinal of its series (tuple of key ranks) in key order, into series;
 * *count_out: the number of series.
 */
static int buffer_series_ordinals(const buffer_frozen *f, const uint32_t *key, size_t key_count,
                                  uint32_t *const *rank, uint32_t *series, size_t *count_out)
{
    size_t n = f->row_count, count = 0, cap = 64, slot_cap = 128;
    uint32_t *tuples = malloc(cap * key_count * sizeof *tuples);
    uint32_t *slots = calloc(slot_cap, sizeof *slots); /* series + 1 */
    uint32_t *hashes = malloc(cap * sizeof *hashes);
    uint32_t *sorted = NULL, *ordinal = NULL;
    uint64_t *words = NULL;
    uint32_t tuple[SCHEMA_MAX_COLUMNS];
    int rc = INGOT_E_NOMEM;
    if (!tuples || !slots || !hashes) goto done;
    for (size_t r = 0; r < n; r++) {
        for (size_t k = 0; k < key_count; k++) {
            const buffer_column *c = &f->columns[key[k]];
            tuple[k] = buffer_bit(c->validity, r) ? rank[k][((const uint32_t *)c->values)[r]] : 0;
        }
        uint32_t h = buffer_hash_bytes(tuple, key_count * sizeof *tuple);
        size_t j = h & (slot_cap - 1);
        for (; slots[j]; j = (j + 1) & (slot_cap - 1)) {
            uint32_t s = slots[j] - 1;
            if (hashes[s] == h &&
                memcmp(tuples + (size_t)s * key_count, tuple, key_count * sizeof *tuple) == 0)
                break;
        }
        if (slots[j]) {
            series[r] = slots[j] - 1;
            continue;
        }
        if (count == cap) {
            cap *= 2;
            uint32_t *t = realloc(tuples, cap * key_count * sizeof *t);
            if (!t) goto done;
            tuples = t;
            uint32_t *hs = realloc(hashes, cap * sizeof *hs);
            if (!hs) goto done;
            hashes = hs;
        }
        memcpy(tuples + count * key_count, tuple, key_count * sizeof *tuple);
        hashes[count] = h;
        slots[j] = (uint32_t)count + 1;
        series[r] = (uint32_t)count++;
        if (count * 2 > slot_cap) {
            size_t sc = slot_cap * 2;
            uint32_t *ns = calloc(sc, sizeof *ns);
            if (!ns) goto done;
            for (size_t s = 0; s < count; s++) {
                size_t i = hashes[s] & (sc - 1);
                while (ns[i])
                    i = (i + 1) & (sc - 1);
                ns[i] = (uint32_t)s + 1;
            }
            free(slots);
            slots = ns;
            slot_cap = sc;
        }
    }
    /*
     * Sort the series by their tuples: the ranks are packed, in key order, into as few u64
     * words as hold them (each rank in as many bits as its column's largest rank needs), and
     * the words radix-sorted, the last first (stable passes make the order lexicographic).
     */
    sorted = malloc((count ? count : 1) * sizeof *sorted);
    ordinal = malloc((count ? count : 1) * sizeof *ordinal); /* scratch, then the ordinals */
    words = malloc((count ? count : 1) * sizeof *words);
    if (!sorted || !ordinal || !words) goto done;
    for (size_t s = 0; s < count; s++)
        sorted[s] = (uint32_t)s;
    unsigned bits[SCHEMA_MAX_COLUMNS];
    for (size_t k = 0; k < key_count; k++) {
        uint32_t max_rank = f->columns[key[k]].dict.count;
        bits[k] = max_rank ? 32u - (unsigned)__builtin_clz(max_rank) : 0;
    }
    for (size_t end = key_count; end > 0;) {
        size_t start = end;
        unsigned used = 0;
        while (start > 0 && used + bits[start - 1] <= 64)
            used += bits[--start];
        for (size_t s = 0; s < count; s++) {
            const uint32_t *tp = tuples + s * key_count;
            uint64_t v = 0;
            for (size_t k = start; k < end; k++)
                v = bits[k] ? (v << bits[k]) | tp[k] : v;
            words[s] = v;
        }
        buffer_radix_u64(sorted, ordinal, count, words, 0);
        end = start;
    }
    for (size_t i = 0; i < count; i++)
        ordinal[sorted[i]] = (uint32_t)i;
    for (size_t r = 0; r < n; r++)
        series[r] = ordinal[series[r]];
    *count_out = count;
    rc = 0;
done:
    free(tuples);
    free(slots);
    free(hashes);
    free(sorted);
    free(ordinal);
    free(words);
    return rc;
}

int buffer_dedup_run(const buffer_frozen *f, const uint32_t *key, size_t key_count,
                     enum buffer_row_order row_order, buffer_dedup *out)
{
    size_t n = f->row_count;
    uint32_t *ids = NULL, *series = NULL, *tmp = NULL, *counts = NULL;
    memset(out, 0, sizeof *out);
    if (key_count > SCHEMA_MAX_COLUMNS) return INGOT_E_INVALID;
    out->key_count = key_count;
    out->rank = calloc(key_count ? key_count : 1, sizeof *out->rank);
    out->order = malloc((n ? n : 1) * sizeof *out->order);
    out->group_end = malloc((n ? n : 1) * sizeof *out->group_end);
    series = calloc(n ? n : 1, sizeof *series);
    if (!out->rank || !out->order || !out->group_end || !series) goto fail;
    for (size_t k = 0; k < key_count; k++) {
        const buffer_dict *d = &f->columns[key[k]].dict;
        out->rank[k] = malloc((d->count ? d->count : 1) * sizeof(uint32_t));
        ids = malloc((d->count ? d->count : 1) * sizeof *ids);
        if (!out->rank[k] || !ids) goto fail;
        for (uint32_t i = 0; i < d->count; i++)
            ids[i] = i;
        qsort_r(ids, d->count, sizeof *ids, buffer_dict_id_cmp, (void *)d);
        uint32_t rank = 0; /* equal strings (merged dictionaries) share a rank */
        for (uint32_t i = 0; i < d->count; i++) {
            if (i == 0 || buffer_dict_id_cmp(&ids[i - 1], &ids[i], (void *)d) != 0) rank++;
            out->rank[k][ids[i]] = rank;
        }
        free(ids);
        ids = NULL;
    }
    if (n == 0) {
        free(series);
        return 0;
    }
    size_t series_count = 1;
    if (key_count && buffer_series_ordinals(f, key, key_count, out->rank, series, &series_count))
        goto fail;
    /* rows by (series, time, sequence, row) or (time, series, ...): stable passes, least
     * significant first */
    tmp = malloc(n * sizeof *tmp);
    counts = malloc(series_count * sizeof *counts);
    if (!tmp || !counts) goto fail;
    const int64_t *time = f->columns[0].values;
    bool seq_sorted = true;
    for (size_t r = 0; r < n; r++) {
        out->order[r] = (uint32_t)r;
        if (r && f->seq[r] < f->seq[r - 1]) seq_sorted = false;
    }
    if (!seq_sorted) buffer_radix_u64(out->order, tmp, n, f->seq, 0);
    const uint64_t *time_bits = (const uint64_t *)(const void *)time;
    if (row_order == BUFFER_ORDER_KEY_TIME) {
        buffer_radix_u64(out->order, tmp, n, time_bits, (uint64_t)1 << 63);
        if (series_count > 1) buffer_count_sort(out->order, tmp, n, series, 1, counts, series_count);
    } else {
        if (series_count > 1) buffer_count_sort(out->order, tmp, n, series, 1, counts, series_count);
        buffer_radix_u64(out->order, tmp, n, time_bits, (uint64_t)1 << 63);
    }
    size_t groups = 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t a = out->order[i - 1], b = out->order[i];
        if (series[a] != series[b] || time[a] != time[b]) out->group_end[groups++] = (uint32_t)i;
    }
    out->group_end[groups++] = (uint32_t)n;
    out->row_count = groups;
    free(series);
    free(tmp);
    free(counts);
    return 0;
fail:
    free(ids);
    free(series);
    free(tmp);
    free(counts);
    buffer_dedup_free(out);
    return INGOT_E_NOMEM;
}

uint32_t buffer_dedup_pick(const buffer_frozen *f, const buffer_dedup *d, uint32_t column,
                           size_t out_row)
{
    size_t start = out_row ? d->group_end[out_row - 1] : 0;
    size_t end = d->group_end[out_row];
    const buffer_column *c = &f->columns[column];
    if (column == 0) return d->order[end - 1];
    for (size_t j = end; j > start; j--) {
        uint32_t r = d->order[j - 1];
        if (buffer_bit(c->validity, r)) return r;
    }
    return UINT32_MAX;
}

/* ---- batches -------------------------------------------------------------------------------- */

static inline void buffer_set_bit(uint8_t *bits, size_t i)
{
    bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* Fill column out (type already set) with n null rows. */
static int buffer_null_column(query_column *out, size_t n)
{
    size_t vb = (n + 7) / 8 + 1;
    if (out->type != COLUMN_TIME) {
        out->validity = calloc(1, vb);
        if (!out->validity) return INGOT_E_NOMEM;
    }
    switch (out->type) {
    case COLUMN_BOOL:
        return (out->data.bits = calloc(1, vb)) ? 0 : INGOT_E_NOMEM;
    case COLUMN_STRING:
        out->data.str.offsets = calloc(n + 1, sizeof(int32_t));
        out->data.str.bytes = malloc(1);
        return out->data.str.offsets && out->data.str.bytes ? 0 : INGOT_E_NOMEM;
    case COLUMN_TAG:
        out->data.tag.ids = calloc(n ? n : 1, sizeof(int32_t));
        out->data.tag.dict_offsets = calloc(1, sizeof(int32_t));
        out->data.tag.dict_bytes = malloc(1);
        out->data.tag.dict_count = 0;
        return out->data.tag.ids && out->data.tag.dict_offsets && out->data.tag.dict_bytes
                   ? 0
                   : INGOT_E_NOMEM;
    default:
        return (out->data.i64 = calloc(n ? n : 1, 8)) ? 0 : INGOT_E_NOMEM;
    }
}

/* Tag column out from frozen column col (key position k of d), n rows picked by pick[]. */
static int buffer_tag_column(query_column *out, const buffer_frozen *f, const buffer_dedup *d,
                             uint32_t col, size_t k, const uint32_t *pick, size_t n)
{
    const buffer_column *c = &f->columns[col];
    const buffer_dict *dict = &c->dict;
    uint32_t *by_rank = calloc((size_t)dict->count + 1, sizeof *by_rank); /* rank -> new id + 1 */
    int rc = INGOT_E_NOMEM;
    if (!by_rank) return rc;
    out->data.tag.ids = calloc(n ? n : 1, sizeof(int32_t));
    if (!out->data.tag.ids) goto done;
    for (size_t i = 0; i < n; i++)
        if (pick[i] != UINT32_MAX) by_rank[d->rank[k][((const uint32_t *)c->values)[pick[i]]]] = 1;
    uint32_t used = 0;
    size_t bytes = 0;
    uint32_t *rank_id = malloc(((size_t)dict->count + 1) * sizeof *rank_id); /* rank -> dict id */
    if (!rank_id) goto done;
    for (uint32_t id = 0; id < dict->count; id++)
        rank_id[d->rank[k][id]] = id;
    for (uint32_t r = 1; r <= dict->count; r++)
        if (by_rank[r]) {
            by_rank[r] = ++used;
            bytes += dict->entries[rank_id[r]].len;
        }
    if (bytes > INT32_MAX) {
        free(rank_id);
        rc = INGOT_E_TOO_LARGE;
        goto done;
    }
    out->data.tag.dict_offsets = malloc(((size_t)used + 1) * sizeof(int32_t));
    out->data.tag.dict_bytes = malloc(bytes ? bytes : 1);
    if (!out->data.tag.dict_offsets || !out->data.tag.dict_bytes) {
        free(rank_id);
        goto done;
    }
    out->data.tag.dict_count = used;
    out->data.tag.dict_offsets[0] = 0;
    size_t at = 0;
    for (uint32_t r = 1; r <= dict->count; r++) {
        if (!by_rank[r]) continue;
        const buffer_dict_entry *e = &dict->entries[rank_id[r]];
        if (e->len) memcpy(out->data.tag.dict_bytes + at, dict->bytes + e->offset, e->len);
        at += e->len;
        out->data.tag.dict_offsets[by_rank[r]] = (int32_t)at;
    }
    free(rank_id);
    for (size_t i = 0; i < n; i++)
        if (pick[i] != UINT32_MAX)
            out->data.tag.ids[i] =
                (int32_t)by_rank[d->rank[k][((const uint32_t *)c->values)[pick[i]]]] - 1;
    rc = 0;
done:
    free(by_rank);
    return rc;
}

int buffer_batch_column(query_column *out, const buffer_frozen *f, const buffer_dedup *d,
                        uint32_t col, const uint32_t *key, size_t key_count, size_t first,
                        size_t n, uint32_t *pick)
{
    if (col >= f->column_count || f->columns[col].type == 0 || n == 0)
        return buffer_null_column(out, n);
    const buffer_column *c = &f->columns[col];
    size_t nulls = 0;
    for (size_t i = 0; i < n; i++) {
        pick[i] = buffer_dedup_pick(f, d, col, first + i);
        nulls += pick[i] == UINT32_MAX;
    }
    if (nulls && out->type != COLUMN_TIME) {
        out->validity = calloc(1, (n + 7) / 8 + 1);
        if (!out->validity) return INGOT_E_NOMEM;
        for (size_t i = 0; i < n; i++)
            if (pick[i] != UINT32_MAX) buffer_set_bit(out->validity, i);
    }
    switch (out->type) {
    case COLUMN_TAG: {
        size_t k = 0;
        while (k < key_count && key[k] != col)
            k++;
        if (k == key_count) return INGOT_E_INVALID; /* every present tag column is a key column */
        return buffer_tag_column(out, f, d, col, k, pick, n);
    }
    case COLUMN_BOOL:
        out->data.bits = calloc(1, (n + 7) / 8 + 1);
        if (!out->data.bits) return INGOT_E_NOMEM;
        for (size_t i = 0; i < n; i++)
            if (pick[i] != UINT32_MAX && buffer_bit(c->values, pick[i]))
                buffer_set_bit(out->data.bits, i);
        return 0;
    case COLUMN_STRING: {
        const uint32_t *so = c->values;
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            if (pick[i] != UINT32_MAX) bytes += so[pick[i] + 1] - so[pick[i]];
        if (bytes > INT32_MAX) return INGOT_E_TOO_LARGE;
        out->data.str.offsets = malloc((n + 1) * sizeof(int32_t));
        out->data.str.bytes = malloc(bytes ? bytes : 1);
        if (!out->data.str.offsets || !out->data.str.bytes) return INGOT_E_NOMEM;
        size_t at = 0;
        out->data.str.offsets[0] = 0;
        for (size_t i = 0; i < n; i++) {
            if (pick[i] != UINT32_MAX) {
                size_t len = so[pick[i] + 1] - so[pick[i]];
                if (len) memcpy(out->data.str.bytes + at, c->str_bytes + so[pick[i]], len);
                at += len;
            }
            out->data.str.offsets[i + 1] = (int32_t)at;
        }
        return 0;
    }
    default: { /* i64, u64, f64, time: 8-byte values */
        uint64_t *v = calloc(n, 8);
        if (!v) return INGOT_E_NOMEM;
        out->data.u64 = v;
        const uint64_t *sv = c->values;
        for (size_t i = 0; i < n; i++)
            if (pick[i] != UINT32_MAX) v[i] = sv[pick[i]];
        return 0;
    }
    }
}

/* ---- the stream ----------------------------------------------------------------------------- */

typedef struct buffer_stream {
    query_stream base;
    const schema_table *table;
    buffer_partition **parts; /* each holds a reference until pulled or closed */
    size_t part_count, next;
    uint32_t *proj; /* table column indexes, in output order */
    size_t proj_count;
    bool *want; /* per table column: projected */
    uint32_t want_count;
    int64_t min_time_ns, max_time_ns;
    /* the partition being read (parts[next]): its private copy, sorted, and the next output row */
    bool open;
    buffer_frozen frozen;
    buffer_dedup dedup;
    uint32_t *key;
    size_t key_count;
    size_t row;
    uint32_t *pick; /* scratch: QUERY_BATCH_MAX_ROWS entries */
} buffer_stream;

/* Drop the partition being read (its copy and its reference). */
static void buffer_stream_drop_partition(buffer_stream *st)
{
    if (!st->open) return;
    st->open = false;
    free(st->key);
    st->key = NULL;
    buffer_dedup_free(&st->dedup);
    buffer_frozen_free(&st->frozen);
    buffer_partition_unref(st->parts[st->next]);
    st->parts[st->next++] = NULL;
}

/* Copy and sort parts[next] (the pull that makes later writes to it invisible to this query). */
static int buffer_stream_open_partition(buffer_stream *st)
{
    buffer_partition *p = st->parts[st->next];
    int rc = buffer_partition_freeze(p, st->want, st->want_count, st->min_time_ns,
                                     st->max_time_ns, &st->frozen);
    if (rc) return rc;
    st->open = true;
    st->row = 0;
    /* the key: every tag column this copy has, in name order */
    rc = buffer_table_tags_by_name(st->table, st->frozen.column_count, &st->key, &st->key_count);
    if (rc) return rc;
    size_t kept = 0;
    for (size_t k = 0; k < st->key_count; k++)
        if (st->frozen.columns[st->key[k]].type == COLUMN_TAG) st->key[kept++] = st->key[k];
    st->key_count = kept;
    return buffer_dedup_run(&st->frozen, st->key, st->key_count, BUFFER_ORDER_TIME_KEY,
                            &st->dedup);
}

static int buffer_stream_next(query_stream *s, query_batch **out)
{
    buffer_stream *st = (buffer_stream *)s;
    query_batch *batch = NULL;
    int rc;

    *out = NULL;
    if (st->open && st->row >= st->dedup.row_count) buffer_stream_drop_partition(st);
    if (!st->open) {
        if (st->next >= st->part_count) return 0;
        if ((rc = buffer_stream_open_partition(st)) != 0) goto fail;
    }
    const buffer_partition *p = st->parts[st->next];
    size_t n = st->dedup.row_count - st->row;
    if (n > QUERY_BATCH_MAX_ROWS) n = QUERY_BATCH_MAX_ROWS;
    rc = INGOT_E_NOMEM;
    if (!st->pick && !(st->pick = malloc(QUERY_BATCH_MAX_ROWS * sizeof *st->pick))) goto fail;
    batch = calloc(1, sizeof *batch);
    if (!batch) goto fail;
    memcpy(batch->partition_key, p->key, sizeof batch->partition_key);
    batch->partition_id = p->id;
    batch->completed_persistence_count = st->frozen.persisted_count;
    batch->row_count = n;
    batch->columns = calloc(st->proj_count ? st->proj_count : 1, sizeof *batch->columns);
    if (!batch->columns) goto fail;
    batch->column_count = st->proj_count;
    for (size_t i = 0; i < st->proj_count; i++) {
        uint32_t col = st->proj[i];
        query_column *qc = &batch->columns[i];
        qc->type = (enum column_type)st->table->columns[col].type;
        qc->name = strdup(st->table->columns[col].name);
        if (!qc->name) {
            rc = INGOT_E_NOMEM;
            goto fail;
        }
        rc = buffer_batch_column(qc, &st->frozen, &st->dedup, col, st->key, st->key_count,
                                 st->row, n, st->pick);
        if (rc) goto fail;
    }
    st->row += n;
    if (st->row >= st->dedup.row_count) buffer_stream_drop_partition(st);
    *out = batch;
    return 1;
fail:
    query_batch_free(batch);
    buffer_stream_drop_partition(st); /* a failed pull ends this partition */
    return rc;
}

static void buffer_stream_close(query_stream *s)
{
    buffer_stream *st = (buffer_stream *)s;
    if (!st) return;
    buffer_stream_drop_partition(st);
    free(st->pick);
    for (size_t i = 0; i < st->part_count; i++)
        buffer_partition_unref(st->parts[i]);
    free(st->parts);
    free(st->proj);
    free(st->want);
    free(st);
}

static const query_stream_ops buffer_stream_ops = {
    .next = buffer_stream_next,
    .close = buffer_stream_close,
};

static int buffer_query(void *self, const query_request *req, query_stream **out, char *err,
                        size_t errlen)
{
    buffer_tree *tree = self;
    buffer_stream *st = NULL;
    uint32_t *tags = NULL, *fields = NULL;
    size_t tag_count = 0, field_count = 0;
    int rc;

    *out = NULL;
    if (!req || !req->namespace_name || !req->table_name) return INGOT_E_INVALID;
    st = calloc(1, sizeof *st);
    if (!st) return INGOT_E_NOMEM;
    st->base.ops = &buffer_stream_ops;
    st->min_time_ns = req->min_time_ns;
    st->max_time_ns = req->max_time_ns;
    rc = buffer_tree_snapshot(tree, req->namespace_name, req->table_name, &st->table, &st->parts,
                              &st->part_count, err, errlen);
    if (rc) {
        free(st);
        return rc;
    }
    rc = INGOT_E_NOMEM;
    const schema_table *t = st->table;
    uint32_t ncols = atomic_load_explicit(&((schema_table *)t)->column_count, memory_order_acquire);
    st->want_count = ncols;
    st->want = calloc(ncols ? ncols : 1, sizeof *st->want);
    if (!st->want) goto fail;
    if (!req->columns || req->column_count == 0) {
        if (buffer_columns_by_name(t, ncols, true, &tags, &tag_count) ||
            buffer_columns_by_name(t, ncols, false, &fields, &field_count))
            goto fail;
        st->proj = malloc((tag_count + field_count + 1) * sizeof *st->proj);
        if (!st->proj) goto fail;
        memcpy(st->proj, tags, tag_count * sizeof *tags);
        memcpy(st->proj + tag_count, fields, field_count * sizeof *fields);
        st->proj_count = tag_count + field_count;
        if (ncols > 0) st->proj[st->proj_count++] = 0;
    } else {
        st->proj = malloc(req->column_count * sizeof *st->proj);
        if (!st->proj) goto fail;
        for (size_t i = 0; i < req->column_count; i++) {
            const char *name = req->columns[i];
            if (!name) continue;
            for (uint32_t c = 0; c < ncols; c++) {
                if (strcmp(t->columns[c].name, name) == 0) {
                    st->proj[st->proj_count++] = c;
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < st->proj_count; i++)
        st->want[st->proj[i]] = true;
    free(tags);
    free(fields);
    *out = &st->base;
    return 0;
fail:
    free(tags);
    free(fields);
    buffer_stream_close(&st->base);
    return rc;
}

query_exec buffer_tree_as_query_exec(buffer_tree *tree)
{
    query_exec q = {.self = tree, .query = buffer_query};
    return q;
}
