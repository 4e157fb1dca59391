/* The JSON API (PRODUCT.md §3): routing, CORS, NIP-98 authentication and every route. Loop thread.
 * api_handle is the http_handler_fn given to http_server_start with the struct app as arg. */
#ifndef CARAVEL_API_H
#define CARAVEL_API_H

struct http_exchange;

void api_handle(struct http_exchange *ex, void *app);

#endif
