/* The robot key kept in the database (robot/key.h): generated once on an empty SQLite
 * database and read back at the next start; on PostgreSQL (CARAVEL_TEST_PG_URL, else skipped)
 * processes that load it at the same moment on an empty database all start, with the one key
 * that was stored (several instances started together without ROBOT_SECRET). */
#include "test.h"

#include "db_fixture.h"

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "robot/key.h"
#include "util/util.h"

#define RACERS 4
#define ROUNDS 3

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static int nop_work(struct db_conn *conn, void *arg)
{
    (void)conn;
    (void)arg;
    return 0;
}

static void nop_done(int status, void *arg)
{
    (void)status;
    *(int *)arg = 1;
}

/* Opens url, waits for the go signal (EOF on go, when go >= 0), loads the key and writes its
 * pubkey in hex to out. Returns robot_key_load's result. */
static int load_key(const char *url, int go, char out[65])
{
    struct app app;
    memset(&app, 0, sizeof(app));
    ASSERT_OK(nostr_init());
    app.loop = uv_default_loop();
    if (db_open(&app.db, app.loop, url) != 0)
        return -2;
    /* The thread pool started and a writer transaction run: after the go signal the racers
     * are microseconds apart, not a thread pool's start-up. */
    int warm = 0;
    if (db_write(app.db, DB_CRASH_SAFE, nop_work, nop_done, &warm) != 0)
        return -2;
    while (!warm)
        uv_run(app.loop, UV_RUN_ONCE);
    char b;
    if (go >= 0 && read(go, &b, 1) != 0)
        return -3;
    int rc = robot_key_load(&app);
    hex_encode(app.robot_key.pubkey, 32, out);
    secure_zero(&app.robot_key, sizeof(app.robot_key));
    int closed = 0;
    db_close(app.db, on_closed, &closed);
    while (!closed)
        uv_run(app.loop, UV_RUN_ONCE);
    nostr_shutdown();
    return rc;
}

TEST(robot_key_generated_once_then_kept)
{
    char dir[128], url[256], first[65], again[65];
    test_tmpdir(dir, sizeof(dir));
    snprintf(url, sizeof(url), "sqlite://%s/c.db", dir);
    ASSERT_OK(load_key(url, -1, first));
    ASSERT_OK(load_key(url, -1, again));
    ASSERT_STR_EQ(first, again);
}

/* RACERS processes, each with the database open, load the key at the same moment (the go
 * pipe's EOF): every one succeeds and they all have the same key. */
TEST_TIMEOUT(robot_key_pg_racing_processes_share_one_key, 120)
{
    for (int round = 0; round < ROUNDS; round++) {
        char url[512], name[64], keys[RACERS][65];
        int go[2], res[RACERS][2];
        pid_t kids[RACERS];
        if (!test_pg_fresh_db("caravel_key", url, sizeof(url), name, sizeof(name)))
            return;
        struct db_conn *c = NULL;
        ASSERT_OK(db_conn_open(&c, url, 1)); /* migrated: the racers only race for the key */
        db_conn_close(c);
        ASSERT_OK(pipe(go));
        for (int k = 0; k < RACERS; k++) {
            ASSERT_OK(pipe(res[k]));
            if ((kids[k] = fork()) == 0) {
                char key[65] = "";
                close(go[1]);
                close(res[k][0]);
                int rc = load_key(url, go[0], key);
                ssize_t w = write(res[k][1], key, 64);
                _exit(rc == 0 && w == 64 ? 0 : 1);
            }
            close(res[k][1]);
        }
        close(go[0]);
        usleep(300 * 1000); /* every racer connected and waiting */
        close(go[1]);
        for (int k = 0; k < RACERS; k++) {
            int status = 0;
            memset(keys[k], 0, sizeof(keys[k]));
            ASSERT_EQ(read(res[k][0], keys[k], 64), 64);
            close(res[k][0]);
            ASSERT_EQ(waitpid(kids[k], &status, 0), kids[k]);
            ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            ASSERT_STR_EQ(keys[k], keys[0]);
        }
        test_pg_drop_db(name);
    }
}
