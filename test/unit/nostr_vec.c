#include "nostr_vec.h"

#include "test.h"

#include "nostr/hex.h"
#include "nostr/keys.h"

void vec_init(void)
{
    ASSERT_OK(nostr_init());
}

char *vec_read(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", test_vectors_dir(), name);
    char *s = test_read_file(path, len);
    if (!s)
        TEST_FAIL_("cannot read %s", path);
    return s;
}

cJSON *vec_json(const char *name)
{
    size_t n = 0;
    char *s = vec_read(name, &n);
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    if (!j)
        TEST_FAIL_("bad JSON in %s", name);
    return j;
}

void vec_hex(const char *hex, uint8_t *out, size_t n)
{
    if (hex_decode(hex, strlen(hex), out, n) != 0)
        TEST_FAIL_("bad hex (%zu bytes wanted): %s", n, hex);
}

const char *vec_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(it))
        TEST_FAIL_("missing string %s", key);
    return it->valuestring;
}

void vec_seckey(const char *s, uint8_t out[32])
{
    if (nostr_key_parse_secret(s, out) != 0)
        TEST_FAIL_("bad secret key");
}
