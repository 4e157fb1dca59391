/* The robot key kept in the database (robot/key.h): generated once on an empty SQLite
 * database and read back at the next start; on PostgreSQL (CARAVEL_TEST_PG_URL, else skipped)
 * processes that load it at the same moment on an empty database all start, with the one key
 * that was stored (several instances started together without ROBOT_SECRET). */
#include "test.h"

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

/* A fresh PostgreSQL database's URL into url (name: its name); 0 = skipped. */
static int fresh_db(char *url, size_t cap, char *name, size_t name_cap, int round)
{
    const char *base = getenv("CARAVEL_TEST_PG_URL");
    if (!base || !*base) {
        fprintf(stderr, "  skipped: CARAVEL_TEST_PG_URL unset (no PostgreSQL for this run)\n");
        return 0;
    }
    snprintf(name, name_cap, "caravel_key_%d_%d", (int)getpid(), round);
    PGconn *pg = PQconnectdb(base);
    ASSERT_EQ(PQstatus(pg), CONNECTION_OK);
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        TEST_FAIL_("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
    const char *slash = strchr(strstr(base, "://") + 3, '/');
    const char *query = strchr(base, '?');
    ASSERT_NOT_NULL(slash);
    snprintf(url, cap, "%.*s/%s%s", (int)(slash - base), base, name, query ? query : "");
    return 1;
}

static void drop_db(const char *name)
{
    PGconn *pg = PQconnectdb(getenv("CARAVEL_TEST_PG_URL"));
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", name);
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
}

/* RACERS processes, each with the database open, load the key at the same moment (the go
 * pipe's EOF): every one succeeds and they all have the same key. */
TEST_TIMEOUT(robot_key_pg_racing_processes_share_one_key, 120)
{
    for (int round = 0; round < ROUNDS; round++) {
        char url[512], name[64], keys[RACERS][65];
        int go[2], res[RACERS][2];
        pid_t kids[RACERS];
        if (!fresh_db(url, sizeof(url), name, sizeof(name), round))
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
        drop_db(name);
    }
}
