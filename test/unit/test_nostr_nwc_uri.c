#include "test.h"

#include "nostr/hex.h"
#include "nostr/nwc_uri.h"
#include "nostr_vec.h"
#include "util/buf.h"
#include "util/util.h"

/* Spec example of 47.md, and keys from nostr-tools nip47.test.ts. */
#define WPK "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
#define SEC "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"

static const struct {
    const char *uri;
    size_t n_relays;
    const char *relay0, *relay1, *lud16;
} valid[] = {
    {"nostr+walletconnect://" WPK "?relay=wss%3A%2F%2Frelay.damus.io&secret=" SEC, 1,
     "wss://relay.damus.io", NULL, NULL},
    {"nostr+walletconnect:" WPK "?relay=wss%3A%2F%2Frelay.damus.io&secret=" SEC, 1,
     "wss://relay.damus.io", NULL, NULL},
    {"nostrwalletconnect://" WPK "?relay=wss://relay.example.com/&secret=" SEC, 1,
     "wss://relay.example.com/", NULL, NULL},
    {"NOSTR+WALLETCONNECT://" WPK "/?secret=" SEC "&relay=ws%3a%2f%2f127.0.0.1%3a7777"
     "&relay=wss%3A%2F%2Fnos.lol%2Fpath%3Fa%3Db&lud16=alice%40getalby.com",
     2, "ws://127.0.0.1:7777", "wss://nos.lol/path?a=b", "alice@getalby.com"},
    {"nostr+walletconnect://" WPK "?relay=wss://r.example&unknown=1&&secret=" SEC "#frag", 1,
     "wss://r.example", NULL, NULL},
    {"nostr+walletconnect://" WPK "?relay=wss://r.example&secret="
     "nsec1w8udu59ydjvedgs3yv5qccshcj8k05fh3l60k9x57asjrqdpa00qkmr89m",
     1, "wss://r.example", NULL, NULL},
};

TEST(nostr_nwc_uri_valid_table)
{
    vec_init();
    uint8_t wpk[32], sec[32];
    vec_hex(WPK, wpk, 32);
    vec_hex(SEC, sec, 32);
    for (size_t i = 0; i < ARRAY_SIZE(valid); i++) {
        struct nwc_uri u;
        const char *err = "x";
        if (nwc_uri_parse(valid[i].uri, &u, &err) != 0)
            TEST_FAIL_("refused valid URI #%zu: %s", i, err);
        ASSERT_NULL(err);
        ASSERT_MEM_EQ(u.wallet_pubkey, wpk, 32);
        if (i != 5)
            ASSERT_MEM_EQ(u.secret, sec, 32);
        ASSERT_EQ(u.n_relays, valid[i].n_relays);
        ASSERT_STR_EQ(u.relays[0], valid[i].relay0);
        if (valid[i].relay1)
            ASSERT_STR_EQ(u.relays[1], valid[i].relay1);
        if (valid[i].lud16)
            ASSERT_STR_EQ(u.lud16, valid[i].lud16);
        else
            ASSERT_NULL(u.lud16);
        nwc_uri_free(&u);
        ASSERT_NULL(u.lud16);
    }
}

static const struct {
    const char *uri, *err;
} invalid[] = {
    {"", "not a nostr+walletconnect:// URI"},
    {"https://" WPK "?relay=wss://r&secret=" SEC, "not a nostr+walletconnect:// URI"},
    {"nostr+walletconnect//" WPK "?relay=wss://r&secret=" SEC, "not a nostr+walletconnect:// URI"},
    {"nostr+walletconnect://?relay=wss://r&secret=" SEC, "wallet pubkey is not 64 hex characters"},
    {"nostr+walletconnect://b889ff5b?relay=wss://r&secret=" SEC,
     "wallet pubkey is not 64 hex characters"},
    {"nostr+walletconnect://" WPK "00?relay=wss://r&secret=" SEC,
     "wallet pubkey is not 64 hex characters"},
    {"nostr+walletconnect://zz89ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
     "?relay=wss://r&secret=" SEC,
     "wallet pubkey is not a valid public key"},
    {"nostr+walletconnect://eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34"
     "?relay=wss://r&secret=" SEC,
     "wallet pubkey is not a valid public key"}, /* off-curve */
    {"nostr+walletconnect://" WPK, "missing query (relay and secret)"},
    {"nostr+walletconnect://" WPK "?secret=" SEC, "no relay in connection URI"},
    {"nostr+walletconnect://" WPK "?relay=&secret=" SEC, "relay is not a ws:// or wss:// URL"},
    {"nostr+walletconnect://" WPK "?relay=https%3A%2F%2Fr&secret=" SEC,
     "relay is not a ws:// or wss:// URL"},
    {"nostr+walletconnect://" WPK "?relay=wss%3A%2F%2F&secret=" SEC,
     "relay is not a ws:// or wss:// URL"},
    {"nostr+walletconnect://" WPK "?relay=wss://r", "missing secret in connection URI"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=",
     "secret is not a valid 64-hex or nsec secret key"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=71a8c14c",
     "secret is not a valid 64-hex or nsec secret key"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret="
     "0000000000000000000000000000000000000000000000000000000000000000",
     "secret is not a valid 64-hex or nsec secret key"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=" SEC "&secret=" SEC,
     "secret given twice"},
    {"nostr+walletconnect://" WPK "?relay=wss%3A%2F%2Fr%2&secret=" SEC,
     "bad percent-encoding in query"},
    {"nostr+walletconnect://" WPK "?relay=wss%3A%2F%2Fr%0A&secret=" SEC,
     "bad percent-encoding in query"},
    {"nostr+walletconnect://" WPK "?relay=wss%zz&secret=" SEC, "bad percent-encoding in query"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=" SEC "&lud16=nobody",
     "lud16 is not a lightning address"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=" SEC "&lud16=",
     "lud16 is not a lightning address"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=" SEC "&lud16=a@b&lud16=a@b",
     "lud16 given twice"},
    {"nostr+walletconnect://" WPK "?relay=wss://r&secret=" SEC " ",
     "connection URI contains spaces or non-ASCII characters"},
    {"nostr+walletconnect://" WPK "?relay=wss://r\xc3\xa9&secret=" SEC,
     "connection URI contains spaces or non-ASCII characters"},
};

TEST(nostr_nwc_uri_invalid_table)
{
    vec_init();
    for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
        struct nwc_uri u;
        const char *err = NULL;
        if (nwc_uri_parse(invalid[i].uri, &u, &err) != -1)
            TEST_FAIL_("accepted invalid URI #%zu", i);
        if (!err || strcmp(err, invalid[i].err) != 0)
            TEST_FAIL_("#%zu: error \"%s\", want \"%s\"", i, err ? err : "(null)", invalid[i].err);
        /* The message never echoes the secret. */
        ASSERT_NULL(strstr(err, "71a8c14c"));
        ASSERT_EQ(u.n_relays, 0);
        ASSERT_NULL(u.lud16);
    }
}

TEST(nostr_nwc_uri_caps)
{
    vec_init();
    struct buf b;
    struct nwc_uri u;
    const char *err = NULL;
    buf_init(&b, 2 * NWC_URI_MAX_LEN);
    ASSERT_OK(buf_append_str(&b, "nostr+walletconnect://" WPK "?secret=" SEC));
    for (int i = 0; i <= NWC_URI_MAX_RELAYS; i++)
        ASSERT_OK(buf_printf(&b, "&relay=wss://r%d.example", i));
    ASSERT_EQ(nwc_uri_parse(b.data, &u, &err), -1);
    ASSERT_STR_EQ(err, "too many relays");
    while (b.len <= NWC_URI_MAX_LEN)
        ASSERT_OK(buf_append_str(&b, "&x=y"));
    ASSERT_EQ(nwc_uri_parse(b.data, &u, &err), -1);
    ASSERT_STR_EQ(err, "connection URI too long");
    buf_free(&b);
}
