/*
 * s3_store.c: the `s3` object store: objects on any S3-compatible endpoint (AWS S3, MinIO,
 * s3rver ...), through libcurl. The interface and the path rules are in object_store.h.
 *
 * WIRE. Path-style URLs: an object path "a/b.parquet" is <endpoint>/<bucket>/a/b.parquet. Paths
 * are checked by object_store_path_check() first, so a key is made of [A-Za-z0-9._-%/]; in the
 * URL each byte outside [A-Za-z0-9._-~/] ('%' only, in practice) is percent-encoded, which is
 * also S3's canonical URI for SigV4 (S3 does not double-encode). Requests:
 *   put    PUT    /<bucket>/<key>     body = the object          200
 *   get    GET    /<bucket>/<key>                                200 (404 = INGOT_E_NOT_FOUND)
 *   remove DELETE /<bucket>/<key>                                204 (S3 answers 204 when absent)
 *   list   GET    /<bucket>?continuation-token=T&list-type=2&max-keys=N&prefix=P   200, XML:
 *          <ListBucketResult>...<Contents><Key>k</Key>...<Size>n</Size>...</Contents>...
 *          <IsTruncated>true</IsTruncated><NextContinuationToken>T</NextContinuationToken>
 *          and again with T until IsTruncated is false. Query parameters are written sorted and
 *          encoded, as SigV4's canonical query string wants them (libcurl 7.88 signs the query
 *          as given).
 * Every request is signed by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3", the key pair as
 * CURLOPT_USERPWD) and carries x-amz-content-sha256: the hex SHA-256 of its body (libcrypto),
 * which SigV4 for S3 requires and libcurl then signs instead of hashing the body itself.
 * list() only reports keys that are valid object paths (a shared bucket may hold other things).
 * No "Expect:" header is set to silence 100-continue: libcurl 7.88 would sign the empty header it
 * then does not send, and a real SigV4 verifier refuses the request (s3rver does not check).
 *
 * FAILURES. No retries here (the persist worker retries with back-off). HTTP 403 -> -EACCES,
 * 404 on get -> INGOT_E_NOT_FOUND, 404 NoSuchBucket -> -ENOENT, other statuses -> -EIO; a
 * transfer error -> -ETIMEDOUT / -ECONNREFUSED / -EIO. Each failure is logged (warn) with the
 * S3 error code and message from the response body.
 *
 * TIMEOUTS. A store that stops answering must not hold a persist worker (or the start-up
 * listing) forever: a stopped server process (SIGSTOP, a hung proxy) still has its kernel
 * accept the connection and buffer the request, so nothing but a timeout ends the wait. With
 * T = the store's timeout (--object-store-timeout, default 30 s), every request is abandoned
 * with -ETIMEDOUT when
 *   - connecting (TCP, and TLS for https) takes longer than min(T, 10 s);
 *   - no byte of the request body or of the response body has moved for T seconds (our
 *     progress callback compares the byte counts, which libcurl reports as they move and at
 *     least once a second while nothing moves; libcurl's own CURLOPT_LOW_SPEED_TIME is not used:
 *     it averages speed over a sliding window, so it fires seconds late after a burst and, with
 *     a small T, early during a slow but steady transfer);
 *   - the whole request takes longer than S3_TOTAL_TIMEOUT_FACTOR * T plus its size (the larger
 *     of the body and the announced response length) at S3_MIN_BYTES_PER_SECOND: a server that
 *     trickles a byte now and then cannot hold a request forever either.
 * libcurl sends "Expect: 100-continue" with every PUT and waits up to a second for the 100
 * before it sends the body anyway; that wait is capped at T/2 so it never counts as a stall.
 * An abandoned PUT may still be completed later by a server that wakes up with it in its
 * socket buffers; the persister retries the same path with the same bytes, so that only
 * writes the same object again.
 *
 * LOCKING. The store's strings are immutable after open. Easy handles are per request, taken
 * from a small pool under `pool_mu` (and reset when given back) so connections are reused;
 * libcurl's global init runs once (pthread_once) before any handle exists.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/object_store.h"
#include "util/clock.h"
#include "util/log.h"

#define S3_POOL_SIZE 8
#define S3_CONNECT_TIMEOUT_SECONDS 10L
#define S3_TOTAL_TIMEOUT_FACTOR 4
#define S3_MIN_BYTES_PER_SECOND (256.0 * 1024)
#define S3_MAX_TIMEOUT_SECONDS 86400u
#define S3_DEFAULT_MAX_KEYS 1000

typedef struct s3_store {
    char *endpoint;      /* without a trailing '/'; immutable */
    char *bucket;        /* immutable */
    char *sigv4;         /* "aws:amz:<region>:s3"; immutable */
    char *userpwd;       /* "<access key>:<secret key>"; immutable */
    int list_max_keys;   /* keys per ListObjectsV2 page; immutable */
    long timeout_s;      /* T of TIMEOUTS above; immutable */
    pthread_mutex_t pool_mu;
    CURL *pool[S3_POOL_SIZE]; /* idle easy handles; pool_mu */
    int pool_count;           /* pool_mu */
} s3_store;

/* A growable byte buffer for response bodies. */
typedef struct s3_buf {
    unsigned char *data;
    size_t len, cap;
    bool oom;
} s3_buf;

/* The body of an upload. */
typedef struct s3_upload {
    const unsigned char *data;
    size_t len, off;
} s3_upload;

/* The progress of one request, for the stall and total timeouts (TIMEOUTS above). */
typedef struct s3_progress {
    long timeout_s;
    double start_s;        /* monotonic seconds when the request started */
    double last_move_s;    /* when a byte last moved */
    curl_off_t last_bytes; /* body bytes moved so far, both ways */
    bool expired;          /* the request was abandoned: why in reason */
    char reason[128];
} s3_progress;

static pthread_once_t s3_global_once = PTHREAD_ONCE_INIT;
static CURLcode s3_global_rc = CURLE_FAILED_INIT;

static void s3_global_init(void)
{
    s3_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t s3_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    s3_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return 0; /* aborts the transfer */
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t s3_read_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
    s3_upload *u = userdata;
    size_t n = size * nitems;
    if (n > u->len - u->off) n = u->len - u->off;
    memcpy(buffer, u->data + u->off, n);
    u->off += n;
    return n;
}

/* Rewinding an upload (libcurl does it on redirects and some auth retries). */
static int s3_seek_cb(void *userdata, curl_off_t offset, int origin)
{
    s3_upload *u = userdata;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len) return CURL_SEEKFUNC_FAIL;
    u->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/*
 * libcurl's progress callback: called whenever bytes move and about once a second when none
 * do. Nonzero aborts the transfer (CURLE_ABORTED_BY_CALLBACK) with p->expired saying why.
 */
static int s3_progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    s3_progress *p = userdata;
    double now = (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
    curl_off_t moved = dlnow + ulnow;
    if (moved != p->last_bytes) {
        p->last_bytes = moved;
        p->last_move_s = now;
    }
    curl_off_t size = dltotal > ultotal ? dltotal : ultotal;
    double limit_s =
        (double)(S3_TOTAL_TIMEOUT_FACTOR * p->timeout_s) + (double)size / S3_MIN_BYTES_PER_SECOND;
    if (now - p->last_move_s >= (double)p->timeout_s) {
        snprintf(p->reason, sizeof p->reason, "no byte moved for %ld s", p->timeout_s);
        p->expired = true;
    } else if (now - p->start_s >= limit_s) {
        snprintf(p->reason, sizeof p->reason,
                 "not done within %.0f s (%d x %ld s + its size at %.0f KiB/s)", limit_s,
                 S3_TOTAL_TIMEOUT_FACTOR, p->timeout_s, S3_MIN_BYTES_PER_SECOND / 1024);
        p->expired = true;
    }
    return p->expired;
}

/* The lower-case hex SHA-256 of data[0..len) into out[65]. */
static int s3_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return INGOT_E_NOMEM;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/*
 * Append s percent-encoded to b: unreserved bytes [A-Za-z0-9._~-] are kept, '/' too if
 * keep_slash, everything else is %XX.
 */
static int s3_append_encoded(s3_buf *b, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[3];
        size_t n = 0;
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-' || c == '~' || (keep_slash && c == '/')) {
            tmp[n++] = (char)c;
        } else {
            tmp[n++] = '%';
            tmp[n++] = hex[c >> 4];
            tmp[n++] = hex[c & 15];
        }
        s3_write_cb(tmp, 1, n, b);
    }
    return b->oom ? INGOT_E_NOMEM : 0;
}

static int s3_append(s3_buf *b, const char *s)
{
    s3_write_cb((char *)s, 1, strlen(s), b);
    return b->oom ? INGOT_E_NOMEM : 0;
}

/* "<endpoint>/<bucket>/<key encoded>" (key NULL: "<endpoint>/<bucket>") into url (caller frees). */
static int s3_object_url(const s3_store *s, const char *key, s3_buf *url)
{
    int rc = s3_append(url, s->endpoint);
    if (rc == 0) rc = s3_append(url, "/");
    if (rc == 0) rc = s3_append_encoded(url, s->bucket, false);
    if (rc == 0 && key) rc = s3_append(url, "/");
    if (rc == 0 && key) rc = s3_append_encoded(url, key, true);
    return rc;
}

static CURL *s3_handle_get(s3_store *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->pool_count > 0) h = s->pool[--s->pool_count];
    pthread_mutex_unlock(&s->pool_mu);
    return h ? h : curl_easy_init();
}

static void s3_handle_put(s3_store *s, CURL *h)
{
    curl_easy_reset(h); /* keeps the connection cache */
    pthread_mutex_lock(&s->pool_mu);
    if (s->pool_count < S3_POOL_SIZE) {
        s->pool[s->pool_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (h) curl_easy_cleanup(h);
}

/* The text between <tag> and </tag> at or after from, or NULL; *len_out its length. */
static const char *s3_xml_find(const char *from, const char *end, const char *tag,
                               size_t *len_out, const char **after)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = memmem(from, (size_t)(end - from), open, strlen(open));
    if (!a) return NULL;
    a += strlen(open);
    const char *b = memmem(a, (size_t)(end - a), close, strlen(close));
    if (!b) return NULL;
    *len_out = (size_t)(b - a);
    if (after) *after = b + strlen(close);
    return a;
}

/* XML text to a malloc'd string with the five predefined entities decoded; NULL when out of memory. */
static char *s3_xml_text(const char *s, size_t len)
{
    static const struct {
        const char *entity;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        size_t k = 0;
        if (s[i] == '&') {
            for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
                size_t el = strlen(ents[k].entity);
                if (len - i >= el && memcmp(s + i, ents[k].entity, el) == 0) {
                    out[n++] = ents[k].c;
                    i += el - 1;
                    break;
                }
            }
            if (k < sizeof ents / sizeof ents[0]) continue;
        }
        out[n++] = s[i];
    }
    out[n] = '\0';
    return out;
}

/* Log an S3 error response and map it to a code. */
static int s3_http_error(const char *op, const char *what, long status, const s3_buf *body)
{
    char code[64] = "", message[256] = "";
    if (body->data) {
        const char *end = (const char *)body->data + body->len;
        size_t n;
        const char *c = s3_xml_find((const char *)body->data, end, "Code", &n, NULL);
        if (c) snprintf(code, sizeof code, "%.*s", (int)(n < 63 ? n : 63), c);
        const char *m = s3_xml_find((const char *)body->data, end, "Message", &n, NULL);
        if (m) snprintf(message, sizeof message, "%.*s", (int)(n < 255 ? n : 255), m);
    }
    log_warn("s3: %s %s: HTTP %ld %s %s", op, what, status, code, message);
    if (status == 403) return -EACCES;
    if (status == 404 && strcmp(code, "NoSuchKey") == 0) return INGOT_E_NOT_FOUND;
    if (status == 404) return -ENOENT;
    return -EIO;
}

static int s3_curl_error(const char *op, const char *what, CURLcode cc, const char *errbuf,
                         const s3_buf *body, const s3_progress *progress)
{
    if (cc == CURLE_ABORTED_BY_CALLBACK && progress->expired) {
        log_warn("s3: %s %s: abandoned after %.1f s: %s (--object-store-timeout)", op, what,
                 (double)clock_ns(CLOCK_MONOTONIC) / 1e9 - progress->start_s, progress->reason);
        return -ETIMEDOUT;
    }
    log_warn("s3: %s %s: %s", op, what, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    if (body && body->oom) return INGOT_E_NOMEM;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return INGOT_E_NOMEM;
    default:
        return -EIO;
    }
}

/*
 * One request: method on url with an optional body; the response body into resp, the status
 * into *status. Returns 0 when the transfer completed (whatever the status) or a code.
 */
static int s3_request(s3_store *s, const char *method, const char *url, const void *body,
                      size_t body_len, s3_buf *resp, long *status)
{
    int rc = 0;
    struct curl_slist *headers = NULL, *h;
    char sha[65], sha_header[100], errbuf[CURL_ERROR_SIZE] = "";
    s3_upload up = {.data = body, .len = body_len};
    s3_progress progress = {.timeout_s = s->timeout_s};
    CURL *c = s3_handle_get(s);
    if (!c) return INGOT_E_NOMEM;
    rc = s3_sha256_hex(body ? body : "", body_len, sha);
    if (rc) goto fail;
    snprintf(sha_header, sizeof sha_header, "x-amz-content-sha256: %s", sha);
    if (!(h = curl_slist_append(headers, sha_header))) goto oom;
    headers = h;
    bool upload = strcmp(method, "PUT") == 0;
    if (upload) {
        if (!(h = curl_slist_append(headers, "Content-Type: application/octet-stream"))) goto oom;
        headers = h;
    }
    CURLcode cc = CURLE_OK;
#define S3_SET(opt, val)                                                                           \
    if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val)
    S3_SET(CURLOPT_URL, url);
    S3_SET(CURLOPT_NOSIGNAL, 1L);
    S3_SET(CURLOPT_ERRORBUFFER, errbuf);
    S3_SET(CURLOPT_HTTPHEADER, headers);
    S3_SET(CURLOPT_AWS_SIGV4, s->sigv4);
    S3_SET(CURLOPT_USERPWD, s->userpwd);
    S3_SET(CURLOPT_CONNECTTIMEOUT, s->timeout_s < S3_CONNECT_TIMEOUT_SECONDS
                                       ? s->timeout_s
                                       : S3_CONNECT_TIMEOUT_SECONDS);
    S3_SET(CURLOPT_EXPECT_100_TIMEOUT_MS, s->timeout_s < 2 ? 500L : 1000L);
    S3_SET(CURLOPT_NOPROGRESS, 0L);
    S3_SET(CURLOPT_XFERINFOFUNCTION, s3_progress_cb);
    S3_SET(CURLOPT_XFERINFODATA, &progress);
    S3_SET(CURLOPT_WRITEFUNCTION, s3_write_cb);
    S3_SET(CURLOPT_WRITEDATA, resp);
    if (upload) {
        S3_SET(CURLOPT_UPLOAD, 1L);
        S3_SET(CURLOPT_READFUNCTION, s3_read_cb);
        S3_SET(CURLOPT_READDATA, &up);
        S3_SET(CURLOPT_SEEKFUNCTION, s3_seek_cb);
        S3_SET(CURLOPT_SEEKDATA, &up);
        S3_SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "GET") != 0) {
        S3_SET(CURLOPT_CUSTOMREQUEST, method);
    }
#undef S3_SET
    progress.start_s = progress.last_move_s = (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
    if (cc == CURLE_OK) cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = s3_curl_error(method, url, cc, errbuf, resp, &progress);
        goto fail;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    s3_handle_put(s, c);
    return 0;
oom:
    rc = INGOT_E_NOMEM;
fail:
    curl_slist_free_all(headers);
    s3_handle_put(s, c);
    return rc;
}

static int s3_put(void *self, const char *path, const void *data, size_t len)
{
    s3_store *s = self;
    s3_buf url = {0}, resp = {0};
    long status = 0;
    if (!path || object_store_path_check(path, strlen(path)) != 0) return INGOT_E_INVALID;
    if (!data && len) return INGOT_E_INVALID;
    int rc = s3_object_url(s, path, &url);
    if (rc == 0) rc = s3_request(s, "PUT", (char *)url.data, data, len, &resp, &status);
    if (rc == 0 && status != 200) rc = s3_http_error("PUT", path, status, &resp);
    free(url.data);
    free(resp.data);
    return rc;
}

static int s3_get(void *self, const char *path, void **data_out, size_t *len_out)
{
    s3_store *s = self;
    s3_buf url = {0}, resp = {0};
    long status = 0;
    *data_out = NULL;
    *len_out = 0;
    if (!path || object_store_path_check(path, strlen(path)) != 0) return INGOT_E_INVALID;
    int rc = s3_object_url(s, path, &url);
    if (rc == 0) rc = s3_request(s, "GET", (char *)url.data, NULL, 0, &resp, &status);
    if (rc == 0 && status != 200) rc = s3_http_error("GET", path, status, &resp);
    if (rc == 0 && !resp.data && !(resp.data = malloc(1))) rc = INGOT_E_NOMEM;
    free(url.data);
    if (rc) {
        free(resp.data);
        return rc;
    }
    *data_out = resp.data;
    *len_out = resp.len;
    return 0;
}

static int s3_remove(void *self, const char *path)
{
    s3_store *s = self;
    s3_buf url = {0}, resp = {0};
    long status = 0;
    if (!path || object_store_path_check(path, strlen(path)) != 0) return INGOT_E_INVALID;
    int rc = s3_object_url(s, path, &url);
    if (rc == 0) rc = s3_request(s, "DELETE", (char *)url.data, NULL, 0, &resp, &status);
    if (rc == 0 && status != 204 && status != 200) {
        rc = s3_http_error("DELETE", path, status, &resp);
        if (rc == INGOT_E_NOT_FOUND) rc = 0; /* some servers say NoSuchKey: absent is fine */
    }
    free(url.data);
    free(resp.data);
    return rc;
}

/* One ListObjectsV2 page; *token_io (malloc'd or NULL) is replaced by the next token or NULL. */
static int s3_list_page(s3_store *s, const char *prefix, char **token_io, object_store_list_cb cb,
                        void *arg)
{
    s3_buf url = {0}, resp = {0};
    long status = 0;
    char max_keys[32];
    snprintf(max_keys, sizeof max_keys, "%d", s->list_max_keys);
    /* parameters in sorted order: the canonical query string of SigV4 */
    int rc = s3_object_url(s, NULL, &url);
    if (rc == 0) rc = s3_append(&url, "?");
    if (rc == 0 && *token_io) {
        rc = s3_append(&url, "continuation-token=");
        if (rc == 0) rc = s3_append_encoded(&url, *token_io, false);
        if (rc == 0) rc = s3_append(&url, "&");
    }
    if (rc == 0) rc = s3_append(&url, "list-type=2&max-keys=");
    if (rc == 0) rc = s3_append(&url, max_keys);
    if (rc == 0) rc = s3_append(&url, "&prefix=");
    if (rc == 0) rc = s3_append_encoded(&url, prefix, false);
    if (rc == 0) rc = s3_request(s, "GET", (char *)url.data, NULL, 0, &resp, &status);
    if (rc == 0 && status != 200) rc = s3_http_error("LIST", prefix, status, &resp);
    free(*token_io);
    *token_io = NULL;
    if (rc) goto out;
    const char *p = resp.data ? (const char *)resp.data : "";
    const char *end = p + resp.len;
    const char *item;
    size_t item_len;
    while ((item = s3_xml_find(p, end, "Contents", &item_len, &p)) != NULL) {
        size_t key_len, size_len;
        const char *key = s3_xml_find(item, item + item_len, "Key", &key_len, NULL);
        const char *size = s3_xml_find(item, item + item_len, "Size", &size_len, NULL);
        if (!key || !size) {
            log_warn("s3: LIST %s: an entry without Key or Size", prefix);
            rc = -EIO;
            goto out;
        }
        char *k = s3_xml_text(key, key_len);
        if (!k) {
            rc = INGOT_E_NOMEM;
            goto out;
        }
        char size_text[32];
        snprintf(size_text, sizeof size_text, "%.*s", (int)(size_len < 31 ? size_len : 31), size);
        char *size_end;
        unsigned long long bytes = strtoull(size_text, &size_end, 10);
        if (*size_end == '\0' && size_end != size_text &&
            object_store_path_check(k, strlen(k)) == 0)
            cb(arg, k, (uint64_t)bytes);
        free(k);
    }
    size_t n;
    const char *trunc = s3_xml_find((const char *)resp.data, end, "IsTruncated", &n, NULL);
    if (trunc && n == 4 && memcmp(trunc, "true", 4) == 0) {
        const char *tok = s3_xml_find((const char *)resp.data, end, "NextContinuationToken", &n,
                                      NULL);
        if (!tok || n == 0) {
            log_warn("s3: LIST %s: truncated without a continuation token", prefix);
            rc = -EIO;
            goto out;
        }
        if (!(*token_io = s3_xml_text(tok, n))) rc = INGOT_E_NOMEM;
    }
out:
    free(url.data);
    free(resp.data);
    return rc;
}

static int s3_list(void *self, const char *prefix, object_store_list_cb cb, void *arg)
{
    s3_store *s = self;
    char *token = NULL;
    if (!cb) return INGOT_E_INVALID;
    int rc;
    do {
        rc = s3_list_page(s, prefix ? prefix : "", &token, cb, arg);
    } while (rc == 0 && token);
    free(token);
    return rc;
}

static void s3_close(void *self)
{
    s3_store *s = self;
    if (!s) return;
    for (int i = 0; i < s->pool_count; i++)
        curl_easy_cleanup(s->pool[i]);
    pthread_mutex_destroy(&s->pool_mu);
    free(s->endpoint);
    free(s->bucket);
    free(s->sigv4);
    free(s->userpwd);
    free(s);
}

int object_store_s3_open(const char *endpoint, const char *bucket, const char *region,
                         unsigned timeout_s, object_store *out, char *err, size_t errlen)
{
    int rc = 0;
    s3_store *s = NULL;
    const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (!endpoint || !*endpoint || !bucket || !*bucket || !region || !*region) {
        snprintf(err, errlen, "s3 object store: endpoint, bucket and region are required");
        return INGOT_E_INVALID;
    }
    if (timeout_s == 0 || timeout_s > S3_MAX_TIMEOUT_SECONDS) {
        snprintf(err, errlen, "s3 object store: timeout %u s is not 1 s to 24 h", timeout_s);
        return INGOT_E_INVALID;
    }
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) {
        snprintf(err, errlen, "s3 object store: endpoint %s is not an http:// or https:// URL",
                 endpoint);
        return INGOT_E_INVALID;
    }
    if (!key || !*key || !secret || !*secret) {
        snprintf(err, errlen,
                 "s3 object store: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
        return INGOT_E_INVALID;
    }
    if (strchr(key, ':') || strchr(region, ':')) {
        snprintf(err, errlen, "s3 object store: ':' in the access key or region");
        return INGOT_E_INVALID;
    }
    pthread_once(&s3_global_once, s3_global_init);
    if (s3_global_rc != CURLE_OK) {
        snprintf(err, errlen, "s3 object store: libcurl: %s", curl_easy_strerror(s3_global_rc));
        return -EIO;
    }
    s = calloc(1, sizeof *s);
    if (!s) goto oom;
    pthread_mutex_init(&s->pool_mu, NULL);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/')
        el--;
    s->endpoint = strndup(endpoint, el);
    s->bucket = strdup(bucket);
    s->sigv4 = malloc(strlen(region) + 16);
    s->userpwd = malloc(strlen(key) + strlen(secret) + 2);
    if (!s->endpoint || !s->bucket || !s->sigv4 || !s->userpwd) goto oom;
    sprintf(s->sigv4, "aws:amz:%s:s3", region);
    sprintf(s->userpwd, "%s:%s", key, secret);
    s->list_max_keys = S3_DEFAULT_MAX_KEYS;
    s->timeout_s = (long)timeout_s;
    const char *mk = getenv("INGOT_S3_LIST_MAX_KEYS"); /* tests: force continuation tokens */
    if (mk && atoi(mk) > 0 && atoi(mk) <= S3_DEFAULT_MAX_KEYS) s->list_max_keys = atoi(mk);

    /* fail now, with a message, if the bucket is unreachable or the keys are refused */
    s3_buf url = {0}, resp = {0};
    long status = 0;
    rc = s3_object_url(s, NULL, &url);
    if (rc == 0) rc = s3_append(&url, "?list-type=2&max-keys=1&prefix=");
    if (rc == 0) rc = s3_request(s, "GET", (char *)url.data, NULL, 0, &resp, &status);
    if (rc == 0 && status != 200) {
        rc = s3_http_error("LIST", bucket, status, &resp);
        snprintf(err, errlen, "s3 object store: bucket %s at %s: HTTP %ld", bucket, s->endpoint,
                 status);
    } else if (rc) {
        snprintf(err, errlen, "s3 object store: %s: %s", s->endpoint, ingot_strerror(rc));
    }
    free(url.data);
    free(resp.data);
    if (rc) goto fail;
    *out = (object_store){.self = s,
                          .put = s3_put,
                          .get = s3_get,
                          .list = s3_list,
                          .remove = s3_remove,
                          .close = s3_close};
    return 0;
oom:
    rc = INGOT_E_NOMEM;
    snprintf(err, errlen, "s3 object store: out of memory");
fail:
    s3_close(s);
    return rc;
}
