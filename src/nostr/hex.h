/* Hex encoding, and the percent-escapes (%XX) of URLs built on it. Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_HEX_H
#define CARAVEL_NOSTR_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*n lowercase hex characters and a NUL to out (capacity >= 2*n+1). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly 2*n hex characters (hex_len must equal 2*n; upper or lower case) into out.
 * Returns 0, or -1 on a wrong length or a non-hex character. */
int hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n);
/* As hex_decode, lowercase digits only (the canonical form of ids, keys and signatures): one
 * pass validates and decodes. Returns 0, or -1 on a wrong length or any other character. */
int hex_decode_lower(const char *hex, size_t hex_len, uint8_t *out, size_t n);
/* The value of one hex digit (upper or lower case), or -1. The program's one hex decoder
 * (percent-escapes, NWC URIs and the decoders above use it). */
int hex_digit(char c);
/* 1 if s is exactly 64 lowercase hex characters (the canonical form of ids and pubkeys). */
int hex_is_lower64(const char *s);

/* Percent-decodes s[0..n) as application/x-www-form-urlencoded values are (URLSearchParams,
 * query strings, NWC URIs): "%XX" (two hex digits, either case) is that byte, '+' a space,
 * anything else itself. Writes at most cap - 1 bytes and a NUL to out (cap >= 1). Returns the
 * decoded length, PERCENT_EBAD when an escape is malformed ('%' not followed by two hex
 * digits) or decodes to a NUL (a value is a C string), or PERCENT_ETOOLONG when the value does
 * not fit (out then holds its first cap - 1 bytes). The program's one percent-decoder. */
#define PERCENT_EBAD (-1)
#define PERCENT_ETOOLONG (-2)
long percent_decode(const char *s, size_t n, char *out, size_t cap);

#endif
