/* The sync worker's circuit breaker: while zooid fails everything, stop sending it requests
 * (each one would only burn one of a relay's six attempts, a database write and CPU) and
 * probe it with one request at a time, further and further apart.
 *
 *   closed     requests go out. An "outage" answer (no HTTP response: refused, reset, timed
 *              out; or HTTP 5xx, 408 or 429) from a relay not yet counted adds one to the
 *              streak; any other HTTP answer (2xx, 3xx, other 4xx: zooid is up and talking)
 *              ends it. `threshold` distinct relays in a row -> open.
 *   open       nothing is sent until `until_ms`, then half-open. The window starts at base_ms
 *              and doubles after each failed probe, up to cap_ms.
 *   half-open  exactly one request (the probe) may go out. Its outage -> open again with the
 *              doubled window; any other answer -> closed. A probe that ended without asking
 *              zooid anything (nothing left to sync) lets the next one go.
 * Any non-outage answer, probe or not, closes the breaker and resets the window.
 *
 * Pure state machine: time is passed in (milliseconds on any monotonic clock), nothing is
 * allocated, no thread assumptions (the worker uses it on the loop thread only). */
#ifndef CARAVEL_SYNC_BREAKER_H
#define CARAVEL_SYNC_BREAKER_H

#include <stdint.h>

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

/* What breaker_admit allows. */
enum breaker_admit { BREAKER_WAIT = 0, BREAKER_GO = 1, BREAKER_PROBE = 2 };

struct breaker {
    enum breaker_state state;
    unsigned threshold; /* distinct failing relays in a row that open it (>= 1) */
    int64_t base_ms, cap_ms;
    int64_t window_ms;   /* current open window */
    uint64_t until_ms;   /* open: when the next probe may go */
    unsigned streak;     /* closed: distinct relays failed in a row */
    uint64_t generation; /* bumped when a streak ends: a relay counts once per streak */
    int probing;         /* half-open: the probe is out */
    uint64_t opens;      /* times it opened (closed -> open), for /metrics */
};

void breaker_init(struct breaker *b, unsigned threshold, int64_t base_ms, int64_t cap_ms);

/* Whether one more request may start now: GO (closed), PROBE (half-open and no probe out:
 * this request is the probe; report how it ended with breaker_probe_*), or WAIT. */
enum breaker_admit breaker_admit(struct breaker *b, uint64_t now_ms);

/* Whether an answer (err: 0 or a negative fetch/uv error; status: the HTTP status when err
 * is 0) means zooid is failing everything. */
int breaker_is_outage(int err, long status);

/* An answer arrived. relay_mark: the relay's own word, 0 at first (a relay counts once per
 * streak: the breaker stores its generation there). probe: this was the probe request.
 * Returns 1 when this answer opened the breaker (the caller arms a timer for until_ms). */
int breaker_observe(struct breaker *b, uint64_t now_ms, int outage, int probe,
                    uint64_t *relay_mark);

/* The probe's sync ended without a zooid answer: the next admit may probe at once. */
void breaker_probe_abandoned(struct breaker *b);

/* Milliseconds until the breaker may admit again (0 when it may now). */
uint64_t breaker_wait_ms(const struct breaker *b, uint64_t now_ms);

#endif
