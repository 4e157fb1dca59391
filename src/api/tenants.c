/* /tenants routes (PRODUCT.md §3.3). The NWC URL is a spending credential: stored, never returned
 * or logged; responses only say whether one is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "db/db.h"
#include "api/repo_tenant.h"
#include "nostr/nwc_uri.h"
#include "util/util.h"

/* Reads one tenant into call->data; 404 when absent. */
static int load_tenant(struct db_conn *conn, struct api_call *call, const char *pubkey)
{
    int rc = repo_tenant_get(conn, pubkey, &call->data);
    return rc == DB_ENOTFOUND ? api_fail(call, 404, "not-found", "no such tenant") : rc;
}

static int list_tenants(struct db_conn *conn, struct api_call *call)
{
    call->paged = 1;
    return repo_tenant_list(conn, call->in, &call->data, call->next);
}

void api_list_tenants(struct api_ctx *ctx)
{
    struct repo_page page;
    if (api_require_admin(ctx) != 0 || api_page(ctx, 1, &page) != 0)
        return;
    struct repo_page *copy = xmalloc(sizeof(*copy));
    *copy = page;
    api_run_list(ctx, list_tenants, copy, free);
}

static int create_tenant(struct db_conn *conn, struct api_call *call)
{
    struct api_ctx *ctx = call->ctx;
    int rc = repo_tenant_create(conn, ctx->pubhex, ctx->now);
    call->caller_is_tenant = rc == 0 || rc == DB_ECONSTRAINT;
    if (rc == DB_ECONSTRAINT)
        return api_fail(call, 422, "pubkey-exists", "this pubkey is already a tenant");
    call->created = 1;
    return rc ? rc : load_tenant(conn, call, ctx->pubhex);
}

void api_create_tenant(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 1, create_tenant, NULL, NULL);
}

/* Admin or the tenant itself; others 403. */
static int may_see_tenant(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) != 0)
        return -1;
    if (ctx->is_admin || strcmp(ctx->params[0], ctx->pubhex) == 0)
        return 0;
    api_error(ctx, 403, "forbidden", "not your tenant");
    return -1;
}

static int get_tenant(struct db_conn *conn, struct api_call *call)
{
    return load_tenant(conn, call, call->ctx->params[0]);
}

void api_get_tenant(struct api_ctx *ctx)
{
    if (may_see_tenant(ctx) == 0)
        api_run(ctx, 0, get_tenant, NULL, NULL);
}

struct billing_in {
    char *nwc_url; /* NULL clears */
};

static void billing_in_free(void *p)
{
    struct billing_in *in = p;
    if (in->nwc_url) {
        secure_zero(in->nwc_url, strlen(in->nwc_url));
        free(in->nwc_url);
    }
    free(in);
}

static int put_billing(struct db_conn *conn, struct api_call *call)
{
    struct billing_in *in = call->in;
    const char *pubkey = call->ctx->params[0];
    int rc = repo_tenant_set_nwc(conn, pubkey, in->nwc_url, call->ctx->now);
    if (rc == DB_ENOTFOUND)
        return api_fail(call, 404, "not-found", "no such tenant");
    if (rc == 0 && in->nwc_url)
        api_after_commit(call, APP_TENANT_BILLING_CHANGED, pubkey);
    return rc ? rc : load_tenant(conn, call, pubkey);
}

void api_put_tenant_billing(struct api_ctx *ctx)
{
    cJSON *body = NULL;
    struct nwc_uri uri;
    const char *why = NULL;
    if (may_see_tenant(ctx) != 0 || !(body = api_body_object(ctx)))
        return;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(body, "nwc_url");
    if (!url || (!cJSON_IsNull(url) && !cJSON_IsString(url))) {
        cJSON_Delete(body);
        api_error(ctx, 400, "invalid-body", "nwc_url must be a string or null");
        return;
    }
    if (cJSON_IsString(url) && nwc_uri_parse(url->valuestring, &uri, &why) != 0) {
        cJSON_Delete(body);
        api_error(ctx, 422, "invalid-nwc-url", "nwc_url: %s", why ? why : "invalid");
        return;
    }
    struct billing_in *in = xcalloc(1, sizeof(*in));
    if (cJSON_IsString(url)) {
        nwc_uri_free(&uri);
        in->nwc_url = xstrdup(url->valuestring);
        secure_zero(url->valuestring, strlen(url->valuestring));
    }
    cJSON_Delete(body);
    api_run(ctx, 1, put_billing, in, billing_in_free);
}
