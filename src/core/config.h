/* Configuration from the environment (PRODUCT.md §2). Every variable is one row of the table in
 * config.c, which drives config_load, `caravel --help` and README.md's configuration table
 * (`caravel --config-table`; a unit test fails when README.md differs). No other file reads the
 * environment. Parsed and validated once at start-up on the main thread; read-only afterwards
 * (safe from any thread). A malformed value is reported with the variable's name and what is
 * wrong, never echoing a secret. */
#ifndef CARAVEL_CONFIG_H
#define CARAVEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LIST 16

struct relay_list {
    char *urls[CONFIG_MAX_LIST]; /* normalised: "wss://" prepended when no ws(s):// scheme */
    size_t n;
};

struct config {
    char *db_path;         /* from DATABASE_URL */
    char *host;            /* HOST */
    int port;              /* PORT */
    char *public_url;      /* PUBLIC_URL without trailing '/', or NULL */
    uint8_t (*admins)[32]; /* ADMINS, x-only pubkeys */
    size_t n_admins;
    char **allow_origins; /* ALLOW_ORIGINS; n_allow_origins == 0 means permissive */
    size_t n_allow_origins;
    char *zooid_api_url; /* without trailing '/', or NULL (sync disabled) */
    uint8_t zooid_secret[32];
    char *relay_domain; /* "" when unset */
    char
        *relay_url_template; /* RELAY_URL_TEMPLATE: where NIP-86 calls go, NULL = https://<host>/ */
    char *invite_link_template;    /* INVITE_LINK_TEMPLATE, {host} and {code} placeholders */
    int64_t blocklist_concurrency; /* BLOCKLIST_CONCURRENCY: NIP-86 calls in flight, default 16 */
    int64_t members_refresh_interval;    /* MEMBERS_REFRESH_INTERVAL seconds, default 900 */
    int64_t members_refresh_concurrency; /* MEMBERS_REFRESH_CONCURRENCY reads in flight, 4 */
    char *livekit_url, *livekit_api_key, *livekit_api_secret; /* NULL when unset */
    char *nwc_url; /* NULL when unset (validated with nwc_uri_parse) */
    int has_robot_secret;
    uint8_t robot_secret[32];                             /* valid when has_robot_secret */
    char *robot_name, *robot_description, *robot_picture; /* NULL when unset */
    struct relay_list outbox_relays, indexer_relays, messaging_relays;
    int64_t auth_max_age;            /* seconds, default 600 */
    int64_t billing_interval;        /* seconds, default 3600 */
    int64_t billing_period;          /* seconds, 0 = calendar month */
    int64_t billing_grace;           /* seconds, default 604800 */
    int64_t billing_wallet_requests; /* platform/tenant wallet requests per run, default 10000 */
    int64_t billing_concurrency;     /* invoices worked on at once, default 8 */
    int64_t billing_lease_ttl;       /* seconds, default 10 (db/lease.h) */
    int metrics_port;                /* METRICS_PORT, 0 = off */
    int64_t http_request_timeout;    /* HTTP_REQUEST_TIMEOUT seconds for head + body, default 30 */
    int64_t http_shutdown_idle;      /* HTTP_SHUTDOWN_IDLE seconds an idle connection may still
                                      * bring a request after SIGTERM, default 2 */
    size_t http_request_buffer;      /* HTTP_REQUEST_BUFFER bytes of request data held, 64 MiB */
    size_t http_response_buffer;     /* HTTP_RESPONSE_BUFFER bytes of unsent responses, 64 MiB */
    size_t http_max_conns;           /* HTTP_MAX_CONNECTIONS, default 10000 */
    int64_t allow_read_only_db;      /* DATABASE_READ_ONLY_OK: 1 = start on a read-only file */
    size_t http_max_conns_per_ip;    /* HTTP_MAX_CONNECTIONS_PER_IP, default 256, 0 = no limit */
    char *log_level;
    char *ca_file; /* CARAVEL_CA_FILE, NULL = the system bundle */
    /* Test-only settings (the suite's fake clock, kill points and short timers); 0 or NULL
     * means "not set: the built-in behaviour". Never set in production. */
    struct config_test {
        char *clock_file;           /* CARAVEL_TEST_CLOCK_FILE */
        char *crash_at;             /* CARAVEL_TEST_CRASH_AT */
        char *pause_at;             /* CARAVEL_TEST_PAUSE_AT */
        int64_t sync_retry_ms;      /* CARAVEL_TEST_SYNC_RETRY_MS */
        int64_t sync_reconcile_ms;  /* CARAVEL_TEST_SYNC_RECONCILE_MS */
        int64_t sync_timeout_ms;    /* CARAVEL_TEST_SYNC_TIMEOUT_MS */
        int64_t sync_batch;         /* CARAVEL_TEST_SYNC_BATCH */
        int64_t sync_breaker_ms;    /* CARAVEL_TEST_SYNC_BREAKER_MS */
        int64_t billing_batch;      /* CARAVEL_TEST_BILLING_BATCH */
        int64_t nwc_pay_timeout_ms; /* CARAVEL_TEST_NWC_PAY_TIMEOUT_MS */
        int64_t robot_retry_base_s; /* CARAVEL_ROBOT_RETRY_BASE */
        int64_t blocklist_retry_ms; /* CARAVEL_TEST_BLOCKLIST_RETRY_MS */
        int64_t db_max_pages;       /* CARAVEL_TEST_DB_MAX_PAGES */
        int64_t claim_lease_ms;     /* CARAVEL_TEST_CLAIM_LEASE_MS */
    } test;
};

/* Fills cfg from the environment. Returns 0, or -1 after writing "VAR: reason" into err.
 * Logs a warning for every test-only setting that is set. */
int config_load(struct config *cfg, char *err, size_t err_cap);
void config_free(struct config *cfg);
/* `caravel --help`: one line per variable, test-only ones in their own section. */
void config_print_help(FILE *f);
/* `caravel --config-table`: the Markdown table README.md carries between its config-table
 * markers, byte for byte. */
void config_print_markdown(FILE *f);
/* The name of the i-th setting of the table, NULL past the end (tests clear them all). */
const char *config_setting_name(size_t i);
/* v when v > 0, else def: how a test-only duration falls back to the built-in one. */
static inline int64_t config_or(int64_t v, int64_t def)
{
    return v > 0 ? v : def;
}
/* 1 when no client can name the API's origin: HOST is a wildcard address (0.0.0.0, ::) and
 * PUBLIC_URL is unset, so every NIP-98 token would have to carry u = http://0.0.0.0:PORT/...
 * (logged as a warning at start-up). */
int config_origin_unreachable(const struct config *cfg);
/* 1 if pubkey is in ADMINS. */
int config_is_admin(const struct config *cfg, const uint8_t pubkey[32]);
/* Normalises one relay URL (trim, prepend wss://); malloc'd or NULL if invalid. */
char *config_normalize_relay(const char *s, size_t n);

#endif
