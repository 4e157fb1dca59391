#include "sync/zooid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/relay_target.h"
#include "util/buf.h"
#include "util/util.h"

int zooid_livekit_allowed(const struct sync_relay *r, const struct config *cfg)
{
    /* Plans (PRODUCT.md §3.3): only "free" lacks LiveKit. */
    return r->livekit_enabled && strcmp(r->plan, "free") != 0 && cfg->livekit_url &&
           cfg->livekit_url[0];
}

static void add_enabled(cJSON *root, const char *name, int on)
{
    cJSON *o = cJSON_AddObjectToObject(root, name);
    cJSON_AddBoolToObject(o, "enabled", on);
}

static void add_host(cJSON *root, const struct sync_relay *r, const struct config *cfg)
{
    char host[512];
    relay_target_host(r->subdomain, cfg->relay_domain, host, sizeof(host));
    cJSON_AddStringToObject(root, "host", host);
}

static void add_livekit(cJSON *root, const struct sync_relay *r, const struct config *cfg,
                        enum zooid_body kind)
{
    if (!zooid_livekit_allowed(r, cfg)) {
        if (kind == ZOOID_BODY_PATCH)
            cJSON_AddNullToObject(root, "livekit");
        return;
    }
    cJSON *lk = cJSON_AddObjectToObject(root, "livekit");
    cJSON_AddStringToObject(lk, "server_url", cfg->livekit_url);
    cJSON_AddStringToObject(lk, "api_key", cfg->livekit_api_key ? cfg->livekit_api_key : "");
    cJSON_AddStringToObject(lk, "api_secret",
                            cfg->livekit_api_secret ? cfg->livekit_api_secret : "");
}

/* The relay's moderators as zooid's role "moderator" (manage and invite over NIP-86), always
 * sent, with an empty list when there are none: a PATCH replaces the list (arrays replace)
 * and leaves any other role the owner set up in zooid alone. */
static void add_roles(cJSON *root, const struct sync_relay *r)
{
    cJSON *role = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "roles"), "moderator");
    cJSON *pubkeys = cJSON_AddArrayToObject(role, "pubkeys");
    const char *m = r->moderators ? r->moderators : "";
    for (size_t i = 0; strlen(m) >= i + 64; i += 65) {
        char pk[65];
        snprintf(pk, sizeof(pk), "%.64s", m + i);
        cJSON_AddItemToArray(pubkeys, cJSON_CreateString(pk));
    }
    cJSON_AddBoolToObject(role, "can_invite", 1);
    cJSON_AddBoolToObject(role, "can_manage", 1);
}

char *zooid_config_json(const struct sync_relay *r, const struct config *cfg, enum zooid_body kind)
{
    cJSON *root = cJSON_CreateObject();
    add_host(root, r, cfg);
    cJSON_AddStringToObject(root, "schema", r->schema);
    if (kind == ZOOID_BODY_FULL)
        cJSON_AddStringToObject(root, "secret", r->secret);
    cJSON_AddBoolToObject(root, "inactive", strcmp(r->status, "active") != 0);
    cJSON *info = cJSON_AddObjectToObject(root, "info");
    cJSON_AddStringToObject(info, "name", r->info_name);
    cJSON_AddStringToObject(info, "icon", r->info_icon);
    cJSON_AddStringToObject(info, "pubkey", r->tenant);
    cJSON_AddStringToObject(info, "description", r->info_description);
    cJSON *policy = cJSON_AddObjectToObject(root, "policy");
    cJSON_AddBoolToObject(policy, "public_join", r->policy_public_join);
    cJSON_AddBoolToObject(policy, "strip_signatures", r->policy_strip_signatures);
    add_enabled(root, "groups", r->groups_enabled);
    add_enabled(root, "management", r->management_enabled);
    add_enabled(root, "blossom", r->blossom_enabled);
    add_enabled(root, "push", r->push_enabled);
    add_livekit(root, r, cfg, kind);
    add_roles(root, r);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        abort(); /* cJSON fails only on allocation: the OOM policy (util.h) */
    return s;
}

/* ---- PATCH bodies ------------------------------------------------------------------- */

/* Adds to out what takes base to state (both objects); returns the number of keys added. */
static int diff_into(cJSON *out, const cJSON *state, const cJSON *base)
{
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, state)
    {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(base, item->string);
        if (cJSON_IsObject(item) && cJSON_IsObject(old)) {
            cJSON *sub = cJSON_CreateObject();
            if (diff_into(sub, item, old) > 0) {
                cJSON_AddItemToObject(out, item->string, sub);
                n++;
            } else {
                cJSON_Delete(sub);
            }
        } else if (!old || !cJSON_Compare(item, old, 1)) {
            cJSON_AddItemToObject(out, item->string, cJSON_Duplicate(item, 1));
            n++;
        }
    }
    cJSON_ArrayForEach(item, base)
    {
        if (!cJSON_GetObjectItemCaseSensitive(state, item->string)) {
            cJSON_AddNullToObject(out, item->string); /* zooid's merge deletes on null */
            n++;
        }
    }
    return n;
}

char *zooid_patch_diff(const char *state, const char *base, int *changed)
{
    *changed = 0;
    if (!base)
        return NULL;
    cJSON *b = cJSON_Parse(base);
    cJSON *s = cJSON_Parse(state);
    char *out = NULL;
    if (cJSON_IsObject(b) && cJSON_IsObject(s)) {
        cJSON *patch = cJSON_CreateObject();
        *changed = diff_into(patch, s, b) > 0;
        out = cJSON_PrintUnformatted(patch);
        cJSON_Delete(patch);
        if (!out)
            abort(); /* cJSON fails only on allocation: the OOM policy (util.h) */
    }
    cJSON_Delete(b);
    cJSON_Delete(s);
    return out;
}

/* ---- answers ------------------------------------------------------------------------ */

enum zooid_next zooid_classify(const char *method, long status, const char *error)
{
    if (status >= 200 && status < 300)
        return ZOOID_DONE;
    if (status == 409 && !strcmp(method, "POST") && !strstr(error, "already in use"))
        return ZOOID_PUT; /* "relay with this id already exists" (our commit was lost) */
    if (status == 404 && !strcmp(method, "PATCH"))
        return ZOOID_POST;
    if (status == 409 || status == 400 || status == 401 || status == 403 || status == 405 ||
        status == 413 || status == 422 || (status == 404 && !strcmp(method, "POST")))
        return ZOOID_PERMANENT;
    return ZOOID_RETRY;
}

static size_t hex_run(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && isxdigit((unsigned char)s[i]))
        i++;
    return i;
}

/* Length of the secret that starts at s (n bytes left), or 0. */
static size_t secret_at(const char *s, size_t n, const char *const *secrets)
{
    size_t run = hex_run(s, n);
    if (run >= 64)
        return run;
    for (size_t i = 0; secrets && secrets[i]; i++) {
        size_t k = strlen(secrets[i]);
        if (k && k <= n && !memcmp(s, secrets[i], k))
            return k;
    }
    return 0;
}

void zooid_error_text(const char *body, size_t len, const char *const *secrets, char *out,
                      size_t cap)
{
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *src = cJSON_IsString(err) ? err->valuestring : body ? body : "";
    size_t n = cJSON_IsString(err) ? strlen(src) : (body ? len : 0);
    while (n && isspace((unsigned char)src[n - 1]))
        n--; /* zooid's plain-text answers end with a newline */
    size_t o = 0, max = MIN(cap ? cap - 1 : 0, (size_t)ZOOID_ERROR_TEXT_MAX);
    for (size_t i = 0; i < n && o < max;) {
        size_t k = secret_at(src + i, n - i, secrets);
        if (k) {
            const char *r = "[redacted]";
            for (size_t j = 0; r[j] && o < max; j++)
                out[o++] = r[j];
            i += k;
            continue;
        }
        unsigned char c = (unsigned char)src[i++];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (cap)
        out[o] = '\0';
    cJSON_Delete(root);
}
