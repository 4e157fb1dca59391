/* NIP-98 HTTP auth, the client side: the Authorization header our requests carry (to zooid's
 * API and to a relay's NIP-86 endpoint). The server side, checking tokens, is api/nip98.c.
 * Pure and thread-safe; nostr_init() must have run. */
#ifndef CARAVEL_NOSTR_NIP98_H
#define CARAVEL_NOSTR_NIP98_H

#include <stddef.h>
#include <stdint.h>

#include "nostr/keys.h"

#define NIP98_KIND 27235

/* "Authorization: Nostr <base64 of a kind 27235 event>" signed by kp, tags u = url,
 * method = method, payload = hex sha256 of the n body bytes (an empty body hashes ""),
 * created_at = now. Returns a malloc'd header line (caller frees; never log it: it is a
 * bearer credential while fresh) or NULL when signing failed. */
char *nip98_auth_header(const struct nostr_keypair *kp, const char *url, const char *method,
                        const char *body, size_t n, int64_t now);

#endif
