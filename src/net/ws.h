/* WebSocket client (RFC 6455) on the libuv loop: uv_getaddrinfo, uv_tcp, optional TLS
 * (net/tls.h, memory buffers), the HTTP Upgrade written and checked here, framing by wslay
 * (client masking from the CSPRNG, automatic pong, close handshake). TLS stays
 * below wslay: wslay only sees plaintext.
 *
 * Loop thread only. Callbacks never run from inside ws_connect/ws_send_text/ws_close and
 * never from inside a wslay/mbedtls callback: messages are collected while wslay parses and
 * dispatched afterwards, so a callback may call ws_send_text or ws_close on its own client.
 * Every connection ends with exactly one on_close, after its handles are closed; the client
 * is freed right after on_close returns.
 * Error codes are 0 or negative: UV_E* from the network (UV_ETIMEDOUT for the connect and
 * handshake deadline), TLS_E* from net/tls.h, or WS_E* below. */
#ifndef CARAVEL_NET_WS_H
#define CARAVEL_NET_WS_H

#include <stddef.h>

#include <uv.h>

#include "util/err.h"

struct tls_config;
struct ws_client;

/* Errors: WS_E* in util/err.h (one error space), or a libuv code. */

#define WS_MAX_URL 2048
#define WS_MAX_HANDSHAKE 16384 /* response head cap */
#define WS_DEFAULT_MAX_MESSAGE (512 * 1024)
#define WS_DEFAULT_TIMEOUT_MS 15000 /* DNS + connect + TLS + upgrade */
#define WS_CLOSE_TIMEOUT_MS 3000    /* wait for the peer's close frame */
#define WS_PING_INTERVAL_MS                                                                        \
    30000                       /* ping when open; nothing received for two                        \
                                 * intervals ends the connection (UV_ETIMEDOUT) */
#define WS_MAX_QUEUED_MSGS 4096 /* frames waiting in wslay's send queue */

typedef void ws_open_cb(struct ws_client *ws, void *arg);
/* A complete text or binary message (borrowed for the call). */
typedef void ws_message_cb(struct ws_client *ws, const char *data, size_t len, void *arg);
/* Exactly once per client. err: 0 after ws_close() completed, else why it ended. */
typedef void ws_close_cb(struct ws_client *ws, int err, void *arg);

struct ws_opts {
    const char *url;           /* ws://host[:port][/path] or wss://...; copied */
    struct tls_config *tls;    /* borrowed, must outlive the client; needed for wss:// */
    unsigned timeout_ms;       /* 0 = WS_DEFAULT_TIMEOUT_MS */
    size_t max_message;        /* 0 = WS_DEFAULT_MAX_MESSAGE */
    ws_open_cb *on_open;       /* may be NULL */
    ws_message_cb *on_message; /* may be NULL */
    ws_close_cb *on_close;     /* may be NULL */
    void *arg;
};

/* Starts connecting. Returns 0 and *out (valid until on_close returns), or WS_EURL /
 * WS_ENOTLS / a UV_E* code (no callback then). */
int ws_connect(struct ws_client **out, uv_loop_t *loop, const struct ws_opts *opts);
/* Queues a text message (copied). 0, WS_ECLOSED (not open, or closing) or WS_ETOOBIG. */
int ws_send_text(struct ws_client *ws, const char *data, size_t len);
/* Starts a graceful close (close frame, close_notify, then the handles); idempotent.
 * Before the connection is open it just aborts. on_close follows with err 0. */
void ws_close(struct ws_client *ws);
/* 1 once the upgrade succeeded and until closing starts. */
int ws_is_open(const struct ws_client *ws);

/* --- pure helpers, exposed for tests --- */
struct ws_url {
    int tls;        /* wss:// */
    char host[256]; /* without brackets for IPv6 literals */
    char port[6];
    char path[1024]; /* "/" when empty; includes the query */
    char host_header[300];
};
/* 0 or WS_EURL. */
int ws_url_parse(const char *url, struct ws_url *u);
/* Sec-WebSocket-Accept for a base64 key: base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated. */
void ws_accept_for_key(const char *key, char out[29]);
/* Parses an upgrade response head in data[0..len). Returns the head's length (> 0; bytes
 * after it are already WebSocket frames), 0 when more bytes are needed, or WS_ESTATUS /
 * WS_EHANDSHAKE (also when no complete head fits in WS_MAX_HANDSHAKE bytes). */
int ws_handshake_parse(const char *data, size_t len, const char *expect_accept);

#endif
