/*
 * query_batch.c: the record batches QueryExec streams (query.h): freeing them.
 *
 * A batch owns everything it points to: the columns array, each column's name, validity bitmap
 * and the arrays of its type (the union in query_column is read by the column's type, so a
 * column must have its type set before any of its arrays is allocated; members never set are
 * NULL because producers allocate columns zeroed). A partly built batch can therefore be freed
 * with query_batch_free on any failure path.
 */
#include "query/query.h"

#include <stdlib.h>

static void query_column_free(query_column *c)
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
