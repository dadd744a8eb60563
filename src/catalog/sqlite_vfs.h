/*
 * sqlite_vfs.h: the SQLite VFS through which the SQLite catalog does its file I/O, so that the
 * fault injector of util/sysio.h can fail it (contract and mapping in sqlite_vfs.c).
 */
#ifndef INGOT_CATALOG_SQLITE_VFS_H
#define INGOT_CATALOG_SQLITE_VFS_H

/* The VFS's name, "ingot-sysio". */
#define CATALOG_SQLITE_VFS_NAME "ingot-sysio"

/*
 * Register the VFS with SQLite (once per process, thread-safe; never as the default VFS) and
 * return its name for sqlite3_open_v2(), or NULL if it could not be registered (SQLite has no
 * default VFS to wrap, or sqlite3_vfs_register failed; the reason is logged once).
 */
const char *catalog_sqlite_vfs(void);

#endif
