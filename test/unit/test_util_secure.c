#include "test.h"

#include <string.h>

#include "util/util.h"

/* secure_equal, table-driven: equal, a difference at either end or in the middle, and n = 0. */
TEST(secure_equal_compares_every_byte)
{
    static const struct {
        const char *a, *b;
        size_t n;
        int want;
    } rows[] = {
        {"0123456789abcdef", "0123456789abcdef", 16, 1},
        {"0123456789abcdef", "X123456789abcdef", 16, 0},
        {"0123456789abcdef", "0123456X89abcdef", 16, 0},
        {"0123456789abcdef", "0123456789abcdeX", 16, 0},
        {"0123456789abcdef", "0123456789abcdeX", 15, 1}, /* only n bytes count */
        {"a", "b", 0, 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ASSERT_EQ(secure_equal(rows[i].a, rows[i].b, rows[i].n), rows[i].want);
}

/* secure_zero clears every byte. */
TEST(secure_zero_clears_every_byte)
{
    unsigned char buf[37], zero[37] = {0};
    memset(buf, 0xa5, sizeof(buf));
    secure_zero(buf, sizeof(buf));
    ASSERT_EQ(memcmp(buf, zero, sizeof(buf)), 0);
}
