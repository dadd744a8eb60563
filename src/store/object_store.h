/*
 * object_store.h: the ObjectStore interface (ARCHITECTURE §7) and the `file` store.
 *
 * Paths are relative, '/'-separated, made of segments that object_store_path_segment() produced
 * (so no segment is empty, ".", ".." or contains '/', NUL or bytes outside [A-Za-z0-9._-]
 * unencoded): whatever a client names a namespace or table, an object never lands outside the
 * store's root.
 *
 * The `file` store keeps objects under a root directory (<data-dir>/objects by default). put()
 * writes a temporary file whose name does not end in ".parquet" (".tmp~<random>": '~' is never in
 * a segment, so a temporary name never collides with an object), fsyncs it,
 * renames it over the final name, and fsyncs the directory (creating and fsyncing parent
 * directories as needed): after put() returns 0 the object is durable and readers see all of it
 * or nothing. Leftover temporary files from a crash are ignored by list() and removed at open.
 * A segment longer than a file name may be (255 bytes) is stored as a chain of directories
 * "<240 bytes>~/" ending in the rest; list() joins them back, so callers never see it.
 *
 * Every function is thread-safe and returns 0 or a negative code (-errno for I/O failures,
 * INGOT_E_NOT_FOUND, INGOT_E_INVALID for a path that is not made of valid segments).
 */
#ifndef INGOT_OBJECT_STORE_H
#define INGOT_OBJECT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef void (*object_store_list_cb)(void *arg, const char *path, uint64_t size_bytes);

typedef struct object_store {
    void *self;
    /* Store data[0..len) at path, replacing any object there; durable when it returns 0. */
    int (*put)(void *self, const char *path, const void *data, size_t len);
    /* Read the object at path into a malloc'd buffer (*data_out, caller frees). */
    int (*get)(void *self, const char *path, void **data_out, size_t *len_out);
    /* Every object whose path starts with prefix ("" = all), in no particular order. */
    int (*list)(void *self, const char *prefix, object_store_list_cb cb, void *arg);
    /* Delete the object at path; deleting an absent object is 0. */
    int (*remove)(void *self, const char *path);
    /* Free the store; the struct itself belongs to the caller. */
    void (*close)(void *self);
} object_store;

/* Open (creating) the file store rooted at root. Message in err on failure. */
int object_store_file_open(const char *root, object_store *out, char *err, size_t errlen)
    INGOT_MUST_CHECK;

/*
 * Open the s3 store: objects are <endpoint>/<bucket>/<path> (path-style URLs) on any
 * S3-compatible endpoint ("http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com"),
 * requests signed with AWS SigV4 for region using AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 * (read once here). Request timeout T in seconds (1 to 86400, --object-store-timeout): a
 * request whose connect takes longer than min(T, 10 s), that moves no byte for T seconds, or
 * that takes longer than 4 T plus its size at 256 KiB/s, is abandoned and fails with -ETIMEDOUT
 * (callers retry). This covers the listing that open itself does. Message in err on failure.
 */
int object_store_s3_open(const char *endpoint, const char *bucket, const char *region,
                         unsigned timeout_s, object_store *out, char *err,
                         size_t errlen) INGOT_MUST_CHECK;

/*
 * name as one safe path segment: bytes in [A-Za-z0-9_-] and '.' are kept, every other byte is
 * %XX (upper-case hex); a name made only of dots has its dots encoded too. Returns the length
 * written (out needs 3 * len + 1 bytes), NUL-terminated. The empty name gives "", which is not a
 * segment (no path may contain it).
 */
size_t object_store_path_segment(const char *name, size_t len, char *out);

/*
 * 0 if path[0..len) is made of segments object_store_path_segment() produced ('/'-separated,
 * canonical), else INGOT_E_INVALID. Every store checks every path with it.
 */
int object_store_path_check(const char *path, size_t len);

/*
 * "<namespace>/<table>/<partition_key>/<uuid>.parquet" with each name made a safe segment.
 * Returns 0, INGOT_E_INVALID if a name is empty, or INGOT_E_TOO_LARGE if out_len is too small.
 */
int object_store_parquet_path(const char *namespace_name, const char *table_name,
                              const char *partition_key, const char *uuid, char *out,
                              size_t out_len);

/* A random (version 4) UUID in its 36-character text form, NUL-terminated. */
void object_store_uuid_v4(char out[37]);

/* len random bytes (getrandom(2), falling back to /dev/urandom); never fails. */
void object_store_random_bytes(void *buf, size_t len);

#endif
