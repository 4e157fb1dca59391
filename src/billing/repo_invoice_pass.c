/* The invoice pass of billing's SQL (PRODUCT.md §8): relay activity folded into tenants' due
 * times, then, batch by batch, every ended billing period of a due tenant billed (invoice, items,
 * activity, DM). Pool thread only, inside the caller's db_write transaction (billing/repo.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/calc.h"
#include "billing/repo.h"
#include "billing/repo_int.h"
#include "core/store.h"
#include "db/db.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define MAX_PERIODS_PER_RUN 100000 /* bound on the period loop of one tenant */

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

static int load_rows(struct db_conn *conn, const char *tenant, struct rows *out)
{
    struct db_stmt *st =
        db_query(conn, REPO_BILLING_ROWS_SQL, DB_TEXT(tenant), DB_INT(REPO_BILLING_MAX_ROWS));
    if (!st)
        return DB_EGENERIC;
    int rc;
    size_t cap = 0;
    while ((rc = db_step(st)) == DB_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            out->v = xrealloc(out->v, cap * sizeof(*out->v));
        }
        struct billing_row *r = &out->v[out->n++];
        r->relay = db_col_text(st, 0);
        r->at = db_col_int64(st, 1);
        r->plan = db_col_text(st, 2);
        r->status = db_col_text(st, 3);
    }
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

static int set_anchor(struct db_conn *conn, const char *tenant, int64_t anchor)
{
    return db_run(conn, "UPDATE tenant SET billing_anchor = ? WHERE pubkey = ?", DB_INT(anchor),
                  DB_TEXT(tenant));
}

/* 1 if the tenant has an invoice for period_start, 0 if not, or a db_error. */
static int invoice_exists(struct db_conn *conn, const char *tenant, int64_t period_start)
{
    return db_exists(conn, "SELECT 1 FROM invoice WHERE tenant = ? AND period_start = ?",
                     DB_TEXT(tenant), DB_INT(period_start));
}

static int insert_items(struct db_conn *conn, const char *invoice, const struct billing_item *items,
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
static int insert_invoice(struct db_conn *conn, const char *tenant, int64_t start, int64_t end,
                          int64_t total, const struct billing_item *items, size_t n, int64_t now,
                          int *created)
{
    char id[33], d1[11], d2[11];
    repo_new_time_id(id, now);
    int rc = db_run(conn,
                    "INSERT INTO invoice(id, tenant, amount, status, period_start, "
                    "period_end, created_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)"
                    " ON CONFLICT(tenant, period_start) DO NOTHING",
                    DB_TEXT(id), DB_TEXT(tenant), DB_INT(total), DB_INT(start), DB_INT(end),
                    DB_INT(now));
    *created = rc == 0 && db_changes(conn) > 0;
    if (rc || !*created)
        return rc;
    if ((rc = insert_items(conn, id, items, n)) ||
        (rc = repo_activity_insert(conn, tenant, "create_invoice", "invoice", id, NULL, NULL, now)))
        return rc;
    repo_billing_date(start, d1);
    repo_billing_date(end, d2);
    LOG_INFO("billing: invoice %s for tenant %.8s: %lld sats (%s to %s)", id, tenant,
             (long long)total, d1, d2);
    return rb_queue_dm(conn, tenant, now,
                       "Caravel invoice for %s to %s: %lld sats for %zu relay plan(s). A "
                       "Lightning invoice follows; with a wallet connected (NWC) it is paid "
                       "automatically.",
                       d1, d2, (long long)total, n);
}

/* Bills period [start, end): 1 invoice written or found, 0 nothing billable, <0 error. */
static int bill_period(struct db_conn *conn, const char *tenant, const struct rows *rows,
                       int64_t start, int64_t end, int64_t now, size_t *n_created)
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
static int bill_tenant(struct db_conn *conn, const struct billing_cfg *cfg, const char *tenant,
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
static int fold_activity(struct db_conn *conn, int64_t now, int *more)
{
    int64_t seen = 0, top = 0;
    struct db_stmt *st = db_query(conn, "SELECT (SELECT position FROM billing_cursor WHERE name = "
                                        "'activity'), (SELECT MAX(id) FROM activity)");
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        seen = db_col_int64(st, 0);
        top = db_col_int64(st, 1);
    }
    db_reset(st);
    if (rc != DB_ROW)
        return db_status(rc);
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

static int set_due(struct db_conn *conn, const char *tenant, int64_t due)
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
static int load_due_tenants(struct db_conn *conn, int64_t now, size_t limit,
                            struct tenant_anchor **out, size_t *n)
{
    struct db_stmt *st = db_query(conn, REPO_BILLING_DUE_TENANTS_SQL, DB_INT(now), DB_INT(limit));
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = DB_DONE;
    *out = xcalloc(limit ? limit : 1, sizeof(**out));
    while (*n < limit && (rc = db_step(st)) == DB_ROW) {
        struct tenant_anchor *t = &(*out)[(*n)++];
        rb_copy_col(st, 0, t->pubkey, sizeof(t->pubkey));
        t->has_anchor = !db_col_is_null(st, 1);
        t->anchor = db_col_int64(st, 1);
        t->due = db_col_int64(st, 2);
    }
    if (*n == limit)
        rc = DB_DONE;
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

int repo_billing_invoice_batch(struct db_conn *conn, const struct billing_cfg *cfg, int64_t now,
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
        if (rb_batch_over(conn, b, t0))
            break;
    }
    b->n_dms = b->n_created;
    b->more = fold_more || b->n_done == b->limit || b->n_done < n;
    free(t);
    return rc;
}
