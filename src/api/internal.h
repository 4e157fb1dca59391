/* Shared by the src/api/ files (not a public interface). Loop thread, except the work
 * functions given to api_run, which run on a pool thread and touch only their call.
 *
 * A request's life: api_handle authenticates it and builds a struct api_ctx, a resource
 * handler validates the input and calls api_run with a work function; the work function
 * runs SQL (inside a transaction when it writes) and leaves either data (JSON) or an API
 * error in the call; api_run's completion answers the client, runs the optional after
 * hook (e.g. sync_worker_kick) once the transaction is committed, and frees everything. */
#ifndef CARAVEL_API_INTERNAL_H
#define CARAVEL_API_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include "db/db.h"

#include "core/app.h"
#include "core/store.h"
#include "http/server.h"
#include "core/plans.h"

#define API_JSON_TYPE "application/json; charset=utf-8"
#define API_MAX_PARAMS 2

struct api_ctx {
    struct http_exchange *ex;
    struct app *app;
    int authed;
    int is_admin;
    uint8_t pubkey[32];
    char pubhex[65];
    const char *params[API_MAX_PARAMS]; /* path parameters, point into param_buf */
    char param_buf[256];
    char cors[512]; /* CORS header lines added to every response */
    int64_t now;
    const char *route; /* the matched route pattern (static), NULL if none: for metrics */
    void (*handler)(struct api_ctx *ctx); /* the matched route's handler */
};

struct api_call;
typedef int api_work_fn(struct db_conn *conn, struct api_call *call);
typedef void api_after_fn(struct api_call *call);

struct api_call {
    struct api_ctx *ctx;
    void *in; /* handler input, freed by in_free (may be NULL) */
    void (*in_free)(void *);
    int created;      /* 201 instead of 200 */
    cJSON *data;      /* set by work on success (owned) */
    int status;       /* API error status (4xx) set by api_fail, else 0 */
    const char *code; /* API error code */
    char msg[160];
    char *body;    /* response body, printed on the pool thread */
    int has_event; /* fire event(event_id) after the commit (core/app.h) */
    enum app_event event;
    char event_id[65];
    int caller_is_tenant; /* 1: the caller's tenant row exists, -1: it does not, 0: not looked
                           * up; remembered in tenant_cache after a success */
    int paged;            /* a list page: the answer carries "next" (null when next is "") */
    char next[REPO_CURSOR_MAX];
    /* Loop thread, when set: sees a successful answer (body) just before it is sent. */
    void (*answered)(struct api_call *call);
};

/* For work functions: fire ev(id) once the transaction has committed (never on rollback). */
void api_after_commit(struct api_call *call, enum app_event ev, const char *id);

/* Answer helpers; each answers ex and frees ctx. msg/code are copied. */
void api_send(struct api_ctx *ctx, int status, const char *body, size_t len);
void api_error(struct api_ctx *ctx, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Success envelope {"data":...,"code":"ok"}; takes ownership of data. */
void api_ok(struct api_ctx *ctx, int status, cJSON *data);

/* Runs work on the pool thread (write=1: in one BEGIN IMMEDIATE transaction) and answers.
 * Takes ownership of in (freed with in_free). */
void api_run(struct api_ctx *ctx, int write, api_work_fn *work, void *in, void (*in_free)(void *));
/* api_run of a read whose successful answer is shown to answered first (e.g. to cache it). */
void api_run_read_answered(struct api_ctx *ctx, api_work_fn *work, void *in,
                           void (*in_free)(void *), void (*answered)(struct api_call *call));
/* api_run of a list page: a read in the database's list lane (db_read_list), so lists never
 * hold up the point reads. */
void api_run_list(struct api_ctx *ctx, api_work_fn *work, void *in, void (*in_free)(void *));
/* For work functions: record an API error (the transaction is rolled back) and return the
 * value to return from work. */
int api_fail(struct api_call *call, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Request helpers. */
int api_require_auth(struct api_ctx *ctx);  /* 0, or answered 401 */
int api_require_admin(struct api_ctx *ctx); /* 0, or answered 401/403 */
/* Parses the JSON body as an object; answers 400 invalid-json and returns NULL on failure. */
cJSON *api_body_object(struct api_ctx *ctx);
/* Query parameter value (percent_decode; too long: its first cap - 1 bytes) into out: 1 if
 * present, 0 if not, -1 after answering 400 invalid-query (a malformed percent-escape). */
int api_query(struct api_ctx *ctx, const char *name, char *out, size_t cap);
/* limit/offset (PRODUCT.md §3.1) and the ?after= cursor (with_id: its "<key>.<id>" form, else
 * "<key>") of a list route into page; 0 or answered 400. */
int api_page(struct api_ctx *ctx, int with_id, struct repo_page *page);
/* Which tenant a list route shows: caller's own, or ?tenant= for admins (403 for others),
 * or all (admin without ?tenant=, out = ""). 0 or answered. */
int api_list_scope(struct api_ctx *ctx, char out[65]);

/* Whether a pubkey is a tenant, without the database (tenant_cache.c: a "yes" is kept since
 * tenants are never deleted, in a table that grows to 131,072 tenants and then replaces one
 * per newcomer; a "no" for one second, and never on a shared store). Loop thread only. */
int tenant_cache_has(const uint8_t pubkey[32]);
void tenant_cache_add(const uint8_t pubkey[32]);
int tenant_cache_known_not(const uint8_t pubkey[32]);
void tenant_cache_add_not(const uint8_t pubkey[32]);
void tenant_cache_clear(void);
size_t tenant_cache_size(void); /* "yes" answers cached */

/* Route handlers (one file per resource). */
void api_get_healthz(struct api_ctx *ctx);
void api_get_plans(struct api_ctx *ctx);
void api_get_plan(struct api_ctx *ctx);
void api_get_identity(struct api_ctx *ctx);
void api_list_tenants(struct api_ctx *ctx);
void api_create_tenant(struct api_ctx *ctx);
void api_get_tenant(struct api_ctx *ctx);
void api_put_tenant_billing(struct api_ctx *ctx);
void api_list_relays(struct api_ctx *ctx);
void api_create_relay(struct api_ctx *ctx);
void api_get_relay(struct api_ctx *ctx);
void api_put_relay(struct api_ctx *ctx);
void api_deactivate_relay(struct api_ctx *ctx);
void api_activate_relay(struct api_ctx *ctx);
void api_sync_relay(struct api_ctx *ctx);
/* relay_admin.c: NIP-86 calls to the relay itself (invites, bans), and GET /relays/:id/members
 * through zooid's API (sync/worker.h: sync_worker_members). */
void api_get_members(struct api_ctx *ctx);
void api_list_invites(struct api_ctx *ctx);
void api_create_invite(struct api_ctx *ctx);
void api_delete_invite(struct api_ctx *ctx);
void api_list_bans(struct api_ctx *ctx);
void api_create_ban(struct api_ctx *ctx);
void api_delete_ban(struct api_ctx *ctx);
/* blocklist.c: the operator-wide block list (admin). */
void api_list_blocklist(struct api_ctx *ctx);
void api_add_blocklist(struct api_ctx *ctx);
void api_remove_blocklist(struct api_ctx *ctx);
void api_list_invoices(struct api_ctx *ctx);
void api_get_invoice(struct api_ctx *ctx);
void api_list_activity(struct api_ctx *ctx);

#endif
