/*
 * hash.h: the one hash of byte strings the in-memory maps use (buffer dictionaries and maps,
 * schema names, Parquet dictionaries, partition routing): word-at-a-time multiply-xorshift mixing,
 * 64 bits out, a seed to hash a string together with an integer (e.g. a table id). Not for
 * anything stored or sent: its values may change between versions.
 */
#ifndef INGOT_HASH_H
#define INGOT_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_bytes(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *s = data;
    uint64_t h = (0x9E3779B97F4A7C15ull ^ (uint64_t)n) + seed * 0xBF58476D1CE4E5B9ull;
    while (n >= 8) {
        uint64_t w;
        __builtin_memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

#endif
