/* repo_new_time_id (core/store.h): the id shape of repo_new_id, ordered by creation second. */
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
    ASSERT(strcmp(a, b) != 0); /* 96 random bits after the time */
    ASSERT(strcmp(a, c) < 0 && strcmp(b, c) < 0);
    repo_new_time_id(a, -5); /* a clock before 1970 still gives a well-formed id */
    ASSERT_EQ(strncmp(a, "00000000", 8), 0);
}
