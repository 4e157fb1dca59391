#include "billing/nwc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "net/relay_pool.h"
#include "nostr/hex.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/list.h"
#include "util/log.h"
#include "util/stop.h"
#include "util/util.h"

#define INFO_CACHE 64

struct info_entry {
    uint8_t wallet[32];
    struct nwc_info info;
    uint64_t expires_ms; /* 0 = empty slot */
};

enum phase { PHASE_INFO, PHASE_WAIT, PHASE_DONE };

struct nwc_req {
    struct nwc *nwc;
    struct list node; /* in nwc->reqs */
    uv_timer_t timer;
    struct nwc_uri uri;
    struct nostr_keypair kp; /* the URI secret: auth identity for the pool (borrowed there) */
    char method[32];
    cJSON *params;
    uint64_t timeout_ms;
    enum phase phase;
    struct nwc_info info;
    int have_info;
    int published;
    struct relay_sub *sub;
    struct nostr_event ev; /* the request */
    int refs;              /* timer handle + a publish in flight */
    nwc_done_cb *cb;
    void *arg;
};

/* The one notification subscription (nwc_watch). */
struct nwc_watch {
    struct nwc_uri uri;
    struct nostr_keypair kp; /* auth identity for the pool: lives as long as the sub */
    struct relay_sub *sub;
    nwc_notify_cb *cb;
    void *arg;
};

struct nwc {
    uv_loop_t *loop;
    struct relay_pool *pool;
    struct nwc_watch *watch;
    struct list reqs; /* requests in flight, newest first */
    size_t n_reqs;
    struct info_entry cache[INFO_CACHE];
    uint64_t pay_timeout_ms; /* NWC_TIMEOUT_PAY_MS, shortened by the suite */
    const char *crash_at;    /* CARAVEL_TEST_CRASH_AT (the configuration outlives the client) */
    struct stop stop;        /* nwc_free: waits for the requests to end */
};

static void start_wait(struct nwc_req *r);

int nwc_new(struct nwc **out, uv_loop_t *loop, struct relay_pool *pool,
            const struct config_test *test)
{
    ASSERT_LOOP_THREAD();
    struct nwc *n = xcalloc(1, sizeof(*n));
    n->loop = loop;
    list_init(&n->reqs);
    n->pool = pool;
    n->pay_timeout_ms = (uint64_t)config_or(test->nwc_pay_timeout_ms, NWC_TIMEOUT_PAY_MS);
    n->crash_at = test->crash_at;
    *out = n;
    return 0;
}

static void maybe_free_nwc(struct nwc *n)
{
    if (!stop_ready(&n->stop, !list_empty(&n->reqs)))
        return;
    struct stop done = n->stop;
    secure_zero(n->cache, sizeof(n->cache));
    nwc_keys_forget(); /* the keys derived from the URIs' secrets (loop thread) */
    free(n);
    stop_finish(done);
}

static void req_unref(struct nwc_req *r)
{
    if (--r->refs > 0)
        return;
    struct nwc *n = r->nwc;
    list_remove(&r->node);
    n->n_reqs--;
    nwc_uri_free(&r->uri);
    secure_zero(&r->kp, sizeof(r->kp));
    cJSON_Delete(r->params);
    nostr_event_free(&r->ev);
    free(r);
    maybe_free_nwc(n);
}

static void on_timer_closed(uv_handle_t *h)
{
    req_unref(container_of((uv_timer_t *)h, struct nwc_req, timer));
}

/* Delivers the result once, then releases the timer's reference. */
static void finish(struct nwc_req *r, int status, const struct nwc_response *resp)
{
    if (r->phase == PHASE_DONE)
        return;
    r->phase = PHASE_DONE;
    if (r->sub) {
        relay_sub_close(r->sub);
        r->sub = NULL;
    }
    uv_timer_stop(&r->timer);
    LOG_DEBUG("nwc %s finished: %s", r->method, err_name(status));
    r->cb(status, resp, r->arg);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct nwc_req *r = container_of(t, struct nwc_req, timer);
    finish(r, NWC_ETIMEOUT, NULL);
}

/* ---- info cache ---- */

static struct info_entry *cache_find(const struct nwc *n, const uint8_t wallet[32])
{
    uint64_t now = clock_mono_ms();
    for (size_t i = 0; i < INFO_CACHE; i++) {
        const struct info_entry *e = &n->cache[i];
        if (e->expires_ms > now && memcmp(e->wallet, wallet, 32) == 0)
            return (struct info_entry *)(uintptr_t)e;
    }
    return NULL;
}

static void cache_put(struct nwc *n, const uint8_t wallet[32], const struct nwc_info *info,
                      uint64_t ttl_ms)
{
    struct info_entry *slot = NULL;
    for (size_t i = 0; i < INFO_CACHE && !slot; i++)
        if (memcmp(n->cache[i].wallet, wallet, 32) == 0)
            slot = &n->cache[i];
    if (!slot) {
        /* Else the slot that expires first (empty slots have 0). */
        slot = &n->cache[0];
        for (size_t i = 1; i < INFO_CACHE; i++)
            if (n->cache[i].expires_ms < slot->expires_ms)
                slot = &n->cache[i];
    }
    memcpy(slot->wallet, wallet, 32);
    slot->info = *info;
    slot->expires_ms = clock_mono_ms() + ttl_ms;
}

int nwc_cached_info(const struct nwc *nwc, const char *uri, struct nwc_info *info)
{
    ASSERT_LOOP_THREAD();
    struct nwc_uri u;
    const char *err = NULL;
    if (nwc_uri_parse(uri, &u, &err) < 0)
        return -1;
    const struct info_entry *e = cache_find(nwc, u.wallet_pubkey);
    nwc_uri_free(&u);
    if (!e)
        return -1;
    *info = e->info;
    return 0;
}

/* ---- phases ---- */

static const char *const *relay_urls(const struct nwc_req *r)
{
    return (const char *const *)r->uri.relays;
}

static void on_info_event(const struct nostr_event *ev, const char *relay_url, void *arg)
{
    struct nwc_req *r = arg;
    struct nwc_info info;
    (void)relay_url;
    if (!r->have_info && memcmp(ev->pubkey, r->uri.wallet_pubkey, 32) == 0 &&
        nwc_info_parse(ev, &info) == 0) {
        r->info = info;
        r->have_info = 1;
    }
}

static void on_info_eose(void *arg)
{
    struct nwc_req *r = arg;
    relay_sub_close(r->sub);
    r->sub = NULL;
    /* No info event: the wallet only speaks NIP-04 (PRODUCT.md §7). Not cached: the relays may
     * just have been unreachable. */
    if (r->have_info)
        cache_put(r->nwc, r->uri.wallet_pubkey, &r->info, NWC_INFO_TTL_MS);
    uv_timer_stop(&r->timer);
    start_wait(r);
}

static void start_info(struct nwc_req *r)
{
    char filter[160], wallet[65];
    hex_encode(r->uri.wallet_pubkey, 32, wallet);
    snprintf(filter, sizeof(filter), "[{\"kinds\":[%d],\"authors\":[\"%s\"],\"limit\":1}]",
             NWC_KIND_INFO, wallet);
    r->phase = PHASE_INFO;
    if (relay_pool_subscribe(r->nwc->pool, relay_urls(r), r->uri.n_relays, filter, &r->kp,
                             on_info_event, on_info_eose, r, &r->sub) < 0) {
        r->sub = NULL;
        finish(r, NWC_EPUBLISH, NULL);
        return;
    }
    uv_timer_start(&r->timer, on_timeout, NWC_INFO_TIMEOUT_MS, 0);
}

static void maybe_crash_after_pay_sent(const struct nwc_req *r)
{
    /* Test-only kill point (see nwc.h). */
    const char *at = r->nwc->crash_at;
    if (at && strcmp(at, "after_pay_sent") == 0 && strcmp(r->method, "pay_invoice") == 0) {
        LOG_WARN("CARAVEL_TEST_CRASH_AT=after_pay_sent: exiting now (test only)");
        _exit(97);
    }
}

static void on_published(size_t n_ok, size_t n_failed, const char *last_error, void *arg)
{
    struct nwc_req *r = arg;
    (void)n_failed;
    if (n_ok > 0)
        maybe_crash_after_pay_sent(r);
    if (n_ok == 0 && r->phase == PHASE_WAIT) {
        LOG_WARN("nwc %s: no relay accepted the request: %s", r->method,
                 last_error ? last_error : "?");
        finish(r, NWC_EPUBLISH, NULL);
    }
    req_unref(r);
}

static void on_response(const struct nostr_event *ev, const char *relay_url, void *arg)
{
    struct nwc_req *r = arg;
    struct nwc_response resp;
    (void)relay_url;
    if (r->phase != PHASE_WAIT)
        return;
    if (nwc_parse_response(&r->uri, ev, r->method, &resp) < 0) {
        LOG_WARN("nwc %s: ignoring a malformed answer", r->method);
        return;
    }
    finish(r, resp.result ? 0 : NWC_EWALLET, &resp);
    nwc_response_free(&resp);
}

/* The response subscription is live on every relay that answers: publish now. */
static void on_wait_eose(void *arg)
{
    struct nwc_req *r = arg;
    if (r->phase != PHASE_WAIT || r->published)
        return;
    r->published = 1;
    r->refs++;
    if (relay_pool_publish(r->nwc->pool, relay_urls(r), r->uri.n_relays, &r->ev, &r->kp,
                           on_published, r) < 0) {
        r->refs--;
        finish(r, NWC_EPUBLISH, NULL);
    }
}

static void start_wait(struct nwc_req *r)
{
    char filter[256], wallet[65], id[65];
    int64_t now = clock_now();
    r->phase = PHASE_WAIT;
    if (nwc_build_request(&r->uri, r->info.encryption, r->method, r->params, now,
                          now + NWC_REQUEST_TTL_S, &r->ev) < 0) {
        finish(r, NWC_EINTERNAL, NULL);
        return;
    }
    hex_encode(r->uri.wallet_pubkey, 32, wallet);
    hex_encode(r->ev.id, 32, id);
    snprintf(filter, sizeof(filter), "[{\"kinds\":[%d],\"authors\":[\"%s\"],\"#e\":[\"%s\"]}]",
             NWC_KIND_RESPONSE, wallet, id);
    if (relay_pool_subscribe(r->nwc->pool, relay_urls(r), r->uri.n_relays, filter, &r->kp,
                             on_response, on_wait_eose, r, &r->sub) < 0) {
        r->sub = NULL;
        finish(r, NWC_EPUBLISH, NULL);
        return;
    }
    uv_timer_start(&r->timer, on_timeout, r->timeout_ms, 0);
}

static void on_kickoff(uv_timer_t *t)
{
    struct nwc_req *r = container_of(t, struct nwc_req, timer);
    const struct info_entry *e = cache_find(r->nwc, r->uri.wallet_pubkey);
    if (!e) {
        start_info(r);
        return;
    }
    r->info = e->info;
    r->have_info = 1;
    start_wait(r);
}

/* ---- public ---- */

int nwc_request(struct nwc *nwc, const char *uri, const char *method, const cJSON *params,
                uint64_t timeout_ms, nwc_done_cb *cb, void *arg)
{
    ASSERT_LOOP_THREAD();
    const char *err = NULL;
    if (nwc->stop.stopping)
        return NWC_ECANCELED;
    if (nwc->n_reqs >= NWC_MAX_PENDING || strlen(method) >= 32)
        return NWC_EINTERNAL;
    struct nwc_req *r = xcalloc(1, sizeof(*r));
    if (nwc_uri_parse(uri, &r->uri, &err) < 0 ||
        nostr_keypair_from_seckey(&r->kp, r->uri.secret) < 0) {
        nwc_uri_free(&r->uri);
        free(r);
        return NWC_EURI;
    }
    r->nwc = nwc;
    strcpy(r->method, method);
    r->params = params ? cJSON_Duplicate(params, 1) : NULL;
    r->timeout_ms = timeout_ms;
    r->cb = cb;
    r->arg = arg;
    r->refs = 1;
    nostr_event_init(&r->ev);
    uv_timer_init(nwc->loop, &r->timer);
    list_insert_head(&nwc->reqs, &r->node);
    nwc->n_reqs++;
    /* Starts from the loop so the callback never runs inside this call. */
    uv_timer_start(&r->timer, on_kickoff, 0, 0);
    return 0;
}

int nwc_make_invoice(struct nwc *nwc, const char *uri, int64_t amount_msats,
                     const char *description, int64_t expiry_s, nwc_done_cb *cb, void *arg)
{
    ASSERT_LOOP_THREAD();
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "amount", (double)amount_msats);
    cJSON_AddStringToObject(p, "description", description);
    cJSON_AddNumberToObject(p, "expiry", (double)expiry_s);
    int rc = nwc_request(nwc, uri, "make_invoice", p, NWC_TIMEOUT_OTHER_MS, cb, arg);
    cJSON_Delete(p);
    return rc;
}

int nwc_lookup_invoice(struct nwc *nwc, const char *uri, const char *payment_hash, nwc_done_cb *cb,
                       void *arg)
{
    ASSERT_LOOP_THREAD();
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "payment_hash", payment_hash);
    int rc = nwc_request(nwc, uri, "lookup_invoice", p, NWC_TIMEOUT_OTHER_MS, cb, arg);
    cJSON_Delete(p);
    return rc;
}

int nwc_pay_invoice(struct nwc *nwc, const char *uri, const char *bolt11, nwc_done_cb *cb,
                    void *arg)
{
    ASSERT_LOOP_THREAD();
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "invoice", bolt11);
    int rc = nwc_request(nwc, uri, "pay_invoice", p, nwc->pay_timeout_ms, cb, arg);
    cJSON_Delete(p);
    return rc;
}

/* ---- notifications ---- */

static void on_notification(const struct nostr_event *ev, const char *relay_url, void *arg)
{
    struct nwc_watch *w = arg;
    struct nwc_notification n;
    (void)relay_url;
    if (nwc_parse_notification(&w->uri, ev, &n) < 0) {
        LOG_WARN("nwc: ignoring a malformed notification");
        return;
    }
    LOG_DEBUG("nwc: notification %s", n.type);
    w->cb(&n, w->arg);
    nwc_notification_free(&n);
}

static void watch_free(struct nwc_watch *w)
{
    if (!w)
        return;
    if (w->sub)
        relay_sub_close(w->sub);
    nwc_uri_free(&w->uri);
    secure_zero(&w->kp, sizeof(w->kp));
    free(w);
}

int nwc_watch(struct nwc *nwc, const char *uri, nwc_notify_cb *cb, void *arg)
{
    ASSERT_LOOP_THREAD();
    char filter[320], wallet[65], client[65];
    const char *err = NULL;
    if (nwc->stop.stopping)
        return NWC_ECANCELED;
    if (nwc->watch)
        return NWC_EINTERNAL;
    struct nwc_watch *w = xcalloc(1, sizeof(*w));
    if (nwc_uri_parse(uri, &w->uri, &err) < 0 ||
        nostr_keypair_from_seckey(&w->kp, w->uri.secret) < 0) {
        watch_free(w);
        return NWC_EURI;
    }
    w->cb = cb;
    w->arg = arg;
    hex_encode(w->uri.wallet_pubkey, 32, wallet);
    hex_encode(w->kp.pubkey, 32, client);
    /* No "since": 2319x are ephemeral (never stored), and our clock may be a test's. */
    snprintf(filter, sizeof(filter), "[{\"kinds\":[%d,%d],\"authors\":[\"%s\"],\"#p\":[\"%s\"]}]",
             NWC_KIND_NOTIFY_NIP04, NWC_KIND_NOTIFY_NIP44, wallet, client);
    int rc = relay_pool_subscribe(nwc->pool, (const char *const *)w->uri.relays, w->uri.n_relays,
                                  filter, &w->kp, on_notification, NULL, w, &w->sub);
    if (rc < 0) {
        w->sub = NULL;
        watch_free(w);
        return rc;
    }
    nwc->watch = w;
    return 0;
}

void nwc_free(struct nwc *nwc, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_enter(nwc ? &nwc->stop : NULL, cb, arg) != 0)
        return;
    watch_free(nwc->watch);
    nwc->watch = NULL;
    /* finish() may unlink nothing synchronously (the timer close is deferred), so the list
     * stays valid while walking it. */
    struct list *q;
    LIST_FOREACH (q, &nwc->reqs)
        finish(list_entry(q, struct nwc_req, node), NWC_ECANCELED, NULL);
    maybe_free_nwc(nwc);
}
