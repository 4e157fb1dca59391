/* NIP-98 check (PRODUCT.md §3.2) against tokens made by nostr-tools (test/unit/nip98_vectors.h). */
#include <stdio.h>
#include <string.h>

#include "api/nip98.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "test.h"

#include "nip98_vectors.h"

static int check(const struct nip98_vec *v, uint8_t pk[32], const char **why)
{
    static const char *const host_origins[] = {"http://127.0.0.1:3000", "http://127.0.0.1",
                                               "https://127.0.0.1:3000", "https://127.0.0.1"};
    const char *pub[1] = {v->public_url};
    struct nip98_policy policy = {host_origins, 4, 600};
    if (v->public_url[0]) {
        policy.origins = pub;
        policy.n_origins = 1;
    }
    struct nip98_request req = {v->header,       v->method, v->target, v->body,
                                strlen(v->body), v->now,    0};
    return nip98_check(&req, &policy, pk, why);
}

TEST(api_nip98_vectors_from_nostr_tools)
{
    ASSERT_OK(nostr_init());
    for (size_t i = 0; i < sizeof(nip98_vecs) / sizeof(nip98_vecs[0]); i++) {
        const struct nip98_vec *v = &nip98_vecs[i];
        uint8_t pk[32] = {0};
        char hex[65];
        const char *why = NULL;
        /* Twice: the second answer comes from the cache for good tokens. */
        for (int round = 0; round < 2; round++) {
            int rc = check(v, pk, &why);
            if ((rc == 0) != v->ok)
                TEST_FAIL_("case %s round %d: got %d (%s)", v->name, round, rc, why ? why : "");
            if (v->ok) {
                hex_encode(pk, 32, hex);
                ASSERT_STR_EQ(hex, NIP98_VEC_PUBKEY);
            } else {
                ASSERT_NOT_NULL(why);
            }
        }
    }
    nip98_cache_clear();
}

static const struct nip98_vec *find(const char *name)
{
    for (size_t i = 0; i < sizeof(nip98_vecs) / sizeof(nip98_vecs[0]); i++)
        if (strcmp(nip98_vecs[i].name, name) == 0)
            return &nip98_vecs[i];
    return &nip98_vecs[0]; /* names are fixed: never reached */
}

/* A cached token still goes through every per-request check. */
TEST(api_nip98_vec_cache_hit_still_checks_request)
{
    ASSERT_OK(nostr_init());
    struct nip98_vec v = *find("get_token_get");
    uint8_t pk[32];
    const char *why = NULL;
    ASSERT_OK(check(&v, pk, &why));
    ASSERT_EQ(nip98_cache_size(), 1);
    v.method = "POST";
    ASSERT_EQ(check(&v, pk, &why), -1);
    v.method = "GET";
    v.target = "/relays";
    ASSERT_EQ(check(&v, pk, &why), -1);
    v.target = "/identity";
    v.now += 601;
    ASSERT_EQ(check(&v, pk, &why), -1);
    ASSERT_EQ(nip98_cache_size(), 0); /* expired: dropped */
    v.now -= 601;
    ASSERT_OK(check(&v, pk, &why));

    struct nip98_vec p = *find("get_token_post_payload");
    ASSERT_OK(check(&p, pk, &why));
    p.body = "{}";
    ASSERT_EQ(check(&p, pk, &why), -1);
    ASSERT_EQ(nip98_cache_size(), 2);
    nip98_cache_clear();
    ASSERT_EQ(nip98_cache_size(), 0);
}

/* Refused tokens are not remembered; a missing header is refused without a crash. */
TEST(api_nip98_vec_refused_not_cached)
{
    ASSERT_OK(nostr_init());
    const char *names[] = {"bad_signature", "tampered_content", "kind_1", "not_base64"};
    uint8_t pk[32];
    const char *why = NULL;
    for (size_t i = 0; i < 4; i++)
        ASSERT_EQ(check(find(names[i]), pk, &why), -1);
    ASSERT_EQ(nip98_cache_size(), 0);
    struct nip98_vec none = *find("get_token_get");
    none.header = NULL;
    ASSERT_EQ(check(&none, pk, &why), -1);
    nip98_cache_clear();
}

/* A token longer than 2 KiB (nip98.c CACHE_TOKEN_MAX) is accepted but verified every time. */
TEST(api_nip98_vec_large_token_not_cached)
{
    ASSERT_OK(nostr_init());
    const struct nip98_vec *v = find("large_token_not_cached");
    uint8_t pk[32];
    const char *why = NULL;
    ASSERT_GT(strlen(v->header), 2048);
    ASSERT_OK(check(v, pk, &why));
    ASSERT_OK(check(v, pk, &why));
    ASSERT_EQ(nip98_cache_size(), 0);
    nip98_cache_clear();
}

/* The cache is bounded whatever the number of distinct tokens. */
TEST(api_nip98_vec_cache_bounded)
{
    ASSERT_OK(nostr_init());
    const struct nip98_vec *v = find("get_token_get");
    char header[2048];
    uint8_t pk[32];
    const char *why = NULL;
    /* Same token, different amounts of trailing whitespace are the same key; distinct
     * tokens need distinct signatures, so fill through different valid vectors instead. */
    for (size_t i = 0; i < sizeof(nip98_vecs) / sizeof(nip98_vecs[0]); i++)
        if (nip98_vecs[i].ok)
            (void)check(&nip98_vecs[i], pk, &why);
    ASSERT_LE(nip98_cache_size(), NIP98_CACHE_SLOTS);
    ASSERT_GT(nip98_cache_size(), 3);
    snprintf(header, sizeof(header), "%s   ", v->header);
    size_t before = nip98_cache_size();
    struct nip98_vec w = *v;
    w.header = header;
    ASSERT_OK(check(&w, pk, &why));
    ASSERT_EQ(nip98_cache_size(), before);
    nip98_cache_clear();
}
