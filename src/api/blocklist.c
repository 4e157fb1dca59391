/* /blocklist routes (admin): the operator-wide block list. The API only records the decision
 * (an entry, and a row per active relay saying "ban" or "lift") in one transaction with its
 * activity row; the block-list worker (blocklist/worker.h), woken by APP_BLOCKLIST_CHANGED
 * after the commit, carries it to every relay over NIP-86 and retries until each confirmed.
 * The answer shows the rollout's progress (relays_applied / pending / failing). */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/repo_blocklist.h"
#include "db/db.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"

#define REASON_MAX 500

struct entry_in {
    char pubkey[65];
    char reason[REASON_MAX + 1];
};

static int load_entry(struct db_conn *conn, struct api_call *call, const char *pubkey)
{
    int rc = repo_blocklist_get(conn, pubkey, &call->data);
    if (rc != DB_ENOTFOUND)
        return rc;
    /* Removed from every relay already (or never on one): nothing is left of it. */
    call->data = cJSON_CreateObject();
    cJSON_AddStringToObject(call->data, "pubkey", pubkey);
    cJSON_AddStringToObject(call->data, "state", "lifted");
    return 0;
}

/* ---- GET /blocklist ---- */

static int list_entries(struct db_conn *conn, struct api_call *call)
{
    return repo_blocklist_list(conn, &call->data);
}

void api_list_blocklist(struct api_ctx *ctx)
{
    if (api_require_admin(ctx) == 0)
        api_run(ctx, 0, list_entries, NULL, NULL);
}

/* ---- POST /blocklist ---- */

static int add_entry(struct db_conn *conn, struct api_call *call)
{
    const struct entry_in *in = call->in;
    const struct api_ctx *ctx = call->ctx;
    int rc = repo_blocklist_add(conn, in->pubkey, in->reason, ctx->pubhex, ctx->now);
    if (rc == 0)
        rc = repo_activity_insert(conn, ctx->pubhex, "block_pubkey", "blocklist", in->pubkey, NULL,
                                  NULL, ctx->now);
    if (rc == 0)
        api_after_commit(call, APP_BLOCKLIST_CHANGED, in->pubkey);
    call->created = 1;
    return rc ? rc : load_entry(conn, call, in->pubkey);
}

/* Hex or npub into lowercase hex; 0 or answered 400. */
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

void api_add_blocklist(struct api_ctx *ctx)
{
    cJSON *body = NULL;
    struct entry_in *in = xcalloc(1, sizeof(*in));
    if (api_require_admin(ctx) != 0 || !(body = api_body_object(ctx)))
        goto out;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "pubkey");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(body, "reason");
    if (r && (!cJSON_IsString(r) || strlen(r->valuestring) > REASON_MAX)) {
        api_error(ctx, 400, "invalid-body", "reason must be a string of at most 500 bytes");
        goto out;
    }
    if (pubkey_arg(ctx, cJSON_IsString(p) ? p->valuestring : NULL, in->pubkey) != 0)
        goto out;
    if (r)
        memcpy(in->reason, r->valuestring, strlen(r->valuestring) + 1);
    api_run(ctx, 1, add_entry, in, free);
    in = NULL;
out:
    free(in);
    cJSON_Delete(body);
}

/* ---- DELETE /blocklist/:pubkey ---- */

static int remove_entry(struct db_conn *conn, struct api_call *call)
{
    const struct entry_in *in = call->in;
    const struct api_ctx *ctx = call->ctx;
    int rc = repo_blocklist_remove(conn, in->pubkey, ctx->now);
    if (rc == DB_ENOTFOUND)
        return api_fail(call, 404, "not-found", "this pubkey is not on the block list");
    if (rc == 0)
        rc = repo_activity_insert(conn, ctx->pubhex, "unblock_pubkey", "blocklist", in->pubkey,
                                  NULL, NULL, ctx->now);
    if (rc == 0)
        api_after_commit(call, APP_BLOCKLIST_CHANGED, in->pubkey);
    return rc ? rc : load_entry(conn, call, in->pubkey);
}

void api_remove_blocklist(struct api_ctx *ctx)
{
    struct entry_in *in = xcalloc(1, sizeof(*in));
    if (api_require_admin(ctx) != 0 || pubkey_arg(ctx, ctx->params[0], in->pubkey) != 0) {
        free(in);
        return;
    }
    api_run(ctx, 1, remove_entry, in, free);
}
