/* SQLite's upkeep: the write-ahead log (see CKPT_PAGES in db/internal.h: background
 * checkpoints on their own connection, the WAL started over while the writer is held, the
 * sync timer that bounds how long a DB_CRASH_SAFE commit stays unsynced, the writer's own
 * checkpoint at the WAL's bound) and the query planner's statistics (PRAGMA optimize). Loop
 * thread, except upkeep_wal_hook (the writer's pool thread), ckpt_work (a pool thread holding
 * the checkpoint connection) and optimize_work (the writer's job). The WAL part never runs on
 * PostgreSQL, whose server keeps its own. */
#include "db/internal.h"

#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

/* The query planner's statistics: PRAGMA optimize (ANALYZE where SQLite thinks it pays,
 * bounded by analysis_limit) runs on the writer once an hour and before it closes, as
 * SQLite recommends for long-lived connections. The statements must plan right without
 * statistics anyway (a fresh database has none). */
#define OPTIMIZE_EVERY_MS (3600 * 1000)

static void arm_sync_timer(struct db *db);
static void restart_after(struct db *db, int status);

/* Pool thread holding the writer, after each COMMIT (see CKPT_PAGES). */
int upkeep_wal_hook(void *arg, sqlite3 *h, const char *name, int pages)
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

/* A WAL past a quarter of its bound (CKPT_PAGES_MAX): worth starting over. */
static int wal_large(const struct db *db, int pages)
{
    return pages >= db->wal_max_pages / 4;
}

/* Background writes wait while a checkpoint copies a large WAL: a steady stream of them (a
 * billing pass at 100,000 relays) otherwise outruns the checkpoints, and the writer then
 * copied the rest itself inside a COMMIT (upkeep_wal_hook), up to 60 ms that a client's write
 * waited for. Paused, they let the checkpoint copy it all, so that the WAL can start over
 * (upkeep_maybe_restart); ckpt_after dispatches them again. */
int upkeep_background_paused(const struct db *db)
{
    return db->ckpt_running && wal_large(db, db->writer_wal_pages);
}

static void ckpt_work(uv_work_t *req)
{
    struct db *db = container_of(req, struct db, ckpt_req);
    ASSERT_POOL_THREAD();
    if (!db->ckpt_restart) {
        db->ckpt_rc = sqlite3_wal_checkpoint_v2(db->ckpt.h, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                                &db->ckpt_log, &db->ckpt_copied);
        return;
    }
    /* No waiting: a reader still on the WAL makes it give up at once (SQLITE_BUSY), and the
     * next backfilled checkpoint tries again. */
    sqlite3_busy_timeout(db->ckpt.h, 0);
    db->ckpt_rc = sqlite3_wal_checkpoint_v2(db->ckpt.h, NULL, SQLITE_CHECKPOINT_RESTART,
                                            &db->ckpt_log, &db->ckpt_copied);
    sqlite3_busy_timeout(db->ckpt.h, CONN_BUSY_TIMEOUT_MS);
}

static void ckpt_after(uv_work_t *req, int status)
{
    struct db *db = container_of(req, struct db, ckpt_req);
    db->ckpt_running = 0;
    if (db->ckpt_restart) {
        restart_after(db, status);
        return;
    }
    /* Everything copied: the WAL may start over. */
    db->restart_wanted = status == 0 && db->ckpt_rc == SQLITE_OK &&
                         db->ckpt_copied == db->ckpt_log && wal_large(db, db->ckpt_log);
    /* Stopped short (a reader still on old frames, or the writer checkpointing): the WAL
     * may not have been synced, so the timer tries again. */
    if (status != 0 || db->ckpt_rc != SQLITE_OK || db->ckpt_copied < db->ckpt_log)
        db->unsynced = 1;
    arm_sync_timer(db);
    if (status == 0 && db->ckpt_rc == SQLITE_OK) {
        db->stats.checkpoints++;
        db->ckpt_done_pages = db->ckpt_copied;
    } else if (status == 0 && db->ckpt_rc != SQLITE_BUSY) /* BUSY: the writer was checkpointing */
        LOG_WARN("database checkpoint failed: %s", sqlite3_errstr(db->ckpt_rc));
    db_dispatch(db); /* background writes may have waited for it */
    db_maybe_finish_close(db);
}

static void restart_after(struct db *db, int status)
{
    db->ckpt_restart = 0;
    db->restart_wanted = 0;
    db->writer.in_use = 0;
    if (status == 0 && db->ckpt_rc == SQLITE_OK) {
        db->stats.wal_restarts++;
        db->ckpt_done_pages = 0;
    }
    db_dispatch(db);
    db_maybe_finish_close(db);
}

/* SQLite starts the WAL over only when a write begins with every frame copied and no reader
 * on the WAL. Under a steady stream of writes that moment never comes: the WAL grew to its
 * bound and the writer then checkpointed inside a COMMIT (upkeep_wal_hook), 12-31 ms of
 * copying and syncing that the clients' writes queued behind. So once a background
 * checkpoint copied a large WAL whole, the writer is held for one RESTART checkpoint: it
 * copies what was committed since (little) and starts the WAL over, or gives up at once if a
 * reader is on it. Loop thread, with the writer and the checkpoint connection free. */
void upkeep_maybe_restart(struct db *db)
{
    /* Something committed since the copy: the restart would copy and sync it with the writer
     * held, as long as the writer's own checkpoint. The next background checkpoint decides. */
    if (db->closing || db->writer_wal_pages != db->ckpt_log) {
        db->restart_wanted = 0;
        return;
    }
    db->writer.in_use = 1;
    db->ckpt_restart = 1;
    db->ckpt_running = uv_queue_work(db->loop, &db->ckpt_req, ckpt_work, ckpt_after) == 0;
    if (!db->ckpt_running)
        db->writer.in_use = db->ckpt_restart = db->restart_wanted = 0;
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

int db_checkpoint_due(int wal_pages, int copied_pages, int bg_pages, int max_pages)
{
    int fresh = wal_pages - copied_pages;
    return fresh >= bg_pages || (fresh > 0 && wal_pages >= max_pages / 4 * 3);
}

/* Loop thread, after a write batch. A FULL commit syncs the WAL, and with it every earlier
 * commit. */
void upkeep_after_write(struct db *db)
{
    db->stats.wal_pages = (uint64_t)db->writer_wal_pages;
    db->stats.writer_checkpoints = db->writer_checkpoints;
    db->unsynced = !db->writer.sync_full;
    if (db->closing)
        return;
    if (db->engine == DB_PG) /* the server keeps its own WAL */
        return;
    if (db->writer_wal_pages < db->ckpt_done_pages) /* the WAL started over */
        db->ckpt_done_pages = 0;
    if (!db->ckpt_running && db_checkpoint_due(db->writer_wal_pages, db->ckpt_done_pages,
                                               db->wal_bg_pages, db->wal_max_pages))
        start_checkpoint(db);
    else
        arm_sync_timer(db);
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
    /* PostgreSQL: autovacuum keeps the statistics. */
    if (!db->optimize_queued && !db->closing && db->engine == DB_SQLITE)
        db->optimize_queued = db_write(db, DB_CRASH_SAFE, optimize_work, optimize_done, db) == 0;
}

/* SQLite only: the WAL hook, statistics, and a connection for background checkpoints. */
int upkeep_sqlite_setup(struct db *db, const char *url)
{
    int rc = conn_open(&db->ckpt, url, CONN_CHECKPOINT);
    if (rc != 0)
        return rc;
    sqlite3_wal_hook(db->writer.h, upkeep_wal_hook, db); /* replaces SQLite's own autocheckpoint */
    /* What SQLite recommends on opening a long-lived connection (0x10000: every table, on
     * SQLite >= 3.46; older versions ignore the bit). */
    db_exec(&db->writer, "PRAGMA optimize=0x10002");
    return 0;
}

/* The sync timer (armed by upkeep_after_write) and the hourly PRAGMA optimize; both unref'd:
 * they never keep the loop alive by themselves. */
void upkeep_timers_start(struct db *db)
{
    uv_timer_init(db->loop, &db->sync_timer);
    uv_unref((uv_handle_t *)&db->sync_timer);
    uv_timer_init(db->loop, &db->optimize_timer);
    uv_unref((uv_handle_t *)&db->optimize_timer);
    uv_timer_start(&db->optimize_timer, on_optimize_timer, OPTIMIZE_EVERY_MS, OPTIMIZE_EVERY_MS);
}
