#include "nostr/nip59.h"

#include <stdlib.h>
#include <string.h>

#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip44.h"
#include "util/util.h"

#define KIND_SEAL 13
#define KIND_WRAP 1059
#define KIND_DM 14
#define TWO_DAYS 172800

/* now minus a uniform 0..2 days: both layers hide the real send time (NIP-59). */
static int64_t random_past(int64_t now)
{
    uint8_t r[4];
    if (nostr_random(r, sizeof(r)) != 0)
        return now;
    uint32_t v = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
    return now - (int64_t)(v % (TWO_DAYS + 1));
}

static void copy_event(struct nostr_event *dst, const struct nostr_event *src)
{
    nostr_event_free(dst);
    nostr_event_init(dst);
    memcpy(dst->id, src->id, 32);
    memcpy(dst->pubkey, src->pubkey, 32);
    memcpy(dst->sig, src->sig, 64);
    dst->created_at = src->created_at;
    dst->kind = src->kind;
    nostr_event_set_content(dst, src->content, src->content_len);
    cJSON_Delete(dst->tags);
    dst->tags = cJSON_Duplicate(src->tags, 1);
    if (!dst->tags)
        abort();
}

/* Builds `out` (kind, content = NIP-44(inner JSON), random created_at) signed by `signer`. */
static int seal_layer(const char *inner, const struct nostr_keypair *signer,
                      const uint8_t recipient[32], int kind, int64_t now, struct nostr_event *out)
{
    uint8_t ck[32];
    char *payload = NULL;
    int rc = nip44_conversation_key(signer->seckey, recipient, ck);
    if (rc == 0)
        rc = nip44_encrypt(ck, inner, strlen(inner), NULL, &payload);
    secure_zero(ck, sizeof(ck));
    if (rc != 0)
        return -1;
    out->kind = kind;
    out->created_at = random_past(now);
    nostr_event_set_content(out, payload, strlen(payload));
    free(payload);
    return nostr_event_sign(out, signer);
}

int nip59_wrap(const struct nostr_event *rumor, const struct nostr_keypair *sender,
               const uint8_t recipient[32], int64_t now, struct nostr_event *wrap)
{
    struct nostr_event r, seal;
    struct nostr_keypair eph;
    char *json = NULL, rhex[65];
    int rc = -1;
    nostr_event_init(&r);
    nostr_event_init(&seal);
    memset(&eph, 0, sizeof(eph));
    if (memcmp(rumor->pubkey, sender->pubkey, 32) != 0)
        goto out;
    copy_event(&r, rumor);
    memset(r.sig, 0, sizeof(r.sig));
    if (nostr_event_compute_id(&r, r.id) != 0 || !(json = nostr_event_to_json(&r, 0)))
        goto out;
    if (seal_layer(json, sender, recipient, KIND_SEAL, now, &seal) != 0)
        goto out;
    free(json);
    json = nostr_event_to_json(&seal, 1);
    /* A fresh one-time key per wrap: the outer layer links to nobody. */
    if (!json || nostr_keypair_generate(&eph) != 0)
        goto out;
    nostr_event_free(wrap);
    nostr_event_init(wrap);
    hex_encode(recipient, 32, rhex);
    nostr_event_add_tag2(wrap, "p", rhex);
    rc = seal_layer(json, &eph, recipient, KIND_WRAP, now, wrap);
out:
    secure_zero(&eph, sizeof(eph));
    free(json);
    nostr_event_free(&r);
    nostr_event_free(&seal);
    return rc;
}

int nip17_wrap_dm(const struct nostr_keypair *sender, const uint8_t recipient[32], const char *text,
                  int64_t now, struct nostr_event *wrap)
{
    struct nostr_event rumor;
    char rhex[65];
    nostr_event_init(&rumor);
    memcpy(rumor.pubkey, sender->pubkey, 32);
    rumor.kind = KIND_DM;
    rumor.created_at = now;
    hex_encode(recipient, 32, rhex);
    nostr_event_add_tag2(&rumor, "p", rhex);
    nostr_event_set_content(&rumor, text, strlen(text));
    int rc = nip59_wrap(&rumor, sender, recipient, now, wrap);
    nostr_event_free(&rumor);
    return rc;
}

/* Decrypts ev->content with conv(me, ev->pubkey): the JSON of the next layer (caller frees). */
static char *open_layer(const struct nostr_event *ev, const struct nostr_keypair *me, size_t *len)
{
    uint8_t ck[32];
    char *inner = NULL;
    if (nip44_conversation_key(me->seckey, ev->pubkey, ck) == 0)
        nip44_decrypt(ck, ev->content, ev->content_len, &inner, len);
    secure_zero(ck, sizeof(ck));
    return inner;
}

static int open_seal(const struct nostr_event *wrap, const struct nostr_keypair *me,
                     struct nostr_event *seal)
{
    size_t len = 0;
    char *json = NULL;
    int rc = -1;
    /* The outer signature is checked before any decryption (NIP-44). */
    if (wrap->kind != KIND_WRAP || nostr_event_verify(wrap) != 0)
        return -1;
    json = open_layer(wrap, me, &len);
    if (json && nostr_event_parse(seal, json, len) == 0 && seal->kind == KIND_SEAL &&
        nostr_event_verify(seal) == 0)
        rc = 0;
    free(json);
    return rc;
}

int nip59_unwrap(const struct nostr_event *wrap, const struct nostr_keypair *me,
                 struct nostr_event *rumor)
{
    struct nostr_event seal, r;
    uint8_t id[32];
    size_t len = 0;
    char *json = NULL;
    int rc = -1;
    nostr_event_init(&seal);
    nostr_event_init(&r);
    if (open_seal(wrap, me, &seal) != 0)
        goto out;
    json = open_layer(&seal, me, &len);
    if (!json || nostr_event_parse_rumor(&r, json, len) != 0)
        goto out;
    /* rumor.pubkey == seal.pubkey, else anyone could seal someone else's words (NIP-17);
     * the rumor's id must also be the hash of its fields. */
    if (memcmp(r.pubkey, seal.pubkey, 32) != 0 || nostr_event_compute_id(&r, id) != 0 ||
        memcmp(id, r.id, 32) != 0)
        goto out;
    copy_event(rumor, &r);
    rc = 0;
out:
    free(json);
    nostr_event_free(&seal);
    nostr_event_free(&r);
    return rc;
}
