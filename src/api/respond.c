/* Answers, the database round trip of a request, and small request helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/wake.h"
#include "db/db.h"
#include "nostr/hex.h"
#include "nostr/utf8.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/util.h"

void api_send(struct api_ctx *ctx, int status, const char *body, size_t len)
{
    /* Metrics is NULL when METRICS_PORT is off: then this is a no-op. */
    metrics_observe_request(ctx->app->metrics, ctx->route, status,
                            http_exchange_elapsed_us(ctx->ex));
    http_respond(ctx->ex, status, API_JSON_TYPE, ctx->cors, body, len);
    free(ctx);
}

static char *error_body(const char *code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddStringToObject(o, "code", code);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void api_error(struct api_ctx *ctx, int status, const char *code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *body = error_body(code, msg);
    api_send(ctx, status, body, strlen(body));
    cJSON_free(body);
}

/* page: NULL for one resource; a list's next cursor ("" = the last page) otherwise. */
static char *envelope(cJSON *data, const char *page)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateNull());
    if (page)
        cJSON_AddItemToObject(o, "next", page[0] ? cJSON_CreateString(page) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "code", "ok");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void api_ok(struct api_ctx *ctx, int status, cJSON *data)
{
    char *body = envelope(data, NULL);
    api_send(ctx, status, body, strlen(body));
    cJSON_free(body);
}

int api_fail(struct api_call *call, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->msg, sizeof(call->msg), fmt, ap);
    va_end(ap);
    call->status = status;
    call->code = code;
    return DB_ENOTFOUND; /* any non-zero value rolls the transaction back */
}

/* ---- the database round trip ---- */

struct run {
    struct api_call call;
    api_work_fn *work;
};

/* Pool thread: run the handler's SQL, then print the body here rather than on the loop. */
static int run_work(struct db_conn *conn, void *arg)
{
    struct run *r = arg;
    struct api_call *c = &r->call;
    /* db_write may run a job again after DB_EBUSY: start from a clean slate. */
    cJSON_Delete(c->data);
    c->data = NULL;
    c->status = 0;
    c->code = NULL;
    c->created = 0;
    c->has_event = 0;
    c->caller_is_tenant = 0;
    c->next[0] = '\0';
    int rc = r->work(conn, c);
    /* Other instances hear the event when this transaction commits (core/wake.h). */
    if (rc == 0 && !c->status && c->has_event)
        rc = app_publish(conn, c->event, c->event_id);
    if (rc == 0 && !r->call.status)
        r->call.body = envelope(r->call.data, c->paged ? c->next : NULL);
    else
        cJSON_Delete(r->call.data);
    r->call.data = NULL;
    return rc;
}

static void run_done(int status, void *arg)
{
    struct run *r = arg;
    struct api_call *call = &r->call;
    struct api_ctx *ctx = call->ctx;
    /* A tenant row seen (pubkey-exists answers too) or committed: a fact from now on. */
    if (call->caller_is_tenant > 0 && (call->status || status == 0))
        tenant_cache_add(ctx->pubkey);
    if (call->status) {
        api_error(ctx, call->status, call->code, "%s", call->msg);
    } else if (status == DB_ECANCELED) {
        /* The client closed its connection before the read ran: nothing is sent; the request
         * line and the metrics say 499 (nginx's "client closed request"). */
        api_error(ctx, 499, "client-closed", "the client closed the connection");
    } else if (status != 0 || !call->body) {
        LOG_ERROR("api: %s %s failed in the database (%s)", ctx->ex->req.method, ctx->ex->req.path,
                  err_name(status));
        if (status == DB_EFULL)
            api_error(ctx, 507, "storage-full", "the disk is full: nothing was saved");
        else if (status == DB_EREADONLY)
            api_error(ctx, 503, "storage-read-only",
                      "the database is read-only: nothing was saved");
        else if (status == DB_EMOVED)
            api_error(ctx, 503, "unavailable",
                      "the database file was deleted or replaced: nothing was saved");
        else if (status == DB_EBUSY || status == DB_EQUEUEFULL || status == DB_ECLOSED)
            api_error(ctx, 503, "unavailable", "service temporarily unavailable");
        else
            api_error(ctx, 500, "internal", "internal error");
    } else {
        /* A "no" can go stale when another instance creates the tenant: on a shared store
         * it is asked again each time (a "yes" stays true: tenants are never deleted). */
        if (call->caller_is_tenant < 0 && !db_shared(ctx->app->db))
            tenant_cache_add_not(ctx->pubkey);
        /* Committed: now the features that registered for it may act on it. */
        if (call->has_event)
            app_emit(ctx->app, call->event, call->event_id);
        if (call->answered)
            call->answered(call);
        api_send(ctx, call->created ? 201 : 200, call->body, strlen(call->body));
    }
    cJSON_free(call->body);
    if (call->in_free)
        call->in_free(call->in);
    free(r);
}

void api_after_commit(struct api_call *call, enum app_event ev, const char *id)
{
    call->has_event = 1;
    call->event = ev;
    snprintf(call->event_id, sizeof(call->event_id), "%s", id);
}

enum run_lane { RUN_READ, RUN_WRITE, RUN_LIST };

/* Loop thread, right before the read would run: a client that left wants no answer. */
static int run_wanted(void *arg)
{
    struct run *r = arg;
    return !http_exchange_gone(r->call.ctx->ex);
}

static void run(struct api_ctx *ctx, enum run_lane lane, api_work_fn *work, void *in,
                void (*in_free)(void *), void (*answered)(struct api_call *call))
{
    struct run *r = xcalloc(1, sizeof(*r));
    r->call.answered = answered;
    r->call.ctx = ctx;
    r->call.in = in;
    r->call.in_free = in_free;
    r->work = work;
    /* The API's writes (tenants, relays, settings) survive kill -9; they need no fsync per
     * COMMIT because none of them moves money (billing's own writes are DB_POWER_SAFE). A
     * write runs even when its client has left (it may have been sent in full and be
     * expected to land); a read whose client has left is dropped before it runs. */
    int rc;
    if (lane == RUN_WRITE)
        rc = db_write(ctx->app->db, DB_CRASH_SAFE, run_work, run_done, r);
    else
        rc = db_read_for(ctx->app->db, lane == RUN_LIST, run_work, run_done, run_wanted, r);
    if (rc != 0)
        run_done(rc, r);
}

void api_run(struct api_ctx *ctx, int write, api_work_fn *work, void *in, void (*in_free)(void *))
{
    run(ctx, write ? RUN_WRITE : RUN_READ, work, in, in_free, NULL);
}

void api_run_read_answered(struct api_ctx *ctx, api_work_fn *work, void *in,
                           void (*in_free)(void *), void (*answered)(struct api_call *call))
{
    run(ctx, RUN_READ, work, in, in_free, answered);
}

void api_run_list(struct api_ctx *ctx, api_work_fn *work, void *in, void (*in_free)(void *))
{
    run(ctx, RUN_LIST, work, in, in_free, NULL);
}

/* ---- request helpers ---- */

int api_require_auth(struct api_ctx *ctx)
{
    if (ctx->authed)
        return 0;
    api_error(ctx, 401, "unauthorized", "a valid NIP-98 Authorization header is required");
    return -1;
}

int api_require_admin(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) != 0)
        return -1;
    if (ctx->is_admin)
        return 0;
    api_error(ctx, 403, "forbidden", "admin only");
    return -1;
}

/* JSON escapes of U+0000: cJSON would end the string there, silently storing a shorter
 * value. An escaped backslash is skipped whole so "\\\\u0000" (text) is not mistaken. */
static int has_escaped_nul(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 6 <= n && memcmp(s + i + 2, "0000", 4) == 0)
            return 1;
        i++;
    }
    return 0;
}

cJSON *api_body_object(struct api_ctx *ctx)
{
    const struct http_request *req = &ctx->ex->req;
    cJSON *o = NULL;
    /* RFC 8259: UTF-8 and one value with nothing but whitespace after it. The body is
     * NUL-terminated by the server, so len + 1 lets cJSON see the end and refuse trailing
     * bytes (which it accepts otherwise). */
    if (!memchr(req->body, '\0', req->body_len) && utf8_valid(req->body, req->body_len) == 0 &&
        !has_escaped_nul(req->body, req->body_len))
        o = cJSON_ParseWithLengthOpts(req->body, req->body_len + 1, NULL, 1);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        api_error(ctx, 400, "invalid-json",
                  "the body must be one JSON object in UTF-8, without U+0000");
        return NULL;
    }
    return o;
}

int api_query(struct api_ctx *ctx, const char *name, char *out, size_t cap)
{
    const char *q = ctx->ex->req.query;
    size_t nlen = strlen(name);
    while (q && *q) {
        size_t len = strcspn(q, "&");
        if (len > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            /* Too long: the first cap - 1 bytes, which the caller's own checks refuse. */
            if (percent_decode(q + nlen + 1, len - nlen - 1, out, cap) == PERCENT_EBAD) {
                api_error(ctx, 400, "invalid-query",
                          "query parameter %s has a malformed percent-escape ('%%' must be "
                          "followed by two hex digits, and %%00 is not allowed)",
                          name);
                return -1;
            }
            return 1;
        }
        q += len + (q[len] == '&');
    }
    return 0;
}

/* Plain decimal digits only: strtoll alone would also take " 5", "+5" and "-0". */
static int parse_num(const char *s, int64_t min, int64_t max, int64_t *out)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || s[n] || n > 10)
        return -1;
    long long v = strtoll(s, NULL, 10);
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int api_paging(struct api_ctx *ctx, int64_t *limit, int64_t *offset)
{
    char v[32];
    int has;
    *limit = 100;
    *offset = 0;
    if ((has = api_query(ctx, "limit", v, sizeof(v))) < 0)
        return -1;
    if (has && parse_num(v, 1, 500, limit) != 0) {
        api_error(ctx, 400, "invalid-body", "limit must be an integer from 1 to 500");
        return -1;
    }
    if ((has = api_query(ctx, "offset", v, sizeof(v))) < 0)
        return -1;
    if (has && parse_num(v, 0, INT32_MAX, offset) != 0) {
        api_error(ctx, 400, "invalid-body", "offset must be a non-negative integer");
        return -1;
    }
    return 0;
}

int api_page(struct api_ctx *ctx, int with_id, struct repo_page *page)
{
    char v[REPO_CURSOR_MAX + 8];
    *page = (struct repo_page){0};
    if (api_paging(ctx, &page->limit, &page->offset) != 0)
        return -1;
    int has = api_query(ctx, "after", v, sizeof(v));
    if (has < 0)
        return -1;
    if (has && (strlen(v) >= REPO_CURSOR_MAX || repo_cursor_parse(v, with_id, page) != 0)) {
        api_error(ctx, 400, "invalid-body", "after must be a cursor a list answered as next");
        return -1;
    }
    return 0;
}

int api_list_scope(struct api_ctx *ctx, char out[65])
{
    char t[80] = "";
    int has = api_query(ctx, "tenant", t, sizeof(t));
    out[0] = '\0';
    if (has < 0)
        return -1;
    /* Lowercase, as stored: "ABC..." would otherwise just match nothing. */
    if (has && (strlen(t) != 64 || strspn(t, "0123456789abcdef") != 64)) {
        api_error(ctx, 400, "invalid-body", "tenant must be a 64-character lowercase hex pubkey");
        return -1;
    }
    if (has && !ctx->is_admin && strcmp(t, ctx->pubhex) != 0) {
        api_error(ctx, 403, "forbidden", "only admins may list another tenant's resources");
        return -1;
    }
    strcpy(out, has ? t : ctx->is_admin ? "" : ctx->pubhex);
    return 0;
}
