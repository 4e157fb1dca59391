/* NIP-47 connection URIs: nostr+walletconnect://<wallet pubkey>?relay=..&secret=..[&lud16=..]
 * (also "nostr+walletconnect:<pubkey>?..." without "//"). Pure, thread-safe. */
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

/* Returns 0, or -1 with *err (static string, never containing the secret) saying what is
 * wrong: bad scheme, bad wallet pubkey, no relay, relay not ws(s)://, missing or malformed
 * secret, too long. out is zeroed first and must be freed with nwc_uri_free on success. */
int nwc_uri_parse(const char *s, struct nwc_uri *out, const char **err);
void nwc_uri_free(struct nwc_uri *u);

#endif
