/* Claims of shared work between instances on one database (docs/ARCHITECTURE.md "Several
 * instances"): a row of work names the instance doing it (an owner column holding
 * db_instance()) and until when (a lease column, unix ms). Each worker takes and clears its
 * own claims with its own conditional UPDATEs; letting go of all the claims of one instance
 * (a graceful stop) or of the instances that are gone (start-up) is the same for every kind
 * and lives here.
 *
 * The tables and columns come from a fixed table in claims.c, one entry per kind, never
 * from input. Pool thread, inside a db_write job. Return codes: 0 or a db_error (db/db.h). */
#ifndef CARAVEL_DB_CLAIMS_H
#define CARAVEL_DB_CLAIMS_H

#include <stdint.h>

#include "db/db.h"

enum db_claim_kind {
    DB_CLAIM_RELAY_SYNC, /* relay.sync_owner / sync_lease_until: a relay's zooid sync */
    DB_CLAIM_DM,         /* message.claim_owner / claim_until: a queued DM (state 'queued') */
    DB_CLAIM_BLOCKLIST,  /* blocklist_relay.claim_owner / claim_until: one NIP-86 call */
    DB_CLAIM_KINDS
};

/* Distinct claim holders looked at per start-up (the rest wait for their leases). */
#define DB_CLAIM_STALE_OWNERS_MAX 64

/* Lets go of every claim of kind that owner holds. *n: how many rows. */
int db_claims_release_owner(struct db_conn *conn, enum db_claim_kind kind, const char *owner,
                            int64_t *n);

/* Start-up: lets go of the claims of kind held by instances that are certainly gone
 * (db_instance_gone: this host, a pid that no longer runs or an earlier run of this one), or
 * of every claim of kind when the database is not shared (shared 0: SQLite, whose one
 * process is this one). A claim of a live or unknown instance stays until its lease ends.
 * *n: how many rows. */
int db_claims_release_stale(struct db_conn *conn, enum db_claim_kind kind, int shared, int64_t *n);

#endif
