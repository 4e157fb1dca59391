/* Assertions in the style of libuv's and curl's: on in debug and sanitizer builds
 * (CARAVEL_DEBUG defined, or NDEBUG not defined), compiled out of release builds (the
 * Makefile's plain build defines NDEBUG; SAN=asan defines CARAVEL_DEBUG), so they may sit on
 * hot paths. A failed assertion prints file:line and the expression, then aborts.
 *
 *   DEBUG_ASSERT(expr)       an invariant
 *   ASSERT_LOOP_THREAD()     at the entry of a function its header documents as loop thread
 *                            only: the caller is the thread that runs the event loop
 *   ASSERT_POOL_THREAD()     in work that must run on the libuv threadpool (SQL), never on
 *                            the loop thread
 *   DEBUG_ASSERT_TRANSITION(table, from, to)
 *                            a state machine's step: table[from] has bit (1u << to) set
 *
 * The loop thread is the one that called debug_set_loop_thread (main.c before uv_run, the unit
 * test runner in each test's process) or, when nobody did, the first thread to pass an
 * ASSERT_LOOP_THREAD. */
#ifndef CARAVEL_DEBUG_H
#define CARAVEL_DEBUG_H

#if defined(CARAVEL_DEBUG) || !defined(NDEBUG)
#define CARAVEL_ASSERTS 1
#else
#define CARAVEL_ASSERTS 0
#endif

/* Records the calling thread as the loop thread. */
void debug_set_loop_thread(void);
/* 1 when the calling thread is the loop thread (or no loop thread is known yet: then the
 * caller becomes it). */
int debug_on_loop_thread(void);
/* Any thread but the loop thread (or no loop thread known yet). */
int debug_off_loop_thread(void);
_Noreturn void debug_assert_failed(const char *file, int line, const char *expr);

#if CARAVEL_ASSERTS
#define DEBUG_ASSERT(expr) ((expr) ? (void)0 : debug_assert_failed(__FILE__, __LINE__, #expr))
#else
#define DEBUG_ASSERT(expr) ((void)0)
#endif

#define ASSERT_LOOP_THREAD() DEBUG_ASSERT(debug_on_loop_thread() && "loop thread only")
#define ASSERT_POOL_THREAD() DEBUG_ASSERT(debug_off_loop_thread() && "not on the loop thread")
#define DEBUG_ASSERT_TRANSITION(table, from, to)                                                   \
    DEBUG_ASSERT(((table)[(from)] & (1u << (to))) && "state transition allowed")

#endif
