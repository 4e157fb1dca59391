/* Zooid sync worker (spec 5). Loop thread only. A NULL struct infra (ZOOID_API_URL unset) makes
 * every call a no-op, so callers never check. */
#ifndef CARAVEL_INFRA_H
#define CARAVEL_INFRA_H

#include <stddef.h>

struct app;
struct infra;

int infra_start(struct infra **out, struct app *app);
/* A relay's row changed (committed): sync it now, or once more after the request in flight. */
void infra_kick(struct infra *infra, const char *relay_id);
/* Relays waiting to be synced (for metrics). */
size_t infra_backlog(const struct infra *infra);
/* Stops timers, lets the requests in flight finish or cancels them, frees, then calls cb. */
void infra_stop(struct infra *infra, void (*cb)(void *arg), void *arg);

#endif
