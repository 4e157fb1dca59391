/* libFuzzer target: messages from a Nostr relay (src/net/relay_pool_msg.c), the most exposed
 * input we parse: any relay of a recipient's list can send anything. The input is a sequence
 * of text frames separated by '\n', fed to one connection that has one subscription ("s1",
 * with a NIP-42 identity) and one publish (id 00..01) in flight, so EVENT, OK, EOSE, CLOSED,
 * NOTICE and AUTH all reach state: events are verified and delivered once, OK and CLOSED
 * "auth-required:" start NIP-42, a new challenge resets authentication. Sending is a no-op
 * (no socket). Invariants: an event reaches the subscriber only if it verifies, at most once
 * per id; the publish and EOSE callbacks run at most once. */
// FUZZ_MAX_LEN: 65536
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/relay_pool_int.h"
#include "nostr/event.h"
#include "nostr/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PUB_ID "0000000000000000000000000000000000000000000000000000000000000001"
#define MAX_FRAMES 64

static struct nostr_keypair me;
static int events, eoses, pubs_done;
static uint8_t delivered[MAX_FRAMES][32];

static void on_event(const struct nostr_event *ev, const char *url, void *arg)
{
    (void)url;
    (void)arg;
    if (nostr_event_verify(ev) != 0)
        abort(); /* only verified events are delivered */
    for (int i = 0; i < events; i++)
        if (memcmp(delivered[i], ev->id, 32) == 0)
            abort(); /* the same event twice */
    if (events < MAX_FRAMES)
        memcpy(delivered[events++], ev->id, 32);
}

static void on_eose(void *arg)
{
    (void)arg;
    if (++eoses > 1)
        abort();
}

static void on_published(size_t ok, size_t failed, const char *err, void *arg)
{
    (void)err;
    (void)arg;
    if (++pubs_done > 1 || ok + failed != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = -1;
    if (ready < 0) {
        uint8_t sk[32];
        memset(sk, 0x33, 32);
        ready = nostr_init() == 0 && nostr_keypair_from_seckey(&me, sk) == 0;
    }
    if (!ready)
        abort();
    struct relay_pool pool = {0};
    struct conn conn = {.pool = &pool, .url = "wss://relay.test", .open = 1};
    struct relay_sub *sub = calloc(1, sizeof(*sub) + sizeof(struct target));
    struct pub *pub = calloc(1, sizeof(*pub) + sizeof(struct target));
    if (!sub || !pub)
        abort();
    *sub = (struct relay_sub){.pool = &pool,
                              .id = "s1",
                              .filters = strdup("{}"),
                              .auth = &me,
                              .on_event = on_event,
                              .on_eose = on_eose,
                              .n = 1};
    sub->t[0] = (struct target){.conn = &conn, .state = T_SENT};
    *pub = (struct pub){
        .msg = strdup("[\"EVENT\",{}]"), .id = PUB_ID, .auth = &me, .done = on_published, .n = 1};
    pub->t[0] = (struct target){.conn = &conn, .state = T_SENT};
    list_init(&pool.conns);
    list_init(&pool.subs);
    list_init(&pool.pubs);
    list_insert_head(&pool.subs, &sub->node);
    list_insert_head(&pool.pubs, &pub->node);
    events = eoses = pubs_done = 0;

    const uint8_t *p = data, *end = data + size;
    for (int frame = 0; frame < MAX_FRAMES && p < end; frame++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        rp_handle_message(&conn, (const char *)p, n);
        p += n + (nl != NULL);
    }

    if (!list_empty(&pool.pubs)) { /* not finished: still ours */
        free(pub->msg);
        free(pub->last_error);
        free(pub);
    }
    free(sub->filters);
    free(sub);
    free(conn.challenge);
    return 0;
}
