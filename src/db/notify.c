/* Wake-ups between instances (see notify.h): NOTIFY on the writer's transaction, LISTEN on a
 * connection of its own driven by uv_poll on the loop.
 *
 * The listener's life: IDLE -> CONNECTING (PQconnectStartParams, then PQconnectPoll whenever
 * the socket is ready as libpq asked) -> LISTENING (one "LISTEN a; LISTEN b" sent in
 * non-blocking mode, its results awaited) -> READY (every readable socket: PQconsumeInput,
 * then each PQnotifies to the callback). Any failure closes the connection and tries again
 * after a backoff (RETRY_BASE_MS doubling to RETRY_MAX_MS, reset once READY). Loop thread,
 * except db_notify_send (pool thread) and db_instance (any). */
#include "db/notify.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db/conn.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/buf.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/stop.h"
#include "util/util.h"

#define RETRY_BASE_MS 250
#define RETRY_MAX_MS 30000
#define MAX_CHANNELS 16
#define HOST_MAX 40

/* ---- this process's name ---- */

static char instance[DB_INSTANCE_MAX + 1];
static pthread_once_t instance_once = PTHREAD_ONCE_INIT;

static void instance_init(void)
{
    char host[HOST_MAX + 1] = "";
    uint8_t raw[8] = {0};
    char hex[17];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "host");
    host[HOST_MAX] = '\0';
    host[strcspn(host, ": ")] = '\0'; /* ':' separates the fields */
    if (nostr_random(raw, sizeof(raw)) != 0) {
        uint64_t mix = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&raw;
        memcpy(raw, &mix, sizeof(raw));
    }
    hex_encode(raw, sizeof(raw), hex);
    snprintf(instance, sizeof(instance), "%s:%ld:%s", host[0] ? host : "host", (long)getpid(), hex);
}

const char *db_instance(void)
{
    pthread_once(&instance_once, instance_init);
    return instance;
}

int db_instance_gone(const char *owner)
{
    const char *self = db_instance();
    const char *host_end = strchr(self, ':');
    size_t host_len = (size_t)(host_end - self);
    if (!owner || strncmp(owner, self, host_len + 1) != 0)
        return 0; /* another host (or not ours at all): only its lease can tell */
    char *end = NULL;
    long pid = strtol(owner + host_len + 1, &end, 10);
    if (!end || *end != ':' || pid <= 0)
        return 0;
    if (pid == (long)getpid())
        return strcmp(owner, self) != 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* ---- sending (pool thread) ---- */

static int channel_ok(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n > DB_CHANNEL_MAX)
        return 0;
    return strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

int db_notify_send(struct db_conn *conn, const char *channel, const char *id)
{
    ASSERT_POOL_THREAD();
    if (conn->engine != DB_PG)
        return 0;
    if (!channel_ok(channel) || strlen(id) > DB_NOTIFY_ID_MAX)
        return DB_EGENERIC;
    char payload[DB_INSTANCE_MAX + 1 + DB_NOTIFY_ID_MAX + 1];
    snprintf(payload, sizeof(payload), "%s %s", db_instance(), id);
    return db_run(conn, "SELECT pg_notify(?, ?)", DB_TEXT(channel), DB_TEXT(payload));
}

/* ---- the listener (loop thread) ---- */

enum state { N_IDLE, N_CONNECTING, N_LISTENING, N_READY };

struct db_notify {
    uv_loop_t *loop;
    char *url;
    char *channels[MAX_CHANNELS];
    size_t n_channels;
    db_notify_fn *fn;
    void *arg;
    PGconn *pg;
    uv_poll_t *poll; /* watches PQsocket(pg); NULL when none (a closing one belongs to libuv) */
    int poll_fd;
    uv_timer_t retry;
    enum state state;
    int64_t backoff_ms;
    int outage; /* a loss was logged at warning level: the next READY says it is over */
    struct stop stop;
};

static void on_poll(uv_poll_t *p, int status, int events);
static void connect_start(struct db_notify *n);

static void maybe_stopped(struct db_notify *n)
{
    if (!stop_ready(&n->stop, 0))
        return;
    for (size_t i = 0; i < n->n_channels; i++)
        free(n->channels[i]);
    free(n->url);
    struct stop done = n->stop;
    free(n);
    stop_finish(done);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct db_notify *n = h->data;
    free(h);
    stop_release(&n->stop);
    maybe_stopped(n);
}

/* Stops watching the socket (synchronously: libuv forgets the descriptor before libpq may
 * close it); the handle's memory is freed when libuv is done with it. */
static void drop_poll(struct db_notify *n)
{
    if (!n->poll)
        return;
    stop_hold(&n->stop);
    uv_close((uv_handle_t *)n->poll, on_poll_closed);
    n->poll = NULL;
}

/* Watches libpq's current socket for events (it may change while connecting). */
static int watch(struct db_notify *n, int events)
{
    int fd = PQsocket(n->pg);
    if (fd < 0)
        return -1;
    if (n->poll && n->poll_fd != fd)
        drop_poll(n);
    if (!n->poll) {
        n->poll = xcalloc(1, sizeof(*n->poll));
        if (uv_poll_init(n->loop, n->poll, fd) != 0) {
            free(n->poll);
            n->poll = NULL;
            return -1;
        }
        n->poll->data = n;
        n->poll_fd = fd;
    }
    return uv_poll_start(n->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_retry(uv_timer_t *t)
{
    connect_start(container_of(t, struct db_notify, retry));
}

/* The connection failed or was lost: close it and try again after the backoff. */
static void fail(struct db_notify *n, const char *what)
{
    const char *msg = n->pg ? PQerrorMessage(n->pg) : "";
    int len = (int)strcspn(msg, "\n");
    /* A lost listener (it was READY) or the first failure is worth a warning; the retries of
     * one outage are not. */
    if (n->state == N_READY || !n->outage)
        LOG_WARN("database notifications: %s%s%.*s: other instances' changes wait for the "
                 "next reconcile until it is back (retry in %lld ms)",
                 what, len ? ": " : "", len, msg, (long long)n->backoff_ms);
    else
        LOG_DEBUG("database notifications: %s%s%.*s", what, len ? ": " : "", len, msg);
    n->outage = 1;
    drop_poll(n);
    if (n->pg)
        PQfinish(n->pg);
    n->pg = NULL;
    n->state = N_IDLE;
    if (n->stop.stopping)
        return;
    uv_timer_start(&n->retry, on_retry, (uint64_t)n->backoff_ms, 0);
    n->backoff_ms = MIN(n->backoff_ms * 2, (int64_t)RETRY_MAX_MS);
}

static void connect_start(struct db_notify *n)
{
    /* The URL first, expanded; what follows overrides it: a silent network loss is noticed
     * by TCP keepalives (the connection is otherwise idle), and operators see who it is. */
    const char *keys[] = {"dbname",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          NULL};
    const char *vals[] = {n->url, "caravel notify", "1", "30", "10", "3", NULL};
    n->pg = PQconnectStartParams(keys, vals, 1);
    n->state = N_CONNECTING;
    if (!n->pg || PQstatus(n->pg) == CONNECTION_BAD) {
        fail(n, "cannot connect");
        return;
    }
    /* libpq's connection state machine starts as if PGRES_POLLING_WRITING had been returned. */
    if (watch(n, UV_WRITABLE) != 0)
        fail(n, "cannot watch the connection");
}

/* Connected: LISTEN on every channel, in one query sent without blocking. */
static void send_listen(struct db_notify *n)
{
    struct buf q;
    buf_init(&q, 4096);
    for (size_t i = 0; i < n->n_channels; i++)
        buf_printf(&q, "LISTEN %s;", n->channels[i]); /* checked by channel_ok */
    char *sql = buf_take(&q, NULL);
    int ok = sql && PQsetnonblocking(n->pg, 1) == 0 && PQsendQuery(n->pg, sql) == 1;
    free(sql);
    if (!ok) {
        fail(n, "cannot send LISTEN");
        return;
    }
    n->state = N_LISTENING;
    int f = PQflush(n->pg);
    if (f < 0 || watch(n, f == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0)
        fail(n, "cannot send LISTEN");
}

static void on_connect_poll(struct db_notify *n)
{
    switch (PQconnectPoll(n->pg)) {
    case PGRES_POLLING_READING:
        if (watch(n, UV_READABLE) != 0)
            fail(n, "cannot watch the connection");
        break;
    case PGRES_POLLING_WRITING:
        if (watch(n, UV_WRITABLE) != 0)
            fail(n, "cannot watch the connection");
        break;
    case PGRES_POLLING_OK:
        send_listen(n);
        break;
    default:
        fail(n, "cannot connect");
        break;
    }
}

/* Hands each notification that is not this process's own to the callback. */
static void deliver(struct db_notify *n)
{
    const char *self = db_instance();
    size_t self_len = strlen(self);
    PGnotify *nf;
    while (!n->stop.stopping && n->pg && (nf = PQnotifies(n->pg)) != NULL) {
        const char *p = nf->extra ? nf->extra : "";
        const char *sp = strchr(p, ' ');
        int own = sp && (size_t)(sp - p) == self_len && strncmp(p, self, self_len) == 0;
        if (!own)
            n->fn(nf->relname, sp ? sp + 1 : p, n->arg);
        PQfreemem(nf);
    }
}

/* The LISTEN's results (LISTENING), then nothing but notifications (READY). */
static void on_input(struct db_notify *n)
{
    if (PQconsumeInput(n->pg) != 1) {
        fail(n, n->state == N_READY ? "connection lost" : "cannot LISTEN");
        return;
    }
    while (!PQisBusy(n->pg)) {
        PGresult *res = PQgetResult(n->pg);
        if (!res)
            break;
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            fail(n, "LISTEN refused");
            return;
        }
    }
    if (n->state == N_LISTENING && !PQisBusy(n->pg)) {
        n->state = N_READY;
        n->backoff_ms = RETRY_BASE_MS;
        if (n->outage)
            LOG_INFO("database notifications: listening again");
        else
            LOG_DEBUG("database notifications: listening");
        n->outage = 0;
        n->fn(NULL, NULL, n->arg); /* whatever was missed meanwhile: reconcile */
    }
    deliver(n);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct db_notify *n = p->data;
    if (n->stop.stopping || p != n->poll)
        return;
    if (status < 0) {
        fail(n, "socket error");
        return;
    }
    if (n->state == N_CONNECTING) {
        on_connect_poll(n);
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(n->pg);
        if (f < 0 || watch(n, f == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0) {
            fail(n, "cannot send LISTEN");
            return;
        }
    }
    if (events & UV_READABLE)
        on_input(n);
}

int db_notify_start(struct db_notify **out, uv_loop_t *loop, const char *url,
                    const char *const *channels, size_t n_channels, db_notify_fn *fn, void *arg)
{
    ASSERT_LOOP_THREAD();
    *out = NULL;
    if (n_channels == 0 || n_channels > MAX_CHANNELS)
        return -1;
    for (size_t i = 0; i < n_channels; i++)
        if (!channel_ok(channels[i]))
            return -1;
    if (conn_engine_of(url) != DB_PG)
        return 0;
    struct db_notify *n = xcalloc(1, sizeof(*n));
    n->loop = loop;
    n->url = xstrdup(url);
    for (size_t i = 0; i < n_channels; i++)
        n->channels[i] = xstrdup(channels[i]);
    n->n_channels = n_channels;
    n->fn = fn;
    n->arg = arg;
    n->backoff_ms = RETRY_BASE_MS;
    uv_timer_init(loop, &n->retry);
    connect_start(n);
    *out = n;
    return 0;
}

int db_notify_listening(const struct db_notify *n)
{
    ASSERT_LOOP_THREAD();
    return n && n->state == N_READY;
}

static void on_retry_closed(uv_handle_t *h)
{
    struct db_notify *n = h->data;
    stop_release(&n->stop);
    maybe_stopped(n);
}

void db_notify_stop(struct db_notify *n, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (stop_enter(n ? &n->stop : NULL, cb, arg) != 0)
        return;
    drop_poll(n);
    if (n->pg)
        PQfinish(n->pg);
    n->pg = NULL;
    n->state = N_IDLE;
    n->retry.data = n;
    stop_hold(&n->stop);
    uv_close((uv_handle_t *)&n->retry, on_retry_closed);
}
