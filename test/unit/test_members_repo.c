/* members/repo.c against a real database file (migrations applied by db_open): the schedule
 * (never-placed relays spread over the interval, a claimed relay not claimed again before its
 * next read, only active relays zooid serves) and the over-cap DM state machine (one DM per
 * crossing, kept while over, reset when back under, unknown counts change nothing). */
#include "test.h"
#include "db_fixture.h"

#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "members/repo.h"

#define TENANT "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
#define SECRET "0000000000000000000000000000000000000000000000000000000000000001"
#define N_RELAYS 40

/* r1..r40 active and created in zooid; r41 inactive, r42 not created in zooid yet. */
static void seed(struct db_conn *conn)
{
    ASSERT_OK(db_exec(conn, "INSERT INTO tenant(pubkey, created_at) VALUES ('" TENANT "', 1)"));
    for (int i = 1; i <= N_RELAYS + 2; i++) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status,"
                 " sync_created, created_at, updated_at) VALUES ('r%d', '" TENANT "', 's%d',"
                 " 's%d', '" SECRET "', 'free', '%s', %d, 1, 1)",
                 i, i, i, i == N_RELAYS + 1 ? "inactive" : "active", i == N_RELAYS + 2 ? 0 : 1);
        ASSERT_OK(db_exec(conn, sql));
    }
}

static int work_schedule(struct db_conn *conn, void *arg)
{
    (void)arg;
    seed(conn);
    char ids[N_RELAYS + 2][33];
    size_t n = 0;
    int64_t next_due = 0, now = 1000000, interval = 600;
    /* Never placed: spread over [now, now + interval), nothing read at once (or the few whose
     * random point is now). */
    ASSERT_OK(repo_members_claim(conn, now, interval, 7, ids, N_RELAYS + 2, &n, &next_due));
    ASSERT(n < 4);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM relay WHERE members_next_at = 0"), 2);
    ASSERT(test_db_int(conn, "SELECT min(members_next_at) FROM relay WHERE members_next_at > 0") >=
           now);
    ASSERT(test_db_int(conn, "SELECT max(members_next_at) FROM relay") < now + interval + interval);
    /* Spread: the 40 placements land in at least 4 of the 6 100-second slices of the first
     * interval (the claimed ones moved to the next interval). */
    ASSERT(test_db_int(conn, "SELECT count(DISTINCT (members_next_at - 1000000) / 100) FROM relay"
                             " WHERE members_next_at BETWEEN 1000000 AND 1000599") >= 4);
    ASSERT(next_due >= now);
    /* One interval later every counted relay is due; a claim takes at most max, each once. */
    now += interval;
    size_t total = 0;
    for (int round = 0; round < 20; round++) {
        ASSERT_OK(repo_members_claim(conn, now, interval, 8, ids, 8, &n, &next_due));
        for (size_t i = 0; i < n; i++)
            ASSERT(strcmp(ids[i], "r41") != 0 && strcmp(ids[i], "r42") != 0);
        total += n;
        if (n < 8)
            break;
    }
    ASSERT_EQ(total, N_RELAYS);
    /* All claimed: their next reads are one interval +- 10 % away. */
    ASSERT_OK(repo_members_claim(conn, now, interval, 9, ids, 8, &n, &next_due));
    ASSERT_EQ(n, 0);
    ASSERT(next_due >= now + interval - interval / 10 &&
           next_due <= now + interval + interval / 10);
    return 0;
}

static int dm_count(struct db_conn *conn)
{
    return (int)test_db_int(conn, "SELECT count(*) FROM message");
}

static int work_over_cap(struct db_conn *conn, void *arg)
{
    (void)arg;
    seed(conn);
    int dm = -1;
    /* free: 10 members. At the cap: nothing. */
    ASSERT_OK(repo_members_record(conn, "r1", 1, 10, 100, "relays.test", &dm));
    ASSERT_EQ(dm, 0);
    ASSERT_EQ(test_db_int(conn, "SELECT members_count FROM relay WHERE id = 'r1'"), 10);
    /* Over: one DM, then none for the refreshes that follow, nor for an unknown read. */
    ASSERT_OK(repo_members_record(conn, "r1", 1, 11, 101, "relays.test", &dm));
    ASSERT_EQ(dm, 1);
    ASSERT_EQ(dm_count(conn), 1);
    ASSERT_OK(repo_members_record(conn, "r1", 1, 12, 102, "relays.test", &dm));
    ASSERT_OK(repo_members_record(conn, "r1", 0, 0, 103, "relays.test", &dm));
    ASSERT_EQ(test_db_int(conn, "SELECT members_count IS NULL FROM relay WHERE id = 'r1'"), 1);
    ASSERT_OK(repo_members_record(conn, "r1", 1, 12, 104, "relays.test", &dm));
    ASSERT_EQ(dm, 0);
    ASSERT_EQ(dm_count(conn), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT over_cap_notified_at FROM relay WHERE id = 'r1'"), 101);
    /* Another relay: its own DM. */
    ASSERT_OK(repo_members_record(conn, "r2", 1, 20, 105, "relays.test", &dm));
    ASSERT_EQ(dm, 1);
    ASSERT_EQ(dm_count(conn), 2);
    ASSERT(test_db_int(conn, "SELECT count(*) FROM message WHERE recipient = '" TENANT "'") == 2);
    /* Back under: reset; over again: a new crossing, told again. */
    ASSERT_OK(repo_members_record(conn, "r1", 1, 9, 106, "relays.test", &dm));
    ASSERT_EQ(test_db_int(conn, "SELECT over_cap_notified_at IS NULL FROM relay WHERE id = 'r1'"),
              1);
    ASSERT_OK(repo_members_record(conn, "r1", 1, 11, 107, "relays.test", &dm));
    ASSERT_EQ(dm, 1);
    ASSERT_EQ(dm_count(conn), 3);
    /* A plan without a cap never tells. */
    ASSERT_OK(db_exec(conn, "UPDATE relay SET plan = 'growth' WHERE id = 'r3'"));
    ASSERT_OK(repo_members_record(conn, "r3", 1, 100000, 108, "relays.test", &dm));
    ASSERT_EQ(dm, 0);
    ASSERT_EQ(repo_members_record(conn, "nope", 1, 1, 109, "relays.test", &dm), DB_ENOTFOUND);
    return 0;
}

TEST(members_claims_spread_and_never_twice)
{
    test_db_run_write(work_schedule);
}

TEST(members_over_cap_dm_once_per_crossing)
{
    test_db_run_write(work_over_cap);
}
