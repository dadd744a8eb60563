/*
 * test_lp.c: unit tests of the line protocol parser (src/lp). Every rule of lp.h is exercised
 * with a good and a bad example; errors are checked for line, column and message.
 */
#include "lp/lp.h"

#include "test.h"
#include "util/error.h"

#include <errno.h>
#include <math.h>

static lp_batch batch;
static char str_buf[4096];

static int parse_opts(const char *body, enum lp_precision prec, int64_t default_time,
                      size_t max_errors)
{
    lp_options o = {.precision = prec, .default_time_ns = default_time, .max_errors = max_errors};
    lp_batch_reset(&batch);
    return lp_parse(body, strlen(body), &o, &batch);
}

static int parse(const char *body)
{
    return parse_opts(body, LP_PRECISION_NS, 42, 100);
}

/* The unescaped text of s, in a static buffer. */
static const char *S(lp_str s)
{
    size_t n = lp_str_unescape(&batch, s, str_buf);
    str_buf[n] = '\0';
    return str_buf;
}

static const lp_tag *tag(size_t line, uint32_t i)
{
    return &batch.tags[batch.lines[line].first_tag + i];
}

static const lp_field *field(size_t line, uint32_t i)
{
    return &batch.fields[batch.lines[line].first_field + i];
}

/* Parses a single-line body expected to be good and returns its only field. */
static const lp_field *one_field(const char *body)
{
    CHECK_EQ_INT(parse(body), 0);
    if (batch.line_count != 1 || batch.bad_line_count != 0) {
        fprintf(stderr, "  unexpected rejection of: %s (%s)\n", body,
                batch.error_count ? batch.errors[0].message : "?");
        return NULL;
    }
    CHECK_EQ_INT(batch.lines[0].field_count, 1);
    return field(0, 0);
}

/* Parses a single-line body expected to be bad; checks the message and column. */
static void expect_bad(const char *body, const char *message, uint32_t column)
{
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 0);
    CHECK_EQ_INT(batch.bad_line_count, 1);
    if (batch.error_count != 1) {
        CHECK_EQ_INT(batch.error_count, 1);
        return;
    }
    if (strcmp(batch.errors[0].message, message) != 0 || batch.errors[0].column != column)
        fprintf(stderr, "  body: %s\n", body);
    CHECK_EQ_STR(batch.errors[0].message, message);
    CHECK_EQ_INT(batch.errors[0].column, column);
    CHECK_EQ_INT(batch.errors[0].line_number, 1);
}

static void test_basic_line(void)
{
    const char *body = "cpu,host=a,region=eu usage=1.5,n=3i,u=4u,s=\"hi\",b=t 1700000000000000000";
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.bad_line_count, 0);
    CHECK_EQ_INT(batch.error_count, 0);
    const lp_line *l = &batch.lines[0];
    CHECK_EQ_STR(S(l->measurement), "cpu");
    CHECK_EQ_INT(l->measurement.escaped, LP_ESC_NONE);
    CHECK_EQ_INT(l->line_number, 1);
    CHECK_EQ_INT(l->tag_count, 2);
    CHECK_EQ_INT(l->field_count, 5);
    CHECK_EQ_INT(l->table_slot, 0);
    CHECK_EQ_INT(l->time_ns, 1700000000000000000LL);
    CHECK(batch.base == body);
    CHECK(lp_line_text(&batch, l) == body);
    CHECK_EQ_INT(l->text_len, strlen(body));
    CHECK_EQ_STR(S(lp_tag_key(tag(0, 0))), "host");
    CHECK_EQ_STR(S(tag(0, 0)->value), "a");
    CHECK_EQ_STR(S(lp_tag_key(tag(0, 1))), "region");
    CHECK_EQ_STR(S(tag(0, 1)->value), "eu");
    CHECK_EQ_INT(tag(0, 0)->column, LP_COLUMN_UNRESOLVED);
    CHECK_EQ_INT(tag(0, 1)->column, LP_COLUMN_UNRESOLVED);
    CHECK_EQ_STR(S(lp_field_key(field(0, 0))), "usage");
    CHECK_EQ_INT(field(0, 0)->type, LP_FIELD_F64);
    CHECK(field(0, 0)->value.f64 == 1.5);
    CHECK_EQ_INT(field(0, 1)->type, LP_FIELD_I64);
    CHECK_EQ_INT(field(0, 1)->value.i64, 3);
    CHECK_EQ_INT(field(0, 2)->type, LP_FIELD_U64);
    CHECK_EQ_INT(field(0, 2)->value.u64, 4);
    CHECK_EQ_INT(field(0, 3)->type, LP_FIELD_STRING);
    CHECK_EQ_STR(S(field(0, 3)->value.str), "hi");
    CHECK_EQ_INT(field(0, 4)->type, LP_FIELD_BOOL);
    CHECK(field(0, 4)->value.boolean);
    for (uint32_t i = 0; i < 5; i++) CHECK_EQ_INT(field(0, i)->column, LP_COLUMN_UNRESOLVED);
    /* The strings point into the body: no copy. */
    CHECK(lp_str_ptr(&batch, lp_tag_key(tag(0, 0))) == body + 4);
    CHECK(lp_str_ptr(&batch, field(0, 3)->value.str) == strstr(body, "hi"));
}

static void test_no_tags_and_default_time(void)
{
    CHECK_EQ_INT(parse_opts("m v=1\nm v=2 7", LP_PRECISION_NS, -123, 10), 0);
    CHECK_EQ_INT(batch.line_count, 2);
    CHECK_EQ_INT(batch.lines[0].tag_count, 0);
    CHECK_EQ_INT(batch.lines[0].time_ns, -123);
    CHECK_EQ_INT(batch.lines[1].time_ns, 7);
    /* The default time is already in ns: never scaled by the precision. */
    CHECK_EQ_INT(parse_opts("m v=1", LP_PRECISION_S, 5, 10), 0);
    CHECK_EQ_INT(batch.lines[0].time_ns, 5);
    /* Trailing whitespace after the field set or the timestamp is fine. */
    CHECK_EQ_INT(parse("m v=1 \nm v=1 9  \t\nm v=1\t"), 0);
    CHECK_EQ_INT(batch.line_count, 2);
    CHECK_EQ_INT(batch.lines[0].time_ns, 42);
    CHECK_EQ_INT(batch.lines[1].time_ns, 9);
    CHECK_EQ_INT(batch.bad_line_count, 1); /* "v=1\t": a tab is not a separator */
}

static void test_escapes_measurement(void)
{
    CHECK_EQ_INT(parse("my\\ cpu\\,x v=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    const lp_line *l = &batch.lines[0];
    CHECK_EQ_INT(l->measurement.escaped, LP_ESC_MEASUREMENT);
    CHECK_EQ_INT(l->measurement.len, 10);
    CHECK_EQ_STR(S(l->measurement), "my cpu,x");
    /* '=' and '"' are ordinary in a measurement; "\=" is no escape there. */
    CHECK_EQ_INT(parse("a=b\\=\"c v=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.lines[0].measurement.escaped, LP_ESC_NONE);
    CHECK_EQ_STR(S(batch.lines[0].measurement), "a=b\\=\"c");
}

static void test_escapes_keys(void)
{
    CHECK_EQ_INT(parse("m,t\\ k\\=\\,=v\\ a\\=l\\,ue f\\ k\\=\\,=1i"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(lp_tag_key(tag(0, 0)).escaped, LP_ESC_KEY);
    CHECK_EQ_STR(S(lp_tag_key(tag(0, 0))), "t k=,");
    CHECK_EQ_INT(tag(0, 0)->value.escaped, LP_ESC_KEY);
    CHECK_EQ_STR(S(tag(0, 0)->value), "v a=l,ue");
    CHECK_EQ_INT(lp_field_key(field(0, 0)).escaped, LP_ESC_KEY);
    CHECK_EQ_STR(S(lp_field_key(field(0, 0))), "f k=,");
    CHECK_EQ_INT(field(0, 0)->value.i64, 1);
    /* Another backslash stays literal and does not set the flag. */
    CHECK_EQ_INT(parse("m,t=a\\b f\\x=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(tag(0, 0)->value.escaped, LP_ESC_NONE);
    CHECK_EQ_STR(S(tag(0, 0)->value), "a\\b");
    CHECK_EQ_STR(S(lp_field_key(field(0, 0))), "f\\x");
    /* A quote in a tag value is an ordinary byte. */
    CHECK_EQ_INT(parse("m,t=\"x\" f=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_STR(S(tag(0, 0)->value), "\"x\"");
}

static void test_escapes_string(void)
{
    const lp_field *f = one_field("m s=\"a \\\"q\\\" b\\\\c, d=e\\n\"");
    if (!f) return;
    CHECK_EQ_INT(f->type, LP_FIELD_STRING);
    CHECK_EQ_INT(f->value.str.escaped, LP_ESC_STRING);
    CHECK_EQ_STR(S(f->value.str), "a \"q\" b\\c, d=e\\n");
    f = one_field("m s=\"\"");
    if (f) {
        CHECK_EQ_INT(f->value.str.len, 0);
        CHECK_EQ_INT(f->value.str.escaped, LP_ESC_NONE);
    }
    f = one_field("m s=\"x\\ty\"");
    if (f) {
        CHECK_EQ_INT(f->value.str.escaped, LP_ESC_NONE);
        CHECK_EQ_STR(S(f->value.str), "x\\ty");
    }
    /* A string ending in an escaped backslash. */
    f = one_field("m s=\"x\\\\\" 5");
    if (f) {
        CHECK_EQ_STR(S(f->value.str), "x\\");
        CHECK_EQ_INT(batch.lines[0].time_ns, 5);
    }
}

static void test_unescape_direct(void)
{
    char out[64];
    /* lp_str_unescape() on an lp_str relative to a hand-made base. */
    static const char text[] = "..a\\,b\\ c\\=d\\\\";
    lp_batch b = {.base = text};
    lp_str s = {.off = 2, .len = 12, .escaped = LP_ESC_MEASUREMENT};
    size_t n = lp_str_unescape(&b, s, out);
    CHECK_EQ_INT(n, 10);
    CHECK(memcmp(out, "a,b c\\=d\\\\", n) == 0);
    s.escaped = LP_ESC_KEY;
    n = lp_str_unescape(&b, s, out);
    CHECK_EQ_INT(n, 9);
    CHECK(memcmp(out, "a,b c=d\\\\", n) == 0);
    s.escaped = LP_ESC_STRING;
    n = lp_str_unescape(&b, s, out);
    CHECK_EQ_INT(n, 11);
    CHECK(memcmp(out, "a\\,b\\ c\\=d\\", n) == 0);
    s.escaped = LP_ESC_NONE;
    n = lp_str_unescape(&b, s, out);
    CHECK_EQ_INT(n, 12);
    CHECK(memcmp(out, text + 2, n) == 0);
    /* Trailing lone backslash stays. */
    n = lp_unescape("x\\", 2, LP_ESC_STRING, out);
    CHECK_EQ_INT(n, 2);
    n = lp_unescape("\\\"", 2, LP_ESC_STRING, out);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(out[0], '"');
}

static void test_floats(void)
{
    static const struct {
        const char *text;
        double value;
    } cases[] = {
        {"1", 1.0},           {"-1", -1.0},        {"1.5", 1.5},
        {"-0.25", -0.25},     {"1e3", 1000.0},     {"1E9", 1e9},
        {"-1e-3", -1e-3},     {"2.5e+2", 250.0},   {".5", 0.5},
        {"5.", 5.0},          {"0", 0.0},          {"41.37", 41.37},
        {"0.1", 0.1},         {"3.141592653589793", 3.141592653589793},
        {"1.7976931348623157e308", 1.7976931348623157e308},
        {"4.9e-324", 4.9e-324},                   {"123456789012345678901234", 123456789012345678901234.0},
        {"0.000000000000000000000000001", 1e-27}, {"9007199254740993", 9007199254740992.0},
        {"1e-400", 0.0},      {"00012.5000", 12.5},
    };
    char body[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "m v=%s", cases[i].text);
        const lp_field *f = one_field(body);
        if (!f) continue;
        CHECK_EQ_INT(f->type, LP_FIELD_F64);
        if (f->value.f64 != cases[i].value) {
            fprintf(stderr, "  %s -> %.17g\n", cases[i].text, f->value.f64);
            CHECK(f->value.f64 == cases[i].value);
        }
        /* The same at the very end of the body and followed by a timestamp. */
        snprintf(body, sizeof body, "m v=%s 1\n", cases[i].text);
        f = one_field(body);
        if (f) CHECK(f->value.f64 == cases[i].value);
    }
    /* Long mantissas go to strtod, also when the token ends the body (copied, then). */
    char longbody[700];
    memcpy(longbody, "m v=", 4);
    memset(longbody + 4, '1', 600);
    memcpy(longbody + 604, ".5e-590", 8);
    const lp_field *lf = one_field(longbody);
    if (lf) CHECK(fabs(lf->value.f64 - 1111111111.1111111) < 1e-6);
    memcpy(longbody + 611, " 9", 3);
    lf = one_field(longbody);
    if (lf) {
        CHECK(fabs(lf->value.f64 - 1111111111.1111111) < 1e-6);
        CHECK_EQ_INT(batch.lines[0].time_ns, 9);
    }
    const lp_field *f = one_field("m v=-0");
    if (f) CHECK(f->value.f64 == 0.0 && signbit(f->value.f64));
    static const char *bad[] = {"1.2.3", "nan", "NaN", "inf", "-inf", "+1", "1e", "1e+",
                                "-", ".",  "1x",  "0x10", "1.5i", "1e5i", "--1", "1..2",
                                "1e400", "-1e400", "1 .5", "Infinity"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "m v=%s", bad[i]);
        CHECK_EQ_INT(parse(body), 0);
        if (batch.line_count != 0) fprintf(stderr, "  accepted: %s\n", body);
        CHECK_EQ_INT(batch.line_count, 0);
        CHECK_EQ_INT(batch.bad_line_count, 1);
    }
    expect_bad("m v=1.2.3", "invalid field value", 5);
    expect_bad("m v=1e400", "float out of range", 5);
}

static void test_integers(void)
{
    const lp_field *f = one_field("m v=9223372036854775807i");
    if (f) {
        CHECK_EQ_INT(f->type, LP_FIELD_I64);
        CHECK(f->value.i64 == INT64_MAX);
    }
    f = one_field("m v=-9223372036854775808i");
    if (f) CHECK(f->value.i64 == INT64_MIN);
    f = one_field("m v=-0i");
    if (f) CHECK(f->value.i64 == 0);
    f = one_field("m v=007i");
    if (f) CHECK(f->value.i64 == 7);
    f = one_field("m v=18446744073709551615u");
    if (f) {
        CHECK_EQ_INT(f->type, LP_FIELD_U64);
        CHECK(f->value.u64 == UINT64_MAX);
    }
    f = one_field("m v=0u");
    if (f) CHECK(f->value.u64 == 0);
    /* Random digit strings of every length against strtoull (covers the 8-digit fast path). */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 3000; i++) {
        char digits[32], body[96];
        int len = 1 + i % 22;
        for (int k = 0; k < len; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            digits[k] = (char)('0' + x % 10);
        }
        digits[len] = '\0';
        snprintf(body, sizeof body, "m v=%su %s", digits, len <= 18 ? digits : "1");
        errno = 0;
        unsigned long long want = strtoull(digits, NULL, 10);
        int over = errno == ERANGE;
        CHECK_EQ_INT(parse(body), 0);
        CHECK_EQ_INT(batch.line_count, over ? 0 : 1);
        if (!over && batch.line_count == 1) {
            CHECK(batch.fields[0].value.u64 == want);
            if (len <= 18) CHECK(batch.lines[0].time_ns == (int64_t)want);
        }
    }
    expect_bad("m v=9223372036854775808i", "integer overflow", 5);
    expect_bad("m v=-9223372036854775809i", "integer overflow", 5);
    expect_bad("m v=99999999999999999999999i", "integer overflow", 5);
    expect_bad("m v=18446744073709551616u", "unsigned integer overflow", 5);
    expect_bad("m v=99999999999999999999u", "unsigned integer overflow", 5);
    expect_bad("m v=-1u", "negative unsigned integer", 5);
    expect_bad("m v=-0u", "negative unsigned integer", 5);
    expect_bad("m v=1ii", "invalid field value", 5);
    expect_bad("m v=1i2", "invalid field value", 5);
    expect_bad("m v=-i", "invalid field value", 5);
    expect_bad("m v=i", "invalid field value", 5);
    expect_bad("m v=1.0u", "invalid field value", 5);
}

static void test_booleans(void)
{
    static const char *trues[] = {"t", "T", "true", "True", "TRUE"};
    static const char *falses[] = {"f", "F", "false", "False", "FALSE"};
    char body[64];
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof body, "m v=%s,w=%s", trues[i], falses[i]);
        CHECK_EQ_INT(parse(body), 0);
        CHECK_EQ_INT(batch.line_count, 1);
        if (batch.line_count != 1) continue;
        CHECK_EQ_INT(field(0, 0)->type, LP_FIELD_BOOL);
        CHECK(field(0, 0)->value.boolean == true);
        CHECK_EQ_INT(field(0, 1)->type, LP_FIELD_BOOL);
        CHECK(field(0, 1)->value.boolean == false);
    }
    static const char *bad[] = {"tRUE", "truE", "yes", "tr", "falsey", "FaLsE", "TRue", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "m v=%s", bad[i]);
        expect_bad(body, "invalid field value", 5);
    }
}

static void test_precision(void)
{
    static const struct {
        enum lp_precision p;
        const char *ts;
        int64_t ns;
    } cases[] = {
        {LP_PRECISION_NS, "1", 1},
        {LP_PRECISION_US, "1", 1000},
        {LP_PRECISION_MS, "1", 1000000},
        {LP_PRECISION_S, "1", 1000000000},
        {LP_PRECISION_S, "-2", -2000000000},
        {LP_PRECISION_NS, "-9223372036854775808", INT64_MIN},
        {LP_PRECISION_NS, "9223372036854775807", INT64_MAX},
        {LP_PRECISION_S, "9223372036", 9223372036000000000LL},
        {LP_PRECISION_MS, "-9223372036854", -9223372036854000000LL},
        {LP_PRECISION_US, "1767225600000000", 1767225600000000000LL},
        /* auto: the magnitude picks the unit */
        {LP_PRECISION_AUTO, "1767225600", 1767225600000000000LL},
        {LP_PRECISION_AUTO, "4999999999", 4999999999000000000LL},
        {LP_PRECISION_AUTO, "5000000000", 5000000000000000LL},
        {LP_PRECISION_AUTO, "1767225600000", 1767225600000000000LL},
        {LP_PRECISION_AUTO, "4999999999999", 4999999999999000000LL},
        {LP_PRECISION_AUTO, "5000000000000", 5000000000000000LL},
        {LP_PRECISION_AUTO, "1767225600000000", 1767225600000000000LL},
        {LP_PRECISION_AUTO, "5000000000000000", 5000000000000000LL},
        {LP_PRECISION_AUTO, "1767225600000000000", 1767225600000000000LL},
        {LP_PRECISION_AUTO, "-1767225600", -1767225600000000000LL},
        {LP_PRECISION_AUTO, "0", 0},
    };
    char body[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "m v=1 %s", cases[i].ts);
        CHECK_EQ_INT(parse_opts(body, cases[i].p, 0, 10), 0);
        CHECK_EQ_INT(batch.line_count, 1);
        if (batch.line_count != 1) {
            fprintf(stderr, "  case %zu: %s\n", i, batch.error_count ? batch.errors[0].message : "");
            continue;
        }
        if (batch.lines[0].time_ns != cases[i].ns) fprintf(stderr, "  case %zu\n", i);
        CHECK(batch.lines[0].time_ns == cases[i].ns);
    }
    static const struct {
        enum lp_precision p;
        const char *ts;
    } over[] = {
        {LP_PRECISION_NS, "9223372036854775808"}, {LP_PRECISION_NS, "-9223372036854775809"},
        {LP_PRECISION_S, "9223372037"},           {LP_PRECISION_S, "-9223372037"},
        {LP_PRECISION_MS, "9223372036855"},       {LP_PRECISION_US, "9223372036854776"},
        {LP_PRECISION_NS, "99999999999999999999999"},
    };
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        snprintf(body, sizeof body, "m v=1 %s", over[i].ts);
        CHECK_EQ_INT(parse_opts(body, over[i].p, 0, 10), 0);
        CHECK_EQ_INT(batch.line_count, 0);
        CHECK_EQ_INT(batch.error_count, 1);
        if (batch.error_count == 1) {
            CHECK_EQ_STR(batch.errors[0].message, "timestamp out of range");
            CHECK_EQ_INT(batch.errors[0].column, 7);
        }
    }
    expect_bad("m v=1 12a", "invalid timestamp", 7);
    expect_bad("m v=1 1.5", "invalid timestamp", 7);
    expect_bad("m v=1 -", "invalid timestamp", 7);
    expect_bad("m v=1 +5", "invalid timestamp", 7);
    expect_bad("m v=1 5 6", "invalid timestamp", 9);
}

static void test_precision_parse(void)
{
    static const struct {
        const char *s;
        enum lp_precision p;
    } ok[] = {{"ns", LP_PRECISION_NS},          {"n", LP_PRECISION_NS},
              {"nanosecond", LP_PRECISION_NS},  {"us", LP_PRECISION_US},
              {"u", LP_PRECISION_US},           {"microsecond", LP_PRECISION_US},
              {"ms", LP_PRECISION_MS},          {"millisecond", LP_PRECISION_MS},
              {"s", LP_PRECISION_S},            {"second", LP_PRECISION_S},
              {"auto", LP_PRECISION_AUTO}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        enum lp_precision p = LP_PRECISION_AUTO;
        if (ok[i].p == LP_PRECISION_AUTO) p = LP_PRECISION_NS;
        CHECK_EQ_INT(lp_precision_parse(ok[i].s, &p), 0);
        CHECK_EQ_INT(p, ok[i].p);
    }
    static const char *bad[] = {"", "m", "h", "NS", "sec", "nanoseconds", "auto ", "µs"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum lp_precision p = LP_PRECISION_NS;
        CHECK_EQ_INT(lp_precision_parse(bad[i], &p), INGOT_E_INVALID);
    }
    enum lp_precision p;
    CHECK_EQ_INT(lp_precision_parse(NULL, &p), INGOT_E_INVALID);
}

static void test_lines_comments_crlf(void)
{
    const char *body = "# a comment\r\n"
                       "\n"
                       "   \t\n"
                       "m v=1 1\r\n"
                       "  # indented comment\n"
                       "\r\n"
                       "  m,t=x v=2 2\r\n"
                       "bad\r\n"
                       "m v=\"s\" 3\r\n"
                       "m v=4";
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 4);
    CHECK_EQ_INT(batch.bad_line_count, 1);
    if (batch.line_count != 4) return;
    CHECK_EQ_INT(batch.lines[0].line_number, 4);
    CHECK_EQ_INT(batch.lines[0].time_ns, 1);
    CHECK_EQ_INT(batch.lines[0].text_len, 7); /* no "\r" */
    CHECK(memcmp(lp_line_text(&batch, &batch.lines[0]), "m v=1 1", 7) == 0);
    CHECK_EQ_INT(batch.lines[1].line_number, 7);
    CHECK_EQ_INT(batch.lines[1].text_len, 13); /* leading blanks are part of the text */
    CHECK_EQ_STR(S(tag(1, 0)->value), "x");
    CHECK_EQ_INT(batch.lines[1].time_ns, 2);
    CHECK_EQ_INT(batch.lines[2].line_number, 9);
    CHECK_EQ_STR(S(field(2, 0)->value.str), "s");
    CHECK_EQ_INT(batch.lines[3].line_number, 10);
    CHECK_EQ_INT(batch.lines[3].time_ns, 42);
    CHECK_EQ_INT(batch.errors[0].line_number, 8);
    CHECK_EQ_INT(batch.errors[0].line_len, 3);
    CHECK_EQ_STR(batch.errors[0].message, "missing field set");
    CHECK_EQ_INT(batch.errors[0].column, 4);
    /* Empty body, only blank lines, trailing newline: nothing, no errors. */
    CHECK_EQ_INT(parse(""), 0);
    CHECK_EQ_INT(batch.line_count + batch.bad_line_count, 0);
    CHECK_EQ_INT(parse("\n\n\r\n  \n#x"), 0);
    CHECK_EQ_INT(batch.line_count + batch.bad_line_count, 0);
    CHECK_EQ_INT(parse("m v=1\n"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.lines[0].text_len, 5);
    /* A '\r' at the very end of the body ends the line too. */
    CHECK_EQ_INT(parse("m v=1 5\r"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.lines[0].time_ns, 5);
    CHECK_EQ_INT(batch.lines[0].text_len, 7);
    /* A raw newline in a string ends the line: the string is unterminated. */
    CHECK_EQ_INT(parse("m s=\"a\nb\" 1\nm v=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.bad_line_count, 2);
    CHECK_EQ_STR(batch.errors[0].message, "unterminated string");
    CHECK_EQ_INT(batch.errors[0].line_number, 1);
    CHECK_EQ_INT(batch.errors[0].column, 5);
    CHECK_EQ_INT(batch.errors[0].line_len, 6);
    CHECK_EQ_INT(batch.errors[1].line_number, 2);
    CHECK_EQ_INT(batch.lines[0].line_number, 3);
    /* A backslash before the newline does not escape it. */
    CHECK_EQ_INT(parse("m,t=a\\\nm v=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.lines[0].line_number, 2);
    CHECK_EQ_STR(batch.errors[0].message, "missing field set");
}

static void test_spaces(void)
{
    /* InfluxDB v2 behaviour: extra blanks before the field set and the timestamp are skipped. */
    CHECK_EQ_INT(parse("m,t=a   v=1    5"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK_EQ_INT(batch.lines[0].time_ns, 5);
    CHECK_EQ_INT(parse("m \t v=1 \t 5"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    /* But not inside a section. */
    expect_bad("m v=1, w=2", "missing field key", 7);
    expect_bad("m, t=a v=1", "missing tag key", 3);
    expect_bad("m v =1", "invalid field format", 4);
}

static void test_syntax_errors(void)
{
    expect_bad(",t=a v=1", "missing measurement", 1);
    expect_bad(" v=1", "missing field set", 5); /* leading blanks are skipped */
    expect_bad("m", "missing field set", 2);
    expect_bad("m ", "missing field set", 3);
    expect_bad("m,t=a", "missing field set", 6);
    expect_bad("m,t=a ", "missing field set", 7);
    expect_bad("m,t v=1", "missing tag value", 4);
    expect_bad("m,t= v=1", "missing tag value", 5);
    expect_bad("m,=a v=1", "missing tag key", 3);
    expect_bad("m,t=a=b v=1", "unescaped '=' in tag value", 6);
    expect_bad("m,t=a, v=1", "missing tag key", 7);
    expect_bad("m v", "invalid field format", 4);
    expect_bad("m v,w=1", "invalid field format", 4);
    expect_bad("m =1", "missing field key", 3);
    expect_bad("m v=", "missing field value", 5);
    expect_bad("m v=,w=1", "missing field value", 5);
    expect_bad("m v= 1", "missing field value", 5);
    expect_bad("m v=1,", "missing field key", 7);
    expect_bad("m v=\"abc", "unterminated string", 5);
    expect_bad("m v=\"abc\\\"", "unterminated string", 5);
    expect_bad("m v=\"a\"b", "invalid field value", 5);
    expect_bad("m v=abc", "invalid field value", 5);
    expect_bad("m v=1 w=2", "invalid timestamp", 7);
}

static void test_key_rules(void)
{
    expect_bad("m,time=a v=1", "invalid tag key \"time\"", 3);
    expect_bad("m time=1", "invalid field key \"time\"", 3);
    expect_bad("m,a=1,b=2,a=3 v=1", "duplicate tag \"a\"", 11);
    expect_bad("m,host=1 v=1,host=2", "field \"host\" is also a tag", 14);
    expect_bad("m v=1,v=2i", "field \"v\" has two types", 7);
    expect_bad("m v=\"x\",v=true", "field \"v\" has two types", 9);
    /* "time" only as the exact key; "times" and "Time" are fine. */
    CHECK_EQ_INT(parse("m,times=a Time=1,timer=2"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    /* The same field twice with one type: one entry, the last value. */
    CHECK_EQ_INT(parse("m a=1i,v=1i,b=2i,v=7i,v=9i 3"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    if (batch.line_count == 1) {
        CHECK_EQ_INT(batch.lines[0].field_count, 3);
        CHECK_EQ_INT(batch.field_count, 3);
        CHECK_EQ_STR(S(lp_field_key(field(0, 1))), "v");
        CHECK_EQ_INT(field(0, 1)->value.i64, 9);
        CHECK_EQ_INT(field(0, 2)->value.i64, 2);
    }
    CHECK_EQ_INT(parse("m s=\"a\",s=\"bb\""), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    if (batch.line_count == 1) CHECK_EQ_STR(S(field(0, 0)->value.str), "bb");
    /* Escaped keys compare as their unescaped text. */
    expect_bad("m,a\\ b=1,a\\ b=2 v=1", "duplicate tag \"a\\ b\"", 10);
    CHECK_EQ_INT(parse("m,a\\ b=1,a\\,b=2 v=1"), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    /* Many keys: the per-line table must neither miss nor invent duplicates. */
    char body[64 * 1024];
    size_t n = (size_t)snprintf(body, sizeof body, "m");
    for (int i = 0; i < 300; i++) n += (size_t)snprintf(body + n, sizeof body - n, ",t%d=v", i);
    for (int i = 0; i < 700; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%cf%d=%di", i ? ',' : ' ', i, i);
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    if (batch.line_count == 1) {
        CHECK_EQ_INT(batch.lines[0].tag_count, 300);
        CHECK_EQ_INT(batch.lines[0].field_count, 700);
    }
    /* ... and a clash beyond the table's reach is still found. */
    snprintf(body + n, sizeof body - n, ",t5=1i");
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 0);
    CHECK_EQ_STR(batch.errors[0].message, "field \"t5\" is also a tag");
    snprintf(body + n, sizeof body - n, ",f699=1");
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 0);
    CHECK_EQ_STR(batch.errors[0].message, "field \"f699\" has two types");
}

static void test_errors_order_and_cap(void)
{
    /* Lines 2, 4, 5, 6 are bad; max_errors 2 keeps the first two, counts all four. */
    const char *body = "m v=1\nbad1\nm v=2\nm v=x\n\nm,t v=1\nm v=1ii\nm v=3";
    CHECK_EQ_INT(parse_opts(body, LP_PRECISION_NS, 0, 2), 0);
    CHECK_EQ_INT(batch.line_count, 3);
    CHECK_EQ_INT(batch.bad_line_count, 4);
    CHECK_EQ_INT(batch.error_count, 2);
    CHECK_EQ_INT(batch.errors[0].line_number, 2);
    CHECK_EQ_INT(batch.errors[1].line_number, 4);
    CHECK(batch.errors[1].line_text == strstr(body, "m v=x"));
    CHECK_EQ_INT(batch.errors[1].line_len, 5);
    CHECK_EQ_INT(batch.lines[0].line_number, 1);
    CHECK_EQ_INT(batch.lines[1].line_number, 3);
    CHECK_EQ_INT(batch.lines[2].line_number, 8);
    /* Bad lines leave nothing behind in the tag and field arrays. */
    CHECK_EQ_INT(batch.tag_count, 0);
    CHECK_EQ_INT(batch.field_count, 3);
    CHECK_EQ_INT(parse_opts(body, LP_PRECISION_NS, 0, 100), 0);
    CHECK_EQ_INT(batch.error_count, 4);
    CHECK_EQ_INT(batch.errors[2].line_number, 6);
    CHECK_EQ_INT(batch.errors[3].line_number, 7);
    CHECK_EQ_INT(parse_opts(body, LP_PRECISION_NS, 0, 0), 0);
    CHECK_EQ_INT(batch.error_count, 0);
    CHECK_EQ_INT(batch.bad_line_count, 4);
    /* A bad line after good tags rolls its tags back. */
    CHECK_EQ_INT(parse("m,a=1,b=2 v=x\nm,c=3 v=1"), 0);
    CHECK_EQ_INT(batch.tag_count, 1);
    CHECK_EQ_STR(S(lp_tag_key(&batch.tags[0])), "c");
    CHECK_EQ_INT(batch.lines[0].first_tag, 0);
}

/* The compact batch of lp.h: offsets from base, 12-bit keys, the body limit, one body a batch. */
static void test_compact_representation(void)
{
    CHECK_EQ_INT(sizeof(lp_str), 8);
    CHECK_EQ_INT(sizeof(lp_tag), 16);
    CHECK_EQ_INT(sizeof(lp_field), 16);
    CHECK_EQ_INT(sizeof(lp_line), 48);

    /* Keys of exactly LP_MAX_KEY_BYTES raw bytes come back whole, with their escape bit. */
    const size_t kmax = LP_MAX_KEY_BYTES;
    size_t cap = 2 * kmax + 64;
    char *body = malloc(cap);
    if (!body) {
        CHECK(body != NULL);
        return;
    }
    size_t n = 0;
    memcpy(body + n, "m,\\ ", 4); /* the tag key starts with an escaped space */
    n += 4;
    memset(body + n, 't', kmax - 2);
    n += kmax - 2;
    memcpy(body + n, "=v ", 3);
    n += 3;
    size_t fkey_at = n;
    memset(body + n, 'f', kmax);
    n += kmax;
    memcpy(body + n, "=\"s\" 7", 6);
    n += 6;
    body[n] = '\0';
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    if (batch.line_count == 1) {
        lp_str tk = lp_tag_key(tag(0, 0)), fk = lp_field_key(field(0, 0));
        CHECK_EQ_INT(tk.len, kmax);
        CHECK_EQ_INT(tk.escaped, LP_ESC_KEY);
        CHECK(lp_str_ptr(&batch, tk) == body + 2);
        CHECK_EQ_INT(strlen(S(tk)), kmax - 1);
        CHECK_EQ_INT(str_buf[0], ' ');
        CHECK_EQ_INT(fk.len, kmax);
        CHECK_EQ_INT(fk.escaped, LP_ESC_NONE);
        CHECK(lp_str_ptr(&batch, fk) == body + fkey_at);
        CHECK_EQ_INT(field(0, 0)->type, LP_FIELD_STRING);
        CHECK_EQ_INT(field(0, 0)->column, LP_COLUMN_UNRESOLVED);
        CHECK(lp_str_ptr(&batch, field(0, 0)->value.str) == body + n - 4);
        CHECK_EQ_STR(S(field(0, 0)->value.str), "s");
        CHECK_EQ_INT(batch.lines[0].time_ns, 7);
    }
    /* One byte more is a line error naming the key. */
    memmove(body + 3, body + 2, n - 2 + 1); /* the tag key gets another 't'... */
    body[2] = 't';
    expect_bad(body, "tag key longer than 4095 bytes", 3);
    memmove(body + 2, body + 3, n - 2 + 1); /* ...back */
    memmove(body + fkey_at + 1, body + fkey_at, n - fkey_at + 1);
    body[fkey_at] = 'f';
    expect_bad(body, "field key longer than 4095 bytes", (uint32_t)fkey_at + 1);
    free(body);

    /* A body past LP_MAX_BODY_BYTES is refused before a byte is read. */
    lp_options o = {.precision = LP_PRECISION_NS, .max_errors = 10};
    lp_batch big;
    memset(&big, 0, sizeof big);
    const char one = 'm';
    CHECK_EQ_INT(lp_parse(&one, (size_t)LP_MAX_BODY_BYTES + 1, &o, &big), INGOT_E_TOO_LARGE);
    CHECK_EQ_INT(big.line_count + big.bad_line_count, 0);
    lp_batch_free(&big);

    /* A batch holds the strings of one body: appending another body is refused. */
    static const char first[] = "m,t=a v=1", second[] = "n,t=b v=2";
    CHECK_EQ_INT(parse(first), 0);
    CHECK_EQ_INT(lp_parse(second, strlen(second), &o, &batch), INGOT_E_INVALID);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK(batch.base == first);
    CHECK_EQ_STR(S(batch.lines[0].measurement), "m");
    CHECK_EQ_INT(lp_parse(first, strlen(first), &o, &batch), 0); /* the same body appends */
    CHECK_EQ_INT(batch.line_count, 2);
    CHECK_EQ_STR(S(tag(1, 0)->value), "a");
    lp_batch_reset(&batch);
    CHECK(batch.base == NULL);
    CHECK_EQ_INT(lp_parse(second, strlen(second), &o, &batch), 0);
    CHECK_EQ_STR(S(batch.lines[0].measurement), "n");
    CHECK_EQ_INT(batch.lines[0].text_off, 0);
    CHECK_EQ_INT(tag(0, 0)->value.off, 4);
}

static void test_reuse_and_growth(void)
{
    /* Many lines: arrays grow; a reset keeps the allocations. */
    size_t cap = 20000 * 64;
    char *body = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(body + n, cap - n, "cpu,host=h%d,r=x a=%di,b=%d.5 %d\n", i, i, i, i);
    CHECK_EQ_INT(parse(body), 0);
    CHECK_EQ_INT(batch.line_count, 20000);
    CHECK_EQ_INT(batch.tag_count, 40000);
    CHECK_EQ_INT(batch.field_count, 40000);
    CHECK_EQ_INT(batch.lines[19999].time_ns, 19999);
    CHECK_EQ_INT(batch.lines[19999].line_number, 20000);
    CHECK_EQ_STR(S(batch.tags[2 * 12345].value), "h12345");
    CHECK(batch.fields[2 * 777 + 1].value.f64 == 777.5);
    lp_line *lines = batch.lines;
    size_t line_cap = batch.line_cap;
    lp_batch_reset(&batch);
    CHECK_EQ_INT(batch.line_count, 0);
    CHECK(batch.lines == lines && batch.line_cap == line_cap);
    lp_options o = {.precision = LP_PRECISION_NS, .max_errors = 10};
    CHECK_EQ_INT(lp_parse(body, n, &o, &batch), 0);
    CHECK(batch.lines == lines);
    CHECK_EQ_INT(batch.line_count, 20000);
    free(body);
    /* A parse without NUL terminator: the length bounds everything. */
    const char text[] = {'m', ' ', 'v', '=', '1', '2'};
    lp_batch_reset(&batch);
    CHECK_EQ_INT(lp_parse(text, 5, &o, &batch), 0);
    CHECK_EQ_INT(batch.line_count, 1);
    CHECK(batch.fields[0].value.f64 == 1.0);
    lp_batch_reset(&batch);
    CHECK_EQ_INT(lp_parse(text, 4, &o, &batch), 0);
    CHECK_EQ_INT(batch.bad_line_count, 1);
    lp_batch b2;
    memset(&b2, 0, sizeof b2);
    lp_batch_free(&b2); /* freeing an empty batch is fine */
}

int main(void)
{
    TEST_RUN(test_basic_line);
    TEST_RUN(test_no_tags_and_default_time);
    TEST_RUN(test_escapes_measurement);
    TEST_RUN(test_escapes_keys);
    TEST_RUN(test_escapes_string);
    TEST_RUN(test_unescape_direct);
    TEST_RUN(test_floats);
    TEST_RUN(test_integers);
    TEST_RUN(test_booleans);
    TEST_RUN(test_precision);
    TEST_RUN(test_precision_parse);
    TEST_RUN(test_lines_comments_crlf);
    TEST_RUN(test_spaces);
    TEST_RUN(test_syntax_errors);
    TEST_RUN(test_key_rules);
    TEST_RUN(test_errors_order_and_cap);
    TEST_RUN(test_reuse_and_growth);
    TEST_RUN(test_compact_representation);
    lp_batch_free(&batch);
    TEST_MAIN_END();
}
