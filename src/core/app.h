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
struct infra;      /* zooid sync worker (src/sync/worker.c) */
struct relay_pool; /* Nostr relay connections (src/net/relay_pool.c) */
struct robot;      /* robot identity and DM outbox (src/robot/robot.c) */
struct nwc;        /* Nostr Wallet Connect client (src/billing/nwc.c) */
struct billing;    /* billing jobs (src/billing/worker.c) */
struct metrics;

struct app {
    uv_loop_t *loop;
    struct config cfg;
    struct db *db;
    struct http_server *http;
    struct infra *infra;
    struct relay_pool *pool;
    struct robot *robot;
    struct nwc *nwc;
    struct billing *billing;
    struct metrics *metrics;
    struct nostr_keypair robot_key;
    int stopping;
};

#endif
