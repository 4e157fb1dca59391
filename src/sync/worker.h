/* Zooid sync worker (PRODUCT.md §5). Loop thread only. A NULL struct sync_worker (ZOOID_API_URL
 * unset) makes every call a no-op, so callers never check.
 *
 * Behaviour: a kicked relay is synced at once (POST the first time, 409 "already exists" ->
 * PUT; later a PATCH of only the fields that changed here since zooid last accepted the
 * relay, 404 -> POST), at most one request per relay and SYNC_MAX_IN_FLIGHT (8) syncs at a
 * time; a kick during a sync causes exactly one more sync after it. Refusals no retry fixes
 * (409 host/schema in use, 400, 401, 403, see zooid_classify) are recorded in sync_error with
 * zooid's text (secrets redacted), counted (caravel_sync_permanent_failures_total{status}),
 * logged once at error level and not retried until the relay changes or an admin calls
 * POST /relays/:id/sync. Other failures (network, 15 s timeout, 5xx) are recorded
 * (sync_error, fail_relay_sync) and retried after 30 s x 2^(n-1), capped at 15 min, at most
 * 6 tries. Unsynced relays are loaded 1,000 at a time
 * at start-up, every 60 s, and at once when the ready queue runs short after a full batch (a
 * backlog drains at zooid's pace). A worker-wide circuit breaker (sync/breaker.h) stops all
 * requests while zooid fails 8 distinct relays in a row (no answer, 5xx, 408, 429) and probes with
 * one request after 2 s, doubling to 1 min. Costs: a failure, a retry or a kick is O(log n)
 * (retry heap, growing hash table), never a walk over the waiting relays.
 * SQL: sync/repo.h. Requests: sync/zooid.h.
 *
 * Test-only environment variables (never set in production; each logs a warning when used):
 * CARAVEL_TEST_SYNC_RETRY_MS (retry base, default 30000; the cap stays 30 x base),
 * CARAVEL_TEST_SYNC_RECONCILE_MS (default 60000), CARAVEL_TEST_SYNC_TIMEOUT_MS (default 15000),
 * CARAVEL_TEST_SYNC_BREAKER_MS (breaker window, default 2000; the cap stays 30 x window),
 * CARAVEL_TEST_SYNC_BATCH (relays per due query, default 1000). */
#ifndef CARAVEL_INFRA_H
#define CARAVEL_INFRA_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <stdint.h>

struct app;
struct sync_worker;

/* Starts the worker when app->cfg.zooid_api_url is set (else *out = NULL and 0). Needs app->loop,
 * app->cfg and app->db (borrowed for the worker's life). Returns 0 or -1 (logged). */
int sync_worker_start(struct sync_worker **out, struct app *app);
/* A relay's row changed (committed, with repo_relay_mark_dirty): sync it now, or once more
 * after the sync in flight. Also what POST /relays/:id/sync calls after resetting the attempts.
 * relay_id is copied. */
void sync_worker_kick(struct sync_worker *worker, const char *relay_id);
/* Members of a relay as zooid reports them (GET /relay/{id}/members, newer zooid), signed like
 * the sync's requests, same timeout, answer capped at SYNC_MEMBERS_MAX_RESPONSE. */
enum sync_worker_members_status {
    SYNC_MEMBERS_OK,      /* members: an array of 64-hex pubkeys (borrowed during cb) */
    SYNC_MEMBERS_UNKNOWN, /* zooid has no such endpoint (405 from an older zooid) or no such
                           * relay yet (404): unknown, not an error */
    SYNC_MEMBERS_FAILED,  /* no usable answer; what says why (zooid's text redacted) */
};
#define SYNC_MEMBERS_MAX_RESPONSE (8 * 1024 * 1024)
typedef void sync_worker_members_cb(enum sync_worker_members_status status, const cJSON *members,
                                    const char *what, void *arg);
/* Starts the request; cb runs exactly once, later, on the loop (FAILED when the worker stops
 * meanwhile). Returns 0, or -1 when the worker is NULL (sync off) or stopping or
 * the request could not start (cb never runs). relay_id is copied. */
int sync_worker_members(struct sync_worker *worker, const char *relay_id,
                        sync_worker_members_cb *cb, void *arg);

/* Relays waiting to be synced (for metrics). */
size_t sync_worker_backlog(const struct sync_worker *worker);

/* What /metrics shows of the worker. breaker_state: 0 closed, 1 open, 2 half-open
 * (sync/breaker.h); breaker_opens: times it opened since start. All 0 for a NULL worker. */
struct sync_worker_stats {
    size_t backlog;
    int breaker_state;
    uint64_t breaker_opens;
};
void sync_worker_stats(const struct sync_worker *worker, struct sync_worker_stats *out);
/* Stops timers, cancels the requests in flight, waits for its database jobs (the db must stay
 * open and the loop running until cb), frees, then calls cb(arg). With NULL, calls cb at once. */
void sync_worker_stop(struct sync_worker *worker, void (*cb)(void *arg), void *arg);

#endif
