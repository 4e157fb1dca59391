/* Database access, always on the uv threadpool (PRODUCT.md §1, 4), on SQLite or PostgreSQL
 * (DATABASE_URL; db/conn.h, db/pg.c, db/dialect.h; docs/ARCHITECTURE.md "Storage engines"):
 * the API below is the same for both and the SQL is SQLite's, translated for PostgreSQL.
 *
 * One writer connection (each batch of write jobs one BEGIN IMMEDIATE transaction) and a
 * small set of reader connections (WAL lets them read while the writer writes). Every
 * connection has foreign_keys=ON and busy_timeout. Each write says how much it must survive
 * (enum db_durability): every COMMIT survives kill -9 of the process; DB_POWER_SAFE ones also
 * survive a power loss (synchronous=FULL, one fsync per COMMIT); DB_CRASH_SAFE ones reach the
 * disk within about a second (a background checkpoint syncs the WAL).
 *
 * Jobs: work runs on a pool thread with a connection and may only touch its own arg; done
 * runs on the loop thread with work's status (0, or a negative code; DB_EBUSY/DB_ECONSTRAINT
 * etc. below, or whatever negative value work returned). If work returns non-zero the
 * transaction is rolled back. Writes waiting together are committed together (group commit,
 * up to 64 per COMMIT): a failing job is rolled back alone and the others commit (each job in
 * its own SAVEPOINT; on SQLite only once a job failed after changing rows, see db.c); every
 * done runs only after the COMMIT, in submission order.
 * Reads waiting for a connection are likewise run back to back on one pool thread (up to 16
 * per hand-off, shared among the readers, in one read transaction: one snapshot), each done in
 * submission order; list reads (db_read_list) wait in a lane of their own, one per hand-off.
 * Jobs are handed over at the loop's next idle phase, so those submitted in one loop turn
 * leave together.
 * A write whose transaction fails with DB_EBUSY (the file locked
 * by another process past busy_timeout) is rolled back and run again, up to 5 times: a write
 * work function may therefore run more than once and must (re)set what it stores in arg.
 * db_open, db_read/db_read_list/db_write and db_close are loop thread only. */
#ifndef CARAVEL_DB_H
#define CARAVEL_DB_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/err.h"

/* Errors: DB_E* in util/err.h (one error space). */

#define DB_MAX_QUEUED 4096

/* What an acknowledged write must survive. Both are atomic and consistent after any crash. */
enum db_durability {
    /* kill -9 / a crash of the process (WAL, synchronous=NORMAL): the API's relay and
     * tenant writes and sync bookkeeping, which the dashboard or a resync can redo. */
    DB_CRASH_SAFE = 0,
    /* also power loss or a kernel crash (synchronous=FULL): money (invoices, payment
     * attempts), the robot's stored gift wraps and its key, whose loss could pay or send
     * twice or change identity. */
    DB_POWER_SAFE = 1,
};

struct db;
/* One connection of the engine, held by one pool thread for the length of a job. */
struct db_conn;
/* A prepared statement of a connection with its current result (a cursor). */
struct db_stmt;
typedef int db_work_fn(struct db_conn *conn, void *arg);
typedef void db_done_cb(int status, void *arg);

/* Opens the database DATABASE_URL names (SQLite: creating the directory and file, setting the
 * pragmas; PostgreSQL: connecting the writer and the readers) and applies the migrations
 * embedded in the binary (migrations/NNNN_*.sql) that schema_migrations does not list yet
 * (PostgreSQL: under an advisory lock). Synchronous: start-up only. Returns 0 or a negative
 * code with a logged reason (never the URL's password). */
int db_open(struct db **out, uv_loop_t *loop, const char *url);
/* A connection outside the job model, for tests and tools: url as DATABASE_URL takes it (a
 * path, sqlite://PATH, postgres://...), with the migrations applied when migrate is set.
 * Synchronous; the calling thread owns it until db_conn_close. 0 or a db_error (logged). */
int db_conn_open(struct db_conn **out, const char *url, int migrate);
void db_conn_close(struct db_conn *conn);
/* The embedded migrations not applied yet, inside the caller's open transaction (on
 * PostgreSQL under a transaction-level advisory lock): for `caravel migrate`, whose one
 * transaction also copies the data. 0 or a db_error. */
int db_migrate_tx(struct db_conn *conn);
/* Tools only: the connection's libpq handle (PGconn *), NULL on another engine. */
struct pg_conn;
struct pg_conn *db_conn_pg(struct db_conn *conn);
/* Tests only: the connection's SQLite handle (sqlite3 *), NULL on another engine. */
struct sqlite3;
struct sqlite3 *db_conn_sqlite(struct db_conn *conn);
/* Queue a read-only job / a write transaction. Returns 0 (done will run exactly once), or
 * DB_EQUEUEFULL / DB_ECLOSED (done will not run). */
int db_read(struct db *db, db_work_fn *work, db_done_cb *done, void *arg);
/* A read that may take long (a list page): its own queue, served after the waiting db_read
 * jobs and by at most half of the readers at once, so it never holds up point reads. Same
 * contract as db_read. */
int db_read_list(struct db *db, db_work_fn *work, db_done_cb *done, void *arg);
int db_write(struct db *db, enum db_durability durability, db_work_fn *work, db_done_cb *done,
             void *arg);
/* A write no client is waiting for (billing, DMs, sync and block-list records): same contract
 * as db_write, in a queue of its own. While both queues have jobs, the writer alternates a
 * batch of db_write jobs and a batch of these, so such work never sits in front of more than
 * one client batch, and never starves either. Its jobs are never in a client's transaction. */
int db_write_background(struct db *db, enum db_durability durability, db_work_fn *work,
                        db_done_cb *done, void *arg);
/* A read on behalf of someone who may stop waiting (an HTTP client that closes its
 * connection): wanted(arg) is asked on the loop thread right before the job would be handed
 * to a pool thread, and by db_close for every queued read. When it returns 0 the work never
 * runs and done gets DB_ECANCELED, so the queries of vanished clients cost nothing and do not
 * hold up shutdown. A job already running is not stopped. list: the list lane (db_read_list),
 * else db_read's. Same contract as db_read otherwise. */
typedef int db_wanted_fn(void *arg);
int db_read_for(struct db *db, int list, db_work_fn *work, db_done_cb *done, db_wanted_fn *wanted,
                void *arg);
/* Jobs queued or running. */
size_t db_queue_depth(const struct db *db);
/* A counter of this process's write transactions, for caches that must never answer from
 * before a write (api/relay_cache.c): the writer adds 1 before a write batch starts and 1 after
 * its COMMIT or ROLLBACK, so it is odd while one may be committing. An answer read by a job
 * submitted while it was even value v is still the database's answer as long as it reads v
 * again: every commit that could change it moves it first. Only writes through this db are
 * counted (readers are query_only): valid where no other process writes the store (!db_shared:
 * a SQLite file, one process by design), never on PostgreSQL (instances share it). Any thread. */
uint64_t db_write_seq(const struct db *db);

/* Pool thread, inside a write job: 1 while clients' writes (db_write) are queued for the
 * writer. A background job that goes over many items checks it between two items and, once it
 * did at least one, ends there and says it has more: what it did commits, the clients' batch
 * goes next, and its next batch after that (the queues alternate). Without it a client's write
 * waited for a whole background batch. 0 on the other connections. */
int db_clients_waiting(const struct db_conn *conn);
/* Pool thread, inside a write job: 1 while clients' writes are queued or one was queued within
 * the last second, i.e. while clients are writing. A background job keeps its batches short
 * then (a client's write that arrives during one waits for the rest of it and its COMMIT) and
 * long while the API is quiet (fewer commits for the same work). 0 on other connections. */
int db_clients_writing(const struct db_conn *conn);

/* SQLite's write-ahead log upkeep (all zero on PostgreSQL). The writer does not checkpoint in its
 * COMMITs: a PASSIVE checkpoint runs on a pool thread (its own connection) once 1,000 frames
 * were committed since the last one copied its share (db_checkpoint_due); once one copied a WAL of
 * 4,000 frames or more whole, the writer is held for a moment while a RESTART checkpoint starts the
 * WAL over; and the writer checkpoints itself past 16,000 (readers that never leave the WAL keep it
 * from starting over). */
struct db_stats {
    uint64_t wal_pages;          /* frames in the WAL after the last write batch */
    uint64_t checkpoints;        /* background checkpoints completed */
    uint64_t wal_restarts;       /* RESTART checkpoints that started the WAL over */
    uint64_t writer_checkpoints; /* checkpoints the writer had to run itself */
    int checkpointing;           /* a background checkpoint is queued or running */
};
void db_get_stats(const struct db *db, struct db_stats *out);
/* 0 while writes can be acknowledged, else what the last write (or health check) ran into:
 * DB_EMOVED (the database file was deleted or replaced: what would be written is lost with
 * the old file, so nothing is acknowledged until a restart), DB_EFULL or DB_EREADONLY (both
 * clear with the next write that commits). The first time is logged at error level. Loop
 * thread. */
int db_storage_error(const struct db *db);
/* 1 when the writer connection opened the file read-only (its permissions, a read-only
 * mount). Loop thread, after db_open. */
int db_read_only(const struct db *db);
/* 1 when other processes may write the same data while this one runs (a PostgreSQL server
 * shared by several instances), 0 for a SQLite file this process owns. Whatever a module
 * remembers of the rows (a cache) may then have been changed by another instance: only a fact
 * no instance can undo may be kept. Any thread. */
int db_shared(const struct db *db);
/* Tests: PRAGMA max_page_count on the writer, so a full disk can be simulated. Loop thread,
 * before the first job. */
void db_set_max_pages(struct db *db, int64_t pages);
/* Pool thread, any connection: 1 when its file was deleted or replaced since it was opened
 * (SQLITE_FCNTL_HAS_MOVED). */
int db_file_moved(struct db_conn *conn);
/* The two thresholds in WAL frames (tests; the defaults suit production). Loop thread,
 * before the first job. */
void db_set_wal_limits(struct db *db, int bg_pages, int max_pages);
/* The background checkpoint's trigger, pure (exposed for its table test): bg_pages frames
 * committed since the last checkpoint copied up to copied_pages (a long WAL alone is not
 * enough: under a steady stream of writes it never starts over, and one checkpoint per COMMIT
 * cost the writes' CPU and the disk's syncs), or, in the last quarter before max_pages, any
 * new frame (the writer's own checkpoint at the limit then finds little to copy). */
int db_checkpoint_due(int wal_pages, int copied_pages, int bg_pages, int max_pages);
/* Refuses new jobs; drops the queued reads nobody wants any more (db_read_for), closes the
 * connections once the other queued jobs are done (the loop must keep running until then),
 * then frees db and calls cb (may be NULL). */
void db_close(struct db *db, void (*cb)(void *arg), void *arg);

/* Helpers for work functions (pool thread, the job's connection). The SQL is SQLite's dialect
 * (the schema's own); on PostgreSQL it is translated once per connection and statement
 * (db/dialect.h). db_exec runs statements without results or parameters: 0 or a db_error. */
int db_exec(struct db_conn *conn, const char *sql);
/* Prepared-statement cache per connection (keyed by the SQL's pointer and text, released by
 * db_close): returns a reset statement with cleared bindings, owned by the connection (do not
 * free). The next db_stmt with the same SQL on the connection resets it again, so do not
 * nest two uses of one SQL text. NULL (logged) if it does not compile. */
struct db_stmt *db_stmt(struct db_conn *conn, const char *sql);
/* The next row: DB_ROW, DB_DONE (no more rows; an INSERT/UPDATE/DELETE has run), or a
 * db_error (logged; DB_EBUSY, DB_ECONSTRAINT, ...). */
#define DB_ROW 1
#define DB_DONE 0
int db_step(struct db_stmt *st);
/* Done with the statement for now: result released, bindings cleared. Every path that
 * stepped a statement resets it (a SQLite statement left stepping holds its read snapshot). */
void db_reset(struct db_stmt *st);
/* Columns of the current row (after db_step returned DB_ROW), numbered from 0. Integers:
 * SQL NULL reads 0, a boolean 0/1. db_col_str is borrowed until the next db_step or db_reset
 * (NULL for SQL NULL); db_col_text copies it (strdup; NULL for SQL NULL). db_col_is_int: the
 * value is an integer (or boolean), not text or NULL. */
int64_t db_col_int64(struct db_stmt *st, int col);
int db_col_int(struct db_stmt *st, int col);
const char *db_col_str(struct db_stmt *st, int col);
char *db_col_text(struct db_stmt *st, int col);
int db_col_is_null(struct db_stmt *st, int col);
int db_col_is_int(struct db_stmt *st, int col);
/* A db_step result as a status: 0 for a row or the end, else the db_error. */
static inline int db_status(int step_rc)
{
    return step_rc > 0 ? 0 : step_rc;
}
/* Rows changed by the connection's last INSERT, UPDATE or DELETE. */
int64_t db_changes(struct db_conn *conn);

/* Statements with typed parameters, bound in order to ?1..?n, so a repo function states its
 * SQL and values and nothing else:
 *     rc = db_run(conn, "UPDATE relay SET status = ? WHERE id = ?", DB_TEXT(s), DB_INT(now));
 * DB_TEXT(NULL) binds SQL NULL; text is bound without a copy (SQLITE_STATIC), so it must stay
 * valid until the statement is reset (db_run and db_exists reset it before returning). */
struct db_param {
    const char *text;
    int64_t i;
    int is_int;
};
#define DB_TEXT(s) ((struct db_param){.text = (s)})
#define DB_INT(v) ((struct db_param){.i = (int64_t)(v), .is_int = 1})
#define DB_PARAMS_(...)                                                                            \
    (const struct db_param[]){__VA_ARGS__},                                                        \
        sizeof((const struct db_param[]){__VA_ARGS__}) / sizeof(struct db_param)
/* db_stmt with the parameters bound: ready to step, or NULL (logged). */
struct db_stmt *db_query_params(struct db_conn *conn, const char *sql, const struct db_param *p,
                                size_t n);
#define db_query(conn, sql, ...) db_query_params(conn, sql, DB_PARAMS_(__VA_ARGS__))
/* Steps the statement to its end (INSERT, UPDATE, DELETE): 0 or a db_error. */
int db_run_params(struct db_conn *conn, const char *sql, const struct db_param *p, size_t n);
#define db_run(conn, sql, ...) db_run_params(conn, sql, DB_PARAMS_(__VA_ARGS__))
/* 1 if the query returns a row, 0 if none, or a db_error. */
int db_exists_params(struct db_conn *conn, const char *sql, const struct db_param *p, size_t n);
#define db_exists(conn, sql, ...) db_exists_params(conn, sql, DB_PARAMS_(__VA_ARGS__))

#endif
