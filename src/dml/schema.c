/*
 * schema.c: the in-memory schema cache in front of the catalog, and the schema check of a parsed
 * write (schema.h).
 *
 * What it owns. The cache maps namespace names to schema_namespace objects (cache->lock, a
 * rwlock). Each namespace maps table names to table entries (ns->lock, a rwlock) and is loaded
 * whole from the catalog on first use (list_tables, then list_columns per table). A table entry is
 * `struct table_entry`: the public schema_table first, then private parts: the per-table creation
 * mutex, the hash of every column name and a 512-slot open-addressing hash from column name to
 * column index. Nothing is ever removed or retyped before schema_cache_free(), so pointers to
 * namespaces, tables and column names stay valid, and a column index never changes.
 *
 * Lock-free column lookup. columns[] is a fixed array inside the entry; a writer (holding the
 * table's create_lock) fills columns[i] and col_hash[i], then stores i + 1 into a free hash slot
 * with release semantics, then stores column_count = i + 1 with release semantics. A reader loads
 * column_count with acquire, then probes the slots with acquire loads: a slot is a single atomic
 * uint16, so it is either empty or names a complete entry; entries at or above the count it read
 * are skipped, so a reader never returns a column it could not see through column_count. The slot
 * array has more than twice SCHEMA_MAX_COLUMNS slots, so every probe meets an empty slot.
 *
 * Lock order: cache->lock -> (namespace loading, no other lock); ns->create_lock -> ns->lock;
 * table create_lock is taken alone. Catalog calls happen under cache->lock (namespace load),
 * ns->create_lock (table creation) or a table's create_lock (column creation), never under
 * ns->lock, so readers of the table map never wait for the catalog.
 *
 * The check (schema_check) runs in two phases over one request. Phase 1 has no side effects: it
 * resolves every line against the cache and against the "pending" tables and columns earlier good
 * lines of the same request would create (request-local maps in struct check_ctx), and marks a key
 * that resolves to a pending column as PENDING_FLAG | pending index. Phase 2 creates the pending
 * tables (with `time`) and columns through the catalog upserts, publishes them in the cache, and
 * rewrites pending marks into column indices. A catalog type conflict found in phase 2 (another
 * writer was first) becomes a line error; a catalog failure fails the whole request. To be fast on
 * large requests, a line whose measurement and keys are byte-identical (same order, same field
 * types) to the previous good line reuses that line's resolution without hashing.
 *
 * Failure recovery: nothing here is durable; after a crash the cache is rebuilt from the catalog.
 * A table created in the catalog whose `time` column is missing (crash between the two upserts)
 * gets it on the next load.
 *
 * Assumption on lp_batch: errors[] is a malloc'd array of error_cap entries (lp.c grows it with
 * realloc); schema_check grows it the same way when it merges its line errors.
 */
#include "dml/schema.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/column_type.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/log.h"

#define COL_HASH_SLOTS 512u /* power of two, > 2 * SCHEMA_MAX_COLUMNS */
#define SCHEMA_MAX_LINE_ERRORS 100
#define PENDING_FLAG 0x8000u
#define NAME_BUF_BYTES 512 /* an lp_str longer than this unescapes to > SCHEMA_MAX_NAME_BYTES */

_Static_assert(COL_HASH_SLOTS > 2 * SCHEMA_MAX_COLUMNS, "column hash too small");
_Static_assert(SCHEMA_MAX_COLUMNS < PENDING_FLAG, "column index collides with the pending flag");
_Static_assert(NAME_BUF_BYTES >= 2 * SCHEMA_MAX_NAME_BYTES + 2, "name buffer too small");

/* ---- name maps (open addressing, used under the owner's lock) ---- */

typedef struct map_slot {
    const char *name; /* NULL: empty */
    uint32_t len;
    uint32_t hash;
    void *value;
} map_slot;

typedef struct name_map {
    map_slot *slots;
    size_t cap; /* power of two or 0 */
    size_t count;
} name_map;

static uint32_t name_hash(const char *s, size_t len)
{
    return (uint32_t)hash_bytes(s, len, 0);
}

static void *map_find(const name_map *m, const char *name, size_t len, uint32_t hash)
{
    if (!m->cap) return NULL;
    for (size_t i = hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const map_slot *s = &m->slots[i];
        if (!s->name) return NULL;
        if (s->hash == hash && s->len == len && memcmp(s->name, name, len) == 0) return s->value;
    }
}

/* Insert (name must not be present; name storage must outlive the map). */
static int map_insert(name_map *m, const char *name, uint32_t len, uint32_t hash, void *value)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        map_slot *ns = calloc(ncap, sizeof *ns);
        if (!ns) return INGOT_E_NOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].name) continue;
            size_t j = m->slots[i].hash & (ncap - 1);
            while (ns[j].name)
                j = (j + 1) & (ncap - 1);
            ns[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    size_t j = hash & (m->cap - 1);
    while (m->slots[j].name)
        j = (j + 1) & (m->cap - 1);
    m->slots[j] = (map_slot){.name = name, .len = len, .hash = hash, .value = value};
    m->count++;
    return 0;
}

/* ---- cache objects ---- */

struct table_entry {
    schema_table t;              /* public part; t.column_count is atomic (see the essay) */
    pthread_mutex_t create_lock; /* serialises column creation in this table */
    uint32_t name_hash;          /* immutable */
    uint32_t col_hash[SCHEMA_MAX_COLUMNS];  /* entry i written before i is published */
    _Atomic uint16_t slots[COL_HASH_SLOTS]; /* column index + 1, 0 = empty; atomic */
};

struct schema_namespace {
    schema_cache *cache;                       /* immutable */
    char name[SCHEMA_MAX_NAMESPACE_BYTES + 1]; /* immutable */
    int64_t catalog_id;                        /* immutable */
    pthread_mutex_t create_lock;               /* serialises table creation (taken before lock) */
    pthread_rwlock_t lock;                     /* guards tables */
    name_map tables;                           /* lock: name -> struct table_entry * */
};

struct schema_cache {
    catalog *cat;          /* borrowed, immutable */
    pthread_rwlock_t lock; /* guards namespaces */
    name_map namespaces;   /* lock: name -> schema_namespace * */
};

static void table_entry_free(struct table_entry *e)
{
    if (!e) return;
    uint32_t n = atomic_load_explicit(&e->t.column_count, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++)
        free((char *)e->t.columns[i].name);
    free((char *)e->t.name);
    pthread_mutex_destroy(&e->create_lock);
    free(e);
}

static struct table_entry *table_entry_new(schema_namespace *ns, int64_t id, const char *name,
                                           size_t len)
{
    struct table_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    char *n = malloc(len + 1);
    if (!n || pthread_mutex_init(&e->create_lock, NULL) != 0) {
        free(n);
        free(e);
        return NULL;
    }
    memcpy(n, name, len);
    n[len] = 0;
    e->t.catalog_id = id;
    e->t.name = n;
    e->t.name_len = (uint32_t)len;
    e->t.ns = ns;
    e->name_hash = name_hash(name, len);
    return e;
}

/*
 * Append a column to e and publish it (see the essay). Caller holds e->create_lock or owns an
 * unpublished e. Returns the index or INGOT_E_NOMEM / INGOT_E_LIMIT.
 */
static int table_publish_column(struct table_entry *e, const char *name, size_t len, int type,
                                int64_t catalog_id)
{
    uint32_t idx = atomic_load_explicit(&e->t.column_count, memory_order_relaxed);
    if (idx >= SCHEMA_MAX_COLUMNS) return INGOT_E_LIMIT;
    char *n = malloc(len + 1);
    if (!n) return INGOT_E_NOMEM;
    memcpy(n, name, len);
    n[len] = 0;
    uint32_t h = name_hash(name, len);
    e->t.columns[idx] = (schema_column){
        .name = n, .name_len = (uint32_t)len, .type = (uint8_t)type, .catalog_id = catalog_id};
    e->col_hash[idx] = h;
    uint32_t s = h & (COL_HASH_SLOTS - 1);
    while (atomic_load_explicit(&e->slots[s], memory_order_relaxed) != 0)
        s = (s + 1) & (COL_HASH_SLOTS - 1);
    atomic_store_explicit(&e->slots[s], (uint16_t)(idx + 1), memory_order_release);
    atomic_store_explicit(&e->t.column_count, idx + 1, memory_order_release);
    return (int)idx;
}

static int column_find_hashed(const schema_table *table, const char *name, size_t len, uint32_t h)
{
    const struct table_entry *e = (const struct table_entry *)table;
    uint32_t count =
        atomic_load_explicit((_Atomic uint32_t *)&table->column_count, memory_order_acquire);
    for (uint32_t s = h & (COL_HASH_SLOTS - 1);; s = (s + 1) & (COL_HASH_SLOTS - 1)) {
        uint16_t v = atomic_load_explicit((_Atomic uint16_t *)&e->slots[s], memory_order_acquire);
        if (v == 0) return -1;
        uint32_t idx = (uint32_t)v - 1;
        if (idx >= count || e->col_hash[idx] != h) continue;
        const schema_column *c = &table->columns[idx];
        if (c->name_len == len && memcmp(c->name, name, len) == 0) return (int)idx;
    }
}

int schema_column_find(const schema_table *table, const char *name, size_t len)
{
    return column_find_hashed(table, name, len, name_hash(name, len));
}

/* ---- loading a table's columns from the catalog ---- */

typedef struct loaded_column {
    int64_t id;
    char *name;
    int type;
} loaded_column;

typedef struct column_list {
    loaded_column *v;
    size_t n, cap;
    bool nomem;
} column_list;

static void collect_column_cb(void *arg, int64_t id, const char *name, int type)
{
    column_list *l = arg;
    if (l->nomem) return;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        loaded_column *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            l->nomem = true;
            return;
        }
        l->v = nv;
        l->cap = ncap;
    }
    char *copy = strdup(name);
    if (!copy) {
        l->nomem = true;
        return;
    }
    l->v[l->n++] = (loaded_column){.id = id, .name = copy, .type = type};
}

static void column_list_free(column_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
}

/*
 * Build the (unpublished) entry of catalog table id: `time` first (created in the catalog if it
 * is missing), then the stored columns in id order. Used for loaded and for new tables alike, so
 * columns another ingester created are picked up.
 */
static int table_entry_build(schema_namespace *ns, int64_t id, const char *name, size_t len,
                             struct table_entry **out, char *err, size_t errlen)
{
    catalog *cat = ns->cache->cat;
    column_list cols = {0};
    struct table_entry *e = table_entry_new(ns, id, name, len);
    int ret = INGOT_E_NOMEM;
    if (!e) goto fail;
    ret = cat->list_columns(cat->self, id, collect_column_cb, &cols);
    if (ret) goto catalog_fail;
    ret = INGOT_E_NOMEM;
    if (cols.nomem) goto fail;
    int64_t time_id = -1;
    for (size_t i = 0; i < cols.n; i++) {
        if (strcmp(cols.v[i].name, "time") != 0) continue;
        if (cols.v[i].type != COLUMN_TIME) {
            log_error("schema: column \"time\" of table \"%s\" has type %s in the catalog",
                      e->t.name, column_type_name(cols.v[i].type));
            ret = INGOT_E_CATALOG;
            goto catalog_fail;
        }
        time_id = cols.v[i].id;
    }
    if (time_id < 0) {
        int existing = 0;
        ret = cat->column_upsert(cat->self, id, "time", COLUMN_TIME, &time_id, &existing);
        if (ret == INGOT_E_SCHEMA) ret = INGOT_E_CATALOG;
        if (ret) goto catalog_fail;
    }
    ret = table_publish_column(e, "time", 4, COLUMN_TIME, time_id);
    if (ret < 0) goto fail;
    for (size_t i = 0; i < cols.n; i++) {
        size_t nl = strlen(cols.v[i].name);
        if (strcmp(cols.v[i].name, "time") == 0 ||
            schema_column_find(&e->t, cols.v[i].name, nl) >= 0)
            continue;
        ret = table_publish_column(e, cols.v[i].name, nl, cols.v[i].type, cols.v[i].id);
        if (ret == INGOT_E_LIMIT) {
            log_warn(
                "schema: table \"%s\" has more than %d columns in the catalog; ignoring the rest",
                e->t.name, SCHEMA_MAX_COLUMNS);
            break;
        }
        if (ret < 0) goto fail;
    }
    column_list_free(&cols);
    *out = e;
    return 0;
catalog_fail:
    snprintf(err, errlen, "catalog error while loading table \"%.*s\": %s",
             (int)(len > 64 ? 64 : len), name, ingot_strerror(ret));
    column_list_free(&cols);
    table_entry_free(e);
    return ret;
fail:
    snprintf(err, errlen, "%s", ingot_strerror(ret));
    column_list_free(&cols);
    table_entry_free(e);
    return ret;
}

/* ---- namespaces ---- */

bool schema_namespace_name_valid(const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "namespace name is empty");
        return false;
    }
    if (len > SCHEMA_MAX_NAMESPACE_BYTES) {
        snprintf(err, errlen, "namespace name is longer than %d bytes", SCHEMA_MAX_NAMESPACE_BYTES);
        return false;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        snprintf(err, errlen, "namespace name \"%.*s\" is not allowed", (int)len, name);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) {
            snprintf(err, errlen,
                     "namespace name has an invalid byte 0x%02x at offset %zu (allowed: "
                     "A-Z a-z 0-9 _ - .)",
                     c, i);
            return false;
        }
    }
    return true;
}

static void namespace_free(schema_namespace *ns)
{
    if (!ns) return;
    for (size_t i = 0; i < ns->tables.cap; i++)
        if (ns->tables.slots[i].name) table_entry_free(ns->tables.slots[i].value);
    free(ns->tables.slots);
    pthread_rwlock_destroy(&ns->lock);
    pthread_mutex_destroy(&ns->create_lock);
    free(ns);
}

typedef struct table_row {
    int64_t id;
    char *name;
} table_row;

typedef struct table_list {
    table_row *v;
    size_t n, cap;
    bool nomem;
} table_list;

static void collect_table_cb(void *arg, int64_t id, const char *name)
{
    table_list *l = arg;
    if (l->nomem) return;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        table_row *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            l->nomem = true;
            return;
        }
        l->v = nv;
        l->cap = ncap;
    }
    char *copy = strdup(name);
    if (!copy) {
        l->nomem = true;
        return;
    }
    l->v[l->n++] = (table_row){.id = id, .name = copy};
}

/* Load namespace name (id known) and all its tables. */
static int namespace_load(schema_cache *cache, const char *name, size_t len, int64_t id,
                          schema_namespace **out, char *err, size_t errlen)
{
    table_list tl = {0};
    int ret = INGOT_E_NOMEM;
    schema_namespace *ns = calloc(1, sizeof *ns);
    if (!ns) goto fail;
    if (pthread_mutex_init(&ns->create_lock, NULL) != 0) {
        free(ns);
        ns = NULL;
        goto fail;
    }
    if (pthread_rwlock_init(&ns->lock, NULL) != 0) {
        pthread_mutex_destroy(&ns->create_lock);
        free(ns);
        ns = NULL;
        goto fail;
    }
    ns->cache = cache;
    memcpy(ns->name, name, len);
    ns->name[len] = 0;
    ns->catalog_id = id;
    ret = cache->cat->list_tables(cache->cat->self, id, collect_table_cb, &tl);
    if (ret) {
        snprintf(err, errlen, "catalog error while loading namespace \"%s\": %s", ns->name,
                 ingot_strerror(ret));
        goto fail;
    }
    ret = INGOT_E_NOMEM;
    if (tl.nomem) goto fail;
    for (size_t i = 0; i < tl.n; i++) {
        struct table_entry *e = NULL;
        ret =
            table_entry_build(ns, tl.v[i].id, tl.v[i].name, strlen(tl.v[i].name), &e, err, errlen);
        if (ret) goto fail;
        if (map_find(&ns->tables, e->t.name, e->t.name_len, e->name_hash)) {
            table_entry_free(e); /* cannot happen with a UNIQUE catalog; be safe */
            continue;
        }
        ret = map_insert(&ns->tables, e->t.name, e->t.name_len, e->name_hash, e);
        if (ret) {
            table_entry_free(e);
            goto fail;
        }
    }
    for (size_t i = 0; i < tl.n; i++)
        free(tl.v[i].name);
    free(tl.v);
    *out = ns;
    return 0;
fail:
    if (ret == INGOT_E_NOMEM) snprintf(err, errlen, "out of memory loading namespace");
    for (size_t i = 0; i < tl.n; i++)
        free(tl.v[i].name);
    free(tl.v);
    namespace_free(ns);
    return ret;
}

int schema_namespace_get(schema_cache *cache, const char *name, bool create, schema_namespace **out,
                         char *err, size_t errlen)
{
    size_t len = strlen(name);
    if (!schema_namespace_name_valid(name, len, err, errlen)) return INGOT_E_INVALID;
    uint32_t h = name_hash(name, len);
    pthread_rwlock_rdlock(&cache->lock);
    schema_namespace *ns = map_find(&cache->namespaces, name, len, h);
    pthread_rwlock_unlock(&cache->lock);
    if (ns) {
        *out = ns;
        return 0;
    }
    int ret = 0;
    pthread_rwlock_wrlock(&cache->lock);
    ns = map_find(&cache->namespaces, name, len, h);
    if (ns) goto done;
    int64_t id = 0;
    catalog *cat = cache->cat;
    ret = create ? cat->namespace_get_or_create(cat->self, name, &id)
                 : cat->namespace_lookup(cat->self, name, &id);
    if (ret == INGOT_E_NOT_FOUND) {
        snprintf(err, errlen, "namespace \"%s\" not found", name);
        goto done;
    }
    if (ret) {
        snprintf(err, errlen, "catalog error while looking up namespace \"%s\": %s", name,
                 ingot_strerror(ret));
        if (ret != INGOT_E_NOMEM) ret = INGOT_E_CATALOG;
        goto done;
    }
    ret = namespace_load(cache, name, len, id, &ns, err, errlen);
    if (ret) goto done;
    ret = map_insert(&cache->namespaces, ns->name, (uint32_t)len, h, ns);
    if (ret) {
        snprintf(err, errlen, "out of memory");
        namespace_free(ns);
        ns = NULL;
    }
done:
    pthread_rwlock_unlock(&cache->lock);
    if (!ret) *out = ns;
    return ret;
}

const char *schema_namespace_name(const schema_namespace *ns)
{
    return ns->name;
}

int64_t schema_namespace_id(const schema_namespace *ns)
{
    return ns->catalog_id;
}

static struct table_entry *table_find_hashed(schema_namespace *ns, const char *name, size_t len,
                                             uint32_t h, size_t *count_out)
{
    pthread_rwlock_rdlock(&ns->lock);
    struct table_entry *e = map_find(&ns->tables, name, len, h);
    if (count_out) *count_out = ns->tables.count;
    pthread_rwlock_unlock(&ns->lock);
    return e;
}

schema_table *schema_table_find(schema_namespace *ns, const char *name, size_t len)
{
    struct table_entry *e = table_find_hashed(ns, name, len, name_hash(name, len), NULL);
    return e ? &e->t : NULL;
}

schema_cache *schema_cache_new(catalog *cat)
{
    schema_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (pthread_rwlock_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->cat = cat;
    return c;
}

void schema_cache_free(schema_cache *cache)
{
    if (!cache) return;
    for (size_t i = 0; i < cache->namespaces.cap; i++)
        if (cache->namespaces.slots[i].name) namespace_free(cache->namespaces.slots[i].value);
    free(cache->namespaces.slots);
    pthread_rwlock_destroy(&cache->lock);
    free(cache);
}

void schema_op_tables_free(schema_op_tables *t)
{
    free(t->tables);
    t->tables = NULL;
    t->count = t->cap = 0;
}

/* ---- the check ---- */

enum pending_state { PENDING_OK = 0, PENDING_CONFLICT = 1, PENDING_LIMIT = 2 };

/* A column the request would create (phase 1), created or refused in phase 2. */
typedef struct pending_col {
    char *name;
    uint32_t len, hash;
    uint8_t type;
    uint8_t state;         /* enum pending_state (phase 2) */
    uint8_t existing_type; /* PENDING_CONFLICT: the type the catalog holds */
    uint16_t index;        /* phase 2: the column index in the table */
} pending_col;

/* A table the request touches. */
typedef struct req_table {
    char *name;
    uint32_t len, hash;
    struct table_entry *entry; /* NULL while the table would be created */
    bool used;                 /* some good line uses it (create it in phase 2) */
    bool limit_failed;         /* phase 2: the table limit refused it */
    int32_t out_slot;          /* index into tables_out, or -1 */
    pending_col *cols;
    uint32_t col_count, col_cap;
    uint16_t *col_slots; /* COL_HASH_SLOTS entries (pending index + 1), allocated lazily */
} req_table;

/* A new column met by the line being checked, registered only if the whole line is good. */
typedef struct line_new {
    uint32_t name_off, len, hash; /* name in check_ctx.scratch */
    uint8_t type;
    uint16_t *dst;  /* the lp_tag/lp_field column to mark */
    int32_t dup_of; /* index of an earlier line_new with the same name, or -1 */
} line_new;

typedef struct check_ctx {
    schema_cache *cache;
    schema_namespace *ns;
    lp_batch *b;
    req_table *tables;
    size_t n_tables, cap_tables;
    uint32_t *tmap; /* request table index + 1 by name hash */
    size_t tmap_cap;
    size_t ns_table_count;  /* tables in ns when the check started */
    size_t new_tables_used; /* request tables to be created that good lines use */
    line_new *lnew;
    size_t n_lnew, cap_lnew;
    char *scratch;
    size_t scratch_len, scratch_cap;
    lp_error *errs; /* this phase's line errors, line order, at most SCHEMA_MAX_LINE_ERRORS */
    size_t n_errs, cap_errs, n_bad;
    bool have_prev;
    lp_line prev; /* the previous good line (tags/fields still in batch) */
    bool nomem;
} check_ctx;

/* Clip name for a message: at most 64 bytes, cut at a UTF-8 boundary, "..." when cut. */
static const char *show_name(char *buf, size_t cap, const char *name, size_t len)
{
    size_t n = len;
    if (n > 64) {
        n = 64;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    snprintf(buf, cap, "%.*s%s", (int)n, name, n < len ? "..." : "");
    return buf;
}

static void add_error(check_ctx *c, const lp_line *line, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error(check_ctx *c, const lp_line *line, const char *at, const char *fmt, ...)
{
    c->n_bad++;
    if (c->n_errs >= SCHEMA_MAX_LINE_ERRORS) return;
    if (c->n_errs == c->cap_errs) {
        size_t ncap = c->cap_errs ? c->cap_errs * 2 : 8;
        if (ncap > SCHEMA_MAX_LINE_ERRORS) ncap = SCHEMA_MAX_LINE_ERRORS;
        lp_error *ne = realloc(c->errs, ncap * sizeof *ne);
        if (!ne) {
            c->nomem = true;
            return;
        }
        c->errs = ne;
        c->cap_errs = ncap;
    }
    lp_error *e = &c->errs[c->n_errs++];
    const char *text = lp_line_text(c->b, line);
    memset(e, 0, sizeof *e);
    e->line_number = line->line_number;
    e->column = (at && at >= text && at <= text + line->text_len) ? (uint32_t)(at - text) + 1 : 1;
    e->line_text = text;
    e->line_len = line->text_len;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* Merge c->errs (line order) into b->errors (line order), keep at most the cap; reset c->errs. */
static int merge_errors(check_ctx *c)
{
    lp_batch *b = c->b;
    b->bad_line_count += c->n_bad;
    size_t total = b->error_count + c->n_errs;
    size_t limit =
        b->error_count > SCHEMA_MAX_LINE_ERRORS ? b->error_count : SCHEMA_MAX_LINE_ERRORS;
    size_t keep = total < limit ? total : limit;
    int ret = 0;
    if (c->n_errs == 0) goto out;
    lp_error *merged = malloc(keep * sizeof *merged);
    if (!merged) {
        ret = INGOT_E_NOMEM;
        goto out;
    }
    size_t i = 0, j = 0, k = 0;
    while (k < keep) {
        bool take_b = j >= c->n_errs ||
                      (i < b->error_count && b->errors[i].line_number <= c->errs[j].line_number);
        merged[k++] = take_b ? b->errors[i++] : c->errs[j++];
    }
    if (keep > b->error_cap) {
        lp_error *ne = realloc(b->errors, keep * sizeof *ne);
        if (!ne) {
            free(merged);
            ret = INGOT_E_NOMEM;
            goto out;
        }
        b->errors = ne;
        b->error_cap = keep;
    }
    memcpy(b->errors, merged, keep * sizeof *merged);
    b->error_count = keep;
    free(merged);
out:
    c->n_errs = 0;
    c->n_bad = 0;
    return ret;
}

/*
 * The unescaped bytes of s (a string of b): its bytes in the body when it has no escapes, else
 * unescaped into buf (NAME_BUF_BYTES). Returns false when s is so long that its unescaped form
 * exceeds any limit (*len_out is then set past SCHEMA_MAX_NAME_BYTES).
 */
static bool name_bytes(const lp_batch *b, lp_str s, char *buf, const char **out, size_t *len_out)
{
    if (!s.escaped) {
        *out = lp_str_ptr(b, s);
        *len_out = s.len;
        return true;
    }
    if (s.len > NAME_BUF_BYTES) {
        *out = lp_str_ptr(b, s);
        *len_out = s.len;
        return false;
    }
    *len_out = lp_str_unescape(b, s, buf);
    *out = buf;
    return true;
}

/* NULL if name is a valid table/column name, else the reason. */
static const char *name_problem(const char *s, size_t len)
{
    if (len == 0) return "is empty";
    if (len > SCHEMA_MAX_NAME_BYTES) return "is longer than 255 bytes";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) return "contains a control character";
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return "is not valid UTF-8";
        }
        if (i + n > len) return "is not valid UTF-8";
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return "is not valid UTF-8";
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return "is not valid UTF-8";
        i += n;
    }
    return NULL;
}

static int scratch_add(check_ctx *c, const char *s, size_t len, uint32_t *off_out)
{
    if (c->scratch_len + len > c->scratch_cap) {
        size_t ncap = c->scratch_cap ? c->scratch_cap * 2 : 1024;
        while (ncap < c->scratch_len + len)
            ncap *= 2;
        char *n = realloc(c->scratch, ncap);
        if (!n) return INGOT_E_NOMEM;
        c->scratch = n;
        c->scratch_cap = ncap;
    }
    memcpy(c->scratch + c->scratch_len, s, len);
    *off_out = (uint32_t)c->scratch_len;
    c->scratch_len += len;
    return 0;
}

static int tmap_insert(check_ctx *c, uint32_t hash, uint32_t idx)
{
    if ((c->n_tables + 1) * 2 > c->tmap_cap) {
        size_t ncap = c->tmap_cap ? c->tmap_cap * 2 : 16;
        uint32_t *nm = calloc(ncap, sizeof *nm);
        if (!nm) return INGOT_E_NOMEM;
        for (size_t i = 0; i < c->tmap_cap; i++) {
            if (!c->tmap[i]) continue;
            size_t j = c->tables[c->tmap[i] - 1].hash & (ncap - 1);
            while (nm[j])
                j = (j + 1) & (ncap - 1);
            nm[j] = c->tmap[i];
        }
        free(c->tmap);
        c->tmap = nm;
        c->tmap_cap = ncap;
    }
    size_t j = hash & (c->tmap_cap - 1);
    while (c->tmap[j])
        j = (j + 1) & (c->tmap_cap - 1);
    c->tmap[j] = idx + 1;
    return 0;
}

/*
 * The request table for a line's measurement, registered on first sight. Returns its index, -1
 * after recording a line error (invalid name), or INGOT_E_NOMEM (< -1).
 */
static int req_table_get(check_ctx *c, const lp_line *line)
{
    char buf[NAME_BUF_BYTES];
    const char *name;
    size_t len;
    bool fits = name_bytes(c->b, line->measurement, buf, &name, &len);
    uint32_t h = name_hash(name, len);
    if (fits && c->tmap_cap) {
        for (size_t j = h & (c->tmap_cap - 1); c->tmap[j]; j = (j + 1) & (c->tmap_cap - 1)) {
            req_table *t = &c->tables[c->tmap[j] - 1];
            if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
                return (int)(c->tmap[j] - 1);
        }
    }
    struct table_entry *e = fits ? table_find_hashed(c->ns, name, len, h, NULL) : NULL;
    if (!e) {
        const char *why = fits ? name_problem(name, len) : "is longer than 255 bytes";
        if (why) {
            add_error(c, line, lp_str_ptr(c->b, line->measurement),
                      "invalid table name: the name %s", why);
            return -1;
        }
    }
    if (c->n_tables == c->cap_tables) {
        size_t ncap = c->cap_tables ? c->cap_tables * 2 : 8;
        req_table *nt = realloc(c->tables, ncap * sizeof *nt);
        if (!nt) return INGOT_E_NOMEM;
        c->tables = nt;
        c->cap_tables = ncap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return INGOT_E_NOMEM;
    memcpy(copy, name, len);
    copy[len] = 0;
    req_table *t = &c->tables[c->n_tables];
    *t = (req_table){.name = copy, .len = (uint32_t)len, .hash = h, .entry = e, .out_slot = -1};
    if (tmap_insert(c, h, (uint32_t)c->n_tables) != 0) {
        free(copy);
        return INGOT_E_NOMEM;
    }
    return (int)c->n_tables++;
}

static int pending_find(const req_table *t, const char *name, size_t len, uint32_t h)
{
    if (!t->col_slots) return -1;
    for (uint32_t s = h & (COL_HASH_SLOTS - 1); t->col_slots[s];
         s = (s + 1) & (COL_HASH_SLOTS - 1)) {
        const pending_col *p = &t->cols[t->col_slots[s] - 1];
        if (p->hash == h && p->len == len && memcmp(p->name, name, len) == 0)
            return t->col_slots[s] - 1;
    }
    return -1;
}

static int pending_add(req_table *t, const char *name, size_t len, uint32_t h, uint8_t type)
{
    if (!t->col_slots) {
        t->col_slots = calloc(COL_HASH_SLOTS, sizeof *t->col_slots);
        if (!t->col_slots) return INGOT_E_NOMEM;
    }
    if (t->col_count == t->col_cap) {
        uint32_t ncap = t->col_cap ? t->col_cap * 2 : 8;
        pending_col *nc = realloc(t->cols, ncap * sizeof *nc);
        if (!nc) return INGOT_E_NOMEM;
        t->cols = nc;
        t->col_cap = ncap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return INGOT_E_NOMEM;
    memcpy(copy, name, len);
    copy[len] = 0;
    uint32_t idx = t->col_count++;
    t->cols[idx] = (pending_col){.name = copy, .len = (uint32_t)len, .hash = h, .type = type};
    uint32_t s = h & (COL_HASH_SLOTS - 1);
    while (t->col_slots[s])
        s = (s + 1) & (COL_HASH_SLOTS - 1);
    t->col_slots[s] = (uint16_t)(idx + 1);
    return (int)idx;
}

static const char *sent_type_name(int type)
{
    return column_type_name(type);
}

/*
 * Resolve one key of a line sent as type (COLUMN_TAG or a field type) in request table t.
 * Returns 0 (resolved or recorded as new in c->lnew), 1 after recording a line error, or
 * INGOT_E_NOMEM.
 */
static int resolve_key(check_ctx *c, const lp_line *line, req_table *t, lp_str key, int type,
                       uint16_t *dst)
{
    char buf[NAME_BUF_BYTES], shown[80];
    const char *name;
    size_t len;
    const char *at = lp_str_ptr(c->b, key); /* where errors point */
    if (!name_bytes(c->b, key, buf, &name, &len)) {
        add_error(c, line, at, "invalid column name: the name is longer than 255 bytes");
        return 1;
    }
    uint32_t h = name_hash(name, len);
    if (t->col_count) {
        int p = pending_find(t, name, len, h);
        if (p >= 0) {
            if (t->cols[p].type != type) {
                add_error(c, line, at, "column \"%s\" is %s but the write sends %s",
                          show_name(shown, sizeof shown, name, len),
                          column_type_name(t->cols[p].type), sent_type_name(type));
                return 1;
            }
            *dst = (uint16_t)(PENDING_FLAG | (unsigned)p);
            return 0;
        }
    }
    uint32_t existing = 0;
    if (t->entry) {
        existing = atomic_load_explicit(&t->entry->t.column_count, memory_order_acquire);
        int idx = column_find_hashed(&t->entry->t, name, len, h);
        if (idx >= 0) {
            int stored = t->entry->t.columns[idx].type;
            if (stored != type) {
                char shown_t[80];
                add_error(c, line, at,
                          "column \"%s\" of table \"%s\" has type %s; the write sends %s",
                          show_name(shown, sizeof shown, name, len),
                          show_name(shown_t, sizeof shown_t, t->name, t->len),
                          column_type_name(stored), sent_type_name(type));
                return 1;
            }
            *dst = (uint16_t)idx;
            return 0;
        }
    } else {
        existing = 1; /* `time` */
    }
    /* a new column */
    if (len == 4 && memcmp(name, "time", 4) == 0) {
        add_error(c, line, at, "column name \"time\" is reserved for the timestamp");
        return 1;
    }
    const char *why = name_problem(name, len);
    if (why) {
        add_error(c, line, at, "invalid column name: the name %s", why);
        return 1;
    }
    int32_t dup_of = -1;
    size_t distinct = 0;
    for (size_t i = 0; i < c->n_lnew; i++) {
        line_new *ln = &c->lnew[i];
        if (ln->dup_of < 0) distinct++;
        if (dup_of < 0 && ln->dup_of < 0 && ln->hash == h && ln->len == len &&
            memcmp(c->scratch + ln->name_off, name, len) == 0) {
            if (ln->type != type) {
                add_error(c, line, at, "column \"%s\" is %s but the write sends %s",
                          show_name(shown, sizeof shown, name, len), column_type_name(ln->type),
                          sent_type_name(type));
                return 1;
            }
            dup_of = (int32_t)i;
        }
    }
    if (dup_of < 0 && existing + t->col_count + distinct + 1 > SCHEMA_MAX_COLUMNS) {
        char shown_t[80];
        add_error(c, line, at, "column limit of %d reached in table \"%s\"",
                  SCHEMA_MAX_COLUMNS, show_name(shown_t, sizeof shown_t, t->name, t->len));
        return 1;
    }
    if (c->n_lnew == c->cap_lnew) {
        size_t ncap = c->cap_lnew ? c->cap_lnew * 2 : 16;
        line_new *nl = realloc(c->lnew, ncap * sizeof *nl);
        if (!nl) return INGOT_E_NOMEM;
        c->lnew = nl;
        c->cap_lnew = ncap;
    }
    line_new *ln = &c->lnew[c->n_lnew];
    *ln = (line_new){
        .len = (uint32_t)len, .hash = h, .type = (uint8_t)type, .dst = dst, .dup_of = dup_of};
    if (scratch_add(c, name, len, &ln->name_off) != 0) return INGOT_E_NOMEM;
    c->n_lnew++;
    return 0;
}

/* Keys are compared raw: equal raw bytes have equal escapes (lp.h). */
static bool same_shape(const lp_batch *b, const lp_line *p, const lp_line *l)
{
    const char *base = b->base;
    if (p->measurement.len != l->measurement.len || p->tag_count != l->tag_count ||
        p->field_count != l->field_count ||
        memcmp(base + p->measurement.off, base + l->measurement.off, l->measurement.len) != 0)
        return false;
    for (uint32_t i = 0; i < l->tag_count; i++) {
        const lp_tag *a = &b->tags[p->first_tag + i], *k = &b->tags[l->first_tag + i];
        if (a->key_len != k->key_len ||
            memcmp(base + a->key_off, base + k->key_off, k->key_len) != 0)
            return false;
    }
    for (uint32_t i = 0; i < l->field_count; i++) {
        const lp_field *a = &b->fields[p->first_field + i], *f = &b->fields[l->first_field + i];
        if (a->type != f->type || a->key_len != f->key_len ||
            memcmp(base + a->key_off, base + f->key_off, f->key_len) != 0)
            return false;
    }
    return true;
}

/* Phase 1 for one line. Returns 0 (good), 1 (bad, error recorded) or INGOT_E_NOMEM. */
static int check_line(check_ctx *c, lp_line *line)
{
    lp_batch *b = c->b;
    if (c->have_prev && same_shape(b, &c->prev, line)) {
        for (uint32_t i = 0; i < line->tag_count; i++)
            b->tags[line->first_tag + i].column = b->tags[c->prev.first_tag + i].column;
        for (uint32_t i = 0; i < line->field_count; i++)
            b->fields[line->first_field + i].column = b->fields[c->prev.first_field + i].column;
        line->table_slot = c->prev.table_slot;
        return 0;
    }
    int ti = req_table_get(c, line);
    if (ti == -1) return 1;
    if (ti < 0) return ti;
    req_table *t = &c->tables[ti];
    if (!t->entry && !t->used && c->ns_table_count + c->new_tables_used >= SCHEMA_MAX_TABLES) {
        add_error(c, line, lp_str_ptr(b, line->measurement),
                  "table limit of %d reached in namespace \"%s\"", SCHEMA_MAX_TABLES, c->ns->name);
        return 1;
    }
    c->n_lnew = 0;
    c->scratch_len = 0;
    int rc = 0;
    for (uint32_t i = 0; i < line->tag_count && rc == 0; i++) {
        lp_tag *tag = &b->tags[line->first_tag + i];
        rc = resolve_key(c, line, t, lp_tag_key(tag), COLUMN_TAG, &tag->column);
    }
    for (uint32_t i = 0; i < line->field_count && rc == 0; i++) {
        lp_field *f = &b->fields[line->first_field + i];
        rc = resolve_key(c, line, t, lp_field_key(f), f->type, &f->column);
    }
    if (rc) return rc;
    /* the line is good: register what it creates */
    for (size_t i = 0; i < c->n_lnew; i++) {
        line_new *ln = &c->lnew[i];
        if (ln->dup_of >= 0) {
            *ln->dst = *c->lnew[ln->dup_of].dst;
            continue;
        }
        int p = pending_add(t, c->scratch + ln->name_off, ln->len, ln->hash, ln->type);
        if (p < 0) return p;
        *ln->dst = (uint16_t)(PENDING_FLAG | (unsigned)p);
    }
    if (!t->used && !t->entry) c->new_tables_used++;
    t->used = true;
    line->table_slot = (uint32_t)ti;
    c->prev = *line;
    c->have_prev = true;
    return 0;
}

/* Phase 2: make request table t exist in the cache and the catalog. */
static int create_table(check_ctx *c, req_table *t, char *err, size_t errlen)
{
    schema_namespace *ns = c->ns;
    catalog *cat = c->cache->cat;
    int ret = 0;
    pthread_mutex_lock(&ns->create_lock);
    size_t count = 0;
    struct table_entry *e = table_find_hashed(ns, t->name, t->len, t->hash, &count);
    if (e) goto done;
    if (count >= SCHEMA_MAX_TABLES) {
        t->limit_failed = true;
        goto done;
    }
    int64_t id = 0;
    ret = cat->table_get_or_create(cat->self, ns->catalog_id, t->name, &id);
    if (ret) {
        snprintf(err, errlen, "catalog error while creating table \"%s\": %s", t->name,
                 ingot_strerror(ret));
        goto done;
    }
    ret = table_entry_build(ns, id, t->name, t->len, &e, err, errlen);
    if (ret) goto done;
    pthread_rwlock_wrlock(&ns->lock);
    ret = map_insert(&ns->tables, e->t.name, e->t.name_len, e->name_hash, e);
    pthread_rwlock_unlock(&ns->lock);
    if (ret) {
        snprintf(err, errlen, "out of memory");
        table_entry_free(e);
        e = NULL;
    }
done:
    pthread_mutex_unlock(&ns->create_lock);
    t->entry = e;
    return ret;
}

/* Phase 2: create (or find) every pending column of t, which exists by now. */
static int create_columns(check_ctx *c, req_table *t, char *err, size_t errlen)
{
    struct table_entry *e = t->entry;
    catalog *cat = c->cache->cat;
    int ret = 0;
    pthread_mutex_lock(&e->create_lock);
    for (uint32_t i = 0; i < t->col_count; i++) {
        pending_col *p = &t->cols[i];
        int idx = column_find_hashed(&e->t, p->name, p->len, p->hash);
        if (idx >= 0) {
            if (e->t.columns[idx].type == p->type) {
                p->index = (uint16_t)idx;
            } else {
                p->state = PENDING_CONFLICT;
                p->existing_type = e->t.columns[idx].type;
            }
            continue;
        }
        if (atomic_load_explicit(&e->t.column_count, memory_order_relaxed) >= SCHEMA_MAX_COLUMNS) {
            p->state = PENDING_LIMIT;
            continue;
        }
        int64_t id = 0;
        int existing = 0;
        ret = cat->column_upsert(cat->self, e->t.catalog_id, p->name, p->type, &id, &existing);
        int type = p->type;
        if (ret == INGOT_E_SCHEMA) {
            p->state = PENDING_CONFLICT;
            p->existing_type = (uint8_t)existing;
            type = existing;
            ret = 0;
        } else if (ret) {
            snprintf(err, errlen, "catalog error while creating column \"%s\" of table \"%s\": %s",
                     p->name, e->t.name, ingot_strerror(ret));
            goto done;
        }
        idx = table_publish_column(e, p->name, p->len, type, id);
        if (idx < 0) {
            ret = idx;
            snprintf(err, errlen, "%s", ingot_strerror(ret));
            goto done;
        }
        p->index = (uint16_t)idx;
    }
done:
    pthread_mutex_unlock(&e->create_lock);
    return ret;
}

/* Phase 2 for one line: rewrite pending marks. Returns 0, 1 (line error recorded). */
static int finish_key(check_ctx *c, const lp_line *line, req_table *t, lp_str key, uint16_t *col,
                      int sent)
{
    if (!(*col & PENDING_FLAG)) return 0;
    pending_col *p = &t->cols[*col & ~PENDING_FLAG];
    char shown[80], shown_t[80];
    switch (p->state) {
    case PENDING_OK:
        *col = p->index;
        return 0;
    case PENDING_CONFLICT:
        add_error(c, line, lp_str_ptr(c->b, key),
                  "column \"%s\" of table \"%s\" has type %s; the write sends %s",
                  show_name(shown, sizeof shown, p->name, p->len),
                  show_name(shown_t, sizeof shown_t, t->name, t->len),
                  column_type_name(p->existing_type), sent_type_name(sent));
        return 1;
    default:
        add_error(c, line, lp_str_ptr(c->b, key), "column limit of %d reached in table \"%s\"",
                  SCHEMA_MAX_COLUMNS, show_name(shown_t, sizeof shown_t, t->name, t->len));
        return 1;
    }
}

static int finish_line(check_ctx *c, lp_line *line, schema_op_tables *out)
{
    lp_batch *b = c->b;
    req_table *t = &c->tables[line->table_slot];
    if (t->limit_failed) {
        add_error(c, line, lp_str_ptr(b, line->measurement),
                  "table limit of %d reached in namespace \"%s\"", SCHEMA_MAX_TABLES, c->ns->name);
        return 1;
    }
    for (uint32_t i = 0; i < line->tag_count; i++) {
        lp_tag *tag = &b->tags[line->first_tag + i];
        if (finish_key(c, line, t, lp_tag_key(tag), &tag->column, COLUMN_TAG)) return 1;
    }
    for (uint32_t i = 0; i < line->field_count; i++) {
        lp_field *f = &b->fields[line->first_field + i];
        if (finish_key(c, line, t, lp_field_key(f), &f->column, f->type)) return 1;
    }
    if (t->out_slot < 0) {
        if (out->count == out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 8;
            schema_table **nt = realloc(out->tables, ncap * sizeof *nt);
            if (!nt) return INGOT_E_NOMEM;
            out->tables = nt;
            out->cap = ncap;
        }
        t->out_slot = (int32_t)out->count;
        out->tables[out->count++] = &t->entry->t;
    }
    line->table_slot = (uint32_t)t->out_slot;
    return 0;
}

static void ctx_free(check_ctx *c)
{
    for (size_t i = 0; i < c->n_tables; i++) {
        req_table *t = &c->tables[i];
        for (uint32_t k = 0; k < t->col_count; k++)
            free(t->cols[k].name);
        free(t->cols);
        free(t->col_slots);
        free(t->name);
    }
    free(c->tables);
    free(c->tmap);
    free(c->lnew);
    free(c->scratch);
    free(c->errs);
}

int schema_check(schema_cache *cache, schema_namespace *ns, lp_batch *batch, bool partial_ok,
                 schema_op_tables *tables_out, char *err, size_t errlen)
{
    check_ctx c = {.cache = cache, .ns = ns, .b = batch};
    int ret = 0;
    tables_out->count = 0;
    if (err && errlen) err[0] = 0;
    bool bad_before = batch->bad_line_count > 0;
    pthread_rwlock_rdlock(&ns->lock);
    c.ns_table_count = ns->tables.count;
    pthread_rwlock_unlock(&ns->lock);

    /* phase 1: no side effects */
    size_t w = 0;
    for (size_t r = 0; r < batch->line_count; r++) {
        lp_line *line = &batch->lines[r];
        int rc = check_line(&c, line);
        if (rc < 0) {
            ret = rc;
            goto nomem;
        }
        if (rc == 0) batch->lines[w++] = *line;
    }
    batch->line_count = w;
    bool phase1_bad = c.n_bad > 0;
    if (c.nomem) goto nomem;
    if ((ret = merge_errors(&c))) goto nomem;
    if (!partial_ok && (phase1_bad || bad_before)) goto out;

    /* phase 2: create what is missing, then resolve */
    for (size_t i = 0; i < c.n_tables; i++) {
        req_table *t = &c.tables[i];
        if (!t->used) continue;
        if (!t->entry && (ret = create_table(&c, t, err, errlen))) goto out;
        if (t->entry && t->col_count && (ret = create_columns(&c, t, err, errlen))) goto out;
    }
    w = 0;
    for (size_t r = 0; r < batch->line_count; r++) {
        lp_line *line = &batch->lines[r];
        int rc = finish_line(&c, line, tables_out);
        if (rc < 0) {
            ret = rc;
            goto nomem;
        }
        if (rc == 0) batch->lines[w++] = *line;
    }
    batch->line_count = w;
    if (c.nomem) goto nomem;
    if ((ret = merge_errors(&c))) goto nomem;
    if (!partial_ok && batch->bad_line_count > 0) tables_out->count = 0;
    goto out;
nomem:
    ret = INGOT_E_NOMEM;
    if (err && errlen) snprintf(err, errlen, "out of memory during the schema check");
out:
    ctx_free(&c);
    return ret;
}
