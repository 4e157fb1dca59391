/* Tiny test harness (after libuv's test/task.h): TEST(name) registers itself at start-up,
 * the runner in main.c forks one child per test with an alarm, and the last line printed is
 * "N passed, N failed". ASSERT macros are never compiled out and abort the child.
 *
 * Helpers for tests that read files: test_read_file() reads a whole file (caller frees),
 * test_vectors_dir() is test/vectors, relative to the repository root the runner starts in
 * (override with CARAVEL_VECTORS). */
#ifndef TEST_TEST_H
#define TEST_TEST_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void test_fn(void);
void test_register(const char *name, test_fn *fn, int timeout_s);
char *test_read_file(const char *path, size_t *len);
const char *test_vectors_dir(void);
/* Writes a fresh temporary directory path into out (>= 64 bytes): a subdirectory of the
 * test's scratch directory, which the runner removes after the test. */
void test_tmpdir(char *out, size_t cap);

#define TEST_TIMEOUT(name, secs)                                                                   \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_reg_##name(void)                                 \
    {                                                                                              \
        test_register(#name, test_##name, secs);                                                   \
    }                                                                                              \
    static void test_##name(void)
#define TEST(name) TEST_TIMEOUT(name, 10)

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            TEST_FAIL_("assertion failed: %s", #c);                                                \
    } while (0)
#define ASSERT_CMP_(a, op, b)                                                                      \
    do {                                                                                           \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                              \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL_("%s %s %s (%" PRId64 " vs %" PRId64 ")", #a, #op, #b, a_, b_);              \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b)
#define ASSERT_OK(x) ASSERT_EQ((x), 0)
#define ASSERT_NULL(p) ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)
#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                 \
            TEST_FAIL_("%s == %s (\"%s\" vs \"%s\")", #a, #b, sa_ ? sa_ : "(null)",                \
                       sb_ ? sb_ : "(null)");                                                      \
    } while (0)
#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            TEST_FAIL_("memory differs: %s vs %s (%zu bytes)", #a, #b, (size_t)(n));               \
    } while (0)

#endif
