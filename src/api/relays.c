/* /relays routes (spec 3.3, 4). A relay's secret key is generated here and never leaves the
 * database except towards zooid. Every committed change hands the relay to the sync worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/relay_input.h"
#include "db/db.h"
#include "db/repo_common.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"

#define RELAY_COLS                                                                             \
    "id, tenant, subdomain, schema, plan, status, synced, sync_error, info_name, info_icon, "  \
    "info_description, policy_public_join, policy_strip_signatures, groups_enabled, "          \
    "management_enabled, blossom_enabled, livekit_enabled, push_enabled, created_at, updated_at"

/* Only admins see other tenants' relays; for others they do not exist (no oracle). */
#define RELAY_VISIBLE " (?2 = 1 OR tenant = ?3)"

static cJSON *relay_row(sqlite3_stmt *st, const char *domain)
{
    cJSON *o = cJSON_CreateObject();
    const char *sub = (const char *)sqlite3_column_text(st, 2);
    char host[512];
    api_json_text(o, "id", st, 0);
    api_json_text(o, "tenant", st, 1);
    api_json_text(o, "subdomain", st, 2);
    snprintf(host, sizeof(host), "%s%s%s", sub ? sub : "", domain[0] ? "." : "", domain);
    cJSON_AddStringToObject(o, "host", host);
    api_json_text(o, "schema", st, 3);
    api_json_text(o, "plan", st, 4);
    api_json_text(o, "status", st, 5);
    api_json_bool(o, "synced", st, 6);
    api_json_text(o, "sync_error", st, 7);
    api_json_text(o, "info_name", st, 8);
    api_json_text(o, "info_icon", st, 9);
    api_json_text(o, "info_description", st, 10);
    for (int i = 0; i < RF_COUNT; i++)
        api_json_bool(o, relay_flag_names[i], st, 11 + i);
    api_json_int(o, "created_at", st, 18);
    api_json_int(o, "updated_at", st, 19);
    return o;
}

static void bind_caller(sqlite3_stmt *st, const struct api_ctx *ctx)
{
    sqlite3_bind_int(st, 2, ctx->is_admin);
    sqlite3_bind_text(st, 3, ctx->pubhex, -1, SQLITE_STATIC);
}

/* Loads a visible relay into call->data (404 otherwise). */
static int load_relay(sqlite3 *conn, struct api_call *call, const char *id)
{
    sqlite3_stmt *st =
        db_stmt(conn, "SELECT " RELAY_COLS " FROM relay WHERE id = ?1 AND" RELAY_VISIBLE);
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bind_caller(st, call->ctx);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        call->data = relay_row(st, call->ctx->app->cfg.relay_domain);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? api_fail(call, 404, "not-found", "no such relay") : db_rc(conn, rc);
}

/* ---- GET /relays, GET /relays/:id ---- */

struct list_in {
    int64_t limit, offset;
    char tenant[65]; /* "" = all (admin) */
};

static int list_relays(sqlite3 *conn, struct api_call *call)
{
    struct list_in *in = call->in;
    sqlite3_stmt *st = db_stmt(conn, "SELECT " RELAY_COLS " FROM relay WHERE (?1 = '' OR "
                                     "tenant = ?1) ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, in->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, in->limit);
    sqlite3_bind_int64(st, 3, in->offset);
    call->data = cJSON_CreateArray();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(call->data, relay_row(st, call->ctx->app->cfg.relay_domain));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

void api_list_relays(struct api_ctx *ctx)
{
    struct list_in *in = xcalloc(1, sizeof(*in));
    if (api_require_auth(ctx) != 0 || api_paging(ctx, &in->limit, &in->offset) != 0 ||
        api_list_scope(ctx, in->tenant) != 0) {
        free(in);
        return;
    }
    api_run(ctx, 0, list_relays, in, free);
}

static int get_relay(sqlite3 *conn, struct api_call *call)
{
    return load_relay(conn, call, call->ctx->params[0]);
}

void api_get_relay(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 0, get_relay, NULL, NULL);
}

/* ---- shared by the writes ---- */

static void fields_free(void *p)
{
    relay_fields_free(p);
    free(p);
}

static int fail_relay(struct api_call *call, const struct relay_error *e)
{
    return api_fail(call, e->status, e->code, "%s", e->msg);
}

static int subdomain_taken(sqlite3 *conn, const char *subdomain, const char *except_id)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1 FROM relay WHERE subdomain = ? AND id <> ?");
    sqlite3_bind_text(st, 1, subdomain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, except_id, -1, SQLITE_STATIC);
    int taken = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return taken;
}

/* Writes the activity row, marks the relay for zooid and asks for a kick after commit. */
static int record_change(sqlite3 *conn, struct api_call *call, const char *tenant,
                         const char *id, const char *type, const char *plan, const char *status)
{
    int rc = repo_activity_insert(conn, tenant, type, "relay", id, plan, status, call->ctx->now);
    if (rc == 0)
        rc = repo_relay_mark_dirty(conn, id);
    if (rc == 0)
        snprintf(call->kick_relay, sizeof(call->kick_relay), "%s", id);
    return rc ? rc : load_relay(conn, call, id);
}

/* ---- POST /relays ---- */

static int tenant_exists(sqlite3 *conn, const char *pubkey)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1 FROM tenant WHERE pubkey = ?");
    sqlite3_bind_text(st, 1, pubkey, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

/* The schema is fixed at creation and unique: a taken one gets a numeric suffix. */
static void unique_schema(sqlite3 *conn, const char *subdomain, char *out, size_t cap)
{
    char base[80];
    relay_schema_from_subdomain(subdomain, base, sizeof(base));
    snprintf(out, cap, "%s", base);
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1 FROM relay WHERE schema = ?");
    for (int i = 2;; i++) {
        sqlite3_bind_text(st, 1, out, -1, SQLITE_TRANSIENT);
        int taken = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        if (!taken)
            return;
        snprintf(out, cap, "%s_%d", base, i);
    }
}

static int insert_relay(sqlite3 *conn, const struct relay_fields *f, const char *id,
                        const char *schema, const char *secret, int64_t now)
{
    sqlite3_stmt *st = db_stmt(
        conn, "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, info_name,"
              " info_icon, info_description, policy_public_join, policy_strip_signatures,"
              " groups_enabled, management_enabled, blossom_enabled, livekit_enabled,"
              " push_enabled, created_at, updated_at, sync_version)"
              " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)");
    const char *text[] = {id, f->tenant, f->subdomain, schema, secret, f->plan,
                          f->info_name ? f->info_name : "", f->info_icon ? f->info_icon : "",
                          f->info_description ? f->info_description : ""};
    for (int i = 0; i < 9; i++)
        sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
    for (int i = 0; i < RF_COUNT; i++)
        sqlite3_bind_int(st, 10 + i, f->flags[i]);
    sqlite3_bind_int64(st, 17, now);
    sqlite3_bind_int64(st, 18, now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

static int create_relay(sqlite3 *conn, struct api_call *call)
{
    struct relay_fields *f = call->in;
    struct nostr_keypair kp;
    char id[33], schema[96], secret[65];
    if (!tenant_exists(conn, f->tenant))
        return api_fail(call, 422, "tenant-not-found", "the tenant does not exist: POST /tenants first");
    if (subdomain_taken(conn, f->subdomain, ""))
        return api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
    unique_schema(conn, f->subdomain, schema, sizeof(schema));
    if (nostr_keypair_generate(&kp) != 0)
        return DB_EGENERIC;
    hex_encode(kp.seckey, 32, secret);
    secure_zero(&kp, sizeof(kp));
    repo_new_id(id);
    int rc = insert_relay(conn, f, id, schema, secret, call->ctx->now);
    secure_zero(secret, sizeof(secret));
    if (rc == DB_ECONSTRAINT)
        return api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
    call->created = 1;
    return rc ? rc : record_change(conn, call, f->tenant, id, "create_relay", f->plan, "active");
}

/* Who owns the new relay: the caller, or the body's tenant for an admin. */
static int choose_tenant(struct api_ctx *ctx, struct relay_fields *f)
{
    if (f->tenant && strcmp(f->tenant, ctx->pubhex) != 0 && !ctx->is_admin) {
        api_error(ctx, 403, "forbidden", "only admins may create relays for another tenant");
        return -1;
    }
    if (!f->tenant)
        f->tenant = xstrdup(ctx->pubhex);
    return 0;
}

void api_create_relay(struct api_ctx *ctx)
{
    struct relay_fields *f = xcalloc(1, sizeof(*f));
    struct relay_error err;
    cJSON *body = NULL;
    if (api_require_auth(ctx) != 0 || !(body = api_body_object(ctx)))
        goto out;
    if (relay_fields_parse(body, f, &err) != 0) {
        api_error(ctx, err.status, err.code, "%s", err.msg);
        goto out;
    }
    if (!f->subdomain) {
        api_error(ctx, 400, "invalid-body", "subdomain is required");
        goto out;
    }
    if (!f->plan)
        f->plan = xstrdup("free");
    if (relay_fields_check_plan(f, &err) != 0) {
        api_error(ctx, err.status, err.code, "%s", err.msg);
        goto out;
    }
    if (choose_tenant(ctx, f) != 0)
        goto out;
    cJSON_Delete(body);
    api_run(ctx, 1, create_relay, f, fields_free);
    return;
out:
    cJSON_Delete(body);
    fields_free(f);
}

/* ---- PUT /relays/:id ---- */

struct current {
    struct relay_fields f;
    char tenant[65];
    char status[16];
};

static int load_current(sqlite3 *conn, struct api_call *call, struct current *cur)
{
    sqlite3_stmt *st =
        db_stmt(conn, "SELECT " RELAY_COLS " FROM relay WHERE id = ?1 AND" RELAY_VISIBLE);
    sqlite3_bind_text(st, 1, call->ctx->params[0], -1, SQLITE_STATIC);
    bind_caller(st, call->ctx);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(cur->tenant, sizeof(cur->tenant), "%s", sqlite3_column_text(st, 1));
        cur->f.subdomain = db_col_text(st, 2);
        cur->f.plan = db_col_text(st, 4);
        snprintf(cur->status, sizeof(cur->status), "%s", sqlite3_column_text(st, 5));
        cur->f.info_name = db_col_text(st, 8);
        cur->f.info_icon = db_col_text(st, 9);
        cur->f.info_description = db_col_text(st, 10);
        for (int i = 0; i < RF_COUNT; i++)
            cur->f.flags[i] = sqlite3_column_int(st, 11 + i);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? api_fail(call, 404, "not-found", "no such relay") : db_rc(conn, rc);
}

static int update_row(sqlite3 *conn, const char *id, const struct relay_fields *f, int64_t now)
{
    sqlite3_stmt *st = db_stmt(
        conn, "UPDATE relay SET subdomain = ?, plan = ?, info_name = ?, info_icon = ?,"
              " info_description = ?, policy_public_join = ?, policy_strip_signatures = ?,"
              " groups_enabled = ?, management_enabled = ?, blossom_enabled = ?,"
              " livekit_enabled = ?, push_enabled = ?, updated_at = ? WHERE id = ?");
    const char *text[] = {f->subdomain, f->plan, f->info_name, f->info_icon, f->info_description};
    for (int i = 0; i < 5; i++)
        sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
    for (int i = 0; i < RF_COUNT; i++)
        sqlite3_bind_int(st, 6 + i, f->flags[i]);
    sqlite3_bind_int64(st, 13, now);
    sqlite3_bind_text(st, 14, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

static int put_relay(sqlite3 *conn, struct api_call *call)
{
    struct current cur = {0};
    struct relay_error err;
    const char *id = call->ctx->params[0];
    int rc = load_current(conn, call, &cur);
    if (rc == 0) {
        relay_fields_merge(&cur.f, call->in);
        if (relay_fields_check_plan(&cur.f, &err) != 0)
            rc = fail_relay(call, &err);
        else if (subdomain_taken(conn, cur.f.subdomain, id))
            rc = api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
        else if ((rc = update_row(conn, id, &cur.f, call->ctx->now)) == DB_ECONSTRAINT)
            rc = api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
        if (rc == 0)
            rc = record_change(conn, call, cur.tenant, id, "update_relay", cur.f.plan, cur.status);
    }
    relay_fields_free(&cur.f);
    return rc;
}

void api_put_relay(struct api_ctx *ctx)
{
    struct relay_fields *f = xcalloc(1, sizeof(*f));
    struct relay_error err;
    cJSON *body = NULL;
    if (api_require_auth(ctx) != 0 || !(body = api_body_object(ctx))) {
        fields_free(f);
        return;
    }
    int rc = relay_fields_parse(body, f, &err);
    cJSON_Delete(body);
    if (rc != 0) {
        fields_free(f);
        api_error(ctx, err.status, err.code, "%s", err.msg);
        return;
    }
    free(f->tenant); /* the owner never changes */
    f->tenant = NULL;
    api_run(ctx, 1, put_relay, f, fields_free);
}

/* ---- status changes ---- */

static int set_status(sqlite3 *conn, struct api_call *call, struct current *cur,
                      const char *status, const char *type)
{
    sqlite3_stmt *st = db_stmt(conn, "UPDATE relay SET status = ?, updated_at = ? WHERE id = ?");
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, call->ctx->now);
    sqlite3_bind_text(st, 3, call->ctx->params[0], -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_rc(conn, rc);
    return record_change(conn, call, cur->tenant, call->ctx->params[0], type, cur->f.plan, status);
}

static int deactivate(sqlite3 *conn, struct api_call *call)
{
    struct current cur = {0};
    int rc = load_current(conn, call, &cur);
    if (rc == 0 && strcmp(cur.status, "inactive") == 0)
        rc = load_relay(conn, call, call->ctx->params[0]); /* already: nothing to write */
    else if (rc == 0)
        rc = set_status(conn, call, &cur, "inactive", "deactivate_relay");
    relay_fields_free(&cur.f);
    return rc;
}

void api_deactivate_relay(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 1, deactivate, NULL, NULL);
}

/* An invoice of the tenant that is unpaid past the grace period (spec 3.3, 8). */
static int has_overdue_invoice(sqlite3 *conn, const struct api_ctx *ctx, const char *tenant)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1 FROM invoice WHERE tenant = ? AND "
                                     "status = 'pending' AND created_at + ? <= ?");
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ctx->app->cfg.billing_grace);
    sqlite3_bind_int64(st, 3, ctx->now);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

/* A delinquent relay, or an inactive one on a paid plan, stays down while an overdue invoice
 * is unpaid: otherwise deactivate + activate would lift the delinquency without paying.
 * Free relays are never billed, so never blocked. */
static int needs_payment(sqlite3 *conn, const struct api_call *call, const struct current *cur)
{
    const struct plan *p = plan_find(cur->f.plan);
    int paid_plan = p && p->sats > 0;
    int blocked = strcmp(cur->status, "delinquent") == 0 ||
                  (strcmp(cur->status, "inactive") == 0 && paid_plan);
    return blocked && has_overdue_invoice(conn, call->ctx, cur->tenant);
}

static int activate(sqlite3 *conn, struct api_call *call)
{
    struct current cur = {0};
    int rc = load_current(conn, call, &cur);
    if (rc == 0 && strcmp(cur.status, "active") == 0)
        rc = load_relay(conn, call, call->ctx->params[0]);
    else if (rc == 0 && needs_payment(conn, call, &cur))
        rc = api_fail(call, 422, "payment-required", "an overdue invoice must be paid first");
    else if (rc == 0)
        rc = set_status(conn, call, &cur, "active", "activate_relay");
    relay_fields_free(&cur.f);
    return rc;
}

void api_activate_relay(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 1, activate, NULL, NULL);
}

/* ---- POST /relays/:id/sync (admin): resume a sync that gave up ---- */

/* Clears a given-up sync (the attempts, backoff and error) so the worker tries at once. The
 * activity row keeps the relay's plan and status unchanged for billing's replay. */
static int resync(sqlite3 *conn, struct api_call *call)
{
    struct current cur = {0};
    const char *id = call->ctx->params[0];
    int rc = load_current(conn, call, &cur);
    sqlite3_stmt *st = rc == 0 ? db_stmt(conn, "UPDATE relay SET sync_error = NULL WHERE id = ?")
                               : NULL;
    if (rc == 0 && !st)
        rc = DB_EGENERIC;
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        rc = rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
    }
    if (rc == 0)
        rc = record_change(conn, call, cur.tenant, id, "retry_relay_sync", cur.f.plan,
                           cur.status);
    relay_fields_free(&cur.f);
    return rc;
}

void api_sync_relay(struct api_ctx *ctx)
{
    if (api_require_admin(ctx) == 0)
        api_run(ctx, 1, resync, NULL, NULL);
}
