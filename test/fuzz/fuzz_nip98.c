/* libFuzzer target: NIP-98 checking (src/api/nip98.c) on hostile input. The input is
 *   <Authorization header value> '\n' <method> '\n' <request target> '\n' <body bytes>
 * (missing parts are empty). Each input is checked twice: the second call may hit the
 * verified-token cache and must give the same answer and pubkey as the first; a failure always
 * has a reason. "now" is fixed so the committed seeds (a valid token made with nostr-tools for
 * created_at 1700000000) reach the per-request checks. */
// FUZZ_MAX_LEN: 20000
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/nip98.h"
#include "nostr/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copies the next '\n'-terminated part into a NUL-terminated string (caller frees). */
static char *next_part(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nl != NULL);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static const char *const origins[] = {"http://127.0.0.1:3000", "https://api.example.test"};
    const struct nip98_policy policy = {origins, 2, 600};
    if (!ready && nostr_init() == 0)
        ready = 1;
    const uint8_t *p = data, *end = data + size;
    char *auth = next_part(&p, end);
    char *method = next_part(&p, end);
    char *target = next_part(&p, end);
    struct nip98_request req = {auth,       method, target, (const char *)p, (size_t)(end - p),
                                1700000000, 0};
    uint8_t pk1[32] = {0}, pk2[32] = {0};
    const char *why1 = NULL, *why2 = NULL;
    int rc1 = nip98_check(&req, &policy, pk1, &why1);
    int rc2 = nip98_check(&req, &policy, pk2, &why2);
    if (rc1 != rc2 || (rc1 != 0 && rc1 != -1))
        abort();
    if (rc1 == 0 && memcmp(pk1, pk2, 32) != 0)
        abort();
    if (rc1 != 0 && (!why1 || !why2 || !why1[0]))
        abort();
    /* A NULL header is refused, never dereferenced. */
    req.authorization = NULL;
    if (nip98_check(&req, &policy, pk1, &why1) != -1)
        abort();
    free(auth);
    free(method);
    free(target);
    return 0;
}
