/* Billing SQL on a real SQLite database with the project's schema: invoice pass (anchors,
 * one invoice per ended period, idempotent, anchor reset after an idle period), the
 * at-most-one-payment rule, paid -> reactivation, dunning. */
#include "test.h"

#include <stdarg.h>

#include <sqlite3.h>

#include "db/db.h"
#include "billing/repo.h"
#include "nostr/keys.h"

#define T "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define P (30 * 86400LL)
#define T0 1700000000LL

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    size_t len = 0;
    ASSERT_OK(nostr_init());
    char *sql = test_read_file("migrations/0001_init.sql", &len);
    ASSERT_NOT_NULL(sql);
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    free(sql);
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO tenant(pubkey, created_at) VALUES ('" T "', 1)",
                           NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void exec(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec(sqlite3 *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        TEST_FAIL_("%s: %s", sql, err);
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* A relay row plus its activity row (as the API writes them). */
static void relay_event(sqlite3 *db, const char *id, const char *plan, const char *status,
                        int64_t at, const char *type)
{
    exec(db,
         "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, created_at, "
         "updated_at) VALUES ('%s', '" T "', '%s', '%s', 'x', '%s', '%s', %lld, %lld) "
         "ON CONFLICT(id) DO UPDATE SET plan = excluded.plan, status = excluded.status",
         id, id, id, plan, status, (long long)at, (long long)at);
    exec(db,
         "INSERT INTO activity(tenant, created_at, activity_type, resource_type, resource_id, "
         "plan, status) VALUES ('" T "', %lld, '%s', 'relay', '%s', '%s', '%s')",
         (long long)at, type, id, plan, status);
}

static const struct billing_cfg CFG = {P, 7 * 86400};

TEST(repo_billing_invoices_once_per_ended_period)
{
    sqlite3 *db = open_db();
    size_t created = 0, dms = 0;
    relay_event(db, "r1", "basic", "active", T0, "create_relay");
    relay_event(db, "r2", "free", "active", T0, "create_relay");
    ASSERT_OK(repo_billing_invoice_pass(db, &CFG, T0 + P - 1, &created, &dms));
    ASSERT_EQ(created, 0);
    ASSERT_EQ(scalar(db, "SELECT billing_anchor FROM tenant"), T0);
    ASSERT_OK(repo_billing_invoice_pass(db, &CFG, T0 + 2 * P + 5, &created, &dms));
    ASSERT_EQ(created, 2);
    ASSERT_EQ(dms, 2);
    ASSERT_EQ(scalar(db, "SELECT SUM(amount) FROM invoice"), 20000);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice_item"), 2); /* the free relay: none */
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message"), 2);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM activity WHERE activity_type = "
                         "'create_invoice'"), 2);
    /* A second run (or a concurrent one) writes nothing more. */
    ASSERT_OK(repo_billing_invoice_pass(db, &CFG, T0 + 2 * P + 6, &created, &dms));
    ASSERT_EQ(created, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice"), 2);
    sqlite3_close(db);
}

TEST(repo_billing_anchor_moves_after_an_idle_period)
{
    sqlite3 *db = open_db();
    size_t created = 0, dms = 0;
    relay_event(db, "r1", "basic", "active", T0, "create_relay");
    relay_event(db, "r1", "basic", "inactive", T0 + P, "deactivate_relay");
    relay_event(db, "r1", "basic", "active", T0 + 3 * P + 100, "activate_relay");
    ASSERT_OK(repo_billing_invoice_pass(db, &CFG, T0 + 5 * P, &created, &dms));
    /* Period 0 billed; period 1 idle; new anchor at the reactivation; one full period. */
    ASSERT_EQ(created, 2);
    ASSERT_EQ(scalar(db, "SELECT billing_anchor FROM tenant"), T0 + 3 * P + 100);
    ASSERT_EQ(scalar(db, "SELECT MAX(period_start) FROM invoice"), T0 + 3 * P + 100);
    ASSERT_EQ(scalar(db, "SELECT SUM(amount) FROM invoice"), 20000);
    sqlite3_close(db);
}

static void one_invoice(sqlite3 *db, struct repo_pending **p, size_t *n)
{
    size_t created = 0, dms = 0;
    relay_event(db, "r1", "basic", "active", T0, "create_relay");
    relay_event(db, "r2", "free", "active", T0, "create_relay");
    relay_event(db, "r3", "growth", "inactive", T0, "create_relay");
    ASSERT_OK(repo_billing_invoice_pass(db, &CFG, T0 + P, &created, &dms));
    ASSERT_EQ(created, 1);
    ASSERT_OK(repo_billing_load_pending(db, NULL, p, n));
    ASSERT_EQ(*n, 1);
    ASSERT_EQ((*p)[0].amount, 10000);
    ASSERT_EQ((*p)[0].has_bolt11, 0);
}

TEST(repo_billing_one_payment_per_invoice)
{
    sqlite3 *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0;
    int created = 0;
    char b1[65], b2[65], a1[65], a2[65];
    one_invoice(db, &p, &n);
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, T0 + P + 100,
                                      T0 + P, b1, &created));
    ASSERT_EQ(created, 1);
    /* A second BOLT11 while one is live: the live one is returned instead. */
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc2", "22", 10000000, T0 + P + 100,
                                      T0 + P, b2, &created));
    ASSERT_EQ(created, 0);
    ASSERT_STR_EQ(b1, b2);
    ASSERT_OK(repo_billing_begin_attempt(db, p[0].id, b1, T0 + P, a1));
    ASSERT_EQ(repo_billing_begin_attempt(db, p[0].id, b1, T0 + P, a2), DB_ECONSTRAINT);
    repo_billing_pending_free(p, n);
    ASSERT_OK(repo_billing_load_pending(db, NULL, &p, &n));
    ASSERT_EQ(p[0].has_attempt, 1);
    ASSERT_STR_EQ(p[0].bolt11_id, b1);
    /* Expired unsettled: the attempt fails and a replacement may be paid. */
    ASSERT_OK(repo_billing_bolt11_expired(db, b1, T0 + P + 200));
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc3", "33", 10000000, T0 + P + 900,
                                      T0 + P + 200, b2, &created));
    ASSERT_EQ(created, 1);
    ASSERT_OK(repo_billing_begin_attempt(db, p[0].id, b2, T0 + P + 200, a2));
    ASSERT_OK(repo_billing_attempt_failed(db, a2, T, "PAYMENT_FAILED: no route", T0 + P + 201));
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM tenant WHERE nwc_error = 'PAYMENT_FAILED: no "
                         "route'"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message WHERE body LIKE '%automatic payment "
                         "failed: PAYMENT_FAILED: no route%'"), 1);
    repo_billing_pending_free(p, n);
    sqlite3_close(db);
}

TEST(repo_billing_dunning_and_reactivation)
{
    sqlite3 *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0, dms = 0;
    int created = 0;
    char b1[65];
    struct repo_ids changed = {0};
    one_invoice(db, &p, &n);
    int64_t late = T0 + P + CFG.grace;
    ASSERT_OK(repo_billing_dunning(db, &CFG, late - 1, &changed, &dms));
    ASSERT_EQ(changed.n, 0);
    ASSERT_OK(repo_billing_dunning(db, &CFG, late, &changed, &dms));
    ASSERT_EQ(changed.n, 1); /* basic r1 only: free r2 and inactive r3 untouched */
    ASSERT_STR_EQ(changed.ids[0], "r1");
    ASSERT_EQ(dms, 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM relay WHERE status = 'delinquent'"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM activity WHERE activity_type = "
                         "'mark_relay_delinquent'"), 1);
    repo_billing_ids_free(&changed);
    ASSERT_OK(repo_billing_dunning(db, &CFG, late + 10, &changed, &dms));
    ASSERT_EQ(dms, 0); /* one DM per overdue invoice */
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, late + 100, late,
                                      b1, &created));
    ASSERT_OK(repo_billing_mark_paid(db, p[0].id, b1, 1, &CFG, late + 20, &changed));
    ASSERT_EQ(changed.n, 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM relay WHERE status = 'active'"), 2);
    ASSERT_EQ(scalar(db, "SELECT status = 'inactive' FROM relay WHERE id = 'r3'"), 1);
    ASSERT_EQ(scalar(db, "SELECT paid_at FROM invoice"), late + 20);
    ASSERT_EQ(scalar(db, "SELECT settled_at FROM bolt11"), late + 20);
    /* Marking paid again is a no-op. */
    repo_billing_ids_free(&changed);
    ASSERT_OK(repo_billing_mark_paid(db, p[0].id, b1, 1, &CFG, late + 30, &changed));
    ASSERT_EQ(changed.n, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM activity WHERE activity_type = "
                         "'mark_invoice_paid'"), 1);
    repo_billing_pending_free(p, n);
    sqlite3_close(db);
}

TEST(repo_billing_paid_by_notification_hash)
{
    sqlite3 *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0;
    int created = 0, found = -1;
    char b1[65], a1[65];
    struct repo_ids changed = {0};
    one_invoice(db, &p, &n);
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, T0 + P + 100,
                                      T0 + P, b1, &created));
    ASSERT_OK(repo_billing_begin_attempt(db, p[0].id, b1, T0 + P, a1));
    /* Unknown hash, or less than the BOLT11's amount: nothing happens. */
    ASSERT_OK(repo_billing_paid_by_hash(db, "99", 10000000, &CFG, T0 + P + 1, &changed, &found));
    ASSERT_EQ(found, 0);
    ASSERT_OK(repo_billing_paid_by_hash(db, "11", 9999999, &CFG, T0 + P + 1, &changed, &found));
    ASSERT_EQ(found, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice WHERE status = 'paid'"), 0);
    exec(db, "UPDATE tenant SET nwc_error = 'TIMEOUT'");
    ASSERT_OK(repo_billing_paid_by_hash(db, "11", 10000000, &CFG, T0 + P + 2, &changed, &found));
    ASSERT_EQ(found, 1);
    ASSERT_EQ(scalar(db, "SELECT paid_at FROM invoice WHERE status = 'paid'"), T0 + P + 2);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM bolt11 WHERE settled_at IS NOT NULL"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM payment_attempt WHERE state = 'paid'"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM tenant WHERE nwc_error IS NULL"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message WHERE body LIKE '%payment received%'"), 1);
    /* The same notification again (another relay, a replay): nothing more. */
    ASSERT_OK(repo_billing_paid_by_hash(db, "11", 10000000, &CFG, T0 + P + 3, &changed, &found));
    ASSERT_EQ(found, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message WHERE body LIKE '%payment received%'"), 1);
    repo_billing_ids_free(&changed);
    repo_billing_pending_free(p, n);
    sqlite3_close(db);
}
