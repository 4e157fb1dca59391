/* The engine-neutral statement API of db/db.h over SQLite (here) or PostgreSQL (db/pg.c),
 * and opening, closing and migrating one connection. */
#include "db/conn.h"
#include "db/walbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db/migrations.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/util.h"

/* A sqlite3 result code as a db_error, logging SQLite's message where it is news. */
static int db_rc(sqlite3 *conn, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CONSTRAINT:
        LOG_DEBUG("sqlite constraint: %s", sqlite3_errmsg(conn));
        return DB_ECONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        LOG_WARN("sqlite busy: %s", conn ? sqlite3_errmsg(conn) : "?");
        return DB_EBUSY;
    case SQLITE_FULL:
        return DB_EFULL; /* logged once by note_storage */
    case SQLITE_READONLY:
        return DB_EREADONLY;
    default:
        LOG_ERROR("sqlite error %d: %s", rc, conn ? sqlite3_errmsg(conn) : "?");
        return DB_EGENERIC;
    }
}

static int file_moved(sqlite3 *conn)
{
    int moved = 0;
    return sqlite3_file_control(conn, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved;
}

static int exec_raw(sqlite3 *conn, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(conn, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_CONSTRAINT && (rc & 0xff) != SQLITE_BUSY)
        LOG_ERROR("sqlite exec failed: %s", err ? err : "?");
    sqlite3_free(err);
    if ((rc & 0xff) == SQLITE_BUSY)
        return DB_EBUSY;
    if (rc == SQLITE_OK)
        return 0;
    return (rc & 0xff) == SQLITE_CONSTRAINT ? DB_ECONSTRAINT : DB_EGENERIC;
}

int db_exec(struct db_conn *conn, const char *sql)
{
    return conn->engine == DB_PG ? pg_exec(conn, sql) : exec_raw(conn->h, sql);
}

static sqlite3_stmt *prepare(sqlite3 *conn, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        LOG_ERROR("sqlite prepare failed: %s", sqlite3_errmsg(conn));
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* The statement for sql: by pointer first (string literals, the common case), then by text. */
static struct db_stmt *find_stmt(struct db_conn *c, const char *sql)
{
    for (size_t i = 0; i < c->n_stmts; i++)
        if (c->stmts[i]->key == sql && strcmp(c->stmts[i]->sql, sql) == 0)
            return c->stmts[i];
    for (size_t i = 0; i < c->n_stmts; i++)
        if (strcmp(c->stmts[i]->sql, sql) == 0) {
            c->stmts[i]->key = sql;
            return c->stmts[i];
        }
    return NULL;
}

static void free_stmt(struct db_stmt *st)
{
    if (st->st)
        sqlite3_finalize(st->st);
    if (st->res)
        PQclear(st->res);
    free(st->pg_sql);
    free(st->sql);
    free(st);
}

static struct db_stmt *add_stmt(struct db_conn *c, const char *sql)
{
    struct db_stmt *st = xcalloc(1, sizeof(*st));
    *st = (struct db_stmt){.c = c, .key = sql, .sql = xstrdup(sql), .index = (int)c->n_stmts};
    int ok = c->engine == DB_PG ? pg_prepare(st) == 0 : (st->st = prepare(c->h, sql)) != NULL;
    if (!ok) {
        free_stmt(st);
        return NULL;
    }
    if (c->n_stmts == c->cap_stmts) {
        c->cap_stmts = c->cap_stmts ? 2 * c->cap_stmts : 64;
        c->stmts = xrealloc(c->stmts, c->cap_stmts * sizeof(*c->stmts));
    }
    c->stmts[c->n_stmts++] = st;
    return st;
}

struct db_stmt *db_stmt(struct db_conn *conn, const char *sql)
{
    struct db_stmt *st = find_stmt(conn, sql);
    if (!st)
        st = add_stmt(conn, sql);
    if (st)
        db_reset(st);
    return st;
}

struct db_stmt *db_query_params(struct db_conn *conn, const char *sql, const struct db_param *p,
                                size_t n)
{
    struct db_stmt *st = db_stmt(conn, sql);
    if (st && conn->engine == DB_PG) {
        pg_bind(st, p, n);
        return st;
    }
    for (size_t i = 0; st && i < n; i++) {
        int k = (int)i + 1;
        if (p[i].is_int)
            sqlite3_bind_int64(st->st, k, p[i].i);
        else if (p[i].text)
            sqlite3_bind_text(st->st, k, p[i].text, -1, SQLITE_STATIC);
        /* else: NULL, as db_stmt cleared the bindings */
    }
    return st;
}

int db_step(struct db_stmt *st)
{
    if (st->c->engine == DB_PG)
        return pg_step(st);
    int rc = sqlite3_step(st->st);
    if (rc == SQLITE_ROW)
        return DB_ROW;
    return rc == SQLITE_DONE ? DB_DONE : db_rc(st->c->h, rc);
}

void db_reset(struct db_stmt *st)
{
    if (st->c->engine == DB_PG) {
        pg_reset(st);
        return;
    }
    sqlite3_reset(st->st);
    sqlite3_clear_bindings(st->st);
}

/* PostgreSQL sends every value as text: integers in decimal, booleans as t/f. */
int64_t db_col_int64(struct db_stmt *st, int col)
{
    if (st->c->engine == DB_SQLITE)
        return sqlite3_column_int64(st->st, col);
    const char *v = pg_col(st, col);
    if (!v)
        return 0;
    return v[0] == 't' ? 1 : v[0] == 'f' ? 0 : strtoll(v, NULL, 10);
}

int db_col_int(struct db_stmt *st, int col)
{
    return (int)db_col_int64(st, col);
}

const char *db_col_str(struct db_stmt *st, int col)
{
    if (st->c->engine == DB_PG)
        return pg_col(st, col);
    return (const char *)sqlite3_column_text(st->st, col);
}

char *db_col_text(struct db_stmt *st, int col)
{
    const char *t = db_col_str(st, col);
    return t ? xstrdup(t) : NULL;
}

int db_col_is_null(struct db_stmt *st, int col)
{
    if (st->c->engine == DB_PG)
        return pg_col(st, col) == NULL;
    return sqlite3_column_type(st->st, col) == SQLITE_NULL;
}

int db_col_is_int(struct db_stmt *st, int col)
{
    if (st->c->engine == DB_PG)
        return pg_col_is_int(st, col);
    return sqlite3_column_type(st->st, col) == SQLITE_INTEGER;
}

int64_t db_changes(struct db_conn *conn)
{
    return conn->engine == DB_PG ? conn->changes : sqlite3_changes64(conn->h);
}

/* One step of the bound statement, which is then reset: DB_ROW, DB_DONE or a db_error. */
static int step_once(struct db_conn *conn, const char *sql, const struct db_param *p, size_t n)
{
    struct db_stmt *st = db_query_params(conn, sql, p, n);
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    db_reset(st);
    return rc;
}

int db_run_params(struct db_conn *conn, const char *sql, const struct db_param *p, size_t n)
{
    int rc = step_once(conn, sql, p, n);
    return rc == DB_ROW ? 0 : rc;
}

int db_exists_params(struct db_conn *conn, const char *sql, const struct db_param *p, size_t n)
{
    return step_once(conn, sql, p, n);
}

/* ---- connections and migrations (start-up, loop thread) ---- */

/* ---- connections and migrations ---- */

static int mkdir_parents(const char *path)
{
    char *dir = xstrdup(path);
    int rc = 0;
    for (char *p = dir + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    free(dir);
    return rc;
}

enum db_engine conn_engine_of(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0
               ? DB_PG
               : DB_SQLITE;
}

/* "sqlite://PATH", "sqlite:PATH" or a bare path: the file's path. */
static const char *sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite://", 9) == 0)
        return url + 9;
    return strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
}

/* Connections are checked out on the loop thread and handed to exactly one pool thread per
 * job, so SQLITE_OPEN_NOMUTEX is safe: no connection is ever used by two threads at once. */
static int sqlite_open(struct db_conn *c, const char *path, enum conn_role role)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (role == CONN_WRITER && mkdir_parents(path) != 0) {
        LOG_ERROR("cannot create the directory of database %s", path);
        return DB_EGENERIC;
    }
    if (walbuf_register() != 0) {
        LOG_ERROR("cannot register the SQLite VFS %s", WALBUF_VFS);
        return DB_EGENERIC;
    }
    if (sqlite3_open_v2(path, &c->h, flags, WALBUF_VFS) != SQLITE_OK) {
        LOG_ERROR("cannot open database %s: %s", path, c->h ? sqlite3_errmsg(c->h) : "?");
        sqlite3_close(c->h);
        c->h = NULL;
        return DB_EGENERIC;
    }
    sqlite3_busy_timeout(c->h, CONN_BUSY_TIMEOUT_MS);
    /* The writer starts FULL (migrations, the robot key); each write batch then picks its
     * level (conn_set_durability). temp_store=MEMORY keeps the statement journal of each
     * job's SAVEPOINT in memory: spilled to a temporary file it cost ~25 pwrite calls per
     * job. No journal_size_limit: truncating a WAL of up to 64 MiB that was still being
     * written back stalled the COMMIT that restarted it (p99 20 ms); the file keeps its size
     * until the last connection closes and deletes it. The checkpoint connection syncs as
     * NORMAL does (the WAL before copying, the database after). Readers never write. */
    static const char *const pragmas[] = {
        [CONN_READER] = "PRAGMA foreign_keys=ON; PRAGMA query_only=ON;",
        [CONN_WRITER] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                        " PRAGMA analysis_limit=400;",
        [CONN_CHECKPOINT] = "PRAGMA synchronous=NORMAL;",
    };
    return exec_raw(c->h, pragmas[role]);
}

int conn_open(struct db_conn *c, const char *url, enum conn_role role)
{
    memset(c, 0, sizeof(*c));
    c->engine = conn_engine_of(url);
    c->sync_full = role == CONN_WRITER;
    if (c->engine == DB_PG)
        return pg_open(c, url, role);
    return sqlite_open(c, sqlite_path(url), role);
}

void conn_close(struct db_conn *c)
{
    for (size_t i = 0; i < c->n_stmts; i++)
        free_stmt(c->stmts[i]);
    free(c->stmts);
    c->stmts = NULL;
    c->n_stmts = c->cap_stmts = 0;
    if (c->engine == DB_PG)
        pg_close(c);
    else if (c->h)
        sqlite3_close(c->h);
    c->h = NULL;
}

int conn_tx(struct db_conn *c, const char *sql)
{
    struct db_stmt *st = db_stmt(c, sql);
    if (!st)
        return DB_EGENERIC;
    if (c->engine == DB_PG)
        return pg_tx(st, strncmp(sql, "BEGIN", 5) == 0 || strncmp(sql, "SAVEPOINT", 9) == 0 ||
                             strncmp(sql, "RELEASE", 7) == 0);
    int rc = sqlite3_step(st->st);
    sqlite3_reset(st->st);
    if (rc == SQLITE_DONE)
        return 0;
    return (rc & 0xff) == SQLITE_BUSY ? DB_EBUSY : db_rc(c->h, rc);
}

void conn_end_reads(struct db_conn *c)
{
    if (c->engine == DB_PG) {
        for (size_t i = 0; i < c->n_stmts; i++)
            if (c->stmts[i]->res)
                pg_reset(c->stmts[i]);
        return;
    }
    sqlite3 *h = c->h;
    if (sqlite3_txn_state(h, NULL) == SQLITE_TXN_NONE)
        return;
    for (sqlite3_stmt *st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st))
        sqlite3_reset(st);
    if (!sqlite3_get_autocommit(h))
        conn_tx(c, "COMMIT"); /* refused by the batch's COMMIT while a statement was stepping */
}

int conn_in_tx(struct db_conn *c)
{
    if (c->engine == DB_PG) /* anything deferred is in a transaction or its BEGIN */
        return c->n_deferred > 0 || PQtransactionStatus(c->pg) != PQTRANS_IDLE;
    return !sqlite3_get_autocommit(c->h);
}

/* SQLite: synchronous=FULL (an fsync per COMMIT) or NORMAL (WAL written to the OS before COMMIT
 * returns: a kill -9 loses nothing, a power loss may undo the last commits); SQLite refuses
 * to change it inside a transaction, hence between batches. PostgreSQL: synchronous_commit on
 * or off; off still survives a crash of this process (the server has the commit), and a
 * crash of the server undoes at most the last few hundred milliseconds of such commits. */
int conn_set_durability(struct db_conn *c, int full)
{
    if (full == c->sync_full)
        return 0;
    int rc;
    if (c->engine == DB_PG)
        rc = pg_exec(c, full ? "SET synchronous_commit = on" : "SET synchronous_commit = off");
    else
        rc = exec_raw(c->h, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (rc == 0)
        c->sync_full = full;
    return rc;
}

/* own_tx: each migration in a transaction of its own, else in the caller's. */
static int apply_migration(struct db_conn *c, const struct migration *m, int own_tx)
{
    int rc = own_tx ? db_exec(c, "BEGIN IMMEDIATE") : 0;
    if (rc != 0)
        return rc;
    if ((rc = db_exec(c, m->sql)) == 0)
        rc = db_run(c, "INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)",
                    DB_TEXT(m->name), DB_INT(clock_now()));
    if (own_tx)
        db_exec(c, rc == 0 ? "COMMIT" : "ROLLBACK");
    if (rc == 0)
        LOG_INFO("database migration %s applied", m->name);
    return rc;
}

static int migrate_locked(struct db_conn *c, int own_tx)
{
    int rc = db_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)");
    for (size_t i = 0; i < n_migrations && rc == 0; i++) {
        int done = db_exists(c, "SELECT 1 FROM schema_migrations WHERE name = ?",
                             DB_TEXT(migrations[i].name));
        if (done < 0)
            rc = done;
        else if (!done)
            rc = apply_migration(c, &migrations[i], own_tx);
    }
    return rc;
}

/* SQLite: the writer connection is the only one that migrates (the file's write lock does the
 * rest). PostgreSQL: a session advisory lock around the whole pass, so a second instance
 * starting at the same time waits, then finds every migration applied. */
int conn_migrate(struct db_conn *c)
{
    int rc = c->engine == DB_PG ? pg_lock_schema(c, 1) : 0;
    if (rc != 0)
        return rc;
    rc = migrate_locked(c, 1);
    if (c->engine == DB_PG) {
        int unlock = pg_lock_schema(c, 0);
        rc = rc ? rc : unlock;
    }
    return rc;
}

int db_migrate_tx(struct db_conn *c)
{
    if (c->engine == DB_PG) {
        int rc = pg_exec(c, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK_KEY ")");
        if (rc != 0)
            return rc;
    }
    return migrate_locked(c, 0);
}

int db_conn_open(struct db_conn **out, const char *url, int migrate_it)
{
    struct db_conn *c = xcalloc(1, sizeof(*c));
    int rc = conn_open(c, url, CONN_WRITER);
    if (rc == 0 && migrate_it)
        rc = conn_migrate(c);
    if (rc != 0) {
        conn_close(c);
        free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

void db_conn_close(struct db_conn *conn)
{
    if (!conn)
        return;
    conn_close(conn);
    free(conn);
}

int db_file_moved(struct db_conn *conn)
{
    return conn->engine == DB_SQLITE && file_moved(conn->h);
}

struct sqlite3 *db_conn_sqlite(struct db_conn *conn)
{
    return conn->engine == DB_SQLITE ? conn->h : NULL;
}

struct pg_conn *db_conn_pg(struct db_conn *conn)
{
    return conn->engine == DB_PG ? conn->pg : NULL;
}
