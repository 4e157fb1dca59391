/* What GET /identity needs to know without a database round trip: whether a pubkey is a
 * tenant. A "yes" is kept for good: a tenant row is never deleted (no route or worker removes
 * one; a suspended tenant is still a tenant), so it never goes stale. A "no" is kept for
 * NEGATIVE_TTL_MS only: tenants are created by POST /tenants of this process, which records
 * the "yes" as soon as it commits (and "yes" wins), so a stale "no" can only come from a row
 * written behind the service's back, and lasts at most that long. Loop thread only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "util/clock.h"
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

static void clear_negatives(void);

void tenant_cache_clear(void)
{
    free(set);
    set = NULL;
    used = 0;
    clear_negatives();
}

/* ---- recent "not a tenant" answers: direct-mapped, a collision just evicts ---- */

#define NEGATIVE_SLOTS 1024
#define NEGATIVE_TTL_MS 1000

struct negative {
    uint8_t pubkey[32];
    uint64_t until_ms;
};

static struct negative *negatives;

int tenant_cache_known_not(const uint8_t pubkey[32])
{
    const struct negative *n = negatives ? &negatives[slot_of(pubkey) % NEGATIVE_SLOTS] : NULL;
    return n && memcmp(n->pubkey, pubkey, 32) == 0 && clock_mono_ms() < n->until_ms &&
           !tenant_cache_has(pubkey);
}

void tenant_cache_add_not(const uint8_t pubkey[32])
{
    if (!negatives)
        negatives = xcalloc(NEGATIVE_SLOTS, sizeof(*negatives));
    struct negative *n = &negatives[slot_of(pubkey) % NEGATIVE_SLOTS];
    memcpy(n->pubkey, pubkey, 32);
    n->until_ms = clock_mono_ms() + NEGATIVE_TTL_MS;
}

static void clear_negatives(void)
{
    free(negatives);
    negatives = NULL;
}
