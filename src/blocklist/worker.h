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
 * Several instances on one database (docs/ARCHITECTURE.md "Several instances"): a row's call
 * is sent by the instance that claimed it (blocklist/repo.h, repo_bl_claim: a conditional
 * UPDATE, leased for 8 x the NIP-86 timeout, CARAVEL_TEST_CLAIM_LEASE_MS in tests), so each
 * (relay, change) goes out once among them; the record of the answer lets go of the claim. A
 * claim left by an instance that was killed is taken over when its lease ends; at start-up the
 * claims of this host's dead runs (any, on SQLite) are let go at once; a graceful stop lets go
 * of its own and tells the others (APP_RECONCILE).
 *
 * Triggers: APP_BLOCKLIST_CHANGED (an entry added or removed through this or, over the
 * database's notifications, another instance), APP_RELAY_CHANGED (a created or reactivated
 * relay gets the rows it lacks), APP_RELAY_SYNCED (zooid now serves the relay: its pending rows
 * are due at once), APP_RECONCILE, each recorded answer, a timer at the next row due by itself
 * (a retry's time, the end of another instance's claim), a 30 s safety reconcile and the
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
