/*
 * query_batch.c: the record batches QueryExec streams (query.h): freeing them, and borrowed views
 * of row ranges (query_batch_slice) that own nothing.
 *
 * A batch owns everything it points to: the columns array, each column's name, validity bitmap
 * and the arrays of its type (the union in query_column is read by the column's type, so a
 * column must have its type set before any of its arrays is allocated; members never set are
 * NULL because producers allocate columns zeroed). A partly built batch can therefore be freed
 * with query_batch_free on any failure path.
 */
#include "query/query.h"

#include <stdlib.h>

void query_column_free(query_column *c)
{
    free(c->name);
    free(c->validity);
    switch (c->type) {
    case COLUMN_I64:
    case COLUMN_TIME:
        free(c->data.i64);
        break;
    case COLUMN_U64:
        free(c->data.u64);
        break;
    case COLUMN_F64:
        free(c->data.f64);
        break;
    case COLUMN_BOOL:
        free(c->data.bits);
        break;
    case COLUMN_STRING:
        free(c->data.str.offsets);
        free(c->data.str.bytes);
        break;
    case COLUMN_TAG:
        free(c->data.tag.ids);
        free(c->data.tag.dict_offsets);
        free(c->data.tag.dict_bytes);
        break;
    default:
        break;
    }
}

void query_batch_free(query_batch *batch)
{
    if (!batch) return;
    if (batch->columns)
        for (size_t i = 0; i < batch->column_count; i++)
            query_column_free(&batch->columns[i]);
    free(batch->columns);
    free(batch);
}

void query_batch_slice(const query_batch *b, size_t start, size_t count, query_batch *view,
                       query_column *cols)
{
    *view = *b;
    view->row_count = count;
    view->columns = cols;
    size_t byte = start / 8;
    for (size_t i = 0; i < b->column_count; i++) {
        const query_column *c = &b->columns[i];
        query_column *v = &cols[i];
        *v = *c;
        if (c->validity) v->validity = c->validity + byte;
        switch (c->type) {
        case COLUMN_I64:
        case COLUMN_TIME:
            v->data.i64 = c->data.i64 + start;
            break;
        case COLUMN_U64:
            v->data.u64 = c->data.u64 + start;
            break;
        case COLUMN_F64:
            v->data.f64 = c->data.f64 + start;
            break;
        case COLUMN_BOOL:
            v->data.bits = c->data.bits + byte;
            break;
        case COLUMN_STRING:
            v->data.str.offsets = c->data.str.offsets + start;
            break;
        case COLUMN_TAG:
            v->data.tag.ids = c->data.tag.ids + start;
            break;
        }
    }
}
