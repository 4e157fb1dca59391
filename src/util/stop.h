/* Stopping an asynchronous service: refuse new work, wait for what is in flight, then free and
 * call the caller back, exactly once. Embedded in the service's struct; loop thread only (the
 * service's own thread).
 *
 *   void svc_stop(struct svc *s, void (*cb)(void *arg), void *arg)
 *   {
 *       if (stop_enter(s ? &s->stop : NULL, cb, arg) != 0)
 *           return;                                  (never started, or already stopping)
 *       ... cancel timers and requests: each ends through maybe_stopped ...
 *       maybe_stopped(s);
 *   }
 *   static void maybe_stopped(struct svc *s)       (after every piece of work that ends)
 *   {
 *       if (!stop_ready(&s->stop, s->requests_in_flight > 0))
 *           return;
 *       struct stop done = s->stop;
 *       free(s);
 *       stop_finish(done);
 *   }
 *
 * `pending` counts what the stop waits for that the service does not count itself (handles
 * being closed, for example): stop_hold before starting it, stop_release when it ended. */
#ifndef CARAVEL_UTIL_STOP_H
#define CARAVEL_UTIL_STOP_H

#include <stddef.h>

#include "util/debug.h"

struct stop {
    int stopping; /* stop_begin ran: the service refuses new work */
    int finished; /* stop_ready answered 1: the service is being freed */
    size_t pending;
    void (*cb)(void *arg);
    void *arg;
};

/* The stop function was given no service (it never started): cb(arg) at once, if cb. */
static inline void stop_now(void (*cb)(void *arg), void *arg)
{
    if (cb)
        cb(arg);
}

/* Starts stopping with cb(arg) to call at the end. 0, or -1 when the service is already
 * stopping (the later call is ignored: its cb is never called). */
static inline int stop_begin(struct stop *s, void (*cb)(void *arg), void *arg)
{
    if (s->stopping)
        return -1;
    s->stopping = 1;
    s->cb = cb;
    s->arg = arg;
    return 0;
}

static inline void stop_hold(struct stop *s)
{
    s->pending++;
}

static inline void stop_release(struct stop *s)
{
    DEBUG_ASSERT(s->pending > 0);
    s->pending--;
}

/* 1, once, when the service may finish: it is stopping, nothing it holds is pending and busy
 * (its own test of the work in flight) is 0. Then it frees itself and calls stop_finish. */
static inline int stop_ready(struct stop *s, int busy)
{
    if (!s->stopping || s->finished || s->pending > 0 || busy)
        return 0;
    s->finished = 1;
    return 1;
}

/* The start of a stop function. s NULL (the service never started): calls cb(arg) at once.
 * Returns 0 when the caller goes on stopping, -1 when it must just return (no service, or it
 * is already stopping). */
static inline int stop_enter(struct stop *s, void (*cb)(void *arg), void *arg)
{
    if (!s) {
        stop_now(cb, arg);
        return -1;
    }
    return stop_begin(s, cb, arg);
}

/* Calls the stop's callback. Takes a copy: the service's memory is usually freed by then. */
static inline void stop_finish(struct stop done)
{
    DEBUG_ASSERT(done.finished);
    if (done.cb)
        done.cb(done.arg);
}

#endif
