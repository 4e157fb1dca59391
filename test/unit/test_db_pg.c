/* The PostgreSQL engine against a real server: CARAVEL_TEST_PG_URL names a database of a
 * role that may create databases (test/run.sh starts a throwaway cluster and sets it). Each
 * test works in a database of its own, created and dropped here. Without the variable the
 * tests say they were skipped and pass (a quick run without PostgreSQL).
 * Covered: the migrations on an empty database, twice (applied once), and by two processes
 * at once (advisory lock: each applied and recorded exactly once); the statement API (types,
 * NULL, 64-bit extremes, constraints, IS ?, booleans, changes); the job model (group commit
 * with a failing job rolled back alone, reads, the read-only readers); the round trips of a
 * batch (each job's SAVEPOINT and RELEASE ride with a statement) and a job that went on after
 * a failed statement (never acknowledged: its transaction is lost). */
#include "test.h"

#include "db_fixture.h"

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "db/conn.h"
#include "db/db.h"
#include "db/migrations.h"
#include "util/util.h"

TEST_TIMEOUT(db_pg_migrations_applied_once, 60)
{
    char url[512], name[64];
    struct db_conn *c = NULL;
    if (!test_pg_fresh_db("caravel_unit", url, sizeof(url), name, sizeof(name)))
        return;
    ASSERT_OK(db_conn_open(&c, url, 1));
    db_conn_close(c);
    ASSERT_OK(db_conn_open(&c, url, 1)); /* nothing left to apply */
    ASSERT_EQ(test_db_int(c, "SELECT count(*) FROM schema_migrations"), (int64_t)n_migrations);
    ASSERT_EQ(test_db_int(c, "SELECT count(DISTINCT name) FROM schema_migrations"),
              (int64_t)n_migrations);
    /* The translated schema: 64-bit integers, identity keys, C collation, rowid. */
    ASSERT_OK(db_exec(c, "INSERT INTO tenant(pubkey, created_at) VALUES ('" /* 64 x 'a' */
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
                         " 9000000000000)"));
    ASSERT_EQ(test_db_int(c, "SELECT created_at FROM tenant"), 9000000000000LL);
    ASSERT_OK(db_exec(c, "INSERT INTO activity(tenant, created_at, activity_type, resource_type,"
                         " resource_id) VALUES ('t', 1, 'a', 'r', 'x'), ('t', 2, 'a', 'r', 'y')"));
    ASSERT_EQ(test_db_int(c, "SELECT max(id) - min(id) FROM activity"), 1);
    ASSERT_EQ(test_db_int(c, "SELECT count(*) FROM tenant WHERE rowid IS NOT NULL"), 1);
    ASSERT_EQ(test_db_int(c, "SELECT 'B' < 'a'"), 1); /* bytewise, as SQLite */
    ASSERT_EQ(db_exec(c, "INSERT INTO tenant(pubkey, created_at) VALUES ('short', 1)"),
              DB_ECONSTRAINT);
    db_conn_close(c);
    test_pg_drop_db(name);
}

/* Two processes open the same empty database at the same moment: the advisory lock makes
 * the second wait, then find every migration applied. */
TEST_TIMEOUT(db_pg_two_processes_migrate_once, 60)
{
    char url[512], name[64];
    int go[2];
    pid_t kids[2];
    if (!test_pg_fresh_db("caravel_unit", url, sizeof(url), name, sizeof(name)))
        return;
    ASSERT_OK(pipe(go));
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0) {
            char b;
            struct db_conn *c = NULL;
            close(go[1]);
            if (read(go[0], &b, 1) != 0) /* EOF: both start together */
                _exit(3);
            int rc = db_conn_open(&c, url, 1);
            db_conn_close(c);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int k = 0; k < 2; k++) {
        int status = 0;
        ASSERT_EQ(waitpid(kids[k], &status, 0), kids[k]);
        ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct db_conn *c = NULL;
    ASSERT_OK(db_conn_open(&c, url, 0));
    ASSERT_EQ(test_db_int(c, "SELECT count(*) FROM schema_migrations"), (int64_t)n_migrations);
    db_conn_close(c);
    test_pg_drop_db(name);
}

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
    ASSERT_EQ(db_changes(conn), 1);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        ASSERT_EQ(db_exists(conn, "SELECT 1 FROM p WHERE k = ? AND n = ? AND v IS ?",
                            DB_TEXT(rows[i].k), DB_INT(rows[i].n), DB_TEXT(rows[i].v)),
                  1);
        struct db_stmt *st =
            db_query(conn, "SELECT v, n, v IS NULL FROM p WHERE k = ?1", DB_TEXT(rows[i].k));
        ASSERT_EQ(db_step(st), DB_ROW);
        ASSERT_EQ(db_col_is_null(st, 0), rows[i].v == NULL);
        if (rows[i].v)
            ASSERT_STR_EQ(db_col_str(st, 0), rows[i].v);
        ASSERT_EQ(db_col_int64(st, 1), rows[i].n);
        ASSERT(db_col_is_int(st, 1) && !db_col_is_int(st, 0));
        ASSERT_EQ(db_col_int(st, 2), rows[i].v == NULL); /* a boolean reads 0/1 */
        ASSERT_EQ(db_step(st), DB_DONE);
        db_reset(st);
    }
    /* A NULL first binding: typed by its use (an integer column), or text where nothing
     * says (IS NULL). */
    ASSERT_OK(db_run(conn, "UPDATE p SET n = ? WHERE k = ?", DB_TEXT(NULL), DB_TEXT("b")));
    ASSERT_OK(db_run(conn, "UPDATE p SET n = ? WHERE k = ?", DB_INT(-6), DB_TEXT("b")));
    ASSERT_EQ(db_exists(conn, "SELECT 1 FROM p WHERE ?1 IS NULL OR k = ?1", DB_TEXT(NULL)), 1);
    ASSERT_EQ(db_exists(conn, "SELECT 1 FROM p WHERE ?1 IS NULL OR k = ?1", DB_TEXT("zz")), 0);
    ASSERT_OK(db_run(conn, "INSERT OR IGNORE INTO p(k, v, n) VALUES (?, 'dup', 0)", DB_TEXT("a")));
    ASSERT_EQ(db_changes(conn), 0);
    ASSERT_OK(db_run(conn, "UPDATE p SET n = max(n, ?) WHERE n < 100", DB_INT(7)));
    ASSERT_EQ(db_changes(conn), 3);
    return 0;
}

/* A job whose constraint error aborts its savepoint: only it is rolled back. */
static int bad_work(struct db_conn *conn, void *arg)
{
    (void)arg;
    ASSERT_OK(db_run(conn, "INSERT INTO setting(key, value) VALUES ('gone', 'x')"));
    return db_run(conn, "INSERT INTO setting(key, value) VALUES ('k1', 'again')");
}

struct job {
    const char *key;
    int status;
};

static int good_work(struct db_conn *conn, void *arg)
{
    const struct job *j = arg;
    return db_run(conn, "INSERT INTO setting(key, value) VALUES (?, 'v')", DB_TEXT(j->key));
}

static void job_done(int status, void *arg)
{
    ((struct job *)arg)->status = status;
}

static int read_work(struct db_conn *conn, void *arg)
{
    *(int64_t *)arg = test_db_int(conn, "SELECT count(*) FROM setting WHERE value = 'v'");
    /* Readers are read-only, as SQLite's query_only readers. */
    ASSERT_EQ(db_run(conn, "DELETE FROM setting"), DB_EREADONLY);
    return 0;
}

struct tally {
    int ok, failed;
};

static void tally_done(int status, void *arg)
{
    struct tally *t = arg;
    status == 0 ? t->ok++ : t->failed++;
}

static void read_done(int status, void *arg)
{
    (void)arg;
    ASSERT_OK(status);
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

/* A job-model test's own database, opened on its own loop. */
struct pg_db {
    char url[512], name[64];
    uv_loop_t loop;
    struct db *db;
};

/* 0: no PostgreSQL for this run (the test is skipped). */
static int pg_db_open(struct pg_db *t)
{
    if (!test_pg_fresh_db("caravel_unit", t->url, sizeof(t->url), t->name, sizeof(t->name)))
        return 0;
    uv_loop_init(&t->loop);
    t->db = NULL;
    ASSERT_OK(db_open(&t->db, &t->loop, t->url));
    return 1;
}

static void pg_db_close(struct pg_db *t)
{
    int is_closed = 0;
    db_close(t->db, closed, &is_closed);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ASSERT(is_closed);
    ASSERT_OK(uv_loop_close(&t->loop));
}

TEST_TIMEOUT(db_pg_statements_and_job_model, 60)
{
    struct pg_db pd;
    if (!pg_db_open(&pd))
        return;
    struct db *db = pd.db;
    struct tally t = {0}, bad = {0};
    int64_t seen = -1;
    ASSERT(!db_read_only(db));
    ASSERT(db_shared(db)); /* other instances write it too */
    ASSERT_OK(db_write(db, DB_POWER_SAFE, params_work, tally_done, &t));
    /* One batch: good, bad (rolled back alone), good. */
    struct job k1 = {"k1", 1}, k2 = {"k2", 1};
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, good_work, job_done, &k1));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, bad_work, tally_done, &bad));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, good_work, job_done, &k2));
    uv_run(&pd.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(t.ok, 1);
    ASSERT_EQ(k1.status, 0);
    ASSERT_EQ(k2.status, 0);
    ASSERT_EQ(bad.failed, 1);
    ASSERT_OK(db_read(db, read_work, read_done, &seen));
    uv_run(&pd.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(seen, 2);
    pg_db_close(&pd);
    struct db_conn *c = NULL;
    ASSERT_OK(db_conn_open(&c, pd.url, 0));
    ASSERT_EQ(test_db_int(c, "SELECT count(*) FROM setting WHERE key = 'gone'"), 0);
    db_conn_close(c);
    test_pg_drop_db(pd.name);
}

struct rt_job {
    const char *key;
    int64_t rt_start; /* the connection's round trips when the job started */
    int status;
};

static int rt_work(struct db_conn *conn, void *arg)
{
    struct rt_job *j = arg;
    j->rt_start = conn->round_trips;
    return db_run(conn, "INSERT INTO setting(key, value) VALUES (?, 'rt')", DB_TEXT(j->key));
}

/* No statement at all: its SAVEPOINT and RELEASE wait for the next job's statement. */
static int empty_work(struct db_conn *conn, void *arg)
{
    ((struct rt_job *)arg)->rt_start = conn->round_trips;
    return 0;
}

/* Goes on after a failed statement, which on PostgreSQL aborted the transaction and with it
 * the job's first INSERT: it must not be acknowledged. */
static int swallow_work(struct db_conn *conn, void *arg)
{
    struct rt_job *j = arg;
    ASSERT_OK(db_run(conn, "INSERT INTO setting(key, value) VALUES (?, 'rt')", DB_TEXT(j->key)));
    ASSERT_EQ(db_run(conn, "INSERT INTO setting(key, value) VALUES ('a', 'dup')"), DB_ECONSTRAINT);
    return 0;
}

static void rt_done(int status, void *arg)
{
    ((struct rt_job *)arg)->status = status;
}

static int has_key(struct db_conn *c, const char *key)
{
    return db_exists(c, "SELECT 1 FROM setting WHERE key = ?", DB_TEXT(key));
}

TEST_TIMEOUT(db_pg_batch_round_trips_and_failed_jobs, 60)
{
    struct pg_db pd;
    if (!pg_db_open(&pd))
        return;
    struct db *db = pd.db;
    /* Every statement prepared once on the writer connection first (a round trip each). */
    struct rt_job w1 = {"w1", 0, 1}, w2 = {"w2", 0, 1};
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &w1));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &w2));
    uv_run(&pd.loop, UV_RUN_DEFAULT);
    ASSERT(w1.status == 0 && w2.status == 0);
    /* One batch: one round trip per one-statement job, none for an empty one. */
    struct rt_job a = {"a", 0, 1}, e = {"e", 0, 1}, b = {"b", 0, 1}, c = {"c", 0, 1};
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &a));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, empty_work, rt_done, &e));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &b));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &c));
    uv_run(&pd.loop, UV_RUN_DEFAULT);
    ASSERT(a.status == 0 && e.status == 0 && b.status == 0 && c.status == 0);
    ASSERT_EQ(e.rt_start - a.rt_start, 1);
    ASSERT_EQ(b.rt_start - a.rt_start, 1);
    ASSERT_EQ(c.rt_start - b.rt_start, 1);
    /* A batch with a job that went on after an error: whatever is acknowledged is there. */
    struct rt_job x = {"x", 0, 1}, sw = {"sw", 0, 1}, y = {"y", 0, 1}, z = {"z", 0, 1};
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &x));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, swallow_work, rt_done, &sw));
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &y));
    uv_run(&pd.loop, UV_RUN_DEFAULT);
    ASSERT(sw.status != 0);
    /* The connection is usable again. */
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, rt_work, rt_done, &z));
    uv_run(&pd.loop, UV_RUN_DEFAULT);
    ASSERT_OK(z.status);
    pg_db_close(&pd);
    struct db_conn *conn = NULL;
    ASSERT_OK(db_conn_open(&conn, pd.url, 0));
    const struct rt_job *all[] = {&a, &b, &c, &x, &sw, &y, &z};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        ASSERT_EQ(has_key(conn, all[i]->key), all[i]->status == 0 ? 1 : 0);
    db_conn_close(conn);
    test_pg_drop_db(pd.name);
}
