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
    ZOOID_BODY_PATCH, /* PATCH of a relay with no recorded sync_config: the same without the
                       * secret (never rotated by an update), "livekit": null when off */
    ZOOID_BODY_STATE, /* what zooid holds after a sync, without the secret: recorded as
                       * sync_config and diffed by zooid_patch_diff, never sent as is */
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

/* The PATCH body that takes zooid from `base` (the ZOOID_BODY_STATE recorded at the last
 * successful sync) to `state` (the ZOOID_BODY_STATE now): only the values that differ,
 * objects compared key by key, a key that base has and state lacks sent as null (zooid's
 * deep merge deletes it). So a field the owner changed on the relay itself (NIP-86
 * changerelayname) is not overwritten unless it changed here too. Returns a malloc'd JSON
 * object ("{}" with *changed = 0 when nothing differs), or NULL when base is NULL or not a
 * JSON object (the caller then sends ZOOID_BODY_PATCH). */
char *zooid_patch_diff(const char *state, const char *base, int *changed);

/* What the sync worker does after zooid answered `status` to `method` with error text
 * `error` (zooid_error_text; may be ""). */
enum zooid_next {
    ZOOID_DONE,      /* 2xx */
    ZOOID_PUT,       /* POST 409 "relay with this id already exists": replace it */
    ZOOID_POST,      /* PATCH 404: zooid lost it, create it again */
    ZOOID_PERMANENT, /* 409 "... is already in use" (host or schema of another zooid relay),
                      * 400 (config refused), 401 (NIP-98 refused: URL, proxy or clock),
                      * 403 (key not whitelisted), POST 404 and 405 (ZOOID_API_URL does not
                      * reach zooid's API host), 413, 422: no retry fixes it */
    ZOOID_RETRY,     /* 5xx, 408, 429, PUT 404 and anything else: back off and retry */
};
enum zooid_next zooid_classify(const char *method, long status, const char *error);

/* zooid's error text from an answer body, safe for sync_error and logs: the "error" string
 * of a JSON object, else the body itself (zooid answers a plain "Not Found" for a Host it does
 * not serve); every occurrence of a string in secrets (NULL-terminated list; NULL or empty
 * items skipped) and every run of 64 or more hex digits (a key zooid might echo) replaced by
 * "[redacted]", bytes outside printable ASCII as '?', cut at ZOOID_ERROR_TEXT_MAX
 * characters. out gets at most cap - 1 characters and a NUL. */
#define ZOOID_ERROR_TEXT_MAX 200
void zooid_error_text(const char *body, size_t len, const char *const *secrets, char *out,
                      size_t cap);

/* 1 when LiveKit settings are sent for r. */
int zooid_livekit_allowed(const struct sync_relay *r, const struct config *cfg);

#endif
