/* SQL of the block-list worker (tables blocklist, blocklist_relay). Pool thread only, inside
 * the worker's db_read / db_write jobs. Return codes: 0 or a db_error (db/db.h). */
#ifndef CARAVEL_BLOCKLIST_REPO_H
#define CARAVEL_BLOCKLIST_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

#include "core/relay_target.h"

#define BLOCKLIST_REASON_MAX 500

/* One (relay, pubkey) that must change: want 1 = ban, 0 = lift. */
struct bl_item {
    char pubkey[65];
    int want;
    int attempts;
    char reason[BLOCKLIST_REASON_MAX + 1];
    struct relay_target t; /* holds the relay's key: relay_target_wipe */
};

/* Claims (docs/ARCHITECTURE.md "Several instances"): a row's NIP-86 call is sent by the one
 * instance whose claim (blocklist_relay.claim_owner, db_instance(), until claim_until, unix ms)
 * it holds; the claim is cleared in the transaction that records the relay's answer, and one
 * left by an instance that died is taken over once claim_until has passed. Letting go of all
 * of an instance's claims: db/claims.h, DB_CLAIM_BLOCKLIST. */

/* Up to max rows with want != applied, next_at <= now (unix ms), on active relays, without a
 * live claim (none, or claim_until <= now), oldest first, into items (caller's array of max).
 * *n is how many were read. Relays whose secret does not parse are skipped (logged). A read:
 * what it returns must still be claimed (repo_bl_claim) before its call is sent. */
int repo_bl_due(struct db_conn *conn, int64_t now, const char *domain, struct bl_item *items,
                size_t max, size_t *n);

/* When the next row may become due without anyone saying so (unix ms; 0: none): the earliest
 * retry time (next_at > now) of a pending row of an active relay, or end of another instance's
 * live claim. owner's own claims are left out: their answers come back to it. */
int repo_bl_next_due(struct db_conn *conn, int64_t now, const char *owner, int64_t *at);

/* Claims (relay, pubkey) for owner until `until` (unix ms) if it is still what a due read saw:
 * want unchanged, still pending (want != applied, next_at <= now) and no live claim (none, or
 * claim_until <= now; a row of owner's own that is in flight is live too). A conditional
 * UPDATE: of instances claiming one row at once exactly one gets it (PostgreSQL re-checks the
 * condition on the row the first one committed). *claimed: 1 when owner now holds it. */
int repo_bl_claim(struct db_conn *conn, const char *relay, const char *pubkey, int want,
                  const char *owner, int64_t now, int64_t until, int *claimed);

/* The relay confirmed `sent` (1 banned, 0 lifted) for (relay, pubkey). The row records it even
 * if the entry was removed meanwhile (then it is re-created as "lift"); a row with nothing left
 * to do is deleted, and so is a removed entry without rows. owner's claim on it is let go (a
 * claim another instance took over meanwhile stays). */
int repo_bl_applied(struct db_conn *conn, const char *relay, const char *pubkey, int sent,
                    const char *owner);

/* Deletes every removed entry that has no relay row left; *deleted: how many. repo_bl_applied
 * does this for its own entry, but when two instances record an entry's last two relays at
 * once (PostgreSQL, READ COMMITTED), each transaction still sees the other's row and neither
 * deletes the entry. The worker runs this once its rollout is idle, i.e. after its own records
 * committed: of two such recorders, the later sweep sees both rows gone. */
int repo_bl_sweep_removed(struct db_conn *conn, int64_t *deleted);

/* A call failed: attempts + 1, next_at (unix ms), the error text, owner's claim let go. Nothing
 * when another instance holds the row now (it took the row over after owner's lease ended). */
int repo_bl_failed(struct db_conn *conn, const char *relay, const char *pubkey, int64_t next_at,
                   const char *error, const char *owner);

/* A relay appeared, came back, or was just accepted by zooid: it gets a row for every active
 * entry it lacks (only when the relay is active), and its pending rows are due now. *due: the
 * rows added or made due (0: the rollout has nothing new to send). */
int repo_bl_relay_ready(struct db_conn *conn, const char *relay, int64_t *due);

/* Start-up: every active relay gets a row for every active entry it lacks (covers a crash
 * between a relay's commit and its relay_ready). Returns rows added in *added. */
int repo_bl_reconcile(struct db_conn *conn, int64_t *added);

#endif
