/* The service's wall clock, injectable for tests. clock_now() is unix seconds; when the
 * environment variable CARAVEL_TEST_CLOCK_FILE names a file, its content (an integer) is the
 * current time instead, re-read at most every call, so a test can move time forward by
 * rewriting the file (a month of billing in seconds). Thread-safe. */
#ifndef CARAVEL_CLOCK_H
#define CARAVEL_CLOCK_H

#include <stdint.h>

int64_t clock_now(void);
/* Monotonic milliseconds, for timeouts and latency (never faked). */
uint64_t clock_mono_ms(void);

#endif
