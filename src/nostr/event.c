/* Parsing and construction side of nostr/event.h (serialization is in event_json.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/event.h"
#include "nostr/hex.h"
#include "nostr/utf8.h"
#include "util/util.h"

#define MAX_SAFE_INT 9007199254740991.0 /* 2^53-1: above it JS numbers lose integers */

void nostr_event_init(struct nostr_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->tags = cJSON_CreateArray();
    ev->content = xstrdup("");
    if (!ev->tags)
        abort(); /* cJSON allocation failure: same out-of-memory policy as xmalloc */
}

void nostr_event_free(struct nostr_event *ev)
{
    cJSON_Delete(ev->tags);
    free(ev->content);
    memset(ev, 0, sizeof(*ev));
}

void nostr_event_set_content(struct nostr_event *ev, const char *s, size_t n)
{
    free(ev->content);
    ev->content = xmalloc(n + 1);
    memcpy(ev->content, s, n);
    ev->content[n] = '\0';
    ev->content_len = n;
}

void nostr_event_add_tag(struct nostr_event *ev, size_t n, const char *const *values)
{
    cJSON *tag = cJSON_CreateArray();
    if (!tag)
        abort();
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(values[i]);
        if (!s)
            abort();
        cJSON_AddItemToArray(tag, s);
    }
    cJSON_AddItemToArray(ev->tags, tag);
}

void nostr_event_add_tag2(struct nostr_event *ev, const char *name, const char *value)
{
    const char *v[2] = {name, value};
    nostr_event_add_tag(ev, 2, v);
}

const char *nostr_event_tag_value(const struct nostr_event *ev, const char *name)
{
    const cJSON *tag;
    cJSON_ArrayForEach(tag, ev->tags)
    {
        const cJSON *k = cJSON_GetArrayItem(tag, 0), *v = cJSON_GetArrayItem(tag, 1);
        if (cJSON_IsString(k) && cJSON_IsString(v) && strcmp(k->valuestring, name) == 0)
            return v->valuestring;
    }
    return NULL;
}

/* ---- strict field checks ---- */

static int get_hex(const cJSON *obj, const char *key, uint8_t *out, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(it) || strlen(it->valuestring) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = it->valuestring[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1; /* canonical form is lowercase; uppercase is refused */
    }
    return hex_decode(it->valuestring, 2 * n, out, n);
}

static int get_uint(const cJSON *obj, const char *key, double max, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it))
        return -1;
    double d = it->valuedouble;
    if (!(d >= 0 && d <= max) || floor(d) != d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

static int check_string(const cJSON *s)
{
    return cJSON_IsString(s) && utf8_valid(s->valuestring, strlen(s->valuestring)) == 0 ? 0 : -1;
}

static int check_tags(const cJSON *tags)
{
    const cJSON *tag, *v;
    if (!cJSON_IsArray(tags) || cJSON_GetArraySize(tags) > NOSTR_EVENT_MAX_TAGS)
        return -1;
    cJSON_ArrayForEach(tag, tags)
    {
        if (!cJSON_IsArray(tag))
            return -1;
        cJSON_ArrayForEach(v, tag)
        {
            if (check_string(v) != 0)
                return -1;
        }
    }
    return 0;
}

/* The seven NIP-01 keys may each appear at most once (cJSON would silently take the first). */
static int no_duplicate_keys(const cJSON *obj)
{
    static const char *const keys[] = {"id",   "pubkey",  "created_at", "kind",
                                       "tags", "content", "sig"};
    int seen[ARRAY_SIZE(keys)] = {0};
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
            if (it->string && strcmp(it->string, keys[k]) == 0 && seen[k]++)
                return -1;
        }
    }
    return 0;
}

static int from_cjson(struct nostr_event *ev, const cJSON *obj, int need_sig)
{
    int64_t kind = 0;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(obj, "content");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(obj, "tags");
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(obj, "sig");
    if (!cJSON_IsObject(obj) || no_duplicate_keys(obj) != 0)
        return -1;
    if (get_hex(obj, "id", ev->id, 32) != 0 || get_hex(obj, "pubkey", ev->pubkey, 32) != 0)
        return -1;
    if ((need_sig || sig) && get_hex(obj, "sig", ev->sig, 64) != 0)
        return -1;
    if (get_uint(obj, "created_at", MAX_SAFE_INT, &ev->created_at) != 0 ||
        get_uint(obj, "kind", 65535, &kind) != 0)
        return -1;
    if (check_string(content) != 0 || check_tags(tags) != 0)
        return -1;
    ev->kind = (int)kind;
    nostr_event_set_content(ev, content->valuestring, strlen(content->valuestring));
    cJSON_Delete(ev->tags);
    ev->tags = cJSON_Duplicate(tags, 1);
    if (!ev->tags)
        abort();
    return 0;
}

static int event_from_cjson(struct nostr_event *ev, const cJSON *obj, int need_sig)
{
    if (from_cjson(ev, obj, need_sig) == 0)
        return 0;
    nostr_event_free(ev);
    nostr_event_init(ev);
    return -1;
}

int nostr_event_from_cjson(struct nostr_event *ev, const cJSON *obj)
{
    return event_from_cjson(ev, obj, 1);
}

/* cJSON accepts raw control characters inside strings (JSON.parse does not) and turns the
 * escape \u0000 into a string cut short at that point, which would silently change the
 * content. One pass over the raw text refuses both. */
static int raw_json_ok(const char *s, size_t n)
{
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!in_str) {
            in_str = c == '"';
            continue;
        }
        if (c < 0x20)
            return -1;
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && n - i >= 6 && strncmp(s + i + 2, "0000", 4) == 0)
                return -1;
            i++; /* skip the escaped character */
        }
    }
    return 0;
}

static int parse(struct nostr_event *ev, const char *json, size_t len, int need_sig)
{
    const char *end = NULL;
    cJSON *root = NULL;
    int rc = -1;
    if (len > NOSTR_EVENT_MAX_JSON || raw_json_ok(json, len) != 0)
        goto out;
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root)
        goto out;
    /* Only whitespace may follow the object. */
    while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != json + len)
        goto out;
    rc = event_from_cjson(ev, root, need_sig);
out:
    cJSON_Delete(root);
    return rc;
}

int nostr_event_parse(struct nostr_event *ev, const char *json, size_t len)
{
    return parse(ev, json, len, 1);
}

int nostr_event_parse_rumor(struct nostr_event *ev, const char *json, size_t len)
{
    return parse(ev, json, len, 0);
}
