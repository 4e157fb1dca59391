/* Listener, connection life cycle, timers and graceful stop (state machine in internal.h).
 *
 * Reads land in one server-wide buffer (libuv calls alloc and read back to back for a
 * stream, and the parser copies what it keeps), so an idle connection holds no read
 * buffer. Only bytes left unparsed when a request is in flight are copied, once, into the
 * connection's `pending` buffer. */
#include "http/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void maybe_finish(struct http_server *srv);

/* ---- timers ---------------------------------------------------------------------- */

static void on_conn_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (c->phase == PH_HEAD || c->phase == PH_CHECK || c->phase == PH_BODY)
        http__fail(c, 408);
    else if (c->phase == PH_IDLE || c->phase == PH_CLOSING)
        http__conn_close_now(c);
}

void http__conn_arm_timer(struct http_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

/* One deadline for head and body together: a body sent a byte at a time cannot keep a
 * connection (and the memory its body holds) for longer than request_timeout_ms. */
void http__conn_arm_deadline(struct http_conn *c)
{
    uint64_t used = uv_now(c->srv->loop) - c->req_start_ms;
    uint64_t total = c->srv->request_timeout_ms;
    http__conn_arm_timer(c, used < total ? total - used : 1);
}

static void start_head(struct http_conn *c)
{
    http__conn_set_phase(c, PH_HEAD);
    c->head_bytes = 0;
    c->ext_bytes = 0;
    c->req_start_ms = uv_now(c->srv->loop);
    http__conn_arm_timer(c, MIN(c->srv->head_timeout_ms, c->srv->request_timeout_ms));
}

/* ---- request bytes held (the server-wide budget) --------------------------------- */

void http__xchg_release(struct http_server *srv, struct http_xchg *x)
{
    if (!x)
        return;
    srv->req_buffered -= x->counted;
    x->counted = 0;
}

/* Brings the count of unparsed input in `pending` up to date. */
static void pending_sync(struct http_conn *c)
{
    size_t now = c->pending.len - c->pending_off;
    c->srv->req_buffered = c->srv->req_buffered - c->pending_counted + now;
    c->pending_counted = now;
}

/* ---- closing --------------------------------------------------------------------- */

static void on_conn_close(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    struct http_server *srv = c->srv;
    list_remove(&c->node);
    http__addr_release(c);
    srv->n_conns--;
    srv->n_closing_now--;
    buf_reset(&c->pending);
    c->pending_off = 0;
    pending_sync(c);
    http__xchg_release(srv, c->cur);
    http__xchg_free(c->cur);
    http__xchg_free(c->spare);
    buf_free(&c->pending);
    free(c->wbuf);
    free(c);
    maybe_finish(srv);
}

void http__conn_close_now(struct http_conn *c)
{
    if (c->phase == PH_CLOSED)
        return;
    if (c->inflight) { /* the exchange outlives us; http_respond will only free it */
        http__xchg_release(c->srv, c->inflight);
        c->inflight->ex.conn_ = NULL;
        c->inflight = NULL;
        c->srv->n_inflight--;
    }
    if (c->cur && c->cur->head_pending) { /* likewise, until the head handler decides */
        http__xchg_release(c->srv, c->cur);
        c->cur->ex.conn_ = NULL;
        c->cur = NULL;
    }
    http__conn_set_phase(c, PH_CLOSED);
    c->srv->n_closing_now++;
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
    uv_close((uv_handle_t *)&c->timer, on_conn_close);
}

static void read_start(struct http_conn *c);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = container_of(req, struct http_conn, shutdown_req);
    if (status == UV_ECANCELED)
        return;
    c->shut_done = 1;
    if (status < 0 || c->eof) {
        http__conn_close_now(c);
        return;
    }
    http__conn_arm_timer(c, HTTP_LINGER_MS);
    read_start(c); /* drain until EOF or the linger timer */
}

void http__conn_begin_close(struct http_conn *c)
{
    if (c->phase >= PH_CLOSING)
        return;
    http__conn_set_phase(c, PH_CLOSING);
    c->linger_bytes = 0;
    /* Until the queued response is out, a client that stops reading gets the idle timeout
     * (a slow reader still receives a large response); the short linger starts after. */
    http__conn_arm_timer(c, c->srv->idle_timeout_ms);
    /* uv_shutdown waits for queued writes, so the response goes out before the FIN. */
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        http__conn_close_now(c);
}

/* ---- reading and parsing --------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct http_conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void read_start(struct http_conn *c)
{
    if (c->reading || c->eof || c->phase == PH_CLOSED)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        http__conn_close_now(c);
        return;
    }
    c->reading = 1;
}

static void read_stop(struct http_conn *c)
{
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

static size_t input_peek(struct http_conn *c, const char **p)
{
    if (c->pending_off < c->pending.len) {
        *p = c->pending.data + c->pending_off;
        return c->pending.len - c->pending_off;
    }
    *p = c->in;
    return c->in_len;
}

static void input_consume(struct http_conn *c, size_t n)
{
    if (c->pending_off < c->pending.len) {
        c->pending_off += n;
        if (c->pending_off >= c->pending.len) {
            buf_reset(&c->pending);
            c->pending_off = 0;
        }
        pending_sync(c);
        return;
    }
    c->in += n;
    c->in_len -= n;
}

/* Keeps bytes that cannot be parsed now; reading pauses once a full read is waiting, or
 * while the server as a whole holds more request bytes than its budget (the rest waits in
 * the kernel; reading resumes once this connection's input is parsed). */
static void stash(struct http_conn *c, const char *p, size_t n)
{
    if (c->pending_off) {
        buf_consume(&c->pending, c->pending_off);
        c->pending_off = 0;
    }
    if (buf_append(&c->pending, p, n) != 0) { /* cannot happen: reading stops first */
        http__conn_close_now(c);
        return;
    }
    pending_sync(c);
    if (c->pending.len >= HTTP_READ_SIZE || c->srv->req_buffered > c->srv->req_buffer_max)
        read_stop(c);
}

static int can_parse(const struct http_conn *c)
{
    return c->phase == PH_HEAD || c->phase == PH_BODY || c->phase == PH_IDLE;
}

void http__conn_resume(struct http_conn *c)
{
    if (c->in_drive)
        return;
    c->in_drive = 1;
    while (can_parse(c)) {
        if (http__write_blocked(c)) {
            c->blocked = 1;
            break;
        }
        const char *p = NULL;
        size_t n = input_peek(c, &p);
        if (n == 0 && !c->kick)
            break;
        c->kick = 0;
        if (!p)
            p = "";
        if (c->phase == PH_IDLE)
            start_head(c);
        input_consume(c, http__parse_input(c, p, n));
        if (c->no_more && can_parse(c))
            http__conn_begin_close(c);
    }
    if (can_parse(c) && !c->blocked) {
        if (c->eof) /* the client sent everything it will; an unfinished request is dropped */
            http__conn_begin_close(c);
        else
            read_start(c);
    }
    c->in_drive = 0;
}

static void on_read_closing(struct http_conn *c, ssize_t nread)
{
    if (nread == UV_EOF) {
        c->eof = 1;
        c->reading = 0;
        if (c->shut_done)
            http__conn_close_now(c);
        return;
    }
    if (nread < 0) {
        http__conn_close_now(c);
        return;
    }
    c->linger_bytes += (size_t)nread;
    if (c->linger_bytes > HTTP_LINGER_MAX)
        http__conn_close_now(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct http_conn *c = container_of(s, struct http_conn, tcp);
    if (nread == 0)
        return;
    if (c->phase == PH_CLOSING || c->phase == PH_CLOSED) {
        on_read_closing(c, nread);
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            http__conn_close_now(c);
            return;
        }
        c->eof = 1;
        c->reading = 0; /* libuv stops reading at EOF */
        if (c->phase != PH_INFLIGHT)
            http__conn_resume(c);
        return;
    }
    if (!can_parse(c) || c->blocked || c->pending_off < c->pending.len) {
        stash(c, b->base, (size_t)nread);
        http__conn_resume(c);
        return;
    }
    c->in = b->base;
    c->in_len = (size_t)nread;
    http__conn_resume(c);
    if (c->in_len && c->phase < PH_CLOSING)
        stash(c, c->in, c->in_len);
    c->in = NULL;
    c->in_len = 0;
}

void http__conn_done(struct http_conn *c, struct http_xchg *x, int closing)
{
    c->inflight = NULL;
    x->ex.conn_ = NULL;
    c->srv->n_inflight--;
    http__xchg_release(c->srv, x);
    /* Keep one exchange for the next request unless it holds a large body. */
    if (!c->spare && x->body.cap <= 64 * 1024)
        c->spare = x;
    else
        http__xchg_free(x);
    if (closing || c->phase != PH_INFLIGHT) {
        http__conn_begin_close(c);
        return;
    }
    list_remove(&c->node); /* made progress: last in line for eviction */
    list_insert_head(&c->srv->conns, &c->node);
    http__conn_set_phase(c, PH_IDLE);
    c->idle_since_ms = uv_now(c->srv->loop);
    http__conn_arm_timer(c, c->srv->idle_timeout_ms);
    http__conn_resume(c);
}

/* ---- accepting ------------------------------------------------------------------- */

static struct http_conn *conn_new(struct http_server *srv)
{
    struct http_conn *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;
    buf_init(&c->pending, 2 * HTTP_READ_SIZE);
    http__conn_set_phase(c, PH_HEAD);
    list_insert_head(&srv->conns, &c->node);
    srv->n_conns++;
    return c;
}

static void conn_start(struct http_conn *c)
{
    /* Responses go out in one write; Nagle would only delay them. Fails harmlessly on a
     * socketpair (tests and fuzzing). */
    uv_tcp_nodelay(&c->tcp, 1);
    start_head(c);
    read_start(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct http_server *srv = container_of(l, struct http_server, listener);
    if (status < 0) { /* EMFILE, ENFILE: free a descriptor for the next client */
        http__shed(srv, SHED_ACCEPT_ERROR);
        http__make_room(srv, NULL);
        return;
    }
    struct http_conn *c = conn_new(srv);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        http__conn_close_now(c);
        return;
    }
    if (http__addr_acquire(c) != 0) {
        http__shed(srv, SHED_PER_ADDR);
        http__conn_close_now(c);
        return;
    }
    if (srv->n_conns - srv->n_closing_now > srv->max_conns && http__make_room(srv, c) != 0) {
        http__shed(srv, SHED_FULL);
        http__conn_close_now(c);
        return;
    }
    conn_start(c);
}

int http__server_adopt_fd(struct http_server *srv, uv_os_sock_t fd)
{
    struct http_conn *c = conn_new(srv);
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        http__conn_close_now(c);
        return rc;
    }
    conn_start(c);
    return 0;
}

/* ---- server ---------------------------------------------------------------------- */

static void on_grace_close(uv_handle_t *h)
{
    struct http_server *srv = container_of((uv_timer_t *)h, struct http_server, grace_timer);
    http_stopped_cb *cb = srv->stopped_cb;
    void *arg = srv->stopped_arg;
    http__addrs_free(srv);
    free(srv);
    if (cb)
        cb(arg);
}

static void maybe_finish(struct http_server *srv)
{
    if (!srv->stopping || !srv->listener_closed || srv->n_conns > 0 || srv->finishing)
        return;
    srv->finishing = 1;
    uv_close((uv_handle_t *)&srv->grace_timer, on_grace_close);
}

static void on_listener_close(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    if (--srv->listener_handles > 0)
        return;
    srv->listener_closed = 1;
    maybe_finish(srv);
}

static void close_listener(struct http_server *srv)
{
    if (uv_is_closing((uv_handle_t *)&srv->listener))
        return;
    uv_close((uv_handle_t *)&srv->listen_timer, on_listener_close);
    uv_close((uv_handle_t *)&srv->listener, on_listener_close);
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (!host || !*host)
        host = "127.0.0.1";
    if (port < 0 || port > 65535)
        return UV_EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return UV_EINVAL;
}

static int listen_on(struct http_server *srv, const struct sockaddr_storage *ss)
{
    int rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc != 0)
        return rc;
    struct sockaddr_storage name;
    int len = sizeof(name);
    rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &len);
    if (rc != 0)
        return rc;
    if (name.ss_family == AF_INET6)
        srv->port = ntohs(((struct sockaddr_in6 *)&name)->sin6_port);
    else
        srv->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    return 0;
}

int http_server_start(struct http_server **out, uv_loop_t *loop,
                      const struct http_server_config *cfg, http_handler_fn *handler, void *arg)
{
    ASSERT_LOOP_THREAD();
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = parse_addr(cfg->host, cfg->port, &ss);
    if (rc != 0)
        return rc;
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    srv->loop = loop;
    list_init(&srv->conns);
    srv->handler = handler;
    srv->arg = arg;
    srv->head_timeout_ms = cfg->head_timeout_ms ? cfg->head_timeout_ms : 10000;
    srv->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 60000;
    srv->request_timeout_ms =
        cfg->request_timeout_ms ? cfg->request_timeout_ms : HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
    srv->req_buffer_max =
        cfg->request_buffer_max ? cfg->request_buffer_max : HTTP_DEFAULT_REQUEST_BUFFER;
    srv->head_handler = cfg->head_handler;
    srv->stop_idle_ms = cfg->stop_idle_ms;
    srv->resp_buffer_max =
        cfg->response_buffer_max ? cfg->response_buffer_max : HTTP_DEFAULT_RESPONSE_BUFFER;
    srv->max_conns = cfg->max_conns ? cfg->max_conns : HTTP_DEFAULT_MAX_CONNS;
    srv->max_per_addr =
        cfg->max_conns_per_addr ? cfg->max_conns_per_addr : HTTP_DEFAULT_MAX_PER_ADDR;
    srv->addr_seed = uv_hrtime() ^ (uint64_t)(uintptr_t)srv;
    http__settings_init(&srv->settings);
    uv_tcp_init(loop, &srv->listener);
    uv_timer_init(loop, &srv->listen_timer);
    uv_timer_init(loop, &srv->grace_timer);
    srv->listener.data = srv->listen_timer.data = srv;
    srv->listener_handles = 2;
    rc = listen_on(srv, &ss);
    if (rc != 0) { /* handles are closed and srv freed once the loop runs */
        srv->stopping = 1;
        close_listener(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int http_server_port(const struct http_server *srv)
{
    ASSERT_LOOP_THREAD();
    return srv->port;
}

size_t http_server_inflight(const struct http_server *srv)
{
    ASSERT_LOOP_THREAD();
    return srv->n_inflight;
}

static void on_grace(uv_timer_t *t)
{
    struct http_server *srv = container_of(t, struct http_server, grace_timer);
    struct list *q;
    close_listener(srv); /* if its queue never emptied */
    LIST_FOREACH (q, &srv->conns)
        http__conn_close_now(list_entry(q, struct http_conn, node));
}

/* ---- stopping the listener ------------------------------------------------------- */

/* Closing a listening socket resets the connections the kernel completed but we have not
 * accepted yet: their clients (a proxy that has already sent a request on one) see a reset
 * after sending, which a proxy may not retry for a POST. So new attempts are dropped first
 * (a filter that accepts no packet: the client retries its SYN about a second later and is
 * then refused, which a proxy retries on another instance), what is queued is accepted, and
 * the listener is closed once the queue is empty. Linux only; elsewhere it closes at once. */
#define LISTEN_DRAIN_TICK_MS 5
#define LISTEN_DRAIN_MAX_MS 1000

static int refuse_new_connections(struct http_server *srv)
{
#ifdef __linux__
    static struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {.len = 1, .filter = drop_all};
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&srv->listener, &fd) != 0)
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
#else
    (void)srv;
    return -1;
#endif
}

/* Connections completed by the kernel and not accepted yet; -1 when unknown. */
static int accept_queue_length(struct http_server *srv)
{
#ifdef __linux__
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&srv->listener, &fd) != 0 ||
        getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    return (int)ti.tcpi_unacked; /* on a listener: the accept queue */
#else
    (void)srv;
    return -1;
#endif
}

static void on_listen_tick(uv_timer_t *t)
{
    struct http_server *srv = t->data;
    /* Not empty: the loop accepts them at its next poll (the listener is still readable). */
    if (accept_queue_length(srv) > 0 && uv_now(srv->loop) - srv->stop_ms < LISTEN_DRAIN_MAX_MS)
        return;
    close_listener(srv);
}

static void stop_listening(struct http_server *srv)
{
    if (refuse_new_connections(srv) != 0) {
        close_listener(srv);
        return;
    }
    uv_timer_start(&srv->listen_timer, on_listen_tick, 0, LISTEN_DRAIN_TICK_MS);
}

/* A connection with no request under way: idle after a response, or accepted and silent. */
static void stop_idle(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    uint64_t since = c->phase == PH_IDLE ? c->idle_since_ms : c->req_start_ms;
    uint64_t idle = uv_now(srv->loop) - since;
    if (idle >= srv->stop_idle_ms)
        http__conn_close_now(c);
    else /* IDLE: closes when it fires; HEAD: a 408, as for any silent client */
        http__conn_arm_timer(c, srv->stop_idle_ms - idle);
}

/* A request still arriving: it may finish within its own deadline and stop_idle_ms (a proxy
 * sends a request whole; a client trickling one in must not hold the stop up), else 408. */
static void stop_arriving(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    uint64_t limit = c->phase == PH_HEAD ? MIN(srv->head_timeout_ms, srv->request_timeout_ms)
                                         : srv->request_timeout_ms;
    uint64_t used = uv_now(srv->loop) - c->req_start_ms;
    if (!srv->stop_idle_ms)
        http__conn_close_now(c);
    else
        http__conn_arm_timer(c, MIN(used < limit ? limit - used : 1, srv->stop_idle_ms));
}

void http_server_stop(struct http_server *srv, uint64_t grace_ms, http_stopped_cb *cb, void *arg)
{
    ASSERT_LOOP_THREAD();
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->stop_ms = uv_now(srv->loop);
    srv->stopped_cb = cb;
    srv->stopped_arg = arg;
    stop_listening(srv);
    /* A request being handled goes on (its answer closes the connection). */
    LIST_FOREACH_ENTRY (struct http_conn, c, &srv->conns, node) {
        int silent = c->phase == PH_HEAD && c->head_bytes == 0 && c->pending.len == c->pending_off;
        if (c->phase == PH_IDLE || silent)
            stop_idle(c);
        else if (c->phase == PH_HEAD || c->phase == PH_CHECK || c->phase == PH_BODY)
            stop_arriving(c);
    }
    uv_timer_start(&srv->grace_timer, on_grace, grace_ms, 0);
}
