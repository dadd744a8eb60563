/*
 * strbuf.h: a growable byte buffer for building responses (JSON, CSV, Prometheus text).
 * The buffer owns its memory. After an allocation failure it is marked failed: later appends do
 * nothing and strbuf_failed() says so, so a caller checks once at the end instead of per append.
 * data is always NUL-terminated when len > 0 or cap > 0.
 */
#ifndef INGOT_STRBUF_H
#define INGOT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} strbuf;

void strbuf_append(strbuf *b, const void *data, size_t len);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_putc(strbuf *b, char c);
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make room for n more bytes; false after a failure. */
bool strbuf_reserve(strbuf *b, size_t n);
void strbuf_reset(strbuf *b); /* len = 0, keeps the memory */
void strbuf_free(strbuf *b);
static inline bool strbuf_failed(const strbuf *b)
{
    return b->failed;
}

#endif
