/*
 * json.h: writing JSON strings (as every response and metadata blob needs) and reading the two
 * JSON shapes ingot takes in: an array of strings (a partition's sort key in the catalog) and a
 * flat object of strings, integers, string arrays and nulls (a Flight ticket).
 */
#ifndef INGOT_JSON_H
#define INGOT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/strbuf.h"

/* JSON string literal of s[0..len) with quotes, escaping and U+FFFD for invalid UTF-8. */
void json_put_string(strbuf *out, const char *s, size_t len);

/* ["a","b"] of NUL-terminated items. */
void json_put_string_array(strbuf *out, const char *const *items, size_t count);

/*
 * Parse a JSON array of strings. *items_out is a malloc'd array of malloc'd NUL-terminated
 * strings (free with json_free_string_array). INGOT_E_INVALID for anything else, INGOT_E_NOMEM.
 */
int json_parse_string_array(const char *json, char ***items_out, size_t *count_out);
void json_free_string_array(char **items, size_t count);

enum json_member_kind {
    JSON_MEMBER_NULL,
    JSON_MEMBER_STRING,
    JSON_MEMBER_INTEGER,      /* an integer literal within int64 (no fraction or exponent) */
    JSON_MEMBER_STRING_ARRAY,
};

typedef struct json_member {
    char *key;       /* NUL-terminated, unescaped */
    enum json_member_kind kind;
    char *string;    /* JSON_MEMBER_STRING: NUL-terminated, unescaped */
    int64_t integer; /* JSON_MEMBER_INTEGER */
    char **items;    /* JSON_MEMBER_STRING_ARRAY */
    size_t count;
} json_member;

/*
 * Parse a JSON object whose values are strings, integers, arrays of strings or null, into a
 * malloc'd array of members in document order (free with json_free_members). Any other value
 * (nested object, fraction, boolean) or syntax is INGOT_E_INVALID; INGOT_E_NOMEM.
 */
int json_parse_flat_object(const char *json, json_member **members_out, size_t *count_out);
void json_free_members(json_member *members, size_t count);

#endif
