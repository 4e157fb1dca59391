/* Prometheus metrics: counters and a latency histogram kept in memory, served in
 * the text exposition format (version 0.0.4) on a second HTTP listener, METRICS_PORT on HOST,
 * at GET /metrics. Off when METRICS_PORT is 0: then app->metrics is NULL and every function
 * below accepts a NULL struct metrics and does nothing.
 *
 * Loop thread only: counters are plain integers, so updating one costs a short table scan
 * and an add (the request path does this once per request).
 *
 * Series exposed (all prefixed caravel_):
 *   http_requests_total{route,status}           counter, from metrics_observe_request
 *   http_request_duration_seconds{route}        histogram, same source
 *   http_requests_in_flight                     gauge, http_server_inflight(app->http)
 *   db_queue_depth                              gauge, db_queue_depth(app->db)
 *   db_wal_frames                               gauge, db_get_stats(app->db).wal_pages
 *   sync_backlog                                gauge, sync_worker_backlog(app->sync)
 *   sync_breaker_state                          gauge, 0 closed, 1 open (zooid failing:
 *                                               no sync requests), 2 half-open (one probe)
 *   sync_breaker_opens_total                    counter, times the breaker opened
 *   loop_stall_max_ms                           gauge, the event loop's longest iteration
 *                                               (callbacks, not waiting) since the previous
 *                                               scrape: how late any event could have been
 *   loop_stalls_over_50ms_total                 counter, iterations longer than 50 ms
 *   db_storage_degraded                         gauge, db_storage_error(app->db) != 0
 *   loop_stall_cpu_max_ms                       gauge, the most CPU time the loop thread
 *                                               used in one iteration since the previous
 *                                               scrape (excludes preemption by other load)
 *   outbox_queued_messages                      gauge, message rows in state 'queued'
 *                                               (a cached count refreshed every
 *                                               METRICS_OUTBOX_REFRESH_MS by a db_read)
 *   relay_connections                           gauge, relay_pool_connected(app->pool)
 *   http_connections                            gauge, http_server_stats(app->http)
 *   http_shed_total{reason}                     counter, same source: connections and
 *                                               bodies shed to stay within the limits
 *   http_request_buffer_bytes                   gauge, same source: request bytes held
 *   http_response_buffer_bytes                  gauge, same source: responses not yet read
 *   billing_leader                              gauge, 1 while this instance runs billing
 *                                               (holds the billing lease), 0 on a standby
 *                                               (billing's sampler; omitted without NWC_URL)
 *   process_start_time_seconds                  gauge
 *   <name>{labels}                              counters registered by metrics_inc (billing)
 * A gauge whose service is disabled (NULL in struct app) is omitted. */
#ifndef CARAVEL_METRICS_H
#define CARAVEL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct buf;
struct metrics;

#define METRICS_MAX_ROUTES 64    /* distinct route patterns; more are counted as "other" */
#define METRICS_MAX_STATUSES 16  /* distinct statuses per route; more are counted as 0 */
#define METRICS_MAX_COUNTERS 128 /* distinct metrics_inc series; more are dropped (logged once) */
#define METRICS_MAX_NAME 64
#define METRICS_MAX_LABELS 160
#define METRICS_OUTBOX_REFRESH_MS 15000
#define METRICS_MAX_BODY (256 * 1024)

/* The gauges sampled at scrape time; fields < 0 are omitted from the output. */
#define METRICS_HTTP_SHED 6
struct metrics_gauges {
    int64_t in_flight, db_queue_depth, db_wal_frames, sync_backlog, outbox_queued,
        relay_connections;
    /* API connections open; < 0 omits it and http_shed. */
    int64_t http_connections;
    /* caravel_http_shed_total{reason}: evicted, per_ip, full, accept_error, body_overloaded,
     * slow_reader (the order of struct http_server_stats). */
    uint64_t http_shed[METRICS_HTTP_SHED];
    int64_t sync_breaker_state, sync_breaker_opens; /* sync_worker_stats(app->sync) */
    /* The loop's longest iteration (time not spent waiting for events) since the previous
     * scrape, and iterations over 50 ms since start (metrics/server.c measures them). */
    int64_t loop_stall_max_ms, loop_stalls_over_50ms;
    int64_t loop_stall_cpu_max_ms; /* the same iteration's CPU time on the loop thread */
    /* 1 while the database cannot save writes (full, read-only, file deleted), else 0; the
     * reason is in GET /healthz and the log. */
    int64_t db_storage_degraded;
    /* Bytes held against HTTP_REQUEST_BUFFER / HTTP_RESPONSE_BUFFER (< 0: no API server). */
    int64_t http_request_bytes, http_response_bytes;
    /* 1 while this instance runs billing (holds the billing lease), 0 on a standby. */
    int64_t billing_leader;
    /* SQLite's WAL upkeep since start (db_get_stats; 0 on PostgreSQL): background
     * checkpoints, RESTART checkpoints that started the WAL over, and checkpoints the writer
     * had to run itself inside a COMMIT (what a client's write then waited for). */
    int64_t db_checkpoints, db_wal_restarts, db_writer_checkpoints;
};

/* A registry without a listener (unit tests, or before metrics_start). Free with
 * metrics_free. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Counts one answered request. route: the route pattern that matched, e.g. "/relays/:id"
 * (borrowed; must stay valid for the process, e.g. a string literal or the API's route
 * table; compared by pointer first, then by content), or NULL for "no route matched", shown
 * as route="other". status: the HTTP status sent. micros: time from the request's arrival
 * to the answer. m may be NULL (no-op). */
void metrics_observe_request(struct metrics *m, const char *route, int status, uint64_t micros);

/* Adds 1 to the counter name{labels}. name: a Prometheus metric name ending in "_total",
 * e.g. "caravel_billing_invoices_total"; labels: NULL, "" or the inside of the braces,
 * e.g. "result=\"paid\"" (label values must already be escaped; keep their number small).
 * Both are copied on first use. An invalid name is ignored (logged once). m may be NULL. */
void metrics_inc(struct metrics *m, const char *name, const char *labels);
/* Same with an amount (>= 0). */
void metrics_add(struct metrics *m, const char *name, const char *labels, uint64_t n);

/* Writes the whole exposition into out (appended; out capped by its own max). gauges may be
 * NULL. Returns 0 or BUF_TOOBIG. */
int metrics_render(const struct metrics *m, const struct metrics_gauges *gauges, struct buf *out);

/* Starts the metrics listener on app->cfg.host:app->cfg.metrics_port when that port is not
 * 0, and the outbox count refresh; *out = NULL (and 0 returned) when the port is 0. Reads
 * app->http, app->db, app->sync, app->pool at scrape time (each may be NULL). Returns 0 or a
 * negative UV_E* code (logged, naming METRICS_PORT); nothing is left to free on failure. */
int metrics_start(struct metrics **out, struct app *app);
/* The port actually bound (METRICS_PORT 0 never gets here; useful with tests). */
int metrics_port(const struct metrics *m);
/* Stops the listener and the refresh timer, waits for a refresh read in flight, frees m and
 * then calls cb (may be NULL) from the loop. m may be NULL (cb is then called at once). */
void metrics_stop(struct metrics *m, void (*cb)(void *arg), void *arg);

#endif
