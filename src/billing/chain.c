/* One invoice's chain of wallet steps (PRODUCT.md §8), up to b->concurrency chains at once:
 *   no BOLT11: make_invoice -> store the BOLT11 -> collect;
 *   a BOLT11: lookup_invoice -> settled? mark paid : expired? replace it : collect;
 *   collect: with an NWC URL, commit a payment attempt, then pay_invoice on the tenant's wallet;
 *   without one, DM the BOLT11 (at most MAX_BOLT11_DMS times).
 * Loop thread only; every database step is a short transaction of its own, and every money
 * step is committed before the wallet is asked. The batch's end (bw_batch_done) is the run's. */
#include <stdlib.h>
#include <string.h>

#include "billing/internal.h"
#include "billing/nwc.h"
#include "core/app.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

static void chain_step(struct chain *c);
static void chain_end(struct chain *c);
static void step_lookup(struct chain *c);
static void step_make_invoice(struct chain *c);

int bw_is_forced(const struct billing *b, const char *tenant)
{
    for (size_t i = 0; i < b->n_run_forced; i++)
        if (strcmp(b->run_forced[i], tenant) == 0)
            return 1;
    return 0;
}

int bw_wallet_budget_left(const struct billing *b)
{
    return b->wallet_sent < b->wallet_cap;
}

/* Starts chains while there is room, invoices left and wallet budget. */
static void batch_pump(struct billing *b)
{
    while (!bw_halting(b) && b->active < b->concurrency && b->next_idx < b->n_pend &&
           bw_wallet_budget_left(b)) {
        struct chain *c = &b->chains[b->next_idx++];
        b->active++;
        chain_step(c);
    }
    if (b->active == 0)
        bw_batch_done(b);
}

void bw_batch_start(struct billing *b, struct repo_pending *pend, size_t n)
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
        bw_count_settled(b, c->p->wallet_requests + c->requests);
    b->active--;
    batch_pump(b);
}

/* ---- wallet requests ---- */

enum wallet_method { WALLET_MAKE_INVOICE, WALLET_LOOKUP_INVOICE, WALLET_PAY_INVOICE };

/* The label of each method on caravel_billing_wallet_requests_total (billing/worker.h). */
static const char *const WALLET_LABELS[] = {
    [WALLET_MAKE_INVOICE] = "method=\"make_invoice\"",
    [WALLET_LOOKUP_INVOICE] = "method=\"lookup_invoice\"",
    [WALLET_PAY_INVOICE] = "method=\"pay_invoice\"",
};

/* One NIP-47 request of a chain. uri: the platform wallet (make, lookup) or the tenant's
 * (pay); arg: the payment hash (lookup) or the BOLT11 (pay); msats and desc: make_invoice's. */
struct wallet_call {
    enum wallet_method method;
    const char *uri, *arg;
    int64_t msats;
    const char *desc;
};

/* Sends w for the chain with j as cb's argument. Once it left, it counts against the run's
 * budget, in the chain's requests and on the metric. Returns 0 (cb will run), NWC_ECANCELED
 * when billing is stopping (nothing sent), or the client's error (cb will not run). */
static int wallet_send(struct chain *c, struct job *j, const struct wallet_call *w, nwc_done_cb *cb)
{
    struct billing *b = c->b;
    int rc = NWC_ECANCELED;
    if (!bw_wallet_usable(b))
        return rc;
    switch (w->method) {
    case WALLET_MAKE_INVOICE:
        rc = nwc_make_invoice(b->nwc, w->uri, w->msats, w->desc, BOLT11_EXPIRY_S, cb, j);
        break;
    case WALLET_LOOKUP_INVOICE:
        rc = nwc_lookup_invoice(b->nwc, w->uri, w->arg, cb, j);
        break;
    case WALLET_PAY_INVOICE:
        rc = nwc_pay_invoice(b->nwc, w->uri, w->arg, cb, j);
        break;
    }
    if (rc == 0) {
        b->wallet_sent++;
        c->requests++;
        metrics_inc(b->app->metrics, "caravel_billing_wallet_requests_total",
                    WALLET_LABELS[w->method]);
    }
    return rc;
}

/* A step could not start: the invoice is due again next run. */
static void chain_fail(struct chain *c, struct job *j)
{
    c->failed = 1;
    if (j)
        bw_job_free(j);
    chain_end(c);
}

static void chain_step(struct chain *c)
{
    if (bw_halting(c->b)) {
        chain_fail(c, NULL); /* not worked on: due again next run */
    } else if (!c->p->has_bolt11)
        step_make_invoice(c);
    else
        step_lookup(c);
}

/* ---- make_invoice: a BOLT11 for the invoice ---- */

static void step_collect(struct chain *c);

static int work_add_bolt11(struct db_conn *conn, void *arg)
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
        chain_fail(c, j);
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
    bw_job_free(j);
    /* Nobody has seen this BOLT11 yet: no lookup before collecting it. */
    step_collect(c);
}

static void on_made(int status, const struct nwc_response *resp, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    bw_maybe_watch(c->b);
    const char *inv = status == 0 ? nwc_tx_string(resp->result, "invoice") : NULL;
    const char *hash = status == 0 ? nwc_tx_string(resp->result, "payment_hash") : NULL;
    if (!inv || !hash || !hex_is_lower64(hash) || strlen(inv) > 4096) {
        LOG_WARN("billing: make_invoice for %s failed: %s %s", j->p->id, err_name(status),
                 status == NWC_EWALLET ? resp->error_code : "");
        BILLING_COUNT(c->b, "bolt11", "failed");
        chain_fail(c, j);
        return;
    }
    j->bolt11 = xstrdup(inv);
    j->hash = xstrdup(hash);
    /* Our clock decides expiry (it is the one tests can move). */
    j->now = clock_now();
    j->expires_at = j->now + BOLT11_EXPIRY_S;
    bw_submit(c->b, 1, work_add_bolt11, on_bolt11_stored, j);
}

static void step_make_invoice(struct chain *c)
{
    struct job *j = bw_job_new(c->b, c);
    char desc[128], d1[11], d2[11];
    repo_billing_date(j->p->period_start, d1);
    repo_billing_date(j->p->period_end, d2);
    snprintf(desc, sizeof(desc), "Caravel relay hosting %s to %s", d1, d2);
    struct wallet_call w = {.method = WALLET_MAKE_INVOICE,
                            .uri = c->b->app->cfg.nwc_url,
                            .msats = j->p->amount * 1000,
                            .desc = desc};
    int rc = wallet_send(c, j, &w, on_made);
    if (rc < 0) {
        if (rc != NWC_ECANCELED)
            LOG_WARN("billing: make_invoice not sent (%s)", err_name(rc));
        chain_fail(c, j);
    }
}

/* ---- settled: invoice paid ---- */

static int work_mark_paid(struct db_conn *conn, void *arg)
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
        bw_after_commit(c->b, j, 1);
    } else {
        c->failed = 1;
        LOG_ERROR("billing: invoice %s: recording the payment failed (%s); the next run "
                  "retries from lookup_invoice",
                  j->p->id, err_name(status));
    }
    bw_job_free(j);
    chain_end(c);
}

static void mark_paid(struct chain *c, int clear_error)
{
    struct job *j = bw_job_new(c->b, c);
    j->clear_error = clear_error;
    bw_submit(c->b, 1, work_mark_paid, on_marked_paid, j);
}

/* ---- expired unsettled BOLT11: attempts fail, a new BOLT11 replaces it ---- */

static int work_expired(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_bolt11_expired(conn, j->p->bolt11_id, j->now);
}

static void on_expired(int status, void *arg)
{
    struct job *j = arg;
    struct chain *c = j->c;
    bw_job_free(j);
    if (status != 0) {
        chain_fail(c, NULL);
        return;
    }
    BILLING_COUNT(c->b, "bolt11", "expired");
    c->p->has_bolt11 = 0;
    c->p->has_attempt = 0;
    if (bw_wallet_budget_left(c->b)) {
        step_make_invoice(c);
    } else {
        chain_fail(c, NULL); /* the replacement waits for the next run's budget */
    }
}

/* ---- collection (PRODUCT.md §8 steps 2 and 3) ---- */

static int work_send_bolt11(struct db_conn *conn, void *arg)
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
        bw_after_commit(c->b, j, 1);
    }
    bw_job_free(j);
    chain_end(c);
}

static int work_attempt_failed(struct db_conn *conn, void *arg)
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
        bw_after_commit(c->b, j, 1);
    }
    bw_job_free(j);
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
    bw_crash_point(b, "after_answer");
    if (status == 0 &&
        preimage_matches(nwc_tx_string(resp->result, "preimage"), j->p->payment_hash)) {
        LOG_INFO("billing: invoice %s paid through the tenant's wallet", j->p->id);
        BILLING_COUNT(b, "collect", "paid");
        bw_job_free(j);
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
        bw_submit(b, 1, work_attempt_failed, on_attempt_failed, j);
        return;
    }
    /* No (valid) answer: the wallet may have paid. The attempt stays pending and only
     * lookup_invoice resolves it (its schedule restarted with the attempt); nothing is paid
     * again. */
    LOG_WARN("billing: invoice %s: pay_invoice outcome unknown (%s); left pending", j->p->id,
             err_name(status));
    BILLING_COUNT(b, "collect", "unknown");
    bw_job_free(j);
    chain_end(c);
}

static int work_begin_attempt(struct db_conn *conn, void *arg)
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
        chain_fail(c, j);
        return;
    }
    bw_crash_point(b, "after_attempt");
    /* Committed: whatever happens next, only lookup_invoice may resolve it. */
    c->p->has_attempt = 1;
    c->p->last_collect_at = j->now;
    c->p->lookup_base = j->now;
    snprintf(c->p->attempt_id, sizeof(c->p->attempt_id), "%s", j->id);
    struct wallet_call w = {
        .method = WALLET_PAY_INVOICE, .uri = j->p->nwc_url, .arg = j->p->bolt11};
    int rc = wallet_send(c, j, &w, on_pay_answer);
    if (rc == NWC_ECANCELED) {
        /* Committed but never sent: stays pending until its BOLT11 expires (safe). */
        bw_job_free(j);
        chain_end(c);
    } else if (rc == NWC_EURI) {
        /* Never sent: failing the attempt is safe. */
        j->reason = xstrdup("invalid NWC URL");
        BILLING_COUNT(b, "collect", "invalid_nwc_url");
        bw_submit(b, 1, work_attempt_failed, on_attempt_failed, j);
    } else if (rc < 0) {
        LOG_WARN("billing: invoice %s: pay_invoice not sent (%s); left pending", j->p->id,
                 err_name(rc));
        bw_job_free(j);
        chain_end(c);
    }
}

static void step_collect(struct chain *c)
{
    struct billing *b = c->b;
    struct repo_pending *p = c->p;
    int64_t now = clock_now();
    int due = bw_is_forced(b, p->tenant) || p->last_collect_at < 0 ||
              now - p->last_collect_at >= COLLECT_EVERY_S;
    if (!due || p->has_attempt || !p->bolt11) {
        chain_end(c);
        return;
    }
    if (p->nwc_url && *p->nwc_url) {
        if (!bw_wallet_usable(b)) {
            /* No attempt that could not be sent at once (the lease is late or gone): the
             * invoice is due again next run. */
            chain_fail(c, NULL);
            return;
        }
        bw_crash_point(b, "before_attempt");
        bw_submit(b, 1, work_begin_attempt, on_attempt_committed, bw_job_new(b, c));
    } else if (p->reminders < MAX_BOLT11_DMS) {
        bw_submit(b, 1, work_send_bolt11, on_bolt11_sent, bw_job_new(b, c));
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
    bw_maybe_watch(b);
    if (status != 0) {
        /* Unknown state: never collect blind. */
        LOG_WARN("billing: lookup_invoice for %s failed: %s %s", p->id, err_name(status),
                 status == NWC_EWALLET ? resp->error_code : "");
        BILLING_COUNT(b, "lookup", "failed");
        chain_fail(c, j);
        return;
    }
    const char *state = nwc_tx_string(resp->result, "state");
    int settled = nwc_tx_is_settled(resp->result);
    int expired = !settled &&
                  ((state && strcmp(state, "expired") == 0) || clock_now() >= p->bolt11_expires_at);
    bw_job_free(j);
    if (settled) {
        BILLING_COUNT(b, "lookup", "settled");
        mark_paid(c, p->has_attempt);
    } else if (expired) {
        LOG_INFO("billing: invoice %s: BOLT11 expired unsettled, replacing it", p->id);
        bw_submit(b, 1, work_expired, on_expired, bw_job_new(b, c));
    } else {
        step_collect(c);
    }
}

static void step_lookup(struct chain *c)
{
    struct job *j = bw_job_new(c->b, c);
    struct wallet_call w = {
        .method = WALLET_LOOKUP_INVOICE, .uri = c->b->app->cfg.nwc_url, .arg = j->p->payment_hash};
    if (wallet_send(c, j, &w, on_looked_up) < 0)
        chain_fail(c, j);
}
