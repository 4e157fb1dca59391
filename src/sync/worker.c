/* Zooid sync worker (PRODUCT.md §5).
 *
 * Every relay that needs syncing has an entry (hash table by id). An entry is in exactly one
 * of: ready queue (waiting for a slot), in flight (db load -> HTTP request(s) -> db write),
 * waiting for a retry (a min-heap keyed by retry time under one wake timer, so a failure costs
 * O(log n) however many relays wait), or gone (nothing to do). At most
 * SYNC_MAX_IN_FLIGHT entries are in flight; a relay is never in flight twice, and a kick
 * while it is sets `again`, which runs exactly one more sync after the current one.
 *
 * One sync: load the row; synced or given up (attempts >= 6) -> done. Otherwise POST (never
 * created in zooid) or PATCH of what changed since the config zooid last accepted (nothing
 * changed: done without a request); zooid_classify decides the rest: POST 409 "already
 * exists" -> PUT the full config; PATCH 404 -> POST. Success -> repo_sync_complete with the
 * config sent (which reports a version change during the request: then sync again); a
 * permanent refusal -> repo_sync_fail_permanent (attempts = 6 at once, a metric, one error
 * line); any other failure -> repo_sync_fail and a retry after the backoff while attempts < 6.
 *
 * Every zooid answer passes the circuit breaker (on_answer) before on_response decides what
 * it means for the relay; pump() starts nothing while the breaker is open, one probe when
 * half-open. Relays come from kicks, retries and the due query (load_due), which runs at
 * start-up, on the reconcile tick, and from pump() when the ready queue runs short after a
 * full batch.
 *
 * This file: the entries, the ready queue, retries, pump, kicks, reconcile, start and stop. One
 * sync's requests and their outcome (and the members request) are in request.c. */
#include "sync/worker.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/app.h"
#include "core/wake.h"
#include "db/claims.h"
#include "db/db.h"
#include "db/notify.h"
#include "metrics/metrics.h"
#include "sync/breaker.h"
#include "sync/internal.h"
#include "sync/repo.h"
#include "net/fetch.h"
#include "util/clock.h"
#include "util/heap.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

static void pump(struct sync_worker *in);
static void maybe_stopped(struct sync_worker *in);

/* ---- entries -------------------------------------------------------------------------- */

static size_t hash_id(const char *id)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = h * 33 + *p;
    return h;
}

static size_t bucket_of(const struct sync_worker *in, const char *id)
{
    return hash_id(id) & (in->n_buckets - 1); /* n_buckets is a power of two */
}

/* Rehashes into n buckets (a power of two): O(entries), done when the table doubles (more
 * entries than buckets) or halves (fewer than an eighth, never under SYNC_MIN_BUCKETS), so a
 * lookup stays O(1) from 10 relays to 100,000 and more. */
static void rehash(struct sync_worker *in, size_t n)
{
    struct entry **old = in->buckets;
    size_t old_n = in->n_buckets;
    in->buckets = xcalloc(n, sizeof(*in->buckets));
    in->n_buckets = n;
    for (size_t b = 0; b < old_n; b++) {
        struct entry *e = old[b];
        while (e) {
            struct entry *next = e->hnext;
            struct entry **slot = &in->buckets[bucket_of(in, e->id)];
            e->hnext = *slot;
            *slot = e;
            e = next;
        }
    }
    free(old);
}

static struct entry *entry_get(struct sync_worker *in, const char *id, int create)
{
    struct entry **slot = &in->buckets[bucket_of(in, id)];
    for (struct entry *e = *slot; e; e = e->hnext)
        if (!strcmp(e->id, id))
            return e;
    if (!create)
        return NULL;
    struct entry *e = xcalloc(1, sizeof(*e));
    e->in = in;
    list_init(&e->ready);
    e->id = xstrdup(id);
    e->hnext = *slot;
    *slot = e;
    if (++in->n_entries > in->n_buckets)
        rehash(in, in->n_buckets * 2);
    return e;
}

static void entry_remove(struct sync_worker *in, struct entry *e)
{
    for (struct entry **pp = &in->buckets[bucket_of(in, e->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    }
    in->n_entries--;
    list_remove(&e->ready);
    heap_remove(&in->waits, &e->wait);
    sync_relay_free(&e->relay);
    free(e->id);
    free(e);
    if (!in->stop.stopping && in->n_buckets > SYNC_MIN_BUCKETS && in->n_entries < in->n_buckets / 8)
        rehash(in, in->n_buckets / 2);
}

/* A relay's sync is idle, waiting for a retry, queued or in flight; the asserts below keep
 * the last two apart (an entry in flight is never queued: kick marks it `again`). */
static void enqueue(struct sync_worker *in, struct entry *e)
{
    DEBUG_ASSERT(!e->in_flight);
    if (list_linked(&e->ready))
        return;
    list_insert_tail(&in->ready, &e->ready);
    in->n_ready++;
}

static struct entry *dequeue(struct sync_worker *in)
{
    struct list *q = list_pop(&in->ready);
    if (!q)
        return NULL;
    in->n_ready--;
    return list_entry(q, struct entry, ready);
}

/* ---- retries -------------------------------------------------------------------------- */

static void on_wake(uv_timer_t *t);

/* The wake timer fires at the earliest retry: O(1) to find, whatever the number waiting. */
static void arm_wake(struct sync_worker *in)
{
    const struct heap_node *first = heap_min(&in->waits);
    if (!first) {
        uv_timer_stop(&in->wake);
        return;
    }
    uint64_t now = clock_mono_ms();
    uv_timer_start(&in->wake, on_wake, first->key > now ? first->key - now : 0, 0);
}

static void schedule_retry(struct sync_worker *in, struct entry *e)
{
    heap_remove(&in->waits, &e->wait);
    heap_push(&in->waits, &e->wait, e->retry_at);
    e->retry_at = 0;
    arm_wake(in);
}

static void cancel_retry(struct sync_worker *in, struct entry *e)
{
    e->retry_at = 0;
    heap_remove(&in->waits, &e->wait); /* the wake timer may fire early: it finds nothing due */
}

/* Only the entries that are due are touched: O(k log n) for k due. */
static void on_wake(uv_timer_t *t)
{
    struct sync_worker *in = container_of(t, struct sync_worker, wake);
    uint64_t now = clock_mono_ms();
    struct heap_node *n;
    while ((n = heap_pop_due(&in->waits, now)))
        enqueue(in, container_of(n, struct entry, wait));
    arm_wake(in);
    pump(in);
}

/* ---- one sync ------------------------------------------------------------------------- */

/* The sync of e is over (whatever the outcome): free its slot, decide what comes next. */
void sw_finish(struct entry *e)
{
    struct sync_worker *in = e->in;
    DEBUG_ASSERT(e->in_flight && !list_linked(&e->ready));
    e->in_flight = 0;
    in->active--;
    sync_relay_free(&e->relay);
    if (e->probe) {
        e->probe = 0;
        breaker_probe_abandoned(&in->breaker); /* ended before zooid answered it */
    }
    free(e->state);
    e->state = NULL;
    if (in->stop.stopping) {
        maybe_stopped(in);
        return;
    }
    if (e->again) {
        e->again = 0;
        cancel_retry(in, e);
        enqueue(in, e);
    } else if (e->retry_at) {
        schedule_retry(in, e);
    } else {
        entry_remove(in, e);
    }
    pump(in);
}

struct job *sw_job_new(struct sync_worker *in, struct entry *e)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->in = in;
    j->e = e;
    j->id = e ? xstrdup(e->id) : NULL;
    j->now = clock_now();
    j->now_ms = clock_wall_ms();
    return j;
}

void sw_job_free(struct job *j)
{
    for (size_t i = 0; i < j->n_ids; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->error);
    free(j->config);
    free(j->id);
    free(j);
}

static void load_due(struct sync_worker *in);

/* Starts syncs while a slot is free and the breaker lets them go; then, when the ready queue
 * runs short and the last batch suggests more relays are due in the database, loads the
 * next batch at once instead of waiting for the reconcile tick. */
static void pump(struct sync_worker *in)
{
    if (in->pumping)
        return; /* a sync that finished at once (db refused) re-enters: the loop below goes on */
    in->pumping = 1;
    while (!in->stop.stopping && in->active < SYNC_MAX_IN_FLIGHT && !list_empty(&in->ready)) {
        uint64_t now = clock_mono_ms();
        enum breaker_admit a = breaker_admit(&in->breaker, now);
        if (a == BREAKER_WAIT) {
            /* Open: pump again when the window ends (the timer counts from the loop's cached
             * time, so it can fire a little early: re-armed here then). Half-open: the probe's
             * answer or end pumps. */
            if (in->breaker.state == BREAKER_OPEN)
                uv_timer_start(&in->reopen, sw_on_breaker_reopen,
                               breaker_wait_ms(&in->breaker, now) + 1, 0);
            break;
        }
        struct entry *e = dequeue(in);
        if (!e)
            break;
        e->probe = a == BREAKER_PROBE;
        sw_start_sync(in, e);
    }
    in->pumping = 0;
    if (!in->stop.stopping && in->more_due && !in->reconciling && in->n_ready < SYNC_LOW_WATER &&
        in->breaker.state == BREAKER_CLOSED)
        load_due(in);
}

/* hard: a write or an admin asked (cancels a scheduled retry); soft: reconcile found it due
 * (a scheduled retry or a sync in flight stands). Returns 1 when e joined the ready queue. */
static int kick(struct sync_worker *in, const char *id, int hard)
{
    struct entry *e = entry_get(in, id, 1);
    if (e->in_flight) {
        if (hard)
            e->again = 1;
        return 0;
    }
    if ((!hard && heap_contains(&e->wait)) || list_linked(&e->ready))
        return 0;
    cancel_retry(in, e);
    enqueue(in, e);
    pump(in);
    return 1;
}

/* ---- reconcile ------------------------------------------------------------------------ */

/* No cursor is needed to page through the due relays: a relay leaves the due set when it
 * syncs (synced = 1) or fails (sync_next_at moves past now), so the next query from the start
 * returns the next relays, plus the few still queued or in flight (skipped by kick). */
static int due_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return repo_sync_due(conn, j->now, j->now_ms, SYNC_MAX_ATTEMPTS, j->in->batch, &j->ids,
                         &j->n_ids);
}

static void on_due(int status, void *arg)
{
    struct job *j = arg;
    struct sync_worker *in = j->in;
    size_t added = 0;
    if (status != 0)
        LOG_WARN("sync: reconcile query failed (%s)", err_name(status));
    for (size_t i = 0; !in->stop.stopping && i < j->n_ids; i++)
        added += (size_t)kick(in, j->ids[i], 0);
    if (added)
        LOG_INFO("sync: %zu relays to sync", added);
    /* A full batch that brought nothing new means the rest is queued or in flight already. */
    in->more_due = status == 0 && j->n_ids == in->batch && added > 0;
    in->reconciling = 0;
    sw_job_free(j);
    if (in->stop.stopping)
        maybe_stopped(in);
    else
        pump(in);
}

static void load_due(struct sync_worker *in)
{
    if (in->reconciling)
        return;
    struct job *j = sw_job_new(in, NULL);
    in->reconciling = 1;
    in->more_due = 0;
    int rc = db_read(in->app->db, due_work, on_due, j);
    if (rc != 0) {
        in->reconciling = 0;
        sw_job_free(j);
        LOG_WARN("sync: reconcile: database unavailable (%s)", err_name(rc));
    }
}

static void on_reconcile(uv_timer_t *t)
{
    load_due(container_of(t, struct sync_worker, reconcile));
}

void sw_on_breaker_reopen(uv_timer_t *t)
{
    pump(container_of(t, struct sync_worker, reopen));
}

/* ---- public --------------------------------------------------------------------------- */

/* APP_RELAY_CHANGED, APP_RELAY_CREATED: a committed change to the relay, or a new one (this
 * instance's, or another's heard through core/wake.h: the claim decides which instance syncs
 * it). */
static void on_relay_changed(void *owner, const char *relay_id)
{
    sync_worker_kick(owner, relay_id);
}

/* APP_RECONCILE: other instances' changes may have been missed: look at the database now. */
static void on_reconcile_event(void *owner, const char *id)
{
    struct sync_worker *in = owner;
    (void)id;
    if (!in->stop.stopping)
        load_due(in);
}

/* The worker's gauges on /metrics (app_add_sampler). */
static void sample_gauges(void *owner, struct metrics_gauges *g)
{
    struct sync_worker_stats st;
    sync_worker_stats(owner, &st);
    g->sync_backlog = (int64_t)st.backlog;
    g->sync_breaker_state = st.breaker_state;
    g->sync_breaker_opens = (int64_t)st.breaker_opens;
}

/* Start-up: claims left by instances that are gone (this host's earlier run killed, or any on
 * a database no other instance shares) are let go first, so the first due query finds those
 * relays instead of waiting for their leases. */
static int release_stale_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    int64_t n = 0;
    int rc = db_claims_release_stale(conn, DB_CLAIM_RELAY_SYNC, (int)j->version, &n);
    j->attempts = (int)MIN(n, (int64_t)INT32_MAX);
    return rc;
}

static void on_released_stale(int status, void *arg)
{
    struct job *j = arg;
    struct sync_worker *in = j->in;
    if (status != 0)
        LOG_WARN("sync: could not let go of claims left by stopped instances (%s)",
                 err_name(status));
    else if (j->attempts > 0)
        LOG_INFO("sync: %d relays claimed by an instance that is gone: syncing them", j->attempts);
    sw_job_free(j);
    in->reconciling = 0;
    if (in->stop.stopping) {
        maybe_stopped(in);
        return;
    }
    uv_timer_start(&in->reconcile, on_reconcile, 0, (uint64_t)in->reconcile_ms);
}

static void start_reconciling(struct sync_worker *in)
{
    struct job *j = sw_job_new(in, NULL);
    j->version = db_shared(in->app->db);
    in->reconciling = 1; /* a stop waits for it */
    if (db_write_background(in->app->db, DB_CRASH_SAFE, release_stale_work, on_released_stale, j) !=
        0)
        on_released_stale(DB_ECLOSED, j);
}

int sync_worker_start(struct sync_worker **out, struct app *app)
{
    ASSERT_LOOP_THREAD();
    *out = NULL;
    if (!app->cfg.zooid_api_url)
        return 0;
    struct sync_worker *in = xcalloc(1, sizeof(*in));
    in->app = app;
    if (nostr_keypair_from_seckey(&in->key, app->cfg.zooid_secret) != 0 ||
        fetch_new(&in->fetch, app->loop) != 0) {
        LOG_ERROR("sync: cannot start (ZOOID_API_SECRET invalid or curl unavailable)");
        secure_zero(&in->key, sizeof(in->key));
        free(in);
        return -1;
    }
    const struct config_test *test = &app->cfg.test;
    in->retry_base_ms = config_or(test->sync_retry_ms, SYNC_RETRY_BASE_MS);
    in->retry_cap_ms = in->retry_base_ms * (SYNC_RETRY_CAP_MS / SYNC_RETRY_BASE_MS);
    in->reconcile_ms = config_or(test->sync_reconcile_ms, SYNC_RECONCILE_MS);
    in->timeout_ms = (long)config_or(test->sync_timeout_ms, SYNC_TIMEOUT_MS);
    in->batch = (size_t)config_or(test->sync_batch, SYNC_BATCH);
    in->lease_ms = config_or(test->claim_lease_ms,
                             SYNC_LEASE_SYNCS * SYNC_MAX_STEPS * (int64_t)in->timeout_ms);
    in->owner = db_instance();
    int64_t breaker_ms = config_or(test->sync_breaker_ms, SYNC_BREAKER_BASE_MS);
    breaker_init(&in->breaker, SYNC_BREAKER_THRESHOLD, breaker_ms,
                 breaker_ms * (SYNC_BREAKER_CAP_MS / SYNC_BREAKER_BASE_MS));
    rehash(in, SYNC_MIN_BUCKETS);
    list_init(&in->ready);
    uv_timer_init(app->loop, &in->reconcile);
    uv_timer_init(app->loop, &in->wake);
    uv_timer_init(app->loop, &in->reopen);
    start_reconciling(in);
    app_on(app, APP_RELAY_CHANGED, on_relay_changed, in);
    app_on(app, APP_RELAY_CREATED, on_relay_changed, in);
    app_on(app, APP_RECONCILE, on_reconcile_event, in);
    app_add_sampler(app, sample_gauges, in);
    LOG_INFO("sync: zooid sync worker started (%s)", app->cfg.zooid_api_url);
    *out = in;
    return 0;
}

void sync_worker_kick(struct sync_worker *in, const char *relay_id)
{
    ASSERT_LOOP_THREAD();
    if (!in || in->stop.stopping || !relay_id)
        return;
    kick(in, relay_id, 1);
}

size_t sync_worker_backlog(const struct sync_worker *in)
{
    ASSERT_LOOP_THREAD();
    return in ? in->n_entries : 0;
}

void sync_worker_stats(const struct sync_worker *in, struct sync_worker_stats *out)
{
    ASSERT_LOOP_THREAD();
    memset(out, 0, sizeof(*out));
    if (!in)
        return;
    out->backlog = in->n_entries;
    out->breaker_state = (int)in->breaker.state;
    out->breaker_opens = in->breaker.opens;
}

static void maybe_stopped(struct sync_worker *in)
{
    if (!stop_ready(&in->stop, in->active || in->reconciling))
        return;
    for (size_t b = 0; b < in->n_buckets; b++)
        while (in->buckets[b])
            entry_remove(in, in->buckets[b]);
    free(in->buckets);
    heap_free(&in->waits);
    struct stop done = in->stop;
    secure_zero(&in->key, sizeof(in->key));
    free(in);
    LOG_INFO("sync: stopped");
    stop_finish(done);
}

static void on_closed(uv_handle_t *h)
{
    struct sync_worker *in = h->data;
    stop_release(&in->stop);
    maybe_stopped(in);
}

static void on_fetch_closed(void *arg)
{
    struct sync_worker *in = arg;
    stop_release(&in->stop);
    maybe_stopped(in);
}

/* A graceful stop lets go of the relays this instance claimed (syncs cancelled in flight):
 * the other instances take them over at once instead of after the leases. */
static int release_all_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    int64_t n = 0;
    int rc = db_claims_release_owner(conn, DB_CLAIM_RELAY_SYNC, j->in->owner, &n);
    return rc == 0 && n > 0 ? app_publish(conn, APP_RECONCILE, "") : rc;
}

static void on_released_all(int status, void *arg)
{
    struct job *j = arg;
    struct sync_worker *in = j->in;
    if (status != 0)
        LOG_WARN("sync: could not let go of this instance's claims (%s): other instances "
                 "take its relays over when the leases end",
                 err_name(status));
    sw_job_free(j);
    stop_release(&in->stop);
    maybe_stopped(in);
}

void sync_worker_stop(struct sync_worker *in, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_enter(in ? &in->stop : NULL, cb, arg) != 0)
        return;
    app_off(in->app, APP_RELAY_CHANGED, in);
    app_off(in->app, APP_RELAY_CREATED, in);
    app_off(in->app, APP_RECONCILE, in);
    app_remove_sampler(in->app, in);
    while (list_pop(&in->ready))
        ;
    in->n_ready = 0;
    uv_timer_t *timers[] = {&in->reconcile, &in->wake, &in->reopen};
    for (size_t i = 0; i < ARRAY_SIZE(timers); i++) {
        timers[i]->data = in;
        stop_hold(&in->stop);
        uv_close((uv_handle_t *)timers[i], on_closed);
    }
    /* Requests in flight complete now with UV_ECANCELED; db jobs finish on their own. */
    stop_hold(&in->stop);
    fetch_close(in->fetch, on_fetch_closed, in);
    struct job *j = sw_job_new(in, NULL);
    stop_hold(&in->stop);
    if (db_write_background(in->app->db, DB_CRASH_SAFE, release_all_work, on_released_all, j) != 0)
        on_released_all(DB_ECLOSED, j);
}
