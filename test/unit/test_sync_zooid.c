/* zooid request building (config JSON, NIP-98 header). The header
 * is also checked by nostr-tools in test/integration/sync.test.mjs (lib/zooid.mjs). */
#include "test.h"

#include <cjson/cJSON.h>

#include "nostr/nip98.h"
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
    char *h = nip98_auth_header(&kp, "http://127.0.0.1:9/relay/r1", "PATCH", body, 7, 1700000000);
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

TEST(zooid_state_body_has_no_secret_and_no_null)
{
    struct config cfg = {0};
    cfg.relay_domain = "d";
    struct sync_relay r = sample("free", "active", 0);
    cJSON *j = build(&r, &cfg, ZOOID_BODY_STATE);
    ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(j, "secret"));
    ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(j, "livekit"));
    ASSERT_STR_EQ(str_at(j, "info", "name"), "Name \"quoted\"");
    cJSON_Delete(j);
}

TEST(zooid_patch_diff_carries_only_what_changed)
{
    static const struct {
        const char *state, *base, *want; /* want NULL: no base, the caller sends it all */
        int changed;
    } cases[] = {
        {"{\"a\":1,\"info\":{\"name\":\"N\",\"icon\":\"\"}}",
         "{\"a\":1,\"info\":{\"name\":\"N\",\"icon\":\"\"}}", "{}", 0},
        {"{\"a\":2,\"info\":{\"name\":\"N\"}}", "{\"a\":1,\"info\":{\"name\":\"N\"}}", "{\"a\":2}",
         1},
        {"{\"info\":{\"name\":\"M\",\"icon\":\"i\"}}", "{\"info\":{\"name\":\"N\",\"icon\":\"i\"}}",
         "{\"info\":{\"name\":\"M\"}}", 1},
        /* livekit turned off: null, which zooid's merge deletes */
        {"{\"a\":1}", "{\"a\":1,\"livekit\":{\"api_key\":\"k\"}}", "{\"livekit\":null}", 1},
        /* turned on again: the whole object */
        {"{\"a\":1,\"livekit\":{\"api_key\":\"k\",\"server_url\":\"u\"}}", "{\"a\":1}",
         "{\"livekit\":{\"api_key\":\"k\",\"server_url\":\"u\"}}", 1},
        {"{\"inactive\":true}", "{\"inactive\":false}", "{\"inactive\":true}", 1},
        {"{\"r\":[1,2]}", "{\"r\":[1]}", "{\"r\":[1,2]}", 1}, /* arrays replace */
        {"{\"a\":{\"b\":1}}", "{\"a\":\"x\"}", "{\"a\":{\"b\":1}}", 1},
        {"{\"a\":1}", NULL, NULL, 0},
        {"{\"a\":1}", "not json", NULL, 0},
        {"{\"a\":1}", "[1]", NULL, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int changed = -1;
        char *d = zooid_patch_diff(cases[i].state, cases[i].base, &changed);
        if (!cases[i].want) {
            ASSERT_NULL(d);
        } else {
            ASSERT_NOT_NULL(d);
            ASSERT_STR_EQ(d, cases[i].want);
        }
        ASSERT_EQ(changed, cases[i].changed);
        free(d);
    }
}

TEST(zooid_classify_sorts_answers)
{
    static const struct {
        const char *method;
        long status;
        const char *error;
        enum zooid_next want;
    } cases[] = {
        {"POST", 201, "", ZOOID_DONE},
        {"PATCH", 200, "", ZOOID_DONE},
        {"POST", 409, "relay with this id already exists", ZOOID_PUT},
        {"POST", 409, "", ZOOID_PUT},
        {"POST", 409, "host \"a.b\" is already in use", ZOOID_PERMANENT},
        {"POST", 409, "schema \"a\" is already in use", ZOOID_PERMANENT},
        {"PUT", 409, "host \"a.b\" is already in use", ZOOID_PERMANENT},
        {"PATCH", 409, "schema \"a\" is already in use", ZOOID_PERMANENT},
        {"PATCH", 404, "relay not found", ZOOID_POST},
        {"POST", 404, "Not Found", ZOOID_PERMANENT}, /* Host is not zooid's API_HOST */
        {"PUT", 404, "relay not found", ZOOID_RETRY},
        {"POST", 400, "invalid secret key", ZOOID_PERMANENT},
        {"PATCH", 401, "event missing or invalid u tag", ZOOID_PERMANENT},
        {"PUT", 403, "pubkey not in whitelist", ZOOID_PERMANENT},
        {"POST", 405, "method not allowed", ZOOID_PERMANENT},
        {"POST", 413, "", ZOOID_PERMANENT},
        {"POST", 500, "failed to write config", ZOOID_RETRY},
        {"PATCH", 502, "", ZOOID_RETRY},
        {"POST", 503, "", ZOOID_RETRY},
        {"POST", 408, "", ZOOID_RETRY},
        {"POST", 429, "", ZOOID_RETRY},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        ASSERT_EQ(zooid_classify(cases[i].method, cases[i].status, cases[i].error), cases[i].want);
}

TEST(zooid_error_text_is_redacted_printable_and_capped)
{
    char hex64[65], long_body[1200], out[ZOOID_ERROR_TEXT_MAX + 1];
    memset(hex64, 'a', 64);
    hex64[64] = '\0';
    const char *secrets[] = {"s3cr3t-livekit", NULL, "", NULL};
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"error\":\"pubkey not in whitelist\"}\n", "pubkey not in whitelist"},
        {"Not Found\n", "Not Found"},
        {"{\"message\":\"x\"}", "{\"message\":\"x\"}"},
        {"{\"error\":\"bad key s3cr3t-livekit here\"}", "bad key [redacted] here"},
        {"{\"error\":\"line\\nbreak\\u0001 \\u00e9\"}", "line?break? ??"},
        {"", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        zooid_error_text(cases[i].body, strlen(cases[i].body), secrets, out, sizeof(out));
        ASSERT_STR_EQ(out, cases[i].want);
    }
    /* A 64-hex run (a key zooid could echo, any case) is never shown. */
    snprintf(long_body, sizeof(long_body), "{\"error\":\"invalid secret key: %s\"}", hex64);
    zooid_error_text(long_body, strlen(long_body), NULL, out, sizeof(out));
    ASSERT_STR_EQ(out, "invalid secret key: [redacted]");
    snprintf(long_body, sizeof(long_body), "{\"error\":\"k %.63s\"}", hex64);
    zooid_error_text(long_body, strlen(long_body), NULL, out, sizeof(out));
    ASSERT(strstr(out, "aaaa") != NULL); /* 63 digits: not a key */
    /* Capped at ZOOID_ERROR_TEXT_MAX characters, and at the caller's buffer. */
    memset(long_body, 'x', sizeof(long_body) - 1);
    long_body[sizeof(long_body) - 1] = '\0';
    zooid_error_text(long_body, strlen(long_body), NULL, out, sizeof(out));
    ASSERT_EQ(strlen(out), ZOOID_ERROR_TEXT_MAX);
    char small[8];
    zooid_error_text(long_body, strlen(long_body), NULL, small, sizeof(small));
    ASSERT_STR_EQ(small, "xxxxxxx");
    zooid_error_text(NULL, 0, NULL, small, sizeof(small));
    ASSERT_STR_EQ(small, "");
}

TEST(zooid_moderators_are_the_moderator_role)
{
    struct config cfg = {0};
    cfg.relay_domain = "d";
    struct sync_relay r = sample("basic", "active", 0);
    char mods[] = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798,"
                  "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";
    const char *want[] = {"79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
                          "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"};
    for (int k = 0; k < 2; k++) {
        r.moderators = k ? mods : NULL;
        cJSON *j = build(&r, &cfg, ZOOID_BODY_FULL);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "roles"), "moderator");
        const cJSON *pks = cJSON_GetObjectItemCaseSensitive(role, "pubkeys");
        ASSERT(cJSON_IsArray(pks));
        ASSERT_EQ(cJSON_GetArraySize(pks), k ? 2 : 0); /* none: an empty list, still sent */
        for (int i = 0; k && i < 2; i++)
            ASSERT_STR_EQ(cJSON_GetArrayItem(pks, i)->valuestring, want[i]);
        ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "can_manage")));
        ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "can_invite")));
        cJSON_Delete(j);
    }
}
