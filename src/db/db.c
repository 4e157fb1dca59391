#include "db/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "db/migrations.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

/* Connections are checked out on the loop thread and handed to exactly one pool thread per
 * job, so SQLITE_OPEN_NOMUTEX is safe: no connection is ever used by two threads at once.
 * The writer, the checkpointer and the readers stay below the pool size main.c sets (8), so
 * DNS, file work and NIP-98 verification keep threads. */
#define DB_READERS 4
/* Reads that take long (list pages, db_read_list) hold at most this many readers at once:
 * the others stay free for point reads, which are also handed out first. With every reader
 * open to lists, 8 clients listing at 100,000 relays put GET /relays/:id behind them (p50
 * 0.7 ms -> 119 ms). */
#define DB_LIST_READERS 2
#define BUSY_RETRIES 5
/* Write jobs waiting together are committed together (group commit): one fsync for up to
 * this many, each job inside its own savepoint. */
#define WRITE_BATCH 64
/* Read jobs waiting for a connection are run back to back by one pool thread (one hand-off
 * to the pool and one back per batch instead of per job). */
#define READ_BATCH 16
/* The writer never checkpoints inside its own COMMIT: that put two fsyncs and a 4 MB copy in
 * front of every ~200th POST /relays (p99 13 ms; 7 ms without). Once the WAL holds CKPT_PAGES
 * frames, a PASSIVE checkpoint runs on its own connection on a pool thread, concurrently with
 * the writer. The WAL starts over only when a checkpoint has copied all of it, which a steady
 * stream of writes can postpone forever; past CKPT_PAGES_MAX the writer therefore checkpoints
 * itself after its COMMIT (by then only the frames since the last background checkpoint are
 * left to copy), which bounds the WAL file. */
#define CKPT_PAGES 1000
#define CKPT_PAGES_MAX 16000
/* A DB_CRASH_SAFE commit is in the OS at once but on disk only once the WAL is synced: a
 * background checkpoint (which syncs the WAL first) runs at most this long after one, so a
 * power loss can undo about a second of such writes, not an unbounded stretch of them. */
#define SYNC_DELAY_MS 1000
/* The query planner's statistics: PRAGMA optimize (ANALYZE where SQLite thinks it pays,
 * bounded by analysis_limit) runs on the writer once an hour and before it closes, as
 * SQLite recommends for long-lived connections. The statements must plan right without
 * statistics anyway (a fresh database has none). */
#define OPTIMIZE_EVERY_MS (3600 * 1000)

/* A statement of the cache: the caller's pointer is the fast key, the copied text the sure
 * one (a caller's reused buffer must not hit a stale statement). */
struct db_stmt {
    struct db_conn *c;
    const char *key; /* the caller's string: pointer identity only */
    char *sql;       /* its text when prepared */
    sqlite3_stmt *st;
};

struct db_conn {
    sqlite3 *h;
    int in_use;
    struct db_stmt **stmts; /* every statement prepared on the connection */
    size_t n_stmts, cap_stmts;
    int sync_full; /* the writer's current PRAGMA synchronous: 1 FULL, 0 NORMAL */
};

/* A job's life (asserted in debug builds): queued -> running (on a pool thread) -> done. */
enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };
static const unsigned job_next[] = {
    [JOB_QUEUED] = 1u << JOB_RUNNING,
    [JOB_RUNNING] = 1u << JOB_DONE,
    [JOB_DONE] = 0,
};

struct db_job {
    uv_work_t req;
    struct db *db;
    struct db_conn *conn;
    db_work_fn *work;
    db_done_cb *done;
    void *arg;
    int is_write;
    int is_list; /* db_read_list */
    enum db_durability durability;
    int rc;
    enum job_state state;
    struct db_job *next;
};

static void job_set_state(struct db_job *job, enum job_state to)
{
    (void)job_next; /* read only by the assertion */
    DEBUG_ASSERT_TRANSITION(job_next, job->state, to);
    job->state = to;
}

struct job_fifo {
    struct db_job *head, *tail;
    size_t n;
};

struct db {
    uv_loop_t *loop;
    struct db_conn writer;
    struct db_conn readers[DB_READERS];
    struct db_conn ckpt; /* checkpoints only */
    uv_work_t ckpt_req;
    int ckpt_running, ckpt_rc, ckpt_log, ckpt_copied;
    uv_timer_t sync_timer;     /* SYNC_DELAY_MS after an unsynced commit (unref'd) */
    uv_timer_t optimize_timer; /* every OPTIMIZE_EVERY_MS (unref'd) */
    uv_idle_t dispatch_idle;   /* started by submit: dispatch at the loop's next idle phase */
    int timers_open;           /* the two timers and dispatch_idle, until closed */
    int optimize_queued;
    int unsynced; /* a DB_CRASH_SAFE batch committed since the last checkpoint began */
    /* Frames in the WAL after the last COMMIT: set by the writer's wal hook on the pool
     * thread holding the writer, copied to stats.wal_pages by job_after (loop thread). */
    int writer_wal_pages;
    int wal_bg_pages, wal_max_pages; /* CKPT_PAGES, CKPT_PAGES_MAX unless a test set them */
    uint64_t writer_checkpoints;     /* the writer's own (pool thread holding the writer) */
    struct db_stats stats;           /* loop thread */
    struct job_fifo wait_write, wait_read, wait_list;
    int lists_running; /* readers holding a db_read_list job */
    int storage_error; /* db_storage_error; loop thread */
    size_t depth;      /* queued + running */
    int closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

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
    return exec_raw(conn->h, sql);
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

static struct db_stmt *add_stmt(struct db_conn *c, const char *sql)
{
    sqlite3_stmt *raw = prepare(c->h, sql);
    if (!raw)
        return NULL;
    if (c->n_stmts == c->cap_stmts) {
        c->cap_stmts = c->cap_stmts ? 2 * c->cap_stmts : 64;
        c->stmts = xrealloc(c->stmts, c->cap_stmts * sizeof(*c->stmts));
    }
    struct db_stmt *st = xcalloc(1, sizeof(*st));
    *st = (struct db_stmt){.c = c, .key = sql, .sql = xstrdup(sql), .st = raw};
    c->stmts[c->n_stmts++] = st;
    return st;
}

struct db_stmt *db_stmt(struct db_conn *conn, const char *sql)
{
    struct db_stmt *st = find_stmt(conn, sql);
    if (!st)
        st = add_stmt(conn, sql);
    if (st) {
        sqlite3_reset(st->st);
        sqlite3_clear_bindings(st->st);
    }
    return st;
}

struct db_stmt *db_query_params(struct db_conn *conn, const char *sql, const struct db_param *p,
                                size_t n)
{
    struct db_stmt *st = db_stmt(conn, sql);
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
    int rc = sqlite3_step(st->st);
    if (rc == SQLITE_ROW)
        return DB_ROW;
    return rc == SQLITE_DONE ? DB_DONE : db_rc(st->c->h, rc);
}

void db_reset(struct db_stmt *st)
{
    sqlite3_reset(st->st);
    sqlite3_clear_bindings(st->st);
}

int64_t db_col_int64(struct db_stmt *st, int col)
{
    return sqlite3_column_int64(st->st, col);
}

int db_col_int(struct db_stmt *st, int col)
{
    return sqlite3_column_int(st->st, col);
}

const char *db_col_str(struct db_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st->st, col);
}

char *db_col_text(struct db_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st->st, col);
    return t ? xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st->st, col)) : NULL;
}

int db_col_is_null(struct db_stmt *st, int col)
{
    return sqlite3_column_type(st->st, col) == SQLITE_NULL;
}

int db_col_is_int(struct db_stmt *st, int col)
{
    return sqlite3_column_type(st->st, col) == SQLITE_INTEGER;
}

int64_t db_changes(struct db_conn *conn)
{
    return sqlite3_changes64(conn->h);
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

enum conn_role { CONN_READER, CONN_WRITER, CONN_CHECKPOINT };

static int conn_open(struct db_conn *c, const char *path, enum conn_role role)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    memset(c, 0, sizeof(*c));
    if (sqlite3_open_v2(path, &c->h, flags, NULL) != SQLITE_OK) {
        LOG_ERROR("cannot open database %s: %s", path, c->h ? sqlite3_errmsg(c->h) : "?");
        sqlite3_close(c->h);
        c->h = NULL;
        return DB_EGENERIC;
    }
    sqlite3_busy_timeout(c->h, 5000);
    /* The writer starts FULL (migrations, the robot key); each write batch then picks its
     * level (set_durability). temp_store=MEMORY keeps the statement journal of each job's
     * SAVEPOINT in memory: spilled to a temporary file it cost ~25 pwrite calls per job.
     * No journal_size_limit: truncating a WAL of up to 64 MiB that was still being written
     * back stalled the COMMIT that restarted it (p99 20 ms); the file keeps its size until
     * the last connection closes and deletes it. The checkpoint connection syncs as NORMAL
     * does (the WAL before copying, the database after). Readers never write. */
    static const char *const pragmas[] = {
        [CONN_READER] = "PRAGMA foreign_keys=ON; PRAGMA query_only=ON;",
        [CONN_WRITER] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                        " PRAGMA analysis_limit=400;",
        [CONN_CHECKPOINT] = "PRAGMA synchronous=NORMAL;",
    };
    c->sync_full = role == CONN_WRITER;
    return exec_raw(c->h, pragmas[role]);
}

static void conn_close(struct db_conn *c)
{
    for (size_t i = 0; i < c->n_stmts; i++) {
        sqlite3_finalize(c->stmts[i]->st);
        free(c->stmts[i]->sql);
        free(c->stmts[i]);
    }
    free(c->stmts);
    c->stmts = NULL;
    c->n_stmts = c->cap_stmts = 0;
    if (!c->h)
        return;
    sqlite3_close(c->h);
    c->h = NULL;
}

static int apply_migration(struct db_conn *c, const struct migration *m)
{
    int rc = db_exec(c, "BEGIN IMMEDIATE");
    if (rc != 0)
        return rc;
    if ((rc = db_exec(c, m->sql)) == 0)
        rc = db_run(c, "INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)",
                    DB_TEXT(m->name), DB_INT(clock_now()));
    db_exec(c, rc == 0 ? "COMMIT" : "ROLLBACK");
    if (rc == 0)
        LOG_INFO("database migration %s applied", m->name);
    return rc;
}

/* The migrations schema_migrations does not list yet, each in its own transaction. */
static int migrate(struct db_conn *c)
{
    int rc = db_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)");
    for (size_t i = 0; i < n_migrations && rc == 0; i++) {
        int done = db_exists(c, "SELECT 1 FROM schema_migrations WHERE name = ?",
                             DB_TEXT(migrations[i].name));
        if (done < 0)
            rc = done;
        else if (!done)
            rc = apply_migration(c, &migrations[i]);
    }
    return rc;
}

/* "sqlite://PATH", "sqlite:PATH" or a bare path: the file's path. */
static const char *sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite://", 9) == 0)
        return url + 9;
    return strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
}

int db_conn_open(struct db_conn **out, const char *url, int migrate_it)
{
    struct db_conn *c = xcalloc(1, sizeof(*c));
    int rc = conn_open(c, sqlite_path(url), CONN_WRITER);
    if (rc == 0 && migrate_it)
        rc = migrate(c);
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

static void close_all(struct db *db)
{
    if (db->writer.h) /* statistics for the next start (see OPTIMIZE_EVERY_MS) */
        exec_raw(db->writer.h, "PRAGMA optimize");
    conn_close(&db->writer);
    conn_close(&db->ckpt);
    for (int i = 0; i < DB_READERS; i++)
        conn_close(&db->readers[i]);
}

/* Pool thread holding the writer, after each COMMIT (see CKPT_PAGES). */
static int wal_hook(void *arg, sqlite3 *h, const char *name, int pages)
{
    struct db *db = arg;
    int log = 0, copied = 0;
    if (pages >= db->wal_max_pages &&
        sqlite3_wal_checkpoint_v2(h, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) == SQLITE_OK) {
        db->writer_checkpoints++;
        /* All copied: the next transaction starts the WAL over. */
        pages = copied == log ? 0 : pages;
    }
    db->writer_wal_pages = pages;
    return SQLITE_OK;
}

static int optimize_work(struct db_conn *conn, void *arg)
{
    (void)arg;
    return db_exec(conn, "PRAGMA optimize");
}

static void optimize_done(int status, void *arg)
{
    struct db *db = arg;
    db->optimize_queued = 0;
    if (status != 0 && status != DB_ECLOSED)
        LOG_WARN("database: PRAGMA optimize failed (%s)", err_name(status));
}

static void on_optimize_timer(uv_timer_t *t)
{
    struct db *db = container_of(t, struct db, optimize_timer);
    if (!db->optimize_queued && !db->closing)
        db->optimize_queued = db_write(db, DB_CRASH_SAFE, optimize_work, optimize_done, db) == 0;
}

int db_open(struct db **out, uv_loop_t *loop, const char *path)
{
    ASSERT_LOOP_THREAD();
    struct db *db = xcalloc(1, sizeof(*db));
    int rc = DB_EGENERIC;
    db->loop = loop;
    db->wal_bg_pages = CKPT_PAGES;
    db->wal_max_pages = CKPT_PAGES_MAX;
    /* SQLite's allocation statistics take a global mutex on every malloc and free, shared by
     * all pool threads; nothing reads them. Only possible before SQLite initializes (the
     * first db_open of the process): later calls fail harmlessly. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (!sqlite3_threadsafe() || mkdir_parents(path) != 0) {
        LOG_ERROR("cannot create the directory of database %s", path);
        goto fail;
    }
    if ((rc = conn_open(&db->writer, path, CONN_WRITER)) != 0 || (rc = migrate(&db->writer)) != 0 ||
        (rc = conn_open(&db->ckpt, path, CONN_CHECKPOINT)) != 0)
        goto fail;
    for (int i = 0; i < DB_READERS; i++)
        if ((rc = conn_open(&db->readers[i], path, CONN_READER)) != 0)
            goto fail;
    sqlite3_wal_hook(db->writer.h, wal_hook, db); /* replaces SQLite's own autocheckpoint */
    /* What SQLite recommends on opening a long-lived connection (0x10000: every table, on
     * SQLite >= 3.46; older versions ignore the bit). */
    exec_raw(db->writer.h, "PRAGMA optimize=0x10002");
    uv_timer_init(loop, &db->sync_timer);
    uv_unref((uv_handle_t *)&db->sync_timer); /* never keeps the loop alive by itself */
    uv_timer_init(loop, &db->optimize_timer);
    uv_unref((uv_handle_t *)&db->optimize_timer);
    uv_timer_start(&db->optimize_timer, on_optimize_timer, OPTIMIZE_EVERY_MS, OPTIMIZE_EVERY_MS);
    uv_idle_init(loop, &db->dispatch_idle);
    db->dispatch_idle.data = db;
    db->timers_open = 3;
    *out = db;
    return 0;
fail:
    close_all(db);
    free(db);
    return rc;
}

/* ---- jobs ---- */

/* Pool thread: one transaction-control statement, prepared once per connection (sqlite3_exec
 * would compile it again every time: two per job). DB_EBUSY without a log line: the batch
 * retry says it. */
static int tx_step(struct db_conn *c, const char *sql)
{
    struct db_stmt *st = db_stmt(c, sql);
    int rc = st ? sqlite3_step(st->st) : SQLITE_ERROR;
    if (st)
        sqlite3_reset(st->st);
    if (rc == SQLITE_DONE)
        return 0;
    return (rc & 0xff) == SQLITE_BUSY ? DB_EBUSY : db_rc(c->h, rc);
}

/* Pool thread: one attempt of a batch of write jobs (first and its ->next chain) in one
 * BEGIN IMMEDIATE transaction. Each job runs inside its own savepoint, so a job that fails
 * leaves nothing behind while the others still commit; the COMMIT (one fsync) makes them all
 * durable before any done callback runs. Returns 0, or the error that undid the whole batch
 * (DB_EBUSY from any job: the batch is run again as a whole). */
static int write_batch_once(struct db_job *first, struct db_conn *c)
{
    sqlite3 *h = c->h;
    for (struct db_job *j = first; j; j = j->next)
        j->rc = 0;
    int rc = tx_step(c, "BEGIN IMMEDIATE");
    for (struct db_job *j = first; rc == 0 && j; j = j->next) {
        if ((rc = tx_step(c, "SAVEPOINT job")) != 0)
            break;
        j->rc = j->work(c, j->arg);
        if (j->rc == DB_EBUSY)
            rc = DB_EBUSY;
        else if (j->rc != 0 && !sqlite3_get_autocommit(h))
            tx_step(c, "ROLLBACK TO job");
        /* Some errors make SQLite end the transaction itself: the batch is lost. */
        if (rc == 0 && sqlite3_get_autocommit(h))
            rc = DB_EGENERIC;
        if (rc == 0)
            rc = tx_step(c, "RELEASE job");
    }
    /* A file deleted or replaced under us takes every commit with it (a restart opens the
     * new or empty path): nothing may be acknowledged. */
    if (rc == 0 && file_moved(h))
        rc = DB_EMOVED;
    if (rc == 0)
        rc = tx_step(c, "COMMIT");
    if (rc != 0 && !sqlite3_get_autocommit(h))
        tx_step(c, "ROLLBACK");
    return rc;
}

/* Pool thread: the batch commits with synchronous=FULL if any of its jobs asked for
 * DB_POWER_SAFE, else NORMAL. In WAL mode NORMAL still writes the WAL (to the OS) before
 * COMMIT returns, so a kill -9 loses nothing; only a power loss or kernel crash may roll back
 * the last commits, which FULL prevents with an fsync per COMMIT. A FULL commit also makes
 * every earlier NORMAL one durable (one WAL, in order). SQLite refuses to change the level
 * inside a transaction, hence here, between batches. */
static int set_durability(struct db_conn *c, const struct db_job *first)
{
    int full = 0;
    for (const struct db_job *j = first; j && !full; j = j->next)
        full = j->durability == DB_POWER_SAFE;
    if (full == c->sync_full)
        return 0;
    int rc = exec_raw(c->h, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (rc == 0)
        c->sync_full = full;
    return rc;
}

/* Pool thread: runs a batch, again as a whole while the file is locked by another process,
 * and gives every job whose own work succeeded the batch's result. */
static void write_batch(struct db_job *first, struct db_conn *c)
{
    int rc = set_durability(first->conn, first);
    for (int attempt = 1; attempt <= BUSY_RETRIES && rc == 0; attempt++) {
        if ((rc = write_batch_once(first, c)) != DB_EBUSY)
            break;
        LOG_WARN("database locked (attempt %d of %d)", attempt, BUSY_RETRIES);
        if (attempt < BUSY_RETRIES)
            rc = 0;
    }
    for (struct db_job *j = first; j; j = j->next)
        if (rc != 0 && (j->rc == 0 || j->rc == DB_EBUSY))
            j->rc = rc;
}

/* Pool thread: a hand-off of several reads runs in one read transaction. SQLite takes and
 * drops its locks (fcntl on the database file and the WAL index) per transaction: per read,
 * that was a tenth of a point read's CPU. The reads of one hand-off were all submitted before
 * it started, so a write acknowledged before any of them is in the snapshot they share.
 * A statement a job left stepping would keep that snapshot (the read transaction) open into
 * the connection's next reads: every statement is reset then, so none outlives its hand-off. */
static void read_batch(struct db_job *first, struct db_conn *c)
{
    sqlite3 *h = c->h;
    int tx = first->next != NULL && tx_step(c, "BEGIN") == 0;
    for (struct db_job *j = first; j; j = j->next)
        j->rc = j->work(c, j->arg);
    if (tx)
        tx_step(c, "COMMIT");
    if (sqlite3_txn_state(h, NULL) == SQLITE_TXN_NONE)
        return;
    for (sqlite3_stmt *st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st))
        sqlite3_reset(st);
    if (!sqlite3_get_autocommit(h))
        tx_step(c, "COMMIT"); /* refused above while a statement was stepping */
}

/* Pool thread: touches only the job (and its batch) and its connection. */
static void job_work(uv_work_t *req)
{
    struct db_job *job = container_of(req, struct db_job, req);
    struct db_conn *c = job->conn;
    ASSERT_POOL_THREAD();
    DEBUG_ASSERT(job->state == JOB_RUNNING);
    if (!job->is_write)
        read_batch(job, c);
    else
        write_batch(job, c);
}

static void fifo_push(struct job_fifo *f, struct db_job *job)
{
    job->next = NULL;
    f->n++;
    if (f->tail)
        f->tail->next = job;
    else
        f->head = job;
    f->tail = job;
}

static struct db_job *fifo_pop(struct job_fifo *f)
{
    struct db_job *job = f->head;
    if (job) {
        f->head = job->next;
        if (!f->head)
            f->tail = NULL;
        job->next = NULL;
        f->n--;
    }
    return job;
}

static struct db_conn *free_reader(struct db *db)
{
    for (int i = 0; i < DB_READERS; i++)
        if (!db->readers[i].in_use)
            return &db->readers[i];
    return NULL;
}

static void job_after(uv_work_t *req, int status);

static void start(struct db *db, struct db_job *job, struct db_conn *c)
{
    c->in_use = 1;
    job->conn = c;
    for (struct db_job *j = job; j; j = j->next)
        job_set_state(j, JOB_RUNNING);
    uv_queue_work(db->loop, &job->req, job_work, job_after);
}

/* Hands waiting jobs to free connections (loop thread). */
static void dispatch(struct db *db)
{
    struct db_conn *c;
    if (!db->writer.in_use && db->wait_write.head) {
        struct db_job *first = fifo_pop(&db->wait_write), *last = first;
        for (int n = 1; n < WRITE_BATCH && db->wait_write.head; n++)
            last = last->next = fifo_pop(&db->wait_write);
        start(db, first, &db->writer);
    }
    while (db->wait_read.head && (c = free_reader(db)) != NULL) {
        /* Share the waiting reads among the free readers (at most READ_BATCH each). */
        size_t share = (db->wait_read.n + DB_READERS - 1) / DB_READERS;
        struct db_job *first = fifo_pop(&db->wait_read), *last = first;
        for (size_t n = 1; n < share && n < READ_BATCH && db->wait_read.head; n++)
            last = last->next = fifo_pop(&db->wait_read);
        start(db, first, c);
    }
    /* Lists after the point reads, one per hand-off (a batch would put one list's time in
     * front of the next), on at most DB_LIST_READERS connections. */
    while (db->wait_list.head && db->lists_running < DB_LIST_READERS &&
           (c = free_reader(db)) != NULL) {
        db->lists_running++;
        start(db, fifo_pop(&db->wait_list), c);
    }
}

static void maybe_finish_close(struct db *db)
{
    if (!db->closing || db->depth > 0 || db->ckpt_running || db->timers_open)
        return;
    void (*cb)(void *) = db->close_cb;
    void *arg = db->close_arg;
    close_all(db);
    free(db);
    if (cb)
        cb(arg);
}

/* ---- background checkpoints (see CKPT_PAGES) ---- */

static void ckpt_work(uv_work_t *req)
{
    struct db *db = container_of(req, struct db, ckpt_req);
    ASSERT_POOL_THREAD();
    db->ckpt_rc = sqlite3_wal_checkpoint_v2(db->ckpt.h, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                            &db->ckpt_log, &db->ckpt_copied);
}

static void arm_sync_timer(struct db *db);

static void ckpt_after(uv_work_t *req, int status)
{
    struct db *db = container_of(req, struct db, ckpt_req);
    db->ckpt_running = 0;
    /* Stopped short (a reader still on old frames, or the writer checkpointing): the WAL
     * may not have been synced, so the timer tries again. */
    if (status != 0 || db->ckpt_rc != SQLITE_OK || db->ckpt_copied < db->ckpt_log)
        db->unsynced = 1;
    arm_sync_timer(db);
    if (status == 0 && db->ckpt_rc == SQLITE_OK)
        db->stats.checkpoints++;
    else if (status == 0 && db->ckpt_rc != SQLITE_BUSY) /* BUSY: the writer was checkpointing */
        LOG_WARN("database checkpoint failed: %s", sqlite3_errstr(db->ckpt_rc));
    maybe_finish_close(db);
}

static void start_checkpoint(struct db *db)
{
    db->ckpt_running = uv_queue_work(db->loop, &db->ckpt_req, ckpt_work, ckpt_after) == 0;
    if (db->ckpt_running)
        db->unsynced = 0; /* it syncs every frame committed so far */
}

static void on_sync_timer(uv_timer_t *t)
{
    struct db *db = container_of(t, struct db, sync_timer);
    if (db->closing || !db->unsynced)
        return;
    if (db->ckpt_running) /* began before the last commit, perhaps: look again later */
        uv_timer_start(&db->sync_timer, on_sync_timer, SYNC_DELAY_MS / 10, 0);
    else
        start_checkpoint(db);
}

/* A checkpoint SYNC_DELAY_MS from now if some commit is not synced yet. */
static void arm_sync_timer(struct db *db)
{
    if (db->unsynced && !db->closing && !uv_is_active((uv_handle_t *)&db->sync_timer))
        uv_timer_start(&db->sync_timer, on_sync_timer, SYNC_DELAY_MS, 0);
}

/* Loop thread, after a write batch. A FULL commit syncs the WAL, and with it every earlier
 * commit. */
static void maybe_checkpoint(struct db *db)
{
    db->stats.wal_pages = (uint64_t)db->writer_wal_pages;
    db->stats.writer_checkpoints = db->writer_checkpoints;
    db->unsynced = !db->writer.sync_full;
    if (db->closing)
        return;
    if (!db->ckpt_running && db->writer_wal_pages >= db->wal_bg_pages)
        start_checkpoint(db);
    else
        arm_sync_timer(db);
}

/* Loop thread: remembers a storage failure (or its end) from a finished job's result. */
static void note_storage(struct db *db, int rc, int is_write)
{
    int was = db->storage_error;
    if (rc == DB_EMOVED || rc == DB_EFULL || rc == DB_EREADONLY) {
        if (was != DB_EMOVED)
            db->storage_error = rc;
    } else if (rc == 0 && is_write && was != DB_EMOVED) {
        db->storage_error = 0;
    }
    if (db->storage_error == was)
        return;
    if (db->storage_error == DB_EMOVED)
        LOG_ERROR("database: the file was deleted or replaced while open: writes are refused "
                  "(503) until a restart; restore the file or the data directory first");
    else if (db->storage_error)
        LOG_ERROR("database: %s: writes are refused until space or write access is back",
                  err_str(db->storage_error));
    else
        LOG_INFO("database: writes work again");
}

int db_storage_error(const struct db *db)
{
    ASSERT_LOOP_THREAD();
    return db->storage_error;
}

void db_set_max_pages(struct db *db, int64_t pages)
{
    ASSERT_LOOP_THREAD();
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)pages);
    exec_raw(db->writer.h, sql);
}

int db_read_only(const struct db *db)
{
    ASSERT_LOOP_THREAD();
    return sqlite3_db_readonly(db->writer.h, "main") == 1;
}

static void job_after(uv_work_t *req, int status)
{
    struct db_job *job = container_of(req, struct db_job, req);
    struct db *db = job->db;
    job->conn->in_use = 0;
    if (job->is_list)
        db->lists_running--;
    if (job->conn == &db->writer)
        maybe_checkpoint(db);
    while (job) { /* a write batch: every job, in order */
        struct db_job *next = job->next;
        db->depth--;
        job_set_state(job, JOB_DONE);
        if (status == 0)
            note_storage(db, job->rc, job->is_write);
        job->done(status == UV_ECANCELED ? DB_ECLOSED : job->rc, job->arg);
        free(job);
        job = next;
    }
    dispatch(db);
    maybe_finish_close(db);
}

enum lane { LANE_READ, LANE_LIST, LANE_WRITE };

/* A job is handed to the pool at the loop's next idle phase, not at submission: the requests
 * read in one pass over the sockets then leave together (one pool hand-off per batch instead
 * of one per request, which cost the loop more than the request's own work). While it is
 * started the loop polls without blocking, so the wait is one loop iteration at most. */
static void on_dispatch_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
    dispatch(h->data);
}

static int submit(struct db *db, db_work_fn *work, db_done_cb *done, void *arg, enum lane lane,
                  enum db_durability durability)
{
    ASSERT_LOOP_THREAD();
    if (db->closing)
        return DB_ECLOSED;
    if (db->depth >= DB_MAX_QUEUED)
        return DB_EQUEUEFULL;
    struct db_job *job = xcalloc(1, sizeof(*job));
    *job = (struct db_job){.db = db,
                           .work = work,
                           .done = done,
                           .arg = arg,
                           .is_write = lane == LANE_WRITE,
                           .is_list = lane == LANE_LIST,
                           .durability = durability};
    db->depth++;
    struct job_fifo *queue = &db->wait_read;
    if (lane == LANE_WRITE)
        queue = &db->wait_write;
    else if (lane == LANE_LIST)
        queue = &db->wait_list;
    fifo_push(queue, job);
    uv_idle_start(&db->dispatch_idle, on_dispatch_idle); /* no-op when started */
    return 0;
}

int db_read(struct db *db, db_work_fn *work, db_done_cb *done, void *arg)
{
    return submit(db, work, done, arg, LANE_READ, DB_CRASH_SAFE);
}

int db_read_list(struct db *db, db_work_fn *work, db_done_cb *done, void *arg)
{
    return submit(db, work, done, arg, LANE_LIST, DB_CRASH_SAFE);
}

int db_write(struct db *db, enum db_durability durability, db_work_fn *work, db_done_cb *done,
             void *arg)
{
    return submit(db, work, done, arg, LANE_WRITE, durability);
}

size_t db_queue_depth(const struct db *db)
{
    ASSERT_LOOP_THREAD();
    return db ? db->depth : 0;
}

void db_set_wal_limits(struct db *db, int bg_pages, int max_pages)
{
    db->wal_bg_pages = bg_pages;
    db->wal_max_pages = max_pages;
}

void db_get_stats(const struct db *db, struct db_stats *out)
{
    *out = db->stats;
    out->checkpointing = db->ckpt_running;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct db *db = h->data;
    db->timers_open--;
    maybe_finish_close(db);
}

void db_close(struct db *db, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    db->closing = 1;
    db->close_cb = cb;
    db->close_arg = arg;
    /* The last connection to close checkpoints and syncs everything. */
    db->sync_timer.data = db->optimize_timer.data = db;
    uv_close((uv_handle_t *)&db->sync_timer, on_timer_closed);
    uv_close((uv_handle_t *)&db->optimize_timer, on_timer_closed);
    uv_close((uv_handle_t *)&db->dispatch_idle, on_timer_closed);
    /* Queued jobs still run: they may be writes a client is waiting for. */
    dispatch(db);
    maybe_finish_close(db);
}

int db_file_moved(struct db_conn *conn)
{
    return file_moved(conn->h);
}

struct sqlite3 *db_conn_sqlite(struct db_conn *conn)
{
    return conn->h;
}
