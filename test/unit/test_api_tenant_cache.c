/* The positive tenant cache (api/tenant_cache.c): it grows past its first table (the old
 * fixed size stopped at 8,192 tenants), stays bounded at its cap, and every key it holds stays
 * findable after evictions (linear probing with backward-shift deletion). */
#include "test.h"

#include "api/internal.h"

static void key_of(uint32_t i, uint8_t k[32])
{
    /* Spread like real pubkeys: a 64-bit mix of i in the leading bytes. */
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    memset(k, 0, 32);
    memcpy(k, &x, 8);
    memcpy(k + 8, &i, 4);
}

TEST(tenant_cache_grows_past_the_old_fixed_size)
{
    uint8_t k[32];
    tenant_cache_clear();
    for (uint32_t i = 0; i < 50000; i++) {
        key_of(i, k);
        tenant_cache_add(k);
    }
    ASSERT_EQ(tenant_cache_size(), 50000);
    for (uint32_t i = 0; i < 50000; i++) {
        key_of(i, k);
        ASSERT(tenant_cache_has(k));
    }
    key_of(50000, k);
    ASSERT(!tenant_cache_has(k));
    tenant_cache_clear();
    ASSERT_EQ(tenant_cache_size(), 0);
}

TEST_TIMEOUT(tenant_cache_is_bounded_and_consistent_when_full, 30)
{
    enum { N = 400000 };
    uint8_t k[32];
    tenant_cache_clear();
    for (uint32_t i = 0; i < N; i++) {
        key_of(i, k);
        tenant_cache_add(k);
        ASSERT(tenant_cache_has(k)); /* the newest is always there */
    }
    size_t size = tenant_cache_size();
    ASSERT_LE(size, 131072);
    ASSERT_GE(size, 131072 - 1);
    /* Every key still cached is findable: the hits add up to the size exactly. */
    size_t hits = 0;
    for (uint32_t i = 0; i < N; i++) {
        key_of(i, k);
        hits += (size_t)tenant_cache_has(k);
    }
    ASSERT_EQ(hits, size);
    tenant_cache_clear();
}
