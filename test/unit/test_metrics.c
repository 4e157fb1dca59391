/* Prometheus text exposition (metrics.c): exact output for a small registry, a grammar check
 * of every line, histogram invariants, overflow of the fixed tables, and the listener's
 * start/stop lifecycle on a loop. */
#include "test.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "core/app.h"
#include "metrics/metrics.h"
#include "net/fetch.h"
#include "util/buf.h"

/* The gauges of services that are off (-1: left out of the exposition); the rest are 0. */
static struct metrics_gauges gauges_off(void)
{
    return (struct metrics_gauges){.http_connections = -1,
                                   .sync_breaker_state = -1,
                                   .sync_breaker_opens = -1,
                                   .loop_stall_max_ms = -1,
                                   .loop_stalls_over_50ms = -1,
                                   .loop_stall_cpu_max_ms = -1,
                                   .db_storage_degraded = -1,
                                   .http_request_bytes = -1,
                                   .http_response_bytes = -1,
                                   .billing_leader = -1,
                                   .db_checkpoints = -1,
                                   .db_wal_restarts = -1,
                                   .db_writer_checkpoints = -1};
}

static char *render(const struct metrics *m, const struct metrics_gauges *g)
{
    struct buf b;
    buf_init(&b, METRICS_MAX_BODY);
    if (metrics_render(m, g, &b) != 0)
        return NULL;
    size_t n;
    return buf_take(&b, &n);
}

/* Drops the process_start_time_seconds block (its value is the clock). */
static char *without_start_time(char *s)
{
    char *p = strstr(s, "# HELP caravel_process_start_time_seconds");
    char *end = p ? strstr(p, "\ncaravel_process_start_time_seconds ") : NULL;
    end = end ? strchr(end + 1, '\n') : NULL;
    if (p && end)
        memmove(p, end + 1, strlen(end + 1) + 1);
    return s;
}

TEST(metrics_exposition_exact_text)
{
    struct metrics *m = metrics_new();
    static const char route[] = "/relays/:id";
    metrics_observe_request(m, route, 200, 700);     /* <= 1 ms */
    metrics_observe_request(m, route, 200, 30000);   /* <= 50 ms */
    metrics_observe_request(m, route, 404, 2000000); /* <= 2.5 s */
    metrics_observe_request(m, NULL, 404, 20000000); /* > 10 s: +Inf only */
    metrics_inc(m, "caravel_billing_invoices_total", "result=\"created\"");
    metrics_inc(m, "caravel_billing_invoices_total", "result=\"created\"");
    metrics_add(m, "caravel_billing_sats_total", NULL, 1500);
    metrics_inc(m, "caravel_billing_invoices_total", "result=\"paid\"");
    struct metrics_gauges g = gauges_off();
    g.in_flight = 1;
    g.db_queue_depth = 2;
    g.db_wal_frames = 4;
    g.db_checkpoints = 5;
    g.db_wal_restarts = 1;
    g.db_writer_checkpoints = 0;
    g.sync_backlog = -1;
    g.outbox_queued = 3;
    char *s = without_start_time(render(m, &g));
    const char *want =
        "# HELP caravel_http_requests_total API requests answered, by route pattern and status.\n"
        "# TYPE caravel_http_requests_total counter\n"
        "caravel_http_requests_total{route=\"/relays/:id\",status=\"200\"} 2\n"
        "caravel_http_requests_total{route=\"/relays/:id\",status=\"404\"} 1\n"
        "caravel_http_requests_total{route=\"other\",status=\"404\"} 1\n"
        "# HELP caravel_http_request_duration_seconds Time from a request's arrival to its "
        "answer.\n"
        "# TYPE caravel_http_request_duration_seconds histogram\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.001\"} 1\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.005\"} 1\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.01\"} 1\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.025\"} 1\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.05\"} 2\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.1\"} 2\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.25\"} 2\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"0.5\"} 2\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"1\"} 2\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"2.5\"} 3\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"5\"} 3\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"10\"} 3\n"
        "caravel_http_request_duration_seconds_bucket{route=\"/relays/:id\",le=\"+Inf\"} 3\n"
        "caravel_http_request_duration_seconds_sum{route=\"/relays/:id\"} 2.030700\n"
        "caravel_http_request_duration_seconds_count{route=\"/relays/:id\"} 3\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.001\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.005\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.01\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.025\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.05\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.1\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.25\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"0.5\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"1\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"2.5\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"5\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"10\"} 0\n"
        "caravel_http_request_duration_seconds_bucket{route=\"other\",le=\"+Inf\"} 1\n"
        "caravel_http_request_duration_seconds_sum{route=\"other\"} 20.000000\n"
        "caravel_http_request_duration_seconds_count{route=\"other\"} 1\n"
        "# HELP caravel_http_requests_in_flight API requests parsed and not answered yet.\n"
        "# TYPE caravel_http_requests_in_flight gauge\n"
        "caravel_http_requests_in_flight 1\n"
        "# HELP caravel_db_queue_depth Database jobs queued or running.\n"
        "# TYPE caravel_db_queue_depth gauge\n"
        "caravel_db_queue_depth 2\n"
        "# HELP caravel_db_wal_frames Pages in the database's write-ahead log after the last "
        "write.\n"
        "# TYPE caravel_db_wal_frames gauge\n"
        "caravel_db_wal_frames 4\n"
        "# HELP caravel_db_checkpoints_total SQLite: background checkpoints of the write-ahead "
        "log completed.\n"
        "# TYPE caravel_db_checkpoints_total counter\n"
        "caravel_db_checkpoints_total 5\n"
        "# HELP caravel_db_wal_restarts_total SQLite: checkpoints that started the write-ahead "
        "log over.\n"
        "# TYPE caravel_db_wal_restarts_total counter\n"
        "caravel_db_wal_restarts_total 1\n"
        "# HELP caravel_db_writer_checkpoints_total SQLite: checkpoints the writer ran itself "
        "inside a commit (writes waited).\n"
        "# TYPE caravel_db_writer_checkpoints_total counter\n"
        "caravel_db_writer_checkpoints_total 0\n"
        "# HELP caravel_outbox_queued_messages DMs queued in the outbox (refreshed "
        "periodically).\n"
        "# TYPE caravel_outbox_queued_messages gauge\n"
        "caravel_outbox_queued_messages 3\n"
        "# HELP caravel_relay_connections Nostr relay connections open.\n"
        "# TYPE caravel_relay_connections gauge\n"
        "caravel_relay_connections 0\n"
        "# TYPE caravel_billing_invoices_total counter\n"
        "caravel_billing_invoices_total{result=\"created\"} 2\n"
        "caravel_billing_invoices_total{result=\"paid\"} 1\n"
        "# TYPE caravel_billing_sats_total counter\n"
        "caravel_billing_sats_total 1500\n";
    ASSERT_STR_EQ(s, want);
    free(s);
    metrics_free(m);
}

/* ---- a checker for the text format (the subset Prometheus' parser requires) ---- */

static int is_name(const char *s, size_t n)
{
    if (n == 0 || isdigit((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != ':')
            return 0;
    return 1;
}

/* Checks `{a="x",b="y"}` starting at *p; advances past '}'. */
static int check_labels(const char **p)
{
    const char *s = *p + 1;
    while (*s != '}') {
        size_t n = strcspn(s, "=");
        if (!is_name(s, n) || s[n] != '=' || s[n + 1] != '"')
            return 0;
        s += n + 2;
        while (*s && *s != '"')
            s += (*s == '\\' && s[1]) ? 2 : 1;
        if (*s != '"')
            return 0;
        s++;
        if (*s == ',')
            s++;
        else if (*s != '}')
            return 0;
    }
    *p = s + 1;
    return 1;
}

/* Returns the number of bad lines (0 = well-formed); every sample's family must have had a
 * TYPE line first and no TYPE may repeat. */
static int check_exposition(const char *text, int *samples)
{
    char types[64][80];
    size_t n_types = 0;
    int bad = 0;
    *samples = 0;
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        size_t len = strcspn(line, "\n");
        char l[512];
        if (line[len] != '\n' || len >= sizeof(l))
            return bad + 1;
        memcpy(l, line, len);
        l[len] = '\0';
        if (strncmp(l, "# TYPE ", 7) == 0) {
            char name[80], type[20];
            if (sscanf(l + 7, "%79s %19s", name, type) != 2 || n_types == 64)
                bad++;
            for (size_t i = 0; i < n_types; i++)
                bad += strcmp(types[i], name) == 0;
            if (!strstr(" counter gauge histogram summary untyped ", type))
                bad++;
            snprintf(types[n_types++], 80, "%s", name);
            continue;
        }
        if (strncmp(l, "# HELP ", 7) == 0)
            continue;
        const char *p = l;
        size_t n = strcspn(p, "{ ");
        int typed = 0;
        for (size_t i = 0; i < n_types; i++)
            typed |= strncmp(types[i], p, strlen(types[i])) == 0;
        if (!is_name(p, n) || !typed)
            bad++;
        p += n;
        if (*p == '{' && !check_labels(&p))
            bad++;
        char *end;
        if (*p != ' ' || (strtod(p + 1, &end), *end != '\0') || end == p + 1)
            bad++;
        (*samples)++;
    }
    return bad;
}

TEST(metrics_exposition_is_well_formed)
{
    struct metrics *m = metrics_new();
    static const char *const routes[] = {"/healthz", "/relays", "/relays/:id", "/tenants/:pubkey"};
    for (int i = 0; i < 400; i++)
        metrics_observe_request(m, routes[i % 4], 200 + (i % 7) * 50, (uint64_t)i * 997);
    metrics_inc(m, "caravel_billing_runs_total", NULL);
    metrics_inc(m, "caravel_billing_payments_total", "result=\"failed\",reason=\"a \\\"q\\\"\"");
    struct metrics_gauges g = gauges_off();
    char *s = render(m, &g);
    int samples = 0;
    ASSERT_EQ(check_exposition(s, &samples), 0);
    /* 4 routes x 7 statuses, 4 x (13 buckets + sum + count), 7 gauges, 2 counters */
    ASSERT_EQ(samples, 28 + 4 * 15 + 7 + 2);
    free(s);
    /* With the HTTP server's figures: three gauges and six shed counters more. */
    g.http_connections = 12;
    g.http_shed[1] = 3;
    g.http_request_bytes = 50000;
    g.http_response_bytes = 0;
    s = render(m, &g);
    ASSERT_EQ(check_exposition(s, &samples), 0);
    ASSERT_EQ(samples, 28 + 4 * 15 + 7 + 2 + 9);
    ASSERT(strstr(s, "caravel_http_connections 12\n"));
    ASSERT(strstr(s, "caravel_http_request_buffer_bytes 50000\n"));
    ASSERT(strstr(s, "caravel_http_response_buffer_bytes 0\n"));
    free(s);
    /* With the sync worker's breaker: a gauge and a counter more. */
    g.sync_breaker_state = 1;
    g.sync_breaker_opens = 2;
    s = render(m, &g);
    ASSERT_EQ(check_exposition(s, &samples), 0);
    ASSERT_EQ(samples, 28 + 4 * 15 + 7 + 2 + 9 + 2);
    ASSERT(strstr(s, "# TYPE caravel_sync_breaker_state gauge\ncaravel_sync_breaker_state 1\n"));
    ASSERT(strstr(s, "# TYPE caravel_sync_breaker_opens_total counter\n"
                     "caravel_sync_breaker_opens_total 2\n"));
    ASSERT(strstr(s, "caravel_http_shed_total{reason=\"per_ip\"} 3\n"));
    free(s);
    g.db_storage_degraded = 1;
    s = render(m, &g);
    ASSERT_EQ(check_exposition(s, &samples), 0);
    ASSERT(strstr(s, "# TYPE caravel_db_storage_degraded gauge\ncaravel_db_storage_degraded 1\n"));
    /* The checker itself rejects broken input. */
    ASSERT_GT(check_exposition("x{a=\"1} 1\n", &samples), 0);
    ASSERT_GT(check_exposition("# TYPE x counter\nx 1\n# TYPE x counter\n", &samples), 0);
    ASSERT_GT(check_exposition("y 1\n", &samples), 0);
    free(s);
    metrics_free(m);
}

/* Buckets are cumulative, non-decreasing, and +Inf equals _count. */
TEST(metrics_histogram_is_cumulative)
{
    struct metrics *m = metrics_new();
    for (uint64_t us = 0; us < 12000000; us += 12345)
        metrics_observe_request(m, "/x", 200, us);
    char *s = render(m, NULL);
    uint64_t prev = 0, v = 0, count = 0;
    for (const char *p = s; (p = strstr(p, "_bucket{route=\"/x\",le=\"")); p++) {
        const char *q = strstr(p, "} ");
        v = strtoull(q + 2, NULL, 10);
        ASSERT_GE(v, prev);
        prev = v;
    }
    const char *c = strstr(s, "_count{route=\"/x\"} ");
    ASSERT_NOT_NULL(c);
    count = strtoull(c + strlen("_count{route=\"/x\"} "), NULL, 10);
    ASSERT_EQ(v, count);
    ASSERT_EQ(count, (12000000 + 12344) / 12345);
    free(s);
    metrics_free(m);
}

TEST(metrics_tables_overflow_into_other)
{
    struct metrics *m = metrics_new();
    static char names[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof(names[i]), "/r%d", i);
        metrics_observe_request(m, names[i], 200, 1);
    }
    for (int st = 100; st < 140; st++)
        metrics_observe_request(m, "/r0", st, 1);
    char *s = render(m, NULL);
    ASSERT_NOT_NULL(strstr(s, "{route=\"/r62\",status=\"200\"} 1\n"));
    ASSERT_NULL(strstr(s, "route=\"/r63\""));
    /* routes 63..99 land in the last slot */
    ASSERT_NOT_NULL(strstr(s, "{route=\"other\",status=\"200\"} 37\n"));
    /* statuses past the table are counted as status 0 */
    ASSERT_NOT_NULL(strstr(s, "{route=\"/r0\",status=\"0\"} 26\n"));
    free(s);
    metrics_free(m);
}

TEST(metrics_counters_validate_and_accept_null)
{
    struct metrics *m = metrics_new();
    metrics_inc(m, "9bad", NULL);
    metrics_inc(m, "bad name", NULL);
    metrics_inc(m, "ok_total", "a=\"}\"");
    metrics_inc(m, "ok_total", "a=\"x\"");
    metrics_inc(NULL, "ok_total", NULL);
    metrics_observe_request(NULL, "/x", 200, 1);
    metrics_stop(NULL, NULL, NULL);
    char *s = render(m, NULL);
    ASSERT_NULL(strstr(s, "bad"));
    ASSERT_NOT_NULL(strstr(s, "ok_total{a=\"x\"} 1\n"));
    ASSERT_NULL(strstr(s, "a=\"}\""));
    free(s);
    metrics_free(m);
}

static int free_port(uv_loop_t *loop)
{
    uv_tcp_t t;
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_tcp_init(loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void on_stopped(void *arg)
{
    (*(int *)arg)++;
}

TEST(metrics_listener_starts_and_stops_cleanly)
{
    uv_loop_t loop;
    struct app app;
    struct metrics *m = NULL;
    int stopped = 0;
    ASSERT_OK(uv_loop_init(&loop));
    memset(&app, 0, sizeof(app));
    app.loop = &loop;
    app.cfg.host = (char *)"127.0.0.1";
    ASSERT_OK(metrics_start(&m, &app)); /* port 0: off */
    ASSERT_NULL(m);
    app.cfg.metrics_port = free_port(&loop);
    ASSERT_OK(metrics_start(&m, &app));
    ASSERT_NOT_NULL(m);
    ASSERT_EQ(metrics_port(m), app.cfg.metrics_port);
    struct metrics *m2 = NULL;
    ASSERT_EQ(metrics_start(&m2, &app), UV_EADDRINUSE);
    ASSERT_NULL(m2);
    metrics_stop(m, on_stopped, &stopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(stopped, 1);
    ASSERT_OK(uv_loop_close(&loop));
}

/* The loop-stall gauges see a callback that keeps the loop busy: a timer burns 60 ms of CPU,
 * then /metrics is fetched on the same loop (twice: the second covers only the time since the
 * first). */
static struct {
    struct app app;
    struct metrics *m;
    struct fetch *f;
    uv_timer_t spin;
    char url[64];
    int64_t wall[2], cpu[2], over50[2];
    int scrapes, stopped;
} ls;

static int64_t series(const char *body, const char *name)
{
    char key[96];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(body, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void scrape(void);

static void on_scraped(int err, long status, const char *body, size_t len, void *arg)
{
    (void)arg;
    (void)len;
    ASSERT_OK(err);
    ASSERT_EQ(status, 200);
    int i = ls.scrapes++;
    ls.wall[i] = series(body, "caravel_loop_stall_max_ms");
    ls.cpu[i] = series(body, "caravel_loop_stall_cpu_max_ms");
    ls.over50[i] = series(body, "caravel_loop_stalls_over_50ms_total");
    if (ls.scrapes < 2) {
        scrape();
        return;
    }
    fetch_close(ls.f, NULL, NULL);
    metrics_stop(ls.m, on_stopped, &ls.stopped);
}

static void scrape(void)
{
    struct fetch_opts o = {.url = ls.url, .timeout_ms = 10000};
    ASSERT_OK(fetch_start(ls.f, &o, on_scraped, NULL, NULL));
}

static uint64_t thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_spin(uv_timer_t *t)
{
    (void)t;
    uint64_t until = thread_cpu_ms() + 60;
    while (thread_cpu_ms() < until)
        ;
    scrape();
}

/* Armed from the loop's first iteration, so the gauges have their baseline (the first
 * prepare) before the spin, however long the start-up took. */
static void on_first(uv_timer_t *t)
{
    uv_timer_start(t, on_spin, 20, 0);
}

TEST_TIMEOUT(metrics_loop_stall_gauges_see_a_busy_callback, 30)
{
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    ls.app.loop = &loop;
    ls.app.cfg.host = (char *)"127.0.0.1";
    ls.app.cfg.metrics_port = free_port(&loop);
    snprintf(ls.url, sizeof(ls.url), "http://127.0.0.1:%d/metrics", ls.app.cfg.metrics_port);
    ASSERT_OK(metrics_start(&ls.m, &ls.app));
    ASSERT_OK(fetch_new(&ls.f, &loop));
    uv_timer_init(&loop, &ls.spin);
    uv_timer_start(&ls.spin, on_first, 0, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&ls.spin, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(ls.stopped, 1);
    /* The spin uses 60 ms of CPU as read in whole ms, i.e. a little over 59 ms: the wall
     * time, also in whole ms, may read 59 (seen once in ~10 runs under load). */
    ASSERT_GE(ls.wall[0], 59);
    ASSERT_GE(ls.cpu[0], 59);
    ASSERT_LE(ls.cpu[0], ls.wall[0] + 1);
    ASSERT_GE(ls.over50[0], 1);
    ASSERT_LT(ls.cpu[1], 59); /* the spin is not counted again */
    /* A counter: it never goes back. Not "equal": on a loaded machine the scheduler can
     * take the loop away for more than 50 ms between two scrapes, and that is a stall too. */
    ASSERT_GE(ls.over50[1], ls.over50[0]);
    ASSERT_OK(uv_loop_close(&loop));
}
