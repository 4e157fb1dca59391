/* The leader lease (db/lease.h): its decisions with an injected clock (table-driven), and two
 * holders on one real database, on SQLite (a file) and on PostgreSQL (CARAVEL_TEST_PG_URL; a
 * database of its own per test, skipped without it): acquire, renew, expiry, takeover, release,
 * and a paused leader that wakes up after losing the lease: it may not send (its validity ran
 * out on its own clock) and its fenced write fails and commits nothing. On PostgreSQL, a fenced
 * transaction holds the lease row until COMMIT, so a takeover waits for it. */
#include "test.h"

#include "db_fixture.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <unistd.h>

#include "db/db.h"
#include "db/lease.h"

#define TTL 10000 /* ms: margin 2000 */

/* ---- decisions (pure) ---- */

TEST(lease_standby_waits_for_the_holders_ttl)
{
    static const struct {
        int64_t seen_ttl; /* the holder's TTL in the row (0: never set) */
        uint64_t seen_at, now;
        int may_take;
    } rows[] = {
        {TTL, 1000, 1000, 0},    {TTL, 1000, 10999, 0},   {TTL, 1000, 11000, 1},
        {TTL, 1000, 50000, 1},   {30000, 1000, 11000, 0}, /* the holder's TTL is longer */
        {30000, 1000, 31000, 1}, {2000, 1000, 3000, 1},   /* ... or shorter */
        {0, 1000, 11000, 1},     {0, 1000, 10000, 0},     /* unset: ours */
        {TTL, 5000, 1000, 0},                             /* a clock before seen_at */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct lease_state st;
        struct lease_op op;
        lease_state_init(&st, "billing", "b", TTL);
        st.has_seen = 1;
        snprintf(st.seen.holder, sizeof(st.seen.holder), "a");
        st.seen.epoch = 3;
        st.seen.beat = 7;
        st.seen.ttl_ms = rows[i].seen_ttl;
        st.seen_at_ms = rows[i].seen_at;
        lease_plan(&st, rows[i].now, &op);
        ASSERT_EQ(op.kind, LEASE_OBSERVE);
        if (op.may_take != rows[i].may_take)
            TEST_FAIL_("row %zu: may_take %d", i, op.may_take);
        ASSERT_STR_EQ(op.seen.holder, "a");
    }
}

TEST(lease_leader_valid_until_ttl_minus_margin)
{
    static const struct {
        int leader;
        uint64_t renewed_at, now;
        int valid;
    } rows[] = {
        {1, 0, 0, 1},    {1, 0, 7999, 1},     {1, 0, 8000, 0}, /* 10 s TTL - 2 s margin */
        {1, 0, 9999, 0}, {1, 5000, 12999, 1}, {1, 5000, 13000, 0},
        {0, 0, 0, 0}, /* a standby never acts */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct lease_state st;
        lease_state_init(&st, "billing", "a", TTL);
        st.leader = rows[i].leader;
        st.epoch = 1;
        st.valid_until_ms = rows[i].leader ? rows[i].renewed_at + TTL : 0;
        if (lease_state_valid(&st, rows[i].now) != rows[i].valid)
            TEST_FAIL_("row %zu: valid %d", i, !rows[i].valid);
    }
}

/* What a round's outcome does to a holder: +1 became leader, -1 stepped down. */
TEST(lease_apply_transitions)
{
    static const struct {
        int leader;
        enum lease_op_kind kind;
        int status, done;
        int change, leader_after;
        uint64_t valid_until; /* after, sent at 100 */
    } rows[] = {
        {0, LEASE_OBSERVE, 0, 1, 1, 1, 100 + TTL},  /* took over */
        {0, LEASE_OBSERVE, 0, 0, 0, 0, 0},          /* still held by another */
        {0, LEASE_OBSERVE, DB_EBUSY, 1, 0, 0, 0},   /* failed round: nothing */
        {1, LEASE_RENEW, 0, 1, 0, 1, 100 + TTL},    /* renewed from its send time */
        {1, LEASE_RENEW, 0, 0, -1, 0, 0},           /* another took over */
        {1, LEASE_RENEW, DB_EGENERIC, 0, 0, 1, 50}, /* unknown: validity runs out */
        {1, LEASE_RELEASE, 0, 1, -1, 0, 0},         /* released */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct lease_state st;
        struct lease_op op;
        lease_state_init(&st, "billing", "me", TTL);
        st.leader = rows[i].leader;
        st.epoch = rows[i].leader ? 4 : 0;
        st.valid_until_ms = rows[i].leader ? 50 : 0;
        lease_plan(&st, 100, &op);
        op.kind = rows[i].kind;
        op.done = rows[i].done;
        snprintf(op.row.holder, sizeof(op.row.holder), "%s", rows[i].done ? "me" : "other");
        op.row.epoch = 5;
        int change = lease_apply(&st, rows[i].status, &op, 100, 120);
        if (change != rows[i].change || st.leader != rows[i].leader_after ||
            st.valid_until_ms != rows[i].valid_until)
            TEST_FAIL_("row %zu: change %d leader %d valid_until %llu", i, change, st.leader,
                       (unsigned long long)st.valid_until_ms);
        if (change == 1)
            ASSERT_EQ(st.epoch, 5);
        if (change == 0 && !st.leader && rows[i].status == 0) /* standby: the row is seen */
            ASSERT(st.has_seen && st.seen_at_ms == 120);
    }
}

/* ---- two holders on one database ---- */

/* A fresh database for url: SQLite in the test's scratch folder, or a PostgreSQL database of
 * its own (name set; 0 when CARAVEL_TEST_PG_URL is unset: skip). */
static int fresh_db(int pg, char *url, size_t cap, char *name, size_t name_cap)
{
    name[0] = '\0';
    if (!pg) {
        char dir[256];
        test_tmpdir(dir, sizeof(dir));
        snprintf(url, cap, "sqlite://%s/lease.db", dir);
        return 1;
    }
    return test_pg_fresh_db("caravel_lease", url, cap, name, name_cap);
}

/* One holder: its state and its own connection (as an instance has). */
struct holder {
    struct lease_state st;
    struct db_conn *c;
};

/* One round of h at now_ms in its own write transaction, as the driver runs it. Returns the
 * change (+1 / -1 / 0). */
static int round_at(struct holder *h, uint64_t now_ms)
{
    struct lease_op op;
    lease_plan(&h->st, now_ms, &op);
    ASSERT_OK(db_exec(h->c, "BEGIN IMMEDIATE"));
    int rc = lease_run(h->c, &op);
    ASSERT_OK(db_exec(h->c, rc == 0 ? "COMMIT" : "ROLLBACK"));
    return lease_apply(&h->st, rc, &op, now_ms, now_ms);
}

static void release(struct holder *h, uint64_t now_ms)
{
    struct lease_op op;
    lease_plan(&h->st, now_ms, &op);
    op.kind = LEASE_RELEASE;
    ASSERT_OK(db_exec(h->c, "BEGIN IMMEDIATE"));
    ASSERT_OK(lease_run(h->c, &op));
    ASSERT_OK(db_exec(h->c, "COMMIT"));
    ASSERT_EQ(lease_apply(&h->st, 0, &op, now_ms, now_ms), -1);
}

static void token_of(const struct holder *h, struct lease_token *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", h->st.name);
    snprintf(t->holder, sizeof(t->holder), "%s", h->st.holder);
    t->epoch = h->st.leader ? h->st.epoch : -1;
    t->enforced = 1;
}

/* A billing-like write guarded by the fence, in one transaction: 0 committed, else the
 * fence's error (rolled back). */
static int fenced_write(struct holder *h, const struct lease_token *t, const char *key)
{
    ASSERT_OK(db_exec(h->c, "BEGIN IMMEDIATE"));
    int rc = lease_fence(h->c, t);
    if (rc == 0)
        rc = db_run(h->c, "INSERT INTO setting (key, value) VALUES (?, 'x')", DB_TEXT(key));
    ASSERT_OK(db_exec(h->c, rc == 0 ? "COMMIT" : "ROLLBACK"));
    return rc;
}

static int64_t count_key(struct db_conn *c, const char *key)
{
    struct db_stmt *st = db_query(c, "SELECT count(*) FROM setting WHERE key = ?", DB_TEXT(key));
    ASSERT_NOT_NULL(st);
    ASSERT_EQ(db_step(st), DB_ROW);
    int64_t n = db_col_int64(st, 0);
    db_reset(st);
    return n;
}

static int open_pair(int pg, struct holder *a, struct holder *b, char *name, size_t name_cap)
{
    char url[512];
    if (!fresh_db(pg, url, sizeof(url), name, name_cap))
        return 0;
    ASSERT_OK(db_conn_open(&a->c, url, 1));
    ASSERT_OK(db_conn_open(&b->c, url, 0));
    lease_state_init(&a->st, "billing", "host-a/1/aaaaaaaa", TTL);
    lease_state_init(&b->st, "billing", "host-b/2/bbbbbbbb", TTL);
    return 1;
}

static void close_pair(struct holder *a, struct holder *b, const char *name)
{
    db_conn_close(a->c);
    db_conn_close(b->c);
    test_pg_drop_db(name);
}

/* Acquire on an empty table, renew, a standby that keeps seeing renewals never takes over. */
static void acquire_and_renew(int pg)
{
    struct holder a, b;
    char name[64];
    if (!open_pair(pg, &a, &b, name, sizeof(name)))
        return;
    ASSERT_EQ(round_at(&a, 0), 1); /* nobody held it: taken at once */
    ASSERT_EQ(a.st.epoch, 1);
    ASSERT(lease_state_valid(&a.st, 0));
    ASSERT_EQ(round_at(&b, 0), 0); /* held: b watches */
    ASSERT(!b.st.leader);
    /* a renews every 2 s for a minute; b reads every second: never a takeover. */
    for (uint64_t t = 1000; t <= 60000; t += 1000) {
        if (t % 2000 == 0)
            ASSERT_EQ(round_at(&a, t), 0);
        ASSERT_EQ(round_at(&b, t), 0);
        ASSERT(a.st.leader && !b.st.leader);
        ASSERT(lease_state_valid(&a.st, t));
    }
    ASSERT_EQ(a.st.epoch, 1);
    struct lease_token t;
    token_of(&a, &t);
    ASSERT_OK(fenced_write(&a, &t, "a1"));
    token_of(&b, &t); /* a standby's token never passes */
    ASSERT_EQ(fenced_write(&b, &t, "b1"), DB_ELEASE);
    ASSERT_EQ(count_key(a.c, "b1"), 0);
    close_pair(&a, &b, name);
}

/* The leader stops renewing (dead or paused): the standby takes over once the last row it saw
 * is a TTL old on its own clock, not before; the old leader wakes up after that: it may not
 * act on its clock, its fenced write fails and commits nothing, its renewal fails and it steps
 * down; the new leader's writes commit. */
static void paused_leader(int pg)
{
    struct holder a, b;
    char name[64];
    if (!open_pair(pg, &a, &b, name, sizeof(name)))
        return;
    ASSERT_EQ(round_at(&a, 0), 1);
    ASSERT_EQ(round_at(&b, 500), 0);
    ASSERT_EQ(round_at(&a, 2000), 0); /* last renewal: valid until 12 s, acts until 10 s */
    struct lease_token stale;
    token_of(&a, &stale);
    /* a is paused from here. b first sees the last beat at 2.5 s. */
    uint64_t took = 0;
    for (uint64_t t = 2500; t <= 20000 && !took; t += 1000)
        if (round_at(&b, t) == 1)
            took = t;
    ASSERT_EQ(took, 12500); /* 2.5 s + the TTL; a's own validity ended at 12 s */
    ASSERT_EQ(b.st.epoch, 2);
    ASSERT(lease_state_valid(&b.st, took));
    /* a wakes up at 13 s, still believing it leads. */
    ASSERT(a.st.leader);
    ASSERT(!lease_state_valid(&a.st, 13000)); /* no wallet request */
    ASSERT_EQ(fenced_write(&a, &stale, "stale"), DB_ELEASE);
    ASSERT_EQ(count_key(b.c, "stale"), 0); /* nothing committed */
    ASSERT_EQ(round_at(&a, 13000), -1);    /* its renewal fails: steps down */
    ASSERT(!a.st.leader);
    struct lease_token fresh;
    token_of(&b, &fresh);
    ASSERT_OK(fenced_write(&b, &fresh, "fresh"));
    ASSERT_EQ(count_key(a.c, "fresh"), 1);
    /* A leader that paused less than its TTL keeps the lease: b renews late but in time. */
    ASSERT_EQ(round_at(&a, 14000), 0);
    ASSERT_EQ(round_at(&b, 20000), 0);
    ASSERT_EQ(round_at(&a, 21000), 0);
    ASSERT_EQ(round_at(&a, 29000), 0);
    ASSERT(b.st.leader && !a.st.leader);
    close_pair(&a, &b, name);
}

/* A stopping leader releases: the standby takes over at its next read, with a new token. */
static void release_handover(int pg)
{
    struct holder a, b;
    char name[64];
    if (!open_pair(pg, &a, &b, name, sizeof(name)))
        return;
    ASSERT_EQ(round_at(&a, 0), 1);
    ASSERT_EQ(round_at(&b, 0), 0);
    struct lease_token old;
    token_of(&a, &old);
    release(&a, 1000);
    ASSERT(!lease_state_valid(&a.st, 1000));
    ASSERT_EQ(round_at(&b, 1000), 1);
    ASSERT_EQ(b.st.epoch, 2);
    ASSERT_EQ(fenced_write(&a, &old, "old"), DB_ELEASE);
    ASSERT_EQ(round_at(&a, 1000), 0); /* now a standby that sees b */
    ASSERT(a.st.has_seen);
    ASSERT_STR_EQ(a.st.seen.holder, "host-b/2/bbbbbbbb");
    close_pair(&a, &b, name);
}

TEST(lease_sqlite_acquire_and_renew)
{
    acquire_and_renew(0);
}
TEST(lease_sqlite_paused_leader_cannot_act)
{
    paused_leader(0);
}
TEST(lease_sqlite_release_handover)
{
    release_handover(0);
}
TEST_TIMEOUT(lease_pg_acquire_and_renew, 60)
{
    acquire_and_renew(1);
}
TEST_TIMEOUT(lease_pg_paused_leader_cannot_act, 60)
{
    paused_leader(1);
}
TEST_TIMEOUT(lease_pg_release_handover, 60)
{
    release_handover(1);
}

/* ---- PostgreSQL: a fenced transaction and a takeover are ordered by the row lock ---- */

struct taker {
    struct holder *h;
    uint64_t now;
    int change;
    volatile int finished;
};

static void *take_thread(void *arg)
{
    struct taker *k = arg;
    k->change = round_at(k->h, k->now);
    k->finished = 1;
    return NULL;
}

TEST_TIMEOUT(lease_pg_takeover_waits_for_a_fenced_commit, 60)
{
    struct holder a, b;
    char name[64];
    if (!open_pair(1, &a, &b, name, sizeof(name)))
        return;
    ASSERT_EQ(round_at(&a, 0), 1);
    ASSERT_EQ(round_at(&b, 0), 0);
    struct lease_token t;
    token_of(&a, &t);
    /* a's write transaction passed its fence just before the takeover is due. */
    ASSERT_OK(db_exec(a.c, "BEGIN"));
    ASSERT_OK(lease_fence(a.c, &t));
    struct taker k = {.h = &b, .now = TTL};
    pthread_t th;
    ASSERT_OK(pthread_create(&th, NULL, take_thread, &k));
    usleep(300 * 1000);
    ASSERT(!k.finished); /* blocked on the row a's transaction holds */
    ASSERT_OK(db_run(a.c, "INSERT INTO setting (key, value) VALUES ('in-time', 'x')"));
    ASSERT_OK(db_exec(a.c, "COMMIT"));
    ASSERT_OK(pthread_join(th, NULL));
    ASSERT_EQ(k.change, 1); /* then took over, after a's write */
    ASSERT_EQ(count_key(b.c, "in-time"), 1);
    ASSERT_EQ(fenced_write(&a, &t, "late"), DB_ELEASE);
    ASSERT_EQ(count_key(b.c, "late"), 0);
    close_pair(&a, &b, name);
}
