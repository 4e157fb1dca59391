/* Billing worker (PRODUCT.md §8): one run at a time, each run a chain of steps on the loop thread:
 *   invoice pass (db write) -> load pending invoices (db read) -> per invoice:
 *   [make_invoice -> store BOLT11] -> lookup_invoice -> settled? paid : collect
 *   -> dunning (db write) -> next run after BILLING_INTERVAL.
 * Every money step is committed before the wallet is asked (see "collect" below). */
#include "billing/worker.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/app.h"
#include "db/db.h"
#include "billing/repo.h"
#include "metrics/metrics.h"
#include "nostr/hex.h"
#include "billing/nwc.h"
#include "robot/robot.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

#define COLLECT_EVERY_S 86400     /* at most one collection per invoice per 24 h */
#define BOLT11_EXPIRY_S 86400     /* make_invoice expiry */
#define MAX_BOLT11_DMS 4          /* the BOLT11 DM + at most 3 reminders */
#define MAX_FORCED 64

struct billing {
    struct app *app;
    uv_timer_t timer;
    struct nwc *nwc; /* owned (also published as app->nwc) */
    struct billing_cfg cfg;
    int64_t interval_s;
    int running, rerun, stopping, nwc_gone;
    int watching;        /* subscribed to the platform wallet's notifications */
    size_t n_side_jobs;  /* notification jobs in the database queue */
    char forced[MAX_FORCED][65]; /* tenants to collect now, ignoring the 24 h rule */
    size_t n_forced;
    char run_forced[MAX_FORCED][65]; /* the forced set of the current run */
    size_t n_run_forced;
    struct repo_pending *pend; /* current run's pending invoices */
    size_t n_pend, idx;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

/* One database job; fields are used by the step that queued it. */
struct job {
    struct billing *b;
    struct repo_pending *p; /* borrowed: b->pend[idx] */
    int64_t now;
    int created;
    char id[65];
    char *bolt11, *hash, *reason; /* owned */
    int64_t expires_at;
    int clear_error, found;
    int64_t amount_msats;
    struct repo_ids changed;
    size_t n_created, n_dms;
};

static void run_start(struct billing *b);
static void next_invoice(struct billing *b);
static void step_lookup(struct billing *b);
static void step_make_invoice(struct billing *b);

/* Test-only kill points (documented in billing/worker.h): CARAVEL_TEST_CRASH_AT=name. */
static void crash_point(const char *name)
{
    const char *at = getenv("CARAVEL_TEST_CRASH_AT");
    if (at && strcmp(at, name) == 0) {
        LOG_WARN("CARAVEL_TEST_CRASH_AT=%s: exiting now (test only)", name);
        _exit(97);
    }
}

/* The wallet client is gone once billing_stop ran: no new requests. */
/* Prometheus counters (metrics.h; a no-op when METRICS_PORT is off). result: a literal. */
#define BILLING_COUNT(b, name, result) \
    metrics_inc((b)->app->metrics, "caravel_billing_" name "_total", "result=\"" result "\"")

static int wallet_usable(const struct billing *b)
{
    return !b->stopping && !b->nwc_gone;
}

static struct job *job_new(struct billing *b)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->now = clock_now();
    if (b->idx < b->n_pend)
        j->p = &b->pend[b->idx];
    return j;
}

static void job_free(struct job *j)
{
    free(j->bolt11);
    free(j->hash);
    free(j->reason);
    repo_billing_ids_free(&j->changed);
    free(j);
}

/* After a commit: resync changed relays, deliver queued DMs. */
static void after_commit(struct billing *b, struct job *j, int queued_dm)
{
    for (size_t i = 0; i < j->changed.n; i++)
        app_emit(b->app, APP_RELAY_CHANGED, j->changed.ids[i]);
    if (queued_dm || j->changed.n)
        robot_kick(b->app->robot);
}

static void submit(struct billing *b, int write, db_work_fn *work, db_done_cb *done,
                   struct job *j)
{
    /* Money: invoices and payment attempts must survive a power loss, not only a crash. */
    int rc = write ? db_write(b->app->db, DB_POWER_SAFE, work, done, j)
                   : db_read(b->app->db, work, done, j);
    if (rc < 0) {
        LOG_WARN("billing: database refused a job (%d)", rc);
        done(rc, j);
    }
}

/* ---- end of run, stop ---- */

static void on_timer_closed(uv_handle_t *h)
{
    struct billing *b = container_of((uv_timer_t *)h, struct billing, timer);
    void (*cb)(void *) = b->stop_cb;
    void *arg = b->stop_arg;
    free(b);
    if (cb)
        cb(arg);
}

static void maybe_finalize(struct billing *b)
{
    if (b->stopping && b->nwc_gone && !b->running && !b->n_side_jobs)
        uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}

static void on_interval(uv_timer_t *t)
{
    run_start(container_of(t, struct billing, timer));
}

static void run_end(struct billing *b)
{
    repo_billing_pending_free(b->pend, b->n_pend);
    b->pend = NULL;
    b->n_pend = b->idx = 0;
    b->running = 0;
    if (b->stopping) {
        maybe_finalize(b);
        return;
    }
    if (b->rerun) {
        b->rerun = 0;
        uv_timer_start(&b->timer, on_interval, 0, 0);
        return;
    }
    uv_timer_start(&b->timer, on_interval, (uint64_t)b->interval_s * 1000, 0);
}

/* ---- dunning ---- */

static int work_dunning(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_dunning(conn, &j->b->cfg, j->now, &j->changed, &j->n_dms);
}

static void on_dunning(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status == 0) {
        if (j->changed.n || j->n_dms)
            LOG_INFO("billing: dunning: %zu relay(s) delinquent, %zu DM(s)", j->changed.n,
                     j->n_dms);
        after_commit(b, j, j->n_dms > 0);
    } else {
        LOG_WARN("billing: dunning failed (%d)", status);
    }
    job_free(j);
    run_end(b);
}

/* ---- payment_received notifications (PRODUCT.md §8: marks the invoice paid at once) ---- */

static int work_paid_by_hash(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_paid_by_hash(conn, j->hash, j->amount_msats, &j->b->cfg, j->now,
                                     &j->changed, &j->found);
}

static void on_paid_by_hash(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status != 0)
        LOG_WARN("billing: recording a payment_received notification failed (%d); "
                 "lookup_invoice catches it next run", status);
    else if (j->found) {
        BILLING_COUNT(b, "notification", "paid");
        after_commit(b, j, 1);
    }
    job_free(j);
    b->n_side_jobs--;
    maybe_finalize(b);
}

static void on_notify(const struct nwc_notification *n, void *arg)
{
    struct billing *b = arg;
    const char *hash = nwc_tx_string(n->tx, "payment_hash");
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive(n->tx, "amount");
    if (b->stopping || strcmp(n->type, "payment_received") != 0 || !hash ||
        !hex_is_lower64(hash) || !cJSON_IsNumber(amount) || !nwc_tx_is_settled(n->tx))
        return;
    LOG_INFO("billing: payment_received notification from the platform wallet");
    struct job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->now = clock_now();
    j->hash = xstrdup(hash);
    j->amount_msats = (int64_t)amount->valuedouble;
    b->n_side_jobs++;
    submit(b, 1, work_paid_by_hash, on_paid_by_hash, j);
}

/* Once the platform wallet's info event is known to advertise payment_received. */
static void maybe_watch(struct billing *b)
{
    struct nwc_info info;
    if (b->watching || !wallet_usable(b) ||
        nwc_cached_info(b->nwc, b->app->cfg.nwc_url, &info) < 0 || !info.notifications)
        return;
    int rc = nwc_watch(b->nwc, b->app->cfg.nwc_url, on_notify, b);
    b->watching = rc == 0;
    if (rc == 0)
        LOG_INFO("billing: listening for the platform wallet's payment notifications");
    else
        LOG_WARN("billing: cannot subscribe to wallet notifications (%d)", rc);
}

/* ---- per-invoice chain ---- */

static int is_forced(const struct billing *b, const char *tenant)
{
    for (size_t i = 0; i < b->n_run_forced; i++)
        if (strcmp(b->run_forced[i], tenant) == 0)
            return 1;
    return 0;
}

static void process_current(struct billing *b)
{
    if (b->stopping) {
        run_end(b);
        return;
    }
    if (b->idx >= b->n_pend) {
        submit(b, 1, work_dunning, on_dunning, job_new(b));
        return;
    }
    if (!b->pend[b->idx].has_bolt11)
        step_make_invoice(b);
    else
        step_lookup(b);
}

static void next_invoice(struct billing *b)
{
    b->idx++;
    process_current(b);
}

/* ---- make_invoice: a BOLT11 for the invoice ---- */

static int work_add_bolt11(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_add_bolt11(conn, j->p->id, j->bolt11, j->hash, j->p->amount * 1000,
                                   j->expires_at, j->now, j->id, &j->created);
}

static void on_bolt11_stored(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    struct repo_pending *p = j->p;
    if (status != 0 || !j->created) {
        /* Failed, or a concurrent run stored another one: pick it up next run. */
        if (status)
            LOG_WARN("billing: invoice %s: storing the BOLT11 failed (%d)", p->id, status);
        job_free(j);
        next_invoice(b);
        return;
    }
    p->has_bolt11 = 1;
    snprintf(p->bolt11_id, sizeof(p->bolt11_id), "%s", j->id);
    snprintf(p->payment_hash, sizeof(p->payment_hash), "%s", j->hash);
    free(p->bolt11);
    p->bolt11 = j->bolt11;
    j->bolt11 = NULL;
    p->bolt11_expires_at = j->expires_at;
    p->has_attempt = 0;
    LOG_INFO("billing: invoice %s: BOLT11 issued", p->id);
    BILLING_COUNT(b, "bolt11", "issued");
    job_free(j);
    step_lookup(b);
}

static void on_made(int status, const struct nwc_response *resp, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    maybe_watch(b);
    const char *inv = status == 0 ? nwc_tx_string(resp->result, "invoice") : NULL;
    const char *hash = status == 0 ? nwc_tx_string(resp->result, "payment_hash") : NULL;
    if (!inv || !hash || !hex_is_lower64(hash) || strlen(inv) > 4096) {
        LOG_WARN("billing: make_invoice for %s failed: %d %s", j->p->id, status,
                 status == NWC_EWALLET ? resp->error_code : "");
        BILLING_COUNT(b, "bolt11", "failed");
        job_free(j);
        next_invoice(b);
        return;
    }
    j->bolt11 = xstrdup(inv);
    j->hash = xstrdup(hash);
    /* Our clock decides expiry (it is the one tests can move). */
    j->expires_at = clock_now() + BOLT11_EXPIRY_S;
    submit(b, 1, work_add_bolt11, on_bolt11_stored, j);
}

static void step_make_invoice(struct billing *b)
{
    if (!wallet_usable(b)) {
        next_invoice(b);
        return;
    }
    struct job *j = job_new(b);
    char desc[128], d1[11], d2[11];
    repo_billing_date(j->p->period_start, d1);
    repo_billing_date(j->p->period_end, d2);
    snprintf(desc, sizeof(desc), "Caravel relay hosting %s to %s", d1, d2);
    int rc = nwc_make_invoice(b->nwc, b->app->cfg.nwc_url, j->p->amount * 1000, desc,
                              BOLT11_EXPIRY_S, on_made, j);
    if (rc < 0) {
        LOG_WARN("billing: make_invoice not sent (%d)", rc);
        job_free(j);
        next_invoice(b);
    }
}

/* ---- settled: invoice paid ---- */

static int work_mark_paid(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_mark_paid(conn, j->p->id, j->p->bolt11_id, j->clear_error, &j->b->cfg,
                                  j->now, &j->changed);
}

static void on_marked_paid(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status == 0)
        after_commit(b, j, 1);
    else
        LOG_ERROR("billing: invoice %s: recording the payment failed (%d); the next run "
                  "retries from lookup_invoice", j->p->id, status);
    job_free(j);
    next_invoice(b);
}

static void mark_paid(struct billing *b, int clear_error)
{
    struct job *j = job_new(b);
    j->clear_error = clear_error;
    submit(b, 1, work_mark_paid, on_marked_paid, j);
}

/* ---- expired unsettled BOLT11: attempts fail, a new BOLT11 replaces it ---- */

static int work_expired(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_bolt11_expired(conn, j->p->bolt11_id, j->now);
}

static void on_expired(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    job_free(j);
    if (status != 0) {
        next_invoice(b);
        return;
    }
    BILLING_COUNT(b, "bolt11", "expired");
    b->pend[b->idx].has_bolt11 = 0;
    b->pend[b->idx].has_attempt = 0;
    step_make_invoice(b);
}

/* ---- collection (PRODUCT.md §8 steps 2 and 3) ---- */

static int work_send_bolt11(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_send_bolt11(conn, j->p, j->now);
}

static void on_simple_commit(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status == 0)
        after_commit(b, j, 1);
    job_free(j);
    next_invoice(b);
}

static int work_attempt_failed(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_attempt_failed(conn, j->id, j->p->tenant, j->reason, j->now);
}

/* 1 when preimage (hex) hashes to payment_hash, or no preimage was given. */
static int preimage_matches(const char *preimage, const char *payment_hash)
{
    uint8_t pre[32], h[32];
    char hx[65];
    if (!preimage || !*preimage)
        return 1;
    if (strlen(preimage) != 64 || hex_decode(preimage, 64, pre, 32) < 0)
        return 0;
    nostr_sha256(pre, 32, h);
    hex_encode(h, 32, hx);
    return strcmp(hx, payment_hash) == 0;
}

static void on_pay_answer(int status, const struct nwc_response *resp, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    crash_point("after_answer");
    if (status == 0 &&
        preimage_matches(nwc_tx_string(resp->result, "preimage"), j->p->payment_hash)) {
        LOG_INFO("billing: invoice %s paid through the tenant's wallet", j->p->id);
        BILLING_COUNT(b, "collect", "paid");
        job_free(j);
        mark_paid(b, 1);
        return;
    }
    if (status == NWC_EWALLET) {
        char reason[NWC_ERR_CODE_MAX + NWC_ERR_MSG_MAX + 4];
        snprintf(reason, sizeof(reason), "%s%s%s", resp->error_code,
                 resp->error_message[0] ? ": " : "", resp->error_message);
        LOG_INFO("billing: invoice %s: tenant wallet refused: %s", j->p->id, resp->error_code);
        BILLING_COUNT(b, "collect", "refused");
        j->reason = xstrdup(reason);
        submit(b, 1, work_attempt_failed, on_simple_commit, j);
        return;
    }
    /* No (valid) answer: the wallet may have paid. The attempt stays pending and only
     * lookup_invoice resolves it; nothing is paid again. */
    LOG_WARN("billing: invoice %s: pay_invoice outcome unknown (%d); left pending", j->p->id,
             status);
    BILLING_COUNT(b, "collect", "unknown");
    job_free(j);
    next_invoice(b);
}

static int work_begin_attempt(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_begin_attempt(conn, j->p->id, j->p->bolt11_id, j->now, j->id);
}

static void on_attempt_committed(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status != 0) {
        if (status != DB_ECONSTRAINT)
            LOG_WARN("billing: invoice %s: attempt not recorded (%d)", j->p->id, status);
        job_free(j);
        next_invoice(b);
        return;
    }
    crash_point("after_attempt");
    if (!wallet_usable(b)) {
        /* Committed but never sent: stays pending until its BOLT11 expires (safe). */
        job_free(j);
        next_invoice(b);
        return;
    }
    int rc = nwc_pay_invoice(b->nwc, j->p->nwc_url, j->p->bolt11, on_pay_answer, j);
    if (rc == NWC_EURI) {
        /* Never sent: failing the attempt is safe. */
        j->reason = xstrdup("invalid NWC URL");
        BILLING_COUNT(b, "collect", "invalid_nwc_url");
        submit(b, 1, work_attempt_failed, on_simple_commit, j);
    } else if (rc < 0) {
        LOG_WARN("billing: invoice %s: pay_invoice not sent (%d); left pending", j->p->id, rc);
        job_free(j);
        next_invoice(b);
    }
}

static void step_collect(struct billing *b)
{
    struct repo_pending *p = &b->pend[b->idx];
    int64_t now = clock_now();
    int due = is_forced(b, p->tenant) || p->last_collect_at < 0 ||
              now - p->last_collect_at >= COLLECT_EVERY_S;
    if (!due || p->has_attempt || !p->bolt11) {
        next_invoice(b);
        return;
    }
    if (p->nwc_url && *p->nwc_url) {
        crash_point("before_attempt");
        submit(b, 1, work_begin_attempt, on_attempt_committed, job_new(b));
    } else if (p->reminders < MAX_BOLT11_DMS) {
        submit(b, 1, work_send_bolt11, on_simple_commit, job_new(b));
    } else {
        next_invoice(b);
    }
}

/* ---- lookup_invoice (PRODUCT.md §8 step 1) ---- */

static void on_looked_up(int status, const struct nwc_response *resp, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    struct repo_pending *p = j->p;
    maybe_watch(b);
    if (status != 0) {
        /* Unknown state: never collect blind. */
        LOG_WARN("billing: lookup_invoice for %s failed: %d %s", p->id, status,
                 status == NWC_EWALLET ? resp->error_code : "");
        BILLING_COUNT(b, "lookup", "failed");
        job_free(j);
        next_invoice(b);
        return;
    }
    const char *state = nwc_tx_string(resp->result, "state");
    int settled = nwc_tx_is_settled(resp->result);
    int expired = !settled && ((state && strcmp(state, "expired") == 0) ||
                               clock_now() >= p->bolt11_expires_at);
    job_free(j);
    if (settled) {
        BILLING_COUNT(b, "lookup", "settled");
        mark_paid(b, p->has_attempt);
    } else if (expired) {
        LOG_INFO("billing: invoice %s: BOLT11 expired unsettled, replacing it", p->id);
        submit(b, 1, work_expired, on_expired, job_new(b));
    } else {
        step_collect(b);
    }
}

static void step_lookup(struct billing *b)
{
    if (!wallet_usable(b)) {
        next_invoice(b);
        return;
    }
    struct job *j = job_new(b);
    int rc = nwc_lookup_invoice(b->nwc, b->app->cfg.nwc_url, j->p->payment_hash, on_looked_up,
                                j);
    if (rc < 0) {
        job_free(j);
        next_invoice(b);
    }
}

/* ---- run start ---- */

static int work_load_pending(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    return repo_billing_load_pending(conn, NULL, &b->pend, &b->n_pend);
}

static void on_pending_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    job_free(j);
    if (status != 0) {
        LOG_WARN("billing: loading pending invoices failed (%d)", status);
        repo_billing_pending_free(b->pend, b->n_pend);
        b->pend = NULL;
        b->n_pend = 0;
    }
    b->idx = 0;
    process_current(b);
}

static int work_invoice_pass(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_invoice_pass(conn, &j->b->cfg, j->now, &j->n_created, &j->n_dms);
}

static void on_invoice_pass(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status == 0 && j->n_created) {
        LOG_INFO("billing: %zu invoice(s) created", j->n_created);
        after_commit(b, j, 1);
    } else if (status != 0) {
        LOG_WARN("billing: invoice pass failed (%d)", status);
    }
    job_free(j);
    if (b->stopping) {
        run_end(b);
        return;
    }
    submit(b, 0, work_load_pending, on_pending_loaded, job_new(b));
}

static void run_start(struct billing *b)
{
    if (b->running || b->stopping)
        return;
    b->running = 1;
    memcpy(b->run_forced, b->forced, sizeof(b->forced));
    b->n_run_forced = b->n_forced;
    b->n_forced = 0;
    submit(b, 1, work_invoice_pass, on_invoice_pass, job_new(b));
}

/* ---- public ---- */

/* APP_TENANT_BILLING_CHANGED: the tenant set or cleared its wallet. */
static void on_billing_changed(void *owner, const char *tenant)
{
    billing_collect_tenant(owner, tenant);
}

int billing_start(struct billing **out, struct app *app)
{
    *out = NULL;
    if (!app->cfg.nwc_url) {
        LOG_WARN("billing disabled: set NWC_URL (the platform wallet's NIP-47 URI) to issue "
                 "and collect invoices");
        return 0;
    }
    if (!app->pool || !app->db) {
        LOG_ERROR("billing: the relay pool and the database must be started first");
        return -1;
    }
    struct billing *b = xcalloc(1, sizeof(*b));
    b->app = app;
    b->cfg.period = app->cfg.billing_period;
    b->cfg.grace = app->cfg.billing_grace;
    b->interval_s = app->cfg.billing_interval > 0 ? app->cfg.billing_interval : 3600;
    nwc_new(&b->nwc, app->loop, app->pool);
    app->nwc = b->nwc;
    uv_timer_init(app->loop, &b->timer);
    app_on(app, APP_TENANT_BILLING_CHANGED, on_billing_changed, b);
    uv_timer_start(&b->timer, on_interval, 0, 0);
    LOG_INFO("billing: every %llds, period %s, grace %llds", (long long)b->interval_s,
             b->cfg.period ? "fixed" : "calendar month", (long long)b->cfg.grace);
    *out = b;
    return 0;
}

void billing_collect_tenant(struct billing *b, const char *tenant_pubkey)
{
    if (!b || b->stopping || !tenant_pubkey || strlen(tenant_pubkey) != 64)
        return;
    int known = 0;
    for (size_t i = 0; i < b->n_forced; i++)
        known |= strcmp(b->forced[i], tenant_pubkey) == 0;
    if (!known && b->n_forced < MAX_FORCED)
        snprintf(b->forced[b->n_forced++], 65, "%s", tenant_pubkey);
    if (b->running) {
        b->rerun = 1;
        return;
    }
    uv_timer_start(&b->timer, on_interval, 0, 0);
}

static void on_nwc_freed(void *arg)
{
    struct billing *b = arg;
    b->nwc_gone = 1;
    b->nwc = NULL;
    maybe_finalize(b);
}

void billing_stop(struct billing *b, void (*cb)(void *arg), void *arg)
{
    if (!b) {
        if (cb)
            cb(arg);
        return;
    }
    b->stopping = 1;
    app_off(b->app, APP_TENANT_BILLING_CHANGED, b);
    b->stop_cb = cb;
    b->stop_arg = arg;
    uv_timer_stop(&b->timer);
    b->app->nwc = NULL;
    /* Cancels a request in flight: its callback ends the run at the next step. */
    nwc_free(b->nwc, on_nwc_freed, b);
}
