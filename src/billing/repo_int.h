/* Private to src/billing's SQL: the statements whose query plan matters at scale and the
 * helpers shared by repo.c (pending invoices, BOLT11s, payment attempts, paid, dunning) and
 * repo_invoice_pass.c (the invoice pass). Pool thread only, inside the caller's transaction.
 * Not a public interface. */
#ifndef CARAVEL_BILLING_REPO_INT_H
#define CARAVEL_BILLING_REPO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

#define RB_DM_MAX 2048 /* a DM's text */

/* Column col as text into out (cap bytes; "" for NULL). */
void rb_copy_col(struct db_stmt *st, int col, char *out, size_t cap);
/* Whether a batch that started at t0 (clock_mono_ms) ends after the item it just did: its
 * budget is used up (busy_budget_ms while clients are writing: db_clients_writing), or clients'
 * writes wait for the writer (db_clients_waiting). Never without a budget (budget_ms 0: a
 * test's whole pass in one batch). */
struct repo_batch;
int rb_batch_over(struct db_conn *conn, const struct repo_batch *b, uint64_t t0);
/* Queues a robot DM to tenant with the formatted text (capped at RB_DM_MAX). */
int rb_queue_dm(struct db_conn *conn, const char *tenant, int64_t now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- statements whose plan matters at scale ---- */

/* Columns of a pending invoice with its current BOLT11 (read_pending). INDEXED BY: without
 * statistics the planner preferred an index on status alone (dropped by migration 0013) and
 * sorted every pending invoice; the hint keeps the plan whatever indexes come later. */
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

#endif
