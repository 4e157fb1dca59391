/* Private to src/sync's worker: the entry table, scheduling and stop (worker.c) and what is
 * said to zooid for one relay's sync and for a members request (request.c). Loop thread only.
 * The worker owns its entries (one per relay with work) and its database jobs (each freed by
 * its done callback). Not a public interface. */
#ifndef CARAVEL_SYNC_INTERNAL_H
#define CARAVEL_SYNC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "nostr/keys.h"
#include "sync/breaker.h"
#include "sync/repo.h"
#include "util/heap.h"
#include "util/list.h"
#include "util/stop.h"

struct app;
struct fetch;

#define SYNC_MAX_IN_FLIGHT 8
#define SYNC_MAX_ATTEMPTS 6
#define SYNC_RETRY_BASE_MS 30000 /* 30 s x 2^(n-1) ... */
#define SYNC_RETRY_CAP_MS 900000 /* ... capped at 15 min */
#define SYNC_TIMEOUT_MS 15000
#define SYNC_RECONCILE_MS 60000
#define SYNC_BATCH 1000 /* due relays loaded by one query */
/* Ready queue this short: load the next batch. */
#define SYNC_LOW_WATER (2 * SYNC_MAX_IN_FLIGHT)
#define SYNC_MAX_STEPS 4      /* PATCH -> POST -> PUT is the longest chain */
#define SYNC_MIN_BUCKETS 1024 /* the table doubles past one entry per bucket */
#define SYNC_BREAKER_THRESHOLD SYNC_MAX_IN_FLIGHT
#define SYNC_BREAKER_BASE_MS 2000 /* open window: 2 s, doubling per failed probe ... */
#define SYNC_BREAKER_CAP_MS 60000 /* ... up to 1 min */
#define SYNC_ERROR_MAX 400        /* "zooid M: HTTP n " + zooid's text (<= 200) + a hint */
/* A relay's sync is claimed (relay.sync_owner) for this many of its longest possible syncs
 * (SYNC_MAX_STEPS requests at the timeout each): it never expires under a sync in flight. */
#define SYNC_LEASE_SYNCS 2
/* A relay another instance holds is looked at again this long after that lease ends. */
#define SYNC_CLAIM_MARGIN_MS 250

struct entry {
    struct sync_worker *in;
    struct entry *hnext; /* hash chain */
    struct list ready;   /* in the worker's ready queue (linked: queued) */
    char *id;
    int in_flight, again;
    int probe;             /* this sync is the breaker's probe */
    uint64_t breaker_mark; /* the breaker's per-relay word (counted once per streak) */
    uint64_t retry_at;     /* clock_mono_ms() of the next try asked for by the sync that
                            * is ending (0 = none); finish() moves it into the heap */
    struct heap_node wait; /* in the worker's waits while waiting for a retry */
    /* The sync in flight. */
    struct sync_relay relay;
    char *state; /* relay's ZOOID_BODY_STATE: recorded as sync_config when zooid accepts it */
    const char *method;
    int steps;
};

struct sync_worker {
    struct app *app;
    struct fetch *fetch;
    struct nostr_keypair key;
    uv_timer_t reconcile, wake, reopen;
    struct heap waits; /* entries waiting for a retry, by retry time; `wake` fires at the min */
    struct entry **buckets;
    size_t n_buckets;
    struct list ready; /* entries waiting for a slot, oldest first */
    size_t n_entries, n_ready, active;
    struct breaker breaker;
    int reconciling, pumping;
    int more_due; /* the last batch was full and brought new relays: more may be due */
    size_t batch;
    int64_t retry_base_ms, retry_cap_ms, reconcile_ms;
    int64_t lease_ms;  /* of a claim on a relay's sync */
    const char *owner; /* db_instance(): this process in relay.sync_owner */
    long timeout_ms;
    struct stop stop; /* pending: the three timers and the fetch client being closed */
};

/* A db job of one entry (load, complete, fail) or of the reconcile pass (e == NULL). */
struct job {
    struct sync_worker *in;
    struct entry *e;
    char *id;
    int64_t version, now;
    int64_t now_ms;     /* clock_wall_ms() at creation: claims and leases */
    int64_t held_until; /* the claim: another instance holds the relay until then (unix ms) */
    char *error, *config;
    int stale, attempts, permanent;
    long status; /* zooid's answer, for a permanent failure's metric */
    int64_t delay_ms;
    char **ids;
    size_t n_ids;
};

/* worker.c */
/* The sync of e is over (whatever the outcome): frees its slot, decides what comes next. */
void sw_finish(struct entry *e);
struct job *sw_job_new(struct sync_worker *in, struct entry *e);
void sw_job_free(struct job *j);
/* The breaker's open window ended: start syncs again. */
void sw_on_breaker_reopen(uv_timer_t *t);

/* request.c */
/* Starts one sync of e (a free slot was taken for it): load, request(s), record. */
void sw_start_sync(struct sync_worker *in, struct entry *e);

#endif
