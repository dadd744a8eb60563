/*
 * config.c: flag parsing for `ingot serve`. One table describes every flag: its name, kind,
 * default and help. The environment variable of `--wal-segment-bytes` is INGOT_WAL_SEGMENT_BYTES.
 * Integer flags accept a K/M/G suffix (powers of 1024) for byte sizes. Flags take their value as
 * `--flag value` or `--flag=value`; boolean flags take no value on the command line and
 * 1/0/true/false in the environment.
 */
#include "config.h"

#include "lp/lp.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum flag_kind { FLAG_STRING, FLAG_U64, FLAG_BOOL, FLAG_SECONDS };

typedef struct flag_def {
    const char *name;
    enum flag_kind kind;
    size_t offset;
    const char *default_value; /* NULL: unset (derived later or off) */
    const char *help;
} flag_def;

#define OFF(field) offsetof(ingot_config, field)

static const flag_def flags[] = {
    {"data-dir", FLAG_STRING, OFF(data_dir), "./ingot-data", "directory for the WAL, catalog and objects"},
    {"http-bind", FLAG_STRING, OFF(http_bind), "127.0.0.1:8080", "HTTP listen address host:port"},
    {"grpc-bind", FLAG_STRING, OFF(grpc_bind), "127.0.0.1:8082",
     "gRPC listen address host:port (WriteService, Arrow Flight DoGet, CatalogService)"},
    {"grpc-threads", FLAG_U64, OFF(grpc_threads), "16",
     "threads serving gRPC calls (a write waits for its WAL commit on one)"},
    {"wal-dir", FLAG_STRING, OFF(wal_dir), NULL, "write-ahead log directory (default <data-dir>/wal)"},
    {"wal-segment-bytes", FLAG_U64, OFF(wal_segment_bytes), "128M", "rotate a WAL segment past this size"},
    {"wal-rotation-period", FLAG_SECONDS, OFF(wal_rotation_period_s), "300",
     "rotate the WAL segment this often (seconds, or with s/m/h), then persist"},
    {"wal-skip-corrupt", FLAG_BOOL, OFF(wal_skip_corrupt), "false",
     "at start-up, move a damaged WAL segment to <wal-dir>/corrupt/ and go on instead of stopping"},
    {"catalog", FLAG_STRING, OFF(catalog), NULL,
     "catalog: a SQLite file path (default <data-dir>/catalog.sqlite) or postgres://user@host:port/db"},
    {"catalog-timeout", FLAG_SECONDS, OFF(catalog_timeout_s), "30",
     "give up on (and retry) a PostgreSQL catalog call, its connect included, that takes longer "
     "(seconds, or with s/m/h)"},
    {"object-store", FLAG_STRING, OFF(object_store), "file",
     "where Parquet files go: file (<data-dir>/objects) or s3"},
    {"s3-endpoint", FLAG_STRING, OFF(s3_endpoint), NULL,
     "S3 endpoint URL (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"},
    {"s3-bucket", FLAG_STRING, OFF(s3_bucket), NULL, "S3 bucket"},
    {"s3-region", FLAG_STRING, OFF(s3_region), "us-east-1", "S3 region"},
    {"object-store-timeout", FLAG_SECONDS, OFF(object_store_timeout_s), "30",
     "abandon (and retry) an S3 request that moves no byte for this long, whose "
     "connect takes longer (at most 10 s), or that takes 4 times this plus its size at "
     "256 KiB/s (seconds, or with s/m/h)"},
    {"persist-workers", FLAG_U64, OFF(persist_workers), "5", "persist worker threads"},
    {"persist-queue-depth", FLAG_U64, OFF(persist_queue_depth), "250",
     "persist jobs queued or running at once; beyond it writes get 503 until it drains"},
    {"persist-hot-partition-bytes", FLAG_U64, OFF(persist_hot_partition_bytes), "10000000",
     "persist a partition as soon as its buffer holds this many bytes"},
    {"compaction-threads", FLAG_U64, OFF(compaction_threads), "2",
     "threads sorting and de-duplicating snapshots for persistence"},
    {"disk-full-percent", FLAG_U64, OFF(disk_full_percent), "90",
     "refuse writes (503) and persist everything while the WAL volume is this full"},
    {"max-request-bytes", FLAG_U64, OFF(max_request_bytes), "10485760",
     "largest request body, after gzip inflation (413 beyond)"},
    {"concurrent-query-limit", FLAG_U64, OFF(concurrent_query_limit), "20",
     "queries answered at once (503 beyond)"},
    {"max-concurrent-writes", FLAG_U64, OFF(max_concurrent_writes), "8",
     "writes parsed and logged at once; more wait their turn, first come first served, once "
     "their body is read (bounds the memory of writes in flight; 503 after 10 s)"},
    {"max-body-memory", FLAG_U64, OFF(max_body_memory), "16M",
     "bytes of HTTP request bodies held at once; a write whose body would go past it waits "
     "before its body is read, first come first served (503 after 10 s); one body may always "
     "be read"},
    {"http-max-connections", FLAG_U64, OFF(http_max_connections), "1000",
     "open HTTP connections at once"},
    {"http-idle-timeout", FLAG_SECONDS, OFF(http_idle_timeout_s), "30",
     "close an HTTP connection idle this long, or whose request headers take longer than this to "
     "arrive (slow clients; seconds, or with s/m/h)"},
    {"auth-token", FLAG_STRING, OFF(auth_token), NULL,
     "require 'Authorization: Token|Bearer <token>' on every HTTP endpoint but /health and "
     "on every gRPC call (metadata authorization)"},
    {"log-level", FLAG_STRING, OFF(log_level), "info", "debug, info, warn or error"},
};
#define FLAG_COUNT (sizeof flags / sizeof flags[0])

/* A non-negative integer, optionally followed by one letter of units multiplying it by the scale
 * at the same index. */
static int parse_scaled(const char *s, const char *units, const uint64_t *scale, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    uint64_t mul = 1;
    const char *u = *end ? strchr(units, *end) : NULL;
    if (u) mul = scale[u - units], end++;
    if (*end != '\0' || v > UINT64_MAX / mul) return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    static const uint64_t scale[] = {1024ull, 1024ull, 1024ull << 10, 1024ull << 10, 1024ull << 20,
                                     1024ull << 20};
    return parse_scaled(s, "KkMmGg", scale, out);
}

static int parse_seconds(const char *s, uint64_t *out)
{
    static const uint64_t scale[] = {1, 60, 3600};
    return parse_scaled(s, "smh", scale, out);
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes")) *out = true;
    else if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no")) *out = false;
    else return -1;
    return 0;
}

static int set_flag(ingot_config *cfg, const flag_def *f, const char *value, char *err,
                    size_t errlen)
{
    void *slot = (char *)cfg + f->offset;
    switch (f->kind) {
    case FLAG_STRING: {
        char *copy = strdup(value);
        if (!copy) goto nomem;
        free(*(char **)slot);
        *(char **)slot = copy;
        return 0;
    }
    case FLAG_U64:
        if (parse_u64(value, (uint64_t *)slot) != 0) {
            snprintf(err, errlen, "--%s: not a non-negative integer: '%s'", f->name, value);
            return -1;
        }
        return 0;
    case FLAG_SECONDS:
        if (parse_seconds(value, (uint64_t *)slot) != 0) {
            snprintf(err, errlen, "--%s: not a duration (300, 300s, 5m, 1h): '%s'", f->name, value);
            return -1;
        }
        return 0;
    case FLAG_BOOL:
        if (parse_bool(value, (bool *)slot) != 0) {
            snprintf(err, errlen, "--%s: not a boolean: '%s'", f->name, value);
            return -1;
        }
        return 0;
    }
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void env_name(const flag_def *f, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "INGOT_");
    for (const char *p = f->name; *p && n + 1 < len; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

void config_print_help(FILE *out)
{
    fprintf(out, "Usage: ingot serve [flags]\n\nRuns the ingester daemon. Every flag may also be "
                 "set with the environment\nvariable shown.\n\nFlags:\n");
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        char env[64];
        env_name(&flags[i], env, sizeof env);
        fprintf(out, "  --%-24s %s\n  %-26s env %s%s%s%s\n", flags[i].name, flags[i].help, "", env,
                flags[i].default_value ? ", default '" : "",
                flags[i].default_value ? flags[i].default_value : "",
                flags[i].default_value ? "'" : "");
    }
    fprintf(out, "  --%-24s %s\n", "help", "this text");
}

int config_parse(ingot_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        if (flags[i].default_value && set_flag(cfg, &flags[i], flags[i].default_value, err, errlen))
            return -1;
        char env[64];
        env_name(&flags[i], env, sizeof env);
        const char *v = getenv(env);
        if (v && set_flag(cfg, &flags[i], v, err, errlen) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (from %s)", env);
            return -1;
        }
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            config_print_help(out);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const flag_def *f = NULL;
        for (size_t i = 0; i < FLAG_COUNT; i++)
            if (strlen(flags[i].name) == name_len && !strncmp(flags[i].name, name, name_len))
                f = &flags[i];
        if (!f) {
            snprintf(err, errlen, "unknown flag '%s' (see --help)", arg);
            return -1;
        }
        const char *value;
        if (eq) value = eq + 1;
        else if (f->kind == FLAG_BOOL) value = "true";
        else if (a + 1 < argc) value = argv[++a];
        else {
            snprintf(err, errlen, "--%s needs a value", f->name);
            return -1;
        }
        if (set_flag(cfg, f, value, err, errlen) != 0) return -1;
    }
    if (!cfg->wal_dir || !cfg->catalog) {
        size_t n = strlen(cfg->data_dir) + 32;
        if (!cfg->wal_dir && (cfg->wal_dir = malloc(n))) snprintf(cfg->wal_dir, n, "%s/wal", cfg->data_dir);
        if (!cfg->catalog && (cfg->catalog = malloc(n)))
            snprintf(cfg->catalog, n, "%s/catalog.sqlite", cfg->data_dir);
        if (!cfg->wal_dir || !cfg->catalog) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (cfg->auth_token && cfg->auth_token[0] == '\0') {
        free(cfg->auth_token);
        cfg->auth_token = NULL;
    }
    if (log_level_parse(cfg->log_level) < 0) {
        snprintf(err, errlen, "--log-level: expected debug, info, warn or error, not '%s'",
                 cfg->log_level);
        return -1;
    }
    char host[256];
    uint16_t port;
    if (config_split_bind(cfg->http_bind, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "--http-bind: expected host:port, not '%s'", cfg->http_bind);
        return -1;
    }
    if (cfg->wal_segment_bytes < 4096) {
        snprintf(err, errlen, "--wal-segment-bytes: at least 4096");
        return -1;
    }
    if (strcmp(cfg->object_store, "file") != 0 && strcmp(cfg->object_store, "s3") != 0) {
        snprintf(err, errlen, "--object-store: file or s3, not '%s'", cfg->object_store);
        return -1;
    }
    if (!strcmp(cfg->object_store, "s3") && (!cfg->s3_endpoint || !cfg->s3_bucket)) {
        snprintf(err, errlen, "--object-store s3 needs --s3-endpoint and --s3-bucket");
        return -1;
    }
    if (cfg->persist_workers == 0 || cfg->persist_queue_depth == 0 || cfg->compaction_threads == 0 ||
        cfg->wal_rotation_period_s == 0 || cfg->disk_full_percent == 0 || cfg->disk_full_percent > 100) {
        snprintf(err, errlen, "--persist-workers, --persist-queue-depth, --compaction-threads and "
                              "--wal-rotation-period must be positive; --disk-full-percent 1..100");
        return -1;
    }
    if (cfg->http_idle_timeout_s == 0 || cfg->http_idle_timeout_s > 86400) {
        snprintf(err, errlen, "--http-idle-timeout: 1 second to 24 hours");
        return -1;
    }
    if (cfg->object_store_timeout_s == 0 || cfg->object_store_timeout_s > 86400) {
        snprintf(err, errlen, "--object-store-timeout: 1 second to 24 hours");
        return -1;
    }
    if (cfg->catalog_timeout_s == 0 || cfg->catalog_timeout_s > 86400) {
        snprintf(err, errlen, "--catalog-timeout: 1 second to 24 hours");
        return -1;
    }
    if (cfg->concurrent_query_limit == 0 || cfg->max_request_bytes == 0 ||
        cfg->max_concurrent_writes == 0 || cfg->max_body_memory == 0) {
        snprintf(err, errlen, "--concurrent-query-limit, --max-concurrent-writes, "
                              "--max-request-bytes and --max-body-memory must be positive");
        return -1;
    }
    if (cfg->max_request_bytes > LP_MAX_BODY_BYTES) {
        snprintf(err, errlen, "--max-request-bytes: at most %u (the line-protocol parser's limit)",
                 LP_MAX_BODY_BYTES);
        return -1;
    }
    return 0;
}

void config_free(ingot_config *cfg)
{
    for (size_t i = 0; i < FLAG_COUNT; i++)
        if (flags[i].kind == FLAG_STRING) {
            char **slot = (char **)((char *)cfg + flags[i].offset);
            free(*slot);
            *slot = NULL;
        }
}

int config_split_bind(const char *bind, char *host, size_t host_len, uint16_t *port)
{
    const char *colon = strrchr(bind, ':');
    if (!colon || colon == bind) return -1;
    size_t n = (size_t)(colon - bind);
    if (n >= host_len) return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || p < 0 || p > 65535 || end == colon + 1) return -1;
    memcpy(host, bind, n);
    host[n] = '\0';
    *port = (uint16_t)p;
    return 0;
}
