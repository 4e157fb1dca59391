/* Nostr Wallet Connect client (NIP-47, PRODUCT.md §7) on the shared relay pool. Loop thread only.
 *
 * A request: parse the URI; read the wallet's kind 13194 info event (cached per wallet for
 * NWC_INFO_TTL_MS) to choose NIP-44 v2 (advertised "nip44_v2") or NIP-04; build a kind 23194
 * request signed by the URI secret with an expiration tag; subscribe to kind 23195
 * authors=[wallet] #e=[request id] and publish only once that subscription is live (EOSE);
 * wait for the answer up to the method's timeout (60 s pay_invoice, 30 s others).
 * Malformed or undecryptable answers are ignored (the wait goes on).
 *
 * Money safety: NWC_ETIMEOUT and NWC_EPUBLISH after pay_invoice are "outcome unknown": the
 * wallet may have paid. Callers resolve that with lookup_invoice, never by paying again.
 *
 * Test-only: CARAVEL_TEST_CRASH_AT=after_pay_sent makes the process _exit(97) as soon as a
 * relay accepted a pay_invoice request (the integration tests' kill point). Never set it in
 * production. */
#ifndef CARAVEL_NWC_H
#define CARAVEL_NWC_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "nostr/nip47.h"
#include "util/err.h"

struct config_test;
struct relay_pool;
struct nwc;

/* Errors: NWC_E* in util/err.h (one error space). NWC_EWALLET: resp->error_code is set. */

#define NWC_TIMEOUT_PAY_MS 60000
#define NWC_TIMEOUT_OTHER_MS 30000
#define NWC_INFO_TIMEOUT_MS 10000
#define NWC_INFO_TTL_MS (10 * 60 * 1000)
#define NWC_REQUEST_TTL_S 120 /* expiration tag: now + this */
#define NWC_MAX_PENDING 1024

/* Finished request. status: 0 (resp->result set), NWC_EWALLET (resp->error_code set) or
 * another negative code (resp NULL). resp is borrowed for the call. Runs exactly once per
 * accepted request, on the loop thread, never from inside nwc_request itself. */
typedef void nwc_done_cb(int status, const struct nwc_response *resp, void *arg);

/* pool is borrowed and must outlive the nwc (free the nwc first); so must test (the
 * configuration's test-only settings: pay timeout, kill point). Returns 0. */
int nwc_new(struct nwc **out, uv_loop_t *loop, struct relay_pool *pool,
            const struct config_test *test);
/* Requests in flight finish with NWC_ECANCELED; once the relay pool has returned every
 * publish callback, frees the client and calls cb (may be NULL). */
void nwc_free(struct nwc *nwc, void (*cb)(void *arg), void *arg);

/* Generic request. uri (secret inside: never logged) and method are copied, params
 * (object, may be NULL) is borrowed for the call. Returns 0 (cb will run) or NWC_EURI /
 * NWC_ECANCELED / NWC_EINTERNAL (cb will not run). */
int nwc_request(struct nwc *nwc, const char *uri, const char *method, const cJSON *params,
                uint64_t timeout_ms, nwc_done_cb *cb, void *arg);
/* make_invoice {amount (msats), description, expiry (seconds)}. */
int nwc_make_invoice(struct nwc *nwc, const char *uri, int64_t amount_msats,
                     const char *description, int64_t expiry_s, nwc_done_cb *cb, void *arg);
/* lookup_invoice {payment_hash}. */
int nwc_lookup_invoice(struct nwc *nwc, const char *uri, const char *payment_hash, nwc_done_cb *cb,
                       void *arg);
/* pay_invoice {invoice}. See "Money safety" above. */
int nwc_pay_invoice(struct nwc *nwc, const char *uri, const char *bolt11, nwc_done_cb *cb,
                    void *arg);

/* A notification from the watched wallet (decrypted, author checked); n is borrowed for
 * the call. Loop thread. */
typedef void nwc_notify_cb(const struct nwc_notification *n, void *arg);
/* Listens until nwc_free for the wallet's kind 23196/23197 notifications addressed to the
 * URI's client key, on the URI's relays (resubscribed by the pool after a reconnect).
 * One watch per client. uri is copied. Returns 0, NWC_EURI, NWC_ECANCELED, NWC_EINTERNAL
 * (already watching) or a relay pool error. */
int nwc_watch(struct nwc *nwc, const char *uri, nwc_notify_cb *cb, void *arg);

/* Cached info of a wallet (after at least one request): 0 and *info, or -1. */
int nwc_cached_info(const struct nwc *nwc, const char *uri, struct nwc_info *info);

#endif
