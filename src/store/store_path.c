/*
 * store_path.c: the names of objects: path-segment encoding, path validation, the Parquet path and
 * random UUIDs. Shared by every object store (file, s3) and by the persist workers.
 *
 * SEGMENT ENCODING. A name (any bytes, NUL included) becomes one segment: bytes in
 * [A-Za-z0-9_-] and '.' are kept, every other byte becomes "%XX" with upper-case hex. A name made
 * only of dots ("." "..", "...") has every dot encoded ("%2E%2E"), so no segment is ever "." or
 * "..". The encoding is canonical: for each name exactly one segment, and every segment decodes to
 * exactly one name. The empty name encodes to the empty string, which is not a segment: callers
 * that build paths (object_store_parquet_path) refuse it.
 *
 * PATH VALIDATION. object_store_path_check() accepts exactly the '/'-joined sequences of non-empty
 * canonical segments: no leading or trailing '/', no empty segment, no byte outside
 * [A-Za-z0-9._-%], every '%' followed by two upper-case hex digits naming a byte the encoder
 * would have encoded, no raw dot in an all-dot segment. Every store runs it on every path before
 * touching storage, so no path can name anything outside the store's root ("..", "/etc", NUL).
 *
 * UUIDS come from getrandom(2); if the kernel refuses (no entropy source at all), from
 * /dev/urandom; if that fails too, from a splitmix64 stream seeded by the clock, the pid and a
 * process counter (unique, not unpredictable; the names only need to be unique).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "store/object_store.h"
#include "util/clock.h"

static const char hex_digits[] = "0123456789ABCDEF";

static bool byte_is_kept(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t object_store_path_segment(const char *name, size_t len, char *out)
{
    bool all_dots = true;
    for (size_t i = 0; i < len && all_dots; i++)
        all_dots = name[i] == '.';
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (byte_is_kept(c) && !(all_dots && c == '.')) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex_digits[c >> 4];
            out[n++] = hex_digits[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/*
 * Whether s[0..len) is one canonical segment. Two passes: the first decodes to learn whether the
 * name is all dots (which decides whether a dot may appear raw), the second checks every unit.
 */
static bool segment_valid(const char *s, size_t len)
{
    if (len == 0) return false;
    bool all_dots = true;
    for (size_t i = 0; i < len;) {
        int b;
        if (s[i] == '%') {
            if (i + 2 >= len) return false;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return false;
            b = hi * 16 + lo;
            i += 3;
        } else {
            b = (unsigned char)s[i];
            i++;
        }
        if (b != '.') all_dots = false;
    }
    for (size_t i = 0; i < len;) {
        if (s[i] == '%') {
            int b = hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]);
            if (byte_is_kept((unsigned char)b) && !(all_dots && b == '.')) return false;
            i += 3;
        } else {
            unsigned char c = (unsigned char)s[i];
            if (!byte_is_kept(c) || (all_dots && c == '.')) return false;
            i++;
        }
    }
    return true;
}

int object_store_path_check(const char *path, size_t len)
{
    if (!path || len == 0) return INGOT_E_INVALID;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '/') {
            if (!segment_valid(path + start, i - start)) return INGOT_E_INVALID;
            start = i + 1;
        }
    }
    return 0;
}

/* The length object_store_path_segment() would write for name (without the NUL). */
static size_t segment_encoded_len(const char *name, size_t len)
{
    bool all_dots = strspn(name, ".") >= len;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        n += byte_is_kept(c) && !(all_dots && c == '.') ? 1 : 3;
    }
    return n;
}

int object_store_parquet_path(const char *namespace_name, const char *table_name,
                              const char *partition_key, const char *uuid, char *out,
                              size_t out_len)
{
    const char *parts[4] = {namespace_name, table_name, partition_key, uuid};
    static const char suffix[] = ".parquet";
    size_t need = sizeof suffix; /* the suffix and the NUL */
    for (int i = 0; i < 4; i++) {
        if (!parts[i] || !parts[i][0]) return INGOT_E_INVALID;
        need += segment_encoded_len(parts[i], strlen(parts[i])) + (i < 3 ? 1 : 0);
    }
    if (need > out_len) return INGOT_E_TOO_LARGE;
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        n += object_store_path_segment(parts[i], strlen(parts[i]), out + n);
        if (i < 3) out[n++] = '/';
    }
    memcpy(out + n, suffix, sizeof suffix);
    return 0;
}

static void fallback_random(unsigned char *buf, size_t len)
{
    static atomic_uint_fast64_t counter;
    uint64_t x = (uint64_t)clock_ns(CLOCK_REALTIME);
    x ^= (uint64_t)getpid() << 32;
    x ^= atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < len; i++) {
        x += 0x9E3779B97F4A7C15u;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        buf[i] = (unsigned char)(z ^ (z >> 31));
    }
}

/* Fill buf with random bytes; never fails (see the file comment). */
void object_store_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(p + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    if (got == len) return;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (!(n < 0 && errno == EINTR)) {
            break;
        }
    }
    if (fd >= 0) close(fd);
    if (got < len) fallback_random(p + got, len - got);
}

void object_store_uuid_v4(char out[37])
{
    unsigned char b[16];
    object_store_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10xx (RFC 4122) */
    static const char lower_hex[] = "0123456789abcdef";
    size_t n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[n++] = '-';
        out[n++] = lower_hex[b[i] >> 4];
        out[n++] = lower_hex[b[i] & 15];
    }
    out[n] = '\0';
}
