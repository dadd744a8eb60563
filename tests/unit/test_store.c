/*
 * test_store.c: the path rules (store_path.c) and the `file` object store (file_store.c): the
 * shared contract scenarios (store_scenarios.h) plus what only a file store has: where objects
 * land on disk, temporary files, recovery at open, long segments.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#include "store_scenarios.h"

static char tmp_dir[64];  /* mkdtemp'd parent of the root: must hold nothing but the root */
static char root_dir[96]; /* the store root */
static object_store file_store;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static int path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- store_path.c ---- */

static void test_path_segment(void)
{
    struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"abc", 3, "abc"},
        {"a/b", 3, "a%2Fb"},
        {".", 1, "%2E"},
        {"..", 2, "%2E%2E"},
        {"...", 3, "%2E%2E%2E"},
        {"a.b", 3, "a.b"},
        {".hidden", 7, ".hidden"},
        {"../x", 4, "..%2Fx"},
        {"", 0, ""},
        {"\xc3\xa9t\xc3\xa9", 5, "%C3%A9t%C3%A9"},
        {"a\0b", 3, "a%00b"},
        {"100%", 4, "100%25"},
        {"A-Z_a-z.0-9", 11, "A-Z_a-z.0-9"},
        {" ~\\\x7f\xff", 5, "%20%7E%5C%7F%FF"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        memset(out, 'Z', sizeof out);
        size_t n = object_store_path_segment(cases[i].in, cases[i].len, out);
        CHECK_EQ_STR(out, cases[i].out);
        CHECK_EQ_INT(n, strlen(cases[i].out));
        if (n) CHECK_EQ_INT(object_store_path_check(out, n), 0);
    }
}

static void test_path_check(void)
{
    static const char *const good[] = {"a", "a/b", "a/b/c.parquet", "%2E", "%2E%2E", "..a",
                                       "a..", "a/%2Fetc", "%00", "%25", "x/%C3%A9/y", ".x"};
    static const char *const bad[] = {"",    "/",     "/a",   "a/",    "a//b", ".",    "..",
                                      "...", "a/../b", "%2e", "%2",    "%",    "%G0",  "%41",
                                      "%2E.", ".%2E",  "a%2Eb", "a b", "a~",  "\xc3\xa9", "a\nb"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (object_store_path_check(good[i], strlen(good[i])) != 0)
            fprintf(stderr, "  refused \"%s\"\n", good[i]);
        CHECK_EQ_INT(object_store_path_check(good[i], strlen(good[i])), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (object_store_path_check(bad[i], strlen(bad[i])) != INGOT_E_INVALID)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        CHECK_EQ_INT(object_store_path_check(bad[i], strlen(bad[i])), INGOT_E_INVALID);
    }
    /* the length is what counts, not a NUL: "a" then a NUL byte is not a path */
    CHECK_EQ_INT(object_store_path_check("a\0b", 3), INGOT_E_INVALID);
    CHECK_EQ_INT(object_store_path_check(NULL, 0), INGOT_E_INVALID);
}

static void test_parquet_path(void)
{
    const char *uuid = "0e4f4bd4-2c3a-4f0e-9d3b-3c2f8f0e9a11";
    char out[256];
    CHECK_EQ_INT(object_store_parquet_path("db", "cpu", "2024-01-01", uuid, out, sizeof out), 0);
    CHECK_EQ_STR(out, "db/cpu/2024-01-01/0e4f4bd4-2c3a-4f0e-9d3b-3c2f8f0e9a11.parquet");
    CHECK_EQ_INT(object_store_parquet_path("my db", "../etc", "..", uuid, out, sizeof out), 0);
    CHECK_EQ_STR(out, "my%20db/..%2Fetc/%2E%2E/0e4f4bd4-2c3a-4f0e-9d3b-3c2f8f0e9a11.parquet");
    /* exactly fitting, and one byte short */
    size_t need = strlen("db/cpu/2024-01-01/") + 36 + strlen(".parquet") + 1;
    CHECK_EQ_INT(object_store_parquet_path("db", "cpu", "2024-01-01", uuid, out, need), 0);
    CHECK_EQ_INT(strlen(out), need - 1);
    CHECK_EQ_INT(object_store_parquet_path("db", "cpu", "2024-01-01", uuid, out, need - 1),
                 INGOT_E_TOO_LARGE);
    CHECK_EQ_INT(object_store_parquet_path("", "cpu", "p", uuid, out, sizeof out),
                 INGOT_E_INVALID);
    CHECK_EQ_INT(object_store_parquet_path("db", "cpu", "", uuid, out, sizeof out),
                 INGOT_E_INVALID);
    /* a 255-byte UTF-8 table name: 765 bytes encoded */
    char name[256], big[1024];
    for (int i = 0; i < 255; i++)
        name[i] = (char)(0x80 + i % 64);
    name[255] = '\0';
    CHECK_EQ_INT(object_store_parquet_path("db", name, "p", uuid, big, sizeof big), 0);
    CHECK_EQ_INT(strlen(big), 3 + 765 + 1 + 2 + 36 + 8);
    CHECK_EQ_INT(object_store_path_check(big, strlen(big)), 0);
}

/* ---- the file store ---- */

static void open_store(void)
{
    char err[256] = "";
    int rc = object_store_file_open(root_dir, &file_store, err, sizeof err);
    if (rc) fprintf(stderr, "  open: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    scenario_store = &file_store;
}

static void test_open_creates_root(void)
{
    /* root_dir is two levels below tmp_dir: both are created */
    CHECK(!path_exists(root_dir));
    open_store();
    struct stat st;
    CHECK(stat(root_dir, &st) == 0 && S_ISDIR(st.st_mode));
}

static void test_open_errors(void)
{
    char path[128], err[256] = "";
    object_store s;
    snprintf(path, sizeof path, "%s/plain-file", tmp_dir);
    write_file(path, "x");
    CHECK(object_store_file_open(path, &s, err, sizeof err) < 0);
    CHECK(strstr(err, "plain-file") != NULL);
    err[0] = '\0';
    CHECK_EQ_INT(object_store_file_open("", &s, err, sizeof err), INGOT_E_INVALID);
    CHECK(err[0] != '\0');
    unlink(path);
}

/* Count regular files under dir (recursively), and check each one resolves under root_real. */
static size_t count_files_under(const char *dir, const char *root_real, int *outside)
{
    size_t count = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char sub[PATH_MAX];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= sizeof sub) continue;
        struct stat st;
        if (lstat(sub, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            count += count_files_under(sub, root_real, outside);
        } else {
            char real[PATH_MAX];
            if (!realpath(sub, real) || strncmp(real, root_real, strlen(root_real)) != 0 ||
                real[strlen(root_real)] != '/')
                (*outside)++;
            count++;
        }
    }
    closedir(d);
    return count;
}

static void test_hostile_names_stay_under_root(void)
{
    char root_real[PATH_MAX];
    CHECK(realpath(root_dir, root_real) != NULL);
    snprintf(scenario_base, sizeof scenario_base, "hostile-run/");
    char *paths[16] = {0};
    size_t n = scenario_put_hostile(paths);
    for (size_t i = 0; i < n; i++) {
        if (!paths[i]) continue;
        char full[PATH_MAX], real[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", root_dir, paths[i]);
        if (strlen(paths[i]) < 600) { /* no long segment: the object is the file root/path */
            CHECK(realpath(full, real) != NULL);
            CHECK(strncmp(real, root_real, strlen(root_real)) == 0 &&
                  real[strlen(root_real)] == '/');
            CHECK(strcmp(real + strlen(root_real) + 1, paths[i]) == 0);
        }
        free(paths[i]);
    }
    /* every file under the root resolves inside it; nothing appeared next to the root */
    char run_dir[PATH_MAX];
    snprintf(run_dir, sizeof run_dir, "%s/hostile-run", root_dir);
    int outside = 0;
    CHECK_EQ_INT(count_files_under(run_dir, root_real, &outside), n);
    CHECK_EQ_INT(outside, 0);
    DIR *d = opendir(tmp_dir);
    int entries = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) entries++;
    if (d) closedir(d);
    CHECK_EQ_INT(entries, 1); /* "store", the parent of the root */
    CHECK(!path_exists("/etc/2024-01-01"));
}

static void test_long_segment_on_disk(void)
{
    /* a 700-byte segment: two "<240>~" directories and a 220-byte rest */
    char seg[701], path[800];
    for (int i = 0; i < 700; i++)
        seg[i] = (char)('a' + i % 26);
    seg[700] = '\0';
    snprintf(path, sizeof path, "long/%s/x.parquet", seg);
    CHECK_EQ_INT(file_store.put(file_store.self, path, "data", 4), 0);
    char disk[1024];
    snprintf(disk, sizeof disk, "%s/long/%.240s~/%.240s~/%s/x.parquet", root_dir, seg, seg + 240,
             seg + 480);
    CHECK(path_exists(disk));
    scenario_listing l = {0};
    CHECK_EQ_INT(file_store.list(file_store.self, "long/", scenario_list_cb, &l), 0);
    CHECK_EQ_INT(l.count, 1);
    if (l.count == 1) CHECK_EQ_STR(l.paths[0], path);
    scenario_listing_free(&l);
    /* a prefix ending inside the long segment still finds it */
    char prefix[600];
    snprintf(prefix, sizeof prefix, "long/%.500s", seg);
    CHECK_EQ_INT(file_store.list(file_store.self, prefix, scenario_list_cb, &l), 0);
    CHECK_EQ_INT(l.count, 1);
    scenario_listing_free(&l);
    void *got = NULL;
    size_t len = 0;
    CHECK_EQ_INT(file_store.get(file_store.self, path, &got, &len), 0);
    CHECK(len == 4 && memcmp(got, "data", 4) == 0);
    free(got);
    /* exactly 255 bytes: one plain file name */
    snprintf(path, sizeof path, "long/%.255s", seg);
    CHECK_EQ_INT(file_store.put(file_store.self, path, "y", 1), 0);
    snprintf(disk, sizeof disk, "%s/%s", root_dir, path);
    CHECK(path_exists(disk));
    CHECK_EQ_INT(file_store.remove(file_store.self, path), 0);
    CHECK(!path_exists(disk));
}

static void test_temp_files_and_recovery(void)
{
    CHECK_EQ_INT(file_store.put(file_store.self, "rec/t/p/keep.parquet", "keep", 4), 0);
    char p[PATH_MAX];
    /* leftovers of a crash, a stray directory and files that are no object path */
    snprintf(p, sizeof p, "%s/rec/t/p/.tmp~00112233deadbeef", root_dir);
    write_file(p, "half");
    snprintf(p, sizeof p, "%s/.tmp~0000000000000001", root_dir);
    write_file(p, "half");
    snprintf(p, sizeof p, "%s/rec/lost+found", root_dir);
    CHECK_EQ_INT(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/rec/lost+found/f", root_dir);
    write_file(p, "junk");
    snprintf(p, sizeof p, "%s/rec/t/junk file", root_dir);
    write_file(p, "junk");

    scenario_listing l = {0};
    CHECK_EQ_INT(file_store.list(file_store.self, "", scenario_list_cb, &l), 0);
    for (size_t i = 0; i < l.count; i++) {
        CHECK(strstr(l.paths[i], "tmp~") == NULL);
        CHECK(strstr(l.paths[i], "junk") == NULL);
        CHECK(strstr(l.paths[i], "lost") == NULL);
    }
    scenario_listing_free(&l);
    CHECK_EQ_INT(file_store.list(file_store.self, "rec/", scenario_list_cb, &l), 0);
    CHECK_EQ_INT(l.count, 1);
    scenario_listing_free(&l);

    /* reopen: the temporaries are gone, the object and the strays stay */
    file_store.close(file_store.self);
    open_store();
    snprintf(p, sizeof p, "%s/rec/t/p/.tmp~00112233deadbeef", root_dir);
    CHECK(!path_exists(p));
    snprintf(p, sizeof p, "%s/.tmp~0000000000000001", root_dir);
    CHECK(!path_exists(p));
    snprintf(p, sizeof p, "%s/rec/t/junk file", root_dir);
    CHECK(path_exists(p));
    void *got = NULL;
    size_t len = 0;
    CHECK_EQ_INT(file_store.get(file_store.self, "rec/t/p/keep.parquet", &got, &len), 0);
    CHECK(len == 4 && got && memcmp(got, "keep", 4) == 0);
    free(got);
    /* a name like a temporary file, as an object, is encoded and so never deleted */
    char seg[32];
    object_store_path_segment(".tmp~x", 6, seg);
    CHECK_EQ_STR(seg, ".tmp%7Ex");
}

static void test_put_leaves_no_temp(void)
{
    CHECK_EQ_INT(file_store.put(file_store.self, "clean/a.parquet", "abc", 3), 0);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/clean", root_dir);
    DIR *d = opendir(p);
    CHECK(d != NULL);
    int entries = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            entries++;
            CHECK_EQ_STR(de->d_name, "a.parquet");
        }
    if (d) closedir(d);
    CHECK_EQ_INT(entries, 1);
}

static void test_file_and_directory_clashes(void)
{
    CHECK_EQ_INT(file_store.put(file_store.self, "clash/f", "x", 1), 0);
    /* "clash/f" is an object: nothing can live below it */
    CHECK(file_store.put(file_store.self, "clash/f/g", "y", 1) < 0);
    void *got = NULL;
    size_t len = 0;
    CHECK_EQ_INT(file_store.get(file_store.self, "clash/f/g", &got, &len), INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(file_store.remove(file_store.self, "clash/f/g"), 0);
    /* "clash" is a directory on the way to objects, not an object */
    CHECK_EQ_INT(file_store.get(file_store.self, "clash", &got, &len), INGOT_E_NOT_FOUND);
    CHECK_EQ_INT(file_store.remove(file_store.self, "clash"), 0);
    CHECK(file_store.put(file_store.self, "clash", "z", 1) < 0);
    CHECK_EQ_INT(file_store.get(file_store.self, "clash/f", &got, &len), 0);
    CHECK(len == 1 && got && memcmp(got, "x", 1) == 0);
    free(got);
}

static void test_survives_reopen(void)
{
    unsigned char *data = scenario_pattern(42, 123457);
    CHECK_EQ_INT(file_store.put(file_store.self, "reopen/x.parquet", data, 123457), 0);
    file_store.close(file_store.self);
    open_store();
    void *got = NULL;
    size_t len = 0;
    CHECK_EQ_INT(file_store.get(file_store.self, "reopen/x.parquet", &got, &len), 0);
    CHECK(len == 123457 && got && memcmp(got, data, len) == 0);
    free(got);
    free(data);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char sub[PATH_MAX];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= sizeof sub) continue;
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
            remove_tree(sub);
        } else {
            unlink(sub);
        }
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ingot-test-store-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(root_dir, sizeof root_dir, "%s/store/objects", tmp_dir);
    TEST_RUN(test_path_segment);
    TEST_RUN(test_path_check);
    TEST_RUN(test_parquet_path);
    TEST_RUN(test_open_creates_root);
    TEST_RUN(test_open_errors);
    snprintf(scenario_base, sizeof scenario_base, "run/");
    store_scenarios_run_all();
    TEST_RUN(test_hostile_names_stay_under_root);
    TEST_RUN(test_long_segment_on_disk);
    TEST_RUN(test_temp_files_and_recovery);
    TEST_RUN(test_put_leaves_no_temp);
    TEST_RUN(test_file_and_directory_clashes);
    TEST_RUN(test_survives_reopen);
    file_store.close(file_store.self);
    remove_tree(tmp_dir);
    TEST_MAIN_END();
}
