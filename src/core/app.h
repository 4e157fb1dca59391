/* The root context: one per process, created by main.c, owned by the loop thread.
 * Services that are disabled by configuration are NULL; every module that calls another
 * service checks for that. */
#ifndef CARAVEL_APP_H
#define CARAVEL_APP_H

#include <uv.h>

#include "core/config.h"
#include "nostr/keys.h"

struct db;
struct http_server;
struct sync_worker; /* zooid sync worker (src/sync/worker.c) */
struct relay_pool;  /* Nostr relay connections (src/net/relay_pool.c) */
struct robot;       /* robot identity and DM outbox (src/robot/robot.c) */
struct nwc;         /* Nostr Wallet Connect client (src/billing/nwc.c) */
struct billing;     /* billing jobs (src/billing/worker.c) */
struct metrics;
struct nip86;     /* NIP-86 client for relay management (src/net/nip86.c) */
struct blocklist; /* operator block-list rollout (src/blocklist/worker.c) */
struct members;   /* member-count refresh (src/members/worker.c) */
struct db_notify; /* other instances' changes (src/db/notify.c, core/wake.h) */

/* After-commit events. A feature says what it does when a change has been committed
 * (app_on at start, app_off at stop); whoever commits the change (the API, billing) fires
 * it with app_emit without naming the feature. So the API knows no service, and features
 * do not call each other for these. Loop thread only. */
enum app_event {
    APP_RELAY_CHANGED,          /* id: relay id; its config must reach zooid */
    APP_RELAY_CREATED,          /* id: relay id; a new relay (its block-list rows were written
                                 * with it): its config must reach zooid */
    APP_TENANT_BILLING_CHANGED, /* id: tenant pubkey; its wallet changed, collect now */
    APP_BLOCKLIST_CHANGED,      /* id: pubkey; an operator block-list entry was added or removed */
    APP_RELAY_SYNCED,           /* id: relay id; zooid accepted its config (it serves the host) */
    APP_DM_QUEUED,              /* id: ""; a DM was queued in the robot's outbox */
    APP_RECONCILE, /* id: ""; another instance's changes may have been missed (core/wake.h) */
    APP_EVENT_COUNT
};
typedef void app_event_fn(void *owner, const char *id);

/* Gauge samplers: a feature with gauges of its own fills its fields of struct
 * metrics_gauges (metrics/metrics.h) when /metrics is scraped, so the metrics listener reads
 * them without naming the feature. Loop thread only. */
struct metrics_gauges;
typedef void app_sample_fn(void *owner, struct metrics_gauges *g);

#define APP_MAX_HOOKS 4 /* per event, and samplers; more is a programming error (asserted) */
struct app_hook {
    union {
        app_event_fn *event;
        app_sample_fn *sample;
    } fn;
    void *owner;
};

struct app {
    uv_loop_t *loop;
    struct config cfg;
    struct db *db;
    struct http_server *http;
    struct sync_worker *sync;
    struct relay_pool *pool;
    struct robot *robot;
    struct nwc *nwc;
    struct billing *billing;
    struct metrics *metrics;
    struct nip86 *nip86;
    struct blocklist *blocklist;
    struct members *members;
    struct db_notify *wake; /* NULL on SQLite */
    struct nostr_keypair robot_key;
    struct app_hook hooks[APP_EVENT_COUNT][APP_MAX_HOOKS];
    struct app_hook samplers[APP_MAX_HOOKS];
    int stopping;
};

/* Registers fn(owner, id) for ev. */
void app_on(struct app *app, enum app_event ev, app_event_fn *fn, void *owner);
/* Removes every hook of owner for ev (a stopping feature); unknown owner: no-op. */
void app_off(struct app *app, enum app_event ev, void *owner);
/* Calls the hooks of ev in registration order; none registered (feature off): no-op. */
void app_emit(struct app *app, enum app_event ev, const char *id);

/* Registers / removes owner's gauge sampler; app_sample calls every sampler on g. */
void app_add_sampler(struct app *app, app_sample_fn *fn, void *owner);
void app_remove_sampler(struct app *app, void *owner);
void app_sample(const struct app *app, struct metrics_gauges *g);

#endif
