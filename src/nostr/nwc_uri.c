#include "nostr/nwc_uri.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/util.h"

#define LUD16_MAX 320

/* Accepted prefixes, longest first so "nostr+walletconnect://" wins over its "//"-less form
 * (nostr-tools accepts both; "nostrwalletconnect://" is Alby's legacy spelling). */
static const char *const schemes[] = {"nostr+walletconnect://", "nostrwalletconnect://",
                                      "nostr+walletconnect:"};

/* Percent-decodes n bytes (percent_decode: '+' is a space) into a malloc'd string. Refuses
 * bad escapes and anything that decodes to a control character. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    long len = percent_decode(s, n, out, n + 1);
    for (long i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f)
            len = PERCENT_EBAD;
    }
    if (len < 0) {
        secure_zero(out, n + 1);
        free(out);
        return NULL;
    }
    return out;
}

static int relay_ok(const char *r)
{
    const char *host;
    if (strncmp(r, "wss://", 6) == 0)
        host = r + 6;
    else if (strncmp(r, "ws://", 5) == 0)
        host = r + 5;
    else
        return 0;
    return host[0] && host[0] != '/' && !strchr(r, ' ');
}

static int parse_secret(const char *v, uint8_t out[32])
{
    /* 64 hex (NIP-47) or an nsec (Alby accepts it); must be a valid secp256k1 key. */
    return nostr_key_parse_secret(v, out);
}

struct nwc_parse {
    struct nwc_uri *u;
    int have_secret;
    const char *err;
};

static void on_relay(struct nwc_parse *p, char *v)
{
    if (!relay_ok(v)) {
        p->err = "relay is not a ws:// or wss:// URL";
    } else if (p->u->n_relays == NWC_URI_MAX_RELAYS) {
        p->err = "too many relays";
    } else {
        p->u->relays[p->u->n_relays++] = v;
        return;
    }
    free(v);
}

static void on_secret(struct nwc_parse *p, char *v)
{
    if (p->have_secret)
        p->err = "secret given twice";
    else if (parse_secret(v, p->u->secret) != 0)
        p->err = "secret is not a valid 64-hex or nsec secret key";
    else
        p->have_secret = 1;
    secure_zero(v, strlen(v));
    free(v);
}

static void on_lud16(struct nwc_parse *p, char *v)
{
    if (p->u->lud16)
        p->err = "lud16 given twice";
    else if (!v[0] || strlen(v) > LUD16_MAX || !strchr(v, '@') || strchr(v, ' '))
        p->err = "lud16 is not a lightning address";
    else {
        p->u->lud16 = v;
        return;
    }
    free(v);
}

/* One "key=value" pair of the query. Unknown keys are ignored (forward compatibility). */
static void on_param(struct nwc_parse *p, const char *s, size_t n)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    char *v = eq ? pct_decode(eq + 1, n - klen - 1) : xstrdup("");
    if (!v) {
        p->err = "bad percent-encoding in query";
        return;
    }
    if (klen == 5 && memcmp(s, "relay", 5) == 0)
        on_relay(p, v);
    else if (klen == 6 && memcmp(s, "secret", 6) == 0)
        on_secret(p, v);
    else if (klen == 5 && memcmp(s, "lud16", 5) == 0)
        on_lud16(p, v);
    else {
        secure_zero(v, strlen(v));
        free(v);
    }
}

static const char *skip_scheme(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(s, schemes[i], n) == 0)
            return s + n;
    }
    return NULL;
}

static const char *parse_all(const char *s, struct nwc_parse *p)
{
    size_t len = strnlen(s, NWC_URI_MAX_LEN + 1);
    if (len > NWC_URI_MAX_LEN)
        return "connection URI too long";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return "connection URI contains spaces or non-ASCII characters";
    const char *pk = skip_scheme(s);
    if (!pk)
        return "not a nostr+walletconnect:// URI";
    const char *q = strchr(pk, '?');
    size_t pk_len = q ? (size_t)(q - pk) : strlen(pk);
    if (pk_len > 0 && pk[pk_len - 1] == '/')
        pk_len--; /* "…<pubkey>/?relay=" as written by URL serializers */
    char pk_hex[65];
    if (pk_len != 64)
        return "wallet pubkey is not 64 hex characters";
    memcpy(pk_hex, pk, 64);
    pk_hex[64] = '\0';
    if (nostr_key_parse_public(pk_hex, p->u->wallet_pubkey) != 0)
        return "wallet pubkey is not a valid public key";
    if (!q)
        return "missing query (relay and secret)";
    for (const char *it = q + 1; *it && !p->err;) {
        size_t n = strcspn(it, "&#");
        on_param(p, it, n);
        it += n;
        if (*it == '#')
            break;
        if (*it)
            it++;
    }
    if (p->err)
        return p->err;
    if (p->u->n_relays == 0)
        return "no relay in connection URI";
    if (!p->have_secret)
        return "missing secret in connection URI";
    return NULL;
}

int nwc_uri_parse(const char *s, struct nwc_uri *out, const char **err)
{
    struct nwc_parse p = {out, 0, NULL};
    const char *e;
    memset(out, 0, sizeof(*out));
    e = parse_all(s, &p);
    if (err)
        *err = e;
    if (!e)
        return 0;
    nwc_uri_free(out);
    return -1;
}

void nwc_uri_free(struct nwc_uri *u)
{
    for (size_t i = 0; i < u->n_relays; i++)
        free(u->relays[i]);
    free(u->lud16);
    secure_zero(u, sizeof(*u));
}
