/* sync/repo.c against a real database file (WAL, migrations applied by db_open). The SQL
 * runs in db jobs on the pool; the checks run there too (an ASSERT aborts the forked test). */
#include "test.h"
#include "db_fixture.h"

#include "db/claims.h"
#include "db/db.h"
#include "core/store.h"
#include "sync/repo.h"
#include "util/util.h"

#define TENANT "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

static void seed(struct db_conn *conn)
{
    ASSERT_OK(db_exec(conn, "INSERT INTO tenant(pubkey, created_at) VALUES ('" TENANT "', 1)"));
    ASSERT_OK(db_exec(conn, "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, "
                            "status, info_name, livekit_enabled, created_at, updated_at) VALUES "
                            "('r1', '" TENANT "', 'one', 'one', 'aa', 'basic', 'active', 'N', 1,"
                            " 1, 1)"));
}

static int work_load(struct db_conn *conn, void *arg)
{
    (void)arg;
    struct sync_relay r;
    seed(conn);
    ASSERT_EQ(repo_sync_load(conn, "nope", &r), DB_ENOTFOUND);
    ASSERT_OK(repo_sync_load(conn, "r1", &r));
    ASSERT_STR_EQ(r.id, "r1");
    ASSERT_STR_EQ(r.tenant, TENANT);
    ASSERT_STR_EQ(r.schema, "one");
    ASSERT_STR_EQ(r.secret, "aa");
    ASSERT_STR_EQ(r.plan, "basic");
    ASSERT_STR_EQ(r.info_name, "N");
    ASSERT_STR_EQ(r.info_icon, "");
    ASSERT_EQ(r.livekit_enabled, 1);
    ASSERT_EQ(r.synced, 0);
    ASSERT_EQ(r.sync_created, 0);
    ASSERT_EQ(r.sync_version, 0);
    ASSERT_NULL(r.sync_config); /* never synced */
    sync_relay_free(&r);
    ASSERT_NULL(r.secret);
    ASSERT_OK(db_exec(conn, "UPDATE relay SET sync_config = '{}'"));
    ASSERT_OK(repo_sync_load(conn, "r1", &r));
    ASSERT_STR_EQ(r.sync_config, "{}");
    sync_relay_free(&r);
    ASSERT_NULL(r.sync_config);
    return 0;
}

static size_t due_count(struct db_conn *conn, int64_t now)
{
    char **ids = NULL;
    size_t n = 0;
    ASSERT_OK(repo_sync_due(conn, now, 0, 6, 100, &ids, &n));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return n;
}

static int work_fail(struct db_conn *conn, void *arg)
{
    (void)arg;
    static const int64_t delays[] = {30000, 60000, 120000, 240000, 480000, 900000, 900000};
    seed(conn);
    ASSERT_EQ(due_count(conn, 1000), 1);
    for (int i = 0; i < 7; i++) {
        int attempts = 0;
        int64_t delay = 0;
        ASSERT_OK(repo_sync_fail(conn, "r1", "zooid POST: HTTP 500", 1000, 30000, 900000, &attempts,
                                 &delay));
        ASSERT_EQ(attempts, i + 1);
        ASSERT_EQ(delay, delays[i]);
        ASSERT_EQ(test_db_int(conn, "SELECT sync_next_at FROM relay"), 1000 + delays[i] / 1000);
        if (i == 0) {
            ASSERT_EQ(due_count(conn, 1029), 0); /* backing off */
            ASSERT_EQ(due_count(conn, 1030), 1);
        }
    }
    ASSERT_EQ(due_count(conn, 100000), 0); /* 6 tries: given up */
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM activity WHERE activity_type = "
                                "'fail_relay_sync' AND resource_id = 'r1' AND plan = 'basic' AND "
                                "status = 'active'"),
              7);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_error = 'zooid POST: HTTP 500' FROM relay"), 1);
    /* What POST /relays/:id/sync does: attempts reset, due again. */
    ASSERT_OK(repo_relay_mark_dirty(conn, "r1"));
    ASSERT_EQ(due_count(conn, 1000), 1);
    return 0;
}

static int work_complete(struct db_conn *conn, void *arg)
{
    (void)arg;
    int stale = -1, attempts;
    int64_t delay;
    seed(conn);
    ASSERT_OK(repo_sync_fail(conn, "r1", "boom", 5, 30000, 900000, &attempts, &delay));
    ASSERT_OK(repo_sync_complete(conn, "r1", 0, "{\"v\":0}", 10, &stale));
    ASSERT_EQ(stale, 0);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_config = '{\"v\":0}' FROM relay"), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT synced FROM relay"), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_created FROM relay"), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_attempts FROM relay"), 0);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_error IS NULL FROM relay"), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM activity WHERE activity_type = "
                                "'complete_relay_sync' AND created_at = 10"),
              1);
    ASSERT_EQ(due_count(conn, 1000000), 0);
    /* A change while version 1's request is in flight: its success is stale. */
    ASSERT_OK(repo_relay_mark_dirty(conn, "r1"));
    ASSERT_OK(repo_relay_mark_dirty(conn, "r1"));
    ASSERT_OK(repo_sync_complete(conn, "r1", 1, "{\"v\":1}", 11, &stale));
    ASSERT_EQ(stale, 1);
    /* zooid has version 1 even so: the next PATCH is diffed against it. */
    ASSERT_EQ(test_db_int(conn, "SELECT sync_config = '{\"v\":1}' FROM relay"), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT synced FROM relay"), 0);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM activity WHERE activity_type = "
                                "'complete_relay_sync'"),
              1);
    ASSERT_OK(repo_sync_complete(conn, "r1", 2, NULL, 12, &stale));
    ASSERT_EQ(stale, 0);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_config IS NULL FROM relay"), 1);
    ASSERT_EQ(repo_sync_complete(conn, "ghost", 0, NULL, 12, &stale), DB_ENOTFOUND);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM relay"), 1); /* never deleted */
    return 0;
}

static int work_fail_permanent(struct db_conn *conn, void *arg)
{
    (void)arg;
    seed(conn);
    ASSERT_OK(repo_sync_fail_permanent(conn, "r1", "zooid POST: HTTP 403 x", 1000, 6));
    ASSERT_EQ(test_db_int(conn, "SELECT sync_attempts FROM relay"), 6);
    ASSERT_EQ(test_db_int(conn, "SELECT sync_error = 'zooid POST: HTTP 403 x' FROM relay"), 1);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM activity WHERE activity_type = "
                                "'fail_relay_sync'"),
              1);
    ASSERT_EQ(due_count(conn, 100000), 0);        /* never picked up again by itself */
    ASSERT_OK(repo_relay_mark_dirty(conn, "r1")); /* an API change or an admin resync */
    ASSERT_EQ(due_count(conn, 1000), 1);
    return 0;
}

/* One claim step as table rows: who claims at what time, and what it must find. */
struct claim_step {
    const char *owner;
    int64_t now_ms;
    const char *sql; /* run first (NULL: none) */
    int claimed;     /* the claim is the owner's now */
    int64_t held;    /* *held_until: another instance's lease end (0: claimed or nothing to do) */
};

static int work_claim(struct db_conn *conn, void *arg)
{
    (void)arg;
    /* Lease 1000 ms. A and B are two instances; the relay starts unsynced. */
    static const struct claim_step steps[] = {
        {"A", 10000, NULL, 1, 0},                          /* free: A's */
        {"B", 10500, NULL, 0, 11000},                      /* A's lease runs: B waits */
        {"A", 10600, NULL, 1, 0},                          /* A again: renewed to 11600 */
        {"B", 11600, NULL, 1, 0},                          /* expired (A died): B's */
        {"A", 11700, "UPDATE relay SET synced = 1", 0, 0}, /* synced: nothing to do */
        {"B", 11800, "UPDATE relay SET synced = 0, sync_attempts = 6", 0, 0}, /* given up */
    };
    seed(conn);
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        const struct claim_step *s = &steps[i];
        struct sync_relay r;
        int64_t held = -1;
        if (s->sql)
            ASSERT_OK(db_exec(conn, s->sql));
        ASSERT_OK(repo_sync_claim(conn, "r1", s->owner, s->now_ms, s->now_ms + 1000, 6, &r, &held));
        ASSERT_STR_EQ(r.id, "r1");
        ASSERT_EQ(held, s->held);
        sync_relay_free(&r);
        char q[96];
        snprintf(q, sizeof(q), "SELECT count(*) FROM relay WHERE sync_owner = '%s'", s->owner);
        ASSERT_EQ(test_db_int(conn, q), s->claimed || (i >= 4 && !strcmp(s->owner, "B")));
    }
    struct sync_relay r;
    int64_t held = 0;
    ASSERT_EQ(repo_sync_claim(conn, "nope", "A", 1, 2, 6, &r, &held), DB_ENOTFOUND);
    /* Only the owner lets go; a graceful stop lets go of all of its own. */
    ASSERT_OK(repo_sync_release(conn, "r1", "A"));
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM relay WHERE sync_owner = 'B'"), 1);
    ASSERT_OK(repo_sync_release(conn, "r1", "B"));
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM relay WHERE sync_owner IS NOT NULL"), 0);
    ASSERT_OK(db_exec(conn, "UPDATE relay SET sync_attempts = 0, sync_next_at = 0"));
    ASSERT_OK(repo_sync_claim(conn, "r1", "A", 20000, 21000, 6, &r, &held));
    sync_relay_free(&r);
    /* A live claim keeps the relay out of the due list; an expired one does not. */
    char **ids = NULL;
    size_t n = 9;
    ASSERT_OK(repo_sync_due(conn, 100, 20500, 6, 10, &ids, &n));
    ASSERT_EQ(n, 0);
    ASSERT_OK(repo_sync_due(conn, 100, 21000, 6, 10, &ids, &n));
    ASSERT_EQ(n, 1);
    free(ids[0]);
    free(ids);
    int64_t released = 0;
    ASSERT_OK(db_claims_release_owner(conn, DB_CLAIM_RELAY_SYNC, "A", &released));
    ASSERT_EQ(released, 1);
    ASSERT_OK(db_claims_release_owner(conn, DB_CLAIM_RELAY_SYNC, "A", &released));
    ASSERT_EQ(released, 0);
    return 0;
}

TEST(repo_sync_claim_one_owner_until_the_lease_ends)
{
    test_db_run_write(work_claim);
}

TEST(repo_sync_fail_permanent_gives_up_at_once)
{
    test_db_run_write(work_fail_permanent);
}

TEST(repo_sync_load_reads_the_row)
{
    test_db_run_write(work_load);
}

TEST(repo_sync_fail_backs_off_and_gives_up_after_six)
{
    test_db_run_write(work_fail);
}

TEST(repo_sync_complete_only_for_the_version_sent)
{
    test_db_run_write(work_complete);
}

TEST(sync_backoff_doubles_from_30s_and_caps_at_15min)
{
    static const int64_t want[] = {30000, 60000, 120000, 240000, 480000, 900000, 900000};
    for (int i = 0; i < (int)ARRAY_SIZE(want); i++)
        ASSERT_EQ(sync_backoff_ms(i + 1, 30000, 900000), want[i]);
    ASSERT_EQ(sync_backoff_ms(100, 30000, 900000), 900000);
    ASSERT_EQ(sync_backoff_ms(3, 100, 3000), 400); /* the test scale keeps the shape */
}
