#include "nostr/nip44.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/chacha20.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include "nostr/base64.h"
#include "nostr/keys.h"
#include "util/util.h"

/* Sizes of the original (audited, widely deployed) v2 spec. We only send and accept
 * plaintexts up to 65535 bytes; the 2026 extended-length form (00 00 || u32) is refused. */
#define NONCE_LEN 32
#define MAC_LEN 32
#define MIN_B64 132
#define MAX_B64 87472
#define MIN_RAW 99
#define MAX_RAW 65603

struct msg_keys {
    uint8_t chacha_key[32];
    uint8_t chacha_nonce[12];
    uint8_t hmac_key[32];
};

static const mbedtls_md_info_t *sha256_md(void)
{
    return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
}

int nip44_conversation_key(const uint8_t seckey[32], const uint8_t pubkey[32], uint8_t out[32])
{
    uint8_t shared[32];
    int rc = nostr_ecdh_x(seckey, pubkey, shared);
    if (rc == 0 &&
        mbedtls_hkdf_extract(sha256_md(), (const uint8_t *)"nip44-v2", 8, shared, 32, out) != 0)
        rc = -1;
    secure_zero(shared, sizeof(shared));
    return rc;
}

int nip44_message_keys(const uint8_t conv_key[32], const uint8_t nonce[32], uint8_t chacha_key[32],
                       uint8_t chacha_nonce[12], uint8_t hmac_key[32])
{
    uint8_t okm[76];
    if (mbedtls_hkdf_expand(sha256_md(), conv_key, 32, nonce, NONCE_LEN, okm, sizeof(okm)) != 0)
        return -1;
    memcpy(chacha_key, okm, 32);
    memcpy(chacha_nonce, okm + 32, 12);
    memcpy(hmac_key, okm + 44, 32);
    secure_zero(okm, sizeof(okm));
    return 0;
}

static int message_keys(const uint8_t conv_key[32], const uint8_t nonce[32], struct msg_keys *k)
{
    return nip44_message_keys(conv_key, nonce, k->chacha_key, k->chacha_nonce, k->hmac_key);
}

size_t nip44_calc_padded_len(size_t len)
{
    if (len <= 32)
        return 32;
    size_t next_power = 1;
    while (next_power < len) /* 1 << (floor(log2(len-1)) + 1) */
        next_power <<= 1;
    size_t chunk = next_power <= 256 ? 32 : next_power / 8;
    return chunk * ((len - 1) / chunk + 1);
}

/* HMAC-SHA256(hmac_key, nonce || ciphertext): the nonce is the associated data. */
static int compute_mac(const struct msg_keys *k, const uint8_t *nonce, const uint8_t *ct,
                       size_t ct_len, uint8_t mac[32])
{
    mbedtls_md_context_t md;
    int rc;
    mbedtls_md_init(&md);
    rc = mbedtls_md_setup(&md, sha256_md(), 1);
    if (rc == 0)
        rc = mbedtls_md_hmac_starts(&md, k->hmac_key, 32);
    if (rc == 0)
        rc = mbedtls_md_hmac_update(&md, nonce, NONCE_LEN);
    if (rc == 0)
        rc = mbedtls_md_hmac_update(&md, ct, ct_len);
    if (rc == 0)
        rc = mbedtls_md_hmac_finish(&md, mac);
    mbedtls_md_free(&md);
    return rc == 0 ? 0 : -1;
}

int nip44_encrypt(const uint8_t conv_key[32], const char *plaintext, size_t len,
                  const uint8_t *nonce, char **out)
{
    struct msg_keys k;
    uint8_t *raw = NULL;
    size_t padded = nip44_calc_padded_len(len), ct_len = 2 + padded;
    int rc = -1;
    *out = NULL;
    if (len < 1 || len > NIP44_MAX_PLAINTEXT)
        return -1;
    raw = xcalloc(1, 1 + NONCE_LEN + ct_len + MAC_LEN);
    uint8_t *n = raw + 1, *ct = n + NONCE_LEN;
    raw[0] = 2;
    if (nonce)
        memcpy(n, nonce, NONCE_LEN);
    else if (nostr_random(n, NONCE_LEN) != 0)
        goto out;
    if (message_keys(conv_key, n, &k) != 0)
        goto out;
    /* Padded plaintext u16_be(len) || plaintext || zeros, encrypted in place. */
    ct[0] = (uint8_t)(len >> 8);
    ct[1] = (uint8_t)len;
    memcpy(ct + 2, plaintext, len);
    if (mbedtls_chacha20_crypt(k.chacha_key, k.chacha_nonce, 0, ct_len, ct, ct) != 0)
        goto out;
    if (compute_mac(&k, n, ct, ct_len, ct + ct_len) != 0)
        goto out;
    *out = base64_encode(raw, 1 + NONCE_LEN + ct_len + MAC_LEN, NULL);
    rc = 0;
out:
    secure_zero(&k, sizeof(k));
    free(raw);
    return rc;
}

static int unpad(const uint8_t *padded, size_t n, char **out, size_t *out_len)
{
    size_t len = (size_t)padded[0] << 8 | padded[1];
    if (len == 0 || n != 2 + nip44_calc_padded_len(len))
        return -1;
    *out = xmalloc(len + 1);
    memcpy(*out, padded + 2, len);
    (*out)[len] = '\0';
    if (out_len)
        *out_len = len;
    return 0;
}

int nip44_decrypt(const uint8_t conv_key[32], const char *payload, size_t len, char **out,
                  size_t *out_len)
{
    struct msg_keys k;
    uint8_t *raw = NULL, *padded = NULL, mac[32];
    size_t raw_len = 0;
    int rc = -1;
    *out = NULL;
    /* Empty or '#'-prefixed payloads are a future/unknown version; sizes before decoding. */
    if (len < MIN_B64 || len > MAX_B64 || payload[0] == '#')
        return -1;
    if (base64_decode(payload, len, 0, &raw, &raw_len) != 0)
        return -1;
    if (raw_len < MIN_RAW || raw_len > MAX_RAW || raw[0] != 2)
        goto out;
    const uint8_t *nonce = raw + 1, *ct = nonce + NONCE_LEN;
    size_t ct_len = raw_len - 1 - NONCE_LEN - MAC_LEN;
    if (message_keys(conv_key, nonce, &k) != 0 || compute_mac(&k, nonce, ct, ct_len, mac) != 0)
        goto out;
    if (!secure_equal(mac, ct + ct_len, MAC_LEN)) /* the MAC check must not leak timing */
        goto out;
    padded = xmalloc(ct_len);
    if (mbedtls_chacha20_crypt(k.chacha_key, k.chacha_nonce, 0, ct_len, ct, padded) != 0)
        goto out;
    rc = unpad(padded, ct_len, out, out_len);
out:
    if (padded)
        secure_zero(padded, ct_len);
    secure_zero(&k, sizeof(k));
    free(padded);
    free(raw);
    return rc;
}
