/* secp256k1 keys, BIP-340 Schnorr, SHA-256 and randomness.
 *
 * nostr_init() creates one randomized secp256k1 context; call it once on the main thread at
 * start-up (and in tests) before any other function here. After that every function is
 * thread-safe (the context is only read), so pool threads may sign and verify.
 * Returns are 0 on success and -1 on failure unless stated. Secret keys are never logged. */
#ifndef CARAVEL_NOSTR_KEYS_H
#define CARAVEL_NOSTR_KEYS_H

#include <stddef.h>
#include <stdint.h>

struct secp256k1_context_struct;

struct nostr_keypair {
    uint8_t seckey[32];
    uint8_t pubkey[32]; /* x-only */
};

int nostr_init(void);
void nostr_shutdown(void);
const struct secp256k1_context_struct *nostr_secp(void);

/* CSPRNG (getrandom). */
int nostr_random(uint8_t *out, size_t n);
void nostr_sha256(const void *p, size_t n, uint8_t out[32]);

/* Fails when seckey is zero or >= the curve order. */
int nostr_keypair_from_seckey(struct nostr_keypair *kp, const uint8_t seckey[32]);
int nostr_keypair_generate(struct nostr_keypair *kp);
/* A fresh random secret key without its public key (the EC multiplication costs ~20 us):
 * for keys that only another program uses, such as a relay's secret. */
int nostr_seckey_generate(uint8_t seckey[32]);

/* Accept 64 hex characters or NIP-19 "nsec1..." / "npub1..." (surrounding spaces are not
 * trimmed). parse_secret also checks the key is valid on the curve. */
int nostr_key_parse_secret(const char *s, uint8_t out[32]);
int nostr_key_parse_public(const char *s, uint8_t out[32]);

/* ECDH: out = the 32-byte x coordinate of seckey*lift_x(pubkey), unhashed (NIP-04 key,
 * NIP-44 HKDF input). Fails for an invalid seckey (0 or >= n) or a pubkey not on the curve. */
int nostr_ecdh_x(const uint8_t seckey[32], const uint8_t pubkey[32], uint8_t out[32]);

/* BIP-340 over a 32-byte message, with fresh auxiliary randomness. */
int nostr_schnorr_sign(const struct nostr_keypair *kp, const uint8_t msg[32], uint8_t sig[64]);
/* As above with caller-given aux randomness (for the BIP-340 vectors). */
int nostr_schnorr_sign_aux(const struct nostr_keypair *kp, const uint8_t msg[32],
                           const uint8_t aux[32], uint8_t sig[64]);
/* 0 when sig is a valid signature of msg by the x-only pubkey, -1 otherwise. */
int nostr_schnorr_verify(const uint8_t pubkey[32], const uint8_t msg[32], const uint8_t sig[64]);

#endif
