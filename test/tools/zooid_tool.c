/* zooid_tool: lets the integration tests check what the sync worker sends to zooid (zooid.h)
 * with nostr-tools and the test zooid. Reads one JSON command on stdin, prints one JSON object
 * ({"error": ".."} and exit status 1 on failure):
 *   {"op": "request", "sk": hex, "url": "...", "method": "POST|PUT|PATCH", "now": int,
 *    "relay": {id, tenant, subdomain, schema, secret, plan, status, info_name, info_icon,
 *              info_description, policy_public_join, ..., push_enabled (bools)},
 *    "relay_domain": "", "livekit_url", "livekit_api_key", "livekit_api_secret" (optional)}
 *   -> {"body": config JSON (FULL for POST/PUT, PATCH body for PATCH), "authorization": header
 *       value "Nostr <base64>"}
 * A test tool: the key arrives on stdin; the relay secret is echoed only inside "body", as the
 * real request carries it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nostr/nip98.h"
#include "core/config.h"
#include "sync/repo.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/buf.h"
#include "sync/zooid.h"

#define STDIN_MAX (1024 * 1024)

static char *str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int flag(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static char *str_or(const cJSON *o, const char *key, char *def)
{
    char *s = str(o, key);
    return s ? s : def;
}

static void read_relay(const cJSON *j, struct sync_relay *r)
{
    static char empty[] = "";
    r->id = str_or(j, "id", empty);
    r->tenant = str_or(j, "tenant", empty);
    r->subdomain = str_or(j, "subdomain", empty);
    r->schema = str_or(j, "schema", empty);
    r->secret = str_or(j, "secret", empty);
    r->plan = str_or(j, "plan", empty);
    r->status = str_or(j, "status", empty);
    r->info_name = str_or(j, "info_name", empty);
    r->info_icon = str_or(j, "info_icon", empty);
    r->info_description = str_or(j, "info_description", empty);
    r->moderators = str_or(j, "moderators", empty);
    r->policy_public_join = flag(j, "policy_public_join");
    r->policy_strip_signatures = flag(j, "policy_strip_signatures");
    r->groups_enabled = flag(j, "groups_enabled");
    r->management_enabled = flag(j, "management_enabled");
    r->blossom_enabled = flag(j, "blossom_enabled");
    r->livekit_enabled = flag(j, "livekit_enabled");
    r->push_enabled = flag(j, "push_enabled");
}

static int op_request(const cJSON *cmd, cJSON *out)
{
    struct config cfg = {0};
    struct sync_relay r = {0};
    struct nostr_keypair kp;
    uint8_t sk[32];
    const char *skhex = str(cmd, "sk"), *url = str(cmd, "url"), *method = str(cmd, "method");
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(cmd, "now");
    if (!skhex || !url || !method || !cJSON_IsNumber(now) ||
        hex_decode(skhex, strlen(skhex), sk, 32) != 0 || nostr_keypair_from_seckey(&kp, sk) != 0)
        return -1;
    static char empty[] = "";
    cfg.relay_domain = str_or(cmd, "relay_domain", empty);
    cfg.livekit_url = str(cmd, "livekit_url");
    cfg.livekit_api_key = str(cmd, "livekit_api_key");
    cfg.livekit_api_secret = str(cmd, "livekit_api_secret");
    read_relay(cJSON_GetObjectItemCaseSensitive(cmd, "relay"), &r);
    enum zooid_body kind = strcmp(method, "PATCH") ? ZOOID_BODY_FULL : ZOOID_BODY_PATCH;
    char *body = zooid_config_json(&r, &cfg, kind);
    char *auth = nip98_auth_header(&kp, url, method, body, strlen(body), (int64_t)now->valuedouble);
    const char *prefix = "Authorization: ";
    int rc = auth && !strncmp(auth, prefix, strlen(prefix)) ? 0 : -1;
    if (rc == 0) {
        cJSON_AddStringToObject(out, "body", body);
        cJSON_AddStringToObject(out, "authorization", auth + strlen(prefix));
    }
    free(body);
    free(auth);
    return rc;
}

int main(void)
{
    struct buf in;
    char chunk[4096];
    size_t n;
    int rc = -1;
    buf_init(&in, STDIN_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (buf_append(&in, chunk, n) != 0)
            break;
    cJSON *cmd = cJSON_ParseWithLength(in.data ? in.data : "", in.len);
    cJSON *out = cJSON_CreateObject();
    const char *op = str(cmd, "op");
    if (nostr_init() == 0 && op && !strcmp(op, "request"))
        rc = op_request(cmd, out);
    if (rc != 0) {
        cJSON_Delete(out);
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "error", "bad command");
    }
    char *s = cJSON_PrintUnformatted(out);
    puts(s ? s : "{\"error\":\"print\"}");
    free(s);
    cJSON_Delete(out);
    cJSON_Delete(cmd);
    buf_free(&in);
    return rc ? 1 : 0;
}
