#include "billing/repo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/calc.h"
#include "db/db.h"
#include "core/store.h"
#include "api/repo_invoice.h"
#include "robot/robot.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define MAX_PERIODS_PER_RUN 100000 /* bound on the period loop of one tenant */
#define DM_MAX 2048

/* ---- small helpers ---- */

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", s ? (const char *)s : "");
}

void repo_billing_date(int64_t t, char out[11])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 11, "%Y-%m-%d", &tm) == 0)
        strcpy(out, "?");
}

void repo_billing_ids_free(struct repo_ids *ids)
{
    free(ids->ids);
    ids->ids = NULL;
    ids->n = 0;
}

static void ids_push(struct repo_ids *ids, const char *id)
{
    ids->ids = xrealloc(ids->ids, (ids->n + 1) * sizeof(*ids->ids));
    snprintf(ids->ids[ids->n++], 65, "%s", id);
}

static int queue_dm(sqlite3 *conn, const char *tenant, int64_t now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int queue_dm(sqlite3 *conn, const char *tenant, int64_t now, const char *fmt, ...)
{
    char text[DM_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return robot_queue_dm_sql(conn, tenant, text, now);
}

/* ---- statements whose plan matters at scale ---- */

/* Columns of a pending invoice with its current BOLT11 (read_pending). INDEXED BY: without
 * statistics the planner prefers invoice_pending (status) and sorts every pending invoice. */
#define PENDING_SELECT(indexed)                                                                    \
    "SELECT i.id, i.tenant, i.amount, i.period_start, i.period_end, i.created_at, "                \
    "i.reminders, COALESCE(i.last_collect_at, -1), t.nwc_url, b.id, b.bolt11, "                    \
    "b.payment_hash, b.expires_at, (SELECT a.id FROM payment_attempt a WHERE a.bolt11 = b.id "     \
    "AND a.state = 'pending' LIMIT 1), COALESCE(b.lookup_base, b.created_at), "                    \
    "i.next_action_at, i.wallet_requests "                                                         \
    "FROM invoice i " indexed                                                                      \
    " JOIN tenant t ON t.pubkey = i.tenant LEFT JOIN bolt11 b ON b.id = "                          \
    "COALESCE((SELECT a.bolt11 FROM payment_attempt a WHERE a.invoice = i.id AND a.state = "       \
    "'pending' ORDER BY a.created_at LIMIT 1), (SELECT b2.id FROM bolt11 b2 WHERE b2.invoice = "   \
    "i.id AND b2.settled_at IS NULL ORDER BY b2.created_at DESC, b2.rowid DESC LIMIT 1)) "

#define REPO_BILLING_TENANT_PENDING_SQL                                                            \
    PENDING_SELECT("INDEXED BY invoice_tenant")                                                    \
    "WHERE i.tenant = ?1 AND i.status = 'pending' ORDER BY i.created_at, i.id LIMIT ?2"
#define REPO_BILLING_DUE_PENDING_SQL                                                               \
    PENDING_SELECT("INDEXED BY invoice_pending_due")                                               \
    "WHERE i.status = 'pending' AND i.next_action_at <= ?1 AND (i.next_action_at, i.id) > "        \
    "(?2, ?3) ORDER BY i.next_action_at, i.id LIMIT ?4"
#define REPO_BILLING_OVERDUE_SQL                                                                   \
    "SELECT id, tenant, amount, delinquent_notified, created_at FROM invoice INDEXED BY "          \
    "invoice_pending_created WHERE status = 'pending' AND created_at <= ?1 AND (created_at, "      \
    "id) > (?2, ?3) ORDER BY created_at, id LIMIT ?4"
#define REPO_BILLING_DUE_TENANTS_SQL                                                               \
    "SELECT pubkey, billing_anchor, billing_due_at FROM tenant WHERE billing_due_at <= ? "         \
    "ORDER BY billing_due_at, pubkey LIMIT ?"
/* The tenant index: without statistics the planner would take activity_resource for the
 * equality on resource_type and walk every relay's rows (the unary + rules that out). */
#define REPO_BILLING_ROWS_SQL                                                                      \
    "SELECT resource_id, created_at, plan, status FROM activity WHERE tenant = ? AND "             \
    "+resource_type = 'relay' AND plan IS NOT NULL AND status IS NOT NULL ORDER BY "               \
    "resource_id, created_at, id LIMIT ?"
/* The rowid range: on resource_type the planner would walk every relay's activity rows. */
#define REPO_BILLING_FOLD_SQL                                                                      \
    "UPDATE tenant SET billing_due_at = MIN(COALESCE(billing_due_at, ?1), ?1) WHERE pubkey IN "    \
    "(SELECT tenant FROM activity WHERE id > ?2 AND id <= ?3 AND +resource_type = 'relay')"
#define REPO_BILLING_BY_HASH_SQL                                                                   \
    "SELECT b.id, b.invoice, EXISTS (SELECT 1 FROM payment_attempt a WHERE a.bolt11 = b.id "       \
    "AND a.state = 'pending') FROM bolt11 b JOIN invoice i ON i.id = b.invoice WHERE "             \
    "b.payment_hash = ? AND b.settled_at IS NULL AND i.status = 'pending' AND "                    \
    "b.amount_msats <= ? LIMIT 1"

const struct repo_billing_stmt repo_billing_stmts[] = {
    {"replay", REPO_BILLING_ROWS_SQL},
    {"due_tenants", REPO_BILLING_DUE_TENANTS_SQL},
    {"due_pending", REPO_BILLING_DUE_PENDING_SQL},
    {"tenant_pending", REPO_BILLING_TENANT_PENDING_SQL},
    {"overdue", REPO_BILLING_OVERDUE_SQL},
    {"by_hash", REPO_BILLING_BY_HASH_SQL},
    {"fold", REPO_BILLING_FOLD_SQL},
};
const size_t repo_billing_n_stmts = sizeof(repo_billing_stmts) / sizeof(repo_billing_stmts[0]);

/* ---- invoice pass ---- */

struct rows {
    struct billing_row *v;
    size_t n;
};

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free((char *)(uintptr_t)r->v[i].relay);
        free((char *)(uintptr_t)r->v[i].plan);
        free((char *)(uintptr_t)r->v[i].status);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static int load_rows(sqlite3 *conn, const char *tenant, struct rows *out)
{
    sqlite3_stmt *st =
        db_query(conn, REPO_BILLING_ROWS_SQL, DB_TEXT(tenant), DB_INT(REPO_BILLING_MAX_ROWS));
    if (!st)
        return DB_EGENERIC;
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            out->v = xrealloc(out->v, cap * sizeof(*out->v));
        }
        struct billing_row *r = &out->v[out->n++];
        r->relay = db_col_text(st, 0);
        r->at = sqlite3_column_int64(st, 1);
        r->plan = db_col_text(st, 2);
        r->status = db_col_text(st, 3);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

static int set_anchor(sqlite3 *conn, const char *tenant, int64_t anchor)
{
    return db_run(conn, "UPDATE tenant SET billing_anchor = ? WHERE pubkey = ?", DB_INT(anchor),
                  DB_TEXT(tenant));
}

/* 1 if the tenant has an invoice for period_start, 0 if not, or a db_error. */
static int invoice_exists(sqlite3 *conn, const char *tenant, int64_t period_start)
{
    return db_exists(conn, "SELECT 1 FROM invoice WHERE tenant = ? AND period_start = ?",
                     DB_TEXT(tenant), DB_INT(period_start));
}

static int insert_items(sqlite3 *conn, const char *invoice, const struct billing_item *items,
                        size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (items[i].amount > 0)
            rc = db_run(conn,
                        "INSERT INTO invoice_item(invoice, relay, plan, hours, amount)"
                        " VALUES (?, ?, ?, ?, ?)",
                        DB_TEXT(invoice), DB_TEXT(items[i].relay), DB_TEXT(items[i].plan),
                        DB_INT(items[i].hours), DB_INT(items[i].amount));
    }
    return rc;
}

/* Writes one invoice; *created 0 when a concurrent run wrote it first. */
static int insert_invoice(sqlite3 *conn, const char *tenant, int64_t start, int64_t end,
                          int64_t total, const struct billing_item *items, size_t n, int64_t now,
                          int *created)
{
    char id[33], d1[11], d2[11];
    repo_new_id(id);
    int rc = db_run(conn,
                    "INSERT INTO invoice(id, tenant, amount, status, period_start, "
                    "period_end, created_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)"
                    " ON CONFLICT(tenant, period_start) DO NOTHING",
                    DB_TEXT(id), DB_TEXT(tenant), DB_INT(total), DB_INT(start), DB_INT(end),
                    DB_INT(now));
    *created = rc == 0 && sqlite3_changes(conn) > 0;
    if (rc || !*created)
        return rc;
    if ((rc = insert_items(conn, id, items, n)) ||
        (rc = repo_activity_insert(conn, tenant, "create_invoice", "invoice", id, NULL, NULL, now)))
        return rc;
    repo_billing_date(start, d1);
    repo_billing_date(end, d2);
    LOG_INFO("billing: invoice %s for tenant %.8s: %lld sats (%s to %s)", id, tenant,
             (long long)total, d1, d2);
    return queue_dm(conn, tenant, now,
                    "Caravel invoice for %s to %s: %lld sats for %zu relay plan(s). A "
                    "Lightning invoice follows; with a wallet connected (NWC) it is paid "
                    "automatically.",
                    d1, d2, (long long)total, n);
}

/* Bills period [start, end): 1 invoice written or found, 0 nothing billable, <0 error. */
static int bill_period(sqlite3 *conn, const char *tenant, const struct rows *rows, int64_t start,
                       int64_t end, int64_t now, size_t *n_created)
{
    /* On the heap: a static __thread array this size would eat every thread's stack. */
    struct billing_item *items = NULL;
    size_t n = 0;
    int rc = invoice_exists(conn, tenant, start);
    if (rc != 0)
        return rc;
    items = xcalloc(BILLING_CALC_MAX_ITEMS, sizeof(*items));
    int64_t total =
        billing_compute_items(rows->v, rows->n, start, end, items, BILLING_CALC_MAX_ITEMS, &n);
    if (total <= 0) {
        if (total < 0)
            LOG_ERROR("billing: tenant %.8s: cannot compute period %lld", tenant, (long long)start);
        free(items);
        return total < 0 ? DB_EGENERIC : 0;
    }
    int created = 0;
    rc = insert_invoice(conn, tenant, start, end, total, items, n, now, &created);
    free(items);
    *n_created += (size_t)created;
    return rc ? rc : 1;
}

/* Bills every ended period of one tenant. *due: when it next has work (the end of its
 * current period), or -1 when none until its relays change. */
static int bill_tenant(sqlite3 *conn, const struct billing_cfg *cfg, const char *tenant,
                       int has_anchor, int64_t anchor, int64_t now, size_t *n_created, int64_t *due)
{
    struct rows rows = {0};
    *due = -1;
    int rc = load_rows(conn, tenant, &rows);
    if (rc == 0 && !has_anchor) {
        if (billing_first_paid_active(rows.v, rows.n, 0, &anchor) < 0)
            goto out;
        if ((rc = set_anchor(conn, tenant, anchor)))
            goto out;
    }
    for (int64_t k = 0; rc == 0 && k < MAX_PERIODS_PER_RUN; k++) {
        int64_t start = billing_period_bound(anchor, cfg->period, k);
        int64_t end = billing_period_bound(anchor, cfg->period, k + 1);
        if (start == INT64_MIN || end == INT64_MIN)
            break;
        if (end > now) {
            *due = end;
            break;
        }
        int billed = bill_period(conn, tenant, &rows, start, end, now, n_created);
        if (billed < 0) {
            rc = billed;
        } else if (billed == 0) {
            /* No paid relay for a whole period: the anchor moves to the next time one is
             * active (PRODUCT.md §8), and periods restart from there. */
            int64_t next;
            if (billing_first_paid_active(rows.v, rows.n, end, &next) < 0 || next <= anchor)
                break;
            anchor = next;
            k = -1;
            rc = set_anchor(conn, tenant, anchor);
        }
        if (k == MAX_PERIODS_PER_RUN - 1)
            *due = now; /* more periods than one call bills: the next batch goes on */
    }
out:
    rows_free(&rows);
    return rc;
}

#define ACTIVITY_FOLD_ROWS 5000 /* relay activity rows folded into due times per batch */

/* Relay activity written since the last batch makes its tenant due now (a relay created,
 * activated or moved to a paid plan may start or move a billing anchor). Folds at most
 * ACTIVITY_FOLD_ROWS rows; *more = 1 when rows are left. */
static int fold_activity(sqlite3 *conn, int64_t now, int *more)
{
    int64_t seen = 0, top = 0;
    sqlite3_stmt *st = db_query(conn, "SELECT (SELECT position FROM billing_cursor WHERE name = "
                                      "'activity'), (SELECT MAX(id) FROM activity)");
    if (!st)
        return DB_EGENERIC;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        seen = sqlite3_column_int64(st, 0);
        top = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return db_rc(conn, rc);
    if (top <= seen)
        return 0;
    int64_t hi = top - seen > ACTIVITY_FOLD_ROWS ? seen + ACTIVITY_FOLD_ROWS : top;
    *more = hi < top;
    rc = db_run(conn, REPO_BILLING_FOLD_SQL, DB_INT(now), DB_INT(seen), DB_INT(hi));
    if (rc)
        return rc;
    return db_run(conn,
                  "INSERT INTO billing_cursor(name, position) VALUES ('activity', ?) "
                  "ON CONFLICT(name) DO UPDATE SET position = excluded.position",
                  DB_INT(hi));
}

static int set_due(sqlite3 *conn, const char *tenant, int64_t due)
{
    return db_run(conn, "UPDATE tenant SET billing_due_at = ? WHERE pubkey = ?",
                  due < 0 ? DB_TEXT(NULL) : DB_INT(due), DB_TEXT(tenant));
}

struct tenant_anchor {
    char pubkey[65];
    int has_anchor;
    int64_t anchor, due;
};

/* Up to limit tenants due at now, in due order (the partial index tenant_billing_due). */
static int load_due_tenants(sqlite3 *conn, int64_t now, size_t limit, struct tenant_anchor **out,
                            size_t *n)
{
    sqlite3_stmt *st = db_query(conn, REPO_BILLING_DUE_TENANTS_SQL, DB_INT(now), DB_INT(limit));
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = SQLITE_DONE;
    *out = xcalloc(limit ? limit : 1, sizeof(**out));
    while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tenant_anchor *t = &(*out)[(*n)++];
        copy_col(st, 0, t->pubkey, sizeof(t->pubkey));
        t->has_anchor = sqlite3_column_type(st, 1) != SQLITE_NULL;
        t->anchor = sqlite3_column_int64(st, 1);
        t->due = sqlite3_column_int64(st, 2);
    }
    if (*n == limit)
        rc = SQLITE_DONE;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

int repo_billing_invoice_batch(sqlite3 *conn, const struct billing_cfg *cfg, int64_t now,
                               struct repo_batch *b)
{
    ASSERT_POOL_THREAD();
    struct tenant_anchor *t = NULL;
    size_t n = 0;
    int fold_more = 0;
    uint64_t t0 = clock_mono_ms();
    b->n_done = b->n_created = b->n_dms = 0;
    b->more = 0;
    int rc = fold_activity(conn, now, &fold_more);
    if (rc == 0)
        rc = load_due_tenants(conn, now, b->limit, &t, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t due = -1;
        rc = bill_tenant(conn, cfg, t[i].pubkey, t[i].has_anchor, t[i].anchor, now, &b->n_created,
                         &due);
        /* Strictly later, so that the batch loop always moves on. */
        if (rc == 0)
            rc = set_due(conn, t[i].pubkey, due >= 0 && due <= now ? now + 1 : due);
        b->n_done++;
        if (b->budget_ms && clock_mono_ms() - t0 >= b->budget_ms)
            break;
    }
    b->n_dms = b->n_created;
    b->more = fold_more || b->n_done == b->limit || b->n_done < n;
    free(t);
    return rc;
}

/* ---- pending invoices ---- */

static void read_pending(sqlite3_stmt *st, struct repo_pending *p)
{
    memset(p, 0, sizeof(*p));
    copy_col(st, 0, p->id, sizeof(p->id));
    copy_col(st, 1, p->tenant, sizeof(p->tenant));
    p->amount = sqlite3_column_int64(st, 2);
    p->period_start = sqlite3_column_int64(st, 3);
    p->period_end = sqlite3_column_int64(st, 4);
    p->created_at = sqlite3_column_int64(st, 5);
    p->reminders = sqlite3_column_int64(st, 6);
    p->last_collect_at = sqlite3_column_int64(st, 7);
    p->nwc_url = db_col_text(st, 8);
    p->has_bolt11 = sqlite3_column_type(st, 9) != SQLITE_NULL;
    if (p->has_bolt11) {
        copy_col(st, 9, p->bolt11_id, sizeof(p->bolt11_id));
        p->bolt11 = db_col_text(st, 10);
        copy_col(st, 11, p->payment_hash, sizeof(p->payment_hash));
        p->bolt11_expires_at = sqlite3_column_int64(st, 12);
    }
    p->has_attempt = sqlite3_column_type(st, 13) != SQLITE_NULL;
    if (p->has_attempt)
        copy_col(st, 13, p->attempt_id, sizeof(p->attempt_id));
    p->lookup_base = sqlite3_column_int64(st, 14);
    p->next_action_at = sqlite3_column_int64(st, 15);
    p->wallet_requests = sqlite3_column_int64(st, 16);
}

static int load_pending(sqlite3 *conn, sqlite3_stmt *st, size_t limit, struct repo_pending **out,
                        size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = SQLITE_DONE;
    *out = xcalloc(limit ? limit : 1, sizeof(**out));
    while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        read_pending(st, &(*out)[(*n)++]);
    if (*n == limit)
        rc = SQLITE_DONE;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

int repo_billing_load_pending(sqlite3 *conn, const char *tenant, struct repo_pending **out,
                              size_t *n)
{
    ASSERT_POOL_THREAD();
    sqlite3_stmt *st = db_query(conn, REPO_BILLING_TENANT_PENDING_SQL, DB_TEXT(tenant),
                                DB_INT(REPO_BILLING_MAX_PENDING));
    return load_pending(conn, st, REPO_BILLING_MAX_PENDING, out, n);
}

int repo_billing_load_due(sqlite3 *conn, int64_t now, const struct repo_cursor *after, size_t limit,
                          struct repo_pending **out, size_t *n)
{
    ASSERT_POOL_THREAD();
    sqlite3_stmt *st = db_query(conn, REPO_BILLING_DUE_PENDING_SQL, DB_INT(now), DB_INT(after->at),
                                DB_TEXT(after->id), DB_INT(limit));
    return load_pending(conn, st, limit, out, n);
}

int repo_billing_schedule(sqlite3 *conn, const struct repo_schedule *s, size_t n)
{
    ASSERT_POOL_THREAD();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = db_run(conn,
                    "UPDATE invoice SET next_action_at = ?, wallet_requests = "
                    "wallet_requests + ? WHERE id = ?",
                    DB_INT(s[i].next_action_at), DB_INT(s[i].wallet_requests), DB_TEXT(s[i].id));
    return rc;
}

int repo_billing_wake_attempts(sqlite3 *conn, int64_t now)
{
    ASSERT_POOL_THREAD();
    return db_run(conn,
                  "UPDATE invoice SET next_action_at = ? WHERE status = 'pending' AND "
                  "next_action_at > ? AND id IN (SELECT invoice FROM payment_attempt "
                  "WHERE state = 'pending')",
                  DB_INT(now), DB_INT(now));
}

void repo_billing_pending_free(struct repo_pending *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        if (p[i].nwc_url)
            secure_zero(p[i].nwc_url, strlen(p[i].nwc_url));
        free(p[i].nwc_url);
        free(p[i].bolt11);
    }
    free(p);
}

/* ---- BOLT11 ---- */

static int invoice_is_pending(sqlite3 *conn, const char *invoice)
{
    return db_exists(conn, "SELECT 1 FROM invoice WHERE id = ? AND status = 'pending'",
                     DB_TEXT(invoice));
}

int repo_billing_add_bolt11(sqlite3 *conn, const char *invoice, const char *bolt11,
                            const char *payment_hash, int64_t amount_msats, int64_t expires_at,
                            int64_t now, char id_out[65], int *created)
{
    ASSERT_POOL_THREAD();
    *created = 0;
    int rc = invoice_is_pending(conn, invoice);
    if (rc <= 0)
        return rc == 0 ? DB_ENOTFOUND : rc;
    sqlite3_stmt *st = db_query(conn,
                                "SELECT id FROM bolt11 WHERE invoice = ? AND settled_at IS "
                                "NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                                DB_TEXT(invoice), DB_INT(now));
    if (!st)
        return DB_EGENERIC;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        copy_col(st, 0, id_out, 65);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) /* a concurrent run stored one first: use it */
        return rc == SQLITE_ROW ? 0 : db_rc(conn, rc);
    char id[33];
    repo_new_id(id);
    if ((rc = db_run(conn,
                     "INSERT INTO bolt11(id, invoice, bolt11, payment_hash, amount_msats, "
                     "expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     DB_TEXT(id), DB_TEXT(invoice), DB_TEXT(bolt11), DB_TEXT(payment_hash),
                     DB_INT(amount_msats), DB_INT(expires_at), DB_INT(now))))
        return rc;
    snprintf(id_out, 65, "%s", id);
    *created = 1;
    return 0;
}

int repo_billing_bolt11_expired(sqlite3 *conn, const char *bolt11_id, int64_t now)
{
    ASSERT_POOL_THREAD();
    int rc = db_run(conn,
                    "UPDATE payment_attempt SET state = 'failed', error = 'BOLT11 expired "
                    "unsettled', updated_at = ? WHERE bolt11 = ? AND state = 'pending'",
                    DB_INT(now), DB_TEXT(bolt11_id));
    if (rc)
        return rc;
    /* So that it is never the "current" BOLT11 again, whatever the clocks say. */
    return db_run(conn, "UPDATE bolt11 SET expires_at = MIN(expires_at, ?) WHERE id = ?",
                  DB_INT(now), DB_TEXT(bolt11_id));
}

/* ---- payment attempts ---- */

int repo_billing_begin_attempt(sqlite3 *conn, const char *invoice, const char *bolt11_id,
                               int64_t now, char attempt_id_out[65])
{
    ASSERT_POOL_THREAD();
    int rc = invoice_is_pending(conn, invoice);
    if (rc <= 0)
        return rc == 0 ? DB_ECONSTRAINT : rc;
    rc = db_exists(conn, "SELECT 1 FROM payment_attempt WHERE invoice = ? AND state <> 'failed'",
                   DB_TEXT(invoice));
    if (rc != 0)
        return rc > 0 ? DB_ECONSTRAINT : rc;
    char id[33];
    repo_new_id(id);
    if ((rc = db_run(conn,
                     "INSERT INTO payment_attempt(id, invoice, bolt11, method, state, "
                     "created_at, updated_at) VALUES (?, ?, ?, 'nwc', 'pending', ?, ?)",
                     DB_TEXT(id), DB_TEXT(invoice), DB_TEXT(bolt11_id), DB_INT(now), DB_INT(now))))
        return rc;
    snprintf(attempt_id_out, 65, "%s", id);
    if ((rc = db_run(conn, "UPDATE bolt11 SET lookup_base = ? WHERE id = ?", DB_INT(now),
                     DB_TEXT(bolt11_id))))
        return rc;
    return db_run(conn, "UPDATE invoice SET last_collect_at = ? WHERE id = ?", DB_INT(now),
                  DB_TEXT(invoice));
}

int repo_billing_attempt_failed(sqlite3 *conn, const char *attempt_id, const char *tenant,
                                const char *reason, int64_t now)
{
    ASSERT_POOL_THREAD();
    int rc = db_run(conn,
                    "UPDATE payment_attempt SET state = 'failed', error = ?, updated_at = ? "
                    "WHERE id = ? AND state = 'pending'",
                    DB_TEXT(reason), DB_INT(now), DB_TEXT(attempt_id));
    if (rc || sqlite3_changes(conn) == 0)
        return rc;
    if ((rc = db_run(conn, "UPDATE tenant SET nwc_error = ? WHERE pubkey = ?", DB_TEXT(reason),
                     DB_TEXT(tenant))))
        return rc;
    return queue_dm(conn, tenant, now,
                    "Caravel: automatic payment failed: %s. Please check your connected "
                    "wallet; the invoice will be retried within a day, or pay the Lightning "
                    "invoice directly.",
                    reason);
}

/* ---- paid / reactivation ---- */

struct inv_row {
    char tenant[65];
    int64_t amount, start, end, requests;
};

static int load_invoice(sqlite3 *conn, const char *invoice, struct inv_row *out)
{
    sqlite3_stmt *st = db_query(conn,
                                "SELECT tenant, amount, period_start, period_end, "
                                "wallet_requests FROM invoice WHERE id = ?",
                                DB_TEXT(invoice));
    if (!st)
        return DB_EGENERIC;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_col(st, 0, out->tenant, sizeof(out->tenant));
        out->amount = sqlite3_column_int64(st, 1);
        out->start = sqlite3_column_int64(st, 2);
        out->end = sqlite3_column_int64(st, 3);
        out->requests = sqlite3_column_int64(st, 4);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? DB_ENOTFOUND : db_rc(conn, rc);
}

struct relay_ref {
    char id[65];
    char plan[BILLING_CALC_PLAN_MAX];
};

/* Relays of tenant with the given status, at most REPO_BILLING_MAX_RELAYS. */
static int list_relays(sqlite3 *conn, const char *tenant, const char *status,
                       struct relay_ref **out, size_t *n)
{
    sqlite3_stmt *st = db_query(conn,
                                "SELECT id, plan FROM relay WHERE tenant = ? AND status = ?"
                                " ORDER BY id LIMIT ?",
                                DB_TEXT(tenant), DB_TEXT(status), DB_INT(REPO_BILLING_MAX_RELAYS));
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        copy_col(st, 0, (*out)[*n].id, sizeof((*out)[*n].id));
        copy_col(st, 1, (*out)[*n].plan, sizeof((*out)[*n].plan));
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

/* Moves one relay to status with its activity row and a zooid resync. */
static int set_relay_status(sqlite3 *conn, const char *tenant, const struct relay_ref *r,
                            const char *status, const char *activity, int64_t now)
{
    int rc = db_run(conn, "UPDATE relay SET status = ?, updated_at = ? WHERE id = ?",
                    DB_TEXT(status), DB_INT(now), DB_TEXT(r->id));
    if (rc == 0)
        rc = repo_relay_mark_dirty(conn, r->id);
    if (rc == 0)
        rc = repo_activity_insert(conn, tenant, activity, "relay", r->id, r->plan, status, now);
    return rc;
}

static int reactivate_relays(sqlite3 *conn, const char *tenant, const struct billing_cfg *cfg,
                             int64_t now, struct repo_ids *changed)
{
    struct relay_ref *rs = NULL;
    size_t n = 0;
    int rc = repo_invoice_overdue(conn, tenant, cfg->grace, now);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    rc = list_relays(conn, tenant, "delinquent", &rs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = set_relay_status(conn, tenant, &rs[i], "active", "activate_relay", now);
        if (rc == 0)
            ids_push(changed, rs[i].id);
    }
    free(rs);
    return rc;
}

static int settle_rows(sqlite3 *conn, const char *invoice, const char *bolt11_id, int64_t now)
{
    int rc = db_run(conn, "UPDATE bolt11 SET settled_at = ? WHERE id = ? AND settled_at IS NULL",
                    DB_INT(now), DB_TEXT(bolt11_id));
    if (rc)
        return rc;
    return db_run(conn,
                  "UPDATE payment_attempt SET state = 'paid', updated_at = ? WHERE invoice "
                  "= ? AND bolt11 = ? AND state = 'pending'",
                  DB_INT(now), DB_TEXT(invoice), DB_TEXT(bolt11_id));
}

static int clear_nwc_error(sqlite3 *conn, const char *tenant)
{
    return db_run(conn, "UPDATE tenant SET nwc_error = NULL WHERE pubkey = ?", DB_TEXT(tenant));
}

int repo_billing_mark_paid(sqlite3 *conn, const char *invoice, const char *bolt11_id,
                           int clear_error, const struct billing_cfg *cfg, int64_t now,
                           struct repo_ids *changed, int64_t *requests)
{
    ASSERT_POOL_THREAD();
    struct inv_row inv;
    char d1[11], d2[11];
    int rc = load_invoice(conn, invoice, &inv);
    if (rc)
        return rc;
    if (requests)
        *requests = inv.requests;
    if ((rc = db_run(conn,
                     "UPDATE invoice SET status = 'paid', paid_at = ? WHERE id = ? AND "
                     "status = 'pending'",
                     DB_INT(now), DB_TEXT(invoice))))
        return rc;
    int changed_now = sqlite3_changes(conn) > 0;
    if ((rc = settle_rows(conn, invoice, bolt11_id, now)) || !changed_now)
        return rc;
    if (clear_error && (rc = clear_nwc_error(conn, inv.tenant)))
        return rc;
    if ((rc = repo_activity_insert(conn, inv.tenant, "mark_invoice_paid", "invoice", invoice, NULL,
                                   NULL, now)))
        return rc;
    repo_billing_date(inv.start, d1);
    repo_billing_date(inv.end, d2);
    LOG_INFO("billing: invoice %s paid (%lld sats)", invoice, (long long)inv.amount);
    rc = queue_dm(conn, inv.tenant, now,
                  "Caravel: payment received, %lld sats for %s to %s. Thank you!",
                  (long long)inv.amount, d1, d2);
    return rc ? rc : reactivate_relays(conn, inv.tenant, cfg, now, changed);
}

int repo_billing_paid_by_hash(sqlite3 *conn, const char *payment_hash, int64_t amount_msats,
                              const struct billing_cfg *cfg, int64_t now, struct repo_ids *changed,
                              int *found, int64_t *requests)
{
    ASSERT_POOL_THREAD();
    char bolt11_id[65] = "", invoice[65] = "";
    int has_attempt = 0;
    *found = 0;
    sqlite3_stmt *st =
        db_query(conn, REPO_BILLING_BY_HASH_SQL, DB_TEXT(payment_hash), DB_INT(amount_msats));
    if (!st)
        return DB_EGENERIC;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_col(st, 0, bolt11_id, sizeof(bolt11_id));
        copy_col(st, 1, invoice, sizeof(invoice));
        has_attempt = sqlite3_column_int(st, 2);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
    *found = 1;
    return repo_billing_mark_paid(conn, invoice, bolt11_id, has_attempt, cfg, now, changed,
                                  requests);
}

int repo_billing_send_bolt11(sqlite3 *conn, const struct repo_pending *p, int64_t now)
{
    ASSERT_POOL_THREAD();
    char d1[11], d2[11];
    repo_billing_date(p->period_start, d1);
    repo_billing_date(p->period_end, d2);
    int rc = queue_dm(conn, p->tenant, now,
                      "Caravel invoice for %s to %s: %lld sats. Pay this Lightning invoice: %s", d1,
                      d2, (long long)p->amount, p->bolt11 ? p->bolt11 : "");
    if (rc || (rc = db_run(conn, "UPDATE bolt11 SET lookup_base = ? WHERE id = ?", DB_INT(now),
                           DB_TEXT(p->bolt11_id))))
        return rc;
    return db_run(conn,
                  "UPDATE invoice SET reminders = reminders + 1, last_collect_at = ? WHERE "
                  "id = ?",
                  DB_INT(now), DB_TEXT(p->id));
}

/* ---- dunning ---- */

struct overdue {
    char id[65], tenant[65];
    int64_t amount, created_at;
    int notified;
};

static int load_overdue(sqlite3 *conn, int64_t cutoff, const struct repo_cursor *after,
                        size_t limit, struct overdue **out, size_t *n)
{
    sqlite3_stmt *st = db_query(conn, REPO_BILLING_OVERDUE_SQL, DB_INT(cutoff), DB_INT(after->at),
                                DB_TEXT(after->id), DB_INT(limit));
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = SQLITE_DONE;
    *out = xcalloc(limit ? limit : 1, sizeof(**out));
    while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct overdue *o = &(*out)[(*n)++];
        copy_col(st, 0, o->id, sizeof(o->id));
        copy_col(st, 1, o->tenant, sizeof(o->tenant));
        o->amount = sqlite3_column_int64(st, 2);
        o->notified = sqlite3_column_int(st, 3);
        o->created_at = sqlite3_column_int64(st, 4);
    }
    if (*n == limit)
        rc = SQLITE_DONE;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

static int suspend_paid_relays(sqlite3 *conn, const char *tenant, int64_t now,
                               struct repo_ids *changed)
{
    struct relay_ref *rs = NULL;
    size_t n = 0;
    int rc = list_relays(conn, tenant, "active", &rs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (billing_plan_sats(rs[i].plan) <= 0)
            continue; /* free relays are never made delinquent */
        rc = set_relay_status(conn, tenant, &rs[i], "delinquent", "mark_relay_delinquent", now);
        if (rc == 0)
            ids_push(changed, rs[i].id);
    }
    free(rs);
    return rc;
}

static int notify_overdue(sqlite3 *conn, const struct overdue *o, int64_t now)
{
    int rc = queue_dm(conn, o->tenant, now,
                      "Caravel: your invoice of %lld sats is overdue, so your paid relays are "
                      "paused. They come back as soon as it is paid.",
                      (long long)o->amount);
    if (rc)
        return rc;
    return db_run(conn, "UPDATE invoice SET delinquent_notified = 1 WHERE id = ?", DB_TEXT(o->id));
}

int repo_billing_dunning_batch(sqlite3 *conn, const struct billing_cfg *cfg, int64_t now,
                               struct repo_cursor *cursor, struct repo_batch *b,
                               struct repo_ids *changed)
{
    ASSERT_POOL_THREAD();
    struct overdue *o = NULL;
    size_t n = 0;
    uint64_t t0 = clock_mono_ms();
    b->n_done = b->n_created = b->n_dms = 0;
    b->more = 0;
    int rc = load_overdue(conn, now - cfg->grace, cursor, b->limit, &o, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = suspend_paid_relays(conn, o[i].tenant, now, changed);
        if (rc == 0 && !o[i].notified) {
            rc = notify_overdue(conn, &o[i], now);
            b->n_dms++;
        }
        cursor->at = o[i].created_at;
        snprintf(cursor->id, sizeof(cursor->id), "%s", o[i].id);
        b->n_done++;
        if (b->budget_ms && clock_mono_ms() - t0 >= b->budget_ms)
            break;
    }
    b->more = b->n_done == b->limit || b->n_done < n;
    free(o);
    return rc;
}
