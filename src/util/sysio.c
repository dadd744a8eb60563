/*
 * sysio.c: the file I/O seam, its fault injector, and the crash points (contract in sysio.h).
 *
 * WHAT IT OWNS. Two pieces of process-wide state, both off the hot path:
 *   - the armed fault: `fault_armed` (atomic) says whether anything is armed; everything else
 *     (the filter, the counters, the report) lives in `fault` under `fault_mu`. A wrapper reads
 *     `fault_armed` with one relaxed load; only when it is set does it take the mutex, resolve the
 *     path the call acts on (readlink of /proc/self/fd/N for descriptors: no table of open
 *     descriptors is kept, so disarmed code pays nothing for the feature), count the call if it
 *     matches, and decide: pass, fail, or (a write) write half. sysio_should_fail() hands that
 *     same decision (sysio_decide, one code path) to code that does its own I/O after asking (the
 *     SQLite VFS shim, catalog/sqlite_vfs.c), for a path it names. A relaxed load may see a stale
 *     flag for a moment after arming or disarming; the decision is re-checked under the mutex, so
 *     the only effect is that a call racing with sysio_fault_arm() may or may not be counted,
 *     which a test arming while its own threads do I/O must accept anyway.
 *   - the crash point read from INGOT_CRASH_AT ("name" or "name:N") on the first evaluation of
 *     any point (pthread_once), then a hit counter. `crash_state` is published with release
 *     after the name and count are stored, and read with acquire.
 *
 * INVARIANTS. Disarmed, every wrapper is exactly its system call. Armed, a call that does not
 * match is exactly its system call too. An injected failure does nothing on disk (close() still
 * releases the descriptor, as Linux does). The report's first_path is resolved at injection.
 *
 * FAILURE. The injector allocates only when armed (the copy of path_contains, and a temporary
 * iovec array for a short writev); if that allocation fails, the call fails with the armed errno,
 * which is what the test asked for at that point anyway. Crash points cannot fail: they log one
 * line and _exit(137).
 */
#include "util/sysio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

static const char *const sysio_op_names[SYSIO_OP_COUNT] = {
    "open", "read", "write", "sync", "rename", "unlink", "mkdir", "truncate", "close",
};

const char *sysio_op_name(enum sysio_op op)
{
    return (unsigned)op < SYSIO_OP_COUNT ? sysio_op_names[op] : "?";
}

/* --- the fault injector --------------------------------------------------------------------- */

static atomic_bool fault_armed; /* atomic: the fast-path flag */
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    unsigned ops;              /* fault_mu */
    char *path_contains;       /* fault_mu: NULL = any path */
    uint64_t nth;              /* fault_mu */
    bool persistent;           /* fault_mu */
    int errno_value;           /* fault_mu */
    bool short_write;          /* fault_mu */
    uint64_t max_failures;     /* fault_mu: persistent: heal after this many (0 = never) */
    bool tripped;              /* fault_mu: the nth matching call came */
    sysio_fault_report report; /* fault_mu */
} fault;

/*
 * The path a call acts on into buf: the descriptor's (fd >= 0), else name resolved against dirfd.
 * "" if it cannot be resolved.
 */
static void sysio_resolve(int fd, int dirfd, const char *name, char *buf, size_t len)
{
    char link[64];
    buf[0] = '\0';
    if (fd < 0 && (!name || name[0] == '/' || dirfd == AT_FDCWD)) {
        snprintf(buf, len, "%s", name ? name : "");
        return;
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd >= 0 ? fd : dirfd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n < 0) n = 0;
    buf[n] = '\0';
    if (fd < 0 && (size_t)n + 1 < len) snprintf(buf + n, len - (size_t)n, "/%s", name);
}

/* Slow path of sysio_decide: the injector is (or was a moment ago) armed. */
static enum sysio_verdict sysio_decide_armed(enum sysio_op op, int fd, int dirfd, const char *name,
                                             int *err)
{
    char path[PATH_MAX];
    enum sysio_verdict v = SYSIO_PASS;
    pthread_mutex_lock(&fault_mu);
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed)) goto out;
    if (!(fault.ops & SYSIO_MASK(op))) goto out;
    path[0] = '\0';
    bool resolved = false;
    if (fault.path_contains) {
        sysio_resolve(fd, dirfd, name, path, sizeof path);
        resolved = true;
        if (!strstr(path, fault.path_contains)) goto out;
    }
    fault.report.matched++;
    if (!fault.tripped && fault.report.matched == fault.nth) {
        fault.tripped = true;
        v = fault.short_write && op == SYSIO_OP_WRITE ? SYSIO_SHORT : SYSIO_FAIL;
    } else if (fault.tripped && fault.persistent &&
               (fault.max_failures == 0 || fault.report.injected < fault.max_failures)) {
        v = SYSIO_FAIL;
    }
    if (v != SYSIO_PASS) {
        if (fault.report.injected++ == 0) {
            if (!resolved) sysio_resolve(fd, dirfd, name, path, sizeof path);
            fault.report.first_op = op;
            snprintf(fault.report.first_path, sizeof fault.report.first_path, "%s", path);
        }
        *err = fault.errno_value;
    }
out:
    pthread_mutex_unlock(&fault_mu);
    return v;
}

/* Pass, fail (errno in *err) or shorten this call. One relaxed load while disarmed. */
static inline enum sysio_verdict sysio_decide(enum sysio_op op, int fd, int dirfd, const char *name,
                                              int *err)
{
    if (__builtin_expect(!atomic_load_explicit(&fault_armed, memory_order_relaxed), 1))
        return SYSIO_PASS;
    return sysio_decide_armed(op, fd, dirfd, name, err);
}

int sysio_fault_arm(const sysio_fault *f)
{
    if (!f || f->nth == 0 || (f->ops & ~SYSIO_MASK_ALL)) return -EINVAL;
    char *copy = NULL;
    if (f->path_contains && !(copy = strdup(f->path_contains))) return -ENOMEM;
    pthread_mutex_lock(&fault_mu);
    free(fault.path_contains);
    fault.ops = f->ops ? f->ops : SYSIO_MASK_ALL;
    fault.path_contains = copy;
    fault.nth = f->nth;
    fault.persistent = f->persistent;
    fault.errno_value = f->errno_value ? f->errno_value : EIO;
    fault.short_write = f->short_write;
    fault.max_failures = f->max_failures;
    fault.tripped = false;
    memset(&fault.report, 0, sizeof fault.report);
    atomic_store(&fault_armed, true);
    pthread_mutex_unlock(&fault_mu);
    return 0;
}

enum sysio_verdict sysio_should_fail(enum sysio_op op, const char *path, int *err)
{
    return sysio_decide(op, -1, AT_FDCWD, path ? path : "", err);
}

void sysio_fault_disarm(void)
{
    pthread_mutex_lock(&fault_mu);
    atomic_store(&fault_armed, false);
    free(fault.path_contains);
    fault.path_contains = NULL;
    pthread_mutex_unlock(&fault_mu);
}

void sysio_fault_get_report(sysio_fault_report *out)
{
    pthread_mutex_lock(&fault_mu);
    *out = fault.report;
    pthread_mutex_unlock(&fault_mu);
}

/* --- the wrappers ---------------------------------------------------------------------------- */

/* Fail the call: errno = err, return -1. */
#define SYSIO_FAILED(err) (errno = (err), -1)

int sysio_open(const char *path, int flags, mode_t mode)
{
    int err;
    if (sysio_decide(SYSIO_OP_OPEN, -1, AT_FDCWD, path, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return open(path, flags, mode);
}

int sysio_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    int err;
    if (sysio_decide(SYSIO_OP_OPEN, -1, dirfd, path, &err) != SYSIO_PASS) return SYSIO_FAILED(err);
    return openat(dirfd, path, flags, mode);
}

DIR *sysio_opendir(const char *path)
{
    int err;
    if (sysio_decide(SYSIO_OP_OPEN, -1, AT_FDCWD, path, &err) != SYSIO_PASS) {
        errno = err;
        return NULL;
    }
    return opendir(path);
}

ssize_t sysio_read(int fd, void *buf, size_t len)
{
    int err;
    if (sysio_decide(SYSIO_OP_READ, fd, AT_FDCWD, NULL, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return read(fd, buf, len);
}

ssize_t sysio_pread(int fd, void *buf, size_t len, off_t offset)
{
    int err;
    if (sysio_decide(SYSIO_OP_READ, fd, AT_FDCWD, NULL, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return pread(fd, buf, len, offset);
}

ssize_t sysio_write(int fd, const void *buf, size_t len)
{
    int err;
    enum sysio_verdict v = sysio_decide(SYSIO_OP_WRITE, fd, AT_FDCWD, NULL, &err);
    if (v == SYSIO_SHORT && len >= 2) return write(fd, buf, len / 2);
    if (v != SYSIO_PASS) return SYSIO_FAILED(err);
    return write(fd, buf, len);
}

ssize_t sysio_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
    int err;
    enum sysio_verdict v = sysio_decide(SYSIO_OP_WRITE, fd, AT_FDCWD, NULL, &err);
    if (v == SYSIO_SHORT && len >= 2) return pwrite(fd, buf, len / 2, offset);
    if (v != SYSIO_PASS) return SYSIO_FAILED(err);
    return pwrite(fd, buf, len, offset);
}

/* The first half of the bytes of iov[0..iovcnt) with one writev; -1/errno = err if impossible. */
static ssize_t sysio_writev_half(int fd, const struct iovec *iov, int iovcnt, int err)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total < 2 || iovcnt <= 0) return SYSIO_FAILED(err);
    struct iovec *copy = malloc((size_t)iovcnt * sizeof *copy);
    if (!copy) return SYSIO_FAILED(err);
    size_t want = total / 2;
    int n = 0;
    for (int i = 0; i < iovcnt && want > 0; i++) {
        copy[n] = iov[i];
        if (copy[n].iov_len > want) copy[n].iov_len = want;
        want -= copy[n].iov_len;
        n++;
    }
    ssize_t r = writev(fd, copy, n);
    int saved = errno;
    free(copy);
    errno = saved;
    return r;
}

ssize_t sysio_writev(int fd, const struct iovec *iov, int iovcnt)
{
    int err;
    enum sysio_verdict v = sysio_decide(SYSIO_OP_WRITE, fd, AT_FDCWD, NULL, &err);
    if (v == SYSIO_SHORT) return sysio_writev_half(fd, iov, iovcnt, err);
    if (v != SYSIO_PASS) return SYSIO_FAILED(err);
    return writev(fd, iov, iovcnt);
}

int sysio_fsync(int fd)
{
    int err;
    if (sysio_decide(SYSIO_OP_SYNC, fd, AT_FDCWD, NULL, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return fsync(fd);
}

int sysio_fdatasync(int fd)
{
    int err;
    if (sysio_decide(SYSIO_OP_SYNC, fd, AT_FDCWD, NULL, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return fdatasync(fd);
}

int sysio_ftruncate(int fd, off_t length)
{
    int err;
    if (sysio_decide(SYSIO_OP_TRUNCATE, fd, AT_FDCWD, NULL, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return ftruncate(fd, length);
}

int sysio_close(int fd)
{
    int err;
    if (sysio_decide(SYSIO_OP_CLOSE, fd, AT_FDCWD, NULL, &err) != SYSIO_PASS) {
        close(fd); /* Linux releases the descriptor even when close() fails */
        return SYSIO_FAILED(err);
    }
    return close(fd);
}

int sysio_rename(const char *from, const char *to)
{
    int err;
    if (sysio_decide(SYSIO_OP_RENAME, -1, AT_FDCWD, from, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return rename(from, to);
}

int sysio_renameat(int from_dirfd, const char *from, int to_dirfd, const char *to)
{
    int err;
    if (sysio_decide(SYSIO_OP_RENAME, -1, from_dirfd, from, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return renameat(from_dirfd, from, to_dirfd, to);
}

int sysio_renameat2(int from_dirfd, const char *from, int to_dirfd, const char *to,
                    unsigned int flags)
{
    int err;
    if (sysio_decide(SYSIO_OP_RENAME, -1, from_dirfd, from, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return renameat2(from_dirfd, from, to_dirfd, to, flags);
}

int sysio_unlink(const char *path)
{
    int err;
    if (sysio_decide(SYSIO_OP_UNLINK, -1, AT_FDCWD, path, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return unlink(path);
}

int sysio_unlinkat(int dirfd, const char *path, int flags)
{
    int err;
    if (sysio_decide(SYSIO_OP_UNLINK, -1, dirfd, path, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return unlinkat(dirfd, path, flags);
}

int sysio_mkdir(const char *path, mode_t mode)
{
    int err;
    if (sysio_decide(SYSIO_OP_MKDIR, -1, AT_FDCWD, path, &err) != SYSIO_PASS)
        return SYSIO_FAILED(err);
    return mkdir(path, mode);
}

int sysio_mkdirat(int dirfd, const char *path, mode_t mode)
{
    int err;
    if (sysio_decide(SYSIO_OP_MKDIR, -1, dirfd, path, &err) != SYSIO_PASS) return SYSIO_FAILED(err);
    return mkdirat(dirfd, path, mode);
}

/* fsync the directory that holds the last component of p (p is modified and restored). */
static int fsync_parent(char *p)
{
    char *slash = strrchr(p, '/');
    const char *parent = ".";
    if (slash == p) {
        parent = "/";
    } else if (slash) {
        *slash = '\0';
        parent = p;
    }
    int rc = 0;
    int fd = sysio_open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) rc = -errno;
    while (fd >= 0 && sysio_fsync(fd) != 0) {
        if (errno != EINTR) {
            rc = -errno;
            break;
        }
    }
    if (fd >= 0) sysio_close(fd);
    if (slash && slash != p) *slash = '/';
    return rc;
}

int sysio_mkdirs(const char *path)
{
    size_t len = strlen(path);
    char *p = strdup(path);
    if (!p) return -ENOMEM;
    int rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (i < len && p[i] != '/') continue;
        if (p[i - 1] == '/') continue; /* "a//b" */
        char saved = p[i];
        p[i] = '\0';
        if (sysio_mkdir(p, 0755) == 0)
            rc = fsync_parent(p);
        else if (errno != EEXIST)
            rc = -errno;
        p[i] = saved;
    }
    free(p);
    return rc;
}

/* --- crash points ---------------------------------------------------------------------------- */

enum { CRASH_UNREAD = 0, CRASH_NONE = 1, CRASH_ARMED = 2 };

static atomic_int crash_state; /* atomic: CRASH_*; ARMED published with release */
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static char crash_name[128];            /* written once before crash_state becomes ARMED */
static uint64_t crash_nth;              /* likewise */
static atomic_uint_fast64_t crash_hits; /* atomic: evaluations of the armed point */

static void crash_read_env(void)
{
    const char *v = getenv("INGOT_CRASH_AT");
    int state = CRASH_NONE;
    if (v && *v) {
        const char *colon = strrchr(v, ':');
        size_t len = colon ? (size_t)(colon - v) : strlen(v);
        uint64_t nth = 1;
        if (colon) {
            char *end;
            nth = strtoull(colon + 1, &end, 10);
            if (*end || end == colon + 1) nth = 0;
        }
        if (len > 0 && len < sizeof crash_name && nth > 0) {
            memcpy(crash_name, v, len);
            crash_name[len] = '\0';
            crash_nth = nth;
            state = CRASH_ARMED;
            log_warn("crash point armed: the process ends at hit %llu of \"%s\" (INGOT_CRASH_AT)",
                     (unsigned long long)nth, crash_name);
        } else {
            log_error("INGOT_CRASH_AT=%s is not \"name\" or \"name:N\" (N >= 1); ignored", v);
        }
    }
    atomic_store_explicit(&crash_state, state, memory_order_release);
}

bool sysio_crash_point_hit(const char *name)
{
    int s = atomic_load_explicit(&crash_state, memory_order_acquire);
    if (__builtin_expect(s == CRASH_NONE, 1)) return false;
    if (s == CRASH_UNREAD) {
        pthread_once(&crash_once, crash_read_env);
        s = atomic_load_explicit(&crash_state, memory_order_acquire);
        if (s != CRASH_ARMED) return false;
    }
    if (strcmp(name, crash_name) != 0) return false;
    return atomic_fetch_add(&crash_hits, 1) + 1 == crash_nth;
}

void sysio_crash_now(const char *name)
{
    log_error("crash point \"%s\" reached (INGOT_CRASH_AT): exiting with status 137 at once", name);
    _exit(137);
}
