/* util/stop.h: the stop of an asynchronous service. Table-driven sequences of begin / hold /
 * release / ready with the busy flag, checking when the stop may finish and that the
 * callback runs exactly once, for the first stop call only. */
#include <string.h>

#include "test.h"

#include "util/stop.h"
#include "util/util.h"

static int calls[3];

static void on_stopped(void *arg)
{
    calls[(int *)arg - calls]++;
}

/* op: 'b' stop_begin with callback `arg` (want: its return), 'h' hold, 'r' release,
 * 'y' stop_ready with busy = arg (want: its answer). */
struct op {
    char op;
    int arg, want;
};

static const struct {
    const char *name;
    struct op ops[8];
    int want_calls[3]; /* callbacks run after stop_finish of the finished stop */
} cases[] = {
    {"not stopping: never ready", {{'y', 0, 0}, {'h', 0, 0}, {'r', 0, 0}, {'y', 0, 0}}, {0, 0, 0}},
    {"idle at once", {{'b', 0, 0}, {'y', 0, 1}}, {1, 0, 0}},
    {"busy, then idle", {{'b', 1, 0}, {'y', 1, 0}, {'y', 1, 0}, {'y', 0, 1}}, {0, 1, 0}},
    {"waits for every hold",
     {{'h', 0, 0},
      {'b', 0, 0},
      {'h', 0, 0},
      {'y', 0, 0},
      {'r', 0, 0},
      {'y', 0, 0},
      {'r', 0, 0},
      {'y', 0, 1}},
     {1, 0, 0}},
    {"ready answers once", {{'b', 2, 0}, {'y', 0, 1}, {'y', 0, 0}, {'y', 0, 0}}, {0, 0, 1}},
    {"a second stop is ignored, its callback never runs",
     {{'b', 0, 0}, {'b', 1, -1}, {'y', 0, 1}},
     {1, 0, 0}},
};

TEST(stop_table)
{
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct stop s = {0};
        memset(calls, 0, sizeof(calls));
        for (size_t i = 0; i < ARRAY_SIZE(cases[c].ops) && cases[c].ops[i].op; i++) {
            const struct op *o = &cases[c].ops[i];
            int got = 0;
            if (o->op == 'b')
                got = stop_begin(&s, on_stopped, &calls[o->arg]);
            else if (o->op == 'h')
                stop_hold(&s);
            else if (o->op == 'r')
                stop_release(&s);
            else
                got = stop_ready(&s, o->arg);
            if (got != o->want)
                TEST_FAIL_("%s: step %zu (%c) answered %d, want %d", cases[c].name, i, o->op, got,
                           o->want);
        }
        ASSERT_EQ(calls[0] + calls[1] + calls[2], 0); /* nothing before stop_finish */
        if (s.finished)
            stop_finish(s);
        for (int k = 0; k < 3; k++)
            ASSERT_EQ(calls[k], cases[c].want_calls[k]);
    }
}

TEST(stop_now_calls_at_once_and_tolerates_no_callback)
{
    memset(calls, 0, sizeof(calls));
    stop_now(on_stopped, &calls[2]);
    ASSERT_EQ(calls[2], 1);
    stop_now(NULL, NULL);
    struct stop s = {0};
    ASSERT_OK(stop_begin(&s, NULL, NULL));
    ASSERT(stop_ready(&s, 0));
    stop_finish(s); /* no callback: nothing to call */
}
