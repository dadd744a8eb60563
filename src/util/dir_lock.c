/*
 * dir_lock.c: the directory lock of dir_lock.h (flock on <dir>/LOCK, the holder's pid inside).
 * File calls go through util/sysio.h like every other file call of the ingester.
 */
#include "util/dir_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"
#include "util/sysio.h"

int dir_lock(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/LOCK", dir) >= sizeof path) {
        snprintf(err, errlen, "%s: path too long", dir);
        return INGOT_E_TOO_LARGE;
    }
    int fd = sysio_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", path, ingot_strerror(rc));
        return rc;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        int rc = errno == EWOULDBLOCK ? INGOT_E_BUSY : -errno;
        char pid[32] = "";
        ssize_t n = rc == INGOT_E_BUSY ? sysio_pread(fd, pid, sizeof pid - 1, 0) : -1;
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (rc == INGOT_E_BUSY)
            snprintf(err, errlen, "%s is in use by another ingot%s%s%s, which holds %s", dir,
                     pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, ingot_strerror(rc));
        sysio_close(fd);
        return rc;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    /* the pid is a hint for the message above; without it the lock holds all the same */
    if (sysio_ftruncate(fd, 0) != 0 || sysio_pwrite(fd, line, (size_t)len, 0) != len)
        log_debug("%s: cannot record the pid: %s", path, ingot_strerror(-errno));
    return fd;
}

void dir_unlock(int fd)
{
    if (fd >= 0) sysio_close(fd);
}
