/* Nostr relay connections shared by the robot and the NWC client (see relay_pool.h).
 *
 * Shapes: a pool owns connections (one per URL), subscriptions and publishes. A subscription
 * or publish has one target per URL pointing at its connection. Everything that can call the
 * user (publish done, EOSE, events) runs from the ws message/close callbacks or the pool's
 * tick timer, never from inside a library callback (net/ws.c dispatches after wslay). */
#include "net/relay_pool.h"
#include "net/relay_pool_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "net/tls.h"
#include "net/ws.h"
#include "nostr/hex.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

static void conn_connect(struct conn *c);

char *rp_capped_dup(const char *s)
{
    size_t n = 0;
    while (s && n < MAX_RELAY_STRING && s[n])
        n++;
    return s ? xstrndup(s, n) : xstrdup("");
}

void rp_conn_send(struct conn *c, const char *msg)
{
    if (!c->ws || !c->open)
        return;
    int rc = ws_send_text(c->ws, msg, strlen(msg));
    if (rc != 0)
        LOG_DEBUG("relay %s: send failed (%s)", c->url, err_name(rc));
}

struct target *rp_target_on(struct target *t, size_t n, const struct conn *c)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].conn == c)
            return &t[i];
    return NULL;
}

/* ---- work accounting ---- */

static size_t conn_work(const struct conn *c)
{
    size_t n = 0;
    LIST_FOREACH_ENTRY (const struct relay_sub, s, &c->pool->subs, node)
        for (size_t i = 0; i < s->n; i++)
            n += s->t[i].conn == c && s->t[i].state != T_CLOSED;
    LIST_FOREACH_ENTRY (const struct pub, p, &c->pool->pubs, node)
        for (size_t i = 0; i < p->n; i++)
            n += p->t[i].conn == c && p->t[i].state < T_OK;
    return n;
}

static struct conn *conn_get(struct relay_pool *pool, const char *url)
{
    LIST_FOREACH_ENTRY (struct conn, known, &pool->conns, node)
        if (strcmp(known->url, url) == 0)
            return known;
    struct conn *c = xcalloc(1, sizeof *c);
    c->pool = pool;
    c->url = xstrdup(url);
    list_insert_head(&pool->conns, &c->node);
    return c;
}

/* Make sure the connection is up or coming (respecting backoff). */
static void conn_want(struct conn *c)
{
    c->idle_since = 0;
    if (!c->ws && clock_mono_ms() >= c->retry_at)
        conn_connect(c);
}

/* ---- completion: user callbacks, each from a clean stack (ws dispatch or the timer) ---- */

static int pub_finished(const struct pub *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].state < T_OK)
            return 0;
    return 1;
}

static void pub_free(struct pub *p)
{
    free(p->msg);
    free(p->last_error);
    free(p);
}

/* Rescans after every callback: a callback may publish or subscribe again. */
void rp_finish_pubs(struct relay_pool *pool)
{
    for (;;) {
        struct pub *p = NULL;
        LIST_FOREACH_ENTRY (struct pub, q, &pool->pubs, node) {
            if (pub_finished(q)) {
                p = q;
                break;
            }
        }
        if (!p || pool->stop.stopping)
            return;
        list_remove(&p->node);
        size_t ok = 0;
        for (size_t i = 0; i < p->n; i++)
            ok += p->t[i].state == T_OK;
        if (p->done)
            p->done(ok, p->n - ok, p->last_error, p->arg);
        pub_free(p);
    }
}

static void sub_free(struct relay_sub *s)
{
    free(s->filters);
    free(s);
}

void rp_sub_call_done(struct relay_sub *s)
{
    s->in_cb--;
    if (s->closed && s->in_cb == 0)
        sub_free(s);
}

void rp_fire_eoses(struct relay_pool *pool)
{
    struct list *q = pool->subs.next;
    while (q != &pool->subs && !pool->stop.stopping) {
        struct relay_sub *s = list_entry(q, struct relay_sub, node);
        int all = !s->eose_fired;
        for (size_t i = 0; all && i < s->n; i++)
            all = s->t[i].done;
        if (!all) {
            q = q->next;
            continue;
        }
        s->eose_fired = 1;
        if (s->on_eose) {
            s->in_cb++;
            s->on_eose(s->arg);
            rp_sub_call_done(s);
        }
        q = pool->subs.next; /* the list may have changed */
    }
}

/* ---- connection lifecycle ---- */

static void pool_check_freed(struct relay_pool *pool);

static void conn_lost(struct conn *c, int err)
{
    char why[96];
    uint64_t now = clock_mono_ms();
    snprintf(why, sizeof why, "connection to relay failed (%d)", err);
    LIST_FOREACH_ENTRY (struct pub, p, &c->pool->pubs, node) {
        struct target *t = rp_target_on(p->t, p->n, c);
        if (t && t->state < T_OK) {
            t->state = T_FAILED;
            free(p->last_error);
            p->last_error = xstrdup(why);
        }
    }
    LIST_FOREACH_ENTRY (struct relay_sub, s, &c->pool->subs, node) {
        struct target *t = rp_target_on(s->t, s->n, c);
        if (t && t->state != T_CLOSED) {
            t->state = T_PENDING; /* resubscribed after the reconnect */
            t->done = 1;
            t->auth_retried = 0;
        }
    }
    if (c->opened_at && now - c->opened_at >= STABLE_MS)
        c->attempts = 0;
    uint64_t delay = BACKOFF_BASE_MS << MIN(c->attempts, 7u);
    uint8_t r[2] = {0, 0};
    (void)nostr_random(r, sizeof r);
    delay = MIN(delay, (uint64_t)BACKOFF_MAX_MS);
    delay = delay / 2 + delay * ((uint64_t)r[0] << 8 | r[1]) / 131072; /* 50..100% */
    c->retry_at = now + delay;
    c->attempts++;
    c->opened_at = 0;
    LOG_INFO("relay %s: disconnected (%s), retry in %llu ms if needed", c->url, err_name(err),
             (unsigned long long)delay);
}

static void on_ws_open(struct ws_client *ws, void *arg)
{
    struct conn *c = arg;
    (void)ws;
    c->open = 1;
    c->opened_at = clock_mono_ms();
    LOG_DEBUG("relay %s: connected", c->url);
    rp_conn_send_work(c);
}

static void on_ws_message(struct ws_client *ws, const char *data, size_t len, void *arg)
{
    (void)ws;
    rp_handle_message(arg, data, len);
}

static void on_ws_close(struct ws_client *ws, int err, void *arg)
{
    struct conn *c = arg;
    struct relay_pool *pool = c->pool;
    (void)ws;
    c->ws = NULL;
    c->open = 0;
    free(c->challenge);
    c->challenge = NULL;
    c->n_ids = 0;
    if (pool->stop.stopping) {
        stop_release(&pool->stop);
        pool_check_freed(pool);
        return;
    }
    conn_lost(c, err ? err : WS_ECLOSED);
    rp_finish_pubs(pool);
    rp_fire_eoses(pool);
}

static void conn_connect(struct conn *c)
{
    struct relay_pool *pool = c->pool;
    int rc = 0;
    if (strncasecmp(c->url, "wss:", 4) == 0 && !pool->tls)
        rc = tls_config_new(&pool->tls, pool->ca_file);
    struct ws_opts o = {.url = c->url,
                        .tls = pool->tls,
                        .on_open = on_ws_open,
                        .on_message = on_ws_message,
                        .on_close = on_ws_close,
                        .arg = c};
    if (rc == 0)
        rc = ws_connect(&c->ws, pool->loop, &o);
    if (rc != 0) {
        /* Not from inside the caller's publish/subscribe: the tick reports it. */
        c->ws = NULL;
        conn_lost(c, rc);
    }
}

/* Connections with nothing to do and no socket are forgotten. */
static void reap_conns(struct relay_pool *pool)
{
    struct list *q, *tmp;
    LIST_FOREACH_SAFE (q, tmp, &pool->conns) {
        struct conn *c = list_entry(q, struct conn, node);
        if (!c->ws && conn_work(c) == 0) {
            list_remove(&c->node);
            free(c->url);
            free(c->challenge);
            free(c);
        }
    }
}

static void tick_conn(struct conn *c, uint64_t now)
{
    size_t work = conn_work(c);
    if (!c->ws) {
        if (work && now >= c->retry_at)
            conn_connect(c);
        return;
    }
    if (!c->open || work) {
        c->idle_since = 0;
    } else if (!c->idle_since) {
        c->idle_since = now;
    } else if (now - c->idle_since >= IDLE_CLOSE_MS) {
        ws_close(c->ws); /* on_close runs later from the loop */
        c->idle_since = 0;
    }
}

static void on_tick(uv_timer_t *timer)
{
    struct relay_pool *pool = timer->data;
    uint64_t now = clock_mono_ms();
    LIST_FOREACH_ENTRY (struct pub, p, &pool->pubs, node) {
        if (now < p->deadline)
            continue;
        for (size_t i = 0; i < p->n; i++) {
            if (p->t[i].state >= T_OK)
                continue;
            p->t[i].state = T_FAILED;
            free(p->last_error);
            p->last_error = xstrdup("timeout waiting for the relay's OK");
        }
    }
    /* A relay that never answers a REQ must not hold the subscription's EOSE forever. */
    LIST_FOREACH_ENTRY (struct relay_sub, s, &pool->subs, node)
        for (size_t i = 0; i < s->n; i++)
            if (!s->t[i].done && now - s->t[i].since >= RELAY_POOL_EOSE_TIMEOUT_MS)
                s->t[i].done = 1;
    LIST_FOREACH_ENTRY (struct conn, c, &pool->conns, node)
        tick_conn(c, now);
    rp_finish_pubs(pool);
    rp_fire_eoses(pool);
    reap_conns(pool);
}

/* ---- public API ---- */

int relay_pool_new(struct relay_pool **out, uv_loop_t *loop, const char *ca_file)
{
    ASSERT_LOOP_THREAD();
    struct relay_pool *pool = xcalloc(1, sizeof *pool);
    pool->loop = loop;
    pool->ca_file = ca_file ? xstrdup(ca_file) : NULL;
    list_init(&pool->conns);
    list_init(&pool->subs);
    list_init(&pool->pubs);
    uv_timer_init(loop, &pool->timer);
    pool->timer.data = pool;
    uv_timer_start(&pool->timer, on_tick, TICK_MS, TICK_MS);
    *out = pool;
    return 0;
}

static void pool_check_freed(struct relay_pool *pool)
{
    if (!stop_ready(&pool->stop, 0))
        return;
    struct list *q;
    while ((q = list_pop(&pool->conns))) {
        struct conn *c = list_entry(q, struct conn, node);
        free(c->url);
        free(c->challenge);
        free(c);
    }
    tls_config_free(pool->tls);
    free(pool->ca_file);
    struct stop done = pool->stop;
    free(pool);
    stop_finish(done);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct relay_pool *pool = h->data;
    stop_release(&pool->stop);
    pool_check_freed(pool);
}

void relay_pool_free(struct relay_pool *pool, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_begin(&pool->stop, cb, arg) != 0)
        return;
    struct list *q;
    while ((q = list_pop(&pool->subs))) {
        struct relay_sub *s = list_entry(q, struct relay_sub, node);
        s->closed = 1;
        if (!s->in_cb)
            sub_free(s);
    }
    while ((q = list_pop(&pool->pubs)))
        pub_free(list_entry(q, struct pub, node));
    stop_hold(&pool->stop); /* the timer */
    LIST_FOREACH_ENTRY (struct conn, c, &pool->conns, node)
        if (c->ws) {
            stop_hold(&pool->stop);
            ws_close(c->ws);
        }
    uv_close((uv_handle_t *)&pool->timer, on_timer_closed);
}

/* Fills targets for distinct URLs; a connection over its work cap gets a failed target. */
static size_t fill_targets(struct relay_pool *pool, struct target *t, const char *const *urls,
                           size_t n_urls)
{
    size_t n = 0;
    for (size_t i = 0; i < n_urls; i++) {
        struct conn *c = conn_get(pool, urls[i]);
        if (rp_target_on(t, n, c))
            continue;
        t[n].conn = c;
        t[n].state = T_PENDING;
        t[n].since = clock_mono_ms();
        if (conn_work(c) >= RELAY_POOL_MAX_QUEUE) {
            t[n].state = T_FAILED;
            t[n].done = 1;
        }
        n++;
    }
    return n;
}

/* Starts work on the targets' connections (the REQ/EVENT goes out now if open). */
static void kick_targets(struct target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].state != T_PENDING)
            continue;
        conn_want(t[i].conn);
        if (t[i].conn->open)
            rp_conn_send_work(t[i].conn);
    }
}

static char *filters_inner(const char *filters_json)
{
    cJSON *arr = cJSON_Parse(filters_json);
    char *inner = NULL;
    if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0) {
        const cJSON *f;
        int ok = 1;
        cJSON_ArrayForEach(f, arr) ok &= cJSON_IsObject(f);
        char *s = ok ? cJSON_PrintUnformatted(arr) : NULL;
        if (s) {
            size_t len = strlen(s);
            inner = xstrndup(s + 1, len - 2);
            cJSON_free(s);
        }
    }
    cJSON_Delete(arr);
    return inner;
}

int relay_pool_subscribe(struct relay_pool *pool, const char *const *urls, size_t n_urls,
                         const char *filters_json, const struct nostr_keypair *auth,
                         relay_event_cb *on_event, relay_eose_cb *on_eose, void *arg,
                         struct relay_sub **out)
{
    ASSERT_LOOP_THREAD();
    if (pool->stop.stopping || n_urls == 0 || n_urls > MAX_URLS)
        return -1;
    char *inner = filters_inner(filters_json);
    if (!inner)
        return -1;
    struct relay_sub *s = xcalloc(1, sizeof *s + n_urls * sizeof s->t[0]);
    s->pool = pool;
    snprintf(s->id, sizeof s->id, "cv%llu", (unsigned long long)++pool->next_sub);
    s->filters = inner;
    s->auth = auth;
    s->on_event = on_event;
    s->on_eose = on_eose;
    s->arg = arg;
    s->n = fill_targets(pool, s->t, urls, n_urls);
    list_insert_head(&pool->subs, &s->node);
    kick_targets(s->t, s->n);
    *out = s;
    return 0;
}

void relay_sub_close(struct relay_sub *sub)
{
    ASSERT_LOOP_THREAD();
    list_remove(&sub->node); /* a no-op once relay_pool_free unlinked it */
    for (size_t i = 0; i < sub->n; i++) {
        struct target *t = &sub->t[i];
        if (t->state == T_SENT || t->state == T_WAIT_AUTH) {
            char m[64];
            snprintf(m, sizeof m, "[\"CLOSE\",\"%s\"]", sub->id);
            rp_conn_send(t->conn, m);
        }
    }
    sub->closed = 1;
    if (!sub->in_cb)
        sub_free(sub);
}

int relay_pool_publish(struct relay_pool *pool, const char *const *urls, size_t n_urls,
                       const struct nostr_event *ev, const struct nostr_keypair *auth,
                       relay_publish_cb *done, void *arg)
{
    ASSERT_LOOP_THREAD();
    if (pool->stop.stopping || n_urls == 0 || n_urls > MAX_URLS)
        return -1;
    char *json = nostr_event_to_json(ev, 1);
    if (!json)
        return -1;
    struct pub *p = xcalloc(1, sizeof *p + n_urls * sizeof p->t[0]);
    size_t len = strlen(json);
    p->msg = xmalloc(len + 16);
    snprintf(p->msg, len + 16, "[\"EVENT\",%s]", json);
    free(json);
    hex_encode(ev->id, 32, p->id);
    p->auth = auth;
    p->done = done;
    p->arg = arg;
    p->deadline = clock_mono_ms() + RELAY_POOL_PUBLISH_TIMEOUT_MS;
    p->n = fill_targets(pool, p->t, urls, n_urls);
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].state == T_FAILED && !p->last_error)
            p->last_error = xstrdup("relay send queue full");
    list_insert_head(&pool->pubs, &p->node);
    kick_targets(p->t, p->n);
    return 0;
}

size_t relay_pool_connected(const struct relay_pool *pool)
{
    ASSERT_LOOP_THREAD();
    size_t n = 0;
    for (const struct list *q = pool->conns.next; q != &pool->conns; q = q->next)
        n += list_entry_const(q, struct conn, node)->open;
    return n;
}
