/*
 * log.h: leveled logging to stderr, one line per message:
 *   2026-11-26T03:40:00.123Z INFO  wal: opened segment 7
 * The level is process-wide (set once at start-up, read atomically). Thread-safe: each message is
 * formatted into a local buffer and written with one write(2), so lines never interleave.
 */
#ifndef INGOT_LOG_H
#define INGOT_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int log_level_parse(const char *s);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
