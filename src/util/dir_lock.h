/*
 * dir_lock.h: one process per directory. ingot locks its data directory and its WAL directory
 * at start-up so that a second ingot pointed at either (a copy of a service file, a restart
 * while the old process still drains) refuses to start instead of replaying, persisting and
 * deleting the WAL segments and objects of the one that runs.
 *
 * The lock is flock(LOCK_EX | LOCK_NB) on <dir>/LOCK, held by an open descriptor until
 * dir_unlock or the process ends (kill -9 included: the kernel releases it, so there is never a
 * stale lock to clean up). The file holds the owner's pid (a hint for the error message, never
 * trusted for the lock itself). The file is not removed at unlock: removing it would let a
 * second process lock a new file while a third still holds the old one.
 */
#ifndef INGOT_DIR_LOCK_H
#define INGOT_DIR_LOCK_H

#include <stddef.h>

/*
 * Lock dir (which must exist). Returns a descriptor (>= 0) that holds the lock, or a negative
 * code with the reason in err: INGOT_E_BUSY when another process holds it (naming its pid when
 * the file says), -errno when the file cannot be opened or locked, INGOT_E_TOO_LARGE for a path
 * over 4 KiB.
 */
int dir_lock(const char *dir, char *err, size_t errlen);

/* Release a lock dir_lock returned (fd < 0: nothing). */
void dir_unlock(int fd);

#endif
