/*
 * error.c: names for ingot's error codes (see error.h). ingot codes come from the X-macro table;
 * anything else negative is taken as -errno and named by strerror_r into a thread-local buffer.
 */
#include "util/error.h"

#include <string.h>

const char *ingot_strerror(int code)
{
    switch (code) {
    case INGOT_OK:
        return "ok";
#define INGOT_ERROR_CASE(name, value, text)                                                        \
    case name:                                                                                     \
        return text;
        INGOT_ERRORS(INGOT_ERROR_CASE)
#undef INGOT_ERROR_CASE
    default:
        break;
    }
    if (code < 0 && code > -1000) {
        static _Thread_local char buf[128];
        const char *s = strerror_r(-code, buf, sizeof buf); /* GNU variant: returns the text */
        return s;
    }
    return "unknown error";
}
