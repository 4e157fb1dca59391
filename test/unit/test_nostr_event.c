#include "test.h"

#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr_vec.h"
#include "util/util.h"

/* Expected outputs are what Node's JSON.stringify writes for the same strings. */
static const struct {
    const char *in;
    size_t n;
    const char *out;
} esc[] = {
    {"", 0, "\"\""},
    {"plain", 5, "\"plain\""},
    {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""},
    {"\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""},
    {"\x01\x02\x1f", 3, "\"\\u0001\\u0002\\u001f\""},
    {"a\x0b"
     "b\x0e"
     "c",
     5, "\"a\\u000bb\\u000ec\""},
    {"\0", 1, "\"\\u0000\""},
    {"\x7f DEL", 5, "\"\x7f DEL\""},
    {"\xc3\xa9 \xc3\xb1 \xe4\xb8\xad\xe6\x96\x87", 12,
     "\"\xc3\xa9 \xc3\xb1 \xe4\xb8\xad\xe6\x96\x87\""},
    {"\xf0\x9f\x98\x80\xf0\x9f\xa6\x84", 8, "\"\xf0\x9f\x98\x80\xf0\x9f\xa6\x84\""},
    {"\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\xe2\x80\xa8\xe2\x80\xa9\""},
    {"<script>&amp;</script>", 22, "\"<script>&amp;</script>\""},
};

TEST(nostr_event_escaping_matches_json_stringify)
{
    for (size_t i = 0; i < ARRAY_SIZE(esc); i++) {
        struct buf b;
        buf_init(&b, 1024);
        ASSERT_OK(json_append_string(&b, esc[i].in, esc[i].n));
        if (strcmp(b.data, esc[i].out) != 0)
            TEST_FAIL_("case %zu: got %s want %s", i, b.data, esc[i].out);
        buf_free(&b);
    }
}

TEST(nostr_event_escaping_refuses_invalid_utf8)
{
    static const char *const bad[] = {"\xff",     "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe2\x82", "a\x80"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct buf b;
        buf_init(&b, 1024);
        ASSERT_OK(buf_append_str(&b, "x"));
        ASSERT_EQ(json_append_string(&b, bad[i], strlen(bad[i])), -1);
        ASSERT_STR_EQ(b.data, "x");
        buf_free(&b);
    }
}

TEST(nostr_event_escaping_respects_buffer_cap)
{
    struct buf b;
    buf_init(&b, 8);
    ASSERT_OK(buf_append_str(&b, "ab"));
    ASSERT_EQ(json_append_string(&b, "\x01\x01", 2), BUF_TOOBIG);
    ASSERT_STR_EQ(b.data, "ab");
    buf_free(&b);
}

/* The id nostr-tools getEventHash computes for these fields (control characters, quotes,
 * emoji, U+2028, an empty tag, created_at above 2^31). */
TEST(nostr_event_id_matches_nostr_tools)
{
    vec_init();
    struct nostr_event ev;
    nostr_event_init(&ev);
    vec_hex("611df01bfcf85c26ae65453b772d8f1dfd25c264621c0277e1fc1518686faef9", ev.pubkey, 32);
    ev.created_at = 4102444800;
    ev.kind = 1;
    nostr_event_add_tag2(&ev, "t", "a\"b\\c");
    nostr_event_add_tag2(&ev, "x", "\x01\n\xf0\x9f\x98\x80");
    nostr_event_add_tag(&ev, 0, NULL);
    const char *c =
        "ctl \x01\x1f\b\f\n\r\t del \x7f \xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8 / \"q\" \\";
    nostr_event_set_content(&ev, c, strlen(c));
    uint8_t id[32];
    char hex[65];
    ASSERT_OK(nostr_event_compute_id(&ev, id));
    hex_encode(id, 32, hex);
    ASSERT_STR_EQ(hex, "151d81b1dc36a7ae5213c859c367788d589a0c3cb37359b327203ee514b67a9e");
    nostr_event_free(&ev);
}

static void parse_file(const char *name, struct nostr_event *ev)
{
    size_t n = 0;
    char *s = vec_read(name, &n);
    nostr_event_init(ev);
    if (nostr_event_parse(ev, s, n) != 0)
        TEST_FAIL_("cannot parse %s", name);
    free(s);
}

TEST(nostr_event_official_examples_verify)
{
    static const char *const files[] = {"nip59_seal.json", "nip59_wrap.json", "nip17_wrap1.json",
                                        "nip17_wrap2.json"};
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        struct nostr_event ev;
        parse_file(files[i], &ev);
        if (nostr_event_verify(&ev) != 0)
            TEST_FAIL_("%s does not verify", files[i]);
        ev.sig[10] ^= 1;
        ASSERT_EQ(nostr_event_verify(&ev), -1);
        nostr_event_free(&ev);
    }
}

/* 98.md and 47.md examples were edited after signing: the signature is valid over the stated
 * id, but the id is not the hash of the fields. A verifier must recompute the id. */
TEST(nostr_event_edited_examples_are_refused)
{
    static const char *const files[] = {"nip98_event.json", "nip47_info.json"};
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        struct nostr_event ev;
        uint8_t id[32];
        parse_file(files[i], &ev);
        ASSERT_OK(nostr_event_compute_id(&ev, id));
        ASSERT(memcmp(id, ev.id, 32) != 0);
        ASSERT_OK(nostr_schnorr_verify(ev.pubkey, ev.id, ev.sig));
        ASSERT_EQ(nostr_event_verify(&ev), -1);
        nostr_event_free(&ev);
    }
}

TEST(nostr_event_parsed_fields)
{
    vec_init();
    struct nostr_event ev;
    parse_file("nip98_event.json", &ev);
    ASSERT_EQ(ev.kind, 27235);
    ASSERT_EQ(ev.created_at, 1682327852);
    ASSERT_STR_EQ(ev.content, "");
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "u"), "https://api.snort.social/api/v1/n5sp/list");
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "method"), "GET");
    ASSERT_NULL(nostr_event_tag_value(&ev, "payload"));
    nostr_event_free(&ev);
}

TEST(nostr_event_sign_to_json_parse_round_trip)
{
    vec_init();
    struct nostr_keypair kp;
    struct nostr_event ev, back;
    ASSERT_OK(nostr_keypair_generate(&kp));
    nostr_event_init(&ev);
    ev.kind = 30023;
    ev.created_at = 1700000000;
    const char *v[] = {"d", "\xf0\x9f\xa6\x84 slug", "\t"};
    nostr_event_add_tag(&ev, 3, v);
    const char *c = "line1\nline2 \x02 \"quoted\" \\ \xe4\xb8\xad";
    nostr_event_set_content(&ev, c, strlen(c));
    ASSERT_OK(nostr_event_sign(&ev, &kp));
    ASSERT_OK(nostr_event_verify(&ev));
    char *json = nostr_event_to_json(&ev, 1);
    ASSERT_NOT_NULL(json);
    nostr_event_init(&back);
    ASSERT_OK(nostr_event_parse(&back, json, strlen(json)));
    ASSERT_OK(nostr_event_verify(&back));
    ASSERT_MEM_EQ(back.id, ev.id, 32);
    ASSERT_STR_EQ(back.content, c);
    ASSERT_EQ(back.kind, 30023);
    ASSERT_STR_EQ(nostr_event_tag_value(&back, "d"), "\xf0\x9f\xa6\x84 slug");
    cJSON *obj = nostr_event_to_cjson(&ev, 0);
    ASSERT_NOT_NULL(obj);
    ASSERT_NULL(cJSON_GetObjectItem(obj, "sig"));
    ASSERT(cJSON_IsString(cJSON_GetObjectItem(obj, "id")));
    cJSON_Delete(obj);
    free(json);
    nostr_event_free(&ev);
    nostr_event_free(&back);
}

TEST(nostr_event_nul_content_refused_consistently)
{
    vec_init();
    struct nostr_keypair kp;
    struct nostr_event ev;
    struct buf b;
    uint8_t id[32];
    ASSERT_OK(nostr_keypair_generate(&kp));
    nostr_event_init(&ev);
    nostr_event_set_content(&ev, "a\0b", 3);
    ASSERT_EQ(ev.content_len, 3);
    ASSERT_EQ(nostr_event_sign(&ev, &kp), -1);
    ASSERT_EQ(nostr_event_compute_id(&ev, id), -1);
    ASSERT_EQ(nostr_event_verify(&ev), -1);
    ASSERT_NULL(nostr_event_to_json(&ev, 1));
    buf_init(&b, 1024);
    ASSERT_EQ(nostr_event_serialize(&ev, &b), -1);
    buf_free(&b);
    nostr_event_free(&ev);
}

#define PK "\"pubkey\":\"611df01bfcf85c26ae65453b772d8f1dfd25c264621c0277e1fc1518686faef9\""
#define ID "\"id\":\"9dd003c6d3b73b74a85a9ab099469ce251653a7af76f523671ab828acd2a0ef9\""
#define SIG                                                                                        \
    "\"sig\":\""                                                                                   \
    "02fc3facf6621196c32912b1ef53bac8f8bfe9db51c0e7102c073103586b0d29"                             \
    "c3f39bdaa1e62856c20e90b6c7cc5dc34ca8bb6a528872cf6e65e6284519ad73\""
#define EV(...) "{" ID "," PK "," SIG "," __VA_ARGS__ "}"
#define GOOD EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"p\",\"x\"]],\"content\":\"hi\"")

TEST(nostr_event_parse_accepts_well_formed)
{
    static const char *const ok[] = {
        GOOD,
        " \n" GOOD "\r\n\t",
        EV("\"created_at\":0,\"kind\":65535,\"tags\":[],\"content\":\"\""),
        EV("\"created_at\":9007199254740991,\"kind\":0,\"tags\":[[]],\"content\":\"\""),
        EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\\u0001 \\ud83d\\ude00\""),
        EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\\\\u0000\""),
        EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"x\",\"extra\":[1,2]"),
    };
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        struct nostr_event ev;
        nostr_event_init(&ev);
        if (nostr_event_parse(&ev, ok[i], strlen(ok[i])) != 0)
            TEST_FAIL_("refused good event #%zu: %s", i, ok[i]);
        nostr_event_free(&ev);
    }
}

static const char *const malformed[] = {
    "", "[]", "null", "{}", GOOD " x",                                  /* trailing garbage */
    GOOD GOOD,                                                          /* two objects */
    EV("\"created_at\":\"1\",\"kind\":1,\"tags\":[],\"content\":\"\""), /* created_at string */
    EV("\"created_at\":1.5,\"kind\":1,\"tags\":[],\"content\":\"\""),   /* fraction */
    EV("\"created_at\":-1,\"kind\":1,\"tags\":[],\"content\":\"\""),    /* negative */
    EV("\"created_at\":1e300,\"kind\":1,\"tags\":[],\"content\":\"\""), /* huge */
    EV("\"created_at\":9007199254740993,\"kind\":1,\"tags\":[],\"content\":\"\""),
    EV("\"created_at\":null,\"kind\":1,\"tags\":[],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":65536,\"tags\":[],\"content\":\"\""), /* kind too big */
    EV("\"created_at\":1,\"kind\":-1,\"tags\":[],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":true,\"tags\":[],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":1,\"tags\":{},\"content\":\"\""),      /* tags object */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[\"p\"],\"content\":\"\""), /* tag not array */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"p\",1]],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"p\",null]],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":1,\"tags\":[[[\"p\"]]],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":1"), /* content number */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":null"),
    EV("\"created_at\":1,\"kind\":1,\"tags\":[]"),                           /* no content */
    EV("\"created_at\":1,\"kind\":1,\"content\":\"\""),                      /* no tags */
    EV("\"kind\":1,\"tags\":[],\"content\":\"\""),                           /* no created_at */
    EV("\"created_at\":1,\"tags\":[],\"content\":\"\""),                     /* no kind */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"a\\u0000b\""), /* NUL */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"\\u0000\"]],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"raw\ttab\""), /* raw control */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\\ud800\""),  /* lone surrogate */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\xff\""),     /* bad UTF-8 */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"\xc0\x80\"]],\"content\":\"\""),
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"a\",\"content\":\"b\""), /* dup */
    EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\",\"sig\":\"00\""),
    /* bad hex: uppercase, short, long, non-hex, wrong type, missing */
    "{\"id\":\"9DD003C6D3B73B74A85A9AB099469CE251653A7AF76F523671AB828ACD2A0EF9\"," PK "," SIG
    ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{\"id\":\"9dd003c6\"," PK "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{\"id\":\"9dd003c6d3b73b74a85a9ab099469ce251653a7af76f523671ab828acd2a0ef900\"," PK "," SIG
    ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{\"id\":\"9dd003c6d3b73b74a85a9ab099469ce251653a7af76f523671ab828acd2a0efg\"," PK "," SIG
    ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{\"id\":1," PK "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{" PK "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{" ID "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{" ID "," PK ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}", /* no sig */
    "{" ID "," PK ",\"sig\":\"02fc\",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{" ID ",\"pubkey\":\"611DF01BFCF85C26AE65453B772D8F1DFD25C264621C0277E1FC1518686FAEF9\"," SIG
    ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
    "{" ID "," PK "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"", /* cut */
};

TEST(nostr_event_parse_refuses_malformed)
{
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(malformed); i++) {
        struct nostr_event ev;
        nostr_event_init(&ev);
        if (nostr_event_parse(&ev, malformed[i], strlen(malformed[i])) != -1)
            TEST_FAIL_("accepted malformed event #%zu: %s", i, malformed[i]);
        /* Left initialised and empty. */
        ASSERT_STR_EQ(ev.content, "");
        ASSERT_EQ(cJSON_GetArraySize(ev.tags), 0);
        nostr_event_free(&ev);
    }
}

/* Too many tags, and JSON over the size cap. */
TEST(nostr_event_parse_caps)
{
    vec_init();
    struct buf b;
    struct nostr_event ev;
    buf_init(&b, 2 * NOSTR_EVENT_MAX_JSON);
    ASSERT_OK(buf_append_str(&b, "{" ID "," PK "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":["));
    for (int i = 0; i <= NOSTR_EVENT_MAX_TAGS; i++)
        ASSERT_OK(buf_append_str(&b, i ? ",[\"t\"]" : "[\"t\"]"));
    ASSERT_OK(buf_append_str(&b, "],\"content\":\"\"}"));
    nostr_event_init(&ev);
    ASSERT_EQ(nostr_event_parse(&ev, b.data, b.len), -1);
    buf_reset(&b);
    ASSERT_OK(buf_append_str(&b, "{" ID "," PK "," SIG ",\"created_at\":1,\"kind\":1,"
                                 "\"tags\":[],\"content\":\""));
    while (b.len < NOSTR_EVENT_MAX_JSON)
        ASSERT_OK(buf_append_str(&b, "aaaaaaaaaaaaaaaa"));
    ASSERT_OK(buf_append_str(&b, "\"}"));
    ASSERT_EQ(nostr_event_parse(&ev, b.data, b.len), -1);
    /* Just under the cap is fine. */
    buf_reset(&b);
    ASSERT_OK(buf_append_str(&b, "{" ID "," PK "," SIG ",\"created_at\":1,\"kind\":1,"
                                 "\"tags\":[],\"content\":\""));
    while (b.len < NOSTR_EVENT_MAX_JSON - 2)
        ASSERT_OK(buf_append_str(&b, "a"));
    ASSERT_OK(buf_append_str(&b, "\"}"));
    ASSERT_OK(nostr_event_parse(&ev, b.data, b.len));
    nostr_event_free(&ev);
    buf_free(&b);
}

TEST(nostr_event_parse_rumor_without_sig)
{
    vec_init();
    size_t n = 0;
    char *s = vec_read("nip59_rumor.json", &n);
    struct nostr_event ev;
    uint8_t id[32];
    nostr_event_init(&ev);
    ASSERT_EQ(nostr_event_parse(&ev, s, n), -1);
    ASSERT_OK(nostr_event_parse_rumor(&ev, s, n));
    ASSERT_OK(nostr_event_compute_id(&ev, id));
    ASSERT_MEM_EQ(id, ev.id, 32);
    ASSERT_STR_EQ(ev.content, "Are you going to the party tonight?");
    free(s);
    nostr_event_free(&ev);
}
