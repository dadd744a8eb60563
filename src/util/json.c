/*
 * json.c: the little JSON the project writes and reads itself (see json.h). Output is always
 * valid UTF-8: a byte that starts no valid sequence is written as U+FFFD. The reader knows
 * arrays of strings (sort keys) and flat objects (Flight tickets), and decodes every escape JSON
 * has, surrogate pairs included. Input must be NUL-terminated; a NUL inside ends it.
 */
#include "util/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void json_put_string(strbuf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    strbuf_putc(out, '"');
    size_t run = 0; /* bytes at p[i - run .. i) that need no escaping */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++, i++;
            continue;
        }
        size_t n = c >= 0x80 ? utf8_sequence(p + i, len - i) : 0;
        if (n > 0) {
            run += n, i += n;
            continue;
        }
        strbuf_append(out, p + i - run, run);
        run = 0;
        char esc[8];
        if (c == '"' || c == '\\') esc[0] = '\\', esc[1] = (char)c, strbuf_append(out, esc, 2);
        else if (c == '\n') strbuf_append(out, "\\n", 2);
        else if (c == '\r') strbuf_append(out, "\\r", 2);
        else if (c == '\t') strbuf_append(out, "\\t", 2);
        else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            strbuf_append(out, esc, 6);
        } else {
            strbuf_append(out, "\\ufffd", 6); /* a byte that starts no valid UTF-8 sequence */
        }
        i++;
    }
    strbuf_append(out, p + len - run, run);
    strbuf_putc(out, '"');
}


static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static bool read_hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0) return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

static void put_utf8(strbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    strbuf_append(b, u, n);
}

/* One JSON string starting at the opening quote *pp; its bytes go to b. */
static bool read_string(const char **pp, strbuf *b)
{
    const char *p = *pp + 1;
    for (;;) {
        char c = *p++;
        if (c == '"') break;
        if (c == '\0' || (unsigned char)c < 0x20) return false;
        if (c != '\\') {
            strbuf_putc(b, c);
            continue;
        }
        uint32_t cp;
        switch (c = *p++) {
        case '"': case '\\': case '/': strbuf_putc(b, c); break;
        case 'b': strbuf_putc(b, '\b'); break;
        case 'f': strbuf_putc(b, '\f'); break;
        case 'n': strbuf_putc(b, '\n'); break;
        case 'r': strbuf_putc(b, '\r'); break;
        case 't': strbuf_putc(b, '\t'); break;
        case 'u':
            if (!read_hex4(p, &cp)) return false;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p[0] != '\\' || p[1] != 'u' || !read_hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                return false; /* a lone low surrogate; NUL, which would cut a C string */
            }
            put_utf8(b, cp);
            break;
        default:
            return false;
        }
    }
    *pp = p;
    return true;
}

/* A JSON array of strings starting at *pp ('['); *pp is moved past it. */
static int read_string_array(const char **pp, char ***items_out, size_t *count_out)
{
    char **items = NULL;
    size_t count = 0;
    strbuf b = {0};
    int rc = INGOT_E_INVALID;
    const char *p = *pp;
    if (*p++ != '[') goto fail;
    p = skip_space(p);
    if (*p == ']') {
        p++;
    } else {
        for (;;) {
            if (*p != '"') goto fail;
            strbuf_reset(&b);
            strbuf_append(&b, "", 0);
            if (!read_string(&p, &b)) goto fail;
            rc = INGOT_E_NOMEM;
            if (strbuf_failed(&b)) goto fail;
            char **grown = realloc(items, (count + 1) * sizeof *items);
            if (!grown) goto fail;
            items = grown;
            if (!(items[count] = malloc(b.len + 1))) goto fail;
            memcpy(items[count], b.data ? b.data : "", b.len);
            items[count++][b.len] = '\0';
            rc = INGOT_E_INVALID;
            p = skip_space(p);
            if (*p == ']') {
                p++;
                break;
            }
            if (*p++ != ',') goto fail;
            p = skip_space(p);
        }
    }
    strbuf_free(&b);
    *pp = p;
    *items_out = items;
    *count_out = count;
    return 0;
fail:
    json_free_string_array(items, count);
    strbuf_free(&b);
    return rc;
}

int json_parse_string_array(const char *json, char ***items_out, size_t *count_out)
{
    const char *p = skip_space(json);
    int rc = read_string_array(&p, items_out, count_out);
    if (rc == 0 && *skip_space(p) != '\0') {
        json_free_string_array(*items_out, *count_out);
        rc = INGOT_E_INVALID;
    }
    return rc;
}

/* A JSON string at *pp into a malloc'd NUL-terminated copy. */
static int read_string_dup(const char **pp, char **out)
{
    strbuf b = {0};
    strbuf_append(&b, "", 0);
    if (!read_string(pp, &b)) {
        strbuf_free(&b);
        return INGOT_E_INVALID;
    }
    if (strbuf_failed(&b)) {
        strbuf_free(&b);
        return INGOT_E_NOMEM;
    }
    *out = b.data; /* strbuf data is NUL-terminated */
    return 0;
}

/* An integer literal (no fraction, no exponent) within int64 at *pp. */
static int read_integer(const char **pp, int64_t *out)
{
    const char *p = *pp;
    bool neg = *p == '-';
    if (neg) p++;
    if (*p < '0' || *p > '9') return INGOT_E_INVALID;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (limit - d) / 10) return INGOT_E_INVALID;
        v = v * 10 + d;
    }
    if (*p == '.' || *p == 'e' || *p == 'E') return INGOT_E_INVALID;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    *pp = p;
    return 0;
}

static int read_member_value(const char **pp, json_member *m)
{
    const char *p = *pp;
    int rc;
    if (*p == '"') {
        m->kind = JSON_MEMBER_STRING;
        rc = read_string_dup(&p, &m->string);
    } else if (*p == '[') {
        m->kind = JSON_MEMBER_STRING_ARRAY;
        rc = read_string_array(&p, &m->items, &m->count);
    } else if (!strncmp(p, "null", 4)) {
        m->kind = JSON_MEMBER_NULL;
        p += 4;
        rc = 0;
    } else {
        m->kind = JSON_MEMBER_INTEGER;
        rc = read_integer(&p, &m->integer);
    }
    *pp = p;
    return rc;
}

int json_parse_flat_object(const char *json, json_member **members_out, size_t *count_out)
{
    json_member *ms = NULL;
    size_t count = 0;
    int rc = INGOT_E_INVALID;
    const char *p = skip_space(json);
    if (*p++ != '{') goto fail;
    p = skip_space(p);
    if (*p == '}') {
        p++;
    } else {
        for (;;) {
            rc = INGOT_E_NOMEM;
            json_member *grown = realloc(ms, (count + 1) * sizeof *ms);
            if (!grown) goto fail;
            ms = grown;
            memset(&ms[count], 0, sizeof ms[count]);
            count++;
            rc = INGOT_E_INVALID;
            if (*p != '"') goto fail;
            if ((rc = read_string_dup(&p, &ms[count - 1].key)) != 0) goto fail;
            p = skip_space(p);
            rc = INGOT_E_INVALID;
            if (*p++ != ':') goto fail;
            p = skip_space(p);
            if ((rc = read_member_value(&p, &ms[count - 1])) != 0) goto fail;
            rc = INGOT_E_INVALID;
            p = skip_space(p);
            if (*p == '}') {
                p++;
                break;
            }
            if (*p++ != ',') goto fail;
            p = skip_space(p);
        }
    }
    if (*skip_space(p) != '\0') goto fail;
    *members_out = ms;
    *count_out = count;
    return 0;
fail:
    json_free_members(ms, count);
    return rc;
}

void json_free_members(json_member *members, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(members[i].key);
        free(members[i].string);
        json_free_string_array(members[i].items, members[i].count);
    }
    free(members);
}

void json_put_string_array(strbuf *out, const char *const *items, size_t count)
{
    strbuf_putc(out, '[');
    for (size_t i = 0; i < count; i++) {
        if (i) strbuf_putc(out, ',');
        json_put_string(out, items[i], strlen(items[i]));
    }
    strbuf_putc(out, ']');
}

void json_free_string_array(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++) free(items[i]);
    free(items);
}
