/* Claims shared by instances on one database, on SQLite (a file) and on PostgreSQL
 * (CARAVEL_TEST_PG_URL, else that half is skipped), each "instance" with its own connection:
 *   - db/claims.h: letting go of one owner's claims, and at start-up of the claims of
 *     instances that are gone (or of all of them when the database is not shared), for every
 *     kind of claim (relay sync, DM, block-list call), touching no other kind and no other row;
 *   - blocklist/repo.h: the block-list call claim (one holder per row until its lease ends, a
 *     due read that leaves claimed rows out, the re-check of what the read saw), and the
 *     records that let go of it. */
#include "test.h"

#include "db_fixture.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blocklist/repo.h"
#include "db/claims.h"
#include "db/db.h"
#include "db/notify.h"
#include "nostr/keys.h"

#define TENANT TEST_TENANT
#define PK "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
#define SECRET "0000000000000000000000000000000000000000000000000000000000000001"

struct pair {
    struct db_conn *a, *b; /* two instances' connections */
    char name[64];         /* the PostgreSQL database (dropped at the end) */
};

/* Both connections on a fresh database; 0 when PostgreSQL is asked for and not available. */
static int open_pair(int pg, struct pair *p)
{
    char url[512];
    p->name[0] = '\0';
    if (pg) {
        if (!test_pg_fresh_db("caravel_claims", url, sizeof(url), p->name, sizeof(p->name)))
            return 0;
    } else {
        char dir[256];
        test_tmpdir(dir, sizeof(dir));
        snprintf(url, sizeof(url), "sqlite://%s/claims.db", dir);
    }
    ASSERT_OK(db_conn_open(&p->a, url, 1));
    ASSERT_OK(db_conn_open(&p->b, url, 0));
    return 1;
}

static void close_pair(struct pair *p)
{
    db_conn_close(p->a);
    db_conn_close(p->b);
    test_pg_drop_db(p->name);
}

static void exec(struct db_conn *c, const char *sql)
{
    ASSERT_OK(db_exec(c, sql));
}

/* ---- letting go of claims, every kind ---- */

/* Owners: this process, a process of this host that is gone, a live one elsewhere. */
struct owners {
    char self[DB_INSTANCE_MAX + 1], gone[DB_INSTANCE_MAX + 1], far[DB_INSTANCE_MAX + 1];
};

static void owners_init(struct owners *o)
{
    const char *me = db_instance();
    int host = (int)(strchr(me, ':') - me);
    pid_t kid = fork();
    if (kid == 0)
        _exit(0);
    ASSERT_EQ(waitpid(kid, NULL, 0), kid);
    snprintf(o->self, sizeof(o->self), "%s", me);
    snprintf(o->gone, sizeof(o->gone), "%.*s:%ld:0011223344556677", host, me, (long)kid);
    snprintf(o->far, sizeof(o->far), "elsewhere:%ld:0011223344556677", (long)getpid());
}

/* Rows of every kind: one held by each owner, plus a sent DM still naming the gone owner (its
 * claim means nothing any more and is left alone). */
static void seed_claims(struct db_conn *c, const struct owners *o)
{
    const char *who[] = {o->self, o->gone, o->far};
    char sql[768];
    exec(c, "INSERT INTO tenant(pubkey, created_at) VALUES ('" TENANT "', 1)");
    exec(c, "INSERT INTO blocklist(pubkey, created_by, created_at, updated_at) VALUES ('" PK
            "', 'admin', 1, 1)");
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status,"
                 " management_enabled, created_at, updated_at, sync_owner, sync_lease_until)"
                 " VALUES ('r%d', '" TENANT "', 's%d', 's%d', '" SECRET "', 'basic', 'active',"
                 " 1, 1, 1, '%s', 9000)",
                 i, i, i, who[i]);
        exec(c, sql);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO message(recipient, body, created_at, claim_owner, claim_until)"
                 " VALUES ('" PK "', 'm%d', 1, '%s', 9000)",
                 i, who[i]);
        exec(c, sql);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO blocklist_relay(relay_id, pubkey, want, claim_owner, claim_until)"
                 " VALUES ('r%d', '" PK "', 1, '%s', 9000)",
                 i, who[i]);
        exec(c, sql);
    }
    snprintf(sql, sizeof(sql),
             "INSERT INTO message(recipient, body, state, created_at, claim_owner, claim_until)"
             " VALUES ('" PK "', 'sent', 'sent', 1, '%s', 9000)",
             o->gone);
    exec(c, sql);
}

static const struct {
    enum db_claim_kind kind;
    const char *held; /* claims of this kind still held */
} kinds[] = {
    {DB_CLAIM_RELAY_SYNC, "SELECT count(*) FROM relay WHERE sync_owner IS NOT NULL"
                          " AND sync_lease_until = 9000"},
    {DB_CLAIM_DM, "SELECT count(*) FROM message WHERE state = 'queued' AND claim_owner IS NOT NULL"
                  " AND claim_until = 9000"},
    {DB_CLAIM_BLOCKLIST, "SELECT count(*) FROM blocklist_relay WHERE claim_owner IS NOT NULL"
                         " AND claim_until = 9000"},
};

static void release_each_kind(int pg)
{
    struct pair p;
    struct owners o;
    if (!open_pair(pg, &p))
        return;
    owners_init(&o);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        exec(p.a, "DELETE FROM blocklist_relay");
        exec(p.a, "DELETE FROM message");
        exec(p.a, "DELETE FROM relay");
        exec(p.a, "DELETE FROM blocklist");
        exec(p.a, "DELETE FROM tenant");
        seed_claims(p.a, &o);
        int64_t n = -1;
        /* Shared: only the gone instance's claims go; the live and the far ones stay. */
        ASSERT_OK(db_claims_release_stale(p.b, kinds[k].kind, 1, &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(test_db_int(p.a, kinds[k].held), 2);
        for (size_t other = 0; other < sizeof(kinds) / sizeof(kinds[0]); other++)
            if (other != k)
                ASSERT_EQ(test_db_int(p.a, kinds[other].held), 3);
        ASSERT_OK(db_claims_release_stale(p.b, kinds[k].kind, 1, &n));
        ASSERT_EQ(n, 0);
        /* One owner (a graceful stop): its own only. */
        ASSERT_OK(db_claims_release_owner(p.b, kinds[k].kind, o.self, &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(test_db_int(p.a, kinds[k].held), 1);
        /* Not shared (SQLite's one process): every claim left is let go. */
        ASSERT_OK(db_claims_release_stale(p.b, kinds[k].kind, 0, &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(test_db_int(p.a, kinds[k].held), 0);
        ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM message WHERE state = 'sent'"
                                   " AND claim_owner IS NOT NULL"),
                  1); /* a sent DM's old claim is not work: left as it is */
        ASSERT_EQ(db_claims_release_owner(p.b, DB_CLAIM_KINDS, o.self, &n), DB_EGENERIC);
    }
    close_pair(&p);
}

TEST(db_claims_release_each_kind_sqlite)
{
    release_each_kind(0);
}

TEST_TIMEOUT(db_claims_release_each_kind_pg, 60)
{
    release_each_kind(1);
}

/* ---- the block-list call claim ---- */

static void seed_rollout(struct db_conn *c)
{
    test_db_seed_relays(c, 2, 3);
    exec(c, "INSERT INTO blocklist(pubkey, created_by, created_at, updated_at) VALUES ('" PK
            "', 'admin', 1, 1)");
    exec(c, "INSERT INTO blocklist_relay(relay_id, pubkey, want) VALUES ('r1', '" PK "', 1),"
            " ('r2', '" PK "', 1)");
}

static size_t due_at(struct db_conn *c, int64_t now)
{
    struct bl_item items[4];
    size_t n = 0;
    ASSERT_OK(repo_bl_due(c, now, "relays.test", items, 4, &n));
    for (size_t i = 0; i < n; i++)
        relay_target_wipe(&items[i].t);
    return n;
}

static int claim(struct db_conn *c, const char *relay, int want, const char *owner, int64_t now,
                 int64_t until)
{
    int got = -1;
    ASSERT_OK(repo_bl_claim(c, relay, PK, want, owner, now, until, &got));
    return got;
}

static int64_t next_due(struct db_conn *c, int64_t now, const char *owner)
{
    int64_t at = -1;
    ASSERT_OK(repo_bl_next_due(c, now, owner, &at));
    return at;
}

static void blocklist_claims(int pg)
{
    struct pair p;
    if (!open_pair(pg, &p))
        return;
    ASSERT_OK(nostr_init()); /* the due read derives each relay's key */
    seed_rollout(p.a);
    ASSERT_EQ(due_at(p.b, 1000), 2);
    /* One holder per row: A takes r1; B cannot while A's lease runs, nor A twice. */
    ASSERT_EQ(claim(p.a, "r1", 1, "A", 1000, 5000), 1);
    ASSERT_EQ(claim(p.b, "r1", 1, "B", 1000, 5000), 0);
    ASSERT_EQ(claim(p.a, "r1", 1, "A", 1000, 5000), 0);
    ASSERT_EQ(due_at(p.b, 1000), 1); /* r1 is A's: left out */
    /* What a due read saw must still hold: B read want 1 on r2, the entry was then removed. */
    exec(p.a, "UPDATE blocklist_relay SET want = 0 WHERE relay_id = 'r2'");
    ASSERT_EQ(claim(p.b, "r2", 1, "B", 1000, 5000), 0);
    exec(p.a, "UPDATE blocklist_relay SET want = 1 WHERE relay_id = 'r2'");
    ASSERT_EQ(claim(p.b, "r2", 1, "B", 1000, 5000), 1);
    /* A's record of r2 (its lease ended, B took it over) leaves B's claim alone. */
    ASSERT_OK(repo_bl_failed(p.a, "r2", PK, 3000, "timed out", "A"));
    ASSERT_EQ(test_db_int(p.a, "SELECT attempts FROM blocklist_relay WHERE relay_id = 'r2'"), 0);
    ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM blocklist_relay WHERE claim_owner = 'B'"), 1);
    /* B's answer: applied, claim let go, nothing due. */
    ASSERT_OK(repo_bl_applied(p.b, "r2", PK, 1, "B"));
    ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM blocklist_relay WHERE relay_id = 'r2'"
                               " AND applied = 1 AND claim_owner IS NULL AND claim_until = 0"),
              1);
    ASSERT_EQ(claim(p.a, "r2", 1, "A", 1000, 5000), 0); /* done: not pending any more */
    /* A dies holding r1: due again, and claimable by B, once the lease has ended. */
    ASSERT_EQ(due_at(p.b, 4999), 0);
    ASSERT_EQ(claim(p.b, "r1", 1, "B", 4999, 9000), 0);
    ASSERT_EQ(due_at(p.b, 5000), 1);
    ASSERT_EQ(claim(p.b, "r1", 1, "B", 5000, 9000), 1);
    /* B's call fails: retried at next_at, by whoever claims it then; the claim is let go. */
    ASSERT_OK(repo_bl_failed(p.b, "r1", PK, 6000, "HTTP 502", "B"));
    ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM blocklist_relay WHERE relay_id = 'r1'"
                               " AND attempts = 1 AND claim_owner IS NULL"),
              1);
    ASSERT_EQ(next_due(p.a, 5000, "A"), 6000); /* when to look again: the retry */
    ASSERT_EQ(claim(p.a, "r1", 1, "A", 5999, 9999), 0);
    ASSERT_EQ(claim(p.a, "r1", 1, "A", 6000, 9999), 1);
    ASSERT_EQ(next_due(p.b, 6000, "B"), 9999); /* A's claim ends (should A die) */
    ASSERT_EQ(next_due(p.a, 6000, "A"), 0);    /* its own answer will come back to A */
    ASSERT_OK(repo_bl_applied(p.a, "r1", PK, 1, "A"));
    /* Lifted everywhere: the rows go with their claims, then the removed entry. */
    exec(p.a, "UPDATE blocklist SET state = 'removed'");
    exec(p.a, "UPDATE blocklist_relay SET want = 0");
    ASSERT_EQ(claim(p.a, "r1", 0, "A", 7000, 9999), 1);
    ASSERT_EQ(claim(p.b, "r2", 0, "B", 7000, 9999), 1);
    ASSERT_OK(repo_bl_applied(p.a, "r1", PK, 0, "A"));
    ASSERT_OK(repo_bl_applied(p.b, "r2", PK, 0, "B"));
    ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM blocklist_relay"), 0);
    ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM blocklist"), 0);
    close_pair(&p);
}

TEST(blocklist_claim_one_holder_until_the_lease_ends_sqlite)
{
    blocklist_claims(0);
}

TEST_TIMEOUT(blocklist_claim_one_holder_until_the_lease_ends_pg, 60)
{
    blocklist_claims(1);
}

/* PostgreSQL, two instances claiming one row at the same moment: B's UPDATE waits for A's
 * transaction, then re-checks its condition on the row A committed and takes nothing. */
struct racer {
    struct db_conn *c;
    int got;
    volatile int done;
};

static void *claim_as_b(void *arg)
{
    struct racer *r = arg;
    r->got = claim(r->c, "r1", 1, "B", 1000, 5000);
    __atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

TEST_TIMEOUT(blocklist_claim_race_pg_one_wins, 60)
{
    struct pair p;
    if (!open_pair(1, &p))
        return;
    seed_rollout(p.a);
    ASSERT_OK(db_exec(p.a, "BEGIN"));
    ASSERT_EQ(claim(p.a, "r1", 1, "A", 1000, 5000), 1);
    struct racer b = {.c = p.b, .got = -1};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, claim_as_b, &b));
    usleep(300 * 1000);
    ASSERT_EQ(__atomic_load_n(&b.done, __ATOMIC_SEQ_CST), 0); /* waiting on A's row lock */
    ASSERT_OK(db_exec(p.a, "COMMIT"));
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_EQ(b.got, 0);
    ASSERT_EQ(test_db_int(p.a, "SELECT count(*) FROM blocklist_relay WHERE claim_owner = 'A'"), 1);
    close_pair(&p);
}
