/* libFuzzer target: NIP-01 event parsing and the verify path. Whatever parses must
 * serialize, print back to JSON that parses to the same event, and never crash verify.
 * The fast parse of the NIP-98 hot path (nostr/event_fast.h) is checked against the general
 * one: whatever it accepts, nostr_event_parse accepts with the same fields and id. */
// FUZZ_MAX_LEN: 300000
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/event.h"
#include "nostr/event_fast.h"
#include "nostr/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct nostr_event *ev, int with_sig)
{
    uint8_t id1[32], id2[32];
    struct nostr_event back;
    char *json = nostr_event_to_json(ev, with_sig);
    if (!json)
        abort(); /* a parsed event has no NUL and valid UTF-8: it must print */
    nostr_event_init(&back);
    int rc = with_sig ? nostr_event_parse(&back, json, strlen(json))
                      : nostr_event_parse_rumor(&back, json, strlen(json));
    if (rc != 0 || nostr_event_compute_id(ev, id1) != 0 ||
        nostr_event_compute_id(&back, id2) != 0 || memcmp(id1, id2, 32) != 0 ||
        back.kind != ev->kind || back.created_at != ev->created_at ||
        strcmp(back.content, ev->content) != 0)
        abort();
    nostr_event_free(&back);
    free(json);
}

static int same_str(const struct nostr_fast_str *s, const cJSON *v)
{
    return cJSON_IsString(v) && strlen(v->valuestring) == s->n &&
           memcmp(s->p, v->valuestring, s->n) == 0;
}

static int same_tags(const struct nostr_fast_event *f, const struct nostr_event *ev)
{
    if (f->n_tags != (size_t)cJSON_GetArraySize(ev->tags))
        return 0;
    for (size_t i = 0; i < f->n_tags; i++) {
        const cJSON *t = cJSON_GetArrayItem(ev->tags, (int)i);
        const struct nostr_fast_tag *ft = &f->tags[i];
        if (ft->n_values != (size_t)cJSON_GetArraySize(t) ||
            (ft->n_values >= 1 && !same_str(&ft->name, cJSON_GetArrayItem(t, 0))) ||
            (ft->n_values >= 2 && !same_str(&ft->value, cJSON_GetArrayItem(t, 1))))
            return 0;
    }
    return 1;
}

/* A fast parse (0) must agree with the general parse, field for field; else abort. */
static void check_fast(const uint8_t *data, size_t size)
{
    struct nostr_fast_event f;
    struct nostr_event ev;
    uint8_t id[32];
    if (nostr_event_parse_fast((const char *)data, size, &f) != 0)
        return;
    nostr_event_init(&ev);
    if (nostr_event_parse(&ev, (const char *)data, size) != 0 ||
        nostr_event_compute_id(&ev, id) != 0 || memcmp(f.computed_id, id, 32) != 0 ||
        memcmp(f.id, ev.id, 32) != 0 || memcmp(f.pubkey, ev.pubkey, 32) != 0 ||
        memcmp(f.sig, ev.sig, 64) != 0 || f.created_at != ev.created_at || f.kind != ev.kind ||
        f.content.n != ev.content_len || memcmp(f.content.p, ev.content, f.content.n) != 0 ||
        !same_tags(&f, &ev))
        abort();
    nostr_event_free(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct nostr_event ev;
    if (!ready && nostr_init() == 0)
        ready = 1;
    check_fast(data, size);
    nostr_event_init(&ev);
    if (nostr_event_parse(&ev, (const char *)data, size) == 0) {
        (void)nostr_event_verify(&ev);
        (void)nostr_event_tag_value(&ev, "p");
        check_round_trip(&ev, 1);
    }
    nostr_event_free(&ev);
    nostr_event_init(&ev);
    if (nostr_event_parse_rumor(&ev, (const char *)data, size) == 0)
        check_round_trip(&ev, 0);
    nostr_event_free(&ev);
    return 0;
}
