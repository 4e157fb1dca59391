/* SQL of the member counts (columns members_count, members_fetched_at, members_next_at and
 * over_cap_notified_at of relay; migrations 0007 and 0009). Pool thread only, inside the
 * caller's db_read / db_write job. Return codes: 0 or a db_error (db/db.h). */
#ifndef CARAVEL_MEMBERS_REPO_H
#define CARAVEL_MEMBERS_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* Relays placed per claim at most (members_next_at = 0): a fresh deployment is spread over a
 * few claims, each a bounded transaction. */
#define MEMBERS_PLACE_MAX 1000

/* Claims up to max relays whose count is due (active, created in zooid, members_next_at <= now),
 * the longest-waiting first, and schedules each one's next read at now + interval +- 10 %
 * (written now, so a claimed relay is never claimed twice and a crash only delays it). Relays
 * never placed (0) are first given a random point in [now, now + interval) (at most
 * MEMBERS_PLACE_MAX per call). ids: the caller's array of max. *next_due: the earliest
 * members_next_at left (0 when no relay qualifies). seed varies the jitter between calls. */
int repo_members_claim(struct db_conn *conn, int64_t now, int64_t interval, uint64_t seed,
                       char (*ids)[33], size_t max, size_t *n, int64_t *next_due);

/* What a read of relay id's members gave, recorded at now:
 *   known: members_count = count; over the relay's plan cap and not yet told -> the owner is
 *     queued one DM (robot outbox, host = subdomain.domain in its text) and
 *     over_cap_notified_at = now, *dm = 1; at or under the cap -> over_cap_notified_at = NULL
 *     (the next crossing is told again);
 *   !known (zooid cannot say): members_count = NULL, the notified state is kept.
 * members_fetched_at = now either way. DB_ENOTFOUND when there is no such relay. */
int repo_members_record(struct db_conn *conn, const char *id, int known, int64_t count, int64_t now,
                        const char *domain, int *dm);

#endif
