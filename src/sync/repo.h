/* SQL of the zooid sync worker (PRODUCT.md §5). Every function runs on a pool thread inside a
 * db_read (load, due) or db_write (complete, fail) job; none touches the loop. Relays are never
 * deleted here. Return codes are 0 or a db_error (db/db.h). */
#ifndef CARAVEL_REPO_SYNC_H
#define CARAVEL_REPO_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* A relay row as the sync worker needs it. Strings are owned (malloc'd); free with
 * sync_relay_free, which also wipes the secret. */
struct sync_relay {
    char *id, *tenant, *subdomain, *schema, *secret, *plan, *status;
    char *info_name, *info_icon, *info_description;
    char *moderators; /* "hex,hex" ("" = none): zooid's role "moderator" */
    int policy_public_join, policy_strip_signatures;
    int groups_enabled, management_enabled, blossom_enabled, livekit_enabled, push_enabled;
    int synced;        /* 1 when zooid has the current version */
    int sync_created;  /* 1 once zooid accepted a POST/PUT: later syncs PATCH */
    int sync_attempts; /* consecutive failures */
    int64_t sync_version;
    char *sync_config; /* the config zooid last accepted (zooid.h, ZOOID_BODY_STATE); NULL
                        * when none was recorded (never synced, or by an older version) */
};

void sync_relay_free(struct sync_relay *r);

/* Delay before retry number `attempt` (1-based, after that many failures):
 * base_ms * 2^(attempt-1), capped at cap_ms. Pure. */
int64_t sync_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

/* Reads relay `id` into *out (zeroed first). DB_ENOTFOUND when there is no such relay. */
int repo_sync_load(struct db_conn *conn, const char *id, struct sync_relay *out);

/* Ids of relays to sync now: synced = 0, sync_next_at <= now, sync_attempts < max_attempts,
 * no live claim (sync_owner NULL or sync_lease_until <= now_ms); at most `limit`, oldest due
 * first. *ids is a malloc'd array of malloc'd strings (caller frees each and the array; NULL
 * when *n is 0). */
int repo_sync_due(struct db_conn *conn, int64_t now, int64_t now_ms, int max_attempts, size_t limit,
                  char ***ids, size_t *n);

/* Claims relay id's sync for `owner` (db_instance()) until lease_until (unix ms), inside a
 * db_write job, when it needs one (synced = 0, sync_attempts < max_attempts) and no other
 * instance holds a live claim (none, owner's own, or sync_lease_until <= now_ms); a
 * conditional UPDATE, so of instances claiming at once exactly one gets it (PostgreSQL
 * re-checks the condition on the row the first one committed). Then reads the relay into
 * *out as repo_sync_load does. *held_until: 0 when claimed or when there is nothing to do
 * (out->synced or attempts at the limit), else the other instance's lease end (unix ms).
 * DB_ENOTFOUND when there is no such relay. */
int repo_sync_claim(struct db_conn *conn, const char *id, const char *owner, int64_t now_ms,
                    int64_t lease_until, int max_attempts, struct sync_relay *out,
                    int64_t *held_until);

/* Lets go of owner's claim on relay id (its sync's outcome is recorded): another instance may
 * sync it at once. Nothing when another instance holds it. */
int repo_sync_release(struct db_conn *conn, const char *id, const char *owner);

/* Letting go of all of an instance's claims (a graceful stop) and of the claims of instances
 * that are gone (start-up): db/claims.h, DB_CLAIM_RELAY_SYNC. */

/* zooid accepted version `version` of the relay, whose config is now `config` (recorded as
 * sync_config, the base of the next PATCH; NULL clears it). Always records sync_created = 1
 * and sync_config. If the relay's sync_version is still `version`: synced = 1, sync_error =
 * NULL, attempts and backoff reset, one complete_relay_sync activity, *stale = 0. Otherwise
 * (changed while the request was in flight) nothing else changes and *stale = 1: the caller
 * syncs again. */
int repo_sync_complete(struct db_conn *conn, const char *id, int64_t version, const char *config,
                       int64_t now, int *stale);

/* A sync failed with `error` (copied into sync_error): sync_attempts + 1, sync_next_at =
 * now + ceil(sync_backoff_ms(attempts, base_ms, cap_ms) / 1000), one fail_relay_sync
 * activity. *attempts gets the new count and *delay_ms the backoff delay. */
int repo_sync_fail(struct db_conn *conn, const char *id, const char *error, int64_t now,
                   int64_t base_ms, int64_t cap_ms, int *attempts, int64_t *delay_ms);

/* A sync failed in a way no retry fixes (zooid refused the config, our key or our URL):
 * sync_error = error, sync_attempts = give_up_at (the worker's limit, so neither the worker
 * nor the reconcile pass tries again until an API change or POST /relays/:id/sync resets
 * it), one fail_relay_sync activity. */
int repo_sync_fail_permanent(struct db_conn *conn, const char *id, const char *error, int64_t now,
                             int give_up_at);

#endif
