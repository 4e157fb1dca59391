/* The sync worker's state machine against a fake zooid in a thread of the test process
 * (POST 201/409, PUT 200/404, PATCH 200/404, injected 500s, slow or hanging answers) and a real
 * database. The NIP-98 of these requests is checked by nostr-tools in sync.test.mjs. */
#include <sqlite3.h>

#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "sync/worker.h"
#include "nostr/keys.h"
#include "util/log.h"
#include "util/util.h"

#define TENANT "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
#define MAX_LOG 4096

/* ---- fake zooid ----------------------------------------------------------------------- */

static struct {
    int lfd, port;
    pthread_mutex_t mu;
    char ids[512][40]; /* stored relay ids */
    int n_ids;
    char log[MAX_LOG][80]; /* "METHOD id status": 15 + 1 + 39 + 1 + 11 + NUL fit */
    int n_log;
    atomic_int fail_500, hang, active, max_active, delay_ms;
    char slow_id[40];
    atomic_int slow_seen, slow_release;
} z = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int z_has(const char *id)
{
    for (int i = 0; i < z.n_ids; i++)
        if (!strcmp(z.ids[i], id))
            return 1;
    return 0;
}

/* Applies a request like zooid; returns the status. Called with z.mu held. */
static int z_apply(const char *method, const char *id)
{
    int has = z_has(id);
    if (!strcmp(method, "POST")) {
        if (has)
            return 409;
        snprintf(z.ids[z.n_ids++], sizeof(z.ids[0]), "%s", id);
        return 201;
    }
    return has ? 200 : 404;
}

static void z_answer(int fd, int status)
{
    char out[256];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
                     "Connection: close\r\n\r\n{\"error\":\"test\"}",
                     status);
    (void)!send(fd, out, (size_t)n, MSG_NOSIGNAL);
}

static int z_read(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (!end && len < cap - 1) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t want = (size_t)(end - buf) + 4 + (cl ? strtoul(cl + 17, NULL, 10) : 0);
    while (len < want && len < cap - 1) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
    return 0;
}

static void *z_conn(void *p)
{
    int fd = (int)(intptr_t)p;
    char buf[16384], method[16] = "", id[40] = "";
    int now = atomic_fetch_add(&z.active, 1) + 1;
    int max = atomic_load(&z.max_active);
    while (now > max && !atomic_compare_exchange_weak(&z.max_active, &max, now))
        ;
    if (z_read(fd, buf, sizeof(buf)) == 0 && sscanf(buf, "%15s /relay/%39s", method, id) == 2) {
        int slow = z.slow_id[0] && !strcmp(id, z.slow_id);
        if (slow)
            atomic_store(&z.slow_seen, 1);
        /* The slow request is held until the test has made its writes (at most 20 s), so
         * "while in flight" does not depend on how busy the machine is. */
        for (int i = 0; slow && !atomic_load(&z.slow_release) && i < 2000; i++)
            usleep(10000);
        usleep((useconds_t)atomic_load(&z.delay_ms) * 1000);
        int st;
        pthread_mutex_lock(&z.mu);
        if (atomic_load(&z.fail_500) > 0) {
            atomic_fetch_sub(&z.fail_500, 1);
            st = 500;
        } else {
            st = z_apply(method, id);
        }
        if (z.n_log < MAX_LOG)
            snprintf(z.log[z.n_log++], sizeof(z.log[0]), "%s %s %d", method, id, st);
        pthread_mutex_unlock(&z.mu);
        while (atomic_load(&z.hang))
            usleep(10000);
        /* Out of the count before the answer goes out: once the client has it, it may start
         * its next request at once, and that one must not meet this one still counted. */
        atomic_fetch_sub(&z.active, 1);
        z_answer(fd, st);
    } else {
        atomic_fetch_sub(&z.active, 1);
    }
    close(fd);
    return NULL;
}

static void *z_accept(void *p)
{
    (void)p;
    for (;;) {
        int fd = accept(z.lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t th;
        if (pthread_create(&th, NULL, z_conn, (void *)(intptr_t)fd) == 0)
            pthread_detach(th);
        else
            close(fd);
    }
}

static void z_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    pthread_t th;
    z.lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_OK(bind(z.lfd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(z.lfd, (struct sockaddr *)&a, &al));
    ASSERT_OK(listen(z.lfd, 512));
    z.port = ntohs(a.sin_port);
    ASSERT_OK(pthread_create(&th, NULL, z_accept, NULL));
}

/* Requests logged for id, joined with ", " ("POST 201, PATCH 200"). */
static void z_log_for(const char *id, char *out, size_t cap)
{
    out[0] = '\0';
    pthread_mutex_lock(&z.mu);
    for (int i = 0; i < z.n_log; i++) {
        char m[16], rid[40];
        int st;
        sscanf(z.log[i], "%15s %39s %d", m, rid, &st);
        if (strcmp(rid, id))
            continue;
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s %d", l ? ", " : "", m, st);
    }
    pthread_mutex_unlock(&z.mu);
}

/* ---- harness -------------------------------------------------------------------------- */

struct h {
    uv_loop_t loop;
    struct app app;
    uv_timer_t tick;
    sqlite3 *conn; /* the test's own connection, to seed and inspect */
    int step, done, stopped, closed;
    int (*scenario)(struct h *h); /* returns 1 when finished */
};

static void sql(struct h *h, const char *fmt, ...)
{
    char q[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    char *err = NULL;
    if (sqlite3_exec(h->conn, q, NULL, NULL, &err) != SQLITE_OK)
        TEST_FAIL_("%s: %s", q, err);
}

static int64_t q_int(struct h *h, const char *fmt, ...)
{
    char q[1024];
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    ASSERT_OK(sqlite3_prepare_v2(h->conn, q, -1, &st, NULL));
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void add_relay(struct h *h, const char *id, int created)
{
    sql(h,
        "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, created_at, "
        "updated_at, sync_created) VALUES ('%s', '" TENANT "', '%s', '%s', '%064d', 'free', "
        "1, 1, %d)",
        id, id, id, 7, created);
}

/* What an API write does: change the row, mark it dirty (repo_relay_mark_dirty), kick. */
static void change_relay(struct h *h, const char *id)
{
    sql(h,
        "UPDATE relay SET info_name = info_name || 'x', synced = 0, "
        "sync_version = sync_version + 1, sync_attempts = 0, sync_next_at = 0 WHERE id = '%s'",
        id);
    sync_worker_kick(h->app.sync, id);
}

static void on_db_closed(void *arg)
{
    ((struct h *)arg)->closed = 1;
}

static void on_stopped(void *arg)
{
    struct h *h = arg;
    h->stopped = 1;
    db_close(h->app.db, on_db_closed, h);
}

static void on_tick(uv_timer_t *t)
{
    struct h *h = container_of(t, struct h, tick);
    if (!h->scenario(h))
        return;
    h->done = 1;
    uv_close((uv_handle_t *)t, NULL);
    sync_worker_stop(h->app.sync, on_stopped, h);
}

static void run(struct h *h, const char *retry_ms)
{
    char dir[64], path[128];
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/t.db", dir);
    ASSERT_OK(nostr_init());
    log_set_level("error"); /* the expected failures would log a WARN each */
    ASSERT_OK(uv_loop_init(&h->loop));
    ASSERT_OK(db_open(&h->app.db, &h->loop, path));
    ASSERT_OK(sqlite3_open(path, &h->conn));
    sqlite3_busy_timeout(h->conn, 5000);
    sql(h, "INSERT INTO tenant(pubkey, created_at) VALUES ('" TENANT "', 1)");
    h->app.loop = &h->loop;
    static char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", z.port);
    h->app.cfg.zooid_api_url = url;
    h->app.cfg.relay_domain = "";
    memset(h->app.cfg.zooid_secret, 0, 32);
    h->app.cfg.zooid_secret[31] = 5;
    h->app.cfg.test.sync_retry_ms = atoll(retry_ms);
    h->app.cfg.test.sync_reconcile_ms = 200;
}

static void go(struct h *h)
{
    ASSERT_OK(sync_worker_start(&h->app.sync, &h->app));
    ASSERT_NOT_NULL(h->app.sync);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, on_tick, 20, 20);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ASSERT(h->done && h->stopped && h->closed);
    ASSERT_OK(uv_loop_close(&h->loop));
}

/* ---- scenarios ------------------------------------------------------------------------ */

static int sc_create_update(struct h *h)
{
    if (q_int(h, "SELECT synced FROM relay WHERE id = 'a1'") != 1)
        return 0;
    if (h->step++ == 0) {
        change_relay(h, "a1");
        return 0;
    }
    return 1;
}

TEST(sync_worker_first_sync_posts_then_later_changes_patch)
{
    struct h h = {.scenario = sc_create_update};
    char log[512];
    z_start();
    run(&h, "50");
    add_relay(&h, "a1", 0); /* found by the start-up reconcile */
    go(&h);
    z_log_for("a1", log, sizeof(log));
    ASSERT_STR_EQ(log, "POST 201, PATCH 200");
    ASSERT_EQ(q_int(&h, "SELECT sync_created FROM relay"), 1);
    ASSERT_EQ(q_int(&h, "SELECT sync_error IS NULL AND sync_attempts = 0 FROM relay"), 1);
    ASSERT_EQ(q_int(&h, "SELECT count(*) FROM activity WHERE activity_type = "
                        "'complete_relay_sync' AND resource_id = 'a1'"),
              2);
    sqlite3_close(h.conn);
}

static int sc_synced(struct h *h)
{
    return q_int(h, "SELECT min(synced) FROM relay") == 1;
}

TEST(sync_worker_post_409_puts_and_patch_404_posts)
{
    struct h h = {.scenario = sc_synced};
    char log[512];
    z_start();
    snprintf(z.ids[z.n_ids++], sizeof(z.ids[0]), "b1"); /* zooid has it, we did not commit */
    run(&h, "50");
    add_relay(&h, "b1", 0);
    add_relay(&h, "b2", 1); /* we think zooid has it, it does not */
    go(&h);
    z_log_for("b1", log, sizeof(log));
    ASSERT_STR_EQ(log, "POST 409, PUT 200");
    z_log_for("b2", log, sizeof(log));
    ASSERT_STR_EQ(log, "PATCH 404, POST 201");
    sqlite3_close(h.conn);
}

static int sc_give_up(struct h *h)
{
    char log[512];
    z_log_for("c1", log, sizeof(log));
    if (h->step == 0) {
        if (q_int(h, "SELECT sync_attempts FROM relay") < 6)
            return 0;
        h->step = 1;
        return 0;
    }
    if (h->step < 40) { /* 40 ticks (~0.8 s): a 7th try would have come (cap 30 x 10 ms) */
        h->step++;
        return 0;
    }
    if (h->step == 40) {
        ASSERT_STR_EQ(log, "POST 500, POST 500, POST 500, POST 500, POST 500, POST 500");
        ASSERT_EQ(q_int(h, "SELECT count(*) FROM activity WHERE activity_type = "
                           "'fail_relay_sync'"),
                  6);
        atomic_store(&z.fail_500, 0);
        change_relay(h, "c1"); /* as POST /relays/:id/sync: attempts reset, kicked */
        h->step++;
        return 0;
    }
    return q_int(h, "SELECT synced FROM relay") == 1;
}

TEST(sync_worker_gives_up_after_six_failures_until_kicked)
{
    struct h h = {.scenario = sc_give_up};
    char log[512];
    z_start();
    atomic_store(&z.fail_500, 1000);
    run(&h, "10");
    add_relay(&h, "c1", 0);
    go(&h);
    z_log_for("c1", log, sizeof(log));
    ASSERT(strstr(log, "POST 500, POST 500, POST 500, POST 500, POST 500, POST 500, POST 201"));
    ASSERT_EQ(q_int(&h, "SELECT sync_error IS NULL FROM relay"), 1);
    sqlite3_close(h.conn);
}

static int sc_burst(struct h *h)
{
    if (atomic_load(&z.slow_seen) && h->step == 0) {
        /* Two writes while its POST is in flight: exactly one more sync after it. */
        change_relay(h, "d7");
        change_relay(h, "d7");
        atomic_store(&z.slow_release, 1);
        h->step = 1;
    }
    return h->step == 1 && q_int(h, "SELECT count(*) FROM relay WHERE synced = 0") == 0;
}

TEST(sync_worker_bounded_concurrency_and_coalescing)
{
    struct h h = {.scenario = sc_burst};
    char log[512], id[16];
    z_start();
    atomic_store(&z.delay_ms, 20);
    snprintf(z.slow_id, sizeof(z.slow_id), "d7");
    run(&h, "50");
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "d%d", i);
        add_relay(&h, id, 0);
    }
    uint64_t t0 = uv_hrtime();
    go(&h);
    fprintf(stderr, "# sync worker burst: 100 relays synced in %llu ms, max %d requests at once\n",
            (unsigned long long)((uv_hrtime() - t0) / 1000000), atomic_load(&z.max_active));
    ASSERT_LE(atomic_load(&z.max_active), 8);
    ASSERT_GE(atomic_load(&z.max_active), 2);
    ASSERT_EQ(z.n_ids, 100);
    z_log_for("d7", log, sizeof(log));
    ASSERT_STR_EQ(log, "POST 201, PATCH 200");
    z_log_for("d8", log, sizeof(log));
    ASSERT_STR_EQ(log, "POST 201");
    sqlite3_close(h.conn);
}

static int sc_hang(struct h *h)
{
    return atomic_load(&z.active) > 0 && h->step++ > 2;
}

TEST(sync_worker_stop_with_a_request_in_flight)
{
    struct h h = {.scenario = sc_hang};
    z_start();
    atomic_store(&z.hang, 1);
    run(&h, "50");
    add_relay(&h, "e1", 0);
    go(&h); /* sync_worker_stop cancels the request; the loop closes cleanly */
    ASSERT_EQ(q_int(&h, "SELECT synced FROM relay"), 0);
    sqlite3_close(h.conn);
}

static void on_flag(void *arg)
{
    (*(int *)arg)++;
}

TEST(sync_worker_null_is_a_no_op)
{
    int called = 0;
    sync_worker_kick(NULL, "x");
    ASSERT_EQ(sync_worker_backlog(NULL), 0);
    sync_worker_stop(NULL, on_flag, &called);
    ASSERT_EQ(called, 1);
}
