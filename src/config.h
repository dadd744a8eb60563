/*
 * config.h: the settings of `ingot serve` (ARCHITECTURE §10). Every flag `--some-flag` can also be
 * given as the environment variable INGOT_SOME_FLAG; a flag on the command line wins over the
 * environment, which wins over the default. The table in config.c is the single source of the
 * flag names, defaults and help text.
 */
#ifndef INGOT_CONFIG_H
#define INGOT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ingot_config {
    char *data_dir;              /* --data-dir */
    char *http_bind;             /* --http-bind host:port */
    char *grpc_bind;             /* --grpc-bind host:port */
    uint64_t grpc_threads;       /* --grpc-threads */
    char *wal_dir;               /* --wal-dir, default <data-dir>/wal */
    uint64_t wal_segment_bytes;  /* --wal-segment-bytes */
    uint64_t wal_rotation_period_s; /* --wal-rotation-period (seconds) */
    uint64_t persist_workers;    /* --persist-workers */
    uint64_t persist_queue_depth; /* --persist-queue-depth */
    uint64_t persist_hot_partition_bytes; /* --persist-hot-partition-bytes */
    uint64_t compaction_threads; /* --compaction-threads */
    uint64_t disk_full_percent;  /* --disk-full-percent */
    char *object_store;          /* --object-store file|s3 */
    char *s3_endpoint;           /* --s3-endpoint */
    char *s3_bucket;             /* --s3-bucket */
    char *s3_region;             /* --s3-region */
    uint64_t object_store_timeout_s; /* --object-store-timeout (seconds) */
    bool wal_skip_corrupt;       /* --wal-skip-corrupt */
    char *catalog;               /* --catalog: SQLite path or postgres:// URL */
    uint64_t catalog_timeout_s;  /* --catalog-timeout (seconds): PostgreSQL calls */
    uint64_t max_request_bytes;  /* --max-request-bytes */
    uint64_t concurrent_query_limit; /* --concurrent-query-limit */
    uint64_t max_concurrent_writes;  /* --max-concurrent-writes */
    uint64_t max_body_memory;        /* --max-body-memory */
    uint64_t http_max_connections;   /* --http-max-connections */
    uint64_t http_idle_timeout_s;    /* --http-idle-timeout (seconds) */
    char *auth_token;            /* --auth-token (NULL: no authentication) */
    char *log_level;             /* --log-level debug|info|warn|error */
} ingot_config;

/*
 * Fill cfg from defaults, the environment and argv (argv[0] is the first flag, not the program).
 * Returns 0, 1 if --help was asked (help already printed to out), or -1 with a message in err.
 * Strings in cfg are owned by cfg: free them with config_free.
 */
int config_parse(ingot_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen);
void config_free(ingot_config *cfg);
void config_print_help(FILE *out);

/* Split "host:port" into a sockaddr_in host and port; 0 or -1. */
int config_split_bind(const char *bind, char *host, size_t host_len, uint16_t *port);

#endif
