/* Private to src/http: the server, connection and exchange structs shared by server.c
 * (listener, connection life cycle, timers, stop), parse.c (llhttp callbacks, request
 * assembly) and response.c (response building, writes, error answers). Loop thread only.
 *
 * Connection state machine (one timer per connection, its meaning follows the phase):
 *   HEAD     a request head is being read; timer = head timeout (from acceptance or from
 *            the first byte after an idle period) -> 408
 *   CHECK    the head announced a body and the head handler has not decided yet; nothing
 *            is parsed (bytes read meanwhile go to `pending`); timer = request deadline
 *   BODY     the body is being read; timer = what is left of the request deadline (counted
 *            from the request's first byte, never restarted by a read) -> 408
 *   INFLIGHT the handler owns the exchange; no timer; bytes read meanwhile are kept in
 *            `pending` (reading stops once it holds HTTP_READ_SIZE)
 *   IDLE     keep-alive, nothing of the next request yet; timer = idle timeout -> close
 *            (once the server is stopping: what is left of stop_idle_ms)
 *   CLOSING  the last response is queued: uv_shutdown (timer = idle timeout while the
 *            queued bytes go out), then unread input is drained ("lingering close", so the
 *            client sees the response instead of a reset) until EOF or HTTP_LINGER_MS
 *   CLOSED   uv_close was called on both handles; memory goes in the last close callback */
#ifndef CARAVEL_HTTP_INTERNAL_H
#define CARAVEL_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "llhttp.h"

#include "http/server.h"
#include "util/buf.h"
#include "util/debug.h"
#include "util/list.h"

#define HTTP_READ_SIZE (64 * 1024)
/* Stop parsing further pipelined requests while this much response data waits in the
 * kernel-refused write queue: a client that sends but never reads cannot grow our memory. */
#define HTTP_WRITE_HIGH (1024 * 1024)
#define HTTP_LINGER_MS 2000
#define HTTP_LINGER_MAX (4 * 1024 * 1024)
#define HTTP_DEFAULT_MAX_CONNS 10000
#define HTTP_DEFAULT_MAX_PER_ADDR 256
#define HTTP_ADDR_BUCKETS 4096
/* Warnings about shed connections: at most one line per kind per this many milliseconds. */
#define HTTP_SHED_LOG_MS 10000
#define HTTP_DEFAULT_REQUEST_TIMEOUT_MS 30000
#define HTTP_DEFAULT_REQUEST_BUFFER (64 * 1024 * 1024)
#define HTTP_DEFAULT_RESPONSE_BUFFER (64 * 1024 * 1024)
/* Raw bytes allowed in the body phase (chunk framing and extensions included). */
#define HTTP_MAX_BODY_RAW (4 * HTTP_MAX_BODY)
/* Request strings (target, header names and values, NULs) live in one arena per exchange. */
#define HTTP_ARENA_SPANS (HTTP_MAX_HEAD + 64)
#define HTTP_ARENA_MAX (2 * HTTP_MAX_HEAD + 256)

enum http_phase { PH_HEAD, PH_CHECK, PH_BODY, PH_INFLIGHT, PH_IDLE, PH_CLOSING, PH_CLOSED };

/* An exchange plus the buffers backing its strings; recycled per connection. */
struct http_xchg {
    struct http_exchange ex; /* first: http_respond gets &ex */
    struct buf arena;
    struct buf body;
    size_t url_off, name_off, value_off;
    size_t name_offs[HTTP_MAX_HEADERS], value_offs[HTTP_MAX_HEADERS];
    int hstate;       /* 0 between headers, 1 in a name, 2 in a value */
    int is_head;      /* HEAD request: the response carries no body bytes */
    int keep_alive;   /* llhttp_should_keep_alive at message end */
    int head_pending; /* the head handler has not decided; see http_respond */
    size_t counted;   /* body bytes counted in srv->req_buffered */
};

/* Open connections per client address (IPv4, or the /64 of an IPv6 address): a chained
 * hash table with a per-process random seed, an entry freed with its last connection. */
struct http_addr {
    uint8_t key[16];
    size_t n;
    struct http_addr *next;
};

enum http_shed {
    SHED_EVICTED,
    SHED_PER_ADDR,
    SHED_FULL,
    SHED_ACCEPT_ERROR,
    SHED_BODY_BUDGET,
    SHED_SLOW_READER,
    N_SHED
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    struct http_server *srv;
    /* srv->conns, most recently active first: a connection moves to the front when it is
     * accepted and each time a response is queued, so the tail is the one that has made no
     * progress for the longest (what is evicted at the connection cap). */
    struct list node;
    struct http_addr *addr; /* NULL: an adopted socket (tests), not counted per address */
    llhttp_t parser;
    struct http_xchg *cur;      /* being parsed */
    struct http_xchg *inflight; /* handed to the handler */
    struct http_xchg *spare;    /* recycled, buffers kept */
    /* Input: during on_read `in` is the server's shared read buffer; whatever is left
     * unparsed when on_read returns moves to `pending`. */
    const char *in;
    size_t in_len;
    struct buf pending;
    size_t pending_off;
    /* Response scratch (head + body), reused; only the unsent rest is copied out. */
    char *wbuf;
    size_t wcap;
    size_t head_bytes, body_raw, linger_bytes, ext_bytes;
    size_t pending_counted; /* unparsed bytes of `pending` counted in srv->req_buffered */
    uint64_t req_start_ms;  /* uv_now when the current request began (its deadline) */
    uint64_t idle_since_ms; /* uv_now when the connection last went idle */
    enum http_phase phase;
    int err_status;   /* set by a parser callback: 413 or 431 */
    int handles_open; /* tcp + timer until both close callbacks ran */
    unsigned in_drive : 1, eof : 1, reading : 1, headers_done : 1, msg_done : 1, no_more : 1,
        blocked : 1, shut_done : 1,
        kick : 1; /* run llhttp once more on no input: a body-less message ends there */
};

/* Every phase change goes through here: the steps of the machine above, asserted in debug
 * builds (a closed connection never changes again). */
static inline void http__conn_set_phase(struct http_conn *c, enum http_phase to)
{
#define PH_(p) (1u << (p))
    static const unsigned next[] = {
        [PH_HEAD] = PH_(PH_HEAD) | PH_(PH_CHECK) | PH_(PH_BODY) | PH_(PH_INFLIGHT) |
                    PH_(PH_CLOSING) | PH_(PH_CLOSED),
        [PH_CHECK] = PH_(PH_BODY) | PH_(PH_INFLIGHT) | PH_(PH_CLOSING) | PH_(PH_CLOSED),
        [PH_BODY] = PH_(PH_INFLIGHT) | PH_(PH_CLOSING) | PH_(PH_CLOSED),
        [PH_INFLIGHT] = PH_(PH_IDLE) | PH_(PH_HEAD) | PH_(PH_CLOSING) | PH_(PH_CLOSED),
        [PH_IDLE] = PH_(PH_HEAD) | PH_(PH_CLOSING) | PH_(PH_CLOSED),
        [PH_CLOSING] = PH_(PH_CLOSED),
        [PH_CLOSED] = 0,
    };
#undef PH_
    (void)next; /* read only by the assertion */
    DEBUG_ASSERT_TRANSITION(next, c->phase, to);
    c->phase = to;
}

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t listen_timer; /* stopping: waits for the accept queue to empty */
    uv_timer_t grace_timer;
    http_handler_fn *handler;
    void *arg;
    uint64_t head_timeout_ms, idle_timeout_ms, request_timeout_ms, stop_idle_ms;
    uint64_t stop_ms;     /* uv_now at http_server_stop */
    int listener_handles; /* listener + listen_timer until both close callbacks ran */
    http_head_fn *head_handler;
    size_t req_buffered, req_buffer_max; /* request bytes held, all connections */
    size_t resp_queued, resp_buffer_max; /* response bytes the kernel has not taken yet */
    llhttp_settings_t settings;
    int port;
    int stopping, listener_closed, finishing;
    size_t n_conns, n_inflight, n_closing_now; /* n_closing_now: uv_close called, not freed */
    size_t max_conns, max_per_addr;
    struct list conns; /* struct http_conn.node, most recently active first */
    struct http_addr *addrs[HTTP_ADDR_BUCKETS];
    uint64_t addr_seed;
    uint64_t shed[N_SHED];
    uint64_t shed_logged[N_SHED], shed_log_ms[N_SHED];
    http_stopped_cb *stopped_cb;
    void *stopped_arg;
    char rbuf[HTTP_READ_SIZE]; /* shared: each read is parsed before the next alloc */
};

/* parse.c */
void http__settings_init(llhttp_settings_t *s);
void http__xchg_free(struct http_xchg *x);
/* Feeds one input slice to llhttp; returns the bytes consumed (all of them once the
 * connection is closing). May dispatch a request or answer a parse error. */
size_t http__parse_input(struct http_conn *c, const char *data, size_t len);

/* response.c */
/* Sends bytes (copied): uv_try_write, the rest through uv_write with an owned copy. */
void http__send(struct http_conn *c, const char *data, size_t len);
/* 1 while this connection should parse no further (pipelined) request: its own unsent
 * response data passed HTTP_WRITE_HIGH, or it has some while the server's passed its cap. */
int http__write_blocked(const struct http_conn *c);
/* The request path as a log line shows it: bytes outside printable ASCII (control bytes,
 * anything non-ASCII, so also invalid UTF-8) and the backslash as \xNN, so a client cannot forge
 * log lines or break a terminal; cut at cap - 1 with "..." when longer. Returns the length. */
#define HTTP_LOG_PATH_MAX 512
size_t http__log_escape(const char *in, char *out, size_t cap);
/* Answers a request the parser refused (400, 408, 413, 431, 503) with a JSON error, then
 * closes. */
void http__fail(struct http_conn *c, int status);

/* server.c */
/* Called by http_respond once the response is queued: recycles the exchange and either
 * closes (keep-alive off, stopping) or goes idle and parses what is pending. */
void http__conn_done(struct http_conn *c, struct http_xchg *x, int closing);
/* Parses buffered input while the connection may take another request (re-entrancy safe:
 * a call made while already parsing returns at once and the outer loop continues). */
void http__conn_resume(struct http_conn *c);
/* Graceful close: shutdown after queued writes, drain, close. */
void http__conn_begin_close(struct http_conn *c);
/* Immediate close (errors, timeouts): detaches an in-flight exchange. */
void http__conn_close_now(struct http_conn *c);
/* (Re)starts the connection timer; its meaning follows the phase (see top). */
void http__conn_arm_timer(struct http_conn *c, uint64_t ms);
/* limits.c: connections per address, the connection cap, what was shed. */
/* Counts the new connection under its peer address; -1 when that address is at its limit. */
int http__addr_acquire(struct http_conn *c);
void http__addr_release(struct http_conn *c);
/* Makes room for a new connection at the cap by closing the least recently active one that
 * has no request in flight; -1 when there is none. */
int http__make_room(struct http_server *srv, struct http_conn *newc);
/* Closes the connections with the most unsent response data until the server's queued
 * response bytes are back under the cap (never `keep`, whose response is being written). */
void http__close_slow_readers(struct http_server *srv, struct http_conn *keep);
/* Counts one shed event; logs a warning with the totals at most every HTTP_SHED_LOG_MS. */
void http__shed(struct http_server *srv, enum http_shed what);
void http__addrs_free(struct http_server *srv);

/* Arms the timer with what is left of the request deadline (408 when it passes). */
void http__conn_arm_deadline(struct http_conn *c);
/* Gives back the body bytes an exchange had counted in srv->req_buffered. */
void http__xchg_release(struct http_server *srv, struct http_xchg *x);
/* Adopts an already connected stream socket (tests, fuzzing: one end of a socketpair). */
int http__server_adopt_fd(struct http_server *srv, uv_os_sock_t fd);

#endif
