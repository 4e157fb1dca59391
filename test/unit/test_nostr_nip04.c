#include "test.h"

#include "nostr/keys.h"
#include "nostr/nip04.h"
#include "nostr_vec.h"
#include "util/util.h"

/* go-nostr vectors from nostr-tools nip04.test.ts. */
#define SK1 "91ba716fa9e7ea2fcbad360cf4f8e0d312f73984da63d90f524ad61a6a1e7dbe"
#define SK2 "96f6fa197aa07477ab88f6981118466ae3a982faab8ad5db9d5426870c73d220"

static const char big_payload[] =
    "6f8dMstm+udOu7yipSn33orTmwQpWbtfuY95NH+eTU1kArysWJIDkYgI2D25EAGIDJsNd45jOJ2NbVOhFiL3ZP/NWsTw"
    "Xokk34iyHyA/lkjzugQ1bHXoMD1fP/Ay4hB4al1NHb8HXHKZaxPrErwdRDb8qa/I6dXb/1xxyVvNQBHHvmsM5yIFaPwn"
    "CN1DZqXf2KbTA/Ekz7Hy+7R+Sy3TXLQDFpWYqykppkXc7Fs0qSuPRyxz5+anuN0dxZa9GTwTEnBrZPbthKkNRrvZMdTG"
    "J6WumOh9aUq8OJJWy9aOgsXvs7qjN1UqcCqQqYaVnEOhCaqWNDsVtsFrVDj+SaLIBvCiomwF4C4nIgngJ5I69tx0UNI0"
    "q+ZnvOGQZ7m1PpW2NYP7Yw43HJNdeUEQAmdCPnh/PJwzLTnIxHmQU7n7SPlMdV0SFa6H8y2HHvex697GAkyE5t8c2uO2"
    "4OnqIwF1tR3blIqXzTSRl0GA6QvrSj2p4UtnWjvF7xT7RiIEyTtgU/AsihTrXyXzWWZaIBJogpgw6erlZqWjCH7sZy/W"
    "oGYEiblobOAqMYxax6vRbeuGtoYksr/myX+x9rfLrYuoDRTw4woXOLmMrrj+Mf0TbAgc3SjdkqdsPU1553rlSqIEZXuF"
    "goWmxvVQDtekgTYyS97G81TDSK9nTJT5ilku8NVq2LgtBXGwsNIw/xekcOUzJke3kpnFPutNaexR1VF3ohIuqRKYRGcd"
    "8ADJP2lfwMcaGRiplAmFoaVS1YUhQwYFNq9rMLf7YauRGV4BJg/t9srdGxf5RoKCvRo+XM/nLxxysTR9MVaEP/3lDqjw"
    "ChMxs+eWfLHE5vRWV8hUEqdrWNZV29gsx5nQpzJ4PARGZVu310pQzc6JAlc2XAhhFk6RamkYJnmCSMnb/RblzIATBi2k"
    "NrCVAlaXIon188inB62rEpZGPkRIP7PUfu27S/elLQHBHeGDsxOXsBRo1gl3te+raoBHsxo6zvRnYbwdAQa5taDE63eh"
    "+fT6kFI+xYmXNAQkU8Dp0MVhEh4JQI06Ni/AKrvYpC95TXXIphZcF+/Pv/vaGkhG2X9S3uhugwWK"
    "?iv=2vWkOQQi0WynNJz/aZ4k2g==";

static void keys(struct nostr_keypair *k1, struct nostr_keypair *k2)
{
    uint8_t sk[32];
    vec_init();
    vec_hex(SK1, sk, 32);
    ASSERT_OK(nostr_keypair_from_seckey(k1, sk));
    vec_hex(SK2, sk, 32);
    ASSERT_OK(nostr_keypair_from_seckey(k2, sk));
}

TEST(nostr_nip04_go_nostr_vectors)
{
    struct nostr_keypair k1, k2;
    char *out = NULL, z[801];
    size_t n = 0;
    keys(&k1, &k2);
    const char *p = "zJxfaJ32rN5Dg1ODjOlEew==?iv=EV5bUjcc4OX2Km/zPp4ndQ==";
    ASSERT_OK(nip04_decrypt(k2.seckey, k1.pubkey, p, strlen(p), &out, &n));
    ASSERT_EQ(n, 6);
    ASSERT_STR_EQ(out, "nanana");
    free(out);
    /* Shared secret is symmetric. */
    ASSERT_OK(nip04_decrypt(k1.seckey, k2.pubkey, p, strlen(p), &out, &n));
    ASSERT_STR_EQ(out, "nanana");
    free(out);
    memset(z, 'z', 800);
    z[800] = '\0';
    ASSERT_OK(nip04_decrypt(k2.seckey, k1.pubkey, big_payload, strlen(big_payload), &out, &n));
    ASSERT_EQ(n, 800);
    ASSERT_STR_EQ(out, z);
    free(out);
}

TEST(nostr_nip04_round_trip_lengths)
{
    struct nostr_keypair k1, k2;
    char msg[70];
    keys(&k1, &k2);
    for (size_t len = 0; len < sizeof(msg); len++) {
        char *payload = NULL, *out = NULL;
        size_t n = 0;
        memset(msg, 'm', len);
        ASSERT_OK(nip04_encrypt(k1.seckey, k2.pubkey, msg, len, &payload));
        ASSERT_NOT_NULL(strstr(payload, "?iv="));
        ASSERT_OK(nip04_decrypt(k2.seckey, k1.pubkey, payload, strlen(payload), &out, &n));
        ASSERT_EQ(n, len);
        ASSERT_MEM_EQ(out, msg, len);
        free(payload);
        free(out);
    }
}

TEST(nostr_nip04_malformed_payloads)
{
    static const char *const bad[] = {
        "",
        "zJxfaJ32rN5Dg1ODjOlEew==",                           /* no ?iv= */
        "zJxfaJ32rN5Dg1ODjOlEew==?iv=",                       /* empty iv */
        "zJxfaJ32rN5Dg1ODjOlEew==?iv=EV5bUjcc4OX2Km/zPp4n",   /* iv 12 bytes */
        "zJxfaJ32rN5Dg1ODjOlEew==?iv=EV5bUjcc4OX2Km/zPp4ndQ", /* iv unpadded */
        "zJxfaJ32rN5Dg1ODjOlEew==?iv=EV5bUjcc4OX2Km/zPp4ndQ==?iv=x",
        "?iv=EV5bUjcc4OX2Km/zPp4ndQ==",                         /* empty ciphertext */
        "zJxfaJ32rN5Dg1ODjOl=?iv=EV5bUjcc4OX2Km/zPp4ndQ==",     /* bad base64 */
        "zJxfaJ32rN5Dg1ODjOlE?iv=EV5bUjcc4OX2Km/zPp4ndQ==",     /* 15 bytes */
        "zJxfaJ32rN5Dg1ODjOlEew==?iv=AAAAAAAAAAAAAAAAAAAAAA==", /* wrong iv: bad padding */
        "zJxfaJ32rN5Dg1ODjOlEew== ?iv=EV5bUjcc4OX2Km/zPp4ndQ==",
    };
    struct nostr_keypair k1, k2;
    keys(&k1, &k2);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char *out = (char *)1;
        if (nip04_decrypt(k2.seckey, k1.pubkey, bad[i], strlen(bad[i]), &out, NULL) != -1)
            TEST_FAIL_("accepted malformed payload #%zu", i);
        ASSERT_NULL(out);
    }
}

/* A block whose PKCS#7 padding is wrong (decrypted under another key) is refused rather than
 * returned as garbage; over many keys at least most must be refused. */
TEST(nostr_nip04_padding_checked)
{
    struct nostr_keypair k1, k2, other;
    char *payload = NULL;
    int refused = 0;
    keys(&k1, &k2);
    ASSERT_OK(nip04_encrypt(k1.seckey, k2.pubkey, "secret message", 14, &payload));
    for (int i = 0; i < 64; i++) {
        char *out = NULL;
        ASSERT_OK(nostr_keypair_generate(&other));
        if (nip04_decrypt(other.seckey, k1.pubkey, payload, strlen(payload), &out, NULL) != 0)
            refused++;
        else
            ASSERT(strcmp(out, "secret message") != 0);
        free(out);
    }
    ASSERT_GE(refused, 56); /* a random block has valid padding ~1/255 of the time */
    free(payload);
}

TEST(nostr_nip04_size_cap)
{
    struct nostr_keypair k1, k2;
    char *out = NULL;
    keys(&k1, &k2);
    char *big = xmalloc(NIP04_MAX_PAYLOAD + 16);
    memset(big, 'A', NIP04_MAX_PAYLOAD + 16);
    memcpy(big + NIP04_MAX_PAYLOAD, "?iv=AAAAAAAAAAAAAAAAAAAAAA==", 28 - 12);
    ASSERT_EQ(nip04_decrypt(k2.seckey, k1.pubkey, big, NIP04_MAX_PAYLOAD + 16, &out, NULL), -1);
    ASSERT_EQ(nip04_encrypt(k1.seckey, k2.pubkey, big, NIP04_MAX_PAYLOAD, &out), -1);
    free(big);
}
