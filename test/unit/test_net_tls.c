/* TLS client session (src/net/tls.c) against an in-process mbedtls server session, the two
 * connected by memory buffers only. Certificates are made at test time with openssl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "net/tls.h"
#include "test.h"
#include "util/buf.h"
#include "util/util.h"

struct pki {
    char dir[128];
    char ca[192], other_ca[192], cert[192], key[192];
};

static void run(const char *cmd)
{
    ASSERT_EQ(system(cmd), 0);
}

/* A CA, a server certificate for "localhost" signed by it, and an unrelated CA. */
static void make_pki(struct pki *p)
{
    char cmd[2048];
    test_tmpdir(p->dir, sizeof p->dir);
    snprintf(p->ca, sizeof p->ca, "%s/ca.pem", p->dir);
    snprintf(p->other_ca, sizeof p->other_ca, "%s/other.pem", p->dir);
    snprintf(p->cert, sizeof p->cert, "%s/srv.pem", p->dir);
    snprintf(p->key, sizeof p->key, "%s/srv.key", p->dir);
    snprintf(cmd, sizeof cmd,
             "cd %s && exec >/dev/null 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=TestCA -keyout ca.key -out ca.pem && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=OtherCA -keyout other.key -out other.pem && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-subj /CN=localhost -keyout srv.key -out srv.csr && "
             "printf 'subjectAltName=DNS:localhost\\n' > ext && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile ext -out srv.pem",
             p->dir);
    run(cmd);
}

/* The in-process server: raw mbedtls with its own memory BIO. */
struct server {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    struct buf in, out;
    size_t in_trickle; /* > 0: the BIO hands at most this many bytes per call */
};

static int srv_send(void *ctx, const unsigned char *p, size_t len)
{
    struct server *s = ctx;
    ASSERT_OK(buf_append(&s->out, p, len));
    return (int)len;
}

static int srv_recv(void *ctx, unsigned char *p, size_t len)
{
    struct server *s = ctx;
    size_t n = MIN(len, s->in.len);
    if (s->in_trickle)
        n = MIN(n, s->in_trickle);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    memcpy(p, s->in.data, n);
    buf_consume(&s->in, n);
    return (int)n;
}

static void server_init(struct server *s, const struct pki *p)
{
    memset(s, 0, sizeof *s);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_ssl_init(&s->ssl);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_pk_init(&s->key);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    buf_init(&s->in, 1 << 20);
    buf_init(&s->out, 1 << 20);
    ASSERT_OK(mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, NULL, 0));
    ASSERT_OK(mbedtls_x509_crt_parse_file(&s->cert, p->cert));
    ASSERT_OK(mbedtls_pk_parse_keyfile(&s->key, p->key, NULL));
    ASSERT_OK(mbedtls_ssl_config_defaults(
        &s->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT));
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    ASSERT_OK(mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key));
    ASSERT_OK(mbedtls_ssl_setup(&s->ssl, &s->conf));
    mbedtls_ssl_set_bio(&s->ssl, s, srv_send, srv_recv, NULL);
}

static void server_free(struct server *s)
{
    mbedtls_ssl_free(&s->ssl);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->cert);
    mbedtls_pk_free(&s->key);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    buf_free(&s->in);
    buf_free(&s->out);
}

/* Moves at most `chunk` bytes each way (0 = everything). Returns bytes moved. */
static size_t pump(struct tls_session *c, struct server *s, size_t chunk)
{
    size_t moved = 0, n;
    n = chunk ? MIN(chunk, c->out.len) : c->out.len;
    if (n) {
        ASSERT_OK(buf_append(&s->in, c->out.data, n));
        buf_consume(&c->out, n);
        moved += n;
    }
    n = chunk ? MIN(chunk, s->out.len) : s->out.len;
    if (n) {
        ASSERT_OK(tls_feed(c, s->out.data, n));
        buf_consume(&s->out, n);
        moved += n;
    }
    return moved;
}

/* Runs both handshakes to the end; returns the client's final code. */
static int handshake(struct tls_session *c, struct server *s, size_t chunk, int *again_seen)
{
    int crc = TLS_AGAIN, src = MBEDTLS_ERR_SSL_WANT_READ;
    for (int i = 0; i < 100000; i++) {
        if (crc == TLS_AGAIN)
            crc = tls_handshake(c);
        if (crc == TLS_AGAIN && again_seen)
            (*again_seen)++;
        if (src == MBEDTLS_ERR_SSL_WANT_READ || src == MBEDTLS_ERR_SSL_WANT_WRITE)
            src = mbedtls_ssl_handshake(&s->ssl);
        size_t moved = pump(c, s, chunk);
        if (crc != TLS_AGAIN && (src == 0 || crc != 0) && moved == 0)
            break;
    }
    return crc;
}

TEST_TIMEOUT(tls_roundtrip_and_trickle, 30)
{
    struct pki p;
    struct tls_config *cfg = NULL;
    struct server s;
    struct tls_session c;
    char got[64];
    int again = 0;

    make_pki(&p);
    ASSERT_OK(tls_config_new(&cfg, p.ca));
    server_init(&s, &p);
    s.in_trickle = 7; /* the server reads 7 bytes at a time */
    ASSERT_OK(tls_session_init(&c, cfg, "localhost"));
    c.out_high = 50;                         /* forces WANT_WRITE inside the client's BIO */
    ASSERT_OK(handshake(&c, &s, 1, &again)); /* one byte per step: forces WANT_READ */
    ASSERT_GT(again, 50);
    ASSERT(c.handshake_done);
    ASSERT_EQ(tls_read(&c, got, sizeof got), TLS_AGAIN);

    /* client -> server, through the small out window */
    const char *msg = "GET / HTTP/1.1\r\n\r\n";
    size_t off = 0;
    while (off < strlen(msg)) {
        int n = tls_write(&c, msg + off, strlen(msg) - off);
        if (n == TLS_AGAIN) {
            pump(&c, &s, 0);
            continue;
        }
        ASSERT_GT(n, 0);
        off += (size_t)n;
    }
    for (int i = 0; i < 1000 && c.out.len; i++)
        pump(&c, &s, 0);
    int n = 0, total = 0;
    while ((n = mbedtls_ssl_read(&s.ssl, (unsigned char *)got + total, sizeof got - total)) > 0)
        total += n;
    ASSERT_EQ(total, (int)strlen(msg));
    ASSERT_MEM_EQ(got, msg, strlen(msg));

    /* server -> client, delivered one byte at a time */
    ASSERT_EQ(mbedtls_ssl_write(&s.ssl, (const unsigned char *)"pong", 4), 4);
    int r = TLS_AGAIN;
    while (r == TLS_AGAIN) {
        ASSERT_GT(pump(&c, &s, 1), 0);
        r = tls_read(&c, got, sizeof got);
    }
    ASSERT_EQ(r, 4);
    ASSERT_MEM_EQ(got, "pong", 4);

    /* close_notify from the server ends the client's reads */
    ASSERT_OK(mbedtls_ssl_close_notify(&s.ssl));
    pump(&c, &s, 0);
    ASSERT_EQ(tls_read(&c, got, sizeof got), TLS_ECLOSED);

    size_t len = 0;
    tls_close_notify(&c);
    char *out = tls_take_out(&c, &len);
    ASSERT_NOT_NULL(out);
    ASSERT_GT(len, 0);
    free(out);
    ASSERT_NULL(tls_take_out(&c, &len));
    ASSERT_EQ(len, 0);
    tls_session_free(&c);
    server_free(&s);
    tls_config_free(cfg);
}

static void expect_rejected(const char *host, int use_other_ca)
{
    struct pki p;
    struct tls_config *cfg = NULL;
    struct server s;
    struct tls_session c;

    make_pki(&p);
    ASSERT_OK(tls_config_new(&cfg, use_other_ca ? p.other_ca : p.ca));
    server_init(&s, &p);
    ASSERT_OK(tls_session_init(&c, cfg, host));
    ASSERT_EQ(handshake(&c, &s, 0, NULL), TLS_EVERIFY);
    ASSERT(!c.handshake_done);
    tls_session_free(&c);
    server_free(&s);
    tls_config_free(cfg);
}

TEST_TIMEOUT(tls_bad_hostname_rejected, 30)
{
    expect_rejected("example.com", 0);
}

TEST_TIMEOUT(tls_wrong_ca_rejected, 30)
{
    expect_rejected("localhost", 1);
}

TEST(tls_eof_during_handshake)
{
    struct tls_config *cfg = NULL;
    struct tls_session c;
    char dir[128], path[192];
    test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/none.pem", dir);
    ASSERT_EQ(tls_config_new(&cfg, path), TLS_ECONFIG); /* missing CA file */
    ASSERT_OK(tls_config_new(&cfg, NULL));              /* the system bundle */
    ASSERT_OK(tls_session_init(&c, cfg, "localhost"));
    ASSERT_EQ(tls_handshake(&c), TLS_AGAIN); /* ClientHello queued */
    ASSERT_GT(c.out.len, 0);
    tls_feed_eof(&c);
    ASSERT_EQ(tls_handshake(&c), TLS_ECLOSED);
    tls_session_free(&c);
    tls_config_free(cfg);
}
