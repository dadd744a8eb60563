/*
 * sqlite_vfs.c: the SQLite catalog's file I/O seam: a VFS ("ingot-sysio") that is SQLite's
 * default (unix) VFS with every file call it makes on our behalf first put to the fault injector
 * of util/sysio.h (SQLite's test_vfs.c and test_devsym.c are the model: a shim that forwards).
 *
 * WHAT IT OWNS. One sqlite3_vfs, registered once per process (pthread_once) and never as the
 * default VFS: catalog_sqlite.c names it in sqlite3_open_v2, so other SQLite users of the process
 * (tests reading a catalog file, say) are untouched. It holds the VFS it wraps (`real`, the
 * default VFS when it was registered) and three sqlite3_io_methods tables, one per version of the
 * methods a real file may have (1-3), so a wrapped file offers exactly what the real one does
 * (SQLite only uses WAL mode when xShmMap is there, i.e. version >= 2).
 *
 * FORMAT. Each open file is a `vfs_file`: our sqlite3_file header, the path it was opened with,
 * and right behind it (szOsFile = ours + the real VFS's) the real VFS's file, opened and used
 * through the real VFS. The path is the name SQLite gave xOpen (a full path: the database, its
 * -wal or -journal file), valid until xClose by SQLite's contract; "" for a temporary file.
 *
 * THE SEAM. Before delegating, each of these calls asks sysio_should_fail(kind, path):
 *     xOpen     SYSIO_OP_OPEN      fails with SQLITE_CANTOPEN, nothing opened
 *     xDelete   SYSIO_OP_UNLINK    SQLITE_IOERR_DELETE, nothing deleted
 *     xRead     SYSIO_OP_READ      SQLITE_IOERR_READ, nothing read
 *     xWrite    SYSIO_OP_WRITE     SQLITE_FULL for ENOSPC or EDQUOT, else SQLITE_IOERR_WRITE;
 *                                  nothing written, or for a short-write fault the first half of
 *                                  the bytes (a torn page: xWrite has no short-write contract,
 *                                  so the call then fails as a write that ran out of space does)
 *     xSync     SYSIO_OP_SYNC      SQLITE_IOERR_FSYNC, nothing synced
 *     xTruncate SYSIO_OP_TRUNCATE  SQLITE_IOERR_TRUNCATE, nothing truncated
 *     xClose    SYSIO_OP_CLOSE     SQLITE_IOERR_CLOSE, the real file closed all the same (as
 *                                  close(2) releases the descriptor when it fails)
 * These are the codes the unix VFS itself returns for those failures, so SQLite reacts as it
 * would to a real disk error. Every other call (locks, file size, file controls, the wal-index
 * xShm* calls on the -shm file, memory-mapped xFetch: off, mmap_size is 0) and every other VFS
 * method (xAccess, xFullPathname, randomness, time, ...) is forwarded untouched: the injector
 * has no kind for them, and the -shm file is a rebuildable index, not data.
 *
 * INVARIANTS. Disarmed, each wrapped call is the real call plus a call of sysio_should_fail,
 * which then is one relaxed atomic load. A call the injector fails never reaches the real VFS
 * (short writes and close excepted, as said). The VFS object and its method tables are written
 * once, before registration, and only read after it; files are used by one connection at a time
 * (SQLite's rule), so this file needs no lock of its own; the injector has its own.
 *
 * FAILURE. Registration can fail only if SQLite has no default VFS or sqlite3_vfs_register
 * fails; catalog_sqlite_vfs() then returns NULL (logged once) and the catalog open fails. What
 * SQLite does with an injected error (roll back, retry a lock, report it) is its own recovery;
 * the catalog reports the call as INGOT_E_CATALOG and the handle stays usable.
 */
#include "catalog/sqlite_vfs.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>

#include "util/log.h"
#include "util/sysio.h"

typedef struct vfs_file {
    sqlite3_file base; /* pMethods: one of vfs_methods[], or NULL when nothing is open */
    const char *path;  /* as given to xOpen (SQLite keeps it valid until xClose); "" if none */
    sqlite3_file *real_file; /* the real VFS's file, right behind this struct */
} vfs_file;

/* sizeof(vfs_file) rounded up so the real file behind it is aligned for anything. */
#define VFS_FILE_BYTES ((sizeof(vfs_file) + 15u) & ~(size_t)15u)

static sqlite3_vfs *real_vfs; /* written once before registration, read-only after */
static sqlite3_vfs vfs;       /* likewise */
static pthread_once_t vfs_once = PTHREAD_ONCE_INIT;
static const char *vfs_registered_name; /* set by vfs_register: the name, or NULL */

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((vfs_file *)f)->real_file;
}

static const char *path_of(sqlite3_file *f)
{
    return ((vfs_file *)f)->path;
}

/* ---- the calls the injector may fail ---- */

static int vfs_file_close(sqlite3_file *f)
{
    int err = 0;
    enum sysio_verdict v = sysio_should_fail(SYSIO_OP_CLOSE, path_of(f), &err);
    sqlite3_file *real = real_of(f);
    int rc = real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
    f->pMethods = NULL;
    return v != SYSIO_PASS ? SQLITE_IOERR_CLOSE : rc;
}

static int vfs_file_read(sqlite3_file *f, void *buf, int amount, sqlite3_int64 offset)
{
    int err = 0;
    if (sysio_should_fail(SYSIO_OP_READ, path_of(f), &err) != SYSIO_PASS) return SQLITE_IOERR_READ;
    sqlite3_file *real = real_of(f);
    return real->pMethods->xRead(real, buf, amount, offset);
}

static int vfs_file_write(sqlite3_file *f, const void *buf, int amount, sqlite3_int64 offset)
{
    int err = 0;
    sqlite3_file *real = real_of(f);
    enum sysio_verdict v = sysio_should_fail(SYSIO_OP_WRITE, path_of(f), &err);
    if (v == SYSIO_PASS) return real->pMethods->xWrite(real, buf, amount, offset);
    if (v == SYSIO_SHORT && amount >= 2) {
        int rc = real->pMethods->xWrite(real, buf, amount / 2, offset);
        if (rc != SQLITE_OK) return rc;
    }
    return err == ENOSPC || err == EDQUOT ? SQLITE_FULL : SQLITE_IOERR_WRITE;
}

static int vfs_file_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int err = 0;
    if (sysio_should_fail(SYSIO_OP_TRUNCATE, path_of(f), &err) != SYSIO_PASS)
        return SQLITE_IOERR_TRUNCATE;
    sqlite3_file *real = real_of(f);
    return real->pMethods->xTruncate(real, size);
}

static int vfs_file_sync(sqlite3_file *f, int flags)
{
    int err = 0;
    if (sysio_should_fail(SYSIO_OP_SYNC, path_of(f), &err) != SYSIO_PASS) return SQLITE_IOERR_FSYNC;
    sqlite3_file *real = real_of(f);
    return real->pMethods->xSync(real, flags);
}

/* ---- forwarded file calls ---- */

static int vfs_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xFileSize(real, size);
}

static int vfs_file_lock(sqlite3_file *f, int level)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xLock(real, level);
}

static int vfs_file_unlock(sqlite3_file *f, int level)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xUnlock(real, level);
}

static int vfs_file_check_reserved(sqlite3_file *f, int *out)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xCheckReservedLock(real, out);
}

static int vfs_file_control(sqlite3_file *f, int op, void *arg)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xFileControl(real, op, arg);
}

static int vfs_file_sector_size(sqlite3_file *f)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xSectorSize(real);
}

static int vfs_file_device_characteristics(sqlite3_file *f)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xDeviceCharacteristics(real);
}

static int vfs_file_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xShmMap(real, region, size, extend, out);
}

static int vfs_file_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xShmLock(real, offset, n, flags);
}

static void vfs_file_shm_barrier(sqlite3_file *f)
{
    sqlite3_file *real = real_of(f);
    real->pMethods->xShmBarrier(real);
}

static int vfs_file_shm_unmap(sqlite3_file *f, int delete_flag)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xShmUnmap(real, delete_flag);
}

static int vfs_file_fetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xFetch(real, offset, amount, out);
}

static int vfs_file_unfetch(sqlite3_file *f, sqlite3_int64 offset, void *p)
{
    sqlite3_file *real = real_of(f);
    return real->pMethods->xUnfetch(real, offset, p);
}

/* vfs_methods[v - 1]: the methods of a wrapped file whose real methods are version v. */
#define VFS_METHODS_V1                                                                             \
    .xClose = vfs_file_close, .xRead = vfs_file_read, .xWrite = vfs_file_write,                    \
    .xTruncate = vfs_file_truncate, .xSync = vfs_file_sync, .xFileSize = vfs_file_size,            \
    .xLock = vfs_file_lock, .xUnlock = vfs_file_unlock,                                            \
    .xCheckReservedLock = vfs_file_check_reserved, .xFileControl = vfs_file_control,               \
    .xSectorSize = vfs_file_sector_size, .xDeviceCharacteristics = vfs_file_device_characteristics
#define VFS_METHODS_V2                                                                             \
    VFS_METHODS_V1, .xShmMap = vfs_file_shm_map, .xShmLock = vfs_file_shm_lock,                    \
                    .xShmBarrier = vfs_file_shm_barrier, .xShmUnmap = vfs_file_shm_unmap

static const sqlite3_io_methods vfs_methods[3] = {
    {.iVersion = 1, VFS_METHODS_V1},
    {.iVersion = 2, VFS_METHODS_V2},
    {.iVersion = 3, VFS_METHODS_V2, .xFetch = vfs_file_fetch, .xUnfetch = vfs_file_unfetch},
};

/* ---- the VFS ---- */

static int vfs_open(sqlite3_vfs *self, const char *name, sqlite3_file *file, int flags,
                    int *out_flags)
{
    (void)self;
    vfs_file *f = (vfs_file *)file;
    f->base.pMethods = NULL;
    f->path = name ? name : "";
    f->real_file = (sqlite3_file *)((char *)file + VFS_FILE_BYTES);
    f->real_file->pMethods = NULL;
    int err = 0;
    if (sysio_should_fail(SYSIO_OP_OPEN, f->path, &err) != SYSIO_PASS) return SQLITE_CANTOPEN;
    int rc = real_vfs->xOpen(real_vfs, name, f->real_file, flags, out_flags);
    /* SQLite calls xClose whenever pMethods is set, even after a failed open: mirror the real */
    const sqlite3_io_methods *m = f->real_file->pMethods;
    if (m) {
        int version = m->iVersion < 1 ? 1 : m->iVersion > 3 ? 3 : m->iVersion;
        f->base.pMethods = &vfs_methods[version - 1];
    }
    return rc;
}

static int vfs_delete(sqlite3_vfs *self, const char *name, int sync_dir)
{
    (void)self;
    int err = 0;
    if (sysio_should_fail(SYSIO_OP_UNLINK, name, &err) != SYSIO_PASS) return SQLITE_IOERR_DELETE;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *self, const char *name, int flags, int *out)
{
    (void)self;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *self, const char *name, int n, char *out)
{
    (void)self;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *self, const char *name)
{
    (void)self;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void vfs_dl_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*vfs_dl_sym(sqlite3_vfs *self, void *handle, const char *symbol))(void)
{
    (void)self;
    return real_vfs->xDlSym(real_vfs, handle, symbol);
}

static void vfs_dl_close(sqlite3_vfs *self, void *handle)
{
    (void)self;
    real_vfs->xDlClose(real_vfs, handle);
}

static int vfs_randomness(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *self, int microseconds)
{
    (void)self;
    return real_vfs->xSleep(real_vfs, microseconds);
}

static int vfs_current_time(sqlite3_vfs *self, double *out)
{
    (void)self;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int vfs_get_last_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int vfs_current_time_int64(sqlite3_vfs *self, sqlite3_int64 *out)
{
    (void)self;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int vfs_set_system_call(sqlite3_vfs *self, const char *name, sqlite3_syscall_ptr p)
{
    (void)self;
    return real_vfs->xSetSystemCall(real_vfs, name, p);
}

static sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs *self, const char *name)
{
    (void)self;
    return real_vfs->xGetSystemCall(real_vfs, name);
}

static const char *vfs_next_system_call(sqlite3_vfs *self, const char *name)
{
    (void)self;
    return real_vfs->xNextSystemCall(real_vfs, name);
}

static void vfs_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real) {
        log_error("catalog: SQLite has no default VFS to wrap");
        return;
    }
    int version = real->iVersion > 3 ? 3 : real->iVersion;
    vfs = (sqlite3_vfs){
        .iVersion = version,
        .szOsFile = (int)VFS_FILE_BYTES + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = CATALOG_SQLITE_VFS_NAME,
        .xOpen = vfs_open,
        .xDelete = vfs_delete,
        .xAccess = vfs_access,
        .xFullPathname = vfs_full_pathname,
        .xDlOpen = real->xDlOpen ? vfs_dl_open : NULL,
        .xDlError = real->xDlError ? vfs_dl_error : NULL,
        .xDlSym = real->xDlSym ? vfs_dl_sym : NULL,
        .xDlClose = real->xDlClose ? vfs_dl_close : NULL,
        .xRandomness = vfs_randomness,
        .xSleep = vfs_sleep,
        .xCurrentTime = vfs_current_time,
        .xGetLastError = vfs_get_last_error,
    };
    if (version >= 2) vfs.xCurrentTimeInt64 = vfs_current_time_int64;
    if (version >= 3 && real->xSetSystemCall) {
        vfs.xSetSystemCall = vfs_set_system_call;
        vfs.xGetSystemCall = vfs_get_system_call;
        vfs.xNextSystemCall = vfs_next_system_call;
    }
    real_vfs = real;
    int rc = sqlite3_vfs_register(&vfs, 0);
    if (rc != SQLITE_OK) {
        log_error("catalog: cannot register the SQLite VFS %s: %s", CATALOG_SQLITE_VFS_NAME,
                  sqlite3_errstr(rc));
        return;
    }
    vfs_registered_name = CATALOG_SQLITE_VFS_NAME;
}

const char *catalog_sqlite_vfs(void)
{
    pthread_once(&vfs_once, vfs_register);
    return vfs_registered_name;
}
