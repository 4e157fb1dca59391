/* NIP-98 Authorization headers for our outgoing requests (see nostr/nip98.h). */
#include "nostr/nip98.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/hex.h"
#include "util/util.h"

static int sign_event(struct nostr_event *ev, const struct nostr_keypair *kp, const char *url,
                      const char *method, const char *body, size_t n, int64_t now)
{
    uint8_t hash[32];
    char hash_hex[65];
    nostr_sha256(body ? body : "", n, hash);
    hex_encode(hash, sizeof(hash), hash_hex);
    ev->kind = NIP98_KIND;
    ev->created_at = now;
    nostr_event_add_tag2(ev, "u", url);
    nostr_event_add_tag2(ev, "method", method);
    nostr_event_add_tag2(ev, "payload", hash_hex);
    return nostr_event_sign(ev, kp);
}

char *nip98_auth_header(const struct nostr_keypair *kp, const char *url, const char *method,
                        const char *body, size_t n, int64_t now)
{
    struct nostr_event ev;
    char *json = NULL, *b64 = NULL, *out = NULL;
    nostr_event_init(&ev);
    if (sign_event(&ev, kp, url, method, body, n, now) != 0)
        goto out;
    json = nostr_event_to_json(&ev, 1);
    if (!json)
        goto out;
    b64 = base64_encode((const uint8_t *)json, strlen(json), NULL);
    if (!b64)
        goto out;
    size_t len = strlen("Authorization: Nostr ") + strlen(b64) + 1;
    out = xmalloc(len);
    snprintf(out, len, "Authorization: Nostr %s", b64);
out:
    free(b64);
    free(json);
    nostr_event_free(&ev);
    return out;
}
