/* UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
 * Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_UTF8_H
#define CARAVEL_NOSTR_UTF8_H

#include <stddef.h>

/* 0 when the n bytes at s are well-formed UTF-8 (NUL bytes count as valid), -1 otherwise. */
int utf8_valid(const char *s, size_t n);

#endif
