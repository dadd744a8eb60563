/*
 * wal_test_util.h: helpers shared by the WAL's unit tests (test_wal.c, test_wal_sink.c): fresh
 * temporary directories, replay into a collector of entries, and inspect into a string.
 */
#ifndef INGOT_WAL_TEST_UTIL_H
#define INGOT_WAL_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal/wal.h"

static inline char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/ingot_wal_test_XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void rm_rf(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

typedef struct collect {
    int count;
    char entries[8192][64];
    uint64_t seg_of[8192];
    uint64_t seq[8192];
    int segment_ends;
    uint64_t ended[64];
} collect;

static inline int collect_entry(void *arg, uint64_t segment_id, uint64_t sequence, const uint8_t *payload,
                         size_t len)
{
    collect *c = arg;
    if (c->count < 8192) {
        size_t n = len < 63 ? len : 63;
        memcpy(c->entries[c->count], payload, n);
        c->entries[c->count][n] = '\0';
        c->seg_of[c->count] = segment_id;
        c->seq[c->count] = sequence;
    }
    c->count++;
    return 0;
}

static inline int collect_end(void *arg, uint64_t segment_id, const char *path)
{
    collect *c = arg;
    (void)path;
    if (c->segment_ends < 64) c->ended[c->segment_ends] = segment_id;
    c->segment_ends++;
    return 0;
}

static inline int replay_into(const char *dir, bool skip, collect *c, wal_replay_stats *st, char *err,
                       size_t errlen)
{
    memset(c, 0, sizeof *c);
    wal_replay_callbacks cb = {.on_entry = collect_entry, .on_segment_end = collect_end, .arg = c};
    return wal_replay(dir, skip, &cb, st, err, errlen);
}

static inline char *inspect_text(const char *dir, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    *rc = wal_inspect(dir, f);
    fclose(f);
    return buf;
}

#endif
