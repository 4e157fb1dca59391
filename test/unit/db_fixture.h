/* One test database for the unit tests of the db layer and the repos: a SQLite file in the
 * test's scratch directory (test_tmpdir), opened by db_open (every migration applied) on a
 * loop of its own; and fresh PostgreSQL databases for the tests that need the server. Loop
 * thread = the test's thread. */
#ifndef TEST_DB_FIXTURE_H
#define TEST_DB_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "db/db.h"

struct test_db {
    uv_loop_t loop;
    struct db *db;
    char dir[64], path[128];
};

/* Opens the database (asserts it opened). */
void test_db_open(struct test_db *t);
/* db_close, runs the loop until the database has closed (asserted), closes the loop. */
void test_db_close(struct test_db *t);
/* Opens a database, runs work as one write job (nostr_init first, for repos that sign or
 * derive keys) and asserts that it returned 0, then closes it: for repo tests whose checks
 * run inside the job, on the pool thread (an ASSERT aborts the forked test). */
void test_db_run_write(db_work_fn *work);
/* The first column of the first row of sql, on a connection of either engine (asserts there is
 * a row; the statement stays prepared on the connection). */
int64_t test_db_int(struct db_conn *conn, const char *sql);

/* A tenant (TEST_TENANT) and relays r1..rN of it on the basic plan with management on, the
 * ones from inactive_from on inactive (n + 1: none), on a connection of either engine. */
#define TEST_TENANT "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
void test_db_seed_relays(struct db_conn *conn, int n, int inactive_from);

/* PostgreSQL for the unit tests: a database of its own (prefix_PID_N) in the cluster that
 * CARAVEL_TEST_PG_URL names (test/run.sh starts one per run); its URL into url (the base URL
 * with the new database) and its name into name. 0 when CARAVEL_TEST_PG_URL is unset: the
 * caller skips, and a line says so. */
int test_pg_fresh_db(const char *prefix, char *url, size_t cap, char *name, size_t name_cap);
/* DROP DATABASE name WITH (FORCE); nothing for an empty name. */
void test_pg_drop_db(const char *name);

#endif
