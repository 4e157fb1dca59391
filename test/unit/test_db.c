#include <sqlite3.h>

#include "test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db.h"
#include "db/migrations.h"
#include "core/store.h"
#include "nostr/keys.h"
#include "util/util.h"

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

static int add_row(struct db_conn *conn, void *arg)
{
    (void)arg;
    return db_run(conn, "INSERT INTO setting(key, value) VALUES (lower(hex(randomblob(8))), 'x')");
}

static int count_rows(struct db_conn *conn, void *arg)
{
    struct counter *c = arg;
    struct db_stmt *st = db_stmt(conn, "SELECT count(*) FROM setting");
    if (db_step(st) != DB_ROW)
        return DB_EGENERIC;
    c->value = db_col_int64(st, 0);
    db_reset(st);
    return 0;
}

static int add_then_fail(struct db_conn *conn, void *arg)
{
    int rc = add_row(conn, arg);
    return rc ? rc : DB_ENOTFOUND;
}

static int duplicate_key(struct db_conn *conn, void *arg)
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
    ASSERT(!db_shared(db)); /* the file is this process's: its caches may keep a "no" */
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
    /* WAL is a property of the file: a fresh connection sees it. */
    ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
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
        ASSERT_OK(db_write(db, DB_CRASH_SAFE, add_row, on_done, &w));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, add_then_fail, on_done, &bad));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, duplicate_key, on_done, &dup));
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
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, duplicate_key, on_dup, &d));
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
        ASSERT_OK(db_write(db, DB_CRASH_SAFE, add_row, on_done, &w));
        ASSERT_OK(db_read(db, count_rows, on_done, &r));
    }
    ASSERT_EQ(db_queue_depth(db), 600);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 300);
    ASSERT_EQ(r.ok, 300);
    ASSERT_EQ(db_queue_depth(db), 0);
    struct counter total = {0};
    ASSERT_OK(db_read(db, count_rows, on_done, &total));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(total.value, 300); /* every write committed exactly once */
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
        ASSERT_OK(db_write(db, DB_CRASH_SAFE, add_row, on_done, &w));
    db_close(db, closed, &is_closed);
    ASSERT_EQ(db_write(db, DB_CRASH_SAFE, add_row, on_done, &w), DB_ECLOSED);
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

static int write_activity(struct db_conn *conn, void *arg)
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
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, write_activity, on_done, &w));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 1);
    close_and_check(db, &loop);
}

/* Fails like a locked database on its first run: the whole job must be rolled back and run
 * again, leaving exactly one row. */
struct flaky {
    int runs;
};

static int busy_once(struct db_conn *conn, void *arg)
{
    struct flaky *f = arg;
    int rc = add_row(conn, NULL);
    if (rc == 0 && f->runs++ == 0)
        return DB_EBUSY;
    return rc;
}

static void on_flaky(int status, void *arg)
{
    ASSERT_OK(status);
    ((struct flaky *)arg)->runs += 100;
}

TEST(db_busy_write_is_rolled_back_and_run_again)
{
    uv_loop_t loop;
    char path[128];
    struct flaky f = {0};
    struct counter r = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, busy_once, on_flaky, &f));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(f.runs, 102); /* two runs, one done callback */
    ASSERT_OK(db_read(db, count_rows, on_done, &r));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.value, 1);
    close_and_check(db, &loop);
}

/* Another process holds the write lock for a moment: the write waits (busy_timeout) and
 * commits once the lock is released. */
struct lock_holder {
    sqlite3 *other;
    uv_timer_t timer;
};

static void on_release(uv_timer_t *t)
{
    struct lock_holder *lh = t->data;
    ASSERT_EQ(sqlite3_exec(lh->other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    uv_close((uv_handle_t *)t, NULL);
}

TEST(db_write_waits_for_another_connections_lock)
{
    uv_loop_t loop;
    char path[128];
    struct lock_holder lh;
    struct counter w = {0}, r = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    ASSERT_EQ(sqlite3_open(path, &lh.other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(lh.other, "BEGIN IMMEDIATE; INSERT INTO setting VALUES ('o', 'x')", NULL,
                           NULL, NULL),
              SQLITE_OK);
    uv_timer_init(&loop, &lh.timer);
    lh.timer.data = &lh;
    uv_timer_start(&lh.timer, on_release, 200, 0);
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, add_row, on_done, &w));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(w.ok, 1);
    ASSERT_OK(db_read(db, count_rows, on_done, &r));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.value, 2);
    sqlite3_close(lh.other);
    close_and_check(db, &loop);
}

/* Writes acknowledged to the caller survive kill -9 of the process: a child reports each
 * done callback on a pipe and is killed mid-stream; every acknowledged row is on disk. */
static int ack_fd = -1;
static struct db *ack_db;

/* Each acknowledged write is reported, then replaced by a new one: it never ends. */
static void on_ack(int status, void *arg)
{
    (void)arg;
    if (status != 0 || write(ack_fd, "a", 1) != 1 ||
        db_write(ack_db, DB_CRASH_SAFE, add_row, on_ack, NULL))
        _exit(3);
}

static void write_forever(const char *path)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (db_open(&ack_db, &loop, path) != 0)
        _exit(2);
    for (int i = 0; i < 8; i++)
        if (db_write(ack_db, DB_CRASH_SAFE, add_row, on_ack, NULL) != 0)
            _exit(2);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

TEST(db_acknowledged_writes_survive_kill9)
{
    char dir[64], path[128];
    int fds[2];
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/k.db", dir);
    ASSERT_OK(pipe(fds));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        ack_fd = fds[1];
        write_forever(path);
    }
    close(fds[1]);
    char buf[64];
    int acked = 0;
    while (acked < 100) {
        ssize_t n = read(fds[0], buf, sizeof(buf));
        ASSERT_GT(n, 0);
        acked += (int)n;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    sqlite3 *h;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open(path, &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM setting", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_GE(sqlite3_column_int(st, 0), acked);
    sqlite3_finalize(st);
    sqlite3_close(h);
}

/* The statement cache: a literal hits the same statement; a reused buffer with other text
 * gets its own; "SQL; " with a trailing blank does not prepare a new statement each time. */
static int stmt_cache_work(struct db_conn *conn, void *arg)
{
    (void)arg;
    char buf[64];
    snprintf(buf, sizeof(buf), "SELECT 1");
    struct db_stmt *a = db_stmt(conn, buf);
    ASSERT_NOT_NULL(a);
    ASSERT(db_stmt(conn, buf) == a);
    snprintf(buf, sizeof(buf), "SELECT 10");
    struct db_stmt *b = db_stmt(conn, buf);
    ASSERT(b != a);
    ASSERT_EQ(db_step(b), DB_ROW);
    ASSERT_EQ(db_col_int(b, 0), 10);
    struct db_stmt *c = db_stmt(conn, "SELECT 2; ");
    ASSERT(db_stmt(conn, "SELECT 2; ") == c);
    int n = 0;
    sqlite3 *h = db_conn_sqlite(conn);
    for (sqlite3_stmt *st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st))
        n++;
    for (int i = 0; i < 200; i++) { /* more distinct texts than the cache holds */
        snprintf(buf, sizeof(buf), "SELECT %d", 1000 + i % 150);
        ASSERT_NOT_NULL(db_stmt(conn, buf));
    }
    for (int i = 0; i < 150; i++) {
        snprintf(buf, sizeof(buf), "SELECT %d", 1000 + i);
        struct db_stmt *st = db_stmt(conn, buf);
        ASSERT_EQ(db_step(st), DB_ROW);
        ASSERT_EQ(db_col_int(st, 0), 1000 + i);
    }
    int m = 0;
    for (sqlite3_stmt *st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st))
        m++;
    ASSERT_EQ(m, n + 150); /* one statement per distinct text, never more */
    ASSERT_NULL(db_stmt(conn, "SELEKT nonsense"));
    return 0;
}

TEST(db_stmt_cache_pointer_and_text)
{
    uv_loop_t loop;
    char path[128];
    struct counter r = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    ASSERT_OK(db_read(db, stmt_cache_work, on_done, &r));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.ok, 1);
    close_and_check(db, &loop);
}

/* db_run / db_exists / db_query: parameters bound in order with their types, DB_TEXT(NULL)
 * as SQL NULL, errors mapped like db_rc, a statement left reset after each call. */
static int params_work(struct db_conn *conn, void *arg)
{
    (void)arg;
    ASSERT_OK(db_exec(conn, "CREATE TEMP TABLE p(k TEXT PRIMARY KEY, v TEXT, n INTEGER)"));
    static const struct {
        const char *k, *v;
        int64_t n;
    } rows[] = {{"a", "x", 1}, {"b", NULL, -5}, {"c", "", INT64_MAX}, {"d", "é\"'", INT64_MIN}};
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
        ASSERT_OK(db_run(conn, "INSERT INTO p(k, v, n) VALUES (?, ?, ?)", DB_TEXT(rows[i].k),
                         DB_TEXT(rows[i].v), DB_INT(rows[i].n)));
    ASSERT_EQ(db_run(conn, "INSERT INTO p(k, v, n) VALUES (?, ?, ?)", DB_TEXT("a"), DB_TEXT("y"),
                     DB_INT(0)),
              DB_ECONSTRAINT);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        ASSERT_EQ(db_exists(conn, "SELECT 1 FROM p WHERE k = ? AND n = ? AND v IS ?",
                            DB_TEXT(rows[i].k), DB_INT(rows[i].n), DB_TEXT(rows[i].v)),
                  1);
        ASSERT_EQ(db_exists(conn, "SELECT 1 FROM p WHERE k = ? AND n = ?", DB_TEXT(rows[i].k),
                            DB_INT(rows[i].n + (rows[i].n == INT64_MAX ? -1 : 1))),
                  0);
    }
    struct db_stmt *st =
        db_query(conn, "SELECT count(*), sum(v IS NULL) FROM p WHERE n < ?", DB_INT(INT64_MAX));
    ASSERT_NOT_NULL(st);
    ASSERT_EQ(db_step(st), DB_ROW);
    ASSERT_EQ(db_col_int(st, 0), 3);
    ASSERT_EQ(db_col_int(st, 1), 1);
    db_reset(st);
    ASSERT_EQ(db_run(conn, "UPDATE nope SET x = ?", DB_INT(1)), DB_EGENERIC); /* no table */
    ASSERT_EQ(db_exists(conn, "SELEKT ?", DB_INT(1)), DB_EGENERIC);
    return 0;
}

TEST(db_typed_parameters)
{
    uv_loop_t loop;
    char path[128];
    struct counter r = {0};
    uv_loop_init(&loop);
    struct db *db = open_tmp(&loop, path, sizeof(path));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, params_work, on_done, &r));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.ok, 1);
    close_and_check(db, &loop);
}
