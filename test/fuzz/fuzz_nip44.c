/* libFuzzer target: NIP-44 v2 decryption with a fixed conversation key (and NIP-04 with
 * fixed keys on the same bytes). Anything that decrypts must re-encrypt and decrypt to the
 * same plaintext. */
// FUZZ_MAX_LEN: 100000
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nostr/keys.h"
#include "nostr/nip04.h"
#include "nostr/nip44.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* conversation_key of the first official encrypt_decrypt vector (sec1=1, sec2=2). */
static const uint8_t conv_key[32] = {
    0xc4, 0x1c, 0x77, 0x53, 0x56, 0xfd, 0x92, 0xea, 0xdc, 0x63, 0xff, 0x5a, 0x0d, 0xc1, 0xda, 0x21,
    0x1b, 0x26, 0x8c, 0xbe, 0xa2, 0x23, 0x16, 0x76, 0x70, 0x95, 0xb2, 0x87, 0x1e, 0xa1, 0x41, 0x2d};

static void nip04_path(const uint8_t *data, size_t size)
{
    static struct nostr_keypair a;
    static int have;
    uint8_t sk[32] = {0};
    char *out = NULL;
    if (!have) {
        sk[31] = 1;
        have = nostr_keypair_from_seckey(&a, sk) == 0;
    }
    sk[31] = 2;
    if (have && nip04_decrypt(sk, a.pubkey, (const char *)data, size, &out, NULL) == 0)
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char *plain = NULL, *again = NULL, *back = NULL;
    size_t n = 0, n2 = 0;
    static const uint8_t nonce[32] = {1};
    if (!ready && nostr_init() == 0)
        ready = 1;
    if (nip44_decrypt(conv_key, (const char *)data, size, &plain, &n) == 0) {
        if (nip44_encrypt(conv_key, plain, n, nonce, &again) != 0 ||
            nip44_decrypt(conv_key, again, strlen(again), &back, &n2) != 0 || n2 != n ||
            memcmp(back, plain, n) != 0)
            abort();
    }
    free(plain);
    free(again);
    free(back);
    nip04_path(data, size);
    return 0;
}
