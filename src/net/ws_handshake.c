/* Pure parts of the WebSocket client: URL parsing, Accept computation, upgrade response
 * parsing (see ws.h). No I/O, no state: testable byte by byte. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#include "net/ws.h"
#include "util/util.h"

static int copy_span(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* host[:port] or [v6][:port] from the authority part. */
static int parse_authority(struct ws_url *u, const char *a, size_t n)
{
    const char *port = NULL;
    size_t hlen = n;
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return -1;
        if (copy_span(u->host, sizeof u->host, a + 1, (size_t)(close - a - 1)) != 0)
            return -1;
        if ((size_t)(close - a + 1) < n) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon) {
            hlen = (size_t)(colon - a);
            port = colon + 1;
        }
        if (copy_span(u->host, sizeof u->host, a, hlen) != 0)
            return -1;
    }
    if (u->host[0] == '\0' || strpbrk(u->host, " \t\r\n@/?#"))
        return -1;
    if (port) {
        size_t plen = n - (size_t)(port - a);
        if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen)
            return -1;
        memcpy(u->port, port, plen);
        u->port[plen] = '\0';
    } else {
        strcpy(u->port, u->tls ? "443" : "80");
    }
    return 0;
}

int ws_url_parse(const char *url, struct ws_url *u)
{
    const char *rest, *path;
    size_t alen;
    memset(u, 0, sizeof *u);
    if (strlen(url) > WS_MAX_URL)
        return WS_EURL;
    if (strncasecmp(url, "wss://", 6) == 0) {
        u->tls = 1;
        rest = url + 6;
    } else if (strncasecmp(url, "ws://", 5) == 0) {
        rest = url + 5;
    } else {
        return WS_EURL;
    }
    path = rest + strcspn(rest, "/?#");
    alen = (size_t)(path - rest);
    if (parse_authority(u, rest, alen) != 0)
        return WS_EURL;
    size_t plen = strcspn(path, "#");
    if (strpbrk(path, " \r\n\t"))
        return WS_EURL;
    if (plen == 0 || path[0] == '?')
        u->path[0] = '/';
    if (copy_span(u->path + (u->path[0] ? 1 : 0), sizeof u->path - 1, path, plen) != 0)
        return WS_EURL;
    int def = strcmp(u->port, u->tls ? "443" : "80") == 0;
    int v6 = strchr(u->host, ':') != NULL;
    snprintf(u->host_header, sizeof u->host_header, "%s%s%s%s%s", v6 ? "[" : "", u->host,
             v6 ? "]" : "", def ? "" : ":", def ? "" : u->port);
    return 0;
}

void ws_accept_for_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    mbedtls_sha1_context sha;
    unsigned char digest[20];
    size_t olen = 0;
    mbedtls_sha1_init(&sha);
    (void)mbedtls_sha1_starts_ret(&sha);
    (void)mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, strlen(key));
    (void)mbedtls_sha1_update_ret(&sha, (const unsigned char *)guid, sizeof guid - 1);
    (void)mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    (void)mbedtls_base64_encode((unsigned char *)out, 29, &olen, digest, sizeof digest);
    out[olen] = '\0';
}

/* Case-insensitive search for a comma-separated token in a header value. */
static int has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return 1;
    }
    return 0;
}

struct hs_seen {
    int upgrade, connection, accept;
};

static void check_header(struct hs_seen *seen, const char *line, size_t n, const char *accept)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return;
    size_t nl = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    if (nl == 7 && strncasecmp(line, "upgrade", 7) == 0)
        seen->upgrade = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
    else if (nl == 10 && strncasecmp(line, "connection", 10) == 0)
        seen->connection = has_token(v, vl, "upgrade");
    else if (nl == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0)
        seen->accept = vl == strlen(accept) && memcmp(v, accept, vl) == 0;
}

int ws_handshake_parse(const char *data, size_t len, const char *expect_accept)
{
    struct hs_seen seen = {0, 0, 0};
    const char *end = memmem(data, MIN(len, (size_t)WS_MAX_HANDSHAKE), "\r\n\r\n", 4);
    if (!end)
        return len >= WS_MAX_HANDSHAKE ? WS_EHANDSHAKE : 0;
    size_t head = (size_t)(end - data) + 4;
    const char *eol = memmem(data, head, "\r\n", 2);
    /* Status line: "HTTP/1.1 101 ..." (the reason phrase is free text). */
    if ((size_t)(eol - data) < 12 || strncmp(data, "HTTP/1.1 ", 9) != 0)
        return WS_EHANDSHAKE;
    if (strncmp(data + 9, "101", 3) != 0 || (eol - data > 12 && data[12] != ' '))
        return WS_ESTATUS;
    for (const char *line = eol + 2; line < end;) {
        const char *next = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        check_header(&seen, line, (size_t)(next - line), expect_accept);
        line = next + 2;
    }
    if (!seen.upgrade || !seen.connection || !seen.accept)
        return WS_EHANDSHAKE;
    return (int)head;
}
