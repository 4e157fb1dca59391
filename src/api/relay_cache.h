/* GET /relays/:id answered without the database round trip: the last answer body of each
 * recently read relay, kept only while no write has committed since it was read.
 *
 * Coherence: each entry carries the value of db_write_seq (db/db.h) taken when its read was
 * submitted, and is used only while db_write_seq still returns that value (even: no write
 * batch was running). Every write of this process moves the counter before its COMMIT can
 * become visible, so an entry never outlives a change of any row (the relay's, or the block
 * list's that its "synced" reads): a cached answer is always the one the database would give.
 * That holds only when this process makes every write, so api/relays.c enables the cache only
 * when the store is not shared (db_shared: SQLite, one process per file); on PostgreSQL, where
 * instances share the store, every read goes to the database. A row changed by another process
 * behind the service's back (the sqlite3 shell on the live file) is not counted: an entry also
 * expires RELAY_CACHE_TTL_MS after its read, which bounds how long such a hand edit can go unseen.
 *
 * Bounded: RELAY_CACHE_SLOTS direct-mapped slots (by the id's hash), bodies up to
 * RELAY_CACHE_BODY_MAX bytes. Loop thread only. */
#ifndef CARAVEL_API_RELAY_CACHE_H
#define CARAVEL_API_RELAY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define RELAY_CACHE_SLOTS 1024
#define RELAY_CACHE_BODY_MAX 8192
#define RELAY_CACHE_ID_MAX 64
#define RELAY_CACHE_TTL_MS 1000

/* The cached answer for id at write sequence seq and monotonic time now_ms (clock_mono_ms):
 * 0 and *body, *len (owned by the cache, valid until the next call), *tenant (the relay's
 * owner, lowercase hex); -1 when there is none, or it was read under another seq or expired
 * (then it is dropped). */
int relay_cache_get(uint64_t seq, uint64_t now_ms, const char *id, const char **body, size_t *len,
                    const char **tenant);
/* Remembers body (copied) as id's answer read at seq, submitted at now_ms; ignored when seq
 * is odd, or id or body is too long. */
void relay_cache_put(uint64_t seq, uint64_t now_ms, const char *id, const char *tenant,
                     const char *body, size_t len);
/* Forgets everything (tests, shutdown). */
void relay_cache_clear(void);
/* Entries held (tests). */
size_t relay_cache_size(void);

#endif
