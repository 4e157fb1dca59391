/* Billing worker (PRODUCT.md §8): one run at a time, each run a chain of phases on the loop
 * thread, every database step a short transaction of its own:
 *   invoice batches (db write, until no tenant is due) -> forced tenants' invoices ->
 *   due invoices, batch by batch (db read; then per invoice, up to BILLING_CONCURRENCY at once:
 *   [make_invoice -> store BOLT11 -> collect] or [lookup_invoice -> settled? paid : collect];
 *   then one db write records when each invoice is next due) -> dunning batches (db write) ->
 *   next run after BILLING_INTERVAL.
 * Work is found through indexed due times (tenant.billing_due_at, invoice.next_action_at), so a
 * run costs what is due, and a stop between two steps loses nothing. Every money step is
 * committed before the wallet is asked (see billing/chain.c).
 *
 * This file: the run (phases, batches loaded and their next steps recorded), payment_received
 * notifications, start and stop, and the helpers the chains share (billing/internal.h). One
 * invoice's wallet steps are in billing/chain.c. */
#include "billing/worker.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/calc.h"
#include "billing/internal.h"
#include "billing/nwc.h"
#include "billing/repo.h"
#include "core/app.h"
#include "db/db.h"
#include "db/lease.h"
#include "db/notify.h"
#include "metrics/metrics.h"
#include "nostr/hex.h"
#include "robot/robot.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

static void run_start(struct billing *b);
static void maybe_finalize(struct billing *b);
static void phase_forced(struct billing *b);
static void phase_due(struct billing *b);
static void phase_dunning(struct billing *b);

/* Test-only kill and pause points (documented in billing/worker.h): CARAVEL_TEST_CRASH_AT=name
 * exits; CARAVEL_TEST_PAUSE_AT=name stops the process once (SIGSTOP: a stalled leader), and it
 * goes on from there when the test sends SIGCONT. */
void bw_crash_point(const struct billing *b, const char *name)
{
    static int paused;
    const char *at = b->app->cfg.test.crash_at, *pause = b->app->cfg.test.pause_at;
    if (at && strcmp(at, name) == 0) {
        LOG_WARN("CARAVEL_TEST_CRASH_AT=%s: exiting now (test only)", name);
        _exit(97);
    }
    if (pause && strcmp(pause, name) == 0 && !paused) {
        paused = 1;
        LOG_WARN("CARAVEL_TEST_PAUSE_AT=%s: stopping until SIGCONT (test only)", name);
        raise(SIGSTOP);
        LOG_WARN("CARAVEL_TEST_PAUSE_AT=%s: continued", name);
    }
}

int bw_halting(const struct billing *b)
{
    return b->stop.stopping || !lease_is_leader(b->lease);
}

/* A paid invoice, by the wallet requests it took (make, lookups, pay): how hard billing
 * leans on the wallets. */
void bw_count_settled(struct billing *b, int64_t requests)
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

/* The wallet client is gone once billing_stop ran, and only a leader whose lease is valid
 * now (its own monotonic clock, with a margin) may ask a wallet anything: no new requests. */
int bw_wallet_usable(const struct billing *b)
{
    return !b->stop.stopping && !b->nwc_gone && lease_valid(b->lease);
}

struct job *bw_job_new(struct billing *b, struct chain *c)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->c = c;
    j->p = c ? c->p : NULL;
    j->now = clock_now();
    return j;
}

void bw_job_free(struct job *j)
{
    free(j->bolt11);
    free(j->hash);
    free(j->reason);
    free(j->sched);
    repo_billing_ids_free(&j->changed);
    free(j);
}

/* After a commit: resync changed relays, deliver queued DMs. */
void bw_after_commit(struct billing *b, struct job *j, int queued_dm)
{
    for (size_t i = 0; i < j->changed.n; i++)
        app_emit(b->app, APP_RELAY_CHANGED, j->changed.ids[i]);
    if (queued_dm || j->changed.n)
        robot_kick(b->app->robot);
}

/* Every billing write first checks, in its own transaction, that this instance still holds
 * the lease it held when the write was queued: a leader that lost it (paused past its TTL)
 * commits nothing. */
static int work_fenced(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    int rc = lease_fence(conn, &j->token);
    return rc ? rc : j->work(conn, j);
}

static void on_fenced(int status, void *arg)
{
    struct job *j = arg;
    if (status == DB_ELEASE && !j->b->lease_gone)
        lease_lost(j->b->lease); /* steps down (logged); the run halts at its next step */
    j->done(status, j);
}

void bw_submit(struct billing *b, int write, db_work_fn *work, db_done_cb *done, struct job *j)
{
    int rc;
    if (write) {
        j->work = work;
        j->done = done;
        lease_token(b->lease, &j->token);
        /* Money: invoices and payment attempts must survive a power loss, not only a crash. */
        rc = db_write_background(b->app->db, DB_POWER_SAFE, work_fenced, on_fenced, j);
    } else {
        rc = db_read(b->app->db, work, done, j);
    }
    if (rc < 0) {
        LOG_WARN("billing: database refused a job (%s)", err_name(rc));
        done(rc, j);
    }
}

/* ---- end of run, stop ---- */

static void on_timer_closed(uv_handle_t *h)
{
    struct billing *b = container_of((uv_timer_t *)h, struct billing, timer);
    struct stop done = b->stop;
    free(b);
    stop_finish(done);
}

static void on_lease_stopped(void *arg)
{
    struct billing *b = arg;
    b->lease = NULL;
    b->lease_gone = 1;
    maybe_finalize(b);
}

/* The lease goes last: the run's final writes are fenced with it; a release lets a standby
 * take over at its next read instead of after the TTL. */
static void maybe_finalize(struct billing *b)
{
    if (!b->stop.stopping || !b->nwc_gone || !b->notify_gone || b->running || b->n_side_jobs)
        return;
    if (!b->lease_stopping) {
        b->lease_stopping = 1;
        lease_stop(b->lease, on_lease_stopped, b);
        return;
    }
    if (stop_ready(&b->stop, !b->lease_gone))
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
    if (b->stop.stopping) {
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

static int work_dunning(struct db_conn *conn, void *arg)
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
        bw_after_commit(b, j, j->batch.n_dms > 0);
        b->cursor = j->cursor_out;
        more = j->batch.more;
    } else {
        LOG_WARN("billing: dunning failed (%s)", err_name(status));
    }
    bw_job_free(j);
    if (more && !bw_halting(b))
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
    struct job *j = bw_job_new(b, NULL);
    j->batch.limit = b->batch;
    j->batch.budget_ms = BATCH_BUDGET_MS;
    j->batch.busy_budget_ms = BATCH_BUSY_BUDGET_MS;
    j->cursor = b->cursor;
    bw_submit(b, 1, work_dunning, on_dunning, j);
}

/* ---- payment_received notifications (PRODUCT.md §8: marks the invoice paid at once) ---- */

static int work_paid_by_hash(struct db_conn *conn, void *arg)
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
        bw_count_settled(b, j->requests);
        bw_after_commit(b, j, 1);
    }
    bw_job_free(j);
    b->n_side_jobs--;
    maybe_finalize(b);
}

static void on_notify(const struct nwc_notification *n, void *arg)
{
    struct billing *b = arg;
    const char *hash = nwc_tx_string(n->tx, "payment_hash");
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive(n->tx, "amount");
    if (bw_halting(b) || strcmp(n->type, "payment_received") != 0 || !hash ||
        !hex_is_lower64(hash) || !cJSON_IsNumber(amount) || !nwc_tx_is_settled(n->tx))
        return;
    LOG_INFO("billing: payment_received notification from the platform wallet");
    struct job *j = bw_job_new(b, NULL);
    j->hash = xstrdup(hash);
    j->amount_msats = (int64_t)amount->valuedouble;
    b->n_side_jobs++;
    bw_submit(b, 1, work_paid_by_hash, on_paid_by_hash, j);
}

/* Once the platform wallet's info event is known to advertise payment_received. */
void bw_maybe_watch(struct billing *b)
{
    struct nwc_info info;
    if (b->watching || !bw_wallet_usable(b) ||
        nwc_cached_info(b->nwc, b->app->cfg.nwc_url, &info) < 0 || !info.notifications)
        return;
    int rc = nwc_watch(b->nwc, b->app->cfg.nwc_url, on_notify, b);
    b->watching = rc == 0;
    if (rc == 0)
        LOG_INFO("billing: listening for the platform wallet's payment notifications");
    else
        LOG_WARN("billing: cannot subscribe to wallet notifications (%s)", err_name(rc));
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

static int work_schedule(struct db_conn *conn, void *arg)
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
    bw_job_free(j);
    batch_free(b);
    if (bw_halting(b))
        run_end(b);
    else if (b->phase == PH_FORCED)
        phase_forced(b);
    else
        phase_due(b);
}

/* Every chain of the batch has ended: one write records each invoice's next step (the
 * invoices not started, for lack of wallet budget, stay due). */
void bw_batch_done(struct billing *b)
{
    struct job *j = bw_job_new(b, NULL);
    j->sched = xcalloc(b->n_pend ? b->n_pend : 1, sizeof(*j->sched));
    for (size_t i = 0; i < b->next_idx; i++) {
        struct chain *c = &b->chains[i];
        struct repo_schedule *s = &j->sched[j->n_sched++];
        snprintf(s->id, sizeof(s->id), "%s", c->p->id);
        s->next_action_at = next_action(b, c, j->now);
        s->wallet_requests = c->requests;
    }
    bw_submit(b, 1, work_schedule, on_scheduled, j);
}

/* ---- due invoices, batch by batch ---- */

static int work_load_due(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    return repo_billing_load_due(conn, b->run_now, &j->cursor, b->batch, &b->pend, &b->n_pend);
}

static void on_due_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    bw_job_free(j);
    if (status != 0) {
        LOG_WARN("billing: loading due invoices failed (%s)", err_name(status));
        batch_free(b);
    }
    if (b->n_pend == 0 || bw_halting(b)) {
        batch_free(b);
        if (bw_halting(b))
            run_end(b);
        else
            phase_dunning(b);
        return;
    }
    struct repo_pending *last = &b->pend[b->n_pend - 1];
    b->cursor.at = last->next_action_at;
    snprintf(b->cursor.id, sizeof(b->cursor.id), "%s", last->id);
    bw_batch_start(b, b->pend, b->n_pend);
}

static void phase_due(struct billing *b)
{
    if (b->phase != PH_DUE) {
        b->phase = PH_DUE;
        b->cursor.at = INT64_MIN;
        b->cursor.id[0] = '\0';
    }
    if (!bw_wallet_budget_left(b)) {
        LOG_INFO("billing: %zu wallet request(s) this run (BILLING_WALLET_REQUESTS): the "
                 "invoices still due wait for the next run",
                 b->wallet_sent);
        phase_dunning(b);
        return;
    }
    struct job *j = bw_job_new(b, NULL);
    j->cursor = b->cursor;
    bw_submit(b, 0, work_load_due, on_due_loaded, j);
}

/* ---- tenants that just set an NWC URL: their invoices first, whatever their schedule ---- */

static int work_load_forced(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    return repo_billing_load_pending(conn, j->id, &b->pend, &b->n_pend);
}

static void on_forced_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    bw_job_free(j);
    if (status != 0 || bw_halting(b)) {
        if (status)
            LOG_WARN("billing: loading a tenant's pending invoices failed (%s)", err_name(status));
        batch_free(b);
        phase_forced(b);
        return;
    }
    bw_batch_start(b, b->pend, b->n_pend);
}

static void phase_forced(struct billing *b)
{
    b->phase = PH_FORCED;
    if (bw_halting(b)) {
        run_end(b);
        return;
    }
    if (b->forced_idx >= b->n_run_forced) {
        phase_due(b);
        return;
    }
    struct job *j = bw_job_new(b, NULL);
    snprintf(j->id, sizeof(j->id), "%s", b->run_forced[b->forced_idx++]);
    bw_submit(b, 0, work_load_forced, on_forced_loaded, j);
}

/* ---- invoice pass, batch by batch ---- */

static int work_invoice_batch(struct db_conn *conn, void *arg)
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
        bw_after_commit(b, j, 1);
    } else if (status != 0) {
        LOG_WARN("billing: invoice pass failed (%s); the tenants still due wait for the next "
                 "run",
                 err_name(status));
    }
    bw_job_free(j);
    if (bw_halting(b))
        run_end(b);
    else if (more)
        phase_invoices(b);
    else
        phase_forced(b);
}

static void phase_invoices(struct billing *b)
{
    b->phase = PH_INVOICES;
    struct job *j = bw_job_new(b, NULL);
    j->batch.limit = b->batch;
    j->batch.budget_ms = BATCH_BUDGET_MS;
    j->batch.busy_budget_ms = BATCH_BUSY_BUDGET_MS;
    bw_submit(b, 1, work_invoice_batch, on_invoice_batch, j);
}

/* ---- run start ---- */

static int work_wake(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return repo_billing_wake_attempts(conn, j->now);
}

static void on_woken(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status != 0)
        LOG_WARN("billing: waking unresolved payment attempts failed (%s)", err_name(status));
    else
        b->woken_epoch = j->token.epoch;
    bw_job_free(j);
    if (bw_halting(b))
        run_end(b);
    else
        phase_invoices(b);
}

static void run_start(struct billing *b)
{
    if (b->running || bw_halting(b))
        return; /* a standby: the run starts when it becomes the leader (on_leader) */
    if (!lease_valid(b->lease)) {
        /* The leader's last renewal is late (a slow database): try again shortly. */
        uv_timer_start(&b->timer, on_interval, 1000, 0);
        return;
    }
    b->running = 1;
    b->run_now = clock_now();
    b->wallet_sent = 0;
    memcpy(b->run_forced, b->forced, sizeof(b->forced));
    b->n_run_forced = b->n_forced;
    b->n_forced = 0;
    b->forced_idx = 0;
    /* First run of the process, or of a new lease term: outcomes a previous process or leader
     * left unknown are looked up now. */
    if (b->woken_epoch != lease_epoch(b->lease))
        bw_submit(b, 1, work_wake, on_woken, bw_job_new(b, NULL));
    else
        phase_invoices(b);
}

/* ---- public ---- */

/* The lease changed hands (db/lease.c logs it): a new leader runs now, looking up first the
 * attempts the previous one left open; one that stepped down halts its run at the next step. */
static void on_leader(void *owner, int leader)
{
    struct billing *b = owner;
    if (!leader || b->stop.stopping)
        return;
    if (b->running)
        b->rerun = 1;
    else
        uv_timer_start(&b->timer, on_interval, 0, 0);
}

static void sample_gauges(void *owner, struct metrics_gauges *g)
{
    g->billing_leader = lease_is_leader(((struct billing *)owner)->lease);
}

/* A tenant set its wallet through a standby: the leader collects it now (on_collect_notified);
 * the notification leaves with the commit of this job. Lost if no instance leads at that
 * moment: the invoice is then collected on its schedule (within 24 h). */
#define COLLECT_CHANNEL "billing_collect"

static int work_tell_leader(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return db_notify_send(conn, COLLECT_CHANNEL, j->id);
}

static void on_told_leader(int status, void *arg)
{
    struct job *j = arg;
    struct billing *b = j->b;
    if (status != 0)
        LOG_WARN("billing: telling the leader to collect a tenant failed (%s); its invoices are "
                 "collected on their schedule",
                 err_name(status));
    bw_job_free(j);
    b->n_side_jobs--;
    maybe_finalize(b);
}

static void on_collect_notified(const char *channel, const char *id, void *arg)
{
    struct billing *b = arg;
    if (channel && id && lease_is_leader(b->lease))
        billing_collect_tenant(b, id);
}

/* APP_TENANT_BILLING_CHANGED: the tenant set or cleared its wallet. */
static void on_billing_changed(void *owner, const char *tenant)
{
    struct billing *b = owner;
    if (!b->notify || lease_is_leader(b->lease) || b->stop.stopping || strlen(tenant) != 64) {
        billing_collect_tenant(b, tenant);
        return;
    }
    /* Not a write of billing's own (a standby holds no token): no fence. */
    struct job *j = bw_job_new(b, NULL);
    snprintf(j->id, sizeof(j->id), "%s", tenant);
    b->n_side_jobs++;
    int rc = db_write_background(b->app->db, DB_CRASH_SAFE, work_tell_leader, on_told_leader, j);
    if (rc < 0)
        on_told_leader(rc, j);
}

static void on_notify_stopped(void *arg)
{
    struct billing *b = arg;
    b->notify = NULL;
    b->notify_gone = 1;
    maybe_finalize(b);
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
    b->woken_epoch = -1;
    int64_t ttl_s = app->cfg.billing_lease_ttl > 0 ? app->cfg.billing_lease_ttl : 10;
    lease_start(&b->lease, app->loop, app->db, "billing", ttl_s * 1000, on_leader, b);
    app_add_sampler(app, sample_gauges, b);
    static const char *const channels[] = {COLLECT_CHANNEL};
    db_notify_start(&b->notify, app->loop, app->cfg.db_path, channels, 1, on_collect_notified, b);
    b->notify_gone = b->notify == NULL;
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
    if (!b || b->stop.stopping || !tenant_pubkey || strlen(tenant_pubkey) != 64)
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
    if (stop_enter(b ? &b->stop : NULL, cb, arg) != 0)
        return;
    app_off(b->app, APP_TENANT_BILLING_CHANGED, b);
    app_remove_sampler(b->app, b);
    uv_timer_stop(&b->timer);
    b->app->nwc = NULL;
    if (b->notify)
        db_notify_stop(b->notify, on_notify_stopped, b);
    /* Cancels the requests in flight: their callbacks end their chains, and the run ends
     * at its next step. */
    nwc_free(b->nwc, on_nwc_freed, b);
}
