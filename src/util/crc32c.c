/*
 * crc32c.c: CRC-32C, see crc32c.h.
 *
 * Two implementations of the same function:
 *   - hardware: the SSE4.2 `crc32` instruction, 8 bytes per step (_mm_crc32_u64) after aligning
 *     the pointer with byte steps; compiled with target("sse4.2") so it exists even if the rest of
 *     the tree were built without -msse4.2, and only called when the CPU reports sse4.2.
 *   - portable: slicing-by-8 over eight 256-entry tables (8 KiB) built once on first use. Table k
 *     holds the CRC of a byte followed by k zero bytes, so eight input bytes fold in with eight
 *     lookups and no data-dependent loop.
 * The choice is made once (pthread_once) and read through a plain pointer afterwards. Both keep
 * the register in the inverted (pre-conditioned) form internally and invert on entry and exit.
 */
#include "util/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256];
static uint32_t (*crc32c_impl)(uint32_t, const uint8_t *, size_t);
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static uint32_t crc32c_sw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint32_t hi =
            (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        lo ^= crc;
        crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
              crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
              crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
              crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t crc, const uint8_t *p,
                                                                size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        crc = _mm_crc32_u8(crc, *p++);
        len--;
    }
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc32c_table[t][i] =
                crc32c_table[0][crc32c_table[t - 1][i] & 0xff] ^ (crc32c_table[t - 1][i] >> 8);
    crc32c_impl = crc32c_sw_raw;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) crc32c_impl = crc32c_hw_raw;
#endif
}

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_impl(~crc, buf, len);
}

uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_update(0, buf, len);
}

uint32_t crc32c_update_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw_raw(~crc, buf, len);
}

int crc32c_hardware(void)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_impl != crc32c_sw_raw;
}
