/* Billing SQL (PRODUCT.md §8). Pool thread only; functions that write run inside the caller's
 * db_write transaction. Returns are 0 or a db_error code unless stated. */
#ifndef CARAVEL_REPO_BILLING_H
#define CARAVEL_REPO_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

#define REPO_BILLING_MAX_ROWS 200000  /* activity rows replayed per tenant */
#define REPO_BILLING_MAX_PENDING 1000 /* pending invoices of one tenant loaded at once */
#define REPO_BILLING_MAX_RELAYS 1000  /* relays changed per tenant and dunning batch */
#define REPO_BILLING_MAX_BATCH 10000  /* largest batch.limit */

struct billing_cfg {
    int64_t period; /* BILLING_PERIOD, 0 = calendar month */
    int64_t grace;  /* BILLING_GRACE */
};

/* Ids of relays whose row changed (resync after commit). Owned: free with
 * repo_billing_ids_free. */
struct repo_ids {
    char (*ids)[65];
    size_t n;
};
void repo_billing_ids_free(struct repo_ids *ids);

/* One bounded batch of a pass. The caller sets limit (1..REPO_BILLING_MAX_BATCH), budget_ms
 * (0 = none: the batch stops after the item that used it up) and busy_budget_ms (0 = none);
 * the batch sets the rest. A pass is batches until more is 0, each its own transaction. */
struct repo_batch {
    size_t limit;
    uint64_t budget_ms;
    uint64_t busy_budget_ms; /* instead, while clients write (db_clients_writing), if lower */
    size_t n_done;           /* tenants / invoices handled */
    size_t n_created;        /* invoices written */
    size_t n_dms;            /* DMs queued */
    int more;                /* another batch may have work */
};

/* Keyset position in a list ordered by (at, id): the last row handled; {INT64_MIN, ""}
 * starts from the beginning. */
struct repo_cursor {
    int64_t at;
    char id[65];
};

/* One batch of the invoice pass. First folds relay activity written since the last batch
 * (a durable position in billing_cursor 'activity') into tenant.billing_due_at, so a tenant
 * whose relays changed is due now. Then, for up to limit tenants due at now (billing_due_at
 * <= now; a tenant whose current period ends later costs nothing): sets its billing anchor,
 * writes invoice + items, activity create_invoice and a DM for every ended period without an
 * invoice (a conflicting concurrent insert makes it a no-op), and stores its next due time
 * (the end of its current period, NULL when no paid relay is active). The due times are the
 * pass's durable cursor: a stop between batches loses nothing. */
int repo_billing_invoice_batch(struct db_conn *conn, const struct billing_cfg *cfg, int64_t now,
                               struct repo_batch *b);

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
    int64_t lookup_base;     /* start of the BOLT11's lookup schedule */
    int64_t next_action_at;  /* when the worker is due to act on the invoice */
    int64_t wallet_requests; /* platform and tenant wallet requests spent on it so far */
};
/* The tenant's pending invoices, oldest first, at most REPO_BILLING_MAX_PENDING. *out is
 * malloc'd: free with repo_billing_pending_free. */
int repo_billing_load_pending(struct db_conn *conn, const char *tenant, struct repo_pending **out,
                              size_t *n);
/* Up to limit pending invoices due at now (next_action_at <= now) after the cursor, in
 * (next_action_at, id) order. */
int repo_billing_load_due(struct db_conn *conn, int64_t now, const struct repo_cursor *after,
                          size_t limit, struct repo_pending **out, size_t *n);
void repo_billing_pending_free(struct repo_pending *p, size_t n);

/* What the worker did with an invoice: when to act on it next, and the wallet requests it
 * spent (added to invoice.wallet_requests). */
struct repo_schedule {
    char id[65];
    int64_t next_action_at;
    int64_t wallet_requests;
};
int repo_billing_schedule(struct db_conn *conn, const struct repo_schedule *s, size_t n);
/* Start-up: invoices with a pending payment attempt (an outcome a previous process did not
 * learn) are due now, so lookup_invoice resolves them at once. */
int repo_billing_wake_attempts(struct db_conn *conn, int64_t now);

/* Stores a BOLT11 for a pending invoice unless another unsettled, unexpired one exists
 * (then *id_out is that one's id and *created 0). */
int repo_billing_add_bolt11(struct db_conn *conn, const char *invoice, const char *bolt11,
                            const char *payment_hash, int64_t amount_msats, int64_t expires_at,
                            int64_t now, char id_out[65], int *created);

/* The BOLT11 expired unsettled: its pending attempts become failed. */
int repo_billing_bolt11_expired(struct db_conn *conn, const char *bolt11_id, int64_t now);

/* Commits a pending payment attempt on bolt11_id before pay_invoice is sent. Refused
 * (DB_ECONSTRAINT) when the invoice is not pending, or any attempt of this invoice is pending
 * or paid: an invoice is paid at most once. Sets the invoice's last_collect_at and restarts
 * the BOLT11's lookup schedule (lookup_base = now). */
int repo_billing_begin_attempt(struct db_conn *conn, const char *invoice, const char *bolt11_id,
                               int64_t now, char attempt_id_out[65]);
/* The wallet refused: attempt failed, tenant nwc_error = reason, DM. */
int repo_billing_attempt_failed(struct db_conn *conn, const char *attempt_id, const char *tenant,
                                const char *reason, int64_t now);

/* Settled: invoice paid (if still pending), BOLT11 settled, pending attempts on it paid
 * (clear_nwc_error: also tenant nwc_error = NULL), activity mark_invoice_paid, receipt DM;
 * when no other overdue invoice of the tenant is pending, its delinquent relays become
 * active (activity activate_relay, mark dirty; ids in *changed). *requests (may be NULL):
 * the invoice's recorded wallet_requests. */
int repo_billing_mark_paid(struct db_conn *conn, const char *invoice, const char *bolt11_id,
                           int clear_nwc_error, const struct billing_cfg *cfg, int64_t now,
                           struct repo_ids *changed, int64_t *requests);

/* The platform wallet notified payment_received for payment_hash (amount_msats received):
 * when that hash belongs to an unsettled BOLT11 of a pending invoice and the amount covers
 * it, repo_billing_mark_paid (clearing nwc_error when an attempt was pending on it) and
 * *found = 1 (and *requests, may be NULL, as repo_billing_mark_paid); else nothing and
 * *found = 0. */
int repo_billing_paid_by_hash(struct db_conn *conn, const char *payment_hash, int64_t amount_msats,
                              const struct billing_cfg *cfg, int64_t now, struct repo_ids *changed,
                              int *found, int64_t *requests);

/* No NWC URL: DM the BOLT11 (reminders + 1, last_collect_at = now, and the BOLT11's lookup
 * schedule restarts: lookup_base = now). */
int repo_billing_send_bolt11(struct db_conn *conn, const struct repo_pending *p, int64_t now);

/* One batch of dunning: for up to limit pending invoices created more than grace ago, after
 * *cursor in (created_at, id) order, the tenant's active relays on paid plans become
 * delinquent (activity, mark dirty; ids appended to *changed) and the tenant gets one DM per
 * overdue invoice. *cursor moves to the last invoice handled. */
int repo_billing_dunning_batch(struct db_conn *conn, const struct billing_cfg *cfg, int64_t now,
                               struct repo_cursor *cursor, struct repo_batch *b,
                               struct repo_ids *changed);

/* The statements whose query plan matters at scale (the query-plan unit test). */
struct repo_billing_stmt {
    const char *name, *sql;
};
extern const struct repo_billing_stmt repo_billing_stmts[];
extern const size_t repo_billing_n_stmts;

/* "YYYY-MM-DD" (UTC) of t into out (>= 11 bytes). */
void repo_billing_date(int64_t t, char out[11]);

#endif
