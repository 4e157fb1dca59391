/* The operator-wide block list's rollout (docs/API.md, "Block list"). Loop thread only.
 *
 * The truth is in the database: a row per (relay, blocked pubkey) says what the relay must
 * have (want: 1 banned, 0 lifted) and what it confirmed (applied). The worker loads the rows
 * where they differ (due now, on active relays, at most 2 x BLOCKLIST_CONCURRENCY per query),
 * sends NIP-86 banpubkey (with the entry's reason) or allowpubkey to the relay, signed as the
 * relay, at most BLOCKLIST_CONCURRENCY calls in flight and never two for one row, and records
 * the answer: confirmed -> applied (a lifted row is deleted); failed -> attempts + 1 and a
 * retry after 2 s x 2^(n-1), capped at 10 min, never given up (an operator's ban must arrive).
 * Because the row is only marked after the relay answered, a kill -9 at any point leaves the
 * row pending and the call is sent again after restart: banpubkey and allowpubkey are
 * idempotent in zooid, so a relay is never banned twice nor left out.
 *
 * Triggers: APP_BLOCKLIST_CHANGED (the API added or removed an entry), APP_RELAY_CHANGED (a
 * created or reactivated relay gets the rows it lacks), APP_RELAY_SYNCED (zooid now serves the
 * relay: its pending rows are due at once), a 1 s tick while work waits for a retry, and a
 * start-up reconcile. It owns its NIP-86 client, so stopping cancels its calls at once (their
 * rows stay pending). */
#ifndef CARAVEL_BLOCKLIST_WORKER_H
#define CARAVEL_BLOCKLIST_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct blocklist;

/* Starts the worker (needs app->loop, app->cfg, app->db). Returns 0 or -1 (logged). */
int blocklist_start(struct blocklist **out, struct app *app);

struct blocklist_stats {
    size_t in_flight;
    size_t peak_in_flight; /* since start */
    uint64_t applied, failed;
};
/* All 0 for NULL. */
void blocklist_stats(const struct blocklist *b, struct blocklist_stats *out);

/* Cancels its calls (rows stay pending), waits for its database jobs, frees, then cb(arg).
 * NULL: cb at once. */
void blocklist_stop(struct blocklist *b, void (*cb)(void *arg), void *arg);

#endif
