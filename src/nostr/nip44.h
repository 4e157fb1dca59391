/* NIP-44 v2 encryption (secp256k1 ECDH + HKDF-SHA256 + ChaCha20 + HMAC-SHA256).
 * Pure, thread-safe. Returns 0 on success, -1 on any failure (no detail leaks timing). */
#ifndef CARAVEL_NOSTR_NIP44_H
#define CARAVEL_NOSTR_NIP44_H

#include <stddef.h>
#include <stdint.h>

#define NIP44_MAX_PLAINTEXT 65535

int nip44_conversation_key(const uint8_t seckey[32], const uint8_t pubkey[32], uint8_t out[32]);
/* Encrypts plaintext (1..65535 bytes); nonce NULL = 32 fresh random bytes. *out is the base64
 * payload, malloc'd, NUL-terminated. */
int nip44_encrypt(const uint8_t conv_key[32], const char *plaintext, size_t len,
                  const uint8_t *nonce, char **out);
/* Decrypts a base64 payload; checks version, sizes (base64 132..87472 chars, decoded
 * 99..65603 bytes: the extended >65535 form of 2026 is refused), MAC (constant time) and
 * padding.
 * *out is malloc'd and NUL-terminated, *out_len its length. */
int nip44_decrypt(const uint8_t conv_key[32], const char *payload, size_t len, char **out,
                  size_t *out_len);
/* HKDF-Expand(conv_key, info=nonce, 76) split into the ChaCha20 key, ChaCha20 nonce and HMAC
 * key (exposed for the vectors). Returns 0 or -1. */
int nip44_message_keys(const uint8_t conv_key[32], const uint8_t nonce[32], uint8_t chacha_key[32],
                       uint8_t chacha_nonce[12], uint8_t hmac_key[32]);
/* The padded length of an unpadded length (exposed for the vectors). */
size_t nip44_calc_padded_len(size_t len);

#endif
