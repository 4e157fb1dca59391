#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Set once at start-up, before any other thread runs; read-only afterwards. */
static const char *fake_clock_file;

void clock_use_file(const char *path)
{
    fake_clock_file = path;
}

int64_t clock_now(void)
{
    const char *path = fake_clock_file;
    if (path) {
        FILE *f = fopen(path, "r");
        long long t = 0;
        int ok = f && fscanf(f, "%lld", &t) == 1;
        if (f)
            fclose(f);
        if (ok)
            return (int64_t)t;
    }
    return (int64_t)time(NULL);
}

uint64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
