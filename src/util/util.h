/* Small helpers shared by every module: container_of, ARRAY_SIZE, MIN/MAX and the
 * out-of-memory policy. Thread-safe, no state. */
#ifndef CARAVEL_UTIL_H
#define CARAVEL_UTIL_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* <sys/param.h> (pulled in by <uv.h>) defines the same two macros. */
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Out-of-memory policy (decided once, see docs/ARCHITECTURE.md): allocation failure is
 * not recoverable in a service whose every input-driven size is capped, so these log and
 * abort instead of returning NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Overwrites n bytes in a way the compiler may not elide (for secrets). */
void secure_zero(void *p, size_t n);
/* 1 when the n bytes at a and b are equal, in a time that does not depend on where they
 * differ (MACs, secrets). */
int secure_equal(const void *a, const void *b, size_t n);

#endif
