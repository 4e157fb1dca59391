/* NIP-98 verification off the loop thread (nip98_check_cached / nip98_verify_run / finish) and
 * the per-thread table of parsed signer keys: two signers sharing a slot, a token naming one
 * signer but signed by the other, and several threads verifying at once. */
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

/* Two keys whose x-only public keys share a first byte (the key table's slot). */
static void colliding_keys(struct nostr_keypair *a, struct nostr_keypair *b)
{
    uint8_t sk[32] = {0};
    struct nostr_keypair seen[256];
    int have[256] = {0};
    for (uint32_t i = 1;; i++) {
        memcpy(sk, &i, sizeof(i));
        sk[31] = 0x42;
        ASSERT_OK(nostr_keypair_from_seckey(a, sk));
        if (have[a->pubkey[0]]) {
            *b = seen[a->pubkey[0]];
            return;
        }
        seen[a->pubkey[0]] = *a;
        have[a->pubkey[0]] = 1;
    }
}

TEST(api_nip98_key_slot_shared_by_two_signers)
{
    struct nostr_keypair k1, k2;
    uint8_t pk[32];
    ASSERT_OK(nostr_init());
    nip98_cache_clear();
    colliding_keys(&k1, &k2);
    ASSERT_EQ(k1.pubkey[0], k2.pubkey[0]);
    ASSERT(memcmp(k1.pubkey, k2.pubkey, 32) != 0);
    /* k1 then k2 then k1 in the same slot, each a new token (not the token cache) */
    for (int round = 0; round < 3; round++) {
        const struct nostr_keypair *k = round == 1 ? &k2 : &k1;
        char *h = token(k, round, NULL);
        ASSERT_OK(check(h, pk));
        ASSERT(memcmp(pk, k->pubkey, 32) == 0);
        free(h);
    }
    /* names k1 (whose parsed key is in the slot), signed by k2: refused; and the other way */
    char *f1 = token(&k2, 10, &k1), *f2 = token(&k1, 11, &k2);
    ASSERT_EQ(check(f1, pk), -1);
    ASSERT_EQ(check(f2, pk), -1);
    ASSERT_EQ(check(f1, pk), -1); /* a refusal is not cached as a success */
    free(f1);
    free(f2);
    char *h = token(&k2, 12, NULL);
    ASSERT_OK(check(h, pk));
    ASSERT(memcmp(pk, k2.pubkey, 32) == 0);
    free(h);
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
