/* Outbound HTTP client: libcurl multi driven by the libuv loop (curl's
 * CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION pair on uv_poll and uv_timer). One struct fetch per loop;
 * any number of requests in flight, each with a total timeout and a cap on the response body. Only
 * http:// and https:// URLs, no redirects, no signals (CURLOPT_NOSIGNAL), DNS through curl's
 * threaded resolver: nothing here blocks the loop.
 *
 * Everything here is loop thread only. Callbacks run from the loop (never from inside
 * fetch_start). Error codes are 0 or negative: the UV_E* codes listed below or FETCH_E*. */
#ifndef CARAVEL_NET_FETCH_H
#define CARAVEL_NET_FETCH_H

#include <stddef.h>

#include <uv.h>

#include "util/err.h"

/* FETCH_E* are in util/err.h (one error space). */

#define FETCH_DEFAULT_TIMEOUT_MS 30000
#define FETCH_DEFAULT_MAX_RESPONSE (1024 * 1024)
#define FETCH_MAX_HEADERS 32

struct fetch;
struct fetch_req;

/* A request. Every pointer is borrowed for the duration of fetch_start only (copied). */
struct fetch_opts {
    const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE"; NULL = GET */
    const char *url;            /* absolute http:// or https:// URL */
    const char *const *headers; /* "Name: value" lines, NULL-terminated; NULL = none */
    const char *body;           /* may contain NULs; NULL with body_len 0 = no body */
    size_t body_len;
    long timeout_ms;     /* whole transfer incl. connect; 0 = FETCH_DEFAULT_TIMEOUT_MS */
    size_t max_response; /* body cap in bytes; 0 = FETCH_DEFAULT_MAX_RESPONSE */
};

/* Completion. err is 0 when an HTTP response was received (any status, e.g. 404 or 500:
 * http_status says which), or negative: UV_ETIMEDOUT (timeout), UV_ECONNREFUSED (could not
 * connect), UV_EAI_NONAME (could not resolve), UV_ECONNRESET (server closed or reset the
 * connection before the response was complete), UV_EPROTONOSUPPORT (not http/https),
 * FETCH_ETOOBIG, FETCH_EFAILED, UV_ECANCELED (fetch_close). On error http_status is 0 or
 * whatever status line had arrived. body is NUL-terminated, borrowed until the callback
 * returns (never NULL; "" when empty). The request handle is invalid from the moment the
 * callback starts. The callback may start new requests, cancel others, or call fetch_close. */
typedef void fetch_done_cb(int err, long http_status, const char *body, size_t body_len, void *arg);

/* Creates the client on loop (calls curl_global_init, ref-counted by curl). Returns 0 or
 * FETCH_EFAILED (*out NULL). */
int fetch_new(struct fetch **out, uv_loop_t *loop);

/* Starts a request. On 0, cb will run exactly once (unless fetch_cancel is called first) and
 * *out_req (optional) is a handle valid until then. On error (UV_EINVAL for a missing URL or
 * too many headers, FETCH_ECLOSED, FETCH_EFAILED) cb never runs. */
int fetch_start(struct fetch *f, const struct fetch_opts *opts, fetch_done_cb *cb, void *arg,
                struct fetch_req **out_req);

/* Aborts a request in flight: its callback will not run and req is freed. req must be a
 * handle whose callback has not started. */
void fetch_cancel(struct fetch_req *req);

/* Requests in flight. */
size_t fetch_active(const struct fetch *f);

/* Shuts down: refuses new requests, completes every request in flight with UV_ECANCELED
 * (synchronously, before returning), releases curl, closes the uv handles, and once their
 * close callbacks have run frees f and calls cb(arg) (cb may be NULL). The loop must keep
 * running until then. Safe to call from a fetch_done_cb. */
void fetch_close(struct fetch *f, void (*cb)(void *arg), void *arg);

#endif
