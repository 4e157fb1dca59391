/* Claims shared by instances on one database, on SQLite (a file) and on PostgreSQL
 * (CARAVEL_TEST_PG_URL, else that half is skipped), each "instance" with its own connection:
 *   - db/claims.h: letting go of one owner's claims, and at start-up of the claims of
 *     instances that are gone (or of all of them when the database is not shared), for every
 *     kind of claim (relay sync, DM, block-list call), touching no other kind and no other row. */
#include "test.h"

#include "db_fixture.h"

#include <sys/wait.h>
#include <unistd.h>

#include "db/claims.h"
#include "db/db.h"
#include "db/notify.h"

#define TENANT "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
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

static int64_t count(struct db_conn *c, const char *sql)
{
    struct db_stmt *st = db_query(c, sql);
    ASSERT_NOT_NULL(st);
    ASSERT_EQ(db_step(st), DB_ROW);
    int64_t n = db_col_int64(st, 0);
    db_reset(st);
    return n;
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
        ASSERT_EQ(count(p.a, kinds[k].held), 2);
        for (size_t other = 0; other < sizeof(kinds) / sizeof(kinds[0]); other++)
            if (other != k)
                ASSERT_EQ(count(p.a, kinds[other].held), 3);
        ASSERT_OK(db_claims_release_stale(p.b, kinds[k].kind, 1, &n));
        ASSERT_EQ(n, 0);
        /* One owner (a graceful stop): its own only. */
        ASSERT_OK(db_claims_release_owner(p.b, kinds[k].kind, o.self, &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(count(p.a, kinds[k].held), 1);
        /* Not shared (SQLite's one process): every claim left is let go. */
        ASSERT_OK(db_claims_release_stale(p.b, kinds[k].kind, 0, &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(count(p.a, kinds[k].held), 0);
        ASSERT_EQ(count(p.a, "SELECT count(*) FROM message WHERE state = 'sent'"
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
