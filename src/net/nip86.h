/* NIP-86 client: relay management JSON-RPC sent to a relay's own host, NIP-98 signed with
 * the caller's key (the control plane signs as the relay, whose secret it holds), with the
 * `payload` tag NIP-86 requires. Requests go through net/fetch.c (libcurl multi on the
 * loop): a 15 s timeout, a capped answer, never a blocking call.
 *
 * Where a request goes: the relay's public URL `https://<host>/` (the signed `u` tag is always
 * that URL). A url_template (RELAY_URL_TEMPLATE) sends it elsewhere, e.g. straight to zooid
 * inside a private network or a test server: `{host}` in the template is replaced by the
 * relay host, and the request carries `Host: <host>` and `X-Forwarded-Proto: https`, as the
 * TLS proxy in front of zooid would forward it, so zooid still routes it to the relay and
 * checks the same `u`.
 *
 * Loop thread only. Callbacks run from the loop, never from inside nip86_call. */
#ifndef CARAVEL_NET_NIP86_H
#define CARAVEL_NET_NIP86_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "nostr/keys.h"

#define NIP86_TIMEOUT_MS 15000
#define NIP86_MAX_RESPONSE (1024 * 1024)
#define NIP86_MAX_HOST 253

struct nip86;

enum nip86_status {
    NIP86_OK = 0,          /* the relay answered {"result": ...} */
    NIP86_UNREACHABLE = 1, /* no answer: refused, timed out, reset, too large, not JSON, non-200 */
    NIP86_REFUSED = 2,     /* the relay answered {"error": "..."} (401 included) */
};

/* Completion. result: the answer's "result" (borrowed until the callback returns; cJSON null
 * when absent) on NIP86_OK, else NULL. what: one line saying what failed ("timed out",
 * "HTTP 503", the relay's own error text...), "" on success; never holds a secret. */
typedef void nip86_done_cb(enum nip86_status status, const cJSON *result, const char *what,
                           void *arg);

/* Creates the client (its own curl multi) on loop. url_template: NULL or "" = the relay's
 * https URL. timeout_ms 0 = NIP86_TIMEOUT_MS. Returns 0 or -1. */
int nip86_new(struct nip86 **out, uv_loop_t *loop, const char *url_template, long timeout_ms);

/* Calls method(params) on the relay at host, signed by kp. params: a JSON array (borrowed,
 * printed here; NULL = []). host is at most NIP86_MAX_HOST characters of [a-z0-9.-:]. On 0,
 * cb runs exactly once; on -1 (bad host, client closing) it never runs. A NULL client: -1. */
int nip86_call(struct nip86 *c, const char *host, const struct nostr_keypair *kp,
               const char *method, const cJSON *params, nip86_done_cb *cb, void *arg);

/* Requests in flight (0 for NULL). */
size_t nip86_active(const struct nip86 *c);

/* The URL a request for host is sent to (malloc'd), and the `u` its token names. Pure. */
char *nip86_target_url(const char *url_template, const char *host);

/* Completes every call in flight with NIP86_UNREACHABLE (fetch's "canceled"), then frees the
 * client and calls cb(arg) once curl's handles are closed (the loop must run until then).
 * NULL: cb at once. */
void nip86_close(struct nip86 *c, void (*cb)(void *arg), void *arg);

#endif
