/* NIP-98 verification off the loop thread (nip98_check_cached / nip98_verify_run / finish) and
 * the per-thread table of parsed signer keys (sets of two places chosen by the key's first
 * byte): three signers sharing one set in several orders of use, a token naming one signer but
 * signed by another, and several threads verifying at once. */
#include "test.h"

#include <uv.h>

#include "api/nip98.h"
#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/keys.h"
#include "util/debug.h"
#include "util/util.h"

#define NOW 1700000000
#define ORIGIN "http://127.0.0.1:3000"

static const char *const origins[] = {ORIGIN};
static const struct nip98_policy policy = {origins, 1, 60};

/* "Nostr <base64>" of a GET /identity token by kp, with salt as its content (distinct texts).
 * With forge, the signature is kp's but the event names other (a valid id): never valid. */
static char *token(const struct nostr_keypair *kp, int salt, const struct nostr_keypair *other)
{
    struct nostr_event ev;
    nostr_event_init(&ev);
    ev.kind = 27235;
    char content[16];
    ev.created_at = NOW;
    nostr_event_set_content(&ev, content, (size_t)snprintf(content, sizeof(content), "%d", salt));
    nostr_event_add_tag2(&ev, "u", ORIGIN "/identity");
    nostr_event_add_tag2(&ev, "method", "GET");
    ASSERT_OK(nostr_event_sign(&ev, other ? other : kp));
    if (other) { /* kp signs the id of an event whose pubkey is other's */
        ASSERT_OK(nostr_schnorr_sign(kp, ev.id, ev.sig));
    }
    char *json = nostr_event_to_json(&ev, 1);
    ASSERT_NOT_NULL(json);
    nostr_event_free(&ev);
    char *b64 = base64_encode((const uint8_t *)json, strlen(json), NULL);
    char *h = xmalloc(strlen(b64) + 7);
    sprintf(h, "Nostr %s", b64);
    free(b64);
    free(json);
    return h;
}

static int check(const char *h, uint8_t pk[32])
{
    struct nip98_request req = {h, "GET", "/identity", NULL, 0, NOW, 0};
    const char *why = NULL;
    return nip98_check(&req, &policy, pk, &why);
}

/* n (<= 3) keys whose x-only public keys share a first byte (the key table's set). */
static void colliding_keys_n(struct nostr_keypair *out, int n)
{
    uint8_t sk[32] = {0};
    static struct nostr_keypair seen[256][3];
    static int have[256];
    memset(have, 0, sizeof(have));
    for (uint32_t i = 1;; i++) {
        struct nostr_keypair k;
        memcpy(sk, &i, sizeof(i));
        sk[31] = 0x42;
        ASSERT_OK(nostr_keypair_from_seckey(&k, sk));
        uint8_t b = k.pubkey[0];
        seen[b][have[b]++] = k;
        if (have[b] == n) {
            memcpy(out, seen[b], (size_t)n * sizeof(*out));
            return;
        }
    }
}

/* Two keys whose x-only public keys share a first byte. */
static void colliding_keys(struct nostr_keypair *a, struct nostr_keypair *b)
{
    struct nostr_keypair k[2];
    colliding_keys_n(k, 2);
    *a = k[0];
    *b = k[1];
}

TEST(api_nip98_key_set_shared_by_three_signers)
{
    /* orders of use (indexes into k): hits in either place, a third signer evicting the least
     * recently used, and signers coming back after being evicted */
    static const char *const orders[] = {"0101", "012012012", "0010220121", "2221110000",
                                         "0120210"};
    struct nostr_keypair k[3];
    uint8_t pk[32];
    ASSERT_OK(nostr_init());
    colliding_keys_n(k, 3);
    ASSERT_EQ(k[0].pubkey[0], k[2].pubkey[0]);
    int salt = 0;
    for (size_t o = 0; o < ARRAY_SIZE(orders); o++) {
        nip98_cache_clear();
        for (const char *c = orders[o]; *c; c++) {
            const struct nostr_keypair *signer = &k[*c - '0'];
            const struct nostr_keypair *other = &k[(*c - '0' + 1) % 3];
            char *h = token(signer, salt++, NULL);
            ASSERT_OK(check(h, pk));
            ASSERT(memcmp(pk, signer->pubkey, 32) == 0);
            free(h);
            /* names the signer (its parsed key is in the set), signed by another: refused */
            char *f = token(other, salt++, signer);
            ASSERT_EQ(check(f, pk), -1);
            ASSERT_EQ(check(f, pk), -1); /* a refusal is not cached as a success */
            free(f);
        }
    }
}

/* ---- off the loop ---- */

#define PER_THREAD 40

struct work {
    struct nip98_verify *v[PER_THREAD];
    int n;
};

static void verify_all(void *arg)
{
    struct work *w = arg;
    ASSERT(!debug_on_loop_thread());
    for (int i = 0; i < w->n; i++)
        nip98_verify_run(w->v[i]);
}

/* Two threads verify tokens of the same two signers at once (each its own key table); the
 * loop then finishes them: good ones pass with the right key and are cached, forged ones are
 * refused and not cached. */
TEST(api_nip98_verified_on_other_threads)
{
    struct nostr_keypair k1, k2;
    struct work w[2] = {0};
    char *tokens[2][PER_THREAD];
    uv_thread_t t[2];
    ASSERT_OK(nostr_init());
    debug_set_loop_thread();
    nip98_cache_clear();
    colliding_keys(&k1, &k2);
    for (int th = 0; th < 2; th++) {
        for (int i = 0; i < PER_THREAD; i++) {
            const struct nostr_keypair *k = (i + th) % 2 ? &k2 : &k1;
            const struct nostr_keypair *named = i % 5 == 4 ? ((i + th) % 2 ? &k1 : &k2) : NULL;
            tokens[th][i] = token(k, th * PER_THREAD + i, named);
            struct nip98_request req = {tokens[th][i], "GET", "/identity", NULL, 0, NOW, 0};
            uint8_t pk[32];
            const char *why = NULL;
            ASSERT_EQ(nip98_check_cached(&req, &policy, pk, &w[th].v[i], &why), 1);
            w[th].n++;
        }
    }
    for (int th = 0; th < 2; th++)
        ASSERT_OK(uv_thread_create(&t[th], verify_all, &w[th]));
    for (int th = 0; th < 2; th++)
        ASSERT_OK(uv_thread_join(&t[th]));
    size_t good = 0;
    for (int th = 0; th < 2; th++) {
        for (int i = 0; i < PER_THREAD; i++) {
            struct nip98_request req = {tokens[th][i], "GET", "/identity", NULL, 0, NOW, 0};
            const struct nostr_keypair *signer = (i + th) % 2 ? &k2 : &k1;
            uint8_t pk[32];
            const char *why = NULL;
            int forged = i % 5 == 4;
            ASSERT_EQ(nip98_verify_finish(w[th].v[i], &req, &policy, pk, &why), (forged ? -1 : 0));
            if (!forged) {
                good++;
                ASSERT(memcmp(pk, signer->pubkey, 32) == 0);
                struct nip98_verify *again = NULL;
                ASSERT_EQ(nip98_check_cached(&req, &policy, pk, &again, &why), 0); /* cached */
                ASSERT_NULL(again);
            }
            free(tokens[th][i]);
        }
    }
    /* each good token cached once (two may share a cache slot: then the later one stays) */
    ASSERT_LE(nip98_cache_size(), good);
    ASSERT_GE(nip98_cache_size(), good - 4);
}
