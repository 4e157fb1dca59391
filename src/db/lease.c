/* Leader lease (db/lease.h): the decisions (pure, clock passed in), the SQL of one round, and
 * the driver that runs a round every second or so on the loop. */
#include "db/lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "db/db.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/stop.h"
#include "util/util.h"

/* ---- the decisions ---- */

void lease_state_init(struct lease_state *st, const char *name, const char *holder, int64_t ttl_ms)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", name);
    snprintf(st->holder, sizeof(st->holder), "%s", holder);
    st->ttl_ms = MAX(ttl_ms, 1000);
    st->margin_ms = st->ttl_ms / 5;
}

static int row_eq(const struct lease_row *a, const struct lease_row *b)
{
    return strcmp(a->holder, b->holder) == 0 && a->epoch == b->epoch && a->beat == b->beat;
}

void lease_plan(const struct lease_state *st, uint64_t now_ms, struct lease_op *op)
{
    memset(op, 0, sizeof(*op));
    snprintf(op->name, sizeof(op->name), "%s", st->name);
    snprintf(op->holder, sizeof(op->holder), "%s", st->holder);
    op->ttl_ms = st->ttl_ms;
    if (st->leader) {
        op->kind = LEASE_RENEW;
        op->epoch = st->epoch;
        return;
    }
    op->kind = LEASE_OBSERVE;
    if (!st->has_seen)
        return;
    /* The holder acts within its own TTL: wait that long, whatever ours is. */
    int64_t ttl = st->seen.ttl_ms > 0 ? st->seen.ttl_ms : st->ttl_ms;
    op->seen = st->seen;
    op->may_take = now_ms >= st->seen_at_ms && now_ms - st->seen_at_ms >= (uint64_t)ttl;
}

static void observe(struct lease_state *st, const struct lease_row *row, uint64_t at_ms)
{
    if (st->has_seen && row_eq(&st->seen, row))
        return;
    st->seen = *row;
    st->seen_at_ms = at_ms;
    st->has_seen = 1;
}

int lease_state_lost(struct lease_state *st)
{
    int was = st->leader;
    st->leader = 0;
    st->epoch = 0;
    st->valid_until_ms = 0;
    st->has_seen = 0;
    return was ? -1 : 0;
}

int lease_apply(struct lease_state *st, int status, const struct lease_op *op, uint64_t sent_ms,
                uint64_t done_ms)
{
    if (status != 0)
        return 0; /* nothing learned: a leader's validity runs out by itself */
    switch (op->kind) {
    case LEASE_RENEW:
        if (!st->leader || op->epoch != st->epoch)
            return 0;
        if (op->done) {
            st->valid_until_ms = sent_ms + (uint64_t)st->ttl_ms;
            return 0;
        }
        break;
    case LEASE_RELEASE:
        break;
    case LEASE_OBSERVE:
        if (op->done && !st->leader) {
            st->leader = 1;
            st->epoch = op->row.epoch;
            st->valid_until_ms = sent_ms + (uint64_t)st->ttl_ms;
            st->has_seen = 0;
            return 1;
        }
        if (!st->leader)
            observe(st, &op->row, done_ms);
        return 0;
    }
    int rc = lease_state_lost(st);
    observe(st, &op->row, done_ms);
    return rc;
}

int lease_state_valid(const struct lease_state *st, uint64_t now_ms)
{
    return st->leader && now_ms + (uint64_t)st->margin_ms < st->valid_until_ms;
}

/* ---- SQL ---- */

static const char SQL_READ[] =
    "SELECT holder, epoch, beat, ttl_ms FROM leader_lease WHERE name = ?";
static const char SQL_SEED[] = "INSERT OR IGNORE INTO leader_lease (name, holder, epoch, beat, "
                               "ttl_ms) VALUES (?, '', 0, 0, 0)";
static const char SQL_RENEW[] = "UPDATE leader_lease SET beat = beat + 1, ttl_ms = ? "
                                "WHERE name = ? AND holder = ? AND epoch = ?";
static const char SQL_RELEASE[] = "UPDATE leader_lease SET holder = '', beat = beat + 1 "
                                  "WHERE name = ? AND holder = ? AND epoch = ?";
static const char SQL_TAKE[] =
    "UPDATE leader_lease SET holder = ?, epoch = epoch + 1, beat = 0, ttl_ms = ? "
    "WHERE name = ? AND holder = ? AND epoch = ? AND beat = ?";
/* Writes the row without changing it: the match is the check, and on PostgreSQL the row lock
 * held until COMMIT orders this transaction before any takeover. */
static const char SQL_FENCE[] =
    "UPDATE leader_lease SET epoch = epoch WHERE name = ? AND holder = ? AND epoch = ?";

/* The row into out: 0, DB_ENOTFOUND or a db_error. */
static int read_row(struct db_conn *conn, const char *name, struct lease_row *out)
{
    struct db_stmt *st = db_query(conn, SQL_READ, DB_TEXT(name));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        const char *h = db_col_str(st, 0);
        snprintf(out->holder, sizeof(out->holder), "%s", h ? h : "");
        out->epoch = db_col_int64(st, 1);
        out->beat = db_col_int64(st, 2);
        out->ttl_ms = db_col_int64(st, 3);
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = DB_ENOTFOUND;
    }
    db_reset(st);
    return rc;
}

/* Runs an UPDATE that must match one row: 1 matched, 0 not, or a db_error. */
static int update_one(struct db_conn *conn, int rc)
{
    return rc < 0 ? rc : db_changes(conn) == 1;
}

static int take(struct db_conn *conn, struct lease_op *op)
{
    const struct lease_row *r = &op->row;
    int rc = update_one(conn, db_run(conn, SQL_TAKE, DB_TEXT(op->holder), DB_INT(op->ttl_ms),
                                     DB_TEXT(op->name), DB_TEXT(r->holder), DB_INT(r->epoch),
                                     DB_INT(r->beat)));
    if (rc == 1) {
        snprintf(op->row.holder, sizeof(op->row.holder), "%s", op->holder);
        op->row.epoch++;
        op->row.beat = 0;
        op->row.ttl_ms = op->ttl_ms;
        op->done = 1;
    }
    return rc < 0 ? rc : 0;
}

int lease_run(struct db_conn *conn, struct lease_op *op)
{
    ASSERT_POOL_THREAD();
    op->done = 0;
    memset(&op->row, 0, sizeof(op->row));
    int rc = 0;
    if (op->kind == LEASE_RENEW)
        rc = update_one(conn, db_run(conn, SQL_RENEW, DB_INT(op->ttl_ms), DB_TEXT(op->name),
                                     DB_TEXT(op->holder), DB_INT(op->epoch)));
    else if (op->kind == LEASE_RELEASE)
        rc = update_one(conn, db_run(conn, SQL_RELEASE, DB_TEXT(op->name), DB_TEXT(op->holder),
                                     DB_INT(op->epoch)));
    if (rc < 0)
        return rc;
    op->done = rc;
    if (op->kind != LEASE_OBSERVE && rc == 1)
        return read_row(conn, op->name, &op->row);
    rc = read_row(conn, op->name, &op->row);
    if (rc == DB_ENOTFOUND && (rc = db_run(conn, SQL_SEED, DB_TEXT(op->name))) == 0)
        rc = read_row(conn, op->name, &op->row);
    if (rc != 0 || op->kind != LEASE_OBSERVE)
        return rc;
    /* Nobody (or a former self) holds it, or the holder has not renewed for its TTL. */
    if (op->row.holder[0] == '\0' || strcmp(op->row.holder, op->holder) == 0 ||
        (op->may_take && row_eq(&op->row, &op->seen)))
        return take(conn, op);
    return 0;
}

int lease_fence(struct db_conn *conn, const struct lease_token *t)
{
    ASSERT_POOL_THREAD();
    if (!t->enforced)
        return 0;
    int rc = update_one(
        conn, db_run(conn, SQL_FENCE, DB_TEXT(t->name), DB_TEXT(t->holder), DB_INT(t->epoch)));
    return rc < 0 ? rc : rc == 1 ? 0 : DB_ELEASE;
}

/* ---- the driver ---- */

struct lease {
    uv_loop_t *loop;
    struct db *db;
    uv_timer_t timer;
    struct lease_state st;
    int single;    /* SQLite: leader for good, no rounds */
    int in_flight; /* a round is queued or running */
    int released;  /* stopping: the release round ran */
    struct stop stop;
    lease_change_cb *cb;
    void *owner;
};

struct round {
    struct lease *l;
    struct lease_op op;
    uint64_t sent_ms;
};

static void tick(struct lease *l);

static void on_timer(uv_timer_t *t)
{
    tick(container_of(t, struct lease, timer));
}

static void on_closed(uv_handle_t *h)
{
    struct lease *l = container_of((uv_timer_t *)h, struct lease, timer);
    struct stop done = l->stop;
    free(l);
    stop_finish(done);
}

static void maybe_finish(struct lease *l)
{
    if (stop_ready(&l->stop, l->in_flight))
        uv_close((uv_handle_t *)&l->timer, on_closed);
}

static void changed(struct lease *l, int change, int released)
{
    if (released && change < 0)
        LOG_INFO("lease %s: this instance (%s) released the lease (stopping)", l->st.name,
                 l->st.holder);
    else if (change > 0)
        LOG_INFO("lease %s: this instance (%s) is the leader now (epoch %" PRId64 ")", l->st.name,
                 l->st.holder, l->st.epoch);
    else if (change < 0)
        LOG_INFO("lease %s: this instance (%s) stepped down: another instance holds the lease",
                 l->st.name, l->st.holder);
    if (change && l->cb && !l->stop.stopping)
        l->cb(l->owner, change > 0);
}

static int work_round(struct db_conn *conn, void *arg)
{
    struct round *r = arg;
    return lease_run(conn, &r->op);
}

static void on_round(int status, void *arg)
{
    struct round *r = arg;
    struct lease *l = r->l;
    l->in_flight = 0;
    if (status != 0 && status != DB_ECLOSED)
        LOG_WARN("lease %s: round failed (%s)", l->st.name, err_name(status));
    int was_release = r->op.kind == LEASE_RELEASE;
    changed(l, lease_apply(&l->st, status, &r->op, r->sent_ms, clock_mono_ms()), was_release);
    free(r);
    if (l->stop.stopping) {
        l->released |= was_release;
        tick(l); /* releases the lease if still held, else finishes */
        return;
    }
    uint64_t every = (uint64_t)l->st.ttl_ms / 5;
    uv_timer_start(&l->timer, on_timer, l->st.leader ? every : MIN(every, LEASE_POLL_MS), 0);
}

static void tick(struct lease *l)
{
    if (l->in_flight)
        return;
    struct round *r = xcalloc(1, sizeof(*r));
    r->l = l;
    r->sent_ms = clock_mono_ms();
    lease_plan(&l->st, r->sent_ms, &r->op);
    if (l->stop.stopping) {
        if (!l->st.leader || l->released) {
            free(r);
            maybe_finish(l);
            return;
        }
        r->op.kind = LEASE_RELEASE;
    }
    l->in_flight = 1;
    int rc = db_write(l->db, DB_CRASH_SAFE, work_round, on_round, r);
    if (rc < 0) {
        l->released |= l->stop.stopping; /* no release possible: the TTL frees it */
        on_round(rc, r);
    }
}

/* A readable, unique id: host, pid and 32 random bits. */
static void make_holder(char *out, size_t cap)
{
    char host[64] = "host";
    uint32_t rnd = 0;
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint32_t)clock_mono_ms() ^ (uint32_t)getpid();
    snprintf(out, cap, "%.48s/%d/%08x", host, (int)getpid(), (unsigned)rnd);
}

int lease_start(struct lease **out, uv_loop_t *loop, struct db *db, const char *name,
                int64_t ttl_ms, lease_change_cb *cb, void *owner)
{
    ASSERT_LOOP_THREAD();
    struct lease *l = xcalloc(1, sizeof(*l));
    char holder[LEASE_HOLDER_MAX];
    make_holder(holder, sizeof(holder));
    l->loop = loop;
    l->db = db;
    l->cb = cb;
    l->owner = owner;
    lease_state_init(&l->st, name, holder, MIN(ttl_ms, 600000));
    uv_timer_init(loop, &l->timer);
    l->single = !db_shared(db);
    if (l->single) {
        /* One SQLite file serves one process: it is the leader, with nothing to fence. */
        l->st.leader = 1;
        LOG_DEBUG("lease %s: single instance (SQLite): always the leader", name);
    } else {
        LOG_INFO("lease %s: standby as %s (TTL %" PRId64 " ms)", name, holder, l->st.ttl_ms);
        tick(l);
    }
    *out = l;
    return 0;
}

int lease_is_leader(const struct lease *l)
{
    return l && l->st.leader;
}

int64_t lease_epoch(const struct lease *l)
{
    return l && l->st.leader ? l->st.epoch : -1;
}

int lease_valid(const struct lease *l)
{
    return l && !l->stop.stopping && (l->single || lease_state_valid(&l->st, clock_mono_ms()));
}

void lease_token(const struct lease *l, struct lease_token *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", l->st.name);
    snprintf(out->holder, sizeof(out->holder), "%s", l->st.holder);
    out->enforced = !l->single;
    out->epoch = l->st.leader ? l->st.epoch : -1;
}

void lease_lost(struct lease *l)
{
    ASSERT_LOOP_THREAD();
    if (!l || l->single)
        return;
    changed(l, lease_state_lost(&l->st), 0);
}

const char *lease_holder(const struct lease *l)
{
    return l->st.holder;
}

void lease_stop(struct lease *l, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_enter(l ? &l->stop : NULL, cb, arg) != 0)
        return;
    uv_timer_stop(&l->timer);
    if (l->single)
        l->released = 1;
    tick(l); /* waits for the round in flight, or releases, or finishes */
}
