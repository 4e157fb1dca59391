#include "nostr/nip19.h"

#include <string.h>

/* BIP-173 bech32 (checksum constant 1, not bech32m). NIP-19 strings may exceed BIP-173's
 * 90 characters; NIP19_MAX_LEN caps them instead. */
static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t pre)
{
    uint8_t b = (uint8_t)(pre >> 25);
    return ((pre & 0x1ffffff) << 5) ^ (-((b >> 0) & 1) & 0x3b6a57b2UL) ^
           (-((b >> 1) & 1) & 0x26508e6dUL) ^ (-((b >> 2) & 1) & 0x1ea119faUL) ^
           (-((b >> 3) & 1) & 0x3d4233ddUL) ^ (-((b >> 4) & 1) & 0x2a1462b3UL);
}

static uint32_t hrp_polymod(const char *hrp, size_t hrp_len)
{
    uint32_t chk = 1;
    for (size_t i = 0; i < hrp_len; i++)
        chk = polymod_step(chk) ^ ((uint8_t)hrp[i] >> 5);
    chk = polymod_step(chk);
    for (size_t i = 0; i < hrp_len; i++)
        chk = polymod_step(chk) ^ ((uint8_t)hrp[i] & 0x1f);
    return chk;
}

/* Regroups bits; pad=1 on encode. On decode (pad=0) leftover bits must be fewer than
 * `from` and zero. Returns the output count or -1. */
static long convert_bits(uint8_t *out, size_t cap, const uint8_t *in, size_t n, int from, int to,
                         int pad)
{
    uint32_t acc = 0, maxv = (1u << to) - 1;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << from) | in[i];
        bits += from;
        while (bits >= to) {
            bits -= to;
            if (o == cap)
                return -1;
            out[o++] = (uint8_t)((acc >> bits) & maxv);
        }
    }
    if (pad && bits) {
        if (o == cap)
            return -1;
        out[o++] = (uint8_t)((acc << (to - bits)) & maxv);
    } else if (!pad && (bits >= from || ((acc << (to - bits)) & maxv))) {
        return -1;
    }
    return (long)o;
}

int nip19_encode(const char *hrp, const uint8_t *data, size_t n, char *out, size_t cap)
{
    uint8_t five[NIP19_MAX_LEN];
    size_t hrp_len = strlen(hrp);
    long n5 = convert_bits(five, sizeof(five), data, n, 8, 5, 1);
    if (n5 < 0 || hrp_len + 1 + (size_t)n5 + 6 + 1 > cap)
        return -1;
    uint32_t chk = hrp_polymod(hrp, hrp_len);
    memcpy(out, hrp, hrp_len);
    size_t o = hrp_len;
    out[o++] = '1';
    for (long i = 0; i < n5; i++) {
        chk = polymod_step(chk) ^ five[i];
        out[o++] = charset[five[i]];
    }
    for (int i = 0; i < 6; i++)
        chk = polymod_step(chk);
    chk ^= 1;
    for (int i = 0; i < 6; i++)
        out[o++] = charset[(chk >> ((5 - i) * 5)) & 31];
    out[o] = '\0';
    return 0;
}

static int charset_rev(char c)
{
    const char *p = c ? strchr(charset, c) : NULL;
    return p ? (int)(p - charset) : -1;
}

int nip19_decode(const char *s, char *hrp, size_t hrp_cap, uint8_t *data, size_t *n,
                 size_t data_cap)
{
    char low[NIP19_MAX_LEN + 1];
    uint8_t five[NIP19_MAX_LEN];
    size_t len = strnlen(s, NIP19_MAX_LEN + 1);
    int has_lower = 0, has_upper = 0;
    if (len > NIP19_MAX_LEN || len < 8)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c < 33 || c > 126)
            return -1;
        has_lower |= c >= 'a' && c <= 'z';
        has_upper |= c >= 'A' && c <= 'Z';
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    low[len] = '\0';
    char *sep = strrchr(low, '1');
    if (has_lower && has_upper)
        return -1;
    if (!sep || sep == low || (size_t)(low + len - sep) < 7)
        return -1;
    size_t hrp_len = (size_t)(sep - low), n5 = len - hrp_len - 1;
    if (hrp_len + 1 > hrp_cap)
        return -1;
    uint32_t chk = hrp_polymod(low, hrp_len);
    for (size_t i = 0; i < n5; i++) {
        int v = charset_rev(sep[1 + i]);
        if (v < 0)
            return -1;
        five[i] = (uint8_t)v;
        chk = polymod_step(chk) ^ (uint32_t)v;
    }
    if (chk != 1)
        return -1;
    long n8 = convert_bits(data, data_cap, five, n5 - 6, 5, 8, 0);
    if (n8 < 0)
        return -1;
    memcpy(hrp, low, hrp_len);
    hrp[hrp_len] = '\0';
    *n = (size_t)n8;
    return 0;
}

int nip19_encode_key(const char *hrp, const uint8_t key[32], char *out, size_t cap)
{
    return nip19_encode(hrp, key, 32, out, cap);
}

int nip19_decode_key(const char *s, const char *want_hrp, uint8_t key[32])
{
    char hrp[16];
    uint8_t data[64];
    size_t n = 0;
    if (nip19_decode(s, hrp, sizeof(hrp), data, &n, sizeof(data)) != 0)
        return -1;
    if (strcmp(hrp, want_hrp) != 0 || n != 32)
        return -1;
    memcpy(key, data, 32);
    return 0;
}
