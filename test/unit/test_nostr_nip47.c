/* NIP-47 messages. The responses and info event below were made by nostr-tools 2.25.2
 * (wallet secret 11..11, client secret 22..22), so parsing is checked against an
 * independent implementation; requests we build are checked here for shape and signature,
 * and decrypted by @getalby/sdk's wallet service in test/integration/billing.test.mjs. */
#include "test.h"

#include "nostr/nip04.h"
#include "nostr/nip44.h"
#include "nostr/nip47.h"

#define WALLET "4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa"
#define CLIENT_SK "2222222222222222222222222222222222222222222222222222222222222222"
#define URI "nostr+walletconnect://" WALLET "?relay=ws%3A%2F%2F127.0.0.1%3A7&secret=" CLIENT_SK

static const char RESP_NIP44[] =
    "{\"kind\":23195,\"created_at\":1700000000,\"tags\":[[\"e\","
    "\"abababababababababababababababababababababababababababababababab\"],[\"p\","
    "\"466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f27\"]],\"content\":"
    "\"ArHHRejAnrG3fSwj0GHHcgTO7wHwqas8Zqu8F1KKNGREp7wMbgaegN+"
    "mErQy75uJYS1obac385gj6SGZWirpUm8nTGD9hfptdga54bxHsxPaPWEeN33/"
    "AadjRcS4GeR2EecuGhr2DvAs03Dh3iX8Cp4JlYKxWMDcKPuOASGWLpyjLm7hxjuUbZzUSw8RQZ5UN40VdqbDWgoKCicT6L"
    "F7bzIg3USGannDPruQAGg5yhI/NxQhEGq7cxAGX2rhZN5iSKHKAKMwWopESR8ZqPRAEF4KwvX+2RLejQQpjB/"
    "NRXYzNmJWq9rlhpXBstsV4DZL7KQh06wDY7Gha71e/8FBaTlT1XnXQTbZmbbgneCC6WXEnK41cXjJUB5tbDbQljhjRrqM/"
    "gJ2oRDz4MtrGcqvBTR3L3kQvY0Y70hKgDRx54/"
    "6fxw=\",\"pubkey\":\"4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa\","
    "\"id\":\"d1f104ea44db576b7f8e331b8b6a27efb609eb331f996275ce1e4433eac70b3f\",\"sig\":"
    "\"34548cdf17fa4c5854e27bf32cd4e14ab7e13bdb07d9ff350a9c4d7351dad8ca4f2c57b76e78c64dac83bffffa8b"
    "2322f8c37ea2b46ef5ecac323b8a5dd5eb2d\"}";
static const char RESP_NIP04_ERR[] =
    "{\"kind\":23195,\"created_at\":1700000000,\"tags\":[[\"e\","
    "\"abababababababababababababababababababababababababababababababab\"]],\"content\":\"EB+"
    "tIOjONRbLa0uvSEMYji9IUEq6Xkg6/"
    "ddDCiwwR5qpCKImi6j9jbi5auksdWC3hi4MxK4XukG9iaY0pE3sri4ThTQjQFf0OVG7stEsoPDVHTpl99DZ1J+/"
    "3abGVmAUcXRRrXj4fR4Udrz6AbfNPNhHYJmIgnlDnFXiZWpcvkM=?iv=Ntg2YREHpFYIkZcqo60m2g==\",\"pubkey\":"
    "\"4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa\",\"id\":"
    "\"513319010994f8cc3c83a22d2f989c73e701bfa84a8a6e532f678e05e2a7dec5\",\"sig\":"
    "\"ff9d8a926f95ccf5b8f48108d1148e51749dd5bb8021cd6359329e442b6c42a38a3c226333865640683d107e0281"
    "719c9dd5e056786d6cd63d62cc18fed032d3\"}";
static const char INFO[] =
    "{\"kind\":13194,\"created_at\":1700000000,\"tags\":[[\"encryption\",\"nip04 "
    "nip44_v2\"],[\"notifications\",\"payment_received payment_sent\"]],\"content\":\"pay_invoice "
    "make_invoice "
    "lookup_invoice\",\"pubkey\":"
    "\"4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa\",\"id\":"
    "\"82b1fd242141d409c076e09b487cc52062cd7a7256bbc8ea6d95d9ea49db8daa\",\"sig\":"
    "\"3a6d77851ded60f55c149e8b85b32081a56d9d115c62800bddd35d0eb2ffd7a4c00aa7a449b09b1eabf98d9d2d5f"
    "3c66c77e4c16f55771b27cbe18bb2c7144e2\"}";

/* Notifications by the same wallet (nostr-tools 2.25.2): payment_received (NIP-44 v2,
 * kind 23197, amount 10000000 msats, payment_hash ab..ab) and payment_sent (NIP-04). */
static const char NOTIFY_NIP44[] =
    "{\"kind\":23197,\"created_at\":1700000000,\"tags\":[[\"p\","
    "\"466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f27\"]],\"content\":\"Ar2/"
    "1vKuVbrodUaIcQrpkNPrQl4huR+qfY9OWjGQg1fXUV2cvMnZsqz1Uc6nnIhQlPrhoknoagB7SMkWhfEY/"
    "TVHiL7Q9UyScF+LybEM4peHQaMTrSyQ2qRmu0Mj4c+"
    "QMttU9oZyByPNJaIbUcTE7g5HX3HlGvV22wV1VVTupVFQRBHWNRcK76scZCIjb0Xq0ybHkkLJ2RTRDZF1s15Cft+"
    "ek8nIkjhv86VT9z3sSgKuXceHOAUDub9efDYXk1nq5m0sk/SF0kJTt41fY0N1oV2/Js2p8g8GBbgul78p4DB7FHXs5Jef/"
    "ikoQK9mHLDHd+sM0/0W558APHmRfnki1aTnIxAZIufABm2P7tCqyb/"
    "4uBgLkNbPwV9TTqhHNrdbQ8h2bXPfUb91vbAYg2ceVeHjR22LOGvcBAZ0rGPWktWCvXX/"
    "Jck5c6lc+5yh5bNfefphohaAw2gWGffcytq+btmTnF93XSm7fzSZ/"
    "RzLVRx7oJeukLMxJQTyBovTH5narUyQS7WKYNI+gQWdQx+Sco+8G+"
    "c8wsEbnefbIhOJCWI21CEyLKcNergnxRYiQa5lpyBsC9KinsGmdDmbsnMclHdybw==\",\"pubkey\":"
    "\"4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa\",\"id\":"
    "\"7196c0e42dfed0d2a17e51a38b8acf24c07df396f2d68944cd36afc24befc9b7\",\"sig\":"
    "\"45b65de0ab2155aebd4291738ffdf8af7d0d71b1b619412ca46bdd46554e527778ebc38dc429420bd2007f964b5e"
    "8e53dfe8643feb159c509f840dc2ccfeb4a2\"}";
static const char NOTIFY_NIP04[] =
    "{\"kind\":23196,\"created_at\":1700000000,\"tags\":[[\"p\","
    "\"466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f27\"]],\"content\":"
    "\"5NOC8JLBukBQchifY7ZieJxQzT3W58XM0EHvDlMGu/"
    "IFfQniGr6e4sde7k4JP4Czdw7imU0+kftpHUyB91MeHqDgMpEzAIdkOT+8hZydRRgtDGsEyA5nBxarCW5C/CX/"
    "uT5P9PdkLAi2o4Iw+PoZEIcBOSQ1AdVecBVTSPU8Mj6L2M2/"
    "OAHltnWUPYvno+aa5rwXmcfZklIQhMklJPIVJgW+yFrwTVZXWiWizu0lM0q6YKtSp+5A7wPRsDvAlSeZ7jnbyN4zm+"
    "ZtL4WHS1NER8vryXejFxwEb+E7Z69qa4gMSz0IM18OQlJwJzwXPLGjotr7sDYQrPVQQr55dX1RfEf4hXpU+"
    "ZOleOq3tzWcJuqZeW19taOjFdZwtnJdNrpu6KZp41JTqBKO+ldfb/"
    "Ge4mh4QnugwaeeMBnFQKhgpa8pMISZmEFk5B2fWyccqxfuvBq3U5RbTvplW05ytnA318jCGheXU1sEfFUnZWoIIeM=?iv="
    "YM5W6aIiXIuoM8vgSAOjtA==\",\"pubkey\":"
    "\"4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa\",\"id\":"
    "\"6b9edb3c63cc1544095082b548e815e53e7837234852122d572941a6488fe77f\",\"sig\":"
    "\"4ddec4ae8c3ebf70d41178df36887a0b6762195f31d2f42cbb8795d34f034e6169c19733b358e4938fe91f5288b2"
    "6681dbdda0d5b12ab23ac8caa1d7839ecca7\"}";

static void load(struct nostr_event *ev, const char *json)
{
    nostr_event_init(ev);
    ASSERT_OK(nostr_event_parse(ev, json, strlen(json)));
    ASSERT_OK(nostr_event_verify(ev));
}

static void setup(struct nwc_uri *u)
{
    const char *err = NULL;
    ASSERT_OK(nostr_init());
    ASSERT_OK(nwc_uri_parse(URI, u, &err));
}

TEST(nwc_info_event_picks_nip44)
{
    struct nwc_uri u;
    struct nostr_event ev;
    struct nwc_info info;
    setup(&u);
    load(&ev, INFO);
    ASSERT_OK(nwc_info_parse(&ev, &info));
    ASSERT_EQ(info.encryption, NWC_NIP44);
    ASSERT_EQ(info.notifications, 1);
    /* No encryption tag: NIP-04. */
    cJSON_Delete(ev.tags);
    ev.tags = cJSON_CreateArray();
    ASSERT_OK(nwc_info_parse(&ev, &info));
    ASSERT_EQ(info.encryption, NWC_NIP04);
    ASSERT_EQ(info.notifications, 0);
    const char *tag[] = {"encryption", "nip04,nip44_v2"}; /* early Alby used commas */
    nostr_event_add_tag(&ev, 2, tag);
    ASSERT_OK(nwc_info_parse(&ev, &info));
    ASSERT_EQ(info.encryption, NWC_NIP44);
    ev.kind = 1;
    ASSERT_EQ(nwc_info_parse(&ev, &info), -1);
    nostr_event_free(&ev);
    nwc_uri_free(&u);
}

TEST(nwc_parse_nip44_result_from_nostr_tools)
{
    struct nwc_uri u;
    struct nostr_event ev;
    struct nwc_response r;
    setup(&u);
    load(&ev, RESP_NIP44);
    ASSERT_OK(nwc_parse_response(&u, &ev, "lookup_invoice", &r));
    ASSERT_NOT_NULL(r.result);
    ASSERT_STR_EQ(r.error_code, "");
    ASSERT_EQ(nwc_tx_is_settled(r.result), 1);
    ASSERT_EQ(nwc_tx_expires_at(r.result), 1700003600);
    ASSERT_STR_EQ(nwc_tx_string(r.result, "invoice"), "lnbc1fake");
    nwc_response_free(&r);
    /* Wrong method, wrong author: refused. */
    ASSERT_EQ(nwc_parse_response(&u, &ev, "pay_invoice", &r), -1);
    ev.pubkey[0] ^= 1;
    ASSERT_EQ(nwc_parse_response(&u, &ev, "lookup_invoice", &r), -1);
    ASSERT_NULL(r.root);
    nostr_event_free(&ev);
    nwc_uri_free(&u);
}

TEST(nwc_parse_nip04_wallet_error_verbatim)
{
    struct nwc_uri u;
    struct nostr_event ev;
    struct nwc_response r;
    setup(&u);
    load(&ev, RESP_NIP04_ERR);
    ASSERT_OK(nwc_parse_response(&u, &ev, "pay_invoice", &r));
    ASSERT_NULL(r.result);
    ASSERT_STR_EQ(r.error_code, "INSUFFICIENT_BALANCE");
    ASSERT_STR_EQ(r.error_message, "not enough sats"); /* newline neutralised */
    nwc_response_free(&r);
    /* Tampered ciphertext: refused. */
    ev.content[3] = ev.content[3] == 'A' ? 'B' : 'A';
    ASSERT_EQ(nwc_parse_response(&u, &ev, "pay_invoice", &r), -1);
    nostr_event_free(&ev);
    nwc_uri_free(&u);
}

static char *decrypt_request(const struct nwc_uri *u, const struct nostr_event *ev, int nip44)
{
    /* The wallet's side: its secret 11..11 with the client's pubkey. */
    uint8_t wsk[32], cpk[32], ck[32];
    char *out = NULL;
    size_t len = 0;
    memset(wsk, 0x11, 32);
    memcpy(cpk, ev->pubkey, 32);
    (void)u;
    if (nip44) {
        ASSERT_OK(nip44_conversation_key(wsk, cpk, ck));
        ASSERT_OK(nip44_decrypt(ck, ev->content, ev->content_len, &out, &len));
    } else {
        ASSERT_OK(nip04_decrypt(wsk, cpk, ev->content, ev->content_len, &out, &len));
    }
    return out;
}

TEST(nwc_build_request_both_encryptions)
{
    struct nwc_uri u;
    setup(&u);
    for (int nip44 = 0; nip44 <= 1; nip44++) {
        struct nostr_event ev;
        nostr_event_init(&ev);
        cJSON *params = cJSON_Parse("{\"amount\":21000,\"description\":\"Caravel\"}");
        ASSERT_OK(nwc_build_request(&u, nip44 ? NWC_NIP44 : NWC_NIP04, "make_invoice", params,
                                    1700000000, 1700000060, &ev));
        cJSON_Delete(params);
        ASSERT_EQ(ev.kind, 23194);
        ASSERT_OK(nostr_event_verify(&ev));
        ASSERT_STR_EQ(nostr_event_tag_value(&ev, "p"), WALLET);
        ASSERT_STR_EQ(nostr_event_tag_value(&ev, "expiration"), "1700000060");
        if (nip44)
            ASSERT_STR_EQ(nostr_event_tag_value(&ev, "encryption"), "nip44_v2");
        else
            ASSERT_NULL(nostr_event_tag_value(&ev, "encryption"));
        ASSERT(memcmp(ev.pubkey, u.secret, 32) != 0);
        char *plain = decrypt_request(&u, &ev, nip44);
        ASSERT_STR_EQ(plain, "{\"method\":\"make_invoice\",\"params\":{\"amount\":21000,"
                             "\"description\":\"Caravel\"}}");
        free(plain);
        nostr_event_free(&ev);
    }
    nwc_uri_free(&u);
}

/* The keys of each client are its own whatever the memo of derived keys holds: more clients
 * of one wallet than the memo keeps, each asked in turn twice, then the memo wiped; every
 * request is signed by its client's key and decrypts with the wallet's, and the answer made
 * by nostr-tools for client 22..22 still parses after the others went by. */
TEST(nwc_keys_of_many_clients_stay_apart)
{
    struct nwc_uri u;
    struct nostr_event ev;
    struct nwc_response r;
    setup(&u);
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            nwc_keys_forget();
        for (int c = 1; c <= 11; c++) {
            struct nostr_keypair kp;
            memset(u.secret, 0x20 + c, 32); /* 21..21 to 2b..2b, with 22..22 among them */
            ASSERT_OK(nostr_keypair_from_seckey(&kp, u.secret));
            nostr_event_init(&ev);
            ASSERT_OK(
                nwc_build_request(&u, NWC_NIP44, "get_info", NULL, 1700000000, 1700000060, &ev));
            ASSERT_OK(nostr_event_verify(&ev));
            ASSERT_MEM_EQ(ev.pubkey, kp.pubkey, 32);
            char *plain = decrypt_request(&u, &ev, 1);
            ASSERT_STR_EQ(plain, "{\"method\":\"get_info\",\"params\":{}}");
            free(plain);
            nostr_event_free(&ev);
        }
        memset(u.secret, 0x22, 32);
        load(&ev, RESP_NIP44);
        ASSERT_OK(nwc_parse_response(&u, &ev, "lookup_invoice", &r));
        nwc_response_free(&r);
        nostr_event_free(&ev);
        memset(u.secret, 0x23, 32); /* another client cannot read client 22..22's answer */
        load(&ev, RESP_NIP44);
        ASSERT_EQ(nwc_parse_response(&u, &ev, "lookup_invoice", &r), -1);
        nostr_event_free(&ev);
    }
    nwc_uri_free(&u);
}

TEST(nwc_settled_heuristics)
{
    static const struct {
        const char *json;
        int settled;
    } T[] = {
        {"{\"state\":\"settled\"}", 1},
        {"{\"state\":\"pending\",\"preimage\":\"\",\"settled_at\":0}", 0},
        {"{\"state\":\"expired\"}", 0},
        {"{\"settled_at\":1700000000}", 1},
        {"{\"preimage\":\"abcd\"}", 1},
        {"{\"preimage\":\"\",\"settled_at\":null}", 0},
        {"{}", 0},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        cJSON *j = cJSON_Parse(T[i].json);
        ASSERT_EQ(nwc_tx_is_settled(j), T[i].settled);
        cJSON_Delete(j);
    }
}

TEST(nwc_parse_notifications_from_nostr_tools)
{
    struct nwc_uri u;
    struct nostr_event ev;
    struct nwc_notification n;
    struct nwc_response r;
    setup(&u);
    load(&ev, NOTIFY_NIP44);
    ASSERT_OK(nwc_parse_notification(&u, &ev, &n));
    ASSERT_STR_EQ(n.type, "payment_received");
    ASSERT_STR_EQ(nwc_tx_string(n.tx, "payment_hash"),
                  "abababababababababababababababababababababababababababababababab");
    ASSERT_EQ(nwc_tx_is_settled(n.tx), 1);
    nwc_notification_free(&n);
    ASSERT_NULL(n.root);
    /* Not a response, and not from another author. */
    ASSERT_EQ(nwc_parse_response(&u, &ev, "lookup_invoice", &r), -1);
    ev.pubkey[0] ^= 1;
    ASSERT_EQ(nwc_parse_notification(&u, &ev, &n), -1);
    nostr_event_free(&ev);
    load(&ev, NOTIFY_NIP04);
    ASSERT_OK(nwc_parse_notification(&u, &ev, &n));
    ASSERT_STR_EQ(n.type, "payment_sent");
    nwc_notification_free(&n);
    ev.content[3] = ev.content[3] == 'A' ? 'B' : 'A';
    ASSERT_EQ(nwc_parse_notification(&u, &ev, &n), -1);
    ev.kind = 23195;
    ASSERT_EQ(nwc_parse_notification(&u, &ev, &n), -1);
    nostr_event_free(&ev);
    nwc_uri_free(&u);
}
