/*
 * lp.c: the InfluxDB line protocol parser (contract in lp.h).
 *
 * What it owns. Nothing outside the lp_batch it fills: the batch's four arrays (lines, tags,
 * fields, errors) are allocated here, grown geometrically and kept across lp_batch_reset(), so a
 * batch reused request after request stops allocating. The body is only read, never copied:
 * lp_batch.base is the body and every name and string value is an lp_str, an offset into it
 * (the compact layout of lp.h: lp_str 8 bytes, lp_tag and lp_field 16, lp_line 48). Hence the
 * two limits of this parser's own: a body of at most LP_MAX_BODY_BYTES (else INGOT_E_TOO_LARGE)
 * and tag and field keys of at most LP_MAX_KEY_BYTES raw bytes (else an error of that line).
 *
 * Wire format (InfluxDB v2 line protocol), one point per line:
 *   measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
 * - A line ends at every '\n' (a "\r\n" pair ends it too; a '\r' before the terminator is not
 *   part of the line). There is no way to put a raw newline into a line: an unterminated string
 *   value is an error of that line, and the next line starts after the newline.
 * - Leading spaces and tabs are skipped; empty lines, whitespace-only lines and lines whose first
 *   non-blank byte is '#' are skipped. Line numbers count every line, skipped ones included.
 * - Like InfluxDB v2 (models/points.go skips whitespace before the field set and the timestamp),
 *   runs of spaces or tabs after the single separating space are accepted, and so is trailing
 *   whitespace after the field set or the timestamp.
 * - Escapes: a backslash always pairs with the byte after it while scanning (so "\," never ends a
 *   token), except before '\n' or at the end of the body, where it is a literal backslash. When a
 *   pair is materialised, only the pairs of the token's rule lose their backslash (measurement:
 *   "\," "\ "; keys and tag values: "\," "\=" "\ "; strings: "\"" "\\"); other pairs stay as
 *   written. lp_str.escaped is set only when such a pair occurs, so escaped == 0 means the bytes
 *   are final, and escaped != 0 means lp_str_unescape() yields strictly fewer bytes. The raw to
 *   unescaped mapping is one-to-one for a given rule, so keys are compared raw.
 * - Measurement: non-empty; '=' and '"' are ordinary bytes in it. Tag keys and values and field
 *   keys: non-empty; an unescaped '=' in a tag value is refused. A quote in a key is ordinary.
 * - Field values: "string" | t T true True TRUE f F false False FALSE | number. Numbers:
 *   -?digits(i|u) for integers (no sign on unsigned), or -?(digits[.digits]|.digits)([eE][+-]?digits)?
 *   for floats (so "1" is a float; "+1", "1.2.3", "nan", "inf", "0x10" and out-of-range values
 *   like 1e400 are refused).
 * - Timestamp: -?digits, scaled to nanoseconds by the precision. AUTO (InfluxDB 3) picks the unit
 *   per timestamp from |t|: < 5e9 s, < 5e12 ms, < 5e15 us, else ns. Overflow of int64, before or
 *   after scaling, is an error. A line without timestamp takes opts->default_time_ns.
 *
 * Invariants of a filled batch: base is the body and every offset + length lies within it;
 * lines[] holds only good lines in body order with strictly increasing line numbers; tags/fields
 * of line k are the contiguous ranges named in it; a line has no two tags with the same key, no
 * two fields with the same key (a repeated field of the same type overwrites the earlier entry
 * in place, so the value kept is the last one written), no key that is both tag and field, no
 * key "time" and no key longer than LP_MAX_KEY_BYTES. errors[] holds the first max_errors bad
 * lines in body order; bad_line_count counts them all.
 *
 * Speed. The scanner classifies 64 bytes at a time with SSE2 into a bitmask of the bytes that can
 * end or escape a token (, = space \ " \n) and jumps from one such byte to the next with ctz, so
 * ordinary bytes cost a fraction of a cycle. Integers and timestamps are converted in the same
 * pass; floats use the exact fast path (mantissa <= 2^53 and |exponent| <= 22 multiply or divide
 * one exact power of ten, correctly rounded by IEEE) and strtod_l in the C locale otherwise.
 * Duplicate keys are found with a small per-line open-addressing table (generation-stamped, so
 * nothing is cleared between lines); lines with more than LP_KEY_TABLE_MAX keys fall back to
 * linear comparison.
 *
 * lp_parse() appends to the batch it is given (first_tag/first_field are absolute indexes), but
 * a batch's offsets count from one body, so it refuses a batch holding lines of another one: a
 * reset batch receives exactly one body. Its only allocations are the batch arrays and one
 * parser state (about 8 KiB) per call; the one exception is a float literal of 256 bytes or more
 * that ends the body without a terminator, which strtod needs NUL-terminated and so is copied.
 *
 * Failure recovery. A bad line is rolled back (its tags and fields are dropped) and recorded;
 * parsing resumes at the next line. The only hard failure is out of memory, after which the batch
 * holds the lines parsed so far and is still safe to reset or free.
 */
#include "lp/lp.h"

#include "util/error.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define LP_KEY_SLOTS 1024u        /* power of two */
#define LP_KEY_TABLE_MAX 512u     /* keys per line tracked by the table (load <= 1/2) */
#define LP_KEY_IS_FIELD 0x80000000u
#define LP_KEY_NONE 0xFFFFFFFFu
#define LP_FLOAT_STACK_COPY 256u  /* a float token at the very end of the body is copied here */

_Static_assert(sizeof(lp_str) == 8, "lp_str is an offset and a length");
_Static_assert(sizeof(lp_tag) == 16 && sizeof(lp_field) == 16, "lp.h's compact layout");
_Static_assert(sizeof(lp_line) == 48, "lp.h's compact layout");

typedef struct lp_key_slot {
    uint32_t gen; /* the slot is in use for the current line iff gen == parser's gen */
    uint32_t ref; /* index within the line's tags, or LP_KEY_IS_FIELD | index within its fields */
} lp_key_slot;

/* The state of one lp_parse() call; lives on its stack. */
typedef struct lp_parser {
    const char *body;
    const char *end;
    const lp_options *opts;
    lp_batch *batch;
    const char *blk; /* start of the block described by mask */
    uint64_t mask;   /* bit i set: blk[i] is one of , = space \ " \n */
    uint32_t gen;    /* generation of the current line in keys[] */
    const char *err_at;  /* bad line: the byte the error is about */
    char err_msg[160];   /* bad line: the message */
    lp_key_slot keys[LP_KEY_SLOTS];
} lp_parser;

enum { LP_LINE_GOOD = 0, LP_LINE_BAD = 1 };

/* ---------------------------------------------------------------------------------------------
 * Scanning
 */

static uint64_t lp_block_mask(const char *p) /* p[0..64) readable */
{
#if defined(__SSE2__)
    const __m128i comma = _mm_set1_epi8(','), eq = _mm_set1_epi8('='), sp = _mm_set1_epi8(' ');
    const __m128i bs = _mm_set1_epi8('\\'), qu = _mm_set1_epi8('"'), nl = _mm_set1_epi8('\n');
    uint64_t m = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        __m128i a = _mm_or_si128(_mm_cmpeq_epi8(v, comma), _mm_cmpeq_epi8(v, eq));
        __m128i b = _mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, bs));
        __m128i c = _mm_or_si128(_mm_cmpeq_epi8(v, qu), _mm_cmpeq_epi8(v, nl));
        uint32_t bits = (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), c));
        m |= (uint64_t)bits << (16 * i);
    }
    return m;
#else
    uint64_t m = 0;
    for (int i = 0; i < 64; i++) {
        char c = p[i];
        if (c == ',' || c == '=' || c == ' ' || c == '\\' || c == '"' || c == '\n')
            m |= 1ull << i;
    }
    return m;
#endif
}

static void lp_refill(lp_parser *ps, const char *p)
{
    ps->blk = p;
    if (ps->end - p >= 64) {
        ps->mask = lp_block_mask(p);
    } else {
        char tmp[64];
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, p, (size_t)(ps->end - p));
        ps->mask = lp_block_mask(tmp); /* the zero padding matches nothing */
    }
}

/* The first byte at or after p that is one of , = space \ " \n; or the end of the body. */
static inline const char *lp_next_special(lp_parser *ps, const char *p)
{
    for (;;) {
        size_t off = (size_t)(p - ps->blk);
        if (off < 64) {
            uint64_t m = ps->mask >> off;
            if (m) return p + __builtin_ctzll(m);
            if (ps->end - ps->blk <= 64) return ps->end;
            p = ps->blk + 64;
        }
        if (p >= ps->end) return ps->end;
        lp_refill(ps, p);
    }
}

static inline int lp_is_eol(const lp_parser *ps, const char *p)
{
    return p == ps->end || *p == '\n' || (*p == '\r' && (p + 1 == ps->end || p[1] == '\n'));
}

static inline int lp_is_digit(char c)
{
    return (unsigned)((unsigned char)c - '0') < 10u;
}

/*
 * If p[0..8) are eight decimal digits, stores their value and returns 1. Little-endian SWAR:
 * byte i holds digit i; each step merges neighbours (1+1 -> 2 digits, 2+2 -> 4, 4+4 -> 8).
 */
static inline int lp_eight_digits(const char *p, uint64_t *out)
{
    uint64_t v;
    memcpy(&v, p, 8);
    /* Every high nibble 3, and no low nibble above 9 (adding 6 would carry into the high one). */
    if (((v & 0xF0F0F0F0F0F0F0F0ull) | (((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) !=
        0x3333333333333333ull)
        return 0;
    v -= 0x3030303030303030ull;
    v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FFull;   /* 4 lanes of 2 digits */
    v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFFull; /* 2 lanes of 4 digits */
    v = (v * 10000 + (v >> 32)) & 0xFFFFFFFFull;        /* 8 digits */
    *out = v;
    return 1;
}

/* Decimal digits at p into *value (exact, or *overflow set beyond UINT64_MAX); returns the end. */
static inline const char *lp_scan_u64(const char *p, const char *end, uint64_t *value,
                                      int *overflow)
{
    const char *s = p;
    uint64_t v = 0, eight;
    while (end - p >= 8 && lp_eight_digits(p, &eight)) {
        v = v * 100000000u + eight;
        p += 8;
    }
    while (p < end && lp_is_digit(*p)) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *overflow = 0;
    if (p - s >= 20) { /* 19 digits always fit; redo the long ones with checks */
        v = 0;
        for (const char *q = s; q < p; q++) {
            if (__builtin_mul_overflow(v, 10u, &v) ||
                __builtin_add_overflow(v, (uint64_t)(*q - '0'), &v)) {
                *overflow = 1;
                break;
            }
        }
    }
    *value = v;
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Numbers
 */

static locale_t lp_c_locale;
static pthread_once_t lp_c_locale_once = PTHREAD_ONCE_INIT;

static void lp_c_locale_init(void)
{
    lp_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static double lp_strtod(const char *s, char **endp)
{
    pthread_once(&lp_c_locale_once, lp_c_locale_init);
    if (lp_c_locale != (locale_t)0) return strtod_l(s, endp, lp_c_locale);
    return strtod(s, endp);
}

static const double lp_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * Converts the syntactically valid float token [s, e) (e is a terminator or the body end).
 * Returns 0, or -1 when the value is out of range (|x| rounds to infinity).
 */
static int lp_float_value(lp_parser *ps, const char *s, const char *e, uint64_t mant,
                          int sig_digits, long exp10, double *out)
{
    int neg = (*s == '-');
    if (mant == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if (sig_digits <= 19 && mant <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 >= 0 ? d * lp_pow10[exp10] : d / lp_pow10[-exp10];
        *out = neg ? -d : d;
        return 0;
    }
    double d;
    if (e < ps->end) {
        /* The byte at e ends any number strtod could read, so it stops exactly at e. */
        d = lp_strtod(s, NULL);
    } else {
        size_t n = (size_t)(e - s);
        char stack[LP_FLOAT_STACK_COPY];
        char *copy = n < sizeof stack ? stack : malloc(n + 1);
        if (!copy) return -2;
        memcpy(copy, s, n);
        copy[n] = '\0';
        d = lp_strtod(copy, NULL);
        if (copy != stack) free(copy);
    }
    if (isinf(d)) return -1;
    *out = d;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Batch arrays
 */

static int lp_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first_cap)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : first_cap;
    while (nc < need) nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na) return INGOT_E_NOMEM;
    *arr = na;
    *cap = nc;
    return 0;
}

static inline lp_tag *lp_push_tag(lp_batch *b)
{
    if (b->tag_count == b->tag_cap &&
        lp_grow((void **)&b->tags, &b->tag_cap, b->tag_count + 1, sizeof *b->tags, 256))
        return NULL;
    return &b->tags[b->tag_count++];
}

static inline lp_field *lp_push_field(lp_batch *b)
{
    if (b->field_count == b->field_cap &&
        lp_grow((void **)&b->fields, &b->field_cap, b->field_count + 1, sizeof *b->fields, 256))
        return NULL;
    return &b->fields[b->field_count++];
}

/* ---------------------------------------------------------------------------------------------
 * Duplicate keys within a line
 */

static inline uint32_t lp_key_hash(const lp_parser *ps, const char *p, uint32_t len)
{
    uint64_t a = 0, z = 0;
    if (len >= 8) {
        memcpy(&a, p, 8);
        memcpy(&z, p + len - 8, 8);
    } else if (ps->end - p >= 8) {
        memcpy(&a, p, 8);
        a &= (1ull << (8 * len)) - 1;
    } else {
        for (uint32_t i = 0; i < len; i++) a |= (uint64_t)(unsigned char)p[i] << (8 * i);
    }
    uint64_t h = (a ^ (z * 0x9E3779B97F4A7C15ull) ^ len) * 0xFF51AFD7ED558CCDull;
    return (uint32_t)(h >> 40);
}

/*
 * Keys are handled as raw bytes (pointer and length) while a line is parsed: the raw to unescaped
 * mapping is one-to-one, so equal raw bytes mean equal keys, and the packed form of the stored
 * keys (lp.h) is only unpacked for the length.
 */
static inline int lp_key_eq(const char *body, uint32_t off, uint32_t len, const char *key,
                            uint32_t key_len)
{
    return len == key_len && memcmp(body + off, key, key_len) == 0;
}

static inline int lp_key_is(const lp_parser *ps, const lp_line *ln, uint32_t ref,
                            const char *key, uint32_t key_len)
{
    const lp_batch *b = ps->batch;
    if (ref & LP_KEY_IS_FIELD) {
        const lp_field *f = &b->fields[ln->first_field + (ref & ~LP_KEY_IS_FIELD)];
        return lp_key_eq(ps->body, f->key_off, f->key_len, key, key_len);
    }
    const lp_tag *t = &b->tags[ln->first_tag + ref];
    return lp_key_eq(ps->body, t->key_off, t->key_len, key, key_len);
}

/* lp_key_lookup() for lines with more keys than the table tracks: compare with every key. */
static __attribute__((noinline)) uint32_t lp_key_lookup_linear(const lp_parser *ps,
                                                               const lp_line *ln,
                                                               const char *key, uint32_t key_len)
{
    for (uint32_t i = 0; i < ln->tag_count; i++)
        if (lp_key_is(ps, ln, i, key, key_len)) return i;
    for (uint32_t i = 0; i < ln->field_count; i++)
        if (lp_key_is(ps, ln, LP_KEY_IS_FIELD | i, key, key_len)) return LP_KEY_IS_FIELD | i;
    return LP_KEY_NONE;
}

/*
 * Looks key[0..key_len) up among the tags and fields of the line being built (ln's counts say
 * how many are there). Returns the ref of the equal key, or LP_KEY_NONE after registering key as
 * new_ref.
 */
static inline __attribute__((always_inline)) uint32_t
lp_key_lookup(lp_parser *ps, const lp_line *ln, const char *key, uint32_t key_len,
              uint32_t new_ref)
{
    if (ln->tag_count + ln->field_count >= LP_KEY_TABLE_MAX)
        return lp_key_lookup_linear(ps, ln, key, key_len);
    uint32_t h = lp_key_hash(ps, key, key_len) & (LP_KEY_SLOTS - 1);
    for (;;) {
        lp_key_slot *s = &ps->keys[h];
        if (s->gen != ps->gen) {
            s->gen = ps->gen;
            s->ref = new_ref;
            return LP_KEY_NONE;
        }
        if (lp_key_is(ps, ln, s->ref, key, key_len)) return s->ref;
        h = (h + 1) & (LP_KEY_SLOTS - 1);
    }
}

/* ---------------------------------------------------------------------------------------------
 * One line
 */

static int lp_bad(lp_parser *ps, const char *at, const char *msg)
{
    ps->err_at = at;
    snprintf(ps->err_msg, sizeof ps->err_msg, "%s", msg);
    return LP_LINE_BAD;
}

/* A bad key at..key_end, named in the message (fmt has one "%.*s"). */
static int lp_bad_key(lp_parser *ps, const char *at, const char *key_end, const char *fmt)
{
    ps->err_at = at;
    int n = key_end - at > 100 ? 100 : (int)(key_end - at);
    snprintf(ps->err_msg, sizeof ps->err_msg, fmt, n, at);
    return LP_LINE_BAD;
}

/*
 * Scans a key or tag value starting at p, up to the first unescaped byte among , = space \n (or
 * the body end). Sets *escaped when a pair of the LP_ESC_KEY rule occurs. Returns the stop byte.
 */
static inline const char *lp_scan_key(lp_parser *ps, const char *p, uint32_t *escaped)
{
    for (;;) {
        const char *q = lp_next_special(ps, p);
        if (q == ps->end) return q;
        char c = *q;
        if (c == '\\') {
            if (q + 1 < ps->end && q[1] != '\n') {
                char n = q[1];
                if (n == ',' || n == '=' || n == ' ') *escaped = LP_ESC_KEY;
                p = q + 2;
            } else {
                p = q + 1;
            }
            continue;
        }
        if (c == '"') {
            p = q + 1;
            continue;
        }
        return q;
    }
}

/* The lp_str of [from, to) (the body is at most LP_MAX_BODY_BYTES: every offset fits). */
static inline lp_str lp_mkstr(const lp_parser *ps, const char *from, const char *to,
                              uint32_t escaped)
{
    lp_str s;
    s.off = (uint32_t)(from - ps->body);
    s.len = (uint32_t)(to - from);
    s.escaped = escaped;
    return s;
}

static inline int lp_is_time_key(const char *key, const char *key_end, uint32_t escaped)
{
    return key_end - key == 4 && !escaped && memcmp(key, "time", 4) == 0;
}

static inline int lp_match(const lp_parser *ps, const char *p, const char *word, size_t n)
{
    return (size_t)(ps->end - p) >= n && memcmp(p, word, n) == 0;
}

/* Length of the boolean spelling at p (then *value is set), or 0 if none matches. */
static size_t lp_scan_bool(const lp_parser *ps, const char *p, bool *value)
{
    switch (*p) {
    case 't':
        *value = true;
        return lp_match(ps, p, "true", 4) ? 4 : 1;
    case 'T':
        *value = true;
        return lp_match(ps, p, "TRUE", 4) || lp_match(ps, p, "True", 4) ? 4 : 1;
    case 'f':
        *value = false;
        return lp_match(ps, p, "false", 5) ? 5 : 1;
    case 'F':
        *value = false;
        return lp_match(ps, p, "FALSE", 5) || lp_match(ps, p, "False", 5) ? 5 : 1;
    default:
        return 0;
    }
}

/*
 * Parses the number at v into f->value and *type. Returns the byte after it, or NULL with the
 * error recorded in ps (or ps->err_at == NULL for out of memory).
 */
static const char *lp_parse_number(lp_parser *ps, const char *v, lp_field *f, uint32_t *type)
{
    const char *end = ps->end, *s = v;
    int neg = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    uint64_t ival;
    int ovf;
    const char *int_start = s;
    s = lp_scan_u64(s, end, &ival, &ovf);
    size_t nint = (size_t)(s - int_start);
    if (s < end && nint > 0) {
        if (*s == 'i') {
            if (ovf || ival > (uint64_t)INT64_MAX + (uint64_t)neg) {
                lp_bad(ps, v, "integer overflow");
                return NULL;
            }
            *type = LP_FIELD_I64;
            f->value.i64 = neg ? (int64_t)(0 - ival) : (int64_t)ival;
            return s + 1;
        }
        if (*s == 'u') {
            if (neg) {
                lp_bad(ps, v, "negative unsigned integer");
                return NULL;
            }
            if (ovf) {
                lp_bad(ps, v, "unsigned integer overflow");
                return NULL;
            }
            *type = LP_FIELD_U64;
            f->value.u64 = ival;
            return s + 1;
        }
    }
    /* A float: mantissa digits of the integer and fraction parts, then an optional exponent. */
    uint64_t mant = 0;
    int sig = 0;
    long exp10 = 0;
    for (const char *q = int_start; q < s; q++) {
        if (sig == 0 && *q == '0') continue;
        if (sig < 19) mant = mant * 10 + (uint64_t)(*q - '0');
        else exp10++;
        sig++;
    }
    size_t nfrac = 0;
    if (s < end && *s == '.') {
        s++;
        for (; s < end && lp_is_digit(*s); s++, nfrac++) {
            if (sig == 0 && *s == '0') {
                exp10--;
                continue;
            }
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*s - '0');
                exp10--;
            }
            sig++;
        }
    }
    if (nint + nfrac == 0) {
        lp_bad(ps, v, "invalid field value");
        return NULL;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int eneg = 0;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = (*s == '-');
            s++;
        }
        if (s >= end || !lp_is_digit(*s)) {
            lp_bad(ps, v, "invalid field value");
            return NULL;
        }
        long e = 0;
        for (; s < end && lp_is_digit(*s); s++)
            if (e < 100000) e = e * 10 + (*s - '0');
        exp10 += eneg ? -e : e;
    }
    if (!(s == end || *s == ',' || *s == ' ' || lp_is_eol(ps, s))) {
        lp_bad(ps, v, "invalid field value");
        return NULL;
    }
    double d;
    int rc = lp_float_value(ps, v, s, mant, sig, exp10, &d);
    if (rc == -1) {
        lp_bad(ps, v, "float out of range");
        return NULL;
    }
    if (rc < 0) {
        ps->err_at = NULL;
        return NULL;
    }
    *type = LP_FIELD_F64;
    f->value.f64 = d;
    return s;
}

static inline const char *lp_skip_blanks(const lp_parser *ps, const char *p)
{
    while (p < ps->end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/*
 * Parses the line whose first non-blank byte is p. On success appends it to the batch, sets
 * *eol to its terminator ('\n', the '\r' of "\r\n", or the body end) and returns LP_LINE_GOOD.
 * A bad line returns LP_LINE_BAD with ps->err_at/err_msg set and leaves the batch as it was.
 * Out of memory returns INGOT_E_NOMEM.
 */
static int lp_parse_line(lp_parser *ps, const char *p, const char **eol)
{
    lp_batch *b = ps->batch;
    const char *end = ps->end;
    const char *q;
    int rc;
    /* The line is built in place in the next free slot and committed by line_count++. */
    if (b->line_count == b->line_cap &&
        lp_grow((void **)&b->lines, &b->line_cap, b->line_count + 1, sizeof *b->lines, 64))
        return INGOT_E_NOMEM;
    lp_line *const ln = &b->lines[b->line_count];
    memset(ln, 0, sizeof *ln);
    ln->first_tag = (uint32_t)b->tag_count;
    ln->first_field = (uint32_t)b->field_count;
    ps->gen++;

    /* Measurement. */
    uint32_t esc = 0;
    const char *m0 = p;
    for (;;) {
        q = lp_next_special(ps, p);
        if (q == end) break;
        char c = *q;
        if (c == '\\') {
            if (q + 1 < end && q[1] != '\n') {
                if (q[1] == ',' || q[1] == ' ') esc = LP_ESC_MEASUREMENT;
                p = q + 2;
            } else {
                p = q + 1;
            }
            continue;
        }
        if (c == ',' || c == ' ' || c == '\n') break;
        p = q + 1; /* '=' and '"' are ordinary here */
    }
    if (q == m0) {
        rc = lp_bad(ps, q, "missing measurement");
        goto fail;
    }
    ln->measurement = lp_mkstr(ps, m0, q, esc);
    if (q == end || *q == '\n') {
        rc = lp_bad(ps, q, "missing field set");
        goto fail;
    }

    /* Tag set. */
    while (*q == ',') {
        const char *k0 = q + 1;
        esc = 0;
        q = lp_scan_key(ps, k0, &esc);
        if (q == k0) {
            rc = lp_bad(ps, q, "missing tag key");
            goto fail;
        }
        if (q == end || *q != '=') {
            rc = lp_bad(ps, q, "missing tag value");
            goto fail;
        }
        if ((size_t)(q - k0) > LP_MAX_KEY_BYTES) {
            rc = lp_bad(ps, k0, "tag key longer than 4095 bytes");
            goto fail;
        }
        const char *k1 = q;
        const uint32_t kesc = esc;
        const char *v0 = q + 1;
        esc = 0;
        q = lp_scan_key(ps, v0, &esc);
        if (q == v0) {
            rc = lp_bad(ps, q, "missing tag value");
            goto fail;
        }
        if (q == end || *q == '\n') {
            rc = lp_bad(ps, q, "missing field set");
            goto fail;
        }
        if (*q == '=') {
            rc = lp_bad(ps, q, "unescaped '=' in tag value");
            goto fail;
        }
        if (lp_is_time_key(k0, k1, kesc)) {
            rc = lp_bad(ps, k0, "invalid tag key \"time\"");
            goto fail;
        }
        if (lp_key_lookup(ps, ln, k0, (uint32_t)(k1 - k0), ln->tag_count) != LP_KEY_NONE) {
            rc = lp_bad_key(ps, k0, k1, "duplicate tag \"%.*s\"");
            goto fail;
        }
        lp_tag *t = lp_push_tag(b);
        if (!t) {
            rc = INGOT_E_NOMEM;
            goto fail;
        }
        t->key_off = (uint32_t)(k0 - ps->body);
        t->key_len = (uint16_t)(k1 - k0);
        t->key_escaped = kesc != 0;
        t->column = LP_COLUMN_UNRESOLVED;
        t->value = lp_mkstr(ps, v0, q, esc);
        ln->tag_count++;
    }

    /* Field set: q is at the space after the series key. */
    p = lp_skip_blanks(ps, q + 1);
    if (lp_is_eol(ps, p)) {
        rc = lp_bad(ps, p, "missing field set");
        goto fail;
    }
    for (;;) {
        const char *k0 = p;
        esc = 0;
        q = lp_scan_key(ps, k0, &esc);
        if (q == k0) {
            rc = lp_bad(ps, q, "missing field key");
            goto fail;
        }
        if (q == end || *q != '=') {
            rc = lp_bad(ps, q, "invalid field format");
            goto fail;
        }
        if ((size_t)(q - k0) > LP_MAX_KEY_BYTES) {
            rc = lp_bad(ps, k0, "field key longer than 4095 bytes");
            goto fail;
        }
        /* The field is parsed in place in the next free slot; dropped again if not kept. */
        lp_field *f = lp_push_field(b);
        if (!f) {
            rc = INGOT_E_NOMEM;
            goto fail;
        }
        const char *k1 = q;
        const uint32_t kesc = esc;
        f->key_off = (uint32_t)(k0 - ps->body);
        f->column = LP_COLUMN_UNRESOLVED;
        const char *v = q + 1;
        const char *after;
        uint32_t ftype;
        if (v == end || *v == ',' || *v == ' ' || lp_is_eol(ps, v)) {
            rc = lp_bad(ps, v, "missing field value");
            goto fail;
        }
        char c = *v;
        if (c == '"') {
            const char *s = v + 1;
            esc = 0;
            for (;;) {
                const char *r = lp_next_special(ps, s);
                if (r == end || *r == '\n') {
                    rc = lp_bad(ps, v, "unterminated string");
                    goto fail;
                }
                if (*r == '\\') {
                    if (r + 1 < end && r[1] != '\n') {
                        if (r[1] == '"' || r[1] == '\\') esc = LP_ESC_STRING;
                        s = r + 2;
                    } else {
                        s = r + 1;
                    }
                    continue;
                }
                if (*r == '"') {
                    ftype = LP_FIELD_STRING;
                    f->value.str = lp_mkstr(ps, v + 1, r, esc);
                    after = r + 1;
                    break;
                }
                s = r + 1;
            }
        } else if (c == '-' || c == '.' || lp_is_digit(c)) {
            after = lp_parse_number(ps, v, f, &ftype);
            if (!after) {
                rc = ps->err_at ? LP_LINE_BAD : INGOT_E_NOMEM;
                goto fail;
            }
        } else {
            bool bv = false;
            size_t n = lp_scan_bool(ps, v, &bv);
            if (n == 0) {
                rc = lp_bad(ps, v, "invalid field value");
                goto fail;
            }
            ftype = LP_FIELD_BOOL;
            f->value.boolean = bv;
            after = v + n;
        }
        if (!(after == end || *after == ',' || *after == ' ' || lp_is_eol(ps, after))) {
            rc = lp_bad(ps, v, "invalid field value");
            goto fail;
        }
        if (lp_is_time_key(k0, k1, kesc)) {
            rc = lp_bad(ps, k0, "invalid field key \"time\"");
            goto fail;
        }
        f->key_len = (uint16_t)(k1 - k0); /* the packed key and type, once the value is known */
        f->key_escaped = kesc != 0;
        f->type = (uint16_t)ftype;
        uint32_t ref =
            lp_key_lookup(ps, ln, k0, (uint32_t)(k1 - k0), LP_KEY_IS_FIELD | ln->field_count);
        if (ref == LP_KEY_NONE) {
            ln->field_count++;
        } else if (!(ref & LP_KEY_IS_FIELD)) {
            rc = lp_bad_key(ps, k0, k1, "field \"%.*s\" is also a tag");
            goto fail;
        } else {
            lp_field *prev = &b->fields[ln->first_field + (ref & ~LP_KEY_IS_FIELD)];
            if (prev->type != ftype) {
                rc = lp_bad_key(ps, k0, k1, "field \"%.*s\" has two types");
                goto fail;
            }
            prev->value = f->value; /* the last value written wins */
            b->field_count--;       /* f was the last slot */
        }
        if (after != end && *after == ',') {
            p = after + 1;
            continue;
        }
        p = after;
        break;
    }

    /* Timestamp. */
    if (!lp_is_eol(ps, p)) {
        p = lp_skip_blanks(ps, p); /* p was at the space after the field set */
    }
    if (lp_is_eol(ps, p)) {
        ln->time_ns = ps->opts->default_time_ns;
    } else {
        const char *t0 = p;
        int neg = 0;
        if (*p == '-') {
            neg = 1;
            p++;
        }
        uint64_t mag;
        int ovf;
        const char *d0 = p;
        p = lp_scan_u64(p, end, &mag, &ovf);
        if (p == d0) {
            rc = lp_bad(ps, t0, "invalid timestamp");
            goto fail;
        }
        if (ovf || mag > (uint64_t)INT64_MAX + (uint64_t)neg) {
            rc = lp_bad(ps, t0, "timestamp out of range");
            goto fail;
        }
        const char *tail = lp_skip_blanks(ps, p);
        if (!lp_is_eol(ps, tail)) {
            rc = lp_bad(ps, p == tail ? t0 : tail, "invalid timestamp");
            goto fail;
        }
        p = tail;
        int64_t t = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        int64_t mult;
        switch (ps->opts->precision) {
        case LP_PRECISION_US: mult = 1000; break;
        case LP_PRECISION_MS: mult = 1000000; break;
        case LP_PRECISION_S: mult = 1000000000; break;
        case LP_PRECISION_AUTO:
            mult = mag < 5000000000ull         ? 1000000000
                   : mag < 5000000000000ull    ? 1000000
                   : mag < 5000000000000000ull ? 1000
                                               : 1;
            break;
        default: mult = 1; break;
        }
        if (__builtin_mul_overflow(t, mult, &ln->time_ns)) {
            rc = lp_bad(ps, t0, "timestamp out of range");
            goto fail;
        }
    }
    *eol = p;
    b->line_count++;
    return LP_LINE_GOOD;

fail:
    b->tag_count = ln->first_tag;
    b->field_count = ln->first_field;
    return rc;
}

static int lp_record_error(lp_parser *ps, const char *ls, const char *text_end, uint32_t line_no)
{
    lp_batch *b = ps->batch;
    b->bad_line_count++;
    if (b->error_count >= ps->opts->max_errors) return 0;
    if (b->error_count == b->error_cap &&
        lp_grow((void **)&b->errors, &b->error_cap, b->error_count + 1, sizeof *b->errors, 8))
        return INGOT_E_NOMEM;
    lp_error *e = &b->errors[b->error_count++];
    e->line_number = line_no;
    e->line_text = ls;
    e->line_len = (uint32_t)(text_end - ls);
    size_t col = (size_t)(ps->err_at - ls) + 1;
    if (col > (size_t)e->line_len + 1) col = (size_t)e->line_len + 1;
    e->column = (uint32_t)col;
    memcpy(e->message, ps->err_msg, sizeof e->message);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Public functions
 */

int lp_parse(const char *body, size_t len, const lp_options *opts, lp_batch *batch)
{
    if (len > LP_MAX_BODY_BYTES) return INGOT_E_TOO_LARGE;
    if (batch->line_count && batch->base != body) return INGOT_E_INVALID;
    batch->base = body;
    lp_parser *ps = malloc(sizeof *ps);
    if (!ps) return INGOT_E_NOMEM;
    int rc = 0;
    memset(ps->keys, 0, sizeof ps->keys);
    ps->body = body;
    ps->end = body + len;
    ps->opts = opts;
    ps->batch = batch;
    ps->gen = 0;
    ps->blk = body;
    ps->mask = 0;
    if (len) lp_refill(ps, body);

    const char *p = body, *end = body + len;
    uint32_t line_no = 0;
    while (p < end) {
        line_no++;
        const char *ls = p;
        p = lp_skip_blanks(ps, p);
        if (p < end && *p == '#') {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
            continue;
        }
        if (lp_is_eol(ps, p)) {
            if (p < end && *p == '\r') p++;
            if (p < end) p++;
            continue;
        }
        const char *eol = NULL;
        int lr = lp_parse_line(ps, p, &eol);
        if (lr < 0) {
            rc = lr;
            goto fail;
        }
        const char *le; /* the '\n' or the body end */
        if (lr == LP_LINE_BAD) {
            le = memchr(ps->err_at, '\n', (size_t)(end - ps->err_at));
            if (!le) le = end;
        } else {
            le = eol;
            if (le < end && *le == '\r') le++;
        }
        const char *text_end = (le > ls && le[-1] == '\r') ? le - 1 : le;
        if (lr == LP_LINE_GOOD) {
            lp_line *ln = &batch->lines[batch->line_count - 1];
            ln->text_off = (uint32_t)(ls - body);
            ln->text_len = (uint32_t)(text_end - ls);
            ln->line_number = line_no;
        } else {
            rc = lp_record_error(ps, ls, text_end, line_no);
            if (rc < 0) goto fail;
        }
        p = le < end ? le + 1 : end;
    }
fail:
    free(ps);
    return rc;
}

void lp_batch_reset(lp_batch *batch)
{
    batch->base = NULL;
    batch->line_count = 0;
    batch->tag_count = 0;
    batch->field_count = 0;
    batch->error_count = 0;
    batch->bad_line_count = 0;
}

void lp_batch_free(lp_batch *batch)
{
    free(batch->lines);
    free(batch->tags);
    free(batch->fields);
    free(batch->errors);
    memset(batch, 0, sizeof *batch);
}

size_t lp_unescape(const char *p, size_t len, unsigned escaped, char *out)
{
    if (!escaped) {
        if (len) memcpy(out, p, len);
        return len;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < len) {
            char n = p[i + 1];
            int drop;
            switch (escaped) {
            case LP_ESC_MEASUREMENT: drop = (n == ',' || n == ' '); break;
            case LP_ESC_KEY: drop = (n == ',' || n == '=' || n == ' '); break;
            case LP_ESC_STRING: drop = (n == '"' || n == '\\'); break;
            default: drop = 0; break;
            }
            if (!drop) out[o++] = c;
            out[o++] = n;
            i++;
            continue;
        }
        out[o++] = c;
    }
    return o;
}

int lp_precision_parse(const char *s, enum lp_precision *out)
{
    static const struct {
        const char *name;
        enum lp_precision p;
    } names[] = {
        {"ns", LP_PRECISION_NS},          {"n", LP_PRECISION_NS},
        {"nanosecond", LP_PRECISION_NS},  {"us", LP_PRECISION_US},
        {"u", LP_PRECISION_US},           {"microsecond", LP_PRECISION_US},
        {"ms", LP_PRECISION_MS},          {"millisecond", LP_PRECISION_MS},
        {"s", LP_PRECISION_S},            {"second", LP_PRECISION_S},
        {"auto", LP_PRECISION_AUTO},
    };
    if (!s) return INGOT_E_INVALID;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].p;
            return 0;
        }
    }
    return INGOT_E_INVALID;
}
