#include "test.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nostr/nip98.h"
#include "net/nip86.h"
#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"

TEST(nip86_target_url_table)
{
    static const struct {
        const char *tmpl, *host, *want;
    } cases[] = {
        {NULL, "r1.relays.example", "https://r1.relays.example/"},
        {"", "r1.relays.example", "https://r1.relays.example/"},
        {"http://127.0.0.1:4000", "r1.relays.example", "http://127.0.0.1:4000/"},
        {"http://127.0.0.1:4000/", "r1.x", "http://127.0.0.1:4000/"},
        {"https://{host}/", "r1.x", "https://r1.x/"},
        {"http://zooid:3334/{host}/nip86", "r1.x", "http://zooid:3334/r1.x/nip86"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = nip86_target_url(cases[i].tmpl, cases[i].host);
        ASSERT_STR_EQ(got, cases[i].want);
        free(got);
    }
}

/* The header is a kind 27235 event signed by the key, u = the relay URL, method POST and
 * payload = sha256 of the exact body bytes (NIP-86 requires it; khatru compares it). */
TEST(nip86_auth_header_signs_u_method_payload)
{
    struct nostr_keypair kp;
    struct nostr_event ev;
    uint8_t *json = NULL, hash[32];
    size_t n = 0;
    char hash_hex[65], pk_hex[65];
    const char *body = "{\"method\":\"createclaim\",\"params\":[\"abc\"]}";
    ASSERT_OK(nostr_init());
    ASSERT_OK(nostr_keypair_generate(&kp));
    char *h = nip98_auth_header(&kp, "https://r1.x/", "POST", body, strlen(body), 1700000000);
    ASSERT_NOT_NULL(h);
    ASSERT_OK(strncmp(h, "Authorization: Nostr ", 21));
    ASSERT_OK(base64_decode(h + 21, strlen(h + 21), 0, &json, &n));
    nostr_event_init(&ev);
    ASSERT_OK(nostr_event_parse(&ev, (const char *)json, n));
    ASSERT_OK(nostr_event_verify(&ev));
    ASSERT_EQ(ev.kind, 27235);
    ASSERT_EQ(ev.created_at, 1700000000);
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "u"), "https://r1.x/");
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "method"), "POST");
    nostr_sha256(body, strlen(body), hash);
    hex_encode(hash, 32, hash_hex);
    ASSERT_STR_EQ(nostr_event_tag_value(&ev, "payload"), hash_hex);
    hex_encode(kp.pubkey, 32, pk_hex);
    char ev_pk[65];
    hex_encode(ev.pubkey, 32, ev_pk);
    ASSERT_STR_EQ(ev_pk, pk_hex);
    nostr_event_free(&ev);
    free(json);
    free(h);
}

/* A call with a host that could smuggle a header is refused before anything is sent. */
TEST(nip86_call_refuses_bad_hosts)
{
    struct nostr_keypair kp;
    ASSERT_OK(nostr_init());
    ASSERT_OK(nostr_keypair_generate(&kp));
    ASSERT_EQ(nip86_call(NULL, "r1.x", &kp, "listclaims", NULL, NULL, NULL), -1);
    uv_loop_t loop;
    struct nip86 *c = NULL;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(nip86_new(&c, &loop, NULL, 0));
    ASSERT_EQ(nip86_call(c, "r1.x\r\nX-Evil: 1", &kp, "listclaims", NULL, NULL, NULL), -1);
    ASSERT_EQ(nip86_call(c, "", &kp, "listclaims", NULL, NULL, NULL), -1);
    ASSERT_EQ(nip86_call(c, "R1.X", &kp, "listclaims", NULL, NULL, NULL), -1);
    ASSERT_EQ(nip86_active(c), 0);
    nip86_close(c, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
}
