/* BIP-340 batch verification against one verification at a time, on the internals of the
 * libsecp256k1 the service links (0.2.0 on Debian 12, which exposes no batch API): is batching
 * the fresh NIP-98 tokens of 64 connections worth a vendored copy of the library? Built by
 * bench/batch-verify.sh against that version's sources (secp256k1.c and the precomputed
 * tables in this one translation unit, so its static functions are callable); not part of
 * the service or of `make`.
 *
 * A batch of n: per signature the challenge e_i, R_i = lift_x(r_i) and a 128-bit randomizer
 * a_i (a_1 = 1) from a hash of the whole batch; then one multi-multiplication (Strauss below
 * 88 points) checks (sum a_i s_i) G = sum a_i R_i + sum (a_i e_i) P_i. A batch holding one
 * invalid signature must fail (checked at the end). Prints microseconds per signature. */
#define ENABLE_MODULE_EXTRAKEYS 1
#define ENABLE_MODULE_SCHNORRSIG 1
#define ECMULT_WINDOW_SIZE 15
#define ECMULT_GEN_PREC_BITS 4
#define USE_ASM_X86_64 1
#include "secp256k1.c"
#include "precomputed_ecmult.c"
#include "precomputed_ecmult_gen.c"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SIGS 4096
#define BATCH_MAX 64

struct points {
    secp256k1_scalar sc[2 * BATCH_MAX];
    secp256k1_ge pt[2 * BATCH_MAX];
};

static int point_at(secp256k1_scalar *sc, secp256k1_ge *pt, size_t i, void *data)
{
    struct points *p = data;
    *sc = p->sc[i];
    *pt = p->pt[i];
    return 1;
}

/* a_i: 1 for the first signature, else 128 bits of SHA-256(seed || i). */
static void randomizer(secp256k1_scalar *a, const unsigned char seed[32], size_t i)
{
    unsigned char out[32], b[32] = {0};
    secp256k1_sha256 h;
    if (i == 0) {
        secp256k1_scalar_set_int(a, 1);
        return;
    }
    secp256k1_sha256_initialize(&h);
    secp256k1_sha256_write(&h, seed, 32);
    secp256k1_sha256_write(&h, (const unsigned char *)&i, sizeof(i));
    secp256k1_sha256_finalize(&h, out);
    memcpy(b + 16, out, 16);
    secp256k1_scalar_set_b32(a, b, NULL);
}

static int batch_verify(const secp256k1_context *ctx, secp256k1_scratch *scr,
                        const unsigned char (*sig)[64], const unsigned char (*msg)[32],
                        const secp256k1_xonly_pubkey *pk, size_t n)
{
    struct points p;
    secp256k1_scalar g;
    secp256k1_gej r;
    secp256k1_sha256 h;
    unsigned char seed[32];
    secp256k1_sha256_initialize(&h);
    for (size_t i = 0; i < n; i++) {
        secp256k1_sha256_write(&h, sig[i], 64);
        secp256k1_sha256_write(&h, msg[i], 32);
    }
    secp256k1_sha256_finalize(&h, seed);
    secp256k1_scalar_set_int(&g, 0);
    for (size_t i = 0; i < n; i++) {
        secp256k1_fe rx;
        secp256k1_ge R, P;
        secp256k1_scalar s, e, a;
        unsigned char px[32];
        int overflow;
        secp256k1_scalar_set_b32(&s, sig[i] + 32, &overflow);
        if (!secp256k1_fe_set_b32(&rx, sig[i]) || overflow ||
            !secp256k1_xonly_pubkey_load(ctx, &P, &pk[i]) || !secp256k1_ge_set_xo_var(&R, &rx, 0))
            return 0;
        secp256k1_fe_get_b32(px, &P.x);
        secp256k1_schnorrsig_challenge(&e, sig[i], msg[i], 32, px);
        randomizer(&a, seed, i);
        secp256k1_scalar_mul(&s, &s, &a);
        secp256k1_scalar_add(&g, &g, &s);
        secp256k1_scalar_mul(&e, &e, &a);
        p.sc[2 * i] = a;
        p.pt[2 * i] = R;
        p.sc[2 * i + 1] = e;
        p.pt[2 * i + 1] = P;
    }
    secp256k1_scalar_negate(&g, &g);
    return secp256k1_ecmult_multi_var(&ctx->error_callback, scr, &r, &g, point_at, &p, 2 * n) &&
           secp256k1_gej_is_infinity(&r);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static unsigned char sig[SIGS][64], msg[SIGS][32];
static secp256k1_xonly_pubkey pk[SIGS];

int main(void)
{
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_scratch *scr = secp256k1_scratch_create(&ctx->error_callback, 1 << 20);
    static const size_t sizes[] = {1, 2, 4, 8, 16, 32, 64};
    for (size_t i = 0; i < SIGS; i++) { /* a key per signature, as many signers would */
        unsigned char sk[32];
        secp256k1_keypair kp;
        if (getrandom(sk, 32, 0) != 32 || getrandom(msg[i], 32, 0) != 32 ||
            !secp256k1_keypair_create(ctx, &kp, sk) ||
            !secp256k1_keypair_xonly_pub(ctx, &pk[i], NULL, &kp) ||
            !secp256k1_schnorrsig_sign32(ctx, sig[i], msg[i], &kp, NULL))
            return 1;
    }
    double t0 = now_s();
    size_t ok = 0;
    for (int rep = 0; rep < 2; rep++)
        for (size_t i = 0; i < SIGS; i++)
            ok += (size_t)secp256k1_schnorrsig_verify(ctx, sig[i], msg[i], 32, &pk[i]);
    printf("one at a time (secp256k1_schnorrsig_verify): %.1f us per signature (%zu of %d valid)\n",
           (now_s() - t0) / (2 * SIGS) * 1e6, ok, 2 * SIGS);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k], batches = 0, good = 0;
        t0 = now_s();
        for (int rep = 0; rep < 2; rep++)
            for (size_t i = 0; i + n <= SIGS; i += n, batches++)
                good += (size_t)batch_verify(ctx, scr, sig + i, msg + i, pk + i, n);
        printf("batches of %2zu: %.1f us per signature (%zu of %zu batches valid)\n", n,
               (now_s() - t0) / (double)(batches * n) * 1e6, good, batches);
    }
    sig[3][63] ^= 1; /* one invalid signature among four valid */
    int bad = batch_verify(ctx, scr, sig, msg, pk, 4);
    printf("a batch of 4 with one invalid signature: %s\n", bad ? "ACCEPTED (wrong)" : "refused");
    return bad;
}
