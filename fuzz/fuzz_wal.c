/*
 * fuzz_wal.c: libFuzzer target for the WAL reader (wal_replay, wal_inspect, and through them the
 * frame reader and dml_op_decode).
 *
 * Input: byte 0 is a mode, the rest is the content of segment file 1.wal in a fresh temp dir.
 *   mode bit 0: prepend a valid header for segment 1 (so the fuzzer reaches the entries quickly)
 *   mode bit 1: add a header-only 2.wal, so 1.wal is not the last segment (no torn tails)
 *   mode bit 2: replay with skip_corrupt
 * Each run: inspect (must change nothing), replay (decoding every payload), then a second
 * replay, which must find no torn tail and, unless a segment was moved aside, the same entries:
 * a truncation that leaves a still-torn file is a bug. Every replay must hand over strictly
 * increasing sequences, and its stats must agree with what it handed over (first and max
 * sequence, entry count). Then the temp dir is removed.
 * The temp dirs go under $TMPDIR (default /tmp; TMPDIR=/dev/shm runs several times faster).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dml/dml.h"
#include "util/log.h"
#include "wal/wal.h"
#include "wal/wal_internal.h"

typedef struct fuzz_seen {
    uint64_t entries;
    uint64_t first_sequence;
    uint64_t last_sequence;
} fuzz_seen;

static int fuzz_on_entry(void *arg, uint64_t segment_id, uint64_t sequence, const uint8_t *payload,
                         size_t len)
{
    (void)segment_id;
    fuzz_seen *seen = arg;
    if (sequence <= seen->last_sequence) __builtin_trap(); /* replay must check the order */
    if (seen->entries == 0) seen->first_sequence = sequence;
    seen->last_sequence = sequence;
    dml_decoded d;
    char err[160];
    if (dml_op_decode(payload, len, &d, err, sizeof err) == 0) {
        /* touch the decoded ranges so ASan checks their bounds */
        volatile uint8_t sink = 0;
        if (d.namespace_len) sink ^= (uint8_t)d.namespace_name[d.namespace_len - 1];
        if (d.body_len) sink ^= (uint8_t)d.body[d.body_len - 1];
        (void)sink;
    }
    seen->entries++;
    return 0;
}

static void fuzz_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[1024];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            fuzz_rm_dir(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void fuzz_write(const char *path, const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (alen) fwrite(a, 1, alen, f);
    if (blen) fwrite(b, 1, blen, f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    const char *base = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ingot_fuzz_wal_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) return 0;
    char path[600];
    uint8_t hdr[WAL_SEGMENT_HEADER_BYTES];
    wal_segment_header_encode(1, hdr);
    wal_segment_path(path, sizeof path, dir, 1);
    fuzz_write(path, hdr, (mode & 1) ? sizeof hdr : 0, data, size);
    if (mode & 2) {
        wal_segment_header_encode(2, hdr);
        wal_segment_path(path, sizeof path, dir, 2);
        fuzz_write(path, hdr, sizeof hdr, NULL, 0);
    }
    bool skip = (mode & 4) != 0;

    FILE *out = fopen("/dev/null", "w");
    if (out) {
        int rc = wal_inspect(dir, out);
        if (rc < 0 || rc > 1) __builtin_trap();
        fclose(out);
    }
    wal_segment_path(path, sizeof path, dir, 1);
    struct stat st;
    if (stat(path, &st) != 0 || (uint64_t)st.st_size != ((mode & 1) ? 32 : 0) + size)
        __builtin_trap(); /* inspect changed the file */

    fuzz_seen n1 = {0}, n2 = {0};
    wal_replay_callbacks cb = {.on_entry = fuzz_on_entry, .arg = &n1};
    wal_replay_stats s1, s2;
    char err[512];
    int rc = wal_replay(dir, skip, &cb, &s1, err, sizeof err);
    if (rc == 0) {
        cb.arg = &n2;
        if (wal_replay(dir, false, &cb, &s2, err, sizeof err) != 0) __builtin_trap();
        if (s2.torn_tails != 0) __builtin_trap();
        if (s1.corrupt_skipped == 0 &&
            (n1.entries != n2.entries || n1.last_sequence != n2.last_sequence))
            __builtin_trap();
        if (n1.entries != s1.entries || n2.entries != s2.entries) __builtin_trap();
        if (n1.first_sequence != s1.first_sequence || n1.last_sequence != s1.max_sequence)
            __builtin_trap();
    } else if (rc != INGOT_E_CORRUPT || strstr(err, "offset") == NULL) {
        __builtin_trap();
    }
    fuzz_rm_dir(dir);
    return 0;
}
