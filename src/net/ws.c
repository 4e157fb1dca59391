/* WebSocket client: the connection object and its driver (see ws.h). */
#include "net/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "net/tls.h"
#include "nostr/base64.h"
#include "nostr/keys.h"
#include "util/buf.h"
#include "util/debug.h"
#include "util/list.h"
#include "util/log.h"
#include "util/util.h"

#define PLAIN_IN_MAX (1024 * 1024)
#define MAX_IN_FLIGHT (1024 * 1024) /* bytes handed to uv_write and not yet written */

enum ws_state { ST_RESOLVING, ST_CONNECTING, ST_TLS, ST_UPGRADE, ST_OPEN, ST_CLOSING, ST_DEAD };
/* The steps a connection may take (asserted in debug builds); any state may die. */
#define WS_TO(st) (1u << (st))
static const unsigned ws_next[] = {
    [ST_RESOLVING] = WS_TO(ST_CONNECTING) | WS_TO(ST_DEAD),
    [ST_CONNECTING] = WS_TO(ST_TLS) | WS_TO(ST_UPGRADE) | WS_TO(ST_DEAD),
    [ST_TLS] = WS_TO(ST_UPGRADE) | WS_TO(ST_DEAD),
    [ST_UPGRADE] = WS_TO(ST_OPEN) | WS_TO(ST_DEAD),
    [ST_OPEN] = WS_TO(ST_CLOSING) | WS_TO(ST_DEAD),
    [ST_CLOSING] = WS_TO(ST_DEAD),
    [ST_DEAD] = WS_TO(ST_DEAD),
};

struct msg {
    struct list node; /* in ws->msgs */
    size_t len;
    char data[];
};

struct write_req {
    uv_write_t req;
    struct ws_client *ws;
    size_t len;
    char bytes[];
};

struct ws_client {
    uv_loop_t *loop;
    struct ws_opts opts;
    struct ws_url url;
    enum ws_state state;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int pending; /* gai request + handles not yet closed */
    int tcp_inited;
    int gai_active;
    struct addrinfo *addrs, *ai; /* resolved addresses, the one being tried */
    struct tls_session tls;
    int use_tls;
    struct buf raw_out;  /* plain ws:// output not yet written */
    struct buf plain_in; /* decrypted (or raw) input not yet consumed */
    int eof;
    char rbuf[64 * 1024];
    char accept[29];
    wslay_event_context_ptr ctx;
    struct list msgs; /* received, not yet dispatched, oldest first */
    size_t in_flight;
    uint64_t last_rx; /* uv_now of the last bytes received (dead-peer detection) */
    int in_driver, again;
    int open_pending;    /* on_open still to run */
    int err;             /* first failure; ends the connection */
    int close_requested; /* ws_close was called */
    int shutting_down;   /* handles are closing */
};

static void set_state(struct ws_client *ws, enum ws_state to)
{
    (void)ws_next; /* read only by the assertion */
    DEBUG_ASSERT_TRANSITION(ws_next, ws->state, to);
    ws->state = to;
}

static void drive(struct ws_client *ws);
static void shutdown_handles(struct ws_client *ws);
static void on_timer(uv_timer_t *t);

static void fail(struct ws_client *ws, int err)
{
    if (!ws->err)
        ws->err = err;
}

/* ---- output: everything goes through transport_write, then flush() ---- */

static int transport_write(struct ws_client *ws, const void *p, size_t n)
{
    if (!ws->use_tls)
        return buf_append(&ws->raw_out, p, n) == 0 ? (int)n : TLS_AGAIN;
    return tls_write(&ws->tls, p, n);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = container_of(req, struct write_req, req);
    struct ws_client *ws = w->ws;
    ws->in_flight -= w->len;
    free(w);
    /* During shutdown libuv cancels queued writes: only our own request is touched then. */
    if (ws->shutting_down)
        return;
    if (status < 0)
        fail(ws, status);
    drive(ws);
}

static void flush(struct ws_client *ws)
{
    size_t len = 0;
    char *data = NULL;
    if (ws->shutting_down || !ws->tcp_inited)
        return;
    if (ws->use_tls)
        data = tls_take_out(&ws->tls, &len);
    else if (ws->raw_out.len)
        data = buf_take(&ws->raw_out, &len);
    if (!data)
        return;
    struct write_req *w = xmalloc(sizeof *w + len);
    w->ws = ws;
    w->len = len;
    memcpy(w->bytes, data, len);
    free(data);
    uv_buf_t b = uv_buf_init(w->bytes, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&ws->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        fail(ws, rc);
        return;
    }
    ws->in_flight += len;
}

/* ---- wslay callbacks: buffers only, never free or call the user ---- */

static ssize_t wsl_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                        void *user)
{
    struct ws_client *ws = user;
    (void)flags;
    if (ws->in_flight > MAX_IN_FLIGHT) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    int n = transport_write(ws, data, len);
    if (n > 0)
        return n;
    if (n == TLS_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        ws->again = 1; /* flush() empties the TLS output; try once more */
        return -1;
    }
    fail(ws, n);
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* Push -> pull adapter: wslay pulls until WOULDBLOCK. */
static ssize_t wsl_recv(wslay_event_context_ptr ctx, uint8_t *data, size_t len, int flags,
                        void *user)
{
    struct ws_client *ws = user;
    (void)flags;
    size_t n = MIN(len, ws->plain_in.len);
    if (n == 0) {
        wslay_event_set_error(ctx, ws->eof ? WSLAY_ERR_CALLBACK_FAILURE : WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(data, ws->plain_in.data, n);
    buf_consume(&ws->plain_in, n);
    return (ssize_t)n;
}

static int wsl_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    return nostr_random(buf, len) == 0 ? 0 : -1;
}

static void wsl_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                    void *user)
{
    struct ws_client *ws = user;
    (void)ctx;
    if (wslay_is_ctrl_frame(a->opcode))
        return;
    struct msg *m = xmalloc(sizeof *m + a->msg_length + 1);
    m->len = a->msg_length;
    memcpy(m->data, a->msg, a->msg_length);
    m->data[m->len] = '\0';
    list_insert_tail(&ws->msgs, &m->node);
}

static int start_wslay(struct ws_client *ws)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = wsl_recv,
        .send_callback = wsl_send,
        .genmask_callback = wsl_genmask,
        .on_msg_recv_callback = wsl_msg,
    };
    if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0)
        return WS_EPROTO;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->opts.max_message);
    return 0;
}

/* ---- the driver ---- */

static void send_upgrade(struct ws_client *ws)
{
    uint8_t raw[16];
    size_t klen = 0;
    struct buf req;
    (void)nostr_random(raw, sizeof raw);
    char *key = base64_encode(raw, sizeof raw, &klen);
    ws_accept_for_key(key, ws->accept);
    buf_init(&req, 8192);
    buf_printf(&req,
               "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "User-Agent: caravel\r\n\r\n",
               ws->url.path, ws->url.host_header, key);
    /* The request is far below the TLS out window, so one write takes all of it. */
    int n = transport_write(ws, req.data, req.len);
    if (n != (int)req.len)
        fail(ws, n < 0 ? n : WS_EPROTO);
    buf_free(&req);
    free(key);
    set_state(ws, ST_UPGRADE);
}

static void step_tls(struct ws_client *ws)
{
    int rc;
    if (ws->state == ST_TLS) {
        rc = tls_handshake(&ws->tls);
        if (rc == TLS_AGAIN)
            return;
        if (rc != 0) {
            fail(ws, rc);
            return;
        }
        send_upgrade(ws);
    }
    /* Decrypt everything buffered: records mbedtls already read would otherwise wait. */
    char tmp[16384];
    while ((rc = tls_read(&ws->tls, tmp, sizeof tmp)) > 0) {
        if (buf_append(&ws->plain_in, tmp, (size_t)rc) != 0) {
            fail(ws, WS_ETOOBIG);
            return;
        }
    }
    if (rc == TLS_ECLOSED)
        ws->eof = 1;
    else if (rc != TLS_AGAIN)
        fail(ws, rc);
}

static void step_upgrade(struct ws_client *ws)
{
    int rc = ws_handshake_parse(ws->plain_in.data ? ws->plain_in.data : "", ws->plain_in.len,
                                ws->accept);
    if (rc == 0) {
        if (ws->eof)
            fail(ws, WS_ECLOSED);
        return;
    }
    if (rc < 0) {
        fail(ws, rc);
        return;
    }
    /* Bytes after the head are frames already: they stay in plain_in for wslay. */
    buf_consume(&ws->plain_in, (size_t)rc);
    rc = start_wslay(ws);
    if (rc != 0) {
        fail(ws, rc);
        return;
    }
    set_state(ws, ST_OPEN);
    ws->open_pending = 1;
    uv_timer_start(&ws->timer, on_timer, WS_PING_INTERVAL_MS, WS_PING_INTERVAL_MS);
}

static void step_frames(struct ws_client *ws)
{
    if (wslay_event_recv(ws->ctx) != 0) {
        fail(ws, ws->eof ? WS_ECLOSED : WS_EPROTO);
        return;
    }
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        fail(ws, WS_EPROTO);
        return;
    }
    if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx)) {
        /* Close handshake finished (ours or the peer's) or an oversized message. */
        uint16_t sent = wslay_event_get_status_code_sent(ws->ctx);
        if (sent == WSLAY_CODE_MESSAGE_TOO_BIG)
            fail(ws, WS_ETOOBIG);
        else if (!ws->close_requested)
            fail(ws, WS_ECLOSED);
        else
            set_state(ws, ST_DEAD);
    }
}

static void step(struct ws_client *ws)
{
    if (ws->use_tls && ws->state >= ST_TLS)
        step_tls(ws);
    if (ws->err)
        return;
    if (ws->state == ST_UPGRADE)
        step_upgrade(ws);
    if (!ws->err && (ws->state == ST_OPEN || ws->state == ST_CLOSING))
        step_frames(ws);
}

static void dispatch(struct ws_client *ws)
{
    if (ws->open_pending) {
        ws->open_pending = 0;
        if (ws->opts.on_open && !ws->close_requested)
            ws->opts.on_open(ws, ws->opts.arg);
    }
    struct list *q;
    while ((q = list_pop(&ws->msgs))) {
        struct msg *m = list_entry(q, struct msg, node);
        if (ws->opts.on_message && !ws->close_requested)
            ws->opts.on_message(ws, m->data, m->len, ws->opts.arg);
        free(m);
    }
}

/* Reentrancy-guarded: a user callback calling back in only asks for another round. */
static void drive(struct ws_client *ws)
{
    if (ws->shutting_down)
        return;
    if (ws->in_driver) {
        ws->again = 1;
        return;
    }
    ws->in_driver = 1;
    do {
        ws->again = 0;
        if (!ws->err && ws->state >= ST_TLS && ws->state < ST_DEAD)
            step(ws);
        flush(ws);
        dispatch(ws);
    } while (ws->again && !ws->err && ws->state != ST_DEAD);
    ws->in_driver = 0;
    if (ws->state == ST_DEAD && !ws->err && ws->use_tls) {
        tls_close_notify(&ws->tls); /* after our close frame; best effort */
        flush(ws);
    }
    if (ws->err || ws->state == ST_DEAD)
        shutdown_handles(ws);
}

/* ---- libuv plumbing ---- */

/* Drops one pending handle/request; the last one ends the client. */
static void release(struct ws_client *ws)
{
    if (--ws->pending > 0)
        return;
    if (ws->opts.on_close)
        ws->opts.on_close(ws, ws->close_requested && ws->err == 0 ? 0 : ws->err, ws->opts.arg);
    struct list *q;
    while ((q = list_pop(&ws->msgs)))
        free(list_entry(q, struct msg, node));
    if (ws->addrs)
        uv_freeaddrinfo(ws->addrs);
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    tls_session_free(&ws->tls);
    buf_free(&ws->raw_out);
    buf_free(&ws->plain_in);
    free(ws);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void shutdown_handles(struct ws_client *ws)
{
    if (ws->shutting_down)
        return;
    if (ws->err && !ws->close_requested)
        LOG_DEBUG("ws: %s://%s%s closed: %s", ws->url.tls ? "wss" : "ws", ws->url.host_header,
                  ws->url.path, err_name(ws->err));
    ws->shutting_down = 1;
    if (!ws->err && !ws->close_requested)
        ws->err = WS_ECLOSED;
    if (ws->gai_active)
        uv_cancel((uv_req_t *)&ws->gai); /* on_resolved still runs and drops one pending */
    if (ws->tcp_inited) {
        uv_read_stop((uv_stream_t *)&ws->tcp);
        uv_close((uv_handle_t *)&ws->tcp, on_handle_closed);
    }
    uv_timer_stop(&ws->timer);
    uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct ws_client *ws = h->data;
    (void)hint;
    *b = uv_buf_init(ws->rbuf, sizeof ws->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct ws_client *ws = s->data;
    int rc = 0;
    if (nread == 0)
        return; /* EAGAIN, not EOF */
    ws->last_rx = uv_now(ws->loop);
    if (nread == UV_EOF) {
        if (ws->use_tls)
            tls_feed_eof(&ws->tls);
        else
            ws->eof = 1;
        uv_read_stop(s);
    } else if (nread < 0) {
        fail(ws, (int)nread);
    } else if (ws->use_tls) {
        rc = tls_feed(&ws->tls, b->base, (size_t)nread);
    } else {
        rc = buf_append(&ws->plain_in, b->base, (size_t)nread);
    }
    if (rc != 0)
        fail(ws, WS_ETOOBIG);
    drive(ws);
}

static void try_connect(struct ws_client *ws);

/* The previous address refused: its handle is closed, try the next one. */
static void on_tcp_closed_retry(uv_handle_t *h)
{
    struct ws_client *ws = h->data;
    if (ws->shutting_down) {
        release(ws);
        return;
    }
    ws->pending--;
    try_connect(ws);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct ws_client *ws = req->data;
    if (ws->shutting_down)
        return; /* canceled by uv_close */
    if (status < 0 && ws->ai->ai_next) {
        ws->ai = ws->ai->ai_next;
        ws->tcp_inited = 0; /* still counted in pending until its close callback */
        uv_close((uv_handle_t *)&ws->tcp, on_tcp_closed_retry);
        return;
    }
    if (status < 0) {
        fail(ws, status);
        drive(ws);
        return;
    }
    uv_tcp_nodelay(&ws->tcp, 1);
    uv_tcp_keepalive(&ws->tcp, 1, 60);
    int rc = uv_read_start((uv_stream_t *)&ws->tcp, on_alloc, on_read);
    if (rc < 0)
        fail(ws, rc);
    if (ws->use_tls)
        set_state(ws, ST_TLS);
    else
        send_upgrade(ws);
    drive(ws);
}

static void try_connect(struct ws_client *ws)
{
    int rc = uv_tcp_init(ws->loop, &ws->tcp);
    if (rc == 0) {
        ws->tcp_inited = 1;
        ws->pending++;
        ws->tcp.data = ws;
        ws->creq.data = ws;
        set_state(ws, ST_CONNECTING);
        rc = uv_tcp_connect(&ws->creq, &ws->tcp, ws->ai->ai_addr, on_connected);
    }
    if (rc < 0) {
        fail(ws, rc);
        drive(ws);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ws_client *ws = req->data;
    ws->gai_active = 0;
    if (ws->shutting_down) {
        uv_freeaddrinfo(res);
        release(ws);
        return;
    }
    ws->pending--;
    if (status < 0) {
        fail(ws, status);
        drive(ws);
        return;
    }
    ws->addrs = ws->ai = res;
    try_connect(ws);
}

static void on_timer(uv_timer_t *t)
{
    struct ws_client *ws = t->data;
    if (ws->state == ST_OPEN && uv_now(ws->loop) - ws->last_rx > 2 * WS_PING_INTERVAL_MS) {
        fail(ws, UV_ETIMEDOUT); /* not even a pong for two intervals: the peer is gone */
    } else if (ws->state == ST_OPEN) {
        struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
        (void)wslay_event_queue_msg(ws->ctx, &ping);
    } else if (ws->state == ST_CLOSING) {
        set_state(ws, ST_DEAD); /* the peer never answered our close frame */
    } else {
        fail(ws, UV_ETIMEDOUT);
    }
    drive(ws);
}

int ws_connect(struct ws_client **out, uv_loop_t *loop, const struct ws_opts *opts)
{
    ASSERT_LOOP_THREAD();
    struct ws_client *ws = xcalloc(1, sizeof *ws);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc;

    *out = NULL;
    ws->loop = loop;
    ws->opts = *opts;
    ws->opts.url = NULL;
    if (!ws->opts.timeout_ms)
        ws->opts.timeout_ms = WS_DEFAULT_TIMEOUT_MS;
    if (!ws->opts.max_message)
        ws->opts.max_message = WS_DEFAULT_MAX_MESSAGE;
    list_init(&ws->msgs);
    buf_init(&ws->raw_out, MAX_IN_FLIGHT * 2);
    buf_init(&ws->plain_in, PLAIN_IN_MAX + ws->opts.max_message);
    rc = ws_url_parse(opts->url, &ws->url);
    if (rc == 0 && ws->url.tls && !opts->tls)
        rc = WS_ENOTLS;
    if (rc == 0 && ws->url.tls) {
        ws->use_tls = 1;
        rc = tls_session_init(&ws->tls, opts->tls, ws->url.host);
    }
    if (rc != 0)
        goto fail;
    ws->gai.data = ws;
    rc = uv_getaddrinfo(loop, &ws->gai, on_resolved, ws->url.host, ws->url.port, &hints);
    if (rc < 0)
        goto fail;
    ws->gai_active = 1;
    uv_timer_init(loop, &ws->timer);
    ws->timer.data = ws;
    uv_timer_start(&ws->timer, on_timer, ws->opts.timeout_ms, 0);
    ws->pending = 2; /* the DNS request and the timer */
    *out = ws;
    return 0;
fail:
    if (ws->use_tls)
        tls_session_free(&ws->tls);
    buf_free(&ws->raw_out);
    buf_free(&ws->plain_in);
    free(ws);
    return rc;
}

int ws_send_text(struct ws_client *ws, const char *data, size_t len)
{
    ASSERT_LOOP_THREAD();
    if (ws->state != ST_OPEN || ws->close_requested || ws->err)
        return WS_ECLOSED;
    if (wslay_event_get_queued_msg_count(ws->ctx) >= WS_MAX_QUEUED_MSGS)
        return WS_ETOOBIG;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return WS_ETOOBIG;
    drive(ws);
    return 0;
}

void ws_close(struct ws_client *ws)
{
    ASSERT_LOOP_THREAD();
    if (ws->close_requested || ws->shutting_down)
        return;
    ws->close_requested = 1;
    if (ws->state != ST_OPEN || ws->err) {
        set_state(ws, ST_DEAD);
        if (!ws->in_driver)
            shutdown_handles(ws);
        return;
    }
    set_state(ws, ST_CLOSING);
    (void)wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    uv_timer_start(&ws->timer, on_timer, WS_CLOSE_TIMEOUT_MS, 0);
    drive(ws);
}

int ws_is_open(const struct ws_client *ws)
{
    ASSERT_LOOP_THREAD();
    return ws->state == ST_OPEN && !ws->close_requested && !ws->err;
}
