/* TLS client sessions over memory buffers (mbedtls 2.28, custom BIO callbacks
 * on two byte buffers). No sockets here: the owner feeds ciphertext received from the network with
 * tls_feed, sends whatever tls_pending_out holds, and reads/writes plaintext. This keeps
 * mbedtls out of the loop's callbacks: its BIO only touches the two buffers.
 *
 * A struct tls_config (client, VERIFY_REQUIRED, CA chain, CTR-DRBG) is shared by every
 * session of a loop. Loop thread only (the DRBG is not thread-safe in this mbedtls build).
 * Return codes: 0 or a positive byte count on success, TLS_AGAIN when more input (or room
 * for output: flush tls_pending_out first) is needed, other TLS_E* codes are fatal. */
#ifndef CARAVEL_NET_TLS_H
#define CARAVEL_NET_TLS_H

#include <stddef.h>

#include <mbedtls/ssl.h>

#include "util/buf.h"
#include "util/err.h"

#define TLS_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define TLS_IN_MAX (256 * 1024)  /* ciphertext received but not yet consumed */
#define TLS_OUT_HIGH (64 * 1024) /* above this, the BIO answers WANT_WRITE */
#define TLS_OUT_MAX (TLS_OUT_HIGH + MBEDTLS_SSL_OUT_CONTENT_LEN + 2048)

/* Errors: TLS_AGAIN (not an error: feed input / flush output and call again) and TLS_E* in
 * util/err.h. */

struct tls_config;

struct tls_session {
    mbedtls_ssl_context ssl;
    struct buf in;   /* ciphertext from the peer, consumed by mbedtls */
    struct buf out;  /* ciphertext for the peer: send out.data/out.len, then tls_consume_out */
    size_t out_high; /* WANT_WRITE threshold (TLS_OUT_HIGH; tests lower it) */
    int eof;         /* the transport reached EOF */
    int handshake_done;
};

/* ca_file: PEM bundle (NULL = TLS_SYSTEM_CA_FILE). Returns 0 and *out, or TLS_ECONFIG. */
int tls_config_new(struct tls_config **out, const char *ca_file);
void tls_config_free(struct tls_config *cfg);

/* Prepares a client session for hostname (copied; used for SNI and certificate name
 * checking). cfg is borrowed and must outlive the session. Returns 0 or TLS_EFAIL; on either
 * return tls_session_free is safe. */
int tls_session_init(struct tls_session *s, struct tls_config *cfg, const char *hostname);
void tls_session_free(struct tls_session *s);

/* Appends ciphertext from the network (copied). 0 or TLS_ETOOBIG. */
int tls_feed(struct tls_session *s, const void *data, size_t len);
/* The transport hit EOF: a later read returns TLS_ECLOSED once the input is drained. */
void tls_feed_eof(struct tls_session *s);
/* Ciphertext to send is s->out.data[0..s->out.len); tls_take_out moves it to the caller
 * (malloc'd, caller frees; *len 0 and NULL when there is none). */
char *tls_take_out(struct tls_session *s, size_t *len);

/* Advances the handshake: 0 done, TLS_AGAIN, TLS_EVERIFY or TLS_EFAIL. */
int tls_handshake(struct tls_session *s);
/* Plaintext: > 0 bytes read, TLS_AGAIN (nothing buffered), TLS_ECLOSED or TLS_EFAIL. */
int tls_read(struct tls_session *s, void *buf, size_t cap);
/* > 0 bytes accepted (may be fewer than len; call again with the rest), TLS_AGAIN (flush
 * the output, then call again with the same arguments), or TLS_EFAIL. */
int tls_write(struct tls_session *s, const void *data, size_t len);
/* Queues close_notify into out. */
void tls_close_notify(struct tls_session *s);

#endif
