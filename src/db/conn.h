/* Inside db/: one connection of either engine, its statement cache, and the few operations
 * the job model (db.c) needs from an engine. A connection is used by one thread at a time:
 * the loop thread while opening, then the pool thread of the job holding it. */
#ifndef CARAVEL_DB_CONN_H
#define CARAVEL_DB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "db/db.h"

enum db_engine { DB_SQLITE, DB_PG };

/* The advisory lock held while migrating (any constant, the same in every version). */
#define PG_SCHEMA_LOCK_KEY "29383235585254764"

/* Transaction statements that may wait for the next one on a PostgreSQL connection. */
#define PG_DEFERRED_MAX 8

/* How long a SQLite connection waits for a lock another process holds. */
#define CONN_BUSY_TIMEOUT_MS 5000

/* Statements have at most this many parameters (the widest, an INSERT of a relay, has 19). */
#define DB_MAX_PARAMS 32

/* A statement of the cache: the caller's pointer is the fast key, the copied text the sure
 * one (a caller's reused buffer must not hit a stale statement). */
struct db_stmt {
    struct db_conn *c;
    const char *key; /* the caller's string: pointer identity only */
    char *sql;       /* its text when prepared */
    sqlite3_stmt *st;
    /* PostgreSQL: prepared as "s<index>"; parameters bound until db_reset; the whole result
     * of the execution (db_step runs it the first time, then walks its rows). */
    char *pg_sql; /* the translated text */
    int prepared; /* on the server: the first db_step, typed by the first binding */
    int index, n_params, executed, row;
    const char *values[DB_MAX_PARAMS];
    char ints[DB_MAX_PARAMS][24];
    Oid types[DB_MAX_PARAMS]; /* int8 for DB_INT, else text */
    PGresult *res;
};

enum conn_role { CONN_READER, CONN_WRITER, CONN_CHECKPOINT };

struct db_conn {
    enum db_engine engine;
    int in_use;
    struct db_stmt **stmts; /* every statement prepared on the connection */
    size_t n_stmts, cap_stmts;
    int sync_full; /* the level of the last write batch: 1 DB_POWER_SAFE, 0 DB_CRASH_SAFE */
    sqlite3 *h;
    PGconn *pg;
    int64_t changes; /* PostgreSQL: rows of the last INSERT/UPDATE/DELETE */
    /* PostgreSQL: a write batch's BEGIN, SAVEPOINT and RELEASE wait here and reach the server
     * in one round trip with the next statement (db/pg.c); round_trips counts them all. */
    struct db_stmt *deferred[PG_DEFERRED_MAX];
    int n_deferred;
    int64_t round_trips;
    /* The writer's: db.c's flag that clients' writes are queued (db_clients_waiting); NULL on
     * the other connections. */
    const _Atomic int *clients_waiting;
    const _Atomic uint64_t *client_write_ms; /* db_clients_writing; NULL likewise */
};

/* The engine a DATABASE_URL names: postgres:// or postgresql:// is PostgreSQL, anything
 * else ("sqlite://PATH", "sqlite:PATH", a bare path) SQLite. */
enum db_engine conn_engine_of(const char *url);
/* Opens c (zeroed first) for url in role; SQLite creates the file's directory. 0 or a
 * db_error (logged without the URL's password). */
int conn_open(struct db_conn *c, const char *url, enum conn_role role);
void conn_close(struct db_conn *c);
/* The schema: every embedded migration not applied yet, each in its own transaction; on
 * PostgreSQL under an advisory lock, so instances starting together apply each once. */
int conn_migrate(struct db_conn *c);
/* Transaction control for the write batches (prepared once per connection); DB_EBUSY is not
 * logged (the batch retry says it). */
int conn_tx(struct db_conn *c, const char *sql);
/* After a hand-off of reads: every statement reset (one a job left stepping would keep
 * SQLite's read snapshot open; on PostgreSQL its result's memory), SQLite's read transaction
 * ended. */
void conn_end_reads(struct db_conn *c);
/* 1 while a transaction is open (also one a failed statement aborted). */
int conn_in_tx(struct db_conn *c);
/* Commit durability for the next batch (full: DB_POWER_SAFE); 0 or a db_error. */
int conn_set_durability(struct db_conn *c, int full);

/* PostgreSQL (db/pg.c), called by the engine-neutral functions of db/conn.c. */
int pg_open(struct db_conn *c, const char *url, enum conn_role role);
void pg_close(struct db_conn *c);
int pg_exec(struct db_conn *c, const char *sql);
int pg_prepare(struct db_stmt *st);
void pg_bind(struct db_stmt *st, const struct db_param *p, size_t n);
int pg_step(struct db_stmt *st);
/* conn_tx on PostgreSQL: BEGIN, SAVEPOINT and RELEASE (defer) are kept for the next round
 * trip and return 0 (unless a statement of the transaction failed already), their error
 * showing in that round trip's result; anything else goes now, after them. A COMMIT that
 * ended a failed transaction (the server answers ROLLBACK) is an error. */
int pg_tx(struct db_stmt *st, int defer);
void pg_reset(struct db_stmt *st);
const char *pg_col(struct db_stmt *st, int col);
int pg_col_is_int(struct db_stmt *st, int col);
int pg_lock_schema(struct db_conn *c, int lock);
int pg_read_only(struct db_conn *c);

#endif
