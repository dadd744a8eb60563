/*
 * wal_identity.c: the WAL directory's identity file, <dir>/wal.id (wal.h, wal_identity).
 *
 * Format: a version 4 UUID in its 36-character lower-case text form and a newline, nothing else.
 * Written once, when absent: "<dir>/wal.id.tmp" is created (truncating a leftover of a crash),
 * written, fsynced, renamed to wal.id, and the directory fsynced; so wal.id is either absent or
 * whole, and once wal_identity returned it, the same identity is read at every later start. Only
 * wal.id is read; a leftover wal.id.tmp is overwritten. File calls go through util/sysio.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/sysio.h"
#include "wal/wal.h"
#include "wal/wal_internal.h"

#define WAL_ID_LEN 36

/* s[0..36) is a UUID's text form: hex digits with '-' at 8, 13, 18 and 23. */
static bool is_uuid_text(const char *s)
{
    for (int i = 0; i < WAL_ID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

/* Read the identity of an existing wal.id (fd) into id_out. */
static int read_identity(int fd, const char *path, char id_out[37], char *err, size_t errlen)
{
    char buf[WAL_ID_LEN + 2];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = sysio_read(fd, buf + got, sizeof buf - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int rc = -errno;
            snprintf(err, errlen, "reading %s: %s", path, ingot_strerror(rc));
            return rc;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    if (got != WAL_ID_LEN + 1 || buf[WAL_ID_LEN] != '\n' || !is_uuid_text(buf)) {
        snprintf(err, errlen,
                 "%s is damaged (not a UUID and a newline); it names this WAL in the catalog, so "
                 "restore it, or remove it to give the WAL a new identity (what the catalog "
                 "records as persisted from this WAL is then persisted again)",
                 path);
        return INGOT_E_CORRUPT;
    }
    memcpy(id_out, buf, WAL_ID_LEN);
    id_out[WAL_ID_LEN] = '\0';
    return 0;
}

/* Make fresh_id the identity of dir (see the top of the file). */
static int write_identity(const char *dir, const char *path, const char *fresh_id, char *err,
                          size_t errlen)
{
    char tmp[4096], line[WAL_ID_LEN + 1];
    if (strlen(fresh_id) != WAL_ID_LEN || !is_uuid_text(fresh_id)) {
        snprintf(err, errlen, "WAL identity \"%s\" is not a UUID", fresh_id);
        return INGOT_E_INVALID;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) return INGOT_E_TOO_LARGE;
    memcpy(line, fresh_id, WAL_ID_LEN);
    line[WAL_ID_LEN] = '\n';
    const char *step = "creating the WAL directory";
    int rc = sysio_mkdirs(dir);
    int fd = -1;
    if (rc == 0) {
        step = "creating";
        fd = sysio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) rc = -errno;
    }
    for (size_t done = 0; rc == 0 && done < sizeof line;) {
        step = "writing";
        ssize_t n = sysio_write(fd, line + done, sizeof line - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else
            done += (size_t)n;
    }
    if (rc == 0 && sysio_fsync(fd) != 0) {
        step = "syncing";
        rc = -errno;
    }
    if (fd >= 0 && sysio_close(fd) != 0 && rc == 0) {
        step = "closing";
        rc = -errno;
    }
    if (rc == 0 && sysio_rename(tmp, path) != 0) {
        step = "renaming";
        rc = -errno;
    }
    if (rc == 0 && (rc = wal_fsync_dir(dir)) != 0) step = "syncing the directory of";
    if (rc != 0) snprintf(err, errlen, "%s %s: %s", step, tmp, ingot_strerror(rc));
    return rc;
}

int wal_identity(const char *dir, const char *fresh_id, char id_out[37], char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/wal.id", dir) >= sizeof path) {
        snprintf(err, errlen, "WAL directory path too long");
        return INGOT_E_TOO_LARGE;
    }
    int fd = sysio_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
        int rc = read_identity(fd, path, id_out, err, errlen);
        sysio_close(fd);
        return rc;
    }
    if (errno != ENOENT) {
        int rc = -errno;
        snprintf(err, errlen, "opening %s: %s", path, ingot_strerror(rc));
        return rc;
    }
    int rc = write_identity(dir, path, fresh_id, err, errlen);
    if (rc == 0) memcpy(id_out, fresh_id, WAL_ID_LEN + 1);
    return rc;
}
