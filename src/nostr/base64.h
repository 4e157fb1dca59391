/* Standard base64 (RFC 4648, "+/"), strict: whitespace, bad characters, non-zero trailing
 * bits and misplaced '=' are refused (mbedtls 2.28 alone accepts or truncates some of these).
 * Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_BASE64_H
#define CARAVEL_NOSTR_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Returns a malloc'd NUL-terminated padded encoding; *out_len (optional) without the NUL. */
char *base64_encode(const uint8_t *in, size_t n, size_t *out_len);
/* Decodes with or without padding (allow_unpadded) into a malloc'd buffer (NUL appended,
 * not counted). Returns 0 or -1; *out is NULL on failure. */
int base64_decode(const char *in, size_t n, int allow_unpadded, uint8_t **out, size_t *out_len);
/* The same decoding into a caller's buffer (hot paths: no allocation). cap must be at least
 * n / 4 * 3 + 3 (room for the NUL appended); -1 when it is not, or on bad input. */
int base64_decode_to(const char *in, size_t n, int allow_unpadded, uint8_t *out, size_t cap,
                     size_t *out_len);

#endif
