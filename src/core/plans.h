/* The plans a relay can be on (PRODUCT.md §3.3). Static data: thread-safe. */
#ifndef CARAVEL_PLANS_H
#define CARAVEL_PLANS_H

#include <stddef.h>
#include <stdint.h>

struct plan {
    const char *id, *name;
    int64_t sats;    /* per month */
    int64_t members; /* maximum members, -1 = unlimited */
    int blossom, livekit;
    int64_t max_relays; /* relays one tenant may have on this plan (any status) */
    int moderators;     /* maximum moderators of a relay (zooid role "moderator") */
};

extern const struct plan plans[];
extern const size_t n_plans;

/* The plan with this id, or NULL. */
const struct plan *plan_find(const char *id);

#endif
