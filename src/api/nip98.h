/* NIP-98 HTTP authentication (PRODUCT.md §3.2), as a pure check plus a bounded cache of verified
 * tokens. Loop thread only (the cache is not locked).
 *
 * Both token styles in use are accepted: a standard per-request token (nostr-tools getToken,
 * u = the request URL, a method tag, optionally a payload tag) and the dashboard's
 * session-style token (u = the API root, no method tag, reused for up to AUTH_MAX_AGE). */
#ifndef CARAVEL_API_NIP98_H
#define CARAVEL_API_NIP98_H

#include <stddef.h>
#include <stdint.h>

/* A token is at most 8192 bytes of event JSON; its base64 form (what the header carries)
 * is then at most 10924 characters, refused unread past that. */
#define NIP98_MAX_JSON 8192
#define NIP98_MAX_TOKEN_B64 (4 * ((NIP98_MAX_JSON + 2) / 3))
#define NIP98_CACHE_SLOTS 4096

struct nip98_request {
    const char *authorization; /* header value or NULL; borrowed */
    const char *method;        /* "GET", ... */
    const char *target;        /* request target: path and optional query */
    const char *body;          /* raw body bytes (may be NULL when body_len is 0) */
    size_t body_len;
    int64_t now;
    int head_only; /* 1: the body is not read yet, so the payload tag is not checked */
};

struct nip98_policy {
    /* Accepted origins ("http://127.0.0.1:3000", "https://api.example.com"), no trailing '/'. */
    const char *const *origins;
    size_t n_origins;
    int64_t max_age; /* seconds: abs(now - created_at) must not exceed it */
};

/* Checks the request. Returns 0 and the signer's x-only pubkey, or -1 with *why set to a
 * short static reason (for debug logs only: every failure is answered 401 alike).
 * Verified events are remembered (keyed by the token's full text, tokens up to 2 KiB,
 * NIP98_CACHE_SLOTS direct-mapped slots, an entry dropped once created_at + max_age has
 * passed) so a reused
 * token is not re-verified; the per-request checks (age, u, method, payload) run on every
 * call, cached or not. Only whitespace may follow the token. */
int nip98_check(const struct nip98_request *req, const struct nip98_policy *policy,
                uint8_t pubkey[32], const char **why);

/* The same check with the signature verified off the loop thread, so fresh tokens use every
 * core. Returns 0 (pubkey set) or -1 (*why) when the answer is known from the cache alone,
 * or 1 with *verify set: then call nip98_verify_run on any thread (it touches only verify
 * and that thread's own table of parsed keys),
 * and nip98_verify_finish back on the loop thread with the same req and policy (req may be
 * NULL to just free verify). Finish caches the verified token, runs the per-request checks
 * and frees verify; it returns 0 or -1 like nip98_check. */
struct nip98_verify;
int nip98_check_cached(const struct nip98_request *req, const struct nip98_policy *policy,
                       uint8_t pubkey[32], struct nip98_verify **verify, const char **why);
void nip98_verify_run(struct nip98_verify *verify);
int nip98_verify_finish(struct nip98_verify *verify, const struct nip98_request *req,
                        const struct nip98_policy *policy, uint8_t pubkey[32], const char **why);

/* Forgets every cached token (tests, shutdown). */
void nip98_cache_clear(void);
/* Tokens currently cached (at most NIP98_CACHE_SLOTS; tests). */
size_t nip98_cache_size(void);

#endif
