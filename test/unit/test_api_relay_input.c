/* Relay body validation (PRODUCT.md §3.3) and schema names (PRODUCT.md §4): tables against the
 * spec's rules, never against our own output. */
#include "test.h"

#include "nostr/keys.h"

#include "api/relay_input.h"
#include "util/util.h"

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

TEST(api_relay_subdomain_valid_table)
{
    static const struct {
        const char *s;
        int ok;
    } t[] = {
        {"a", 1},    {"abc", 1},         {"my-relay", 1}, {"a-b-c", 1}, {"0", 1},    {"123abc", 1},
        {"a--b", 1}, {"wwww", 1},        {"apis", 1},     {"mail2", 1}, {"", 0},     {"-abc", 0},
        {"abc-", 0}, {"-", 0},           {"Abc", 0},      {"ABC", 0},   {"a_b", 0},  {"a.b", 0},
        {"a b", 0},  {"caf\xc3\xa9", 0}, {"www", 0},      {"api", 0},   {"app", 0},  {"admin", 0},
        {"mail", 0}, {"a/b", 0},         {"a\tb", 0},     {" abc", 0},  {"abc ", 0}, {"a%62", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++)
        if (relay_subdomain_valid(t[i].s) != t[i].ok)
            TEST_FAIL_("subdomain \"%s\": want %d", t[i].s, t[i].ok);
}

TEST(api_relay_subdomain_length_limits)
{
    char *s63 = repeat('a', 63), *s64 = repeat('a', 64), *s62 = repeat('b', 62);
    ASSERT_EQ(relay_subdomain_valid(s63), 1);
    ASSERT_EQ(relay_subdomain_valid(s64), 0);
    s62[30] = '-';
    ASSERT_EQ(relay_subdomain_valid(s62), 1);
    s63[62] = '-';
    ASSERT_EQ(relay_subdomain_valid(s63), 0);
    free(s63);
    free(s64);
    free(s62);
}

TEST(api_relay_schema_from_subdomain_table)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"abc", "abc"},           {"my-relay", "my_relay"}, {"a-b-c", "a_b_c"}, {"0abc", "r_0abc"},
        {"9-lives", "r_9_lives"}, {"123", "r_123"},         {"x9", "x9"},       {"a--b", "a__b"},
    };
    char out[68];
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        relay_schema_from_subdomain(t[i].in, out, sizeof(out));
        ASSERT_STR_EQ(out, t[i].out);
    }
    /* the longest label, starting with a digit, fits the documented 68 bytes */
    char *s = repeat('7', 63);
    relay_schema_from_subdomain(s, out, sizeof(out));
    ASSERT_EQ(strlen(out), 65);
    ASSERT(strncmp(out, "r_777", 5) == 0);
    free(s);
}

/* Parses json; returns rc, fills err. */
static int parse(const char *json, struct relay_fields *f, struct relay_error *err)
{
    ASSERT_OK(nostr_init()); /* moderators are parsed as public keys (secp256k1 context) */
    cJSON *body = cJSON_Parse(json);
    ASSERT_NOT_NULL(body);
    memset(err, 0, sizeof(*err));
    int rc = relay_fields_parse(body, f, err);
    cJSON_Delete(body);
    return rc;
}

static void expect_error(const char *json, int status, const char *code, const char *field)
{
    struct relay_fields f;
    struct relay_error err;
    if (parse(json, &f, &err) != -1)
        TEST_FAIL_("accepted: %s", json);
    if (err.status != status || strcmp(err.code, code) != 0)
        TEST_FAIL_("%s: got %d %s (%s), want %d %s", json, err.status, err.code, err.msg, status,
                   code);
    if (field && !strstr(err.msg, field))
        TEST_FAIL_("%s: message \"%s\" does not name %s", json, err.msg, field);
    /* the fields are freed and cleared on failure */
    ASSERT_NULL(f.subdomain);
    ASSERT_NULL(f.plan);
    ASSERT_NULL(f.info_name);
}

static void expect_ok(const char *json)
{
    struct relay_fields f;
    struct relay_error err;
    if (parse(json, &f, &err) != 0)
        TEST_FAIL_("refused %s: %d %s %s", json, err.status, err.code, err.msg);
    relay_fields_free(&f);
}

TEST(api_relay_fields_wrong_types)
{
    static const char *const strings[] = {"tenant",    "subdomain", "plan",
                                          "info_name", "info_icon", "info_description"};
    static const char *const bad_vals[] = {"1", "true", "null", "[]", "{}", "1.5"};
    char json[160];
    for (size_t i = 0; i < ARRAY_SIZE(strings); i++)
        for (size_t j = 0; j < ARRAY_SIZE(bad_vals); j++) {
            snprintf(json, sizeof(json), "{\"%s\":%s}", strings[i], bad_vals[j]);
            expect_error(json, 400, "invalid-body", strings[i]);
        }
    static const char *const bad_bools[] = {"1", "0", "\"true\"", "null", "[]", "{}", "\"\""};
    for (int i = 0; i < RF_COUNT; i++)
        for (size_t j = 0; j < ARRAY_SIZE(bad_bools); j++) {
            snprintf(json, sizeof(json), "{\"%s\":%s}", relay_flag_names[i], bad_bools[j]);
            expect_error(json, 400, "invalid-body", relay_flag_names[i]);
        }
}

TEST(api_relay_fields_flags_parsed)
{
    static const char *const names[RF_COUNT] = {
        "policy_public_join", "policy_strip_signatures", "groups_enabled", "management_enabled",
        "blossom_enabled",    "livekit_enabled",         "push_enabled"};
    char json[128];
    for (int i = 0; i < RF_COUNT; i++) {
        ASSERT_STR_EQ(relay_flag_names[i], names[i]); /* PRODUCT.md §3.3 names */
        for (int v = 0; v <= 1; v++) {
            struct relay_fields f;
            struct relay_error err;
            snprintf(json, sizeof(json), "{\"%s\":%s}", names[i], v ? "true" : "false");
            ASSERT_OK(parse(json, &f, &err));
            for (int k = 0; k < RF_COUNT; k++) {
                ASSERT_EQ(f.has_flag[k], k == i);
                if (k == i)
                    ASSERT_EQ(f.flags[k], v);
            }
            relay_fields_free(&f);
        }
    }
}

static void name_of_chars(char *out, size_t nchars, const char *unit)
{
    out[0] = '\0';
    for (size_t i = 0; i < nchars; i++)
        strcat(out, unit);
}

/* Limits count characters, so a 100-character name of 4-byte emoji is fine. */
TEST(api_relay_fields_info_lengths)
{
    static const char *const units[] = {"a", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80"};
    char *name = xmalloc(2001 * 4 + 64), *json = xmalloc(2001 * 4 + 128);
    for (size_t u = 0; u < ARRAY_SIZE(units); u++) {
        name_of_chars(name, 100, units[u]);
        sprintf(json, "{\"info_name\":\"%s\"}", name);
        expect_ok(json);
        name_of_chars(name, 101, units[u]);
        sprintf(json, "{\"info_name\":\"%s\"}", name);
        expect_error(json, 400, "invalid-body", "info_name");
        /* At most 2000 characters and 4000 bytes: the longest allowed for this width. */
        size_t width = strlen(units[u]), most = width <= 2 ? 2000 : 4000 / width;
        name_of_chars(name, most, units[u]);
        sprintf(json, "{\"info_description\":\"%s\"}", name);
        expect_ok(json);
        name_of_chars(name, most + 1, units[u]);
        sprintf(json, "{\"info_description\":\"%s\"}", name);
        expect_error(json, 400, "invalid-body", "info_description");
    }
    expect_ok("{\"info_name\":\"\",\"info_description\":\"\"}");
    free(name);
    free(json);
}

TEST(api_relay_fields_info_icon)
{
    static const char *const good[] = {
        "",
        "http://example.com/icon.png",
        "https://example.com/icon.png",
        "https://cdn.example.com:8443/a/b.svg?x=1#f",
    };
    static const char *const bad[] = {
        "ftp://example.com/icon.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "example.com/icon.png",
        "http://",
        "https://",
        "https:///path",
        "//example.com/x.png",
        "https://exa mple.com/x.png",
        "https://example.com/\\\"onload=x",
        "https://example.com/<script>",
        " https://example.com/x.png",
    };
    char json[256];
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        snprintf(json, sizeof(json), "{\"info_icon\":\"%s\"}", good[i]);
        expect_ok(json);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        snprintf(json, sizeof(json), "{\"info_icon\":\"%s\"}", bad[i]);
        expect_error(json, 400, "invalid-body", "info_icon");
    }
}

TEST(api_relay_fields_subdomain_plan_tenant)
{
    expect_error("{\"subdomain\":\"Bad\"}", 422, "invalid-subdomain", NULL);
    expect_error("{\"subdomain\":\"api\"}", 422, "invalid-subdomain", NULL);
    expect_error("{\"subdomain\":\"\"}", 422, "invalid-subdomain", NULL);
    expect_error("{\"subdomain\":\"-x\"}", 422, "invalid-subdomain", NULL);
    expect_error("{\"plan\":\"platinum\"}", 422, "invalid-plan", NULL);
    expect_error("{\"plan\":\"\"}", 422, "invalid-plan", NULL);
    expect_error("{\"plan\":\"FREE\"}", 422, "invalid-plan", NULL);
    expect_error("{\"tenant\":\"abc\"}", 400, "invalid-body", "tenant");
    char json[160];
    snprintf(json, sizeof(json), "{\"tenant\":\"%064d\"}", 0);
    expect_ok(json);
    json[12] = 'A'; /* uppercase hex is not a pubkey in our API */
    expect_error(json, 400, "invalid-body", "tenant");
    expect_ok("{\"plan\":\"free\"}");
    expect_ok("{\"plan\":\"basic\"}");
    expect_ok("{\"plan\":\"growth\"}");
    expect_ok("{}");
}

/* Read-only and unknown fields are ignored, writable ones are copied. */
TEST(api_relay_fields_read_only_ignored)
{
    struct relay_fields f;
    struct relay_error err;
    ASSERT_OK(parse("{\"id\":\"zzz\",\"host\":1,\"schema\":[],\"status\":\"active\",\"synced\":5,"
                    "\"secret\":\"00\",\"created_at\":\"x\",\"updated_at\":null,\"sync_error\":7,"
                    "\"subdomain\":\"ok-1\",\"plan\":\"basic\",\"info_name\":\"N\","
                    "\"info_icon\":\"\",\"info_description\":\"D\",\"groups_enabled\":true}",
                    &f, &err));
    ASSERT_STR_EQ(f.subdomain, "ok-1");
    ASSERT_STR_EQ(f.plan, "basic");
    ASSERT_STR_EQ(f.info_name, "N");
    ASSERT_STR_EQ(f.info_icon, "");
    ASSERT_STR_EQ(f.info_description, "D");
    ASSERT_NULL(f.tenant);
    ASSERT_EQ(f.has_flag[RF_GROUPS], 1);
    ASSERT_EQ(f.flags[RF_GROUPS], 1);
    ASSERT_EQ(f.has_flag[RF_BLOSSOM], 0);
    relay_fields_free(&f);
}

/* Only fields given in the update replace the base. */
TEST(api_relay_fields_merge_keeps_missing)
{
    struct relay_fields base, in;
    struct relay_error err;
    ASSERT_OK(parse("{\"subdomain\":\"a\",\"plan\":\"basic\",\"info_name\":\"old\","
                    "\"blossom_enabled\":true,\"push_enabled\":true}",
                    &base, &err));
    ASSERT_OK(parse("{\"info_name\":\"new\",\"push_enabled\":false}", &in, &err));
    relay_fields_merge(&base, &in);
    ASSERT_STR_EQ(base.subdomain, "a");
    ASSERT_STR_EQ(base.plan, "basic");
    ASSERT_STR_EQ(base.info_name, "new");
    ASSERT_EQ(base.flags[RF_BLOSSOM], 1);
    ASSERT_EQ(base.flags[RF_PUSH], 0);
    relay_fields_free(&in);
    relay_fields_free(&base);
}

static int plan_check(const char *plan, int blossom, int livekit, struct relay_error *err)
{
    struct relay_fields f;
    memset(&f, 0, sizeof(f));
    f.plan = (char *)(uintptr_t)plan;
    f.flags[RF_BLOSSOM] = blossom;
    f.flags[RF_LIVEKIT] = livekit;
    f.flags[RF_GROUPS] = 1;
    f.flags[RF_PUSH] = 1;
    memset(err, 0, sizeof(*err));
    return relay_fields_check_plan(&f, err);
}

TEST(api_relay_fields_check_plan_table)
{
    static const struct {
        const char *plan;
        int blossom, livekit;
        const char *code; /* NULL = ok */
    } t[] = {
        {"free", 0, 0, NULL},
        {"free", 1, 0, "plan-feature-unavailable"},
        {"free", 0, 1, "plan-feature-unavailable"},
        {"free", 1, 1, "plan-feature-unavailable"},
        {"basic", 1, 1, NULL},
        {"growth", 1, 1, NULL},
        {"growth", 0, 1, NULL},
        {"nope", 0, 0, "invalid-plan"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct relay_error err;
        int rc = plan_check(t[i].plan, t[i].blossom, t[i].livekit, &err);
        if (!t[i].code) {
            if (rc != 0)
                TEST_FAIL_("%s b%d l%d refused: %s", t[i].plan, t[i].blossom, t[i].livekit,
                           err.code);
            continue;
        }
        ASSERT_EQ(rc, -1);
        ASSERT_EQ(err.status, 422);
        ASSERT_STR_EQ(err.code, t[i].code);
    }
}

#define PK1 "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
#define PK2 "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
#define NPUB2 "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"

TEST(api_relay_fields_moderators_parsed)
{
    static const struct {
        const char *json, *want; /* want NULL: refused with 400 */
    } t[] = {
        {"{\"moderators\":[]}", ""},
        {"{\"moderators\":[\"" PK1 "\"]}", PK1},
        {"{\"moderators\":[\"" NPUB2 "\",\"" PK1 "\",\"" PK2 "\"]}", PK2 "," PK1},
        {"{\"moderators\":[\"79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798\"]}",
         PK1},
        {"{\"moderators\":\"" PK1 "\"}", NULL},
        {"{\"moderators\":[1]}", NULL},
        {"{\"moderators\":[\"abc\"]}", NULL},
        {"{\"moderators\":null}", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct relay_fields f;
        struct relay_error err;
        int rc = parse(t[i].json, &f, &err);
        if (!t[i].want) {
            if (rc != -1 || err.status != 400 || !strstr(err.msg, "moderators"))
                TEST_FAIL_("%s: want 400 naming moderators, got %d %s", t[i].json, rc, err.msg);
            continue;
        }
        ASSERT_OK(rc);
        ASSERT_STR_EQ(f.moderators, t[i].want);
        ASSERT_EQ(relay_moderator_count(f.moderators),
                  strlen(t[i].want) ? (strlen(t[i].want) + 1) / 65 : 0);
        relay_fields_free(&f);
    }
    /* Input size is capped before any plan check. */
    char big[64 * 70 + 64] = "{\"moderators\":[";
    for (int i = 0; i < 65; i++)
        strcat(big, i ? ",\"" PK1 "\"" : "\"" PK1 "\"");
    strcat(big, "]}");
    expect_error(big, 400, "invalid-body", "moderators");
}

TEST(api_relay_fields_moderators_capped_by_plan)
{
    static const struct {
        const char *plan;
        int n, ok;
    } t[] = {{"free", 0, 1},  {"free", 1, 1},    {"free", 2, 0},   {"basic", 5, 1},
             {"basic", 6, 0}, {"growth", 20, 1}, {"growth", 21, 0}};
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct relay_fields f = {0};
        struct relay_error err;
        char csv[30 * 65] = "";
        for (int k = 0; k < t[i].n; k++)
            snprintf(csv + strlen(csv), sizeof(csv) - strlen(csv), "%s%064x", k ? "," : "", k + 1);
        f.plan = (char *)(uintptr_t)t[i].plan;
        f.moderators = csv;
        int rc = relay_fields_check_plan(&f, &err);
        if (t[i].ok) {
            ASSERT_OK(rc);
            continue;
        }
        ASSERT_EQ(rc, -1);
        ASSERT_EQ(err.status, 422);
        ASSERT_STR_EQ(err.code, "plan-moderator-limit");
    }
}
