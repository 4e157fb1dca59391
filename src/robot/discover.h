/* Discovery of a recipient's NIP-17 DM relays (kind 10050) for the robot (PRODUCT.md §6): ask the
 * indexer relays for kinds 10002 and 10050 by the author, then the author's 10002 write
 * relays for 10050; the newest 10050 wins. Results (also "none") are cached 5 minutes.
 * Loop thread only. Internal to robot.c; exposed for its tests. */
#ifndef CARAVEL_ROBOT_DISCOVER_H
#define CARAVEL_ROBOT_DISCOVER_H

#include <stddef.h>
#include <stdint.h>

#include "nostr/event.h"

#define DISCOVER_MAX_RELAYS 8
#define DISCOVER_CACHE_MS (5 * 60 * 1000)

struct relay_pool;
struct discover;

struct dm_relays {
    char *urls[DISCOVER_MAX_RELAYS]; /* owned by the cache; valid during the callback */
    size_t n;
};

/* relays is NULL/empty when the recipient has no kind 10050. */
typedef void discover_cb(const struct dm_relays *relays, void *arg);

struct discover *discover_new(struct relay_pool *pool, const char *const *indexers,
                              size_t n_indexers, const struct nostr_keypair *auth);
/* Pending lookups end without their callbacks. */
void discover_free(struct discover *d);
/* Calls cb (maybe before returning, when cached) with the relays of pubkey (64 hex). One
 * lookup at a time: returns -1 if one is already running. */
int discover_dm_relays(struct discover *d, const char *pubkey_hex, discover_cb *cb, void *arg);

/* Pure helpers: the ws:// / wss:// values of tags named `name` (and, for "r" tags, only
 * write relays: no marker or "write"), de-duplicated, at most max. Returns the count; the
 * strings are malloc'd. */
size_t discover_tag_urls(const struct nostr_event *ev, const char *name, char **out, size_t max);

#endif
