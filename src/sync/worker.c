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
 * full batch. */
#include "nostr/nip98.h"
#include "sync/worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "metrics/metrics.h"
#include "sync/breaker.h"
#include "sync/repo.h"
#include "net/fetch.h"
#include "nostr/hex.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/heap.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"
#include "sync/zooid.h"

#define SYNC_MAX_IN_FLIGHT 8
#define SYNC_MAX_ATTEMPTS 6
#define SYNC_RETRY_BASE_MS 30000 /* 30 s x 2^(n-1) ... */
#define SYNC_RETRY_CAP_MS 900000 /* ... capped at 15 min */
#define SYNC_TIMEOUT_MS 15000
#define SYNC_RECONCILE_MS 60000
#define SYNC_BATCH 1000 /* due relays loaded by one query */
/* Ready queue this short: load the next batch. */
#define SYNC_LOW_WATER (2 * SYNC_MAX_IN_FLIGHT)
#define SYNC_MAX_STEPS 4      /* PATCH -> POST -> PUT is the longest chain */
#define SYNC_MIN_BUCKETS 1024 /* the table doubles past one entry per bucket */
#define SYNC_BREAKER_THRESHOLD SYNC_MAX_IN_FLIGHT
#define SYNC_BREAKER_BASE_MS 2000 /* open window: 2 s, doubling per failed probe ... */
#define SYNC_BREAKER_CAP_MS 60000 /* ... up to 1 min */
#define SYNC_ERROR_MAX 400        /* "zooid M: HTTP n " + zooid's text (<= 200) + a hint */

struct entry {
    struct sync_worker *in;
    struct entry *hnext; /* hash chain */
    struct entry *qnext; /* ready queue */
    char *id;
    int in_flight, again, queued;
    int probe;             /* this sync is the breaker's probe */
    uint64_t breaker_mark; /* the breaker's per-relay word (counted once per streak) */
    uint64_t retry_at;     /* clock_mono_ms() of the next try asked for by the sync that
                            * is ending (0 = none); finish() moves it into the heap */
    struct heap_node wait; /* in the worker's waits while waiting for a retry */
    /* The sync in flight. */
    struct sync_relay relay;
    char *state; /* relay's ZOOID_BODY_STATE: recorded as sync_config when zooid accepts it */
    const char *method;
    int steps;
};

struct sync_worker {
    struct app *app;
    struct fetch *fetch;
    struct nostr_keypair key;
    uv_timer_t reconcile, wake, reopen;
    struct heap waits; /* entries waiting for a retry, by retry time; `wake` fires at the min */
    struct entry **buckets;
    size_t n_buckets;
    struct entry *ready_head, *ready_tail;
    size_t n_entries, n_ready, active;
    struct breaker breaker;
    int reconciling, stopping, pumping;
    int more_due; /* the last batch was full and brought new relays: more may be due */
    size_t batch;
    size_t pending_closes;
    int64_t retry_base_ms, retry_cap_ms, reconcile_ms;
    long timeout_ms;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

/* A db job of one entry (load, complete, fail) or of the reconcile pass (e == NULL). */
struct job {
    struct sync_worker *in;
    struct entry *e;
    char *id;
    int64_t version, now;
    char *error, *config;
    int stale, attempts, permanent;
    long status; /* zooid's answer, for a permanent failure's metric */
    int64_t delay_ms;
    char **ids;
    size_t n_ids;
};

static void pump(struct sync_worker *in);
static void send_step(struct entry *e, const char *method);
static void maybe_stopped(struct sync_worker *in);
static void on_breaker_reopen(uv_timer_t *t);

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
    heap_remove(&in->waits, &e->wait);
    sync_relay_free(&e->relay);
    free(e->id);
    free(e);
    if (!in->stopping && in->n_buckets > SYNC_MIN_BUCKETS && in->n_entries < in->n_buckets / 8)
        rehash(in, in->n_buckets / 2);
}

/* A relay's sync is idle, waiting for a retry, queued or in flight; the asserts below keep
 * the last two apart (an entry in flight is never queued: kick marks it `again`). */
static void enqueue(struct sync_worker *in, struct entry *e)
{
    DEBUG_ASSERT(!e->in_flight);
    if (e->queued)
        return;
    e->queued = 1;
    e->qnext = NULL;
    if (in->ready_tail)
        in->ready_tail->qnext = e;
    else
        in->ready_head = e;
    in->ready_tail = e;
    in->n_ready++;
}

static struct entry *dequeue(struct sync_worker *in)
{
    struct entry *e = in->ready_head;
    if (!e)
        return NULL;
    in->ready_head = e->qnext;
    if (!in->ready_head)
        in->ready_tail = NULL;
    e->queued = 0;
    in->n_ready--;
    return e;
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
static void finish(struct entry *e)
{
    struct sync_worker *in = e->in;
    DEBUG_ASSERT(e->in_flight && !e->queued);
    e->in_flight = 0;
    in->active--;
    sync_relay_free(&e->relay);
    if (e->probe) {
        e->probe = 0;
        breaker_probe_abandoned(&in->breaker); /* ended before zooid answered it */
    }
    free(e->state);
    e->state = NULL;
    if (in->stopping) {
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

static struct job *job_new(struct sync_worker *in, struct entry *e)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->in = in;
    j->e = e;
    j->id = e ? xstrdup(e->id) : NULL;
    j->now = clock_now();
    return j;
}

static void job_free(struct job *j)
{
    for (size_t i = 0; i < j->n_ids; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->error);
    free(j->config);
    free(j->id);
    free(j);
}

/* A db job could not even be queued: try again after the base delay, in memory only. */
static void retry_later(struct entry *e, int rc)
{
    LOG_WARN("sync: relay %s: database unavailable (%s), retrying", e->id, err_name(rc));
    e->retry_at = clock_mono_ms() + (uint64_t)e->in->retry_base_ms;
    finish(e);
}

static int fail_work(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_sync_fail(conn, j->id, j->error, j->now, j->in->retry_base_ms, j->in->retry_cap_ms,
                          &j->attempts, &j->delay_ms);
}

static void on_failed(int status, void *arg)
{
    struct job *j = arg;
    struct entry *e = j->e;
    if (status != 0) {
        LOG_ERROR("sync: relay %s: could not record the failure (%s)", e->id, err_name(status));
        e->retry_at = clock_mono_ms() + (uint64_t)j->in->retry_base_ms;
    } else if (j->attempts < SYNC_MAX_ATTEMPTS) {
        e->retry_at = clock_mono_ms() + (uint64_t)j->delay_ms;
        LOG_INFO("sync: relay %s: attempt %d failed, retry in %lld ms", e->id, j->attempts,
                 (long long)j->delay_ms);
    } else {
        LOG_WARN("sync: relay %s: %d attempts failed, waiting for POST /relays/%s/sync", e->id,
                 j->attempts, e->id);
    }
    job_free(j);
    finish(e);
}

__attribute__((format(printf, 2, 3))) static void fail(struct entry *e, const char *fmt, ...)
{
    struct job *j = job_new(e->in, e);
    struct buf b;
    va_list ap;
    buf_init(&b, SYNC_ERROR_MAX);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap); /* too long: stays empty, replaced below */
    va_end(ap);
    if (!b.len)
        buf_printf(&b, "zooid %s failed", e->method);
    j->error = buf_take(&b, NULL);
    LOG_WARN("sync: relay %s: %s", e->id, j->error);
    int rc = db_write(e->in->app->db, DB_CRASH_SAFE, fail_work, on_failed, j);
    if (rc != 0) {
        job_free(j);
        retry_later(e, rc);
    }
}

static int fail_permanent_work(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_sync_fail_permanent(conn, j->id, j->error, j->now, SYNC_MAX_ATTEMPTS);
}

static void on_failed_permanent(int status, void *arg)
{
    struct job *j = arg;
    struct entry *e = j->e;
    if (status != 0) {
        LOG_ERROR("sync: relay %s: could not record the failure (%s)", e->id, err_name(status));
        e->retry_at = clock_mono_ms() + (uint64_t)j->in->retry_base_ms;
    } else {
        char labels[32];
        snprintf(labels, sizeof(labels), "status=\"%ld\"", j->status);
        metrics_inc(j->in->app->metrics, "caravel_sync_permanent_failures_total", labels);
        LOG_ERROR("sync: relay %s: %s; not retried until the relay changes or an admin calls "
                  "POST /relays/%s/sync",
                  e->id, j->error, e->id);
    }
    job_free(j);
    finish(e);
}

/* What an operator checks after a permanent refusal (OPERATIONS.md, "Connecting to zooid"). */
static const char *permanent_hint(long status)
{
    switch (status) {
    case 409:
        return "another zooid relay has it";
    case 401:
        return "check that ZOOID_API_URL's host:port is zooid's API_HOST, X-Forwarded-Proto "
               "and the clocks";
    case 403:
        return "ZOOID_API_SECRET's pubkey is not in zooid's API_WHITELIST";
    case 404:
    case 405:
        return "ZOOID_API_URL must be zooid's API_HOST, with no path";
    default:
        return "zooid refused the config";
    }
}

/* zooid refused in a way no retry fixes: recorded (with a hint at the cause), counted, logged
 * once at error level, and left until the relay changes or an admin resyncs it. */
static void fail_permanent(struct entry *e, long status, const char *text)
{
    const char *hint = permanent_hint(status);
    struct job *j = job_new(e->in, e);
    struct buf b;
    buf_init(&b, SYNC_ERROR_MAX);
    buf_printf(&b, "zooid %s: HTTP %ld%s%s (not retried: %s)", e->method, status,
               text[0] ? " " : "", text, hint);
    if (!b.len)
        buf_printf(&b, "zooid %s: HTTP %ld (not retried)", e->method, status);
    j->error = buf_take(&b, NULL);
    j->status = status;
    int rc = db_write(e->in->app->db, DB_CRASH_SAFE, fail_permanent_work, on_failed_permanent, j);
    if (rc != 0) {
        job_free(j);
        retry_later(e, rc);
    }
}

static int complete_work(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_sync_complete(conn, j->id, j->version, j->config, j->now, &j->stale);
}

static void on_completed(int status, void *arg)
{
    struct job *j = arg;
    struct entry *e = j->e;
    if (status != 0) {
        LOG_ERROR("sync: relay %s: could not record the success (%s)", e->id, err_name(status));
        e->retry_at = clock_mono_ms() + (uint64_t)j->in->retry_base_ms;
    } else if (j->stale) {
        LOG_INFO("sync: relay %s changed during its sync: syncing again", e->id);
        e->again = 1;
    } else {
        LOG_INFO("sync: relay %s synced (%s)", e->id, e->method);
        /* zooid serves the relay's host from now on: whoever must call the relay itself
         * (the block-list rollout) may do it now. */
        app_emit(e->in->app, APP_RELAY_SYNCED, e->id);
    }
    job_free(j);
    finish(e);
}

static void succeed(struct entry *e)
{
    struct job *j = job_new(e->in, e);
    j->version = e->relay.sync_version;
    j->config = e->state ? xstrdup(e->state) : NULL;
    int rc = db_write(e->in->app->db, DB_CRASH_SAFE, complete_work, on_completed, j);
    if (rc != 0) {
        job_free(j);
        retry_later(e, rc);
    }
}

/* zooid's error text, with the secrets it could echo (the relay's key, LiveKit's) removed. */
static void error_text(struct entry *e, const char *body, size_t len, char *out, size_t cap)
{
    const struct config *cfg = &e->in->app->cfg;
    const char *secrets[] = {e->relay.secret, cfg->livekit_api_secret, cfg->livekit_api_key, NULL};
    zooid_error_text(body, len, secrets, out, cap);
}

static void on_response(int err, long status, const char *body, size_t len, void *arg)
{
    struct entry *e = arg;
    const char *m = e->method;
    char msg[ZOOID_ERROR_TEXT_MAX + 1];
    if (err == UV_ECANCELED) {
        finish(e); /* sync_worker_stop */
        return;
    }
    if (err != 0) {
        fail(e, "zooid %s: %s", m, err_str(err));
        return;
    }
    error_text(e, body, len, msg, sizeof(msg));
    switch (zooid_classify(m, status, msg)) {
    case ZOOID_DONE:
        succeed(e);
        break;
    case ZOOID_PUT:
        send_step(e, "PUT"); /* already created (e.g. our commit was lost): replace it */
        break;
    case ZOOID_POST:
        send_step(e, "POST"); /* zooid lost it: create again */
        break;
    case ZOOID_PERMANENT:
        fail_permanent(e, status, msg);
        break;
    case ZOOID_RETRY:
        fail(e, "zooid %s: HTTP %ld%s%s", m, status, msg[0] ? " " : "", msg);
        break;
    }
}

/* Every zooid answer goes past the breaker first (what each answer means for the relay is
 * decided by on_response alone). */
static void on_answer(int err, long status, const char *body, size_t len, void *arg)
{
    struct entry *e = arg;
    struct sync_worker *in = e->in;
    if (err != UV_ECANCELED) {
        uint64_t now = clock_mono_ms();
        int probe = e->probe;
        e->probe = 0; /* answered: no longer a pending probe */
        if (breaker_observe(&in->breaker, now, breaker_is_outage(err, status), probe,
                            &e->breaker_mark)) {
            LOG_WARN("sync: zooid is failing every request: pausing syncs for %lld ms, then "
                     "one probe",
                     (long long)breaker_wait_ms(&in->breaker, now));
            uv_timer_start(&in->reopen, on_breaker_reopen, breaker_wait_ms(&in->breaker, now), 0);
        } else if (probe && in->breaker.state == BREAKER_CLOSED) {
            LOG_INFO("sync: zooid answers again: syncs resume");
        }
    }
    on_response(err, status, body, len, arg);
}

static char *relay_url(struct sync_worker *in, const char *id)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "%s/relay/%s", in->app->cfg.zooid_api_url, id);
    return buf_take(&b, NULL);
}

/* POST and PUT send the whole config; a PATCH only what changed since the config zooid last
 * accepted (sync_config), or the whole config without the secret when none was recorded.
 * NULL: a PATCH with nothing to carry (the change did not touch zooid's config). */
static char *request_body(struct entry *e, const char *method)
{
    const struct config *cfg = &e->in->app->cfg;
    if (strcmp(method, "PATCH") != 0)
        return zooid_config_json(&e->relay, cfg, ZOOID_BODY_FULL);
    int changed = 0;
    char *diff = zooid_patch_diff(e->state, e->relay.sync_config, &changed);
    if (!diff)
        return zooid_config_json(&e->relay, cfg, ZOOID_BODY_PATCH);
    if (!changed) {
        free(diff);
        return NULL;
    }
    return diff;
}

static void send_step(struct entry *e, const char *method)
{
    struct sync_worker *in = e->in;
    e->method = method;
    if (++e->steps > SYNC_MAX_STEPS) {
        fail(e, "zooid %s: too many steps (POST/PUT/PATCH)", method);
        return;
    }
    char *body = request_body(e, method);
    if (!body) {
        LOG_INFO("sync: relay %s: nothing zooid does not already have", e->id);
        succeed(e);
        return;
    }
    char *url = relay_url(in, e->id);
    size_t n = strlen(body);
    /* NIP-98 created_at is checked by zooid against its own clock: real time, not clock_now()
     * (which tests may move by months). */
    char *auth = nip98_auth_header(&in->key, url, method, body, n, (int64_t)time(NULL));
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    struct fetch_opts o = {.method = method,
                           .url = url,
                           .headers = headers,
                           .body = body,
                           .body_len = n,
                           .timeout_ms = in->timeout_ms};
    int rc = auth ? fetch_start(in->fetch, &o, on_answer, e, NULL) : FETCH_EFAILED;
    secure_zero(body, n); /* FULL bodies hold the relay secret */
    free(body);
    free(url);
    if (auth)
        secure_zero(auth, strlen(auth));
    free(auth);
    if (rc != 0)
        fail(e, "zooid %s: %s", method, err_str(rc));
}

static int load_work(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_sync_load(conn, j->id, &j->e->relay);
}

static void on_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct entry *e = j->e;
    job_free(j);
    if (e->in->stopping || status == DB_ENOTFOUND) {
        finish(e);
    } else if (status != 0) {
        retry_later(e, status);
    } else if (e->relay.synced || e->relay.sync_attempts >= SYNC_MAX_ATTEMPTS) {
        finish(e); /* nothing to do, or given up until POST /relays/:id/sync */
    } else {
        e->steps = 0;
        e->state = zooid_config_json(&e->relay, &e->in->app->cfg, ZOOID_BODY_STATE);
        send_step(e, e->relay.sync_created ? "PATCH" : "POST");
    }
}

static void start_sync(struct sync_worker *in, struct entry *e)
{
    DEBUG_ASSERT(!e->in_flight && !e->queued);
    e->in_flight = 1;
    in->active++;
    struct job *j = job_new(in, e);
    int rc = db_read(in->app->db, load_work, on_loaded, j);
    if (rc != 0) {
        job_free(j);
        retry_later(e, rc);
    }
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
    while (!in->stopping && in->active < SYNC_MAX_IN_FLIGHT && in->ready_head) {
        uint64_t now = clock_mono_ms();
        enum breaker_admit a = breaker_admit(&in->breaker, now);
        if (a == BREAKER_WAIT) {
            /* Open: pump again when the window ends (the timer counts from the loop's cached
             * time, so it can fire a little early: re-armed here then). Half-open: the probe's
             * answer or end pumps. */
            if (in->breaker.state == BREAKER_OPEN)
                uv_timer_start(&in->reopen, on_breaker_reopen,
                               breaker_wait_ms(&in->breaker, now) + 1, 0);
            break;
        }
        struct entry *e = dequeue(in);
        if (!e)
            break;
        e->probe = a == BREAKER_PROBE;
        start_sync(in, e);
    }
    in->pumping = 0;
    if (!in->stopping && in->more_due && !in->reconciling && in->n_ready < SYNC_LOW_WATER &&
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
    if ((!hard && heap_contains(&e->wait)) || e->queued)
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
static int due_work(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    return repo_sync_due(conn, j->now, SYNC_MAX_ATTEMPTS, j->in->batch, &j->ids, &j->n_ids);
}

static void on_due(int status, void *arg)
{
    struct job *j = arg;
    struct sync_worker *in = j->in;
    size_t added = 0;
    if (status != 0)
        LOG_WARN("sync: reconcile query failed (%s)", err_name(status));
    for (size_t i = 0; !in->stopping && i < j->n_ids; i++)
        added += (size_t)kick(in, j->ids[i], 0);
    if (added)
        LOG_INFO("sync: %zu relays to sync", added);
    /* A full batch that brought nothing new means the rest is queued or in flight already. */
    in->more_due = status == 0 && j->n_ids == in->batch && added > 0;
    in->reconciling = 0;
    job_free(j);
    if (in->stopping)
        maybe_stopped(in);
    else
        pump(in);
}

static void load_due(struct sync_worker *in)
{
    if (in->reconciling)
        return;
    struct job *j = job_new(in, NULL);
    in->reconciling = 1;
    in->more_due = 0;
    int rc = db_read(in->app->db, due_work, on_due, j);
    if (rc != 0) {
        in->reconciling = 0;
        job_free(j);
        LOG_WARN("sync: reconcile: database unavailable (%s)", err_name(rc));
    }
}

static void on_reconcile(uv_timer_t *t)
{
    load_due(container_of(t, struct sync_worker, reconcile));
}

static void on_breaker_reopen(uv_timer_t *t)
{
    pump(container_of(t, struct sync_worker, reopen));
}

/* ---- public --------------------------------------------------------------------------- */

/* APP_RELAY_CHANGED: a committed change to the relay. */
static void on_relay_changed(void *owner, const char *relay_id)
{
    sync_worker_kick(owner, relay_id);
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
    int64_t breaker_ms = config_or(test->sync_breaker_ms, SYNC_BREAKER_BASE_MS);
    breaker_init(&in->breaker, SYNC_BREAKER_THRESHOLD, breaker_ms,
                 breaker_ms * (SYNC_BREAKER_CAP_MS / SYNC_BREAKER_BASE_MS));
    rehash(in, SYNC_MIN_BUCKETS);
    uv_timer_init(app->loop, &in->reconcile);
    uv_timer_init(app->loop, &in->wake);
    uv_timer_init(app->loop, &in->reopen);
    uv_timer_start(&in->reconcile, on_reconcile, 0, (uint64_t)in->reconcile_ms);
    app_on(app, APP_RELAY_CHANGED, on_relay_changed, in);
    app_add_sampler(app, sample_gauges, in);
    LOG_INFO("sync: zooid sync worker started (%s)", app->cfg.zooid_api_url);
    *out = in;
    return 0;
}

void sync_worker_kick(struct sync_worker *in, const char *relay_id)
{
    ASSERT_LOOP_THREAD();
    if (!in || in->stopping || !relay_id)
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
    if (!in->stopping || in->active || in->reconciling || in->pending_closes)
        return;
    for (size_t b = 0; b < in->n_buckets; b++)
        while (in->buckets[b])
            entry_remove(in, in->buckets[b]);
    free(in->buckets);
    heap_free(&in->waits);
    void (*cb)(void *) = in->stop_cb;
    void *arg = in->stop_arg;
    secure_zero(&in->key, sizeof(in->key));
    free(in);
    LOG_INFO("sync: stopped");
    if (cb)
        cb(arg);
}

static void on_closed(uv_handle_t *h)
{
    struct sync_worker *in = h->data;
    in->pending_closes--;
    maybe_stopped(in);
}

static void on_fetch_closed(void *arg)
{
    struct sync_worker *in = arg;
    in->pending_closes--;
    maybe_stopped(in);
}

void sync_worker_stop(struct sync_worker *in, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (!in) {
        if (cb)
            cb(arg);
        return;
    }
    if (in->stopping)
        return;
    in->stopping = 1;
    app_off(in->app, APP_RELAY_CHANGED, in);
    app_remove_sampler(in->app, in);
    in->stop_cb = cb;
    in->stop_arg = arg;
    in->ready_head = in->ready_tail = NULL;
    in->n_ready = 0;
    in->pending_closes = 4;
    in->reconcile.data = in;
    in->wake.data = in;
    in->reopen.data = in;
    uv_close((uv_handle_t *)&in->reconcile, on_closed);
    uv_close((uv_handle_t *)&in->wake, on_closed);
    uv_close((uv_handle_t *)&in->reopen, on_closed);
    /* Requests in flight complete now with UV_ECANCELED; db jobs finish on their own. */
    fetch_close(in->fetch, on_fetch_closed, in);
}

/* ---- members ------------------------------------------------------------------------ */

struct members_req {
    sync_worker_members_cb *cb;
    void *arg;
};

/* An answer's members: {"members": ["<64 hex>", ...]}, else NULL. */
static const cJSON *members_of(const cJSON *root)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "members");
    const cJSON *item;
    if (!cJSON_IsArray(list))
        return NULL;
    cJSON_ArrayForEach(item, list)
    {
        if (!cJSON_IsString(item) || !hex_is_lower64(item->valuestring))
            return NULL;
    }
    return list;
}

static void on_members(int err, long status, const char *body, size_t len, void *arg)
{
    struct members_req *m = arg;
    char text[ZOOID_ERROR_TEXT_MAX + 1], what[ZOOID_ERROR_TEXT_MAX + 64];
    cJSON *root = NULL;
    const cJSON *list = NULL;
    enum sync_worker_members_status st = SYNC_MEMBERS_FAILED;
    if (err != 0) {
        snprintf(what, sizeof(what), "zooid: %s", err_str(err));
    } else if (status == 404 || status == 405) {
        st = SYNC_MEMBERS_UNKNOWN;
        snprintf(what, sizeof(what), "zooid: HTTP %ld", status);
    } else if (status != 200) {
        zooid_error_text(body, len, NULL, text, sizeof(text));
        snprintf(what, sizeof(what), "zooid: HTTP %ld%s%s", status, text[0] ? " " : "", text);
    } else if (!(list = members_of(root = cJSON_ParseWithLength(body, len)))) {
        snprintf(what, sizeof(what), "zooid: the answer is not {\"members\": [hex pubkeys]}");
    } else {
        st = SYNC_MEMBERS_OK;
        what[0] = '\0';
    }
    m->cb(st, list, what, m->arg);
    cJSON_Delete(root);
    free(m);
}

int sync_worker_members(struct sync_worker *in, const char *relay_id, sync_worker_members_cb *cb,
                        void *arg)
{
    if (!in || in->stopping)
        return -1;
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "%s/relay/%s/members", in->app->cfg.zooid_api_url, relay_id);
    char *url = buf_take(&b, NULL);
    char *auth = url ? nip98_auth_header(&in->key, url, "GET", "", 0, (int64_t)time(NULL)) : NULL;
    const char *headers[] = {auth, NULL};
    struct fetch_opts o = {.method = "GET",
                           .url = url,
                           .headers = headers,
                           .timeout_ms = in->timeout_ms,
                           .max_response = SYNC_MEMBERS_MAX_RESPONSE};
    struct members_req *m = xcalloc(1, sizeof(*m));
    m->cb = cb;
    m->arg = arg;
    int rc = auth ? fetch_start(in->fetch, &o, on_members, m, NULL) : -1;
    if (rc != 0)
        free(m);
    if (auth)
        secure_zero(auth, strlen(auth));
    free(auth);
    free(url);
    return rc != 0 ? -1 : 0;
}
