/*
 * thrift_compact.c: the Thrift compact protocol, encode side (see thrift_compact.h).
 *
 * Wire format written here (Thrift's compact protocol specification):
 *   varint      unsigned LEB128, 7 bits per byte, low group first, high bit = more follows
 *   i16/i32/i64 zigzag ((n << 1) ^ (n >> 63)) then varint; i8 is one raw byte
 *   binary      varint length, then the bytes
 *   field       header byte (delta << 4) | type when 0 < delta = id - last_id <= 15, else the
 *               type byte followed by the zigzag-varint i16 id; bool fields carry their value
 *               in the type (1 = true, 2 = false) and have no body
 *   struct      fields, then a stop byte 0; the last-id counter restarts at 0 in every struct
 *   list        (count << 4) | elem_type when count < 15, else 0xF0 | elem_type then varint count
 * Owns nothing but the caller's strbuf appends. Failure (allocation, bad nesting) is sticky in
 * the writer and checked once by the caller.
 */
#include "parquet/thrift_compact.h"

#include <string.h>

void thrift_put_varint(strbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    strbuf_append(b, tmp, n);
}

void thrift_writer_init(thrift_writer *w, strbuf *out)
{
    w->out = out;
    w->depth = 1;
    w->last_id[0] = 0;
    w->failed = false;
}

bool thrift_writer_failed(const thrift_writer *w)
{
    return w->failed || w->depth != 0 || strbuf_failed(w->out);
}

static void field_header(thrift_writer *w, int16_t id, uint8_t type)
{
    if (w->depth <= 0) {
        w->failed = true;
        return;
    }
    int16_t *last = &w->last_id[w->depth - 1];
    int delta = id - *last;
    if (delta > 0 && delta <= 15) {
        strbuf_putc(w->out, (char)(uint8_t)((delta << 4) | type));
    } else {
        strbuf_putc(w->out, (char)type);
        thrift_put_varint(w->out, thrift_zigzag64(id));
    }
    *last = id;
}

static void push_struct(thrift_writer *w)
{
    if (w->depth >= THRIFT_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    w->last_id[w->depth++] = 0;
}

void thrift_field_bool(thrift_writer *w, int16_t id, bool v)
{
    field_header(w, id, v ? THRIFT_TRUE : THRIFT_FALSE);
}

void thrift_field_i8(thrift_writer *w, int16_t id, int8_t v)
{
    field_header(w, id, THRIFT_BYTE);
    strbuf_putc(w->out, (char)v);
}

void thrift_field_i16(thrift_writer *w, int16_t id, int16_t v)
{
    field_header(w, id, THRIFT_I16);
    thrift_put_varint(w->out, thrift_zigzag64(v));
}

void thrift_field_i32(thrift_writer *w, int16_t id, int32_t v)
{
    field_header(w, id, THRIFT_I32);
    thrift_put_varint(w->out, thrift_zigzag64(v));
}

void thrift_field_i64(thrift_writer *w, int16_t id, int64_t v)
{
    field_header(w, id, THRIFT_I64);
    thrift_put_varint(w->out, thrift_zigzag64(v));
}

void thrift_field_binary(thrift_writer *w, int16_t id, const void *data, size_t len)
{
    field_header(w, id, THRIFT_BINARY);
    thrift_put_varint(w->out, len);
    strbuf_append(w->out, data, len);
}

void thrift_field_string(thrift_writer *w, int16_t id, const char *s)
{
    thrift_field_binary(w, id, s, strlen(s));
}

void thrift_field_struct_begin(thrift_writer *w, int16_t id)
{
    field_header(w, id, THRIFT_STRUCT);
    push_struct(w);
}

void thrift_field_list_begin(thrift_writer *w, int16_t id, enum thrift_type elem_type,
                             size_t count)
{
    field_header(w, id, THRIFT_LIST);
    if (count < 15) {
        strbuf_putc(w->out, (char)(uint8_t)((count << 4) | elem_type));
    } else {
        strbuf_putc(w->out, (char)(uint8_t)(0xF0 | elem_type));
        thrift_put_varint(w->out, count);
    }
}

void thrift_struct_end(thrift_writer *w)
{
    if (w->depth <= 0) {
        w->failed = true;
        return;
    }
    strbuf_putc(w->out, 0);
    w->depth--;
}

void thrift_elem_i32(thrift_writer *w, int32_t v)
{
    thrift_put_varint(w->out, thrift_zigzag64(v));
}

void thrift_elem_string(thrift_writer *w, const char *s)
{
    size_t len = strlen(s);
    thrift_put_varint(w->out, len);
    strbuf_append(w->out, s, len);
}

void thrift_elem_struct_begin(thrift_writer *w)
{
    push_struct(w);
}
