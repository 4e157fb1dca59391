/* libFuzzer target: NIP-01 event parsing and the verify path. Whatever parses must
 * serialize, print back to JSON that parses to the same event, and never crash verify. */
// FUZZ_MAX_LEN: 300000
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/event.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct nostr_event ev;
    if (!ready && nostr_init() == 0)
        ready = 1;
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
