/*
 * fuzz_pbdata.c: libFuzzer target of the gRPC write request decoder (src/dml/pbdata.c).
 *
 * The input is read both as a WriteRequest and as a DatabaseBatch (and, when the WriteRequest
 * carries a batch, that batch is decoded too, with the request's precision). Anything wrong
 * calls __builtin_trap() so libFuzzer keeps the input:
 * - the decoders return 0 or INGOT_E_INVALID (inputs are far too small for anything else); a
 *   refusal has a message, leaves the lp_batch empty and the WriteRequest zeroed;
 * - a decoded batch keeps the lp_batch invariants: one line per row numbered 1, 2, ...; tag and
 *   field ranges tile the arrays; every line has a field; the batch's base is the decoded
 *   message and names and values (offsets from it) lie inside the input, unescaped; keys are at
 *   most LP_MAX_KEY_BYTES; no empty tag value, no key "time", no key twice in a line; columns
 *   unresolved;
 * - precision only scales: if the batch decodes at ns, it decodes at us/ms/s to the same rows
 *   with times multiplied, or is refused for an overflowing time; if it is refused at ns, it is
 *   refused at every precision;
 * - differential: when protobuf-c also unpacks the input, both readings agree field by field
 *   (protobuf-c is stricter in places, e.g. UTF-8, so only agreement is required, not
 *   acceptance of the same inputs).
 * The input is copied into an exact-size heap buffer so ASan catches any read past its end.
 */
#include "dml/pbdata.h"

#include "ingot/write/v1/write.pb-c.h"
#include "util/error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static const uint8_t *in_lo, *in_hi;

static void check_inside(const void *p, size_t n)
{
    const uint8_t *q = p;
    if (n) FUZZ_REQUIRE(q >= in_lo && q + n <= in_hi);
}

/* s of batch b lies inside the input. */
static void check_str_inside(const lp_batch *b, lp_str s)
{
    if (s.len) check_inside(lp_str_ptr(b, s), s.len);
}

static bool key_eq(const lp_batch *b, lp_str x, lp_str y)
{
    return x.len == y.len && memcmp(lp_str_ptr(b, x), lp_str_ptr(b, y), x.len) == 0;
}

static bool is_time(const lp_batch *b, lp_str k)
{
    return k.len == 4 && memcmp(lp_str_ptr(b, k), "time", 4) == 0;
}

static void check_refused(int rv, const char *err, const lp_batch *b)
{
    FUZZ_REQUIRE(rv == INGOT_E_INVALID);
    FUZZ_REQUIRE(err[0] != '\0' && memchr(err, '\0', 256) != NULL);
    FUZZ_REQUIRE(b->line_count == 0 && b->tag_count == 0 && b->field_count == 0);
}

static void check_batch(const lp_batch *b, const uint8_t *msg)
{
    size_t tags = 0, fields = 0;
    FUZZ_REQUIRE(b->error_count == 0 && b->bad_line_count == 0);
    if (b->line_count) FUZZ_REQUIRE(b->base == (const char *)msg);
    for (size_t i = 0; i < b->line_count; i++) {
        const lp_line *l = &b->lines[i];
        FUZZ_REQUIRE(l->line_number == i + 1);
        FUZZ_REQUIRE(l->measurement.len > 0 && !l->measurement.escaped);
        check_str_inside(b, l->measurement);
        FUZZ_REQUIRE(l->text_off == l->measurement.off && l->text_len == l->measurement.len);
        FUZZ_REQUIRE(l->table_slot == 0);
        FUZZ_REQUIRE(l->first_tag == tags && l->first_field == fields);
        FUZZ_REQUIRE(l->field_count > 0);
        tags += l->tag_count;
        fields += l->field_count;
        FUZZ_REQUIRE(tags <= b->tag_count && fields <= b->field_count);
        for (uint32_t t = 0; t < l->tag_count; t++) {
            const lp_tag *tg = &b->tags[l->first_tag + t];
            const lp_str tk = lp_tag_key(tg);
            FUZZ_REQUIRE(tk.len > 0 && tk.len <= LP_MAX_KEY_BYTES && tg->value.len > 0);
            FUZZ_REQUIRE(!tk.escaped && !tg->value.escaped);
            check_str_inside(b, tk);
            check_str_inside(b, tg->value);
            FUZZ_REQUIRE(tg->column == LP_COLUMN_UNRESOLVED);
            FUZZ_REQUIRE(!is_time(b, tk));
            for (uint32_t u = 0; u < t; u++)
                FUZZ_REQUIRE(!key_eq(b, lp_tag_key(&b->tags[l->first_tag + u]), tk));
        }
        for (uint32_t f = 0; f < l->field_count; f++) {
            const lp_field *fd = &b->fields[l->first_field + f];
            const lp_str fk = lp_field_key(fd);
            FUZZ_REQUIRE(fk.len > 0 && fk.len <= LP_MAX_KEY_BYTES && !fk.escaped);
            check_str_inside(b, fk);
            FUZZ_REQUIRE(fd->column == LP_COLUMN_UNRESOLVED);
            FUZZ_REQUIRE(fd->type >= LP_FIELD_I64 && fd->type <= LP_FIELD_STRING);
            FUZZ_REQUIRE(!is_time(b, fk));
            if (fd->type == LP_FIELD_STRING) {
                FUZZ_REQUIRE(!fd->value.str.escaped);
                check_str_inside(b, fd->value.str);
            }
            for (uint32_t u = 0; u < f; u++)
                FUZZ_REQUIRE(!key_eq(b, lp_field_key(&b->fields[l->first_field + u]), fk));
            for (uint32_t t = 0; t < l->tag_count; t++)
                FUZZ_REQUIRE(!key_eq(b, lp_tag_key(&b->tags[l->first_tag + t]), fk));
        }
    }
    FUZZ_REQUIRE(tags == b->tag_count && fields == b->field_count);
}

/*
 * protobuf-c's reading of the same bytes must give the same rows. Strings are compared over the
 * wire length (protobuf-c keeps embedded NULs, then a terminator), so the length comes from
 * pbdata and protobuf-c must have a NUL right there.
 */
static bool bytes_eq(const void *p, size_t n, const char *pc)
{
    return (n == 0 || memcmp(p, pc, n) == 0) && pc[n] == '\0';
}

static bool pc_str_eq(const lp_batch *b, lp_str s, const char *pc)
{
    return bytes_eq(lp_str_ptr(b, s), s.len, pc);
}

static void compare_with_protobuf_c(const Ingot__Write__V1__DatabaseBatch *db, const lp_batch *b)
{
    size_t line = 0;
    for (size_t t = 0; t < db->n_table_batches; t++) {
        const Ingot__Write__V1__TableBatch *tb = db->table_batches[t];
        size_t ncol = tb->n_columns;
        size_t *next = calloc(ncol ? ncol : 1, sizeof *next);
        FUZZ_REQUIRE(next != NULL);
        const Ingot__Write__V1__Column *tc = NULL;
        for (size_t c = 0; c < ncol; c++)
            if (tb->columns[c]->semantic_type == INGOT__WRITE__V1__SEMANTIC_TYPE__TIME)
                tc = tb->columns[c];
        FUZZ_REQUIRE(tc != NULL || tb->row_count == 0);
        for (uint32_t r = 0; r < tb->row_count; r++, line++) {
            FUZZ_REQUIRE(line < b->line_count);
            const lp_line *l = &b->lines[line];
            FUZZ_REQUIRE(pc_str_eq(b, l->measurement, tb->table_name));
            FUZZ_REQUIRE(tc->values && r < tc->values->n_i64_values);
            uint32_t nt = 0, nf = 0;
            for (size_t c = 0; c < ncol; c++) {
                const Ingot__Write__V1__Column *col = tb->columns[c];
                if (col->semantic_type == INGOT__WRITE__V1__SEMANTIC_TYPE__TIME) continue;
                if (col->null_mask.len && (col->null_mask.data[r / 8] >> (r % 8)) & 1) continue;
                const Ingot__Write__V1__Values *v = col->values;
                FUZZ_REQUIRE(v != NULL);
                size_t i = next[c]++;
                if (col->semantic_type == INGOT__WRITE__V1__SEMANTIC_TYPE__TAG) {
                    FUZZ_REQUIRE(nt < l->tag_count && i < v->n_string_values);
                    const lp_tag *tg = &b->tags[l->first_tag + nt++];
                    FUZZ_REQUIRE(pc_str_eq(b, lp_tag_key(tg), col->column_name));
                    FUZZ_REQUIRE(pc_str_eq(b, tg->value, v->string_values[i]));
                    continue;
                }
                FUZZ_REQUIRE(nf < l->field_count);
                const lp_field *f = &b->fields[l->first_field + nf++];
                FUZZ_REQUIRE(pc_str_eq(b, lp_field_key(f), col->column_name));
                switch (f->type) {
                case LP_FIELD_I64:
                    FUZZ_REQUIRE(i < v->n_i64_values && f->value.i64 == v->i64_values[i]);
                    break;
                case LP_FIELD_U64:
                    FUZZ_REQUIRE(i < v->n_u64_values && f->value.u64 == v->u64_values[i]);
                    break;
                case LP_FIELD_F64:
                    FUZZ_REQUIRE(i < v->n_f64_values);
                    FUZZ_REQUIRE(memcmp(&f->value.f64, &v->f64_values[i], 8) == 0);
                    break;
                case LP_FIELD_BOOL:
                    FUZZ_REQUIRE(i < v->n_bool_values);
                    FUZZ_REQUIRE(f->value.boolean == (v->bool_values[i] != 0));
                    break;
                default:
                    FUZZ_REQUIRE(i < v->n_string_values);
                    FUZZ_REQUIRE(pc_str_eq(b, f->value.str, v->string_values[i]));
                    break;
                }
            }
            FUZZ_REQUIRE(nt == l->tag_count && nf == l->field_count);
        }
        free(next);
    }
    FUZZ_REQUIRE(line == b->line_count);
}

/* Decodes msg at every precision and checks how the results relate. */
static void fuzz_batch(const uint8_t *msg, size_t len, lp_batch *ns, lp_batch *other)
{
    char err[256];
    lp_batch_reset(ns);
    int rv = pbdata_decode_batch(msg, len, LP_PRECISION_NS, ns, err, sizeof err);
    if (rv != 0) {
        check_refused(rv, err, ns);
    } else {
        check_batch(ns, msg);
        Ingot__Write__V1__DatabaseBatch *db =
            ingot__write__v1__database_batch__unpack(NULL, len, msg);
        if (db) {
            compare_with_protobuf_c(db, ns);
            ingot__write__v1__database_batch__free_unpacked(db, NULL);
        }
    }
    static const int64_t mult[] = {1, 1000, 1000000, 1000000000};
    for (int p = LP_PRECISION_US; p <= LP_PRECISION_S; p++) {
        lp_batch_reset(other);
        int rp = pbdata_decode_batch(msg, len, (enum lp_precision)p, other, err, sizeof err);
        if (rv != 0) {
            check_refused(rp, err, other);
            continue;
        }
        if (rp != 0) {
            check_refused(rp, err, other);
            FUZZ_REQUIRE(strstr(err, "overflows int64 nanoseconds") != NULL);
            continue;
        }
        check_batch(other, msg);
        FUZZ_REQUIRE(other->line_count == ns->line_count);
        FUZZ_REQUIRE(other->field_count == ns->field_count && other->tag_count == ns->tag_count);
        for (size_t i = 0; i < ns->line_count; i++)
            FUZZ_REQUIRE(other->lines[i].time_ns == ns->lines[i].time_ns * mult[p]);
    }
    /* Not a precision of a DatabaseBatch. */
    lp_batch_reset(other);
    check_refused(pbdata_decode_batch(msg, len, LP_PRECISION_AUTO, other, err, sizeof err), err,
                  other);
}

static void fuzz_request(const uint8_t *msg, size_t len, lp_batch *b1, lp_batch *b2)
{
    char err[256];
    pbdata_write_request out;
    memset(&out, 0x5A, sizeof out);
    int rv = pbdata_decode_write_request(msg, len, &out, err, sizeof err);
    if (rv != 0) {
        FUZZ_REQUIRE(rv == INGOT_E_INVALID && err[0] != '\0');
        FUZZ_REQUIRE(out.payload == PBDATA_PAYLOAD_NONE && out.namespace_name == NULL &&
                     out.batch == NULL && out.line_protocol == NULL);
        return;
    }
    FUZZ_REQUIRE(out.precision <= LP_PRECISION_S);
    check_inside(out.namespace_name, out.namespace_len);
    switch (out.payload) {
    case PBDATA_PAYLOAD_NONE:
        FUZZ_REQUIRE(out.batch == NULL && out.line_protocol == NULL);
        break;
    case PBDATA_PAYLOAD_LINE_PROTOCOL:
        FUZZ_REQUIRE(out.batch == NULL && out.batch_len == 0);
        check_inside(out.line_protocol, out.line_protocol_len);
        break;
    case PBDATA_PAYLOAD_BATCH:
        FUZZ_REQUIRE(out.line_protocol == NULL && out.line_protocol_len == 0);
        check_inside(out.batch, out.batch_len);
        lp_batch_reset(b1);
        rv = pbdata_decode_batch(out.batch, out.batch_len, out.precision, b1, err, sizeof err);
        if (rv != 0)
            check_refused(rv, err, b1);
        else
            check_batch(b1, out.batch);
        break;
    default:
        FUZZ_REQUIRE(0);
    }
    (void)b2;
    Ingot__Write__V1__WriteRequest *rq = ingot__write__v1__write_request__unpack(NULL, len, msg);
    if (!rq) return;
    FUZZ_REQUIRE((int)rq->precision == (int)out.precision);
    FUZZ_REQUIRE(bytes_eq(out.namespace_name, out.namespace_len, rq->namespace_));
    FUZZ_REQUIRE((int)rq->payload_case == (int)out.payload);
    if (out.payload == PBDATA_PAYLOAD_LINE_PROTOCOL)
        FUZZ_REQUIRE(bytes_eq(out.line_protocol, out.line_protocol_len, rq->line_protocol));
    ingot__write__v1__write_request__free_unpacked(rq, NULL);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    uint8_t *msg = malloc(size ? size : 1);
    if (!msg) __builtin_trap();
    if (size) memcpy(msg, data, size);
    in_lo = msg;
    in_hi = msg + size;
    lp_batch a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    fuzz_batch(msg, size, &a, &b);
    fuzz_request(msg, size, &a, &b);
    lp_batch_free(&a);
    lp_batch_free(&b);
    free(msg);
    return 0;
}
