/* nostr_tool: lets the integration tests cross-check our Nostr core against nostr-tools.
 * Reads one JSON command on stdin, prints one JSON object on stdout ({"error": ".."} on
 * failure, exit status 1). Keys are hex. Commands ("op"):
 *   sign          sk, kind, created_at, tags, content      -> event_json
 *   verify        event_json                               -> ok (bool), id (recomputed)
 *   nip44_encrypt sk, pk, plaintext                        -> payload
 *   nip44_decrypt sk, pk, payload                          -> plaintext
 *   nip04_encrypt sk, pk, plaintext                        -> payload
 *   nip04_decrypt sk, pk, payload                          -> plaintext
 *   wrap_dm       sk, to, text, now                        -> wrap_json
 *   unwrap        sk, wrap_json                            -> rumor_json
 *   nip98_parse   token ("Nostr <base64>")                 -> event_json, ok, u, method
 * A test tool: secrets arrive on stdin and are never printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip04.h"
#include "nostr/nip44.h"
#include "nostr/nip59.h"
#include "util/buf.h"

#define STDIN_MAX (8 * 1024 * 1024)

static const char *str(const cJSON *cmd, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cmd, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int key32(const cJSON *cmd, const char *key, uint8_t out[32])
{
    const char *s = str(cmd, key);
    return s ? hex_decode(s, strlen(s), out, 32) : -1;
}

static int keypair(const cJSON *cmd, struct nostr_keypair *kp)
{
    uint8_t sk[32];
    return key32(cmd, "sk", sk) == 0 ? nostr_keypair_from_seckey(kp, sk) : -1;
}

/* Adds a string member, taking ownership of s (NULL means failure). */
static int put_owned(cJSON *out, const char *key, char *s)
{
    if (!s)
        return -1;
    cJSON_AddStringToObject(out, key, s);
    free(s);
    return 0;
}

static int op_sign(const cJSON *cmd, cJSON *out)
{
    struct nostr_keypair kp;
    struct nostr_event ev;
    const cJSON *tags = cJSON_GetObjectItem(cmd, "tags");
    const cJSON *kind = cJSON_GetObjectItem(cmd, "kind");
    const cJSON *created_at = cJSON_GetObjectItem(cmd, "created_at");
    const char *content = str(cmd, "content");
    int rc = -1;
    nostr_event_init(&ev);
    if (keypair(cmd, &kp) != 0 || !content || !cJSON_IsArray(tags) || !cJSON_IsNumber(kind) ||
        !cJSON_IsNumber(created_at))
        goto out;
    ev.kind = kind->valueint;
    ev.created_at = (int64_t)created_at->valuedouble;
    nostr_event_set_content(&ev, content, strlen(content));
    cJSON_Delete(ev.tags);
    ev.tags = cJSON_Duplicate(tags, 1);
    if (nostr_event_sign(&ev, &kp) == 0)
        rc = put_owned(out, "event_json", nostr_event_to_json(&ev, 1));
out:
    nostr_event_free(&ev);
    return rc;
}

static int parse_event(const char *json, struct nostr_event *ev)
{
    nostr_event_init(ev);
    return json ? nostr_event_parse(ev, json, strlen(json)) : -1;
}

static int op_verify(const cJSON *cmd, cJSON *out)
{
    struct nostr_event ev;
    uint8_t id[32];
    char hex[65];
    int rc = parse_event(str(cmd, "event_json"), &ev);
    if (rc == 0 && nostr_event_compute_id(&ev, id) == 0) {
        hex_encode(id, 32, hex);
        cJSON_AddStringToObject(out, "id", hex);
    }
    if (rc == 0)
        cJSON_AddBoolToObject(out, "ok", nostr_event_verify(&ev) == 0);
    nostr_event_free(&ev);
    return rc;
}

static int op_crypt(const cJSON *cmd, cJSON *out, int nip, int encrypt)
{
    uint8_t sk[32], pk[32], ck[32];
    const char *in = str(cmd, encrypt ? "plaintext" : "payload");
    char *res = NULL;
    int rc = -1;
    if (!in || key32(cmd, "sk", sk) != 0 || key32(cmd, "pk", pk) != 0)
        return -1;
    if (nip == 4)
        rc = encrypt ? nip04_encrypt(sk, pk, in, strlen(in), &res)
                     : nip04_decrypt(sk, pk, in, strlen(in), &res, NULL);
    else if (nip44_conversation_key(sk, pk, ck) == 0)
        rc = encrypt ? nip44_encrypt(ck, in, strlen(in), NULL, &res)
                     : nip44_decrypt(ck, in, strlen(in), &res, NULL);
    if (rc != 0)
        return -1;
    return put_owned(out, encrypt ? "payload" : "plaintext", res);
}

static int op_wrap_dm(const cJSON *cmd, cJSON *out)
{
    struct nostr_keypair kp;
    struct nostr_event wrap;
    uint8_t to[32];
    const char *text = str(cmd, "text");
    const cJSON *now = cJSON_GetObjectItem(cmd, "now");
    int rc = -1;
    nostr_event_init(&wrap);
    if (keypair(cmd, &kp) == 0 && key32(cmd, "to", to) == 0 && text && cJSON_IsNumber(now) &&
        nip17_wrap_dm(&kp, to, text, (int64_t)now->valuedouble, &wrap) == 0)
        rc = put_owned(out, "wrap_json", nostr_event_to_json(&wrap, 1));
    nostr_event_free(&wrap);
    return rc;
}

static int op_unwrap(const cJSON *cmd, cJSON *out)
{
    struct nostr_keypair kp;
    struct nostr_event wrap, rumor;
    int rc = -1;
    nostr_event_init(&rumor);
    if (parse_event(str(cmd, "wrap_json"), &wrap) == 0 && keypair(cmd, &kp) == 0 &&
        nip59_unwrap(&wrap, &kp, &rumor) == 0)
        rc = put_owned(out, "rumor_json", nostr_event_to_json(&rumor, 0));
    nostr_event_free(&wrap);
    nostr_event_free(&rumor);
    return rc;
}

/* "Nostr <base64 of the event JSON>" (scheme case-insensitive, padding optional). */
static int op_nip98_parse(const cJSON *cmd, cJSON *out)
{
    const char *tok = str(cmd, "token");
    uint8_t *json = NULL;
    size_t n = 0;
    struct nostr_event ev;
    int rc = -1;
    nostr_event_init(&ev);
    if (!tok || strncasecmp(tok, "Nostr ", 6) != 0)
        goto out;
    tok += 6;
    if (base64_decode(tok, strlen(tok), 1, &json, &n) != 0 ||
        nostr_event_parse(&ev, (const char *)json, n) != 0)
        goto out;
    cJSON_AddBoolToObject(out, "ok", nostr_event_verify(&ev) == 0);
    cJSON_AddNumberToObject(out, "kind", ev.kind);
    cJSON_AddStringToObject(out, "u", nostr_event_tag_value(&ev, "u") ?: "");
    cJSON_AddStringToObject(out, "method", nostr_event_tag_value(&ev, "method") ?: "");
    rc = put_owned(out, "event_json", nostr_event_to_json(&ev, 1));
out:
    free(json);
    nostr_event_free(&ev);
    return rc;
}

static int dispatch(const cJSON *cmd, cJSON *out)
{
    const char *op = str(cmd, "op");
    if (!op)
        return -1;
    if (!strcmp(op, "sign"))
        return op_sign(cmd, out);
    if (!strcmp(op, "verify"))
        return op_verify(cmd, out);
    if (!strncmp(op, "nip44_", 6) || !strncmp(op, "nip04_", 6))
        return op_crypt(cmd, out, op[3] == '4' ? 44 : 4, strstr(op, "encrypt") != NULL);
    if (!strcmp(op, "wrap_dm"))
        return op_wrap_dm(cmd, out);
    if (!strcmp(op, "unwrap"))
        return op_unwrap(cmd, out);
    if (!strcmp(op, "nip98_parse"))
        return op_nip98_parse(cmd, out);
    return -1;
}

int main(void)
{
    struct buf in;
    char chunk[65536];
    size_t n;
    buf_init(&in, STDIN_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (buf_append(&in, chunk, n) != 0)
            return 2;
    if (nostr_init() != 0 || !in.data)
        return 2;
    cJSON *cmd = cJSON_ParseWithLength(in.data, in.len), *out = cJSON_CreateObject();
    int rc = cmd ? dispatch(cmd, out) : -1;
    if (rc != 0) {
        cJSON_Delete(out);
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "error", "failed");
    }
    char *s = cJSON_PrintUnformatted(out);
    puts(s);
    free(s);
    cJSON_Delete(out);
    cJSON_Delete(cmd);
    buf_free(&in);
    nostr_shutdown();
    return rc == 0 ? 0 : 1;
}
