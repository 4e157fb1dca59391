/* Metrics registry and Prometheus text exposition (see metrics.h). Loop thread only.
 * The listener and the app gauges live in metrics/server.c. */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/internal.h"
#include "util/buf.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

/* Upper bounds in microseconds; the last bucket (+Inf) is implicit. */
static const uint64_t bucket_us[METRICS_N_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[METRICS_N_BUCKETS] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};

struct metrics *metrics_new(void)
{
    ASSERT_LOOP_THREAD();
    struct metrics *m = xcalloc(1, sizeof(*m));
    m->start_time = (int64_t)time(NULL);
    m->outbox_queued = -1;
    return m;
}

void metrics_free(struct metrics *m)
{
    ASSERT_LOOP_THREAD();
    if (!m)
        return;
    for (size_t i = 0; i < m->n_counters; i++) {
        free(m->counters[i].name);
        free(m->counters[i].labels);
    }
    free(m);
}

/* ---- requests ---- */

static struct metrics_route *find_route(struct metrics *m, const char *route)
{
    if (!route)
        route = "other";
    for (size_t i = 0; i < m->n_routes; i++)
        if (m->routes[i].name == route)
            return &m->routes[i];
    for (size_t i = 0; i < m->n_routes; i++)
        if (strcmp(m->routes[i].name, route) == 0)
            return &m->routes[i];
    if (m->n_routes == METRICS_MAX_ROUTES - 1)
        route = "other"; /* the last slot is kept for the overflow */
    else if (m->n_routes == METRICS_MAX_ROUTES)
        return &m->routes[METRICS_MAX_ROUTES - 1];
    struct metrics_route *r = &m->routes[m->n_routes++];
    r->name = route;
    return r;
}

static void count_status(struct metrics_route *r, int status)
{
    size_t i;
    /* The last slot is kept for the overflow, shown as status "0" (any other). */
    for (i = 0; i < r->n_statuses; i++)
        if (r->statuses[i].status == status)
            break;
    if (i == r->n_statuses) {
        if (r->n_statuses == METRICS_MAX_STATUSES)
            i = METRICS_MAX_STATUSES - 1; /* already the overflow slot */
        else if (r->n_statuses == METRICS_MAX_STATUSES - 1)
            r->statuses[r->n_statuses++].status = 0;
        else
            r->statuses[r->n_statuses++].status = status;
    }
    r->statuses[i].count++;
}

void metrics_observe_request(struct metrics *m, const char *route, int status, uint64_t micros)
{
    ASSERT_LOOP_THREAD();
    if (!m)
        return;
    struct metrics_route *r = find_route(m, route);
    count_status(r, status);
    size_t b = 0;
    while (b < METRICS_N_BUCKETS && micros > bucket_us[b])
        b++;
    r->buckets[b]++; /* not cumulative here; summed when rendered */
    r->sum_us += micros;
    r->count++;
}

/* ---- free-form counters ---- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= METRICS_MAX_NAME || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:") == n;
}

static struct metrics_counter *find_counter(struct metrics *m, const char *name, const char *labels)
{
    for (size_t i = 0; i < m->n_counters; i++)
        if (strcmp(m->counters[i].name, name) == 0 && strcmp(m->counters[i].labels, labels) == 0)
            return &m->counters[i];
    if (m->n_counters == METRICS_MAX_COUNTERS || !valid_name(name) ||
        strlen(labels) >= METRICS_MAX_LABELS || strpbrk(labels, "\n{}")) {
        if (!m->warned++)
            LOG_WARN("metrics: counter %.64s{%.64s} refused (invalid or table full)", name, labels);
        return NULL;
    }
    struct metrics_counter *c = &m->counters[m->n_counters++];
    c->name = xstrdup(name);
    c->labels = xstrdup(labels);
    return c;
}

void metrics_add(struct metrics *m, const char *name, const char *labels, uint64_t n)
{
    ASSERT_LOOP_THREAD();
    if (!m || !name)
        return;
    struct metrics_counter *c = find_counter(m, name, labels ? labels : "");
    if (c)
        c->value += n;
}

void metrics_inc(struct metrics *m, const char *name, const char *labels)
{
    ASSERT_LOOP_THREAD();
    metrics_add(m, name, labels, 1);
}

/* ---- exposition ---- */

/* Route patterns are our own literals, but escape anyway: the format requires it. */
static int put_escaped(struct buf *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\' || *s == '"')
            rc = buf_printf(out, "\\%c", *s);
        else if (*s == '\n')
            rc = buf_append_str(out, "\\n");
        else
            rc = buf_append(out, s, 1);
    }
    return rc;
}

static int render_requests(const struct metrics *m, struct buf *out)
{
    int rc = buf_append_str(out, "# HELP caravel_http_requests_total API requests answered, by "
                                 "route pattern and status.\n"
                                 "# TYPE caravel_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_routes && rc == 0; i++) {
        const struct metrics_route *r = &m->routes[i];
        for (size_t j = 0; j < r->n_statuses && rc == 0; j++) {
            rc = buf_append_str(out, "caravel_http_requests_total{route=\"");
            if (rc == 0)
                rc = put_escaped(out, r->name);
            if (rc == 0)
                rc = buf_printf(out, "\",status=\"%d\"} %" PRIu64 "\n", r->statuses[j].status,
                                r->statuses[j].count);
        }
    }
    return rc;
}

/* One sample line of the route's histogram: NAME_SUFFIX{route="R"REST} VALUE. */
static int render_route_line(struct buf *out, const char *suffix, const char *route,
                             const char *rest, const char *value)
{
    int rc = buf_printf(out, "caravel_http_request_duration_seconds_%s{route=\"", suffix);
    if (rc == 0)
        rc = put_escaped(out, route);
    if (rc == 0)
        rc = buf_printf(out, "\"%s} %s\n", rest, value);
    return rc;
}

static int render_histogram(const struct metrics_route *r, struct buf *out)
{
    char rest[48], value[48];
    uint64_t cum = 0;
    int rc = 0;
    for (size_t b = 0; b <= METRICS_N_BUCKETS && rc == 0; b++) {
        cum += r->buckets[b];
        snprintf(rest, sizeof(rest), ",le=\"%s\"", b < METRICS_N_BUCKETS ? bucket_le[b] : "+Inf");
        snprintf(value, sizeof(value), "%" PRIu64, cum);
        rc = render_route_line(out, "bucket", r->name, rest, value);
    }
    snprintf(value, sizeof(value), "%" PRIu64 ".%06" PRIu64, r->sum_us / 1000000,
             r->sum_us % 1000000);
    if (rc == 0)
        rc = render_route_line(out, "sum", r->name, "", value);
    snprintf(value, sizeof(value), "%" PRIu64, r->count);
    if (rc == 0)
        rc = render_route_line(out, "count", r->name, "", value);
    return rc;
}

static int render_latency(const struct metrics *m, struct buf *out)
{
    int rc = buf_append_str(out, "# HELP caravel_http_request_duration_seconds Time from a "
                                 "request's arrival to its answer.\n"
                                 "# TYPE caravel_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n_routes && rc == 0; i++)
        rc = render_histogram(&m->routes[i], out);
    return rc;
}

static int render_value(struct buf *out, const char *type, const char *name, const char *help,
                        int64_t v)
{
    if (v < 0)
        return 0;
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRId64 "\n", name, help, name, type,
                      name, v);
}

/* The app's gauges (and counters kept by a service), sampled at scrape time: adding one is one
 * row here and one field in struct metrics_gauges. A negative value means "not available" and
 * is left out. */
#define GAUGE(field, name, help)                                                                   \
    {                                                                                              \
        offsetof(struct metrics_gauges, field), "gauge", name, help                                \
    }
#define COUNTER(field, name, help)                                                                 \
    {                                                                                              \
        offsetof(struct metrics_gauges, field), "counter", name, help                              \
    }
static const struct gauge_row {
    size_t offset; /* of an int64_t in struct metrics_gauges */
    const char *type, *name, *help;
} gauge_rows[] = {
    GAUGE(in_flight, "caravel_http_requests_in_flight",
          "API requests parsed and not answered yet."),
    GAUGE(db_queue_depth, "caravel_db_queue_depth", "Database jobs queued or running."),
    GAUGE(db_wal_frames, "caravel_db_wal_frames",
          "Pages in the database's write-ahead log after the last write."),
    COUNTER(db_checkpoints, "caravel_db_checkpoints_total",
            "SQLite: background checkpoints of the write-ahead log completed."),
    COUNTER(db_wal_restarts, "caravel_db_wal_restarts_total",
            "SQLite: checkpoints that started the write-ahead log over."),
    COUNTER(db_writer_checkpoints, "caravel_db_writer_checkpoints_total",
            "SQLite: checkpoints the writer ran itself inside a commit (writes waited)."),
    GAUGE(db_storage_degraded, "caravel_db_storage_degraded",
          "1 while the database cannot save writes (disk full, read-only, file deleted)."),
    GAUGE(sync_backlog, "caravel_sync_backlog", "Relays waiting to be synced to zooid."),
    GAUGE(sync_breaker_state, "caravel_sync_breaker_state",
          "Sync circuit breaker: 0 closed, 1 open (zooid failing), 2 half-open."),
    COUNTER(sync_breaker_opens, "caravel_sync_breaker_opens_total",
            "Times the sync circuit breaker opened."),
    GAUGE(loop_stall_max_ms, "caravel_loop_stall_max_ms",
          "Longest event-loop iteration (callbacks, not waiting) since the previous scrape."),
    COUNTER(loop_stalls_over_50ms, "caravel_loop_stalls_over_50ms_total",
            "Event-loop iterations longer than 50 ms."),
    GAUGE(loop_stall_cpu_max_ms, "caravel_loop_stall_cpu_max_ms",
          "Most CPU time the loop thread used in one iteration since the previous scrape."),
    GAUGE(outbox_queued, "caravel_outbox_queued_messages",
          "DMs queued in the outbox (refreshed periodically)."),
    GAUGE(relay_connections, "caravel_relay_connections", "Nostr relay connections open."),
    GAUGE(billing_leader, "caravel_billing_leader",
          "1 while this instance runs billing (it holds the billing lease), 0 on a standby."),
    GAUGE(http_request_bytes, "caravel_http_request_buffer_bytes",
          "Request bytes the API holds now, all connections (HTTP_REQUEST_BUFFER caps them)."),
    GAUGE(http_response_bytes, "caravel_http_response_buffer_bytes",
          "Response bytes queued for clients that have not read them yet (HTTP_RESPONSE_BUFFER "
          "caps them)."),
};
#undef GAUGE
#undef COUNTER

static int render_gauges(const struct metrics *m, const struct metrics_gauges *g, struct buf *out)
{
    int rc = render_value(out, "gauge", "caravel_process_start_time_seconds",
                          "Start time of the process (unix seconds).", m->start_time);
    for (size_t i = 0; g && rc == 0 && i < sizeof(gauge_rows) / sizeof(gauge_rows[0]); i++) {
        const struct gauge_row *row = &gauge_rows[i];
        int64_t v;
        memcpy(&v, (const char *)g + row->offset, sizeof(v));
        rc = render_value(out, row->type, row->name, row->help, v);
    }
    return rc;
}

static int render_http_shed(const struct metrics_gauges *g, struct buf *out)
{
    static const char *const reasons[METRICS_HTTP_SHED] = {
        "evicted", "per_ip", "full", "accept_error", "body_overloaded", "slow_reader"};
    if (g->http_connections < 0)
        return 0;
    int rc = render_value(out, "gauge", "caravel_http_connections", "API connections open.",
                          g->http_connections);
    rc = rc ? rc
            : buf_append_str(out, "# HELP caravel_http_shed_total Connections closed or "
                                  "refused, and bodies refused, to stay within the limits.\n"
                                  "# TYPE caravel_http_shed_total counter\n");
    for (int i = 0; i < METRICS_HTTP_SHED && rc == 0; i++)
        rc = buf_printf(out, "caravel_http_shed_total{reason=\"%s\"} %" PRIu64 "\n", reasons[i],
                        g->http_shed[i]);
    return rc;
}

/* Counters are grouped by name: one TYPE line each, in first-registered order. */
static int render_counters(const struct metrics *m, struct buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < m->n_counters && rc == 0; i++) {
        const struct metrics_counter *c = &m->counters[i];
        size_t k = 0;
        while (k < i && strcmp(m->counters[k].name, c->name) != 0)
            k++;
        if (k < i)
            continue; /* already written with its first occurrence */
        rc = buf_printf(out, "# TYPE %s counter\n", c->name);
        for (size_t j = i; j < m->n_counters && rc == 0; j++) {
            const struct metrics_counter *d = &m->counters[j];
            if (strcmp(d->name, c->name) != 0)
                continue;
            rc = buf_printf(out, d->labels[0] ? "%s{%s} %" PRIu64 "\n" : "%s%s %" PRIu64 "\n",
                            d->name, d->labels, d->value);
        }
    }
    return rc;
}

int metrics_render(const struct metrics *m, const struct metrics_gauges *gauges, struct buf *out)
{
    ASSERT_LOOP_THREAD();
    int rc = render_requests(m, out);
    rc = rc ? rc : render_latency(m, out);
    rc = rc ? rc : render_gauges(m, gauges, out);
    rc = rc ? rc : gauges ? render_http_shed(gauges, out) : 0;
    return rc ? rc : render_counters(m, out);
}
