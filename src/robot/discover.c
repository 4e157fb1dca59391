/* Recipient DM relay discovery with a small cache (see robot/discover.h). */
#include "robot/discover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/relay_pool.h"
#include "nostr/hex.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define CACHE_SLOTS 64
#define MAX_URL_LEN 512
#define MAX_INDEXERS 16

struct cache_entry {
    char pubkey[65];
    uint64_t at;
    struct dm_relays relays;
};

struct discover {
    struct relay_pool *pool;
    char *indexers[MAX_INDEXERS];
    size_t n_indexers;
    const struct nostr_keypair *auth;
    struct cache_entry cache[CACHE_SLOTS];
    /* the running lookup */
    struct relay_sub *sub;
    int phase; /* 0 idle, 1 indexers, 2 write relays */
    char pubkey[65];
    struct nostr_event best10050, best10002;
    int have10050, have10002;
    discover_cb *cb;
    void *arg;
};

size_t discover_tag_urls(const struct nostr_event *ev, const char *name, char **out, size_t max)
{
    ASSERT_LOOP_THREAD();
    size_t n = 0;
    const cJSON *tag;
    cJSON_ArrayForEach(tag, ev->tags)
    {
        const char *tn = cJSON_GetStringValue(cJSON_GetArrayItem(tag, 0));
        const char *url = cJSON_GetStringValue(cJSON_GetArrayItem(tag, 1));
        const char *marker = cJSON_GetStringValue(cJSON_GetArrayItem(tag, 2));
        if (n == max || !tn || !url || strcmp(tn, name) != 0 || strlen(url) > MAX_URL_LEN)
            continue;
        if (strncasecmp(url, "wss://", 6) != 0 && strncasecmp(url, "ws://", 5) != 0)
            continue;
        if (strcmp(name, "r") == 0 && marker && strcmp(marker, "write") != 0)
            continue;
        int dup = 0;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(out[i], url) == 0;
        if (!dup)
            out[n++] = xstrdup(url);
    }
    return n;
}

struct discover *discover_new(struct relay_pool *pool, const char *const *indexers,
                              size_t n_indexers, const struct nostr_keypair *auth)
{
    ASSERT_LOOP_THREAD();
    struct discover *d = xcalloc(1, sizeof *d);
    d->pool = pool;
    d->auth = auth;
    for (size_t i = 0; i < n_indexers && i < MAX_INDEXERS; i++)
        d->indexers[d->n_indexers++] = xstrdup(indexers[i]);
    nostr_event_init(&d->best10050);
    nostr_event_init(&d->best10002);
    return d;
}

static void relays_clear(struct dm_relays *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->urls[i]);
    r->n = 0;
}

static void lookup_reset(struct discover *d)
{
    if (d->sub)
        relay_sub_close(d->sub);
    d->sub = NULL;
    d->phase = 0;
    nostr_event_free(&d->best10050);
    nostr_event_free(&d->best10002);
    nostr_event_init(&d->best10050);
    nostr_event_init(&d->best10002);
    d->have10050 = d->have10002 = 0;
}

void discover_free(struct discover *d)
{
    ASSERT_LOOP_THREAD();
    if (!d)
        return;
    if (d->sub)
        relay_sub_close(d->sub);
    nostr_event_free(&d->best10050);
    nostr_event_free(&d->best10002);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        relays_clear(&d->cache[i].relays);
    for (size_t i = 0; i < d->n_indexers; i++)
        free(d->indexers[i]);
    free(d);
}

static struct cache_entry *cache_find(struct discover *d, const char *pk)
{
    uint64_t now = clock_mono_ms();
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_entry *e = &d->cache[i];
        if (e->at && strcmp(e->pubkey, pk) == 0 && now - e->at < DISCOVER_CACHE_MS)
            return e;
    }
    return NULL;
}

/* Oldest slot is replaced. */
static struct cache_entry *cache_put(struct discover *d, const char *pk)
{
    struct cache_entry *e = &d->cache[0];
    for (size_t i = 1; i < CACHE_SLOTS; i++)
        if (d->cache[i].at < e->at)
            e = &d->cache[i];
    relays_clear(&e->relays);
    snprintf(e->pubkey, sizeof e->pubkey, "%s", pk);
    e->at = clock_mono_ms();
    return e;
}

/* Newest wins; on a timestamp tie the lower id, as relays keep replaceable events. */
static void keep_newest(struct nostr_event *best, int *have, const struct nostr_event *ev)
{
    if (*have && (ev->created_at < best->created_at ||
                  (ev->created_at == best->created_at && memcmp(ev->id, best->id, 32) >= 0)))
        return;
    char *json = nostr_event_to_json(ev, 1);
    nostr_event_free(best);
    nostr_event_init(best);
    if (nostr_event_parse(best, json, strlen(json)) == 0)
        *have = 1;
    free(json);
}

static void on_event(const struct nostr_event *ev, const char *url, void *arg)
{
    struct discover *d = arg;
    char pk[65];
    (void)url;
    hex_encode(ev->pubkey, 32, pk);
    if (strcmp(pk, d->pubkey) != 0)
        return; /* the relay sent something we did not ask for */
    if (ev->kind == 10050)
        keep_newest(&d->best10050, &d->have10050, ev);
    else if (ev->kind == 10002)
        keep_newest(&d->best10002, &d->have10002, ev);
}

static void finish(struct discover *d)
{
    struct cache_entry *e = cache_put(d, d->pubkey);
    if (d->have10050)
        e->relays.n =
            discover_tag_urls(&d->best10050, "relay", e->relays.urls, DISCOVER_MAX_RELAYS);
    discover_cb *cb = d->cb;
    void *arg = d->arg;
    lookup_reset(d);
    LOG_INFO("robot: %s has %zu DM relay(s)", e->pubkey, e->relays.n);
    cb(&e->relays, arg);
}

static void on_eose(void *arg)
{
    struct discover *d = arg;
    char *write[DISCOVER_MAX_RELAYS];
    size_t n = 0;
    if (d->phase == 1 && d->have10002)
        n = discover_tag_urls(&d->best10002, "r", write, DISCOVER_MAX_RELAYS);
    relay_sub_close(d->sub);
    d->sub = NULL;
    if (n > 0) {
        char filters[160];
        snprintf(filters, sizeof filters, "[{\"kinds\":[10050],\"authors\":[\"%s\"],\"limit\":1}]",
                 d->pubkey);
        d->phase = 2;
        if (relay_pool_subscribe(d->pool, (const char *const *)write, n, filters, d->auth, on_event,
                                 on_eose, d, &d->sub) != 0)
            d->sub = NULL;
    }
    for (size_t i = 0; i < n; i++)
        free(write[i]);
    if (!d->sub)
        finish(d);
}

int discover_dm_relays(struct discover *d, const char *pubkey_hex, discover_cb *cb, void *arg)
{
    ASSERT_LOOP_THREAD();
    struct cache_entry *e = cache_find(d, pubkey_hex);
    char filters[192];
    if (d->phase)
        return -1;
    if (e) {
        cb(&e->relays, arg);
        return 0;
    }
    snprintf(d->pubkey, sizeof d->pubkey, "%s", pubkey_hex);
    d->cb = cb;
    d->arg = arg;
    d->phase = 1;
    snprintf(filters, sizeof filters, "[{\"kinds\":[10002,10050],\"authors\":[\"%s\"]}]",
             pubkey_hex);
    if (relay_pool_subscribe(d->pool, (const char *const *)d->indexers, d->n_indexers, filters,
                             d->auth, on_event, on_eose, d, &d->sub) != 0) {
        d->sub = NULL;
        finish(d);
    }
    return 0;
}
