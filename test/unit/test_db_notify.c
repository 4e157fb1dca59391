/* Wake-ups between instances (db/notify.h). SQLite: no listener, sending is a no-op.
 * PostgreSQL (CARAVEL_TEST_PG_URL, else skipped): a notification committed by another session
 * reaches the callback with its id; this process's own (sent through the job model) and a
 * rolled-back one never do; the first LISTEN and every reconnect call back with NULL
 * ("reconcile"); a listener whose backend is terminated reconnects and hears again. */
#include "test.h"

#include "db_fixture.h"

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "db/db.h"
#include "db/notify.h"
#include "util/util.h"

/* Whose claims can be taken at once: this host's processes that no longer run, and earlier
 * runs with this very pid (a container); never another host's nor a live process's. */
TEST(db_notify_instance_gone)
{
    const char *me = db_instance();
    char host[64], other[160];
    snprintf(host, sizeof(host), "%.*s", (int)(strchr(me, ':') - me), me);
    ASSERT_EQ(db_instance_gone(me), 0);
    snprintf(other, sizeof(other), "%s:%ld:ffffffffffffffff", host, (long)getpid());
    ASSERT_EQ(db_instance_gone(other), strcmp(other, me) != 0);
    pid_t kid = fork();
    if (kid == 0)
        _exit(0);
    ASSERT_EQ(waitpid(kid, NULL, 0), kid);
    snprintf(other, sizeof(other), "%s:%ld:0011223344556677", host, (long)kid);
    ASSERT_EQ(db_instance_gone(other), 1); /* reaped: that pid runs nothing */
    snprintf(other, sizeof(other), "%s:%ld:0011223344556677", host, (long)getppid());
    ASSERT_EQ(db_instance_gone(other), 0); /* alive */
    snprintf(other, sizeof(other), "elsewhere-%s:%ld:0011223344556677", host, (long)kid);
    ASSERT_EQ(db_instance_gone(other), 0); /* another host: only the lease tells */
    ASSERT_EQ(db_instance_gone("garbage"), 0);
    ASSERT_EQ(db_instance_gone(NULL), 0);
}

/* ---- PostgreSQL ---- */

/* What the listener heard, in order: "chan id" or "*" for a reconcile. */
struct heard {
    char items[16][96];
    int n;
};

static void on_heard(const char *channel, const char *id, void *arg)
{
    struct heard *h = arg;
    ASSERT_LT(h->n, 16);
    if (channel)
        snprintf(h->items[h->n++], sizeof(h->items[0]), "%s %s", channel, id);
    else
        snprintf(h->items[h->n++], sizeof(h->items[0]), "*");
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    TEST_FAIL_("the listener did not hear it in time");
}

/* Runs the loop until h holds n items (or fails after 10 s). */
static void run_until(struct heard *h, int n)
{
    uv_timer_t deadline;
    uv_timer_init(uv_default_loop(), &deadline);
    uv_timer_start(&deadline, on_deadline, 10000, 0);
    while (h->n < n)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

static void exec_ok(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        TEST_FAIL_("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
}

/* Another instance's notification (its own instance name before the id). */
static void foreign_notify(PGconn *pg, const char *channel, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT pg_notify('%s', 'otherhost:1:00112233aabbccdd %s')", channel,
             id);
    exec_ok(pg, sql);
}

struct send_job {
    const char *channel, *id;
    int fail; /* roll the transaction back after sending */
    int done, status;
};

static int send_work(struct db_conn *conn, void *arg)
{
    struct send_job *j = arg;
    int rc = db_notify_send(conn, j->channel, j->id);
    return rc != 0 ? rc : j->fail ? DB_EGENERIC : 0;
}

static void send_done(int status, void *arg)
{
    struct send_job *j = arg;
    j->done = 1;
    j->status = status;
}

/* A notification sent through the job model by this process (a write job). */
static void own_notify(struct db *db, const char *channel, const char *id, int fail)
{
    struct send_job j = {.channel = channel, .id = id, .fail = fail};
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, send_work, send_done, &j));
    while (!j.done)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    ASSERT_EQ(j.status, fail ? DB_EGENERIC : 0);
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

/* ---- SQLite ---- */

TEST(db_notify_sqlite_has_no_listener)
{
    char dir[128], url[256];
    struct db_notify *n = (struct db_notify *)1;
    struct db *db = NULL;
    const char *chans[] = {"relay_changed"};
    const char *bad[] = {"Relay-Changed"};
    int closed = 0;
    test_tmpdir(dir, sizeof(dir));
    snprintf(url, sizeof(url), "sqlite://%s/c.db", dir);
    ASSERT_OK(db_notify_start(&n, uv_default_loop(), url, chans, 1, NULL, NULL));
    ASSERT_NULL(n);
    ASSERT_EQ(db_notify_start(&n, uv_default_loop(), url, bad, 1, NULL, NULL), -1);
    ASSERT_OK(db_open(&db, uv_default_loop(), url));
    own_notify(db, "relay_changed", "r1", 0); /* nothing to send it to: committed */
    db_close(db, on_closed, &closed);
    while (!closed)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    db_notify_stop(NULL, NULL, NULL);
}

TEST(db_notify_instance_name)
{
    const char *me = db_instance();
    ASSERT_NOT_NULL(me);
    ASSERT(strlen(me) <= DB_INSTANCE_MAX);
    ASSERT_EQ(me, db_instance()); /* one string for the process's life */
    char pid[32];
    snprintf(pid, sizeof(pid), ":%ld:", (long)getpid());
    ASSERT_NOT_NULL(strstr(me, pid));
    ASSERT_EQ(strlen(strrchr(me, ':') + 1), 16);
}

TEST_TIMEOUT(db_notify_pg_hears_others_reconnects, 60)
{
    char url[512], name[64];
    if (!test_pg_fresh_db("caravel_notify", url, sizeof(url), name, sizeof(name)))
        return;
    uv_loop_t *loop = uv_default_loop();
    struct db *db = NULL;
    struct db_notify *n = NULL;
    struct heard h = {0};
    const char *chans[] = {"relay_changed", "outbox"};
    ASSERT_OK(db_open(&db, loop, url));
    ASSERT_OK(db_notify_start(&n, loop, url, chans, 2, on_heard, &h));
    ASSERT_NOT_NULL(n);
    run_until(&h, 1);
    ASSERT_STR_EQ(h.items[0], "*"); /* listening: reconcile what may have been missed */
    ASSERT(db_notify_listening(n));

    PGconn *other = PQconnectdb(url);
    ASSERT_EQ(PQstatus(other), CONNECTION_OK);
    /* Ours (committed or rolled back) are never heard; another instance's are, in order. */
    own_notify(db, "relay_changed", "mine", 0);
    own_notify(db, "relay_changed", "rolled-back", 1);
    foreign_notify(other, "relay_changed", "r1");
    foreign_notify(other, "outbox", "");
    exec_ok(other, "BEGIN");
    foreign_notify(other, "relay_changed", "r2");
    foreign_notify(other, "relay_changed", "r2"); /* the same twice in one transaction: once */
    exec_ok(other, "COMMIT");
    foreign_notify(other, "elsewhere", "x"); /* not listened to */
    foreign_notify(other, "relay_changed", "r3");
    run_until(&h, 5);
    ASSERT_STR_EQ(h.items[1], "relay_changed r1");
    ASSERT_STR_EQ(h.items[2], "outbox ");
    ASSERT_STR_EQ(h.items[3], "relay_changed r2");
    ASSERT_STR_EQ(h.items[4], "relay_changed r3");

    /* The listener's backend is terminated (a server restart, a network cut): it connects
     * again, says "reconcile", and hears what is sent from then on. */
    exec_ok(other, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE application_name = 'caravel notify' AND datname = current_database()");
    run_until(&h, 6);
    ASSERT_STR_EQ(h.items[5], "*");
    foreign_notify(other, "outbox", "after");
    run_until(&h, 7);
    ASSERT_STR_EQ(h.items[6], "outbox after");
    ASSERT_EQ(h.n, 7);
    PQfinish(other);

    int stopped = 0, closed = 0;
    db_notify_stop(n, on_closed, &stopped);
    db_close(db, on_closed, &closed);
    while (!stopped || !closed)
        uv_run(loop, UV_RUN_ONCE);
    test_pg_drop_db(name);
}
