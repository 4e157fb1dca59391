/* libFuzzer target: raw bytes as one client connection to the real HTTP server code.
 * The server runs on a private uv loop; each input is written into one end of a
 * socketpair whose other end the server adopts (no TCP set-up, no ports), then the client
 * half-closes and the loop runs until the server has closed the connection. Responses are
 * read and discarded. The handler answers synchronously with a status picked from the
 * path, so body-less statuses and HEAD are covered too. */
// FUZZ_MAX_LEN: 140000
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static struct http_server *srv;

static void handler(struct http_exchange *ex, void *arg)
{
    static const int statuses[] = {200, 201, 204, 304, 404, 413, 500};
    const struct http_request *r = &ex->req;
    (void)arg;
    const char *h = http_request_header(r, "x-test");
    char out[256];
    int n = snprintf(out, sizeof(out), "%s %s %s %zu %zu %s", r->method, r->path,
                     r->query ? r->query : "-", r->n_headers, r->body_len, h ? h : "-");
    if (n < 0 || (size_t)n >= sizeof(out))
        n = (int)sizeof(out) - 1;
    int status = statuses[strlen(r->path) % (sizeof(statuses) / sizeof(statuses[0]))];
    http_respond(ex, status, "text/plain", r->query ? "X-Q: 1\r\n" : NULL, out, (size_t)n);
}

static void setup(void)
{
    log_set_level("error");
    uv_loop_init(&loop);
    struct http_server_config cfg = {
        .host = "127.0.0.1", .head_timeout_ms = 5000, .idle_timeout_ms = 5000};
    if (http_server_start(&srv, &loop, &cfg, handler, NULL) != 0)
        abort();
}

static void drain(int fd)
{
    char sink[65536];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        setup();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (http__server_adopt_fd(srv, sv[0]) != 0)
        abort();
    size_t off = 0;
    int shut = 0;
    while (srv->n_conns > 0) {
        if (off < size) {
            ssize_t w = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (errno != EAGAIN)
                off = size; /* the server closed: stop sending */
        }
        if (off >= size && !shut) {
            shutdown(sv[1], SHUT_WR);
            shut = 1;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        drain(sv[1]);
    }
    close(sv[1]);
    return 0;
}
