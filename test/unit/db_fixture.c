/* The shared test database (db_fixture.h). */
#include "db_fixture.h"

#include <sqlite3.h>

#include "test.h"

#include <stdio.h>

#include "nostr/keys.h"

void test_db_open(struct test_db *t)
{
    test_tmpdir(t->dir, sizeof(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/t.db", t->dir);
    t->db = NULL;
    ASSERT_OK(uv_loop_init(&t->loop));
    ASSERT_OK(db_open(&t->db, &t->loop, t->path));
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

void test_db_close(struct test_db *t)
{
    int closed = 0;
    db_close(t->db, on_closed, &closed);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(closed, 1);
    t->db = NULL;
    ASSERT_OK(uv_loop_close(&t->loop));
}

static void on_done(int status, void *arg)
{
    ASSERT_OK(status);
    (*(int *)arg)++;
}

void test_db_run_write(db_work_fn *work)
{
    struct test_db t;
    int done = 0;
    ASSERT_OK(nostr_init());
    test_db_open(&t);
    ASSERT_OK(db_write(t.db, DB_CRASH_SAFE, work, on_done, &done));
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(done, 1);
    test_db_close(&t);
}

int64_t test_db_int(struct db_conn *conn, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ASSERT_OK(sqlite3_prepare_v2(db_conn_sqlite(conn), sql, -1, &st, NULL));
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}
