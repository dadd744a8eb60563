/*
 * sysio.h: the file I/O seam (SQLite's test VFS is the model) and named crash points.
 *
 * Every file system call of the WAL, the file object store, the ingester and the persister goes
 * through these wrappers; the SQLite catalog's file calls go through catalog/sqlite_vfs.c, a VFS
 * that asks the same injector (sysio_should_fail) before it calls down to SQLite's unix VFS. Each
 * one behaves exactly like the system call it names (same arguments, same result: -1 and errno on
 * failure, EINTR and short counts passed through) unless a test armed the fault injector. Disarmed,
 * a wrapper costs one relaxed atomic load.
 *
 * The fault injector (process-wide, thread-safe) fails the Nth call, counted from arming, that
 * matches a filter: a set of operation kinds and, optionally, a substring of the path the call
 * acts on (for calls on a file descriptor, the path the descriptor was opened with, as the kernel
 * reports it in /proc/self/fd; for *at calls, the directory's path joined with the name). The
 * fault is transient (that one call fails) or persistent (that call and every later matching one
 * fail, as on a dead disk; optionally only until max_failures calls were failed, as on a disk
 * that fills up and is then cleared). A failed call does nothing, except close(), which closes the
 * descriptor anyway, as Linux does when close() fails. A write fault may instead be a short write:
 * the call writes only the first half of its bytes and returns that count (once; with
 * persistent, every later matching call fails with the errno, as when a disk fills up).
 *
 * Crash points: INGOT_CRASH_POINT("name") ends the process at once (_exit(137), no atexit
 * handlers, no buffers flushed: as close to kill -9 as a process can do to itself) when the
 * environment variable INGOT_CRASH_AT was "name" or "name:N" (the Nth time the point is reached,
 * counting from 1) when the first crash point was evaluated; otherwise it is a no-op costing one
 * relaxed atomic load. The points are named in the files that hold them (grep INGOT_CRASH_POINT);
 * tests/blackbox/test_crash_points.py drives them. Building with -DINGOT_NO_CRASH_POINTS compiles
 * them out.
 */
#ifndef INGOT_SYSIO_H
#define INGOT_SYSIO_H

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The kinds of calls the injector can fail. */
enum sysio_op {
    SYSIO_OP_OPEN = 0, /* open, openat, opendir */
    SYSIO_OP_READ,     /* read, pread */
    SYSIO_OP_WRITE,    /* write, pwrite, writev */
    SYSIO_OP_SYNC,     /* fsync, fdatasync */
    SYSIO_OP_RENAME,   /* rename, renameat, renameat2 */
    SYSIO_OP_UNLINK,   /* unlink, unlinkat */
    SYSIO_OP_MKDIR,    /* mkdir, mkdirat */
    SYSIO_OP_TRUNCATE, /* ftruncate */
    SYSIO_OP_CLOSE,    /* close */
    SYSIO_OP_COUNT
};
#define SYSIO_MASK(op) (1u << (op))
#define SYSIO_MASK_ALL ((1u << SYSIO_OP_COUNT) - 1u)

/* "open", "read", ... (never NULL). */
const char *sysio_op_name(enum sysio_op op);

/* --- the wrappers: same contract as the system calls they name --- */
int sysio_open(const char *path, int flags, mode_t mode);
int sysio_openat(int dirfd, const char *path, int flags, mode_t mode);
DIR *sysio_opendir(const char *path);
ssize_t sysio_read(int fd, void *buf, size_t len);
ssize_t sysio_pread(int fd, void *buf, size_t len, off_t offset);
ssize_t sysio_write(int fd, const void *buf, size_t len);
ssize_t sysio_pwrite(int fd, const void *buf, size_t len, off_t offset);
ssize_t sysio_writev(int fd, const struct iovec *iov, int iovcnt);
int sysio_fsync(int fd);
int sysio_fdatasync(int fd);
int sysio_ftruncate(int fd, off_t length);
int sysio_close(int fd);
int sysio_rename(const char *from, const char *to);
int sysio_renameat(int from_dirfd, const char *from, int to_dirfd, const char *to);
int sysio_renameat2(int from_dirfd, const char *from, int to_dirfd, const char *to,
                    unsigned int flags);
int sysio_unlink(const char *path);
int sysio_unlinkat(int dirfd, const char *path, int flags);
int sysio_mkdir(const char *path, mode_t mode);
int sysio_mkdirat(int dirfd, const char *path, mode_t mode);

/*
 * mkdir -p path (mode 0755) through the wrappers above, fsyncing the parent of every directory it
 * creates, so a directory that exists when this returns 0 still exists after a crash. Returns 0,
 * -errno of the first failed call, or -ENOMEM.
 */
int sysio_mkdirs(const char *path);

/* --- the fault injector (tests) --- */

typedef struct sysio_fault {
    unsigned ops;              /* SYSIO_MASK() bits of the kinds that count; 0 = every kind */
    const char *path_contains; /* only calls on paths containing this (copied); NULL = any */
    uint64_t nth;              /* fail the nth matching call from now (1 = the next one) */
    bool persistent;           /* and every matching call after it */
    int errno_value;           /* errno of a failed call (EIO if 0) */
    bool short_write;          /* a write kind call at nth writes half its bytes instead */
    uint64_t max_failures;     /* persistent: heal after this many failed calls (0: never) */
} sysio_fault;

/* What the injector saw since it was last armed. */
typedef struct sysio_fault_report {
    uint64_t matched;          /* calls that matched the filter */
    uint64_t injected;         /* calls failed or shortened */
    enum sysio_op first_op;    /* the first injected call's kind (if injected > 0) */
    char first_path[PATH_MAX]; /* and its path ("" if it could not be resolved) */
} sysio_fault_report;

/*
 * Arm the injector (replacing any earlier fault and resetting the report). Returns 0, or
 * -EINVAL for nth == 0 or an unknown op bit, -ENOMEM if path_contains cannot be copied.
 */
int sysio_fault_arm(const sysio_fault *fault);

/* Disarm: every wrapper calls the system again and nothing else. The report is kept. */
void sysio_fault_disarm(void);

/* The report of the current (or last) arming. */
void sysio_fault_get_report(sysio_fault_report *out);

/* What the injector decides for one call. */
enum sysio_verdict {
    SYSIO_PASS = 0, /* make the call */
    SYSIO_FAIL,     /* fail it: do nothing, report the errno */
    SYSIO_SHORT,    /* a write kind call: write only the first half of its bytes */
};

/*
 * The decision for a call of kind op on path, for code that makes its file calls outside these
 * wrappers (the SQLite VFS shim, catalog/sqlite_vfs.c). It counts and decides exactly as the
 * wrappers do (it is their code); on SYSIO_FAIL or SYSIO_SHORT, *err is the errno to report.
 * path is matched as given ("" matches no path filter). Disarmed: one relaxed atomic load.
 */
enum sysio_verdict sysio_should_fail(enum sysio_op op, const char *path, int *err);

/* --- crash points --- */

/* True exactly when the process must crash at this evaluation of point `name` (see above). */
bool sysio_crash_point_hit(const char *name);

/* Log "crash point NAME reached" to stderr and _exit(137). */
void sysio_crash_now(const char *name) __attribute__((noreturn));

#ifdef INGOT_NO_CRASH_POINTS
#define INGOT_CRASH_POINT(name) ((void)0)
#define INGOT_CRASH_POINT_HIT(name) false
#else
#define INGOT_CRASH_POINT(name)                                                                    \
    do {                                                                                           \
        if (sysio_crash_point_hit(name)) sysio_crash_now(name);                                    \
    } while (0)
#define INGOT_CRASH_POINT_HIT(name) sysio_crash_point_hit(name)
#endif

#endif
