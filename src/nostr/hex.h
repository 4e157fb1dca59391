/* Hex encoding. Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_HEX_H
#define CARAVEL_NOSTR_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*n lowercase hex characters and a NUL to out (capacity >= 2*n+1). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly 2*n hex characters (hex_len must equal 2*n; upper or lower case) into out.
 * Returns 0, or -1 on a wrong length or a non-hex character. */
int hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n);
/* The value of one hex digit (upper or lower case), or -1. The program's one hex decoder
 * (percent-escapes, NWC URIs and the decoders above use it). */
int hex_digit(char c);
/* 1 if s is exactly 64 lowercase hex characters (the canonical form of ids and pubkeys). */
int hex_is_lower64(const char *s);

#endif
