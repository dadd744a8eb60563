/*
 * test_s3_store.c: the `s3` object store (s3_store.c) against a real S3-compatible server, named
 * by INGOT_TEST_S3_ENDPOINT / INGOT_TEST_S3_BUCKET (and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY);
 * tests/s3.sh runs s3rver and sets them. Without INGOT_TEST_S3_ENDPOINT it runs nothing and says
 * "0 passed, 0 failed". Runs the shared scenarios (store_scenarios.h) under a fresh
 * "run-<uuid>/" prefix, then what is particular to S3: signing, listing across pages, errors.
 */
#include <errno.h>
#include <stdlib.h>

#include "test.h"

#include "store_scenarios.h"

static const char *endpoint, *bucket;
static object_store s3;

static void test_open(void)
{
    char err[256] = "";
    int rc = object_store_s3_open(endpoint, bucket, "us-east-1", &s3, err, sizeof err);
    if (rc) fprintf(stderr, "  open: %s\n", err);
    CHECK_EQ_INT(rc, 0);
}

static void test_open_errors(void)
{
    char err[256] = "";
    object_store s;
    CHECK_EQ_INT(object_store_s3_open("", bucket, "us-east-1", &s, err, sizeof err),
                 INGOT_E_INVALID);
    CHECK_EQ_INT(object_store_s3_open("ftp://x", bucket, "us-east-1", &s, err, sizeof err),
                 INGOT_E_INVALID);
    /* nobody listens on port 1 */
    err[0] = '\0';
    CHECK(object_store_s3_open("http://127.0.0.1:1", bucket, "us-east-1", &s, err, sizeof err) <
          0);
    CHECK(err[0] != '\0');
    /* a bucket that does not exist */
    err[0] = '\0';
    CHECK(object_store_s3_open(endpoint, "no-such-bucket-ingot", "us-east-1", &s, err,
                               sizeof err) < 0);
    CHECK(strstr(err, "no-such-bucket-ingot") != NULL);
}

/*
 * An unknown access key is refused (InvalidAccessKeyId): the requests carry the AWS4 header.
 * s3rver does not verify SigV4 signatures themselves, so a wrong secret would pass here.
 */
static void test_unknown_key_refused(void)
{
    char *saved = strdup(getenv("AWS_ACCESS_KEY_ID"));
    setenv("AWS_ACCESS_KEY_ID", "NOT-A-KEY", 1);
    char err[256] = "";
    object_store s;
    int rc = object_store_s3_open(endpoint, bucket, "us-east-1", &s, err, sizeof err);
    CHECK_EQ_INT(rc, -EACCES);
    CHECK(strstr(err, "403") != NULL);
    setenv("AWS_ACCESS_KEY_ID", saved, 1);
    free(saved);
    if (rc == 0) s.close(s.self);
}

/* More objects than one ListObjectsV2 page holds (INGOT_S3_LIST_MAX_KEYS=7 for this store). */
static void test_list_pages(void)
{
    setenv("INGOT_S3_LIST_MAX_KEYS", "7", 1);
    char err[256] = "";
    object_store s;
    int rc = object_store_s3_open(endpoint, bucket, "us-east-1", &s, err, sizeof err);
    unsetenv("INGOT_S3_LIST_MAX_KEYS");
    CHECK_EQ_INT(rc, 0);
    if (rc) return;
    char path[256];
    for (int i = 0; i < 30; i++) {
        snprintf(path, sizeof path, "%spages/o%02d", scenario_base, i);
        CHECK_EQ_INT(s.put(s.self, path, path, (size_t)i), 0);
    }
    scenario_listing l = {0};
    snprintf(path, sizeof path, "%spages/", scenario_base);
    CHECK_EQ_INT(s.list(s.self, path, scenario_list_cb, &l), 0);
    CHECK_EQ_INT(l.count, 30);
    for (int i = 0; i < 30; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "pages/o%02d", i);
        long k = scenario_find(&l, rel);
        CHECK(k >= 0);
        if (k >= 0) CHECK_EQ_INT(l.sizes[k], i);
    }
    scenario_listing_free(&l);
    s.close(s.self);
}

int main(void)
{
    endpoint = getenv("INGOT_TEST_S3_ENDPOINT");
    bucket = getenv("INGOT_TEST_S3_BUCKET");
    if (!endpoint || !*endpoint) {
        printf("%s: skipped (INGOT_TEST_S3_ENDPOINT is not set; see tests/s3.sh)\n", __FILE__);
        TEST_MAIN_END();
    }
    if (!bucket || !*bucket) bucket = "ingot-test";
    char uuid[37];
    object_store_uuid_v4(uuid);
    snprintf(scenario_base, sizeof scenario_base, "run-%s/", uuid);
    TEST_RUN(test_open);
    if (test_failed_count) TEST_MAIN_END();
    scenario_store = &s3;
    scenario_long_name_len = 80;         /* s3rver: each key segment is a file name */
    scenario_reads_during_overwrite = 0; /* s3rver overwrites in place */
    TEST_RUN(test_open_errors);
    TEST_RUN(test_unknown_key_refused);
    store_scenarios_run_all();
    TEST_RUN(test_list_pages);
    s3.close(s3.self);
    TEST_MAIN_END();
}
