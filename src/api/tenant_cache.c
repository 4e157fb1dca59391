/* Pubkeys known to be tenants, so GET /identity of a tenant needs no database round trip.
 * Only positive answers are kept: a tenant row is never deleted (no route or worker removes
 * one; a suspended tenant is still a tenant), so a remembered "yes" never goes stale, and a
 * "no" is always asked of the database. Loop thread only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "util/util.h"

/* Open addressing, linear probing; stops accepting at half full so probes stay short. */
#define SLOTS 16384

static uint8_t (*set)[32];
static size_t used;

static int is_empty(const uint8_t *k)
{
    static const uint8_t zero[32];
    return memcmp(k, zero, 32) == 0;
}

static size_t slot_of(const uint8_t pubkey[32])
{
    /* Pubkeys are uniformly distributed: their first bytes are a fine hash. */
    return ((size_t)pubkey[0] | (size_t)pubkey[1] << 8 | (size_t)pubkey[2] << 16) % SLOTS;
}

int tenant_cache_has(const uint8_t pubkey[32])
{
    for (size_t i = slot_of(pubkey); set && !is_empty(set[i]); i = (i + 1) % SLOTS)
        if (memcmp(set[i], pubkey, 32) == 0)
            return 1;
    return 0;
}

void tenant_cache_add(const uint8_t pubkey[32])
{
    if (is_empty(pubkey) || used >= SLOTS / 2 || tenant_cache_has(pubkey))
        return;
    if (!set)
        set = xcalloc(SLOTS, sizeof(*set));
    size_t i = slot_of(pubkey);
    while (!is_empty(set[i]))
        i = (i + 1) % SLOTS;
    memcpy(set[i], pubkey, 32);
    used++;
}

void tenant_cache_clear(void)
{
    free(set);
    set = NULL;
    used = 0;
}
