/* util/clock.c's fake clock (CARAVEL_TEST_CLOCK_FILE): the file's integer is the time, read at
 * every call; rewritten in place, the next call sees the new time; caught empty between a
 * rewrite's truncation and its write, the last time read; a file created only after start-up
 * is read too. Table-driven: each step writes the file (or not) and checks clock_now. */
#include "test.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w"); /* in place: truncate, then write (as the tests' writeFileSync) */
    ASSERT_NE(f != NULL, 0);
    fputs(content, f);
    fclose(f);
}

TEST(clock_fake_file_rewritten_in_place)
{
    static const struct {
        const char *content; /* NULL: leave the file as it is */
        long long want;      /* 0: the real time */
    } steps[] = {
        {"1800000000", 1800000000}, {NULL, 1800000000},      {"1800000061\n", 1800000061},
        {"", 1800000061},           {"garbage", 1800000061}, {"1900000000", 1900000000},
    };
    char dir[64], path[128];
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/clock", dir);
    write_file(path, "1700000000");
    clock_use_file(path);
    ASSERT_EQ(clock_now(), 1700000000);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].content)
            write_file(path, steps[i].content);
        ASSERT_EQ(clock_now(), steps[i].want);
    }
}

TEST(clock_fake_file_created_after_start)
{
    char dir[64], path[128];
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/later", dir);
    clock_use_file(path); /* not there yet: the real time */
    long long real = (long long)time(NULL);
    ASSERT_LE(real - 1, clock_now());
    write_file(path, "1750000000");
    ASSERT_EQ(clock_now(), 1750000000);
    ASSERT_OK(unlink(path));
    ASSERT_EQ(clock_now(), 1750000000); /* gone again: the last time read */
}
