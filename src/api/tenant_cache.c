/* What GET /identity needs to know without a database round trip: whether a pubkey is a
 * tenant. A "yes" is kept until the table is full (see MAX_SLOTS): a tenant row is never
 * deleted (no route or worker removes one; a suspended tenant is still a tenant), so it never
 * goes stale, on any instance, and dropping one only costs a lookup. A "no" is kept for
 * NEGATIVE_TTL_MS only, and only on a store this process owns (SQLite; respond.c asks
 * db_shared): tenants are created by POST /tenants of this process, which records the "yes"
 * as soon as it commits (and "yes" wins), so a stale "no" can only come from a row written
 * behind the service's back, and lasts at most that long. On a shared store another instance
 * creates tenants, so a "no" is never kept there. Loop thread only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "util/clock.h"
#include "util/util.h"

/* Open addressing with linear probing, kept at most half full so probes stay short. The table
 * doubles as tenants arrive (from 16,384 slots) up to MAX_SLOTS; at that size (131,072
 * tenants, 8 MiB) a new tenant replaces the one in its home slot. Any replacement is correct
 * here: a "yes" that is no longer cached costs one database lookup, after which it is cached
 * again. The cap matters because any signer can create a tenant (POST /tenants). */
#define MIN_SLOTS 16384
#define MAX_SLOTS (1u << 18)

static uint8_t (*set)[32];
static size_t slots, used;

static int is_empty(const uint8_t *k)
{
    static const uint8_t zero[32];
    return memcmp(k, zero, 32) == 0;
}

static size_t home_of(const uint8_t pubkey[32], size_t n)
{
    /* Pubkeys are uniformly distributed: their first bytes are a fine hash. */
    size_t h = (size_t)pubkey[0] | (size_t)pubkey[1] << 8 | (size_t)pubkey[2] << 16 |
               (size_t)pubkey[3] << 24;
    return h & (n - 1); /* n is a power of two */
}

/* The slot holding pubkey, or the empty slot where it would go. */
static size_t find(const uint8_t pubkey[32])
{
    size_t i = home_of(pubkey, slots);
    while (!is_empty(set[i]) && memcmp(set[i], pubkey, 32) != 0)
        i = (i + 1) & (slots - 1);
    return i;
}

int tenant_cache_has(const uint8_t pubkey[32])
{
    return set && !is_empty(set[find(pubkey)]);
}

static void resize(size_t n)
{
    uint8_t(*old)[32] = set;
    size_t old_n = slots;
    set = xcalloc(n, sizeof(*set));
    slots = n;
    for (size_t i = 0; i < old_n; i++)
        if (!is_empty(old[i]))
            memcpy(set[find(old[i])], old[i], 32);
    free(old);
}

/* Empties slot i and moves later members of its probe run back, so that every remaining key
 * stays reachable from its home slot (deletion without tombstones). */
static void remove_at(size_t i)
{
    size_t mask = slots - 1, j = i;
    memset(set[i], 0, 32);
    used--;
    for (;;) {
        j = (j + 1) & mask;
        if (is_empty(set[j]))
            return;
        size_t home = home_of(set[j], slots);
        /* set[j] may move to i when i lies cyclically in [home, j). */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            memcpy(set[i], set[j], 32);
            memset(set[j], 0, 32);
            i = j;
        }
    }
}

/* At the cap: the first member at or after slot i goes (a pseudo-random one, since pubkeys
 * are uniform; the table is half full, so the walk is short). */
static void evict_near(size_t i)
{
    while (is_empty(set[i]))
        i = (i + 1) & (slots - 1);
    remove_at(i);
}

void tenant_cache_add(const uint8_t pubkey[32])
{
    if (is_empty(pubkey) || tenant_cache_has(pubkey))
        return;
    if (!set)
        resize(MIN_SLOTS);
    if (used + 1 > slots / 2) {
        if (slots < MAX_SLOTS)
            resize(slots * 2);
        else
            evict_near(home_of(pubkey, slots));
    }
    memcpy(set[find(pubkey)], pubkey, 32);
    used++;
}

size_t tenant_cache_size(void)
{
    return used;
}

static void clear_negatives(void);

void tenant_cache_clear(void)
{
    free(set);
    set = NULL;
    slots = used = 0;
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
    const struct negative *n = negatives ? &negatives[home_of(pubkey, NEGATIVE_SLOTS)] : NULL;
    return n && memcmp(n->pubkey, pubkey, 32) == 0 && clock_mono_ms() < n->until_ms &&
           !tenant_cache_has(pubkey);
}

void tenant_cache_add_not(const uint8_t pubkey[32])
{
    if (!negatives)
        negatives = xcalloc(NEGATIVE_SLOTS, sizeof(*negatives));
    struct negative *n = &negatives[home_of(pubkey, NEGATIVE_SLOTS)];
    memcpy(n->pubkey, pubkey, 32);
    n->until_ms = clock_mono_ms() + NEGATIVE_TTL_MS;
}

static void clear_negatives(void)
{
    free(negatives);
    negatives = NULL;
}
