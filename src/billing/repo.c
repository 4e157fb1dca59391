/* Billing's SQL after the invoice pass (PRODUCT.md §8): pending invoices and their schedule,
 * BOLT11s, payment attempts, paid invoices (receipt, reactivation) and dunning, with the DM
 * texts. Pool thread only, inside the caller's transaction (billing/repo.h). The invoice pass
 * is in repo_invoice_pass.c. */
#include "billing/repo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/calc.h"
#include "billing/repo_int.h"
#include "db/db.h"
#include "core/store.h"
#include "api/repo_invoice.h"
#include "robot/robot.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

/* ---- small helpers ---- */

void rb_copy_col(struct db_stmt *st, int col, char *out, size_t cap)
{
    const char *s = db_col_str(st, col);
    snprintf(out, cap, "%s", s ? s : "");
}

void repo_billing_date(int64_t t, char out[11])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 11, "%Y-%m-%d", &tm) == 0)
        strcpy(out, "?");
}

int rb_batch_over(struct db_conn *conn, const struct repo_batch *b, uint64_t t0)
{
    if (!b->budget_ms)
        return 0;
    if (db_clients_waiting(conn))
        return 1;
    uint64_t budget = b->budget_ms;
    if (b->busy_budget_ms && b->busy_budget_ms < budget && db_clients_writing(conn))
        budget = b->busy_budget_ms;
    return clock_mono_ms() - t0 >= budget;
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

int rb_queue_dm(struct db_conn *conn, const char *tenant, int64_t now, const char *fmt, ...)
{
    char text[RB_DM_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return robot_queue_dm_sql(conn, tenant, text, now);
}

/* ---- statements whose plan matters at scale (billing/repo_int.h) ---- */

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

/* ---- pending invoices ---- */

static void read_pending(struct db_stmt *st, struct repo_pending *p)
{
    memset(p, 0, sizeof(*p));
    rb_copy_col(st, 0, p->id, sizeof(p->id));
    rb_copy_col(st, 1, p->tenant, sizeof(p->tenant));
    p->amount = db_col_int64(st, 2);
    p->period_start = db_col_int64(st, 3);
    p->period_end = db_col_int64(st, 4);
    p->created_at = db_col_int64(st, 5);
    p->reminders = db_col_int64(st, 6);
    p->last_collect_at = db_col_int64(st, 7);
    p->nwc_url = db_col_text(st, 8);
    p->has_bolt11 = !db_col_is_null(st, 9);
    if (p->has_bolt11) {
        rb_copy_col(st, 9, p->bolt11_id, sizeof(p->bolt11_id));
        p->bolt11 = db_col_text(st, 10);
        rb_copy_col(st, 11, p->payment_hash, sizeof(p->payment_hash));
        p->bolt11_expires_at = db_col_int64(st, 12);
    }
    p->has_attempt = !db_col_is_null(st, 13);
    if (p->has_attempt)
        rb_copy_col(st, 13, p->attempt_id, sizeof(p->attempt_id));
    p->lookup_base = db_col_int64(st, 14);
    p->next_action_at = db_col_int64(st, 15);
    p->wallet_requests = db_col_int64(st, 16);
}

static int load_pending(struct db_stmt *st, size_t limit, struct repo_pending **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = DB_DONE;
    *out = xcalloc(limit ? limit : 1, sizeof(**out));
    while (*n < limit && (rc = db_step(st)) == DB_ROW)
        read_pending(st, &(*out)[(*n)++]);
    if (*n == limit)
        rc = DB_DONE;
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

int repo_billing_load_pending(struct db_conn *conn, const char *tenant, struct repo_pending **out,
                              size_t *n)
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st = db_query(conn, REPO_BILLING_TENANT_PENDING_SQL, DB_TEXT(tenant),
                                  DB_INT(REPO_BILLING_MAX_PENDING));
    return load_pending(st, REPO_BILLING_MAX_PENDING, out, n);
}

int repo_billing_load_due(struct db_conn *conn, int64_t now, const struct repo_cursor *after,
                          size_t limit, struct repo_pending **out, size_t *n)
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st = db_query(conn, REPO_BILLING_DUE_PENDING_SQL, DB_INT(now),
                                  DB_INT(after->at), DB_TEXT(after->id), DB_INT(limit));
    return load_pending(st, limit, out, n);
}

int repo_billing_schedule(struct db_conn *conn, const struct repo_schedule *s, size_t n)
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

int repo_billing_wake_attempts(struct db_conn *conn, int64_t now)
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

static int invoice_is_pending(struct db_conn *conn, const char *invoice)
{
    return db_exists(conn, "SELECT 1 FROM invoice WHERE id = ? AND status = 'pending'",
                     DB_TEXT(invoice));
}

int repo_billing_add_bolt11(struct db_conn *conn, const char *invoice, const char *bolt11,
                            const char *payment_hash, int64_t amount_msats, int64_t expires_at,
                            int64_t now, char id_out[65], int *created)
{
    ASSERT_POOL_THREAD();
    *created = 0;
    int rc = invoice_is_pending(conn, invoice);
    if (rc <= 0)
        return rc == 0 ? DB_ENOTFOUND : rc;
    struct db_stmt *st = db_query(conn,
                                  "SELECT id FROM bolt11 WHERE invoice = ? AND settled_at IS "
                                  "NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                                  DB_TEXT(invoice), DB_INT(now));
    if (!st)
        return DB_EGENERIC;
    rc = db_step(st);
    if (rc == DB_ROW)
        rb_copy_col(st, 0, id_out, 65);
    db_reset(st);
    if (rc != DB_DONE) /* a concurrent run stored one first: use it */
        return rc == DB_ROW ? 0 : db_status(rc);
    char id[33];
    repo_new_time_id(id, now);
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

int repo_billing_bolt11_expired(struct db_conn *conn, const char *bolt11_id, int64_t now)
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

int repo_billing_begin_attempt(struct db_conn *conn, const char *invoice, const char *bolt11_id,
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
    repo_new_time_id(id, now);
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

int repo_billing_attempt_failed(struct db_conn *conn, const char *attempt_id, const char *tenant,
                                const char *reason, int64_t now)
{
    ASSERT_POOL_THREAD();
    int rc = db_run(conn,
                    "UPDATE payment_attempt SET state = 'failed', error = ?, updated_at = ? "
                    "WHERE id = ? AND state = 'pending'",
                    DB_TEXT(reason), DB_INT(now), DB_TEXT(attempt_id));
    if (rc || db_changes(conn) == 0)
        return rc;
    if ((rc = db_run(conn, "UPDATE tenant SET nwc_error = ? WHERE pubkey = ?", DB_TEXT(reason),
                     DB_TEXT(tenant))))
        return rc;
    return rb_queue_dm(conn, tenant, now,
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

static int load_invoice(struct db_conn *conn, const char *invoice, struct inv_row *out)
{
    struct db_stmt *st = db_query(conn,
                                  "SELECT tenant, amount, period_start, period_end, "
                                  "wallet_requests FROM invoice WHERE id = ?",
                                  DB_TEXT(invoice));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        rb_copy_col(st, 0, out->tenant, sizeof(out->tenant));
        out->amount = db_col_int64(st, 1);
        out->start = db_col_int64(st, 2);
        out->end = db_col_int64(st, 3);
        out->requests = db_col_int64(st, 4);
    }
    db_reset(st);
    return rc == DB_ROW ? 0 : rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}

struct relay_ref {
    char id[65];
    char plan[BILLING_CALC_PLAN_MAX];
};

/* Relays of tenant with the given status, at most REPO_BILLING_MAX_RELAYS. */
static int list_relays(struct db_conn *conn, const char *tenant, const char *status,
                       struct relay_ref **out, size_t *n)
{
    struct db_stmt *st =
        db_query(conn,
                 "SELECT id, plan FROM relay WHERE tenant = ? AND status = ?"
                 " ORDER BY id LIMIT ?",
                 DB_TEXT(tenant), DB_TEXT(status), DB_INT(REPO_BILLING_MAX_RELAYS));
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        rb_copy_col(st, 0, (*out)[*n].id, sizeof((*out)[*n].id));
        rb_copy_col(st, 1, (*out)[*n].plan, sizeof((*out)[*n].plan));
        (*n)++;
    }
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

/* Moves one relay to status with its activity row and a zooid resync. */
static int set_relay_status(struct db_conn *conn, const char *tenant, const struct relay_ref *r,
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

static int reactivate_relays(struct db_conn *conn, const char *tenant,
                             const struct billing_cfg *cfg, int64_t now, struct repo_ids *changed)
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

static int settle_rows(struct db_conn *conn, const char *invoice, const char *bolt11_id,
                       int64_t now)
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

static int clear_nwc_error(struct db_conn *conn, const char *tenant)
{
    return db_run(conn, "UPDATE tenant SET nwc_error = NULL WHERE pubkey = ?", DB_TEXT(tenant));
}

int repo_billing_mark_paid(struct db_conn *conn, const char *invoice, const char *bolt11_id,
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
    int changed_now = db_changes(conn) > 0;
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
    rc = rb_queue_dm(conn, inv.tenant, now,
                     "Caravel: payment received, %lld sats for %s to %s. Thank you!",
                     (long long)inv.amount, d1, d2);
    return rc ? rc : reactivate_relays(conn, inv.tenant, cfg, now, changed);
}

int repo_billing_paid_by_hash(struct db_conn *conn, const char *payment_hash, int64_t amount_msats,
                              const struct billing_cfg *cfg, int64_t now, struct repo_ids *changed,
                              int *found, int64_t *requests)
{
    ASSERT_POOL_THREAD();
    char bolt11_id[65] = "", invoice[65] = "";
    int has_attempt = 0;
    *found = 0;
    struct db_stmt *st =
        db_query(conn, REPO_BILLING_BY_HASH_SQL, DB_TEXT(payment_hash), DB_INT(amount_msats));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        rb_copy_col(st, 0, bolt11_id, sizeof(bolt11_id));
        rb_copy_col(st, 1, invoice, sizeof(invoice));
        has_attempt = db_col_int(st, 2);
    }
    db_reset(st);
    if (rc != DB_ROW)
        return rc == DB_DONE ? 0 : db_status(rc);
    *found = 1;
    return repo_billing_mark_paid(conn, invoice, bolt11_id, has_attempt, cfg, now, changed,
                                  requests);
}

int repo_billing_send_bolt11(struct db_conn *conn, const struct repo_pending *p, int64_t now)
{
    ASSERT_POOL_THREAD();
    char d1[11], d2[11];
    repo_billing_date(p->period_start, d1);
    repo_billing_date(p->period_end, d2);
    int rc = rb_queue_dm(conn, p->tenant, now,
                         "Caravel invoice for %s to %s: %lld sats. Pay this Lightning invoice: %s",
                         d1, d2, (long long)p->amount, p->bolt11 ? p->bolt11 : "");
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

static int load_overdue(struct db_conn *conn, int64_t cutoff, const struct repo_cursor *after,
                        size_t limit, struct overdue **out, size_t *n)
{
    struct db_stmt *st = db_query(conn, REPO_BILLING_OVERDUE_SQL, DB_INT(cutoff), DB_INT(after->at),
                                  DB_TEXT(after->id), DB_INT(limit));
    *out = NULL;
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = DB_DONE;
    *out = xcalloc(limit ? limit : 1, sizeof(**out));
    while (*n < limit && (rc = db_step(st)) == DB_ROW) {
        struct overdue *o = &(*out)[(*n)++];
        rb_copy_col(st, 0, o->id, sizeof(o->id));
        rb_copy_col(st, 1, o->tenant, sizeof(o->tenant));
        o->amount = db_col_int64(st, 2);
        o->notified = db_col_int(st, 3);
        o->created_at = db_col_int64(st, 4);
    }
    if (*n == limit)
        rc = DB_DONE;
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

static int suspend_paid_relays(struct db_conn *conn, const char *tenant, int64_t now,
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

static int notify_overdue(struct db_conn *conn, const struct overdue *o, int64_t now)
{
    int rc = rb_queue_dm(conn, o->tenant, now,
                         "Caravel: your invoice of %lld sats is overdue, so your paid relays are "
                         "paused. They come back as soon as it is paid.",
                         (long long)o->amount);
    if (rc)
        return rc;
    return db_run(conn, "UPDATE invoice SET delinquent_notified = 1 WHERE id = ?", DB_TEXT(o->id));
}

int repo_billing_dunning_batch(struct db_conn *conn, const struct billing_cfg *cfg, int64_t now,
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
        if (rb_batch_over(conn, b, t0))
            break;
    }
    b->more = b->n_done == b->limit || b->n_done < n;
    free(o);
    return rc;
}
