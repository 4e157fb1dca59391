#include "nostr/base64.h"

#include <stdlib.h>

#include "util/util.h"

/* Hand-written instead of mbedtls_base64_*: mbedtls 2.28 silently drops an unpadded final
 * group ("YQ" -> 0 bytes, rc 0) and skips CR/LF, both of which would let two different
 * strings decode to the same bytes. */
static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *in, size_t n, size_t *out_len)
{
    size_t len = (n + 2) / 3 * 4, o = 0;
    char *out = xmalloc(len + 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

/* Sextet value + 1 of each byte (0: not in the alphabet), so decoding is one load per
 * character: a fresh NIP-98 token (~600 characters) is decoded on every request. */
static const uint8_t sextet1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64};

/* Length of the data part once the padding is accounted for, or -1 when the '=' layout or
 * the length is not canonical. */
static long data_chars(const char *in, size_t n, int allow_unpadded)
{
    size_t pad = 0;
    if (n % 4 == 0) {
        while (pad < 2 && pad < n && in[n - 1 - pad] == '=')
            pad++;
    } else if (!allow_unpadded || n % 4 == 1) {
        return -1;
    }
    size_t data = n - pad;
    if (data % 4 == 1)
        return -1;
    return (long)data;
}

/* Decodes the data part (data characters of in) into dst, which holds at least
 * data / 4 * 3 + 2 bytes; the decoded length, or -1. */
static long decode_data(const unsigned char *u, long data, uint8_t *dst)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    long i = 0;
    for (; i + 4 <= data; i += 4) { /* whole groups: 4 characters -> 3 bytes */
        unsigned a = sextet1[u[i]], b = sextet1[u[i + 1]], c = sextet1[u[i + 2]],
                 d = sextet1[u[i + 3]];
        if (!a || !b || !c || !d)
            return -1;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        dst[o++] = (uint8_t)(v >> 16);
        dst[o++] = (uint8_t)(v >> 8);
        dst[o++] = (uint8_t)v;
    }
    for (; i < data; i++) { /* the final 2 or 3 characters */
        unsigned v = sextet1[u[i]];
        if (!v)
            return -1;
        acc = (acc << 6) | (v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (uint8_t)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    /* Leftover bits must be zero, or two strings would decode to the same bytes. */
    return acc != 0 ? -1 : (long)o;
}

int base64_decode(const char *in, size_t n, int allow_unpadded, uint8_t **out, size_t *out_len)
{
    long data = data_chars(in, n, allow_unpadded), o;
    *out = NULL;
    if (data < 0)
        return -1;
    uint8_t *dst = xmalloc((size_t)data / 4 * 3 + 3);
    o = decode_data((const unsigned char *)in, data, dst);
    if (o < 0) {
        free(dst);
        return -1;
    }
    dst[o] = '\0';
    *out = dst;
    if (out_len)
        *out_len = (size_t)o;
    return 0;
}

int base64_decode_to(const char *in, size_t n, int allow_unpadded, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    long data = data_chars(in, n, allow_unpadded), o;
    if (data < 0 || (size_t)data / 4 * 3 + 3 > cap)
        return -1;
    o = decode_data((const unsigned char *)in, data, out);
    if (o < 0)
        return -1;
    out[o] = '\0';
    *out_len = (size_t)o;
    return 0;
}
