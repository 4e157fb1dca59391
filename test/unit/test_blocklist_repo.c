/* blocklist/repo.c and api/repo_blocklist.c against a real database file (migrations applied by
 * db_open): the row state machine of the block list, including the races between the API
 * and the worker (an entry removed while its ban is in flight, re-added while its lift is). */
#include "test.h"
#include "db_fixture.h"

#include <stdio.h>

#include "api/repo_blocklist.h"
#include "blocklist/repo.h"
#include "db/db.h"

#define TENANT TEST_TENANT
#define PK "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"

static void seed(struct db_conn *conn)
{
    test_db_seed_relays(conn, 3, 3);
}

static size_t due(struct db_conn *conn)
{
    struct bl_item items[8];
    size_t n = 0;
    ASSERT_OK(repo_bl_due(conn, 1000, "relays.test", items, 8, &n));
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(items[i].t.host[0], 's');
        ASSERT_STR_EQ(items[i].t.host + 2, ".relays.test");
        ASSERT_EQ(items[i].t.kp.pubkey[0], 0x79); /* the key of secret 1: the generator's x */
        relay_target_wipe(&items[i].t);
    }
    return n;
}

static int work_lifecycle(struct db_conn *conn, void *arg)
{
    int64_t n = -1;
    (void)arg;
    seed(conn);
    /* An empty block list: a relay that appears has nothing to receive. */
    ASSERT_OK(repo_bl_relay_ready(conn, "r1", &n));
    ASSERT_EQ(n, 0);
    /* Added: one row per active relay (not the inactive r3), due now. */
    ASSERT_OK(repo_blocklist_add(conn, PK, "spam", TENANT, 10));
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM blocklist_relay WHERE want = 1"), 2);
    ASSERT_EQ(due(conn), 2);
    /* r1 fails: waits until next_at; r2 confirms. */
    ASSERT_OK(repo_bl_failed(conn, "r1", PK, 5000, "timed out", "A"));
    ASSERT_OK(repo_bl_applied(conn, "r2", PK, 1, "A"));
    ASSERT_EQ(due(conn), 0);
    ASSERT_EQ(test_db_int(conn, "SELECT attempts FROM blocklist_relay WHERE relay_id = 'r1'"), 1);
    /* r3 comes back: it gets the row it lacks. */
    ASSERT_OK(db_exec(conn, "UPDATE relay SET status = 'active' WHERE id = 'r3'"));
    ASSERT_OK(repo_bl_relay_ready(conn, "r3", &n));
    ASSERT_EQ(n, 2); /* its row added, and due */
    ASSERT_EQ(due(conn), 1);
    /* r1 is synced again: its pending row is due at once. */
    ASSERT_OK(repo_bl_relay_ready(conn, "r1", &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(due(conn), 2);
    /* r2's row is confirmed: nothing to send. */
    ASSERT_OK(repo_bl_relay_ready(conn, "r2", &n));
    ASSERT_EQ(n, 0);
    ASSERT_OK(repo_bl_applied(conn, "r1", PK, 1, "A"));
    /* Removed: the confirmed ones (r1, r2) are to lift; r3's unconfirmed row is dropped. */
    ASSERT_OK(repo_blocklist_remove(conn, PK, 20));
    ASSERT_EQ(repo_blocklist_remove(conn, PK, 20), DB_ENOTFOUND);
    ASSERT_EQ(
        test_db_int(conn, "SELECT count(*) FROM blocklist_relay WHERE want = 0 AND applied = 1"),
        2);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM blocklist_relay WHERE relay_id = 'r3'"), 0);
    /* r3's ban was in flight and lands after the removal: it becomes a lift. */
    ASSERT_OK(repo_bl_applied(conn, "r3", PK, 1, "A"));
    ASSERT_EQ(
        test_db_int(conn, "SELECT want * 10 + applied FROM blocklist_relay WHERE relay_id = 'r3'"),
        1);
    ASSERT_EQ(due(conn), 3);
    ASSERT_OK(repo_bl_applied(conn, "r1", PK, 0, "A"));
    ASSERT_OK(repo_bl_applied(conn, "r2", PK, 0, "A"));
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM blocklist WHERE state = 'removed'"), 1);
    ASSERT_OK(repo_bl_applied(conn, "r3", PK, 0, "A"));
    /* The last lift: nothing is left of the entry. */
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM blocklist_relay"), 0);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM blocklist"), 0);
    return 0;
}

static int work_readd_during_lift(struct db_conn *conn, void *arg)
{
    (void)arg;
    seed(conn);
    ASSERT_OK(repo_blocklist_add(conn, PK, "", TENANT, 10));
    ASSERT_OK(repo_bl_applied(conn, "r1", PK, 1, "A"));
    ASSERT_OK(repo_blocklist_remove(conn, PK, 11));
    /* Added again while r1's lift is in flight: the lift lands, then the ban is due again. */
    ASSERT_OK(repo_blocklist_add(conn, PK, "again", TENANT, 12));
    ASSERT_OK(repo_bl_applied(conn, "r1", PK, 0, "A"));
    ASSERT_EQ(
        test_db_int(conn, "SELECT want * 10 + applied FROM blocklist_relay WHERE relay_id = 'r1'"),
        10);
    ASSERT_EQ(due(conn), 2); /* r1 and r2 */
    int64_t added = 0;
    ASSERT_OK(repo_bl_reconcile(conn, &added));
    ASSERT_EQ(added, 0); /* every active relay already has its row */
    return 0;
}

/* Two instances recording an entry's last two lifts at once each still see the other's row, so
 * neither deletes the removed entry (seen once in ~20 runs of instances-blocklist.test.mjs):
 * that outcome, made directly, is cleaned up by the idle worker's sweep, and only that one. */
#define PK2 "4bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
#define PK3 "5bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"

static int work_sweep_removed(struct db_conn *conn, void *arg)
{
    (void)arg;
    seed(conn);
    ASSERT_OK(repo_blocklist_add(conn, PK, "stays", TENANT, 10));
    ASSERT_OK(repo_blocklist_add(conn, PK2, "lifted", TENANT, 10));
    ASSERT_OK(repo_blocklist_add(conn, PK3, "lifting", TENANT, 10));
    ASSERT_OK(repo_bl_applied(conn, "r1", PK3, 1, "A"));
    ASSERT_OK(repo_blocklist_remove(conn, PK3, 11)); /* r1's lift still to send */
    ASSERT_OK(
        db_run(conn, "UPDATE blocklist SET state = 'removed' WHERE pubkey = ?", DB_TEXT(PK2)));
    ASSERT_OK(db_run(conn, "DELETE FROM blocklist_relay WHERE pubkey = ?", DB_TEXT(PK2)));
    int64_t deleted = -1;
    ASSERT_OK(repo_bl_sweep_removed(conn, &deleted));
    ASSERT_EQ(deleted, 1);
    ASSERT_EQ(test_db_int(conn, "SELECT count(*) FROM blocklist WHERE pubkey = '" PK2 "'"), 0);
    ASSERT_EQ(
        test_db_int(conn, "SELECT count(*) FROM blocklist WHERE pubkey IN ('" PK "', '" PK3 "')"),
        2);
    ASSERT_OK(repo_bl_sweep_removed(conn, &deleted));
    ASSERT_EQ(deleted, 0);
    return 0;
}

TEST(blocklist_sweep_deletes_removed_entries_left_without_rows)
{
    test_db_run_write(work_sweep_removed);
}

TEST(blocklist_rows_follow_the_list_and_the_relays)
{
    test_db_run_write(work_lifecycle);
}

TEST(blocklist_readd_while_lifting_bans_again)
{
    test_db_run_write(work_readd_during_lift);
}
