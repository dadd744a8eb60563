/*
 * grpc_catalog.c: ingot.catalog.v1.CatalogService: read-only views of the catalog
 * (ListNamespaces, GetSchema, ListPartitions, ListParquetFiles), straight from the catalog back
 * end, so they show what every ingester sharing the catalog recorded, not only this process.
 *
 * Responses are built as protobuf-c message trees in which every message, array and string is
 * malloc'd (empty strings stay protobuf-c's shared default), so one
 * protobuf_c_message_free_unpacked() frees a tree whatever point building it reached. The catalog
 * lists through callbacks that cannot fail, so an allocation failure inside one is remembered in
 * the builder and answered RESOURCE_EXHAUSTED afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingot/catalog/v1/catalog.pb-c.h"
#include "server/grpc_internal.h"
#include "util/json.h"

typedef struct builder {
    bool failed;
    int64_t table_id;       /* find_table: the match */
    const char *want_name;  /* find_table: the name sought */
    ProtobufCMessage *list; /* the message the callbacks append to */
} builder;

/* Append a new message of `desc` to the repeated field (*items, *count). NULL on OOM. */
static void *push(builder *b, const ProtobufCMessageDescriptor *desc, size_t *count,
                  void *items_field)
{
    void ***items = items_field;
    void **grown = realloc(*items, (*count + 1) * sizeof **items);
    ProtobufCMessage *m = grown ? malloc(desc->sizeof_message) : NULL;
    if (grown) *items = grown;
    if (!m) {
        b->failed = true;
        return NULL;
    }
    protobuf_c_message_init(desc, m);
    (*items)[(*count)++] = m;
    return m;
}

static char *dup_string(builder *b, const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) b->failed = true;
    return d ? d : (char *)protobuf_c_empty_string;
}

static void on_namespace(void *arg, int64_t id, const char *name)
{
    builder *b = arg;
    Ingot__Catalog__V1__ListNamespacesResponse *resp = (void *)b->list;
    Ingot__Catalog__V1__Namespace *ns =
        push(b, &ingot__catalog__v1__namespace__descriptor, &resp->n_namespaces, &resp->namespaces);
    if (!ns) return;
    ns->id = id;
    ns->name = dup_string(b, name);
}

static void on_table(void *arg, int64_t id, const char *name)
{
    builder *b = arg;
    Ingot__Catalog__V1__GetSchemaResponse *resp = (void *)b->list;
    Ingot__Catalog__V1__TableSchema *t =
        push(b, &ingot__catalog__v1__table_schema__descriptor, &resp->n_tables, &resp->tables);
    if (!t) return;
    t->id = id;
    t->name = dup_string(b, name);
}

static void on_column(void *arg, int64_t id, const char *name, int type)
{
    builder *b = arg;
    Ingot__Catalog__V1__TableSchema *t = (void *)b->list;
    Ingot__Catalog__V1__ColumnSchema *c =
        push(b, &ingot__catalog__v1__column_schema__descriptor, &t->n_columns, &t->columns);
    if (!c) return;
    c->id = id;
    c->name = dup_string(b, name);
    c->column_type = (Ingot__Catalog__V1__ColumnType)type; /* the enum's values are the codes */
}

static void on_partition(void *arg, int64_t id, const char *key, const char *sort_key)
{
    builder *b = arg;
    Ingot__Catalog__V1__ListPartitionsResponse *resp = (void *)b->list;
    Ingot__Catalog__V1__Partition *p =
        push(b, &ingot__catalog__v1__partition__descriptor, &resp->n_partitions, &resp->partitions);
    if (!p) return;
    p->id = id;
    p->key = dup_string(b, key);
    char **items;
    size_t count;
    int rv = json_parse_string_array(sort_key, &items, &count);
    if (rv == INGOT_E_NOMEM) b->failed = true;
    if (rv != 0) return; /* a key the catalog holds is always an array: nothing to show else */
    p->sort_key = items;
    p->n_sort_key = count;
}

static void on_parquet_file(void *arg, const catalog_parquet_file *f)
{
    builder *b = arg;
    Ingot__Catalog__V1__ListParquetFilesResponse *resp = (void *)b->list;
    Ingot__Catalog__V1__ParquetFile *p = push(b, &ingot__catalog__v1__parquet_file__descriptor,
                                              &resp->n_parquet_files, &resp->parquet_files);
    if (!p) return;
    p->id = f->id;
    p->namespace_id = f->namespace_id;
    p->table_id = f->table_id;
    p->partition_id = f->partition_id;
    p->partition_key = dup_string(b, f->partition_key);
    p->object_store_id = dup_string(b, f->object_store_id);
    p->min_time = f->min_time;
    p->max_time = f->max_time;
    p->row_count = f->row_count;
    p->file_size_bytes = f->file_size_bytes;
    p->max_sequence_number = f->max_sequence_number;
    p->created_at = f->created_at;
}

static void on_find_table(void *arg, int64_t id, const char *name)
{
    builder *b = arg;
    if (!strcmp(name, b->want_name)) b->table_id = id;
}

/* The ids of namespace ns and (if table is not NULL) its table; NOT_FOUND with a message. */
static int find(catalog *cat, const char *ns, const char *table, int64_t *ns_id, int64_t *table_id,
                char *err, size_t errlen)
{
    int rv = cat->namespace_lookup(cat->self, ns, ns_id);
    if (rv == INGOT_E_NOT_FOUND) snprintf(err, errlen, "namespace \"%.100s\" not found", ns);
    if (rv != 0 || !table) return rv;
    builder b = {.table_id = -1, .want_name = table};
    if ((rv = cat->list_tables(cat->self, *ns_id, on_find_table, &b)) != 0) return rv;
    if (b.table_id < 0) {
        snprintf(err, errlen, "table \"%.100s\" not found in namespace \"%.100s\"", table, ns);
        return INGOT_E_NOT_FOUND;
    }
    *table_id = b.table_id;
    return 0;
}

/* Unpack the request of r with desc; NULL (and INVALID_ARGUMENT answered) if it does not decode. */
static ProtobufCMessage *unpack_request(rpc *r, const ProtobufCMessageDescriptor *desc)
{
    grpc_slice bytes = rpc_request_bytes(r);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(bytes),
                                                    GRPC_SLICE_START_PTR(bytes));
    grpc_slice_unref(bytes);
    if (!m) rpc_finish(r, NULL, GRPC_STATUS_INVALID_ARGUMENT, "the request does not decode");
    return m;
}

static int get_schema(catalog *cat, const char *ns, builder *b, char *err, size_t errlen)
{
    Ingot__Catalog__V1__GetSchemaResponse *resp = (void *)b->list;
    int rv = find(cat, ns, NULL, &resp->namespace_id, NULL, err, errlen);
    if (rv != 0) return rv;
    resp->namespace_ = dup_string(b, ns);
    if ((rv = cat->list_tables(cat->self, resp->namespace_id, on_table, b)) != 0) return rv;
    for (size_t i = 0; i < resp->n_tables && !b->failed; i++) {
        b->list = &resp->tables[i]->base;
        rv = cat->list_columns(cat->self, resp->tables[i]->id, on_column, b);
        b->list = &resp->base;
        if (rv != 0) return rv;
    }
    return 0;
}

void catalog_service_call(rpc *r)
{
    catalog *cat = ingester_catalog(r->srv->ing);
    const ProtobufCMessageDescriptor *req_desc, *resp_desc;
    switch (r->method) {
    case RPC_CATALOG_LIST_NAMESPACES:
        req_desc = &ingot__catalog__v1__list_namespaces_request__descriptor;
        resp_desc = &ingot__catalog__v1__list_namespaces_response__descriptor;
        break;
    case RPC_CATALOG_GET_SCHEMA:
        req_desc = &ingot__catalog__v1__get_schema_request__descriptor;
        resp_desc = &ingot__catalog__v1__get_schema_response__descriptor;
        break;
    case RPC_CATALOG_LIST_PARTITIONS:
        req_desc = &ingot__catalog__v1__list_partitions_request__descriptor;
        resp_desc = &ingot__catalog__v1__list_partitions_response__descriptor;
        break;
    default:
        req_desc = &ingot__catalog__v1__list_parquet_files_request__descriptor;
        resp_desc = &ingot__catalog__v1__list_parquet_files_response__descriptor;
        break;
    }
    ProtobufCMessage *req = unpack_request(r, req_desc);
    if (!req) return;
    builder b = {0};
    char err[300] = "";
    int rv = INGOT_E_NOMEM;
    int64_t ns_id, table_id;
    if ((b.list = malloc(resp_desc->sizeof_message))) {
        protobuf_c_message_init(resp_desc, b.list);
        switch (r->method) {
        case RPC_CATALOG_LIST_NAMESPACES:
            rv = cat->list_namespaces(cat->self, on_namespace, &b);
            break;
        case RPC_CATALOG_GET_SCHEMA:
            rv = get_schema(cat, ((Ingot__Catalog__V1__GetSchemaRequest *)req)->namespace_, &b, err,
                            sizeof err);
            break;
        case RPC_CATALOG_LIST_PARTITIONS: {
            Ingot__Catalog__V1__ListPartitionsRequest *q = (void *)req;
            rv = find(cat, q->namespace_, q->table, &ns_id, &table_id, err, sizeof err);
            if (rv == 0) rv = cat->list_partitions(cat->self, table_id, on_partition, &b);
            break;
        }
        default: {
            Ingot__Catalog__V1__ListParquetFilesRequest *q = (void *)req;
            rv = find(cat, q->namespace_, q->table, &ns_id, &table_id, err, sizeof err);
            if (rv == 0) rv = cat->parquet_file_list(cat->self, table_id, on_parquet_file, &b);
            break;
        }
        }
    }
    if (rv == 0 && b.failed) rv = INGOT_E_NOMEM;
    if (rv == 0)
        rpc_finish(r, rpc_buffer_pack(b.list), GRPC_STATUS_OK, NULL);
    else
        rpc_finish(r, NULL, rpc_status_of(rv), err[0] ? err : ingot_strerror(rv));
    if (b.list) protobuf_c_message_free_unpacked(b.list, NULL);
    protobuf_c_message_free_unpacked(req, NULL);
}
