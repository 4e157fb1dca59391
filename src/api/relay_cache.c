/* See api/relay_cache.h. Direct-mapped: a colliding id replaces the older entry, which only
 * costs its next read a database round trip. */
#include "api/relay_cache.h"

#include <stdlib.h>
#include <string.h>

#include "util/debug.h"
#include "util/util.h"

struct slot {
    char id[RELAY_CACHE_ID_MAX + 1]; /* "" = empty */
    char tenant[65];
    uint64_t seq;
    uint64_t until_ms;
    char *body; /* owned */
    size_t len;
};

static struct slot *slots;
static size_t used;

/* FNV-1a: ids are random hex, any spread will do. */
static struct slot *slot_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &slots[h % RELAY_CACHE_SLOTS];
}

static void drop(struct slot *s)
{
    if (s->id[0])
        used--;
    free(s->body);
    memset(s, 0, sizeof(*s));
}

int relay_cache_get(uint64_t seq, uint64_t now_ms, const char *id, const char **body, size_t *len,
                    const char **tenant)
{
    ASSERT_LOOP_THREAD();
    if (!slots || strlen(id) > RELAY_CACHE_ID_MAX)
        return -1;
    struct slot *s = slot_of(id);
    if (!s->id[0] || strcmp(s->id, id) != 0)
        return -1;
    if (s->seq != seq || (seq & 1) || now_ms >= s->until_ms) {
        drop(s); /* read before a write that may have changed it, or too long ago */
        return -1;
    }
    *body = s->body;
    *len = s->len;
    *tenant = s->tenant;
    return 0;
}

void relay_cache_put(uint64_t seq, uint64_t now_ms, const char *id, const char *tenant,
                     const char *body, size_t len)
{
    ASSERT_LOOP_THREAD();
    if ((seq & 1) || strlen(id) > RELAY_CACHE_ID_MAX || strlen(tenant) > 64 ||
        len > RELAY_CACHE_BODY_MAX)
        return;
    if (!slots)
        slots = xcalloc(RELAY_CACHE_SLOTS, sizeof(*slots));
    struct slot *s = slot_of(id);
    drop(s);
    s->body = xmalloc(len + 1);
    memcpy(s->body, body, len);
    s->body[len] = '\0';
    s->len = len;
    s->seq = seq;
    s->until_ms = now_ms + RELAY_CACHE_TTL_MS;
    strcpy(s->id, id);
    strcpy(s->tenant, tenant);
    used++;
}

void relay_cache_clear(void)
{
    ASSERT_LOOP_THREAD();
    for (size_t i = 0; slots && i < RELAY_CACHE_SLOTS; i++)
        drop(&slots[i]);
    free(slots);
    slots = NULL;
}

size_t relay_cache_size(void)
{
    return used;
}
