/* nip98_check (PRODUCT.md §3.2): tokens are built here with our own signer and base64, and every
 * rule is exercised both ways. (nostr-tools-made tokens are checked against the running
 * server in test/integration/api-auth.test.mjs.) */
#include "test.h"

#include "api/nip98.h"
#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"

#define NOW 1700000000
#define MAX_AGE 60
#define ORIGIN "http://127.0.0.1:3000"
#define PUBLIC "https://api.example.test"

static const char *const origins[] = {ORIGIN, PUBLIC};
static const struct nip98_policy policy = {origins, 2, MAX_AGE};

enum tamper { T_NONE, T_SIG, T_CONTENT, T_ID };

struct tok_spec {
    const char *u;               /* NULL = no u tag */
    const char *method;          /* NULL = no method tag */
    const char *payload;         /* body hashed into a payload tag; NULL = none */
    const char *bad_payload_hex; /* explicit payload tag value (overrides payload) */
    int64_t created_at;          /* 0 = NOW */
    int kind;                    /* 0 = 27235 */
    enum tamper tamper;
    size_t content_len;  /* filler content */
    const char *content; /* explicit content (overrides the filler) */
};

static struct nostr_keypair test_key(void)
{
    struct nostr_keypair kp;
    uint8_t sk[32];
    ASSERT_OK(nostr_init());
    memset(sk, 0x11, sizeof(sk));
    ASSERT_OK(nostr_keypair_from_seckey(&kp, sk));
    return kp;
}

static void sha_hex(const char *s, char out[65])
{
    uint8_t h[32];
    nostr_sha256(s, strlen(s), h);
    hex_encode(h, 32, out);
    out[64] = '\0';
}

/* The event JSON of a spec (malloc'd). */
static char *token_json(const struct tok_spec *t)
{
    struct nostr_keypair kp = test_key();
    struct nostr_event ev;
    char hash[65];
    nostr_event_init(&ev);
    ev.kind = t->kind ? t->kind : 27235;
    ev.created_at = t->created_at ? t->created_at : NOW;
    if (t->u)
        nostr_event_add_tag2(&ev, "u", t->u);
    if (t->method)
        nostr_event_add_tag2(&ev, "method", t->method);
    if (t->bad_payload_hex) {
        nostr_event_add_tag2(&ev, "payload", t->bad_payload_hex);
    } else if (t->payload) {
        sha_hex(t->payload, hash);
        nostr_event_add_tag2(&ev, "payload", hash);
    }
    char *content = xcalloc(1, t->content_len + 1);
    memset(content, 'c', t->content_len);
    nostr_event_set_content(&ev, t->content ? t->content : content,
                            t->content ? strlen(t->content) : t->content_len);
    free(content);
    ASSERT_OK(nostr_event_sign(&ev, &kp));
    if (t->tamper == T_SIG)
        ev.sig[5] ^= 0x01;
    if (t->tamper == T_ID)
        ev.id[0] ^= 0x80;
    if (t->tamper == T_CONTENT)
        nostr_event_set_content(&ev, "tampered", 8);
    char *json = nostr_event_to_json(&ev, 1);
    ASSERT_NOT_NULL(json);
    nostr_event_free(&ev);
    return json;
}

/* "<scheme> <base64 of json>", padded or not. malloc'd. */
static char *header_of(const char *scheme, const char *json, int padded)
{
    size_t n = 0;
    char *b64 = base64_encode((const uint8_t *)json, strlen(json), &n);
    if (!padded)
        while (n && b64[n - 1] == '=')
            b64[--n] = '\0';
    char *h = xmalloc(strlen(scheme) + n + 2);
    sprintf(h, "%s %s", scheme, b64);
    free(b64);
    return h;
}

static char *make_header(const struct tok_spec *t)
{
    char *json = token_json(t);
    char *h = header_of("Nostr", json, 1);
    free(json);
    return h;
}

static int check(const char *auth, const char *method, const char *target, const char *body,
                 int64_t now, uint8_t pk[32], const char **why)
{
    struct nip98_request req = {auth, method, target, body, body ? strlen(body) : 0, now, 0};
    return nip98_check(&req, &policy, pk, why);
}

static void setup(void)
{
    ASSERT_OK(nostr_init());
    nip98_cache_clear();
}

static const char BODY[] = "{\"subdomain\":\"abc\"}";

static const struct {
    const char *name;
    struct tok_spec tok;
    const char *method, *target, *body;
    int64_t now_delta;
    int ok;
} cases[] = {
    /* accepted */
    {"get", {.u = ORIGIN "/relays", .method = "GET"}, "GET", "/relays", NULL, 0, 1},
    {"method-lowercase", {.u = ORIGIN "/relays", .method = "get"}, "GET", "/relays", NULL, 0, 1},
    {"post-payload",
     {.u = ORIGIN "/relays", .method = "POST", .payload = BODY},
     "POST",
     "/relays",
     BODY,
     0,
     1},
    {"post-no-payload-tag",
     {.u = ORIGIN "/relays", .method = "POST"},
     "POST",
     "/relays",
     BODY,
     0,
     1},
    {"payload-empty-body",
     {.u = ORIGIN "/relays/1/sync", .method = "POST", .payload = ""},
     "POST",
     "/relays/1/sync",
     NULL,
     0,
     1},
    {"public-origin", {.u = PUBLIC "/tenants", .method = "GET"}, "GET", "/tenants", NULL, 0, 1},
    {"u-with-query",
     {.u = ORIGIN "/relays?limit=5", .method = "GET"},
     "GET",
     "/relays?limit=5",
     NULL,
     0,
     1},
    {"u-path-only-query-req",
     {.u = ORIGIN "/relays", .method = "GET"},
     "GET",
     "/relays?limit=5",
     NULL,
     0,
     1},
    {"session-origin", {.u = ORIGIN, .method = NULL}, "GET", "/relays/7", NULL, 0, 1},
    {"session-origin-slash", {.u = ORIGIN "/", .method = NULL}, "PUT", "/relays/7", BODY, 0, 1},
    {"session-public", {.u = PUBLIC "/", .method = NULL}, "POST", "/tenants", NULL, 0, 1},
    {"age-at-limit",
     {.u = ORIGIN "/identity", .method = "GET", .created_at = NOW - MAX_AGE},
     "GET",
     "/identity",
     NULL,
     0,
     1},
    {"future-at-limit",
     {.u = ORIGIN "/identity", .method = "GET", .created_at = NOW + MAX_AGE},
     "GET",
     "/identity",
     NULL,
     0,
     1},
    {"big-but-under-cap",
     {.u = ORIGIN "/identity", .method = "GET", .content_len = 5000},
     "GET",
     "/identity",
     NULL,
     0,
     1},
    /* 8192 bytes of JSON is the limit (the base64 of ~7.9 KB used to be refused at 8192). */
    {"json-just-under-8k",
     {.u = ORIGIN "/identity", .method = "GET", .content_len = 7600},
     "GET",
     "/identity",
     NULL,
     0,
     1},
    /* Escapes and non-ASCII text are outside the allocation-free fast parse
     * (nostr/event_fast.h): the general parser decides these, with the same rules. */
    {"escaped-content",
     {.u = ORIGIN "/relays", .method = "GET", .content = "a \"quote\" \\ and\na line"},
     "GET",
     "/relays",
     NULL,
     0,
     1},
    {"non-ascii-content",
     {.u = ORIGIN "/relays", .method = "GET", .content = "caf\xc3\xa9"},
     "GET",
     "/relays",
     NULL,
     0,
     1},
    /* refused */
    {"escaped-content-bad-sig",
     {.u = ORIGIN "/relays", .method = "GET", .content = "\"", .tamper = T_SIG},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"escaped-content-method-empty",
     {.u = ORIGIN "/relays", .method = "", .content = "\\"},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    /* A present method or payload tag binds the token; an empty one used to bind it to
     * nothing (it was taken as absent). */
    {"method-tag-empty", {.u = ORIGIN "/relays", .method = ""}, "POST", "/relays", BODY, 0, 0},
    {"payload-tag-empty",
     {.u = ORIGIN "/relays", .method = "POST", .bad_payload_hex = ""},
     "POST",
     "/relays",
     BODY,
     0,
     0},
    {"kind-1", {.u = ORIGIN "/relays", .method = "GET", .kind = 1}, "GET", "/relays", NULL, 0, 0},
    {"bad-sig",
     {.u = ORIGIN "/relays", .method = "GET", .tamper = T_SIG},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"bad-id",
     {.u = ORIGIN "/relays", .method = "GET", .tamper = T_ID},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"tampered-content",
     {.u = ORIGIN "/relays", .method = "GET", .tamper = T_CONTENT},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"expired",
     {.u = ORIGIN "/relays", .method = "GET", .created_at = NOW - MAX_AGE - 1},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"future",
     {.u = ORIGIN "/relays", .method = "GET", .created_at = NOW + MAX_AGE + 1},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"wrong-origin",
     {.u = "http://evil.test/relays", .method = "GET"},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"wrong-port",
     {.u = "http://127.0.0.1:3001/relays", .method = "GET"},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"origin-prefix",
     {.u = "http://127.0.0.1:30000/relays", .method = "GET"},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"userinfo-trick",
     {.u = ORIGIN "@evil.test/relays", .method = "GET"},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"https-vs-http",
     {.u = "https://127.0.0.1:3000/relays", .method = "GET"},
     "GET",
     "/relays",
     NULL,
     0,
     0},
    {"session-evil", {.u = "http://evil.test", .method = NULL}, "GET", "/relays", NULL, 0, 0},
    {"no-u", {.u = NULL, .method = "GET"}, "GET", "/relays", NULL, 0, 0},
    {"wrong-path", {.u = ORIGIN "/relays/1", .method = "GET"}, "GET", "/relays/2", NULL, 0, 0},
    {"path-prefix", {.u = ORIGIN "/relays", .method = "GET"}, "GET", "/relays/1", NULL, 0, 0},
    {"trailing-slash", {.u = ORIGIN "/relays/", .method = "GET"}, "GET", "/relays", NULL, 0, 0},
    {"wrong-query",
     {.u = ORIGIN "/relays?tenant=a", .method = "GET"},
     "GET",
     "/relays?tenant=b",
     NULL,
     0,
     0},
    {"wrong-method", {.u = ORIGIN "/relays", .method = "GET"}, "POST", "/relays", BODY, 0, 0},
    {"payload-mismatch",
     {.u = ORIGIN "/relays", .method = "POST", .payload = "{\"subdomain\":\"xyz\"}"},
     "POST",
     "/relays",
     BODY,
     0,
     0},
    {"payload-on-empty-body",
     {.u = ORIGIN "/relays", .method = "POST", .payload = BODY},
     "POST",
     "/relays",
     NULL,
     0,
     0},
    {"payload-not-hex",
     {.u = ORIGIN "/relays", .method = "POST", .bad_payload_hex = "zz"},
     "POST",
     "/relays",
     BODY,
     0,
     0},
    {"oversized-json",
     {.u = ORIGIN "/identity", .method = "GET", .content_len = 8000},
     "GET",
     "/identity",
     NULL,
     0,
     0},
};

TEST(api_nip98_table)
{
    struct nostr_keypair kp = test_key();
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        setup();
        char *h = make_header(&cases[i].tok);
        uint8_t pk[32] = {0};
        const char *why = NULL;
        int rc = check(h, cases[i].method, cases[i].target, cases[i].body, NOW + cases[i].now_delta,
                       pk, &why);
        if ((rc == 0) != cases[i].ok)
            TEST_FAIL_("case %s: rc %d (%s)", cases[i].name, rc, why ? why : "");
        if (rc == 0)
            ASSERT_MEM_EQ(pk, kp.pubkey, 32);
        else
            ASSERT(why && why[0]);
        free(h);
    }
}

static int check_hdr(const char *scheme, const char *json, int padded)
{
    char *h = header_of(scheme, json, padded);
    uint8_t pk[32];
    const char *why = NULL;
    int rc = check(h, "GET", "/identity", NULL, NOW, pk, &why);
    free(h);
    return rc;
}

/* Scheme case-insensitive, base64 with or without '='. The filler makes the JSON length not a
 * multiple of 3 so the padded form really has padding. */
TEST(api_nip98_scheme_and_padding)
{
    struct tok_spec t = {.u = ORIGIN "/identity", .method = "GET"};
    char *json = NULL;
    for (t.content_len = 0;; t.content_len++) {
        json = token_json(&t);
        if (strlen(json) % 3 != 0)
            break;
        free(json);
    }
    static const char *const good[] = {"Nostr", "nostr", "NOSTR", "NoStR"};
    static const char *const bad[] = {"Bearer", "Basic", "Nostr:", "Nost", "Nostrx", ""};
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        setup();
        ASSERT_OK(check_hdr(good[i], json, 1));
        setup();
        ASSERT_OK(check_hdr(good[i], json, 0));
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        setup();
        ASSERT_EQ(check_hdr(bad[i], json, 1), -1);
    }
    free(json);
}

TEST(api_nip98_malformed_headers)
{
    setup();
    uint8_t pk[32];
    const char *why = NULL;
    char *not_json = header_of("Nostr", "hello, world", 1);
    char *not_event = header_of("Nostr", "{\"kind\":27235}", 1);
    char *array = header_of("Nostr", "[1,2,3]", 1);
    const char *const bad[] = {
        NULL,         "",           "Nostr",  "Nostr ",  "Nostr !!!!",
        "Nostr eyJ*", "Nostr ====", not_json, not_event, array,
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        why = NULL;
        if (check(bad[i], "GET", "/identity", NULL, NOW, pk, &why) != -1)
            TEST_FAIL_("header %zu accepted", i);
        ASSERT(why && why[0]);
    }
    free(not_json);
    free(not_event);
    free(array);
}

/* A header above NIP98_MAX_TOKEN_B64 is refused before any decoding. */
TEST(api_nip98_oversized_header)
{
    setup();
    size_t n = NIP98_MAX_TOKEN_B64 + 100;
    char *h = xmalloc(n + 7);
    memcpy(h, "Nostr ", 6);
    memset(h + 6, 'A', n);
    h[n + 6] = '\0';
    uint8_t pk[32];
    const char *why = NULL;
    ASSERT_EQ(check(h, "GET", "/identity", NULL, NOW, pk, &why), -1);
    free(h);
}

/* The verified-token cache must not skip the per-request checks. */
TEST(api_nip98_cache_hit_still_checks_request)
{
    setup();
    struct tok_spec t = {.u = ORIGIN "/relays/1", .method = "GET"};
    char *h = make_header(&t);
    uint8_t pk[32];
    const char *why = NULL;
    ASSERT_OK(check(h, "GET", "/relays/1", NULL, NOW, pk, &why));
    ASSERT_OK(check(h, "GET", "/relays/1", NULL, NOW + 1, pk, &why)); /* cache hit */
    ASSERT_EQ(check(h, "PUT", "/relays/1", BODY, NOW, pk, &why), -1);
    ASSERT_EQ(check(h, "GET", "/relays/2", NULL, NOW, pk, &why), -1);
    ASSERT_EQ(check(h, "GET", "/relays/1", NULL, NOW + MAX_AGE + 1, pk, &why), -1);
    ASSERT_EQ(check(h, "GET", "/relays/1", NULL, NOW - MAX_AGE - 1, pk, &why), -1);
    ASSERT_OK(check(h, "GET", "/relays/1", NULL, NOW, pk, &why));
    free(h);

    /* payload token: cached, then replayed with another body */
    struct tok_spec p = {.u = ORIGIN "/relays", .method = "POST", .payload = BODY};
    h = make_header(&p);
    ASSERT_OK(check(h, "POST", "/relays", BODY, NOW, pk, &why));
    ASSERT_EQ(check(h, "POST", "/relays", "{\"subdomain\":\"evil\"}", NOW, pk, &why), -1);
    free(h);
}

/* A session token is reused on several routes and methods until it expires. */
TEST(api_nip98_session_token_reuse)
{
    setup();
    struct tok_spec t = {.u = ORIGIN, .method = NULL};
    char *h = make_header(&t);
    uint8_t pk[32];
    const char *why = NULL;
    ASSERT_OK(check(h, "GET", "/identity", NULL, NOW, pk, &why));
    ASSERT_OK(check(h, "GET", "/relays?limit=3", NULL, NOW + 10, pk, &why));
    ASSERT_OK(check(h, "POST", "/relays", BODY, NOW + 20, pk, &why));
    ASSERT_OK(check(h, "PUT", "/tenants/ab/billing", BODY, NOW + MAX_AGE, pk, &why));
    ASSERT_EQ(check(h, "GET", "/identity", NULL, NOW + MAX_AGE + 1, pk, &why), -1);
    free(h);
}

/* A token that failed verification is not remembered: it stays refused on every retry, and
 * a good token signed by the same key still passes afterwards. */
TEST(api_nip98_failures_not_cached)
{
    setup();
    struct tok_spec bad = {.u = ORIGIN "/identity", .method = "GET", .tamper = T_SIG};
    struct tok_spec good = {.u = ORIGIN "/identity", .method = "GET"};
    char *h = make_header(&bad);
    char *g = make_header(&good);
    uint8_t pk[32];
    const char *why = NULL;
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(check(h, "GET", "/identity", NULL, NOW, pk, &why), -1);
    ASSERT_OK(check(g, "GET", "/identity", NULL, NOW, pk, &why));
    ASSERT_EQ(check(h, "GET", "/identity", NULL, NOW, pk, &why), -1);
    free(h);
    free(g);
}

/* The cache is keyed by the token's full text: a token that differs from a cached one in one
 * character is not a hit. Tokens over 2 KiB are accepted but never cached. */
TEST(api_nip98_cache_keyed_by_full_text_and_bounded)
{
    setup();
    struct tok_spec t = {.u = ORIGIN "/identity", .method = "GET"};
    char *h = make_header(&t);
    uint8_t pk[32];
    const char *why = NULL;
    ASSERT_OK(check(h, "GET", "/identity", NULL, NOW, pk, &why));
    ASSERT_EQ(nip98_cache_size(), 1);
    size_t at = strlen(h) / 2;
    h[at] = h[at] == 'A' ? 'B' : 'A';
    ASSERT_EQ(check(h, "GET", "/identity", NULL, NOW, pk, &why), -1);
    free(h);

    char target[1900] = "/relays?q=";
    memset(target + 10, 'x', sizeof(target) - 11);
    target[sizeof(target) - 1] = '\0';
    char *u = xmalloc(strlen(ORIGIN) + sizeof(target));
    sprintf(u, "%s%s", ORIGIN, target);
    struct tok_spec big = {.u = u, .method = "GET"};
    h = make_header(&big);
    ASSERT(strlen(h) > 2048 + 6);
    ASSERT_OK(check(h, "GET", target, NULL, NOW, pk, &why));
    ASSERT_OK(check(h, "GET", target, NULL, NOW, pk, &why));
    ASSERT_EQ(check(h, "GET", "/relays", NULL, NOW, pk, &why), -1);
    ASSERT_EQ(nip98_cache_size(), 1);
    free(h);
    free(u);
}
