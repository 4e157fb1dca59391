/* The background member-count refresh (docs/API.md, "Members"). Loop thread only.
 *
 * Every active relay that zooid serves has its member count read again from zooid's members
 * endpoint (through the sync worker's client, sync_worker_members: libcurl multi on the loop)
 * once per MEMBERS_REFRESH_INTERVAL, +- 10 % so relays read together drift apart; a relay seen
 * for the first time is placed at a random point of the next interval, so a deployment's reads
 * are spread over the interval rather than made at once. At most MEMBERS_REFRESH_CONCURRENCY
 * reads are in flight. The schedule is in the database (relay.members_next_at, written when a
 * relay is claimed): the loop holds only the reads in flight, one timer and one due query at a
 * time, whatever the number of relays.
 *
 * An answer is recorded with repo_members_record: the count (members_count, read by the relay
 * JSON and the plan check), or NULL when zooid cannot say (an older zooid without the endpoint,
 * 404/405: "unknown", never an error). A relay over its plan's member cap gets its owner one
 * DM through the robot's outbox per crossing (over_cap_notified_at, durable: refreshes and
 * restarts do not send it again; it is cleared when the count is back under the cap). A failed
 * read (zooid down) keeps the last count and is tried at the next interval; the first failure
 * of a streak is logged as a warning, the rest at debug level. Nothing is read while the sync
 * worker's circuit breaker is open, or when there is no zooid (ZOOID_API_URL unset). */
#ifndef CARAVEL_MEMBERS_WORKER_H
#define CARAVEL_MEMBERS_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct members;

/* Starts the refresh (needs app->loop, app->cfg, app->db; uses app->sync and app->robot, each
 * may be NULL). Without a sync worker *out is NULL and 0 is returned: there is nothing to ask. */
int members_start(struct members **out, struct app *app);

struct members_stats {
    size_t in_flight;
    uint64_t counted, unknown, failed, dms; /* since start */
};
/* All 0 for NULL. */
void members_stats(const struct members *m, struct members_stats *out);

/* Stop after the sync worker (which cancels the reads in flight): waits for the reads still in
 * flight and its database jobs, frees, then cb(arg). NULL: cb at once. */
void members_stop(struct members *m, void (*cb)(void *arg), void *arg);

#endif
