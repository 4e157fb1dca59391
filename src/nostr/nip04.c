#include "nostr/nip04.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/aes.h>

#include "nostr/base64.h"
#include "nostr/keys.h"
#include "util/util.h"

#define IV_SEP "?iv="
#define IV_LEN 16

/* AES-256-CBC over n bytes (a multiple of 16). mbedtls overwrites the IV it is given, so it
 * works on a copy. */
static int cbc(int mode, const uint8_t key[32], const uint8_t iv_in[IV_LEN], const uint8_t *in,
               uint8_t *out, size_t n)
{
    mbedtls_aes_context aes;
    uint8_t iv[IV_LEN];
    int rc;
    memcpy(iv, iv_in, IV_LEN);
    mbedtls_aes_init(&aes);
    rc = mode == MBEDTLS_AES_ENCRYPT ? mbedtls_aes_setkey_enc(&aes, key, 256)
                                     : mbedtls_aes_setkey_dec(&aes, key, 256);
    if (rc == 0)
        rc = mbedtls_aes_crypt_cbc(&aes, mode, n, iv, in, out);
    mbedtls_aes_free(&aes);
    return rc == 0 ? 0 : -1;
}

int nip04_encrypt(const uint8_t seckey[32], const uint8_t pubkey[32], const char *plaintext,
                  size_t len, char **out)
{
    uint8_t key[32], iv[IV_LEN], *buf = NULL;
    size_t padded = (len / 16 + 1) * 16; /* PKCS#7 always adds 1..16 bytes */
    int rc = -1;
    *out = NULL;
    if (len > NIP04_MAX_PAYLOAD / 2 || nostr_ecdh_x(seckey, pubkey, key) != 0)
        goto out;
    if (nostr_random(iv, sizeof(iv)) != 0)
        goto out;
    buf = xmalloc(padded);
    memcpy(buf, plaintext, len);
    memset(buf + len, (int)(padded - len), padded - len);
    if (cbc(MBEDTLS_AES_ENCRYPT, key, iv, buf, buf, padded) != 0)
        goto out;
    char *ct64 = base64_encode(buf, padded, NULL), *iv64 = base64_encode(iv, IV_LEN, NULL);
    size_t n = strlen(ct64) + strlen(IV_SEP) + strlen(iv64) + 1;
    *out = xmalloc(n);
    snprintf(*out, n, "%s" IV_SEP "%s", ct64, iv64);
    free(ct64);
    free(iv64);
    rc = 0;
out:
    secure_zero(key, sizeof(key));
    free(buf);
    return rc;
}

/* Checks PKCS#7 padding (1..16 bytes, all equal to the count) and returns the data length,
 * or -1. */
static long unpad_len(const uint8_t *p, size_t n)
{
    uint8_t pad = p[n - 1];
    if (pad < 1 || pad > 16 || pad > n)
        return -1;
    for (size_t i = n - pad; i < n; i++)
        if (p[i] != pad)
            return -1;
    return (long)(n - pad);
}

/* Splits "ct64?iv=iv64" and decodes both halves (ct a non-empty multiple of 16, iv 16). */
static int split_payload(const char *payload, size_t len, uint8_t **ct, size_t *ct_len,
                         uint8_t iv[IV_LEN])
{
    const char *sep = memmem(payload, len, IV_SEP, strlen(IV_SEP));
    uint8_t *ivb = NULL;
    size_t iv_n = 0;
    *ct = NULL;
    if (!sep)
        return -1;
    size_t iv_off = (size_t)(sep - payload) + strlen(IV_SEP);
    if (base64_decode(payload + iv_off, len - iv_off, 0, &ivb, &iv_n) != 0 || iv_n != IV_LEN)
        goto fail;
    memcpy(iv, ivb, IV_LEN);
    free(ivb);
    ivb = NULL;
    if (base64_decode(payload, (size_t)(sep - payload), 0, ct, ct_len) != 0)
        return -1;
    if (*ct_len == 0 || *ct_len % 16 != 0)
        goto fail;
    return 0;
fail:
    free(ivb);
    free(*ct);
    *ct = NULL;
    return -1;
}

int nip04_decrypt(const uint8_t seckey[32], const uint8_t pubkey[32], const char *payload,
                  size_t len, char **out, size_t *out_len)
{
    uint8_t key[32], iv[IV_LEN], *ct = NULL;
    size_t ct_len = 0;
    long n = -1;
    *out = NULL;
    if (len > NIP04_MAX_PAYLOAD || split_payload(payload, len, &ct, &ct_len, iv) != 0)
        return -1;
    if (nostr_ecdh_x(seckey, pubkey, key) == 0 &&
        cbc(MBEDTLS_AES_DECRYPT, key, iv, ct, ct, ct_len) == 0)
        n = unpad_len(ct, ct_len);
    if (n >= 0) {
        *out = xmalloc((size_t)n + 1);
        memcpy(*out, ct, (size_t)n);
        (*out)[n] = '\0';
        if (out_len)
            *out_len = (size_t)n;
    }
    secure_zero(key, sizeof(key));
    secure_zero(ct, ct_len);
    free(ct);
    return n >= 0 ? 0 : -1;
}
