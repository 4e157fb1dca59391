/* NIP-86 client over net/fetch.c (see nip86.h). */
#include "net/nip86.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/fetch.h"
#include "nostr/nip98.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define RPC_TYPE "application/nostr+json+rpc"
#define WHAT_MAX 200

struct nip86 {
    struct fetch *fetch;
    char *url_template; /* NULL = https://<host>/ */
    long timeout_ms;
    size_t active;
};

struct call {
    struct nip86 *c;
    nip86_done_cb *cb;
    void *arg;
};

int nip86_new(struct nip86 **out, uv_loop_t *loop, const char *url_template, long timeout_ms)
{
    ASSERT_LOOP_THREAD();
    struct nip86 *c = xcalloc(1, sizeof(*c));
    *out = NULL;
    if (fetch_new(&c->fetch, loop) != 0) {
        free(c);
        return -1;
    }
    c->url_template = url_template && url_template[0] ? xstrdup(url_template) : NULL;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : NIP86_TIMEOUT_MS;
    *out = c;
    return 0;
}

size_t nip86_active(const struct nip86 *c)
{
    ASSERT_LOOP_THREAD();
    return c ? c->active : 0;
}

char *nip86_target_url(const char *url_template, const char *host)
{
    ASSERT_LOOP_THREAD();
    struct buf b;
    buf_init(&b, 4096);
    if (!url_template || !url_template[0]) {
        buf_printf(&b, "https://%s/", host);
        return buf_take(&b, NULL);
    }
    const char *at = strstr(url_template, "{host}");
    if (at) {
        buf_append(&b, url_template, (size_t)(at - url_template));
        buf_append_str(&b, host);
        buf_append_str(&b, at + strlen("{host}"));
    } else {
        buf_append_str(&b, url_template);
    }
    /* "http://h:p" names no path: the relay's endpoint is "/". */
    const char *scheme_end = strstr(b.data, "://");
    if (scheme_end && !strchr(scheme_end + 3, '/'))
        buf_append_str(&b, "/");
    return buf_take(&b, NULL);
}

/* A relay host as RELAY_DOMAIN builds it: a header-safe DNS name, maybe with a port. */
static int host_ok(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > NIP86_MAX_HOST)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = host[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
              ch == ':'))
            return 0;
    }
    return 1;
}

/* Classifies an answer; fills what on failure. */
static enum nip86_status classify(int err, long http, const cJSON *root, char *what)
{
    const cJSON *e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    if (err != 0) {
        snprintf(what, WHAT_MAX, "%s", err_str(err));
        return NIP86_UNREACHABLE;
    }
    if (cJSON_IsString(e) && e->valuestring[0]) {
        snprintf(what, WHAT_MAX, "HTTP %ld: %.150s", http, e->valuestring);
        return NIP86_REFUSED;
    }
    if (http != 200) {
        snprintf(what, WHAT_MAX, "HTTP %ld", http);
        return NIP86_UNREACHABLE;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(what, WHAT_MAX, "the answer is not a NIP-86 JSON object");
        return NIP86_UNREACHABLE;
    }
    return NIP86_OK;
}

static void on_done(int err, long http, const char *body, size_t n, void *arg)
{
    struct call *k = arg;
    char what[WHAT_MAX] = "";
    cJSON *root = err == 0 ? cJSON_ParseWithLength(body, n) : NULL;
    enum nip86_status st = classify(err, http, root, what);
    const cJSON *result = NULL;
    cJSON *null_result = NULL;
    if (st == NIP86_OK) {
        result = cJSON_GetObjectItemCaseSensitive(root, "result");
        if (!result)
            result = null_result = cJSON_CreateNull();
    }
    k->c->active--;
    k->cb(st, result, what, k->arg);
    cJSON_Delete(null_result);
    cJSON_Delete(root);
    free(k);
}

/* The JSON-RPC body: {"method": m, "params": [...]}. */
static char *rpc_body(const char *method, const cJSON *params)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", method);
    cJSON_AddItemToObject(o, "params", params ? cJSON_Duplicate(params, 1) : cJSON_CreateArray());
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        abort(); /* cJSON fails only on allocation: the OOM policy (util.h) */
    return s;
}

int nip86_call(struct nip86 *c, const char *host, const struct nostr_keypair *kp,
               const char *method, const cJSON *params, nip86_done_cb *cb, void *arg)
{
    ASSERT_LOOP_THREAD();
    if (!c || !host_ok(host))
        return -1;
    char *body = rpc_body(method, params);
    char *u = nip86_target_url(NULL, host);
    char *url = nip86_target_url(c->url_template, host);
    char *auth = nip98_auth_header(kp, u, "POST", body, strlen(body), clock_now());
    char host_line[NIP86_MAX_HOST + 16];
    snprintf(host_line, sizeof(host_line), "Host: %s", host);
    const char *headers[] = {"Content-Type: " RPC_TYPE,
                             "Accept: " RPC_TYPE,
                             auth,
                             c->url_template ? host_line : NULL,
                             c->url_template ? "X-Forwarded-Proto: https" : NULL,
                             NULL};
    struct fetch_opts o = {.method = "POST",
                           .url = url,
                           .headers = headers,
                           .body = body,
                           .body_len = strlen(body),
                           .timeout_ms = c->timeout_ms,
                           .max_response = NIP86_MAX_RESPONSE};
    struct call *k = xcalloc(1, sizeof(*k));
    *k = (struct call){c, cb, arg};
    int rc = auth ? fetch_start(c->fetch, &o, on_done, k, NULL) : -1;
    if (rc == 0)
        c->active++;
    else
        free(k);
    free(body);
    free(u);
    free(url);
    free(auth);
    return rc == 0 ? 0 : -1;
}

struct closing {
    struct nip86 *c;
    void (*cb)(void *);
    void *arg;
};

static void on_fetch_closed(void *arg)
{
    struct closing *k = arg;
    free(k->c->url_template);
    free(k->c);
    if (k->cb)
        k->cb(k->arg);
    free(k);
}

void nip86_close(struct nip86 *c, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (!c) {
        if (cb)
            cb(arg);
        return;
    }
    struct closing *k = xcalloc(1, sizeof(*k));
    *k = (struct closing){c, cb, arg};
    /* Completes the calls in flight with UV_ECANCELED: their callbacks see "canceled". */
    fetch_close(c->fetch, on_fetch_closed, k);
}
