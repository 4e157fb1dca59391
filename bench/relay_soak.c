/* Soak for the relay pool (not a test; run by test/soak/relay-soak.mjs):
 *   relay_soak URL SECONDS
 * keeps a subscription open on URL and publishes a kind 1 event every 100 ms while the relay
 * side drops the connection every few seconds; every 5 s prints one line
 *   STAT t=.. rss_kb=.. published=.. ok=.. failed=.. received=.. connected=..
 * then frees the pool, requires uv_loop_close() == 0 and exits 0 (LeakSanitizer runs at exit
 * in the ASan build). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "net/relay_pool.h"
#include "nostr/keys.h"

static struct relay_pool *pool;
static struct relay_sub *sub;
static struct nostr_keypair key;
static uv_timer_t pub_timer, stat_timer;
static const char *url;
static unsigned long published, ok, failed, received, seconds, elapsed_ticks;

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static void on_event(const struct nostr_event *ev, const char *u, void *arg)
{
    (void)ev;
    (void)u;
    (void)arg;
    received++;
}

static void on_done(size_t n_ok, size_t n_failed, const char *err, void *arg)
{
    (void)err;
    (void)arg;
    ok += n_ok;
    failed += n_failed;
}

static void on_pub(uv_timer_t *t)
{
    struct nostr_event ev;
    char content[64];
    (void)t;
    nostr_event_init(&ev);
    ev.kind = 1;
    ev.created_at = (int64_t)time(NULL);
    snprintf(content, sizeof content, "soak %lu", published);
    nostr_event_set_content(&ev, content, strlen(content));
    if (nostr_event_sign(&ev, &key) == 0 &&
        relay_pool_publish(pool, &url, 1, &ev, &key, on_done, NULL) == 0)
        published++;
    nostr_event_free(&ev);
}

static void on_freed(void *arg)
{
    (void)arg;
}

static void on_stat(uv_timer_t *t)
{
    (void)t;
    elapsed_ticks++;
    printf("STAT t=%lu rss_kb=%ld published=%lu ok=%lu failed=%lu received=%lu connected=%zu\n",
           elapsed_ticks * 5, rss_kb(), published, ok, failed, received,
           relay_pool_connected(pool));
    fflush(stdout);
    if (elapsed_ticks * 5 < seconds)
        return;
    relay_sub_close(sub);
    uv_close((uv_handle_t *)&pub_timer, NULL);
    uv_close((uv_handle_t *)&stat_timer, NULL);
    relay_pool_free(pool, on_freed, NULL);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    if (argc != 3 || nostr_init() != 0 || nostr_keypair_generate(&key) != 0)
        return 2;
    url = argv[1];
    seconds = strtoul(argv[2], NULL, 10);
    relay_pool_new(&pool, loop, getenv("CARAVEL_CA_FILE"));
    if (relay_pool_subscribe(pool, &url, 1, "[{\"kinds\":[1],\"limit\":0}]", &key, on_event, NULL,
                             NULL, &sub) != 0)
        return 2;
    uv_timer_init(loop, &pub_timer);
    uv_timer_start(&pub_timer, on_pub, 100, 100);
    uv_timer_init(loop, &stat_timer);
    uv_timer_start(&stat_timer, on_stat, 5000, 5000);
    uv_run(loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(loop);
    printf("DONE loop_close=%d\n", rc);
    nostr_shutdown();
    return rc == 0 ? 0 : 3;
}
