/* Public routes (health, plans) and GET /identity. */
#include <string.h>

#include "api/internal.h"
#include "db/db.h"

static int ping(sqlite3 *conn, struct api_call *call)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1");
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return api_fail(call, 503, "unavailable", "database unavailable");
    call->data = cJSON_CreateObject();
    cJSON_AddStringToObject(call->data, "status", "ok");
    return 0;
}

void api_get_healthz(struct api_ctx *ctx)
{
    api_run(ctx, 0, ping, NULL, NULL);
}

static cJSON *plan_json(const struct plan *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", p->id);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddNumberToObject(o, "sats", (double)p->sats);
    if (p->members < 0)
        cJSON_AddNullToObject(o, "members");
    else
        cJSON_AddNumberToObject(o, "members", (double)p->members);
    cJSON_AddBoolToObject(o, "blossom", p->blossom);
    cJSON_AddBoolToObject(o, "livekit", p->livekit);
    return o;
}

void api_get_plans(struct api_ctx *ctx)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < n_plans; i++)
        cJSON_AddItemToArray(list, plan_json(&plans[i]));
    api_ok(ctx, 200, list);
}

void api_get_plan(struct api_ctx *ctx)
{
    const struct plan *p = plan_find(ctx->params[0]);
    if (!p)
        api_error(ctx, 404, "not-found", "no such plan");
    else
        api_ok(ctx, 200, plan_json(p));
}

static int identity(sqlite3 *conn, struct api_call *call)
{
    struct api_ctx *ctx = call->ctx;
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1 FROM tenant WHERE pubkey = ?");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, ctx->pubhex, 64, SQLITE_STATIC);
    int is_tenant = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    call->data = cJSON_CreateObject();
    cJSON_AddStringToObject(call->data, "pubkey", ctx->pubhex);
    cJSON_AddBoolToObject(call->data, "is_admin", ctx->is_admin);
    cJSON_AddBoolToObject(call->data, "is_tenant", is_tenant);
    return 0;
}

void api_get_identity(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 0, identity, NULL, NULL);
}
