/* repo_new_time_id (core/store.h): the id shape of repo_new_id, ordered by creation second,
 * then in the order they were made. */
#include "test.h"

#include "core/store.h"
#include "nostr/keys.h"
#include "util/util.h"

TEST(core_store_time_id_shape_and_order)
{
    char a[33], b[33], c[33];
    ASSERT_OK(nostr_init());
    repo_new_time_id(a, 1700000000);
    repo_new_time_id(b, 1700000000);
    repo_new_time_id(c, 1700000001);
    ASSERT_EQ(strlen(a), 32);
    ASSERT_EQ(strspn(a, "0123456789abcdef"), 32);
    ASSERT_EQ(strncmp(a, "6553f100", 8), 0); /* 1700000000 in hex */
    ASSERT_EQ(strncmp(a, b, 8), 0);
    ASSERT(strcmp(a, b) != 0);
    ASSERT(strcmp(a, c) < 0 && strcmp(b, c) < 0);
    /* Within a second, ascending (the sequence may wrap once around 2^32: not within 1,000). */
    char prev[33], next[33];
    int ascending = 0;
    repo_new_time_id(prev, 1700000000);
    for (int i = 0; i < 1000; i++) {
        repo_new_time_id(next, 1700000000);
        ascending += strcmp(prev, next) < 0;
        memcpy(prev, next, sizeof(prev));
    }
    ASSERT(ascending >= 999);
    /* 64 random bits at the end: two ids of one second and sequence step differ there. */
    ASSERT(strcmp(a + 16, b + 16) != 0);
    repo_new_time_id(a, -5); /* a clock before 1970 still gives a well-formed id */
    ASSERT_EQ(strncmp(a, "00000000", 8), 0);
}
