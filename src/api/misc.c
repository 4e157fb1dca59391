/* Public routes (health, plans) and GET /identity. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "db/db.h"
#include "core/store.h"
#include "api/repo_tenant.h"
#include "util/clock.h"
#include "util/util.h"

/* GET /healthz: one database ping answers every request that arrives while it runs, and a
 * success is reused for HEALTH_FRESH_MS, so a probe storm costs the database almost nothing
 * and the answer is never older than that. */
#define HEALTH_FRESH_MS 1000
#define HEALTH_MAX_WAITERS 4096

static struct {
    uint64_t ok_at_ms; /* last successful ping (clock_mono_ms), 0 = none */
    int in_flight;
    struct api_ctx **waiters;
    size_t n_waiters;
} health;

/* 503 with the reason when the database does not answer or cannot save writes. */
static void answer_health(struct api_ctx *ctx, int ok)
{
    int storage = ctx->app->db ? db_storage_error(ctx->app->db) : 0;
    if (storage == DB_EMOVED) {
        api_error(ctx, 503, "unavailable",
                  "the database file was deleted or replaced: writes are refused until a restart");
        return;
    }
    if (storage == DB_EFULL) {
        api_error(ctx, 503, "storage-full", "the disk is full: writes are refused");
        return;
    }
    if (storage == DB_EREADONLY) {
        api_error(ctx, 503, "storage-read-only", "the database is read-only: writes are refused");
        return;
    }
    if (!ok) {
        api_error(ctx, 503, "unavailable", "database unavailable");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "status", "ok");
    api_ok(ctx, 200, data);
}

/* A reader shares the file with the writer: if it moved, so did the writer's. */
static int ping_cb(struct db_conn *conn, void *arg)
{
    (void)arg;
    return db_file_moved(conn) ? DB_EMOVED : repo_ping(conn);
}

static void ping_done_cb(int status, void *arg)
{
    (void)arg;
    struct api_ctx **w = health.waiters;
    size_t n = health.n_waiters;
    health.waiters = NULL;
    health.n_waiters = 0;
    health.in_flight = 0;
    if (status == 0)
        health.ok_at_ms = clock_mono_ms();
    for (size_t i = 0; i < n; i++)
        answer_health(w[i], status == 0);
    free(w);
}

void api_get_healthz(struct api_ctx *ctx)
{
    if (health.ok_at_ms && clock_mono_ms() - health.ok_at_ms < HEALTH_FRESH_MS &&
        !db_storage_error(ctx->app->db)) {
        answer_health(ctx, 1);
        return;
    }
    if (health.n_waiters >= HEALTH_MAX_WAITERS) {
        answer_health(ctx, 0);
        return;
    }
    health.waiters = xrealloc(health.waiters, (health.n_waiters + 1) * sizeof(*health.waiters));
    health.waiters[health.n_waiters++] = ctx;
    if (health.in_flight)
        return;
    health.in_flight = 1;
    if (db_read(ctx->app->db, ping_cb, ping_done_cb, NULL) != 0)
        ping_done_cb(DB_EGENERIC, NULL);
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
    cJSON_AddNumberToObject(o, "moderators", p->moderators);
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

static cJSON *identity_json(const struct api_ctx *ctx, int is_tenant)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "pubkey", ctx->pubhex);
    cJSON_AddBoolToObject(o, "is_admin", ctx->is_admin);
    cJSON_AddBoolToObject(o, "is_tenant", is_tenant);
    return o;
}

static int identity(struct db_conn *conn, struct api_call *call)
{
    struct api_ctx *ctx = call->ctx;
    int rc = repo_tenant_exists(conn, ctx->pubhex);
    if (rc < 0)
        return rc;
    call->caller_is_tenant = rc ? 1 : -1;
    call->data = identity_json(ctx, rc);
    return 0;
}

/* A pubkey known to be a tenant, or recently known not to be one, is answered without the
 * database (tenant_cache.c says why that is safe). */
void api_get_identity(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) != 0)
        return;
    if (tenant_cache_has(ctx->pubkey))
        api_ok(ctx, 200, identity_json(ctx, 1));
    else if (tenant_cache_known_not(ctx->pubkey))
        api_ok(ctx, 200, identity_json(ctx, 0));
    else
        api_run(ctx, 0, identity, NULL, NULL);
}
