/* Request parsing: llhttp callbacks assemble a struct http_exchange, http__parse_input
 * drives llhttp over one input slice and acts on what the callbacks flagged (head done,
 * message done, limits) after llhttp_execute returned, so nothing is freed, written or
 * dispatched from inside llhttp (llhttp forbids re-entering or freeing the parser from its
 * own callbacks, as h2o and node do not either).
 *
 * Both on_headers_complete and on_message_complete pause the parser: the pause position
 * tells exactly how many bytes the head took (llhttp itself does not limit it), and one
 * request at a time is handed to the handler (pipelining). */
#include "http/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

static struct http_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static struct http_xchg *xchg_new(void)
{
    struct http_xchg *x = xcalloc(1, sizeof(*x));
    buf_init(&x->arena, HTTP_ARENA_MAX);
    buf_init(&x->body, HTTP_MAX_BODY);
    return x;
}

void http__xchg_free(struct http_xchg *x)
{
    if (!x)
        return;
    buf_free(&x->arena);
    buf_free(&x->body);
    free(x);
}

/* A fresh or recycled exchange with empty buffers. */
static struct http_xchg *xchg_take(struct http_conn *c)
{
    struct http_xchg *x = c->spare;
    c->spare = NULL;
    if (!x)
        return xchg_new();
    struct buf arena = x->arena, body = x->body;
    buf_reset(&arena);
    buf_reset(&body);
    memset(x, 0, sizeof(*x));
    x->arena = arena;
    x->body = body;
    return x;
}

static int fail_cb(struct http_conn *c, int status)
{
    c->err_status = status;
    return HPE_USER;
}

static int arena_add(struct http_conn *c, const char *at, size_t len)
{
    struct buf *a = &c->cur->arena;
    if (a->len + len > HTTP_ARENA_SPANS || buf_append(a, at, len) != 0)
        return fail_cb(c, 431);
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct http_conn *c = conn_of(p);
    if (!c->cur)
        c->cur = xchg_take(c);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return arena_add(conn_of(p), at, len);
}

static int on_url_complete(llhttp_t *p)
{
    return arena_add(conn_of(p), "", 1);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    if (c->phase == PH_BODY) /* chunked trailers: ignored, the head is final */
        return 0;
    struct http_xchg *x = c->cur;
    if (x->hstate != 1) {
        if (x->ex.req.n_headers == HTTP_MAX_HEADERS)
            return fail_cb(c, 431);
        x->name_off = x->arena.len;
        x->hstate = 1;
    }
    return arena_add(c, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of(p);
    if (c->phase == PH_BODY) /* chunked trailers: ignored, the head is final */
        return 0;
    struct http_xchg *x = c->cur;
    if (x->hstate != 1) { /* an empty name cannot pass llhttp, but stay consistent */
        x->name_off = x->arena.len;
        if (x->ex.req.n_headers == HTTP_MAX_HEADERS)
            return fail_cb(c, 431);
    }
    int rc = arena_add(c, "", 1);
    if (rc)
        return rc;
    for (char *s = x->arena.data + x->name_off; *s; s++)
        *s = (char)tolower((unsigned char)*s);
    x->value_off = x->arena.len;
    x->hstate = 2;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    return c->phase == PH_BODY ? 0 : arena_add(c, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of(p);
    if (c->phase == PH_BODY) /* chunked trailers: ignored, the head is final */
        return 0;
    struct http_xchg *x = c->cur;
    int rc = arena_add(c, "", 1);
    if (rc)
        return rc;
    /* An obs-fold (a value continued on the next line) reaches us with its line break in
     * some llhttp versions: refused, as RFC 9112 5.2 allows, rather than passed on. */
    if (strpbrk(x->arena.data + x->value_off, "\r\n"))
        return fail_cb(c, 400);
    size_t i = x->ex.req.n_headers++;
    x->name_offs[i] = x->name_off;
    x->value_offs[i] = x->value_off;
    x->hstate = 0;
    return 0;
}

/* Turns arena offsets into the public pointers; the arena does not grow afterwards. */
static int finish_head(struct http_conn *c, llhttp_t *p)
{
    struct http_xchg *x = c->cur;
    struct http_request *r = &x->ex.req;
    size_t target_len = strlen(x->arena.data + x->url_off);
    size_t path_off = x->arena.len;
    /* Copy the target (with its NUL) through a small stack chunk: appending straight from
     * the arena could read freed memory when the append reallocates it. */
    for (size_t done = 0; done < target_len + 1;) {
        char chunk[512];
        size_t n = MIN(sizeof(chunk), target_len + 1 - done);
        memcpy(chunk, x->arena.data + x->url_off + done, n);
        if (buf_append(&x->arena, chunk, n) != 0)
            return fail_cb(c, 431);
        done += n;
    }
    char *base = x->arena.data;
    r->target = base + x->url_off;
    r->path = base + path_off;
    char *q = strchr(r->path, '?');
    r->query = NULL;
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        r->headers[i].name = base + x->name_offs[i];
        r->headers[i].value = base + x->value_offs[i];
    }
    const char *m = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
    snprintf(r->method, sizeof(r->method), "%s", m ? m : "");
    r->http_minor = llhttp_get_http_minor(p);
    x->is_head = llhttp_get_method(p) == HTTP_HEAD;
    x->ex.start_ns_ = uv_hrtime();
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of(p);
    if (!c->cur->arena.data) /* no target at all: llhttp refuses that, be safe anyway */
        return fail_cb(c, 400);
    int rc = finish_head(c, p);
    if (rc)
        return rc;
    if (llhttp_get_http_major(p) != 1)
        return fail_cb(c, 400);
    c->headers_done = 1;
    return HPE_PAUSED;
}

/* Request bytes held, not counting this connection's unparsed input: that input is what is
 * being parsed (this body's bytes, or the next pipelined request), already counted in
 * req_buffered, and must not be counted twice when it becomes body. */
static size_t held_without_input(const struct http_conn *c)
{
    return c->srv->req_buffered - c->pending_counted;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    struct http_server *srv = c->srv;
    if (held_without_input(c) + len > srv->req_buffer_max) {
        http__shed(srv, SHED_BODY_BUDGET);
        return fail_cb(c, 503);
    }
    if (buf_append(&c->cur->body, at, len) != 0)
        return fail_cb(c, 413);
    c->cur->counted += len;
    srv->req_buffered += len;
    return 0;
}

/* Chunk extensions carry nothing we use; only their size is limited. */
static int on_chunk_ext(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    (void)at;
    c->ext_bytes += len;
    return c->ext_bytes > HTTP_MAX_CHUNK_EXT ? fail_cb(c, 400) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct http_conn *c = conn_of(p);
    struct http_xchg *x = c->cur;
    if (!x->body.data)
        buf_append(&x->body, "", 0); /* body is "" rather than NULL */
    x->ex.req.body = x->body.data;
    x->ex.req.body_len = x->body.len;
    x->keep_alive = llhttp_should_keep_alive(p);
    c->msg_done = 1;
    return HPE_PAUSED;
}

void http__settings_init(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_url_complete = on_url_complete;
    s->on_header_field = on_header_field;
    s->on_header_field_complete = on_header_field_complete;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_chunk_extension_name = on_chunk_ext;
    s->on_chunk_extension_value = on_chunk_ext;
    s->on_message_complete = on_message_complete;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* The client may send its body now (it asked with Expect: 100-continue). */
static void send_continue(struct http_conn *c)
{
    const struct http_request *r = &c->cur->ex.req;
    const char *expect = http_request_header(r, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && r->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        http__send(c, cont, sizeof(cont) - 1);
    }
}

/* After the head: early 413 from Content-Length, 503 when the body cannot fit the server's
 * request budget, the head check, optional 100 Continue. Returns a status to fail with, or
 * 0 (the connection may then be waiting for the head handler, or closing after its answer). */
static int after_head(struct http_conn *c)
{
    llhttp_t *p = &c->parser;
    struct http_server *srv = c->srv;
    int chunked = (p->flags & F_CHUNKED) != 0;
    uint64_t clen = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    if (clen > HTTP_MAX_BODY)
        return 413;
    if ((chunked || clen) && held_without_input(c) + clen > srv->req_buffer_max) {
        http__shed(srv, SHED_BODY_BUDGET);
        return 503;
    }
    c->body_raw = 0;
    c->kick = 1;
    http__conn_arm_deadline(c);
    if ((chunked || clen) && srv->head_handler) {
        http__conn_set_phase(c, PH_CHECK);
        c->cur->head_pending = 1;
        c->cur->ex.conn_ = c;
        if (srv->head_handler(&c->cur->ex, srv->arg) != 0)
            return 0; /* decided later (http_head_continue), or answered already */
        c->cur->head_pending = 0;
        c->cur->ex.conn_ = NULL;
    }
    http__conn_set_phase(c, PH_BODY);
    send_continue(c);
    return 0;
}

void http_head_continue(struct http_exchange *ex)
{
    struct http_xchg *x = container_of(ex, struct http_xchg, ex);
    struct http_conn *c = ex->conn_;
    x->head_pending = 0;
    if (!c) { /* the connection closed meanwhile and left the exchange to us */
        http__xchg_free(x);
        return;
    }
    ex->conn_ = NULL;
    if (c->phase != PH_CHECK) /* closing already (deadline, stop): x goes with c */
        return;
    http__conn_set_phase(c, PH_BODY);
    send_continue(c);
    http__conn_resume(c);
}

static void dispatch(struct http_conn *c)
{
    struct http_xchg *x = c->cur;
    struct http_server *srv = c->srv;
    c->cur = NULL;
    c->inflight = x;
    x->ex.conn_ = c;
    http__conn_set_phase(c, PH_INFLIGHT);
    uv_timer_stop(&c->timer);
    srv->n_inflight++;
    srv->handler(&x->ex, srv->arg);
}

/* Counts consumed bytes against the head or raw-body cap; returns a status or 0. */
static int account(struct http_conn *c, size_t used)
{
    if (c->phase == PH_HEAD) {
        c->head_bytes += used;
        if (c->head_bytes > HTTP_MAX_HEAD)
            return 431;
    } else if (c->phase == PH_BODY) {
        c->body_raw += used;
        if (c->body_raw > HTTP_MAX_BODY_RAW)
            return 413;
    }
    return 0;
}

/* Feeds one slice to llhttp; returns how many bytes it consumed. May dispatch a request or
 * answer an error (then the connection is closing). */
size_t http__parse_input(struct http_conn *c, const char *data, size_t len)
{
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    size_t used = len;
    if (err == HPE_PAUSED) {
        used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        llhttp_resume(&c->parser);
    } else if (err == HPE_PAUSED_UPGRADE) {
        /* No protocol switch here: what follows is not HTTP, so stop after this request. */
        c->no_more = 1;
    }
    int status = account(c, used);
    if (!status && err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE)
        status = c->err_status ? c->err_status : 400;
    if (!status && c->headers_done) {
        c->headers_done = 0;
        status = after_head(c);
    }
    if (status) {
        http__fail(c, status);
        return len;
    }
    if (c->msg_done) {
        c->msg_done = 0;
        dispatch(c);
    }
    return used;
}
