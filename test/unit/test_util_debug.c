#include "test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "util/debug.h"

static void call_loop_only(void *arg)
{
    (void)arg;
    ASSERT_LOOP_THREAD();
}

/* Runs fn in a forked child; returns 1 when the child was killed by SIGABRT. */
static int aborts(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void loop_assert_from_another_thread(void)
{
    uv_thread_t t;
    debug_set_loop_thread();
    ASSERT_LOOP_THREAD(); /* fine on this thread */
    fprintf(stderr, "(an assertion failure is expected here)\n");
    uv_thread_create(&t, call_loop_only, NULL);
    uv_thread_join(&t);
}

static void pool_assert_on_the_loop_thread(void)
{
    debug_set_loop_thread();
    ASSERT_POOL_THREAD();
}

static void bad_transition(void)
{
    static const unsigned next[] = {[0] = 1u << 1, [1] = 0};
    (void)next;                          /* read only by the assertions */
    DEBUG_ASSERT_TRANSITION(next, 0, 1); /* allowed */
    DEBUG_ASSERT_TRANSITION(next, 1, 0); /* not allowed */
}

/* The assertions fire where assertions are on (ASan and DEBUG=1 builds) and are compiled out
 * of the release build. */
TEST(debug_assertions_fire_only_when_enabled)
{
    void (*const cases[])(void) = {loop_assert_from_another_thread, pool_assert_on_the_loop_thread,
                                   bad_transition};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (aborts(cases[i]) != CARAVEL_ASSERTS)
            TEST_FAIL_("case %zu: abort %s expected", i, CARAVEL_ASSERTS ? "" : "not");
}

/* Off the loop thread a pool assertion holds. */
static void pool_ok(void *arg)
{
    *(int *)arg = debug_off_loop_thread();
}

TEST(debug_pool_thread_is_not_the_loop_thread)
{
    uv_thread_t t;
    int off = 0;
    debug_set_loop_thread();
    ASSERT(debug_on_loop_thread());
    ASSERT(!debug_off_loop_thread());
    uv_thread_create(&t, pool_ok, &off);
    uv_thread_join(&t);
    ASSERT_EQ(off, 1);
}
