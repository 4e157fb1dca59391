#include "nostr/hex.h"

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Digit value + 1 of each byte (0: not a hex digit): ids, keys and signatures (256
 * characters per event) are decoded with one load per character. */
static const uint8_t digit1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};

/* digit1 without the uppercase digits. */
static const uint8_t lower1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16};

static int decode_with(const uint8_t table[256], const char *hex, size_t hex_len, uint8_t *out,
                       size_t n)
{
    const unsigned char *u = (const unsigned char *)hex;
    unsigned bad = 0;
    if (hex_len != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned hi = table[u[2 * i]], lo = table[u[2 * i + 1]];
        bad |= (hi == 0) | (lo == 0); /* no branch per byte: checked once at the end */
        out[i] = (uint8_t)((hi - 1) << 4 | ((lo - 1) & 15));
    }
    return bad ? -1 : 0;
}

int hex_decode_lower(const char *hex, size_t hex_len, uint8_t *out, size_t n)
{
    return decode_with(lower1, hex, hex_len, out, n);
}

int hex_digit(char c)
{
    return (int)digit1[(unsigned char)c] - 1;
}

int hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n)
{
    return decode_with(digit1, hex, hex_len, out, n);
}

long percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            unsigned hi = n - i >= 3 ? digit1[(unsigned char)s[i + 1]] : 0;
            unsigned lo = hi ? digit1[(unsigned char)s[i + 2]] : 0;
            if (!lo || (hi == 1 && lo == 1)) {
                out[o] = '\0';
                return PERCENT_EBAD;
            }
            c = (unsigned char)((hi - 1) << 4 | (lo - 1));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap) {
            out[o] = '\0';
            return PERCENT_ETOOLONG;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

int hex_is_lower64(const char *s)
{
    for (int i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[64] == '\0';
}
