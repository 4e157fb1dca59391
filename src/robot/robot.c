/* The robot (PRODUCT.md §6; see robot.h): profile and relay lists at start-up, and the DM outbox.
 *
 * Delivery of one message: load due rows (db_read) -> discover the recipient's 10050
 * relays -> build the gift wrap once and store it (db_write) -> publish it to each relay
 * separately -> the first OK marks the row sent (db_write); no OK at all records the error
 * and the next attempt time. Because the stored wrap is republished on every retry, a crash
 * between a relay's OK and our COMMIT makes the retry a "duplicate" for that relay, never a
 * second DM. */
#include "robot/robot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/wake.h"
#include "db/claims.h"
#include "db/db.h"
#include "db/notify.h"
#include "net/relay_pool.h"
#include "nostr/hex.h"
#include "nostr/nip59.h"
#include "robot/discover.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/stop.h"
#include "util/util.h"

#define BATCH 8
#define POLL_MS 30000
#define RETRY_BASE_S 30
#define RETRY_MAX_S 3600
#define MAX_ERROR 200
/* A batch of DMs is claimed (message.claim_owner) for this long: beyond the time its
 * discoveries and publishes take. Should it expire under a live instance anyway, the other
 * publishes the same stored gift wrap (work_store_wrap), which relays keep once. */
#define LEASE_MS (2 * 60 * 1000)
/* Another instance's claim is looked at again this long after it ends. */
#define CLAIM_MARGIN_MS 250

struct dm {
    int64_t id;
    char recipient[65];
    char *body;
    char *wrap; /* stored gift wrap JSON, or NULL */
    int64_t attempts;
};

struct robot {
    struct app *app;
    uv_timer_t timer;
    struct discover *disc;
    int enabled, running, rerun;
    int busy;          /* db jobs and publishes in flight */
    const char *owner; /* db_instance(): this process in message.claim_owner */
    int64_t lease_ms;
    int64_t held_ms;  /* the last claim saw DMs due that another instance holds this much longer */
    struct stop stop; /* robot_stop: pending while the timer closes; waits for busy and running */
    /* the batch being delivered */
    struct dm batch[BATCH];
    size_t n_batch, cur;
    /* the message being published */
    size_t pub_pending, pub_ok;
    int marked_sent;
    char last_error[MAX_ERROR + 1];
    struct dm_relays relays; /* copy of the current recipient's DM relays */
};

struct db_job {
    struct robot *robot;
    int64_t id, now, next_at;
    int64_t now_ms, held_until; /* the claim (unix ms): now; another instance's earliest end */
    char *text;                 /* wrap JSON or error */
    struct dm rows[BATCH];
    size_t n;
};

static void next_message(struct robot *r);
static void settle(struct robot *r);
static void on_timer(uv_timer_t *t);

/* ---- start-up publications ---- */

static void on_profile_published(size_t ok, size_t failed, const char *err, void *arg)
{
    struct robot *r = arg;
    r->busy--;
    if (ok == 0)
        LOG_WARN("robot: profile/relay list not accepted by any relay (%zu failed): %.*s", failed,
                 MAX_ERROR, err ? err : "?");
    settle(r);
}

static void publish_event(struct robot *r, struct nostr_event *ev, const struct relay_list *a,
                          const struct relay_list *b, const struct relay_list *c)
{
    const char *urls[3 * CONFIG_MAX_LIST];
    size_t n = 0;
    const struct relay_list *lists[3] = {a, b, c};
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; lists[l] && i < lists[l]->n; i++)
            urls[n++] = lists[l]->urls[i];
    if (nostr_event_sign(ev, &r->app->robot_key) == 0 &&
        relay_pool_publish(r->app->pool, urls, n, ev, &r->app->robot_key, on_profile_published,
                           r) == 0)
        r->busy++;
}

static void publish_profile(struct robot *r)
{
    const struct config *cfg = &r->app->cfg;
    struct nostr_event ev;
    cJSON *meta = cJSON_CreateObject();
    if (cfg->robot_name)
        cJSON_AddStringToObject(meta, "name", cfg->robot_name);
    if (cfg->robot_description)
        cJSON_AddStringToObject(meta, "about", cfg->robot_description);
    if (cfg->robot_picture)
        cJSON_AddStringToObject(meta, "picture", cfg->robot_picture);
    char *content = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);

    nostr_event_init(&ev);
    ev.kind = 0;
    ev.created_at = clock_now();
    nostr_event_set_content(&ev, content, strlen(content));
    cJSON_free(content);
    publish_event(r, &ev, &cfg->outbox_relays, &cfg->indexer_relays, NULL);
    nostr_event_free(&ev);

    nostr_event_init(&ev);
    ev.kind = 10002;
    ev.created_at = clock_now();
    for (size_t i = 0; i < cfg->outbox_relays.n; i++)
        nostr_event_add_tag2(&ev, "r", cfg->outbox_relays.urls[i]);
    publish_event(r, &ev, &cfg->outbox_relays, &cfg->indexer_relays, NULL);
    nostr_event_free(&ev);

    nostr_event_init(&ev);
    ev.kind = 10050;
    ev.created_at = clock_now();
    for (size_t i = 0; i < cfg->messaging_relays.n; i++)
        nostr_event_add_tag2(&ev, "relay", cfg->messaging_relays.urls[i]);
    publish_event(r, &ev, &cfg->outbox_relays, &cfg->indexer_relays, &cfg->messaging_relays);
    nostr_event_free(&ev);
}

/* ---- SQL (pool thread) ---- */

int robot_queue_dm_sql(struct db_conn *conn, const char *recipient, const char *text, int64_t now)
{
    int rc = db_run(conn,
                    "INSERT INTO message (recipient, body, state, attempts, next_at,"
                    " created_at) VALUES (?, ?, 'queued', 0, 0, ?)",
                    DB_TEXT(recipient), DB_TEXT(text), DB_INT(now));
    /* The caller kicks this instance's robot after the commit; the others hear it. */
    return rc != 0 ? rc : app_publish(conn, APP_DM_QUEUED, "");
}

static void rows_free(struct db_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->rows[i].body);
        free(j->rows[i].wrap);
    }
    memset(j->rows, 0, sizeof j->rows);
    j->n = 0;
}

/* The earliest end of another instance's claim on a DM that is due (0: none). */
static int held_until(struct db_conn *conn, struct db_job *j)
{
    struct db_stmt *st = db_query(conn,
                                  "SELECT min(claim_until) FROM message WHERE state = 'queued'"
                                  " AND next_at <= ?1 AND claim_owner IS NOT NULL"
                                  " AND claim_owner <> ?2 AND claim_until > ?3",
                                  DB_INT(j->now), DB_TEXT(j->robot->owner), DB_INT(j->now_ms));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    j->held_until = rc == DB_ROW ? db_col_int64(st, 0) : 0;
    db_reset(st);
    return db_status(rc);
}

/* Claims up to BATCH due DMs nobody else holds (none, or an expired claim) and reads them: of
 * the instances sharing the database, each DM goes to one. The claim's condition is repeated
 * outside the subquery: PostgreSQL re-checks it on a row another instance's claim has just
 * committed, and leaves that row out. */
static int work_load_due(struct db_conn *conn, void *arg)
{
    struct db_job *j = arg;
    const char *owner = j->robot->owner;
    int64_t until = j->now_ms + j->robot->lease_ms;
    rows_free(j); /* the job may run again (DB_EBUSY) */
    int rc =
        db_run(conn,
               "UPDATE message SET claim_owner = ?1, claim_until = ?2 WHERE id IN"
               " (SELECT id FROM message WHERE state = 'queued' AND next_at <= ?3"
               " AND (claim_owner IS NULL OR claim_until <= ?4) ORDER BY next_at, id"
               " LIMIT ?5) AND state = 'queued' AND (claim_owner IS NULL OR claim_until <= ?4)",
               DB_TEXT(owner), DB_INT(until), DB_INT(j->now), DB_INT(j->now_ms), DB_INT(BATCH));
    if (rc != 0 || (rc = held_until(conn, j)) != 0)
        return rc;
    struct db_stmt *st = db_query(conn,
                                  "SELECT id, recipient, body, wrap, attempts FROM message "
                                  "WHERE claim_owner = ? AND claim_until = ? AND state = 'queued' "
                                  "ORDER BY next_at, id LIMIT ?",
                                  DB_TEXT(owner), DB_INT(until), DB_INT(BATCH));
    if (!st)
        return DB_EGENERIC;
    while ((rc = db_step(st)) == DB_ROW && j->n < BATCH) {
        struct dm *m = &j->rows[j->n++];
        char *rcpt = db_col_text(st, 1);
        m->id = db_col_int64(st, 0);
        snprintf(m->recipient, sizeof m->recipient, "%s", rcpt ? rcpt : "");
        free(rcpt);
        m->body = db_col_text(st, 2);
        m->wrap = db_col_text(st, 3);
        m->attempts = db_col_int64(st, 4);
    }
    db_reset(st);
    return rc == DB_DONE || rc == DB_ROW ? 0 : db_status(rc);
}

/* Start-up: lets go of the DM claims of instances that are certainly gone (db_instance_gone),
 * or of all of them when the database is not shared (j->id: db_shared). */
static int work_release_stale(struct db_conn *conn, void *arg)
{
    struct db_job *j = arg;
    int64_t n = 0;
    return db_claims_release_stale(conn, DB_CLAIM_DM, j->id != 0, &n);
}

/* Stores the wrap unless one is stored already (an instance whose claim expired under it),
 * and reads back the stored one: the only wrap ever published for the message, so a DM
 * delivered twice is the same event, which relays keep once. */
static int work_store_wrap(struct db_conn *conn, void *arg)
{
    struct db_job *j = arg;
    int rc = db_run(conn, "UPDATE message SET wrap = ? WHERE id = ? AND wrap IS NULL",
                    DB_TEXT(j->text), DB_INT(j->id));
    if (rc != 0)
        return rc;
    struct db_stmt *st = db_query(conn, "SELECT wrap FROM message WHERE id = ?", DB_INT(j->id));
    if (!st)
        return DB_EGENERIC;
    if ((rc = db_step(st)) == DB_ROW) {
        char *stored = db_col_text(st, 0);
        if (stored) {
            free(j->text);
            j->text = stored;
        }
    }
    db_reset(st);
    return rc == DB_ROW ? 0 : rc == DB_DONE ? DB_ENOTFOUND : rc;
}

static int work_mark_sent(struct db_conn *conn, void *arg)
{
    struct db_job *j = arg;
    return db_run(conn,
                  "UPDATE message SET state = 'sent', sent_at = ?, last_error = NULL, "
                  "attempts = attempts + 1, claim_owner = NULL, claim_until = 0 "
                  "WHERE id = ? AND state = 'queued'",
                  DB_INT(j->now), DB_INT(j->id));
}

static int work_mark_retry(struct db_conn *conn, void *arg)
{
    struct db_job *j = arg;
    return db_run(conn,
                  "UPDATE message SET last_error = ?, next_at = ?, attempts = attempts + 1,"
                  " claim_owner = NULL, claim_until = 0 WHERE id = ? AND state = 'queued'",
                  DB_TEXT(j->text), DB_INT(j->next_at), DB_INT(j->id));
}

static int work_mark_failed(struct db_conn *conn, void *arg)
{
    struct db_job *j = arg;
    return db_run(conn,
                  "UPDATE message SET state = 'failed', last_error = ?, next_at = ?,"
                  " claim_owner = NULL, claim_until = 0 WHERE id = ? AND state = 'queued'",
                  DB_TEXT(j->text), DB_INT(j->next_at), DB_INT(j->id));
}

/* ---- the worker ---- */

static struct db_job *job_new(struct robot *r, int64_t id)
{
    struct db_job *j = xcalloc(1, sizeof *j);
    j->robot = r;
    j->id = id;
    j->now = clock_now();
    j->now_ms = clock_wall_ms();
    return j;
}

static void job_free(struct db_job *j)
{
    rows_free(j);
    free(j->text);
    free(j);
}

static void relays_clear(struct dm_relays *rl)
{
    for (size_t i = 0; i < rl->n; i++)
        free(rl->urls[i]);
    rl->n = 0;
}

static void batch_clear(struct robot *r)
{
    for (size_t i = 0; i < r->n_batch; i++) {
        free(r->batch[i].body);
        free(r->batch[i].wrap);
    }
    memset(r->batch, 0, sizeof r->batch);
    r->n_batch = r->cur = 0;
    relays_clear(&r->relays);
}

static int64_t retry_delay(const struct robot *r, int64_t attempts)
{
    int64_t base = config_or(r->app->cfg.test.robot_retry_base_s, RETRY_BASE_S);
    int64_t d = base << MIN(attempts, (int64_t)12);
    return MIN(d, (int64_t)RETRY_MAX_S);
}

/* Completion of every asynchronous step ends here: finishes robot_stop when idle. */
static void settle(struct robot *r)
{
    if (!stop_ready(&r->stop, r->busy > 0 || r->running))
        return;
    batch_clear(r);
    discover_free(r->disc);
    struct stop done = r->stop;
    free(r);
    stop_finish(done);
}

static int submit_write(struct robot *r, db_work_fn *fn, struct db_job *j, db_done_cb *done)
{
    if (db_write_background(r->app->db, DB_POWER_SAFE, fn, done, j) != 0) {
        LOG_WARN("robot: database refused the outbox update for message %lld", (long long)j->id);
        job_free(j);
        return -1;
    }
    r->busy++;
    return 0;
}

static void on_db_step_done(int status, void *arg)
{
    struct db_job *j = arg;
    struct robot *r = j->robot;
    r->busy--;
    if (status != 0)
        LOG_WARN("robot: outbox update for message %lld failed (%s)", (long long)j->id,
                 err_name(status));
    job_free(j);
    settle(r);
}

/* The message could not be delivered this time: record why and when to retry. */
static void message_failed(struct robot *r, const char *why, int permanent)
{
    struct dm *m = &r->batch[r->cur];
    struct db_job *j = job_new(r, m->id);
    j->text = xstrndup(why, strnlen(why, MAX_ERROR)); /* xstrndup copies exactly n bytes */
    j->next_at = j->now + retry_delay(r, m->attempts);
    LOG_WARN("robot: DM %lld to %.16s... not delivered (attempt %lld): %s", (long long)m->id,
             m->recipient, (long long)m->attempts + 1, j->text);
    submit_write(r, permanent ? work_mark_failed : work_mark_retry, j, on_db_step_done);
    r->cur++;
    next_message(r);
}

static void on_dm_published(size_t ok, size_t failed, const char *err, void *arg)
{
    struct robot *r = arg;
    struct dm *m = &r->batch[r->cur];
    (void)failed;
    r->busy--;
    r->pub_pending--;
    if (ok && !r->marked_sent) {
        /* The first OK commits 'sent' at once; the other relays are a bonus. */
        r->marked_sent = 1;
        submit_write(r, work_mark_sent, job_new(r, m->id), on_db_step_done);
        LOG_INFO("robot: DM %lld delivered to %.16s...", (long long)m->id, m->recipient);
    }
    if (!ok && err)
        snprintf(r->last_error, sizeof r->last_error, "%s", err);
    if (r->pub_pending)
        return;
    if (r->marked_sent) {
        r->cur++;
        next_message(r);
    } else {
        message_failed(r, r->last_error[0] ? r->last_error : "no relay accepted the DM", 0);
    }
}

static void publish_wrap(struct robot *r)
{
    struct dm *m = &r->batch[r->cur];
    struct nostr_event wrap;
    nostr_event_init(&wrap);
    if (nostr_event_parse(&wrap, m->wrap, strlen(m->wrap)) != 0) {
        nostr_event_free(&wrap);
        message_failed(r, "stored gift wrap unreadable", 1);
        return;
    }
    r->pub_pending = 0;
    r->marked_sent = 0;
    r->last_error[0] = '\0';
    /* One publish per relay, so the first OK can be committed without waiting for the rest;
     * the counter goes up before any callback can run (they never run synchronously). */
    for (size_t i = 0; i < r->relays.n; i++) {
        const char *url = r->relays.urls[i];
        if (relay_pool_publish(r->app->pool, &url, 1, &wrap, &r->app->robot_key, on_dm_published,
                               r) == 0) {
            r->busy++;
            r->pub_pending++;
        }
    }
    nostr_event_free(&wrap);
    if (r->pub_pending == 0)
        message_failed(r, "could not publish to any DM relay", 0);
}

static void on_wrap_stored(int status, void *arg)
{
    struct db_job *j = arg;
    struct robot *r = j->robot;
    r->busy--;
    if (status == 0 && !r->stop.stopping && j->text) {
        struct dm *m = &r->batch[r->cur];
        free(m->wrap); /* the stored one is published, whoever built it */
        m->wrap = j->text;
        j->text = NULL;
    }
    job_free(j);
    if (r->stop.stopping) {
        r->running = 0;
        settle(r);
    } else if (status != 0) {
        message_failed(r, "could not store the gift wrap", 0);
    } else {
        publish_wrap(r);
    }
}

/* Builds the gift wrap once and commits it before the first publish. */
static void make_wrap(struct robot *r)
{
    struct dm *m = &r->batch[r->cur];
    struct nostr_event wrap;
    uint8_t rcpt[32];
    nostr_event_init(&wrap);
    if (hex_decode(m->recipient, strlen(m->recipient), rcpt, 32) != 0 ||
        nip17_wrap_dm(&r->app->robot_key, rcpt, m->body ? m->body : "", clock_now(), &wrap)) {
        nostr_event_free(&wrap);
        message_failed(r, "cannot build the gift wrap (bad recipient?)", 1);
        return;
    }
    m->wrap = nostr_event_to_json(&wrap, 1);
    nostr_event_free(&wrap);
    struct db_job *j = job_new(r, m->id);
    j->text = xstrdup(m->wrap);
    if (submit_write(r, work_store_wrap, j, on_wrap_stored) != 0) {
        r->cur++; /* stays queued: the next run retries it */
        next_message(r);
    }
}

static void on_relays(const struct dm_relays *relays, void *arg)
{
    struct robot *r = arg;
    if (r->stop.stopping)
        return; /* robot_stop already let go of this run */
    if (relays->n == 0) {
        message_failed(r, "recipient has no kind 10050 DM relay list", 0);
        return;
    }
    relays_clear(&r->relays);
    for (size_t i = 0; i < relays->n; i++)
        r->relays.urls[r->relays.n++] = xstrdup(relays->urls[i]);
    if (r->batch[r->cur].wrap)
        publish_wrap(r);
    else
        make_wrap(r);
}

static void next_message(struct robot *r)
{
    if (r->stop.stopping) {
        r->running = 0;
        settle(r);
        return;
    }
    if (r->cur >= r->n_batch) {
        int more = r->n_batch == BATCH || r->rerun;
        batch_clear(r);
        r->running = 0;
        r->rerun = 0;
        if (more)
            robot_kick(r);
        else if (r->held_ms > 0 && r->held_ms < POLL_MS)
            /* Another instance holds due DMs: if it died, take them over when its claim ends
             * rather than at the next poll. */
            uv_timer_start(&r->timer, on_timer, (uint64_t)r->held_ms + CLAIM_MARGIN_MS, POLL_MS);
        return;
    }
    struct dm *m = &r->batch[r->cur];
    if (!hex_is_lower64(m->recipient)) {
        message_failed(r, "recipient is not a 64-hex pubkey", 1);
        return;
    }
    if (discover_dm_relays(r->disc, m->recipient, on_relays, r) != 0)
        message_failed(r, "relay discovery busy", 0);
}

static void on_loaded(int status, void *arg)
{
    struct db_job *j = arg;
    struct robot *r = j->robot;
    r->busy--;
    if (status == 0 && !r->stop.stopping) {
        memcpy(r->batch, j->rows, sizeof j->rows);
        r->n_batch = j->n;
        j->n = 0; /* rows moved */
        r->held_ms = j->held_until ? MAX(j->held_until - j->now_ms, (int64_t)0) : 0;
    }
    job_free(j);
    if (status != 0)
        LOG_WARN("robot: cannot read the outbox (%s)", err_name(status));
    r->cur = 0;
    next_message(r);
}

static void run_batch(struct robot *r)
{
    if (r->running) {
        r->rerun = 1;
        return;
    }
    struct db_job *j = job_new(r, 0);
    if (db_write_background(r->app->db, DB_CRASH_SAFE, work_load_due, on_loaded, j) != 0) {
        job_free(j);
        return;
    }
    r->busy++;
    r->running = 1;
}

static void on_timer(uv_timer_t *t)
{
    run_batch(t->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct robot *r = h->data;
    stop_release(&r->stop);
    settle(r);
}

void robot_kick(struct robot *r)
{
    ASSERT_LOOP_THREAD();
    /* From the timer, never from the caller's stack (callers may be inside db callbacks). */
    if (r && r->enabled && !r->stop.stopping)
        uv_timer_start(&r->timer, on_timer, 0, POLL_MS);
}

static void on_dm_event(void *owner, const char *id)
{
    (void)id;
    robot_kick(owner);
}

int robot_start(struct robot **out, struct app *app)
{
    ASSERT_LOOP_THREAD();
    const struct config *cfg = &app->cfg;
    struct robot *r = xcalloc(1, sizeof *r);
    r->app = app;
    uv_timer_init(app->loop, &r->timer);
    r->timer.data = r;
    *out = r;
    if (!cfg->outbox_relays.n || !cfg->indexer_relays.n || !cfg->messaging_relays.n || !app->pool ||
        !app->db) {
        LOG_WARN("robot: set ROBOT_OUTBOX_RELAYS, ROBOT_INDEXER_RELAYS and "
                 "ROBOT_MESSAGING_RELAYS to publish the robot's profile and deliver DMs; "
                 "until then DMs stay queued");
        return 0;
    }
    r->enabled = 1;
    r->owner = db_instance();
    r->lease_ms = config_or(cfg->test.claim_lease_ms, LEASE_MS);
    /* Another instance queued a DM, or its wake-ups may have been missed (core/wake.h). */
    app_on(app, APP_DM_QUEUED, on_dm_event, r);
    app_on(app, APP_RECONCILE, on_dm_event, r);
    r->disc = discover_new(app->pool, (const char *const *)cfg->indexer_relays.urls,
                           cfg->indexer_relays.n, &app->robot_key);
    publish_profile(r);
    /* Queued before the first batch's claim: the writer runs them in order. */
    submit_write(r, work_release_stale, job_new(r, db_shared(app->db)), on_db_step_done);
    uv_timer_start(&r->timer, on_timer, 0, POLL_MS);
    return 0;
}

void robot_stop(struct robot *r, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_begin(&r->stop, cb, arg) != 0)
        return;
    app_off(r->app, APP_DM_QUEUED, r);
    app_off(r->app, APP_RECONCILE, r);
    /* A running discovery ends without its callback: the message stays queued. */
    if (r->disc && r->running && r->busy == 0)
        r->running = 0;
    stop_hold(&r->stop);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
