/*
 * catalog_open.c: the front door of the catalog (choosing a back end from the --catalog value)
 * and the small helpers both back ends share (catalog_internal.h).
 *
 * What it owns: nothing with a lifetime. catalog_open() maps a spec to a back end:
 *   "postgres://..." or "postgresql://..."  -> catalog_postgres_open(spec) (a libpq URI)
 *   anything else                          -> catalog_sqlite_open(spec)   (a file path)
 *
 * Format it speaks: parquet_file.sequence_extras, a text column holding the sequence numbers a
 * file covers above its max_sequence_number, as ASCII decimals joined by single commas with no
 * spaces ("" when there are none), e.g. "17,19". Values are stored as given after validation;
 * the merged lists that persisted_sequences reports are ascending and free of duplicates.
 *
 * Failure: the helpers allocate only their result; a bad stored list is INGOT_E_CORRUPT (it can
 * only come from a writer that bypassed validation), never a crash.
 */
#include "catalog/catalog.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog_internal.h"
#include "util/clock.h"
#include "util/error.h"

int catalog_open(const char *spec, unsigned timeout_s, catalog *out, char *err, size_t errlen)
{
    if (!spec || !*spec) {
        snprintf(err, errlen, "catalog: empty catalog location");
        return INGOT_E_INVALID;
    }
    if (strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0)
        return catalog_postgres_open(spec, timeout_s, out, err, errlen);
    return catalog_sqlite_open(spec, out, err, errlen);
}

int64_t catalog_now_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

/*
 * Parse one decimal item of a comma list starting at *p; advance *p past it (not past the comma).
 * Returns false if there are no digits or the value does not fit in 64 bits.
 */
static bool parse_item(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return false;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

/*
 * Walk a comma list, calling visit(arg, value) for each item. Returns 0, -1 for bad syntax, or
 * visit's nonzero result.
 */
static int walk_list(const char *s, int (*visit)(void *arg, uint64_t v), void *arg)
{
    if (!s || !*s) return 0;
    for (;;) {
        uint64_t v;
        if (!parse_item(&s, &v)) return -1;
        int rc = visit(arg, v);
        if (rc) return rc;
        if (*s == 0) return 0;
        if (*s != ',') return -1;
        s++;
    }
}

static int visit_above(void *arg, uint64_t v)
{
    return v > *(const uint64_t *)arg ? 0 : -1;
}

int catalog_extras_validate(const char *extras, uint64_t max_sequence_number)
{
    return walk_list(extras, visit_above, &max_sequence_number) ? INGOT_E_INVALID : 0;
}

typedef struct seq_vec {
    uint64_t *v;
    size_t n, cap;
    uint64_t above; /* keep only values > above */
} seq_vec;

static int visit_collect(void *arg, uint64_t v)
{
    seq_vec *sv = arg;
    if (v <= sv->above) return 0;
    if (sv->n == sv->cap) {
        size_t ncap = sv->cap ? sv->cap * 2 : 16;
        uint64_t *nv = realloc(sv->v, ncap * sizeof *nv);
        if (!nv) return INGOT_E_NOMEM;
        sv->v = nv;
        sv->cap = ncap;
    }
    sv->v[sv->n++] = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int catalog_extras_merge(const char *concat, uint64_t max_sequence_number, char **out)
{
    seq_vec sv = {.above = max_sequence_number};
    char *text = NULL;
    int ret = walk_list(concat, visit_collect, &sv);
    if (ret) {
        if (ret == -1) ret = INGOT_E_CORRUPT;
        goto fail;
    }
    if (sv.n > 1) qsort(sv.v, sv.n, sizeof *sv.v, cmp_u64);
    text = malloc(sv.n * 21 + 1); /* at most 20 digits and a comma per value */
    if (!text) {
        ret = INGOT_E_NOMEM;
        goto fail;
    }
    size_t len = 0;
    for (size_t i = 0; i < sv.n; i++) {
        if (i > 0 && sv.v[i] == sv.v[i - 1]) continue;
        len += (size_t)sprintf(text + len, len ? ",%llu" : "%llu", (unsigned long long)sv.v[i]);
    }
    text[len] = 0;
    free(sv.v);
    *out = text;
    return 0;
fail:
    free(sv.v);
    free(text);
    return ret;
}
