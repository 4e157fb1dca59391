/* /relays routes (PRODUCT.md §3.3, 4). A relay's secret key is generated here and never leaves the
 * database except towards zooid. Every committed change hands the relay to the sync worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/relay_cache.h"
#include "api/relay_input.h"
#include "db/db.h"
#include "core/store.h"
#include "api/repo_invoice.h"
#include "api/repo_relay.h"
#include "api/repo_tenant.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/clock.h"
#include "util/util.h"

/* The caller sees any relay as an admin, else only its own (404 for others: no oracle). */
static const char *owner_filter(const struct api_ctx *ctx)
{
    return ctx->is_admin ? NULL : ctx->pubhex;
}

/* Loads a visible relay into call->data (404 otherwise). */
static int load_relay(struct db_conn *conn, struct api_call *call, const char *id)
{
    const struct api_ctx *ctx = call->ctx;
    int rc = repo_relay_get(conn, id, owner_filter(ctx), ctx->app->cfg.relay_domain, &call->data);
    return rc == DB_ENOTFOUND ? api_fail(call, 404, "not-found", "no such relay") : rc;
}

/* ---- GET /relays, GET /relays/:id ---- */

struct list_in {
    struct repo_page page;
    char tenant[65]; /* "" = all (admin) */
};

static int list_relays(struct db_conn *conn, struct api_call *call)
{
    struct list_in *in = call->in;
    call->paged = 1;
    return repo_relay_list(conn, in->tenant, &in->page, call->ctx->app->cfg.relay_domain,
                           &call->data, call->next);
}

void api_list_relays(struct api_ctx *ctx)
{
    struct list_in *in = xcalloc(1, sizeof(*in));
    if (api_require_auth(ctx) != 0 || api_page(ctx, 1, &in->page) != 0 ||
        api_list_scope(ctx, in->tenant) != 0) {
        free(in);
        return;
    }
    api_run_list(ctx, list_relays, in, free);
}

/* A read that may fill the answer cache (api/relay_cache.h): the write sequence it was
 * submitted under, and the relay's owner once read. */
struct get_in {
    uint64_t seq, now_ms;
    char tenant[65];
};

static int get_relay(struct db_conn *conn, struct api_call *call)
{
    struct get_in *in = call->in;
    int rc = load_relay(conn, call, call->ctx->params[0]);
    const cJSON *t = rc == 0 && in ? cJSON_GetObjectItemCaseSensitive(call->data, "tenant") : NULL;
    if (cJSON_IsString(t))
        snprintf(in->tenant, sizeof(in->tenant), "%s", t->valuestring);
    return rc;
}

static void get_answered(struct api_call *call)
{
    struct get_in *in = call->in;
    if (in->tenant[0])
        relay_cache_put(in->seq, in->now_ms, call->ctx->params[0], in->tenant, call->body,
                        strlen(call->body));
}

/* On SQLite the answer may come from the cache, which the owner check still guards (another
 * caller's miss goes to the database, which answers 404). */
void api_get_relay(struct api_ctx *ctx)
{
    struct db *db = ctx->app->db;
    const char *body, *tenant;
    size_t len;
    if (api_require_auth(ctx) != 0)
        return;
    if (db_shared(db)) {
        api_run(ctx, 0, get_relay, NULL, NULL);
        return;
    }
    uint64_t seq = db_write_seq(db), now_ms = clock_mono_ms();
    if (relay_cache_get(seq, now_ms, ctx->params[0], &body, &len, &tenant) == 0 &&
        (ctx->is_admin || strcmp(tenant, ctx->pubhex) == 0)) {
        api_send(ctx, 200, body, len);
        return;
    }
    struct get_in *in = xcalloc(1, sizeof(*in));
    in->seq = seq;
    in->now_ms = now_ms;
    api_run_read_answered(ctx, get_relay, in, free, get_answered);
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

/* A change of an existing relay: writes the activity row, marks the relay for zooid and asks
 * for a kick after commit. */
static int record_change(struct db_conn *conn, struct api_call *call, const char *tenant,
                         const char *id, const char *type, const char *plan, const char *status)
{
    int rc = repo_activity_insert(conn, tenant, type, "relay", id, plan, status, call->ctx->now);
    if (rc == 0)
        rc = repo_relay_mark_dirty(conn, id);
    if (rc == 0)
        api_after_commit(call, APP_RELAY_CHANGED, id);
    return rc ? rc : load_relay(conn, call, id);
}

/* 422 plan-relay-limit when the tenant has all the relays the plan allows (other than
 * except_id); 0 when there is room, or < 0. */
static int check_plan_room(struct db_conn *conn, struct api_call *call, const char *tenant,
                           const char *plan, const char *except_id)
{
    const struct plan *p = plan_find(plan);
    if (!p)
        return 0; /* refused earlier as invalid-plan */
    int rc = repo_relay_plan_full(conn, tenant, plan, except_id, p->max_relays);
    if (rc > 0)
        return api_fail(call, 422, "plan-relay-limit",
                        "a tenant may have at most %lld relays on the %s plan",
                        (long long)p->max_relays, p->id);
    return rc;
}

/* 422 plan-member-limit when the relay's last known member count (GET /relays/:id/members)
 * is over the plan's member cap; 0 when it fits or is unknown, or < 0. */
static int check_member_room(struct db_conn *conn, struct api_call *call, const char *id,
                             const char *plan)
{
    const struct plan *p = plan_find(plan);
    int64_t n = -1;
    int rc = p && p->members >= 0 ? repo_relay_members_count(conn, id, &n) : 0;
    if (rc == 0 && n > p->members)
        return api_fail(call, 422, "plan-member-limit",
                        "the relay has %lld members, the %s plan allows %lld", (long long)n, p->id,
                        (long long)p->members);
    return rc;
}

/* While the tenant has an overdue unpaid invoice no route may put a relay to work on a paid
 * plan: not a new relay, not a plan or feature change of one that is not inactive (deactivate,
 * PUT plan=free, activate, PUT plan=basic would otherwise lift the delinquency unpaid), not an
 * activation (needs_payment). 422 payment-required, 0 when allowed, or < 0. */
static int check_paid_plan_allowed(struct db_conn *conn, struct api_call *call, const char *tenant,
                                   const char *plan)
{
    const struct plan *p = plan_find(plan);
    if (!p || p->sats == 0)
        return 0;
    int rc = repo_invoice_overdue(conn, tenant, call->ctx->app->cfg.billing_grace, call->ctx->now);
    if (rc > 0)
        return api_fail(call, 422, "payment-required", "an overdue invoice must be paid first");
    return rc;
}

/* ---- POST /relays ---- */

static int create_relay(struct db_conn *conn, struct api_call *call)
{
    struct relay_fields *f = call->in;
    uint8_t seckey[32];
    char id[33], schema[96], secret[65];
    char base[80];
    int rc = repo_tenant_exists(conn, f->tenant);
    if (rc == 0)
        return api_fail(call, 422, "tenant-not-found",
                        "the tenant does not exist: POST /tenants first");
    if (rc > 0 && (rc = repo_relay_subdomain_taken(conn, f->subdomain, "")) > 0)
        return api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
    if (rc == 0 && (rc = check_plan_room(conn, call, f->tenant, f->plan, "")) != 0)
        return rc;
    if (rc == 0 && (rc = check_paid_plan_allowed(conn, call, f->tenant, f->plan)) != 0)
        return rc;
    relay_schema_from_subdomain(f->subdomain, base, sizeof(base));
    if (rc < 0 || (rc = repo_relay_unique_schema(conn, base, schema, sizeof(schema))) < 0)
        return rc;
    /* Only zooid needs the relay's public key, and derives it itself. */
    if (nostr_seckey_generate(seckey) != 0)
        return DB_EGENERIC;
    hex_encode(seckey, 32, secret);
    secure_zero(seckey, sizeof(seckey));
    repo_new_time_id(id, call->ctx->now);
    rc = repo_relay_insert(conn, f, id, schema, secret, call->ctx->now);
    secure_zero(secret, sizeof(secret));
    if (rc == DB_ECONSTRAINT)
        return api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
    call->created = 1;
    /* One job per creation: the block-list rows are written here (so the block list does not
     * run a second write job for the event), and the answer is built from what was inserted
     * rather than read back. A new row is already due for zooid (unsynced, no attempt). */
    if (rc == 0)
        rc = repo_activity_insert(conn, f->tenant, "create_relay", "relay", id, f->plan, "active",
                                  call->ctx->now);
    if (rc == 0)
        rc = repo_relay_blocklist_rows(conn, id);
    if (rc != 0)
        return rc;
    api_after_commit(call, APP_RELAY_CREATED, id);
    call->data =
        repo_relay_new_json(f, id, schema, call->ctx->now, call->ctx->app->cfg.relay_domain);
    return 0;
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

static int load_current(struct db_conn *conn, struct api_call *call, struct current *cur)
{
    int rc = repo_relay_load(conn, call->ctx->params[0], owner_filter(call->ctx), &cur->f,
                             cur->tenant, cur->status);
    return rc == DB_ENOTFOUND ? api_fail(call, 404, "not-found", "no such relay") : rc;
}

/* Stores the merged fields; 422 when the plan or the subdomain does not allow them. Only a
 * move to another plan needs room there (plan_moves): relays made before the caps stay.
 * changes_service: the change moves a free relay to a paid plan or turns a feature on, which
 * an overdue invoice forbids unless the relay is inactive. */
static int store_update(struct db_conn *conn, struct api_call *call, const struct current *cur,
                        int plan_moves, int changes_service)
{
    struct relay_error err;
    const char *id = call->ctx->params[0];
    if (relay_fields_check_plan(&cur->f, &err) != 0)
        return fail_relay(call, &err);
    int rc = plan_moves ? check_plan_room(conn, call, cur->tenant, cur->f.plan, id) : 0;
    if (rc == 0 && plan_moves)
        rc = check_member_room(conn, call, id, cur->f.plan);
    if (rc != 0)
        return rc;
    if (changes_service && strcmp(cur->status, "inactive") != 0 &&
        (rc = check_paid_plan_allowed(conn, call, cur->tenant, cur->f.plan)) != 0)
        return rc;
    rc = repo_relay_subdomain_taken(conn, cur->f.subdomain, id);
    if (rc == 0)
        rc = repo_relay_update(conn, id, &cur->f, call->ctx->now);
    if (rc > 0 || rc == DB_ECONSTRAINT)
        return api_fail(call, 422, "subdomain-exists", "subdomain is already taken");
    return rc;
}

/* 1 when the input moves a free relay to another plan or turns a feature on (turning one off
 * or moving between paid plans adds nothing to what the tenant gets). */
static int adds_service(const struct relay_fields *cur, const struct relay_fields *in)
{
    const struct plan *old = plan_find(cur->plan);
    if (in->plan && strcmp(in->plan, cur->plan) != 0 && (!old || old->sats == 0))
        return 1;
    for (int i = 0; i < RF_COUNT; i++)
        if (in->has_flag[i] && in->flags[i] && !cur->flags[i])
            return 1;
    return 0;
}

static int put_relay(struct db_conn *conn, struct api_call *call)
{
    struct current cur = {0};
    const char *id = call->ctx->params[0];
    const struct relay_fields *in = call->in;
    int rc = load_current(conn, call, &cur);
    if (rc == 0) {
        int plan_moves = in->plan && strcmp(in->plan, cur.f.plan) != 0;
        int changes_service = adds_service(&cur.f, in);
        relay_fields_merge(&cur.f, call->in);
        rc = store_update(conn, call, &cur, plan_moves, changes_service);
    }
    if (rc == 0)
        rc = record_change(conn, call, cur.tenant, id, "update_relay", cur.f.plan, cur.status);
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

static int set_status(struct db_conn *conn, struct api_call *call, struct current *cur,
                      const char *status, const char *type)
{
    int rc = repo_relay_set_status(conn, call->ctx->params[0], status, call->ctx->now);
    if (rc != 0)
        return rc;
    return record_change(conn, call, cur->tenant, call->ctx->params[0], type, cur->f.plan, status);
}

static int deactivate(struct db_conn *conn, struct api_call *call)
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

/* A delinquent relay, or an inactive one on a paid plan, stays down while an overdue invoice
 * is unpaid: otherwise deactivate + activate would lift the delinquency without paying.
 * Free relays are never billed, so never blocked. */
static int needs_payment(struct db_conn *conn, const struct api_call *call,
                         const struct current *cur)
{
    const struct plan *p = plan_find(cur->f.plan);
    int paid_plan = p && p->sats > 0;
    int blocked = strcmp(cur->status, "delinquent") == 0 ||
                  (strcmp(cur->status, "inactive") == 0 && paid_plan);
    if (!blocked)
        return 0;
    return repo_invoice_overdue(conn, cur->tenant, call->ctx->app->cfg.billing_grace,
                                call->ctx->now);
}

static int activate(struct db_conn *conn, struct api_call *call)
{
    struct current cur = {0};
    int rc = load_current(conn, call, &cur);
    if (rc == 0 && strcmp(cur.status, "active") == 0)
        rc = load_relay(conn, call, call->ctx->params[0]);
    else if (rc == 0 && (rc = needs_payment(conn, call, &cur)) > 0)
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
static int resync(struct db_conn *conn, struct api_call *call)
{
    struct current cur = {0};
    const char *id = call->ctx->params[0];
    int rc = load_current(conn, call, &cur);
    if (rc == 0)
        rc = repo_relay_clear_sync_error(conn, id);
    if (rc == 0)
        rc = record_change(conn, call, cur.tenant, id, "retry_relay_sync", cur.f.plan, cur.status);
    relay_fields_free(&cur.f);
    return rc;
}

void api_sync_relay(struct api_ctx *ctx)
{
    if (api_require_admin(ctx) == 0)
        api_run(ctx, 1, resync, NULL, NULL);
}
