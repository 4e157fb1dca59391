/* Drives the relay pool from the command line for the integration tests (real relay,
 * checked by nostr-tools):
 *   relay_tool publish SECRET_HEX KIND CONTENT URL...   -> one line
 * {"ok":N,"failed":N,"error":..,"id":..} relay_tool req SECRET_HEX|- FILTERS_JSON URL...      ->
 * "EVENT <json>" lines, then "EOSE", exit relay_tool listen SECRET_HEX|- FILTERS_JSON URL...   ->
 * as req, but keeps listening (and reconnecting) until stdin reaches EOF; prints "CONNECTED n" when
 * that count changes. relay_tool dm-relays PUBKEY_HEX - URL...               -> the pubkey's NIP-17
 * DM relays found through the indexer URLs (src/robot/discover.c), one per line, then "END"
 * CARAVEL_CA_FILE names the CA bundle for wss:// (tests use a private CA). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "net/relay_pool.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "robot/discover.h"

static struct relay_pool *pool;
static struct relay_sub *sub;
static struct nostr_keypair key;
static int have_key, listening, exit_code;
static uv_pipe_t in_pipe;
static uv_timer_t watch;
static size_t last_connected = (size_t)-1;

static void on_pool_freed(void *arg)
{
    (void)arg;
    uv_close((uv_handle_t *)&watch, NULL);
}

static void stop(void)
{
    if (sub)
        relay_sub_close(sub);
    sub = NULL;
    if (listening)
        uv_close((uv_handle_t *)&in_pipe, NULL);
    listening = 0;
    relay_pool_free(pool, on_pool_freed, NULL);
}

static void on_published(size_t ok, size_t failed, const char *err, void *arg)
{
    char *id = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "ok", (double)ok);
    cJSON_AddNumberToObject(o, "failed", (double)failed);
    if (err)
        cJSON_AddStringToObject(o, "error", err);
    else
        cJSON_AddNullToObject(o, "error");
    cJSON_AddStringToObject(o, "id", id);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    fflush(stdout);
    cJSON_free(s);
    cJSON_Delete(o);
    exit_code = ok ? 0 : 1;
    stop();
}

static void on_event(const struct nostr_event *ev, const char *url, void *arg)
{
    (void)url;
    (void)arg;
    char *json = nostr_event_to_json(ev, 1);
    printf("EVENT %s\n", json);
    fflush(stdout);
    free(json);
}

static void on_eose(void *arg)
{
    (void)arg;
    printf("EOSE\n");
    fflush(stdout);
    if (!listening)
        stop();
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char tmp[256];
    (void)h;
    (void)hint;
    *b = uv_buf_init(tmp, sizeof tmp);
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    (void)b;
    if (n < 0 && listening)
        stop();
}

static void on_watch(uv_timer_t *t)
{
    (void)t;
    if (!listening)
        return;
    size_t n = relay_pool_connected(pool);
    if (n != last_connected) {
        printf("CONNECTED %zu\n", n);
        fflush(stdout);
        last_connected = n;
    }
}

static struct discover *disc;

static void on_dm_relays(const struct dm_relays *relays, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < relays->n; i++)
        printf("%s\n", relays->urls[i]);
    printf("END\n");
    fflush(stdout);
    discover_free(disc);
    stop();
}

static int publish(int argc, char **argv)
{
    static char id[65];
    struct nostr_event ev;
    nostr_event_init(&ev);
    ev.kind = atoi(argv[3]);
    ev.created_at = (int64_t)time(NULL);
    nostr_event_set_content(&ev, argv[4], strlen(argv[4]));
    if (nostr_event_sign(&ev, &key) != 0)
        return 2;
    hex_encode(ev.id, 32, id);
    int rc = relay_pool_publish(pool, (const char *const *)argv + 5, (size_t)argc - 5, &ev, &key,
                                on_published, id);
    nostr_event_free(&ev);
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    if (argc < 5 || nostr_init() != 0) {
        fprintf(stderr, "usage: see the comment at the top of relay_tool.c\n");
        return 2;
    }
    const char *sk = argv[2];
    uint8_t seckey[32];
    if (strcmp(argv[1], "dm-relays") == 0)
        sk = argv[3];
    if (strcmp(sk, "-") != 0) {
        if (hex_decode(sk, strlen(sk), seckey, 32) != 0 ||
            nostr_keypair_from_seckey(&key, seckey) != 0)
            return 2;
        have_key = 1;
    }
    relay_pool_new(&pool, loop, getenv("CARAVEL_CA_FILE"));
    uv_timer_init(loop, &watch);
    uv_timer_start(&watch, on_watch, 50, 50);
    int rc;
    if (strcmp(argv[1], "publish") == 0 && argc >= 6 && have_key) {
        rc = publish(argc, argv);
    } else if (strcmp(argv[1], "dm-relays") == 0) {
        disc = discover_new(pool, (const char *const *)argv + 4, (size_t)argc - 4, NULL);
        rc = discover_dm_relays(disc, argv[2], on_dm_relays, NULL);
    } else if (strcmp(argv[1], "req") == 0 || strcmp(argv[1], "listen") == 0) {
        listening = strcmp(argv[1], "listen") == 0;
        if (listening) {
            uv_pipe_init(loop, &in_pipe, 0);
            uv_pipe_open(&in_pipe, 0);
            uv_read_start((uv_stream_t *)&in_pipe, on_alloc, on_stdin);
        }
        rc = relay_pool_subscribe(pool, (const char *const *)argv + 4, (size_t)argc - 4, argv[3],
                                  have_key ? &key : NULL, on_event, on_eose, NULL, &sub);
    } else {
        rc = 2;
    }
    if (rc != 0) {
        fprintf(stderr, "relay_tool: bad arguments\n");
        return 2;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0) {
        fprintf(stderr, "relay_tool: handles left open\n");
        return 3;
    }
    nostr_shutdown();
    return exit_code;
}
