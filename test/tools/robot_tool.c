/* Runs the robot module alone for the integration tests (until the service wires it):
 *   robot_tool DB_PATH
 * Configured like the service (config_load): ROBOT_SECRET (required), ROBOT_NAME/DESCRIPTION/
 * PICTURE, ROBOT_OUTBOX_RELAYS, ROBOT_INDEXER_RELAYS, ROBOT_MESSAGING_RELAYS, CARAVEL_CA_FILE,
 * CARAVEL_ROBOT_RETRY_BASE. Prints "READY <robot pubkey hex>"; each line on stdin kicks the outbox;
 * EOF stops the robot, the pool and the database and exits 0 when every handle closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "net/relay_pool.h"
#include "nostr/hex.h"
#include "robot/robot.h"
#include "util/log.h"
#include "util/util.h"

static struct app app;
static uv_pipe_t in_pipe;

static void on_db_closed(void *arg)
{
    (void)arg;
}

static void on_pool_freed(void *arg)
{
    (void)arg;
    db_close(app.db, on_db_closed, NULL);
}

static void on_robot_stopped(void *arg)
{
    (void)arg;
    relay_pool_free(app.pool, on_pool_freed, NULL);
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
    (void)b;
    if (n > 0) {
        robot_kick(app.robot);
    } else if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        robot_stop(app.robot, on_robot_stopped, NULL);
    }
}

int main(int argc, char **argv)
{
    char pk[65], err[256];
    if (argc != 2 || nostr_init() != 0) {
        fprintf(stderr, "usage: ROBOT_SECRET=hex robot_tool DB_PATH\n");
        return 2;
    }
    if (config_load(&app.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "robot_tool: %s\n", err);
        return 2;
    }
    if (!app.cfg.has_robot_secret ||
        nostr_keypair_from_seckey(&app.robot_key, app.cfg.robot_secret) != 0) {
        fprintf(stderr, "robot_tool: ROBOT_SECRET unset\n");
        return 2;
    }
    app.loop = uv_default_loop();
    if (db_open(&app.db, app.loop, argv[1]) != 0)
        return 2;
    relay_pool_new(&app.pool, app.loop, app.cfg.ca_file);
    robot_start(&app.robot, &app);
    uv_pipe_init(app.loop, &in_pipe, 0);
    uv_pipe_open(&in_pipe, 0);
    uv_read_start((uv_stream_t *)&in_pipe, on_alloc, on_stdin);
    hex_encode(app.robot_key.pubkey, 32, pk);
    printf("READY %s\n", pk);
    fflush(stdout);
    uv_run(app.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(app.loop);
    config_free(&app.cfg);
    nostr_shutdown();
    if (rc != 0)
        fprintf(stderr, "robot_tool: handles left open\n");
    return rc == 0 ? 0 : 3;
}
