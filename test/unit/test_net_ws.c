/* WebSocket client (src/net/ws.c): the pure handshake parser byte by byte, and the client on
 * a real loop against an in-process server (scripted bytes, or a wslay echo server). */
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <wslay/wslay.h>

#include "net/ws.h"
#include "nostr/keys.h"
#include "test.h"
#include "util/buf.h"
#include "util/util.h"

static const char *const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

TEST(ws_accept_rfc6455_example)
{
    char out[29];
    ws_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    ASSERT_STR_EQ(out, ACCEPT);
}

TEST(ws_url_parse_table)
{
    static const struct {
        const char *url;
        int ok, tls;
        const char *host, *port, *path, *hh;
    } t[] = {
        {"wss://relay.example.com", 1, 1, "relay.example.com", "443", "/", "relay.example.com"},
        {"ws://127.0.0.1:7777/", 1, 0, "127.0.0.1", "7777", "/", "127.0.0.1:7777"},
        {"ws://h:80/a/b?x=1#frag", 1, 0, "h", "80", "/a/b?x=1", "h"},
        {"wss://h?x", 1, 1, "h", "443", "/?x", "h"},
        {"wss://[::1]:8443/r", 1, 1, "::1", "8443", "/r", "[::1]:8443"},
        {"WSS://H:1", 1, 1, "H", "1", "/", "H:1"},
        {"http://h/", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://h:/", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://h:123456/", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://h:12a/", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://u@h/", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://h/a b", 0, 0, NULL, NULL, NULL, NULL},
        {"ws://[::1/", 0, 0, NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct ws_url u;
        int rc = ws_url_parse(t[i].url, &u);
        if (!t[i].ok) {
            ASSERT_EQ(rc, WS_EURL);
            continue;
        }
        ASSERT_OK(rc);
        ASSERT_EQ(u.tls, t[i].tls);
        ASSERT_STR_EQ(u.host, t[i].host);
        ASSERT_STR_EQ(u.port, t[i].port);
        ASSERT_STR_EQ(u.path, t[i].path);
        ASSERT_STR_EQ(u.host_header, t[i].hh);
    }
}

TEST(ws_handshake_split_at_every_byte)
{
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: WebSocket\r\n"
                               "Connection: keep-alive, Upgrade\r\n"
                               "Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
                               "\r\n"
                               "\x81\x02hi"; /* a frame right behind the head */
    size_t total = sizeof resp - 1, head = total - 4;
    for (size_t i = 0; i <= total; i++) {
        int rc = ws_handshake_parse(resp, i, ACCEPT);
        if (i < head)
            ASSERT_EQ(rc, 0);
        else
            ASSERT_EQ(rc, (int)head);
    }
}

TEST(ws_handshake_refusals)
{
    static const struct {
        const char *resp;
        int rc;
    } t[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", WS_ESTATUS},
        {"HTTP/1.1 401 Unauthorized\r\n\r\n", WS_ESTATUS},
        {"HTTP/1.1 1010 X\r\n\r\n", WS_ESTATUS},
        {"HTTP/1.0 101 X\r\n\r\n", WS_EHANDSHAKE},
        {"garbage\r\n\r\n", WS_EHANDSHAKE},
        {"HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
         WS_EHANDSHAKE},
        {"HTTP/1.1 101 X\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         WS_EHANDSHAKE},
        {"HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: close\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         WS_EHANDSHAKE},
        {"HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", WS_EHANDSHAKE},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++)
        ASSERT_EQ(ws_handshake_parse(t[i].resp, strlen(t[i].resp), ACCEPT), t[i].rc);
    /* A head that never ends is refused once it passes the cap. */
    size_t n = WS_MAX_HANDSHAKE + 10;
    char *big = xmalloc(n);
    memcpy(big, "HTTP/1.1 101 X\r\n", 16);
    memset(big + 16, 'a', n - 16);
    ASSERT_EQ(ws_handshake_parse(big, n, ACCEPT), WS_EHANDSHAKE);
    ASSERT_EQ(ws_handshake_parse(big, WS_MAX_HANDSHAKE - 1, ACCEPT), 0);
    free(big);
}

/* ---- in-process server on the test loop ---- */

enum srv_mode { SRV_SCRIPT, SRV_ECHO, SRV_BAD_ACCEPT, SRV_SILENT };

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener, conn;
    int conn_open;
    enum srv_mode mode;
    struct buf in;
    int upgraded;
    const char *script; /* frames sent right behind the 101 (SCRIPT) */
    size_t script_len;
    wslay_event_context_ptr ctx;
    char rbuf[65536];
    int port;
};

struct client_result {
    int opened, closed, err;
    struct buf got; /* messages joined by '|' */
    int n_msgs;
    const char *to_send[4];
    size_t send_len[4];
    int close_after; /* ws_close after this many messages (0 = never) */
};

static void srv_write(struct srv *s, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    ASSERT_EQ(uv_try_write((uv_stream_t *)&s->conn, &b, 1), (int)n);
}

static ssize_t srv_wsl_send(wslay_event_context_ptr ctx, const uint8_t *d, size_t n, int f, void *u)
{
    (void)ctx;
    (void)f;
    srv_write(u, d, n);
    return (ssize_t)n;
}

static ssize_t srv_wsl_recv(wslay_event_context_ptr ctx, uint8_t *d, size_t n, int f, void *u)
{
    struct srv *s = u;
    (void)f;
    size_t k = MIN(n, s->in.len);
    if (!k) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(d, s->in.data, k);
    buf_consume(&s->in, k);
    return (ssize_t)k;
}

static void srv_wsl_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                        void *u)
{
    (void)u;
    if (wslay_is_ctrl_frame(a->opcode))
        return;
    struct wslay_event_msg m = {a->opcode, a->msg, a->msg_length};
    ASSERT_OK(wslay_event_queue_msg(ctx, &m));
}

static void srv_conn_closed(uv_handle_t *h)
{
    struct srv *s = h->data;
    s->conn_open = 0;
    uv_close((uv_handle_t *)&s->listener, NULL);
}

static void srv_close_conn(struct srv *s)
{
    if (s->conn_open == 1) {
        s->conn_open = 2;
        uv_close((uv_handle_t *)&s->conn, srv_conn_closed);
    }
}

static void srv_upgrade(struct srv *s)
{
    const char *k = memmem(s->in.data, s->in.len, "Sec-WebSocket-Key: ", 19);
    ASSERT_NOT_NULL(k);
    char key[25], accept[29], head[256];
    memcpy(key, k + 19, 24);
    key[24] = '\0';
    ws_accept_for_key(key, accept);
    if (s->mode == SRV_BAD_ACCEPT)
        accept[0] = accept[0] == 'A' ? 'B' : 'A';
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    struct buf out;
    buf_init(&out, 1 << 20);
    ASSERT_OK(buf_append(&out, head, (size_t)n));
    if (s->script)
        ASSERT_OK(buf_append(&out, s->script, s->script_len));
    srv_write(s, out.data, out.len); /* head and frames in one segment */
    buf_free(&out);
    buf_consume(&s->in, (size_t)((const char *)memmem(s->in.data, s->in.len, "\r\n\r\n", 4) -
                                 s->in.data + 4));
    s->upgraded = 1;
    if (s->mode == SRV_ECHO) {
        static const struct wslay_event_callbacks cbs = {
            .recv_callback = srv_wsl_recv,
            .send_callback = srv_wsl_send,
            .on_msg_recv_callback = srv_wsl_msg,
        };
        ASSERT_OK(wslay_event_context_server_init(&s->ctx, &cbs, s));
    }
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct srv *s = h->data;
    (void)hint;
    *b = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct srv *s = st->data;
    if (n < 0) {
        srv_close_conn(s);
        return;
    }
    ASSERT_OK(buf_append(&s->in, b->base, (size_t)n));
    if (!s->upgraded && memmem(s->in.data, s->in.len, "\r\n\r\n", 4) && s->mode != SRV_SILENT)
        srv_upgrade(s);
    if (s->ctx) {
        ASSERT_OK(wslay_event_recv(s->ctx));
        if (wslay_event_want_write(s->ctx))
            ASSERT_OK(wslay_event_send(s->ctx));
        if (!wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx))
            srv_close_conn(s);
    }
}

static void srv_on_conn(uv_stream_t *l, int status)
{
    struct srv *s = l->data;
    ASSERT_OK(status);
    ASSERT_OK(uv_tcp_init(s->loop, &s->conn));
    s->conn.data = s;
    ASSERT_OK(uv_accept(l, (uv_stream_t *)&s->conn));
    s->conn_open = 1;
    ASSERT_OK(uv_read_start((uv_stream_t *)&s->conn, srv_alloc, srv_read));
}

static void srv_start(struct srv *s, uv_loop_t *loop, enum srv_mode mode)
{
    struct sockaddr_in a;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->mode = mode;
    buf_init(&s->in, 4 << 20);
    ASSERT_OK(uv_tcp_init(loop, &s->listener));
    s->listener.data = s;
    ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &a));
    ASSERT_OK(uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0));
    ASSERT_OK(uv_listen((uv_stream_t *)&s->listener, 4, srv_on_conn));
    ASSERT_OK(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len));
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void srv_free(struct srv *s)
{
    if (s->ctx)
        wslay_event_context_free(s->ctx);
    buf_free(&s->in);
}

static void cl_open(struct ws_client *ws, void *arg)
{
    struct client_result *r = arg;
    r->opened++;
    for (size_t i = 0; i < 4 && r->to_send[i]; i++)
        ASSERT_OK(ws_send_text(ws, r->to_send[i], r->send_len[i]));
}

static void cl_msg(struct ws_client *ws, const char *d, size_t n, void *arg)
{
    struct client_result *r = arg;
    if (r->n_msgs++)
        ASSERT_OK(buf_append(&r->got, "|", 1));
    ASSERT_OK(buf_append(&r->got, d, n));
    if (r->close_after && r->n_msgs == r->close_after)
        ws_close(ws);
}

static void cl_close(struct ws_client *ws, int err, void *arg)
{
    struct client_result *r = arg;
    (void)ws;
    r->closed++;
    r->err = err;
}

/* Runs one client against a fresh server until both are done. */
static void run_client(enum srv_mode mode, const char *script, size_t script_len,
                       size_t max_message, unsigned timeout_ms, struct client_result *r)
{
    uv_loop_t loop;
    struct srv s;
    struct ws_client *ws = NULL;
    char url[64];
    ASSERT_OK(nostr_init());
    ASSERT_OK(uv_loop_init(&loop));
    srv_start(&s, &loop, mode);
    s.script = script;
    s.script_len = script_len;
    buf_init(&r->got, 4 << 20);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/path?q=1", s.port);
    struct ws_opts o = {.url = url,
                        .max_message = max_message,
                        .timeout_ms = timeout_ms,
                        .on_open = cl_open,
                        .on_message = cl_msg,
                        .on_close = cl_close,
                        .arg = r};
    ASSERT_OK(ws_connect(&ws, &loop, &o));
    while (!r->closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    ASSERT_EQ(r->closed, 1);
    srv_close_conn(&s);
    if (!s.conn_open && !uv_is_closing((uv_handle_t *)&s.listener))
        uv_close((uv_handle_t *)&s.listener, NULL);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_OK(uv_loop_close(&loop));
    /* The request line went out as written. */
    if (mode != SRV_BAD_ACCEPT || s.in.len)
        ASSERT(s.upgraded || mode == SRV_SILENT);
    srv_free(&s);
}

TEST(ws_fragmented_frames_reassembled)
{
    /* text "hel" (FIN=0), continuation "lo " (FIN=0), a ping in between, final "world",
     * then a second message and a close frame from the server. */
    static const char frames[] = "\x01\x03hel"
                                 "\x00\x03lo "
                                 "\x89\x00"
                                 "\x80\x05world"
                                 "\x81\x03two"
                                 "\x88\x02\x03\xe8";
    struct client_result r = {0};
    run_client(SRV_SCRIPT, frames, sizeof frames - 1, 0, 0, &r);
    ASSERT_EQ(r.opened, 1);
    ASSERT_EQ(r.n_msgs, 2);
    ASSERT_STR_EQ(r.got.data, "hello world|two");
    ASSERT_EQ(r.err, WS_ECLOSED); /* the server closed */
    buf_free(&r.got);
}

TEST(ws_oversized_message_is_an_error)
{
    char frame[4 + 200];
    frame[0] = (char)0x81;
    frame[1] = 126;
    frame[2] = 0;
    frame[3] = (char)200;
    memset(frame + 4, 'x', 200);
    struct client_result r = {0};
    run_client(SRV_SCRIPT, frame, sizeof frame, 100, 0, &r);
    ASSERT_EQ(r.opened, 1);
    ASSERT_EQ(r.n_msgs, 0);
    ASSERT_EQ(r.err, WS_ETOOBIG);
    buf_free(&r.got);
}

TEST(ws_bad_accept_refused)
{
    struct client_result r = {0};
    run_client(SRV_BAD_ACCEPT, NULL, 0, 0, 0, &r);
    ASSERT_EQ(r.opened, 0);
    ASSERT_EQ(r.err, WS_EHANDSHAKE);
    buf_free(&r.got);
}

TEST(ws_handshake_timeout)
{
    struct client_result r = {0};
    run_client(SRV_SILENT, NULL, 0, 0, 200, &r);
    ASSERT_EQ(r.opened, 0);
    ASSERT_EQ(r.err, UV_ETIMEDOUT);
    buf_free(&r.got);
}

TEST(ws_echo_roundtrip_and_clean_close)
{
    size_t big_len = 70000; /* needs the 64-bit length form */
    char *big = xmalloc(big_len);
    memset(big, 'b', big_len);
    struct client_result r = {0};
    r.to_send[0] = "hello";
    r.send_len[0] = 5;
    r.to_send[1] = big;
    r.send_len[1] = big_len;
    r.close_after = 2;
    run_client(SRV_ECHO, NULL, 0, 0, 0, &r);
    ASSERT_EQ(r.opened, 1);
    ASSERT_EQ(r.n_msgs, 2);
    ASSERT_EQ(r.got.len, 5 + 1 + big_len);
    ASSERT_MEM_EQ(r.got.data, "hello|bbb", 9);
    ASSERT_EQ(r.err, 0); /* our close, answered by the server */
    buf_free(&r.got);
    free(big);
}

TEST(ws_connect_refused_and_bad_url)
{
    uv_loop_t loop;
    struct ws_client *ws = NULL;
    struct client_result r = {0};
    struct ws_opts o = {.url = "ftp://x", .on_close = cl_close, .arg = &r};
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_EQ(ws_connect(&ws, &loop, &o), WS_EURL);
    o.url = "wss://localhost/";
    ASSERT_EQ(ws_connect(&ws, &loop, &o), WS_ENOTLS);
    o.url = "ws://127.0.0.1:1/";
    ASSERT_OK(ws_connect(&ws, &loop, &o));
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_EQ(r.closed, 1);
    ASSERT_EQ(r.err, UV_ECONNREFUSED);
    /* closed before it ever resolved: on_close still runs once, with 0 */
    memset(&r, 0, sizeof r);
    ASSERT_OK(ws_connect(&ws, &loop, &o));
    ws_close(ws);
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    ASSERT_EQ(r.closed, 1);
    ASSERT_EQ(r.err, 0);
    ASSERT_OK(uv_loop_close(&loop));
}
