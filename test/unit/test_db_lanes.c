/* The list lane of db.c: list reads (db_read_list) that do not finish never hold up a point
 * read (db_read), hold at most two readers at once, and all complete afterwards. */
#include "test.h"

#include <pthread.h>
#include <unistd.h>

#include <uv.h>

#include "db/db.h"

#define LISTS 6

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released, running, max_running, lists_done, point_done;

/* Pool thread: a list that takes until the point read has been answered. */
static int slow_list(sqlite3 *conn, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    running++;
    if (running > max_running)
        max_running = running;
    while (!released)
        pthread_cond_wait(&cv, &mu);
    running--;
    pthread_mutex_unlock(&mu);
    return db_exec(conn, "SELECT count(*) FROM schema_migrations");
}

static void on_list(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
    lists_done++;
}

static int point(sqlite3 *conn, void *arg)
{
    (void)arg;
    return db_exec(conn, "SELECT 1");
}

static void release(void)
{
    pthread_mutex_lock(&mu);
    released = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_point(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
    point_done = lists_done + 1; /* 1 + how many lists had finished before it */
    release();
}

/* A point read stuck behind the lists never answers: fail instead of hanging. */
static void on_deadline(uv_timer_t *t)
{
    (void)t;
    release();
    TEST_FAIL_("the point read waited for the lists");
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

TEST(db_list_reads_never_hold_up_point_reads)
{
    uv_loop_t loop;
    uv_timer_t deadline;
    struct db *db = NULL;
    char dir[64], path[128];
    int is_closed = 0;
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/t.db", dir);
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(db_open(&db, &loop, path));
    for (int i = 0; i < LISTS; i++)
        ASSERT_OK(db_read_list(db, slow_list, on_list, NULL));
    ASSERT_OK(db_read(db, point, on_point, NULL));
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    uv_unref((uv_handle_t *)&deadline);
    while (!point_done)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT_EQ(point_done, 1);
    while (lists_done < LISTS)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    ASSERT_LE(max_running, 2);
    ASSERT_GE(max_running, 1);
    db_close(db, closed, &is_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT(is_closed);
    ASSERT_OK(uv_loop_close(&loop));
    unlink(path);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    rmdir(dir);
}
