/* The block-list rollout (see worker.h).
 *
 * A slot holds one row from the moment its call starts until the answer is recorded, so a row
 * is never sent twice at once and never reloaded before it is marked. At most `max` slots
 * (BLOCKLIST_CONCURRENCY). One due query at a time; a trigger during it asks for one more.
 * Calls start only from a due query's answer, BL_STARTS_PER_TURN per loop turn (the query counts
 * as running until all its rows were looked at), so a row released while that query ran (its
 * answer committed after the query's snapshot) is remembered in `recent` and skipped. The due
 * query runs in the database's list lane (db_read_list): its key derivations never hold up the
 * point reads of the API. */
#include "blocklist/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "blocklist/repo.h"
#include "core/app.h"
#include "db/db.h"
#include "net/nip86.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

#define BL_TICK_MS 1000
#define BL_RETRY_BASE_MS 2000
#define BL_RETRY_CAP_FACTOR 300 /* 2 s x 300 = 10 min */
#define BL_LOAD_FACTOR                                                                             \
    2 /* rows read per due query: 2 x the slots (a query runs with at                              \
       * least half of them free, so at most max/2 rows are busy) */
/* Calls started per loop turn: each one signs a NIP-98 event on the loop (two scalar
 * multiplications), so a due query's rows are started a few at a time, with the loop's I/O
 * (the API) served in between, instead of all in one callback. */
#define BL_STARTS_PER_TURN 4

struct slot {
    struct blocklist *b;
    int used;
    int ok;                     /* the relay confirmed */
    char what[200];             /* why it failed */
    int64_t next_at;            /* retry time (unix ms) after a failure */
    uint64_t t_start, t_answer; /* clock_mono_ms: call started, answer came (debug log) */
    struct bl_item item;        /* holds the relay's key: wiped when the slot is released */
};

/* A row released (its answer recorded) while a due query runs: that query's snapshot may still
 * show it pending, so it must not be started from that answer. */
struct row_key {
    char id[33];
    char pubkey[65];
};

struct load_job {
    struct blocklist *b;
    int64_t now;
    size_t n, cap;
    size_t next, started; /* rows looked at, calls started (start_some) */
    struct bl_item *items;
};

struct relay_job {
    struct blocklist *b;
    char id[33];
};

struct blocklist {
    struct app *app;
    struct nip86 *nip86;
    uv_timer_t tick;
    uv_timer_t starter;       /* the next turn of start_some */
    struct load_job *pending; /* a due query's rows being started, BL_STARTS_PER_TURN a turn */
    int open_handles;
    struct slot *slots;
    struct row_key *recent; /* released during the current due query (at most max) */
    size_t n_recent;
    size_t max, used, in_flight, peak;
    int loading, again;
    size_t db_jobs;
    int stopping, nip86_closed, closing;
    void (*stop_cb)(void *);
    void *stop_arg;
    uint64_t applied, failed, since_idle;
    int64_t retry_base_ms;
};

static void pump(struct blocklist *b);

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- stopping ---- */

static void on_tick_closed(uv_handle_t *h)
{
    struct blocklist *b = h->data;
    if (--b->open_handles > 0)
        return;
    void (*cb)(void *) = b->stop_cb;
    void *arg = b->stop_arg;
    free(b->slots);
    free(b->recent);
    free(b);
    if (cb)
        cb(arg);
}

static void maybe_finish(struct blocklist *b)
{
    if (!b->stopping || !b->nip86_closed || b->db_jobs || b->pending || b->closing)
        return;
    b->closing = 1;
    b->open_handles = 2;
    uv_close((uv_handle_t *)&b->tick, on_tick_closed);
    uv_close((uv_handle_t *)&b->starter, on_tick_closed);
}

static void release(struct slot *s)
{
    struct blocklist *b = s->b;
    if (b->loading && b->n_recent < b->max) {
        memcpy(b->recent[b->n_recent].id, s->item.t.id, sizeof(s->item.t.id));
        memcpy(b->recent[b->n_recent++].pubkey, s->item.pubkey, sizeof(s->item.pubkey));
    }
    relay_target_wipe(&s->item.t);
    memset(&s->item, 0, sizeof(s->item));
    s->used = 0;
    b->used--;
}

/* ---- recording an answer ---- */

static int record_work(struct db_conn *conn, void *arg)
{
    struct slot *s = arg;
    if (s->ok)
        return repo_bl_applied(conn, s->item.t.id, s->item.pubkey, s->item.want);
    return repo_bl_failed(conn, s->item.t.id, s->item.pubkey, s->next_at, s->what);
}

static void record_done(int status, void *arg)
{
    struct slot *s = arg;
    struct blocklist *b = s->b;
    b->db_jobs--;
    LOG_DEBUG("blocklist: relay %s: call %llu ms, record %llu ms", s->item.t.id,
              (unsigned long long)(s->t_answer - s->t_start),
              (unsigned long long)(clock_mono_ms() - s->t_answer));
    if (status != 0)
        LOG_ERROR("blocklist: relay %s: could not record the answer (%d); it is sent again",
                  s->item.t.id, status);
    else if (s->ok) {
        b->applied++;
        b->since_idle++;
    } else
        b->failed++;
    release(s);
    if (b->stopping)
        maybe_finish(b);
    else
        pump(b);
}

static int64_t retry_delay_ms(const struct blocklist *b, int attempts)
{
    int64_t d = b->retry_base_ms, cap = b->retry_base_ms * BL_RETRY_CAP_FACTOR;
    for (int i = 0; i < attempts && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

static void record(struct slot *s)
{
    struct blocklist *b = s->b;
    if (!s->ok) {
        s->next_at = wall_ms() + retry_delay_ms(b, s->item.attempts);
        LOG_WARN("blocklist: relay %s: %s %.8s failed (attempt %d): %s", s->item.t.host,
                 s->item.want ? "ban" : "lift", s->item.pubkey, s->item.attempts + 1, s->what);
    }
    b->db_jobs++;
    int rc = db_write(b->app->db, DB_CRASH_SAFE, record_work, record_done, s);
    if (rc != 0)
        record_done(rc, s);
}

/* ---- the NIP-86 call ---- */

static void on_rpc(enum nip86_status st, const cJSON *result, const char *what, void *arg)
{
    struct slot *s = arg;
    struct blocklist *b = s->b;
    (void)result;
    b->in_flight--;
    s->t_answer = clock_mono_ms();
    if (b->stopping) { /* cancelled: the row stays pending for the next start */
        release(s);
        return;
    }
    s->ok = st == NIP86_OK;
    snprintf(s->what, sizeof(s->what), "%s", s->ok ? "" : what);
    record(s);
}

static void start_call(struct blocklist *b, struct slot *s)
{
    cJSON *params = cJSON_CreateArray();
    const char *method = s->item.want ? "banpubkey" : "allowpubkey";
    cJSON_AddItemToArray(params, cJSON_CreateString(s->item.pubkey));
    if (s->item.want)
        cJSON_AddItemToArray(params, cJSON_CreateString(s->item.reason));
    s->t_start = clock_mono_ms();
    int rc = nip86_call(b->nip86, s->item.t.host, &s->item.t.kp, method, params, on_rpc, s);
    cJSON_Delete(params);
    if (rc == 0) {
        if (++b->in_flight > b->peak)
            b->peak = b->in_flight;
        return;
    }
    s->ok = 0;
    snprintf(s->what, sizeof(s->what), "the call could not be sent (host %.120s)", s->item.t.host);
    record(s);
}

/* ---- loading due rows ---- */

static int row_busy(const struct blocklist *b, const struct bl_item *it)
{
    for (size_t i = 0; i < b->max; i++) {
        const struct slot *s = &b->slots[i];
        if (s->used && strcmp(s->item.t.id, it->t.id) == 0 &&
            strcmp(s->item.pubkey, it->pubkey) == 0)
            return 1;
    }
    for (size_t i = 0; i < b->n_recent; i++)
        if (strcmp(b->recent[i].id, it->t.id) == 0 && strcmp(b->recent[i].pubkey, it->pubkey) == 0)
            return 1;
    return 0;
}

static struct slot *free_slot(struct blocklist *b)
{
    for (size_t i = 0; i < b->max; i++)
        if (!b->slots[i].used)
            return &b->slots[i];
    return NULL;
}

static int load_work(struct db_conn *conn, void *arg)
{
    struct load_job *j = arg;
    return repo_bl_due(conn, j->now, j->b->app->cfg.relay_domain, j->items, j->cap, &j->n);
}

/* The due query's rows are all looked at: log, free, and load again if more may be due. */
static void load_end(struct blocklist *b, struct load_job *j, int status)
{
    b->loading = 0;
    if (status == 0 && j->n == 0 && b->used == 0 && b->since_idle) {
        LOG_INFO("blocklist: rollout idle: %llu changes confirmed, at most %zu calls in flight",
                 (unsigned long long)b->since_idle, b->peak);
        b->since_idle = 0;
    }
    /* A full page with room left: there may be more due rows right behind. */
    int more = status == 0 && j->n == j->cap && j->started > 0;
    for (; j->next < j->n; j->next++)
        relay_target_wipe(&j->items[j->next].t);
    free(j->items);
    free(j);
    if (b->stopping) {
        maybe_finish(b);
    } else if (b->again || more) {
        b->again = 0;
        pump(b);
    }
}

static void on_starter(uv_timer_t *t);

/* Starts a call for the next loaded rows not already in a slot, while slots are free, at most
 * BL_STARTS_PER_TURN calls; the rest on the next loop turn. The due query counts as running
 * (b->loading) until every row was looked at. */
static void start_some(struct blocklist *b)
{
    struct load_job *j = b->pending;
    size_t started = 0;
    while (!b->stopping && j->next < j->n && started < BL_STARTS_PER_TURN) {
        struct bl_item *it = &j->items[j->next++];
        struct slot *s = NULL;
        if (!row_busy(b, it) && (s = free_slot(b))) {
            s->used = 1;
            b->used++;
            s->item = *it;
            start_call(b, s);
            started++;
        }
        relay_target_wipe(&it->t);
    }
    j->started += started;
    if (!b->stopping && j->next < j->n) {
        uv_timer_start(&b->starter, on_starter, 0, 0);
        return;
    }
    b->pending = NULL;
    load_end(b, j, 0);
}

static void on_starter(uv_timer_t *t)
{
    start_some(t->data);
}

static void load_done(int status, void *arg)
{
    struct load_job *j = arg;
    struct blocklist *b = j->b;
    b->db_jobs--;
    if (status != 0) {
        LOG_ERROR("blocklist: could not load the due rows (%d)", status);
        load_end(b, j, status);
        return;
    }
    b->pending = j;
    start_some(b);
}

static void pump(struct blocklist *b)
{
    if (b->stopping)
        return;
    if (b->loading) {
        b->again = 1;
        return;
    }
    /* While calls are in flight, wait until half the slots are free: one due query (and its
     * key derivations) then starts several calls instead of one per answer. */
    if (b->used >= b->max || (b->used > 0 && b->max - b->used < (b->max + 1) / 2))
        return;
    struct load_job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->now = wall_ms();
    j->cap = b->max * BL_LOAD_FACTOR;
    j->items = xcalloc(j->cap, sizeof(*j->items));
    b->loading = 1;
    b->n_recent = 0;
    b->db_jobs++;
    /* The list lane: this read derives a key pair per row (up to 2 x the slots), so it must not
     * hold up point reads such as the /healthz ping. */
    int rc = db_read_list(b->app->db, load_work, load_done, j);
    if (rc != 0)
        load_done(rc, j);
}

/* ---- triggers ---- */

static void on_tick(uv_timer_t *t)
{
    pump(t->data);
}

static void on_blocklist_changed(void *owner, const char *pubkey)
{
    (void)pubkey;
    pump(owner);
}

static int relay_ready_work(struct db_conn *conn, void *arg)
{
    struct relay_job *j = arg;
    return repo_bl_relay_ready(conn, j->id);
}

static void relay_ready_done(int status, void *arg)
{
    struct relay_job *j = arg;
    struct blocklist *b = j->b;
    b->db_jobs--;
    if (status != 0)
        LOG_ERROR("blocklist: relay %s: could not queue the block list (%d); the next start "
                  "does",
                  j->id, status);
    free(j);
    if (b->stopping)
        maybe_finish(b);
    else
        pump(b);
}

/* A relay was created, changed, reactivated or accepted by zooid: give it the rows it lacks
 * and make its pending ones due now. */
static void on_relay(void *owner, const char *id)
{
    struct blocklist *b = owner;
    if (b->stopping)
        return;
    struct relay_job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    snprintf(j->id, sizeof(j->id), "%s", id);
    b->db_jobs++;
    int rc = db_write(b->app->db, DB_CRASH_SAFE, relay_ready_work, relay_ready_done, j);
    if (rc != 0)
        relay_ready_done(rc, j);
}

struct reconcile_job {
    struct blocklist *b;
    int64_t added;
};

static int reconcile_run(struct db_conn *conn, void *arg)
{
    return repo_bl_reconcile(conn, &((struct reconcile_job *)arg)->added);
}

static void reconcile_done(int status, void *arg)
{
    struct reconcile_job *j = arg;
    struct blocklist *b = j->b;
    b->db_jobs--;
    if (status != 0)
        LOG_ERROR("blocklist: start-up reconcile failed (%d)", status);
    else if (j->added)
        LOG_INFO("blocklist: %lld relay rows added at start-up", (long long)j->added);
    free(j);
    if (b->stopping)
        maybe_finish(b);
    else
        pump(b);
}

/* ---- life cycle ---- */

int blocklist_start(struct blocklist **out, struct app *app)
{
    struct blocklist *b = xcalloc(1, sizeof(*b));
    *out = NULL;
    if (nip86_new(&b->nip86, app->loop, app->cfg.relay_url_template, 0) != 0) {
        LOG_ERROR("blocklist: cannot start its NIP-86 client");
        free(b);
        return -1;
    }
    b->app = app;
    b->max = app->cfg.blocklist_concurrency > 0 ? (size_t)app->cfg.blocklist_concurrency : 16;
    b->slots = xcalloc(b->max, sizeof(*b->slots));
    b->recent = xcalloc(b->max, sizeof(*b->recent));
    for (size_t i = 0; i < b->max; i++)
        b->slots[i].b = b;
    b->retry_base_ms =
        app->cfg.test.blocklist_retry_ms > 0 ? app->cfg.test.blocklist_retry_ms : BL_RETRY_BASE_MS;
    uv_timer_init(app->loop, &b->tick);
    b->tick.data = b;
    uv_timer_init(app->loop, &b->starter);
    b->starter.data = b;
    uv_timer_start(&b->tick, on_tick, BL_TICK_MS, BL_TICK_MS);
    app_on(app, APP_BLOCKLIST_CHANGED, on_blocklist_changed, b);
    app_on(app, APP_RELAY_CHANGED, on_relay, b);
    app_on(app, APP_RELAY_SYNCED, on_relay, b);
    struct reconcile_job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    b->db_jobs++;
    if (db_write(app->db, DB_CRASH_SAFE, reconcile_run, reconcile_done, j) != 0)
        reconcile_done(DB_EGENERIC, j);
    *out = b;
    return 0;
}

void blocklist_stats(const struct blocklist *b, struct blocklist_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!b)
        return;
    out->in_flight = b->in_flight;
    out->peak_in_flight = b->peak;
    out->applied = b->applied;
    out->failed = b->failed;
}

static void on_nip86_closed(void *arg)
{
    struct blocklist *b = arg;
    b->nip86_closed = 1;
    maybe_finish(b);
}

void blocklist_stop(struct blocklist *b, void (*cb)(void *arg), void *arg)
{
    if (!b) {
        if (cb)
            cb(arg);
        return;
    }
    b->stopping = 1;
    b->stop_cb = cb;
    b->stop_arg = arg;
    uv_timer_stop(&b->tick);
    app_off(b->app, APP_BLOCKLIST_CHANGED, b);
    app_off(b->app, APP_RELAY_CHANGED, b);
    app_off(b->app, APP_RELAY_SYNCED, b);
    /* Cancels the calls in flight now (on_rpc releases their slots; rows stay pending). */
    nip86_close(b->nip86, on_nip86_closed, b);
}
