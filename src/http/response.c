/* Responses: the head is built with one snprintf into the connection's reused scratch
 * buffer with the body behind it, sent with uv_try_write; only what the kernel refused is
 * copied into an owned uv_write request (freed in its callback). */
#include "http/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/util.h"

struct wreq {
    uv_write_t req;
    size_t len;
    char data[];
};

int http__write_blocked(const struct http_conn *c)
{
    size_t q = c->tcp.write_queue_size;
    return q >= HTTP_WRITE_HIGH || (q > 0 && c->srv->resp_queued >= c->srv->resp_buffer_max);
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct http_conn *c = container_of(req->handle, struct http_conn, tcp);
    struct wreq *w = container_of(req, struct wreq, req);
    c->srv->resp_queued -= w->len;
    free(w);
    if (status == UV_ECANCELED) /* the connection is closing; nothing else to do */
        return;
    if (status < 0) {
        http__conn_close_now(c);
        return;
    }
    if (c->blocked && c->tcp.write_queue_size < HTTP_WRITE_HIGH / 2 && !http__write_blocked(c)) {
        c->blocked = 0;
        http__conn_resume(c);
    }
}

void http__send(struct http_conn *c, const char *data, size_t len)
{
    if (c->phase == PH_CLOSED || len == 0)
        return;
    if (c->tcp.write_queue_size == 0) {
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
            http__conn_close_now(c);
            return;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return;
    }
    struct wreq *w = xmalloc(sizeof(*w) + len);
    memcpy(w->data, data, len);
    w->len = len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(w);
        http__conn_close_now(c);
        return;
    }
    c->srv->resp_queued += len;
    if (c->srv->resp_queued > c->srv->resp_buffer_max)
        http__close_slow_readers(c->srv, c);
}

static char *wbuf_reserve(struct http_conn *c, size_t n)
{
    if (c->wcap < n) {
        size_t cap = MAX(n, MAX(c->wcap * 2, (size_t)4096));
        free(c->wbuf);
        c->wbuf = xmalloc(cap);
        c->wcap = cap;
    }
    return c->wbuf;
}

/* Builds and sends one response. Returns nothing: write errors close the connection. */
static void send_response(struct http_conn *c, int status, const char *ct, const char *extra,
                          const char *body, size_t len, int is_head, int closing)
{
    /* RFC 9110 8.6: no Content-Length (and no body) on 1xx and 204; 304 has no body. */
    int no_body = status < 200 || status == 204 || status == 304;
    char clen[48] = "";
    if (!no_body)
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", len);
    size_t body_len = (no_body || is_head) ? 0 : len;
    size_t ct_len = ct ? strlen(ct) : 0, extra_len = extra ? strlen(extra) : 0;
    size_t cap = 128 + ct_len + extra_len + sizeof(clen) + body_len;
    char *out = wbuf_reserve(c, cap);
    int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%s%s%s%s%sConnection: %s\r\n\r\n", status,
                     http_status_text(status), ct ? "Content-Type: " : "", ct ? ct : "",
                     ct ? "\r\n" : "", extra ? extra : "", clen, closing ? "close" : "keep-alive");
    if (n < 0 || (size_t)n + body_len >= cap) { /* cannot happen: cap covers every part */
        http__conn_close_now(c);
        return;
    }
    if (body_len)
        memcpy(out + n, body, body_len);
    http__send(c, out, (size_t)n + body_len);
    if (c->wcap > 256 * 1024) { /* do not keep a large response's buffer per connection */
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
}

size_t http__log_escape(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (; *in && o + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        if (o + 5 > cap) /* no room for a whole escape: stop before it */
            break;
        out[o++] = '\\';
        out[o++] = 'x';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 15];
    }
    if (*in && o >= 3) { /* cut: say so */
        o = MIN(o, cap - 4);
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

static void log_request(const char *method, const char *path, int status, uint64_t start_ns,
                        const char *user, size_t user_cap)
{
    uint64_t us = start_ns ? (uv_hrtime() - start_ns) / 1000 : 0;
    size_t ulen = user ? strnlen(user, user_cap) : 0;
    char safe[HTTP_LOG_PATH_MAX];
    http__log_escape(path ? path : "-", safe, sizeof(safe));
    LOG_INFO("%s %s %d %" PRIu64 "us %.*s", method && *method ? method : "-", safe, status, us,
             ulen ? (int)ulen : 1, ulen ? user : "-");
}

void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const char *extra_headers, const char *body, size_t len)
{
    struct http_xchg *x = container_of(ex, struct http_xchg, ex);
    struct http_conn *c = ex->conn_;
    log_request(ex->req.method, ex->req.path, status, ex->start_ns_, ex->log_user,
                sizeof(ex->log_user));
    if (!c) { /* the client went away: nothing to send */
        http__xchg_free(x);
        return;
    }
    if (x->head_pending) { /* answered from the head check: the body is never read */
        x->head_pending = 0;
        ex->conn_ = NULL;
        if (c->phase != PH_CHECK) /* closing already: x goes with c */
            return;
        send_response(c, status, content_type, extra_headers, body, len, x->is_head, 1);
        http__conn_begin_close(c);
        return;
    }
    int no_input = c->pending_off >= c->pending.len && c->in_len == 0;
    int closing = !x->keep_alive || c->no_more || c->srv->stopping || (c->eof && no_input);
    send_response(c, status, content_type, extra_headers, body, len, x->is_head, closing);
    if (c->inflight != x) { /* a write error closed the connection and left x to us */
        http__xchg_free(x);
        return;
    }
    http__conn_done(c, x, closing);
}

void http__fail(struct http_conn *c, int status)
{
    const char *body;
    switch (status) {
    case 408:
        body = "{\"error\":\"request timeout\",\"code\":\"request-timeout\"}";
        break;
    case 413:
        body = "{\"error\":\"request body too large\",\"code\":\"payload-too-large\"}";
        break;
    case 431:
        body = "{\"error\":\"request head too large\",\"code\":\"head-too-large\"}";
        break;
    case 503:
        body = "{\"error\":\"server busy, retry later\",\"code\":\"overloaded\"}";
        break;
    default:
        body = "{\"error\":\"bad request\",\"code\":\"invalid-request\"}";
        break;
    }
    const struct http_request *r = c->cur ? &c->cur->ex.req : NULL;
    log_request(r ? r->method : NULL, r ? r->path : NULL, status, 0, NULL, 0);
    send_response(c, status, "application/json; charset=utf-8", NULL, body, strlen(body), 0, 1);
    http__conn_begin_close(c);
}
