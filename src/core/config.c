/* Configuration: the table of settings and the one place that reads the environment.
 *
 * Adding a setting is one row in settings[] below, plus the field of struct config (config.h)
 * that holds it. A row names the variable, how it is stored (.type) and where (AT(field)), its
 * default, its bounds, an optional check, whether it is secret or test-only, and its help text.
 * config_load, `caravel --help` and README.md's table (`caravel --config-table`) all come from
 * the rows; test_core_config.c fails when README.md is out of date (paste the output of
 * `caravel --config-table` between README.md's config-table markers). Types:
 *   T_STR     char *, NULL when unset and without default; .max caps the length (0 = 4000);
 *             .check may refuse the value or rewrite the copy in place before it is stored
 *   T_INT     an int, int64_t or size_t field (by its size), an integer in [.min, .max]
 *   T_KEY     uint8_t[32]: a secret key as 64 hex or nsec1 (always treated as a secret)
 *   T_RELAYS  struct relay_list: comma-separated relay URLs, wss:// added when no scheme
 *   T_CUSTOM  .check parses and stores the value itself (config_free frees what it keeps)
 * .def is the value used when the variable is unset or empty, written as a user would write
 * it; .unset says in the docs what an unset variable without default means. Rules that tie
 * several variables together are in cross_checks(). S_SECRET values are never echoed in an
 * error and are wiped when freed; S_TEST marks the test suite's settings, listed apart in
 * --help and README.md and logged as a warning when set. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/keys.h"
#include "nostr/nwc_uri.h"
#include "util/log.h"
#include "util/util.h"

#define CONFIG_MAX_VALUE 4000
#define DAY 86400

enum type { T_STR, T_INT, T_KEY, T_RELAYS, T_CUSTOM };
enum { S_SECRET = 1, S_TEST = 2 };

/* value: a malloc'd copy of the variable (or of .def) that the check may modify. */
typedef int check_fn(struct config *cfg, char *value, char *err, size_t cap);

struct setting {
    const char *name;
    enum type type;
    size_t at, size; /* AT(field) */
    const char *def;
    int64_t min, max;
    check_fn *check;
    unsigned flags;
    const char *unset;
    const char *help;
};

#define AT(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)

static check_fn check_db_url, check_host, check_public_url, check_admins, check_origins,
    check_zooid_url, check_relay_domain, check_livekit_url, check_nwc_url, check_http_url,
    check_log_level, check_crash_at, check_pause_at, check_relay_url_template, check_invite_link;

/* The settings, in the order --help and README.md list them. */
static const struct setting settings[] = {
    {"DATABASE_URL", T_STR, AT(db_path), .def = "sqlite://data/caravel.db", .check = check_db_url,
     .help = "sqlite://PATH, sqlite:PATH or a bare path (the directory is created), or "
             "postgres://USER:PASSWORD@HOST:PORT/DB (or postgresql://, any libpq URI)"},
    {"HOST", T_STR, AT(host), .def = "127.0.0.1", .max = 253, .check = check_host,
     .help = "bind address; also the host NIP-98 u tags must name unless PUBLIC_URL is set"},
    {"PORT", T_INT, AT(port), .def = "3000", .min = 0, .max = 65535,
     .help = "bind port, 0 = any free port"},
    {"PUBLIC_URL", T_STR, AT(public_url), .max = 1000, .check = check_public_url,
     .help = "public origin behind a reverse proxy, e.g. https://api.example.com"},
    {"ADMINS", T_CUSTOM, AT(admins), .check = check_admins, .unset = "none",
     .help = "comma-separated admin pubkeys (hex or npub)"},
    {"ALLOW_ORIGINS", T_CUSTOM, AT(allow_origins), .check = check_origins,
     .unset = "empty: permissive", .help = "comma-separated CORS origins"},
    {"ZOOID_API_URL", T_STR, AT(zooid_api_url), .max = 1000, .check = check_zooid_url,
     .unset = "unset: sync off",
     .help = "zooid's API origin (scheme://host[:port], no path; host:port = zooid's API_HOST; "
             "behind TLS the proxy sets X-Forwarded-Proto: https; clocks within 60 s, see "
             "docs/OPERATIONS.md)"},
    {"ZOOID_API_SECRET", T_KEY, AT(zooid_secret), .flags = S_SECRET,
     .unset = "required with ZOOID_API_URL",
     .help = "key (hex or nsec) signing zooid requests; its pubkey is in zooid's API_WHITELIST"},
    {"RELAY_DOMAIN", T_STR, AT(relay_domain), .def = "", .max = 200, .check = check_relay_domain,
     .help = "relay hosts are subdomain.RELAY_DOMAIN"},
    {"LIVEKIT_URL", T_STR, AT(livekit_url), .max = 2000, .check = check_livekit_url,
     .help = "LiveKit server sent to zooid (with LIVEKIT_API_KEY and LIVEKIT_API_SECRET)"},
    {"LIVEKIT_API_KEY", T_STR, AT(livekit_api_key), .help = "LiveKit API key"},
    {"LIVEKIT_API_SECRET", T_STR, AT(livekit_api_secret), .flags = S_SECRET,
     .help = "LiveKit API secret"},
    {"RELAY_URL_TEMPLATE", T_STR, AT(relay_url_template), .max = 1000,
     .check = check_relay_url_template, .unset = "unset: https://{host}/",
     .help = "where NIP-86 calls to relays go (invites, bans, the block list); {host} = the relay "
             "host; set, requests also carry Host: <relay host> and X-Forwarded-Proto: https, "
             "so zooid can be reached directly (e.g. http://zooid:3334)"},
    {"INVITE_LINK_TEMPLATE", T_STR, AT(invite_link_template),
     .def = "https://app.flotilla.social/join?r={host}&c={code}", .max = 1000,
     .check = check_invite_link, .help = "join link of an invite: {code} and optionally {host}"},
    {"BLOCKLIST_CONCURRENCY", T_INT, AT(blocklist_concurrency), .def = "16", .min = 1, .max = 256,
     .help = "NIP-86 calls the operator block-list rollout keeps in flight"},
    {"MEMBERS_REFRESH_INTERVAL", T_INT, AT(members_refresh_interval), .def = "900", .min = 1,
     .max = 7 * DAY,
     .help = "seconds between two reads of a relay's member count from zooid (+- 10 %, spread "
             "over the interval; with ZOOID_API_URL)"},
    {"MEMBERS_REFRESH_CONCURRENCY", T_INT, AT(members_refresh_concurrency), .def = "4", .min = 1,
     .max = 64, .help = "member-count reads from zooid in flight at once"},
    {"NWC_URL", T_STR, AT(nwc_url), .max = 8192, .check = check_nwc_url, .flags = S_SECRET,
     .unset = "unset: no invoices", .help = "platform wallet (NIP-47 URI) that issues invoices"},
    {"ROBOT_SECRET", T_KEY, AT(robot_secret), .flags = S_SECRET,
     .unset = "generated once, kept in the DB", .help = "robot key (hex or nsec)"},
    {"ROBOT_NAME", T_STR, AT(robot_name), .max = 100, .help = "robot profile name (kind 0)"},
    {"ROBOT_DESCRIPTION", T_STR, AT(robot_description), .max = 2000,
     .help = "robot profile about (kind 0)"},
    {"ROBOT_PICTURE", T_STR, AT(robot_picture), .max = 2000, .check = check_http_url,
     .help = "robot profile picture, an http(s) URL (kind 0)"},
    {"ROBOT_OUTBOX_RELAYS", T_RELAYS, AT(outbox_relays), .unset = "unset: DMs stay queued",
     .help = "robot kind 10002 relays (wss:// added when no scheme)"},
    {"ROBOT_INDEXER_RELAYS", T_RELAYS, AT(indexer_relays),
     .help = "relays to discover recipients' relay lists"},
    {"ROBOT_MESSAGING_RELAYS", T_RELAYS, AT(messaging_relays), .help = "robot kind 10050 relays"},
    {"AUTH_MAX_AGE", T_INT, AT(auth_max_age), .def = "600", .min = 1, .max = 365 * DAY,
     .help = "seconds a NIP-98 token stays valid"},
    {"BILLING_INTERVAL", T_INT, AT(billing_interval), .def = "3600", .min = 1, .max = 365 * DAY,
     .help = "seconds between billing runs"},
    {"BILLING_PERIOD", T_INT, AT(billing_period), .min = 0, .max = 3660 * DAY,
     .unset = "unset: calendar month", .help = "billing period in seconds"},
    {"BILLING_GRACE", T_INT, AT(billing_grace), .def = "604800", .min = 0, .max = 3660 * DAY,
     .help = "seconds an invoice may stay unpaid before the tenant is delinquent"},
    {"BILLING_WALLET_REQUESTS", T_INT, AT(billing_wallet_requests), .def = "10000", .min = 1,
     .max = 1000000,
     .help = "NIP-47 requests (make, lookup, pay) one billing run may start; "
             "the rest waits for the next run"},
    {"BILLING_CONCURRENCY", T_INT, AT(billing_concurrency), .def = "8", .min = 1, .max = 256,
     .help = "invoices one billing run works on at once (wallet requests in flight)"},
    {"BILLING_LEASE_TTL", T_INT, AT(billing_lease_ttl), .def = "10", .min = 2, .max = 600,
     .help = "seconds the billing leader's lease lasts unrenewed (PostgreSQL, several "
             "instances): another instance takes over about 1 s after it runs out"},
    {"METRICS_PORT", T_INT, AT(metrics_port), .def = "0", .min = 0, .max = 65535,
     .help = "Prometheus GET /metrics on a second listener on HOST, 0 = off "
             "(series in docs/OPERATIONS.md)"},
    {"DATABASE_READ_ONLY_OK", T_INT, AT(allow_read_only_db), .def = "0", .min = 0, .max = 1,
     .help = "1 = start even when the database file is read-only (every write then answers "
             "503 storage-read-only); 0 = refuse to start"},
    {"HTTP_REQUEST_TIMEOUT", T_INT, AT(http_request_timeout), .def = "30", .min = 1, .max = 3600,
     .help = "seconds a request's head and body may take together (408 after)"},
    {"HTTP_SHUTDOWN_IDLE", T_INT, AT(http_shutdown_idle), .def = "2", .min = 0, .max = 9,
     .help = "seconds a keep-alive connection left idle stays open after SIGTERM for one last "
             "request (answered with Connection: close); a proxy in front must close its idle "
             "upstream connections sooner (nginx: keepalive_timeout in the upstream block, "
             "deploy/nginx-instances.conf); 0 = closed at once"},
    {"HTTP_REQUEST_BUFFER", T_INT, AT(http_request_buffer), .def = "67108864", .min = 64 << 10,
     .max = (int64_t)1 << 40,
     .help = "bytes of request data the server holds for all clients together (64 MiB); a "
             "body past it is 503 overloaded"},
    {"HTTP_RESPONSE_BUFFER", T_INT, AT(http_response_buffer), .def = "67108864", .min = 64 << 10,
     .max = (int64_t)1 << 40,
     .help = "bytes of responses clients have not read yet, all clients together (64 MiB); "
             "past it the connections with the most unread data are closed"},
    {"HTTP_MAX_CONNECTIONS", T_INT, AT(http_max_conns), .def = "10000", .min = 1, .max = 1000000,
     .help = "API connections open at once; at the cap the longest-inactive one is closed for a "
             "new client"},
    {"HTTP_MAX_CONNECTIONS_PER_IP", T_INT, AT(http_max_conns_per_ip), .def = "256", .min = 0,
     .max = 1000000,
     .help = "API connections from one client address (IPv6: one /64); behind a proxy, at least "
             "its upstream connections; 0 = no limit"},
    {"LOG_LEVEL", T_STR, AT(log_level), .def = "info", .check = check_log_level,
     .help = "debug, info, warn or error"},
    {"CARAVEL_CA_FILE", T_STR, AT(ca_file), .unset = "the system bundle",
     .help = "PEM CA bundle for wss:// (private CAs, tests)"},
    {"CARAVEL_TEST_CLOCK_FILE", T_STR, AT(test.clock_file), .flags = S_TEST,
     .help = "a file holding the current unix time (fake clock for billing)"},
    {"CARAVEL_TEST_CRASH_AT", T_STR, AT(test.crash_at), .check = check_crash_at, .flags = S_TEST,
     .help = "exit(97) at a billing step: before_attempt, after_attempt, after_pay_sent, "
             "after_answer"},
    {"CARAVEL_TEST_PAUSE_AT", T_STR, AT(test.pause_at), .check = check_pause_at, .flags = S_TEST,
     .help = "SIGSTOP itself once at a billing step: before_attempt, after_attempt, "
             "after_answer (a stalled leader; the test sends SIGCONT)"},
    {"CARAVEL_TEST_SYNC_RETRY_MS", T_INT, AT(test.sync_retry_ms), .min = 1, .max = DAY * 1000,
     .flags = S_TEST, .unset = "built-in: 30 s", .help = "zooid sync retry base in ms"},
    {"CARAVEL_TEST_SYNC_RECONCILE_MS", T_INT, AT(test.sync_reconcile_ms), .min = 1,
     .max = DAY * 1000, .flags = S_TEST, .unset = "built-in: 60 s",
     .help = "ms between zooid reconciliations"},
    {"CARAVEL_TEST_SYNC_TIMEOUT_MS", T_INT, AT(test.sync_timeout_ms), .min = 1, .max = DAY * 1000,
     .flags = S_TEST, .unset = "built-in: 15 s", .help = "timeout of one zooid request in ms"},
    {"CARAVEL_TEST_SYNC_BATCH", T_INT, AT(test.sync_batch), .min = 1, .max = 1000000,
     .flags = S_TEST, .unset = "built-in: 1000",
     .help = "due relays the sync worker loads at once"},
    {"CARAVEL_TEST_SYNC_BREAKER_MS", T_INT, AT(test.sync_breaker_ms), .min = 1, .max = DAY * 1000,
     .flags = S_TEST, .unset = "built-in: 2 s",
     .help = "first open window of the sync worker's circuit breaker in ms"},
    {"CARAVEL_TEST_BILLING_BATCH", T_INT, AT(test.billing_batch), .min = 1, .max = 1000000,
     .flags = S_TEST, .unset = "built-in: 500",
     .help = "tenants or invoices per billing transaction"},
    {"CARAVEL_TEST_DB_MAX_PAGES", T_INT, AT(test.db_max_pages), .min = 1, .max = 1 << 30,
     .flags = S_TEST, .unset = "no limit",
     .help = "PRAGMA max_page_count on the writer: a full disk (SQLITE_FULL) past it"},
    {"CARAVEL_TEST_NWC_PAY_TIMEOUT_MS", T_INT, AT(test.nwc_pay_timeout_ms), .min = 1,
     .max = DAY * 1000, .flags = S_TEST, .unset = "built-in: 60 s",
     .help = "how long a pay_invoice answer is awaited, in ms"},
    {"CARAVEL_TEST_BLOCKLIST_RETRY_MS", T_INT, AT(test.blocklist_retry_ms), .min = 1,
     .max = DAY * 1000, .flags = S_TEST, .unset = "built-in: 2 s",
     .help = "block-list retry base in ms (doubling per failure, capped at 300 x base)"},
    {"CARAVEL_ROBOT_RETRY_BASE", T_INT, AT(test.robot_retry_base_s), .min = 1, .max = DAY,
     .flags = S_TEST, .unset = "built-in: 30 s", .help = "DM retry backoff base in seconds"},
    {"CARAVEL_TEST_CLAIM_LEASE_MS", T_INT, AT(test.claim_lease_ms), .min = 100, .max = DAY * 1000,
     .flags = S_TEST, .unset = "built-in: sync and block list 8 x their timeout (2 min), DMs 2 min",
     .help = "lease of an instance's claim on a relay's sync, a batch of DMs or a block-list call"},
};

/* Every failure names the variable; values are echoed only for non-secret variables. */
static int fail(char *err, size_t cap, const char *var, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, cap, "%s: ", var);
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < cap)
        vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The variable's value, or NULL when unset or empty. The program's only getenv. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return xstrndup(s, n);
}

static void *field(struct config *cfg, const struct setting *s)
{
    return (char *)cfg + s->at;
}

static void strip_trailing_slashes(char *v)
{
    size_t n = strlen(v);
    while (n && v[n - 1] == '/')
        v[--n] = '\0';
}

/* 1 when every byte of s is in the set (letters and digits always allowed). */
static int only_chars(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

static const char *const http_schemes[] = {"https", "http", NULL};
static const char *const livekit_schemes[] = {"wss", "ws", "https", "http", NULL};

/* v is "scheme://rest" with one of schemes and a non-empty, printable-ASCII rest not starting
 * with '/' or '?'; returns rest or NULL. */
static const char *url_rest(const char *v, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        size_t n = strlen(*schemes);
        if (strncmp(v, *schemes, n) != 0 || strncmp(v + n, "://", 3) != 0)
            continue;
        const char *rest = v + n + 3;
        int ok = *rest && *rest != '/' && *rest != '?' && strlen(v) <= 2000;
        for (const char *q = rest; *q && ok; q++)
            ok = (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f;
        return ok ? rest : NULL;
    }
    return NULL;
}

/* ---- checks of single variables (T_STR rewrite in place; T_CUSTOM store) ---- */

static int check_db_url(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    size_t skip = 0;
    if (strncmp(v, "postgres://", 11) == 0 || strncmp(v, "postgresql://", 13) == 0)
        return 0; /* the whole URI goes to libpq (db/pg.c); never logged: it may hold a password */
    if (strncmp(v, "sqlite://", 9) == 0)
        skip = 9;
    else if (strncmp(v, "sqlite:", 7) == 0)
        skip = 7;
    else if (strstr(v, "://"))
        return fail(err, cap, "DATABASE_URL", "only sqlite:// and postgres:// URLs are supported");
    memmove(v, v + skip, strlen(v + skip) + 1);
    if (!*v)
        return fail(err, cap, "DATABASE_URL", "the database path is empty or too long");
    return 0;
}

static int check_host(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (!only_chars(v, ".-:_%"))
        return fail(err, cap, "HOST", "must be an IP address or a host name, got \"%.80s\"", v);
    return 0;
}

/* An absolute http(s) origin ("https://api.example.com[:port]"), trailing '/' dropped. */
static int check_public_url(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    strip_trailing_slashes(v);
    const char *host = NULL;
    if (strncmp(v, "https://", 8) == 0)
        host = v + 8;
    else if (strncmp(v, "http://", 7) == 0)
        host = v + 7;
    if (!host || !*host || strchr(host, '/'))
        return fail(err, cap, "PUBLIC_URL",
                    "must be an absolute http(s) origin such as https://api.example.com");
    return 0;
}

/* Calls add for each trimmed, non-empty item of a comma-separated value. */
static int split_list(const char *v, int (*add)(struct config *, const char *, char *, size_t),
                      struct config *cfg, char *err, size_t cap)
{
    while (v && *v) {
        const char *comma = strchr(v, ',');
        size_t n = comma ? (size_t)(comma - v) : strlen(v);
        char *item = trim_dup(v, n);
        int rc = *item ? add(cfg, item, err, cap) : 0;
        free(item);
        if (rc != 0)
            return rc;
        v = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int add_admin(struct config *cfg, const char *item, char *err, size_t cap)
{
    uint8_t pk[32];
    if (nostr_key_parse_public(item, pk) != 0)
        return fail(err, cap, "ADMINS", "\"%.80s\" is not a 64-hex or npub public key", item);
    if (cfg->n_admins >= 256)
        return fail(err, cap, "ADMINS", "at most 256 admins");
    cfg->admins = xrealloc(cfg->admins, (cfg->n_admins + 1) * sizeof(*cfg->admins));
    memcpy(cfg->admins[cfg->n_admins++], pk, 32);
    return 0;
}

static int check_admins(struct config *cfg, char *v, char *err, size_t cap)
{
    return split_list(v, add_admin, cfg, err, cap);
}

/* An origin is what browsers send in Origin: scheme://host[:port], no path (a trailing '/'
 * is dropped so "https://app.example/" still matches). */
static int add_origin(struct config *cfg, const char *item, char *err, size_t cap)
{
    size_t n = strlen(item);
    while (n && item[n - 1] == '/')
        n--;
    const char *sep = strstr(item, "://");
    const char *host = sep ? sep + 3 : NULL;
    if (cfg->n_allow_origins >= 64 || n > 300)
        return fail(err, cap, "ALLOW_ORIGINS", "at most 64 origins of 300 characters");
    if (!sep || sep == item || host >= item + n || memchr(host, '/', (size_t)(item + n - host)) ||
        strpbrk(item, " \t?#"))
        return fail(err, cap, "ALLOW_ORIGINS",
                    "\"%.80s\" is not an origin such as https://app.example.com", item);
    cfg->allow_origins = xrealloc(cfg->allow_origins, (cfg->n_allow_origins + 1) * sizeof(char *));
    cfg->allow_origins[cfg->n_allow_origins++] = xstrndup(item, n);
    return 0;
}

static int check_origins(struct config *cfg, char *v, char *err, size_t cap)
{
    return split_list(v, add_origin, cfg, err, cap);
}

/* zooid serves its API at /relay/{id} on the host named by its API_HOST and checks the NIP-98
 * u tag against scheme://Host/path: a path prefix (a proxy route) never matches. */
static int check_zooid_url(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    strip_trailing_slashes(v);
    const char *host = NULL;
    if (strncmp(v, "https://", 8) == 0)
        host = v + 8;
    else if (strncmp(v, "http://", 7) == 0)
        host = v + 7;
    if (!host || !*host)
        return fail(err, cap, "ZOOID_API_URL", "must be an http(s) URL");
    if (host[strcspn(host, "/?#")])
        return fail(err, cap, "ZOOID_API_URL",
                    "must be zooid's API origin with no path, query or fragment, e.g. "
                    "https://zooid-api.example.com: zooid answers only at /relay/{id} on the "
                    "host:port named by its API_HOST");
    return 0;
}

static int check_relay_domain(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    size_t n = strlen(v);
    if (!only_chars(v, ".-") || (n && (v[0] == '.' || v[0] == '-' || v[n - 1] == '.')))
        return fail(err, cap, "RELAY_DOMAIN",
                    "must be a domain name such as relays.example.com, got \"%.80s\"", v);
    for (char *p = v; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

static int check_livekit_url(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (!url_rest(v, livekit_schemes))
        return fail(err, cap, "LIVEKIT_URL", "must be a ws(s):// or http(s):// URL");
    return 0;
}

static int check_nwc_url(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    struct nwc_uri uri;
    const char *why = NULL;
    if (nwc_uri_parse(v, &uri, &why) != 0)
        return fail(err, cap, "NWC_URL", "%s (value not shown)", why ? why : "invalid");
    nwc_uri_free(&uri);
    return 0;
}

static int check_http_url(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (!url_rest(v, http_schemes))
        return fail(err, cap, "ROBOT_PICTURE", "must be an http(s) URL");
    return 0;
}

static int check_relay_url_template(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (!url_rest(v, http_schemes) || strpbrk(v, " \r\n"))
        return fail(err, cap, "RELAY_URL_TEMPLATE",
                    "must be an http(s) URL such as https://{host}/ or http://zooid:3334");
    return 0;
}

static int check_invite_link(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (!strstr(v, "{code}") || strpbrk(v, " \r\n"))
        return fail(err, cap, "INVITE_LINK_TEMPLATE",
                    "must be a URL with a {code} placeholder (and optionally {host})");
    return 0;
}

static int check_log_level(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (log_set_level(v) != 0)
        return fail(err, cap, "LOG_LEVEL", "must be debug, info, warn or error");
    return 0;
}

static int check_crash_at(struct config *cfg, char *v, char *err, size_t cap)
{
    static const char *const points[] = {"before_attempt", "after_attempt", "after_pay_sent",
                                         "after_answer"};
    (void)cfg;
    for (size_t i = 0; i < ARRAY_SIZE(points); i++)
        if (strcmp(v, points[i]) == 0)
            return 0;
    return fail(err, cap, "CARAVEL_TEST_CRASH_AT",
                "must be before_attempt, after_attempt, after_pay_sent or after_answer");
}

static int check_pause_at(struct config *cfg, char *v, char *err, size_t cap)
{
    (void)cfg;
    if (strcmp(v, "before_attempt") == 0 || strcmp(v, "after_attempt") == 0 ||
        strcmp(v, "after_answer") == 0)
        return 0;
    return fail(err, cap, "CARAVEL_TEST_PAUSE_AT",
                "must be before_attempt, after_attempt or after_answer");
}

/* ---- loading by type ---- */

char *config_normalize_relay(const char *s, size_t n)
{
    char *t = trim_dup(s, n);
    int has_scheme = strncmp(t, "wss://", 6) == 0 || strncmp(t, "ws://", 5) == 0;
    const char *rest = has_scheme ? strstr(t, "://") + 3 : t;
    /* Another scheme (http://...) is refused rather than prefixed. */
    int ok = *rest && rest[0] != '/' && strlen(t) < 1000 && !strstr(rest, "://");
    for (const char *p = rest; *p && ok; p++)
        ok = (unsigned char)*p > 0x20 && *p != ',';
    if (!ok) {
        free(t);
        return NULL;
    }
    if (has_scheme)
        return t;
    size_t len = strlen(t) + 7;
    char *out = xmalloc(len);
    snprintf(out, len, "wss://%s", t);
    free(t);
    return out;
}

static int load_relays(const char *var, const char *v, struct relay_list *list, char *err,
                       size_t cap)
{
    while (v && *v) {
        const char *comma = strchr(v, ',');
        size_t n = comma ? (size_t)(comma - v) : strlen(v);
        char *probe = trim_dup(v, n);
        int empty = !*probe;
        free(probe);
        if (!empty) {
            char *url = config_normalize_relay(v, n);
            if (!url)
                return fail(err, cap, var, "\"%.*s\" is not a relay URL", (int)MIN(n, 80), v);
            if (list->n == CONFIG_MAX_LIST) {
                free(url);
                return fail(err, cap, var, "at most %d relays", CONFIG_MAX_LIST);
            }
            list->urls[list->n++] = url;
        }
        v = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int load_key(const char *var, const char *v, uint8_t out[32], char *err, size_t cap)
{
    char *t = trim_dup(v, strlen(v));
    int rc = nostr_key_parse_secret(t, out);
    secure_zero(t, strlen(t));
    free(t);
    if (rc != 0)
        return fail(err, cap, var,
                    "must be a secret key as 64 hex characters or nsec1... "
                    "(value not shown)");
    return 0;
}

static int load_int(const struct setting *s, const char *v, void *at, char *err, size_t cap)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < s->min || n > s->max)
        return fail(err, cap, s->name, "must be an integer from %lld to %lld, got \"%.40s\"",
                    (long long)s->min, (long long)s->max, v);
    if (s->size == sizeof(int)) {
        int i = (int)n;
        memcpy(at, &i, sizeof(i));
    } else {
        int64_t i = n; /* int64_t or size_t: min >= 0 whenever the field is a size_t */
        memcpy(at, &i, sizeof(i));
    }
    return 0;
}

static int load_str(struct config *cfg, const struct setting *s, const char *v, char *err,
                    size_t cap)
{
    size_t max = s->max ? (size_t)s->max : CONFIG_MAX_VALUE;
    if (strlen(v) > max)
        return fail(err, cap, s->name, "is longer than %zu characters", max);
    char *copy = xstrdup(v);
    int rc = s->check ? s->check(cfg, copy, err, cap) : 0;
    if (rc == 0 && s->type == T_STR) {
        memcpy(field(cfg, s), &copy, sizeof(copy));
        return 0;
    }
    secure_zero(copy, strlen(copy));
    free(copy);
    return rc;
}

/* One row: the variable (or its default) parsed into its field. */
static int load_one(struct config *cfg, const struct setting *s, char *err, size_t cap)
{
    const char *v = env(s->name);
    if (!v)
        v = s->def;
    if (!v)
        return 0;
    if (s->flags & S_TEST)
        LOG_WARN("%s is set: a test-only setting", s->name);
    switch (s->type) {
    case T_INT:
        return load_int(s, v, field(cfg, s), err, cap);
    case T_KEY:
        return load_key(s->name, v, field(cfg, s), err, cap);
    case T_RELAYS:
        return load_relays(s->name, v, field(cfg, s), err, cap);
    case T_STR:
    case T_CUSTOM:
        return load_str(cfg, s, v, err, cap);
    }
    return -1;
}

/* Rules between variables. */
static int cross_checks(struct config *cfg, char *err, size_t cap)
{
    const char *lk[] = {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"};
    int n_lk = !!env(lk[0]) + !!env(lk[1]) + !!env(lk[2]);
    if (n_lk != 0 && n_lk != 3) {
        size_t missing = 0;
        while (env(lk[missing]))
            missing++;
        return fail(err, cap, lk[missing],
                    "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together");
    }
    if (cfg->zooid_api_url && !env("ZOOID_API_SECRET"))
        return fail(err, cap, "ZOOID_API_SECRET", "is required when ZOOID_API_URL is set");
    cfg->has_robot_secret = env("ROBOT_SECRET") != NULL;
    return 0;
}

int config_load(struct config *cfg, char *err, size_t cap)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        if (load_one(cfg, &settings[i], err, cap) != 0) {
            config_free(cfg);
            return -1;
        }
    }
    if (cross_checks(cfg, err, cap) != 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

static void free_list(struct relay_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->urls[i]);
    l->n = 0;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        const struct setting *s = &settings[i];
        char *str = NULL;
        if (s->type == T_RELAYS)
            free_list(field(cfg, s));
        if (s->type != T_STR)
            continue;
        memcpy(&str, field(cfg, s), sizeof(str));
        if (str && (s->flags & S_SECRET))
            secure_zero(str, strlen(str)); /* secrets are wiped, not just freed */
        free(str);
    }
    for (size_t i = 0; i < cfg->n_allow_origins; i++)
        free(cfg->allow_origins[i]);
    free(cfg->allow_origins);
    free(cfg->admins);
    secure_zero(cfg, sizeof(*cfg));
}

/* ---- documentation from the table ---- */

static void default_text(const struct setting *s, char *out, size_t cap, const char *quote)
{
    if (s->def && *s->def)
        snprintf(out, cap, "%s%s%s", quote, s->def, quote);
    else if (s->def)
        snprintf(out, cap, "empty");
    else
        snprintf(out, cap, "%s", s->unset ? s->unset : "unset");
}

void config_print_help(FILE *f)
{
    char def[128];
    fprintf(f, "Usage: caravel [--help | --version | --config-table]\n"
               "Caravel relay-hosting control plane. Configured by environment variables:\n");
    for (int test = 0; test <= 1; test++) {
        if (test)
            fprintf(f, "Test only (for the test suite; never set in production):\n");
        for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
            if (!(settings[i].flags & S_TEST) != !test)
                continue;
            default_text(&settings[i], def, sizeof(def), "");
            fprintf(f, "  %-31s %s (default: %s)\n", settings[i].name, settings[i].help, def);
        }
    }
}

void config_print_markdown(FILE *f)
{
    char def[128];
    fprintf(f, "| Variable | Meaning | Default |\n|---|---|---|\n");
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        const struct setting *s = &settings[i];
        default_text(s, def, sizeof(def), "`");
        fprintf(f, "| `%s` | %s%s%s | %s |\n", s->name, s->flags & S_TEST ? "**test only**: " : "",
                s->help, s->flags & S_SECRET ? " (secret: never logged)" : "", def);
    }
}

const char *config_setting_name(size_t i)
{
    return i < ARRAY_SIZE(settings) ? settings[i].name : NULL;
}

int config_origin_unreachable(const struct config *cfg)
{
    static const char *const wildcards[] = {"0.0.0.0", "::", "[::]", "::0"};
    if (cfg->public_url)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(wildcards); i++)
        if (strcmp(cfg->host, wildcards[i]) == 0)
            return 1;
    return 0;
}

int config_is_admin(const struct config *cfg, const uint8_t pubkey[32])
{
    for (size_t i = 0; i < cfg->n_admins; i++)
        if (memcmp(cfg->admins[i], pubkey, 32) == 0)
            return 1;
    return 0;
}
