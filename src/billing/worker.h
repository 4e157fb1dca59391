/* Billing jobs (PRODUCT.md §8). Loop thread only. NULL billing = no-op.
 *
 * billing_start: with NWC_URL unset, logs a warning naming NWC_URL and returns 0 with
 * *out = NULL (billing off). Otherwise app->db and app->pool must be running; it creates the
 * NWC client (owned by billing, also published as app->nwc until billing_stop) and runs at
 * once, then every BILLING_INTERVAL. Returns 0 or -1. Once the platform wallet's info
 * event is known to advertise payment_received notifications, it also listens for them
 * (kinds 23196/23197) and marks the matching invoice paid at once.
 * billing_stop: cancels the wallet request in flight (a pay_invoice in flight stays a
 * pending attempt, resolved by lookup_invoice after restart), waits for the database jobs in
 * flight (the run's and notifications'), frees, then calls cb (may be NULL). Call it
 * before db_close and relay_pool_free.
 *
 * Metrics (app->metrics, when METRICS_PORT is set), counters with a result label:
 *   caravel_billing_bolt11_total{result="issued"|"failed"|"expired"}   make_invoice outcomes
 *   caravel_billing_collect_total{result="paid"|"refused"|"unknown"|"invalid_nwc_url"}
 *                                                    pay_invoice on a tenant's wallet
 *   caravel_billing_lookup_total{result="settled"|"failed"}   lookup_invoice on a BOLT11
 *                                                    (settled: paid by DM or earlier attempt)
 *   caravel_billing_notification_total{result="paid"}  invoices paid by a payment_received
 *   caravel_billing_wallet_requests_total{method="make_invoice"|"lookup_invoice"|"pay_invoice"}
 *                                                    NIP-47 requests sent (platform and tenants)
 *   caravel_billing_settled_invoices_total{requests="1-2"|"3-5"|"6-10"|"11-30"|"31+"}
 *                                                    paid invoices by the wallet requests each took
 *   caravel_billing_runs_total                        billing runs completed
 *   caravel_billing_leader (gauge)                    1 while this instance holds the lease
 *
 * Several instances on one PostgreSQL database (db/lease.h): every instance with NWC_URL
 * starts billing, but only the holder of the "billing" lease runs; the others stand by and one
 * of them takes over (its first run looks up the attempts left open) when the holder dies
 * (BILLING_LEASE_TTL) or stops (it releases the lease). Every billing write checks the lease
 * in its own transaction (a stale leader's write fails with DB_ELEASE and it steps down), and
 * no wallet request leaves unless the lease is valid now on the process's monotonic clock. A
 * tenant's wallet set through a standby reaches the leader as a NOTIFY (channel billing_collect,
 * db/notify.h) and is collected there at once. On SQLite the process is always the leader.
 *
 * Wallet requests: an invoice is taken up only when it is due (invoice.next_action_at): a
 * new BOLT11 is collected without a lookup; lookup_invoice follows billing_next_lookup's
 * schedule (1 min, 5 min, 30 min, then hourly after the BOLT11 was handed out, and at its
 * expiry; only at expiry while the wallet pushes payment notifications and no payment attempt
 * is open), and a collection (at most every 24 h) looks up first. One run starts no new
 * invoice once it has sent BILLING_WALLET_REQUESTS requests, and works on at most
 * BILLING_CONCURRENCY invoices at once. On its first run a process looks up at once every
 * payment attempt a previous process left open. A stop (billing_stop) between two steps
 * loses nothing: each step is its own transaction, and the due times are the cursor.
 *
 * Test-only (never set in production): CARAVEL_TEST_CRASH_AT=before_attempt |
 * after_attempt | after_pay_sent | after_answer makes the process _exit(97) at that step
 * of a collection, so the integration tests can check money safety across kill -9;
 * CARAVEL_TEST_PAUSE_AT=before_attempt | after_attempt | after_answer stops it there once
 * (SIGSTOP) until the test sends SIGCONT: a leader stalled past its lease. */
#ifndef CARAVEL_BILLING_H
#define CARAVEL_BILLING_H

struct app;
struct billing;

int billing_start(struct billing **out, struct app *app);
/* The tenant set an NWC URL: try to collect its pending invoices now. */
void billing_collect_tenant(struct billing *billing, const char *tenant_pubkey);
void billing_stop(struct billing *billing, void (*cb)(void *arg), void *arg);

#endif
