#include "api/relay_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plans.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"

#define INFO_NAME_MAX 100
#define INFO_DESCRIPTION_MAX 2000
/* Bytes as well as characters: 2000 four-byte characters would be 8 KB per relay in every
 * list answer. */
#define INFO_DESCRIPTION_MAX_BYTES 4000
#define INFO_ICON_MAX 2048
#define MODERATORS_INPUT_MAX 64 /* entries read from one body; the plans allow at most 20 */

static int fail(struct relay_error *err, int status, const char *code, const char *msg)
{
    err->status = status;
    err->code = code;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
    return -1;
}

/* Characters, not bytes: the limits are for people. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int is_http_url(const char *s)
{
    const char *rest = strncmp(s, "https://", 8) == 0  ? s + 8
                       : strncmp(s, "http://", 7) == 0 ? s + 7
                                                       : NULL;
    if (!rest || !*rest || *rest == '/')
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == '"' || *s == '<' || *s == '>')
            return 0;
    return 1;
}

int relay_subdomain_valid(const char *s)
{
    static const char *const reserved[] = {"www", "api", "app", "admin", "mail"};
    size_t n = strlen(s);
    if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
        if (strcmp(s, reserved[i]) == 0)
            return 0;
    return 1;
}

void relay_schema_from_subdomain(const char *subdomain, char *out, size_t cap)
{
    int digit = subdomain[0] >= '0' && subdomain[0] <= '9';
    snprintf(out, cap, "%s%s", digit ? "r_" : "", subdomain);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

/* A string field: absent → NULL; wrong type → 400. */
static int get_string(const cJSON *body, const char *key, char **out, struct relay_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    char msg[96];
    if (!v)
        return 0;
    if (!cJSON_IsString(v)) {
        snprintf(msg, sizeof(msg), "%s must be a string", key);
        return fail(err, 400, "invalid-body", msg);
    }
    *out = xstrdup(v->valuestring);
    return 0;
}

/* moderators: an array of hex or npub pubkeys -> "hex,hex" (lowercase, duplicates dropped,
 * order kept); absent -> NULL; anything else -> 400. */
static int get_moderators(const cJSON *body, char **out, struct relay_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "moderators");
    if (!v)
        return 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > MODERATORS_INPUT_MAX)
        return fail(err, 400, "invalid-body", "moderators must be an array of at most 64 pubkeys");
    char *csv = xcalloc((size_t)cJSON_GetArraySize(v) * 65 + 1, 1);
    size_t len = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, v)
    {
        uint8_t pk[32];
        char hex[65];
        if (!cJSON_IsString(item) || nostr_key_parse_public(item->valuestring, pk) != 0) {
            free(csv);
            return fail(err, 400, "invalid-body", "moderators must be hex or npub public keys");
        }
        hex_encode(pk, sizeof(pk), hex);
        if (strstr(csv, hex))
            continue; /* listed twice */
        len += (size_t)sprintf(csv + len, "%s%s", len ? "," : "", hex);
    }
    *out = csv;
    return 0;
}

size_t relay_moderator_count(const char *csv)
{
    return csv && *csv ? (strlen(csv) + 1) / 65 : 0;
}

static int parse_flags(const cJSON *body, struct relay_fields *out, struct relay_error *err)
{
    char msg[96];
    for (int i = 0; i < RF_COUNT; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, relay_flag_names[i]);
        if (!v)
            continue;
        if (!cJSON_IsBool(v)) {
            snprintf(msg, sizeof(msg), "%s must be a boolean", relay_flag_names[i]);
            return fail(err, 400, "invalid-body", msg);
        }
        out->has_flag[i] = 1;
        out->flags[i] = cJSON_IsTrue(v);
    }
    return 0;
}

static int check_values(const struct relay_fields *f, struct relay_error *err)
{
    if (f->subdomain && !relay_subdomain_valid(f->subdomain))
        return fail(err, 422, "invalid-subdomain",
                    "subdomain must be a DNS label (a-z, 0-9, '-') and not reserved");
    if (f->plan && !plan_find(f->plan))
        return fail(err, 422, "invalid-plan", "plan does not exist");
    if (f->info_name && utf8_chars(f->info_name) > INFO_NAME_MAX)
        return fail(err, 400, "invalid-body", "info_name must be at most 100 characters");
    if (f->info_description && (utf8_chars(f->info_description) > INFO_DESCRIPTION_MAX ||
                                strlen(f->info_description) > INFO_DESCRIPTION_MAX_BYTES))
        return fail(err, 400, "invalid-body",
                    "info_description must be at most 2000 characters and 4000 bytes");
    if (f->info_icon && f->info_icon[0] &&
        (strlen(f->info_icon) > INFO_ICON_MAX || !is_http_url(f->info_icon)))
        return fail(err, 400, "invalid-body", "info_icon must be empty or an http(s) URL");
    if (f->tenant && (strlen(f->tenant) != 64 || strspn(f->tenant, "0123456789abcdef") != 64))
        return fail(err, 400, "invalid-body", "tenant must be a 64-character hex pubkey");
    return 0;
}

int relay_fields_parse(const cJSON *body, struct relay_fields *out, struct relay_error *err)
{
    memset(out, 0, sizeof(*out));
    if (get_string(body, "tenant", &out->tenant, err) ||
        get_string(body, "subdomain", &out->subdomain, err) ||
        get_string(body, "plan", &out->plan, err) ||
        get_string(body, "info_name", &out->info_name, err) ||
        get_string(body, "info_icon", &out->info_icon, err) ||
        get_string(body, "info_description", &out->info_description, err) ||
        get_moderators(body, &out->moderators, err) || parse_flags(body, out, err) ||
        check_values(out, err)) {
        relay_fields_free(out);
        return -1;
    }
    return 0;
}

void relay_fields_free(struct relay_fields *f)
{
    char **strs[] = {&f->tenant,    &f->subdomain,        &f->plan,      &f->info_name,
                     &f->info_icon, &f->info_description, &f->moderators};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

static void take(char **dst, const char *src)
{
    if (!src)
        return;
    free(*dst);
    *dst = xstrdup(src);
}

void relay_fields_merge(struct relay_fields *base, const struct relay_fields *in)
{
    take(&base->subdomain, in->subdomain);
    take(&base->plan, in->plan);
    take(&base->info_name, in->info_name);
    take(&base->info_icon, in->info_icon);
    take(&base->info_description, in->info_description);
    take(&base->moderators, in->moderators);
    for (int i = 0; i < RF_COUNT; i++) {
        if (in->has_flag[i]) {
            base->flags[i] = in->flags[i];
            base->has_flag[i] = 1;
        }
    }
}

int relay_fields_check_plan(const struct relay_fields *f, struct relay_error *err)
{
    const struct plan *p = plan_find(f->plan);
    if (!p)
        return fail(err, 422, "invalid-plan", "plan does not exist");
    if ((f->flags[RF_BLOSSOM] && !p->blossom) || (f->flags[RF_LIVEKIT] && !p->livekit))
        return fail(err, 422, "plan-feature-unavailable",
                    "this plan does not include blossom or livekit");
    if (relay_moderator_count(f->moderators) > (size_t)p->moderators) {
        snprintf(err->msg, sizeof(err->msg), "the %s plan allows at most %d moderators", p->id,
                 p->moderators);
        err->status = 422;
        err->code = "plan-moderator-limit";
        return -1;
    }
    return 0;
}
