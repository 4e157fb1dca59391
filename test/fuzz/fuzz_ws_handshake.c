/* libFuzzer target: the WebSocket client's pure parsers. ws_handshake_parse must be
 * prefix-stable (a head found at length n is found, with the same length, in every longer
 * input and never in a shorter one) and never read past len; ws_url_parse must accept only
 * what it can print back into a Host header. */
// FUZZ_MAX_LEN: 20000
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size heap copies so ASan catches any read past len */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    int rc = ws_handshake_parse(buf, size, ACCEPT);
    if (rc > 0) {
        if ((size_t)rc > size || ws_handshake_parse(buf, (size_t)rc, ACCEPT) != rc)
            abort();
        if (rc > 4 && ws_handshake_parse(buf, (size_t)rc - 1, ACCEPT) > 0)
            abort();
    }
    free(buf);

    char *url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    struct ws_url u;
    if (ws_url_parse(url, &u) == 0) {
        if (!u.host[0] || !u.port[0] || u.path[0] != '/' || strpbrk(u.host_header, "\r\n /"))
            abort();
    }
    free(url);
    return 0;
}
