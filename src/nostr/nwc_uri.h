/* NIP-47 connection URIs: nostr+walletconnect://<wallet pubkey>?relay=..&secret=..[&lud16=..]
 * (also "nostr+walletconnect:<pubkey>?..." without "//", Alby's legacy "nostrwalletconnect://",
 * scheme case-insensitive, an optional '/' after the pubkey). Query values are
 * percent-decoded like URLSearchParams ('+' = space); relay may repeat (up to 16, each ws:// or
 * wss://); secret is 64 hex or an nsec and must be a valid key; lud16 is optional and must
 * look like name@domain; unknown parameters are ignored; a '#fragment' ends the query.
 * Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_NWC_URI_H
#define CARAVEL_NOSTR_NWC_URI_H

#include <stddef.h>
#include <stdint.h>

#define NWC_URI_MAX_LEN 4096
#define NWC_URI_MAX_RELAYS 16

struct nwc_uri {
    uint8_t wallet_pubkey[32];
    uint8_t secret[32];
    char *relays[NWC_URI_MAX_RELAYS]; /* owned, percent-decoded */
    size_t n_relays;
    char *lud16; /* owned or NULL */
};

/* Returns 0, or -1 with *err (static string, never containing the secret or any part of the
 * input) saying what is wrong: bad scheme, bad wallet pubkey, no relay, relay not ws(s)://,
 * too many relays, missing, duplicated or malformed secret, bad lud16, bad percent-encoding,
 * spaces/non-ASCII, too long. *err is NULL on success (err may be NULL). out is zeroed first
 * and must be freed with nwc_uri_free on success (on failure it is already freed). */
int nwc_uri_parse(const char *s, struct nwc_uri *out, const char **err);
/* Frees the relays and lud16 and wipes the secret. */
void nwc_uri_free(struct nwc_uri *u);

#endif
