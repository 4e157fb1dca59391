/* Small CPU-bound jobs (a BIP-340 check: ~50 us) run on the libuv threadpool in batches.
 *
 * One uv_queue_work per job costs a mutex, a condition-variable wake and an eventfd write on
 * the way out, plus the loop's wake-up on the way back: under load that hand-off cost more
 * loop-thread time than the rest of the request. Here at most max_inflight batches run at
 * once (one per core is enough to use them all); jobs that arrive meanwhile wait, and when a
 * batch ends the waiting jobs leave together, shared among the free slots (at most max_batch
 * each, which bounds the wait behind one batch). An idle batcher hands a job over at once, so
 * a lone request waits for nothing.
 *
 * Loop thread only, except run, which is called on a pool thread and may touch only its own
 * job. Nothing to close: the batcher holds no handle, and every submitted job's done runs. */
#ifndef CARAVEL_BATCH_H
#define CARAVEL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Embedded in the caller's job, which it owns until done has run. */
struct batch_job {
    struct batch_job *next;
    void (*run)(struct batch_job *job);              /* pool thread */
    void (*done)(struct batch_job *job, int status); /* loop thread: 0 (ran) */
};

struct batcher {
    uv_loop_t *loop;
    unsigned max_inflight; /* batches on the threadpool at once */
    unsigned max_batch;    /* jobs per batch */
    unsigned inflight;
    struct batch_job *head, *tail; /* waiting, in submission order */
    size_t waiting;
    uint64_t batches, jobs; /* handed over so far (tests, metrics) */
    unsigned max_seen;      /* the largest batch so far */
};

/* max_inflight and max_batch are at least 1. */
void batcher_init(struct batcher *b, uv_loop_t *loop, unsigned max_inflight, unsigned max_batch);
/* Queues job (run/done set by the caller); done runs exactly once, after run, on the loop
 * thread. Jobs of one batch run and finish in submission order. */
void batcher_submit(struct batcher *b, struct batch_job *job);

#endif
