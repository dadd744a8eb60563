/*
 * flatbuf.c: a forward-writing FlatBuffers builder (see flatbuf.h) for the Arrow IPC writer.
 *
 * Binary layout produced (all little-endian; positions relative to the buffer start):
 *   0        uoffset32 to the root table (patched by flatbuf_finish)
 *   vtable   uint16 vtable_bytes, uint16 table_inline_bytes, uint16 field_offset[max id + 1]
 *            (0 = field absent); always written immediately before its table, 2-byte aligned
 *   table    int32 soffset = table - vtable (positive: the vtable lies before the table), then the
 *            fields sorted by size, largest first, each naturally aligned: the table starts at
 *            4 mod 8 when it holds an 8-byte field, so those follow the soffset without padding
 *   string   uint32 length, the bytes, a NUL (4-byte aligned)
 *   vector   uint32 count, then the elements; the elements start on `align` (8 for Arrow's
 *            Buffer and FieldNode structs), so the count sits at align - 4 modulo align
 *   uoffset  uint32 distance from the offset's own position forward to the object
 * Padding bytes are zero. Children are written after their parents, so every offset points
 * forward as the format requires. Nothing is shared or deduplicated: the metadata is small.
 *
 * Invariants: the host is little-endian (checked at compile time), so scalars are memcpy'd. No
 * write happens once the strbuf has failed, so a failed build never writes out of bounds.
 */
#include "query/flatbuf.h"

#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flatbuf.c writes host-order scalars and needs a little-endian host"
#endif

/* Append n zero bytes; returns their position (meaningless after a failure). */
static size_t grow(strbuf *b, size_t n)
{
    size_t at = b->len;
    if (!strbuf_reserve(b, n)) return at; /* room for n + the NUL strbuf keeps */
    memset(b->data + at, 0, n + 1);
    b->len += n;
    return at;
}

static void pad_to(strbuf *b, size_t pos)
{
    if (b->len < pos) grow(b, pos - b->len);
}

static void put(strbuf *b, size_t at, const void *v, size_t n)
{
    if (!b->failed && at + n <= b->len) memcpy(b->data + at, v, n);
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

void flatbuf_begin(strbuf *b)
{
    strbuf_reset(b);
    grow(b, 4);
}

void flatbuf_finish(strbuf *b, size_t root)
{
    flatbuf_patch(b, 0, root);
    pad_to(b, align_up(b->len, 8));
}

size_t flatbuf_table(strbuf *b, flatbuf_field *f, size_t n)
{
    size_t slots = 0;
    bool has8 = false;
    for (size_t i = 0; i < n; i++) {
        if ((size_t)f[i].id + 1 > slots) slots = (size_t)f[i].id + 1;
        if (f[i].is_offset) f[i].size = 4;
        if (f[i].size == 8) has8 = true;
    }
    size_t vt_bytes = 4 + 2 * slots;
    size_t vt = align_up(b->len, 2);
    size_t table = align_up(vt + vt_bytes, 4);
    if (has8 && table % 8 != 4) table += 4;

    /* Field positions: sizes 8, 4, 2, 1 in turn, each in declaration order. */
    uint16_t offsets[64] = {0};
    size_t p = table + 4;
    for (unsigned size = 8; size >= 1; size /= 2) {
        for (size_t i = 0; i < n; i++) {
            if (f[i].size != size) continue;
            p = align_up(p, size);
            f[i].slot = p;
            if (f[i].id < 64) offsets[f[i].id] = (uint16_t)(p - table);
            p += size;
        }
    }
    size_t inline_bytes = p - table;

    pad_to(b, p);
    uint16_t head[2] = {(uint16_t)vt_bytes, (uint16_t)inline_bytes};
    put(b, vt, head, sizeof head);
    put(b, vt + 4, offsets, 2 * (slots < 64 ? slots : 64));
    int32_t soffset = (int32_t)(table - vt);
    put(b, table, &soffset, 4);
    for (size_t i = 0; i < n; i++) {
        if (!f[i].is_offset) put(b, f[i].slot, &f[i].value, f[i].size);
    }
    return table;
}

size_t flatbuf_string(strbuf *b, const char *s, size_t len)
{
    size_t at = align_up(b->len, 4);
    pad_to(b, at);
    uint32_t n = (uint32_t)len;
    grow(b, 4 + len + 1);
    put(b, at, &n, 4);
    if (len) put(b, at + 4, s, len);
    return at;
}

size_t flatbuf_vector(strbuf *b, const void *elems, size_t elem_size, size_t count, size_t align)
{
    if (align < 4) align = 4;
    size_t at = align_up(b->len + 4, align) - 4;
    pad_to(b, at);
    uint32_t n = (uint32_t)count;
    grow(b, 4 + elem_size * count);
    put(b, at, &n, 4);
    if (elems && count) put(b, at + 4, elems, elem_size * count);
    return at;
}

void flatbuf_patch(strbuf *b, size_t slot, size_t target)
{
    uint32_t off = (uint32_t)(target - slot);
    put(b, slot, &off, 4);
}
