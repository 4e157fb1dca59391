/* What the sync worker sends to zooid (PRODUCT.md §5): the relay's config JSON and the NIP-98
 * Authorization header. Pure data, no loop, thread-safe (nostr_init() must have run). */
#ifndef CARAVEL_ZOOID_H
#define CARAVEL_ZOOID_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "sync/repo.h"
#include "nostr/keys.h"

enum zooid_body {
    ZOOID_BODY_FULL,  /* POST and PUT: the whole config, with the relay's secret */
    ZOOID_BODY_PATCH, /* PATCH: the same without the secret (never rotated by an update) */
};

/* Config JSON of relay r (borrowed): host (subdomain + "." + RELAY_DOMAIN, or the subdomain
 * when RELAY_DOMAIN is empty), schema, secret (FULL only), inactive (status != "active"),
 * info{name, icon, pubkey = tenant, description}, policy{public_join, strip_signatures},
 * groups/management/blossom/push{enabled}, and livekit{server_url, api_key, api_secret} only
 * when the relay enables it, its plan allows it (not "free") and LIVEKIT_URL is set. When
 * livekit is not sent, a PATCH carries "livekit": null instead: PATCH deep-merges and null
 * deletes a key in zooid, so an omitted key would leave a disabled LiveKit configured.
 * Returns a malloc'd NUL-terminated string (caller frees; it holds the relay secret for
 * FULL bodies: wipe before freeing). */
char *zooid_config_json(const struct sync_relay *r, const struct config *cfg, enum zooid_body kind);

/* 1 when LiveKit settings are sent for r. */
int zooid_livekit_allowed(const struct sync_relay *r, const struct config *cfg);

/* "Authorization: Nostr <base64 of a kind 27235 event>" signed by kp, tags u = url,
 * method = method, payload = hex sha256 of the n body bytes; created_at = now. Returns a
 * malloc'd header line (caller frees; never log it) or NULL when signing failed. */
char *zooid_auth_header(const struct nostr_keypair *kp, const char *url, const char *method,
                        const char *body, size_t n, int64_t now);

#endif
