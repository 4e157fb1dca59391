/* Internal to src/metrics/metrics.c and src/metrics/server.c (not a public interface). */
#ifndef CARAVEL_METRICS_INT_H
#define CARAVEL_METRICS_INT_H

#include <stdint.h>

#include <uv.h>

#include "metrics/metrics.h"
#include "util/stop.h"

#define METRICS_N_BUCKETS 12

struct metrics_route {
    const char *name; /* borrowed (see metrics_observe_request) */
    struct {
        int status;
        uint64_t count;
    } statuses[METRICS_MAX_STATUSES];
    size_t n_statuses;
    uint64_t buckets[METRICS_N_BUCKETS + 1]; /* per bucket, not cumulative; last = +Inf */
    uint64_t sum_us, count;
};

struct metrics_counter {
    char *name, *labels; /* owned */
    uint64_t value;
};

struct metrics {
    struct metrics_route routes[METRICS_MAX_ROUTES];
    size_t n_routes;
    struct metrics_counter counters[METRICS_MAX_COUNTERS];
    size_t n_counters;
    int warned;
    int64_t start_time;
    /* listener side (metrics/server.c); unused by a bare registry */
    struct app *app;
    struct http_server *srv;
    uv_timer_t refresh;
    int refresh_inited, reading;
    /* Loop stalls: a prepare handle runs just before the loop waits for events; the time since
     * the previous one minus the time the loop spent waiting (uv_metrics_idle_time) is how
     * long that iteration kept the loop busy. */
    uv_prepare_t stall;
    int stall_inited;
    uint64_t stall_last_ns, stall_idle_ns, stall_max_ns, stalls_over_50ms;
    /* The loop thread's CPU time (CLOCK_THREAD_CPUTIME_ID) over the same iteration: unlike
     * the wall time above it leaves out time the thread was preempted (a busy machine). */
    uint64_t stall_cpu_last_ns, stall_cpu_max_ns;
    int64_t outbox_queued; /* -1 until the first refresh */
    int64_t read_result;   /* written by the refresh work on a pool thread while reading */
    struct stop stop;      /* pending: the callbacks still to come before m can be freed */
};

#endif
