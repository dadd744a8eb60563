/* Unit tests of `ingot serve` flag parsing (config.h): defaults, environment, precedence, errors. */
#include <stdlib.h>

#include "config.h"
#include "test.h"

static int parse(ingot_config *c, int argc, char **argv, char *err)
{
    FILE *devnull = fopen("/dev/null", "w");
    int rv = config_parse(c, argc, argv, devnull, err, 256);
    fclose(devnull);
    return rv;
}

static void test_defaults(void)
{
    ingot_config c;
    char err[256];
    CHECK_EQ_INT(parse(&c, 0, NULL, err), 0);
    CHECK_EQ_STR(c.data_dir, "./ingot-data");
    CHECK_EQ_STR(c.http_bind, "127.0.0.1:8080");
    CHECK_EQ_STR(c.wal_dir, "./ingot-data/wal");
    CHECK_EQ_STR(c.catalog, "./ingot-data/catalog.sqlite");
    CHECK_EQ_INT(c.max_request_bytes, 10485760);
    CHECK_EQ_INT(c.wal_segment_bytes, 128ull << 20);
    CHECK_EQ_INT(c.concurrent_query_limit, 20);
    CHECK(c.auth_token == NULL);
    CHECK(!c.wal_skip_corrupt);
    config_free(&c);
}

static void test_flags_env_and_precedence(void)
{
    ingot_config c;
    char err[256];
    setenv("INGOT_MAX_REQUEST_BYTES", "2M", 1);
    setenv("INGOT_DATA_DIR", "/tmp/envdir", 1);
    setenv("INGOT_WAL_SKIP_CORRUPT", "true", 1);
    char *argv[] = {"--data-dir=/tmp/flagdir", "--auth-token", "tok", "--wal-segment-bytes", "64K"};
    CHECK_EQ_INT(parse(&c, 5, argv, err), 0);
    CHECK_EQ_STR(c.data_dir, "/tmp/flagdir"); /* the flag wins over the environment */
    CHECK_EQ_STR(c.wal_dir, "/tmp/flagdir/wal");
    CHECK_EQ_INT(c.max_request_bytes, 2u << 20);
    CHECK_EQ_INT(c.wal_segment_bytes, 64u << 10);
    CHECK(c.wal_skip_corrupt);
    CHECK_EQ_STR(c.auth_token, "tok");
    config_free(&c);
    unsetenv("INGOT_MAX_REQUEST_BYTES");
    unsetenv("INGOT_DATA_DIR");
    unsetenv("INGOT_WAL_SKIP_CORRUPT");
}

static void test_errors(void)
{
    ingot_config c;
    char err[256];
    char *a1[] = {"--nope"};
    CHECK_EQ_INT(parse(&c, 1, a1, err), -1);
    CHECK(strstr(err, "unknown flag") != NULL);
    config_free(&c);
    char *a2[] = {"--max-request-bytes", "ten"};
    CHECK_EQ_INT(parse(&c, 2, a2, err), -1);
    CHECK(strstr(err, "max-request-bytes") != NULL);
    config_free(&c);
    char *a3[] = {"--http-bind", "nohost"};
    CHECK_EQ_INT(parse(&c, 2, a3, err), -1);
    config_free(&c);
    char *a4[] = {"--log-level", "loud"};
    CHECK_EQ_INT(parse(&c, 2, a4, err), -1);
    config_free(&c);
    char *a5[] = {"--data-dir"};
    CHECK_EQ_INT(parse(&c, 1, a5, err), -1);
    CHECK(strstr(err, "needs a value") != NULL);
    config_free(&c);
    setenv("INGOT_CONCURRENT_QUERY_LIMIT", "-3", 1);
    CHECK_EQ_INT(parse(&c, 0, NULL, err), -1);
    CHECK(strstr(err, "INGOT_CONCURRENT_QUERY_LIMIT") != NULL);
    config_free(&c);
    unsetenv("INGOT_CONCURRENT_QUERY_LIMIT");
    char *a6[] = {"--help"};
    CHECK_EQ_INT(parse(&c, 1, a6, err), 1);
    config_free(&c);
}

static void test_persistence_flags(void)
{
    ingot_config c;
    char err[256];
    CHECK_EQ_INT(parse(&c, 0, NULL, err), 0);
    CHECK_EQ_INT(c.wal_rotation_period_s, 300);
    CHECK_EQ_INT(c.persist_workers, 5);
    CHECK_EQ_INT(c.persist_queue_depth, 250);
    CHECK_EQ_INT(c.persist_hot_partition_bytes, 10000000);
    CHECK_EQ_INT(c.disk_full_percent, 90);
    CHECK_EQ_STR(c.object_store, "file");
    config_free(&c);
    char *a1[] = {"--wal-rotation-period", "5m", "--persist-workers=2"};
    CHECK_EQ_INT(parse(&c, 3, a1, err), 0);
    CHECK_EQ_INT(c.wal_rotation_period_s, 300);
    CHECK_EQ_INT(c.persist_workers, 2);
    config_free(&c);
    char *a2[] = {"--wal-rotation-period", "2h"};
    CHECK_EQ_INT(parse(&c, 2, a2, err), 0);
    CHECK_EQ_INT(c.wal_rotation_period_s, 7200);
    config_free(&c);
    char *a3[] = {"--wal-rotation-period", "soon"};
    CHECK_EQ_INT(parse(&c, 2, a3, err), -1);
    config_free(&c);
    char *a4[] = {"--object-store", "tape"};
    CHECK_EQ_INT(parse(&c, 2, a4, err), -1);
    config_free(&c);
    char *a5[] = {"--object-store", "s3"};
    CHECK_EQ_INT(parse(&c, 2, a5, err), -1);
    CHECK(strstr(err, "--s3-endpoint") != NULL);
    config_free(&c);
    char *a6[] = {"--object-store", "s3", "--s3-endpoint", "http://127.0.0.1:9", "--s3-bucket", "b"};
    CHECK_EQ_INT(parse(&c, 6, a6, err), 0);
    config_free(&c);
    char *a7[] = {"--disk-full-percent", "101"};
    CHECK_EQ_INT(parse(&c, 2, a7, err), -1);
    config_free(&c);
    char *a8[] = {"--persist-queue-depth", "0"};
    CHECK_EQ_INT(parse(&c, 2, a8, err), -1);
    config_free(&c);
}

static void test_split_bind(void)
{
    char host[64];
    uint16_t port;
    CHECK_EQ_INT(config_split_bind("127.0.0.1:8080", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 8080);
    CHECK_EQ_INT(config_split_bind("[::1]:9", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "[::1]");
    CHECK_EQ_INT(config_split_bind("h:70000", host, sizeof host, &port), -1);
    CHECK_EQ_INT(config_split_bind(":80", host, sizeof host, &port), -1);
}

int main(void)
{
    TEST_RUN(test_defaults);
    TEST_RUN(test_flags_env_and_precedence);
    TEST_RUN(test_errors);
    TEST_RUN(test_persistence_flags);
    TEST_RUN(test_split_bind);
    TEST_MAIN_END();
}
