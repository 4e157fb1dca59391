/* HTTP/1.x server on libuv + llhttp. Loop thread only.
 *
 * Each parsed request becomes a struct http_exchange handed to the single handler; the
 * handler (synchronously or later, e.g. after database work) answers with http_respond()
 * exactly once. One request per connection is in flight at a time: the parser is paused
 * until the response is queued, so pipelined requests are answered in order. If the client
 * goes away meanwhile, the exchange stays valid until http_respond, which then just frees it.
 *
 * Limits (PRODUCT.md §3.1): head 16 KiB (431), body 1 MiB (413), head within 10 s and head
 * plus body within the request deadline (408; a body that trickles in does not extend it),
 * chunk extensions 256 bytes per request (400), request bytes buffered by the whole server (bodies
 * being read or held by handlers, unparsed pipelined input) capped: a body that would pass the cap
 * is refused (503 overloaded). Idle keep-alive closed after 60 s. HTTP/1.0 and chunked request
 * bodies are supported (trailers are ignored); "Expect: 100-continue" is answered once the
 * head is accepted. Limit and parse errors get a JSON body {"error","code"} (400
 * invalid-request, 408 request-timeout, 413 payload-too-large, 431 head-too-large, 503
 * overloaded) and the connection closes after it. No upgrades: a request asking for one is
 * answered normally and the connection closes.
 *
 * Head check: when a request announces a body and a head_handler is configured, the
 * handler sees the exchange (head only: body "" and body_len 0) before any body byte is
 * read. It returns 0 to go on at once; otherwise it must later call exactly one of
 * http_head_continue (read the body, then the handler runs as usual) or http_respond (the
 * answer goes out without the body being read and the connection closes).
 *
 * Connections: at most max_conns open. At the cap a new client is still served: the
 * connection that has gone longest without a response (and has no request in flight) is
 * closed to make room; only when every connection has a request in flight is the new one
 * closed unanswered. At most max_conns_per_addr from one client address (an IPv6 client's
 * /64 counts as one address); past it new connections from there are closed unanswered.
 * Responses a client does not read are capped server-wide (response_buffer_max): a
 * connection with unsent data parses no further pipelined request while the total is over
 * it, and the connections with the most unsent data are closed until it is under again.
 * All of these, and accept errors (the fd limit), are counted (http_server_stats) and logged as a
 * warning at most every 10 s.
 *
 * One log line per request is written by http_respond: method, path, status, microseconds
 * and ex->log_user (e.g. a short pubkey) — never headers or bodies. */
#ifndef CARAVEL_HTTP_SERVER_H
#define CARAVEL_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define HTTP_MAX_HEAD (16 * 1024)
#define HTTP_MAX_BODY (1024 * 1024)
#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_CHUNK_EXT 256

struct http_header {
    char *name; /* lowercased */
    char *value;
};

struct http_request {
    char method[16]; /* "GET", "POST", ... */
    char *target;    /* raw request target, e.g. "/relays?limit=5" */
    char *path;      /* target up to '?', not percent-decoded */
    char *query;     /* after '?', or NULL */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    char *body; /* NUL-terminated (not counted), possibly "" */
    size_t body_len;
    int http_minor; /* 0 or 1 */
};

struct http_exchange {
    struct http_request req; /* owned by the exchange, valid until http_respond returns */
    void *user;              /* free for the handler */
    char log_user[16];       /* shown in the request log line; "" = "-" */
    /* private */
    struct http_conn *conn_; /* NULL once the client has gone */
    uint64_t start_ns_;
};

struct http_server;
typedef void http_handler_fn(struct http_exchange *ex, void *arg);
typedef void http_stopped_cb(void *arg);
/* See "Head check" above: 0 = read the body now, 1 = the handler answers or continues. */
typedef int http_head_fn(struct http_exchange *ex, void *arg);

struct http_server_config {
    const char *host;            /* IPv4 or IPv6 literal (borrowed); NULL or "" = 127.0.0.1 */
    int port;                    /* 0 = ephemeral (see http_server_port) */
    uint64_t head_timeout_ms;    /* 0 = default 10000 */
    uint64_t idle_timeout_ms;    /* 0 = default 60000 (keep-alive idle, slow response reader) */
    uint64_t request_timeout_ms; /* head + body of one request; 0 = default 30000 */
    size_t request_buffer_max;   /* request bytes buffered server-wide; 0 = default 64 MiB */
    http_head_fn *head_handler;  /* NULL: bodies are read without a head check */
    size_t max_conns;            /* 0 = default 10000 */
    size_t max_conns_per_addr;   /* 0 = default 256; SIZE_MAX = no limit */
    size_t response_buffer_max;  /* response bytes queued server-wide; 0 = default 64 MiB */
    /* During a graceful stop, a keep-alive connection with no request under way stays open
     * until it has been idle this long (0: closed at once), so that a client reusing it at
     * that moment (a proxy's pooled upstream connection) gets an answer, with Connection:
     * close, instead of a connection closed under its request. Such a client must close its
     * idle connections sooner than this itself. */
    uint64_t stop_idle_ms;
};

/* What the server shed to stay within its limits, counted since start. */
struct http_server_stats {
    size_t connections;        /* open now */
    uint64_t evicted;          /* closed to make room for a new client at the cap */
    uint64_t refused_per_addr; /* new connections over the per-address limit */
    uint64_t refused_full;     /* new connections at the cap with nothing to evict */
    uint64_t accept_errors;    /* accept failed (the fd limit: EMFILE, ENFILE) */
    uint64_t body_overloaded;  /* bodies refused 503: the request buffer was full */
    uint64_t slow_readers;     /* closed: their unread responses passed the response cap */
    size_t request_bytes;      /* request bytes held now, all connections (the
                                * HTTP_REQUEST_BUFFER budget) */
    size_t response_bytes;     /* response bytes queued and not yet read by the clients (the
                                * HTTP_RESPONSE_BUFFER budget) */
};

/* Case-insensitive lookup of a request header; borrowed or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);

/* Binds and listens. Returns 0 or a negative UV_E* code: UV_EINVAL for a host that is not an
 * IP literal, or what bind/listen said (UV_EADDRINUSE, ...). On failure nothing is left to
 * the caller (handles already created close and free the next time the loop runs).
 * *out is freed by http_server_stop. cfg is only read during the call. */
int http_server_start(struct http_server **out, uv_loop_t *loop,
                      const struct http_server_config *cfg, http_handler_fn *handler, void *arg);
int http_server_port(const struct http_server *srv);
/* Graceful stop: stop listening without resetting a connection the kernel has already
 * accepted (Linux: new connection attempts are dropped first, so they retry and are refused
 * once the listener is closed; what is queued is accepted and served), close idle
 * connections once idle for stop_idle_ms, give a request still arriving at most stop_idle_ms
 * more (408 after; closed at once when it is 0), let requests being handled finish (every
 * response from now on says Connection: close), force everything closed after
 * grace_ms, then free the server and call cb (may be NULL) from the loop. srv is invalid once
 * cb runs. A second call is ignored. Exchanges still held by handlers after a forced close
 * stay valid; http_respond then only frees them. */
void http_server_stop(struct http_server *srv, uint64_t grace_ms, http_stopped_cb *cb, void *arg);
void http_server_stats(const struct http_server *srv, struct http_server_stats *out);
/* Number of requests parsed but not yet answered (for metrics and shutdown). */
size_t http_server_inflight(const struct http_server *srv);

/* Answers the exchange and frees it; call exactly once per exchange, from the loop thread
 * (synchronously inside the handler or later). extra_headers: NULL or complete
 * "Name: value\r\n" lines (copied). body (copied) may be NULL with len 0. Adds
 * Content-Length, Content-Type (when content_type is non-NULL) and Connection (keep-alive or
 * close). A 1xx/204/304 gets no body and no Content-Length; a HEAD request gets the headers
 * only. Write errors close the connection quietly. */
void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const char *extra_headers, const char *body, size_t len);
/* After a head check that returned 1: read the body; the request handler runs once it is
 * complete. Loop thread; exchange ownership stays with the server. */
void http_head_continue(struct http_exchange *ex);
/* Microseconds since the exchange's request began to arrive (for metrics). */
static inline uint64_t http_exchange_elapsed_us(const struct http_exchange *ex)
{
    return (uv_hrtime() - ex->start_ns_) / 1000;
}
/* 1 once the client's connection has closed (the client left, a limit or the stop closed it)
 * while the handler still holds the exchange: its answer will only be freed, so work for it
 * may be skipped. Loop thread, between dispatch to the handler and http_respond. */
static inline int http_exchange_gone(const struct http_exchange *ex)
{
    return ex->conn_ == NULL;
}
/* The reason phrase for a status code ("OK", "Not Found", ...). */
const char *http_status_text(int status);

#endif
