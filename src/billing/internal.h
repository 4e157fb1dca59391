/* Private to src/billing's worker: the run (worker.c: phases, batches loaded and recorded,
 * notifications, start/stop) and one invoice's chain of wallet steps (chain.c: make_invoice,
 * lookup_invoice, pay_invoice, and the writes between them). Loop thread only; the structs are
 * owned by the worker (struct billing), its current batch (struct chain) or one database job
 * (struct job, freed by its done callback). Not a public interface. */
#ifndef CARAVEL_BILLING_INTERNAL_H
#define CARAVEL_BILLING_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "billing/calc.h"
#include "billing/repo.h"
#include "db/db.h"
#include "db/lease.h"
#include "metrics/metrics.h"
#include "util/stop.h"

struct app;
struct nwc;

#define COLLECT_EVERY_S 86400 /* at most one collection per invoice per 24 h */
#define BOLT11_EXPIRY_S 86400 /* make_invoice expiry */
#define MAX_BOLT11_DMS 4      /* the BOLT11 DM + at most 3 reminders */
#define MAX_FORCED 64
#define BATCH_DEFAULT 500 /* tenants / invoices per transaction (CARAVEL_TEST_BILLING_BATCH) */
/* ... and at most about this long: a client's write waits behind at most one background
 * batch (db_write_background), so this bounds what billing adds to API writes (20 ms gave a
 * write p99 of 49-63 ms during a 100,000-relay invoice pass). While clients are writing
 * (db_clients_writing) the shorter budget: its COMMIT's fsync has less to write, which is
 * most of a client's wait (100,000-relay invoice pass: write p99 8.2-9.8 ms instead of
 * 10.9-15.2, for 3.5-5.0 s of the pass's CPU instead of 1.4-1.9 s). */
#define BATCH_BUDGET_MS 4
#define BATCH_BUSY_BUDGET_MS 1

enum phase { PH_IDLE, PH_INVOICES, PH_FORCED, PH_DUE, PH_DUNNING };

struct billing;

/* One invoice being worked on in the current batch. */
struct chain {
    struct billing *b;
    struct repo_pending *p; /* borrowed: b->pend[i] */
    int paid, failed;       /* marked paid / a step failed (retry next run) */
    int64_t requests;       /* wallet requests this chain sent */
};

struct billing {
    struct app *app;
    uv_timer_t timer;
    struct nwc *nwc; /* owned (also published as app->nwc) */
    struct billing_cfg cfg;
    int64_t interval_s;
    size_t batch, concurrency, wallet_cap;
    int running, rerun, nwc_gone, lease_stopping, lease_gone, notify_gone;
    /* PostgreSQL: hears a standby's "collect this tenant now" (channel billing_collect). */
    struct db_notify *notify;
    /* Several instances on one PostgreSQL database: only the holder of the "billing" lease
     * runs, every write checks its token in its own transaction, and no wallet request leaves
     * unless the lease is valid now (db/lease.h). On SQLite the process always leads. */
    struct lease *lease;
    int64_t woken_epoch; /* the lease epoch whose open attempts were looked up (-1: none) */
    struct stop stop;    /* billing_stop: waits for the run, the wallet client and side jobs */
    int watching;        /* subscribed to the platform wallet's notifications */
    size_t n_side_jobs;  /* notification jobs in the database queue */
    char forced[MAX_FORCED][65]; /* tenants to collect now, ignoring the 24 h rule */
    size_t n_forced;
    char run_forced[MAX_FORCED][65]; /* the forced set of the current run */
    size_t n_run_forced, forced_idx;
    /* current run */
    enum phase phase;
    int64_t run_now;           /* clock at the start of the run: invoices due up to it */
    size_t wallet_sent;        /* wallet requests this run */
    struct repo_cursor cursor; /* due invoices / dunning: last row handled */
    struct repo_pending *pend; /* current batch of invoices */
    struct chain *chains;
    size_t n_pend, next_idx, active;
};

/* One database job; fields are used by the step that queued it. */
struct job {
    struct billing *b;
    db_work_fn *work;         /* a write's own work, run after the fence (bw_submit) */
    db_done_cb *done;         /* ... and its done */
    struct lease_token token; /* the lease as the write was queued */
    struct chain *c;          /* the invoice's chain, or NULL */
    struct repo_pending *p;   /* borrowed: c->p */
    int64_t now;
    int created;
    char id[65];
    char *bolt11, *hash, *reason; /* owned */
    int64_t expires_at;
    int clear_error, found;
    int64_t amount_msats, requests;
    struct repo_ids changed;
    struct repo_batch batch;
    struct repo_cursor cursor;     /* dunning: position before (work resets from it) ... */
    struct repo_cursor cursor_out; /* ... and after the batch */
    struct repo_schedule *sched;   /* owned */
    size_t n_sched;
};

/* Prometheus counters (metrics.h; a no-op when METRICS_PORT is off). result: a literal. */
#define BILLING_COUNT(b, name, result)                                                             \
    metrics_inc((b)->app->metrics, "caravel_billing_" name "_total", "result=\"" result "\"")

/* worker.c */
void bw_crash_point(const struct billing *b, const char *name);
/* The run must end at its next step: billing is stopping or another instance leads. */
int bw_halting(const struct billing *b);
void bw_count_settled(struct billing *b, int64_t requests);
int bw_wallet_usable(const struct billing *b);
struct job *bw_job_new(struct billing *b, struct chain *c);
void bw_job_free(struct job *j);
void bw_after_commit(struct billing *b, struct job *j, int queued_dm);
void bw_submit(struct billing *b, int write, db_work_fn *work, db_done_cb *done, struct job *j);
void bw_maybe_watch(struct billing *b);
/* Every chain of the batch has ended: records each invoice's next step, then the run goes on. */
void bw_batch_done(struct billing *b);

/* chain.c */
int bw_wallet_budget_left(const struct billing *b);
/* Works on the batch pend[0..n) (owned by b until batch_free), up to b->concurrency invoices at
 * once; calls bw_batch_done when every chain has ended. */
void bw_batch_start(struct billing *b, struct repo_pending *pend, size_t n);
/* Whether tenant asked for a collection now (ignores the 24 h rule). */
int bw_is_forced(const struct billing *b, const char *tenant);

#endif
