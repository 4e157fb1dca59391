/* The service's wall clock, injectable for tests. clock_now() is unix seconds; when a fake
 * clock file is set (CARAVEL_TEST_CLOCK_FILE, by main.c), its content (an integer) is the
 * current time instead, re-read at every call, so a test can move time forward by rewriting
 * the file in place (a month of billing in seconds; a read that finds it empty mid-rewrite
 * answers the last time read). Thread-safe once clock_use_file has run. */
#ifndef CARAVEL_CLOCK_H
#define CARAVEL_CLOCK_H

#include <stdint.h>

int64_t clock_now(void);
/* Main thread, at start-up before other threads exist: path (kept, not copied) or NULL. */
void clock_use_file(const char *path);
/* Monotonic milliseconds, for timeouts and latency (never faked). */
uint64_t clock_mono_ms(void);
/* Real unix time in milliseconds (never faked): the leases of claims shared with other
 * instances, whose clocks must agree (NTP) to within a small part of a lease. */
int64_t clock_wall_ms(void);

#endif
