#include "sync/breaker.h"

#include <string.h>

void breaker_init(struct breaker *b, unsigned threshold, int64_t base_ms, int64_t cap_ms)
{
    memset(b, 0, sizeof(*b));
    b->threshold = threshold ? threshold : 1;
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
    b->window_ms = b->base_ms;
    b->generation = 1; /* relay marks start at 0: never equal */
}

enum breaker_admit breaker_admit(struct breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return BREAKER_GO;
    case BREAKER_OPEN:
        if (now_ms < b->until_ms)
            return BREAKER_WAIT;
        b->state = BREAKER_HALF_OPEN;
        b->probing = 0;
        break;
    case BREAKER_HALF_OPEN:
        break;
    }
    if (b->probing)
        return BREAKER_WAIT;
    b->probing = 1;
    return BREAKER_PROBE;
}

int breaker_is_outage(int err, long status)
{
    if (err != 0)
        return 1; /* no HTTP answer at all (the caller leaves out its own cancellations) */
    return status >= 500 || status == 429 || status == 408;
}

static void open_for(struct breaker *b, uint64_t now_ms)
{
    b->state = BREAKER_OPEN;
    b->probing = 0;
    b->until_ms = now_ms + (uint64_t)b->window_ms;
}

static void close_it(struct breaker *b)
{
    b->state = BREAKER_CLOSED;
    b->probing = 0;
    b->streak = 0;
    b->generation++;
    b->window_ms = b->base_ms;
}

int breaker_observe(struct breaker *b, uint64_t now_ms, int outage, int probe, uint64_t *relay_mark)
{
    if (!outage) {
        close_it(b);
        return 0;
    }
    if (b->state == BREAKER_HALF_OPEN && probe) {
        b->window_ms = b->window_ms * 2 < b->cap_ms ? b->window_ms * 2 : b->cap_ms;
        open_for(b, now_ms);
        return 1;
    }
    if (b->state != BREAKER_CLOSED || *relay_mark == b->generation)
        return 0; /* already open, or this relay already counted in this streak */
    *relay_mark = b->generation;
    if (++b->streak < b->threshold)
        return 0;
    b->streak = 0;
    b->generation++;
    b->opens++;
    open_for(b, now_ms);
    return 1;
}

void breaker_probe_abandoned(struct breaker *b)
{
    if (b->state == BREAKER_HALF_OPEN)
        b->probing = 0;
}

uint64_t breaker_wait_ms(const struct breaker *b, uint64_t now_ms)
{
    if (b->state == BREAKER_OPEN && now_ms < b->until_ms)
        return b->until_ms - now_ms;
    return 0;
}
