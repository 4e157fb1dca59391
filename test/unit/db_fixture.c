/* The shared test database (db_fixture.h). */
#include "db_fixture.h"

#include <libpq-fe.h>

#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    struct db_stmt *st = db_stmt(conn, sql); /* either engine: the statement layer's own path */
    ASSERT_NOT_NULL(st);
    ASSERT_EQ(db_step(st), DB_ROW);
    int64_t v = db_col_int64(st, 0);
    db_reset(st);
    return v;
}

void test_db_seed_relays(struct db_conn *conn, int n, int inactive_from)
{
    ASSERT_OK(
        db_exec(conn, "INSERT INTO tenant(pubkey, created_at) VALUES ('" TEST_TENANT "', 1)"));
    for (int i = 1; i <= n; i++) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status,"
                 " management_enabled, created_at, updated_at) VALUES ('r%d', '" TEST_TENANT "',"
                 " 's%d', 's%d', '%064d', 'basic', '%s', 1, 1, 1)",
                 i, i, i, 1, i >= inactive_from ? "inactive" : "active");
        ASSERT_OK(db_exec(conn, sql));
    }
}

int test_pg_fresh_db(const char *prefix, char *url, size_t cap, char *name, size_t name_cap)
{
    static int made; /* forked tests have their own pid, one process several databases */
    const char *base = getenv("CARAVEL_TEST_PG_URL");
    if (!base || !*base) {
        fprintf(stderr, "  skipped: CARAVEL_TEST_PG_URL unset (no PostgreSQL for this run)\n");
        return 0;
    }
    snprintf(name, name_cap, "%s_%d_%d", prefix, (int)getpid(), made++);
    PGconn *pg = PQconnectdb(base);
    ASSERT_EQ(PQstatus(pg), CONNECTION_OK);
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        TEST_FAIL_("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
    /* postgres://user@host:port/DB[?params]: the same URL with the new database. */
    const char *slash = strchr(strstr(base, "://") + 3, '/');
    const char *query = strchr(base, '?');
    ASSERT_NOT_NULL(slash);
    snprintf(url, cap, "%.*s/%s%s", (int)(slash - base), base, name, query ? query : "");
    return 1;
}

void test_pg_drop_db(const char *name)
{
    if (!name[0])
        return;
    PGconn *pg = PQconnectdb(getenv("CARAVEL_TEST_PG_URL"));
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", name);
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
}
