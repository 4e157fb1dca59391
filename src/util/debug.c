#include "util/debug.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

/* Written once at start-up (or by the first asserting thread), read by every thread. */
static uv_thread_t loop_thread;
static atomic_int loop_thread_known;

void debug_set_loop_thread(void)
{
    loop_thread = uv_thread_self();
    atomic_store(&loop_thread_known, 1);
}

int debug_on_loop_thread(void)
{
    uv_thread_t self = uv_thread_self();
    int expected = 0;
    if (!atomic_load(&loop_thread_known) &&
        atomic_compare_exchange_strong(&loop_thread_known, &expected, 2)) {
        loop_thread = self;
        atomic_store(&loop_thread_known, 1);
        return 1;
    }
    while (atomic_load(&loop_thread_known) != 1)
        ; /* another thread is recording itself right now */
    return uv_thread_equal(&loop_thread, &self);
}

int debug_off_loop_thread(void)
{
    uv_thread_t self = uv_thread_self();
    if (atomic_load(&loop_thread_known) != 1)
        return 1;
    return !uv_thread_equal(&loop_thread, &self);
}

void debug_assert_failed(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
