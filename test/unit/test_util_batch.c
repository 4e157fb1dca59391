/* util/batch.h: every job runs once on a pool thread and finishes once on the loop, in
 * submission order within a batch; no more than max_inflight batches run at once and none is larger
 * than max_batch; an idle batcher hands a job over alone, a busy one gathers the waiting jobs. */
#include "test.h"

#include <stdatomic.h>

#include <uv.h>

#include "util/batch.h"
#include "util/debug.h"
#include "util/util.h"

#define JOBS 200

struct tjob {
    struct batch_job job;
    int index;
    int ran, done;
};

static atomic_int running, most_running;
static int done_order[JOBS], n_done;

static void tjob_run(struct batch_job *j)
{
    struct tjob *t = container_of(j, struct tjob, job);
    ASSERT(!debug_on_loop_thread());
    int now = atomic_fetch_add(&running, 1) + 1, seen = atomic_load(&most_running);
    while (now > seen && !atomic_compare_exchange_weak(&most_running, &seen, now))
        ;
    uv_sleep(1); /* long enough for the loop to queue up the rest meanwhile */
    t->ran++;
    atomic_fetch_sub(&running, 1);
}

static void tjob_done(struct batch_job *j, int status)
{
    struct tjob *t = container_of(j, struct tjob, job);
    ASSERT(debug_on_loop_thread());
    ASSERT_EQ(status, 0);
    ASSERT_EQ(t->ran, 1); /* run before done */
    t->done++;
    done_order[n_done++] = t->index;
}

static void reset(void)
{
    atomic_store(&running, 0);
    atomic_store(&most_running, 0);
    n_done = 0;
}

TEST(util_batch_idle_job_goes_alone)
{
    uv_loop_t loop;
    struct batcher b;
    struct tjob t = {.job = {.run = tjob_run, .done = tjob_done}, .index = 0};
    debug_set_loop_thread();
    reset();
    ASSERT_OK(uv_loop_init(&loop));
    batcher_init(&b, &loop, 2, 16);
    batcher_submit(&b, &t.job);
    ASSERT_EQ(b.inflight, 1); /* handed over at once, not held for company */
    ASSERT_EQ(b.waiting, 0);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_EQ(t.ran, 1);
    ASSERT_EQ(t.done, 1);
    ASSERT_EQ(b.batches, 1);
    ASSERT_EQ(b.max_seen, 1);
    ASSERT_EQ(b.inflight, 0);
    ASSERT_OK(uv_loop_close(&loop));
}

/* A burst: at most max_inflight batches at once, none over max_batch, every job once. */
TEST(util_batch_burst_is_batched_and_bounded)
{
    static const struct {
        unsigned inflight, batch;
    } cases[] = {{2, 16}, {1, 1}, {3, 5}, {2, 1000}};
    debug_set_loop_thread();
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        uv_loop_t loop;
        struct batcher b;
        struct tjob *jobs = xcalloc(JOBS, sizeof(*jobs));
        reset();
        ASSERT_OK(uv_loop_init(&loop));
        batcher_init(&b, &loop, cases[c].inflight, cases[c].batch);
        for (int i = 0; i < JOBS; i++) {
            jobs[i] = (struct tjob){.job = {.run = tjob_run, .done = tjob_done}, .index = i};
            batcher_submit(&b, &jobs[i].job);
            ASSERT_LE(b.inflight, cases[c].inflight);
        }
        ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
        for (int i = 0; i < JOBS; i++) {
            ASSERT_EQ(jobs[i].ran, 1);
            ASSERT_EQ(jobs[i].done, 1);
            if (cases[c].inflight == 1) /* one batch at a time: one order throughout */
                ASSERT_EQ(done_order[i], i);
        }
        ASSERT_EQ(n_done, JOBS);
        ASSERT_EQ(b.jobs, JOBS);
        ASSERT_LE(atomic_load(&most_running), (int)cases[c].inflight);
        ASSERT_LE(b.max_seen, cases[c].batch);
        /* the first inflight jobs go alone; the rest wait and leave together */
        if (cases[c].batch > 1)
            ASSERT_LT(b.batches, JOBS / 2);
        ASSERT_EQ(b.inflight, 0);
        ASSERT_EQ(b.waiting, 0);
        ASSERT_OK(uv_loop_close(&loop));
        free(jobs);
    }
}

/* done may free its job and submit another one. */
struct chain {
    struct batch_job job;
    struct batcher *b;
    int *left, *ran;
};

static void chain_run(struct batch_job *j)
{
    (*container_of(j, struct chain, job)->ran)++; /* one chain job at a time: no race */
}

static void chain_done(struct batch_job *j, int status)
{
    struct chain *c = container_of(j, struct chain, job);
    ASSERT_EQ(status, 0);
    if (--*c->left > 0) {
        struct chain *next = xcalloc(1, sizeof(*next));
        *next = *c;
        batcher_submit(c->b, &next->job);
    }
    free(c);
}

TEST(util_batch_done_frees_and_resubmits)
{
    uv_loop_t loop;
    struct batcher b;
    int left = 10, ran = 0;
    debug_set_loop_thread();
    ASSERT_OK(uv_loop_init(&loop));
    batcher_init(&b, &loop, 2, 4);
    struct chain *c = xcalloc(1, sizeof(*c));
    *c = (struct chain){{.run = chain_run, .done = chain_done}, &b, &left, &ran};
    batcher_submit(&b, &c->job);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_EQ(left, 0);
    ASSERT_EQ(ran, 10);
    ASSERT_EQ(b.jobs, 10);
    ASSERT_OK(uv_loop_close(&loop));
}
