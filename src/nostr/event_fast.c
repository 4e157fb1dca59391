/* See nostr/event_fast.h: the allocation-free parse of plain events, declining the rest. */
#include "nostr/event_fast.h"

#include <string.h>

#include "nostr/hex.h"
#include "nostr/keys.h"

#define MAX_SAFE_INT 9007199254740991LL /* as nostr_event_parse: 2^53-1 */

/* Bit of each NIP-01 key in the "seen" mask. */
enum { K_ID, K_PUBKEY, K_CREATED_AT, K_KIND, K_TAGS, K_CONTENT, K_SIG, K_COUNT };
static const char *const key_names[K_COUNT] = {"id",   "pubkey",  "created_at", "kind",
                                               "tags", "content", "sig"};

struct cur {
    const char *p, *end;
};

/* The spans the id commitment is assembled from (slices of the input). */
struct spans {
    struct nostr_fast_str pubkey, created_at, kind, tags, content;
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct cur *c)
{
    while (c->p < c->end && is_ws(*c->p))
        c->p++;
}

/* Skips whitespace, then consumes ch: 0, or -1 when the next character is another. */
static int eat(struct cur *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return -1;
    c->p++;
    return 0;
}

/* A string of printable ASCII without escapes; s gets its bytes without the quotes. */
static int string(struct cur *c, struct nostr_fast_str *s)
{
    if (eat(c, '"') != 0)
        return -1;
    const char *start = c->p;
    for (; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            s->p = start;
            s->n = (size_t)(c->p - start);
            c->p++;
            return 0;
        }
        if (ch < 0x20 || ch > 0x7e || ch == '\\')
            return -1;
    }
    return -1;
}

/* n bytes as 2n lowercase hex digits (the only form nostr_event_parse accepts) and the closing
 * quote: what string() would accept as a 2n-character string of such digits, in one pass. */
static int hex_field(struct cur *c, uint8_t *out, size_t n, struct nostr_fast_str *span)
{
    if (eat(c, '"') != 0 || (size_t)(c->end - c->p) < 2 * n + 1 || c->p[2 * n] != '"' ||
        hex_decode_lower(c->p, 2 * n, out, n) != 0)
        return -1;
    if (span) {
        span->p = c->p;
        span->n = 2 * n;
    }
    c->p += 2 * n + 1;
    return 0;
}

/* A plain decimal integer up to max: digits only, no leading zero, no sign, fraction or
 * exponent (the character after it is checked by the caller: ',' '}' or whitespace). */
static int uint_field(struct cur *c, int64_t max, int64_t *out, struct nostr_fast_str *span)
{
    int64_t v = 0;
    skip_ws(c);
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (c->p - start == 16 || (c->p > start && *start == '0'))
            return -1; /* > 2^53 for sure, or a leading zero */
        v = v * 10 + (*c->p - '0');
        c->p++;
    }
    if (c->p == start || v > max)
        return -1;
    *out = v;
    span->p = start;
    span->n = (size_t)(c->p - start);
    return 0;
}

/* Consumes ',' (1: another item follows) or the closing character (0), else -1. */
static int next_or_close(struct cur *c, char close)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return 1;
    }
    return eat(c, close) == 0 ? 0 : -1;
}

/* 1 when the next non-blank character is ch (consumed), else 0. */
static int peek_close(struct cur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int tag(struct cur *c, struct nostr_fast_tag *t)
{
    struct nostr_fast_str s;
    int more = 1;
    t->n_values = 0;
    if (eat(c, '[') != 0)
        return -1;
    if (peek_close(c, ']'))
        return 0;
    while (more == 1) {
        if (string(c, &s) != 0)
            return -1;
        if (t->n_values == 0)
            t->name = s;
        else if (t->n_values == 1)
            t->value = s;
        t->n_values++;
        more = next_or_close(c, ']');
    }
    return more;
}

static int tags(struct cur *c, struct nostr_fast_event *ev, struct nostr_fast_str *span)
{
    int more = 1;
    skip_ws(c);
    span->p = c->p;
    if (eat(c, '[') != 0)
        return -1;
    if (!peek_close(c, ']')) {
        while (more == 1) {
            if (ev->n_tags == NOSTR_FAST_MAX_TAGS || tag(c, &ev->tags[ev->n_tags]) != 0)
                return -1;
            ev->n_tags++;
            more = next_or_close(c, ']');
        }
        if (more != 0)
            return -1;
    }
    span->n = (size_t)(c->p - span->p);
    return 0;
}

static int key_index(const struct nostr_fast_str *k)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strlen(key_names[i]) == k->n && memcmp(key_names[i], k->p, k->n) == 0)
            return i;
    return -1;
}

static int value(struct cur *c, int key, struct nostr_fast_event *ev, struct spans *sp)
{
    int64_t kind = 0;
    switch (key) {
    case K_ID:
        return hex_field(c, ev->id, 32, NULL);
    case K_PUBKEY:
        return hex_field(c, ev->pubkey, 32, &sp->pubkey);
    case K_SIG:
        return hex_field(c, ev->sig, 64, NULL);
    case K_CREATED_AT:
        return uint_field(c, MAX_SAFE_INT, &ev->created_at, &sp->created_at);
    case K_KIND:
        if (uint_field(c, 65535, &kind, &sp->kind) != 0)
            return -1;
        ev->kind = (int)kind;
        return 0;
    case K_TAGS:
        return tags(c, ev, &sp->tags);
    default:
        if (string(c, &ev->content) != 0)
            return -1;
        sp->content = ev->content;
        return 0;
    }
}

struct out {
    char *p;
    size_t n, cap;
};

static int put(struct out *o, const char *s, size_t n)
{
    if (n > o->cap - o->n)
        return -1;
    memcpy(o->p + o->n, s, n);
    o->n += n;
    return 0;
}

/* The tags' text without the whitespace between tokens (strings hold no quote or escape, so
 * a quote always opens or closes one). */
static int put_compact(struct out *o, const struct nostr_fast_str *s)
{
    int in_str = 0;
    for (size_t i = 0; i < s->n; i++) {
        char ch = s->p[i];
        if (ch == '"')
            in_str = !in_str;
        else if (!in_str && is_ws(ch))
            continue;
        if (o->n == o->cap)
            return -1;
        o->p[o->n++] = ch;
    }
    return 0;
}

/* sha256 of the NIP-01 commitment [0,"pubkey",created_at,kind,tags,"content"]: every piece
 * is already in its canonical form in the input. */
static int compute_id(const struct spans *sp, uint8_t id[32])
{
    char buf[NOSTR_FAST_MAX_JSON + 64];
    struct out o = {buf, 0, sizeof(buf)};
    int rc = put(&o, "[0,\"", 4);
    rc = rc ? rc : put(&o, sp->pubkey.p, sp->pubkey.n);
    rc = rc ? rc : put(&o, "\",", 2);
    rc = rc ? rc : put(&o, sp->created_at.p, sp->created_at.n);
    rc = rc ? rc : put(&o, ",", 1);
    rc = rc ? rc : put(&o, sp->kind.p, sp->kind.n);
    rc = rc ? rc : put(&o, ",", 1);
    rc = rc ? rc : put_compact(&o, &sp->tags);
    rc = rc ? rc : put(&o, ",\"", 2);
    rc = rc ? rc : put(&o, sp->content.p, sp->content.n);
    rc = rc ? rc : put(&o, "\"]", 2);
    if (rc == 0)
        nostr_sha256(buf, o.n, id);
    return rc;
}

int nostr_event_parse_fast(const char *json, size_t len, struct nostr_fast_event *ev)
{
    struct cur c = {json, json + len};
    struct spans sp;
    unsigned seen = 0;
    int more = 1;
    if (len > NOSTR_FAST_MAX_JSON || eat(&c, '{') != 0)
        return 1;
    ev->n_tags = 0;
    while (more == 1) {
        struct nostr_fast_str k;
        int key;
        if (string(&c, &k) != 0 || eat(&c, ':') != 0 || (key = key_index(&k)) < 0 ||
            (seen & (1u << key)) || value(&c, key, ev, &sp) != 0)
            return 1;
        seen |= 1u << key;
        more = next_or_close(&c, '}');
    }
    skip_ws(&c);
    if (more != 0 || c.p != c.end || seen != (1u << K_COUNT) - 1)
        return 1;
    return compute_id(&sp, ev->computed_id) == 0 ? 0 : 1;
}
