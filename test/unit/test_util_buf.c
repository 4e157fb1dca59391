#include "test.h"

#include "util/buf.h"

TEST(buf_append_caps_and_keeps_content)
{
    struct buf b;
    buf_init(&b, 8);
    ASSERT_OK(buf_append_str(&b, "hello"));
    ASSERT_EQ(buf_append_str(&b, "world"), BUF_TOOBIG);
    ASSERT_STR_EQ(b.data, "hello");
    ASSERT_OK(buf_printf(&b, "%d", 123));
    ASSERT_STR_EQ(b.data, "hello123");
    ASSERT_EQ(buf_printf(&b, "x"), BUF_TOOBIG);
    buf_consume(&b, 5);
    ASSERT_STR_EQ(b.data, "123");
    size_t n;
    char *p = buf_take(&b, &n);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(p, "123");
    ASSERT_NULL(b.data);
    free(p);
    buf_free(&b);
}

TEST(buf_overflow_of_size_is_refused)
{
    struct buf b;
    buf_init(&b, (size_t)-1);
    ASSERT_OK(buf_append(&b, "ab", 2));
    ASSERT_EQ(buf_append(&b, "x", (size_t)-1), BUF_TOOBIG);
    buf_free(&b);
}
