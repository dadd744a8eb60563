/*
 * json.c: the little JSON the project writes and reads itself (see json.h). Output is always
 * valid UTF-8: a byte that starts no valid sequence is written as U+FFFD. The reader only knows
 * arrays of strings (sort keys) and decodes every escape JSON has, surrogate pairs included.
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
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;
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

int json_parse_string_array(const char *json, char ***items_out, size_t *count_out)
{
    char **items = NULL;
    size_t count = 0;
    strbuf b = {0};
    const char *p = skip_space(json);
    if (*p++ != '[') goto invalid;
    p = skip_space(p);
    if (*p == ']') {
        p++;
    } else {
        for (;;) {
            if (*p != '"') goto invalid;
            strbuf_reset(&b);
            strbuf_append(&b, "", 0);
            if (!read_string(&p, &b)) goto invalid;
            if (strbuf_failed(&b)) goto nomem;
            char **grown = realloc(items, (count + 1) * sizeof *items);
            if (!grown) goto nomem;
            items = grown;
            if (!(items[count] = malloc(b.len + 1))) goto nomem;
            memcpy(items[count], b.data ? b.data : "", b.len);
            items[count++][b.len] = '\0';
            p = skip_space(p);
            if (*p == ']') {
                p++;
                break;
            }
            if (*p++ != ',') goto invalid;
            p = skip_space(p);
        }
    }
    if (*skip_space(p) != '\0') goto invalid;
    strbuf_free(&b);
    *items_out = items;
    *count_out = count;
    return 0;
invalid:
    json_free_string_array(items, count);
    strbuf_free(&b);
    return INGOT_E_INVALID;
nomem:
    json_free_string_array(items, count);
    strbuf_free(&b);
    return INGOT_E_NOMEM;
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
