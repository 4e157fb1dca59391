/* Nostr relay connections shared by the robot and the NWC client. Loop thread only.
 *
 * One WebSocket connection per relay URL, opened on first use, reconnected with jittered
 * backoff while it has subscriptions or queued publishes, resubscribing after a reconnect.
 * NIP-42: an ["AUTH", challenge] is answered with a kind 22242 event signed by every identity
 * (the `auth` keypair given to subscribe/publish) that has work on that connection; an
 * "auth-required:" CLOSED/OK makes the pool authenticate and retry once.
 * Send queues are bounded (RELAY_POOL_MAX_QUEUE messages per connection).
 *
 * Pointers given to these functions are copied unless stated; `auth` keypairs are borrowed
 * and must outlive the subscription/publish. Callbacks run on the loop thread; a callback may
 * call relay_sub_close on its own subscription. */
#ifndef CARAVEL_NET_RELAY_POOL_H
#define CARAVEL_NET_RELAY_POOL_H

#include <stddef.h>

#include <uv.h>

#include "nostr/event.h"

#define RELAY_POOL_MAX_QUEUE 1024
#define RELAY_POOL_PUBLISH_TIMEOUT_MS 10000
/* A relay that has not answered a REQ with EOSE/CLOSED this long counts as done for eose. */
#define RELAY_POOL_EOSE_TIMEOUT_MS 15000

struct relay_pool;
struct relay_sub;

/* An event matched a subscription (already signature-verified; borrowed for the call). The
 * same event arriving from several relays of the subscription is delivered once (the last
 * 64 ids are remembered). */
typedef void relay_event_cb(const struct nostr_event *ev, const char *relay_url, void *arg);
/* Every relay of the subscription has sent EOSE, CLOSED, failed to connect, or stayed silent
 * for RELAY_POOL_EOSE_TIMEOUT_MS. Called at most once per subscription. */
typedef void relay_eose_cb(void *arg);
/* A publish finished: n_ok relays answered ["OK",id,true]; last_error is the last refusal or
 * connection error (borrowed) or NULL. Called exactly once. */
typedef void relay_publish_cb(size_t n_ok, size_t n_failed, const char *last_error, void *arg);

/* ca_file: PEM bundle for wss:// (NULL = system bundle /etc/ssl/certs/ca-certificates.crt). */
int relay_pool_new(struct relay_pool **out, uv_loop_t *loop, const char *ca_file);
/* Closes every connection, then frees the pool and calls cb. No callbacks run afterwards. */
void relay_pool_free(struct relay_pool *pool, void (*cb)(void *arg), void *arg);

/* REQ filters_json (a JSON array of filter objects, e.g. "[{\"kinds\":[0]}]") on each URL.
 * eose may be NULL. Returns 0 and *out (closed with relay_sub_close), or a negative code. */
int relay_pool_subscribe(struct relay_pool *pool, const char *const *urls, size_t n_urls,
                         const char *filters_json, const struct nostr_keypair *auth,
                         relay_event_cb *on_event, relay_eose_cb *on_eose, void *arg,
                         struct relay_sub **out);
/* Sends CLOSE where open; no callbacks for it run after this returns. */
void relay_sub_close(struct relay_sub *sub);

/* EVENT ev (copied) to each URL; done runs once all relays answered OK or the timeout hit. */
int relay_pool_publish(struct relay_pool *pool, const char *const *urls, size_t n_urls,
                       const struct nostr_event *ev, const struct nostr_keypair *auth,
                       relay_publish_cb *done, void *arg);

/* Connections currently open (for metrics). */
size_t relay_pool_connected(const struct relay_pool *pool);

#endif
