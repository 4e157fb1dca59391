#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/keys.h"
#include "nostr/nwc_uri.h"
#include "util/log.h"
#include "util/util.h"

#define CONFIG_MAX_VALUE 8192

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

/* The variable's value, or NULL when unset or empty. */
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

static int parse_int(const char *var, int64_t def, int64_t min, int64_t max, int64_t *out,
                     char *err, size_t cap)
{
    const char *v = env(var);
    char *end = NULL;
    if (!v) {
        *out = def;
        return 0;
    }
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max)
        return fail(err, cap, var, "must be an integer from %lld to %lld, got \"%.40s\"",
                    (long long)min, (long long)max, v);
    *out = n;
    return 0;
}

static int parse_db_path(struct config *cfg, char *err, size_t cap)
{
    const char *v = env("DATABASE_URL");
    if (!v)
        v = "sqlite://data/caravel.db";
    if (strncmp(v, "sqlite://", 9) == 0)
        v += 9;
    else if (strncmp(v, "sqlite:", 7) == 0)
        v += 7;
    else if (strstr(v, "://"))
        return fail(err, cap, "DATABASE_URL", "only sqlite:// URLs are supported");
    if (!*v || strlen(v) > 4000)
        return fail(err, cap, "DATABASE_URL", "the database path is empty or too long");
    cfg->db_path = xstrdup(v);
    return 0;
}

/* Accepts an absolute http(s) origin ("https://api.example.com[:port]"), trailing '/' dropped. */
static int parse_public_url(struct config *cfg, char *err, size_t cap)
{
    const char *v = env("PUBLIC_URL");
    if (!v)
        return 0;
    size_t n = strlen(v);
    while (n && v[n - 1] == '/')
        n--;
    const char *host = strncmp(v, "https://", 8) == 0   ? v + 8
                       : strncmp(v, "http://", 7) == 0 ? v + 7
                                                        : NULL;
    if (!host || host >= v + n || memchr(host, '/', (size_t)(v + n - host)) || n > 1000)
        return fail(err, cap, "PUBLIC_URL",
                    "must be an absolute http(s) origin such as https://api.example.com");
    cfg->public_url = xstrndup(v, n);
    return 0;
}

/* Splits a comma-separated variable into trimmed, non-empty items; calls add for each. */
static int split_list(const char *var, int (*add)(struct config *, const char *, char *, size_t),
                      struct config *cfg, char *err, size_t cap)
{
    const char *v = env(var);
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
    cfg->allow_origins =
        xrealloc(cfg->allow_origins, (cfg->n_allow_origins + 1) * sizeof(char *));
    cfg->allow_origins[cfg->n_allow_origins++] = xstrndup(item, n);
    return 0;
}

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

static int parse_relays(const char *var, struct relay_list *list, char *err, size_t cap)
{
    const char *v = env(var);
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

static int parse_secret(const char *var, uint8_t out[32], int *present, char *err, size_t cap)
{
    const char *v = env(var);
    *present = 0;
    if (!v)
        return 0;
    char *t = trim_dup(v, strlen(v));
    int rc = nostr_key_parse_secret(t, out);
    secure_zero(t, strlen(t));
    free(t);
    if (rc != 0)
        return fail(err, cap, var, "must be a secret key as 64 hex characters or nsec1... "
                                   "(value not shown)");
    *present = 1;
    return 0;
}

static char *opt_dup(const char *var)
{
    const char *v = env(var);
    return v ? xstrdup(v) : NULL;
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

static int parse_host(struct config *cfg, char *err, size_t cap)
{
    const char *v = env("HOST") ? env("HOST") : "127.0.0.1";
    if (strlen(v) > 253 || !only_chars(v, ".-:_%"))
        return fail(err, cap, "HOST", "must be an IP address or a host name, got \"%.80s\"", v);
    cfg->host = xstrdup(v);
    return 0;
}

static int parse_relay_domain(struct config *cfg, char *err, size_t cap)
{
    const char *v = env("RELAY_DOMAIN") ? env("RELAY_DOMAIN") : "";
    size_t n = strlen(v);
    if (n > 200 || !only_chars(v, ".-") || (n && (v[0] == '.' || v[0] == '-' || v[n - 1] == '.')))
        return fail(err, cap, "RELAY_DOMAIN",
                    "must be a domain name such as relays.example.com, got \"%.80s\"", v);
    cfg->relay_domain = xstrdup(v);
    for (char *p = cfg->relay_domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

/* LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET come together or not at all. */
static int parse_livekit(struct config *cfg, char *err, size_t cap)
{
    const char *url = env("LIVEKIT_URL");
    int n = !!url + !!env("LIVEKIT_API_KEY") + !!env("LIVEKIT_API_SECRET");
    if (url && !url_rest(url, livekit_schemes))
        return fail(err, cap, "LIVEKIT_URL", "must be a ws(s):// or http(s):// URL");
    if (n != 0 && n != 3)
        return fail(err, cap, !url ? "LIVEKIT_URL" : !env("LIVEKIT_API_KEY") ? "LIVEKIT_API_KEY"
                                                                          : "LIVEKIT_API_SECRET",
                    "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together");
    cfg->livekit_url = opt_dup("LIVEKIT_URL");
    cfg->livekit_api_key = opt_dup("LIVEKIT_API_KEY");
    cfg->livekit_api_secret = opt_dup("LIVEKIT_API_SECRET");
    return 0;
}

static int parse_robot_profile(struct config *cfg, char *err, size_t cap)
{
    const char *pic = env("ROBOT_PICTURE");
    if (pic && !url_rest(pic, http_schemes))
        return fail(err, cap, "ROBOT_PICTURE", "must be an http(s) URL");
    if ((env("ROBOT_NAME") && strlen(env("ROBOT_NAME")) > 100) ||
        (env("ROBOT_DESCRIPTION") && strlen(env("ROBOT_DESCRIPTION")) > 2000))
        return fail(err, cap, env("ROBOT_NAME") && strlen(env("ROBOT_NAME")) > 100
                                  ? "ROBOT_NAME"
                                  : "ROBOT_DESCRIPTION",
                    "is too long (name 100, description 2000 characters at most)");
    cfg->robot_name = opt_dup("ROBOT_NAME");
    cfg->robot_description = opt_dup("ROBOT_DESCRIPTION");
    cfg->robot_picture = opt_dup("ROBOT_PICTURE");
    return 0;
}

static int parse_zooid(struct config *cfg, char *err, size_t cap)
{
    int has_secret = 0;
    const char *v = env("ZOOID_API_URL");
    if (parse_secret("ZOOID_API_SECRET", cfg->zooid_secret, &has_secret, err, cap) != 0)
        return -1;
    if (!v)
        return 0;
    size_t n = strlen(v);
    while (n && v[n - 1] == '/')
        n--;
    const char *host = strncmp(v, "https://", 8) == 0   ? v + 8
                       : strncmp(v, "http://", 7) == 0 ? v + 7
                                                        : NULL;
    if (!host || host >= v + n || n > 1000)
        return fail(err, cap, "ZOOID_API_URL", "must be an http(s) URL");
    /* zooid serves its API at /relay/{id} on the host named by its API_HOST and checks the
     * NIP-98 u tag against scheme://Host/path: a path prefix (a proxy route) never matches. */
    if (strcspn(host, "/?#") < (size_t)(v + n - host))
        return fail(err, cap, "ZOOID_API_URL",
                    "must be zooid's API origin with no path, query or fragment, e.g. "
                    "https://zooid-api.example.com: zooid answers only at /relay/{id} on the "
                    "host:port named by its API_HOST");
    if (!has_secret)
        return fail(err, cap, "ZOOID_API_SECRET", "is required when ZOOID_API_URL is set");
    cfg->zooid_api_url = xstrndup(v, n);
    return 0;
}

static int parse_nwc(struct config *cfg, char *err, size_t cap)
{
    const char *v = env("NWC_URL");
    struct nwc_uri uri;
    const char *why = NULL;
    if (!v)
        return 0;
    if (nwc_uri_parse(v, &uri, &why) != 0)
        return fail(err, cap, "NWC_URL", "%s (value not shown)", why ? why : "invalid");
    nwc_uri_free(&uri);
    cfg->nwc_url = xstrdup(v);
    return 0;
}

/* Limits of the HTTP listener against hostile or broken clients (docs/OPERATIONS.md). */
static int parse_http_limits(struct config *cfg, char *err, size_t cap)
{
    int64_t buffer = 0, conns = 0, per_ip = 0;
    if (parse_int("HTTP_REQUEST_TIMEOUT", 30, 1, 3600, &cfg->http_request_timeout, err, cap) ||
        parse_int("HTTP_REQUEST_BUFFER", 64 << 20, 64 << 10, (int64_t)1 << 40, &buffer, err, cap) ||
        parse_int("HTTP_MAX_CONNECTIONS", 10000, 1, 1000000, &conns, err, cap) ||
        parse_int("HTTP_MAX_CONNECTIONS_PER_IP", 256, 0, 1000000, &per_ip, err, cap))
        return -1;
    cfg->http_request_buffer = (size_t)buffer;
    cfg->http_max_conns = (size_t)conns;
    cfg->http_max_conns_per_ip = (size_t)per_ip;
    return 0;
}

static int parse_misc(struct config *cfg, char *err, size_t cap)
{
    int64_t port = 0, metrics = 0;
    if (parse_host(cfg, err, cap) || parse_relay_domain(cfg, err, cap) ||
        parse_livekit(cfg, err, cap) || parse_robot_profile(cfg, err, cap))
        return -1;
    cfg->log_level = xstrdup(env("LOG_LEVEL") ? env("LOG_LEVEL") : "info");
    if (log_set_level(cfg->log_level) != 0)
        return fail(err, cap, "LOG_LEVEL", "must be debug, info, warn or error");
    if (parse_int("PORT", 3000, 0, 65535, &port, err, cap) ||
        parse_int("METRICS_PORT", 0, 0, 65535, &metrics, err, cap) ||
        parse_int("AUTH_MAX_AGE", 600, 1, 86400 * 365, &cfg->auth_max_age, err, cap) ||
        parse_int("BILLING_INTERVAL", 3600, 1, 86400 * 365, &cfg->billing_interval, err, cap) ||
        parse_int("BILLING_PERIOD", 0, 0, 86400 * 3660, &cfg->billing_period, err, cap) ||
        parse_int("BILLING_GRACE", 604800, 0, 86400 * 3660, &cfg->billing_grace, err, cap) ||
        parse_int("BILLING_WALLET_REQUESTS", 10000, 1, 1000000, &cfg->billing_wallet_requests,
                  err, cap) ||
        parse_int("BILLING_CONCURRENCY", 8, 1, 256, &cfg->billing_concurrency, err, cap) ||
        parse_http_limits(cfg, err, cap))
        return -1;
    cfg->port = (int)port;
    cfg->metrics_port = (int)metrics;
    return 0;
}

int config_load(struct config *cfg, char *err, size_t cap)
{
    memset(cfg, 0, sizeof(*cfg));
    if (parse_misc(cfg, err, cap) || parse_db_path(cfg, err, cap) ||
        parse_public_url(cfg, err, cap) || split_list("ADMINS", add_admin, cfg, err, cap) ||
        split_list("ALLOW_ORIGINS", add_origin, cfg, err, cap) || parse_zooid(cfg, err, cap) ||
        parse_nwc(cfg, err, cap) ||
        parse_secret("ROBOT_SECRET", cfg->robot_secret, &cfg->has_robot_secret, err, cap) ||
        parse_relays("ROBOT_OUTBOX_RELAYS", &cfg->outbox_relays, err, cap) ||
        parse_relays("ROBOT_INDEXER_RELAYS", &cfg->indexer_relays, err, cap) ||
        parse_relays("ROBOT_MESSAGING_RELAYS", &cfg->messaging_relays, err, cap)) {
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
    char **strs[] = {&cfg->db_path,         &cfg->host,          &cfg->public_url,
                     &cfg->zooid_api_url,   &cfg->relay_domain,  &cfg->livekit_url,
                     &cfg->livekit_api_key, &cfg->robot_name,    &cfg->robot_description,
                     &cfg->robot_picture,   &cfg->log_level};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    /* Secrets are wiped, not just freed. */
    if (cfg->nwc_url)
        secure_zero(cfg->nwc_url, strlen(cfg->nwc_url));
    if (cfg->livekit_api_secret)
        secure_zero(cfg->livekit_api_secret, strlen(cfg->livekit_api_secret));
    free(cfg->nwc_url);
    free(cfg->livekit_api_secret);
    for (size_t i = 0; i < cfg->n_allow_origins; i++)
        free(cfg->allow_origins[i]);
    free(cfg->allow_origins);
    free(cfg->admins);
    free_list(&cfg->outbox_relays);
    free_list(&cfg->indexer_relays);
    free_list(&cfg->messaging_relays);
    secure_zero(cfg, sizeof(*cfg));
}

int config_origin_unreachable(const struct config *cfg)
{
    static const char *const wildcards[] = {"0.0.0.0", "::", "[::]", "::0"};
    if (cfg->public_url)
        return 0;
    for (size_t i = 0; i < sizeof(wildcards) / sizeof(wildcards[0]); i++)
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
