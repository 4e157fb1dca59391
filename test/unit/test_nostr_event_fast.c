/* nostr/event_fast.h: the fast parse either declines or agrees with nostr_event_parse and
 * nostr_event_compute_id, field for field; table-driven, then the same check over many
 * random edits of real events (the property the NIP-98 hot path relies on). */
#include "test.h"

#include "nostr/event.h"
#include "nostr/event_fast.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"

static struct nostr_keypair key(void)
{
    struct nostr_keypair kp;
    uint8_t sk[32];
    ASSERT_OK(nostr_init());
    memset(sk, 0x42, sizeof(sk));
    ASSERT_OK(nostr_keypair_from_seckey(&kp, sk));
    return kp;
}

/* A signed NIP-98-like event's JSON (malloc'd). */
static char *signed_json(const char *content)
{
    struct nostr_keypair kp = key();
    struct nostr_event ev;
    nostr_event_init(&ev);
    ev.kind = 27235;
    ev.created_at = 1700000000;
    nostr_event_add_tag2(&ev, "u", "https://api.example.test/relays/abc?x=1");
    nostr_event_add_tag2(&ev, "method", "GET");
    const char *three[] = {"p", "a b", "c"};
    nostr_event_add_tag(&ev, 3, three);
    nostr_event_add_tag(&ev, 0, NULL);
    nostr_event_set_content(&ev, content, strlen(content));
    ASSERT_OK(nostr_event_sign(&ev, &kp));
    char *json = nostr_event_to_json(&ev, 1);
    ASSERT_NOT_NULL(json);
    nostr_event_free(&ev);
    return json;
}

static int str_is(const struct nostr_fast_str *s, const char *v)
{
    return v && strlen(v) == s->n && memcmp(s->p, v, s->n) == 0;
}

/* The property: a fast parse (0) implies the general parse accepts the text with the same
 * fields and id. Returns the fast result. */
static int check_agrees(const char *json, size_t len)
{
    struct nostr_fast_event f;
    struct nostr_event ev;
    uint8_t id[32];
    if (nostr_event_parse_fast(json, len, &f) != 0)
        return 1;
    nostr_event_init(&ev);
    if (nostr_event_parse(&ev, json, len) != 0)
        TEST_FAIL_("fast parse accepted what nostr_event_parse refuses: %.*s", (int)len, json);
    ASSERT_OK(nostr_event_compute_id(&ev, id));
    ASSERT_MEM_EQ(f.computed_id, id, 32);
    ASSERT_MEM_EQ(f.id, ev.id, 32);
    ASSERT_MEM_EQ(f.pubkey, ev.pubkey, 32);
    ASSERT_MEM_EQ(f.sig, ev.sig, 64);
    ASSERT_EQ(f.created_at, ev.created_at);
    ASSERT_EQ(f.kind, ev.kind);
    ASSERT(str_is(&f.content, ev.content));
    ASSERT_EQ(f.n_tags, (size_t)cJSON_GetArraySize(ev.tags));
    for (size_t i = 0; i < f.n_tags; i++) {
        const cJSON *t = cJSON_GetArrayItem(ev.tags, (int)i);
        ASSERT_EQ(f.tags[i].n_values, (size_t)cJSON_GetArraySize(t));
        if (f.tags[i].n_values >= 1)
            ASSERT(str_is(&f.tags[i].name, cJSON_GetArrayItem(t, 0)->valuestring));
        if (f.tags[i].n_values >= 2)
            ASSERT(str_is(&f.tags[i].value, cJSON_GetArrayItem(t, 1)->valuestring));
    }
    nostr_event_free(&ev);
    return 0;
}

TEST(nostr_event_fast_parses_signed_events)
{
    static const char *const contents[] = {"", "hello world", "{}[],:\"x"};
    for (size_t i = 0; i < ARRAY_SIZE(contents); i++) {
        char *json = signed_json(contents[i]);
        int fast = check_agrees(json, strlen(json));
        /* a quote is escaped in JSON: declined, every other content parsed */
        ASSERT_EQ(fast, i == 2 ? 1 : 0);
        if (fast == 0) {
            struct nostr_fast_event f;
            ASSERT_OK(nostr_event_parse_fast(json, strlen(json), &f));
            ASSERT_MEM_EQ(f.id, f.computed_id, 32);
            ASSERT_EQ(f.n_tags, 4);
            ASSERT(str_is(&f.tags[0].value, "https://api.example.test/relays/abc?x=1"));
            ASSERT_EQ(f.tags[2].n_values, 3);
            ASSERT_EQ(f.tags[3].n_values, 0);
        }
        free(json);
    }
}

#define PK "\"pubkey\":\"611df01bfcf85c26ae65453b772d8f1dfd25c264621c0277e1fc1518686faef9\""
#define ID "\"id\":\"9dd003c6d3b73b74a85a9ab099469ce251653a7af76f523671ab828acd2a0ef9\""
#define SIG                                                                                        \
    "\"sig\":\""                                                                                   \
    "02fc3facf6621196c32912b1ef53bac8f8bfe9db51c0e7102c073103586b0d29"                             \
    "c3f39bdaa1e62856c20e90b6c7cc5dc34ca8bb6a528872cf6e65e6284519ad73\""
#define EV(...) "{" ID "," PK "," SIG "," __VA_ARGS__ "}"
#define REST "\"created_at\":1,\"kind\":1,\"tags\":[[\"p\",\"x\"]],\"content\":\"hi\""

/* fast: 0 parsed, 1 declined. Either way check_agrees holds. */
static const struct {
    const char *json;
    int fast;
} cases[] = {
    {EV(REST), 0},
    {" \r\n\t" EV(REST) " \n", 0},
    {"{ " ID " , " PK " ,\n" SIG ", \"created_at\" : 1 , \"kind\":1, \"tags\" : [ [ \"p\" , "
     "\"x y\" ] , [ ] ] , \"content\" : \" spaced \" }",
     0},
    {EV("\"created_at\":0,\"kind\":65535,\"tags\":[],\"content\":\"\""), 0},
    {EV("\"created_at\":9007199254740991,\"kind\":0,\"tags\":[[]],\"content\":\"\""), 0},
    {"{\"content\":\"hi\",\"tags\":[],\"kind\":7," SIG ",\"created_at\":5," PK "," ID "}", 0},
    /* declined: beyond the fast subset (the general parser accepts these) */
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"a\\\"b\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"caf\xc3\xa9\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"x\",\"extra\":1"), 1},
    {"\xef\xbb\xbf" EV(REST), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"a\\/b\"]],\"content\":\"\""), 1},
    /* declined: the general parser refuses these too */
    {EV("\"created_at\":1.5,\"kind\":1,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":1e3,\"kind\":1,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":01,\"kind\":1,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":-1,\"kind\":1,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":9007199254740992,\"kind\":1,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":12345678901234567,\"kind\":1,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":1,\"kind\":65536,\"tags\":[],\"content\":\"\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"a\",\"content\":\"b\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"raw\ttab\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"p\",1]],\"content\":\"\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[\"p\"],\"content\":\"\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[[\"p\"],],\"content\":\"\""), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\","), 1},
    {EV("\"created_at\":1,\"kind\":1,\"tags\":[]"), 1},
    {EV(REST) "x", 1},
    {EV(REST) EV(REST), 1},
    {"{" ID "," PK ",\"sig\":\"02fc\",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
     1},
    {"{\"id\":\"9DD003C6D3B73B74A85A9AB099469CE251653A7AF76F523671AB828ACD2A0EF9\"," PK "," SIG
     ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}",
     1},
    {"{" ID "," PK "," SIG ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"", 1},
    {"", 1},
    {"{}", 1},
};

TEST(nostr_event_fast_table)
{
    ASSERT_OK(nostr_init());
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (check_agrees(cases[i].json, strlen(cases[i].json)) != cases[i].fast)
            TEST_FAIL_("case #%zu: expected %s: %s", i, cases[i].fast ? "declined" : "parsed",
                       cases[i].json);
    }
}

/* More tags than the fast parse keeps: declined, and the general parser decides. */
TEST(nostr_event_fast_declines_many_tags)
{
    char json[4096];
    int n = snprintf(json, sizeof(json),
                     "{" ID "," PK "," SIG ",\"created_at\":1,\"kind\":1,"
                     "\"tags\":[");
    for (int i = 0; i <= NOSTR_FAST_MAX_TAGS; i++)
        n += snprintf(json + n, sizeof(json) - (size_t)n, "%s[\"t\"]", i ? "," : "");
    n += snprintf(json + n, sizeof(json) - (size_t)n, "],\"content\":\"\"}");
    ASSERT_OK(nostr_init());
    ASSERT_EQ(check_agrees(json, (size_t)n), 1);
}

static uint64_t rng = 0x243f6a8885a308d3u;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random edits of a real event: one to three bytes replaced (often by JSON punctuation,
 * digits or whitespace), deleted or inserted. Whatever the fast parse accepts, the general
 * parser must accept identically (check_agrees aborts otherwise). */
TEST_TIMEOUT(nostr_event_fast_random_edits_agree, 60)
{
    static const char alphabet[] = "{}[],:\" \t\n\\0123456789abcdefx.-eE\x01\x80";
    char *base = signed_json("some content");
    size_t base_len = strlen(base);
    char *buf = xmalloc(base_len + 8);
    int parsed = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = base_len;
        memcpy(buf, base, base_len);
        int edits = 1 + (int)(next_rand() % 3);
        for (int e = 0; e < edits && len > 0; e++) {
            size_t at = next_rand() % len;
            char ch = alphabet[next_rand() % (sizeof(alphabet) - 1)];
            switch (next_rand() % 3) {
            case 0:
                buf[at] = ch;
                break;
            case 1:
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            default:
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = ch;
                len++;
            }
        }
        if (check_agrees(buf, len) == 0)
            parsed++;
    }
    /* Edits inside the content, the tags' strings or between tokens keep it parseable. */
    ASSERT_GT(parsed, 100);
    free(buf);
    free(base);
}
