#include "api/nip98.h"
#include "nostr/nip98.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/event_fast.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/debug.h"
#include "util/util.h"

#define URL_MAX 2048

/* Parsed x-only keys of recent signers. Parsing a key (a field square root) is a tenth of a
 * BIP-340 verification, and each user of the dashboard signs many tokens. One table per thread
 * (the loop and each pool thread that verifies: no lock, ~52 KB each), so a fresh token costs
 * one verification with a prepared key, as on the loop. KEY_SETS sets of two, chosen by the
 * key's first byte (x-only keys are uniform), the most recently used first: with one slot per
 * set, 36 of 100 signers shared a slot with another and were parsed again on most of their
 * tokens; with two, 100 signers almost never need a third place. */
#define KEY_SETS 256
#define KEY_WAYS 2

struct key_slot {
    uint8_t raw[32];
    int used;
    secp256k1_xonly_pubkey xpk;
};

static _Thread_local struct key_slot keys[KEY_SETS][KEY_WAYS];

/* What the per-request checks need from a verified token. */
struct token {
    uint8_t pubkey[32];
    int64_t created_at;
    char *u;          /* owned */
    char method[16];  /* "" = no method tag (session style) */
    char payload[65]; /* "" = no payload tag */
};

/* Only tokens up to this size are cached. Reused tokens are the dashboard's session tokens
 * (u = the API root, ~500 bytes of base64); a larger token is still accepted, just verified
 * on every use. Bounds the cache to NIP98_CACHE_SLOTS * (2 KiB + its u tag). */
#define CACHE_TOKEN_MAX 2048

/* A slot is keyed by the token's full text, compared byte for byte; the slot index comes from
 * a cheap non-cryptographic hash, which only spreads tokens (a collision, chosen or not, just
 * evicts the older entry). Keying by SHA-256 cost ~14% of a request served from the cache. */
struct cache_slot {
    char *text; /* owned copy of the token (header value after the scheme) */
    size_t len;
    struct token tok; /* tok.u == NULL: empty slot */
};

/* Direct-mapped and bounded: a colliding token just evicts the older one. An entry is
 * dropped once its token is too old for any request (created_at + max_age). */
static struct cache_slot *cache;
static size_t cache_used;

static void slot_clear(struct cache_slot *slot)
{
    if (slot->tok.u)
        cache_used--;
    free(slot->tok.u);
    free(slot->text);
    memset(slot, 0, sizeof(*slot));
}

void nip98_cache_clear(void)
{
    ASSERT_LOOP_THREAD();
    for (size_t i = 0; cache && i < NIP98_CACHE_SLOTS; i++)
        slot_clear(&cache[i]);
    free(cache);
    cache = NULL;
}

size_t nip98_cache_size(void)
{
    ASSERT_LOOP_THREAD();
    return cache_used;
}

static const char *skip_scheme(const char *h)
{
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Nostr", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
        return NULL;
    h += 5;
    while (*h == ' ' || *h == '\t')
        h++;
    return h;
}

/* 1 when a tag named name has a missing, non-string or empty value: a method or payload tag
 * must bind the token to something (absent is allowed, present-but-empty is not). */
static int tag_empty(const struct nostr_event *ev, const char *name)
{
    const cJSON *tag;
    cJSON_ArrayForEach(tag, ev->tags)
    {
        const cJSON *k = cJSON_GetArrayItem(tag, 0), *v = cJSON_GetArrayItem(tag, 1);
        if (cJSON_IsString(k) && strcmp(k->valuestring, name) == 0 &&
            (!cJSON_IsString(v) || v->valuestring[0] == '\0'))
            return 1;
    }
    return 0;
}

static int copy_tag(const struct nostr_event *ev, const char *name, char *out, size_t cap)
{
    const char *v = nostr_event_tag_value(ev, name);
    out[0] = '\0';
    if (tag_empty(ev, name))
        return -1;
    if (!v)
        return 0;
    if (strlen(v) >= cap)
        return -1;
    strcpy(out, v);
    return 0;
}

/* The parsed key from this thread's table, parsed into the set's least recently used place
 * on a miss; NULL when pubkey is not a valid x-only key. */
static const secp256k1_xonly_pubkey *prepared_key(const uint8_t pubkey[32])
{
    struct key_slot *set = keys[pubkey[0] % KEY_SETS], tmp;
    if (set[0].used && memcmp(set[0].raw, pubkey, 32) == 0)
        return &set[0].xpk;
    if (!(set[1].used && memcmp(set[1].raw, pubkey, 32) == 0)) {
        set[1].used = secp256k1_xonly_pubkey_parse(nostr_secp(), &set[1].xpk, pubkey);
        if (!set[1].used)
            return NULL;
        memcpy(set[1].raw, pubkey, 32);
    }
    tmp = set[0]; /* most recent first */
    set[0] = set[1];
    set[1] = tmp;
    return &set[0].xpk;
}

/* A BIP-340 check of sig over id by pubkey, the parsed key taken from this thread's table when
 * it is there. Any thread. */
static int verify_sig(const uint8_t pubkey[32], const uint8_t id[32], const uint8_t sig[64])
{
    const secp256k1_xonly_pubkey *xpk = prepared_key(pubkey);
    return xpk && secp256k1_schnorrsig_verify(nostr_secp(), sig, id, 32, xpk) ? 0 : -1;
}

/* nostr_event_verify (id = sha256 of the serialization, BIP-340 sig over it) with the
 * prepared keys of verify_sig. */
static int verify_event(const struct nostr_event *ev)
{
    uint8_t id[32];
    if (nostr_event_compute_id(ev, id) != 0 || memcmp(id, ev->id, 32) != 0)
        return -1;
    return verify_sig(ev->pubkey, id, ev->sig);
}

static int too_old(int64_t created_at, int64_t now, int64_t max_age)
{
    int64_t age = now - created_at;
    return age > max_age || -age > max_age;
}

/* Parses and verifies the event JSON with the general parser; fills tok. The age is checked
 * before the signature so a replayed old token costs no verification and is never cached. */
static int decode_event(const char *json, size_t json_len, int64_t now, int64_t max_age,
                        struct token *tok, const char **why)
{
    struct nostr_event ev;
    int rc = -1;
    nostr_event_init(&ev);
    if (nostr_event_parse(&ev, json, json_len) != 0) {
        *why = "token is not a Nostr event";
    } else if (ev.kind != NIP98_KIND) {
        *why = "token kind is not 27235";
    } else if (too_old(ev.created_at, now, max_age)) {
        *why = "token expired or from the future";
    } else if (verify_event(&ev) != 0) {
        *why = "token id or signature invalid";
    } else if (!nostr_event_tag_value(&ev, "u") ||
               strlen(nostr_event_tag_value(&ev, "u")) > URL_MAX ||
               copy_tag(&ev, "method", tok->method, sizeof(tok->method)) ||
               copy_tag(&ev, "payload", tok->payload, sizeof(tok->payload))) {
        *why = "token u/method/payload tag missing, empty or too long";
    } else {
        memcpy(tok->pubkey, ev.pubkey, 32);
        tok->created_at = ev.created_at;
        tok->u = xstrdup(nostr_event_tag_value(&ev, "u"));
        rc = 0;
    }
    nostr_event_free(&ev);
    return rc;
}

/* The fast-path twins of nostr_event_tag_value and copy_tag (same rules, over the parsed
 * slices): the first tag named name with a value, or NULL. */
static const struct nostr_fast_str *fast_tag_value(const struct nostr_fast_event *ev,
                                                   const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < ev->n_tags; i++) {
        const struct nostr_fast_tag *t = &ev->tags[i];
        if (t->n_values >= 2 && t->name.n == n && memcmp(t->name.p, name, n) == 0)
            return &t->value;
    }
    return NULL;
}

static int fast_copy_tag(const struct nostr_fast_event *ev, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (size_t i = 0; i < ev->n_tags; i++) { /* present but empty: refused (tag_empty) */
        const struct nostr_fast_tag *t = &ev->tags[i];
        if (t->n_values >= 1 && t->name.n == n && memcmp(t->name.p, name, n) == 0 &&
            (t->n_values < 2 || t->value.n == 0))
            return -1;
    }
    const struct nostr_fast_str *v = fast_tag_value(ev, name);
    if (!v)
        return 0;
    if (v->n >= cap)
        return -1;
    memcpy(out, v->p, v->n);
    out[v->n] = '\0';
    return 0;
}

/* decode_event over the fast parse (nostr/event_fast.h), the same checks in the same order. */
static int decode_fast(const struct nostr_fast_event *ev, int64_t now, int64_t max_age,
                       struct token *tok, const char **why)
{
    const struct nostr_fast_str *u = fast_tag_value(ev, "u");
    if (ev->kind != NIP98_KIND) {
        *why = "token kind is not 27235";
    } else if (too_old(ev->created_at, now, max_age)) {
        *why = "token expired or from the future";
    } else if (memcmp(ev->computed_id, ev->id, 32) != 0 ||
               verify_sig(ev->pubkey, ev->computed_id, ev->sig) != 0) {
        *why = "token id or signature invalid";
    } else if (!u || u->n > URL_MAX ||
               fast_copy_tag(ev, "method", tok->method, sizeof(tok->method)) ||
               fast_copy_tag(ev, "payload", tok->payload, sizeof(tok->payload))) {
        *why = "token u/method/payload tag missing, empty or too long";
    } else {
        memcpy(tok->pubkey, ev->pubkey, 32);
        tok->created_at = ev->created_at;
        tok->u = xstrndup(u->p, u->n);
        return 0;
    }
    return -1;
}

/* Decodes, parses and verifies the token; fills tok. The usual token (plain ASCII strings)
 * takes the allocation-free fast parse; anything it declines, the general parser decides. */
static int decode_token(const char *b64, size_t n, int64_t now, int64_t max_age, struct token *tok,
                        const char **why)
{
    char json[NIP98_MAX_TOKEN_B64 / 4 * 3 + 3];
    size_t json_len = 0;
    struct nostr_fast_event fast;
    if (base64_decode_to(b64, n, 1, (uint8_t *)json, sizeof(json), &json_len) != 0) {
        *why = "token is not base64";
        return -1;
    }
    if (json_len > NIP98_MAX_JSON) {
        *why = "token event over 8192 bytes of JSON";
        return -1;
    }
    if (nostr_event_parse_fast(json, json_len, &fast) == 0)
        return decode_fast(&fast, now, max_age, tok, why);
    return decode_event(json, json_len, now, max_age, tok, why);
}

/* 64-bit multiply-xorshift over 8-byte words: the slot index only (see struct cache_slot). */
static uint64_t token_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ n, w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

static struct cache_slot *slot_for(const char *b64, size_t n)
{
    if (n > CACHE_TOKEN_MAX)
        return NULL;
    if (!cache)
        cache = xcalloc(NIP98_CACHE_SLOTS, sizeof(*cache));
    return &cache[token_hash(b64, n) % NIP98_CACHE_SLOTS];
}

/* A cached, still valid token: 0 and *tok (tok->u owned by the cache), else -1. */
static int lookup_token(const char *b64, size_t n, int64_t now, int64_t max_age, struct token *tok)
{
    struct cache_slot *slot = slot_for(b64, n);
    if (!slot || !slot->tok.u || slot->len != n || memcmp(slot->text, b64, n) != 0)
        return -1;
    if (too_old(slot->tok.created_at, now, max_age)) {
        slot_clear(slot); /* expired: decode_token refuses it */
        return -1;
    }
    *tok = slot->tok;
    return 0;
}

/* Takes ownership of tok->u and of text (a malloc'd copy of the n-byte token, or NULL to
 * have it copied); afterwards tok->u is owned by the cache, or by the caller when *owned_u is
 * set (tokens too large to cache: text is then freed). */
static void store_token(const char *b64, size_t n, char *text, struct token *tok, int *owned_u)
{
    struct cache_slot *slot = slot_for(b64, n);
    *owned_u = slot == NULL;
    if (!slot) {
        free(text);
        return;
    }
    slot_clear(slot);
    slot->text = text ? text : xstrndup(b64, n);
    slot->len = n;
    slot->tok = *tok;
    cache_used++;
}

/* Looks the token up in the cache, or verifies it and caches it (when it is small enough).
 * tok->u is owned by the cache until the next call, or by the caller when *owned_u is set. */
static int get_token(const char *b64, size_t n, int64_t now, int64_t max_age, struct token *tok,
                     int *owned_u, const char **why)
{
    *owned_u = 0;
    if (lookup_token(b64, n, now, max_age, tok) == 0)
        return 0;
    if (decode_token(b64, n, now, max_age, tok, why) != 0)
        return -1;
    store_token(b64, n, NULL, tok, owned_u);
    return 0;
}

/* The u tag names one of our origins, and either the request (path, with or without its
 * query) or the API root ("", "/"). */
static int url_matches(const char *u, const char *target, const struct nip98_policy *p)
{
    size_t path_len = strcspn(target, "?");
    for (size_t i = 0; i < p->n_origins; i++) {
        size_t olen = strlen(p->origins[i]);
        if (strncasecmp(u, p->origins[i], olen) != 0)
            continue;
        const char *rest = u + olen;
        if (rest[0] == '\0' || strcmp(rest, "/") == 0 || strcmp(rest, target) == 0)
            return 1;
        if (strlen(rest) == path_len && strncmp(rest, target, path_len) == 0)
            return 1;
    }
    return 0;
}

static int payload_matches(const char *payload_hex, const char *body, size_t len)
{
    uint8_t want[32], got[32];
    if (hex_decode(payload_hex, strlen(payload_hex), want, 32) != 0)
        return 0;
    nostr_sha256(body ? body : "", len, got);
    return memcmp(want, got, 32) == 0;
}

/* The token (scheme skipped) and its length, or NULL with *why. */
static const char *token_text(const struct nip98_request *req, size_t *n, const char **why)
{
    const char *b64 = req->authorization ? skip_scheme(req->authorization) : NULL;
    *why = "missing Authorization: Nostr header";
    if (!b64)
        return NULL;
    *n = strcspn(b64, " \t\r\n");
    if (*n == 0 || *n > NIP98_MAX_TOKEN_B64 || b64[*n + strspn(b64 + *n, " \t")] != '\0') {
        *why = "token empty, too large or followed by other data";
        return NULL;
    }
    return b64;
}

/* The per-request checks, run on every use of a verified token. */
static int check_request(const struct token *tok, const struct nip98_request *req,
                         const struct nip98_policy *policy, uint8_t pubkey[32], const char **why)
{
    if (!url_matches(tok->u, req->target, policy))
        *why = "token u tag does not name this URL";
    else if (tok->method[0] && strcasecmp(tok->method, req->method) != 0)
        *why = "token method tag does not match";
    else if (!req->head_only && tok->payload[0] &&
             !payload_matches(tok->payload, req->body, req->body_len))
        *why = "token payload hash does not match the body";
    else {
        memcpy(pubkey, tok->pubkey, 32);
        return 0;
    }
    return -1;
}

int nip98_check(const struct nip98_request *req, const struct nip98_policy *policy,
                uint8_t pubkey[32], const char **why)
{
    ASSERT_LOOP_THREAD();
    struct token tok;
    size_t n = 0;
    int owned_u = 0;
    const char *b64 = token_text(req, &n, why);
    if (!b64 || get_token(b64, n, req->now, policy->max_age, &tok, &owned_u, why) != 0)
        return -1;
    int rc = check_request(&tok, req, policy, pubkey, why);
    if (owned_u)
        free(tok.u);
    return rc;
}

/* ---- verification off the loop ---- */

struct nip98_verify {
    char *text; /* owned copy of the token */
    size_t len;
    int64_t now, max_age;
    int rc;
    const char *why;
    struct token tok;
};

int nip98_check_cached(const struct nip98_request *req, const struct nip98_policy *policy,
                       uint8_t pubkey[32], struct nip98_verify **verify, const char **why)
{
    ASSERT_LOOP_THREAD();
    struct token tok;
    size_t n = 0;
    const char *b64 = token_text(req, &n, why);
    *verify = NULL;
    if (!b64)
        return -1;
    if (lookup_token(b64, n, req->now, policy->max_age, &tok) == 0)
        return check_request(&tok, req, policy, pubkey, why);
    struct nip98_verify *v = xcalloc(1, sizeof(*v));
    v->text = xstrndup(b64, n);
    v->len = n;
    v->now = req->now;
    v->max_age = policy->max_age;
    *verify = v;
    return 1;
}

void nip98_verify_run(struct nip98_verify *v)
{
    v->rc = decode_token(v->text, v->len, v->now, v->max_age, &v->tok, &v->why);
}

int nip98_verify_finish(struct nip98_verify *v, const struct nip98_request *req,
                        const struct nip98_policy *policy, uint8_t pubkey[32], const char **why)
{
    ASSERT_LOOP_THREAD();
    int owned_u = 1, rc = v->rc;
    *why = v->why;
    if (rc == 0 && req) {
        store_token(v->text, v->len, v->text, &v->tok, &owned_u); /* the cache keeps text */
        v->text = NULL;
        rc = check_request(&v->tok, req, policy, pubkey, why);
    }
    if (v->rc == 0 && owned_u)
        free(v->tok.u);
    free(v->text);
    free(v);
    return rc;
}
