/*
 * test_wal.c: unit tests of the WAL (framing, group commit, rotation, sticky failure, replay and
 * every kind of damage, inspect, segment life cycle), the op payload codec and CRC32C (the
 * WalSink has test_wal_sink.c).
 * Damaged segments are built byte by byte with seg_* helpers, so each test states exactly which
 * bytes are on disk. Every test works in its own fresh directory under $TMPDIR (or /tmp).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dml/dml.h"
#include "test.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/sysio.h"
#include "wal/wal.h"
#include "wal/wal_internal.h"
#include "wal_test_util.h"

/* ---- helpers ---- */



static long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (long)st.st_size;
}

static char *seg_path(const char *dir, uint64_t id)
{
    static char buf[1024];
    wal_segment_path(buf, sizeof buf, dir, id);
    return buf;
}

/* A growable byte buffer for building segment files by hand. */
typedef struct seg_buf {
    uint8_t *p;
    size_t len, cap;
} seg_buf;

static void seg_raw(seg_buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void seg_header(seg_buf *b, uint64_t id)
{
    uint8_t h[WAL_SEGMENT_HEADER_BYTES];
    wal_segment_header_encode(id, h);
    seg_raw(b, h, sizeof h);
}

/* One version-2 entry: frame (length, CRC32C(payload || seq), seq) and payload. */
static void seg_entry(seg_buf *b, uint64_t seq, const void *payload, size_t len)
{
    uint8_t f[WAL_ENTRY_HEADER_BYTES];
    wal_put_u32(f, (uint32_t)len);
    wal_put_u64(f + 8, seq);
    wal_put_u32(f + 4, crc32c_update(crc32c(payload, len), f + 8, 8));
    seg_raw(b, f, sizeof f);
    seg_raw(b, payload, len);
}

/* Entry "e<n>" padded to a length that depends on n. */
static size_t seg_text(char *buf, int n)
{
    int len = snprintf(buf, 64, "e%d", n);
    while (len < 10 + n % 17)
        buf[len++] = (char)('a' + n % 26);
    return (size_t)len;
}

static void seg_write(const char *path, const seg_buf *b)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (b->len) fwrite(b->p, 1, b->len, f);
    fclose(f);
}

/* A good segment with entries first..first+n-1 (seg_text), entry i with sequence i + 1. */
static void seg_good(seg_buf *b, uint64_t id, int first, int n)
{
    seg_header(b, id);
    for (int i = first; i < first + n; i++) {
        char t[64];
        size_t len = seg_text(t, i);
        seg_entry(b, (uint64_t)i + 1, t, len);
    }
}

/* Replay collector. */




static bool entry_is(const collect *c, int i, int n)
{
    char t[64];
    size_t len = seg_text(t, n);
    t[len] = '\0';
    return i < c->count && strcmp(c->entries[i], t) == 0;
}


/* ---- CRC32C ---- */

static void test_crc32c_vectors(void)
{
    CHECK_EQ_INT(crc32c("123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(crc32c_update_portable(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(crc32c("", 0), 0);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    CHECK_EQ_INT(crc32c(zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    CHECK_EQ_INT(crc32c(ones, 32), 0x62A8AB43u);
    uint8_t inc[32];
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    CHECK_EQ_INT(crc32c(inc, 32), 0x46DD794Eu);
    /* incremental == one shot, hardware == portable, any alignment and length */
    uint8_t buf[1100];
    for (int i = 0; i < 1100; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (int off = 0; off < 9; off++) {
        for (int len = 0; len < 1090; len += 37) {
            uint32_t whole = crc32c(buf + off, (size_t)len);
            CHECK_EQ_INT(whole, crc32c_update_portable(0, buf + off, (size_t)len));
            int cut = len / 3;
            uint32_t part =
                crc32c_update(crc32c(buf + off, (size_t)cut), buf + off + cut, (size_t)(len - cut));
            CHECK_EQ_INT(whole, part);
        }
    }
    /* lengths around the 3-lane blocks of the hardware path (3 x 256 and 3 x 8192 bytes) */
    size_t big_len = 3 * 8192 * 2 + 3 * 256 * 3 + 64;
    uint8_t *big = malloc(big_len);
    CHECK(big != NULL);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    const size_t lens[] = {767, 768, 769, 775, 1536, 24575, 24576, 24577, 24576 + 768 + 5,
                           49152, big_len - 8};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        for (int off = 0; off < 8; off += 3) {
            uint32_t whole = crc32c(big + off, lens[k]);
            CHECK_EQ_INT(whole, crc32c_update_portable(0, big + off, lens[k]));
            size_t cut = lens[k] / 2 + 1;
            CHECK_EQ_INT(whole, crc32c_update(crc32c(big + off, cut), big + off + cut, lens[k] - cut));
        }
    }
    free(big);
    printf("  crc32c: %s\n", crc32c_hardware() ? "sse4.2" : "portable");
}

/* ---- codec ---- */

static void test_codec_round_trip(void)
{
    dml_op op = {.sequence = 0x0102030405060708ull, /* not encoded: the WAL frame has it */
                 .namespace_name = "db_one",
                 .namespace_len = 6,
                 .body = "cpu,host=a usage=1 1\n",
                 .body_len = 21,
                 .precision = LP_PRECISION_MS,
                 .default_time_ns = -1234567890123ll};
    uint8_t hdr[DML_PAYLOAD_HEADER_BYTES];
    struct iovec iov[3];
    dml_op_encode(&op, hdr, iov);
    CHECK_EQ_INT(hdr[0], 1); /* line protocol */
    CHECK_EQ_INT(hdr[1], LP_PRECISION_MS);
    CHECK_EQ_INT(hdr[2], 6);
    CHECK_EQ_INT(wal_get_u32(hdr + 4), 0);                       /* reserved */
    CHECK(wal_get_u64(hdr + 8) == (uint64_t)op.default_time_ns); /* little-endian, at 8 */
    uint8_t payload[256];
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(payload + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    CHECK_EQ_INT(len, 16 + 6 + 21);
    dml_decoded d;
    char err[128];
    CHECK_EQ_INT(dml_op_decode(payload, len, &d, err, sizeof err), 0);
    CHECK_EQ_INT(d.precision, LP_PRECISION_MS);
    CHECK(d.default_time_ns == op.default_time_ns);
    CHECK_EQ_INT(d.namespace_len, 6);
    CHECK(memcmp(d.namespace_name, "db_one", 6) == 0);
    CHECK_EQ_INT(d.body_len, 21);
    CHECK(memcmp(d.body, op.body, 21) == 0);
    CHECK_EQ_INT(d.body_kind, DML_BODY_LINE_PROTOCOL);
    op.body_kind = DML_BODY_DATABASE_BATCH;
    dml_op_encode(&op, hdr, iov);
    CHECK_EQ_INT(hdr[0], 2);
    /* empty text is fine */
    CHECK_EQ_INT(dml_op_decode(payload, 22, &d, err, sizeof err), 0);
    CHECK_EQ_INT(d.body_len, 0);
}

static void test_codec_decode_errors(void)
{
    dml_op op = {.namespace_name = "ns", .namespace_len = 2, .body = "m f=1", .body_len = 5};
    uint8_t hdr[DML_PAYLOAD_HEADER_BYTES], p[64];
    struct iovec iov[3];
    dml_op_encode(&op, hdr, iov);
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(p + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    dml_decoded d;
    char err[160];
    uint8_t q[64];
    CHECK_EQ_INT(dml_op_decode(p, 15, &d, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, "shorter") != NULL);
    memcpy(q, p, len);
    q[0] = 3;
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, "kind") != NULL);
    q[0] = 0;
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), INGOT_E_CORRUPT);
    /* a DatabaseBatch body takes the four fixed precisions only (no auto) */
    q[0] = 2;
    q[1] = LP_PRECISION_AUTO;
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, "precision") != NULL);
    q[1] = LP_PRECISION_S;
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), 0);
    CHECK_EQ_INT(d.body_kind, DML_BODY_DATABASE_BATCH);
    memcpy(q, p, len);
    q[1] = 5;
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, "precision") != NULL);
    memcpy(q, p, len);
    q[5] = 1;
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, "reserved") != NULL);
    memcpy(q, p, len);
    q[2] = 8; /* namespace of 8 bytes, only 7 after the header */
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, "namespace length") != NULL);
    q[2] = 7; /* exactly fits: no text */
    CHECK_EQ_INT(dml_op_decode(q, len, &d, err, sizeof err), 0);
    CHECK_EQ_INT(d.body_len, 0);
}

/* ---- writer ---- */

/* What on_segment_closed reported. */
typedef struct closed_log {
    pthread_mutex_t mu;
    int n;
    uint64_t id[256], first[256], last[256], entries[256];
    pthread_t thread[256];
} closed_log;

static void closed_cb(void *arg, uint64_t segment_id, uint64_t first_sequence,
                      uint64_t last_sequence, uint64_t entries)
{
    closed_log *l = arg;
    pthread_mutex_lock(&l->mu);
    if (l->n < 256) {
        l->id[l->n] = segment_id;
        l->first[l->n] = first_sequence;
        l->last[l->n] = last_sequence;
        l->entries[l->n] = entries;
        l->thread[l->n] = pthread_self();
    }
    l->n++;
    pthread_mutex_unlock(&l->mu);
}

static int closed_count(closed_log *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static void test_framing_round_trip(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 5, 0, NULL, NULL, &w, err, sizeof err), INGOT_E_INVALID);
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 5, 7, NULL, NULL, &w, err, sizeof err), 0);
    if (!w) goto out;
    wal_stats st;
    wal_get_stats(w, &st);
    CHECK_EQ_INT(st.next_sequence, 7);
    uint64_t seq = 99;
    struct iovec one = {"xyz", 3};
    CHECK_EQ_INT(wal_append(w, &one, 1, WAL_WAIT_WRITTEN, &seq), 0);
    CHECK_EQ_INT(seq, 7);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
    CHECK_EQ_INT(wal_append(w, iov, 3, WAL_WAIT_SYNCED, &seq), 0); /* synced: so is "xyz" */
    CHECK_EQ_INT(seq, 8);
    CHECK_EQ_INT(wal_append(w, iov + 1, 1, WAL_WAIT_SYNCED, &seq), INGOT_E_INVALID);
    CHECK_EQ_INT(seq, 0); /* refused before queueing: no sequence spent */
    struct iovec huge = {"x", (size_t)WAL_MAX_ENTRY_BYTES + 1};
    seq = 99;
    CHECK_EQ_INT(wal_append(w, &huge, 1, WAL_WAIT_SYNCED, &seq), INGOT_E_TOO_LARGE);
    CHECK_EQ_INT(seq, 0);
    wal_get_stats(w, &st);
    CHECK_EQ_INT(st.entries, 2);
    CHECK_EQ_INT(st.bytes, 16 + 6 + 16 + 3);
    CHECK_EQ_INT(st.segment_id, 5);
    CHECK_EQ_INT(st.next_sequence, 9);
    CHECK(st.fsync_count >= 1 && st.batches == st.fsync_count);
    uint64_t bucket_sum = 0;
    for (int i = 0; i < WAL_FSYNC_BUCKETS; i++)
        bucket_sum += st.fsync_buckets[i];
    CHECK(bucket_sum == st.fsync_count);
    CHECK(!st.failed);
    wal_close(w);

    /* the bytes on disk, exactly */
    FILE *f = fopen(seg_path(dir, 5), "rb");
    uint8_t b[128];
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    CHECK_EQ_INT(n, 32 + 19 + 22);
    CHECK(memcmp(b, "INGOTWAL", 8) == 0);
    CHECK_EQ_INT(wal_get_u32(b + 8), 2);
    CHECK_EQ_INT(wal_get_u64(b + 16), 5);
    CHECK_EQ_INT(wal_get_u32(b + 24), crc32c(b, 24));
    uint8_t seq_le[8];
    CHECK_EQ_INT(wal_get_u32(b + 32), 3);
    wal_put_u64(seq_le, 7);
    CHECK_EQ_INT(wal_get_u32(b + 36), crc32c_update(crc32c("xyz", 3), seq_le, 8));
    CHECK_EQ_INT(wal_get_u64(b + 40), 7);
    CHECK(memcmp(b + 48, "xyz", 3) == 0);
    CHECK_EQ_INT(wal_get_u32(b + 51), 6);
    wal_put_u64(seq_le, 8);
    CHECK_EQ_INT(wal_get_u32(b + 55), crc32c("abcdef\x08\0\0\0\0\0\0\0", 14));
    CHECK_EQ_INT(wal_get_u64(b + 59), 8);
    CHECK(memcmp(b + 67, "abcdef", 6) == 0);

    /* a second open on the same first id refuses to clobber the segment */
    wal *w2 = NULL;
    CHECK(wal_open(dir, 1 << 20, 5, 9, NULL, NULL, &w2, err, sizeof err) == -EEXIST);
    CHECK(w2 == NULL);
    CHECK(strstr(err, "5.wal") != NULL);

    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 2);
    CHECK_EQ_STR(c.entries[0], "xyz");
    CHECK_EQ_STR(c.entries[1], "abcdef");
    CHECK_EQ_INT(c.seq[0], 7);
    CHECK_EQ_INT(c.seq[1], 8);
    CHECK_EQ_INT(rs.first_sequence, 7);
    CHECK_EQ_INT(rs.max_sequence, 8);
    CHECK_EQ_INT(rs.max_segment_id, 5);
    CHECK_EQ_INT(rs.segments, 1);
    CHECK_EQ_INT(rs.torn_tails, 0);
    CHECK_EQ_INT(c.segment_ends, 1);
out:
    rm_rf(dir);
    free(dir);
}

/*
 * Size rotation and wal_rotate() both report the closed segment: ids consecutive, ranges
 * contiguous and matching what replay finds in each file; an empty segment reports entries 0 and
 * first == last + 1; wal_rotate() returns after its callback ran; wal_close() reports nothing.
 */
static void test_rotation_many_entries(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    static closed_log cl;
    memset(&cl, 0, sizeof cl);
    pthread_mutex_init(&cl.mu, NULL);
    CHECK_EQ_INT(wal_open(dir, 2048, 1, 1000, closed_cb, &cl, &w, err, sizeof err), 0);
    if (!w) goto out;
    uint64_t empty_id = 0;
    for (int i = 0; i < 600; i++) {
        char t[64];
        size_t len = seg_text(t, i);
        struct iovec iov = {t, len};
        uint64_t seq = 0;
        CHECK_EQ_INT(wal_append(w, &iov, 1, WAL_WAIT_SYNCED, &seq), 0);
        CHECK_EQ_INT(seq, 1000 + (uint64_t)i);
        if (i == 300) {
            wal_stats before, after;
            wal_get_stats(w, &before);
            int n0 = closed_count(&cl);
            CHECK_EQ_INT(wal_rotate(w), 0);
            CHECK_EQ_INT(closed_count(&cl), n0 + 1); /* the callback ran before the return */
            CHECK_EQ_INT(cl.id[n0], before.segment_id);
            CHECK_EQ_INT(cl.last[n0], 1300);
            CHECK(cl.entries[n0] > 0);
            wal_get_stats(w, &after);
            CHECK_EQ_INT(after.segment_id, before.segment_id + 1);
            CHECK_EQ_INT(after.rotations, before.rotations + 1);
            /* rotating again closes an empty segment */
            empty_id = after.segment_id;
            CHECK_EQ_INT(wal_rotate(w), 0);
            CHECK_EQ_INT(closed_count(&cl), n0 + 2);
            CHECK_EQ_INT(cl.id[n0 + 1], empty_id);
            CHECK_EQ_INT(cl.entries[n0 + 1], 0);
            CHECK_EQ_INT(cl.first[n0 + 1], 1301);
            CHECK_EQ_INT(cl.last[n0 + 1], 1300);
        }
    }
    wal_stats st;
    wal_get_stats(w, &st);
    CHECK(st.rotations > 5);
    CHECK_EQ_INT(st.next_sequence, 1600);
    uint64_t last = st.segment_id;
    int closed = closed_count(&cl);
    wal_close(w);
    CHECK_EQ_INT(closed_count(&cl), closed); /* wal_close reports nothing */
    CHECK_EQ_INT(closed, st.rotations);
    CHECK_EQ_INT(closed, last - 1);
    uint64_t covered = 0;
    for (int k = 0; k < closed && k < 256; k++) {
        CHECK_EQ_INT(cl.id[k], (uint64_t)k + 1);
        CHECK(pthread_equal(cl.thread[k], pthread_self()) == 0); /* the writer thread */
        CHECK_EQ_INT(cl.last[k] + 1 - cl.first[k], cl.entries[k]);
        CHECK_EQ_INT(cl.first[k], k == 0 ? 1000 : cl.last[k - 1] + 1);
        covered += cl.entries[k];
    }
    for (uint64_t id = 1; id <= last; id++) {
        long sz = file_size(seg_path(dir, id));
        CHECK(sz >= 32);
        if (id < last) CHECK(sz <= 2048 + 16 + 64); /* rotated right after crossing the limit */
    }
    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 600);
    for (int i = 0; i < 600; i++) {
        CHECK(entry_is(&c, i, i));
        CHECK_EQ_INT(c.seq[i], 1000 + (uint64_t)i);
        /* the segment replay found it in is the one whose reported range holds it */
        uint64_t id = c.seg_of[i];
        if (id < last && id >= 1 && id <= 256)
            CHECK(c.seq[i] >= cl.first[id - 1] && c.seq[i] <= cl.last[id - 1]);
        else
            CHECK(id == last && c.seq[i] > covered + 999);
    }
    for (int i = 1; i < 600; i++)
        CHECK(c.seg_of[i] >= c.seg_of[i - 1]);
    CHECK_EQ_INT(rs.segments, last);
    CHECK_EQ_INT(rs.max_segment_id, last);
    CHECK_EQ_INT(rs.first_sequence, 1000);
    CHECK_EQ_INT(rs.max_sequence, 1599);
    CHECK_EQ_INT(c.segment_ends, last);
    CHECK_EQ_INT(file_size(seg_path(dir, empty_id)), 32);
out:
    pthread_mutex_destroy(&cl.mu);
    rm_rf(dir);
    free(dir);
}

/* ---- group commit ---- */

typedef struct gc_arg {
    wal *w;
    int thread;
    int failures;
    int out_of_order; /* a later append of this thread got a smaller sequence */
    uint64_t seqs[500];
} gc_arg;

#define GC_THREADS 8
#define GC_PER_THREAD 500

static void *gc_thread(void *p)
{
    gc_arg *a = p;
    for (int i = 0; i < GC_PER_THREAD; i++) {
        char t[32];
        int len = snprintf(t, sizeof t, "t%d-%d", a->thread, i);
        struct iovec iov[2] = {{t, 2}, {t + 2, (size_t)len - 2}};
        enum wal_wait wait = (a->thread % 4 == 3) ? WAL_WAIT_WRITTEN : WAL_WAIT_SYNCED;
        if (wal_append(a->w, iov, 2, wait, &a->seqs[i]) != 0) a->failures++;
        if (i > 0 && a->seqs[i] <= a->seqs[i - 1]) a->out_of_order++;
    }
    return NULL;
}

/*
 * 8 concurrent appenders: group commit happens, every entry is there once, and the sequences are
 * 1..N in WAL order: replay sees them contiguous and strictly increasing, each entry with the
 * sequence its appender was told.
 */
static void test_group_commit_concurrent(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    static closed_log cl;
    memset(&cl, 0, sizeof cl);
    pthread_mutex_init(&cl.mu, NULL);
    CHECK_EQ_INT(wal_open(dir, 16384, 1, 1, closed_cb, &cl, &w, err, sizeof err), 0);
    if (!w) goto out;
    pthread_t th[GC_THREADS];
    static gc_arg args[GC_THREADS];
    for (int t = 0; t < GC_THREADS; t++) {
        args[t] = (gc_arg){.w = w, .thread = t};
        pthread_create(&th[t], NULL, gc_thread, &args[t]);
    }
    for (int t = 0; t < GC_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < GC_THREADS; t++) {
        CHECK_EQ_INT(args[t].failures, 0);
        CHECK_EQ_INT(args[t].out_of_order, 0);
    }
    wal_stats st;
    wal_get_stats(w, &st);
    wal_close(w);
    CHECK_EQ_INT(st.entries, GC_THREADS * GC_PER_THREAD);
    CHECK_EQ_INT(st.next_sequence, GC_THREADS * GC_PER_THREAD + 1);
    CHECK(st.batches < st.entries); /* grouping happened */
    CHECK(st.rotations > 0);
    CHECK_EQ_INT(closed_count(&cl), st.rotations);
    printf("  group commit: %llu entries in %llu batches, %llu rotations\n",
           (unsigned long long)st.entries, (unsigned long long)st.batches,
           (unsigned long long)st.rotations);
    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, GC_THREADS * GC_PER_THREAD);
    CHECK_EQ_INT(rs.first_sequence, 1);
    CHECK_EQ_INT(rs.max_sequence, GC_THREADS * GC_PER_THREAD);
    static unsigned char seen[GC_THREADS][GC_PER_THREAD];
    memset(seen, 0, sizeof seen);
    int next[GC_THREADS] = {0};
    bool in_order = true, contiguous = true, told = true, in_reported_segment = true;
    for (int i = 0; i < c.count && i < 8192; i++) {
        int t, k;
        if (c.seq[i] != (uint64_t)i + 1) contiguous = false;
        if (sscanf(c.entries[i], "t%d-%d", &t, &k) != 2 || t < 0 || t >= GC_THREADS || k < 0 ||
            k >= GC_PER_THREAD) {
            CHECK(!"bad entry");
            continue;
        }
        seen[t][k]++;
        if (k != next[t]) in_order = false; /* one thread's appends are sequential */
        next[t] = k + 1;
        if (args[t].seqs[k] != c.seq[i]) told = false;
        uint64_t id = c.seg_of[i];
        if (id <= (uint64_t)cl.n && id <= 256 &&
            (c.seq[i] < cl.first[id - 1] || c.seq[i] > cl.last[id - 1]))
            in_reported_segment = false;
    }
    CHECK(in_order);
    CHECK(contiguous);
    CHECK(told);
    CHECK(in_reported_segment);
    for (int t = 0; t < GC_THREADS; t++)
        for (int k = 0; k < GC_PER_THREAD; k++)
            CHECK(seen[t][k] == 1);
out:
    pthread_mutex_destroy(&cl.mu);
    rm_rf(dir);
    free(dir);
}

/* ---- sticky failure ---- */

static void test_sticky_failure(void)
{
    for (int kind = SYSIO_OP_WRITE; kind <= SYSIO_OP_SYNC; kind++) {
        char *dir = make_tmpdir();
        char err[512];
        wal *w = NULL;
        CHECK_EQ_INT(wal_open(dir, 1 << 20, 1, 1, NULL, NULL, &w, err, sizeof err), 0);
        if (!w) {
            free(dir);
            continue;
        }
        struct iovec good = {"good", 4}, bad = {"bad", 3}, later = {"later", 5};
        uint64_t seq = 0;
        CHECK_EQ_INT(wal_append(w, &good, 1, WAL_WAIT_SYNCED, &seq), 0);
        CHECK_EQ_INT(seq, 1);
        wal_stats before;
        wal_get_stats(w, &before);
        /* the next write (ENOSPC) or fdatasync (EIO) fails, as the kernel would report it */
        sysio_fault fault = {.ops = SYSIO_MASK(kind), .nth = 1,
                             .errno_value = kind == SYSIO_OP_WRITE ? ENOSPC : EIO};
        CHECK_EQ_INT(sysio_fault_arm(&fault), 0);
        CHECK_EQ_INT(wal_append(w, &bad, 1, WAL_WAIT_SYNCED, &seq), INGOT_E_WAL_FAILED);
        CHECK_EQ_INT(seq, 2); /* assigned, then failed with its batch */
        CHECK_EQ_INT(wal_append(w, &later, 1, WAL_WAIT_SYNCED, &seq), INGOT_E_WAL_FAILED);
        CHECK_EQ_INT(seq, 0); /* refused before queueing */
        CHECK_EQ_INT(wal_append(w, &later, 1, WAL_WAIT_WRITTEN, &seq), INGOT_E_WAL_FAILED);
        CHECK_EQ_INT(seq, 0);
        CHECK_EQ_INT(wal_rotate(w), INGOT_E_WAL_FAILED);
        sysio_fault_disarm();
        wal_stats after;
        wal_get_stats(w, &after);
        CHECK(after.failed);
        CHECK(!before.failed);
        CHECK_EQ_INT(after.fsync_count, before.fsync_count); /* never retried, never counted */
        CHECK_EQ_INT(after.entries, 1);
        CHECK_EQ_INT(after.rotations, 0);
        CHECK_EQ_INT(after.next_sequence, 3);
        wal_close(w);
        /* the acknowledged entry survives; the failed one may be there (written, unsynced) */
        static collect c;
        CHECK_EQ_INT(replay_into(dir, false, &c, NULL, err, sizeof err), 0);
        CHECK(c.count >= 1);
        CHECK_EQ_STR(c.entries[0], "good");
        for (int i = 1; i < c.count; i++)
            CHECK(strcmp(c.entries[i], "later") != 0);
        CHECK_EQ_INT(c.count, kind == SYSIO_OP_WRITE ? 1 : 2);
        rm_rf(dir);
        free(dir);
    }
}

/* WRITTEN waiters are released after write(2): a later fsync failure does not recall them. */
static void test_written_then_sync_failure(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 1, 1, NULL, NULL, &w, err, sizeof err), 0);
    if (!w) goto out;
    sysio_fault fault = {.ops = SYSIO_MASK(SYSIO_OP_SYNC), .nth = 1, .errno_value = EIO};
    CHECK_EQ_INT(sysio_fault_arm(&fault), 0);
    struct iovec a = {"nosync", 6};
    CHECK_EQ_INT(wal_append(w, &a, 1, WAL_WAIT_WRITTEN, NULL), 0);
    /* the next append sees the sticky failure (its batch came after the failed fsync) */
    CHECK_EQ_INT(wal_append(w, &a, 1, WAL_WAIT_SYNCED, NULL), INGOT_E_WAL_FAILED);
    sysio_fault_disarm();
    wal_stats st;
    wal_get_stats(w, &st);
    CHECK(st.failed);
    CHECK_EQ_INT(st.fsync_count, 0);
    wal_close(w);
out:
    rm_rf(dir);
    free(dir);
}

/* ---- replay ---- */

static void test_replay_order_and_names(void)
{
    char *dir = make_tmpdir();
    char err[512];
    seg_buf b = {0};
    seg_good(&b, 10, 20, 3);
    seg_write(seg_path(dir, 10), &b);
    b.len = 0;
    seg_good(&b, 9, 10, 3);
    seg_write(seg_path(dir, 9), &b);
    b.len = 0;
    seg_good(&b, 2, 0, 3);
    seg_write(seg_path(dir, 2), &b);
    /* not segments: ignored */
    char p[1024];
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    seg_write(p, &b);
    snprintf(p, sizeof p, "%s/007.wal", dir);
    seg_write(p, &b);
    snprintf(p, sizeof p, "%s/3.wal.tmp", dir);
    seg_write(p, &b);
    snprintf(p, sizeof p, "%s/corrupt", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/corrupt/1.wal", dir);
    seg_write(p, &b);
    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 9);
    for (int i = 0; i < 3; i++) {
        CHECK(entry_is(&c, i, i));
        CHECK(entry_is(&c, 3 + i, 10 + i));
        CHECK(entry_is(&c, 6 + i, 20 + i));
    }
    CHECK_EQ_INT(c.segment_ends, 3);
    CHECK_EQ_INT(c.ended[0], 2);
    CHECK_EQ_INT(c.ended[1], 9);
    CHECK_EQ_INT(c.ended[2], 10);
    CHECK_EQ_INT(rs.segments, 3);
    CHECK_EQ_INT(rs.entries, 9);
    CHECK_EQ_INT(rs.max_segment_id, 10);
    CHECK_EQ_INT(rs.first_sequence, 1); /* gaps between segments are fine */
    CHECK_EQ_INT(rs.max_sequence, 23);
    CHECK_EQ_INT(c.seq[3], 11);
    /* a missing directory is an empty WAL */
    snprintf(p, sizeof p, "%s/nope", dir);
    CHECK_EQ_INT(replay_into(p, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(rs.segments, 0);
    CHECK_EQ_INT(rs.max_segment_id, 0);
    CHECK_EQ_INT(rs.first_sequence, 0);
    CHECK_EQ_INT(rs.max_sequence, 0);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

enum tail_kind {
    TAIL_HEADER_CUT,  /* 5 bytes of an entry header */
    TAIL_PAYLOAD_CUT, /* header says 100, 40 bytes follow */
    TAIL_ZEROS,       /* 4096 zero bytes */
    TAIL_CRC_AT_EOF,  /* a whole entry with a bad CRC, ending at EOF */
    TAIL_HUGE_LEN,    /* length over WAL_MAX_ENTRY_BYTES, frame header ends at EOF */
    TAIL_SEQ_FLIP,    /* a whole entry whose sequence has a flipped bit, ending at EOF */
};

/* Segment 1 good (2 entries), segment 2 = 3 good entries + tail: replay truncates segment 2. */
static void check_torn_tail(enum tail_kind kind)
{
    char *dir = make_tmpdir();
    char err[512];
    seg_buf b = {0};
    seg_good(&b, 1, 0, 2);
    seg_write(seg_path(dir, 1), &b);
    b.len = 0;
    seg_good(&b, 2, 2, 3);
    size_t good = b.len;
    uint8_t junk[4096] = {0};
    switch (kind) {
    case TAIL_HEADER_CUT:
        memcpy(junk, "\x10\x00\x00\x00\x99", 5);
        seg_raw(&b, junk, 5);
        break;
    case TAIL_PAYLOAD_CUT:
        wal_put_u32(junk, 100);
        wal_put_u32(junk + 4, 0x12345678);
        memset(junk + 8, 'x', 40);
        seg_raw(&b, junk, 48);
        break;
    case TAIL_ZEROS:
        seg_raw(&b, junk, sizeof junk);
        break;
    case TAIL_CRC_AT_EOF:
        seg_entry(&b, 100, "the last entry", 14);
        b.p[b.len - 3] ^= 0x20;
        break;
    case TAIL_HUGE_LEN: /* nothing after the frame header */
        wal_put_u32(junk, 0xfffffff0u);
        wal_put_u32(junk + 4, 1);
        wal_put_u64(junk + 8, 100);
        seg_raw(&b, junk, 16);
        break;
    case TAIL_SEQ_FLIP:
        seg_entry(&b, 100, "the last entry", 14);
        b.p[good + 8] ^= 0x01; /* sequence 100 -> 101: the checksum covers it */
        break;
    }
    size_t total = b.len;
    seg_write(seg_path(dir, 2), &b);

    /* inspect first: reports the tail, changes nothing */
    int irc;
    char *text = inspect_text(dir, &irc);
    CHECK_EQ_INT(irc, 0);
    char want[64];
    snprintf(want, sizeof want, "torn tail at offset %zu (%zu bytes)", good, total - good);
    CHECK(text && strstr(text, want) != NULL);
    if (!(text && strstr(text, want))) fprintf(stderr, "%s", text ? text : "");
    CHECK(text && strstr(text, "payloads are not ops")); /* reported, yet not damage */
    free(text);
    CHECK_EQ_INT(file_size(seg_path(dir, 2)), total);

    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 5);
    for (int i = 0; i < 5; i++)
        CHECK(entry_is(&c, i, i));
    CHECK_EQ_INT(rs.torn_tails, 1);
    CHECK_EQ_INT(rs.torn_bytes, total - good);
    CHECK_EQ_INT(rs.max_sequence, 5);
    CHECK_EQ_INT(file_size(seg_path(dir, 2)), good); /* really truncated */
    CHECK_EQ_INT(c.segment_ends, 2);
    /* a second replay is clean */
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(rs.torn_tails, 0);
    CHECK_EQ_INT(c.count, 5);

    /* the same tail in a non-last segment is corruption */
    b.len = 0;
    seg_header(&b, 3);
    seg_write(seg_path(dir, 3), &b);
    FILE *f = fopen(seg_path(dir, 2), "ab");
    if (f) {
        fwrite(junk, 1, kind == TAIL_ZEROS ? 100 : 5, f);
        fclose(f);
    }
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), INGOT_E_CORRUPT);
    snprintf(want, sizeof want, "2.wal: offset %zu: ", good);
    CHECK(strstr(err, want) != NULL);
    CHECK_EQ_INT(file_size(seg_path(dir, 2)), good + (kind == TAIL_ZEROS ? 100 : 5));
    free(b.p);
    rm_rf(dir);
    free(dir);
}

static void test_torn_tails(void)
{
    check_torn_tail(TAIL_HEADER_CUT);
    check_torn_tail(TAIL_PAYLOAD_CUT);
    check_torn_tail(TAIL_ZEROS);
    check_torn_tail(TAIL_CRC_AT_EOF);
    check_torn_tail(TAIL_HUGE_LEN);
    check_torn_tail(TAIL_SEQ_FLIP);
}

/* A last segment without a (valid) header is deleted; a header-only one is a clean empty segment.
 */
static void test_headerless_last_segment(void)
{
    for (int kind = 0; kind < 4; kind++) {
        char *dir = make_tmpdir();
        char err[512];
        seg_buf b = {0};
        seg_good(&b, 1, 0, 2);
        seg_write(seg_path(dir, 1), &b);
        b.len = 0;
        uint8_t zeros[100] = {0};
        if (kind == 1) seg_raw(&b, "INGOTWAL\x01", 9);   /* shorter than the header */
        if (kind == 2) seg_raw(&b, zeros, sizeof zeros); /* all zeros */
        if (kind == 3) seg_header(&b, 2);                /* header only: fine */
        seg_write(seg_path(dir, 2), &b);
        static collect c;
        wal_replay_stats rs;
        CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
        CHECK_EQ_INT(c.count, 2);
        CHECK_EQ_INT(rs.max_segment_id, 2);
        if (kind == 3) {
            CHECK_EQ_INT(rs.torn_tails, 0);
            CHECK_EQ_INT(file_size(seg_path(dir, 2)), 32);
            CHECK_EQ_INT(c.segment_ends, 2);
        } else {
            CHECK_EQ_INT(rs.torn_tails, 1);
            CHECK_EQ_INT(rs.torn_bytes, b.len);
            CHECK_EQ_INT(file_size(seg_path(dir, 2)), -1); /* deleted */
            CHECK_EQ_INT(c.segment_ends, 1);
        }
        free(b.p);
        rm_rf(dir);
        free(dir);
    }
}

/* Damage that is never a torn tail: INGOT_E_CORRUPT naming file and offset. */
static void check_corrupt(const char *what, int segment, void (*damage)(seg_buf *), size_t offset,
                          const char *reason)
{
    char *dir = make_tmpdir();
    char err[512];
    seg_buf b = {0};
    for (int id = 1; id <= 2; id++) {
        b.len = 0;
        seg_good(&b, (uint64_t)id, id * 10, 4);
        if (id == segment) damage(&b);
        seg_write(seg_path(dir, (uint64_t)id), &b);
    }
    long size_before = file_size(seg_path(dir, (uint64_t)segment));
    static collect c;
    wal_replay_stats rs;
    int rc = replay_into(dir, false, &c, &rs, err, sizeof err);
    CHECK_EQ_INT(rc, INGOT_E_CORRUPT);
    char want[1200];
    snprintf(want, sizeof want, "%s: offset %zu: ", seg_path(dir, (uint64_t)segment), offset);
    bool ok = strncmp(err, want, strlen(want)) == 0 && strstr(err, reason) != NULL;
    CHECK(ok);
    if (!ok) fprintf(stderr, "  %s: got \"%s\", want \"%s...%s\"\n", what, err, want, reason);
    CHECK_EQ_INT(file_size(seg_path(dir, (uint64_t)segment)), size_before); /* untouched */
    CHECK_EQ_INT(rs.torn_tails, 0);

    int irc;
    char *text = inspect_text(dir, &irc);
    CHECK_EQ_INT(irc, 1);
    snprintf(want, sizeof want, "CORRUPT at offset %zu: ", offset);
    CHECK(text && strstr(text, want) && strstr(text, reason));
    free(text);

    /* skip_corrupt: the segment moves to corrupt/ and replay goes on */
    rc = replay_into(dir, true, &c, &rs, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(rs.corrupt_skipped, 1);
    CHECK_EQ_INT(rs.max_segment_id, 2);
    CHECK_EQ_INT(file_size(seg_path(dir, (uint64_t)segment)), -1);
    char moved[1024];
    snprintf(moved, sizeof moved, "%s/corrupt/%d.wal", dir, segment);
    CHECK_EQ_INT(file_size(moved), size_before);
    int other = 3 - segment;
    bool found_other = false;
    for (int i = 0; i < c.count; i++)
        if (entry_is(&c, i, other * 10)) found_other = true;
    CHECK(found_other);
    CHECK_EQ_INT(c.segment_ends, 1);
    /* what is left replays cleanly */
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 4);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

static size_t entry_offset(int first, int k)
{
    size_t off = 32;
    for (int i = first; i < first + k; i++) {
        char t[64];
        off += WAL_ENTRY_HEADER_BYTES + seg_text(t, i);
    }
    return off;
}

static void dmg_mid_crc(seg_buf *b)
{
    b->p[entry_offset(20, 1) + 17] ^= 1; /* payload of segment 2's second entry */
}
static void dmg_mid_seq_bit(seg_buf *b)
{
    b->p[entry_offset(20, 1) + 9] ^= 1; /* sequence of segment 2's second entry */
}
/* Rewrite entry k of segment 2 (entries 20..23, CRC fixed up) with sequence seq. */
static void seg2_set_seq(seg_buf *b, int k, uint64_t seq)
{
    size_t off = entry_offset(20, k);
    uint32_t len = wal_get_u32(b->p + off);
    wal_put_u64(b->p + off + 8, seq);
    wal_put_u32(b->p + off + 4, crc32c_update(crc32c(b->p + off + 16, len), b->p + off + 8, 8));
}
static void dmg_seq_repeat(seg_buf *b)
{
    seg2_set_seq(b, 2, 22); /* the same as the entry before */
}
static void dmg_seq_below_seg1(seg_buf *b)
{
    seg2_set_seq(b, 0, 14); /* segment 1 ended at 14 */
}
static void dmg_last_crc_seg1(seg_buf *b)
{
    b->p[b->len - 1] ^= 1; /* CRC damage at the very end of a non-last segment */
}
static void dmg_magic(seg_buf *b)
{
    b->p[3] = 'X';
}
static void dmg_version(seg_buf *b)
{
    b->p[8] = 3;
}
static void dmg_header_crc(seg_buf *b)
{
    b->p[20] ^= 0x40; /* segment id byte: the header CRC catches it */
}
static void dmg_wrong_id(seg_buf *b)
{
    uint8_t h[32];
    wal_segment_header_encode(7, h);
    memcpy(b->p, h, 32);
}
static void dmg_huge_len(seg_buf *b)
{
    uint8_t f[64] = {0};
    wal_put_u32(f, 0xfffffff0u);
    b->len = entry_offset(20, 2);
    seg_raw(b, f, 8);
    for (size_t i = 0; i < (1u << 20) / 64; i++)
        seg_raw(b, f + 8, 56); /* data after it */
}
static void dmg_zero_header(seg_buf *b)
{
    memset(b->p, 0, 32);
}

static void test_corruption(void)
{
    check_corrupt("crc mid-file", 2, dmg_mid_crc, entry_offset(20, 1), "checksum mismatch");
    check_corrupt("crc in non-last", 1, dmg_last_crc_seg1, entry_offset(10, 3),
                  "checksum mismatch");
    check_corrupt("sequence bit", 2, dmg_mid_seq_bit, entry_offset(20, 1), "checksum mismatch");
    check_corrupt("sequence repeats", 2, dmg_seq_repeat, entry_offset(20, 2),
                  "sequence 22 is not above the previous entry's 22");
    check_corrupt("sequence below the previous segment's", 2, dmg_seq_below_seg1, 32,
                  "sequence 14 is not above the previous entry's 14");
    check_corrupt("bad magic", 2, dmg_magic, 0, "bad magic");
    check_corrupt("bad magic non-last", 1, dmg_magic, 0, "bad magic");
    check_corrupt("version", 2, dmg_version, 8, "unsupported WAL format version 3");
    check_corrupt("header crc", 2, dmg_header_crc, 24, "header checksum");
    check_corrupt("segment id", 2, dmg_wrong_id, 16, "id 7 does not match");
    check_corrupt("huge length", 2, dmg_huge_len, entry_offset(20, 2), "over the maximum");
    check_corrupt("zero header", 2, dmg_zero_header, 0, "header is all zeros");
}

/* skip_corrupt keeps what the damaged segment delivered before the damage. */
static void test_skip_corrupt_partial(void)
{
    char *dir = make_tmpdir();
    char err[512];
    seg_buf b = {0};
    seg_good(&b, 1, 0, 4);
    b.p[entry_offset(0, 2) + 9] ^= 1;
    seg_write(seg_path(dir, 1), &b);
    long size1 = (long)b.len;
    b.len = 0;
    seg_good(&b, 2, 10, 2);
    seg_write(seg_path(dir, 2), &b);
    /* a previous run already moved a 1.wal aside: never overwritten */
    char p[1024];
    snprintf(p, sizeof p, "%s/corrupt", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/corrupt/1.wal", dir);
    seg_write(p, &(seg_buf){0});
    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, true, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 4);
    CHECK(entry_is(&c, 0, 0) && entry_is(&c, 1, 1) && entry_is(&c, 2, 10) && entry_is(&c, 3, 11));
    CHECK_EQ_INT(rs.entries, 4);
    CHECK_EQ_INT(rs.corrupt_skipped, 1);
    CHECK_EQ_INT(file_size(p), 0);
    snprintf(p, sizeof p, "%s/corrupt/1.wal.1", dir);
    CHECK_EQ_INT(file_size(p), size1);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

static int stop_at_third(void *arg, uint64_t segment_id, uint64_t sequence, const uint8_t *payload,
                         size_t len)
{
    (void)segment_id;
    (void)sequence;
    (void)payload;
    (void)len;
    return ++*(int *)arg == 3 ? 42 : 0;
}

static void test_replay_callback_stops(void)
{
    char *dir = make_tmpdir();
    char err[512];
    seg_buf b = {0};
    seg_good(&b, 1, 0, 5);
    seg_write(seg_path(dir, 1), &b);
    int n = 0;
    wal_replay_callbacks cb = {.on_entry = stop_at_third, .arg = &n};
    CHECK_EQ_INT(wal_replay(dir, false, &cb, NULL, err, sizeof err), 42);
    CHECK_EQ_INT(n, 3);
    free(b.p);
    rm_rf(dir);
    free(dir);
}

/* ---- inspect ---- */

static void test_inspect_sequences(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 3, 100, NULL, NULL, &w, err, sizeof err), 0);
    if (!w) goto out;
    for (uint64_t s = 100; s < 105; s++) {
        dml_op op = {.namespace_name = "ns", .namespace_len = 2, .body = "m f=1", .body_len = 5};
        uint8_t h[DML_PAYLOAD_HEADER_BYTES];
        struct iovec iov[3];
        dml_op_encode(&op, h, iov);
        uint64_t seq = 0;
        CHECK_EQ_INT(wal_append(w, iov, 3, WAL_WAIT_SYNCED, &seq), 0);
        CHECK_EQ_INT(seq, s);
        if (s == 102) CHECK_EQ_INT(wal_rotate(w), 0);
    }
    CHECK_EQ_INT(wal_rotate(w), 0);
    wal_close(w);
    int rc;
    char *text = inspect_text(dir, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK(text && strstr(text, "100..102") && strstr(text, "103..104"));
    CHECK(text && strstr(text, "total: 3 segments, 5 entries"));
    CHECK(text && strstr(text, "sequences 100..104, 0 damaged"));
    CHECK(text && !strstr(text, "not ops"));
    /* the empty last segment shows "-" */
    CHECK(text && strstr(text, "5.wal"));
    if (text) fputs(text, stdout);
    free(text);
out:
    rm_rf(dir);
    free(dir);
}

/* ---- segment life cycle ---- */

static void test_delete_segment(void)
{
    char *dir = make_tmpdir();
    char err[512];
    wal *w = NULL;
    static closed_log cl;
    memset(&cl, 0, sizeof cl);
    pthread_mutex_init(&cl.mu, NULL);
    CHECK_EQ_INT(wal_open(dir, 1 << 20, 1, 1, closed_cb, &cl, &w, err, sizeof err), 0);
    if (!w) goto out;
    for (int i = 0; i < 6; i++) {
        char t[64];
        struct iovec iov = {t, seg_text(t, i)};
        CHECK_EQ_INT(wal_append(w, &iov, 1, WAL_WAIT_SYNCED, NULL), 0);
        if (i % 2 == 1) CHECK_EQ_INT(wal_rotate(w), 0);
    }
    wal_close(w);
    CHECK_EQ_INT(cl.n, 3);
    /* delete segment 2 (sequences 3..4) as the persister would, out of order */
    CHECK_EQ_INT(cl.id[1], 2);
    CHECK_EQ_INT(cl.first[1], 3);
    CHECK_EQ_INT(cl.last[1], 4);
    CHECK_EQ_INT(wal_delete_segment(dir, 2), 0);
    CHECK_EQ_INT(file_size(seg_path(dir, 2)), -1);
    CHECK_EQ_INT(wal_delete_segment(dir, 2), 0); /* absent: fine */
    char p[1024];
    snprintf(p, sizeof p, "%s/nope", dir);
    CHECK_EQ_INT(wal_delete_segment(p, 1), 0);
    static collect c;
    wal_replay_stats rs;
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(c.count, 4);
    CHECK(entry_is(&c, 0, 0) && entry_is(&c, 1, 1) && entry_is(&c, 2, 4) && entry_is(&c, 3, 5));
    CHECK_EQ_INT(c.seq[2], 5);
    CHECK_EQ_INT(rs.max_sequence, 6);
    CHECK_EQ_INT(rs.max_segment_id, 4); /* the empty open segment */
    /* replay, then delete each segment from on_segment_end: nothing is left */
    CHECK_EQ_INT(wal_delete_segment(dir, 1), 0);
    CHECK_EQ_INT(wal_delete_segment(dir, 3), 0);
    CHECK_EQ_INT(wal_delete_segment(dir, 4), 0);
    CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), 0);
    CHECK_EQ_INT(rs.segments, 0);
out:
    pthread_mutex_destroy(&cl.mu);
    rm_rf(dir);
    free(dir);
}

/* A segment in the old format (version 1: 8-byte frames, no sequence) is refused as corrupt. */
static void test_version1_refused(void)
{
    for (int last = 0; last <= 1; last++) {
        char *dir = make_tmpdir();
        char err[512];
        seg_buf b = {0};
        uint8_t h[WAL_SEGMENT_HEADER_BYTES] = {0};
        memcpy(h, "INGOTWAL", 8);
        wal_put_u32(h + 8, 1);
        wal_put_u64(h + 16, 1);
        wal_put_u32(h + 24, crc32c(h, 24));
        seg_raw(&b, h, sizeof h);
        uint8_t f[8];
        wal_put_u32(f, 5);
        wal_put_u32(f + 4, crc32c("hello", 5));
        seg_raw(&b, f, 8);
        seg_raw(&b, "hello", 5);
        seg_write(seg_path(dir, 1), &b);
        if (!last) {
            b.len = 0;
            seg_header(&b, 2);
            seg_write(seg_path(dir, 2), &b);
        }
        static collect c;
        wal_replay_stats rs;
        CHECK_EQ_INT(replay_into(dir, false, &c, &rs, err, sizeof err), INGOT_E_CORRUPT);
        CHECK(strstr(err, "1.wal: offset 8: unsupported WAL format version 1") != NULL);
        CHECK_EQ_INT(c.count, 0);
        CHECK_EQ_INT(file_size(seg_path(dir, 1)), 32 + 13); /* untouched, not a torn tail */
        int irc;
        char *text = inspect_text(dir, &irc);
        CHECK_EQ_INT(irc, 1);
        CHECK(text && strstr(text, "CORRUPT at offset 8: unsupported WAL format version 1"));
        free(text);
        free(b.p);
        rm_rf(dir);
        free(dir);
    }
}

/* The text of dir/name (up to 127 bytes) into buf; its length, or -1. */
static ssize_t read_text(const char *dir, const char *name, char *buf, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
    return (ssize_t)got;
}

#define ID_A "0a0a0a0a-0000-4000-8000-00000000000a"
#define ID_B "0b0b0b0b-0000-4000-8000-00000000000b"

/*
 * wal_identity: made once (a missing directory included) and read back the same at every later
 * call whatever fresh id is offered; a failed write leaves no identity, so the next call makes
 * one; a damaged file is refused naming it.
 */
static void test_identity(void)
{
    char *root = make_tmpdir();
    char dir[1024], id[37], err[512] = "", text[128];
    snprintf(dir, sizeof dir, "%s/new/wal", root);
    CHECK_EQ_INT(wal_identity(dir, ID_A, id, err, sizeof err), 0);
    CHECK_EQ_STR(id, ID_A);
    CHECK_EQ_INT(read_text(dir, "wal.id", text, sizeof text), 37);
    CHECK_EQ_STR(text, ID_A "\n");
    CHECK_EQ_INT(read_text(dir, "wal.id.tmp", text, sizeof text), -1);
    CHECK_EQ_INT(wal_identity(dir, ID_B, id, err, sizeof err), 0);
    CHECK_EQ_STR(id, ID_A);

    /* each step of the write failing: no identity is left, the next call makes ID_B */
    static const enum sysio_op steps[] = {SYSIO_OP_OPEN, SYSIO_OP_WRITE, SYSIO_OP_SYNC,
                                          SYSIO_OP_RENAME};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        snprintf(dir, sizeof dir, "%s/fail%zu", root, i);
        sysio_fault fault = {.ops = SYSIO_MASK(steps[i]), .path_contains = "wal.id.tmp",
                             .nth = 1, .errno_value = EIO};
        CHECK_EQ_INT(sysio_fault_arm(&fault), 0);
        err[0] = 0;
        CHECK(wal_identity(dir, ID_A, id, err, sizeof err) < 0);
        sysio_fault_report report;
        sysio_fault_get_report(&report);
        sysio_fault_disarm();
        CHECK_EQ_INT(report.injected, 1);
        CHECK(strstr(err, "wal.id.tmp") != NULL);
        CHECK_EQ_INT(read_text(dir, "wal.id", text, sizeof text), -1);
        CHECK_EQ_INT(wal_identity(dir, ID_B, id, err, sizeof err), 0);
        CHECK_EQ_STR(id, ID_B);
    }

    /* damaged: refused, named, left alone */
    snprintf(dir, sizeof dir, "%s/damaged", root);
    CHECK_EQ_INT(mkdir(dir, 0755), 0);
    char path[1100];
    snprintf(path, sizeof path, "%s/wal.id", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("0a0a0a0a-0000-4000-8000-00000000000\n", f); /* one digit short */
        fclose(f);
    }
    err[0] = 0;
    CHECK_EQ_INT(wal_identity(dir, ID_A, id, err, sizeof err), INGOT_E_CORRUPT);
    CHECK(strstr(err, path) != NULL);
    CHECK_EQ_INT(wal_identity(dir, "not-a-uuid", id, err, sizeof err), INGOT_E_CORRUPT);
    rm_rf(root);
    free(root);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    TEST_RUN(test_crc32c_vectors);
    TEST_RUN(test_codec_round_trip);
    TEST_RUN(test_codec_decode_errors);
    TEST_RUN(test_framing_round_trip);
    TEST_RUN(test_rotation_many_entries);
    TEST_RUN(test_group_commit_concurrent);
    TEST_RUN(test_sticky_failure);
    TEST_RUN(test_written_then_sync_failure);
    TEST_RUN(test_replay_order_and_names);
    TEST_RUN(test_torn_tails);
    TEST_RUN(test_headerless_last_segment);
    TEST_RUN(test_corruption);
    TEST_RUN(test_skip_corrupt_partial);
    TEST_RUN(test_replay_callback_stops);
    TEST_RUN(test_inspect_sequences);
    TEST_RUN(test_delete_segment);
    TEST_RUN(test_version1_refused);
    TEST_RUN(test_identity);
    TEST_MAIN_END();
}
