/*
 * wal_replay.c: the read side of the write-ahead log: replay at start-up and `ingot wal inspect`.
 * Both walk the segments with one frame reader, wal_scan_segment(); replay acts on its verdict
 * (truncate, delete, move aside, stop), inspect only prints it.
 *
 * FORMAT: see wal.c and wal.h (32-byte segment header, version 2, then entries
 * [u32 len][u32 crc32c(payload || seq_le64)][u64 seq][payload]...).
 *
 * READING. A segment is mapped read-only (mmap, MADV_SEQUENTIAL), so a 128 MiB segment or a
 * 1 GiB entry needs no heap; payloads are handed to callbacks as pointers into the mapping, valid
 * during the call. Segments are the files named "<decimal id>.wal" (canonical: no sign, no
 * leading zeros); anything else in the directory, including corrupt/, is ignored. They are read
 * in ascending numeric id order.
 *
 * VERDICTS. Walking the entries of a segment from offset 32, at each frame start:
 *   - fewer than 16 bytes left                       -> "entry header cut short"      (tail)
 *   - every byte to EOF is zero                      -> "zeros to end of file"        (tail)
 *   - length 0, not all zeros                        -> "zero-length entry" (tail if
 *                                                      the frame header ends at EOF)
 *   - length over WAL_MAX_ENTRY_BYTES                -> corrupt if any byte follows the
 *                                                      frame header, else a tail
 *   - frame runs past EOF                            -> "entry cut short"             (tail)
 *   - CRC mismatch, frame ends exactly at EOF        -> "checksum mismatch in last entry" (tail)
 *   - CRC mismatch with data after the frame         -> corrupt
 *   - good CRC, sequence not above the previous      -> corrupt (the writer numbers entries
 *     entry's (in this or an earlier segment)           strictly increasing through the log;
 *                                                       gaps are fine: deleted segments, a
 *                                                       failed batch, a segment moved aside)
 * and for the file as a whole: zero length, shorter than the header, or zeros throughout are a
 * header-less tail; bad magic, version (version 1, the format before sequences were in the frame,
 * is "unsupported WAL format version 1"), header checksum, or a header id that differs from the
 * file name's id are corrupt (so is an all-zero header followed by nonzero bytes: our writer
 * syncs the header before any entry, so that is damage, not a crash).
 * A "tail" verdict is a torn tail only in the LAST segment (the highest id): a crash during an
 * un-acknowledged write. In any other segment it is corruption, since segments are synced
 * before the next one is created.
 *
 * Inspect takes each segment's sequence range from the frames, and reads each good payload with
 * dml_op_decode; a payload that is not an op is reported next to the verdict but is not WAL
 * damage (its checksum is good).
 *
 * File system calls go through util/sysio.h (the tests' fault-injection seam); the mapping
 * itself (mmap) does not.
 *
 * RECOVERY (replay only; inspect never changes the disk). A torn tail is truncated to the end of
 * the last good entry (ftruncate + fsync); a header-less last segment is deleted (unlink + fsync
 * of the directory) and gets no on_segment_end. Both are logged and counted. Corruption stops
 * replay with INGOT_E_CORRUPT and "FILE: offset N: reason" in err; with skip_corrupt the segment
 * is renamed into <dir>/corrupt/ (never overwriting: a ".N" suffix is added if the name is
 * taken; directories fsynced), counted, logged, and replay goes on with the next segment. Entries
 * of that segment that came before the damage were already handed to on_entry and stay
 * delivered; on_segment_end is not called for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/log.h"
#include "util/sysio.h"
#include "wal/wal.h"
#include "wal/wal_internal.h"

enum wal_scan_verdict { WAL_SCAN_OK = 0, WAL_SCAN_TORN = 1, WAL_SCAN_CORRUPT = 2 };

typedef int (*wal_scan_entry_fn)(void *arg, uint64_t segment_id, uint64_t offset, uint64_t sequence,
                                 const uint8_t *payload, size_t len);

typedef struct wal_scan {
    /* in */
    const char *path;
    uint64_t segment_id; /* from the file name */
    bool is_last;
    wal_scan_entry_fn on_entry;
    int (*on_scanned)(void *arg, uint64_t segment_id); /* after the scan, payloads still mapped */
    void *arg;
    /* in/out: the sequence of the last good entry before this segment (0: none), then of this
     * segment's last good entry */
    uint64_t prev_sequence;
    /* out */
    uint64_t file_bytes;
    uint64_t entries;  /* entries handed to on_entry */
    uint64_t good_end; /* end of the last good entry (or of the header) */
    enum wal_scan_verdict verdict;
    bool headerless; /* torn, and no valid header: the whole file goes */
    uint64_t bad_offset;
    char reason[160];
    int callback_rc; /* nonzero: on_entry stopped the scan */
} wal_scan;

static bool wal_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* Record a tail condition (torn if last, corrupt otherwise) or a corruption at offset. */
static void wal_scan_damage(wal_scan *s, bool tail, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void wal_scan_damage(wal_scan *s, bool tail, uint64_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof s->reason, fmt, ap);
    va_end(ap);
    s->bad_offset = offset;
    s->verdict = tail && s->is_last ? WAL_SCAN_TORN : WAL_SCAN_CORRUPT;
}

/* Check the header and walk the entries of the mapped segment p[0..size). */
static void wal_scan_bytes(wal_scan *s, const uint8_t *p, uint64_t size)
{
    s->good_end = 0;
    if (size == 0) {
        s->headerless = true;
        wal_scan_damage(s, true, 0, "zero-length segment file");
        return;
    }
    if (size < WAL_SEGMENT_HEADER_BYTES) {
        s->headerless = true;
        wal_scan_damage(s, true, 0, "file of %" PRIu64 " bytes is shorter than the %d-byte header",
                        size, WAL_SEGMENT_HEADER_BYTES);
        return;
    }
    if (wal_all_zero(p, WAL_SEGMENT_HEADER_BYTES)) {
        bool all = wal_all_zero(p + WAL_SEGMENT_HEADER_BYTES, size - WAL_SEGMENT_HEADER_BYTES);
        s->headerless = all;
        wal_scan_damage(s, all, 0, all ? "file is all zeros" : "segment header is all zeros");
        return;
    }
    if (memcmp(p, WAL_MAGIC, 8) != 0) {
        wal_scan_damage(s, false, 0, "bad magic (not a WAL segment)");
        return;
    }
    uint32_t version = wal_get_u32(p + 8);
    if (version != WAL_FORMAT_VERSION) {
        wal_scan_damage(s, false, 8, "unsupported WAL format version %u (this build reads %u)",
                        version, WAL_FORMAT_VERSION);
        return;
    }
    uint32_t stored = wal_get_u32(p + 24), computed = crc32c(p, 24);
    if (stored != computed) {
        wal_scan_damage(s, false, 24, "header checksum mismatch (stored %08x, computed %08x)",
                        stored, computed);
        return;
    }
    uint64_t id = wal_get_u64(p + 16);
    if (id != s->segment_id) {
        wal_scan_damage(s, false, 16,
                        "header segment id %" PRIu64 " does not match the file name's id %" PRIu64,
                        id, s->segment_id);
        return;
    }
    uint64_t off = WAL_SEGMENT_HEADER_BYTES;
    s->good_end = off;
    while (off < size) {
        uint64_t left = size - off;
        if (left < WAL_ENTRY_HEADER_BYTES) {
            wal_scan_damage(s, true, off,
                            "entry header cut short by end of file (%" PRIu64 " of %d bytes)", left,
                            WAL_ENTRY_HEADER_BYTES);
            return;
        }
        uint64_t len = wal_get_u32(p + off);
        uint32_t crc = wal_get_u32(p + off + 4);
        uint64_t seq = wal_get_u64(p + off + 8);
        if (len == 0) {
            if (wal_all_zero(p + off, left))
                wal_scan_damage(s, true, off, "zeros to end of file");
            else
                wal_scan_damage(s, left == WAL_ENTRY_HEADER_BYTES, off, "zero-length entry");
            return;
        }
        if (len > WAL_MAX_ENTRY_BYTES) {
            wal_scan_damage(s, left == WAL_ENTRY_HEADER_BYTES, off,
                            "entry length %" PRIu64 " is over the maximum %u", len,
                            WAL_MAX_ENTRY_BYTES);
            return;
        }
        if (len > left - WAL_ENTRY_HEADER_BYTES) {
            wal_scan_damage(s, true, off,
                            "entry of %" PRIu64 " bytes runs past end of file (%" PRIu64
                            " bytes left)",
                            len, left - WAL_ENTRY_HEADER_BYTES);
            return;
        }
        const uint8_t *payload = p + off + WAL_ENTRY_HEADER_BYTES;
        uint32_t actual = crc32c_update(crc32c(payload, (size_t)len), p + off + 8, 8);
        if (actual != crc) {
            bool at_eof = off + WAL_ENTRY_HEADER_BYTES + len == size;
            wal_scan_damage(s, at_eof, off,
                            "entry checksum mismatch (stored %08x, computed %08x)%s", crc, actual,
                            at_eof ? " in the last entry" : "");
            return;
        }
        if (seq <= s->prev_sequence) {
            wal_scan_damage(s, false, off,
                            "entry sequence %" PRIu64 " is not above the previous entry's %" PRIu64,
                            seq, s->prev_sequence);
            return;
        }
        s->prev_sequence = seq;
        if (s->on_entry) {
            int rc = s->on_entry(s->arg, s->segment_id, off, seq, payload, (size_t)len);
            s->entries++;
            if (rc != 0) {
                s->callback_rc = rc;
                return;
            }
        } else {
            s->entries++;
        }
        off += WAL_ENTRY_HEADER_BYTES + len;
        s->good_end = off;
    }
}

/*
 * Map s->path and scan it. Returns 0 (verdict in s) or -errno if the file cannot be read; then
 * s->reason says what failed.
 */
static int wal_scan_segment(wal_scan *s)
{
    int rc = 0;
    void *map = MAP_FAILED;
    struct stat st;
    s->verdict = WAL_SCAN_OK;
    int fd = sysio_open(s->path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(s->reason, sizeof s->reason, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(s->reason, sizeof s->reason, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(s->reason, sizeof s->reason, "not a regular file");
        goto fail;
    }
    s->file_bytes = (uint64_t)st.st_size;
    if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            rc = -errno;
            snprintf(s->reason, sizeof s->reason, "cannot mmap: %s", strerror(errno));
            goto fail;
        }
        madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    }
    wal_scan_bytes(s, map == MAP_FAILED ? (const uint8_t *)"" : map, s->file_bytes);
    if (s->on_scanned) {
        int crc = s->on_scanned(s->arg, s->segment_id);
        if (crc != 0 && s->callback_rc == 0) s->callback_rc = crc;
    }
fail:
    if (map != MAP_FAILED) munmap(map, (size_t)st.st_size);
    if (fd >= 0) sysio_close(fd);
    return rc;
}

static int wal_id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* "<decimal id>.wal" (no sign, no leading zeros, fits u64) -> 1 and *id; anything else -> 0. */
static int wal_parse_segment_name(const char *name, uint64_t *id)
{
    const char *p = name;
    uint64_t v = 0;
    if (*p < '0' || *p > '9') return 0;
    if (*p == '0' && p[1] != '.') return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (strcmp(p, ".wal") != 0) return 0;
    *id = v;
    return 1;
}

/* The sorted segment ids in dir (malloc'd into *ids_out). A missing dir has none. */
static int wal_list_segments(const char *dir, uint64_t **ids_out, size_t *n_out, char *err,
                             size_t errlen)
{
    *ids_out = NULL;
    *n_out = 0;
    DIR *d = sysio_opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        int rc = -errno;
        snprintf(err, errlen, "%s: cannot open WAL directory: %s", dir, strerror(errno));
        return rc;
    }
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (!wal_parse_segment_name(de->d_name, &id)) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint64_t *nids = realloc(ids, ncap * sizeof *ids);
            if (!nids) {
                rc = INGOT_E_NOMEM;
                snprintf(err, errlen, "%s: out of memory listing segments", dir);
                goto fail;
            }
            ids = nids;
            cap = ncap;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n) qsort(ids, n, sizeof *ids, wal_id_cmp);
    *ids_out = ids;
    *n_out = n;
    return 0;
fail:
    closedir(d);
    free(ids);
    return rc;
}

/* Truncate path to size and fsync it. */
static int wal_truncate_file(const char *path, uint64_t size)
{
    int fd = sysio_open(path, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = 0;
    if (sysio_ftruncate(fd, (off_t)size) != 0 || sysio_fsync(fd) != 0) rc = -errno;
    sysio_close(fd);
    return rc;
}

/* Rename dir/<id>.wal into dir/corrupt/ without overwriting anything; fsync both directories. */
static int wal_move_to_corrupt(const char *dir, const char *path, uint64_t id, char *dst,
                               size_t dstlen)
{
    char cdir[PATH_MAX];
    snprintf(cdir, sizeof cdir, "%s/corrupt", dir);
    if (sysio_mkdir(cdir, 0755) != 0 && errno != EEXIST) return -errno;
    int rc = wal_fsync_dir(dir);
    if (rc != 0) return rc;
    for (int k = 0; k < 1000; k++) {
        int n = k == 0 ? snprintf(dst, dstlen, "%s/%" PRIu64 ".wal", cdir, id)
                       : snprintf(dst, dstlen, "%s/%" PRIu64 ".wal.%d", cdir, id, k);
        if (n < 0 || (size_t)n >= dstlen) return -ENAMETOOLONG;
        if (sysio_renameat2(AT_FDCWD, path, AT_FDCWD, dst, RENAME_NOREPLACE) == 0) goto moved;
        if (errno == EEXIST) continue;
        if (errno != EINVAL && errno != ENOSYS) return -errno;
        /* The file system has no RENAME_NOREPLACE: check, then rename (single process). */
        if (access(dst, F_OK) == 0) continue;
        if (sysio_rename(path, dst) == 0) goto moved;
        return -errno;
    }
    return -EEXIST;
moved:
    if ((rc = wal_fsync_dir(cdir)) != 0) return rc;
    return wal_fsync_dir(dir);
}

typedef struct wal_replay_ctx {
    const wal_replay_callbacks *cb;
    wal_replay_stats *stats;
} wal_replay_ctx;

static int wal_replay_entry(void *arg, uint64_t segment_id, uint64_t offset, uint64_t sequence,
                            const uint8_t *payload, size_t len)
{
    (void)offset;
    wal_replay_ctx *ctx = arg;
    if (ctx->stats->first_sequence == 0) ctx->stats->first_sequence = sequence;
    ctx->stats->max_sequence = sequence; /* the scan checked it is above every earlier one */
    if (!ctx->cb || !ctx->cb->on_entry) return 0;
    return ctx->cb->on_entry(ctx->cb->arg, segment_id, sequence, payload, len);
}

static int wal_replay_scanned(void *arg, uint64_t segment_id)
{
    wal_replay_ctx *ctx = arg;
    if (!ctx->cb || !ctx->cb->on_segment_scanned) return 0;
    return ctx->cb->on_segment_scanned(ctx->cb->arg, segment_id);
}

int wal_replay(const char *dir, bool skip_corrupt, const wal_replay_callbacks *cb,
               wal_replay_stats *stats, char *err, size_t errlen)
{
    wal_replay_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (errlen) err[0] = '\0';
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = wal_list_segments(dir, &ids, &n, err, errlen);
    if (rc != 0) return rc;
    if (n) stats->max_segment_id = ids[n - 1];
    wal_replay_ctx ctx = {.cb = cb, .stats = stats};
    uint64_t prev_sequence = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        wal_segment_path(path, sizeof path, dir, ids[i]);
        wal_scan s = {.path = path,
                      .segment_id = ids[i],
                      .is_last = i + 1 == n,
                      .on_entry = wal_replay_entry,
                      .on_scanned = wal_replay_scanned,
                      .arg = &ctx,
                      .prev_sequence = prev_sequence};
        if ((rc = wal_scan_segment(&s)) != 0) {
            snprintf(err, errlen, "%s: %s", path, s.reason);
            goto fail;
        }
        stats->segments++;
        stats->bytes += s.file_bytes;
        stats->entries += s.entries;
        prev_sequence = s.prev_sequence; /* entries delivered before any damage count too */
        if (s.callback_rc != 0) {
            rc = s.callback_rc;
            goto fail;
        }
        if (s.verdict == WAL_SCAN_CORRUPT) {
            snprintf(err, errlen, "%s: offset %" PRIu64 ": %s", path, s.bad_offset, s.reason);
            if (!skip_corrupt) {
                rc = INGOT_E_CORRUPT;
                goto fail;
            }
            char dst[PATH_MAX + 16];
            if ((rc = wal_move_to_corrupt(dir, path, ids[i], dst, sizeof dst)) != 0) {
                char why[PATH_MAX + 200];
                snprintf(why, sizeof why, "%s; moving it to corrupt/ failed: %s", err,
                         ingot_strerror(rc));
                snprintf(err, errlen, "%s", why);
                goto fail;
            }
            log_warn("wal: skipping corrupt segment %s (offset %" PRIu64 ": %s; %" PRIu64
                     " entries before it were replayed): moved to %s",
                     path, s.bad_offset, s.reason, s.entries, dst);
            stats->corrupt_skipped++;
            if (errlen) err[0] = '\0';
            continue;
        }
        if (s.verdict == WAL_SCAN_TORN) {
            uint64_t torn = s.file_bytes - s.good_end;
            if (s.headerless) {
                if (sysio_unlink(path) != 0 || (rc = wal_fsync_dir(dir)) != 0) {
                    if (rc == 0) rc = -errno;
                    snprintf(err, errlen, "%s: cannot delete torn segment: %s", path,
                             ingot_strerror(rc));
                    goto fail;
                }
                log_warn("wal: %s: torn segment (%s), %" PRIu64 " bytes: deleted", path, s.reason,
                         torn);
            } else {
                if ((rc = wal_truncate_file(path, s.good_end)) != 0) {
                    snprintf(err, errlen, "%s: cannot truncate torn tail at offset %" PRIu64 ": %s",
                             path, s.good_end, ingot_strerror(rc));
                    goto fail;
                }
                log_warn("wal: %s: torn tail at offset %" PRIu64 " (%s): truncated %" PRIu64
                         " bytes",
                         path, s.bad_offset, s.reason, torn);
            }
            stats->torn_tails++;
            stats->torn_bytes += torn;
            if (s.headerless) continue;
        }
        if (cb && cb->on_segment_end) {
            rc = cb->on_segment_end(cb->arg, ids[i], path);
            if (rc != 0) goto fail;
        }
    }
    free(ids);
    return 0;
fail:
    free(ids);
    return rc;
}

/* inspect: per-segment sequence range through dml_op_decode. */
typedef struct wal_inspect_ctx {
    uint64_t seq_min, seq_max, seq_count;
    uint64_t undecodable;
    uint64_t first_bad_offset;
    char first_bad[128];
} wal_inspect_ctx;

static int wal_inspect_entry(void *arg, uint64_t segment_id, uint64_t offset, uint64_t sequence,
                             const uint8_t *payload, size_t len)
{
    (void)segment_id;
    wal_inspect_ctx *c = arg;
    dml_decoded d;
    char err[128];
    if (dml_op_decode(payload, len, &d, err, sizeof err) != 0 && c->undecodable++ == 0) {
        c->first_bad_offset = offset;
        snprintf(c->first_bad, sizeof c->first_bad, "%s", err);
    }
    /* the scan delivers strictly increasing sequences */
    if (c->seq_count == 0) c->seq_min = sequence;
    c->seq_max = sequence;
    c->seq_count++;
    return 0;
}

static void wal_format_range(char *buf, size_t len, uint64_t count, uint64_t lo, uint64_t hi)
{
    if (count == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%" PRIu64 "..%" PRIu64, lo, hi);
}

int wal_inspect(const char *dir, FILE *out)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    char err[PATH_MAX + 128];
    int rc = wal_list_segments(dir, &ids, &n, err, sizeof err);
    if (rc != 0) {
        fprintf(out, "error: %s\n", err);
        return rc;
    }
    uint64_t total_entries = 0, total_bytes = 0, damaged = 0, seq_count = 0;
    uint64_t seq_min = 0, seq_max = 0, prev_sequence = 0;
    fprintf(out, "%-8s %-24s %10s %14s %-27s %s\n", "ID", "FILE", "ENTRIES", "BYTES", "SEQUENCES",
            "VERDICT");
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX], name[32], range[48], verdict[256];
        wal_segment_path(path, sizeof path, dir, ids[i]);
        snprintf(name, sizeof name, "%" PRIu64 ".wal", ids[i]);
        wal_inspect_ctx c = {0};
        wal_scan s = {.path = path,
                      .segment_id = ids[i],
                      .is_last = i + 1 == n,
                      .on_entry = wal_inspect_entry,
                      .arg = &c,
                      .prev_sequence = prev_sequence};
        if (wal_scan_segment(&s) != 0) {
            snprintf(verdict, sizeof verdict, "UNREADABLE: %s", s.reason);
            damaged++;
        } else if (s.verdict == WAL_SCAN_CORRUPT) {
            snprintf(verdict, sizeof verdict, "CORRUPT at offset %" PRIu64 ": %s", s.bad_offset,
                     s.reason);
            damaged++;
        } else if (s.verdict == WAL_SCAN_TORN) {
            snprintf(verdict, sizeof verdict, "torn tail at offset %" PRIu64 " (%" PRIu64 " bytes)",
                     s.good_end, s.file_bytes - s.good_end);
        } else {
            snprintf(verdict, sizeof verdict, "ok");
        }
        if (c.undecodable) {
            size_t vl = strlen(verdict);
            snprintf(verdict + vl, sizeof verdict - vl,
                     "; %" PRIu64 " payloads are not ops (first at offset %" PRIu64 ": %s)",
                     c.undecodable, c.first_bad_offset, c.first_bad);
        }
        prev_sequence = s.prev_sequence;
        wal_format_range(range, sizeof range, c.seq_count, c.seq_min, c.seq_max);
        fprintf(out, "%-8" PRIu64 " %-24s %10" PRIu64 " %14" PRIu64 " %-27s %s\n", ids[i], name,
                s.entries, s.file_bytes, range, verdict);
        total_entries += s.entries;
        total_bytes += s.file_bytes;
        if (c.seq_count) {
            if (seq_count == 0 || c.seq_min < seq_min) seq_min = c.seq_min;
            if (seq_count == 0 || c.seq_max > seq_max) seq_max = c.seq_max;
            seq_count += c.seq_count;
        }
    }
    char range[48];
    wal_format_range(range, sizeof range, seq_count, seq_min, seq_max);
    fprintf(out,
            "total: %zu segments, %" PRIu64 " entries, %" PRIu64 " bytes, sequences %s, %" PRIu64
            " damaged\n",
            n, total_entries, total_bytes, range, damaged);
    free(ids);
    return damaged ? 1 : 0;
}
