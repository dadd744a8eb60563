/*
 * failing_store.h: a failing-object-store decorator for tests (header only). It wraps any
 * object_store (the file store, the S3 store, a fake) and fails the Nth call, counted from
 * failing_store_arm(), of the operations in a mask, once (transient) or from then on
 * (persistent), with a chosen code, without calling the inner store; every other call is passed
 * through. Thread-safe (one mutex). The inner store stays owned by the caller: the decorator's
 * close() does not close it.
 *
 *   failing_store fs;
 *   failing_store_init(&fs, &inner);
 *   object_store s = failing_store_as_store(&fs);
 *   failing_store_arm(&fs, FAILING_STORE_PUT, 2, false, -EIO);  // the 2nd put fails once
 */
#ifndef INGOT_FAILING_STORE_H
#define INGOT_FAILING_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/object_store.h"

enum failing_store_op {
    FAILING_STORE_PUT = 1u << 0,
    FAILING_STORE_GET = 1u << 1,
    FAILING_STORE_LIST = 1u << 2,
    FAILING_STORE_REMOVE = 1u << 3,
};

typedef struct failing_store {
    object_store *inner;
    pthread_mutex_t mu;
    unsigned ops;      /* mu: the armed operations (0: disarmed) */
    uint64_t nth;      /* mu */
    bool persistent;   /* mu */
    int code;          /* mu: what a failed call returns */
    uint64_t matched;  /* mu: calls of the armed operations since arming */
    uint64_t injected; /* mu: calls failed since arming */
} failing_store;

static inline void failing_store_init(failing_store *f, object_store *inner)
{
    *f = (failing_store){.inner = inner};
    pthread_mutex_init(&f->mu, NULL);
}

static inline void failing_store_arm(failing_store *f, unsigned ops, uint64_t nth, bool persistent,
                                     int code)
{
    pthread_mutex_lock(&f->mu);
    f->ops = ops;
    f->nth = nth;
    f->persistent = persistent;
    f->code = code;
    f->matched = f->injected = 0;
    pthread_mutex_unlock(&f->mu);
}

static inline void failing_store_disarm(failing_store *f)
{
    pthread_mutex_lock(&f->mu);
    f->ops = 0;
    pthread_mutex_unlock(&f->mu);
}

static inline uint64_t failing_store_injected(failing_store *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->injected;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* 0 to pass the call through, or the code to fail it with. */
static inline int failing_store_decide(failing_store *f, unsigned op)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    if (f->ops & op) {
        f->matched++;
        if (f->matched == f->nth || (f->persistent && f->matched > f->nth)) {
            f->injected++;
            rc = f->code;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static inline int failing_store_put(void *self, const char *path, const void *data, size_t len)
{
    failing_store *f = self;
    int rc = failing_store_decide(f, FAILING_STORE_PUT);
    return rc ? rc : f->inner->put(f->inner->self, path, data, len);
}

static inline int failing_store_get(void *self, const char *path, void **data_out, size_t *len_out)
{
    failing_store *f = self;
    int rc = failing_store_decide(f, FAILING_STORE_GET);
    if (rc) {
        *data_out = NULL;
        *len_out = 0;
        return rc;
    }
    return f->inner->get(f->inner->self, path, data_out, len_out);
}

static inline int failing_store_list(void *self, const char *prefix, object_store_list_cb cb,
                                     void *arg)
{
    failing_store *f = self;
    int rc = failing_store_decide(f, FAILING_STORE_LIST);
    return rc ? rc : f->inner->list(f->inner->self, prefix, cb, arg);
}

static inline int failing_store_remove(void *self, const char *path)
{
    failing_store *f = self;
    int rc = failing_store_decide(f, FAILING_STORE_REMOVE);
    return rc ? rc : f->inner->remove(f->inner->self, path);
}

static inline void failing_store_close(void *self)
{
    failing_store *f = self;
    pthread_mutex_destroy(&f->mu);
}

static inline object_store failing_store_as_store(failing_store *f)
{
    return (object_store){.self = f,
                          .put = failing_store_put,
                          .get = failing_store_get,
                          .list = failing_store_list,
                          .remove = failing_store_remove,
                          .close = failing_store_close};
}

#endif
