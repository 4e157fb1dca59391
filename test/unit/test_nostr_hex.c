/* nostr/hex.c: the hex codec (digits, decode, the canonical 64-character form) and the one
 * percent-decoder, table-driven. */
#include <string.h>

#include "test.h"

#include "nostr/hex.h"
#include "util/util.h"

TEST(nostr_hex_digit_every_byte)
{
    for (int c = 0; c < 256; c++) {
        int want = -1;
        if (c >= '0' && c <= '9')
            want = c - '0';
        else if (c >= 'a' && c <= 'f')
            want = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            want = c - 'A' + 10;
        ASSERT_EQ(hex_digit((char)c), want);
    }
}

TEST(nostr_hex_decode_table)
{
    static const struct {
        const char *in;
        size_t n;
        int rc;
        const char *want; /* the bytes, when rc == 0 */
    } cases[] = {
        {"", 0, 0, ""},
        {"00ff7F", 3, 0, "\x00\xff\x7f"},
        {"abcdef", 3, 0, "\xab\xcd\xef"},
        {"ABCDEF", 3, 0, "\xab\xcd\xef"},
        {"abc", 2, -1, NULL},     /* odd length */
        {"abcd", 1, -1, NULL},    /* longer than n */
        {"0g", 1, -1, NULL},      /* not a digit */
        {"+1", 1, -1, NULL},      /* no sign */
        {"0 ", 1, -1, NULL},      /* no space */
        {"\xc3\xa9", 1, -1, NULL} /* no UTF-8 */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint8_t out[8];
        int rc = hex_decode(cases[i].in, strlen(cases[i].in), out, cases[i].n);
        if (rc != cases[i].rc)
            TEST_FAIL_("hex_decode(\"%s\", %zu) = %d, want %d", cases[i].in, cases[i].n, rc,
                       cases[i].rc);
        if (rc == 0)
            ASSERT(memcmp(out, cases[i].want, cases[i].n) == 0);
        /* the lowercase decoder: the same answers, and uppercase digits refused */
        int upper = strpbrk(cases[i].in, "ABCDEF") != NULL;
        rc = hex_decode_lower(cases[i].in, strlen(cases[i].in), out, cases[i].n);
        ASSERT_EQ(rc, upper ? -1 : cases[i].rc);
        if (rc == 0)
            ASSERT(memcmp(out, cases[i].want, cases[i].n) == 0);
    }
}

/* Every byte in every position of a 4-digit input: the lowercase decoder accepts exactly the
 * inputs hex_decode accepts without an uppercase digit, with the same bytes. */
TEST(nostr_hex_decode_lower_every_byte)
{
    char in[5] = "a0f9";
    for (int pos = 0; pos < 4; pos++) {
        for (int c = 1; c < 256; c++) {
            uint8_t want[2], got[2];
            char s[5];
            memcpy(s, in, 5);
            s[pos] = (char)c;
            int rc = hex_decode(s, 4, want, 2);
            int lower = !(c >= 'A' && c <= 'F');
            ASSERT_EQ(hex_decode_lower(s, 4, got, 2), rc == 0 && lower ? 0 : -1);
            if (rc == 0 && lower)
                ASSERT(memcmp(want, got, 2) == 0);
        }
    }
}

TEST(nostr_hex_round_trip_and_lower64)
{
    uint8_t in[32], back[32];
    char hx[65];
    for (int i = 0; i < 32; i++)
        in[i] = (uint8_t)(i * 37 + 5);
    hex_encode(in, 32, hx);
    ASSERT_EQ(strlen(hx), 64);
    ASSERT(hex_is_lower64(hx));
    ASSERT_OK(hex_decode(hx, 64, back, 32));
    ASSERT(memcmp(in, back, 32) == 0);
    hx[10] = 'A';
    ASSERT(!hex_is_lower64(hx)); /* uppercase is not the canonical form */
    hx[10] = 'a';
    hx[63] = '\0';
    ASSERT(!hex_is_lower64(hx)); /* 63 characters */
}

TEST(nostr_percent_decode_table)
{
    static const struct {
        const char *in;
        size_t cap;
        long rc;          /* the decoded length, or PERCENT_E* */
        const char *want; /* what out holds afterwards */
    } cases[] = {
        {"", 8, 0, ""},
        {"plain", 8, 5, "plain"},
        {"a+b", 8, 3, "a b"},
        {"%2B", 8, 1, "+"},
        {"%2b%2F", 8, 2, "+/"},
        {"caf%C3%A9", 16, 5, "caf\xc3\xa9"},
        {"%7e", 8, 1, "~"},
        {"100%25", 8, 4, "100%"},
        {"%", 8, PERCENT_EBAD, ""},
        {"%4", 8, PERCENT_EBAD, ""},
        {"ab%4", 8, PERCENT_EBAD, "ab"},
        {"%zz", 8, PERCENT_EBAD, ""},
        {"%g0", 8, PERCENT_EBAD, ""},
        {"%0g", 8, PERCENT_EBAD, ""},
        {"% 1", 8, PERCENT_EBAD, ""},
        {"%+1", 8, PERCENT_EBAD, ""},
        {"%00", 8, PERCENT_EBAD, ""},
        {"a%00b", 8, PERCENT_EBAD, "a"},
        {"%01", 8, 1, "\x01"},
        {"abcdef", 4, PERCENT_ETOOLONG, "abc"},
        {"ab%41", 3, PERCENT_ETOOLONG, "ab"},
        {"abc", 4, 3, "abc"},
        {"", 1, 0, ""},
        {"a", 1, PERCENT_ETOOLONG, ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char out[16];
        memset(out, 'X', sizeof(out));
        long rc = percent_decode(cases[i].in, strlen(cases[i].in), out, cases[i].cap);
        if (rc != cases[i].rc || strcmp(out, cases[i].want) != 0)
            TEST_FAIL_("percent_decode(\"%s\", cap %zu) = %ld \"%s\", want %ld \"%s\"", cases[i].in,
                       cases[i].cap, rc, out, cases[i].rc, cases[i].want);
    }
}

TEST(nostr_percent_decode_reads_only_n_bytes)
{
    /* The value ends at n: an escape cut by the end is malformed even if bytes follow. */
    char out[8];
    ASSERT_EQ(percent_decode("a%41", 3, out, sizeof(out)), PERCENT_EBAD);
    ASSERT_EQ(percent_decode("a%41&b=1", 4, out, sizeof(out)), 2);
    ASSERT_STR_EQ(out, "aA");
}
