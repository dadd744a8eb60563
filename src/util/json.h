/*
 * json.h: writing JSON strings (as every response and metadata blob needs) and reading the one
 * JSON shape the catalog stores: an array of strings (a partition's sort key).
 */
#ifndef INGOT_JSON_H
#define INGOT_JSON_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
