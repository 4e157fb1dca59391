/* NIP-19 bech32 (BIP-173 checksum; NIP-19 allows strings longer than 90 characters).
 * Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_NIP19_H
#define CARAVEL_NOSTR_NIP19_H

#include <stddef.h>
#include <stdint.h>

#define NIP19_MAX_LEN 1024

/* Encodes data under hrp into out (NUL-terminated). Returns 0, or -1 if cap is too small. */
int nip19_encode(const char *hrp, const uint8_t *data, size_t n, char *out, size_t cap);
/* Decodes s (all lower or all upper case, valid checksum, 8-bit payload with zero padding).
 * Writes the lowercase hrp (NUL-terminated) and up to data_cap bytes. Returns 0 or -1. */
int nip19_decode(const char *s, char *hrp, size_t hrp_cap, uint8_t *data, size_t *n,
                 size_t data_cap);
/* npub/nsec for 32-byte keys; out needs >= 64 bytes. */
int nip19_encode_key(const char *hrp, const uint8_t key[32], char *out, size_t cap);
/* Decodes s when its hrp equals want_hrp and it carries exactly 32 bytes. */
int nip19_decode_key(const char *s, const char *want_hrp, uint8_t key[32]);

#endif
