#include "test.h"

#include <unistd.h>

#include "db/db.h"
#include "db/migrations.h"
#include "db/repo_common.h"
#include "nostr/keys.h"

struct counter {
    int done, ok, failed;
    int64_t value;
};

static void on_done(int status, void *arg)
{
    struct counter *c = arg;
    c->done++;
    status == 0 ? c->ok++ : c->failed++;
}

static int add_row(sqlite3 *conn, void *arg)
{
    (void)arg;
    sqlite3_stmt *st = db_stmt(conn, "INSERT INTO setting(key, value) VALUES "
                                     "(lower(hex(randomblob(8))), 'x')");
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_rc(conn, SQLITE_ERROR);
}

static int count_rows(sqlite3 *conn, void *arg)
{
    struct counter *c = arg;
    sqlite3_stmt *st = db_stmt(conn, "SELECT count(*) FROM setting");
    if (sqlite3_step(st) != SQLITE_ROW)
        return DB_EGENERIC;
    c->value = sqlite3_column_int64(st, 0);
    return 0;
}

static int add_then_fail(sqlite3 *conn, void *arg)
{
    int rc = add_row(conn, arg);
    return rc ? rc : DB_ENOTFOUND;
}

static int duplicate_key(sqlite3 *conn, void *arg)
{
    (void)arg;
    int rc = db_exec(conn, "INSERT INTO setting(key, value) VALUES ('k', 'v')");
    return rc ? rc : db_exec(conn, "INSERT INTO setting(key, value) VALUES ('k', 'v')");
}

static struct db *open_tmp(uv_loop_t *loop, char *path, size_t cap)
{
    char dir[64];
    struct db *db = NULL;
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, cap, "%s/sub/dir/t.db", dir);
    ASSERT_OK(db_open(&db, loop, path));
    return db;
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

static void close_and_check(struct db *db, uv_loop_t *loop)
{
    int is_closed = 0;
    db_close(db, closed, &is_closed);
    uv_run(loop, UV_RUN_DEFAULT);
    ASSERT(is_closed);
    ASSERT_OK(uv_loop_close(loop));
}

TEST(db_migrations_applied_once_and_recorded)
{
    uv_loop_t loop;
    char path[128];
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    close_and_check(db, &loop);
    uv_loop_init(&loop);
    ASSERT_OK(db_open(&db, &loop, path)); /* a second open must not re-apply */
    close_and_check(db, &loop);
    sqlite3 *h;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open(path, &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM schema_migrations", -1, &st, NULL),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(st, 0), (int)n_migrations); /* each recorded once */
    sqlite3_finalize(st);
    sqlite3_close(h);
}

TEST(db_writes_commit_failures_roll_back_constraints_map)
{
    uv_loop_t loop;
    char path[128];
    struct counter w = {0}, bad = {0}, dup = {0}, r = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    for (int i = 0; i < 50; i++)
        ASSERT_OK(db_write(db, add_row, on_done, &w));
    ASSERT_OK(db_write(db, add_then_fail, on_done, &bad));
    ASSERT_OK(db_write(db, duplicate_key, on_done, &dup));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 50);
    ASSERT_EQ(bad.failed, 1);
    ASSERT_EQ(dup.failed, 1);
    ASSERT_OK(db_read(db, count_rows, on_done, &r));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.ok, 1);
    ASSERT_EQ(r.value, 50); /* the failed jobs left nothing behind */
    close_and_check(db, &loop);
}

struct dup_result {
    int status;
};

static void on_dup(int status, void *arg)
{
    ((struct dup_result *)arg)->status = status;
}

TEST(db_constraint_error_code)
{
    uv_loop_t loop;
    char path[128];
    struct dup_result d = {1};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    ASSERT_OK(db_write(db, duplicate_key, on_dup, &d));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(d.status, DB_ECONSTRAINT);
    close_and_check(db, &loop);
}

TEST(db_concurrent_reads_and_writes_complete)
{
    uv_loop_t loop;
    char path[128];
    struct counter w = {0}, r = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    for (int i = 0; i < 300; i++) {
        ASSERT_OK(db_write(db, add_row, on_done, &w));
        ASSERT_OK(db_read(db, count_rows, on_done, &r));
    }
    ASSERT_EQ(db_queue_depth(db), 600);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 300);
    ASSERT_EQ(r.ok, 300);
    ASSERT_EQ(db_queue_depth(db), 0);
    close_and_check(db, &loop);
}

TEST(db_close_runs_queued_jobs_then_refuses)
{
    uv_loop_t loop;
    char path[128];
    struct counter w = {0};
    int is_closed = 0;
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    for (int i = 0; i < 20; i++)
        ASSERT_OK(db_write(db, add_row, on_done, &w));
    db_close(db, closed, &is_closed);
    ASSERT_EQ(db_write(db, add_row, on_done, &w), DB_ECLOSED);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 20);
    ASSERT(is_closed);
    ASSERT_OK(uv_loop_close(&loop));
}

TEST(db_queue_cap_refuses)
{
    uv_loop_t loop;
    char path[128];
    struct counter w = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    for (int i = 0; i < DB_MAX_QUEUED; i++)
        ASSERT_OK(db_read(db, count_rows, on_done, &w));
    ASSERT_EQ(db_read(db, count_rows, on_done, &w), DB_EQUEUEFULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, DB_MAX_QUEUED);
    close_and_check(db, &loop);
}

static int write_activity(sqlite3 *conn, void *arg)
{
    char id[33];
    (void)arg;
    repo_new_id(id);
    ASSERT_EQ(strlen(id), 32);
    int rc = repo_activity_insert(conn, "t", "create_relay", "relay", id, "free", "active", 7);
    return rc ? rc : repo_relay_mark_dirty(conn, id);
}

TEST(db_repo_common_activity_row)
{
    uv_loop_t loop;
    char path[128];
    struct counter w = {0};
    ASSERT_OK(nostr_init());
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    ASSERT_OK(db_write(db, write_activity, on_done, &w));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 1);
    close_and_check(db, &loop);
}
