/* NIP-01 events: strict parsing, the canonical serialization (byte-identical to
 * JSON.stringify of [0,pubkey,created_at,kind,tags,content]), id, sign, verify.
 *
 * A struct nostr_event owns its tags (a cJSON array of arrays of strings) and content.
 * Pure data module: no loop, thread-safe per object (nostr_init() must have run).
 *
 * U+0000 policy: JSON.stringify would write a NUL as \u0000, but cJSON strings end at NUL, so
 * such an event cannot round-trip. We refuse it consistently: nostr_event_parse rejects any
 * string containing \u0000, and serialize / compute_id / sign / verify / to_json fail (-1 or
 * NULL) when content holds a NUL byte. All strings must also be valid UTF-8 (RFC 3629). */
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
    cJSON *tags;   /* owned; always an array after init */
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
/* Same field checks on an already-parsed object (e.g. the third element of a relay's
 * ["EVENT", subid, {..}]); obj is borrowed, tags are copied. It cannot see the raw text, so a
 * string cut short by \u0000 inside cJSON goes unnoticed here, but such an event then fails
 * nostr_event_verify (its id no longer matches). */
int nostr_event_from_cjson(struct nostr_event *ev, const cJSON *obj);
/* As nostr_event_parse for NIP-59 rumors: "sig" may be absent (then ev->sig is zero); "id"
 * is still required (nip59_unwrap checks it against the fields). */
int nostr_event_parse_rumor(struct nostr_event *ev, const char *json, size_t len);

/* Appends the NIP-01 commitment [0,"pubkey",created_at,kind,tags,"content"] to out.
 * Returns 0, -1 (NUL in content, invalid UTF-8) or BUF_TOOBIG (out's cap). */
int nostr_event_serialize(const struct nostr_event *ev, struct buf *out);
int nostr_event_compute_id(const struct nostr_event *ev, uint8_t id[32]);
/* 0 when the id matches the fields and the signature is valid; -1 otherwise. */
int nostr_event_verify(const struct nostr_event *ev);
/* Sets pubkey from kp, computes the id and signs it (fresh aux randomness). kp borrowed. */
int nostr_event_sign(struct nostr_event *ev, const struct nostr_keypair *kp);

/* Full event JSON ({"id":..,"pubkey":..,"created_at":..,"kind":..,"tags":..,"content":..,
 * "sig":..}); malloc'd, caller frees; NULL if content holds a NUL byte. with_sig=0 omits
 * "sig" (rumors). to_cjson: a new cJSON object, caller cJSON_Delete()s it. */
char *nostr_event_to_json(const struct nostr_event *ev, int with_sig);
cJSON *nostr_event_to_cjson(const struct nostr_event *ev, int with_sig);

/* First tag whose name is `name` and that has a value: returns tag[1] (borrowed) or NULL. */
const char *nostr_event_tag_value(const struct nostr_event *ev, const char *name);

/* Appends s (n bytes, NUL allowed) as a JSON string literal exactly as JSON.stringify writes
 * it: \" \\ \b \f \n \r \t, other C0 controls as \u00xx (lowercase hex), everything else
 * (DEL, non-ASCII, U+2028, '/') verbatim. Returns 0, -1 when s is not valid UTF-8 (nothing
 * appended), or BUF_TOOBIG (out unchanged). */
int json_append_string(struct buf *out, const char *s, size_t n);

#endif
