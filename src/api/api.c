/* API entry point (PRODUCT.md §3): CORS, NIP-98 authentication, routing. Loop thread only. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/nip98.h"
#include "nostr/hex.h"
#include "util/batch.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

#define PUBLIC 0
#define AUTH 1

struct route {
    const char *method;
    const char *pattern; /* ":x" segments are parameters */
    void (*handler)(struct api_ctx *ctx);
};

static const struct route routes[] = {
    {"GET", "/healthz", api_get_healthz},
    {"GET", "/plans", api_get_plans},
    {"GET", "/plans/:id", api_get_plan},
    {"GET", "/identity", api_get_identity},
    {"GET", "/tenants", api_list_tenants},
    {"POST", "/tenants", api_create_tenant},
    {"GET", "/tenants/:pubkey", api_get_tenant},
    {"PUT", "/tenants/:pubkey/billing", api_put_tenant_billing},
    {"GET", "/relays", api_list_relays},
    {"POST", "/relays", api_create_relay},
    {"GET", "/relays/:id", api_get_relay},
    {"PUT", "/relays/:id", api_put_relay},
    {"POST", "/relays/:id/deactivate", api_deactivate_relay},
    {"POST", "/relays/:id/activate", api_activate_relay},
    {"POST", "/relays/:id/sync", api_sync_relay},
    {"GET", "/relays/:id/invites", api_list_invites},
    {"GET", "/relays/:id/members", api_get_members},
    {"POST", "/relays/:id/invites", api_create_invite},
    {"DELETE", "/relays/:id/invites/:code", api_delete_invite},
    {"GET", "/relays/:id/bans", api_list_bans},
    {"POST", "/relays/:id/bans", api_create_ban},
    {"DELETE", "/relays/:id/bans/:pubkey", api_delete_ban},
    {"GET", "/blocklist", api_list_blocklist},
    {"POST", "/blocklist", api_add_blocklist},
    {"DELETE", "/blocklist/:pubkey", api_remove_blocklist},
    {"GET", "/invoices", api_list_invoices},
    {"GET", "/invoices/:id", api_get_invoice},
    {"GET", "/activity", api_list_activity},
};

/* Matches path against pattern, copying parameters into ctx. */
static int match(const char *pattern, const char *path, struct api_ctx *ctx)
{
    size_t used = 0, n_params = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++, path++;
        size_t plen = strcspn(pattern, "/"), slen = strcspn(path, "/");
        if (*pattern == ':') {
            if (slen == 0 || n_params == API_MAX_PARAMS || used + slen + 1 > sizeof(ctx->param_buf))
                return 0;
            memcpy(ctx->param_buf + used, path, slen);
            ctx->param_buf[used + slen] = '\0';
            ctx->params[n_params++] = ctx->param_buf + used;
            used += slen + 1;
        } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
            return 0;
        }
        pattern += plen, path += slen;
    }
    return *pattern == '\0' && *path == '\0';
}

/* ---- CORS (PRODUCT.md §3.1) ---- */

static void set_cors(struct api_ctx *ctx)
{
    const struct config *cfg = &ctx->app->cfg;
    const char *origin = http_request_header(&ctx->ex->req, "origin");
    int allowed = cfg->n_allow_origins == 0;
    for (size_t i = 0; origin && i < cfg->n_allow_origins && !allowed; i++)
        allowed = strcmp(origin, cfg->allow_origins[i]) == 0;
    /* Tokens travel in a header, never in cookies, so '*' is safe when permissive. */
    if (!origin && cfg->n_allow_origins == 0) {
        snprintf(ctx->cors, sizeof(ctx->cors),
                 "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n");
        return;
    }
    if (!origin || !allowed || strlen(origin) > 300 || strpbrk(origin, "\r\n")) {
        snprintf(ctx->cors, sizeof(ctx->cors), "Vary: Origin\r\n");
        return;
    }
    snprintf(ctx->cors, sizeof(ctx->cors), "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
             origin);
}

static void preflight(struct api_ctx *ctx)
{
    size_t n = strlen(ctx->cors);
    snprintf(ctx->cors + n, sizeof(ctx->cors) - n,
             "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\n"
             "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
             "Access-Control-Max-Age: 600\r\n");
    api_send(ctx, 204, NULL, 0);
}

/* ---- NIP-98 (PRODUCT.md §3.2) ---- */

/* The origins a token's u tag may name: PUBLIC_URL, else http(s)://HOST[:PORT]. */
static size_t expected_origins(const struct app *app, char out[4][320], const char *ptrs[4])
{
    const struct config *cfg = &app->cfg;
    if (cfg->public_url) {
        snprintf(out[0], 320, "%s", cfg->public_url);
        ptrs[0] = out[0];
        return 1;
    }
    /* An IPv6 literal is bracketed in URLs. */
    int v6 = strchr(cfg->host, ':') != NULL;
    int port = app->http ? http_server_port(app->http) : cfg->port;
    static const char *const schemes[] = {"http", "https"};
    for (int i = 0; i < 2; i++) {
        snprintf(out[2 * i], 320, "%s://%s%s%s:%d", schemes[i], v6 ? "[" : "", cfg->host,
                 v6 ? "]" : "", port);
        snprintf(out[2 * i + 1], 320, "%s://%s%s%s", schemes[i], v6 ? "[" : "", cfg->host,
                 v6 ? "]" : "");
    }
    for (int i = 0; i < 4; i++)
        ptrs[i] = out[i];
    return 4;
}

static void set_caller(struct api_ctx *ctx)
{
    ctx->authed = 1;
    ctx->is_admin = config_is_admin(&ctx->app->cfg, ctx->pubkey);
    hex_encode(ctx->pubkey, 32, ctx->pubhex);
    memcpy(ctx->ex->log_user, ctx->pubhex, 8);
    ctx->ex->log_user[8] = '\0';
}

static void request_policy(struct api_ctx *ctx, struct nip98_request *r, struct nip98_policy *p)
{
    static char origin_buf[4][320];
    static const char *origins[4];
    static size_t n_origins;
    const struct http_request *req = &ctx->ex->req;
    if (!n_origins)
        n_origins = expected_origins(ctx->app, origin_buf, origins);
    *r = (struct nip98_request){http_request_header(req, "authorization"),
                                req->method,
                                req->target,
                                req->body,
                                req->body_len,
                                ctx->now,
                                0};
    *p = (struct nip98_policy){origins, n_origins, ctx->app->cfg.auth_max_age};
}

/* A token seen for the first time is verified on the threadpool, so the BIP-340 checks of
 * fresh tokens use every core instead of queueing on the loop; the request continues in
 * on_verified. The exchange stays valid meanwhile (server contract). The checks go over in
 * batches (util/batch.h), one in flight per core: a hand-off per token cost the loop more
 * than parsing the request. */
#define VERIFY_BATCH_MAX 16 /* 16 x ~50 us: the longest wait behind a batch is under 1 ms */

struct verify_job {
    struct batch_job job;
    struct api_ctx *ctx;
    struct nip98_verify *verify;
};

static struct batcher *verifier(uv_loop_t *loop)
{
    static struct batcher b;
    if (b.loop != loop && b.inflight == 0 && !b.head) { /* a new loop (tests start several) */
        unsigned cores = uv_available_parallelism();
        batcher_init(&b, loop, cores > 1 ? cores : 2, VERIFY_BATCH_MAX);
    }
    return &b;
}

static void verify_work(struct batch_job *job)
{
    nip98_verify_run(container_of(job, struct verify_job, job)->verify);
}

static void on_verified(struct batch_job *bjob, int status)
{
    struct verify_job *job = container_of(bjob, struct verify_job, job);
    struct api_ctx *ctx = job->ctx;
    struct nip98_request r;
    struct nip98_policy policy;
    const char *why = NULL;
    request_policy(ctx, &r, &policy);
    if (status == 0) {
        if (nip98_verify_finish(job->verify, &r, &policy, ctx->pubkey, &why) == 0)
            set_caller(ctx);
        else
            LOG_DEBUG("api: NIP-98 refused: %s", why);
    } else {
        nip98_verify_finish(job->verify, NULL, NULL, NULL, &why);
    }
    free(job);
    ctx->handler(ctx);
}

/* Authenticates and runs the handler, now or once the token is verified. */
static void authenticate_then_handle(struct api_ctx *ctx)
{
    struct nip98_request r;
    struct nip98_policy policy;
    struct nip98_verify *verify = NULL;
    const char *why = NULL;
    request_policy(ctx, &r, &policy);
    int rc = r.authorization ? nip98_check_cached(&r, &policy, ctx->pubkey, &verify, &why) : -1;
    if (rc == 1) {
        struct verify_job *job = xcalloc(1, sizeof(*job));
        *job = (struct verify_job){{.run = verify_work, .done = on_verified}, ctx, verify};
        batcher_submit(verifier(ctx->app->loop), &job->job);
        return;
    }
    if (rc == 0)
        set_caller(ctx);
    else if (r.authorization)
        LOG_DEBUG("api: NIP-98 refused: %s", why);
    ctx->handler(ctx);
}

/* ---- the head check (before a body is read) ---- */

struct head_job {
    struct batch_job job;
    struct api_ctx *ctx;
    struct nip98_verify *verify;
};

static void head_refuse(struct api_ctx *ctx, const char *why)
{
    if (why)
        LOG_DEBUG("api: NIP-98 refused before the body: %s", why);
    api_error(ctx, 401, "unauthorized",
              "a request with a body needs a valid NIP-98 Authorization header");
}

static void head_verify_work(struct batch_job *job)
{
    nip98_verify_run(container_of(job, struct head_job, job)->verify);
}

/* Decides once the token is verified; the token is cached, so api_handle finds it. */
static int head_verified(struct head_job *job, int status)
{
    struct api_ctx *ctx = job->ctx;
    struct nip98_request r;
    struct nip98_policy policy;
    const char *why = NULL;
    request_policy(ctx, &r, &policy);
    r.head_only = 1;
    int rc = nip98_verify_finish(job->verify, status == 0 ? &r : NULL, &policy, ctx->pubkey, &why);
    free(job);
    if (status != 0 || rc != 0) {
        head_refuse(ctx, why);
        return 1;
    }
    free(ctx);
    return 0;
}

static void on_head_verified(struct batch_job *bjob, int status)
{
    struct head_job *job = container_of(bjob, struct head_job, job);
    struct http_exchange *ex = job->ctx->ex;
    if (head_verified(job, status) == 0)
        http_head_continue(ex);
}

int api_head(struct http_exchange *ex, void *arg)
{
    struct api_ctx *ctx = xcalloc(1, sizeof(*ctx));
    struct nip98_request r;
    struct nip98_policy policy;
    struct nip98_verify *verify = NULL;
    const char *why = NULL;
    ctx->ex = ex;
    ctx->app = arg;
    ctx->now = clock_now();
    set_cors(ctx);
    request_policy(ctx, &r, &policy);
    r.head_only = 1;
    int rc = r.authorization ? nip98_check_cached(&r, &policy, ctx->pubkey, &verify, &why) : -1;
    if (rc == 0) {
        free(ctx);
        return 0;
    }
    if (rc < 0) {
        head_refuse(ctx, r.authorization ? why : NULL);
        return 1;
    }
    struct head_job *job = xcalloc(1, sizeof(*job));
    *job = (struct head_job){{.run = head_verify_work, .done = on_head_verified}, ctx, verify};
    batcher_submit(verifier(ctx->app->loop), &job->job);
    return 1;
}

/* ---- dispatch ---- */

static void not_allowed(struct api_ctx *ctx, const char *path)
{
    char allow[96] = "";
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        if (match(routes[i].pattern, path, ctx) && !strstr(allow, routes[i].method)) {
            strcat(allow, allow[0] ? ", " : "");
            strcat(allow, routes[i].method);
        }
    }
    size_t n = strlen(ctx->cors);
    snprintf(ctx->cors + n, sizeof(ctx->cors) - n, "Allow: %s, OPTIONS\r\n", allow);
    api_error(ctx, 405, "method-not-allowed", "method %s not allowed here", ctx->ex->req.method);
}

void api_handle(struct http_exchange *ex, void *arg)
{
    struct api_ctx *ctx = xcalloc(1, sizeof(*ctx));
    const char *path = ex->req.path;
    int path_known = 0;
    ctx->ex = ex;
    ctx->app = arg;
    ctx->now = clock_now();
    set_cors(ctx);
    if (strcmp(ex->req.method, "OPTIONS") == 0) {
        preflight(ctx);
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        if (!match(routes[i].pattern, path, ctx))
            continue;
        path_known = 1;
        if (strcmp(routes[i].method, ex->req.method) != 0)
            continue;
        ctx->route = routes[i].pattern;
        ctx->handler = routes[i].handler;
        authenticate_then_handle(ctx);
        return;
    }
    if (path_known)
        not_allowed(ctx, path);
    else
        api_error(ctx, 404, "not-found", "no such route");
}
