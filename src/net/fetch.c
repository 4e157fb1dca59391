#include "net/fetch.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "util/buf.h"
#include "util/debug.h"
#include "util/list.h"
#include "util/log.h"
#include "util/util.h"

#define CONNECT_TIMEOUT_MS 10000L

/* One socket curl asked us to watch. Linked in f->socks while its poll is live; once closing
 * it is unlinked and its memory belongs to libuv until on_sock_closed. */
struct fetch_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct fetch *f;
    struct list node; /* in f->socks */
};

struct fetch_req {
    struct fetch *f;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    struct buf resp;
    int too_big;
    int fail_err; /* set from the socket callback when the poll could not be armed */
    fetch_done_cb *cb;
    void *arg;
    struct list node; /* in f->reqs */
    char errbuf[CURL_ERROR_SIZE];
};

struct fetch {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct list socks; /* live polls, newest first */
    struct list reqs;  /* requests in flight, newest first */
    size_t n_active;
    int closing;
    int driving;        /* depth of drive(): curl must not be torn down under it */
    int finish_pending; /* fetch_close was called while driving */
    int has_failed;     /* some request has fail_err set */
    size_t pending_closes;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void finish_close(struct fetch *f);

/* ---- requests ------------------------------------------------------------------------- */

static void req_unlink(struct fetch_req *r)
{
    struct fetch *f = r->f;
    list_remove(&r->node);
    f->n_active--;
}

static void req_free(struct fetch_req *r)
{
    curl_slist_free_all(r->headers);
    free(r->body);
    buf_free(&r->resp);
    free(r);
}

/* Detaches r from curl and the list. Never called from inside a curl callback. */
static void req_release(struct fetch_req *r)
{
    req_unlink(r);
    curl_multi_remove_handle(r->f->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
}

static void req_finish(struct fetch_req *r, int err)
{
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    req_release(r);
    if (!r->resp.data)
        buf_append(&r->resp, "", 0);
    r->cb(err, code, r->resp.data, r->resp.len, r->arg);
    req_free(r);
}

static int map_result(struct fetch_req *r, CURLcode res)
{
    if (res == CURLE_OK)
        return 0;
    LOG_DEBUG("fetch: curl error %d: %s", (int)res,
              r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
    if (r->too_big || res == CURLE_FILESIZE_EXCEEDED)
        return FETCH_ETOOBIG;
    switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
        return UV_ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return UV_ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return UV_EAI_NONAME;
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return UV_ECONNRESET;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return UV_EPROTONOSUPPORT;
    default:
        return FETCH_EFAILED;
    }
}

static size_t on_curl_write(char *p, size_t size, size_t n, void *userp)
{
    struct fetch_req *r = userp;
    size_t len = size * n;
    if (buf_append(&r->resp, p, len) != 0) {
        r->too_big = 1;
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

/* ---- sockets -------------------------------------------------------------------------- */

static void maybe_free(struct fetch *f)
{
    if (!f->closing || f->multi || f->pending_closes)
        return;
    void (*cb)(void *) = f->close_cb;
    void *arg = f->close_arg;
    free(f);
    curl_global_cleanup();
    if (cb)
        cb(arg);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct fetch_sock *sk = container_of((uv_poll_t *)h, struct fetch_sock, poll);
    struct fetch *f = sk->f;
    free(sk);
    f->pending_closes--;
    maybe_free(f);
}

static struct fetch_sock *sock_find_fd(struct fetch *f, curl_socket_t fd)
{
    LIST_FOREACH_ENTRY (struct fetch_sock, sk, &f->socks, node) {
        if (sk->fd == fd)
            return sk;
    }
    return NULL;
}

/* Is p one of our live contexts? curl may hand back a pointer we already closed (a REMOVE
 * after the close-socket defence below), so it is compared, never dereferenced blindly. */
static struct fetch_sock *sock_live(struct fetch *f, void *p)
{
    LIST_FOREACH_ENTRY (struct fetch_sock, sk, &f->socks, node) {
        if (sk == p)
            return sk;
    }
    return NULL;
}

static void sock_close(struct fetch_sock *sk)
{
    struct fetch *f = sk->f;
    list_remove(&sk->node);
    uv_poll_stop(&sk->poll);
    f->pending_closes++;
    uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

static struct fetch_sock *sock_open(struct fetch *f, curl_socket_t fd)
{
    struct fetch_sock *sk = xcalloc(1, sizeof(*sk));
    int rc = uv_poll_init_socket(f->loop, &sk->poll, fd);
    if (rc != 0) {
        /* The handle was not initialised: plain free is right here. */
        LOG_ERROR("fetch: uv_poll_init_socket(%d): %s", (int)fd, uv_strerror(rc));
        free(sk);
        return NULL;
    }
    sk->fd = fd;
    sk->f = f;
    list_insert_head(&f->socks, &sk->node);
    return sk;
}

static void mark_failed(struct fetch *f, CURL *easy, int err)
{
    struct fetch_req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (r && !r->fail_err) {
        r->fail_err = err;
        f->has_failed = 1;
    }
}

static void on_poll(uv_poll_t *h, int status, int events);

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct fetch *f = userp;
    struct fetch_sock *sk = sock_live(f, socketp);
    if (what == CURL_POLL_REMOVE) {
        if (sk)
            sock_close(sk);
        curl_multi_assign(f->multi, s, NULL);
        return 0;
    }
    if (f->closing)
        return 0; /* curl_multi_cleanup may ask for cached connections: ignore (2.1 step 8) */
    if (!sk) {
        sk = sock_find_fd(f, s);
        if (!sk)
            sk = sock_open(f, s);
        if (!sk) {
            mark_failed(f, easy, FETCH_EFAILED);
            return 0; /* -1 would abort every transfer on the multi handle */
        }
        curl_multi_assign(f->multi, s, sk);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&sk->poll, events, on_poll);
    if (rc != 0) {
        LOG_ERROR("fetch: uv_poll_start(%d): %s", (int)s, uv_strerror(rc));
        mark_failed(f, easy, FETCH_EFAILED);
    }
    return 0;
}

/* Defence against a socket closed while libuv still watches it (2.1 pitfalls): the fd number
 * could be reused and epoll would then fail. Stop and close the poll first. */
static int on_curl_closesocket(void *clientp, curl_socket_t fd)
{
    struct fetch *f = clientp;
    struct fetch_sock *sk = sock_find_fd(f, fd);
    if (sk) {
        sock_close(sk);
        if (f->multi)
            curl_multi_assign(f->multi, fd, NULL);
    }
    return close(fd);
}

/* ---- driving curl --------------------------------------------------------------------- */

static void fail_all(struct fetch *f, int err)
{
    while (!list_empty(&f->reqs))
        req_finish(list_entry(f->reqs.next, struct fetch_req, node), err);
}

static void fail_marked(struct fetch *f)
{
    while (f->has_failed) {
        f->has_failed = 0;
        LIST_FOREACH_ENTRY (struct fetch_req, r, &f->reqs, node) {
            if (r->fail_err) {
                req_finish(r, r->fail_err);
                f->has_failed = 1; /* the list changed: scan again */
                break;
            }
        }
    }
}

static void drain(struct fetch *f)
{
    CURLMsg *msg;
    int left;
    while (f->multi && (msg = curl_multi_info_read(f->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* Copy before remove_handle invalidates msg. */
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        struct fetch_req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        req_finish(r, map_result(r, res));
    }
}

static void drive(struct fetch *f, curl_socket_t s, int flags)
{
    int running = 0;
    f->driving++;
    CURLMcode mc = curl_multi_socket_action(f->multi, s, flags, &running);
    if (mc != CURLM_OK) {
        /* The state of every transfer is uncertain now (curl_multi_socket_action.md). */
        LOG_ERROR("fetch: curl_multi_socket_action: %s", curl_multi_strerror(mc));
        fail_all(f, FETCH_EFAILED);
    }
    drain(f);
    fail_marked(f);
    f->driving--;
    if (!f->driving && f->finish_pending)
        finish_close(f);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct fetch_sock *sk = container_of(h, struct fetch_sock, poll);
    int flags = 0;
    if (status < 0)
        flags |= CURL_CSELECT_ERR; /* libuv reports POLLERR as UV_EBADF */
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    drive(sk->f, sk->fd, flags);
}

static void on_timer(uv_timer_t *t)
{
    struct fetch *f = container_of(t, struct fetch, timer);
    drive(f, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct fetch *f = userp;
    (void)multi;
    /* Never socket_action from here (recursion); the uv timer fires on the next iteration. */
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else if (!f->closing)
        uv_timer_start(&f->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- public --------------------------------------------------------------------------- */

int fetch_new(struct fetch **out, uv_loop_t *loop)
{
    ASSERT_LOOP_THREAD();
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return FETCH_EFAILED;
    struct fetch *f = xcalloc(1, sizeof(*f));
    f->loop = loop;
    list_init(&f->socks);
    list_init(&f->reqs);
    f->multi = curl_multi_init();
    if (!f->multi) {
        free(f);
        curl_global_cleanup();
        return FETCH_EFAILED;
    }
    uv_timer_init(loop, &f->timer);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    *out = f;
    return 0;
}

static int set_headers(struct fetch_req *r, const char *const *headers)
{
    size_t n = 0;
    for (; headers && headers[n]; n++) {
        if (n == FETCH_MAX_HEADERS)
            return UV_EINVAL;
        r->headers = curl_slist_append(r->headers, headers[n]);
        if (!r->headers)
            return FETCH_EFAILED;
    }
    /* No "Expect: 100-continue" round trip for request bodies. */
    struct curl_slist *h = curl_slist_append(r->headers, "Expect:");
    if (!h)
        return FETCH_EFAILED;
    r->headers = h;
    return 0;
}

static int has_body(const struct fetch_opts *o, const char *method)
{
    return o->body_len > 0 || !strcasecmp(method, "POST") || !strcasecmp(method, "PUT") ||
           !strcasecmp(method, "PATCH");
}

static void set_method_body(struct fetch_req *r, const struct fetch_opts *o)
{
    const char *method = o->method ? o->method : "GET";
    if (has_body(o, method)) {
        r->body = xmalloc(o->body_len + 1);
        if (o->body_len)
            memcpy(r->body, o->body, o->body_len);
        r->body[o->body_len] = '\0';
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
        if (strcasecmp(method, "POST") != 0)
            curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcasecmp(method, "GET") != 0) {
        curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
    }
}

static void set_options(struct fetch_req *r, const struct fetch_opts *o)
{
    long timeout = o->timeout_ms > 0 ? o->timeout_ms : FETCH_DEFAULT_TIMEOUT_MS;
    size_t cap = o->max_response ? o->max_response : FETCH_DEFAULT_MAX_RESPONSE;
    CURL *e = r->easy;
    buf_init(&r->resp, cap);
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, MIN(timeout, CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_closesocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, r->f);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "caravel");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    set_method_body(r, o);
}

int fetch_start(struct fetch *f, const struct fetch_opts *opts, fetch_done_cb *cb, void *arg,
                struct fetch_req **out_req)
{
    ASSERT_LOOP_THREAD();
    if (f->closing)
        return FETCH_ECLOSED;
    if (!opts || !opts->url || !cb)
        return UV_EINVAL;
    struct fetch_req *r = xcalloc(1, sizeof(*r));
    int rc = FETCH_EFAILED;
    r->f = f;
    r->cb = cb;
    r->arg = arg;
    r->easy = curl_easy_init();
    if (!r->easy)
        goto fail;
    if ((rc = set_headers(r, opts->headers)) != 0)
        goto fail;
    set_options(r, opts);
    if (curl_multi_add_handle(f->multi, r->easy) != CURLM_OK) {
        rc = FETCH_EFAILED;
        goto fail;
    }
    list_insert_head(&f->reqs, &r->node);
    f->n_active++;
    if (out_req)
        *out_req = r;
    return 0;
fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    req_free(r);
    return rc;
}

void fetch_cancel(struct fetch_req *r)
{
    ASSERT_LOOP_THREAD();
    req_release(r);
    req_free(r);
}

size_t fetch_active(const struct fetch *f)
{
    ASSERT_LOOP_THREAD();
    return f->n_active;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct fetch *f = container_of((uv_timer_t *)h, struct fetch, timer);
    f->pending_closes--;
    maybe_free(f);
}

static void finish_close(struct fetch *f)
{
    f->finish_pending = 0;
    /* May still call the socket callback (REMOVE) and close cached connections. */
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    while (!list_empty(&f->socks))
        sock_close(list_entry(f->socks.next, struct fetch_sock, node));
    uv_timer_stop(&f->timer);
    f->pending_closes++;
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

void fetch_close(struct fetch *f, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    if (f->closing)
        return;
    f->closing = 1;
    f->close_cb = cb;
    f->close_arg = arg;
    fail_all(f, UV_ECANCELED);
    if (f->driving)
        f->finish_pending = 1;
    else
        finish_close(f);
}
