/* api/relay_cache.h: an answer is given back only under the write sequence it was read at. */
#include "test.h"

#include "api/relay_cache.h"
#include "util/util.h"

#define OWNER "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

#define T0 5000

static int get_at(uint64_t seq, uint64_t now_ms, const char *id, const char **body)
{
    size_t len = 0;
    const char *tenant = NULL;
    int rc = relay_cache_get(seq, now_ms, id, body, &len, &tenant);
    if (rc == 0) {
        ASSERT_EQ(len, strlen(*body));
        ASSERT_STR_EQ(tenant, OWNER);
    }
    return rc;
}

static int get(uint64_t seq, const char *id, const char **body)
{
    return get_at(seq, T0, id, body);
}

TEST(api_relay_cache_only_under_the_same_seq)
{
    const char *body = NULL;
    relay_cache_clear();
    ASSERT_EQ(get(2, "r1", &body), -1);
    relay_cache_put(2, T0, "r1", OWNER, "{\"v\":1}", 7);
    ASSERT_EQ(relay_cache_size(), 1);
    ASSERT_OK(get(2, "r1", &body));
    ASSERT_STR_EQ(body, "{\"v\":1}");
    ASSERT_EQ(get(2, "r2", &body), -1);
    /* a write began (odd) or committed (+2): the entry is gone for good */
    ASSERT_EQ(get(3, "r1", &body), -1);
    ASSERT_EQ(relay_cache_size(), 0);
    ASSERT_EQ(get(2, "r1", &body), -1);
    relay_cache_put(4, T0, "r1", OWNER, "{\"v\":2}", 7);
    ASSERT_EQ(get(6, "r1", &body), -1);
    relay_cache_clear();
}

TEST(api_relay_cache_refuses_what_it_cannot_vouch_for)
{
    const char *body = NULL;
    char long_id[RELAY_CACHE_ID_MAX + 2];
    memset(long_id, 'i', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    char *big = xcalloc(1, RELAY_CACHE_BODY_MAX + 2);
    memset(big, 'b', RELAY_CACHE_BODY_MAX + 1);
    relay_cache_clear();
    relay_cache_put(5, T0, "r1", OWNER, "{}", 2); /* read while a write was running */
    relay_cache_put(4, T0, long_id, OWNER, "{}", 2);
    relay_cache_put(4, T0, "r2", OWNER, big, RELAY_CACHE_BODY_MAX + 1);
    ASSERT_EQ(relay_cache_size(), 0);
    ASSERT_EQ(get(5, "r1", &body), -1);
    ASSERT_EQ(get(4, long_id, &body), -1);
    ASSERT_EQ(get(4, "r2", &body), -1);
    big[RELAY_CACHE_BODY_MAX] = '\0';
    relay_cache_put(4, T0, "r2", OWNER, big, RELAY_CACHE_BODY_MAX);
    ASSERT_OK(get(4, "r2", &body));
    free(big);
    relay_cache_clear();
}

/* Bounded: many ids share the slots, the newest answer of a slot wins, and every answer
 * given is the one stored for that id. */
TEST(api_relay_cache_bounded_and_exact)
{
    char id[32], want[64];
    const char *body = NULL;
    relay_cache_clear();
    for (int i = 0; i < 4 * RELAY_CACHE_SLOTS; i++) {
        snprintf(id, sizeof(id), "relay-%d", i);
        snprintf(want, sizeof(want), "{\"id\":\"%s\"}", id);
        relay_cache_put(8, T0, id, OWNER, want, strlen(want));
    }
    ASSERT_LE(relay_cache_size(), RELAY_CACHE_SLOTS);
    int hits = 0;
    for (int i = 0; i < 4 * RELAY_CACHE_SLOTS; i++) {
        snprintf(id, sizeof(id), "relay-%d", i);
        snprintf(want, sizeof(want), "{\"id\":\"%s\"}", id);
        if (get(8, id, &body) == 0) {
            ASSERT_STR_EQ(body, want);
            hits++;
        }
    }
    ASSERT_EQ((size_t)hits, relay_cache_size());
    ASSERT_GT(hits, RELAY_CACHE_SLOTS / 2);
    relay_cache_clear();
    ASSERT_EQ(relay_cache_size(), 0);
}

/* A hand edit by another process is not counted by the write sequence: entries expire. */
TEST(api_relay_cache_expires)
{
    const char *body = NULL;
    relay_cache_clear();
    relay_cache_put(2, T0, "r1", OWNER, "{}", 2);
    ASSERT_OK(get_at(2, T0 + RELAY_CACHE_TTL_MS - 1, "r1", &body));
    ASSERT_EQ(get_at(2, T0 + RELAY_CACHE_TTL_MS, "r1", &body), -1);
    ASSERT_EQ(relay_cache_size(), 0);
    relay_cache_clear();
}
