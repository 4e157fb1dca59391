/* zooid request building (config JSON, NIP-98 header). The header
 * is also checked by nostr-tools in test/integration/sync.test.mjs (lib/zooid.mjs). */
#include "test.h"

#include <cjson/cJSON.h>

#include "sync/repo.h"
#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"
#include "sync/zooid.h"

static char tenant_hex[] = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
static char secret_hex[] = "0000000000000000000000000000000000000000000000000000000000000003";

static struct sync_relay sample(const char *plan, const char *status, int livekit)
{
    struct sync_relay r = {0};
    r.id = "r1", r.tenant = tenant_hex, r.subdomain = "my-relay", r.schema = "my_relay";
    r.secret = secret_hex, r.plan = (char *)(uintptr_t)plan;
    r.status = (char *)(uintptr_t)status;
    r.info_name = "Name \"quoted\"", r.info_icon = "https://x/i.png", r.info_description = "d";
    r.policy_public_join = 1, r.groups_enabled = 1, r.push_enabled = 1;
    r.blossom_enabled = 1, r.livekit_enabled = livekit;
    return r;
}

static cJSON *build(const struct sync_relay *r, const struct config *cfg, enum zooid_body k)
{
    char *s = zooid_config_json(r, cfg, k);
    cJSON *j = cJSON_Parse(s);
    ASSERT_NOT_NULL(j);
    free(s);
    return j;
}

static const char *str_at(const cJSON *j, const char *a, const char *b)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

static int bool_at(const cJSON *j, const char *a, const char *b)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    ASSERT(cJSON_IsBool(o));
    return cJSON_IsTrue(o);
}

TEST(zooid_config_full_body)
{
    struct config cfg = {0};
    cfg.relay_domain = "spaces.example.com";
    struct sync_relay r = sample("basic", "active", 0);
    cJSON *j = build(&r, &cfg, ZOOID_BODY_FULL);
    ASSERT_STR_EQ(str_at(j, "host", NULL), "my-relay.spaces.example.com");
    ASSERT_STR_EQ(str_at(j, "schema", NULL), "my_relay");
    ASSERT_STR_EQ(str_at(j, "secret", NULL), secret_hex);
    ASSERT_EQ(bool_at(j, "inactive", NULL), 0);
    ASSERT_STR_EQ(str_at(j, "info", "name"), "Name \"quoted\"");
    ASSERT_STR_EQ(str_at(j, "info", "icon"), "https://x/i.png");
    ASSERT_STR_EQ(str_at(j, "info", "pubkey"), tenant_hex);
    ASSERT_STR_EQ(str_at(j, "info", "description"), "d");
    ASSERT_EQ(bool_at(j, "policy", "public_join"), 1);
    ASSERT_EQ(bool_at(j, "policy", "strip_signatures"), 0);
    ASSERT_EQ(bool_at(j, "groups", "enabled"), 1);
    ASSERT_EQ(bool_at(j, "management", "enabled"), 0);
    ASSERT_EQ(bool_at(j, "blossom", "enabled"), 1);
    ASSERT_EQ(bool_at(j, "push", "enabled"), 1);
    ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(j, "livekit")); /* disabled: omitted */
    cJSON_Delete(j);
}

TEST(zooid_config_patch_has_no_secret_and_inactive_follows_status)
{
    struct config cfg = {0};
    cfg.relay_domain = "";
    const char *statuses[] = {"active", "inactive", "delinquent"};
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
        struct sync_relay r = sample("free", statuses[i], 0);
        cJSON *j = build(&r, &cfg, ZOOID_BODY_PATCH);
        ASSERT_STR_EQ(str_at(j, "host", NULL), "my-relay"); /* RELAY_DOMAIN empty */
        ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(j, "secret"));
        ASSERT_EQ(bool_at(j, "inactive", NULL), i != 0);
        ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "livekit")));
        cJSON_Delete(j);
    }
}

TEST(zooid_livekit_only_when_enabled_allowed_and_configured)
{
    struct config cfg = {0};
    cfg.relay_domain = "d";
    cfg.livekit_url = "wss://lk.example.com";
    cfg.livekit_api_key = "key";
    cfg.livekit_api_secret = "sec";
    struct {
        const char *plan;
        int enabled, has_url, sent;
    } cases[] = {
        {"basic", 1, 1, 1}, {"growth", 1, 1, 1}, {"free", 1, 1, 0},
        {"basic", 0, 1, 0}, {"basic", 1, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct sync_relay r = sample(cases[i].plan, "active", cases[i].enabled);
        cfg.livekit_url = cases[i].has_url ? "wss://lk.example.com" : NULL;
        ASSERT_EQ(zooid_livekit_allowed(&r, &cfg), cases[i].sent);
        cJSON *j = build(&r, &cfg, ZOOID_BODY_FULL);
        if (cases[i].sent) {
            ASSERT_STR_EQ(str_at(j, "livekit", "server_url"), "wss://lk.example.com");
            ASSERT_STR_EQ(str_at(j, "livekit", "api_key"), "key");
            ASSERT_STR_EQ(str_at(j, "livekit", "api_secret"), "sec");
        } else {
            ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(j, "livekit"));
        }
        cJSON_Delete(j);
    }
}

TEST(zooid_auth_header_is_a_valid_nip98_event)
{
    ASSERT_OK(nostr_init());
    struct nostr_keypair kp;
    uint8_t sk[32];
    ASSERT_OK(hex_decode(secret_hex, 64, sk, 32));
    ASSERT_OK(nostr_keypair_from_seckey(&kp, sk));
    const char *body = "{\"a\":1}";
    char *h = zooid_auth_header(&kp, "http://127.0.0.1:9/relay/r1", "PATCH", body, 7, 1700000000);
    ASSERT_NOT_NULL(h);
    const char *prefix = "Authorization: Nostr ";
    ASSERT_OK(strncmp(h, prefix, strlen(prefix)));
    uint8_t *json = NULL;
    size_t n = 0;
    const char *b64 = h + strlen(prefix);
    ASSERT_OK(base64_decode(b64, strlen(b64), 0, &json, &n));
    struct nostr_event ev;
    nostr_event_init(&ev);
    ASSERT_OK(nostr_event_parse(&ev, (const char *)json, n));
    ASSERT_OK(nostr_event_verify(&ev));
    ASSERT_EQ(ev.kind, 27235);
    ASSERT_EQ(ev.created_at, 1700000000);
    ASSERT_MEM_EQ(ev.pubkey, kp.pubkey, 32);
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "u"), "http://127.0.0.1:9/relay/r1");
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "method"), "PATCH");
    uint8_t hash[32];
    char hash_hex[65];
    nostr_sha256(body, 7, hash);
    hex_encode(hash, 32, hash_hex);
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "payload"), hash_hex);
    nostr_event_free(&ev);
    free(json);
    free(h);
}
