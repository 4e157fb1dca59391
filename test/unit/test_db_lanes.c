/* The lanes of db.c: list reads (db_read_list) that do not finish never hold up a point read
 * (db_read), hold at most two readers at once, and all complete afterwards; the reads of one
 * loop turn are handed over together. */
#include "test.h"
#include "db_fixture.h"

#include <pthread.h>
#include <unistd.h>

#include <uv.h>

#include "db/db.h"

#define LISTS 6

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released, running, max_running, lists_done, point_done;

/* Pool thread: a list that takes until the point read has been answered. */
static int slow_list(struct db_conn *conn, void *arg)
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

static int point(struct db_conn *conn, void *arg)
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
    struct test_db t;
    uv_timer_t deadline;
    test_db_open(&t);
    for (int i = 0; i < LISTS; i++)
        ASSERT_OK(db_read_list(t.db, slow_list, on_list, NULL));
    ASSERT_OK(db_read(t.db, point, on_point, NULL));
    uv_timer_init(&t.loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    uv_unref((uv_handle_t *)&deadline);
    while (!point_done)
        uv_run(&t.loop, UV_RUN_ONCE);
    ASSERT_EQ(point_done, 1);
    while (lists_done < LISTS)
        uv_run(&t.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    ASSERT_LE(max_running, 2);
    ASSERT_GE(max_running, 1);
    test_db_close(&t);
}

/* ---- reads submitted in one loop turn ---- */

#define TURN_READS 32

struct where {
    struct db_conn *conn; /* the connection the job ran on */
    int done;
};

static int note_conn(struct db_conn *conn, void *arg)
{
    ((struct where *)arg)->conn = conn;
    return 0;
}

static void on_noted(int status, void *arg)
{
    ASSERT_OK(status);
    ((struct where *)arg)->done = 1;
}

/* Jobs are handed to the pool at the loop's next idle phase, so the reads of one turn leave
 * together: the first hand-off takes a reader's share of all 32 (8), not the first read
 * alone. Jobs submitted right before db_close still run. */
TEST(db_reads_of_one_loop_turn_leave_together)
{
    struct test_db t;
    struct where w[TURN_READS] = {0}, late[3] = {0};
    test_db_open(&t);
    for (int i = 0; i < TURN_READS; i++)
        ASSERT_OK(db_read(t.db, note_conn, on_noted, &w[i]));
    ASSERT_EQ(db_queue_depth(t.db), TURN_READS);
    ASSERT_OK(uv_run(&t.loop, UV_RUN_DEFAULT));
    for (int i = 0; i < TURN_READS; i++) {
        ASSERT(w[i].done);
        ASSERT_NOT_NULL(w[i].conn);
    }
    for (int i = 1; i < 8; i++)
        ASSERT(w[i].conn == w[0].conn); /* one hand-off */
    ASSERT(w[8].conn != w[0].conn);     /* the next share went to another reader */
    for (int i = 0; i < 3; i++)
        ASSERT_OK(db_read(t.db, note_conn, on_noted, &late[i]));
    test_db_close(&t);
    for (int i = 0; i < 3; i++)
        ASSERT(late[i].done);
}

/* ---- a hand-off of reads is one read transaction ---- */

struct count_job {
    int64_t n;
    int leave_open; /* step once and leave the statement unreset (holds the transaction) */
    int done;
};

static int count_settings(struct db_conn *conn, void *arg)
{
    struct count_job *c = arg;
    struct db_stmt *st =
        db_stmt(conn, c->leave_open ? "SELECT key FROM setting" : "SELECT count(*) FROM setting");
    if (!st || db_step(st) != DB_ROW)
        return c->leave_open ? 0 : DB_EGENERIC; /* an empty table: nothing to leave open */
    if (!c->leave_open) {
        c->n = db_col_int64(st, 0);
        db_reset(st);
    }
    return 0;
}

static void on_counted(int status, void *arg)
{
    ASSERT_OK(status);
    ((struct count_job *)arg)->done = 1;
}

static int add_setting(struct db_conn *conn, void *arg)
{
    (void)arg;
    return db_exec(conn, "INSERT INTO setting(key, value) VALUES (hex(randomblob(8)), 'v')");
}

static void on_added(int status, void *arg)
{
    ASSERT_OK(status);
    (*(int *)arg)++;
}

/* Reads batched in one transaction never keep an old snapshot: after each acknowledged write,
 * every reader's next reads see it, even when a job left a statement stepping (which makes
 * the batch's COMMIT fail). */
TEST(db_read_batches_see_every_acknowledged_write)
{
    struct test_db t;
    int written = 0;
    test_db_open(&t);
    int64_t before = -1;
    for (int round = 0; round < 4; round++) {
        struct count_job jobs[TURN_READS] = {0};
        for (int i = 0; i < TURN_READS; i++) {
            jobs[i].leave_open = i % 8 == 3; /* one per reader's share */
            ASSERT_OK(db_read(t.db, count_settings, on_counted, &jobs[i]));
        }
        ASSERT_OK(uv_run(&t.loop, UV_RUN_DEFAULT));
        for (int i = 0; i < TURN_READS; i++) {
            ASSERT(jobs[i].done);
            if (jobs[i].leave_open)
                continue;
            if (before < 0)
                before = jobs[i].n;
            ASSERT_EQ(jobs[i].n, before + written); /* every acknowledged write, no more */
        }
        ASSERT_OK(db_write(t.db, DB_CRASH_SAFE, add_setting, on_added, &written));
        ASSERT_OK(uv_run(&t.loop, UV_RUN_DEFAULT));
        ASSERT_EQ(written, round + 1);
    }
    test_db_close(&t);
}

/* ---- reads nobody waits for any more (db_read_for) ---- */

struct wanted_job {
    int wanted; /* what the job's owner answers when asked */
    int asked, ran, done, status;
};

static int wanted_job_wanted(void *arg)
{
    struct wanted_job *w = arg;
    w->asked++;
    return w->wanted;
}

static int wanted_job_work(struct db_conn *conn, void *arg)
{
    ((struct wanted_job *)arg)->ran = 1; /* the job's own memory: no race with the loop */
    return db_exec(conn, "SELECT 1");
}

static void wanted_job_done(int status, void *arg)
{
    struct wanted_job *w = arg;
    w->done++;
    w->status = status;
}

#define WANTED_JOBS 12

/* A read whose owner stops wanting it while it waits is never run: done gets DB_ECANCELED
 * and the queries of the others still run, in both lanes. */
TEST(db_reads_nobody_wants_are_dropped_before_they_run)
{
    struct test_db t;
    struct wanted_job w[WANTED_JOBS] = {0};
    test_db_open(&t);
    for (int i = 0; i < WANTED_JOBS; i++) {
        w[i].wanted = 1;
        ASSERT_OK(
            db_read_for(t.db, i % 2, wanted_job_work, wanted_job_done, wanted_job_wanted, &w[i]));
    }
    for (int i = 0; i < WANTED_JOBS; i += 3) /* the clients of these left meanwhile */
        w[i].wanted = 0;
    ASSERT_OK(uv_run(&t.loop, UV_RUN_DEFAULT));
    for (int i = 0; i < WANTED_JOBS; i++) {
        ASSERT_EQ(w[i].done, 1);
        ASSERT_GE(w[i].asked, 1);
        ASSERT_EQ(w[i].ran, w[i].wanted);
        ASSERT_EQ(w[i].status, w[i].wanted ? 0 : DB_ECANCELED);
    }
    ASSERT_EQ(db_queue_depth(t.db), 0);
    test_db_close(&t);
}

static int written_once(struct db_conn *conn, void *arg)
{
    (void)conn;
    (*(int *)arg)++;
    return 0;
}

static void on_written_once(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
}

/* db_close drops the queued reads nobody wants at once, even while every list reader is busy
 * (they would otherwise each wait for a reader and run before the database closes), and
 * still runs the wanted reads and the writes. */
TEST(db_close_drops_queued_reads_nobody_wants)
{
    struct test_db t;
    struct wanted_job w[WANTED_JOBS] = {0};
    int is_closed = 0, writes = 0;
    test_db_open(&t);
    for (int i = 0; i < 2; i++) /* both list readers held until released */
        ASSERT_OK(db_read_list(t.db, slow_list, on_list, NULL));
    for (int n = 0; n < 2;) {
        uv_run(&t.loop, UV_RUN_NOWAIT);
        usleep(1000);
        pthread_mutex_lock(&mu);
        n = running;
        pthread_mutex_unlock(&mu);
    }
    for (int i = 0; i < WANTED_JOBS; i++) {
        w[i].wanted = 1;
        ASSERT_OK(db_read_for(t.db, 1, wanted_job_work, wanted_job_done, wanted_job_wanted, &w[i]));
    }
    ASSERT_OK(db_write(t.db, DB_CRASH_SAFE, written_once, on_written_once, &writes));
    uv_run(&t.loop, UV_RUN_NOWAIT); /* the lists stay queued: no list reader is free */
    for (int i = 0; i < WANTED_JOBS; i++)
        ASSERT_EQ(w[i].done, 0);
    for (int i = 1; i < WANTED_JOBS; i++) /* only the first one's client is still there */
        w[i].wanted = 0;
    db_close(t.db, closed, &is_closed);
    for (int i = 1; i < WANTED_JOBS; i++) { /* dropped by db_close itself */
        ASSERT_EQ(w[i].done, 1);
        ASSERT_EQ(w[i].status, DB_ECANCELED);
    }
    ASSERT_EQ(w[0].done, 0);
    release();
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ASSERT(is_closed);
    ASSERT_EQ(lists_done, 2);
    ASSERT_EQ(writes, 1);
    ASSERT_EQ(w[0].done, 1);
    ASSERT_EQ(w[0].ran, 1);
    ASSERT_OK(w[0].status);
    for (int i = 1; i < WANTED_JOBS; i++)
        ASSERT_EQ(w[i].ran, 0);
    ASSERT_OK(uv_loop_close(&t.loop));
}
