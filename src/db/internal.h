/* Private to src/db: the database's state (struct db), shared by db.c (the job queues, group
 * commit, open and close) and upkeep.c (SQLite's WAL upkeep: background checkpoints, WAL restarts,
 * the sync timer; PRAGMA optimize). Loop thread unless a field says otherwise. Not a public
 * interface: everything else goes through db/db.h. */
#ifndef CARAVEL_DB_INTERNAL_H
#define CARAVEL_DB_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>
#include <uv.h>

#include "db/conn.h"
#include "db/db.h"

/* Connections are checked out on the loop thread and handed to exactly one pool thread per
 * job: no connection is ever used by two threads at once. The writer, the checkpointer and the
 * readers stay below the pool size main.c sets (8), so DNS, file work and NIP-98 verification keep
 * threads. */
#define DB_READERS 4

/* The writer never checkpoints inside its own COMMIT: that put two fsyncs and a 4 MB copy in
 * front of every ~200th POST /relays (p99 13 ms; 7 ms without). Once CKPT_PAGES frames were
 * committed since the last one copied its share, a PASSIVE checkpoint runs on its own
 * connection on a pool thread, concurrently with the writer (db_checkpoint_due). The WAL
 * starts over only when a checkpoint has copied all of it, which a steady stream of writes can
 * postpone forever; past CKPT_PAGES_MAX the writer therefore checkpoints itself after its
 * COMMIT, which bounds the WAL file, and in the last quarter before it background checkpoints
 * copy every new frame, so that little is left for the writer's. */
#define CKPT_PAGES 1000
#define CKPT_PAGES_MAX 16000
/* A DB_CRASH_SAFE commit is in the OS at once but on disk only once the WAL is synced: a
 * background checkpoint (which syncs the WAL first) runs at most this long after one, so a
 * power loss can undo about a second of such writes, not an unbounded stretch of them. */
#define SYNC_DELAY_MS 1000

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
    /* A backfilled WAL past a quarter of its bound is started over (restart_wanted) by a
     * RESTART checkpoint while the writer is held (ckpt_restart); see upkeep_maybe_restart. */
    int restart_wanted, ckpt_restart;
    uv_timer_t sync_timer;     /* SYNC_DELAY_MS after an unsynced commit (unref'd) */
    uv_timer_t optimize_timer; /* every OPTIMIZE_EVERY_MS (unref'd) */
    uv_idle_t dispatch_idle;   /* started by submit: dispatch at the loop's next idle phase */
    int timers_open;           /* the two timers and dispatch_idle, until closed */
    int optimize_queued;
    int unsynced; /* a DB_CRASH_SAFE batch committed since the last checkpoint began */
    /* Frames in the WAL after the last COMMIT: set by the writer's wal hook on the pool
     * thread holding the writer, copied to stats.wal_pages by job_after (loop thread). */
    int writer_wal_pages;
    /* Frames the last background checkpoint left copied (0 once the WAL starts over): see
     * db_checkpoint_due. Loop thread. */
    int ckpt_done_pages;
    int wal_bg_pages, wal_max_pages; /* CKPT_PAGES, CKPT_PAGES_MAX unless a test set them */
    uint64_t writer_checkpoints;     /* the writer's own (pool thread holding the writer) */
    struct db_stats stats;           /* loop thread */
    struct job_fifo wait_write, wait_read, wait_list;
    struct job_fifo wait_background;  /* db_write_background */
    int last_background;              /* the writer's last batch came from wait_background */
    struct job_fifo dropped;          /* reads nobody wants, their done still to call */
    int lists_running;                /* readers holding a db_read_list job */
    int storage_error;                /* db_storage_error; loop thread */
    size_t depth;                     /* queued + running */
    _Atomic uint64_t write_seq;       /* db_write_seq: the writer's pool thread adds, any reads */
    _Atomic int clients_waiting;      /* wait_write is not empty: the loop sets, the writer reads */
    _Atomic uint64_t client_write_ms; /* clock_mono_ms of the last db_write: likewise */
    int closing;
    enum db_engine engine;
    int pg_read_only; /* PostgreSQL: a standby or a read-only default (at db_open) */
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* db.c: hands waiting jobs to free connections; frees db once closing and idle (both loop
 * thread). */
void db_dispatch(struct db *db);
void db_maybe_finish_close(struct db *db);

/* upkeep.c. SQLite only: the checkpoint connection, the WAL hook, statistics on opening
 * (db_open); 0 or a db_error. */
int upkeep_sqlite_setup(struct db *db, const char *url);
/* db_open, every engine: the sync and optimize timers (db_close closes them). */
void upkeep_timers_start(struct db *db);
/* The writer's WAL hook (pool thread holding the writer, after each COMMIT):
 * records the WAL's length and checkpoints past its bound. */
int upkeep_wal_hook(void *arg, sqlite3 *h, const char *name, int pages);
/* Whether background writes wait (a checkpoint copies a large WAL). */
int upkeep_background_paused(const struct db *db);
/* Holds the writer for one RESTART checkpoint when one is wanted (the writer and the
 * checkpoint connection free). */
void upkeep_maybe_restart(struct db *db);
/* After each write batch: starts a background checkpoint when one is due, else arms the sync
 * timer. */
void upkeep_after_write(struct db *db);

#endif
