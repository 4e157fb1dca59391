/* The JSON API (PRODUCT.md §3): routing, CORS, NIP-98 authentication and every route. Loop thread.
 * api_handle is the http_handler_fn given to http_server_start with the struct app as arg. */
#ifndef CARAVEL_API_H
#define CARAVEL_API_H

struct http_exchange;

void api_handle(struct http_exchange *ex, void *app);
/* The http_head_fn: a request that carries a body must carry a valid NIP-98 token
 * (signature, u, method, age), checked before the body is read; otherwise it is answered
 * 401 unauthorized and the body is never read. The payload hash is checked by api_handle
 * once the body is in. */
int api_head(struct http_exchange *ex, void *app);

#endif
