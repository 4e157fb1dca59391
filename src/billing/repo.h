/* Billing SQL (PRODUCT.md §8). Pool thread only; functions that write run inside the caller's
 * db_write transaction. Returns are 0 or a db_error code unless stated. */
#ifndef CARAVEL_REPO_BILLING_H
#define CARAVEL_REPO_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define REPO_BILLING_MAX_TENANTS 10000 /* per run; the rest waits for the next run */
#define REPO_BILLING_MAX_ROWS 200000   /* activity rows replayed per tenant */
#define REPO_BILLING_MAX_PENDING 1000  /* pending invoices handled per run */
#define REPO_BILLING_MAX_RELAYS 1000   /* relays changed per tenant by dunning */

struct billing_cfg {
    int64_t period; /* BILLING_PERIOD, 0 = calendar month */
    int64_t grace;  /* BILLING_GRACE */
};

/* Ids of relays whose row changed (kick infra after commit). Owned: free with
 * repo_billing_ids_free. */
struct repo_ids {
    char (*ids)[65];
    size_t n;
};
void repo_billing_ids_free(struct repo_ids *ids);

/* Invoice pass for every tenant that has relays: sets billing anchors, and writes invoice +
 * items, activity create_invoice and a DM for every ended period without an invoice (a
 * conflicting concurrent insert makes it a no-op). n_created and n_dms count what was done. */
int repo_billing_invoice_pass(sqlite3 *conn, const struct billing_cfg *cfg, int64_t now,
                              size_t *n_created, size_t *n_dms);

/* A pending invoice with its current BOLT11 (the one a pending attempt names, else the
 * newest unsettled one) and the tenant's NWC URL (secret: never log it). */
struct repo_pending {
    char id[65], tenant[65];
    int64_t amount, period_start, period_end, created_at, reminders, last_collect_at;
    char *nwc_url; /* owned or NULL */
    int has_bolt11;
    char bolt11_id[65], payment_hash[65];
    char *bolt11; /* owned or NULL */
    int64_t bolt11_expires_at;
    int has_attempt; /* a pending payment attempt exists on this BOLT11 */
    char attempt_id[65];
};
/* Pending invoices, oldest first, at most REPO_BILLING_MAX_PENDING; tenant NULL = all.
 * *out is malloc'd: free with repo_billing_pending_free. */
int repo_billing_load_pending(sqlite3 *conn, const char *tenant, struct repo_pending **out,
                              size_t *n);
void repo_billing_pending_free(struct repo_pending *p, size_t n);

/* Stores a BOLT11 for a pending invoice unless another unsettled, unexpired one exists
 * (then *id_out is that one's id and *created 0). */
int repo_billing_add_bolt11(sqlite3 *conn, const char *invoice, const char *bolt11,
                            const char *payment_hash, int64_t amount_msats, int64_t expires_at,
                            int64_t now, char id_out[65], int *created);

/* The BOLT11 expired unsettled: its pending attempts become failed. */
int repo_billing_bolt11_expired(sqlite3 *conn, const char *bolt11_id, int64_t now);

/* Commits a pending payment attempt on bolt11_id before pay_invoice is sent. Refused
 * (DB_ECONSTRAINT) when the invoice is not pending, or any attempt of this invoice is pending
 * or paid: an invoice is paid at most once. Sets the invoice's last_collect_at. */
int repo_billing_begin_attempt(sqlite3 *conn, const char *invoice, const char *bolt11_id,
                               int64_t now, char attempt_id_out[65]);
/* The wallet refused: attempt failed, tenant nwc_error = reason, DM. */
int repo_billing_attempt_failed(sqlite3 *conn, const char *attempt_id, const char *tenant,
                                const char *reason, int64_t now);

/* Settled: invoice paid (if still pending), BOLT11 settled, pending attempts on it paid
 * (clear_nwc_error: also tenant nwc_error = NULL), activity mark_invoice_paid, receipt DM;
 * when no other overdue invoice of the tenant is pending, its delinquent relays become
 * active (activity activate_relay, mark dirty; ids in *changed). */
int repo_billing_mark_paid(sqlite3 *conn, const char *invoice, const char *bolt11_id,
                           int clear_nwc_error, const struct billing_cfg *cfg, int64_t now,
                           struct repo_ids *changed);

/* The platform wallet notified payment_received for payment_hash (amount_msats received):
 * when that hash belongs to an unsettled BOLT11 of a pending invoice and the amount covers
 * it, repo_billing_mark_paid (clearing nwc_error when an attempt was pending on it) and
 * *found = 1; else nothing and *found = 0. */
int repo_billing_paid_by_hash(sqlite3 *conn, const char *payment_hash, int64_t amount_msats,
                              const struct billing_cfg *cfg, int64_t now,
                              struct repo_ids *changed, int *found);

/* No NWC URL: DM the BOLT11 (reminders + 1, last_collect_at = now). */
int repo_billing_send_bolt11(sqlite3 *conn, const struct repo_pending *p, int64_t now);

/* Dunning: for tenants with a pending invoice created more than grace ago, active relays on
 * paid plans become delinquent (activity, mark dirty; ids appended to *changed) and the
 * tenant gets one DM per overdue invoice. */
int repo_billing_dunning(sqlite3 *conn, const struct billing_cfg *cfg, int64_t now,
                         struct repo_ids *changed, size_t *n_dms);

/* "YYYY-MM-DD" (UTC) of t into out (>= 11 bytes). */
void repo_billing_date(int64_t t, char out[11]);

#endif
