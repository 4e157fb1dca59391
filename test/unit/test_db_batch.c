/* Group commit (db.c): write jobs queued together share one transaction, each in its own
 * savepoint. */
#include "test.h"

#include <stdio.h>

#include "db/db.h"

struct order {
    int next;      /* done calls seen so far */
    int seen[200]; /* status by submission index */
    int pos[200];  /* done order by submission index */
};

struct job {
    struct order *o;
    int index;
    int fail; /* 0 ok, 1 insert then fail, 2 constraint */
};

static int work(sqlite3 *conn, void *arg)
{
    struct job *j = arg;
    char sql[128];
    snprintf(sql, sizeof(sql), "INSERT INTO setting(key, value) VALUES ('k%d', 'v')", j->index);
    int rc = db_exec(conn, sql);
    if (rc == 0 && j->fail == 1)
        return DB_ENOTFOUND;
    if (rc == 0 && j->fail == 2)
        rc = db_exec(conn, "INSERT INTO setting(key, value) VALUES ('k0', 'again')");
    return rc;
}

static void done(int status, void *arg)
{
    struct job *j = arg;
    j->o->seen[j->index] = status;
    j->o->pos[j->index] = j->o->next++;
}

static int count(sqlite3 *conn, void *arg)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT count(*), sum(key = 'k0' AND value = 'v') FROM setting"
                                     " WHERE key LIKE 'k%'");
    if (sqlite3_step(st) != SQLITE_ROW)
        return DB_EGENERIC;
    ((int *)arg)[0] = sqlite3_column_int(st, 0);
    ((int *)arg)[1] = sqlite3_column_int(st, 1);
    sqlite3_reset(st);
    return 0;
}

static void count_done(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
}

TEST(db_batch_failures_alone_others_commit_in_order)
{
    uv_loop_t loop;
    char dir[64], path[128];
    struct db *db = NULL;
    static struct order o;
    static struct job jobs[200];
    int counts[2] = {0, 0};
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/b.db", dir);
    uv_loop_init(&loop);
    ASSERT_OK(db_open(&db, &loop, path));
    for (int i = 0; i < 200; i++) {
        jobs[i] = (struct job){&o, i, i % 37 == 5 ? 1 : i % 41 == 7 ? 2 : 0};
        ASSERT_OK(db_write(db, work, done, &jobs[i]));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int expected = 0;
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(o.pos[i], i); /* done in submission order */
        if (jobs[i].fail == 1)
            ASSERT_EQ(o.seen[i], DB_ENOTFOUND);
        else if (jobs[i].fail == 2)
            ASSERT_EQ(o.seen[i], DB_ECONSTRAINT);
        else {
            ASSERT_OK(o.seen[i]);
            expected++;
        }
    }
    ASSERT_OK(db_read(db, count, count_done, counts));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(counts[0], expected); /* failed jobs left nothing, not even their first insert */
    ASSERT_EQ(counts[1], 1);
    db_close(db, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
}
