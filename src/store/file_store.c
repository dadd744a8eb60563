/*
 * file_store.c: the `file` object store: objects as files under one root directory
 * (<data-dir>/objects by default). The interface and the path rules are in object_store.h; the
 * segment encoding and validation in store_path.c.
 *
 * ON DISK. An object "a/b/c.parquet" is the file <root>/a/b/c.parquet. Every path is checked by
 * object_store_path_check() before any system call, so every segment is non-empty, not "." or
 * "..", and made of [A-Za-z0-9._-%] only: nothing resolves outside the root. Two kinds of names
 * use '~', a byte no segment contains, so they never collide with an object:
 *   - temporary files ".tmp~<16 hex>", made by put() in the object's directory;
 *   - long segments: a file name may have at most 255 bytes, a segment (a 255-byte UTF-8 table
 *     name encodes to 765 bytes) may be longer. A segment of more than 255 bytes is stored as
 *     directories of 240 bytes each followed by '~' ("<240 bytes>~/<240 bytes>~/<rest>"), the
 *     rest being 16..255 bytes. The mapping is a function of the segment, and list() joins a
 *     "<x>~" directory to what is below it without a '/', so callers only see their own paths.
 *
 * PUT. Under `dir_mu`, create the missing directories one by one (mkdirat, then fsync of the
 * parent that gained the entry); then, without the lock, write the temporary file (O_EXCL),
 * fsync it, close it, renameat() it over the final name and fsync the directory. When put()
 * returns 0 the object, and every directory on its way, is durable, and a reader sees the old
 * object or the whole new one. Concurrent puts to one path each use their own temporary file;
 * the last rename wins. `dir_mu` exists because "mkdir said EEXIST" does not mean "the entry is
 * durable": a put that finds a directory another thread is creating waits until that thread has
 * fsynced its parent. Directories are never removed, so no put races a directory removal.
 *
 * RECOVERY. A crash may leave temporary files (never an object half-written under its final
 * name). object_store_file_open() walks the whole tree, deletes every temporary file and fsyncs
 * every directory (a directory created by a process that died before its parent's fsync is made
 * durable before anything is put into it). list() skips temporary files and any name that is not
 * a valid path (lost+found, stray files). Only one process may use a root at a time.
 *
 * Every system call on files goes through util/sysio.h (the fault-injection seam of the tests).
 *
 * LOCKING. The store is the root directory fd and path (immutable after open) and `dir_mu`. get,
 * list and remove take no lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/object_store.h"
#include "util/sysio.h"

#define FILE_STORE_NAME_MAX 255 /* longest file name (NAME_MAX of ext4, xfs, btrfs, tmpfs) */
#define FILE_STORE_CHUNK 240    /* bytes of a long segment per "<chunk>~" directory */
#define FILE_STORE_TEMP_PREFIX ".tmp~"

typedef struct file_store {
    int root_fd;            /* O_DIRECTORY fd of the root; immutable after open */
    char *root;             /* the root as given; immutable after open */
    pthread_mutex_t dir_mu; /* serialises directory creation with the fsync of its parent */
} file_store;

static bool name_is_temp(const char *name)
{
    return strncmp(name, FILE_STORE_TEMP_PREFIX, sizeof FILE_STORE_TEMP_PREFIX - 1) == 0;
}

/*
 * The on-disk path, relative to the root, of the valid object path `path` (long segments split
 * into "<chunk>~" directories). INGOT_E_INVALID for an invalid path, -ENAMETOOLONG if it does
 * not fit out_cap.
 */
static int disk_path(const char *path, char *out, size_t out_cap)
{
    if (!path) return INGOT_E_INVALID;
    size_t len = strlen(path);
    int rc = object_store_path_check(path, len);
    if (rc) return rc;
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/') continue;
        const char *seg = path + start;
        size_t seg_len = i - start;
        while (seg_len > FILE_STORE_NAME_MAX) {
            if (n + FILE_STORE_CHUNK + 2 >= out_cap) return -ENAMETOOLONG;
            memcpy(out + n, seg, FILE_STORE_CHUNK);
            n += FILE_STORE_CHUNK;
            out[n++] = '~';
            out[n++] = '/';
            seg += FILE_STORE_CHUNK;
            seg_len -= FILE_STORE_CHUNK;
        }
        if (n + seg_len + 1 >= out_cap) return -ENAMETOOLONG;
        memcpy(out + n, seg, seg_len);
        n += seg_len;
        if (i < len) out[n++] = '/';
        start = i + 1;
    }
    out[n] = '\0';
    return 0;
}

static int fsync_fd(int fd)
{
    while (sysio_fsync(fd) != 0) {
        if (errno != EINTR) return -errno;
    }
    return 0;
}

/*
 * A new fd for the directory rel (relative to the root, '/'-separated, "" = the root), creating
 * what is missing; each created directory's parent is fsynced before the next step. rel is
 * modified and restored. Takes dir_mu.
 */
static int open_dirs(file_store *fs, char *rel, int *fd_out)
{
    int rc = 0;
    pthread_mutex_lock(&fs->dir_mu);
    int fd = fcntl(fs->root_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    char *comp = rel;
    while (*comp) {
        char *slash = strchr(comp, '/');
        if (slash) *slash = '\0';
        bool created = sysio_mkdirat(fd, comp, 0755) == 0;
        if (!created && errno != EEXIST) rc = -errno;
        if (rc == 0 && created) rc = fsync_fd(fd);
        int next = -1;
        if (rc == 0) {
            next = sysio_openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
            if (next < 0) rc = -errno;
        }
        if (slash) *slash = '/';
        sysio_close(fd);
        fd = next;
        if (rc) goto fail;
        if (!slash) break;
        comp = slash + 1;
    }
    pthread_mutex_unlock(&fs->dir_mu);
    *fd_out = fd;
    return 0;
fail:
    pthread_mutex_unlock(&fs->dir_mu);
    return rc;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = sysio_write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fs_put(void *self, const char *path, const void *data, size_t len)
{
    file_store *fs = self;
    char dpath[PATH_MAX];
    char tmp[sizeof FILE_STORE_TEMP_PREFIX + 16];
    int dfd = -1, fd = -1;
    bool tmp_exists = false;
    if (!data && len) return INGOT_E_INVALID;
    int rc = disk_path(path, dpath, sizeof dpath);
    if (rc) return rc;
    char *slash = strrchr(dpath, '/');
    const char *name = slash ? slash + 1 : dpath;
    if (slash) *slash = '\0';
    rc = open_dirs(fs, slash ? dpath : dpath + strlen(dpath), &dfd);
    if (rc) goto fail;

    unsigned char rnd[8];
    object_store_random_bytes(rnd, sizeof rnd);
    int tn = snprintf(tmp, sizeof tmp, "%s", FILE_STORE_TEMP_PREFIX);
    for (size_t i = 0; i < sizeof rnd; i++)
        tn += snprintf(tmp + tn, sizeof tmp - (size_t)tn, "%02x", rnd[i]);
    fd = sysio_openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    tmp_exists = true;
    rc = write_all(fd, data, len);
    if (rc == 0) rc = fsync_fd(fd);
    if (rc) goto fail;
    int crc = sysio_close(fd);
    fd = -1;
    if (crc != 0 && errno != EINTR) {
        rc = -errno;
        goto fail;
    }
    if (sysio_renameat(dfd, tmp, dfd, name) != 0) {
        rc = -errno;
        goto fail;
    }
    tmp_exists = false;
    rc = fsync_fd(dfd);
    if (rc) goto fail;
    sysio_close(dfd);
    return 0;
fail:
    if (fd >= 0) sysio_close(fd);
    if (tmp_exists) sysio_unlinkat(dfd, tmp, 0);
    if (dfd >= 0) sysio_close(dfd);
    return rc;
}

static int fs_get(void *self, const char *path, void **data_out, size_t *len_out)
{
    file_store *fs = self;
    char dpath[PATH_MAX];
    unsigned char *buf = NULL;
    int fd = -1;
    *data_out = NULL;
    *len_out = 0;
    int rc = disk_path(path, dpath, sizeof dpath);
    if (rc) return rc;
    fd = sysio_openat(fs->root_fd, dpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? INGOT_E_NOT_FOUND : -errno;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = INGOT_E_NOT_FOUND; /* a directory on the way to other objects */
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        rc = INGOT_E_NOMEM;
        goto fail;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = sysio_read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        if (n == 0) {
            rc = -EIO; /* objects are never truncated in place: the file shrank under us */
            goto fail;
        }
        got += (size_t)n;
    }
    sysio_close(fd);
    *data_out = buf;
    *len_out = size;
    return 0;
fail:
    free(buf);
    if (fd >= 0) sysio_close(fd);
    return rc;
}

static int fs_remove(void *self, const char *path)
{
    file_store *fs = self;
    char dpath[PATH_MAX];
    int rc = disk_path(path, dpath, sizeof dpath);
    if (rc) return rc;
    if (sysio_unlinkat(fs->root_fd, dpath, 0) != 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) return 0;
        return -errno;
    }
    char *slash = strrchr(dpath, '/');
    int dfd;
    if (slash) {
        *slash = '\0';
        dfd = sysio_openat(fs->root_fd, dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    } else {
        dfd = fcntl(fs->root_fd, F_DUPFD_CLOEXEC, 0);
    }
    if (dfd < 0) return -errno;
    rc = fsync_fd(dfd);
    sysio_close(dfd);
    return rc;
}

/* State of one list() walk (or of the cleanup walk at open, when cb is NULL). */
typedef struct list_walk {
    const char *prefix;
    size_t prefix_len;
    object_store_list_cb cb; /* NULL: cleanup mode (delete temporaries, fsync directories) */
    void *arg;
    char path[PATH_MAX + 2]; /* the object path of the current directory, '/'-terminated */
} list_walk;

/*
 * Walk the directory dfd (consumed) whose object path is w->path[0..path_len). Directories whose
 * path cannot lead to the prefix are not entered.
 */
static int walk_dir(list_walk *w, int dfd, size_t path_len)
{
    int rc = 0;
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        rc = -errno;
        sysio_close(dfd);
        return rc;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno) rc = -errno;
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        if (name_is_temp(name)) {
            if (!w->cb) sysio_unlinkat(dirfd(dir), name, 0);
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) continue; /* removed meanwhile */
            rc = -errno;
            break;
        }
        size_t name_len = strlen(name);
        if (path_len + name_len + 1 >= sizeof w->path) continue; /* not a path of ours */
        memcpy(w->path + path_len, name, name_len);
        size_t len = path_len + name_len;
        if (S_ISDIR(st.st_mode)) {
            if (name[name_len - 1] == '~') {
                len--; /* a long segment continues below without a '/' */
            } else {
                w->path[len++] = '/';
            }
            size_t common = len < w->prefix_len ? len : w->prefix_len;
            if (w->cb && memcmp(w->path, w->prefix, common) != 0) continue;
            int sub =
                sysio_openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
            if (sub < 0) {
                if (errno == ENOENT) continue;
                rc = -errno;
                break;
            }
            rc = walk_dir(w, sub, len);
            if (rc) break;
        } else if (S_ISREG(st.st_mode) && w->cb) {
            w->path[len] = '\0';
            if (len >= w->prefix_len && memcmp(w->path, w->prefix, w->prefix_len) == 0 &&
                object_store_path_check(w->path, len) == 0)
                w->cb(w->arg, w->path, (uint64_t)st.st_size);
        }
    }
    if (rc == 0 && !w->cb) rc = fsync_fd(dirfd(dir));
    closedir(dir);
    return rc;
}

static int fs_list(void *self, const char *prefix, object_store_list_cb cb, void *arg)
{
    file_store *fs = self;
    if (!cb) return INGOT_E_INVALID;
    list_walk *w = malloc(sizeof *w);
    if (!w) return INGOT_E_NOMEM;
    w->prefix = prefix ? prefix : "";
    w->prefix_len = strlen(w->prefix);
    w->cb = cb;
    w->arg = arg;
    /* a dup of root_fd would share its readdir offset: walk an fd of our own */
    int own = sysio_openat(fs->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int rc = own < 0 ? -errno : walk_dir(w, own, 0);
    free(w);
    return rc;
}

static void fs_close(void *self)
{
    file_store *fs = self;
    if (!fs) return;
    sysio_close(fs->root_fd);
    pthread_mutex_destroy(&fs->dir_mu);
    free(fs->root);
    free(fs);
}

int object_store_file_open(const char *root, object_store *out, char *err, size_t errlen)
{
    file_store *fs = NULL;
    list_walk *w = NULL;
    int rc;
    if (!root || !root[0]) {
        snprintf(err, errlen, "file object store: empty root directory");
        return INGOT_E_INVALID;
    }
    rc = sysio_mkdirs(root);
    if (rc) {
        snprintf(err, errlen, "file object store: cannot create %s: %s", root,
                 ingot_strerror(rc));
        return rc;
    }
    fs = calloc(1, sizeof *fs);
    w = calloc(1, sizeof *w);
    if (fs) fs->root_fd = -1;
    if (!fs || !w || !(fs->root = strdup(root))) {
        rc = INGOT_E_NOMEM;
        snprintf(err, errlen, "file object store: out of memory");
        goto fail;
    }
    fs->root_fd = sysio_open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fs->root_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "file object store: cannot open %s: %s", root, ingot_strerror(rc));
        goto fail;
    }
    pthread_mutex_init(&fs->dir_mu, NULL);
    w->prefix = "";
    int own = sysio_openat(fs->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    rc = own < 0 ? -errno : walk_dir(w, own, 0);
    if (rc) {
        snprintf(err, errlen, "file object store: recovering %s: %s", root, ingot_strerror(rc));
        pthread_mutex_destroy(&fs->dir_mu);
        goto fail;
    }
    free(w);
    *out = (object_store){.self = fs,
                          .put = fs_put,
                          .get = fs_get,
                          .list = fs_list,
                          .remove = fs_remove,
                          .close = fs_close};
    return 0;
fail:
    if (fs && fs->root_fd >= 0) sysio_close(fs->root_fd);
    if (fs) free(fs->root);
    free(fs);
    free(w);
    return rc;
}
