/* The block-list rollout (see worker.h).
 *
 * A slot holds one row from the moment its call starts until the answer is recorded. At most
 * `max` slots (BLOCKLIST_CONCURRENCY). One load at a time; a trigger during it asks for one
 * more. A load is a due query, then a claim of the rows it found (one write, at most as many
 * rows as slots are free), then the calls of the claimed rows, BL_STARTS_PER_TURN per loop turn
 * (the load counts as running until all its rows were looked at). The claim is what makes a
 * call go out once among the instances sharing the database, and within this one: a row in
 * flight holds this instance's live claim, so neither a due query nor a claim takes it again,
 * and a row whose answer was recorded after the due query's snapshot no longer passes the
 * claim's re-check. The due query runs in the database's list lane (db_read_list): its key
 * derivations never hold up the point reads of the API. */
#include "blocklist/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "blocklist/repo.h"
#include "core/app.h"
#include "core/wake.h"
#include "db/claims.h"
#include "db/db.h"
#include "db/notify.h"
#include "net/nip86.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

/* A load runs when something says rows may be due (an event, an answer recorded) and when the
 * next row becomes due by itself (a retry's time, the end of another instance's claim: the
 * `due` timer); the reconcile every BL_RECONCILE_MS is only a safety net. */
#define BL_RECONCILE_MS 30000
#define BL_ERROR_RETRY_MS 1000 /* a load that failed is tried again this much later */
#define BL_RETRY_BASE_MS 2000
#define BL_RETRY_CAP_FACTOR 300 /* 2 s x 300 = 10 min */
#define BL_LOAD_FACTOR                                                                             \
    2 /* rows read per due query: 2 x the slots (a query runs with at                              \
       * least half of them free, so at most max/2 rows are busy) */
/* Calls started per loop turn: each one signs a NIP-98 event on the loop (two scalar
 * multiplications), so a due query's rows are started a few at a time, with the loop's I/O
 * (the API) served in between, instead of all in one callback. */
#define BL_STARTS_PER_TURN 4
/* A row's claim lasts this long: 8 x the NIP-86 timeout, far beyond a call and its record. A
 * call starts only in the first half of its claim (on the monotonic clock, from before the
 * claim was written), so it is answered or timed out, and recorded, long before another
 * instance may take the row over. */
#define BL_LEASE_MS (8 * NIP86_TIMEOUT_MS)

struct slot {
    struct blocklist *b;
    int used;
    int ok;                     /* the relay confirmed */
    char what[200];             /* why it failed */
    int64_t next_at;            /* retry time (unix ms) after a failure */
    uint64_t t_start, t_answer; /* clock_mono_ms: call started, answer came (debug log) */
    struct bl_item item;        /* holds the relay's key: wiped when the slot is released */
};

struct load_job {
    struct blocklist *b;
    int64_t now;          /* the due query's time, then the claim's (unix ms) */
    int64_t next_due;     /* repo_bl_next_due: when to look again (unix ms; 0: nothing waits) */
    uint64_t claimed_at;  /* clock_mono_ms before the claim was written: its lease starts */
    size_t n, cap;        /* rows read, room */
    size_t room;          /* slots free when the claim was asked for: rows to claim at most */
    size_t lost;          /* rows another instance claimed first */
    size_t next, started; /* rows looked at, calls started (start_some) */
    struct bl_item *items;
    unsigned char *claimed; /* per row: this instance holds its claim */
};

struct relay_job {
    struct blocklist *b;
    char id[33];
    int64_t due; /* rows relay_ready added or made due */
};

struct blocklist {
    struct app *app;
    struct nip86 *nip86;
    uv_timer_t tick;          /* the safety reconcile */
    uv_timer_t due;           /* the next row due by itself */
    uv_timer_t starter;       /* the next turn of start_some */
    struct load_job *pending; /* a due query's rows being started, BL_STARTS_PER_TURN a turn */
    int open_handles;
    struct slot *slots;
    const char *owner; /* db_instance(): this process in blocklist_relay.claim_owner */
    int64_t lease_ms;
    size_t max, used, in_flight, peak;
    int loading, again;
    size_t db_jobs;
    int stopping, nip86_closed, released, closing;
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
    free(b);
    if (cb)
        cb(arg);
}

static void release_claims(struct blocklist *b);

static void maybe_finish(struct blocklist *b)
{
    if (!b->stopping || !b->nip86_closed || b->db_jobs || b->pending || b->closing)
        return;
    if (!b->released) {
        release_claims(b);
        return;
    }
    b->closing = 1;
    b->open_handles = 3;
    uv_close((uv_handle_t *)&b->tick, on_tick_closed);
    uv_close((uv_handle_t *)&b->due, on_tick_closed);
    uv_close((uv_handle_t *)&b->starter, on_tick_closed);
}

static void release(struct slot *s)
{
    struct blocklist *b = s->b;
    relay_target_wipe(&s->item.t);
    memset(&s->item, 0, sizeof(s->item));
    s->used = 0;
    b->used--;
}

/* ---- recording an answer ---- */

static int record_work(struct db_conn *conn, void *arg)
{
    struct slot *s = arg;
    const char *owner = s->b->owner;
    if (s->ok)
        return repo_bl_applied(conn, s->item.t.id, s->item.pubkey, s->item.want, owner);
    return repo_bl_failed(conn, s->item.t.id, s->item.pubkey, s->next_at, s->what, owner);
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
    int rc = db_write_background(b->app->db, DB_CRASH_SAFE, record_work, record_done, s);
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
    int rc = repo_bl_due(conn, j->now, j->b->app->cfg.relay_domain, j->items, j->cap, &j->n);
    return rc != 0 ? rc : repo_bl_next_due(conn, j->now, j->b->owner, &j->next_due);
}

static void on_tick(uv_timer_t *t);

/* Looks again when the next row becomes due by itself, or after a failed load (the timer is
 * re-armed by every load: the newest read knows best). */
static void arm_due(struct blocklist *b, int status, int64_t at)
{
    if (status == 0 && at <= 0) {
        uv_timer_stop(&b->due);
        return;
    }
    int64_t wait = status != 0 ? BL_ERROR_RETRY_MS : at - wall_ms() + 1;
    uv_timer_start(&b->due, on_tick, wait > 0 ? (uint64_t)wait : 1, 0);
}

/* Claims the rows the due query found, in its order, until `room` are held. The job may run
 * again (DB_EBUSY): the flags start over with it. */
static int claim_work(struct db_conn *conn, void *arg)
{
    struct load_job *j = arg;
    const struct blocklist *b = j->b;
    size_t held = 0;
    j->lost = 0;
    memset(j->claimed, 0, j->cap);
    for (size_t i = 0; i < j->n && held < j->room; i++) {
        const struct bl_item *it = &j->items[i];
        int got = 0;
        int rc = repo_bl_claim(conn, it->t.id, it->pubkey, it->want, b->owner, j->now,
                               j->now + b->lease_ms, &got);
        if (rc != 0)
            return rc;
        j->claimed[i] = (unsigned char)got;
        held += (size_t)got;
        j->lost += (size_t)!got;
    }
    return 0;
}

/* ---- removed entries left without rows (repo_bl_sweep_removed) ---- */

struct sweep_job {
    struct blocklist *b;
    int64_t deleted;
};

static int sweep_work(struct db_conn *conn, void *arg)
{
    struct sweep_job *j = arg;
    return repo_bl_sweep_removed(conn, &j->deleted);
}

static void sweep_done(int status, void *arg)
{
    struct sweep_job *j = arg;
    struct blocklist *b = j->b;
    b->db_jobs--;
    if (status != 0)
        LOG_WARN("blocklist: could not delete lifted entries (%d); the next idle rollout does",
                 status);
    else if (j->deleted > 0)
        LOG_INFO("blocklist: %lld lifted entries deleted", (long long)j->deleted);
    free(j);
    if (b->stopping)
        maybe_finish(b);
}

static void sweep(struct blocklist *b)
{
    struct sweep_job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    b->db_jobs++;
    int rc = db_write_background(b->app->db, DB_CRASH_SAFE, sweep_work, sweep_done, j);
    if (rc != 0)
        sweep_done(rc, j);
}

/* The load's rows are all looked at: log, free, and load again if more may be due. */
static void load_end(struct blocklist *b, struct load_job *j, int status)
{
    b->loading = 0;
    if (status == 0 && j->n == 0 && b->used == 0 && b->since_idle) {
        LOG_INFO("blocklist: rollout idle: %llu changes confirmed, at most %zu calls in flight",
                 (unsigned long long)b->since_idle, b->peak);
        b->since_idle = 0;
        if (!b->stopping)
            sweep(b); /* after this instance's records: see repo_bl_sweep_removed */
    }
    /* A full page: there may be more due rows right behind, and when other instances claimed
     * some of this page first (they read the same rows in the same order), behind them are
     * rows nobody holds yet. */
    int more = status == 0 && j->n == j->cap && (j->started > 0 || j->lost > 0);
    if (!b->stopping)
        arm_due(b, status, j->next_due);
    for (; j->next < j->n; j->next++)
        relay_target_wipe(&j->items[j->next].t);
    free(j->claimed);
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

/* Starts a call for the next claimed rows, at most BL_STARTS_PER_TURN; the rest on the next
 * loop turn. A slot is free for each (the claim took at most as many rows as were free). A
 * claim past half its lease is not used: the call and its record might outlast it, and
 * another instance may then take the row over; the row waits for its lease to end. */
static void start_some(struct blocklist *b)
{
    struct load_job *j = b->pending;
    size_t started = 0;
    int fresh = clock_mono_ms() - j->claimed_at < (uint64_t)b->lease_ms / 2;
    while (!b->stopping && j->next < j->n && started < BL_STARTS_PER_TURN) {
        size_t i = j->next++;
        struct bl_item *it = &j->items[i];
        struct slot *s = j->claimed[i] && fresh ? free_slot(b) : NULL;
        if (s) {
            s->used = 1;
            b->used++;
            s->item = *it;
            start_call(b, s);
            started++;
        } else if (j->claimed[i]) {
            LOG_WARN("blocklist: relay %s: claimed too long ago to be sent now (%s); it is sent "
                     "when the claim ends",
                     it->t.id, fresh ? "no free slot" : "the database was slow");
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

static void claim_done(int status, void *arg)
{
    struct load_job *j = arg;
    struct blocklist *b = j->b;
    b->db_jobs--;
    if (status != 0) {
        LOG_ERROR("blocklist: could not claim the due rows (%d)", status);
        load_end(b, j, status);
        return;
    }
    b->pending = j;
    start_some(b);
}

static void load_done(int status, void *arg)
{
    struct load_job *j = arg;
    struct blocklist *b = j->b;
    b->db_jobs--;
    if (status != 0)
        LOG_ERROR("blocklist: could not load the due rows (%d)", status);
    if (status != 0 || j->n == 0 || b->stopping) {
        load_end(b, j, status);
        return;
    }
    /* The claim's time: its lease runs from here on both clocks (the write may wait in the
     * writer's queue, which only shortens what is left of it). */
    j->now = wall_ms();
    j->claimed_at = clock_mono_ms();
    b->db_jobs++;
    int rc = db_write_background(b->app->db, DB_CRASH_SAFE, claim_work, claim_done, j);
    if (rc != 0)
        claim_done(rc, j);
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
    j->room = b->max - b->used; /* slots are taken only by this load's start_some */
    j->items = xcalloc(j->cap, sizeof(*j->items));
    j->claimed = xcalloc(j->cap, 1);
    b->loading = 1;
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

/* APP_BLOCKLIST_CHANGED: an entry was added or removed through any instance (the others hear
 * it through the database, core/wake.h); APP_RECONCILE: another instance let go of its claims,
 * or this one's wake-ups may have been missed. */
static void on_wake(void *owner, const char *id)
{
    (void)id;
    pump(owner);
}

static int relay_ready_work(struct db_conn *conn, void *arg)
{
    struct relay_job *j = arg;
    return repo_bl_relay_ready(conn, j->id, &j->due);
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
    int due = status != 0 || j->due > 0;
    free(j);
    if (b->stopping)
        maybe_finish(b);
    else if (due) /* nothing new for the rollout (an empty block list): no due query */
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
    int rc = db_write_background(b->app->db, DB_CRASH_SAFE, relay_ready_work, relay_ready_done, j);
    if (rc != 0)
        relay_ready_done(rc, j);
}

struct reconcile_job {
    struct blocklist *b;
    int shared;              /* db_shared: other instances may hold live claims */
    int64_t added, released; /* rows added; claims of gone instances let go */
};

/* Start-up: the claims of instances that are gone (this host's earlier run killed, or any on a
 * database no other instance shares) are let go, so their rows are sent now instead of after
 * their leases; then every active relay gets the rows it lacks. */
static int reconcile_run(struct db_conn *conn, void *arg)
{
    struct reconcile_job *j = arg;
    int rc = db_claims_release_stale(conn, DB_CLAIM_BLOCKLIST, j->shared, &j->released);
    return rc != 0 ? rc : repo_bl_reconcile(conn, &j->added);
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
    if (status == 0 && j->released)
        LOG_INFO("blocklist: %lld calls claimed by an instance that is gone: sending them",
                 (long long)j->released);
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
    b->owner = db_instance();
    b->lease_ms = config_or(app->cfg.test.claim_lease_ms, BL_LEASE_MS);
    for (size_t i = 0; i < b->max; i++)
        b->slots[i].b = b;
    b->retry_base_ms =
        app->cfg.test.blocklist_retry_ms > 0 ? app->cfg.test.blocklist_retry_ms : BL_RETRY_BASE_MS;
    uv_timer_init(app->loop, &b->tick);
    b->tick.data = b;
    uv_timer_init(app->loop, &b->due);
    b->due.data = b;
    uv_timer_init(app->loop, &b->starter);
    b->starter.data = b;
    uv_timer_start(&b->tick, on_tick, BL_RECONCILE_MS, BL_RECONCILE_MS);
    app_on(app, APP_BLOCKLIST_CHANGED, on_wake, b);
    app_on(app, APP_RECONCILE, on_wake, b);
    app_on(app, APP_RELAY_CHANGED, on_relay, b);
    app_on(app, APP_RELAY_SYNCED, on_relay, b);
    struct reconcile_job *j = xcalloc(1, sizeof(*j));
    j->b = b;
    j->shared = db_shared(app->db);
    b->db_jobs++;
    if (db_write_background(app->db, DB_CRASH_SAFE, reconcile_run, reconcile_done, j) != 0)
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

/* A graceful stop lets go of the rows this instance claimed (calls cancelled in flight, or
 * claimed and not started), once every answer that came is recorded: the other instances
 * take them over at once instead of after the leases. */
static int release_claims_work(struct db_conn *conn, void *arg)
{
    struct blocklist *b = arg;
    int64_t n = 0;
    int rc = db_claims_release_owner(conn, DB_CLAIM_BLOCKLIST, b->owner, &n);
    return rc == 0 && n > 0 ? app_publish(conn, APP_RECONCILE, "") : rc;
}

static void release_claims_done(int status, void *arg)
{
    struct blocklist *b = arg;
    b->db_jobs--;
    if (status != 0)
        LOG_WARN("blocklist: could not let go of this instance's claims (%d): other instances "
                 "send those calls when the leases end",
                 status);
    maybe_finish(b);
}

static void release_claims(struct blocklist *b)
{
    b->released = 1;
    b->db_jobs++;
    if (db_write_background(b->app->db, DB_CRASH_SAFE, release_claims_work, release_claims_done,
                            b) != 0)
        release_claims_done(DB_ECLOSED, b);
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
    uv_timer_stop(&b->due);
    app_off(b->app, APP_BLOCKLIST_CHANGED, b);
    app_off(b->app, APP_RECONCILE, b);
    app_off(b->app, APP_RELAY_CHANGED, b);
    app_off(b->app, APP_RELAY_SYNCED, b);
    /* Cancels the calls in flight now (on_rpc releases their slots; rows stay pending, and
     * their claims are let go once the database jobs are done: maybe_finish). */
    nip86_close(b->nip86, on_nip86_closed, b);
}
