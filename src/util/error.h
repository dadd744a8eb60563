/*
 * error.h: the one error type of ingot.
 *
 * Every fallible function returns an int: 0 (INGOT_OK) on success, a negative code on failure.
 * Codes from the operating system are carried as -errno (so -ENOSPC, -EIO ...); ingot's own codes
 * come from the X-macro table below and are all <= -1000, so the two ranges never collide.
 * ingot_strerror() names either kind. Detailed messages ("line 3, column 17: ...") travel in a
 * caller-supplied buffer next to the code; the code says what class of failure it was, which is
 * what callers branch on (400 vs 503 and so on).
 */
#ifndef INGOT_ERROR_H
#define INGOT_ERROR_H

#define INGOT_ERRORS(X)                                                                            \
    X(INGOT_E_NOMEM, -1000, "out of memory")                                                       \
    X(INGOT_E_INVALID, -1001, "invalid input")                                                     \
    X(INGOT_E_SCHEMA, -1002, "schema conflict")                                                    \
    X(INGOT_E_LIMIT, -1003, "limit exceeded")                                                      \
    X(INGOT_E_CORRUPT, -1004, "corrupt data")                                                      \
    X(INGOT_E_WAL_FAILED, -1005, "write-ahead log failed")                                         \
    X(INGOT_E_NOT_FOUND, -1006, "not found")                                                       \
    X(INGOT_E_TOO_LARGE, -1007, "too large")                                                       \
    X(INGOT_E_BUSY, -1008, "busy, retry later")                                                    \
    X(INGOT_E_SHUTTING_DOWN, -1009, "shutting down")                                               \
    X(INGOT_E_CATALOG, -1010, "catalog error")                                                     \
    X(INGOT_E_CLOSED, -1011, "closed")                                                             \
    X(INGOT_E_CONFLICT, -1012, "concurrent update conflict")

enum ingot_error {
    INGOT_OK = 0,
#define INGOT_ERROR_ENUM(name, value, text) name = value,
    INGOT_ERRORS(INGOT_ERROR_ENUM)
#undef INGOT_ERROR_ENUM
};

#define INGOT_MUST_CHECK __attribute__((warn_unused_result))

/* Text for an ingot code or a -errno value; never NULL, valid forever. */
const char *ingot_strerror(int code);

#endif
