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

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

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

int base64_decode(const char *in, size_t n, int allow_unpadded, uint8_t **out, size_t *out_len)
{
    long data = data_chars(in, n, allow_unpadded);
    uint8_t *dst = NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    *out = NULL;
    if (data < 0)
        return -1;
    dst = xmalloc((size_t)data / 4 * 3 + 3);
    for (long i = 0; i < data; i++) {
        int v = sextet(in[i]);
        if (v < 0)
            goto fail;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (uint8_t)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    /* Leftover bits must be zero, or two strings would decode to the same bytes. */
    if (acc != 0)
        goto fail;
    dst[o] = '\0';
    *out = dst;
    if (out_len)
        *out_len = o;
    return 0;
fail:
    free(dst);
    return -1;
}
