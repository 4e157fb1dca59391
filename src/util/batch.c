#include "util/batch.h"

#include <stdlib.h>

#include "util/debug.h"
#include "util/util.h"

/* One hand-off to the threadpool: the jobs from first on, linked by next. */
struct batch_run {
    uv_work_t req;
    struct batcher *b;
    struct batch_job *first;
};

void batcher_init(struct batcher *b, uv_loop_t *loop, unsigned max_inflight, unsigned max_batch)
{
    *b = (struct batcher){.loop = loop,
                          .max_inflight = max_inflight ? max_inflight : 1,
                          .max_batch = max_batch ? max_batch : 1};
}

static void run_jobs(struct batch_job *first)
{
    for (struct batch_job *j = first; j; j = j->next)
        j->run(j);
}

static void run_work(uv_work_t *req)
{
    ASSERT_POOL_THREAD();
    run_jobs(container_of(req, struct batch_run, req)->first);
}

static void flush(struct batcher *b);

static void finish(struct batch_run *r, int status)
{
    struct batch_job *j = r->first;
    struct batcher *b = r->b;
    free(r);
    b->inflight--;
    flush(b); /* the next batch starts before this one's answers are written */
    while (j) {
        struct batch_job *next = j->next; /* done may free j */
        j->done(j, status);
        j = next;
    }
}

static void after_work(uv_work_t *req, int status)
{
    ASSERT_LOOP_THREAD();
    finish(container_of(req, struct batch_run, req), status);
}

/* Takes up to n waiting jobs into a new batch and hands it over. */
static void start(struct batcher *b, size_t n)
{
    struct batch_run *r = xcalloc(1, sizeof(*r));
    struct batch_job *last = b->head;
    r->b = b;
    r->first = b->head;
    for (size_t i = 1; i < n; i++)
        last = last->next;
    b->head = last->next;
    if (!b->head)
        b->tail = NULL;
    last->next = NULL;
    b->waiting -= n;
    b->inflight++;
    b->batches++;
    b->jobs += n;
    if (n > b->max_seen)
        b->max_seen = (unsigned)n;
    if (uv_queue_work(b->loop, &r->req, run_work, after_work) != 0) {
        run_jobs(r->first); /* not reached: libuv refuses only a NULL work function */
        finish(r, 0);
    }
}

/* Shares the waiting jobs among the free slots, at most max_batch each. */
static void flush(struct batcher *b)
{
    while (b->head && b->inflight < b->max_inflight) {
        size_t free_slots = b->max_inflight - b->inflight;
        size_t n = (b->waiting + free_slots - 1) / free_slots;
        start(b, n < b->max_batch ? n : b->max_batch);
    }
}

void batcher_submit(struct batcher *b, struct batch_job *job)
{
    ASSERT_LOOP_THREAD();
    job->next = NULL;
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    b->waiting++;
    flush(b);
}
