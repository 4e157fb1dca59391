/* Relay management through the API: invites (NIP-43 claims) and pubkey bans, each one NIP-86
 * call to the relay's own host, signed as the relay (docs/API.md, "Relay management").
 *
 * One request is a small chain on the loop, never a wait:
 *   1. pool: load the relay the caller may manage (owner or admin; another tenant's is 404)
 *      with its host and key pair (core/relay_target.h), and the facts a route checks
 *      (is the pubkey on the operator's block list);
 *   2. loop: the NIP-86 call (net/nip86.h: 15 s timeout, capped answer). No answer, or the
 *      relay's own error, is 502 upstream-unavailable naming the relay, the method and what
 *      failed;
 *   3. pool (writes only): the activity row, committed before the answer;
 *   4. answer. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/repo_relay.h"
#include "core/relay_target.h"
#include "db/db.h"
#include "members/repo.h"
#include "net/nip86.h"
#include "robot/robot.h"
#include "sync/worker.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/util.h"

#define CLAIM_MAX 128
#define REASON_MAX 500

struct admin_op;
/* Turns the relay's result into the answer's data (owned by the caller), or NULL when the
 * result does not have the expected shape (then 502). */
typedef cJSON *admin_shape_fn(struct admin_op *op, const cJSON *result);

struct admin_op {
    struct api_ctx *ctx;
    const char *method;   /* NIP-86 method */
    cJSON *params;        /* its params (owned) */
    const char *activity; /* activity type of a write; NULL for a read */
    admin_shape_fn *shape;
    int created;             /* 201 */
    int refuse_if_blocked;   /* 409 when arg is on the operator's block list */
    char arg[CLAIM_MAX + 1]; /* the claim or hex pubkey the request is about */
    struct relay_target t;   /* holds the relay's key: wiped in op_free */
    int blocked;             /* arg is on the operator's block list */
    cJSON *data;             /* the answer's data (owned) */
};

static void op_free(struct admin_op *op)
{
    relay_target_wipe(&op->t);
    cJSON_Delete(op->params);
    cJSON_Delete(op->data);
    free(op);
}

static void answer(struct admin_op *op)
{
    cJSON *data = op->data;
    op->data = NULL;
    api_ok(op->ctx, op->created ? 201 : 200, data);
    op_free(op);
}

/* ---- 3. the activity row ---- */

static int record_work(struct db_conn *conn, void *arg)
{
    struct admin_op *op = arg;
    return repo_activity_insert(conn, op->t.tenant, op->activity, "relay", op->t.id, NULL, NULL,
                                op->ctx->now);
}

static void record_done(int status, void *arg)
{
    struct admin_op *op = arg;
    if (status != 0) {
        /* The relay changed, but the write that records it failed: say so, never 200. */
        LOG_ERROR("api: %s on relay %s done but its activity row failed (%d)", op->method, op->t.id,
                  status);
        api_error(op->ctx, 503, "unavailable",
                  "the relay was changed but the change could not "
                  "be recorded; list it again");
        op_free(op);
        return;
    }
    answer(op);
}

/* ---- 2. the NIP-86 call ---- */

static void on_rpc(enum nip86_status st, const cJSON *result, const char *what, void *arg)
{
    struct admin_op *op = arg;
    if (st == NIP86_OK && !(op->data = op->shape(op, result)))
        what = "the relay's answer does not have the expected shape";
    if (st != NIP86_OK || !op->data) {
        api_error(op->ctx, 502, "upstream-unavailable", "relay %s: NIP-86 %s failed: %s",
                  op->t.host, op->method, what);
        op_free(op);
        return;
    }
    if (!op->activity) {
        answer(op);
        return;
    }
    int rc = db_write(op->ctx->app->db, DB_CRASH_SAFE, record_work, record_done, op);
    if (rc != 0)
        record_done(rc, op);
}

/* ---- 1. the relay ---- */

static int load_work(struct db_conn *conn, void *arg)
{
    struct admin_op *op = arg;
    const struct api_ctx *ctx = op->ctx;
    int rc = relay_target_load(conn, ctx->params[0], ctx->is_admin ? NULL : ctx->pubhex,
                               ctx->app->cfg.relay_domain, &op->t);
    if (rc == 0 && op->refuse_if_blocked) {
        rc = db_exists(conn, "SELECT 1 FROM blocklist WHERE pubkey = ? AND state = 'active'",
                       DB_TEXT(op->arg));
        op->blocked = rc > 0;
        rc = rc < 0 ? rc : 0;
    }
    return rc;
}

/* The relay of an admin or members route could not be loaded: answers 404 (not there or not
 * the caller's), 503 or 500 and returns 1; 0 when status is 0. */
static int answer_load_error(struct api_ctx *ctx, int status)
{
    if (status == DB_ENOTFOUND)
        api_error(ctx, 404, "not-found", "no such relay");
    else if (status == DB_EBUSY || status == DB_EQUEUEFULL || status == DB_ECLOSED)
        api_error(ctx, 503, "unavailable", "service temporarily unavailable");
    else if (status != 0)
        api_error(ctx, 500, "internal", "internal error");
    return status != 0;
}

static void load_done(int status, void *arg)
{
    struct admin_op *op = arg;
    struct api_ctx *ctx = op->ctx;
    if (answer_load_error(ctx, status)) {
        op_free(op);
        return;
    }
    if (strcmp(op->t.status, "active") != 0)
        api_error(ctx, 409, "relay-inactive", "the relay is %s: zooid does not serve it",
                  op->t.status);
    else if (!op->t.management)
        api_error(ctx, 409, "management-disabled",
                  "the relay answers NIP-86 only with management_enabled: true");
    else if (op->blocked)
        api_error(ctx, 409, "operator-blocked",
                  "this pubkey is on the operator's block list, which a relay cannot lift");
    else if (nip86_call(ctx->app->nip86, op->t.host, &op->t.kp, op->method, op->params, on_rpc,
                        op) != 0)
        api_error(ctx, 502, "upstream-unavailable", "relay %s: NIP-86 %s could not be sent",
                  op->t.host, op->method);
    else
        return; /* on_rpc answers */
    op_free(op);
}

/* Runs op for the relay in the route's first parameter. Takes ownership of op. */
static void admin_run(struct admin_op *op)
{
    int rc = db_read(op->ctx->app->db, load_work, load_done, op);
    if (rc != 0)
        load_done(rc, op);
}

static struct admin_op *op_new(struct api_ctx *ctx, const char *method, admin_shape_fn *shape)
{
    struct admin_op *op = xcalloc(1, sizeof(*op));
    op->ctx = ctx;
    op->method = method;
    op->shape = shape;
    op->params = cJSON_CreateArray();
    return op;
}

/* ---- invites (NIP-43 claims) ---- */

/* The join link: INVITE_LINK_TEMPLATE with {host} and {code} filled in. */
static char *join_link(const struct api_ctx *ctx, const char *host, const char *code)
{
    const char *t = ctx->app->cfg.invite_link_template;
    struct buf b;
    buf_init(&b, 4096);
    while (*t) {
        if (strncmp(t, "{host}", 6) == 0) {
            buf_append_str(&b, host);
            t += 6;
        } else if (strncmp(t, "{code}", 6) == 0) {
            buf_append_str(&b, code);
            t += 6;
        } else {
            buf_append(&b, t++, 1);
        }
    }
    return buf_take(&b, NULL);
}

static cJSON *invite_json(const struct admin_op *op, const char *code)
{
    cJSON *o = cJSON_CreateObject();
    char url[300];
    snprintf(url, sizeof(url), "wss://%s", op->t.host);
    char *link = join_link(op->ctx, op->t.host, code);
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(o, "relay_id", op->t.id);
    cJSON_AddStringToObject(o, "relay_url", url);
    cJSON_AddStringToObject(o, "join_link", link ? link : "");
    free(link);
    return o;
}

static cJSON *shape_created(struct admin_op *op, const cJSON *result)
{
    (void)result; /* zooid answers true */
    return invite_json(op, op->arg);
}

/* listclaims: an array of claim strings (objects with a "claim" field are accepted too). */
static cJSON *shape_claims(struct admin_op *op, const cJSON *result)
{
    if (!cJSON_IsArray(result))
        return NULL;
    cJSON *out = cJSON_CreateArray();
    const cJSON *item;
    cJSON_ArrayForEach(item, result)
    {
        const cJSON *c =
            cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "claim") : item;
        if (cJSON_IsString(c))
            cJSON_AddItemToArray(out, invite_json(op, c->valuestring));
    }
    return out;
}

static cJSON *shape_deleted(struct admin_op *op, const cJSON *result)
{
    (void)result;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", op->arg);
    cJSON_AddBoolToObject(o, "deleted", 1);
    return o;
}

void api_create_invite(struct api_ctx *ctx)
{
    uint8_t raw[12];
    if (api_require_auth(ctx) != 0)
        return;
    if (nostr_random(raw, sizeof(raw)) != 0) {
        api_error(ctx, 500, "internal", "internal error");
        return;
    }
    struct admin_op *op = op_new(ctx, "createclaim", shape_created);
    hex_encode(raw, sizeof(raw), op->arg);
    cJSON_AddItemToArray(op->params, cJSON_CreateString(op->arg));
    op->activity = "create_invite";
    op->created = 1;
    admin_run(op);
}

void api_list_invites(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        admin_run(op_new(ctx, "listclaims", shape_claims));
}

/* A claim as a path segment: URL-unreserved characters (ours are hex), at most CLAIM_MAX; the
 * path is not percent-decoded, so anything else could not name the claim the relay holds. */
static int claim_ok(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-._~", s[i]))
            return 0;
    return n > 0 && n <= CLAIM_MAX;
}

void api_delete_invite(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) != 0)
        return;
    if (!claim_ok(ctx->params[1])) {
        api_error(ctx, 400, "invalid-body", "the invite code is not a valid claim");
        return;
    }
    struct admin_op *op = op_new(ctx, "deleteclaim", shape_deleted);
    snprintf(op->arg, sizeof(op->arg), "%s", ctx->params[1]);
    cJSON_AddItemToArray(op->params, cJSON_CreateString(op->arg));
    op->activity = "delete_invite";
    admin_run(op);
}

/* ---- bans ---- */

/* listbannedpubkeys: [{pubkey, reason}]. */
static cJSON *shape_bans(struct admin_op *op, const cJSON *result)
{
    (void)op;
    if (!cJSON_IsArray(result))
        return NULL;
    cJSON *out = cJSON_CreateArray();
    const cJSON *item;
    cJSON_ArrayForEach(item, result)
    {
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(item, "pubkey");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(item, "reason");
        if (!cJSON_IsString(pk))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "pubkey", pk->valuestring);
        cJSON_AddStringToObject(o, "reason", cJSON_IsString(reason) ? reason->valuestring : "");
        cJSON_AddItemToArray(out, o);
    }
    return out;
}

static cJSON *shape_ban(struct admin_op *op, const cJSON *result)
{
    (void)result;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "pubkey", op->arg);
    cJSON_AddStringToObject(o, "relay_id", op->t.id);
    const cJSON *reason = cJSON_GetArrayItem(op->params, 1);
    cJSON_AddStringToObject(o, "reason", cJSON_IsString(reason) ? reason->valuestring : "");
    cJSON_AddBoolToObject(o, "banned", strcmp(op->method, "banpubkey") == 0);
    return o;
}

/* Hex or npub into 64 lowercase hex characters; 0 or answered 400. */
static int pubkey_arg(struct api_ctx *ctx, const char *in, char out[65])
{
    uint8_t pk[32];
    if (!in || nostr_key_parse_public(in, pk) != 0) {
        api_error(ctx, 400, "invalid-pubkey", "pubkey must be 64 hex characters or an npub");
        return -1;
    }
    hex_encode(pk, 32, out);
    return 0;
}

void api_list_bans(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        admin_run(op_new(ctx, "listbannedpubkeys", shape_bans));
}

void api_create_ban(struct api_ctx *ctx)
{
    cJSON *body = NULL;
    char pk[65];
    if (api_require_auth(ctx) != 0 || !(body = api_body_object(ctx)))
        return;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "pubkey");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(body, "reason");
    if (r && (!cJSON_IsString(r) || strlen(r->valuestring) > REASON_MAX)) {
        api_error(ctx, 400, "invalid-body", "reason must be a string of at most 500 bytes");
    } else if (pubkey_arg(ctx, cJSON_IsString(p) ? p->valuestring : NULL, pk) == 0) {
        struct admin_op *op = op_new(ctx, "banpubkey", shape_ban);
        snprintf(op->arg, sizeof(op->arg), "%s", pk);
        cJSON_AddItemToArray(op->params, cJSON_CreateString(pk));
        cJSON_AddItemToArray(op->params, cJSON_CreateString(r ? r->valuestring : ""));
        op->activity = "ban_pubkey";
        op->created = 1;
        admin_run(op);
    }
    cJSON_Delete(body);
}

/* Lifts a tenant's ban with allowpubkey (in zooid that also admits the pubkey as a member).
 * The operator's block list wins: a pubkey on it stays banned (409 operator-blocked). */
void api_delete_ban(struct api_ctx *ctx)
{
    char pk[65];
    if (api_require_auth(ctx) != 0 || pubkey_arg(ctx, ctx->params[1], pk) != 0)
        return;
    struct admin_op *op = op_new(ctx, "allowpubkey", shape_ban);
    snprintf(op->arg, sizeof(op->arg), "%s", pk);
    cJSON_AddItemToArray(op->params, cJSON_CreateString(pk));
    op->activity = "unban_pubkey";
    op->refuse_if_blocked = 1;
    admin_run(op);
}

/* ---- members (zooid's API, not NIP-86) ---- */

struct members_op {
    struct api_ctx *ctx;
    struct relay_target t; /* holds the relay's key: wiped in members_free */
    cJSON *members;        /* zooid's list, while the count is recorded (owned) */
    int64_t count;
    int dm; /* the count crossed the plan's cap: the owner's DM was queued */
};

static void members_free(struct members_op *m)
{
    relay_target_wipe(&m->t);
    cJSON_Delete(m->members);
    free(m);
}

/* {count, members, fetched_at}; count and members null when zooid cannot say (unknown). */
static void members_answer(struct members_op *m, const cJSON *members)
{
    cJSON *o = cJSON_CreateObject();
    if (members) {
        cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(members));
        cJSON_AddItemToObject(o, "members", cJSON_Duplicate(members, 1));
    } else {
        cJSON_AddNullToObject(o, "count");
        cJSON_AddNullToObject(o, "members");
    }
    cJSON_AddNumberToObject(o, "fetched_at", (double)m->ctx->now);
    api_ok(m->ctx, 200, o);
    members_free(m);
}

static int members_store_work(struct db_conn *conn, void *arg)
{
    struct members_op *m = arg;
    return repo_members_record(conn, m->t.id, 1, m->count, m->ctx->now,
                               m->ctx->app->cfg.relay_domain, &m->dm);
}

static void members_store_done(int status, void *arg)
{
    struct members_op *m = arg;
    if (status != 0) /* the count is a cache: the answer stands without it */
        LOG_WARN("api: relay %s: member count not recorded (%d)", m->t.id, status);
    else if (m->dm)
        robot_kick(m->ctx->app->robot);
    members_answer(m, m->members);
}

static void on_members(enum sync_worker_members_status st, const cJSON *members, const char *what,
                       void *arg)
{
    struct members_op *m = arg;
    if (st == SYNC_MEMBERS_FAILED) {
        api_error(m->ctx, 502, "upstream-unavailable", "relay %s: zooid members failed: %s",
                  m->t.id, what);
        members_free(m);
        return;
    }
    if (st != SYNC_MEMBERS_OK) {
        members_answer(m, NULL);
        return;
    }
    /* Kept for the plan check and the relay JSON (members_count, over_member_limit). */
    m->members = cJSON_Duplicate(members, 1);
    m->count = cJSON_GetArraySize(members);
    int rc = db_write(m->ctx->app->db, DB_CRASH_SAFE, members_store_work, members_store_done, m);
    if (rc != 0)
        members_store_done(rc, m);
}

static int members_load_work(struct db_conn *conn, void *arg)
{
    struct members_op *m = arg;
    const struct api_ctx *ctx = m->ctx;
    return relay_target_load(conn, ctx->params[0], ctx->is_admin ? NULL : ctx->pubhex,
                             ctx->app->cfg.relay_domain, &m->t);
}

static void members_load_done(int status, void *arg)
{
    struct members_op *m = arg;
    struct api_ctx *ctx = m->ctx;
    if (answer_load_error(ctx, status)) {
        members_free(m);
        return;
    }
    if (!ctx->app->sync) {
        members_answer(m, NULL); /* no zooid configured: unknown */
        return;
    } else if (sync_worker_members(ctx->app->sync, m->t.id, on_members, m) != 0)
        api_error(ctx, 502, "upstream-unavailable", "relay %s: zooid members could not be asked",
                  m->t.id);
    else
        return; /* on_members answers */
    members_free(m);
}

void api_get_members(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) != 0)
        return;
    struct members_op *m = xcalloc(1, sizeof(*m));
    m->ctx = ctx;
    int rc = db_read(ctx->app->db, members_load_work, members_load_done, m);
    if (rc != 0)
        members_load_done(rc, m);
}
