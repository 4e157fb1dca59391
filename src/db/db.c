#include "db/db.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"
#include "db/internal.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

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
/* db_clients_writing: clients count as writing this long after their last write. */
#define CLIENTS_WRITING_MS 1000

/* A job's life (asserted in debug builds): queued -> running (on a pool thread) -> done, or
 * queued -> done when a read nobody wants any more is dropped (db_read_for). */
enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };
static const unsigned job_next[] = {
    [JOB_QUEUED] = 1u << JOB_RUNNING | 1u << JOB_DONE,
    [JOB_RUNNING] = 1u << JOB_DONE,
    [JOB_DONE] = 0,
};

struct db_job {
    uv_work_t req;
    struct db *db;
    struct db_conn *conn;
    db_work_fn *work;
    db_done_cb *done;
    db_wanted_fn *wanted; /* NULL: always wanted */
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

static void close_all(struct db *db)
{
    if (db->writer.h) /* statistics for the next start (see db/upkeep.c) */
        db_exec(&db->writer, "PRAGMA optimize");
    conn_close(&db->writer);
    conn_close(&db->ckpt);
    for (int i = 0; i < DB_READERS; i++)
        conn_close(&db->readers[i]);
}

int db_open(struct db **out, uv_loop_t *loop, const char *url)
{
    ASSERT_LOOP_THREAD();
    struct db *db = xcalloc(1, sizeof(*db));
    int rc = DB_EGENERIC;
    db->loop = loop;
    db->wal_bg_pages = CKPT_PAGES;
    db->wal_max_pages = CKPT_PAGES_MAX;
    db->engine = conn_engine_of(url);
    /* SQLite's allocation statistics take a global mutex on every malloc and free, shared by
     * all pool threads; nothing reads them. Only possible before SQLite initializes (the
     * first db_open of the process): later calls fail harmlessly. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (!sqlite3_threadsafe())
        goto fail;
    if ((rc = conn_open(&db->writer, url, CONN_WRITER)) != 0 ||
        (rc = conn_migrate(&db->writer)) != 0)
        goto fail;
    if (db->engine == DB_SQLITE && (rc = upkeep_sqlite_setup(db, url)) != 0)
        goto fail;
    if (db->engine == DB_PG)
        db->pg_read_only = pg_read_only(&db->writer);
    db->writer.clients_waiting = &db->clients_waiting;
    db->writer.client_write_ms = &db->client_write_ms;
    for (int i = 0; i < DB_READERS; i++)
        if ((rc = conn_open(&db->readers[i], url, CONN_READER)) != 0)
            goto fail;
    upkeep_timers_start(db);
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

/* Rows inserted, updated or deleted so far by the connection's statements (SQLite). */
static int64_t rows_changed(struct db_conn *c)
{
    return c->engine == DB_SQLITE ? (int64_t)sqlite3_total_changes64(c->h) : 0;
}

/* write_batch_once's answer when a job failed after changing rows in a pass without
 * savepoints: the batch is undone and run again with them. Never leaves this file. */
#define REDO_WITH_SAVEPOINTS (DB_EGENERIC - 1000)

/* Pool thread: one attempt of a batch of write jobs (first and its ->next chain) in one
 * BEGIN IMMEDIATE transaction; the COMMIT makes them all durable before any done callback
 * runs. A job that fails leaves nothing behind while the others still commit. With
 * savepoints, each job runs inside its own, rolled back when it fails. Without (SQLite's
 * first pass), a job that fails having changed no row has nothing to undo, and one that did
 * sends the batch back to be run with savepoints (REDO_WITH_SAVEPOINTS): a savepoint copies
 * every page a job writes into the statement journal first, a sixth of a creation's CPU on
 * the writer, although failures after a write are rare (the API checks before it writes).
 * Returns 0, or the error that undid the whole batch (DB_EBUSY from any job: the batch is
 * run again as a whole). */
static int write_batch_once(struct db_job *first, struct db_conn *c, int savepoints)
{
    for (struct db_job *j = first; j; j = j->next)
        j->rc = 0;
    int rc = conn_tx(c, "BEGIN IMMEDIATE");
    for (struct db_job *j = first; rc == 0 && j; j = j->next) {
        int64_t before = rows_changed(c);
        if (savepoints && (rc = conn_tx(c, "SAVEPOINT job")) != 0)
            break;
        j->rc = j->work(c, j->arg);
        if (j->rc == DB_EBUSY)
            rc = DB_EBUSY;
        else if (j->rc != 0 && !savepoints && rows_changed(c) != before)
            rc = REDO_WITH_SAVEPOINTS;
        else if (j->rc != 0 && savepoints && conn_in_tx(c))
            conn_tx(c, "ROLLBACK TO job");
        /* Some errors make SQLite end the transaction itself: the batch is lost. */
        if (rc == 0 && !conn_in_tx(c))
            rc = DB_EGENERIC;
        if (rc == 0 && savepoints)
            rc = conn_tx(c, "RELEASE job");
    }
    /* A file deleted or replaced under us takes every commit with it (a restart opens the
     * new or empty path): nothing may be acknowledged. */
    if (rc == 0 && db_file_moved(c))
        rc = DB_EMOVED;
    if (rc == 0)
        rc = conn_tx(c, "COMMIT");
    if (rc != 0 && conn_in_tx(c))
        conn_tx(c, "ROLLBACK");
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
    return conn_set_durability(c, full);
}

/* Pool thread: runs a batch, again as a whole while the file is locked by another process,
 * and gives every job whose own work succeeded the batch's result. */
static void write_batch(struct db_job *first, struct db_conn *c)
{
    int rc = set_durability(first->conn, first);
    /* PostgreSQL aborts the whole transaction at a failed statement: savepoints always. */
    int savepoints = c->engine != DB_SQLITE;
    for (int attempt = 1; attempt <= BUSY_RETRIES && rc == 0; attempt++) {
        rc = write_batch_once(first, c, savepoints);
        if (rc == REDO_WITH_SAVEPOINTS) {
            savepoints = 1;
            rc = write_batch_once(first, c, savepoints);
        }
        if (rc != DB_EBUSY)
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
    /* PostgreSQL takes no file locks per transaction, and one failed statement would abort a
     * shared transaction for the jobs after it: there each statement is its own. */
    int tx = c->engine == DB_SQLITE && first->next != NULL && conn_tx(c, "BEGIN") == 0;
    for (struct db_job *j = first; j; j = j->next)
        j->rc = j->work(c, j->arg);
    if (tx)
        conn_tx(c, "COMMIT");
    conn_end_reads(c);
}

/* Pool thread: touches only the job (and its batch) and its connection. */
static void job_work(uv_work_t *req)
{
    struct db_job *job = container_of(req, struct db_job, req);
    struct db_conn *c = job->conn;
    ASSERT_POOL_THREAD();
    DEBUG_ASSERT(job->state == JOB_RUNNING);
    if (!job->is_write) {
        read_batch(job, c);
        return;
    }
    atomic_fetch_add(&job->db->write_seq, 1); /* odd: a commit may become visible */
    write_batch(job, c);
    atomic_fetch_add(&job->db->write_seq, 1);
}

uint64_t db_write_seq(const struct db *db)
{
    return atomic_load(&db->write_seq);
}

int db_clients_waiting(const struct db_conn *conn)
{
    ASSERT_POOL_THREAD();
    return conn->clients_waiting && atomic_load(conn->clients_waiting);
}

int db_clients_writing(const struct db_conn *conn)
{
    ASSERT_POOL_THREAD();
    if (!conn->client_write_ms)
        return 0;
    uint64_t last = atomic_load(conn->client_write_ms);
    return db_clients_waiting(conn) || (last && clock_mono_ms() - last < CLIENTS_WRITING_MS);
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

static int unwanted(const struct db_job *job)
{
    return job->wanted && !job->wanted(job->arg);
}

/* The next job of a read queue that someone still waits for; the others are moved to
 * db->dropped (their done runs from finish_dropped, outside the queue walks). */
static struct db_job *pop_wanted(struct db *db, struct job_fifo *f)
{
    struct db_job *job;
    while ((job = fifo_pop(f)) != NULL && unwanted(job))
        fifo_push(&db->dropped, job);
    return job;
}

/* db_close: every queued read nobody waits for is dropped now, not when a reader frees up
 * (the queries of clients that left would otherwise all run before the database closes). */
static void drop_unwanted(struct db *db, struct job_fifo *f)
{
    struct job_fifo keep = {0};
    struct db_job *job;
    while ((job = fifo_pop(f)) != NULL)
        fifo_push(unwanted(job) ? &db->dropped : &keep, job);
    *f = keep;
}

static void finish_dropped(struct db *db)
{
    struct db_job *job;
    while ((job = fifo_pop(&db->dropped)) != NULL) {
        db->depth--;
        job_set_state(job, JOB_DONE);
        job->done(DB_ECANCELED, job->arg);
        free(job);
    }
}

/* The queue of the writer's next batch: when clients' writes and background writes both
 * wait, the two alternate, so a client's write waits behind at most one background batch
 * (billing bounds what each of its jobs holds) and background work still gets every other
 * transaction while clients write without pause. NULL: nothing waits. */
static struct job_fifo *next_write_queue(struct db *db)
{
    int background = db->wait_background.head && !upkeep_background_paused(db);
    if (!db->wait_write.head)
        return background ? &db->wait_background : NULL;
    if (background && !db->last_background)
        return &db->wait_background;
    return &db->wait_write;
}

/* Hands waiting jobs to free connections (loop thread). */
void db_dispatch(struct db *db)
{
    struct db_conn *c;
    struct db_job *first, *last, *j;
    if (!db->writer.in_use && db->restart_wanted && !db->ckpt_running)
        upkeep_maybe_restart(db); /* holds the writer: no write batch this time */
    struct job_fifo *w = db->writer.in_use ? NULL : next_write_queue(db);
    if (w) {
        first = last = fifo_pop(w);
        for (int n = 1; n < WRITE_BATCH && w->head; n++)
            last = last->next = fifo_pop(w);
        db->last_background = w == &db->wait_background;
        atomic_store(&db->clients_waiting, db->wait_write.head != NULL);
        start(db, first, &db->writer);
    }
    while (db->wait_read.head && (c = free_reader(db)) != NULL) {
        /* Share the waiting reads among the free readers (at most READ_BATCH each). */
        size_t share = (db->wait_read.n + DB_READERS - 1) / DB_READERS;
        if ((first = last = pop_wanted(db, &db->wait_read)) == NULL)
            break;
        for (size_t n = 1; n < share && n < READ_BATCH && (j = pop_wanted(db, &db->wait_read)); n++)
            last = last->next = j;
        start(db, first, c);
    }
    /* Lists after the point reads, one per hand-off (a batch would put one list's time in
     * front of the next), on at most DB_LIST_READERS connections. */
    while (db->wait_list.head && db->lists_running < DB_LIST_READERS &&
           (c = free_reader(db)) != NULL && (first = pop_wanted(db, &db->wait_list)) != NULL) {
        db->lists_running++;
        start(db, first, c);
    }
    finish_dropped(db);
}

void db_maybe_finish_close(struct db *db)
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
    if (db->engine == DB_SQLITE)
        db_exec(&db->writer, sql);
}

int db_read_only(const struct db *db)
{
    ASSERT_LOOP_THREAD();
    if (db->engine == DB_PG)
        return db->pg_read_only;
    return sqlite3_db_readonly(db->writer.h, "main") == 1;
}

int db_shared(const struct db *db)
{
    return db->engine == DB_PG;
}

static void job_after(uv_work_t *req, int status)
{
    struct db_job *job = container_of(req, struct db_job, req);
    struct db *db = job->db;
    job->conn->in_use = 0;
    if (job->is_list)
        db->lists_running--;
    if (job->conn == &db->writer)
        upkeep_after_write(db);
    /* The connection is free: the jobs that waited for it start now, before this hand-off's
     * done callbacks answer their clients, so the writer commits the next batch while the
     * loop sends this one's answers (it used to idle through all of them). */
    db_dispatch(db);
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
    db_dispatch(db);
    db_maybe_finish_close(db);
}

enum lane { LANE_READ, LANE_LIST, LANE_WRITE, LANE_BACKGROUND };

/* A job is handed to the pool at the loop's next idle phase, not at submission: the requests
 * read in one pass over the sockets then leave together (one pool hand-off per batch instead
 * of one per request, which cost the loop more than the request's own work). While it is
 * started the loop polls without blocking, so the wait is one loop iteration at most. */
static void on_dispatch_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
    db_dispatch(h->data);
}

static int submit(struct db *db, db_work_fn *work, db_done_cb *done, db_wanted_fn *wanted,
                  void *arg, enum lane lane, enum db_durability durability)
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
                           .wanted = wanted,
                           .arg = arg,
                           .is_write = lane == LANE_WRITE || lane == LANE_BACKGROUND,
                           .is_list = lane == LANE_LIST,
                           .durability = durability};
    db->depth++;
    struct job_fifo *queue = &db->wait_read;
    if (lane == LANE_WRITE)
        queue = &db->wait_write;
    else if (lane == LANE_BACKGROUND)
        queue = &db->wait_background;
    else if (lane == LANE_LIST)
        queue = &db->wait_list;
    fifo_push(queue, job);
    if (lane == LANE_WRITE) {
        atomic_store(&db->clients_waiting, 1);
        atomic_store(&db->client_write_ms, clock_mono_ms());
    }
    uv_idle_start(&db->dispatch_idle, on_dispatch_idle); /* no-op when started */
    return 0;
}

int db_read(struct db *db, db_work_fn *work, db_done_cb *done, void *arg)
{
    return submit(db, work, done, NULL, arg, LANE_READ, DB_CRASH_SAFE);
}

int db_read_list(struct db *db, db_work_fn *work, db_done_cb *done, void *arg)
{
    return submit(db, work, done, NULL, arg, LANE_LIST, DB_CRASH_SAFE);
}

int db_read_for(struct db *db, int list, db_work_fn *work, db_done_cb *done, db_wanted_fn *wanted,
                void *arg)
{
    return submit(db, work, done, wanted, arg, list ? LANE_LIST : LANE_READ, DB_CRASH_SAFE);
}

int db_write(struct db *db, enum db_durability durability, db_work_fn *work, db_done_cb *done,
             void *arg)
{
    return submit(db, work, done, NULL, arg, LANE_WRITE, durability);
}

int db_write_background(struct db *db, enum db_durability durability, db_work_fn *work,
                        db_done_cb *done, void *arg)
{
    return submit(db, work, done, NULL, arg, LANE_BACKGROUND, durability);
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
    db_maybe_finish_close(db);
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
    /* Queued jobs still run (they may be writes a client is waiting for), except the reads
     * nobody waits for any more. */
    drop_unwanted(db, &db->wait_read);
    drop_unwanted(db, &db->wait_list);
    db_dispatch(db);
    db_maybe_finish_close(db);
}
