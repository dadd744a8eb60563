/*
 * fuzz_lp.c: libFuzzer target of the line protocol parser. The input is parsed once per
 * precision (and once more with a small error cap); every run checks the batch invariants lp.h
 * and lp.c promise, and anything that fails calls __builtin_trap() so libFuzzer keeps the input:
 * - the batch's base is the input; every lp_str (offset from it), line text and error text lies
 *   inside the input; keys are at most LP_MAX_KEY_BYTES raw bytes with the LP_ESC_KEY rule;
 * - good lines and errors have strictly increasing line numbers and never share one;
 * - the tag and field ranges of the lines tile the arrays; counts are consistent;
 * - keys and tag values are non-empty, no key is "time", no key repeats within a line;
 * - unescaping never grows a string, and shrinks it exactly when it is flagged escaped;
 * - columns and markers are as the parser leaves them (unresolved, slot 0);
 * - the set of good lines does not depend on max_errors.
 * The input is copied into an exact-size heap buffer so ASan catches any read past its end.
 */
#include "lp/lp.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static const char *in_lo, *in_hi;
static char *scratch;

static void check_str(const lp_batch *b, lp_str s, int allow_empty)
{
    if (s.len == 0) {
        FUZZ_REQUIRE(allow_empty);
        FUZZ_REQUIRE(!s.escaped);
        return;
    }
    FUZZ_REQUIRE(s.off < (size_t)(in_hi - in_lo) && s.len <= (size_t)(in_hi - in_lo) - s.off);
    const char *p = lp_str_ptr(b, s);
    FUZZ_REQUIRE(s.escaped <= LP_ESC_STRING);
    FUZZ_REQUIRE(memchr(p, '\n', s.len) == NULL);
    size_t n = lp_str_unescape(b, s, scratch);
    if (s.escaped) FUZZ_REQUIRE(n < s.len);
    else FUZZ_REQUIRE(n == s.len && memcmp(scratch, p, n) == 0);
}

static void check_key(const lp_batch *b, lp_str k)
{
    check_str(b, k, 0);
    FUZZ_REQUIRE(k.len <= LP_MAX_KEY_BYTES);
    FUZZ_REQUIRE(k.escaped == LP_ESC_NONE || k.escaped == LP_ESC_KEY);
}

static int key_eq(const lp_batch *b, lp_str x, lp_str y)
{
    return x.len == y.len && memcmp(lp_str_ptr(b, x), lp_str_ptr(b, y), x.len) == 0;
}

static int is_time(const lp_batch *b, lp_str k)
{
    return k.len == 4 && memcmp(lp_str_ptr(b, k), "time", 4) == 0;
}

static void check_batch(const lp_batch *b, size_t max_errors)
{
    FUZZ_REQUIRE(b->error_count <= max_errors);
    FUZZ_REQUIRE(b->error_count <= b->bad_line_count);
    FUZZ_REQUIRE(b->bad_line_count >= max_errors || b->error_count == b->bad_line_count);
    size_t tags = 0, fields = 0;
    uint32_t last = 0;
    if (b->line_count) FUZZ_REQUIRE(b->base == in_lo);
    for (size_t i = 0; i < b->line_count; i++) {
        const lp_line *l = &b->lines[i];
        FUZZ_REQUIRE(l->line_number > last);
        last = l->line_number;
        FUZZ_REQUIRE(l->text_off <= (size_t)(in_hi - in_lo) &&
                     l->text_len <= (size_t)(in_hi - in_lo) - l->text_off);
        FUZZ_REQUIRE(l->table_slot == 0);
        FUZZ_REQUIRE(l->first_tag == tags && l->first_field == fields);
        FUZZ_REQUIRE(l->field_count > 0);
        tags += l->tag_count;
        fields += l->field_count;
        FUZZ_REQUIRE(tags <= b->tag_count && fields <= b->field_count);
        check_str(b, l->measurement, 0);
        FUZZ_REQUIRE(l->measurement.off >= l->text_off &&
                     l->measurement.off + l->measurement.len <= l->text_off + l->text_len);
        for (uint32_t t = 0; t < l->tag_count; t++) {
            const lp_tag *tg = &b->tags[l->first_tag + t];
            const lp_str tk = lp_tag_key(tg);
            check_key(b, tk);
            check_str(b, tg->value, 0);
            FUZZ_REQUIRE(tg->column == LP_COLUMN_UNRESOLVED);
            FUZZ_REQUIRE(!is_time(b, tk));
            for (uint32_t u = 0; u < t; u++)
                FUZZ_REQUIRE(!key_eq(b, lp_tag_key(&b->tags[l->first_tag + u]), tk));
        }
        for (uint32_t f = 0; f < l->field_count; f++) {
            const lp_field *fd = &b->fields[l->first_field + f];
            const lp_str fk = lp_field_key(fd);
            check_key(b, fk);
            FUZZ_REQUIRE(fd->column == LP_COLUMN_UNRESOLVED);
            FUZZ_REQUIRE(fd->type >= LP_FIELD_I64 && fd->type <= LP_FIELD_STRING);
            FUZZ_REQUIRE(!is_time(b, fk));
            if (fd->type == LP_FIELD_STRING) check_str(b, fd->value.str, 1);
            if (fd->type == LP_FIELD_F64) FUZZ_REQUIRE(fd->value.f64 == fd->value.f64);
            for (uint32_t u = 0; u < f; u++)
                FUZZ_REQUIRE(!key_eq(b, lp_field_key(&b->fields[l->first_field + u]), fk));
            for (uint32_t t = 0; t < l->tag_count; t++)
                FUZZ_REQUIRE(!key_eq(b, lp_tag_key(&b->tags[l->first_tag + t]), fk));
        }
    }
    FUZZ_REQUIRE(tags == b->tag_count && fields == b->field_count);
    last = 0;
    for (size_t i = 0; i < b->error_count; i++) {
        const lp_error *e = &b->errors[i];
        FUZZ_REQUIRE(e->line_number > last);
        last = e->line_number;
        FUZZ_REQUIRE(e->line_text >= in_lo && e->line_text + e->line_len <= in_hi);
        FUZZ_REQUIRE(e->column >= 1 && e->column <= e->line_len + 1);
        FUZZ_REQUIRE(memchr(e->message, '\0', sizeof e->message) != NULL);
        FUZZ_REQUIRE(e->message[0] != '\0');
        for (size_t j = 0; j < b->line_count; j++)
            FUZZ_REQUIRE(b->lines[j].line_number != e->line_number);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    scratch = malloc(size ? size : 1);
    if (!body || !scratch) __builtin_trap();
    if (size) memcpy(body, data, size);
    in_lo = body;
    in_hi = body + size;

    static const enum lp_precision precisions[] = {LP_PRECISION_NS, LP_PRECISION_US,
                                                   LP_PRECISION_MS, LP_PRECISION_S,
                                                   LP_PRECISION_AUTO};
    lp_batch b, capped;
    memset(&b, 0, sizeof b);
    memset(&capped, 0, sizeof capped);
    for (size_t i = 0; i < sizeof precisions / sizeof precisions[0]; i++) {
        lp_options o = {.precision = precisions[i], .default_time_ns = -7, .max_errors = 100};
        lp_batch_reset(&b);
        FUZZ_REQUIRE(lp_parse(body, size, &o, &b) == 0);
        check_batch(&b, o.max_errors);
        lp_options oc = o;
        oc.max_errors = 1;
        lp_batch_reset(&capped);
        FUZZ_REQUIRE(lp_parse(body, size, &oc, &capped) == 0);
        check_batch(&capped, oc.max_errors);
        FUZZ_REQUIRE(capped.line_count == b.line_count);
        FUZZ_REQUIRE(capped.bad_line_count == b.bad_line_count);
        FUZZ_REQUIRE(capped.field_count == b.field_count);
        for (size_t j = 0; j < b.line_count; j++) {
            FUZZ_REQUIRE(capped.lines[j].line_number == b.lines[j].line_number);
            FUZZ_REQUIRE(capped.lines[j].time_ns == b.lines[j].time_ns);
        }
        if (b.error_count) {
            FUZZ_REQUIRE(capped.errors[0].column == b.errors[0].column);
            FUZZ_REQUIRE(strcmp(capped.errors[0].message, b.errors[0].message) == 0);
        }
    }
    lp_batch_free(&b);
    lp_batch_free(&capped);
    free(scratch);
    free(body);
    return 0;
}
