/* Helpers for the Nostr unit tests: load a vector file from test_vectors_dir(), hex to bytes
 * with an assertion, and a one-call nostr_init(). */
#ifndef TEST_NOSTR_VEC_H
#define TEST_NOSTR_VEC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Calls nostr_init() and asserts it worked. */
void vec_init(void);
/* Reads test_vectors_dir()/name (asserts it exists); caller frees. */
char *vec_read(const char *name, size_t *len);
/* Parses test_vectors_dir()/name as JSON (asserts); caller cJSON_Delete()s. */
cJSON *vec_json(const char *name);
/* Decodes exactly n bytes of hex (any case), asserting. */
void vec_hex(const char *hex, uint8_t *out, size_t n);
/* String member of obj (asserts it is present). */
const char *vec_str(const cJSON *obj, const char *key);
/* Secret key from 64 hex or nsec1 (asserts). */
void vec_seckey(const char *s, uint8_t out[32]);

#endif
