/* The member-count refresh (see worker.h).
 *
 * A slot holds one relay from its read until its answer is recorded; at most `max` slots
 * (MEMBERS_REFRESH_CONCURRENCY). Relays come only from a claim (one db_write at a time, which
 * also schedules their next read), so a relay is never read twice at once. A claim runs when
 * at least half the slots are free: from the timer (armed at the earliest next read, at most
 * a minute away), after an answer is recorded, and about a second after a relay was synced
 * (a new relay gets its place in the schedule). A failed read pauses new claims (1 s, doubling
 * to a minute) so a zooid that is down is not walked through relay by relay. */
#include "members/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "members/repo.h"
#include "metrics/metrics.h"
#include "robot/robot.h"
#include "sync/worker.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/stop.h"
#include "util/util.h"

#define MEMBERS_WAIT_MAX_MS 60000 /* the timer never sleeps longer (new relays, a moved clock) */
#define MEMBERS_SOON_MS 1000      /* after a relay was synced */
#define MEMBERS_PAUSE_BASE_MS 1000
#define MEMBERS_PAUSE_MAX_MS 60000

struct slot {
    struct members *m;
    int used;
    int known, dm;
    int64_t count, now;
    char id[33];
};

struct claim_job {
    struct members *m;
    int64_t now, interval, next_due;
    uint64_t seed;
    size_t max, n;
    char (*ids)[33];
};

struct members {
    struct app *app;
    uv_timer_t timer;
    uint64_t timer_at; /* clock_mono_ms() the timer fires at */
    struct slot *slots;
    size_t max, used, in_flight, db_jobs;
    int loading, again;
    int fail_streak;      /* failed reads in a row */
    uint64_t pause_until; /* clock_mono_ms(): no claim before */
    int64_t interval;     /* seconds */
    uint64_t seed;
    uint64_t counted, unknown, failed, dms;
    struct stop stop; /* members_stop: waits for the reads and db jobs in flight */
};

static void pump(struct members *m);

/* ---- the timer ---- */

static void on_timer(uv_timer_t *t)
{
    struct members *m = t->data;
    m->timer_at = 0;
    pump(m);
}

/* Fires in ms unless it already fires sooner. */
static void wake_within(struct members *m, uint64_t ms)
{
    uint64_t at = clock_mono_ms() + ms;
    if (m->stop.stopping || (m->timer_at && m->timer_at <= at))
        return;
    m->timer_at = at;
    uv_timer_start(&m->timer, on_timer, ms, 0);
}

/* ---- stopping ---- */

static void on_timer_closed(uv_handle_t *h)
{
    struct members *m = h->data;
    struct stop done = m->stop;
    free(m->slots);
    free(m);
    LOG_INFO("members: stopped");
    stop_finish(done);
}

static void maybe_finish(struct members *m)
{
    if (!stop_ready(&m->stop, m->in_flight || m->db_jobs))
        return;
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

static void release(struct slot *s)
{
    s->used = 0;
    s->m->used--;
}

/* After a slot's work ended: go on, or finish stopping. */
static void next(struct members *m)
{
    if (m->stop.stopping)
        maybe_finish(m);
    else
        pump(m);
}

/* ---- recording an answer ---- */

static int record_work(struct db_conn *conn, void *arg)
{
    struct slot *s = arg;
    struct members *m = s->m;
    return repo_members_record(conn, s->id, s->known, s->count, s->now, m->app->cfg.relay_domain,
                               &s->dm);
}

static void record_done(int status, void *arg)
{
    struct slot *s = arg;
    struct members *m = s->m;
    m->db_jobs--;
    if (status != 0 && status != DB_ENOTFOUND) {
        LOG_ERROR("members: relay %s: the count could not be recorded (%s)", s->id,
                  err_name(status));
    } else if (status == 0 && s->dm) {
        m->dms++;
        LOG_INFO("members: relay %s: %lld members, over its plan's cap: its owner is told (DM)",
                 s->id, (long long)s->count);
        metrics_inc(m->app->metrics, "caravel_members_over_cap_dms_total", NULL);
        robot_kick(m->app->robot);
    }
    release(s);
    next(m);
}

static void record(struct slot *s)
{
    struct members *m = s->m;
    m->db_jobs++;
    int rc = db_write_background(m->app->db, DB_CRASH_SAFE, record_work, record_done, s);
    if (rc != 0)
        record_done(rc, s);
}

/* ---- the read ---- */

static void read_failed(struct members *m, const char *id, const char *what)
{
    m->failed++;
    if (m->fail_streak++ == 0)
        LOG_WARN("members: relay %s: zooid's member count failed: %s (further failures in a row "
                 "are logged at debug level; reads pause and resume by themselves)",
                 id, what);
    else
        LOG_DEBUG("members: relay %s: zooid's member count failed: %s", id, what);
    int shift = m->fail_streak < 7 ? m->fail_streak - 1 : 6;
    uint64_t pause = (uint64_t)MEMBERS_PAUSE_BASE_MS << shift;
    if (pause > MEMBERS_PAUSE_MAX_MS)
        pause = MEMBERS_PAUSE_MAX_MS;
    m->pause_until = clock_mono_ms() + pause;
    wake_within(m, pause);
}

static void on_members(enum sync_worker_members_status st, const cJSON *list, const char *what,
                       void *arg)
{
    struct slot *s = arg;
    struct members *m = s->m;
    m->in_flight--;
    if (st == SYNC_MEMBERS_FAILED) {
        if (!m->stop.stopping &&
            !m->app->stopping) { /* else: cancelled by the sync worker's stop */
            metrics_inc(m->app->metrics, "caravel_members_reads_total", "result=\"failed\"");
            read_failed(m, s->id, what);
        }
        release(s);
        next(m);
        return;
    }
    if (m->fail_streak)
        LOG_INFO("members: zooid answers again (%d failed reads before)", m->fail_streak);
    m->fail_streak = 0;
    m->pause_until = 0;
    s->known = st == SYNC_MEMBERS_OK;
    s->now = clock_now();
    s->count = s->known ? cJSON_GetArraySize(list) : 0;
    if (s->known)
        m->counted++;
    else
        m->unknown++; /* no members endpoint (or no such relay): not an error */
    metrics_inc(m->app->metrics, "caravel_members_reads_total",
                s->known ? "result=\"counted\"" : "result=\"unknown\"");
    LOG_DEBUG("members: relay %s: %s", s->id, s->known ? "counted" : what);
    record(s);
}

/* ---- claiming due relays ---- */

static int claim_work(struct db_conn *conn, void *arg)
{
    struct claim_job *j = arg;
    return repo_members_claim(conn, j->now, j->interval, j->seed, j->ids, j->max, &j->n,
                              &j->next_due);
}

static struct slot *free_slot(struct members *m)
{
    for (size_t i = 0; i < m->max; i++)
        if (!m->slots[i].used)
            return &m->slots[i];
    return NULL;
}

static void start_reads(struct members *m, struct claim_job *j)
{
    /* Shutting down (the sync worker may be stopping): the claimed relays are read at their
     * next turn. */
    for (size_t i = 0; i < j->n && !m->stop.stopping && !m->app->stopping; i++) {
        struct slot *s = free_slot(m);
        DEBUG_ASSERT(s != NULL); /* a claim asks for at most the free slots */
        if (!s)
            break;
        memset(s, 0, sizeof(*s));
        s->m = m;
        s->used = 1;
        m->used++;
        snprintf(s->id, sizeof(s->id), "%s", j->ids[i]);
        if (sync_worker_members(m->app->sync, s->id, on_members, s) == 0) {
            m->in_flight++;
        } else {
            read_failed(m, s->id, "the request could not start");
            release(s);
        }
    }
}

static void claim_done(int status, void *arg)
{
    struct claim_job *j = arg;
    struct members *m = j->m;
    m->db_jobs--;
    m->loading = 0;
    if (status != 0)
        LOG_ERROR("members: could not claim the due relays (%s)", err_name(status));
    else
        start_reads(m, j);
    /* The earliest next read, in the claim's clock (clock_now may be a test's fake clock). */
    uint64_t wait = MEMBERS_WAIT_MAX_MS;
    if (status == 0 && j->next_due > 0 && (j->next_due - j->now) * 1000 < MEMBERS_WAIT_MAX_MS)
        wait = j->next_due > j->now ? (uint64_t)(j->next_due - j->now) * 1000 : MEMBERS_SOON_MS;
    wake_within(m, wait);
    int more = status == 0 && j->n == j->max;
    free(j->ids);
    free(j);
    if (m->stop.stopping) {
        maybe_finish(m);
    } else if (m->again || more) {
        m->again = 0;
        pump(m);
    }
}

static void pump(struct members *m)
{
    if (m->stop.stopping || m->app->stopping)
        return;
    if (m->loading) {
        m->again = 1;
        return;
    }
    size_t free_n = m->max - m->used;
    /* While reads are in flight, wait until half the slots are free: one claim then starts
     * several reads instead of one per answer. */
    if (free_n == 0 || (m->used > 0 && free_n < (m->max + 1) / 2))
        return;
    uint64_t now = clock_mono_ms();
    if (m->pause_until > now) {
        wake_within(m, m->pause_until - now);
        return;
    }
    struct sync_worker_stats st;
    sync_worker_stats(m->app->sync, &st);
    if (st.breaker_state != 0) { /* zooid fails every sync: do not add to it */
        wake_within(m, MEMBERS_PAUSE_BASE_MS);
        return;
    }
    struct claim_job *j = xcalloc(1, sizeof(*j));
    j->m = m;
    j->now = clock_now();
    j->interval = m->interval;
    j->seed = m->seed++;
    j->max = free_n;
    j->ids = xcalloc(free_n, sizeof(*j->ids));
    m->loading = 1;
    m->db_jobs++;
    int rc = db_write_background(m->app->db, DB_CRASH_SAFE, claim_work, claim_done, j);
    if (rc != 0)
        claim_done(rc, j);
}

/* ---- life cycle ---- */

/* APP_RELAY_SYNCED: a relay zooid now serves (maybe a new one) gets its place soon; many at
 * once (a mass sync) make one claim, not one each. */
static void on_relay_synced(void *owner, const char *id)
{
    (void)id;
    wake_within(owner, MEMBERS_SOON_MS);
}

int members_start(struct members **out, struct app *app)
{
    ASSERT_LOOP_THREAD();
    *out = NULL;
    if (!app->sync)
        return 0; /* no zooid: nothing to ask (the sync worker logs why) */
    struct members *m = xcalloc(1, sizeof(*m));
    m->app = app;
    m->max = (size_t)app->cfg.members_refresh_concurrency;
    m->interval = app->cfg.members_refresh_interval;
    m->seed = clock_mono_ms() ^ (uint64_t)clock_now();
    m->slots = xcalloc(m->max, sizeof(*m->slots));
    uv_timer_init(app->loop, &m->timer);
    m->timer.data = m;
    app_on(app, APP_RELAY_SYNCED, on_relay_synced, m);
    wake_within(m, MEMBERS_SOON_MS);
    LOG_INFO("members: counts refreshed every %lld s, at most %zu reads at once",
             (long long)m->interval, m->max);
    *out = m;
    return 0;
}

void members_stats(const struct members *m, struct members_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!m)
        return;
    out->in_flight = m->in_flight;
    out->counted = m->counted;
    out->unknown = m->unknown;
    out->failed = m->failed;
    out->dms = m->dms;
}

void members_stop(struct members *m, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_enter(m ? &m->stop : NULL, cb, arg) != 0)
        return;
    uv_timer_stop(&m->timer);
    app_off(m->app, APP_RELAY_SYNCED, m);
    maybe_finish(m);
}
