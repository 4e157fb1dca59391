#include "test.h"

#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip44.h"
#include "nostr_vec.h"
#include "util/util.h"

/* Official paulmillr/nip44 vectors (sha256 269ed0f6…5040, the checksum printed in 44.md). */
static cJSON *group(cJSON *root, const char *validity, const char *name)
{
    cJSON *g =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "v2"), validity), name);
    if (!g)
        TEST_FAIL_("no group %s.%s", validity, name);
    return g;
}

TEST(nostr_nip44_vectors_file_checksum)
{
    size_t n = 0;
    uint8_t h[32];
    char hex[65];
    char *s = vec_read("nip44.vectors.json", &n);
    nostr_sha256(s, n, h);
    hex_encode(h, 32, hex);
    ASSERT_STR_EQ(hex, "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040");
    free(s);
}

TEST(nostr_nip44_valid_conversation_keys)
{
    vec_init();
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "valid", "get_conversation_key"))
    {
        uint8_t sk[32], pk[32], want[32], got[32];
        vec_hex(vec_str(v, "sec1"), sk, 32);
        vec_hex(vec_str(v, "pub2"), pk, 32);
        vec_hex(vec_str(v, "conversation_key"), want, 32);
        ASSERT_OK(nip44_conversation_key(sk, pk, got));
        ASSERT_MEM_EQ(got, want, 32);
        count++;
    }
    ASSERT_EQ(count, 35);
    cJSON_Delete(root);
}

TEST(nostr_nip44_valid_message_keys)
{
    vec_init();
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    cJSON *g = group(root, "valid", "get_message_keys");
    uint8_t ck[32];
    int count = 0;
    vec_hex(vec_str(g, "conversation_key"), ck, 32);
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(g, "keys"))
    {
        uint8_t nonce[32], k[32], n12[12], h[32], wk[32], wn[12], wh[32];
        vec_hex(vec_str(v, "nonce"), nonce, 32);
        vec_hex(vec_str(v, "chacha_key"), wk, 32);
        vec_hex(vec_str(v, "chacha_nonce"), wn, 12);
        vec_hex(vec_str(v, "hmac_key"), wh, 32);
        ASSERT_OK(nip44_message_keys(ck, nonce, k, n12, h));
        ASSERT_MEM_EQ(k, wk, 32);
        ASSERT_MEM_EQ(n12, wn, 12);
        ASSERT_MEM_EQ(h, wh, 32);
        count++;
    }
    ASSERT_EQ(count, 32);
    cJSON_Delete(root);
}

TEST(nostr_nip44_valid_padded_lengths)
{
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "valid", "calc_padded_len"))
    {
        size_t in = (size_t)cJSON_GetArrayItem(v, 0)->valuedouble;
        size_t want = (size_t)cJSON_GetArrayItem(v, 1)->valuedouble;
        if (nip44_calc_padded_len(in) != want)
            TEST_FAIL_("padded(%zu) = %zu, want %zu", in, nip44_calc_padded_len(in), want);
        count++;
    }
    ASSERT_EQ(count, 24);
    cJSON_Delete(root);
}

TEST(nostr_nip44_valid_encrypt_decrypt)
{
    vec_init();
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "valid", "encrypt_decrypt"))
    {
        struct nostr_keypair k1, k2;
        uint8_t sk[32], ck[32], want_ck[32], nonce[32];
        char *payload = NULL, *plain = NULL;
        size_t plen = 0;
        const char *pt = vec_str(v, "plaintext");
        vec_hex(vec_str(v, "sec1"), sk, 32);
        ASSERT_OK(nostr_keypair_from_seckey(&k1, sk));
        vec_hex(vec_str(v, "sec2"), sk, 32);
        ASSERT_OK(nostr_keypair_from_seckey(&k2, sk));
        vec_hex(vec_str(v, "conversation_key"), want_ck, 32);
        vec_hex(vec_str(v, "nonce"), nonce, 32);
        ASSERT_OK(nip44_conversation_key(k1.seckey, k2.pubkey, ck));
        ASSERT_MEM_EQ(ck, want_ck, 32);
        ASSERT_OK(nip44_encrypt(ck, pt, strlen(pt), nonce, &payload));
        ASSERT_STR_EQ(payload, vec_str(v, "payload"));
        /* The other side derives the same key and decrypts. */
        ASSERT_OK(nip44_conversation_key(k2.seckey, k1.pubkey, ck));
        ASSERT_MEM_EQ(ck, want_ck, 32);
        ASSERT_OK(nip44_decrypt(ck, payload, strlen(payload), &plain, &plen));
        ASSERT_EQ(plen, strlen(pt));
        ASSERT_STR_EQ(plain, pt);
        free(payload);
        free(plain);
        count++;
    }
    ASSERT_EQ(count, 10);
    cJSON_Delete(root);
}

static void sha_hex(const void *p, size_t n, char hex[65])
{
    uint8_t h[32];
    nostr_sha256(p, n, h);
    hex_encode(h, 32, hex);
}

TEST(nostr_nip44_valid_long_messages)
{
    vec_init();
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "valid", "encrypt_decrypt_long_msg"))
    {
        uint8_t ck[32], nonce[32];
        const char *pat = vec_str(v, "pattern");
        size_t rep = (size_t)cJSON_GetObjectItem(v, "repeat")->valuedouble, pl = strlen(pat);
        char *pt = xmalloc(rep * pl + 1), *payload = NULL, *back = NULL, hex[65];
        for (size_t i = 0; i < rep; i++)
            memcpy(pt + i * pl, pat, pl);
        pt[rep * pl] = '\0';
        vec_hex(vec_str(v, "conversation_key"), ck, 32);
        vec_hex(vec_str(v, "nonce"), nonce, 32);
        sha_hex(pt, rep * pl, hex);
        ASSERT_STR_EQ(hex, vec_str(v, "plaintext_sha256"));
        ASSERT_OK(nip44_encrypt(ck, pt, rep * pl, nonce, &payload));
        sha_hex(payload, strlen(payload), hex);
        ASSERT_STR_EQ(hex, vec_str(v, "payload_sha256"));
        size_t n = 0;
        ASSERT_OK(nip44_decrypt(ck, payload, strlen(payload), &back, &n));
        ASSERT_EQ(n, rep * pl);
        ASSERT_MEM_EQ(back, pt, n);
        free(pt);
        free(payload);
        free(back);
        count++;
    }
    ASSERT_EQ(count, 3);
    cJSON_Delete(root);
}

TEST(nostr_nip44_invalid_msg_lengths)
{
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    uint8_t ck[32] = {1};
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "invalid", "encrypt_msg_lengths"))
    {
        size_t n = (size_t)v->valuedouble;
        char *pt = xcalloc(1, n + 1), *out = (char *)1;
        memset(pt, 'a', n);
        ASSERT_EQ(nip44_encrypt(ck, pt, n, NULL, &out), -1);
        ASSERT_NULL(out);
        free(pt);
        count++;
    }
    ASSERT_EQ(count, 4);
    cJSON_Delete(root);
}

TEST(nostr_nip44_invalid_conversation_keys)
{
    vec_init();
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "invalid", "get_conversation_key"))
    {
        uint8_t sk[32], pk[32], out[32];
        vec_hex(vec_str(v, "sec1"), sk, 32);
        vec_hex(vec_str(v, "pub2"), pk, 32);
        if (nip44_conversation_key(sk, pk, out) != -1)
            TEST_FAIL_("accepted: %s", vec_str(v, "note"));
        count++;
    }
    ASSERT_EQ(count, 8);
    cJSON_Delete(root);
}

TEST(nostr_nip44_invalid_decrypt)
{
    cJSON *root = vec_json("nip44.vectors.json"), *v;
    int count = 0;
    cJSON_ArrayForEach(v, group(root, "invalid", "decrypt"))
    {
        uint8_t ck[32];
        char *out = (char *)1;
        const char *p = vec_str(v, "payload");
        vec_hex(vec_str(v, "conversation_key"), ck, 32);
        if (nip44_decrypt(ck, p, strlen(p), &out, NULL) != -1)
            TEST_FAIL_("accepted: %s", vec_str(v, "note"));
        ASSERT_NULL(out);
        count++;
    }
    ASSERT_EQ(count, 12);
    cJSON_Delete(root);
}

/* Every single-bit change of a valid payload is refused (MAC covers nonce and ciphertext,
 * version byte is checked), and so is an unpadded or oversized payload. */
TEST(nostr_nip44_tampering_refused)
{
    uint8_t ck[32], nonce[32] = {0};
    char *payload = NULL, *out = NULL;
    memset(ck, 7, sizeof(ck));
    ASSERT_OK(nip44_encrypt(ck, "hello", 5, nonce, &payload));
    size_t n = strlen(payload);
    for (size_t i = 0; i < n; i++) {
        char saved = payload[i];
        payload[i] = saved == 'A' ? 'B' : 'A';
        if (payload[i] != saved && nip44_decrypt(ck, payload, n, &out, NULL) == 0)
            TEST_FAIL_("tampered byte %zu accepted", i);
        payload[i] = saved;
    }
    ASSERT_OK(nip44_decrypt(ck, payload, n, &out, NULL));
    ASSERT_STR_EQ(out, "hello");
    free(out);
    ASSERT_EQ(nip44_decrypt(ck, payload, n - 1, &out, NULL), -1);
    free(payload);
    char *big = xmalloc(90000);
    memset(big, 'A', 90000);
    ASSERT_EQ(nip44_decrypt(ck, big, 90000, &out, NULL), -1);
    free(big);
    ASSERT_EQ(nip44_decrypt(ck, "", 0, &out, NULL), -1);
}

TEST(nostr_nip44_random_nonce_round_trip)
{
    vec_init();
    uint8_t ck[32];
    char *a = NULL, *b = NULL, *out = NULL;
    memset(ck, 9, sizeof(ck));
    ASSERT_OK(nip44_encrypt(ck, "same", 4, NULL, &a));
    ASSERT_OK(nip44_encrypt(ck, "same", 4, NULL, &b));
    ASSERT(strcmp(a, b) != 0);
    ASSERT_OK(nip44_decrypt(ck, b, strlen(b), &out, NULL));
    ASSERT_STR_EQ(out, "same");
    free(a);
    free(b);
    free(out);
}
