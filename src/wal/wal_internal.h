/*
 * wal_internal.h: what the files of the WAL share (wal.c writes, wal_replay.c reads), and the one
 * test seam. Not part of the contract; only the WAL's own .c files and
 * tests/unit/test_wal.c include it.
 */
#ifndef INGOT_WAL_INTERNAL_H
#define INGOT_WAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wal/wal.h"

#define WAL_MAGIC "INGOTWAL"
#define WAL_FORMAT_VERSION 2u

static inline void wal_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wal_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t wal_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t wal_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The 32-byte segment header of segment_id (wal.c writes it; tests build files with it). */
void wal_segment_header_encode(uint64_t segment_id, uint8_t out[WAL_SEGMENT_HEADER_BYTES]);

/* "<dir>/<id>.wal" into buf; returns snprintf's result. */
int wal_segment_path(char *buf, size_t buflen, const char *dir, uint64_t segment_id);

/* fsync a directory by path (after creating, renaming or deleting a file in it). */
int wal_fsync_dir(const char *dir);

#endif
