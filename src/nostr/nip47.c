#include "nostr/nip47.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/hex.h"
#include "nostr/nip04.h"
#include "nostr/nip44.h"
#include "util/util.h"

/* 1 if the space/comma separated list s contains word. */
static int list_has(const char *s, const char *word)
{
    size_t wl = strlen(word);
    while (s && *s) {
        size_t n = strcspn(s, " ,");
        if (n == wl && memcmp(s, word, n) == 0)
            return 1;
        s += n;
        s += strspn(s, " ,");
    }
    return 0;
}

int nwc_info_parse(const struct nostr_event *ev, struct nwc_info *info)
{
    memset(info, 0, sizeof(*info));
    if (ev->kind != NWC_KIND_INFO)
        return -1;
    if (list_has(nostr_event_tag_value(ev, "encryption"), "nip44_v2"))
        info->encryption = NWC_NIP44;
    info->notifications = list_has(nostr_event_tag_value(ev, "notifications"), "payment_received");
    return 0;
}

/* The keys of a client and its wallet, derived once per thread for the last KEY_MEMO pairs:
 * a client asks the same wallet again and again (billing: thousands of requests a period),
 * and each derivation is an EC multiplication (the public key ~20 us, the NIP-44 key an ECDH,
 * together ~8% of billing's CPU). Wiped by nwc_keys_forget. */
#define KEY_MEMO 8

struct pair_keys {
    uint8_t wallet[32];
    struct nostr_keypair kp; /* the client's: its secret is the URI's */
    uint8_t ck[32];          /* NIP-44 v2 conversation key */
    int used;
};

static _Thread_local struct pair_keys memo[KEY_MEMO];
static _Thread_local unsigned memo_next; /* the slot replaced on the next miss */

static const struct pair_keys *keys_for(const struct nwc_uri *uri)
{
    for (unsigned i = 0; i < KEY_MEMO; i++)
        if (memo[i].used && secure_equal(memo[i].kp.seckey, uri->secret, 32) &&
            memcmp(memo[i].wallet, uri->wallet_pubkey, 32) == 0)
            return &memo[i];
    struct pair_keys *k = &memo[memo_next];
    secure_zero(k, sizeof(*k));
    if (nostr_keypair_from_seckey(&k->kp, uri->secret) < 0 ||
        nip44_conversation_key(uri->secret, uri->wallet_pubkey, k->ck) < 0) {
        secure_zero(k, sizeof(*k));
        return NULL;
    }
    memcpy(k->wallet, uri->wallet_pubkey, 32);
    k->used = 1;
    memo_next = (memo_next + 1) % KEY_MEMO;
    return k;
}

void nwc_keys_forget(void)
{
    secure_zero(memo, sizeof(memo));
    memo_next = 0;
}

static int encrypt_for(const struct nwc_uri *uri, const struct pair_keys *k,
                       enum nwc_encryption enc, const char *plain, char **out)
{
    size_t len = strlen(plain);
    if (enc == NWC_NIP04)
        return nip04_encrypt(uri->secret, uri->wallet_pubkey, plain, len, out);
    return nip44_encrypt(k->ck, plain, len, NULL, out);
}

int nwc_build_request(const struct nwc_uri *uri, enum nwc_encryption enc, const char *method,
                      const cJSON *params, int64_t now, int64_t expiration, struct nostr_event *out)
{
    int rc = -1;
    char *plain = NULL, *payload = NULL;
    const struct pair_keys *k = keys_for(uri);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "method", method);
    cJSON_AddItemToObject(body, "params",
                          params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject());
    plain = cJSON_PrintUnformatted(body);
    if (!plain || !k || encrypt_for(uri, k, enc, plain, &payload) < 0)
        goto out;
    char wallet_hex[65], exp[24];
    hex_encode(uri->wallet_pubkey, 32, wallet_hex);
    snprintf(exp, sizeof(exp), "%lld", (long long)expiration);
    out->kind = NWC_KIND_REQUEST;
    out->created_at = now;
    nostr_event_set_content(out, payload, strlen(payload));
    nostr_event_add_tag2(out, "p", wallet_hex);
    nostr_event_add_tag2(out, "expiration", exp);
    if (enc == NWC_NIP44)
        nostr_event_add_tag2(out, "encryption", "nip44_v2");
    rc = nostr_event_sign(out, &k->kp);
out:
    cJSON_Delete(body);
    free(plain);
    free(payload);
    return rc;
}

void nwc_response_free(struct nwc_response *resp)
{
    cJSON_Delete(resp->root);
    memset(resp, 0, sizeof(*resp));
}

static int decrypt_from(const struct nwc_uri *uri, const struct nostr_event *ev, char **out,
                        size_t *out_len)
{
    if (strstr(ev->content, "?iv="))
        return nip04_decrypt(uri->secret, uri->wallet_pubkey, ev->content, ev->content_len, out,
                             out_len);
    const struct pair_keys *k = keys_for(uri);
    return k ? nip44_decrypt(k->ck, ev->content, ev->content_len, out, out_len) : -1;
}

/* Copies a wallet string, capped, with control characters replaced (it reaches logs/DMs). */
static void copy_clean(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
    dst[i] = '\0';
}

static int take_error(struct nwc_response *resp, const cJSON *err)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    if (!cJSON_IsString(code) || !code->valuestring[0])
        return -1;
    copy_clean(resp->error_code, sizeof(resp->error_code), code->valuestring);
    copy_clean(resp->error_message, sizeof(resp->error_message),
               cJSON_IsString(msg) ? msg->valuestring : "");
    return 0;
}

static int parse_body(struct nwc_response *resp, const char *method)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(resp->root, "result_type");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(resp->root, "error");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(resp->root, "result");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, method) != 0)
        return -1;
    if (cJSON_IsObject(err))
        return take_error(resp, err);
    if (!cJSON_IsObject(result))
        return -1;
    resp->result = result;
    return 0;
}

int nwc_parse_response(const struct nwc_uri *uri, const struct nostr_event *ev, const char *method,
                       struct nwc_response *resp)
{
    char *plain = NULL;
    size_t len = 0;
    memset(resp, 0, sizeof(*resp));
    if (ev->kind != NWC_KIND_RESPONSE || memcmp(ev->pubkey, uri->wallet_pubkey, 32) != 0)
        return -1;
    if (decrypt_from(uri, ev, &plain, &len) < 0)
        return -1;
    if (len <= NWC_MAX_PLAINTEXT)
        resp->root = cJSON_ParseWithLength(plain, len);
    free(plain);
    if (!cJSON_IsObject(resp->root) || parse_body(resp, method) < 0) {
        nwc_response_free(resp);
        return -1;
    }
    return 0;
}

int nwc_parse_notification(const struct nwc_uri *uri, const struct nostr_event *ev,
                           struct nwc_notification *out)
{
    char *plain = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    if ((ev->kind != NWC_KIND_NOTIFY_NIP04 && ev->kind != NWC_KIND_NOTIFY_NIP44) ||
        memcmp(ev->pubkey, uri->wallet_pubkey, 32) != 0)
        return -1;
    if (decrypt_from(uri, ev, &plain, &len) < 0)
        return -1;
    if (len <= NWC_MAX_PLAINTEXT)
        out->root = cJSON_ParseWithLength(plain, len);
    free(plain);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(out->root, "notification_type");
    const cJSON *tx = cJSON_GetObjectItemCaseSensitive(out->root, "notification");
    if (!cJSON_IsString(type) || !cJSON_IsObject(tx)) {
        nwc_notification_free(out);
        return -1;
    }
    out->type = type->valuestring;
    out->tx = tx;
    return 0;
}

void nwc_notification_free(struct nwc_notification *n)
{
    cJSON_Delete(n->root);
    memset(n, 0, sizeof(*n));
}

int nwc_tx_is_settled(const cJSON *tx)
{
    const char *state = nwc_tx_string(tx, "state");
    const char *preimage = nwc_tx_string(tx, "preimage");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(tx, "settled_at");
    if (state)
        return strcmp(state, "settled") == 0;
    return (cJSON_IsNumber(at) && at->valuedouble > 0) || (preimage && preimage[0]);
}

int64_t nwc_tx_expires_at(const cJSON *tx)
{
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(tx, "expires_at");
    if (!cJSON_IsNumber(at) || at->valuedouble <= 0 || at->valuedouble > 1e15)
        return 0;
    return (int64_t)at->valuedouble;
}

const char *nwc_tx_string(const cJSON *tx, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tx, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
