/* What the sync worker says to zooid (PRODUCT.md §5): one relay's sync (load the row, POST /
 * PUT / PATCH its config as zooid_classify decides, record the outcome, every answer past the
 * circuit breaker first) and the members request. Loop thread only. The scheduling around a
 * sync (slots, queue, retries, stop) is in worker.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "metrics/metrics.h"
#include "net/fetch.h"
#include "nostr/hex.h"
#include "nostr/nip98.h"
#include "sync/internal.h"
#include "sync/worker.h"
#include "sync/zooid.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

static void send_step(struct entry *e, const char *method);

/* A db job could not even be queued: try again after the base delay, in memory only. */
static void retry_later(struct entry *e, int rc)
{
    LOG_WARN("sync: relay %s: database unavailable (%s), retrying", e->id, err_name(rc));
    e->retry_at = clock_mono_ms() + (uint64_t)e->in->retry_base_ms;
    sw_finish(e);
}

/* Records the sync's outcome (one crash-safe write); a write that cannot even be queued is
 * retried in memory after the base delay. */
static void record(struct entry *e, db_work_fn *work, db_done_cb *done, struct job *j)
{
    int rc = db_write_background(e->in->app->db, DB_CRASH_SAFE, work, done, j);
    if (rc != 0) {
        sw_job_free(j);
        retry_later(e, rc);
    }
}

/* Every outcome is recorded with the claim let go in the same transaction. */
static int release(struct db_conn *conn, struct job *j, int rc)
{
    return rc != 0 ? rc : repo_sync_release(conn, j->id, j->in->owner);
}

static int fail_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return release(conn, j,
                   repo_sync_fail(conn, j->id, j->error, j->now, j->in->retry_base_ms,
                                  j->in->retry_cap_ms, &j->attempts, &j->delay_ms));
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
    sw_job_free(j);
    sw_finish(e);
}

__attribute__((format(printf, 2, 3))) static void fail(struct entry *e, const char *fmt, ...)
{
    struct job *j = sw_job_new(e->in, e);
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
    record(e, fail_work, on_failed, j);
}

static int fail_permanent_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return release(conn, j,
                   repo_sync_fail_permanent(conn, j->id, j->error, j->now, SYNC_MAX_ATTEMPTS));
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
    sw_job_free(j);
    sw_finish(e);
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
    struct job *j = sw_job_new(e->in, e);
    struct buf b;
    buf_init(&b, SYNC_ERROR_MAX);
    buf_printf(&b, "zooid %s: HTTP %ld%s%s (not retried: %s)", e->method, status,
               text[0] ? " " : "", text, hint);
    if (!b.len)
        buf_printf(&b, "zooid %s: HTTP %ld (not retried)", e->method, status);
    j->error = buf_take(&b, NULL);
    j->status = status;
    record(e, fail_permanent_work, on_failed_permanent, j);
}

static int complete_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    return release(conn, j,
                   repo_sync_complete(conn, j->id, j->version, j->config, j->now, &j->stale));
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
    sw_job_free(j);
    sw_finish(e);
}

static void succeed(struct entry *e)
{
    struct job *j = sw_job_new(e->in, e);
    j->version = e->relay.sync_version;
    j->config = e->state ? xstrdup(e->state) : NULL;
    record(e, complete_work, on_completed, j);
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
        sw_finish(e); /* sync_worker_stop */
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
            uv_timer_start(&in->reopen, sw_on_breaker_reopen, breaker_wait_ms(&in->breaker, now),
                           0);
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

/* The claim and the row in one write: of the instances sharing the database, one syncs it. */
static int load_work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    sync_relay_free(&j->e->relay); /* the job may run again (DB_EBUSY) */
    return repo_sync_claim(conn, j->id, j->in->owner, j->now_ms, j->now_ms + j->in->lease_ms,
                           SYNC_MAX_ATTEMPTS, &j->e->relay, &j->held_until);
}

static void on_loaded(int status, void *arg)
{
    struct job *j = arg;
    struct entry *e = j->e;
    int64_t held_ms = j->held_until ? j->held_until - j->now_ms : 0;
    sw_job_free(j);
    if (e->in->stop.stopping || status == DB_ENOTFOUND) {
        sw_finish(e);
    } else if (status != 0) {
        retry_later(e, status);
    } else if (held_ms > 0) {
        /* Another instance is syncing it: look again when its claim ends (it finishes, or it
         * died and the claim expires; then this one takes it over). */
        LOG_DEBUG("sync: relay %s: another instance syncs it (claim ends in %lld ms)", e->id,
                  (long long)held_ms);
        e->retry_at = clock_mono_ms() + (uint64_t)held_ms + SYNC_CLAIM_MARGIN_MS;
        sw_finish(e);
    } else if (e->relay.synced || e->relay.sync_attempts >= SYNC_MAX_ATTEMPTS) {
        sw_finish(e); /* nothing to do, or given up until POST /relays/:id/sync */
    } else {
        e->steps = 0;
        e->state = zooid_config_json(&e->relay, &e->in->app->cfg, ZOOID_BODY_STATE);
        send_step(e, e->relay.sync_created ? "PATCH" : "POST");
    }
}

void sw_start_sync(struct sync_worker *in, struct entry *e)
{
    DEBUG_ASSERT(!e->in_flight && !list_linked(&e->ready));
    e->in_flight = 1;
    in->active++;
    struct job *j = sw_job_new(in, e);
    int rc = db_write_background(in->app->db, DB_CRASH_SAFE, load_work, on_loaded, j);
    if (rc != 0) {
        sw_job_free(j);
        retry_later(e, rc);
    }
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
    if (!in || in->stop.stopping)
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
