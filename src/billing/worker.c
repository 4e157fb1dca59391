/* Billing worker (PRODUCT.md §8): one run at a time, each run a chain of phases on the loop
 * thread, every database step a short transaction of its own:
 *   invoice batches (db write, until no tenant is due) -> forced tenants' invoices ->
 *   due invoices, batch by batch (db read; then per invoice, up to BILLING_CONCURRENCY at once:
 *   [make_invoice -> store BOLT11 -> collect] or [lookup_invoice -> settled? paid : collect];
 *   then one db write records when each invoice is next due) -> dunning batches (db write) ->
 *   next run after BILLING_INTERVAL.
 * Work is found through indexed due times (tenant.billing_due_at, invoice.next_action_at), so a
 * run costs what is due, and a stop between two steps loses nothing. Every money step is
 * committed before the wallet is asked (see "collect" below). */
#include "billing/worker.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/calc.h"
#include "billing/nwc.h"
#include "billing/repo.h"
#include "core/app.h"
#include "db/db.h"
#include "metrics/metrics.h"
#include "nostr/hex.h"
#include "robot/robot.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define COLLECT_EVERY_S 86400 /* at most one collection per invoice per 24 h */
#define BOLT11_EXPIRY_S 86400 /* make_invoice expiry */
#define MAX_BOLT11_DMS 4      /* the BOLT11 DM + at most 3 reminders */
#define MAX_FORCED 64
#define BATCH_DEFAULT 500  /* tenants / invoices per transaction (CARAVEL_TEST_BILLING_BATCH) */
#define BATCH_BUDGET_MS 20 /* ... and at most this long, so API writes wait little */

enum phase { PH_IDLE, PH_INVOICES, PH_FORCED, PH_DUE, PH_DUNNING };

struct billing;

/* One invoice being worked on in the current batch. */
struct chain {
    struct billing *b;
    struct repo_pending *p; /* borrowed: b->pend[i] */
    int paid, failed;       /* marked paid / a step failed (retry next run) */
    int64_t requests;       /* wallet requests this chain sent */
};

struct billing {
    struct app *app;
    uv_timer_t timer;
    struct nwc *nwc; /* owned (also published as app->nwc) */
    struct billing_cfg cfg;
    int64_t interval_s;
    size_t batch, concurrency, wallet_cap;
    int running, rerun, stopping, nwc_gone, woken;
    int watching;                /* subscribed to the platform wallet's notifications */
    size_t n_side_jobs;          /* notification jobs in the database queue */
    char forced[MAX_FORCED][65]; /* tenants to collect now, ignoring the 24 h rule */
    size_t n_forced;
    char run_forced[MAX_FORCED][65]; /* the forced set of the current run */
    size_t n_run_forced, forced_idx;
    /* current run */
    enum phase phase;
    int64_t run_now;           /* clock at the start of the run: invoices due up to it */
    size_t wallet_sent;        /* wallet requests this run */
    struct repo_cursor cursor; /* due invoices / dunning: last row handled */
    struct repo_pending *pend; /* current batch of invoices */
    struct chain *chains;
    size_t n_pend, next_idx, active;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

/* One database job; fields are used by the step that queued it. */
struct job {
    struct billing *b;
    struct chain *c;        /* the invoice's chain, or NULL */
    struct repo_pending *p; /* borrowed: c->p */
    int64_t now;
    int created;
    char id[65];
    char *bolt11, *hash, *reason; /* owned */
    int64_t expires_at;
    int clear_error, found;
    int64_t amount_msats, requests;
    struct repo_ids changed;
    struct repo_batch batch;
    struct repo_cursor cursor;     /* dunning: position before (work resets from it) ... */
    struct repo_cursor cursor_out; /* ... and after the batch */
    struct repo_schedule *sched;   /* owned */
    size_t n_sched;
};

static void run_start(struct billing *b);
static void chain_step(struct chain *c);
static void chain_end(struct chain *c);
static void step_lookup(struct chain *c);
static void step_make_invoice(struct chain *c);
static void phase_forced(struct billing *b);
static void phase_due(struct billing *b);
static void phase_dunning(struct billing *b);

/* Test-only kill points (documented in billing/worker.h): CARAVEL_TEST_CRASH_AT=name. */
static void crash_point(const struct billing *b, const char *name)
{
    const char *at = b->app->cfg.test.crash_at;
    if (at && strcmp(at, name) == 0) {
        LOG_WARN("CARAVEL_TEST_CRASH_AT=%s: exiting now (test only)", name);
        _exit(97);
    }
}

/* Prometheus counters (metrics.h; a no-op when METRICS_PORT is off). result: a literal. */
#define BILLING_COUNT(b, name, result)                                                             \
    metrics_inc((b)->app->metrics, "caravel_billing_" name "_total", "result=\"" result "\"")
#define WALLET_REQUEST(c, method)                                                                  \
    metrics_inc((c)->b->app->metrics, "caravel_billing_wallet_requests_total",                     \
                "method=\"" method "\"")

/* A paid invoice, by the wallet requests it took (make, lookups, pay): how hard billing
 * leans on the wallets. */
static void count_settled(struct billing *b, int64_t requests)
{
    static const struct {
        int64_t max;
        const char *label;
    } BUCKETS[] = {{2, "requests=\"1-2\""},
                   {5, "requests=\"3-5\""},
                   {10, "requests=\"6-10\""},
                   {30, "requests=\"11-30\""},
                   {INT64_MAX, "requests=\"31+\""}};
    size_t i = 0;
    while (requests > BUCKETS[i].max)
        i++;
    metrics_inc(b->app->metrics, "caravel_billing_settled_invoices_total", BUCKETS[i].label);
}

/* The wallet client is gone once billing_stop ran: no new requests. */
static int wallet_usable(const struct billing *b)
{
    return !b->stopping && !b->nwc_gone;
}

static struct job *job_new(struct billing *b, struct chain *c)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->c = c;
    j->p = c ? c->p : NULL;
    j->now = clock_now();
    return j;
}

static void job_free(struct job *j)
{
    free(j->bolt11);
    free(j->hash);
    free(j->reason);
    free(j->sched);
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

static void submit(struct billing *b, int write, db_work_fn *work, db_done_cb *done, struct job *j)
{
    /* Money: invoices and payment attempts must survive a power loss, not only a crash. */
    int rc = write ? db_write(b->app->db, DB_POWER_SAFE, work, done, j)
                   : db_read(b->app->db, work, done, j);
    if (rc < 0) {
        LOG_WARN("billing: database refused a job (%s)", err_name(rc));
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

static void batch_free(struct billing *b)
{
    repo_billing_pending_free(b->pend, b->n_pend);
    free(b->chains);
    b->pend = NULL;
    b->chains = NULL;
    b->n_pend = b->next_idx = b->active = 0;
}

static void run_end(struct billing *b)
{
    batch_free(b);
    b->running = 0;
    metrics_inc(b->app->metrics, "caravel_billing_runs_total", NULL);
    b->phase = PH_IDLE;
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

/* ---- dunning, batch by batch ---- */

static int work_dunning(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    /* May run again after DB_EBUSY: start over from the batch's first position. */
    repo_billing_ids_free(&j->changed);
    j->cursor_out = j->cursor;
    return repo_billing_dunning_batch(conn, &j->b->cfg, j->now, &j->cursor_out, &j->batch,
                                      &j->changed);
}

static void on_dunning(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    int more = 0;
    if (status == 0) {
        if (j->changed.n || j->batch.n_dms)
            LOG_INFO("billing: dunning: %zu relay(s) delinquent, %zu DM(s)", j->changed.n,
                     j->batch.n_dms);
        after_commit(b, j, j->batch.n_dms > 0);
        b->cursor = j->cursor_out;
        more = j->batch.more;
    } else {
        LOG_WARN("billing: dunning failed (%s)", err_name(status));
    }
    job_free(j);
    if (more && !b->stopping)
        phase_dunning(b);
    else
        run_end(b);
}

static void phase_dunning(struct billing *b)
{
    if (b->phase != PH_DUNNING) {
        b->phase = PH_DUNNING;
        b->cursor.at = INT64_MIN;
        b->cursor.id[0] = '\0';
    }
    struct job *j = job_new(b, NULL);
    j->batch.limit = b->batch;
    j->batch.budget_ms = BATCH_BUDGET_MS;
    j->cursor = b->cursor;
    submit(b, 1, work_dunning, on_dunning, j);
}

/* ---- payment_received notifications (PRODUCT.md §8: marks the invoice paid at once) ---- */

static int work_paid_by_hash(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    repo_billing_ids_free(&j->changed);
    return repo_billing_paid_by_hash(conn, j->hash, j->amount_msats, &j->b->cfg, j->now,
                                     &j->changed, &j->found, &j->requests);
}

static void on_paid_by_hash(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status != 0)
        LOG_WARN("billing: recording a payment_received notification failed (%s); "
                 "lookup_invoice catches it at the BOLT11's next scheduled lookup",
                 err_name(status));
    else if (j->found) {
        BILLING_COUNT(b, "notification", "paid");
        count_settled(b, j->requests);
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
    if (b->stopping || strcmp(n->type, "payment_received") != 0 || !hash || !hex_is_lower64(hash) ||
        !cJSON_IsNumber(amount) || !nwc_tx_is_settled(n->tx))
        return;
    LOG_INFO("billing: payment_received notification from the platform wallet");
    struct job *j = job_new(b, NULL);
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
        LOG_WARN("billing: cannot subscribe to wallet notifications (%s)", err_name(rc));
}

/* ---- a batch of invoices: up to b->concurrency chains at once ---- */

static int is_forced(const struct billing *b, const char *tenant)
{
    for (size_t i = 0; i < b->n_run_forced; i++)
        if (strcmp(b->run_forced[i], tenant) == 0)
            return 1;
    return 0;
}

/* When the invoice next needs the worker: its next scheduled lookup, its next collection,
 * or (a step failed) the next run. Always after now, so a run never takes it up twice. */
static int64_t next_action(const struct billing *b, const struct chain *c, int64_t now)
{
    const struct repo_pending *p = c->p;
    if (c->failed || !p->has_bolt11)
        return now + 1;
    int64_t next = billing_next_lookup(p->lookup_base, p->bolt11_expires_at, now,
                                       b->watching && !p->has_attempt);
    int can_collect =
        !p->has_attempt && ((p->nwc_url && *p->nwc_url) || p->reminders < MAX_BOLT11_DMS);
    if (can_collect)
        next = MIN(next, p->last_collect_at < 0 ? now + 1 : p->last_collect_at + COLLECT_EVERY_S);
    return MAX(next, now + 1);
}

static int work_schedule(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_schedule(conn, j->sched, j->n_sched);
}

static void on_scheduled(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status != 0)
        LOG_WARN("billing: recording the invoices' next steps failed (%s); they are due "
                 "again next run",
                 err_name(status));
    job_free(j);
    batch_free(b);
    if (b->stopping)
        run_end(b);
    else if (b->phase == PH_FORCED)
        phase_forced(b);
    else
        phase_due(b);
}

/* Every chain of the batch has ended: one write records each invoice's next step (the
 * invoices not started, for lack of wallet budget, stay due). */
static void batch_done(struct billing *b)
{
    struct job *j = job_new(b, NULL);
    j->sched = xcalloc(b->n_pend ? b->n_pend : 1, sizeof(*j->sched));
    for (size_t i = 0; i < b->next_idx; i++) {
        struct chain *c = &b->chains[i];
        struct repo_schedule *s = &j->sched[j->n_sched++];
        snprintf(s->id, sizeof(s->id), "%s", c->p->id);
        s->next_action_at = next_action(b, c, j->now);
        s->wallet_requests = c->requests;
    }
    submit(b, 1, work_schedule, on_scheduled, j);
}

static int wallet_budget_left(const struct billing *b)
{
    return b->wallet_sent < b->wallet_cap;
}

/* Starts chains while there is room, invoices left and wallet budget. */
static void batch_pump(struct billing *b)
{
    while (!b->stopping && b->active < b->concurrency && b->next_idx < b->n_pend &&
           wallet_budget_left(b)) {
        struct chain *c = &b->chains[b->next_idx++];
        b->active++;
        chain_step(c);
    }
    if (b->active == 0)
        batch_done(b);
}

static void batch_start(struct billing *b, struct repo_pending *pend, size_t n)
{
    b->pend = pend;
    b->n_pend = n;
    b->next_idx = b->active = 0;
    b->chains = xcalloc(n ? n : 1, sizeof(*b->chains));
    for (size_t i = 0; i < n; i++) {
        b->chains[i].b = b;
        b->chains[i].p = &pend[i];
    }
    batch_pump(b);
}

static void chain_end(struct chain *c)
{
    struct billing *b = c->b;
    if (c->paid)
        count_settled(b, c->p->wallet_requests + c->requests);
    b->active--;
    batch_pump(b);
}

/* A wallet request leaves: counted against the run's budget and in the metrics. */
static void spend(struct chain *c)
{
    c->b->wallet_sent++;
    c->requests++;
}

static void chain_step(struct chain *c)
{
    if (c->b->stopping) {
        c->failed = 1; /* not worked on: due again next run */
        chain_end(c);
    } else if (!c->p->has_bolt11)
        step_make_invoice(c);
    else
        step_lookup(c);
}

/* ---- make_invoice: a BOLT11 for the invoice ---- */

static void step_collect(struct chain *c);

static int work_add_bolt11(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_add_bolt11(conn, j->p->id, j->bolt11, j->hash, j->p->amount * 1000,
                                   j->expires_at, j->now, j->id, &j->created);
}

static void on_bolt11_stored(int status, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    struct repo_pending *p = j->p;
    if (status != 0 || !j->created) {
        /* Failed, or a concurrent run stored another one: pick it up next run. */
        if (status)
            LOG_WARN("billing: invoice %s: storing the BOLT11 failed (%s)", p->id,
                     err_name(status));
        c->failed = 1;
        job_free(j);
        chain_end(c);
        return;
    }
    p->has_bolt11 = 1;
    snprintf(p->bolt11_id, sizeof(p->bolt11_id), "%s", j->id);
    snprintf(p->payment_hash, sizeof(p->payment_hash), "%s", j->hash);
    free(p->bolt11);
    p->bolt11 = j->bolt11;
    j->bolt11 = NULL;
    p->bolt11_expires_at = j->expires_at;
    p->lookup_base = j->now;
    p->has_attempt = 0;
    LOG_INFO("billing: invoice %s: BOLT11 issued", p->id);
    BILLING_COUNT(c->b, "bolt11", "issued");
    job_free(j);
    /* Nobody has seen this BOLT11 yet: no lookup before collecting it. */
    step_collect(c);
}

static void on_made(int status, const struct nwc_response *resp, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    maybe_watch(c->b);
    const char *inv = status == 0 ? nwc_tx_string(resp->result, "invoice") : NULL;
    const char *hash = status == 0 ? nwc_tx_string(resp->result, "payment_hash") : NULL;
    if (!inv || !hash || !hex_is_lower64(hash) || strlen(inv) > 4096) {
        LOG_WARN("billing: make_invoice for %s failed: %s %s", j->p->id, err_name(status),
                 status == NWC_EWALLET ? resp->error_code : "");
        BILLING_COUNT(c->b, "bolt11", "failed");
        c->failed = 1;
        job_free(j);
        chain_end(c);
        return;
    }
    j->bolt11 = xstrdup(inv);
    j->hash = xstrdup(hash);
    /* Our clock decides expiry (it is the one tests can move). */
    j->now = clock_now();
    j->expires_at = j->now + BOLT11_EXPIRY_S;
    submit(c->b, 1, work_add_bolt11, on_bolt11_stored, j);
}

static void step_make_invoice(struct chain *c)
{
    struct billing *b = c->b;
    if (!wallet_usable(b)) {
        c->failed = 1;
        chain_end(c);
        return;
    }
    struct job *j = job_new(b, c);
    char desc[128], d1[11], d2[11];
    repo_billing_date(j->p->period_start, d1);
    repo_billing_date(j->p->period_end, d2);
    snprintf(desc, sizeof(desc), "Caravel relay hosting %s to %s", d1, d2);
    int rc = nwc_make_invoice(b->nwc, b->app->cfg.nwc_url, j->p->amount * 1000, desc,
                              BOLT11_EXPIRY_S, on_made, j);
    if (rc < 0) {
        LOG_WARN("billing: make_invoice not sent (%s)", err_name(rc));
        c->failed = 1;
        job_free(j);
        chain_end(c);
        return;
    }
    spend(c);
    WALLET_REQUEST(c, "make_invoice");
}

/* ---- settled: invoice paid ---- */

static int work_mark_paid(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    repo_billing_ids_free(&j->changed);
    return repo_billing_mark_paid(conn, j->p->id, j->p->bolt11_id, j->clear_error, &j->b->cfg,
                                  j->now, &j->changed, NULL);
}

static void on_marked_paid(int status, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    if (status == 0) {
        c->paid = 1;
        after_commit(c->b, j, 1);
    } else {
        c->failed = 1;
        LOG_ERROR("billing: invoice %s: recording the payment failed (%s); the next run "
                  "retries from lookup_invoice",
                  j->p->id, err_name(status));
    }
    job_free(j);
    chain_end(c);
}

static void mark_paid(struct chain *c, int clear_error)
{
    struct job *j = job_new(c->b, c);
    j->clear_error = clear_error;
    submit(c->b, 1, work_mark_paid, on_marked_paid, j);
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
    struct chain *c = j->c;
    job_free(j);
    if (status != 0) {
        c->failed = 1;
        chain_end(c);
        return;
    }
    BILLING_COUNT(c->b, "bolt11", "expired");
    c->p->has_bolt11 = 0;
    c->p->has_attempt = 0;
    if (wallet_budget_left(c->b)) {
        step_make_invoice(c);
    } else {
        c->failed = 1; /* the replacement waits for the next run's budget */
        chain_end(c);
    }
}

/* ---- collection (PRODUCT.md §8 steps 2 and 3) ---- */

static int work_send_bolt11(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_send_bolt11(conn, j->p, j->now);
}

static void on_bolt11_sent(int status, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    if (status == 0) {
        c->p->reminders++;
        c->p->last_collect_at = j->now;
        c->p->lookup_base = j->now;
        after_commit(c->b, j, 1);
    }
    job_free(j);
    chain_end(c);
}

static int work_attempt_failed(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_attempt_failed(conn, j->id, j->p->tenant, j->reason, j->now);
}

static void on_attempt_failed(int status, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    if (status == 0) {
        c->p->has_attempt = 0;
        after_commit(c->b, j, 1);
    }
    job_free(j);
    chain_end(c);
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
    struct chain *c = j->c;
    struct billing *b = c->b;
    crash_point(b, "after_answer");
    if (status == 0 &&
        preimage_matches(nwc_tx_string(resp->result, "preimage"), j->p->payment_hash)) {
        LOG_INFO("billing: invoice %s paid through the tenant's wallet", j->p->id);
        BILLING_COUNT(b, "collect", "paid");
        job_free(j);
        mark_paid(c, 1);
        return;
    }
    if (status == NWC_EWALLET) {
        char reason[NWC_ERR_CODE_MAX + NWC_ERR_MSG_MAX + 4];
        snprintf(reason, sizeof(reason), "%s%s%s", resp->error_code,
                 resp->error_message[0] ? ": " : "", resp->error_message);
        LOG_INFO("billing: invoice %s: tenant wallet refused: %s", j->p->id, resp->error_code);
        BILLING_COUNT(b, "collect", "refused");
        j->reason = xstrdup(reason);
        submit(b, 1, work_attempt_failed, on_attempt_failed, j);
        return;
    }
    /* No (valid) answer: the wallet may have paid. The attempt stays pending and only
     * lookup_invoice resolves it (its schedule restarted with the attempt); nothing is paid
     * again. */
    LOG_WARN("billing: invoice %s: pay_invoice outcome unknown (%s); left pending", j->p->id,
             err_name(status));
    BILLING_COUNT(b, "collect", "unknown");
    job_free(j);
    chain_end(c);
}

static int work_begin_attempt(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_begin_attempt(conn, j->p->id, j->p->bolt11_id, j->now, j->id);
}

static void on_attempt_committed(int status, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    struct billing *b = c->b;
    if (status != 0) {
        if (status != DB_ECONSTRAINT)
            LOG_WARN("billing: invoice %s: attempt not recorded (%s)", j->p->id, err_name(status));
        c->failed = 1;
        job_free(j);
        chain_end(c);
        return;
    }
    crash_point(b, "after_attempt");
    /* Committed: whatever happens next, only lookup_invoice may resolve it. */
    c->p->has_attempt = 1;
    c->p->last_collect_at = j->now;
    c->p->lookup_base = j->now;
    snprintf(c->p->attempt_id, sizeof(c->p->attempt_id), "%s", j->id);
    if (!wallet_usable(b)) {
        /* Committed but never sent: stays pending until its BOLT11 expires (safe). */
        job_free(j);
        chain_end(c);
        return;
    }
    int rc = nwc_pay_invoice(b->nwc, j->p->nwc_url, j->p->bolt11, on_pay_answer, j);
    if (rc == NWC_EURI) {
        /* Never sent: failing the attempt is safe. */
        j->reason = xstrdup("invalid NWC URL");
        BILLING_COUNT(b, "collect", "invalid_nwc_url");
        submit(b, 1, work_attempt_failed, on_attempt_failed, j);
    } else if (rc < 0) {
        LOG_WARN("billing: invoice %s: pay_invoice not sent (%s); left pending", j->p->id,
                 err_name(rc));
        job_free(j);
        chain_end(c);
    } else {
        spend(c);
        WALLET_REQUEST(c, "pay_invoice");
    }
}

static void step_collect(struct chain *c)
{
    struct billing *b = c->b;
    struct repo_pending *p = c->p;
    int64_t now = clock_now();
    int due = is_forced(b, p->tenant) || p->last_collect_at < 0 ||
              now - p->last_collect_at >= COLLECT_EVERY_S;
    if (!due || p->has_attempt || !p->bolt11) {
        chain_end(c);
        return;
    }
    if (p->nwc_url && *p->nwc_url) {
        crash_point(b, "before_attempt");
        submit(b, 1, work_begin_attempt, on_attempt_committed, job_new(b, c));
    } else if (p->reminders < MAX_BOLT11_DMS) {
        submit(b, 1, work_send_bolt11, on_bolt11_sent, job_new(b, c));
    } else {
        chain_end(c);
    }
}

/* ---- lookup_invoice (PRODUCT.md §8 step 1) ---- */

static void on_looked_up(int status, const struct nwc_response *resp, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    struct billing *b = c->b;
    struct repo_pending *p = j->p;
    maybe_watch(b);
    if (status != 0) {
        /* Unknown state: never collect blind. */
        LOG_WARN("billing: lookup_invoice for %s failed: %s %s", p->id, err_name(status),
                 status == NWC_EWALLET ? resp->error_code : "");
        BILLING_COUNT(b, "lookup", "failed");
        c->failed = 1;
        job_free(j);
        chain_end(c);
        return;
    }
    const char *state = nwc_tx_string(resp->result, "state");
    int settled = nwc_tx_is_settled(resp->result);
    int expired = !settled &&
                  ((state && strcmp(state, "expired") == 0) || clock_now() >= p->bolt11_expires_at);
    job_free(j);
    if (settled) {
        BILLING_COUNT(b, "lookup", "settled");
        mark_paid(c, p->has_attempt);
    } else if (expired) {
        LOG_INFO("billing: invoice %s: BOLT11 expired unsettled, replacing it", p->id);
        submit(b, 1, work_expired, on_expired, job_new(b, c));
    } else {
        step_collect(c);
    }
}

static void step_lookup(struct chain *c)
{
    struct billing *b = c->b;
    if (!wallet_usable(b)) {
        c->failed = 1;
        chain_end(c);
        return;
    }
    struct job *j = job_new(b, c);
    int rc = nwc_lookup_invoice(b->nwc, b->app->cfg.nwc_url, j->p->payment_hash, on_looked_up, j);
    if (rc < 0) {
        c->failed = 1;
        job_free(j);
        chain_end(c);
        return;
    }
    spend(c);
    WALLET_REQUEST(c, "lookup_invoice");
}

/* ---- due invoices, batch by batch ---- */

static int work_load_due(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    return repo_billing_load_due(conn, b->run_now, &j->cursor, b->batch, &b->pend, &b->n_pend);
}

static void on_due_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    job_free(j);
    if (status != 0) {
        LOG_WARN("billing: loading due invoices failed (%s)", err_name(status));
        batch_free(b);
    }
    if (b->n_pend == 0 || b->stopping) {
        batch_free(b);
        if (b->stopping)
            run_end(b);
        else
            phase_dunning(b);
        return;
    }
    struct repo_pending *last = &b->pend[b->n_pend - 1];
    b->cursor.at = last->next_action_at;
    snprintf(b->cursor.id, sizeof(b->cursor.id), "%s", last->id);
    batch_start(b, b->pend, b->n_pend);
}

static void phase_due(struct billing *b)
{
    if (b->phase != PH_DUE) {
        b->phase = PH_DUE;
        b->cursor.at = INT64_MIN;
        b->cursor.id[0] = '\0';
    }
    if (!wallet_budget_left(b)) {
        LOG_INFO("billing: %zu wallet request(s) this run (BILLING_WALLET_REQUESTS): the "
                 "invoices still due wait for the next run",
                 b->wallet_sent);
        phase_dunning(b);
        return;
    }
    struct job *j = job_new(b, NULL);
    j->cursor = b->cursor;
    submit(b, 0, work_load_due, on_due_loaded, j);
}

/* ---- tenants that just set an NWC URL: their invoices first, whatever their schedule ---- */

static int work_load_forced(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    return repo_billing_load_pending(conn, j->id, &b->pend, &b->n_pend);
}

static void on_forced_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    job_free(j);
    if (status != 0 || b->stopping) {
        if (status)
            LOG_WARN("billing: loading a tenant's pending invoices failed (%s)", err_name(status));
        batch_free(b);
        phase_forced(b);
        return;
    }
    batch_start(b, b->pend, b->n_pend);
}

static void phase_forced(struct billing *b)
{
    b->phase = PH_FORCED;
    if (b->stopping) {
        run_end(b);
        return;
    }
    if (b->forced_idx >= b->n_run_forced) {
        phase_due(b);
        return;
    }
    struct job *j = job_new(b, NULL);
    snprintf(j->id, sizeof(j->id), "%s", b->run_forced[b->forced_idx++]);
    submit(b, 0, work_load_forced, on_forced_loaded, j);
}

/* ---- invoice pass, batch by batch ---- */

static int work_invoice_batch(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_invoice_batch(conn, &j->b->cfg, j->now, &j->batch);
}

static void phase_invoices(struct billing *b);

static void on_invoice_batch(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    int more = status == 0 && j->batch.more;
    if (status == 0 && j->batch.n_created) {
        LOG_INFO("billing: %zu invoice(s) created", j->batch.n_created);
        after_commit(b, j, 1);
    } else if (status != 0) {
        LOG_WARN("billing: invoice pass failed (%s); the tenants still due wait for the next "
                 "run",
                 err_name(status));
    }
    job_free(j);
    if (b->stopping)
        run_end(b);
    else if (more)
        phase_invoices(b);
    else
        phase_forced(b);
}

static void phase_invoices(struct billing *b)
{
    b->phase = PH_INVOICES;
    struct job *j = job_new(b, NULL);
    j->batch.limit = b->batch;
    j->batch.budget_ms = BATCH_BUDGET_MS;
    submit(b, 1, work_invoice_batch, on_invoice_batch, j);
}

/* ---- run start ---- */

static int work_wake(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_wake_attempts(conn, j->now);
}

static void on_woken(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    job_free(j);
    if (status != 0)
        LOG_WARN("billing: waking unresolved payment attempts failed (%s)", err_name(status));
    b->woken = status == 0;
    if (b->stopping)
        run_end(b);
    else
        phase_invoices(b);
}

static void run_start(struct billing *b)
{
    if (b->running || b->stopping)
        return;
    b->running = 1;
    b->run_now = clock_now();
    b->wallet_sent = 0;
    memcpy(b->run_forced, b->forced, sizeof(b->forced));
    b->n_run_forced = b->n_forced;
    b->n_forced = 0;
    b->forced_idx = 0;
    /* First run of the process: outcomes a previous process left unknown are looked up now. */
    if (!b->woken)
        submit(b, 1, work_wake, on_woken, job_new(b, NULL));
    else
        phase_invoices(b);
}

/* ---- public ---- */

/* APP_TENANT_BILLING_CHANGED: the tenant set or cleared its wallet. */
static void on_billing_changed(void *owner, const char *tenant)
{
    billing_collect_tenant(owner, tenant);
}

int billing_start(struct billing **out, struct app *app)
{
    ASSERT_LOOP_THREAD();
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
    b->concurrency = app->cfg.billing_concurrency > 0 ? (size_t)app->cfg.billing_concurrency : 8;
    b->wallet_cap =
        app->cfg.billing_wallet_requests > 0 ? (size_t)app->cfg.billing_wallet_requests : 10000;
    b->batch = (size_t)config_or(app->cfg.test.billing_batch, BATCH_DEFAULT);
    b->batch = MIN(b->batch, (size_t)REPO_BILLING_MAX_BATCH);
    nwc_new(&b->nwc, app->loop, app->pool, &app->cfg.test);
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
    ASSERT_LOOP_THREAD();
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
    ASSERT_LOOP_THREAD();
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
    /* Cancels the requests in flight: their callbacks end their chains, and the run ends
     * at its next step. */
    nwc_free(b->nwc, on_nwc_freed, b);
}
