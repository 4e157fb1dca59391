#include "test.h"

#include "core/config.h"
#include "nostr/keys.h"

static void clear_env(void)
{
    for (size_t i = 0; config_setting_name(i); i++)
        unsetenv(config_setting_name(i));
    ASSERT_OK(nostr_init());
}

TEST(config_defaults_with_nothing_set)
{
    struct config c;
    char err[256];
    clear_env();
    ASSERT_OK(config_load(&c, err, sizeof(err)));
    ASSERT_STR_EQ(c.db_path, "data/caravel.db");
    ASSERT_STR_EQ(c.host, "127.0.0.1");
    ASSERT_EQ(c.port, 3000);
    ASSERT_NULL(c.public_url);
    ASSERT_NULL(c.zooid_api_url);
    ASSERT_NULL(c.nwc_url);
    ASSERT_EQ(c.has_robot_secret, 0);
    ASSERT_EQ(c.auth_max_age, 600);
    ASSERT_EQ(c.billing_interval, 3600);
    ASSERT_EQ(c.billing_period, 0);
    ASSERT_EQ(c.billing_grace, 604800);
    ASSERT_EQ(c.billing_wallet_requests, 10000);
    ASSERT_EQ(c.billing_concurrency, 8);
    ASSERT_EQ(c.metrics_port, 0);
    ASSERT_EQ(c.n_admins, 0);
    ASSERT_EQ(c.n_allow_origins, 0);
    ASSERT_STR_EQ(c.relay_domain, "");
    ASSERT_NULL(c.relay_url_template);
    ASSERT_STR_EQ(c.invite_link_template, "https://app.flotilla.social/join?r={host}&c={code}");
    ASSERT_EQ(c.blocklist_concurrency, 16);
    config_free(&c);
}

TEST(config_parses_good_values)
{
    struct config c;
    char err[256];
    clear_env();
    setenv("DATABASE_URL", "sqlite:///data/x.db", 1);
    setenv("PUBLIC_URL", "https://api.example.com/", 1);
    setenv("ADMINS",
           " npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg ,"
           "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d",
           1);
    setenv("ALLOW_ORIGINS", "https://a.example, https://b.example", 1);
    setenv("ZOOID_API_URL", "http://127.0.0.1:9/", 1);
    setenv("ZOOID_API_SECRET", "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",
           1);
    setenv("ROBOT_OUTBOX_RELAYS", "relay.example.com, ws://127.0.0.1:7000 ,,wss://x.example", 1);
    setenv("BILLING_PERIOD", "60", 1);
    setenv("RELAY_URL_TEMPLATE", "http://zooid:3334", 1);
    setenv("INVITE_LINK_TEMPLATE", "https://app.example/join/{code}", 1);
    setenv("BLOCKLIST_CONCURRENCY", "64", 1);
    ASSERT_OK(config_load(&c, err, sizeof(err)));
    ASSERT_STR_EQ(c.relay_url_template, "http://zooid:3334");
    ASSERT_STR_EQ(c.invite_link_template, "https://app.example/join/{code}");
    ASSERT_EQ(c.blocklist_concurrency, 64);
    ASSERT_STR_EQ(c.db_path, "/data/x.db");
    ASSERT_STR_EQ(c.public_url, "https://api.example.com");
    ASSERT_EQ(c.n_admins, 2);
    ASSERT_EQ(c.admins[0][0], 0x7e);
    ASSERT(config_is_admin(&c, c.admins[1]));
    ASSERT_EQ(c.n_allow_origins, 2);
    ASSERT_STR_EQ(c.allow_origins[1], "https://b.example");
    ASSERT_STR_EQ(c.zooid_api_url, "http://127.0.0.1:9");
    ASSERT_EQ(c.zooid_secret[0], 0x67);
    ASSERT_EQ(c.outbox_relays.n, 3);
    ASSERT_STR_EQ(c.outbox_relays.urls[0], "wss://relay.example.com");
    ASSERT_STR_EQ(c.outbox_relays.urls[1], "ws://127.0.0.1:7000");
    ASSERT_EQ(c.billing_period, 60);
    config_free(&c);
}

struct bad_case {
    const char *var, *value, *named;
};

static const char secretish[] = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffzz";

TEST(config_bad_values_name_the_variable_and_hide_secrets)
{
    static const struct bad_case cases[] = {
        {"PORT", "65536", "PORT"},
        {"PORT", "3000x", "PORT"},
        {"METRICS_PORT", "-1", "METRICS_PORT"},
        {"ADMINS", "abc", "ADMINS"},
        {"PUBLIC_URL", "api.example.com", "PUBLIC_URL"},
        {"PUBLIC_URL", "https://api.example.com/v1", "PUBLIC_URL"},
        {"ZOOID_API_URL", "http://x", "ZOOID_API_SECRET"},
        {"ZOOID_API_URL", "https://x.example/zooid", "ZOOID_API_URL"},
        {"ZOOID_API_URL", "https://x.example/relay/", "ZOOID_API_URL"},
        {"ZOOID_API_URL", "https://x.example?a=1", "ZOOID_API_URL"},
        {"ZOOID_API_URL", "https://", "ZOOID_API_URL"},
        {"ZOOID_API_SECRET", secretish, "ZOOID_API_SECRET"},
        {"ROBOT_SECRET", secretish, "ROBOT_SECRET"},
        {"ROBOT_SECRET", "0000000000000000000000000000000000000000000000000000000000000000",
         "ROBOT_SECRET"},
        {"NWC_URL",
         "nostr+walletconnect://zz?relay=wss://r&secret=ffffffffffffffffffffffffffff"
         "ffffffffffffffffffffffffffffffffffzz",
         "NWC_URL"},
        {"ROBOT_INDEXER_RELAYS", "http://x", "ROBOT_INDEXER_RELAYS"},
        {"ROBOT_MESSAGING_RELAYS", "wss://", "ROBOT_MESSAGING_RELAYS"},
        {"AUTH_MAX_AGE", "0", "AUTH_MAX_AGE"},
        {"BILLING_GRACE", "x", "BILLING_GRACE"},
        {"LOG_LEVEL", "verbose", "LOG_LEVEL"},
        {"DATABASE_URL", "mysql://x", "DATABASE_URL"},
        {"HOST", "127.0.0.1 ; rm", "HOST"},
        {"ALLOW_ORIGINS", "https://a.example/path", "ALLOW_ORIGINS"},
        {"ALLOW_ORIGINS", "a.example", "ALLOW_ORIGINS"},
        {"RELAY_DOMAIN", "https://relays.example", "RELAY_DOMAIN"},
        {"RELAY_DOMAIN", ".example", "RELAY_DOMAIN"},
        {"LIVEKIT_URL", "ftp://lk", "LIVEKIT_URL"},
        {"LIVEKIT_URL", "wss://lk.example", "LIVEKIT_API_KEY"},
        {"LIVEKIT_API_SECRET", secretish, "LIVEKIT_URL"},
        {"ROBOT_PICTURE", "robot.png", "ROBOT_PICTURE"},
        {"ROBOT_OUTBOX_RELAYS", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "ROBOT_OUTBOX_RELAYS"},
        {"BILLING_PERIOD", "-1", "BILLING_PERIOD"},
        {"BILLING_INTERVAL", "0", "BILLING_INTERVAL"},
        {"BILLING_WALLET_REQUESTS", "0", "BILLING_WALLET_REQUESTS"},
        {"BILLING_CONCURRENCY", "257", "BILLING_CONCURRENCY"},
        {"RELAY_URL_TEMPLATE", "zooid:3334", "RELAY_URL_TEMPLATE"},
        {"RELAY_URL_TEMPLATE", "http://x/ y", "RELAY_URL_TEMPLATE"},
        {"INVITE_LINK_TEMPLATE", "https://app.example/join", "INVITE_LINK_TEMPLATE"},
        {"BLOCKLIST_CONCURRENCY", "0", "BLOCKLIST_CONCURRENCY"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        char err[256] = "";
        clear_env();
        setenv(cases[i].var, cases[i].value, 1);
        ASSERT_EQ(config_load(&c, err, sizeof(err)), -1);
        if (strncmp(err, cases[i].named, strlen(cases[i].named)) != 0)
            TEST_FAIL_("case %zu: \"%s\" does not name %s", i, err, cases[i].named);
        ASSERT_NULL(strstr(err, "ffffffffffffffff"));
    }
}

TEST(config_normalize_relay_table)
{
    static const char *const in[][2] = {
        {"relay.example.com", "wss://relay.example.com"},
        {"  ws://127.0.0.1:7777/path ", "ws://127.0.0.1:7777/path"},
        {"wss://r.example", "wss://r.example"},
        {"http://r.example", NULL},
        {"wss://", NULL},
        {"", NULL},
        {"a b", NULL},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char *out = config_normalize_relay(in[i][0], strlen(in[i][0]));
        if (in[i][1])
            ASSERT_STR_EQ(out, in[i][1]);
        else
            ASSERT_NULL(out);
        free(out);
    }
}

/* Each value alone must load; a few are checked for how they are stored. */
TEST(config_good_values_table)
{
    static const char *const cases[][3] = {
        {"DATABASE_URL", "sqlite:rel/x.db", "rel/x.db"},
        {"DATABASE_URL", "/abs/y.db", "/abs/y.db"},
        {"HOST", "::1", NULL},
        {"HOST", "localhost", NULL},
        {"PORT", "0", NULL},
        {"PORT", "", NULL},
        {"PUBLIC_URL", "http://127.0.0.1:3000", NULL},
        {"ALLOW_ORIGINS", "https://app.example/", NULL},
        {"RELAY_DOMAIN", "Spaces.Example.com", NULL},
        {"NWC_URL",
         "nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42"
         "ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=71a8c14c1407c113601079c4"
         "302dab36460f0ccd0ad506f1f2dc73b5100e4f3c",
         NULL},
        {"ROBOT_SECRET", "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5", NULL},
        {"ROBOT_PICTURE", "https://example.com/robot.png", NULL},
        {"METRICS_PORT", "9100", NULL},
        {"BILLING_PERIOD", "0", NULL},
        {"BILLING_GRACE", "0", NULL},
        {"LOG_LEVEL", "debug", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        char err[256] = "";
        clear_env();
        setenv(cases[i][0], cases[i][1], 1);
        if (config_load(&c, err, sizeof(err)) != 0)
            TEST_FAIL_("%s=%s refused: %s", cases[i][0], cases[i][1], err);
        if (cases[i][2])
            ASSERT_STR_EQ(c.db_path, cases[i][2]);
        config_free(&c);
    }
    struct config c;
    char err[256];
    clear_env();
    setenv("RELAY_DOMAIN", "Spaces.Example.com", 1);
    setenv("ALLOW_ORIGINS", "https://app.example/", 1);
    setenv("LIVEKIT_URL", "wss://lk.example", 1);
    setenv("LIVEKIT_API_KEY", "k", 1);
    setenv("LIVEKIT_API_SECRET", "s", 1);
    setenv("ROBOT_SECRET", "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5", 1);
    ASSERT_OK(config_load(&c, err, sizeof(err)));
    ASSERT_STR_EQ(c.relay_domain, "spaces.example.com");
    ASSERT_STR_EQ(c.allow_origins[0], "https://app.example");
    ASSERT_STR_EQ(c.livekit_api_secret, "s");
    ASSERT_EQ(c.has_robot_secret, 1);
    ASSERT_EQ(c.robot_secret[0], 0x67);
    config_free(&c);
}

/* HOST / PUBLIC_URL pairs that leave no origin a client could sign for. */
TEST(config_origin_unreachable_table)
{
    static const struct {
        const char *host, *public_url;
        int want;
    } rows[] = {
        {"0.0.0.0", NULL, 1},
        {"::", NULL, 1},
        {"0.0.0.0", "https://api.example.com", 0},
        {"::", "https://api.example.com", 0},
        {"127.0.0.1", NULL, 0},
        {"::1", NULL, 0},
        {"api.internal", NULL, 0},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct config c;
        clear_env();
        setenv("HOST", rows[i].host, 1);
        if (rows[i].public_url)
            setenv("PUBLIC_URL", rows[i].public_url, 1);
        ASSERT_OK(config_load(&c, err, sizeof(err)));
        ASSERT_EQ(config_origin_unreachable(&c), rows[i].want);
        config_free(&c);
    }
}

/* README.md carries the table config.c generates, byte for byte, between its markers: a
 * setting added to the table without README.md (or the reverse) fails here. */
TEST(config_readme_table_matches_the_settings_table)
{
    static const char begin[] = "<!-- config-table:", end[] = "<!-- config-table end -->";
    char *readme = test_read_file("README.md", NULL), *table = NULL;
    size_t table_len = 0;
    ASSERT_NOT_NULL(readme);
    FILE *f = open_memstream(&table, &table_len);
    ASSERT_NOT_NULL(f);
    config_print_markdown(f);
    fclose(f);
    char *a = strstr(readme, begin), *b = a ? strstr(a, end) : NULL;
    ASSERT(a && b);
    a = strchr(a, '\n') + 1;
    if ((size_t)(b - a) != table_len || memcmp(a, table, table_len) != 0)
        TEST_FAIL_("README.md's configuration table differs from src/core/config.c: paste "
                   "the output of `build/caravel --config-table` between its markers");
    free(table);
    free(readme);
}

/* Every variable is in --help, the test-only ones after the "Test only" heading. */
TEST(config_help_lists_every_setting)
{
    char *help = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    ASSERT_NOT_NULL(f);
    config_print_help(f);
    fclose(f);
    const char *test_part = strstr(help, "Test only");
    ASSERT_NOT_NULL(test_part);
    for (size_t i = 0; config_setting_name(i); i++) {
        const char *name = config_setting_name(i);
        const char *at = strstr(help, name);
        if (!at)
            TEST_FAIL_("%s missing from --help", name);
        if (strncmp(name, "CARAVEL_TEST_", 13) == 0 && at < test_part)
            TEST_FAIL_("%s listed before the test-only heading", name);
    }
    free(help);
}

/* Test-only settings are validated like the others and reach struct config. */
TEST(config_test_only_settings_load)
{
    struct config c;
    char err[256];
    clear_env();
    setenv("CARAVEL_TEST_SYNC_RETRY_MS", "100", 1);
    setenv("CARAVEL_TEST_CRASH_AT", "after_answer", 1);
    setenv("CARAVEL_ROBOT_RETRY_BASE", "1", 1);
    setenv("CARAVEL_CA_FILE", "/tmp/ca.pem", 1);
    setenv("LOG_LEVEL", "error", 1); /* each test-only setting logs a warning */
    ASSERT_OK(config_load(&c, err, sizeof(err)));
    ASSERT_EQ(c.test.sync_retry_ms, 100);
    ASSERT_EQ(c.test.sync_reconcile_ms, 0);
    ASSERT_EQ(config_or(c.test.sync_reconcile_ms, 60000), 60000);
    ASSERT_STR_EQ(c.test.crash_at, "after_answer");
    ASSERT_EQ(c.test.robot_retry_base_s, 1);
    ASSERT_STR_EQ(c.ca_file, "/tmp/ca.pem");
    config_free(&c);
    static const char *const bad[][2] = {
        {"CARAVEL_TEST_CRASH_AT", "nowhere"},
        {"CARAVEL_TEST_SYNC_TIMEOUT_MS", "0"},
        {"CARAVEL_TEST_NWC_PAY_TIMEOUT_MS", "x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env();
        setenv("LOG_LEVEL", "error", 1);
        setenv(bad[i][0], bad[i][1], 1);
        ASSERT_EQ(config_load(&c, err, sizeof(err)), -1);
        ASSERT_EQ(strncmp(err, bad[i][0], strlen(bad[i][0])), 0);
    }
}
