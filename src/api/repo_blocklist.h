/* SQL of the /blocklist routes (tables blocklist, blocklist_relay; the rollout itself is the
 * block-list worker's, blocklist/worker.h). Pool thread only, inside the API's jobs. Return
 * codes: 0, DB_ENOTFOUND, or a db_error (db/db.h). */
#ifndef CARAVEL_REPO_BLOCKLIST_H
#define CARAVEL_REPO_BLOCKLIST_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include "db/db.h"

/* Adds (or re-activates, with the new reason) an entry and marks it "to ban" on every active
 * relay: one row per relay, due now. */
int repo_blocklist_add(struct db_conn *conn, const char *pubkey, const char *reason,
                       const char *admin, int64_t now);

/* Marks an active entry removed: relays that confirmed the ban get "to lift", rows never
 * confirmed are dropped, and an entry with no row left is deleted. DB_ENOTFOUND when there is
 * no active entry. */
int repo_blocklist_remove(struct db_conn *conn, const char *pubkey, int64_t now);

/* One entry as the API shows it (BlockEntry), or DB_ENOTFOUND. *out owned by the caller. */
int repo_blocklist_get(struct db_conn *conn, const char *pubkey, cJSON **out);

/* Every entry, newest first (the list is the operator's, small: no paging). */
int repo_blocklist_list(struct db_conn *conn, cJSON **out);

#endif
