/* fetch (curl multi on libuv) against a tiny HTTP/1.1 server running in a thread of the test
 * process: plain blocking sockets, one thread per connection, "Connection: close". */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "net/fetch.h"
#include "util/util.h"

/* ---- the test server ------------------------------------------------------------------ */

struct tsrv {
    int lfd;
    int port;
    pthread_t th;
    atomic_int active;     /* connections being answered now */
    atomic_int max_active; /* high-water mark */
    atomic_int n_requests;
};

static struct tsrv srv;

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

/* Reads one request; returns its total length or -1. head_end is the offset of the body. */
static ssize_t read_request(int fd, char *buf, size_t cap, size_t *head_end)
{
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len == cap - 1)
            return -1;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *head_end = (size_t)(end - buf) + 4;
    size_t clen = 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < end)
        clen = strtoul(cl + 17, NULL, 10);
    while (len < *head_end + clen && len < cap - 1) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

static void respond(int fd, int status, const char *body, size_t n)
{
    char head[256];
    int h =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status, n);
    write_all(fd, head, (size_t)h);
    write_all(fd, body, n);
}

/* Echo: "METHOD|X-Test header value|body". */
static void route_echo(int fd, const char *req, size_t head_end, size_t len)
{
    char out[70000];
    char method[16] = "";
    char xtest[256] = "";
    sscanf(req, "%15s", method);
    const char *x = strcasestr(req, "\r\nX-Test: ");
    if (x && (size_t)(x - req) < head_end)
        sscanf(x + 10, "%255[^\r]", xtest);
    int n = snprintf(out, sizeof(out), "%s|%s|", method, xtest);
    memcpy(out + n, req + head_end, len - head_end);
    respond(fd, 200, out, (size_t)n + (len - head_end));
}

static void route_big(int fd, size_t n, int chunked)
{
    char *body = malloc(n);
    memset(body, 'a', n);
    if (!chunked) {
        respond(fd, 200, body, n);
    } else {
        const char *h =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        char size[32];
        write_all(fd, h, strlen(h));
        int s = snprintf(size, sizeof(size), "%zx\r\n", n);
        write_all(fd, size, (size_t)s);
        write_all(fd, body, n);
        write_all(fd, "\r\n0\r\n\r\n", 7);
    }
    free(body);
}

/* Returns 1 when the connection stays open for another request (keep-alive). */
static int route(int fd, char *req, size_t head_end, size_t len)
{
    char path[256] = "";
    sscanf(req, "%*s %255s", path);
    if (!strcmp(path, "/ka")) {
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nka";
        write_all(fd, r, strlen(r));
        return 1;
    } else if (!strcmp(path, "/echo")) {
        route_echo(fd, req, head_end, len);
    } else if (!strncmp(path, "/status/", 8)) {
        int st = atoi(path + 8);
        respond(fd, st, "status", 6);
    } else if (!strncmp(path, "/big/", 5)) {
        route_big(fd, strtoul(path + 5, NULL, 10), 0);
    } else if (!strncmp(path, "/chunked/", 9)) {
        route_big(fd, strtoul(path + 9, NULL, 10), 1);
    } else if (!strcmp(path, "/hang")) {
        sleep(30); /* never answers within any test's timeout */
    } else if (!strcmp(path, "/cut")) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
        write_all(fd, h, strlen(h));
    } else if (!strcmp(path, "/nothing")) {
        /* close without a byte */
    } else if (!strncmp(path, "/slow/", 6)) {
        usleep((useconds_t)atoi(path + 6) * 1000);
        respond(fd, 200, "ok", 2);
    } else {
        respond(fd, 404, "no", 2);
    }
    return 0;
}

static void *conn_main(void *p)
{
    int fd = (int)(intptr_t)p;
    static __thread char req[70000];
    size_t head_end = 0;
    int now = atomic_fetch_add(&srv.active, 1) + 1;
    int max = atomic_load(&srv.max_active);
    while (now > max && !atomic_compare_exchange_weak(&srv.max_active, &max, now))
        ;
    for (;;) {
        ssize_t len = read_request(fd, req, sizeof(req), &head_end);
        if (len < 0)
            break;
        atomic_fetch_add(&srv.n_requests, 1);
        if (!route(fd, req, head_end, (size_t)len))
            break;
    }
    atomic_fetch_sub(&srv.active, 1);
    close(fd);
    return NULL;
}

static void *accept_main(void *p)
{
    (void)p;
    for (;;) {
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a,
                                  1024 * 1024); /* room for the 70 KB request and reply buffers */
        if (pthread_create(&th, &a, conn_main, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&a);
    }
}

/* Binds 127.0.0.1:0; listens unless refuse (then the port is closed: connection refused). */
static int bind_port(int do_listen, int *fd_out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &al));
    if (do_listen)
        ASSERT_OK(listen(fd, 512));
    *fd_out = fd;
    return ntohs(a.sin_port);
}

static void srv_start(void)
{
    srv.port = bind_port(1, &srv.lfd);
    ASSERT_OK(pthread_create(&srv.th, NULL, accept_main, NULL));
}

/* ---- client side helpers -------------------------------------------------------------- */

struct result {
    int done;
    int err;
    long status;
    size_t len;
    char body[4096];
};

static void on_done(int err, long status, const char *body, size_t len, void *arg)
{
    struct result *r = arg;
    ASSERT_NOT_NULL(body);
    ASSERT_EQ(body[len], '\0');
    r->done++;
    r->err = err;
    r->status = status;
    r->len = len;
    memcpy(r->body, body, MIN(len, sizeof(r->body) - 1));
    r->body[MIN(len, sizeof(r->body) - 1)] = '\0';
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

static void url(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", srv.port, path);
}

static void start(struct fetch *f, const char *path, struct result *r, size_t cap, long tmo)
{
    char u[128];
    url(u, sizeof(u), path);
    struct fetch_opts o = {.url = u, .max_response = cap, .timeout_ms = tmo};
    ASSERT_OK(fetch_start(f, &o, on_done, r, NULL));
}

static void close_and_check(uv_loop_t *loop, struct fetch *f)
{
    int closed = 0;
    fetch_close(f, on_closed, &closed);
    uv_run(loop, UV_RUN_DEFAULT);
    ASSERT_EQ(closed, 1);
    ASSERT_OK(uv_loop_close(loop));
}

/* ---- tests ---------------------------------------------------------------------------- */

TEST(fetch_get_post_put_patch_with_headers_and_body)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result get = {0}, post = {0}, put = {0}, patch = {0};
    char u[128];
    static const char body[] = "{\"a\":1}\0tail"; /* binary-safe: embedded NUL */
    const char *hdrs[] = {"X-Test: hello there", "Content-Type: application/json", NULL};
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    url(u, sizeof(u), "/echo");
    struct fetch_opts o = {.url = u, .headers = hdrs};
    ASSERT_OK(fetch_start(f, &o, on_done, &get, NULL));
    o.method = "POST", o.body = body, o.body_len = sizeof(body) - 1;
    ASSERT_OK(fetch_start(f, &o, on_done, &post, NULL));
    o.method = "PUT";
    ASSERT_OK(fetch_start(f, &o, on_done, &put, NULL));
    o.method = "PATCH", o.body = "{}", o.body_len = 2;
    ASSERT_OK(fetch_start(f, &o, on_done, &patch, NULL));
    ASSERT_EQ(fetch_active(f), 4);
    uv_run(&loop, UV_RUN_DEFAULT); /* nothing keeps the loop alive once all are done */
    ASSERT_EQ(fetch_active(f), 0);
    ASSERT_EQ(get.done, 1);
    ASSERT_OK(get.err);
    ASSERT_EQ(get.status, 200);
    ASSERT_STR_EQ(get.body, "GET|hello there|");
    ASSERT_EQ(post.status, 200);
    ASSERT_EQ(post.len, strlen("POST|hello there|") + sizeof(body) - 1);
    ASSERT_MEM_EQ(post.body, "POST|hello there|{\"a\":1}\0tail", post.len);
    ASSERT_MEM_EQ(put.body, "PUT|hello there|{\"a\":1}\0tail", put.len);
    ASSERT_STR_EQ(patch.body, "PATCH|hello there|{}");
    close_and_check(&loop, f);
}

TEST(fetch_error_statuses_are_responses)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result r404 = {0}, r500 = {0}, r409 = {0};
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    start(f, "/status/404", &r404, 0, 0);
    start(f, "/status/500", &r500, 0, 0);
    start(f, "/status/409", &r409, 0, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r404.done, 1);
    ASSERT_OK(r404.err);
    ASSERT_EQ(r404.status, 404);
    ASSERT_STR_EQ(r404.body, "status");
    ASSERT_OK(r500.err);
    ASSERT_EQ(r500.status, 500);
    ASSERT_EQ(r409.status, 409);
    close_and_check(&loop, f);
}

TEST(fetch_response_over_cap_is_an_error)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result at_cap = {0}, over = {0}, chunked_over = {0}, chunked_ok = {0};
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    start(f, "/big/1000", &at_cap, 1000, 0);
    start(f, "/big/1001", &over, 1000, 0);              /* refused from Content-Length */
    start(f, "/chunked/50000", &chunked_over, 1000, 0); /* refused while streaming */
    start(f, "/chunked/1000", &chunked_ok, 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(at_cap.err);
    ASSERT_EQ(at_cap.len, 1000);
    ASSERT_EQ(over.done, 1);
    ASSERT_EQ(over.err, FETCH_ETOOBIG);
    ASSERT_EQ(chunked_over.err, FETCH_ETOOBIG);
    ASSERT_OK(chunked_ok.err);
    ASSERT_EQ(chunked_ok.len, 1000);
    ASSERT_STR_EQ(err_str(FETCH_ETOOBIG), "response too large");
    close_and_check(&loop, f);
}

TEST(fetch_times_out_when_server_never_answers)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result r = {0};
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    uint64_t t0 = uv_hrtime();
    start(f, "/hang", &r, 0, 300);
    uv_run(&loop, UV_RUN_DEFAULT); /* the timeout's DONE must be drained with 0 running */
    ASSERT_EQ(r.done, 1);
    ASSERT_EQ(r.err, UV_ETIMEDOUT);
    ASSERT_EQ(r.status, 0);
    ASSERT_GE((uv_hrtime() - t0) / 1000000, 250);
    close_and_check(&loop, f);
}

TEST(fetch_server_closing_mid_response)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result cut = {0}, nothing = {0};
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    start(f, "/cut", &cut, 0, 5000);
    start(f, "/nothing", &nothing, 0, 5000);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(cut.done, 1);
    ASSERT_EQ(cut.err, UV_ECONNRESET);
    ASSERT_EQ(nothing.done, 1);
    ASSERT_EQ(nothing.err, UV_ECONNRESET);
    close_and_check(&loop, f);
}

TEST(fetch_connection_refused_and_bad_scheme)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result refused = {0}, ftp = {0};
    int fd;
    int port = bind_port(0, &fd); /* bound, not listening: connect is refused */
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", port);
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    struct fetch_opts o = {.url = u, .timeout_ms = 3000};
    ASSERT_OK(fetch_start(f, &o, on_done, &refused, NULL));
    o.url = "ftp://127.0.0.1/x";
    ASSERT_OK(fetch_start(f, &o, on_done, &ftp, NULL));
    o.url = NULL;
    ASSERT_EQ(fetch_start(f, &o, on_done, &ftp, NULL), UV_EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(refused.done, 1);
    ASSERT_EQ(refused.err, UV_ECONNREFUSED);
    ASSERT_EQ(ftp.done, 1);
    ASSERT_EQ(ftp.err, UV_EPROTONOSUPPORT);
    close(fd);
    close_and_check(&loop, f);
}

TEST(fetch_many_concurrent_requests)
{
    enum { N = 200 };
    uv_loop_t loop;
    struct fetch *f = NULL;
    static struct result r[N];
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    for (int i = 0; i < N; i++)
        start(f, i % 2 ? "/slow/30" : "/echo", &r[i], 0, 8000);
    ASSERT_EQ(fetch_active(f), N);
    uint64_t t0 = uv_hrtime();
    uv_run(&loop, UV_RUN_DEFAULT);
    fprintf(stderr, "# fetch: %d requests in %llu ms, server saw %d at once\n", N,
            (unsigned long long)((uv_hrtime() - t0) / 1000000), atomic_load(&srv.max_active));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(r[i].done, 1);
        ASSERT_OK(r[i].err);
        ASSERT_EQ(r[i].status, 200);
        ASSERT_STR_EQ(r[i].body, i % 2 ? "ok" : "GET||");
    }
    ASSERT_EQ(atomic_load(&srv.n_requests), N);
    ASSERT_GT(atomic_load(&srv.max_active), 1); /* really concurrent */
    close_and_check(&loop, f);
}

struct cancel_ctx {
    struct fetch_req *req;
    uv_timer_t timer;
};

static void on_cancel_timer(uv_timer_t *t)
{
    struct cancel_ctx *c = container_of(t, struct cancel_ctx, timer);
    fetch_cancel(c->req);
    uv_close((uv_handle_t *)t, NULL);
}

TEST(fetch_cancel_suppresses_callback)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct fetch_req *now = NULL;
    struct cancel_ctx later = {0};
    struct result r_now = {0}, r_later = {0}, r_ok = {0};
    char u[128];
    srv_start();
    url(u, sizeof(u), "/hang");
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    struct fetch_opts o = {.url = u, .timeout_ms = 5000};
    ASSERT_OK(fetch_start(f, &o, on_done, &r_now, &now));
    ASSERT_OK(fetch_start(f, &o, on_done, &r_later, &later.req));
    start(f, "/echo", &r_ok, 0, 0);
    fetch_cancel(now); /* before it even connected */
    uv_timer_init(&loop, &later.timer);
    uv_timer_start(&later.timer, on_cancel_timer, 100, 0); /* while the server holds it */
    uint64_t t0 = uv_hrtime();
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_LT((uv_hrtime() - t0) / 1000000, 4000); /* did not wait for the 5 s timeout */
    ASSERT_EQ(r_now.done, 0);
    ASSERT_EQ(r_later.done, 0);
    ASSERT_EQ(r_ok.done, 1);
    ASSERT_EQ(fetch_active(f), 0);
    close_and_check(&loop, f);
}

TEST(fetch_close_cancels_requests_in_flight)
{
    uv_loop_t loop;
    struct fetch *f = NULL;
    struct result a = {0}, b = {0};
    int closed = 0;
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    start(f, "/hang", &a, 0, 5000);
    start(f, "/hang", &b, 0, 5000);
    uv_run(&loop, UV_RUN_NOWAIT); /* get them connecting */
    uv_run(&loop, UV_RUN_NOWAIT);
    fetch_close(f, on_closed, &closed);
    ASSERT_EQ(a.done, 1);
    ASSERT_EQ(a.err, UV_ECANCELED);
    ASSERT_EQ(b.err, UV_ECANCELED);
    struct fetch_opts o = {.url = "http://127.0.0.1:1/"};
    ASSERT_EQ(fetch_start(f, &o, on_done, &a, NULL), FETCH_ECLOSED);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(closed, 1);
    ASSERT_OK(uv_loop_close(&loop));
}

struct close_in_cb {
    struct fetch *f;
    int closed;
    int calls;
    int cancelled;
};

static void on_done_close(int err, long status, const char *body, size_t len, void *arg)
{
    struct close_in_cb *c = arg;
    (void)status, (void)body, (void)len;
    c->calls++;
    if (err == UV_ECANCELED)
        c->cancelled++;
    else
        fetch_close(c->f, on_closed, &c->closed); /* the other request gets UV_ECANCELED */
}

TEST(fetch_close_from_inside_a_callback)
{
    uv_loop_t loop;
    struct close_in_cb c = {0};
    char u1[128], u2[128];
    srv_start();
    url(u1, sizeof(u1), "/echo");
    url(u2, sizeof(u2), "/hang");
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&c.f, &loop));
    struct fetch_opts o = {.url = u1, .timeout_ms = 5000};
    ASSERT_OK(fetch_start(c.f, &o, on_done_close, &c, NULL));
    o.url = u2;
    ASSERT_OK(fetch_start(c.f, &o, on_done_close, &c, NULL));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(c.calls, 2);
    ASSERT_EQ(c.cancelled, 1);
    ASSERT_EQ(c.closed, 1);
    ASSERT_OK(uv_loop_close(&loop));
}

TEST(fetch_keepalive_reuse_after_idle)
{
    /* Sequential requests on one client: curl parks connections and asks for their sockets
     * again (REMOVE does not mean closed); every request must still complete. */
    uv_loop_t loop;
    struct fetch *f = NULL;
    srv_start();
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(fetch_new(&f, &loop));
    for (int i = 0; i < 20; i++) {
        struct result r = {0};
        start(f, i % 4 == 3 ? "/status/500" : "/ka", &r, 0, 3000);
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_EQ(r.done, 1);
        ASSERT_OK(r.err);
        ASSERT_EQ(r.status, i % 4 == 3 ? 500 : 200);
    }
    ASSERT_EQ(atomic_load(&srv.n_requests), 20);
    close_and_check(&loop, f);
}
