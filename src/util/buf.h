/* Capped, growable byte buffer (after curl's dynbuf). A failed append leaves the buffer
 * unchanged and returns BUF_TOOBIG once the cap would be passed, so every input-driven size
 * has a limit. Data is always NUL-terminated (not counted in len). Not thread-safe; owned by
 * whoever embeds it. */
#ifndef CARAVEL_BUF_H
#define CARAVEL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#define BUF_TOOBIG (-2)

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap; /* allocated */
    size_t max; /* hard limit on len */
};

/* Cannot fail; makes buf_free safe. */
void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
__attribute__((format(printf, 2, 3))) int buf_printf(struct buf *b, const char *fmt, ...);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Hands the data to the caller (free() it; never NULL) and resets the buffer. */
char *buf_take(struct buf *b, size_t *len);

#endif
