#include "test.h"

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip19.h"
#include "nostr_vec.h"
#include "util/util.h"

struct bip340_row {
    char *f[8]; /* index, sk, pk, aux, msg, sig, result, comment */
};

/* Splits one CSV line in place (the file has no quoted fields). */
static int split_row(char *line, struct bip340_row *r)
{
    int n = 0;
    memset(r, 0, sizeof(*r));
    for (char *p = line; n < 8; n++) {
        r->f[n] = p;
        p = strchr(p, ',');
        if (!p)
            return n + 1;
        *p++ = '\0';
    }
    return n;
}

static void check_signing_row(const struct bip340_row *r)
{
    struct nostr_keypair kp;
    uint8_t sk[32], pk[32], aux[32], msg[32], sig[64], want[64];
    vec_hex(r->f[1], sk, 32);
    vec_hex(r->f[2], pk, 32);
    vec_hex(r->f[3], aux, 32);
    vec_hex(r->f[4], msg, 32);
    vec_hex(r->f[5], want, 64);
    ASSERT_OK(nostr_keypair_from_seckey(&kp, sk));
    ASSERT_MEM_EQ(kp.pubkey, pk, 32);
    ASSERT_OK(nostr_schnorr_sign_aux(&kp, msg, aux, sig));
    if (memcmp(sig, want, 64) != 0)
        TEST_FAIL_("row %s: signature differs", r->f[0]);
    ASSERT_OK(nostr_schnorr_verify(pk, msg, sig));
}

/* Verification through secp256k1 directly handles any message length (rows 15-18 of newer
 * revisions); 32-byte messages also go through nostr_schnorr_verify. */
static int verify_row(const struct bip340_row *r)
{
    uint8_t pk[32], sig[64], msg[128];
    size_t mlen = strlen(r->f[4]) / 2;
    secp256k1_xonly_pubkey xpk;
    vec_hex(r->f[2], pk, 32);
    vec_hex(r->f[5], sig, 64);
    ASSERT(mlen <= sizeof(msg));
    vec_hex(r->f[4], msg, mlen);
    int direct = secp256k1_xonly_pubkey_parse(nostr_secp(), &xpk, pk) &&
                 secp256k1_schnorrsig_verify(nostr_secp(), sig, msg, mlen, &xpk);
    if (mlen == 32)
        ASSERT_EQ(nostr_schnorr_verify(pk, msg, sig) == 0, direct);
    return direct;
}

TEST(nostr_keys_bip340_all_rows)
{
    vec_init();
    char *csv = vec_read("bip340-test-vectors.csv", NULL);
    int rows = 0, signing = 0, falses = 0;
    char *save = NULL;
    for (char *line = strtok_r(csv, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        struct bip340_row r;
        if (strncmp(line, "index", 5) == 0)
            continue;
        ASSERT_GE(split_row(line, &r), 7);
        if (r.f[1][0]) {
            check_signing_row(&r);
            signing++;
        }
        int want = strcmp(r.f[6], "TRUE") == 0;
        if (verify_row(&r) != want)
            TEST_FAIL_("row %s: verification should be %s (%s)", r.f[0], r.f[6], r.f[7]);
        falses += !want;
        rows++;
    }
    ASSERT_GE(rows, 15);
    ASSERT_GE(signing, 4);
    ASSERT_GE(falses, 10);
    free(csv);
}

TEST(nostr_keys_nip19_vectors)
{
    static const struct {
        const char *bech, *hex;
    } v[] = {
        {"npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",
         "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"},
        {"nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",
         "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa"},
        {"npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6",
         "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"},
    };
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        uint8_t key[32], want[32];
        char hrp[5] = {0}, out[100];
        memcpy(hrp, v[i].bech, 4);
        vec_hex(v[i].hex, want, 32);
        ASSERT_OK(nip19_decode_key(v[i].bech, hrp, key));
        ASSERT_MEM_EQ(key, want, 32);
        ASSERT_OK(nip19_encode_key(hrp, want, out, sizeof(out)));
        ASSERT_STR_EQ(out, v[i].bech);
        /* Wrong hrp is refused. */
        ASSERT_EQ(nip19_decode_key(v[i].bech, hrp[1] == 'p' ? "nsec" : "npub", key), -1);
    }
    uint8_t sk[32], pk[32];
    ASSERT_OK(nostr_key_parse_secret(v[1].bech, sk));
    ASSERT_OK(nostr_key_parse_secret(v[1].hex, sk));
    ASSERT_OK(nostr_key_parse_public(v[0].bech, pk));
    ASSERT_OK(nostr_key_parse_public(v[2].hex, pk));
}

/* The NIP-59/NIP-17 example nsecs and what they decode to (NIP-59 and NIP-17 examples). */
TEST(nostr_keys_example_nsecs)
{
    vec_init();
    struct nostr_keypair kp;
    uint8_t sk[32];
    char hex[65];
    vec_seckey("nsec1p0ht6p3wepe47sjrgesyn4m50m6avk2waqudu9rl324cg2c4ufesyp6rdg", sk);
    hex_encode(sk, 32, hex);
    ASSERT(strncmp(hex, "0beebd06", 8) == 0 && strcmp(hex + 60, "e273") == 0);
    ASSERT_OK(nostr_keypair_from_seckey(&kp, sk));
    hex_encode(kp.pubkey, 32, hex);
    ASSERT_STR_EQ(hex, "611df01bfcf85c26ae65453b772d8f1dfd25c264621c0277e1fc1518686faef9");
}

TEST(nostr_keys_bech32_invalid)
{
    static const char *const bad[] = {
        "pzry9x0s0muk",
        "1pzry9x0s0muk",
        "x1b4n0q5v",
        "li1dgmt3",
        "A1G7SGD8",
        /* valid checksum, mixed case */
        "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjpTG",
        /* one character changed */
        "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptq",
        /* truncated */
        "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8q",
        "npub1",
        "",
        "npub1 0elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",
        /* 'b', 'i', 'o' are not in the charset */
        "npub1b0elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",
    };
    char hrp[100];
    uint8_t data[128];
    size_t n = 0;
    uint8_t key[32];
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (nip19_decode(bad[i], hrp, sizeof(hrp), data, &n, sizeof(data)) == 0)
            TEST_FAIL_("accepted invalid bech32 #%zu", i);
        ASSERT_EQ(nip19_decode_key(bad[i], "npub", key), -1);
    }
    /* BIP-173 valid strings (not 32-byte keys). */
    ASSERT_OK(nip19_decode("A12UEL5L", hrp, sizeof(hrp), data, &n, sizeof(data)));
    ASSERT_STR_EQ(hrp, "a");
    ASSERT_EQ(n, 0);
    ASSERT_OK(nip19_decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", hrp, sizeof(hrp), data,
                           &n, sizeof(data)));
    ASSERT_STR_EQ(hrp, "abcdef");
    /* NIP-19 lifts BIP-173's 90-character limit (TLV forms are longer). */
    ASSERT_OK(nip19_decode("an84characterslonghumanreadablepartthatcontainsthenumber1andthe"
                           "excludedcharactersbio1569pvx",
                           hrp, sizeof(hrp), data, &n, sizeof(data)));
}

TEST(nostr_keys_secret_range)
{
    vec_init();
    struct nostr_keypair kp;
    uint8_t zero[32] = {0}, order[32];
    vec_hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", order, 32);
    ASSERT_EQ(nostr_keypair_from_seckey(&kp, zero), -1);
    ASSERT_EQ(nostr_keypair_from_seckey(&kp, order), -1);
    ASSERT_EQ(nostr_key_parse_secret(
                  "0000000000000000000000000000000000000000000000000000000000000000", zero),
              -1);
    ASSERT_EQ(nostr_key_parse_secret("abc", zero), -1);
    ASSERT_EQ(nostr_key_parse_public(
                  "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34", zero),
              -1); /* BIP-340 row 5: not on the curve */
}

/* Fresh secret keys (relay secrets): valid on the curve, and different every time. */
TEST(nostr_keys_seckey_generate)
{
    vec_init();
    uint8_t keys[16][32];
    struct nostr_keypair kp;
    for (int i = 0; i < 16; i++) {
        ASSERT_OK(nostr_seckey_generate(keys[i]));
        ASSERT_OK(nostr_keypair_from_seckey(&kp, keys[i]));
        for (int j = 0; j < i; j++)
            ASSERT_NE(memcmp(keys[i], keys[j], 32), 0);
    }
}

/* nostr_random: small requests come from a per-thread block of getrandom output (refilled
 * when used up), larger ones straight from getrandom. Across refills no two answers repeat
 * or overlap, and none is all zeros (the block wipes what it hands out). */
TEST(nostr_random_small_from_a_block_large_direct)
{
    static const size_t sizes[] = {8, 16, 32, 64, 65, 1, 200, 32, 31, 33, 8, 64};
    uint8_t seen[200][32];
    size_t n_seen = 0;
    for (int round = 0; round < 16; round++) /* 16 x 587 bytes: the block refills many times */
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            uint8_t out[200] = {0}, zero[200] = {0};
            ASSERT_OK(nostr_random(out, sizes[i]));
            if (sizes[i] >= 8)
                ASSERT_NE(memcmp(out, zero, sizes[i]), 0);
            ASSERT_EQ(memcmp(out + sizes[i], zero, sizeof(out) - sizes[i]), 0); /* no overrun */
            if (sizes[i] != 32)
                continue;
            for (size_t k = 0; k < n_seen; k++)
                ASSERT_NE(memcmp(seen[k], out, 32), 0);
            memcpy(seen[n_seen++], out, 32);
        }
    ASSERT_EQ(n_seen, 32);
}
