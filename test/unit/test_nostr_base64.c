#include "test.h"

#include "nostr/base64.h"
#include "util/util.h"

/* RFC 4648 §10 vectors, both directions. */
static const struct {
    const char *raw, *b64;
} rfc[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(nostr_base64_rfc4648_vectors)
{
    for (size_t i = 0; i < ARRAY_SIZE(rfc); i++) {
        size_t n = 0;
        char *enc = base64_encode((const uint8_t *)rfc[i].raw, strlen(rfc[i].raw), &n);
        ASSERT_STR_EQ(enc, rfc[i].b64);
        ASSERT_EQ(n, strlen(rfc[i].b64));
        free(enc);
        uint8_t *dec = NULL;
        ASSERT_OK(base64_decode(rfc[i].b64, strlen(rfc[i].b64), 0, &dec, &n));
        ASSERT_EQ(n, strlen(rfc[i].raw));
        ASSERT_MEM_EQ(dec, rfc[i].raw, n);
        ASSERT_EQ(dec[n], 0);
        free(dec);
    }
}

TEST(nostr_base64_unpadded_only_when_allowed)
{
    uint8_t *out = NULL;
    size_t n = 0;
    ASSERT_EQ(base64_decode("YQ", 2, 0, &out, &n), -1); /* mbedtls returns 0 bytes, rc 0 */
    ASSERT_NULL(out);
    ASSERT_OK(base64_decode("YQ", 2, 1, &out, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(out[0], 'a');
    free(out);
    ASSERT_OK(base64_decode("YWJjZA", 6, 1, &out, &n));
    ASSERT_EQ(n, 4);
    ASSERT_MEM_EQ(out, "abcd", 4);
    free(out);
    ASSERT_EQ(base64_decode("YWJjZA", 6, 0, &out, &n), -1);
    /* Padded input stays accepted when unpadded is allowed. */
    ASSERT_OK(base64_decode("YQ==", 4, 1, &out, &n));
    free(out);
}

TEST(nostr_base64_strict_rejections)
{
    static const char *const bad[] = {
        "Y",        /* 1 char group */
        "YQ=",      /* partial padding */
        "Y===",     /* three '=' */
        "=QQQ",     /* '=' first */
        "YQ==YQ==", /* '=' in the middle */
        "YR==",     /* non-zero trailing bits */
        "YWI=x",    /* data after padding */
        "Zm9v\n",   /* newline (mbedtls skips it) */
        "Zm 9v",    /* space */
        "Zm9v-_==", /* URL-safe alphabet */
        "Zm9\x80",  /* high byte */
        "YWJ=",     /* non-zero trailing bits with one '=' */
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint8_t *out = (uint8_t *)1;
        size_t n = 0;
        if (base64_decode(bad[i], strlen(bad[i]), 1, &out, &n) != -1)
            TEST_FAIL_("accepted bad base64 #%zu", i);
        ASSERT_NULL(out);
    }
}

TEST(nostr_base64_binary_round_trip_all_lengths)
{
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); len++) {
        size_t n = 0;
        char *enc = base64_encode(in, len, &n);
        ASSERT_EQ(n % 4, 0);
        uint8_t *dec = NULL;
        ASSERT_OK(base64_decode(enc, n, 0, &dec, &n));
        ASSERT_EQ(n, len);
        ASSERT_MEM_EQ(dec, in, len);
        free(enc);
        free(dec);
    }
}

/* base64_decode_to: the same bytes as base64_decode into the caller's buffer, refused when
 * the buffer is short or the input is bad. */
TEST(nostr_base64_decode_to_buffer)
{
    uint8_t buf[16];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(rfc); i++) {
        memset(buf, 0xee, sizeof(buf));
        ASSERT_OK(base64_decode_to(rfc[i].b64, strlen(rfc[i].b64), 0, buf, sizeof(buf), &n));
        ASSERT_EQ(n, strlen(rfc[i].raw));
        ASSERT_MEM_EQ(buf, rfc[i].raw, n);
        ASSERT_EQ(buf[n], 0);
    }
    ASSERT_OK(base64_decode_to("YWJjZA", 6, 1, buf, sizeof(buf), &n));
    ASSERT_EQ(n, 4);
    ASSERT_EQ(base64_decode_to("YWJjZA", 6, 0, buf, sizeof(buf), &n), -1);
    ASSERT_EQ(base64_decode_to("YR==", 4, 1, buf, sizeof(buf), &n), -1);
    /* "Zm9vYmFy" needs 8 / 4 * 3 + 3 = 9 bytes (6 and the NUL, with the tail's slack) */
    ASSERT_EQ(base64_decode_to("Zm9vYmFy", 8, 0, buf, 8, &n), -1);
    ASSERT_OK(base64_decode_to("Zm9vYmFy", 8, 0, buf, 9, &n));
    ASSERT_EQ(n, 6);
}
