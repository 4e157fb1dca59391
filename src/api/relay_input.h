/* Validation of relay bodies (PRODUCT.md §3.3) and schema names (PRODUCT.md §4). Pure: no loop, no
 * database; thread-safe. */
#ifndef CARAVEL_API_RELAY_INPUT_H
#define CARAVEL_API_RELAY_INPUT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "api/repo_relay.h" /* enum relay_flag, struct relay_fields */

struct relay_error {
    int status;       /* 400 or 422 */
    const char *code; /* "invalid-body", "invalid-subdomain", ... */
    char msg[160];
};

/* Reads the writable fields of body into out (owned strings; free with relay_fields_free).
 * Read-only fields are ignored. Returns 0, or -1 with err filled (field named). */
int relay_fields_parse(const cJSON *body, struct relay_fields *out, struct relay_error *err);
void relay_fields_free(struct relay_fields *f);
/* Copies the fields given in `in` over `base` (base owns its strings afterwards). */
void relay_fields_merge(struct relay_fields *base, const struct relay_fields *in);
/* The plan exists and allows the enabled features. base must be complete. */
int relay_fields_check_plan(const struct relay_fields *f, struct relay_error *err);

/* Number of pubkeys in a moderators list ("hex,hex"; NULL or "" = 0). */
size_t relay_moderator_count(const char *csv);

/* DNS label ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ and not reserved. */
int relay_subdomain_valid(const char *s);
/* zooid schema from a subdomain: '-' -> '_', "r_" prefix when it starts with a digit.
 * out needs >= 68 bytes. */
void relay_schema_from_subdomain(const char *subdomain, char *out, size_t cap);

#endif
