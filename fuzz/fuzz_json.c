/*
 * fuzz_json.c: libFuzzer target of the JSON reader and writer (src/util/json.c).
 *
 * The input is used two ways; every property that fails traps:
 *   1. as a document (NUL-terminated copy in an exact-size heap buffer): json_parse_flat_object
 *      and json_parse_string_array must not crash or leak; what they accept must survive a
 *      round trip: written back with json_put_string / json_put_string_array, the text parses
 *      again to the same members (keys, kinds, strings, integers written back with PRId64,
 *      items), whenever every string is valid UTF-8 without NUL (others are changed by the
 *      writer by design: U+FFFD for bad bytes; a NUL is written "\u0000", which the reader
 *      refuses);
 *   2. as strings: the input split at 0xFF bytes gives the items. json_put_string's output
 *      must be valid UTF-8 without raw control bytes, start and end with a quote, and parse
 *      back (as an array and as the values of an object) to the item itself when it is valid
 *      UTF-8 without NUL, else to the item with each byte that starts no valid sequence
 *      replaced by U+FFFD (checked with a reference decoder written here); an item holding a
 *      NUL makes the whole document refused (the reader takes no "\u0000": it would cut a C
 *      string); and
 *      the clean items written here in other legal spellings (every escape JSON has, \u in
 *      either case, surrogate pairs, raw characters) read back as themselves.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Reference: the length of the well-formed UTF-8 sequence at s (Unicode Table 3-7), or 0. */
static size_t ref_utf8_len(const uint8_t *s, size_t avail)
{
    static const struct {
        uint8_t lo, hi;    /* the lead byte */
        uint8_t n;         /* sequence length */
        uint8_t lo2, hi2;  /* the second byte */
    } table[] = {
        {0x00, 0x7F, 1, 0, 0},       {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF},
        {0xE1, 0xEC, 3, 0x80, 0xBF}, {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF},
        {0xF0, 0xF0, 4, 0x90, 0xBF}, {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
    };
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++) {
        if (s[0] < table[t].lo || s[0] > table[t].hi) continue;
        size_t n = table[t].n;
        if (n == 1) return 1;
        if (avail < n || s[1] < table[t].lo2 || s[1] > table[t].hi2) return 0;
        for (size_t k = 2; k < n; k++)
            if (s[k] < 0x80 || s[k] > 0xBF) return 0;
        return n;
    }
    return 0;
}

static bool clean_utf8(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        size_t n = ref_utf8_len(p + i, len - i);
        if (n == 0 || p[i] == 0) return false;
        i += n;
    }
    return true;
}

/* What the writer then the reader make of s: bad bytes become U+FFFD, a NUL ends the string. */
static char *expected_text(const char *s, size_t len)
{
    char *out = malloc(3 * len + 1);
    REQUIRE(out);
    size_t o = 0;
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] == 0) break;
        size_t n = ref_utf8_len(p + i, len - i);
        if (n == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3, i++;
        } else {
            memcpy(out + o, p + i, n), o += n, i += n;
        }
    }
    out[o] = '\0';
    return out;
}

/* json_put_string's output: quoted, valid UTF-8, no raw control byte. */
static void check_written(const strbuf *b, size_t from)
{
    REQUIRE(!strbuf_failed(b) && b->len >= from + 2);
    const char *s = b->data + from;
    size_t len = b->len - from;
    REQUIRE(s[0] == '"' && s[len - 1] == '"');
    for (size_t i = 0; i < len; i++) REQUIRE((uint8_t)s[i] >= 0x20);
    REQUIRE(clean_utf8(s, len));
}

static bool same_members(const json_member *a, size_t na, const json_member *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].key, b[i].key) != 0 || a[i].kind != b[i].kind) return false;
        if (a[i].kind == JSON_MEMBER_STRING && strcmp(a[i].string, b[i].string) != 0) return false;
        if (a[i].kind == JSON_MEMBER_INTEGER && a[i].integer != b[i].integer) return false;
        if (a[i].kind == JSON_MEMBER_STRING_ARRAY) {
            if (a[i].count != b[i].count) return false;
            for (size_t k = 0; k < a[i].count; k++)
                if (strcmp(a[i].items[k], b[i].items[k]) != 0) return false;
        }
    }
    return true;
}

static bool members_clean(const json_member *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!clean_utf8(m[i].key, strlen(m[i].key))) return false;
        if (m[i].kind == JSON_MEMBER_STRING && !clean_utf8(m[i].string, strlen(m[i].string)))
            return false;
        for (size_t k = 0; k < m[i].count; k++)
            if (!clean_utf8(m[i].items[k], strlen(m[i].items[k]))) return false;
    }
    return true;
}

static void write_members(strbuf *out, const json_member *m, size_t n)
{
    strbuf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) strbuf_puts(out, i % 2 ? " , " : ",");
        json_put_string(out, m[i].key, strlen(m[i].key));
        strbuf_puts(out, i % 2 ? ":" : " :\n");
        switch (m[i].kind) {
        case JSON_MEMBER_NULL: strbuf_puts(out, "null"); break;
        case JSON_MEMBER_STRING: json_put_string(out, m[i].string, strlen(m[i].string)); break;
        case JSON_MEMBER_INTEGER: strbuf_printf(out, "%" PRId64, m[i].integer); break;
        case JSON_MEMBER_STRING_ARRAY:
            json_put_string_array(out, (const char *const *)m[i].items, m[i].count);
            break;
        }
    }
    strbuf_putc(out, '}');
}

/* 1: the input as a document. */
static void parse_document(const uint8_t *data, size_t size)
{
    char *doc = malloc(size + 1);
    REQUIRE(doc);
    memcpy(doc, data, size);
    doc[size] = '\0';

    json_member *m;
    size_t n;
    int rc = json_parse_flat_object(doc, &m, &n);
    REQUIRE(rc == 0 || rc == INGOT_E_INVALID || rc == INGOT_E_NOMEM);
    if (rc == 0) {
        if (members_clean(m, n)) {
            strbuf w = {0};
            write_members(&w, m, n);
            REQUIRE(!strbuf_failed(&w));
            json_member *m2;
            size_t n2;
            REQUIRE(json_parse_flat_object(w.data, &m2, &n2) == 0);
            REQUIRE(same_members(m, n, m2, n2));
            json_free_members(m2, n2);
            strbuf_free(&w);
        }
        json_free_members(m, n);
    }

    char **items;
    size_t count;
    rc = json_parse_string_array(doc, &items, &count);
    REQUIRE(rc == 0 || rc == INGOT_E_INVALID || rc == INGOT_E_NOMEM);
    if (rc == 0) {
        bool clean = true;
        for (size_t i = 0; i < count; i++) clean = clean && clean_utf8(items[i], strlen(items[i]));
        if (clean) {
            strbuf w = {0};
            json_put_string_array(&w, (const char *const *)items, count);
            char **again;
            size_t count2;
            REQUIRE(json_parse_string_array(w.data, &again, &count2) == 0 && count2 == count);
            for (size_t i = 0; i < count; i++) REQUIRE(strcmp(items[i], again[i]) == 0);
            json_free_string_array(again, count2);
            strbuf_free(&w);
        }
        json_free_string_array(items, count);
    }
    free(doc);
}

/* Decode the well-formed UTF-8 sequence at s of n bytes. */
static uint32_t ref_code_point(const uint8_t *s, size_t n)
{
    static const uint8_t lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = s[0] & lead_mask[n];
    for (size_t k = 1; k < n; k++) cp = cp << 6 | (s[k] & 0x3F);
    return cp;
}

static uint32_t variant_state;

static uint32_t variant(uint32_t n)
{
    variant_state = variant_state * 1103515245u + 12345u;
    return (variant_state >> 16) % n;
}

static void put_u(strbuf *out, uint32_t unit)
{
    strbuf_printf(out, variant(2) ? "\\u%04x" : "\\u%04X", (unsigned)unit);
}

/* A JSON string literal of the clean item s written here, differently from json_put_string:
 * each character raw when JSON allows it or escaped in one of the ways JSON allows (short
 * escapes, \u in either case, surrogate pairs), picked at random. */
static void ref_put_variant(strbuf *out, const char *s, size_t len)
{
    static const char shorts[] = "\"\"\\\\//\bb\ff\nn\rr\tt"; /* char, escape letter */
    const uint8_t *p = (const uint8_t *)s;
    strbuf_putc(out, '"');
    for (size_t i = 0; i < len;) {
        size_t n = ref_utf8_len(p + i, len - i);
        uint32_t cp = ref_code_point(p + i, n);
        const char *sh = NULL;
        for (const char *q = shorts; *q; q += 2)
            if ((uint8_t)q[0] == cp) sh = q;
        bool must = cp < 0x20 || cp == '"' || cp == '\\';
        uint32_t how = variant(3);
        if (!must && how == 0) strbuf_append(out, p + i, n);
        else if (sh && how != 2) strbuf_putc(out, '\\'), strbuf_putc(out, sh[1]);
        else if (cp < 0x10000) put_u(out, cp);
        else put_u(out, 0xD800 + ((cp - 0x10000) >> 10)), put_u(out, 0xDC00 + (cp & 0x3FF));
        i += n;
    }
    strbuf_putc(out, '"');
}

/* 2: the input as strings, split at 0xFF (a byte never part of UTF-8). */
static void write_strings(const uint8_t *data, size_t size)
{
    enum { MAX_ITEMS = 64 };
    char *items[MAX_ITEMS];
    char *expect[MAX_ITEMS];
    bool is_clean[MAX_ITEMS];
    bool any_nul = false;
    size_t count = 0;
    strbuf arr = {0}, obj = {0}, alt = {0};
    size_t alt_count = 0;
    strbuf_putc(&arr, '[');
    strbuf_putc(&obj, '{');
    strbuf_putc(&alt, '[');
    variant_state = (uint32_t)size;
    size_t start = 0;
    for (size_t i = 0; i <= size && count < MAX_ITEMS; i++) {
        if (i < size && data[i] != 0xFF) continue;
        size_t len = i - start;
        /* an exact-size copy, so ASan catches a read past the item */
        items[count] = malloc(len ? len : 1);
        REQUIRE(items[count]);
        memcpy(items[count], data + start, len);
        is_clean[count] = clean_utf8(items[count], len);
        if (len && memchr(items[count], 0, len)) any_nul = true;
        expect[count] = expected_text(items[count], len);
        if (is_clean[count]) {
            REQUIRE(strlen(expect[count]) == len && memcmp(expect[count], items[count], len) == 0);
            if (alt_count++) strbuf_puts(&alt, variant(2) ? "," : " ,\t");
            ref_put_variant(&alt, items[count], len);
        }

        strbuf one = {0};
        json_put_string(&one, items[count], len);
        check_written(&one, 0);
        strbuf_free(&one);

        if (count) strbuf_putc(&arr, ','), strbuf_putc(&obj, ',');
        size_t at = arr.len;
        json_put_string(&arr, items[count], len);
        check_written(&arr, at);
        strbuf_printf(&obj, "\"k%zu\":", count);
        json_put_string(&obj, items[count], len);
        count++;
        start = i + 1;
    }
    strbuf_putc(&arr, ']');
    strbuf_putc(&obj, '}');
    strbuf_putc(&alt, ']');
    REQUIRE(!strbuf_failed(&arr) && !strbuf_failed(&obj) && !strbuf_failed(&alt));

    char **got;
    size_t n;
    json_member *m;
    if (any_nul) {
        REQUIRE(json_parse_string_array(arr.data, &got, &n) == INGOT_E_INVALID);
        REQUIRE(json_parse_flat_object(obj.data, &m, &n) == INGOT_E_INVALID);
        goto alt;
    }
    REQUIRE(json_parse_string_array(arr.data, &got, &n) == 0 && n == count);
    for (size_t i = 0; i < n; i++) REQUIRE(strcmp(got[i], expect[i]) == 0);
    json_free_string_array(got, n);

    REQUIRE(json_parse_flat_object(obj.data, &m, &n) == 0 && n == count);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        REQUIRE(strcmp(m[i].key, key) == 0 && m[i].kind == JSON_MEMBER_STRING);
        REQUIRE(strcmp(m[i].string, expect[i]) == 0);
    }
    json_free_members(m, n);

alt: /* the clean items in other spellings read back as themselves */
    REQUIRE(json_parse_string_array(alt.data, &got, &n) == 0 && n == alt_count);
    for (size_t i = 0, k = 0; i < count; i++)
        if (is_clean[i]) REQUIRE(strcmp(got[k++], expect[i]) == 0);
    json_free_string_array(got, n);

    for (size_t i = 0; i < count; i++) free(items[i]), free(expect[i]);
    strbuf_free(&arr);
    strbuf_free(&obj);
    strbuf_free(&alt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    parse_document(data, size);
    write_strings(data, size);
    return 0;
}
