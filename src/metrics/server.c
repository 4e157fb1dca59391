/* The metrics listener (see metrics.h): a second http_server answering GET /metrics with the
 * registry plus gauges sampled from the app at scrape time, and a timer refreshing the
 * cached outbox count through a db_read. Loop thread only, except outbox_count_work. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/app.h"
#include "db/db.h"
#include "http/server.h"
#include "metrics/metrics.h"
#include "metrics/internal.h"
#include "net/relay_pool.h"
#include "util/buf.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define EXPOSITION_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_STOP_GRACE_MS 1000

/* ---- outbox count ---- */

/* Pool thread: touches only m->read_result (nothing else reads it while m->reading). */
static int outbox_count_work(struct db_conn *conn, void *arg)
{
    struct metrics *m = arg;
    struct db_stmt *st = db_stmt(conn, "SELECT count(*) FROM message WHERE state = 'queued'");
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    m->read_result = rc == DB_ROW ? db_col_int64(st, 0) : -1;
    db_reset(st);
    return rc == DB_ROW ? 0 : db_status(rc);
}

static void maybe_finish_stop(struct metrics *m)
{
    if (!stop_ready(&m->stop, 0))
        return;
    struct stop done = m->stop;
    metrics_free(m);
    stop_finish(done);
}

static void on_outbox_count(int status, void *arg)
{
    struct metrics *m = arg;
    m->reading = 0;
    if (status == 0)
        m->outbox_queued = m->read_result;
    if (m->stop.stopping) {
        stop_release(&m->stop);
        maybe_finish_stop(m);
    }
}

static void on_refresh(uv_timer_t *t)
{
    struct metrics *m = container_of(t, struct metrics, refresh);
    if (m->reading || m->stop.stopping || !m->app->db)
        return;
    if (db_read(m->app->db, outbox_count_work, on_outbox_count, m) == 0)
        m->reading = 1;
}

/* ---- /metrics ---- */

static void sample_gauges(const struct app *app, struct metrics_gauges *g, int64_t outbox)
{
    g->in_flight = app->http ? (int64_t)http_server_inflight(app->http) : -1;
    struct db_stats st = {0};
    if (app->db)
        db_get_stats(app->db, &st);
    g->db_queue_depth = app->db ? (int64_t)db_queue_depth(app->db) : -1;
    g->db_wal_frames = app->db ? (int64_t)st.wal_pages : -1;
    g->db_checkpoints = app->db ? (int64_t)st.checkpoints : -1;
    g->db_wal_restarts = app->db ? (int64_t)st.wal_restarts : -1;
    g->db_writer_checkpoints = app->db ? (int64_t)st.writer_checkpoints : -1;
    g->db_storage_degraded = app->db ? db_storage_error(app->db) != 0 : -1;
    /* Features fill their own gauges (app_add_sampler); one that is off leaves -1. */
    g->sync_backlog = g->sync_breaker_state = g->sync_breaker_opens = g->billing_leader = -1;
    g->outbox_queued = app->db ? outbox : -1;
    g->relay_connections = app->pool ? (int64_t)relay_pool_connected(app->pool) : -1;
    g->http_connections = g->http_request_bytes = g->http_response_bytes = -1;
    if (app->http) {
        struct http_server_stats hs;
        http_server_stats(app->http, &hs);
        g->http_connections = (int64_t)hs.connections;
        uint64_t shed[METRICS_HTTP_SHED] = {hs.evicted,       hs.refused_per_addr, hs.refused_full,
                                            hs.accept_errors, hs.body_overloaded,  hs.slow_readers};
        memcpy(g->http_shed, shed, sizeof(shed));
        g->http_request_bytes = (int64_t)hs.request_bytes;
        g->http_response_bytes = (int64_t)hs.response_bytes;
    }
    app_sample(app, g);
}

static void on_prepare(uv_prepare_t *p)
{
    struct metrics *m = container_of(p, struct metrics, stall);
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(p->loop);
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    uint64_t cpu = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (m->stall_last_ns && cpu - m->stall_cpu_last_ns > m->stall_cpu_max_ns)
        m->stall_cpu_max_ns = cpu - m->stall_cpu_last_ns;
    m->stall_cpu_last_ns = cpu;
    if (m->stall_last_ns) {
        uint64_t wall = now - m->stall_last_ns, waited = idle - m->stall_idle_ns;
        uint64_t busy = wall > waited ? wall - waited : 0;
        if (busy > m->stall_max_ns)
            m->stall_max_ns = busy;
        if (busy > 50 * 1000000ull)
            m->stalls_over_50ms++;
    }
    m->stall_last_ns = now;
    m->stall_idle_ns = idle;
}

static void metrics_handle(struct http_exchange *ex, void *arg)
{
    struct metrics *m = arg;
    static const char nf[] = "not found: GET /metrics\n";
    if (strcmp(ex->req.path, "/metrics") != 0) {
        http_respond(ex, 404, "text/plain; charset=utf-8", NULL, nf, sizeof(nf) - 1);
        return;
    }
    if (strcmp(ex->req.method, "GET") != 0 && strcmp(ex->req.method, "HEAD") != 0) {
        http_respond(ex, 405, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n", NULL, 0);
        return;
    }
    struct metrics_gauges g;
    struct buf out;
    sample_gauges(m->app, &g, m->outbox_queued);
    g.loop_stall_max_ms = m->stall_inited ? (int64_t)(m->stall_max_ns / 1000000) : -1;
    g.loop_stalls_over_50ms = m->stall_inited ? (int64_t)m->stalls_over_50ms : -1;
    g.loop_stall_cpu_max_ms = m->stall_inited ? (int64_t)(m->stall_cpu_max_ns / 1000000) : -1;
    m->stall_max_ns = m->stall_cpu_max_ns = 0; /* the gauges cover the time since the previous
                                                * scrape */
    buf_init(&out, METRICS_MAX_BODY);
    if (metrics_render(m, &g, &out) != 0)
        LOG_WARN("metrics: exposition cut at %d bytes", METRICS_MAX_BODY);
    http_respond(ex, 200, EXPOSITION_TYPE, NULL, out.data ? out.data : "", out.len);
    buf_free(&out);
}

/* ---- start / stop ---- */

int metrics_start(struct metrics **out, struct app *app)
{
    ASSERT_LOOP_THREAD();
    *out = NULL;
    if (app->cfg.metrics_port == 0)
        return 0;
    struct metrics *m = metrics_new();
    struct http_server_config hc = {.host = app->cfg.host, .port = app->cfg.metrics_port};
    m->app = app;
    int rc = http_server_start(&m->srv, app->loop, &hc, metrics_handle, m);
    if (rc != 0) {
        LOG_ERROR("METRICS_PORT: cannot listen on %s:%d: %s", app->cfg.host, app->cfg.metrics_port,
                  uv_strerror(rc));
        metrics_free(m);
        return rc;
    }
    uv_timer_init(app->loop, &m->refresh);
    m->refresh_inited = 1;
    /* The first count at once, then periodically; it must not keep the loop alive. */
    uv_timer_start(&m->refresh, on_refresh, 0, METRICS_OUTBOX_REFRESH_MS);
    uv_unref((uv_handle_t *)&m->refresh);
    if (uv_loop_configure(app->loop, UV_METRICS_IDLE_TIME) == 0) {
        uv_prepare_init(app->loop, &m->stall);
        uv_prepare_start(&m->stall, on_prepare);
        uv_unref((uv_handle_t *)&m->stall);
        m->stall_inited = 1;
    }
    int v6 = strchr(app->cfg.host, ':') != NULL;
    LOG_INFO("metrics on http://%s%s%s:%d/metrics", v6 ? "[" : "", app->cfg.host, v6 ? "]" : "",
             http_server_port(m->srv));
    *out = m;
    return 0;
}

int metrics_port(const struct metrics *m)
{
    ASSERT_LOOP_THREAD();
    return m && m->srv ? http_server_port(m->srv) : 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct metrics *m = container_of((uv_timer_t *)h, struct metrics, refresh);
    stop_release(&m->stop);
    maybe_finish_stop(m);
}

static void on_stall_closed(uv_handle_t *h)
{
    struct metrics *m = container_of((uv_prepare_t *)h, struct metrics, stall);
    stop_release(&m->stop);
    maybe_finish_stop(m);
}

static void on_server_stopped(void *arg)
{
    struct metrics *m = arg;
    m->srv = NULL;
    stop_release(&m->stop);
    maybe_finish_stop(m);
}

void metrics_stop(struct metrics *m, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_enter(m ? &m->stop : NULL, cb, arg) != 0)
        return;
    /* Held by this call until every close has started, so no callback can free m early. */
    stop_hold(&m->stop);
    if (m->reading)
        stop_hold(&m->stop); /* the outbox count in flight */
    if (m->stall_inited) {
        stop_hold(&m->stop);
        uv_close((uv_handle_t *)&m->stall, on_stall_closed);
    }
    if (m->refresh_inited) {
        stop_hold(&m->stop);
        uv_close((uv_handle_t *)&m->refresh, on_timer_closed);
    }
    if (m->srv) {
        stop_hold(&m->stop);
        http_server_stop(m->srv, METRICS_STOP_GRACE_MS, on_server_stopped, m);
    }
    stop_release(&m->stop);
    maybe_finish_stop(m);
}
