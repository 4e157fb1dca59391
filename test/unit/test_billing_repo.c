/* Billing SQL on a real SQLite database with the project's schema (every migration): invoice
 * pass (anchors, one invoice per ended period, idempotent, anchor reset after an idle period),
 * batches with a cursor (only due tenants, every one reached past the batch size), query
 * plans on a fresh database, the lookup schedule, the at-most-one-payment rule, paid ->
 * reactivation, dunning. */
#include "test.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <unistd.h>

#include <sqlite3.h>

#include "billing/calc.h"
#include "billing/repo.h"
#include "db/conn.h"
#include "db/db.h"
#include "db/migrations.h"
#include "nostr/keys.h"
#include "util/clock.h"

#define T "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define P (30 * 86400LL)
#define T0 1700000000LL

static void add_tenant(struct db_conn *db, const char *pubkey)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "INSERT INTO tenant(pubkey, created_at) VALUES ('%s', 1)", pubkey);
    ASSERT_EQ(sqlite3_exec(db_conn_sqlite(db), sql, NULL, NULL, NULL), SQLITE_OK);
}

/* A fresh database with every migration and no statistics (as in production: nothing runs
 * ANALYZE before the first billing run). */
static struct db_conn *open_db(void)
{
    struct db_conn *db = NULL;
    ASSERT_OK(nostr_init());
    ASSERT_EQ(db_conn_open(&db, ":memory:", 0), SQLITE_OK);
    for (size_t i = 0; i < n_migrations; i++) {
        char *err = NULL;
        if (sqlite3_exec(db_conn_sqlite(db), migrations[i].sql, NULL, NULL, &err) != SQLITE_OK)
            TEST_FAIL_("%s: %s", migrations[i].name, err);
    }
    add_tenant(db, T);
    return db;
}

static void exec(struct db_conn *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec(struct db_conn *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *err = NULL;
    if (sqlite3_exec(db_conn_sqlite(db), sql, NULL, NULL, &err) != SQLITE_OK)
        TEST_FAIL_("%s: %s", sql, err);
}

static int64_t scalar(struct db_conn *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db_conn_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* A relay row plus its activity row (as the API writes them) for tenant t. */
static void relay_event_of(struct db_conn *db, const char *t, const char *id, const char *plan,
                           const char *status, int64_t at, const char *type)
{
    exec(db,
         "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, created_at, "
         "updated_at) VALUES ('%s', '%s', '%s', '%s', 'x', '%s', '%s', %lld, %lld) "
         "ON CONFLICT(id) DO UPDATE SET plan = excluded.plan, status = excluded.status",
         id, t, id, id, plan, status, (long long)at, (long long)at);
    exec(db,
         "INSERT INTO activity(tenant, created_at, activity_type, resource_type, resource_id, "
         "plan, status) VALUES ('%s', %lld, '%s', 'relay', '%s', '%s', '%s')",
         t, (long long)at, type, id, plan, status);
}

static void relay_event(struct db_conn *db, const char *id, const char *plan, const char *status,
                        int64_t at, const char *type)
{
    relay_event_of(db, T, id, plan, status, at, type);
}

static const struct billing_cfg CFG = {P, 7 * 86400};

/* A whole invoice pass: batches of `limit` until none is left. Returns the batches run. */
static size_t pass_batches(struct db_conn *db, int64_t now, size_t limit, size_t *created,
                           size_t *dms, size_t *tenants)
{
    size_t n = 0;
    struct repo_batch b = {.limit = limit};
    *created = *dms = 0;
    if (tenants)
        *tenants = 0;
    do {
        ASSERT_OK(repo_billing_invoice_batch(db, &CFG, now, &b));
        *created += b.n_created;
        *dms += b.n_dms;
        if (tenants)
            *tenants += b.n_done;
        ASSERT_LT(n++, 10000); /* every batch moves on */
    } while (b.more);
    return n;
}

static void invoice_pass(struct db_conn *db, int64_t now, size_t *created, size_t *dms)
{
    pass_batches(db, now, 500, created, dms, NULL);
}

/* Whole dunning pass in batches of `limit`. */
static void dunning(struct db_conn *db, int64_t now, size_t limit, struct repo_ids *changed,
                    size_t *dms)
{
    struct repo_cursor cur = {INT64_MIN, ""};
    struct repo_batch b = {.limit = limit};
    size_t n = 0;
    *dms = 0;
    do {
        ASSERT_OK(repo_billing_dunning_batch(db, &CFG, now, &cur, &b, changed));
        *dms += b.n_dms;
        ASSERT_LT(n++, 10000);
    } while (b.more);
}

TEST(repo_billing_invoices_once_per_ended_period)
{
    struct db_conn *db = open_db();
    size_t created = 0, dms = 0;
    relay_event(db, "r1", "basic", "active", T0, "create_relay");
    relay_event(db, "r2", "free", "active", T0, "create_relay");
    invoice_pass(db, T0 + P - 1, &created, &dms);
    ASSERT_EQ(created, 0);
    ASSERT_EQ(scalar(db, "SELECT billing_anchor FROM tenant"), T0);
    invoice_pass(db, T0 + 2 * P + 5, &created, &dms);
    ASSERT_EQ(created, 2);
    ASSERT_EQ(dms, 2);
    ASSERT_EQ(scalar(db, "SELECT SUM(amount) FROM invoice"), 20000);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice_item"), 2); /* the free relay: none */
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message"), 2);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM activity WHERE activity_type = "
                         "'create_invoice'"),
              2);
    /* A second run (or a concurrent one) writes nothing more. */
    invoice_pass(db, T0 + 2 * P + 6, &created, &dms);
    ASSERT_EQ(created, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice"), 2);
    db_conn_close(db);
}

TEST(repo_billing_anchor_moves_after_an_idle_period)
{
    struct db_conn *db = open_db();
    size_t created = 0, dms = 0;
    relay_event(db, "r1", "basic", "active", T0, "create_relay");
    relay_event(db, "r1", "basic", "inactive", T0 + P, "deactivate_relay");
    relay_event(db, "r1", "basic", "active", T0 + 3 * P + 100, "activate_relay");
    invoice_pass(db, T0 + 5 * P, &created, &dms);
    /* Period 0 billed; period 1 idle; new anchor at the reactivation; one full period. */
    ASSERT_EQ(created, 2);
    ASSERT_EQ(scalar(db, "SELECT billing_anchor FROM tenant"), T0 + 3 * P + 100);
    ASSERT_EQ(scalar(db, "SELECT MAX(period_start) FROM invoice"), T0 + 3 * P + 100);
    ASSERT_EQ(scalar(db, "SELECT SUM(amount) FROM invoice"), 20000);
    db_conn_close(db);
}

static void one_invoice(struct db_conn *db, struct repo_pending **p, size_t *n)
{
    size_t created = 0, dms = 0;
    relay_event(db, "r1", "basic", "active", T0, "create_relay");
    relay_event(db, "r2", "free", "active", T0, "create_relay");
    relay_event(db, "r3", "growth", "inactive", T0, "create_relay");
    invoice_pass(db, T0 + P, &created, &dms);
    ASSERT_EQ(created, 1);
    ASSERT_OK(repo_billing_load_pending(db, T, p, n));
    ASSERT_EQ(*n, 1);
    ASSERT_EQ((*p)[0].amount, 10000);
    ASSERT_EQ((*p)[0].has_bolt11, 0);
}

TEST(repo_billing_one_payment_per_invoice)
{
    struct db_conn *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0;
    int created = 0;
    char b1[65], b2[65], a1[65], a2[65];
    one_invoice(db, &p, &n);
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, T0 + P + 100, T0 + P,
                                      b1, &created));
    ASSERT_EQ(created, 1);
    /* A second BOLT11 while one is live: the live one is returned instead. */
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc2", "22", 10000000, T0 + P + 100, T0 + P,
                                      b2, &created));
    ASSERT_EQ(created, 0);
    ASSERT_STR_EQ(b1, b2);
    ASSERT_OK(repo_billing_begin_attempt(db, p[0].id, b1, T0 + P, a1));
    ASSERT_EQ(repo_billing_begin_attempt(db, p[0].id, b1, T0 + P, a2), DB_ECONSTRAINT);
    repo_billing_pending_free(p, n);
    ASSERT_OK(repo_billing_load_pending(db, T, &p, &n));
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
                         "route'"),
              1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message WHERE body LIKE '%automatic payment "
                         "failed: PAYMENT_FAILED: no route%'"),
              1);
    repo_billing_pending_free(p, n);
    db_conn_close(db);
}

TEST(repo_billing_dunning_and_reactivation)
{
    struct db_conn *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0, dms = 0;
    int created = 0;
    char b1[65];
    struct repo_ids changed = {0};
    one_invoice(db, &p, &n);
    int64_t late = T0 + P + CFG.grace;
    dunning(db, late - 1, 500, &changed, &dms);
    ASSERT_EQ(changed.n, 0);
    dunning(db, late, 500, &changed, &dms);
    ASSERT_EQ(changed.n, 1); /* basic r1 only: free r2 and inactive r3 untouched */
    ASSERT_STR_EQ(changed.ids[0], "r1");
    ASSERT_EQ(dms, 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM relay WHERE status = 'delinquent'"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM activity WHERE activity_type = "
                         "'mark_relay_delinquent'"),
              1);
    repo_billing_ids_free(&changed);
    dunning(db, late + 10, 500, &changed, &dms);
    ASSERT_EQ(dms, 0); /* one DM per overdue invoice */
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, late + 100, late, b1,
                                      &created));
    ASSERT_OK(repo_billing_mark_paid(db, p[0].id, b1, 1, &CFG, late + 20, &changed, NULL));
    ASSERT_EQ(changed.n, 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM relay WHERE status = 'active'"), 2);
    ASSERT_EQ(scalar(db, "SELECT status = 'inactive' FROM relay WHERE id = 'r3'"), 1);
    ASSERT_EQ(scalar(db, "SELECT paid_at FROM invoice"), late + 20);
    ASSERT_EQ(scalar(db, "SELECT settled_at FROM bolt11"), late + 20);
    /* Marking paid again is a no-op. */
    repo_billing_ids_free(&changed);
    ASSERT_OK(repo_billing_mark_paid(db, p[0].id, b1, 1, &CFG, late + 30, &changed, NULL));
    ASSERT_EQ(changed.n, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM activity WHERE activity_type = "
                         "'mark_invoice_paid'"),
              1);
    repo_billing_pending_free(p, n);
    db_conn_close(db);
}

static int count_op(void *arg)
{
    (*(int64_t *)arg)++;
    return 0;
}

/* Virtual machine instructions of marking T's invoice paid (overdue, so its relay comes back)
 * while `others` other tenants owe a pending invoice each. */
static int64_t mark_paid_ops(int others)
{
    struct db_conn *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0, dms = 0;
    int created = 0;
    int64_t ops = 0, late = T0 + P + CFG.grace;
    char b1[65];
    struct repo_ids changed = {0};
    one_invoice(db, &p, &n);
    exec(db,
         "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %d)"
         " INSERT INTO tenant(pubkey, created_at) SELECT printf('%%064x', i), 1 FROM k;"
         " INSERT INTO invoice(id, tenant, amount, period_start, period_end, created_at)"
         " SELECT printf('o%%06d', rowid), pubkey, 10, 0, 1, %lld FROM tenant WHERE pubkey <> '%s'",
         others, (long long)T0, T);
    dunning(db, late, 500, &changed, &dms);
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, late + 100, late, b1,
                                      &created));
    repo_billing_ids_free(&changed);
    sqlite3_progress_handler(db_conn_sqlite(db), 1, count_op, &ops);
    ASSERT_OK(repo_billing_mark_paid(db, p[0].id, b1, 1, &CFG, late + 20, &changed, NULL));
    sqlite3_progress_handler(db_conn_sqlite(db), 0, NULL, NULL);
    ASSERT_EQ(changed.n, 1); /* r1 active again: the overdue check ran and said no */
    repo_billing_ids_free(&changed);
    repo_billing_pending_free(p, n);
    db_conn_close(db);
    return ops;
}

/* Marking one invoice paid reads that tenant's rows only: its cost does not grow with what
 * other tenants owe (it walked every pending invoice through an index on status alone). */
TEST(repo_billing_mark_paid_costs_the_same_whatever_others_owe)
{
    int64_t few = mark_paid_ops(10), many = mark_paid_ops(3000);
    if (many > few + few / 10)
        TEST_FAIL_("mark_paid: %lld instructions with 10 others owing, %lld with 3000",
                   (long long)few, (long long)many);
}

TEST(repo_billing_paid_by_notification_hash)
{
    struct db_conn *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0;
    int created = 0, found = -1;
    char b1[65], a1[65];
    struct repo_ids changed = {0};
    one_invoice(db, &p, &n);
    ASSERT_OK(repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, T0 + P + 100, T0 + P,
                                      b1, &created));
    ASSERT_OK(repo_billing_begin_attempt(db, p[0].id, b1, T0 + P, a1));
    /* Unknown hash, or less than the BOLT11's amount: nothing happens. */
    ASSERT_OK(
        repo_billing_paid_by_hash(db, "99", 10000000, &CFG, T0 + P + 1, &changed, &found, NULL));
    ASSERT_EQ(found, 0);
    ASSERT_OK(
        repo_billing_paid_by_hash(db, "11", 9999999, &CFG, T0 + P + 1, &changed, &found, NULL));
    ASSERT_EQ(found, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice WHERE status = 'paid'"), 0);
    exec(db, "UPDATE tenant SET nwc_error = 'TIMEOUT'");
    ASSERT_OK(
        repo_billing_paid_by_hash(db, "11", 10000000, &CFG, T0 + P + 2, &changed, &found, NULL));
    ASSERT_EQ(found, 1);
    ASSERT_EQ(scalar(db, "SELECT paid_at FROM invoice WHERE status = 'paid'"), T0 + P + 2);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM bolt11 WHERE settled_at IS NOT NULL"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM payment_attempt WHERE state = 'paid'"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM tenant WHERE nwc_error IS NULL"), 1);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message WHERE body LIKE '%payment received%'"), 1);
    /* The same notification again (another relay, a replay): nothing more. */
    ASSERT_OK(
        repo_billing_paid_by_hash(db, "11", 10000000, &CFG, T0 + P + 3, &changed, &found, NULL));
    ASSERT_EQ(found, 0);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM message WHERE body LIKE '%payment received%'"), 1);
    repo_billing_ids_free(&changed);
    repo_billing_pending_free(p, n);
    db_conn_close(db);
}

/* The statements that run per tenant or per invoice plan on their index on a fresh database
 * (no ANALYZE): no full scan of any table, the named index in use. */
static const struct {
    const char *stmt, *index;
} PLANS[] = {
    {"replay", "activity_tenant"},          {"due_tenants", "tenant_billing_due"},
    {"due_pending", "invoice_pending_due"}, {"tenant_pending", "invoice_tenant"},
    {"overdue", "invoice_pending_created"}, {"by_hash", "bolt11_payment_hash"},
    {"fold", "sqlite_autoindex_tenant_1"}, /* and the activity rowid range */
};

static const char *stmt_sql(const char *name)
{
    for (size_t i = 0; i < repo_billing_n_stmts; i++)
        if (strcmp(repo_billing_stmts[i].name, name) == 0)
            return repo_billing_stmts[i].sql;
    TEST_FAIL_("no statement %s", name);
    return NULL;
}

TEST(repo_billing_statements_use_their_index_without_statistics)
{
    struct db_conn *db = open_db();
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"), 0);
    ASSERT_EQ(repo_billing_n_stmts, sizeof(PLANS) / sizeof(PLANS[0])); /* all pinned */
    for (size_t i = 0; i < sizeof(PLANS) / sizeof(PLANS[0]); i++) {
        char sql[4096], plan[4096] = "";
        snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", stmt_sql(PLANS[i].stmt));
        sqlite3_stmt *st = NULL;
        ASSERT_EQ(sqlite3_prepare_v2(db_conn_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(st, 3);
            size_t len = strlen(plan);
            snprintf(plan + len, sizeof(plan) - len, "%s\n", d);
        }
        sqlite3_finalize(st);
        char want[128];
        snprintf(want, sizeof(want), "INDEX %s ", PLANS[i].index);
        if (!strstr(plan, want) || strstr(plan, "SCAN ") ||
            strstr(plan, "activity USING INDEX activity_resource"))
            TEST_FAIL_("%s: want %s and no SCAN, got:\n%s", PLANS[i].stmt, PLANS[i].index, plan);
    }
    db_conn_close(db);
}

/* 25 tenants, batches of 4: the pass goes past the batch size to every due tenant, and a
 * tenant whose period has not ended costs nothing on the next pass. */
TEST(repo_billing_batches_reach_every_due_tenant)
{
    struct db_conn *db = open_db();
    char tenants[25][65], relay[16];
    size_t created = 0, dms = 0, done = 0;
    for (int i = 0; i < 25; i++) {
        snprintf(tenants[i], sizeof(tenants[i]), "%064x", i + 1);
        add_tenant(db, tenants[i]);
        snprintf(relay, sizeof(relay), "r%d", i);
        relay_event_of(db, tenants[i], relay, i % 2 ? "basic" : "growth", "active", T0 + i,
                       "create_relay");
    }
    /* Before any period ends: every tenant gets its anchor and a due time, nothing billed. */
    size_t batches = pass_batches(db, T0 + 100, 4, &created, &dms, &done);
    ASSERT_EQ(created, 0);
    ASSERT_EQ(done, 25);
    ASSERT_GE(batches, 7);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM tenant WHERE billing_due_at > 1700000000"), 25);
    /* Nothing due: a pass touches no tenant. */
    pass_batches(db, T0 + P - 1, 4, &created, &dms, &done);
    ASSERT_EQ(done, 0);
    /* Every period ended: every tenant invoiced once, in batches of 4. */
    batches = pass_batches(db, T0 + P + 30, 4, &created, &dms, &done);
    ASSERT_EQ(created, 25);
    ASSERT_EQ(done, 25);
    ASSERT_GE(batches, 7);
    ASSERT_EQ(scalar(db, "SELECT COUNT(DISTINCT tenant) FROM invoice"), 25);
    ASSERT_EQ(scalar(db, "SELECT SUM(amount) FROM invoice"), 12 * 10000 + 13 * 50000);
    /* A relay change makes only its tenant due again (and it has nothing new to bill). */
    relay_event_of(db, tenants[3], "r3", "basic", "inactive", T0 + P + 40, "deactivate_relay");
    pass_batches(db, T0 + P + 50, 4, &created, &dms, &done);
    ASSERT_EQ(done, 1);
    ASSERT_EQ(created, 0);
    db_conn_close(db);
}

/* Clients' writes waiting for the writer (db_clients_waiting): every batch ends after one
 * tenant, however much budget is left, and the pass still reaches every due tenant. */
TEST(repo_billing_batches_end_early_for_waiting_clients)
{
    struct db_conn *db = open_db();
    static _Atomic int waiting = 1;
    char tenant[65], relay[16];
    size_t created = 0, dms = 0, done = 0;
    for (int i = 0; i < 6; i++) {
        snprintf(tenant, sizeof(tenant), "%064x", i + 1);
        add_tenant(db, tenant);
        snprintf(relay, sizeof(relay), "r%d", i);
        relay_event_of(db, tenant, relay, "basic", "active", T0 + i, "create_relay");
    }
    db->clients_waiting = &waiting;
    struct repo_batch b = {.limit = 100, .budget_ms = 60000};
    ASSERT_OK(repo_billing_invoice_batch(db, &CFG, T0 + 100, &b));
    ASSERT_EQ(b.n_done, 1);
    ASSERT_EQ(b.more, 1);
    size_t batches = 1;
    do {
        ASSERT_OK(repo_billing_invoice_batch(db, &CFG, T0 + 100, &b));
        ASSERT_LE(b.n_done, 1);
        ASSERT_LT(batches++, 100);
    } while (b.more);
    ASSERT_EQ(batches, 6); /* one tenant each */
    waiting = 0;
    ASSERT_EQ(pass_batches(db, T0 + P + 30, 100, &created, &dms, &done), 1);
    ASSERT_EQ(created, 6);
    ASSERT_EQ(done, 6);
    db_conn_close(db);
}

/* Clients writing (db_clients_writing: a write queued within the last second) put the batch on
 * its short budget: a pass of 200 invoices runs in several batches, and in one once the last
 * client's write is older than that, or when the short budget is not the lower one. */
TEST(repo_billing_batches_are_short_while_clients_write)
{
    static _Atomic int waiting = 0;
    static _Atomic uint64_t last_write;
    for (int round = 0; round < 3; round++) {
        struct db_conn *db = open_db();
        char tenant[65], relay[16];
        for (int i = 0; i < 200; i++) {
            snprintf(tenant, sizeof(tenant), "%064x", i + 1);
            add_tenant(db, tenant);
            snprintf(relay, sizeof(relay), "r%d", i);
            relay_event_of(db, tenant, relay, "basic", "active", T0 + i % 10, "create_relay");
        }
        size_t batches = 0, done = 0, created = 0;
        pass_batches(db, T0 + 100, 500, &created, &done, NULL); /* anchors and due times */
        db->clients_waiting = &waiting;
        db->client_write_ms = &last_write;
        /* round 0: a client wrote just now; 1: long ago; 2: just now, but the short budget is
         * not the lower one */
        atomic_store(&last_write, round == 1 ? 1 : clock_mono_ms());
        struct repo_batch b = {
            .limit = 500, .budget_ms = 60000, .busy_budget_ms = round == 2 ? 120000 : 1};
        done = created = 0;
        do {
            ASSERT_OK(repo_billing_invoice_batch(db, &CFG, T0 + P + 30, &b));
            done += b.n_done;
            created += b.n_created;
            ASSERT_LT(batches++, 1000);
        } while (b.more);
        ASSERT_EQ(done, 200);
        ASSERT_EQ(created, 200);
        /* 200 invoices take several milliseconds (~50 us each here, more under ASan) */
        ASSERT_EQ(batches > 1, round == 0);
        db_conn_close(db);
    }
}

/* A stop between batches loses nothing: each batch committed on its own, and the next
 * pass (another process) goes on where the due times say. */
TEST(repo_billing_pass_resumes_after_a_stop_between_batches)
{
    struct db_conn *db = open_db();
    char t[65];
    size_t created = 0, dms = 0, done = 0;
    for (int i = 0; i < 10; i++) {
        snprintf(t, sizeof(t), "%064x", i + 100);
        add_tenant(db, t);
        char relay[16];
        snprintf(relay, sizeof(relay), "s%d", i);
        relay_event_of(db, t, relay, "basic", "active", T0, "create_relay");
    }
    struct repo_batch b = {.limit = 3};
    ASSERT_OK(repo_billing_invoice_batch(db, &CFG, T0 + P + 1, &b)); /* then "SIGTERM" */
    ASSERT_EQ(b.n_created, 3);
    ASSERT_EQ(b.more, 1);
    pass_batches(db, T0 + P + 2, 3, &created, &dms, &done);
    ASSERT_EQ(created, 7);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM invoice"), 10);
    db_conn_close(db);
}

/* Dunning in batches of 2 reaches every overdue invoice. */
TEST(repo_billing_dunning_batches_reach_every_overdue_invoice)
{
    struct db_conn *db = open_db();
    char t[65], relay[16];
    size_t created = 0, dms = 0;
    struct repo_ids changed = {0};
    for (int i = 0; i < 7; i++) {
        snprintf(t, sizeof(t), "%064x", i + 200);
        add_tenant(db, t);
        snprintf(relay, sizeof(relay), "d%d", i);
        relay_event_of(db, t, relay, "basic", "active", T0, "create_relay");
    }
    invoice_pass(db, T0 + P, &created, &dms);
    ASSERT_EQ(created, 7);
    dunning(db, T0 + P + CFG.grace, 2, &changed, &dms);
    ASSERT_EQ(dms, 7);
    ASSERT_EQ(changed.n, 7);
    ASSERT_EQ(scalar(db, "SELECT COUNT(*) FROM relay WHERE status = 'delinquent'"), 7);
    repo_billing_ids_free(&changed);
    db_conn_close(db);
}

/* The lookup schedule with the service's clock moved by a test clock file: at each time of
 * the table the invoice is due (returned by repo_billing_load_due) or not, and a lookup at a
 * due time schedules the next one. */
static const struct {
    int64_t at;   /* seconds after the BOLT11 was handed out */
    int due;      /* the invoice is due for a lookup then */
    int64_t next; /* the next lookup scheduled after a lookup at `at` (offset) */
} SCHEDULE[] = {
    {0, 0, 60},        {59, 0, 60},       {60, 1, 300},      {200, 0, 300},     {300, 1, 1800},
    {1799, 0, 1800},   {1800, 1, 3600},   {3599, 0, 3600},   {3600, 1, 7200},   {9000, 1, 10800},
    {10799, 0, 10800}, {82800, 1, 86400}, {86399, 0, 86400}, {86400, 1, 86400},
};

static void set_clock(const char *file, int64_t t)
{
    FILE *f = fopen(file, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "%lld\n", (long long)t);
    fclose(f);
}

TEST(repo_billing_lookup_schedule_backs_off_until_expiry)
{
    struct db_conn *db = open_db();
    struct repo_pending *p = NULL;
    size_t n = 0;
    int created = 0;
    char b1[65], dir[64], file[96];
    test_tmpdir(dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s/clock", dir);
    clock_use_file(file); /* what CARAVEL_TEST_CLOCK_FILE does in the service */
    one_invoice(db, &p, &n);
    const int64_t base = T0 + P, expires = base + 86400;
    ASSERT_OK(
        repo_billing_add_bolt11(db, p[0].id, "lnbc1", "11", 10000000, expires, base, b1, &created));
    struct repo_schedule s = {.next_action_at = billing_next_lookup(base, expires, base, 0),
                              .wallet_requests = 1};
    snprintf(s.id, sizeof(s.id), "%s", p[0].id);
    ASSERT_OK(repo_billing_schedule(db, &s, 1));
    repo_billing_pending_free(p, n);
    for (size_t i = 0; i < sizeof(SCHEDULE) / sizeof(SCHEDULE[0]); i++) {
        set_clock(file, base + SCHEDULE[i].at);
        int64_t now = clock_now();
        struct repo_cursor start = {INT64_MIN, ""};
        ASSERT_OK(repo_billing_load_due(db, now, &start, 10, &p, &n));
        if ((int)n != SCHEDULE[i].due)
            TEST_FAIL_("at +%lld: due %zu, want %d", (long long)SCHEDULE[i].at, n, SCHEDULE[i].due);
        if (n) {
            ASSERT_EQ(p[0].lookup_base, base);
            s.next_action_at =
                billing_next_lookup(p[0].lookup_base, p[0].bolt11_expires_at, now, 0);
            ASSERT_EQ(s.next_action_at - base, SCHEDULE[i].next);
            ASSERT_OK(repo_billing_schedule(db, &s, 1));
        }
        repo_billing_pending_free(p, n);
    }
    /* Every lookup counted on the invoice: 1 + the due rows of the table. */
    ASSERT_EQ(scalar(db, "SELECT wallet_requests FROM invoice"), 1 + 7);
    /* With payment notifications only the lookup at expiry remains. */
    ASSERT_EQ(billing_next_lookup(base, expires, base + 60, 1), expires);
    unlink(file);
    rmdir(dir);
    db_conn_close(db);
}
