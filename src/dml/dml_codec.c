/*
 * dml_codec.c: a dml_op as a WAL entry payload, and back (see dml.h for the layout).
 *
 * Layout (little-endian, written and read byte by byte, never through struct casts):
 *   off  0  u8  kind            1 line protocol, 2 DatabaseBatch (enum dml_body + 1)
 *   off  1  u8  precision       enum lp_precision, 0..4
 *   off  2  u16 namespace_len
 *   off  4  u32 reserved        0
 *   off  8  i64 default_time_ns (two's complement)
 *   off 16  namespace bytes     namespace_len of them
 *   ...     line-protocol bytes to the end of the payload
 *
 * The op's sequence number is not part of the payload: the WAL assigns it and keeps it in the
 * entry frame (wal.h). Encoding writes only the 16-byte header; the namespace and the text are
 * referenced by iovecs so the WAL writes them straight from the request buffer (no copy).
 * Precondition of encode: namespace_len <= UINT16_MAX (the WalSink rejects longer names before
 * encoding).
 *
 * Decoding trusts nothing: the payload came off a disk. Every field is checked (kind, precision,
 * reserved, namespace length against the payload size) and a failure is INGOT_E_CORRUPT with
 * the field and offset in err. Decoded strings point into the payload; nothing is allocated.
 */
#include "dml/dml.h"

#include <stdio.h>

#include "dml/pbdata.h"

#include "util/error.h"

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void dml_op_encode(const dml_op *op, uint8_t header_out[DML_PAYLOAD_HEADER_BYTES],
                   struct iovec iov[3])
{
    header_out[0] = (uint8_t)(op->body_kind + 1);
    header_out[1] = (uint8_t)op->precision;
    put_u16(header_out + 2, (uint16_t)op->namespace_len);
    put_u32(header_out + 4, 0);
    put_u64(header_out + 8, (uint64_t)op->default_time_ns);
    iov[0].iov_base = header_out;
    iov[0].iov_len = DML_PAYLOAD_HEADER_BYTES;
    iov[1].iov_base = (void *)op->namespace_name;
    iov[1].iov_len = op->namespace_name ? op->namespace_len : 0;
    iov[2].iov_base = (void *)op->body;
    iov[2].iov_len = op->body ? op->body_len : 0;
}

int dml_op_decode(const uint8_t *payload, size_t len, dml_decoded *out, char *err, size_t errlen)
{
    if (len < DML_PAYLOAD_HEADER_BYTES) {
        snprintf(err, errlen, "op payload of %zu bytes is shorter than its %d-byte header", len,
                 DML_PAYLOAD_HEADER_BYTES);
        return INGOT_E_CORRUPT;
    }
    if (payload[0] != DML_BODY_LINE_PROTOCOL + 1 && payload[0] != DML_BODY_DATABASE_BATCH + 1) {
        snprintf(err, errlen, "op payload offset 0: unknown kind %u", payload[0]);
        return INGOT_E_CORRUPT;
    }
    if (payload[1] > LP_PRECISION_AUTO) {
        snprintf(err, errlen, "op payload offset 1: invalid precision %u", payload[1]);
        return INGOT_E_CORRUPT;
    }
    uint32_t reserved = get_u32(payload + 4);
    if (reserved != 0) {
        snprintf(err, errlen, "op payload offset 4: reserved field is %u, expected 0", reserved);
        return INGOT_E_CORRUPT;
    }
    size_t ns_len = get_u16(payload + 2);
    if (ns_len > len - DML_PAYLOAD_HEADER_BYTES) {
        snprintf(err, errlen,
                 "op payload offset 2: namespace length %zu runs past the end of the %zu-byte "
                 "payload",
                 ns_len, len);
        return INGOT_E_CORRUPT;
    }
    if (payload[0] == DML_BODY_DATABASE_BATCH + 1 && payload[1] > LP_PRECISION_S) {
        snprintf(err, errlen, "op payload offset 1: precision %u is not one of a batch", payload[1]);
        return INGOT_E_CORRUPT;
    }
    out->body_kind = (enum dml_body)(payload[0] - 1);
    out->precision = (enum lp_precision)payload[1];
    out->default_time_ns = (int64_t)get_u64(payload + 8);
    out->namespace_name = (const char *)payload + DML_PAYLOAD_HEADER_BYTES;
    out->namespace_len = ns_len;
    out->body = (const char *)payload + DML_PAYLOAD_HEADER_BYTES + ns_len;
    out->body_len = len - DML_PAYLOAD_HEADER_BYTES - ns_len;
    return 0;
}

int dml_decoded_rows(const dml_decoded *d, lp_batch *batch, char *err, size_t errlen)
{
    if (d->body_kind == DML_BODY_DATABASE_BATCH)
        return pbdata_decode_batch((const uint8_t *)d->body, d->body_len, d->precision, batch, err,
                                   errlen);
    lp_options opts = {.precision = d->precision,
                       .default_time_ns = d->default_time_ns,
                       .max_errors = 1};
    return lp_parse(d->body, d->body_len, &opts, batch);
}
