/* Connection limits (see server.h): connections per client address, room at the connection
 * cap, and the counts and rate-limited warnings of what was shed. Loop thread only. */
#include "http/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/util.h"

/* ---- per address ----------------------------------------------------------------- */

/* The peer as 16 bytes: IPv4 as an IPv4-mapped address, IPv6 cut to its /64 (one host
 * usually owns a whole /64, so counting single addresses would limit nothing). */
static int peer_key(const struct http_conn *c, uint8_t key[16])
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(key, 0, 16);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 0;
    }
    if (ss.ss_family != AF_INET6)
        return -1;
    const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(key, a, memcmp(a, v4mapped, 12) == 0 ? 16 : 8);
    return 0;
}

/* FNV-1a over the key, seeded per process so nobody can aim many addresses at one chain. */
static size_t bucket_of(const struct http_server *srv, const uint8_t key[16])
{
    uint64_t h = 0xcbf29ce484222325u ^ srv->addr_seed;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 0x100000001b3u;
    return (size_t)(h ^ (h >> 32)) % HTTP_ADDR_BUCKETS;
}

int http__addr_acquire(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    uint8_t key[16];
    if (peer_key(c, key) != 0)
        return 0; /* no peer address (socketpair, already reset): nothing to count */
    struct http_addr **slot = &srv->addrs[bucket_of(srv, key)];
    struct http_addr *a = *slot;
    while (a && memcmp(a->key, key, 16) != 0)
        a = a->next;
    if (a && a->n >= srv->max_per_addr)
        return -1;
    if (!a) {
        a = xcalloc(1, sizeof(*a));
        memcpy(a->key, key, 16);
        a->next = *slot;
        *slot = a;
    }
    a->n++;
    c->addr = a;
    return 0;
}

void http__addr_release(struct http_conn *c)
{
    struct http_addr *a = c->addr;
    c->addr = NULL;
    if (!a || --a->n > 0)
        return;
    struct http_addr **p = &c->srv->addrs[bucket_of(c->srv, a->key)];
    while (*p != a)
        p = &(*p)->next;
    *p = a->next;
    free(a);
}

void http__addrs_free(struct http_server *srv)
{
    for (size_t i = 0; i < HTTP_ADDR_BUCKETS; i++) {
        while (srv->addrs[i]) {
            struct http_addr *a = srv->addrs[i];
            srv->addrs[i] = a->next;
            free(a);
        }
    }
}

/* ---- the cap --------------------------------------------------------------------- */

int http__make_room(struct http_server *srv, struct http_conn *newc)
{
    struct list *q;
    LIST_FOREACH_REVERSE (q, &srv->conns) {
        struct http_conn *c = list_entry(q, struct http_conn, node);
        if (c == newc || c->phase == PH_INFLIGHT || c->phase == PH_CLOSED)
            continue;
        http__conn_close_now(c);
        http__shed(srv, SHED_EVICTED);
        return 0;
    }
    return -1;
}

void http__close_slow_readers(struct http_server *srv, struct http_conn *keep)
{
    size_t closed = 0;
    while (srv->resp_queued - closed > srv->resp_buffer_max) {
        struct http_conn *worst = NULL;
        LIST_FOREACH_ENTRY (struct http_conn, c, &srv->conns, node) {
            if (c != keep && c->phase != PH_CLOSED &&
                (!worst || c->tcp.write_queue_size > worst->tcp.write_queue_size))
                worst = c;
        }
        if (!worst || worst->tcp.write_queue_size == 0)
            return;
        /* Its queued writes are cancelled when the close runs, which gives the bytes back. */
        closed += worst->tcp.write_queue_size;
        http__conn_close_now(worst);
        http__shed(srv, SHED_SLOW_READER);
    }
}

/* ---- counting and warning -------------------------------------------------------- */

void http__shed(struct http_server *srv, enum http_shed what)
{
    static const char *const names[N_SHED] = {
        "evicted at the connection cap (HTTP_MAX_CONNECTIONS)",
        "refused over the per-address limit (HTTP_MAX_CONNECTIONS_PER_IP)",
        "refused at the cap with every connection busy",
        "accept errors (file descriptor limit?)",
        "bodies refused 503 (HTTP_REQUEST_BUFFER full)",
        "slow readers closed (HTTP_RESPONSE_BUFFER full)"};
    srv->shed[what]++;
    uint64_t now = uv_now(srv->loop);
    if (srv->shed_log_ms[what] && now - srv->shed_log_ms[what] < HTTP_SHED_LOG_MS)
        return;
    srv->shed_log_ms[what] = now;
    LOG_WARN("http: %" PRIu64 " %s since the last such warning (%" PRIu64 " in all); %zu "
             "connections open",
             srv->shed[what] - srv->shed_logged[what], names[what], srv->shed[what],
             srv->n_conns - srv->n_closing_now);
    srv->shed_logged[what] = srv->shed[what];
}

void http_server_stats(const struct http_server *srv, struct http_server_stats *out)
{
    out->connections = srv->n_conns - srv->n_closing_now;
    out->evicted = srv->shed[SHED_EVICTED];
    out->refused_per_addr = srv->shed[SHED_PER_ADDR];
    out->refused_full = srv->shed[SHED_FULL];
    out->accept_errors = srv->shed[SHED_ACCEPT_ERROR];
    out->body_overloaded = srv->shed[SHED_BODY_BUDGET];
    out->slow_readers = srv->shed[SHED_SLOW_READER];
    out->request_bytes = srv->req_buffered;
    out->response_bytes = srv->resp_queued;
}
