#include "nostr/utf8.h"

#include <stdint.h>

/* Length of the sequence starting with lead byte c and the allowed range of its second
 * byte (tighter than 80..BF for E0, ED, F0, F4: that excludes overlongs, surrogates and
 * code points above U+10FFFF, as in the Unicode table 3-7). */
static int seq_len(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return 2;
    if (c < 0xF0) {
        if (c == 0xE0)
            *lo = 0xA0;
        else if (c == 0xED)
            *hi = 0x9F;
        return 3;
    }
    if (c > 0xF4)
        return 0;
    if (c == 0xF0)
        *lo = 0x90;
    else if (c == 0xF4)
        *hi = 0x8F;
    return 4;
}

int utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint8_t lo, hi;
        int len = seq_len(p[i], &lo, &hi);
        if (len == 0 || (size_t)len > n - i)
            return -1;
        for (int k = 1; k < len; k++) {
            uint8_t c = p[i + (size_t)k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF))
                return -1;
        }
        i += (size_t)len;
    }
    return 0;
}
