#include "util/clock.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Set once at start-up, before any other thread runs; read-only afterwards. */
static const char *fake_clock_file;
static int fake_clock_fd = -1;
/* The last time read from the file: what a read that catches a rewrite between its truncation
 * and its write (an empty file) answers, instead of the real time. */
static _Atomic int64_t fake_last;

void clock_use_file(const char *path)
{
    fake_clock_file = path;
    /* Kept open and read with pread (one system call; an fopen, fscanf and fclose per call
     * were 5, and a fair share of the billing benchmark's CPU). Tests rewrite the file in
     * place, so the descriptor sees every new time. */
    fake_clock_fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
}

static int read_fake(int64_t *out)
{
    char buf[32];
    ssize_t n;
    int fd = fake_clock_fd;
    if (fd < 0) /* the file did not exist at start-up: open it each time */
        fd = open(fake_clock_file, O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf) - 1, 0);
    if (fd >= 0 && fd != fake_clock_fd)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *end;
    long long t = strtoll(buf, &end, 10);
    if (end == buf)
        return -1;
    *out = (int64_t)t;
    return 0;
}

int64_t clock_now(void)
{
    if (fake_clock_file) {
        int64_t t;
        if (read_fake(&t) == 0) {
            atomic_store(&fake_last, t);
            return t;
        }
        if ((t = atomic_load(&fake_last)) != 0)
            return t;
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
