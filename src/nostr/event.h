/* NIP-01 events: strict parsing, the canonical serialization (byte-identical to
 * JSON.stringify of [0,pubkey,created_at,kind,tags,content]), id, sign, verify.
 *
 * A struct nostr_event owns its tags (a cJSON array of arrays of strings) and content.
 * Pure data module: no loop, thread-safe per object (nostr_init() must have run). */
#ifndef CARAVEL_NOSTR_EVENT_H
#define CARAVEL_NOSTR_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nostr/keys.h"
#include "util/buf.h"

#define NOSTR_EVENT_MAX_JSON (256 * 1024) /* parse cap for one event */
#define NOSTR_EVENT_MAX_TAGS 2000

struct nostr_event {
    uint8_t id[32];
    uint8_t pubkey[32];
    int64_t created_at;
    int kind;
    cJSON *tags; /* owned; always an array after init */
    char *content; /* owned, NUL-terminated; "" after init */
    size_t content_len;
    uint8_t sig[64];
};

/* Cannot fail; makes nostr_event_free safe. */
void nostr_event_init(struct nostr_event *ev);
void nostr_event_free(struct nostr_event *ev);
void nostr_event_set_content(struct nostr_event *ev, const char *s, size_t n);
/* Appends a tag of n string values (copied). */
void nostr_event_add_tag(struct nostr_event *ev, size_t n, const char *const *values);
/* Convenience for 2-value tags: ["name", value]. */
void nostr_event_add_tag2(struct nostr_event *ev, const char *name, const char *value);

/* Parses one event object with strict types: id/pubkey 64 lowercase hex, sig 128 lowercase
 * hex, created_at and kind non-negative integers (kind <= 65535), tags arrays of strings,
 * content string; at most NOSTR_EVENT_MAX_JSON bytes and NOSTR_EVENT_MAX_TAGS tags. Does not
 * verify. Returns 0 or -1 (ev left initialised and empty). */
int nostr_event_parse(struct nostr_event *ev, const char *json, size_t len);
int nostr_event_from_cjson(struct nostr_event *ev, const cJSON *obj);

/* Appends the NIP-01 commitment [0,"pubkey",created_at,kind,tags,"content"] to out. */
int nostr_event_serialize(const struct nostr_event *ev, struct buf *out);
int nostr_event_compute_id(const struct nostr_event *ev, uint8_t id[32]);
/* 0 when the id matches the fields and the signature is valid; -1 otherwise. */
int nostr_event_verify(const struct nostr_event *ev);
/* Sets pubkey from kp, computes the id and signs it (fresh aux randomness). */
int nostr_event_sign(struct nostr_event *ev, const struct nostr_keypair *kp);

/* Full event JSON ({"id":..,"pubkey":..,"created_at":..,"kind":..,"tags":..,"content":..,
 * "sig":..}); malloc'd, caller frees. with_sig=0 omits "sig" (rumors). */
char *nostr_event_to_json(const struct nostr_event *ev, int with_sig);
cJSON *nostr_event_to_cjson(const struct nostr_event *ev, int with_sig);

/* First tag whose name is `name` and that has a value: returns tag[1] (borrowed) or NULL. */
const char *nostr_event_tag_value(const struct nostr_event *ev, const char *name);

/* Appends s as a JSON string literal exactly as JSON.stringify writes it. */
int json_append_string(struct buf *out, const char *s, size_t n);

#endif
