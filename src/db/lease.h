/* Leader lease: one instance at a time holds a named lease in the shared database (table
 * leader_lease, migrations/0010), so a singleton job (billing) runs on exactly one of several
 * instances, and another takes over when the holder dies. docs/ARCHITECTURE.md "Leader lease".
 *
 * The row: holder (a random id per process, '' = nobody), epoch (the fencing token: one more at
 * every change of holder), beat (one more at every renewal), ttl_ms (the holder's TTL).
 *   - The leader renews every ttl/5 (UPDATE ... WHERE holder = me AND epoch = mine). It may act
 *     (send a wallet request) only while lease_valid: until the send time of its last
 *     successful renewal + ttl - margin, on its own monotonic clock.
 *   - A standby reads the row every second and takes the lease over (a compare-and-set on
 *     holder, epoch and beat) once the row was '' or has not changed for the holder's ttl_ms on
 *     the standby's monotonic clock since the standby first saw it. The leader's validity began
 *     no later than its renewal committed, and the standby saw that beat no earlier: the old
 *     leader's validity has ended before the takeover, whatever the two wall clocks say (only
 *     the clocks' rates matter; the margin covers their drift).
 *   - Every write the leader makes checks the token in the same transaction (lease_fence: an
 *     UPDATE of the row that must match holder and epoch, so on PostgreSQL it also locks the row
 *     until COMMIT): a leader that was paused past its TTL and wakes up cannot commit once
 *     another took over; its write fails with DB_ELEASE and it steps down.
 *
 * On SQLite (one file, one process) the lease is a formality: lease_start makes the process the
 * leader for good, with no row, no timer and no fencing. The SQL below is engine-neutral all the
 * same (tested on both engines).
 *
 * Threads: lease_start/valid/is_leader/token/lost/stop on the loop thread. lease_run and
 * lease_fence on a pool thread inside a write job. lease_plan/lease_apply/lease_state_valid are
 * pure (a clock passed in, so tests inject time). */
#ifndef CARAVEL_DB_LEASE_H
#define CARAVEL_DB_LEASE_H

#include <stdint.h>

#include <uv.h>

struct db;
struct db_conn;

#define LEASE_NAME_MAX 32
#define LEASE_HOLDER_MAX 96
#define LEASE_POLL_MS 1000 /* a standby reads the row at least this often */

struct lease_row {
    char holder[LEASE_HOLDER_MAX];
    int64_t epoch, beat, ttl_ms;
};

/* What one holder knows. Owned by its driver (or a test). */
struct lease_state {
    char name[LEASE_NAME_MAX], holder[LEASE_HOLDER_MAX];
    int64_t ttl_ms, margin_ms;
    int leader;              /* 1 from a takeover until a lost renewal, a lost fence or release */
    int64_t epoch;           /* leader: the fencing token */
    uint64_t valid_until_ms; /* leader: send time of the last successful renewal + ttl */
    int has_seen;            /* standby: the row as last seen and when first seen so */
    struct lease_row seen;
    uint64_t seen_at_ms;
};

/* One database round of a holder: planned on the loop thread (lease_plan), run in a write job
 * (lease_run), applied on the loop thread (lease_apply). */
enum lease_op_kind { LEASE_OBSERVE, LEASE_RENEW, LEASE_RELEASE };
struct lease_op {
    enum lease_op_kind kind;
    char name[LEASE_NAME_MAX], holder[LEASE_HOLDER_MAX];
    int64_t ttl_ms, epoch; /* RENEW / RELEASE: the token */
    int may_take;          /* OBSERVE: take over if the row is still seen */
    struct lease_row seen; /* ... the row the planner saw unchanged for its TTL */
    int done;              /* out: RENEW/RELEASE: the row matched; OBSERVE: taken over */
    struct lease_row row;  /* out: the row at the end of the round */
};

/* A fencing token (copied into a job at submit time). enforced 0: no lease (SQLite). */
struct lease_token {
    char name[LEASE_NAME_MAX], holder[LEASE_HOLDER_MAX];
    int64_t epoch;
    int enforced;
};

/* ---- the decisions (pure) ---- */

/* ttl_ms >= 1000; margin: a fifth of it. holder: this process's id. */
void lease_state_init(struct lease_state *st, const char *name, const char *holder, int64_t ttl_ms);
/* The next round at now_ms: a leader renews, a standby observes (taking over when the row it
 * saw has not changed for the holder's TTL, or nobody holds it). */
void lease_plan(const struct lease_state *st, uint64_t now_ms, struct lease_op *op);
/* The round's outcome. status: the job's (0 or a db_error: nothing learned). sent_ms: when it
 * was planned (a renewal counts from then), done_ms: when its result arrived (a new row counts
 * as seen from then). Returns +1 became leader, -1 stepped down, 0 no change. */
int lease_apply(struct lease_state *st, int status, const struct lease_op *op, uint64_t sent_ms,
                uint64_t done_ms);
/* 1 when the holder may act at now_ms: leader and now + margin < valid_until. */
int lease_state_valid(const struct lease_state *st, uint64_t now_ms);
/* The holder lost its lease (a fenced write failed): standby. Returns -1 if it was leader. */
int lease_state_lost(struct lease_state *st);

/* ---- SQL (pool thread, inside the caller's write transaction) ---- */

/* Runs op: creates the row if missing, reads it, renews / releases / takes over by
 * compare-and-set. 0 or a db_error; op->done and op->row set (may run again after DB_EBUSY). */
int lease_run(struct db_conn *conn, struct lease_op *op);
/* 0 when t still holds its lease (on PostgreSQL the row stays locked until the transaction
 * ends, so no takeover commits in between), DB_ELEASE when another holds it, or a db_error.
 * A token that is not enforced passes without SQL. */
int lease_fence(struct db_conn *conn, const struct lease_token *t);

/* ---- the driver (loop thread) ---- */

struct lease;
/* leader: 1 became leader, 0 stepped down. */
typedef void lease_change_cb(void *owner, int leader);
/* Starts holding name on db: on a store no other process shares (SQLite, db_shared 0) the
 * process is the leader at once (cb is not called for that); on a shared one (PostgreSQL) a
 * standby that reads the row at once. ttl_ms in [1000, 600000]. Returns 0. */
int lease_start(struct lease **out, uv_loop_t *loop, struct db *db, const char *name,
                int64_t ttl_ms, lease_change_cb *cb, void *owner);
int lease_is_leader(const struct lease *l);
/* The leader's fencing token (0 on SQLite), -1 on a standby. */
int64_t lease_epoch(const struct lease *l);
/* 1 when the process may act now as the leader (its monotonic clock, with the margin). */
int lease_valid(const struct lease *l);
/* The token for a write job; a standby's never passes lease_fence. */
void lease_token(const struct lease *l, struct lease_token *out);
/* A fenced write failed with DB_ELEASE: step down now (cb runs). */
void lease_lost(struct lease *l);
const char *lease_holder(const struct lease *l);
/* Stops the timer, releases the lease if held (a standby takes over at its next read), waits
 * for the round in flight, frees l, then calls cb (may be NULL). Before db_close. */
void lease_stop(struct lease *l, void (*cb)(void *arg), void *arg);

#endif
