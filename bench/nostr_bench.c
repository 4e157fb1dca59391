/* Micro-benchmark of the Nostr core on one core (not a test): rates of event sign, verify,
 * id hash, NIP-44 encrypt/decrypt of ~1 KiB content, plus the raw BIP-340 verify time used as
 * the machine's calibration (with the key parsed on every call, and with a prepared key: the
 * baseline of bench/http-api.sh's fresh-token ratio), and a NIP-98 token's parse and id by the
 * general parser and by the fast path. Each line gives the rate, the wall time
 * and the thread's CPU time per operation. Each runs for about BENCH_SECONDS (default 1).
 *   nostr_bench token: only the prepared-key verify and a fresh NIP-98 token's whole work
 *   outside HTTP (api/nip98.c: cache miss, copy, base64, parse, id, key table, verify, cache
 *   store, per-request checks) on one thread, tokens of 100 signers as bench/lua/fresh.lua
 *   sends them: the difference of the two rows is what a fresh token costs beyond its verify. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "api/nip98.h"
#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/event_fast.h"
#include "nostr/keys.h"
#include "nostr/nip44.h"

#define CONTENT_LEN 1024

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

struct ctx {
    struct nostr_keypair kp;
    struct nostr_event ev;
    secp256k1_xonly_pubkey xpk; /* ev.pubkey, parsed */
    uint8_t conv_key[32];
    char *payload;
    char *token; /* a NIP-98 GET token's event JSON, as bench/lua/fresh.lua sends */
    char content[CONTENT_LEN + 1];
};

typedef int bench_fn(struct ctx *c);

static int do_sign(struct ctx *c)
{
    return nostr_event_sign(&c->ev, &c->kp);
}

static int do_verify(struct ctx *c)
{
    return nostr_event_verify(&c->ev);
}

static int do_id(struct ctx *c)
{
    uint8_t id[32];
    return nostr_event_compute_id(&c->ev, id);
}

static int do_schnorr_verify(struct ctx *c)
{
    return nostr_schnorr_verify(c->ev.pubkey, c->ev.id, c->ev.sig);
}

/* The verify alone, with the key parsed once beforehand: what a server that keeps its
 * signers' parsed keys pays per signature (the baseline of the fresh-token API target). */
static int do_schnorr_prepared(struct ctx *c)
{
    return secp256k1_schnorrsig_verify(nostr_secp(), c->ev.sig, c->ev.id, 32, &c->xpk) ? 0 : -1;
}

/* A fresh NIP-98 token's parse and id (the work beside the verify on the pool): the general
 * parser (cJSON, copies) and the allocation-free fast path (nostr/event_fast.h). */
static int do_token_general(struct ctx *c)
{
    struct nostr_event ev;
    uint8_t id[32];
    nostr_event_init(&ev);
    int rc = nostr_event_parse(&ev, c->token, strlen(c->token));
    if (rc == 0)
        rc = nostr_event_compute_id(&ev, id);
    nostr_event_free(&ev);
    return rc;
}

static int do_token_fast(struct ctx *c)
{
    struct nostr_fast_event ev;
    return nostr_event_parse_fast(c->token, strlen(c->token), &ev);
}

static int make_token(struct ctx *c)
{
    struct nostr_event t;
    nostr_event_init(&t);
    t.kind = 27235;
    t.created_at = 1700000000;
    nostr_event_add_tag2(&t, "u", "https://api.caravel.bench/identity");
    nostr_event_add_tag2(&t, "method", "GET");
    nostr_event_add_tag2(&t, "nonce", "12345");
    int rc = nostr_event_sign(&t, &c->kp);
    c->token = rc == 0 ? nostr_event_to_json(&t, 1) : NULL;
    nostr_event_free(&t);
    return c->token ? 0 : -1;
}

static int do_encrypt(struct ctx *c)
{
    char *out = NULL;
    int rc = nip44_encrypt(c->conv_key, c->content, CONTENT_LEN, NULL, &out);
    free(out);
    return rc;
}

static int do_decrypt(struct ctx *c)
{
    char *out = NULL;
    int rc = nip44_decrypt(c->conv_key, c->payload, strlen(c->payload), &out, NULL);
    free(out);
    return rc;
}

/* Fresh tokens: SIGNERS keys, TOKENS distinct GET tokens cycled (the token cache is emptied at
 * each wrap, so every check is a first sight). */
#define SIGNERS 100
#define TOKENS 4000
#define TOKEN_URL "https://api.caravel.bench"

static char *fresh_tokens[TOKENS];
static size_t fresh_next;
/* The same tokens' signatures, ids and parsed keys: the verify alone over varied inputs. */
static uint8_t fresh_sig[TOKENS][64], fresh_id[TOKENS][32];
static secp256k1_xonly_pubkey fresh_xpk[SIGNERS];
static size_t fresh_signers = SIGNERS;

static int make_fresh_tokens(void)
{
    struct nostr_keypair kp[SIGNERS];
    for (int i = 0; i < SIGNERS; i++)
        if (nostr_keypair_generate(&kp[i]) != 0 ||
            !secp256k1_xonly_pubkey_parse(nostr_secp(), &fresh_xpk[i], kp[i].pubkey))
            return -1;
    for (int i = 0; i < TOKENS; i++) {
        struct nostr_event t;
        char nonce[16];
        nostr_event_init(&t);
        t.kind = 27235;
        t.created_at = 1700000000;
        snprintf(nonce, sizeof(nonce), "%d", i);
        nostr_event_add_tag2(&t, "u", TOKEN_URL "/identity");
        nostr_event_add_tag2(&t, "method", "GET");
        nostr_event_add_tag2(&t, "nonce", nonce);
        char *json =
            nostr_event_sign(&t, &kp[i % fresh_signers]) == 0 ? nostr_event_to_json(&t, 1) : NULL;
        memcpy(fresh_sig[i], t.sig, 64);
        memcpy(fresh_id[i], t.id, 32);
        nostr_event_free(&t);
        if (!json)
            return -1;
        char *b64 = base64_encode((const uint8_t *)json, strlen(json), NULL);
        free(json);
        fresh_tokens[i] = malloc(strlen(b64) + 7);
        if (!b64 || !fresh_tokens[i])
            return -1;
        sprintf(fresh_tokens[i], "Nostr %s", b64);
        free(b64);
    }
    return 0;
}

static int do_varied_verify(struct ctx *c)
{
    size_t i = fresh_next;
    (void)c;
    fresh_next = (fresh_next + 1) % TOKENS;
    return secp256k1_schnorrsig_verify(nostr_secp(), fresh_sig[i], fresh_id[i], 32,
                                       &fresh_xpk[i % fresh_signers])
               ? 0
               : -1;
}

static int do_fresh_token(struct ctx *c)
{
    static const char *const origins[] = {TOKEN_URL};
    static const struct nip98_policy policy = {origins, 1, 60};
    struct nip98_request req = {
        fresh_tokens[fresh_next], "GET", "/identity", NULL, 0, 1700000000, 0};
    struct nip98_verify *v = NULL;
    const char *why = NULL;
    uint8_t pk[32];
    (void)c;
    if (++fresh_next == TOKENS) {
        fresh_next = 0;
        nip98_cache_clear();
    }
    if (nip98_check_cached(&req, &policy, pk, &v, &why) != 1)
        return -1;
    nip98_verify_run(v);
    return nip98_verify_finish(v, &req, &policy, pk, &why);
}

static void run(const char *name, bench_fn *fn, struct ctx *c, double secs)
{
    long n = 0;
    double t0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), t;
    do {
        for (int i = 0; i < 64; i++, n++)
            if (fn(c) != 0) {
                fprintf(stderr, "%s failed\n", name);
                exit(1);
            }
        t = now_s() - t0;
    } while (t < secs);
    /* The CPU time beside the wall time: on a loaded machine the rate falls, the CPU per
     * operation much less. */
    double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    printf("%-28s %10.0f /s  %8.2f us/op  %8.2f cpu us/op\n", name, (double)n / t,
           t * 1e6 / (double)n, cpu * 1e6 / (double)n);
}

int main(int argc, char **argv)
{
    struct ctx c;
    const char *env = getenv("BENCH_SECONDS");
    double secs = env ? atof(env) : 1.0;
    struct nostr_keypair peer;
    if (nostr_init() != 0 || nostr_keypair_generate(&c.kp) != 0 ||
        nostr_keypair_generate(&peer) != 0)
        return 1;
    memset(c.content, 'a', CONTENT_LEN);
    memcpy(c.content, "bench \"quoted\" \\ \xc3\xa9\n", 20);
    c.content[CONTENT_LEN] = '\0';
    nostr_event_init(&c.ev);
    c.ev.kind = 1;
    c.ev.created_at = 1700000000;
    nostr_event_add_tag2(&c.ev, "t", "bench");
    nostr_event_set_content(&c.ev, c.content, CONTENT_LEN);
    if (nostr_event_sign(&c.ev, &c.kp) != 0 ||
        nip44_conversation_key(c.kp.seckey, peer.pubkey, c.conv_key) != 0 ||
        nip44_encrypt(c.conv_key, c.content, CONTENT_LEN, NULL, &c.payload) != 0)
        return 1;
    if (!secp256k1_xonly_pubkey_parse(nostr_secp(), &c.xpk, c.ev.pubkey) || make_token(&c) != 0)
        return 1;
    if (argc > 1 && strcmp(argv[1], "token") == 0) {
        if (getenv("BENCH_SIGNERS"))
            fresh_signers = (size_t)atoi(getenv("BENCH_SIGNERS"));
        if (make_fresh_tokens() != 0)
            return 1;
        printf("NIP-98 fresh tokens, one core, %d signers\n", SIGNERS);
        run("bip340 verify, prepared key", do_schnorr_prepared, &c, secs);
        run("bip340 verify, varied", do_varied_verify, &c, secs);
        fresh_next = 0;
        run("nip98 fresh token, all work", do_fresh_token, &c, secs);
        nip98_cache_clear();
        return 0;
    }
    printf("Nostr core, one core, %d-byte content\n", CONTENT_LEN);
    run("bip340 verify (calibration)", do_schnorr_verify, &c, secs);
    run("bip340 verify, prepared key", do_schnorr_prepared, &c, secs);
    run("event id (sha256 of JSON)", do_id, &c, secs);
    run("event sign (id + sig)", do_sign, &c, secs);
    run("event verify (id + sig)", do_verify, &c, secs);
    run("nip44 encrypt 1 KiB", do_encrypt, &c, secs);
    run("nip44 decrypt 1 KiB", do_decrypt, &c, secs);
    run("nip98 token parse+id, general", do_token_general, &c, secs);
    run("nip98 token parse+id, fast", do_token_fast, &c, secs);
    free(c.token);
    free(c.payload);
    nostr_event_free(&c.ev);
    nostr_shutdown();
    return 0;
}
