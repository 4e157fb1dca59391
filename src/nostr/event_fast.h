/* A fast path for parsing the common shape of a NIP-01 event and computing its id, without
 * cJSON and without allocating: the hot path of NIP-98 tokens seen for the first time, where
 * the general parser (cJSON, a copy of the tags, the serialization through a growing buffer)
 * cost about a quarter of a BIP-340 verification per token.
 *
 * It never refuses: it either parses (0) or declines (1), and then the caller runs the general
 * nostr_event_parse, which decides. It parses only events whose every string is printable
 * ASCII without escapes (0x20-0x7e, no '\\'), whose numbers are plain decimal integers, with
 * exactly the seven NIP-01 keys, once each, at most NOSTR_FAST_MAX_TAGS tags, and only JSON
 * whitespace (space, tab, CR, LF) between tokens; anything else declines. For such an input
 * every string's JSON text is its own canonical (JSON.stringify) form, so the id commitment
 * is assembled from slices of the input. The guarantee, checked by a property test
 * (test_nostr_event_fast.c): whenever this returns 0, nostr_event_parse accepts the same text
 * with the same fields, and nostr_event_compute_id gives the same computed_id.
 *
 * Pure, thread-safe (nostr_init() must have run for the hash). */
#ifndef CARAVEL_NOSTR_EVENT_FAST_H
#define CARAVEL_NOSTR_EVENT_FAST_H

#include <stddef.h>
#include <stdint.h>

#define NOSTR_FAST_MAX_JSON 16384
#define NOSTR_FAST_MAX_TAGS 16

/* A string value: its bytes in the parsed text (no escapes, no NUL; not NUL-terminated). */
struct nostr_fast_str {
    const char *p;
    size_t n;
};

/* One tag: its first two values (when it has them) and how many values it has. */
struct nostr_fast_tag {
    struct nostr_fast_str name;  /* valid when n_values >= 1 */
    struct nostr_fast_str value; /* valid when n_values >= 2 */
    size_t n_values;
};

/* Borrows the parsed text (the string slices point into it). */
struct nostr_fast_event {
    uint8_t id[32];          /* the "id" field as given */
    uint8_t computed_id[32]; /* sha256 of [0,pubkey,created_at,kind,tags,content] */
    uint8_t pubkey[32];
    uint8_t sig[64];
    int64_t created_at;
    int kind;
    size_t n_tags;
    struct nostr_fast_tag tags[NOSTR_FAST_MAX_TAGS];
    struct nostr_fast_str content;
};

/* 0: parsed, every field set and computed_id computed (the signature is not verified);
 * 1: declined (see above), ev undefined. */
int nostr_event_parse_fast(const char *json, size_t len, struct nostr_fast_event *ev);

#endif
