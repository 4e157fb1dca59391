/* NIP-04 (deprecated, still used by NWC wallets): ECDH x-coordinate as AES-256-CBC key,
 * payload "base64(ciphertext)?iv=base64(iv)". Pure, thread-safe. Returns 0 or -1. */
#ifndef CARAVEL_NOSTR_NIP04_H
#define CARAVEL_NOSTR_NIP04_H

#include <stddef.h>
#include <stdint.h>

#define NIP04_MAX_PAYLOAD (512 * 1024)

int nip04_encrypt(const uint8_t seckey[32], const uint8_t pubkey[32], const char *plaintext,
                  size_t len, char **out);
int nip04_decrypt(const uint8_t seckey[32], const uint8_t pubkey[32], const char *payload,
                  size_t len, char **out, size_t *out_len);

#endif
