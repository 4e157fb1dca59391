/* nip98_tokens: distinct NIP-98 tokens for the HTTP API benchmark, signed with the project's
 * own signer (src/nostr) on every core, so a few hundred thousand take seconds instead of the
 * minutes nostr-tools needs (bench/tokens.mjs fresh calls this; the integration test
 * nip98-tokens.test.mjs checks a sample with nostr-tools).
 *   nip98_tokens N URL OUT [CREATED_AT]
 * Writes N lines "Nostr <base64 of the event JSON>" to OUT: kind 27235, tags u = URL,
 * method = GET, nonce = i (every token distinct even with one key and one second), created_at
 * CREATED_AT (default now), signed by NKEYS fresh keys in turn. Prints nothing on success;
 * exit 1 with a message on stderr otherwise. Secret keys never leave the process. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nostr/base64.h"
#include "nostr/event.h"
#include "nostr/keys.h"
#include "util/buf.h"

#define NKEYS 100
#define MAX_TOKENS 10000000L
#define MAX_URL 2048
#define MAX_THREADS 64
#define TOKEN_MAX (16 * 1024) /* one line: the URL is capped, the rest is fixed size */

struct job {
    long from, to; /* token indexes [from, to) */
    const char *url;
    int64_t created_at;
    const struct nostr_keypair *keys;
    struct buf out; /* owned: this job's lines */
    int failed;
};

/* Appends "Nostr <base64>\n" for token i to out; 0 or -1. */
static int one_token(struct job *j, long i)
{
    struct nostr_event ev;
    char nonce[24], *json = NULL, *b64 = NULL;
    int rc = -1;
    nostr_event_init(&ev);
    ev.kind = 27235;
    ev.created_at = j->created_at;
    snprintf(nonce, sizeof nonce, "%ld", i);
    nostr_event_add_tag2(&ev, "u", j->url);
    nostr_event_add_tag2(&ev, "method", "GET");
    nostr_event_add_tag2(&ev, "nonce", nonce);
    if (nostr_event_sign(&ev, &j->keys[i % NKEYS]) != 0)
        goto out;
    json = nostr_event_to_json(&ev, 1);
    if (!json)
        goto out;
    b64 = base64_encode((const uint8_t *)json, strlen(json), NULL);
    if (b64 && buf_printf(&j->out, "Nostr %s\n", b64) >= 0)
        rc = 0;
out:
    free(b64);
    free(json);
    nostr_event_free(&ev);
    return rc;
}

static void *run_job(void *arg)
{
    struct job *j = arg;
    for (long i = j->from; i < j->to && !j->failed; i++)
        j->failed = one_token(j, i) != 0;
    return NULL;
}

static int make_keys(struct nostr_keypair *keys)
{
    for (int k = 0; k < NKEYS; k++) {
        uint8_t sk[32];
        if (nostr_random(sk, sizeof sk) != 0 || nostr_keypair_from_seckey(&keys[k], sk) != 0)
            return -1;
    }
    return 0;
}

/* Splits [0, n) over the cores, runs the jobs and writes their lines in order to path. */
static int generate(long n, const char *url, int64_t created_at, const char *path)
{
    static struct nostr_keypair keys[NKEYS];
    struct job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores, started = 0, rc = -1;
    long per = (n + nt - 1) / nt;
    FILE *f = NULL;
    if (make_keys(keys) != 0)
        return -1;
    for (int t = 0; t < nt; t++) {
        long from = t * per < n ? t * per : n, to = from + per > n ? n : from + per;
        jobs[t] = (struct job){
            .from = from, .to = to, .url = url, .created_at = created_at, .keys = keys};
        buf_init(&jobs[t].out, (size_t)(to - from) * TOKEN_MAX + 1);
    }
    while (started < nt && pthread_create(&tids[started], NULL, run_job, &jobs[started]) == 0)
        started++;
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    if (started == nt && (f = fopen(path, "w")) != NULL) {
        rc = 0;
        for (int t = 0; t < nt && rc == 0; t++)
            if (jobs[t].failed || (jobs[t].out.len && fwrite(jobs[t].out.data, 1, jobs[t].out.len,
                                                             f) != jobs[t].out.len))
                rc = -1;
        if (fclose(f) != 0)
            rc = -1;
    }
    for (int t = 0; t < nt; t++)
        buf_free(&jobs[t].out);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: nip98_tokens N URL OUT [CREATED_AT]\n");
        return 2;
    }
    char *end;
    long n = strtol(argv[1], &end, 10);
    long long at = argc == 5 ? strtoll(argv[4], NULL, 10) : (long long)time(NULL);
    if (*end || n < 0 || n > MAX_TOKENS || strlen(argv[2]) > MAX_URL || at < 0) {
        fprintf(stderr, "nip98_tokens: N must be 0..%ld, URL at most %d bytes\n", MAX_TOKENS,
                MAX_URL);
        return 2;
    }
    if (nostr_init() != 0 || generate(n, argv[2], (int64_t)at, argv[3]) != 0) {
        fprintf(stderr, "nip98_tokens: failed to write %s\n", argv[3]);
        return 1;
    }
    nostr_shutdown();
    return 0;
}
