#include "nostr/keys.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/sha256.h>
#include <secp256k1.h>
#include <secp256k1_ecdh.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "nostr/hex.h"
#include "nostr/nip19.h"
#include "util/util.h"

/* One context, randomized once (side-channel blinding), then only read: safe to share
 * between the loop and pool threads. */
static secp256k1_context *ctx;

int nostr_init(void)
{
    uint8_t seed[32];
    if (ctx)
        return 0;
    ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (!ctx || nostr_random(seed, sizeof(seed)) != 0 || !secp256k1_context_randomize(ctx, seed))
        return -1;
    secure_zero(seed, sizeof(seed));
    return 0;
}

void nostr_shutdown(void)
{
    if (ctx)
        secp256k1_context_destroy(ctx);
    ctx = NULL;
}

const struct secp256k1_context_struct *nostr_secp(void)
{
    return ctx;
}

static int fill_random(uint8_t *out, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(out, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        out += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Small requests (ids, nonces, keys: 8-32 bytes) are served from a per-thread block of
 * getrandom output, refilled when used up: one system call per RANDOM_BLOCK bytes instead of
 * one per request (two per relay creation, a few per cent of its CPU on this VM, where system
 * calls are dear). Bytes handed out are wiped from the block, so no copy of a key stays
 * behind. Larger requests go to getrandom directly. */
#define RANDOM_BLOCK 512
#define RANDOM_SMALL 64

static _Thread_local uint8_t block[RANDOM_BLOCK];
static _Thread_local size_t block_left; /* unused bytes at the end of block */

int nostr_random(uint8_t *out, size_t n)
{
    if (n > RANDOM_SMALL)
        return fill_random(out, n);
    if (block_left < n) {
        if (fill_random(block, sizeof(block)) != 0)
            return -1;
        block_left = sizeof(block);
    }
    uint8_t *from = block + sizeof(block) - block_left;
    memcpy(out, from, n);
    secure_zero(from, n);
    block_left -= n;
    return 0;
}

void nostr_sha256(const void *p, size_t n, uint8_t out[32])
{
    mbedtls_sha256_ret(p, n, out, 0);
}

int nostr_keypair_from_seckey(struct nostr_keypair *kp, const uint8_t seckey[32])
{
    secp256k1_keypair pair;
    secp256k1_xonly_pubkey xpk;
    int ok = secp256k1_keypair_create(ctx, &pair, seckey) &&
             secp256k1_keypair_xonly_pub(ctx, &xpk, NULL, &pair) &&
             secp256k1_xonly_pubkey_serialize(ctx, kp->pubkey, &xpk);
    secure_zero(&pair, sizeof(pair));
    if (!ok)
        return -1;
    memcpy(kp->seckey, seckey, 32);
    return 0;
}

int nostr_seckey_generate(uint8_t seckey[32])
{
    /* A random 32 bytes is >= n or zero with probability ~2^-128: retrying is for form. */
    for (int tries = 0; tries < 8; tries++) {
        if (nostr_random(seckey, 32) != 0)
            break;
        if (secp256k1_ec_seckey_verify(ctx, seckey))
            return 0;
    }
    secure_zero(seckey, 32);
    return -1;
}

int nostr_keypair_generate(struct nostr_keypair *kp)
{
    uint8_t sk[32];
    int rc = nostr_seckey_generate(sk) == 0 ? nostr_keypair_from_seckey(kp, sk) : -1;
    secure_zero(sk, sizeof(sk));
    return rc;
}

int nostr_key_parse_secret(const char *s, uint8_t out[32])
{
    uint8_t sk[32];
    int rc;
    if (strncmp(s, "nsec1", 5) == 0)
        rc = nip19_decode_key(s, "nsec", sk);
    else
        rc = hex_decode(s, strlen(s), sk, 32);
    if (rc == 0 && !secp256k1_ec_seckey_verify(ctx, sk))
        rc = -1;
    if (rc == 0)
        memcpy(out, sk, 32);
    secure_zero(sk, sizeof(sk));
    return rc;
}

int nostr_key_parse_public(const char *s, uint8_t out[32])
{
    uint8_t pk[32];
    secp256k1_xonly_pubkey xpk;
    int rc = strncmp(s, "npub1", 5) == 0 ? nip19_decode_key(s, "npub", pk)
                                         : hex_decode(s, strlen(s), pk, 32);
    if (rc == 0 && !secp256k1_xonly_pubkey_parse(ctx, &xpk, pk))
        rc = -1;
    if (rc == 0)
        memcpy(out, pk, 32);
    return rc;
}

int nostr_schnorr_sign_aux(const struct nostr_keypair *kp, const uint8_t msg[32],
                           const uint8_t aux[32], uint8_t sig[64])
{
    secp256k1_keypair pair;
    int ok = secp256k1_keypair_create(ctx, &pair, kp->seckey) &&
             secp256k1_schnorrsig_sign32(ctx, sig, msg, &pair, aux);
    secure_zero(&pair, sizeof(pair));
    return ok ? 0 : -1;
}

int nostr_schnorr_sign(const struct nostr_keypair *kp, const uint8_t msg[32], uint8_t sig[64])
{
    uint8_t aux[32];
    if (nostr_random(aux, sizeof(aux)) != 0)
        return -1;
    return nostr_schnorr_sign_aux(kp, msg, aux, sig);
}

int nostr_schnorr_verify(const uint8_t pubkey[32], const uint8_t msg[32], const uint8_t sig[64])
{
    secp256k1_xonly_pubkey xpk;
    if (!secp256k1_xonly_pubkey_parse(ctx, &xpk, pubkey))
        return -1;
    return secp256k1_schnorrsig_verify(ctx, sig, msg, 32, &xpk) ? 0 : -1;
}

/* The ECDH hash function that returns the raw x coordinate: NIP-04 and NIP-44 use the
 * unhashed shared x (libsecp256k1's default hashes the compressed point, which is wrong). */
static int copy_x(unsigned char *out, const unsigned char *x32, const unsigned char *y32,
                  void *data)
{
    (void)y32;
    (void)data;
    memcpy(out, x32, 32);
    return 1;
}

int nostr_ecdh_x(const uint8_t seckey[32], const uint8_t pubkey[32], uint8_t out[32])
{
    uint8_t compressed[33];
    secp256k1_pubkey pk;
    compressed[0] = 0x02; /* x-only keys are the even-y point */
    memcpy(compressed + 1, pubkey, 32);
    /* An unparsed pubkey passed to ecdh would abort through the illegal-argument callback. */
    if (!secp256k1_ec_pubkey_parse(ctx, &pk, compressed, sizeof(compressed)))
        return -1;
    return secp256k1_ecdh(ctx, out, &pk, seckey, copy_x, NULL) ? 0 : -1;
}
