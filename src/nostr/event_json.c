/* Serialization side of nostr/event.h: JSON string escaping exactly as JSON.stringify, the
 * NIP-01 commitment, id, sign, verify, and the full event JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/utf8.h"
#include "util/util.h"

/* The id commitment of a parsed event is never much longer than its JSON; our own events
 * (gift wraps of 64 KiB DMs) stay far below this. */
#define SERIALIZE_MAX (4 * NOSTR_EVENT_MAX_JSON)

static const char *short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

int json_append_string(struct buf *out, const char *s, size_t n)
{
    size_t start = 0, mark = out->len;
    if (utf8_valid(s, n) != 0)
        return -1;
    if (buf_append(out, "\"", 1) != 0)
        goto toobig;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = short_escape(c);
        char u[8];
        if (!esc && c >= 0x20)
            continue;
        if (buf_append(out, s + start, i - start) != 0)
            goto toobig;
        if (!esc) {
            /* JSON.stringify writes the other C0 controls as \u00xx, lowercase hex. */
            snprintf(u, sizeof(u), "\\u%04x", c);
            esc = u;
        }
        if (buf_append_str(out, esc) != 0)
            goto toobig;
        start = i + 1;
    }
    if (buf_append(out, s + start, n - start) != 0 || buf_append(out, "\"", 1) != 0)
        goto toobig;
    return 0;
toobig:
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    return BUF_TOOBIG;
}

static int append_tags(struct buf *out, const cJSON *tags)
{
    const cJSON *tag, *v;
    int rc = buf_append(out, "[", 1);
    cJSON_ArrayForEach(tag, tags)
    {
        if (rc == 0 && tag != tags->child)
            rc = buf_append(out, ",", 1);
        if (rc == 0)
            rc = buf_append(out, "[", 1);
        cJSON_ArrayForEach(v, tag)
        {
            if (rc == 0 && v != tag->child)
                rc = buf_append(out, ",", 1);
            if (rc == 0 && !cJSON_IsString(v))
                rc = -1;
            if (rc == 0)
                rc = json_append_string(out, v->valuestring, strlen(v->valuestring));
        }
        if (rc == 0)
            rc = buf_append(out, "]", 1);
    }
    return rc == 0 ? buf_append(out, "]", 1) : rc;
}

/* Content with a NUL byte is refused everywhere (see event.h): cJSON strings end at NUL, so
 * such an event could not be parsed back or printed by cJSON the same way. */
static int content_ok(const struct nostr_event *ev)
{
    return memchr(ev->content, 0, ev->content_len) == NULL ? 0 : -1;
}

int nostr_event_serialize(const struct nostr_event *ev, struct buf *out)
{
    char pk[65];
    if (content_ok(ev) != 0 || !cJSON_IsArray(ev->tags))
        return -1;
    hex_encode(ev->pubkey, 32, pk);
    if (buf_printf(out, "[0,\"%s\",%lld,%d,", pk, (long long)ev->created_at, ev->kind) != 0)
        return -1;
    if (append_tags(out, ev->tags) != 0 || buf_append(out, ",", 1) != 0)
        return -1;
    if (json_append_string(out, ev->content, ev->content_len) != 0)
        return -1;
    return buf_append(out, "]", 1);
}

int nostr_event_compute_id(const struct nostr_event *ev, uint8_t id[32])
{
    struct buf b;
    buf_init(&b, SERIALIZE_MAX);
    int rc = nostr_event_serialize(ev, &b);
    if (rc == 0)
        nostr_sha256(b.data, b.len, id);
    buf_free(&b);
    return rc == 0 ? 0 : -1;
}

int nostr_event_verify(const struct nostr_event *ev)
{
    uint8_t id[32];
    if (nostr_event_compute_id(ev, id) != 0 || memcmp(id, ev->id, 32) != 0)
        return -1;
    return nostr_schnorr_verify(ev->pubkey, ev->id, ev->sig);
}

int nostr_event_sign(struct nostr_event *ev, const struct nostr_keypair *kp)
{
    memcpy(ev->pubkey, kp->pubkey, 32);
    if (nostr_event_compute_id(ev, ev->id) != 0)
        return -1;
    return nostr_schnorr_sign(kp, ev->id, ev->sig);
}

static int append_hex_field(struct buf *b, const char *name, const uint8_t *p, size_t n)
{
    char hex[129];
    hex_encode(p, n, hex);
    return buf_printf(b, "\"%s\":\"%s\",", name, hex);
}

char *nostr_event_to_json(const struct nostr_event *ev, int with_sig)
{
    struct buf b;
    char sig[129];
    int rc;
    buf_init(&b, SERIALIZE_MAX);
    rc = content_ok(ev);
    if (rc == 0)
        rc = buf_append(&b, "{", 1);
    if (rc == 0)
        rc = append_hex_field(&b, "id", ev->id, 32);
    if (rc == 0)
        rc = append_hex_field(&b, "pubkey", ev->pubkey, 32);
    if (rc == 0)
        rc = buf_printf(&b, "\"created_at\":%lld,\"kind\":%d,\"tags\":", (long long)ev->created_at,
                        ev->kind);
    if (rc == 0)
        rc = append_tags(&b, ev->tags);
    if (rc == 0)
        rc = buf_append_str(&b, ",\"content\":");
    if (rc == 0)
        rc = json_append_string(&b, ev->content, ev->content_len);
    if (rc == 0 && with_sig) {
        hex_encode(ev->sig, 64, sig);
        rc = buf_printf(&b, ",\"sig\":\"%s\"", sig);
    }
    if (rc == 0)
        rc = buf_append(&b, "}", 1);
    if (rc != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

cJSON *nostr_event_to_cjson(const struct nostr_event *ev, int with_sig)
{
    char *s = nostr_event_to_json(ev, with_sig);
    cJSON *obj = s ? cJSON_Parse(s) : NULL;
    free(s);
    return obj;
}
