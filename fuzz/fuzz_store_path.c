/*
 * fuzz_store_path.c: libFuzzer target for the object-store path rules (src/store/store_path.c).
 *
 * The input is used twice:
 *   1. as a name: object_store_path_segment() encodes it; the segment must be non-empty (for a
 *      non-empty name), never contain '/' or NUL, never be "." or "..", pass
 *      object_store_path_check(), and decode (with the reference decoder below) back to the input;
 *      the same name as a table in object_store_parquet_path() must give a valid path;
 *   2. as a path: if object_store_path_check() accepts it, it has no leading '/', no NUL, and every
 *      segment is non-empty, not "." or "..", and is the encoding of its own decoding (canonical);
 *      if it refuses it, some segment is not such an encoding.
 * Violations trap.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/object_store.h"

static int hex(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reference decoder: %XX (upper-case hex) to a byte, other bytes as they are. -1 if malformed. */
static long ref_decode(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        if (i + 2 >= len || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) return -1;
        out[n++] = (uint8_t)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
        i += 2;
    }
    return (long)n;
}

/* Whether seg is exactly the encoding of some name (decode then re-encode gives it back). */
static bool ref_canonical(const uint8_t *seg, size_t len, uint8_t *scratch, char *enc)
{
    if (len == 0) return false;
    long n = ref_decode(seg, len, scratch);
    if (n < 0) return false;
    size_t el = object_store_path_segment((const char *)scratch, (size_t)n, enc);
    return el == len && memcmp(enc, seg, len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *enc = malloc(3 * size + 1);
    uint8_t *dec = malloc(size + 1);
    char *enc2 = malloc(3 * size + 1);
    char *path = malloc(3 * size + 64);
    if (!enc || !dec || !enc2 || !path) goto out;

    /* 1. the input as a name */
    size_t el = object_store_path_segment((const char *)data, size, enc);
    if (enc[el] != '\0' || strlen(enc) != el) __builtin_trap();
    if ((el == 0) != (size == 0)) __builtin_trap();
    if (memchr(enc, '/', el) || strcmp(enc, ".") == 0 || strcmp(enc, "..") == 0) __builtin_trap();
    if (size > 0 && object_store_path_check(enc, el) != 0) __builtin_trap();
    long dl = ref_decode((const uint8_t *)enc, el, dec);
    if (dl != (long)size || memcmp(dec, data, size) != 0) __builtin_trap();
    if (size > 0 && !memchr(data, 0, size)) {
        memcpy(dec, data, size);
        dec[size] = '\0';
        size_t cap = 3 * size + 64;
        int rc = object_store_parquet_path("db", (const char *)dec, "2024-01-01",
                                           "0e4f4bd4-2c3a-4f0e-9d3b-3c2f8f0e9a11", path, cap);
        if (rc != 0 || object_store_path_check(path, strlen(path)) != 0) __builtin_trap();
        if (strncmp(path, "db/", 3) != 0 || strncmp(path + 3, enc, el) != 0) __builtin_trap();
    }

    /* 2. the input as a path */
    int rc = object_store_path_check((const char *)data, size);
    bool all_ok = size > 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && all_ok; i++) {
        if (i < size && data[i] != '/') continue;
        all_ok = ref_canonical(data + start, i - start, dec, enc2);
        start = i + 1;
    }
    if ((rc == 0) != all_ok) __builtin_trap();
    if (rc == 0) {
        if (data[0] == '/' || memchr(data, 0, size)) __builtin_trap();
        start = 0;
        for (size_t i = 0; i <= size; i++) {
            if (i < size && data[i] != '/') continue;
            size_t sl = i - start;
            if (sl == 0 || (sl == 1 && data[start] == '.') ||
                (sl == 2 && data[start] == '.' && data[start + 1] == '.'))
                __builtin_trap();
            start = i + 1;
        }
    }
out:
    free(enc);
    free(dec);
    free(enc2);
    free(path);
    return 0;
}
