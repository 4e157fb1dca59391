/* TLS client sessions over memory buffers (see tls.h). */
#include "net/tls.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/x509_crt.h>

#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

struct tls_config {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
};

static void log_mbedtls(const char *what, int rc)
{
    char msg[128];
    mbedtls_strerror(rc, msg, sizeof msg);
    LOG_DEBUG("tls: %s: %s (-0x%04x)", what, msg, (unsigned)-rc);
}

int tls_config_new(struct tls_config **out, const char *ca_file)
{
    ASSERT_LOOP_THREAD();
    static const char pers[] = "caravel-tls";
    struct tls_config *c = xcalloc(1, sizeof *c);
    int rc;

    mbedtls_ssl_config_init(&c->conf);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_x509_crt_init(&c->ca);
    *out = NULL;
    if (!ca_file)
        ca_file = TLS_SYSTEM_CA_FILE;
    /* parse_file returns the number of certificates it skipped; a bundle with some exotic
     * entries is fine as long as at least one CA loaded. */
    rc = mbedtls_x509_crt_parse_file(&c->ca, ca_file);
    if (rc < 0 || c->ca.version == 0) {
        LOG_ERROR("tls: cannot load CA certificates from %s", ca_file);
        goto fail;
    }
    rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                               (const unsigned char *)pers, sizeof pers - 1);
    if (rc != 0)
        goto fail;
    rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0)
        goto fail;
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3); /* TLS 1.2 */
    *out = c;
    return 0;
fail:
    tls_config_free(c);
    return TLS_ECONFIG;
}

void tls_config_free(struct tls_config *c)
{
    ASSERT_LOOP_THREAD();
    if (!c)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_x509_crt_free(&c->ca);
    free(c);
}

/* BIO: ciphertext out. WANT_WRITE only above the high-water mark, so a well-behaved owner
 * (one that flushes after every call) never sees it. */
static int bio_send(void *ctx, const unsigned char *p, size_t len)
{
    struct tls_session *s = ctx;
    if (s->out.len >= s->out_high)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    len = MIN(len, s->out_high - s->out.len);
    if (buf_append(&s->out, p, len) != 0)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    return (int)len;
}

/* BIO: ciphertext in. Empty means WANT_READ, or 0 (EOF) once the transport ended. */
static int bio_recv(void *ctx, unsigned char *p, size_t len)
{
    struct tls_session *s = ctx;
    size_t n = MIN(len, s->in.len);
    if (n == 0)
        return s->eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
    memcpy(p, s->in.data, n);
    buf_consume(&s->in, n);
    return (int)n;
}

int tls_session_init(struct tls_session *s, struct tls_config *cfg, const char *hostname)
{
    ASSERT_LOOP_THREAD();
    int rc;
    memset(s, 0, sizeof *s);
    mbedtls_ssl_init(&s->ssl);
    buf_init(&s->in, TLS_IN_MAX);
    buf_init(&s->out, TLS_OUT_MAX);
    s->out_high = TLS_OUT_HIGH;
    rc = mbedtls_ssl_setup(&s->ssl, &cfg->conf);
    if (rc == 0)
        rc = mbedtls_ssl_set_hostname(&s->ssl, hostname);
    if (rc != 0) {
        log_mbedtls("setup", rc);
        return TLS_EFAIL;
    }
    mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
    return 0;
}

void tls_session_free(struct tls_session *s)
{
    ASSERT_LOOP_THREAD();
    mbedtls_ssl_free(&s->ssl);
    buf_free(&s->in);
    buf_free(&s->out);
}

int tls_feed(struct tls_session *s, const void *data, size_t len)
{
    ASSERT_LOOP_THREAD();
    return buf_append(&s->in, data, len) == 0 ? 0 : TLS_ETOOBIG;
}

void tls_feed_eof(struct tls_session *s)
{
    ASSERT_LOOP_THREAD();
    s->eof = 1;
}

char *tls_take_out(struct tls_session *s, size_t *len)
{
    ASSERT_LOOP_THREAD();
    if (s->out.len == 0) {
        *len = 0;
        return NULL;
    }
    return buf_take(&s->out, len);
}

static int map_rc(struct tls_session *s, int rc, const char *what)
{
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return s->eof && rc == MBEDTLS_ERR_SSL_WANT_READ ? TLS_ECLOSED : TLS_AGAIN;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return TLS_ECLOSED;
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&s->ssl);
        char info[256];
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        info[strcspn(info, "\n")] = '\0';
        LOG_WARN("tls: certificate not accepted: %s", info);
        return TLS_EVERIFY;
    }
    log_mbedtls(what, rc);
    return TLS_EFAIL;
}

int tls_handshake(struct tls_session *s)
{
    ASSERT_LOOP_THREAD();
    int rc;
    if (s->handshake_done)
        return 0;
    rc = mbedtls_ssl_handshake(&s->ssl);
    if (rc == 0) {
        s->handshake_done = 1;
        return 0;
    }
    if (rc == MBEDTLS_ERR_SSL_CONN_EOF)
        return TLS_ECLOSED;
    return map_rc(s, rc, "handshake");
}

int tls_read(struct tls_session *s, void *buf, size_t cap)
{
    ASSERT_LOOP_THREAD();
    int rc = mbedtls_ssl_read(&s->ssl, buf, cap);
    if (rc > 0)
        return rc;
    if (rc == 0)
        return TLS_ECLOSED;
    return map_rc(s, rc, "read");
}

int tls_write(struct tls_session *s, const void *data, size_t len)
{
    ASSERT_LOOP_THREAD();
    int rc = mbedtls_ssl_write(&s->ssl, data, len);
    if (rc > 0)
        return rc;
    return map_rc(s, rc, "write");
}

void tls_close_notify(struct tls_session *s)
{
    ASSERT_LOOP_THREAD();
    (void)mbedtls_ssl_close_notify(&s->ssl);
}
