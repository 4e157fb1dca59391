/* Internals shared by relay_pool.c (connections, API, completion) and relay_pool_msg.c
 * (relay messages, NIP-42, sending REQ/EVENT). Not a public interface. Loop thread only. */
#ifndef CARAVEL_NET_RELAY_POOL_INT_H
#define CARAVEL_NET_RELAY_POOL_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/relay_pool.h"
#include "util/list.h"
#include "util/stop.h"

struct tls_config;
struct ws_client;

#define TICK_MS 200
#define IDLE_CLOSE_MS 60000
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 60000
#define STABLE_MS 1000       /* open this long: the next failure starts backoff afresh */
#define MAX_IDENTITIES 8     /* AUTH identities tracked per connection */
#define MAX_RELAY_STRING 256 /* relay-given strings we keep (challenge, error messages) */
#define MAX_URLS 32
#define SEEN_IDS 64 /* per subscription: the same event from several relays */

enum tstate { T_PENDING, T_SENT, T_WAIT_AUTH, T_OK, T_FAILED, T_CLOSED };
enum auth_state { A_NONE, A_SENT, A_OK, A_FAILED };

struct identity {
    uint8_t pubkey[32];
    enum auth_state state;
    char event_id[65];
};

struct conn {
    struct list node; /* in pool->conns */
    struct relay_pool *pool;
    char *url;
    struct ws_client *ws;
    int open;
    char *challenge;
    struct identity ids[MAX_IDENTITIES];
    size_t n_ids;
    unsigned attempts;
    uint64_t retry_at, opened_at, idle_since;
};

struct target {
    struct conn *conn;
    enum tstate state;
    int auth_retried;
    int done;       /* sub: EOSE, CLOSED, connection failure or EOSE deadline seen */
    uint64_t since; /* sub: when the REQ (or the wait for a connection) started */
};

struct relay_sub {
    struct list node; /* in pool->subs; unlinked when closed */
    struct relay_pool *pool;
    char id[24];
    char *filters; /* the inside of the filters array: {..},{..} */
    const struct nostr_keypair *auth;
    relay_event_cb *on_event;
    relay_eose_cb *on_eose;
    void *arg;
    int eose_fired, in_cb, closed;
    uint8_t seen[SEEN_IDS][8]; /* id prefixes of recently delivered events (a ring) */
    size_t n_seen;
    size_t n;
    struct target t[];
};

struct pub {
    struct list node; /* in pool->pubs */
    char *msg;        /* ["EVENT",{...}] */
    char id[65];
    const struct nostr_keypair *auth;
    relay_publish_cb *done;
    void *arg;
    uint64_t deadline;
    char *last_error;
    size_t n;
    struct target t[];
};

struct relay_pool {
    uv_loop_t *loop;
    char *ca_file;
    struct tls_config *tls;
    struct list conns; /* struct conn, newest first */
    struct list subs;  /* struct relay_sub, newest first */
    struct list pubs;  /* struct pub, newest first */
    uv_timer_t timer;
    uint64_t next_sub;
    struct stop stop; /* relay_pool_free: pending while the timer and the sockets close */
};

/* relay_pool.c */
char *rp_capped_dup(const char *s); /* copy of at most MAX_RELAY_STRING bytes */
void rp_conn_send(struct conn *c, const char *msg);
struct target *rp_target_on(struct target *t, size_t n, const struct conn *c);
/* User callbacks: publishes whose relays all answered; subscriptions whose EOSE is due. */
void rp_finish_pubs(struct relay_pool *pool);
void rp_fire_eoses(struct relay_pool *pool);
/* After a subscription callback: frees it if it was closed inside. */
void rp_sub_call_done(struct relay_sub *s);

/* relay_pool_msg.c */
/* Sends the REQs and EVENTs waiting for this (now open) connection. */
void rp_conn_send_work(struct conn *c);
/* One text message from the relay. */
void rp_handle_message(struct conn *c, const char *data, size_t len);

#endif
