/* Group commit (db.c): write jobs queued together share one transaction; a failing job is
 * undone alone (on SQLite by running the batch again with a savepoint per job, only when a
 * job failed after changing rows). */
#include <sqlite3.h>

#include "test.h"
#include "db_fixture.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "util/util.h"

struct order {
    int next;      /* done calls seen so far */
    int seen[200]; /* status by submission index */
    int pos[200];  /* done order by submission index */
};

struct job {
    struct order *o;
    int index;
    int fail; /* 0 ok, 1 insert then fail, 2 constraint, 3 refuse before writing, 4 its only
               * insert collides */
    int runs; /* times work ran */
};

static int work(struct db_conn *conn, void *arg)
{
    struct job *j = arg;
    char sql[128];
    j->runs++;
    if (j->fail == 3)
        return DB_ENOTFOUND;
    if (j->fail == 4)
        return db_exec(conn, "INSERT INTO setting(key, value) VALUES ('k0', 'collides')");
    snprintf(sql, sizeof(sql), "INSERT INTO setting(key, value) VALUES ('k%d', 'v')", j->index);
    int rc = db_exec(conn, sql);
    if (rc == 0 && j->fail == 1)
        return DB_ENOTFOUND;
    if (rc == 0 && j->fail == 2)
        rc = db_exec(conn, "INSERT INTO setting(key, value) VALUES ('k0', 'again')");
    return rc;
}

static void done(int status, void *arg)
{
    struct job *j = arg;
    j->o->seen[j->index] = status;
    j->o->pos[j->index] = j->o->next++;
}

static int count(struct db_conn *conn, void *arg)
{
    struct db_stmt *st =
        db_stmt(conn, "SELECT count(*), sum(key = 'k0' AND value = 'v') FROM setting"
                      " WHERE key LIKE 'k%'");
    if (db_step(st) != DB_ROW)
        return DB_EGENERIC;
    ((int *)arg)[0] = db_col_int(st, 0);
    ((int *)arg)[1] = db_col_int(st, 1);
    db_reset(st);
    return 0;
}

static void count_done(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
}

TEST(db_batch_failures_alone_others_commit_in_order)
{
    uv_loop_t loop;
    char dir[64], path[128];
    struct db *db = NULL;
    static struct order o;
    static struct job jobs[200];
    int counts[2] = {0, 0};
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/b.db", dir);
    uv_loop_init(&loop);
    ASSERT_OK(db_open(&db, &loop, path));
    for (int i = 0; i < 200; i++) {
        jobs[i] = (struct job){&o, i, i % 37 == 5 ? 1 : i % 41 == 7 ? 2 : 0, 0};
        ASSERT_OK(db_write(db, DB_CRASH_SAFE, work, done, &jobs[i]));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int expected = 0;
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(o.pos[i], i); /* done in submission order */
        if (jobs[i].fail == 1)
            ASSERT_EQ(o.seen[i], DB_ENOTFOUND);
        else if (jobs[i].fail == 2)
            ASSERT_EQ(o.seen[i], DB_ECONSTRAINT);
        else {
            ASSERT_OK(o.seen[i]);
            expected++;
        }
    }
    ASSERT_OK(db_read(db, count, count_done, counts));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(counts[0], expected); /* failed jobs left nothing, not even their first insert */
    ASSERT_EQ(counts[1], 1);
    db_close(db, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
}

/* Jobs that fail without having changed a row (a refusal before writing, an insert that
 * collides) need no undo: their batch runs once, without savepoints, and commits the others.
 * A job that fails after an insert sends its batch back once, with savepoints. */
TEST(db_batch_redo_only_after_a_changed_row)
{
    static const struct {
        int fails[6];
        int redo_at; /* the job whose failure sends the batch back (0: none): it and the
                      * jobs before it run twice, those after it once */
    } rounds[] = {
        {{0, 0, 3, 0, 4, 0}, 0}, {{0, 3, 3, 4, 0, 0}, 0}, {{0, 0, 1, 0, 0, 0}, 2},
        {{0, 0, 0, 0, 0, 2}, 5}, {{0, 3, 4, 1, 0, 2}, 3},
    };
    for (size_t r = 0; r < ARRAY_SIZE(rounds); r++) {
        uv_loop_t loop;
        char dir[64], path[128];
        struct db *db = NULL;
        static struct order o;
        static struct job jobs[6];
        int counts[2] = {0, 0}, expected = 0;
        memset(&o, 0, sizeof(o));
        test_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/r%zu.db", dir, r);
        uv_loop_init(&loop);
        ASSERT_OK(db_open(&db, &loop, path));
        /* k0 first, alone (a loop turn passes before the others are submitted). */
        jobs[0] = (struct job){&o, 0, 0, 0};
        ASSERT_OK(db_write(db, DB_CRASH_SAFE, work, done, &jobs[0]));
        uv_run(&loop, UV_RUN_NOWAIT);
        for (int i = 1; i < 6; i++) {
            jobs[i] = (struct job){&o, i, rounds[r].fails[i], 0};
            ASSERT_OK(db_write(db, DB_CRASH_SAFE, work, done, &jobs[i]));
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        for (int i = 1; i < 6; i++) {
            ASSERT_EQ(jobs[i].runs, i <= rounds[r].redo_at ? 2 : 1);
            if (jobs[i].fail == 0) {
                ASSERT_OK(o.seen[i]);
                expected++;
            } else {
                ASSERT(o.seen[i] == DB_ENOTFOUND || o.seen[i] == DB_ECONSTRAINT);
            }
        }
        ASSERT_OK(db_read(db, count, count_done, counts));
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_EQ(counts[0], expected + 1); /* k0 and the jobs that succeeded, nothing else */
        ASSERT_EQ(counts[1], 1);            /* k0 kept its value */
        db_close(db, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_OK(uv_loop_close(&loop));
    }
}

/* The level each write job saw inside its transaction (PRAGMA synchronous: 1 NORMAL, 2 FULL). */
struct level_job {
    enum db_durability durability;
    int seen;
};

static int read_level(struct db_conn *conn, void *arg)
{
    struct db_stmt *st = db_stmt(conn, "PRAGMA synchronous");
    if (!st || db_step(st) != DB_ROW)
        return DB_EGENERIC;
    ((struct level_job *)arg)->seen = db_col_int(st, 0);
    db_reset(st);
    return 0;
}

static void level_done(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
}

/* The first job is handed over alone (a loop turn passes before the others are submitted) and
 * the rest wait for the writer and form one batch; each row is one such round. A batch is FULL
 * as soon as one of its jobs is power-safe. */
TEST(db_batch_durability_per_transaction)
{
    static const struct {
        enum db_durability in[3];
        int want[3];
    } rounds[] = {
        {{DB_CRASH_SAFE, DB_CRASH_SAFE, DB_CRASH_SAFE}, {1, 1, 1}},
        {{DB_POWER_SAFE, DB_CRASH_SAFE, DB_CRASH_SAFE}, {2, 1, 1}},
        {{DB_CRASH_SAFE, DB_CRASH_SAFE, DB_POWER_SAFE}, {1, 2, 2}},
        {{DB_POWER_SAFE, DB_POWER_SAFE, DB_CRASH_SAFE}, {2, 2, 2}},
        {{DB_CRASH_SAFE, DB_POWER_SAFE, DB_POWER_SAFE}, {1, 2, 2}},
    };
    uv_loop_t loop;
    char dir[64], path[128];
    struct db *db = NULL;
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/d.db", dir);
    uv_loop_init(&loop);
    ASSERT_OK(db_open(&db, &loop, path));
    for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
        struct level_job jobs[3];
        for (int i = 0; i < 3; i++) {
            jobs[i] = (struct level_job){rounds[r].in[i], 0};
            ASSERT_OK(db_write(db, jobs[i].durability, read_level, level_done, &jobs[i]));
            if (i == 0) /* one loop turn: the first job is handed over alone */
                uv_run(&loop, UV_RUN_NOWAIT);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(jobs[i].seen, rounds[r].want[i]);
    }
    db_close(db, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
}

/* Each job writes one 4 KiB blob: a few new pages per COMMIT. */
static int add_blob(struct db_conn *conn, void *arg)
{
    (void)arg;
    return db_exec(conn, "INSERT INTO setting(key, value)"
                         " VALUES (hex(randomblob(16)), hex(randomblob(2048)))");
}

static void blob_done(int status, void *arg)
{
    ASSERT_OK(status);
    ++*(int *)arg;
}

static int count_settings(struct db_conn *conn, void *arg)
{
    struct db_stmt *st = db_stmt(conn, "SELECT count(*) FROM setting WHERE length(value) = 4096");
    if (!st || db_step(st) != DB_ROW)
        return DB_EGENERIC;
    *(int *)arg = db_col_int(st, 0);
    db_reset(st);
    return 0;
}

/* 600 blob writes, four per loop turn (many COMMITs), through db_write or
 * db_write_background, on a new database with the given WAL thresholds; every one must be
 * read back. *st: the stats at the end; *max_seen: the most WAL frames after a turn. */
static void write_stream(int bg_pages, int max_pages, int background, struct db_stats *st,
                         int *max_seen)
{
    struct test_db t;
    int done = 0, count = 0;
    test_db_open(&t);
    db_set_wal_limits(t.db, bg_pages, max_pages);
    *max_seen = 0;
    for (int round = 0; round < 150; round++) {
        for (int i = 0; i < 4; i++)
            ASSERT_OK(background
                          ? db_write_background(t.db, DB_CRASH_SAFE, add_blob, blob_done, &done)
                          : db_write(t.db, DB_CRASH_SAFE, add_blob, blob_done, &done));
        uv_run(&t.loop, UV_RUN_DEFAULT);
        db_get_stats(t.db, st);
        *max_seen = (int)st->wal_pages > *max_seen ? (int)st->wal_pages : *max_seen;
    }
    ASSERT_EQ(done, 600);
    db_get_stats(t.db, st);
    ASSERT_OK(db_read(t.db, count_settings, count_done, &count));
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(count, 600);
    test_db_close(&t);
}

/* Rows: the two thresholds, and which checkpoints must have run (-1: either). Background
 * checkpoints alone (the writer's limit out of reach); and the background threshold out of
 * reach: near the limit (its last quarter) background checkpoints copy whatever is new, and
 * the writer's own, if any, keep the WAL within one batch of its limit. */
TEST(db_wal_checkpointed_off_the_writer_and_bounded)
{
    static const struct {
        int bg, max;
        int want_bg, want_writer;
    } rows[] = {{20, 1000000, 1, 0}, {1000000, 200, 1, -1}};
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        struct db_stats st;
        int max_seen;
        write_stream(rows[r].bg, rows[r].max, 0, &st, &max_seen);
        /* A background checkpoint may also come from the 1 s sync timer when the machine is
         * slow (then this test runs past a second): only its presence is asserted. */
        if (rows[r].want_bg)
            ASSERT_GT(st.checkpoints, 0);
        if (rows[r].want_writer >= 0)
            ASSERT_EQ(st.writer_checkpoints > 0, rows[r].want_writer);
        if (rows[r].bg > rows[r].max)
            ASSERT_LT(max_seen, rows[r].max + 64); /* one batch past the limit at most */
    }
}

/* The background checkpoint's trigger (db_checkpoint_due), table-driven: CKPT_PAGES frames
 * committed since the last checkpoint copied its share, not a long WAL (under a steady
 * stream the WAL never starts over, and a checkpoint after every COMMIT cost POST /relays
 * 10-23% of its CPU); in the WAL's last quarter, anything new. */
TEST(db_checkpoint_due_counts_frames_since_the_last_copy)
{
    static const struct {
        int wal, copied, bg, max, want;
    } rows[] = {
        {999, 0, 1000, 16000, 0},       /* a new WAL, short of the threshold */
        {1000, 0, 1000, 16000, 1},      /* ... at it */
        {9000, 8500, 1000, 16000, 0},   /* long, but only 500 new frames */
        {9500, 8500, 1000, 16000, 1},   /* 1,000 new */
        {12000, 11990, 1000, 16000, 1}, /* the last quarter: anything new */
        {12000, 12000, 1000, 16000, 0}, /* ... but not nothing */
        {11999, 11990, 1000, 16000, 0}, /* just before it */
        {300, 0, 1000000, 200, 1},      /* past the limit (a test's thresholds) */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ASSERT_EQ(db_checkpoint_due(rows[i].wal, rows[i].copied, rows[i].bg, rows[i].max),
                  rows[i].want);
}

/* db_close while a background checkpoint runs waits for it before freeing (under ASan a
 * use after free otherwise). */
static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

TEST(db_close_waits_for_a_running_checkpoint)
{
    uv_loop_t loop;
    char dir[64], path[128];
    struct db *db = NULL;
    struct db_stats st = {0};
    int done = 0, closed = 0;
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/c.db", dir);
    uv_loop_init(&loop);
    ASSERT_OK(db_open(&db, &loop, path));
    db_set_wal_limits(db, 1, 1000000);
    ASSERT_OK(db_write(db, DB_CRASH_SAFE, add_blob, blob_done, &done));
    while (done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    db_get_stats(db, &st);
    ASSERT_EQ(st.checkpointing, 1); /* queued by the COMMIT's job_after, not finished yet */
    db_close(db, on_closed, &closed);
    ASSERT_EQ(closed, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(closed, 1);
    ASSERT_OK(uv_loop_close(&loop));
}

/* Keeps the loop alive while the database's own (unref'd) sync timer may fire: for a fixed
 * time (want_checkpoint 0), or until a checkpoint has run (want_checkpoint 1; the deadline only
 * bounds a failing run: on a loaded machine the pool thread may take well over the nominal
 * second, which is no defect). */
struct sync_wait {
    struct db *db;
    int want_checkpoint;
    int ticks_left;
};

static void on_wait_tick(uv_timer_t *t)
{
    struct sync_wait *w = t->data;
    struct db_stats st;
    db_get_stats(w->db, &st);
    if ((w->want_checkpoint && st.checkpoints > 0) || --w->ticks_left <= 0)
        uv_close((uv_handle_t *)t, NULL);
}

/* A DB_CRASH_SAFE commit gets its WAL synced by a background checkpoint about a second later
 * even when the WAL is far below the checkpoint threshold; a DB_POWER_SAFE one was synced by
 * its COMMIT and needs none (none has run 1.5 s later). */
TEST(db_crash_safe_commits_are_synced_by_a_background_checkpoint)
{
    static const struct {
        enum db_durability d;
        int want_checkpoint;
        int ticks; /* of 50 ms */
    } rows[] = {{DB_CRASH_SAFE, 1, 600}, {DB_POWER_SAFE, 0, 30}};
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        uv_loop_t loop;
        uv_timer_t wait;
        char dir[64], path[128];
        struct db *db = NULL;
        struct db_stats st;
        int done = 0;
        test_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/s%zu.db", dir, r);
        uv_loop_init(&loop);
        ASSERT_OK(db_open(&db, &loop, path));
        ASSERT_OK(db_write(db, rows[r].d, add_blob, blob_done, &done));
        struct sync_wait w = {db, rows[r].want_checkpoint, rows[r].ticks};
        uv_timer_init(&loop, &wait);
        wait.data = &w;
        uv_timer_start(&wait, on_wait_tick, 50, 50);
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_EQ(done, 1);
        db_get_stats(db, &st);
        ASSERT_LT(st.wal_pages, 1000);
        ASSERT_EQ(st.checkpoints > 0, rows[r].want_checkpoint);
        db_close(db, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_OK(uv_loop_close(&loop));
    }
}

/* db_write_seq (the relay answer cache's coherence): odd inside a write job, advanced and even
 * once it committed; reads leave it alone. */
struct seq_job {
    struct db *db;
    uint64_t inside;
};

static int seq_work(struct db_conn *conn, void *arg)
{
    struct seq_job *j = arg;
    j->inside = db_write_seq(j->db);
    return db_exec(conn, "INSERT INTO setting(key, value) VALUES ('seq', 'v')"
                         " ON CONFLICT(key) DO UPDATE SET value = value || 'v'");
}

static void ok_done(int status, void *arg)
{
    ASSERT_OK(status);
    (void)arg;
}

TEST(db_write_seq_odd_while_writing)
{
    uv_loop_t loop;
    char dir[64], path[128];
    struct db *db = NULL;
    int counts[2];
    test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/s.db", dir);
    uv_loop_init(&loop);
    ASSERT_OK(db_open(&db, &loop, path));
    ASSERT(!db_shared(db));
    uint64_t before = db_write_seq(db);
    ASSERT_EQ(before % 2, 0);
    for (int round = 1; round <= 3; round++) {
        struct seq_job j = {db, 0};
        ASSERT_OK(db_write(db, DB_CRASH_SAFE, seq_work, ok_done, &j));
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_EQ(j.inside % 2, 1);
        ASSERT_EQ(db_write_seq(db), before + 2 * (uint64_t)round);
    }
    ASSERT_OK(db_read(db, count, count_done, counts));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(db_write_seq(db), before + 6);
    db_close(db, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
}

/* Background writes (db_write_background) queued together with clients' writes: the writer
 * alternates one batch of each, so a client's write waits behind at most one background
 * batch (64 jobs), and is never in a background transaction. All are queued in one loop turn;
 * pos[] is the done order by submission index (background first, then clients). */
TEST(db_background_writes_alternate_with_clients)
{
    static const struct {
        int n_bg, n_client;
        int want_first_client, want_last_bg; /* done positions */
    } rows[] = {
        {0, 3, 0, -1},      /* no background work: clients at once */
        {10, 3, 10, 9},     /* one background batch, then the clients */
        {100, 1, 64, 100},  /* the client between the two background batches */
        {130, 70, 64, 199}, /* 64 bg, 64 clients, 64 bg, 6 clients, 2 bg */
    };
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        uv_loop_t loop;
        struct db *db = NULL;
        struct order o = {0};
        struct job jobs[200];
        int n = rows[r].n_bg + rows[r].n_client;
        uv_loop_init(&loop);
        ASSERT_OK(db_open(&db, &loop, ":memory:"));
        for (int i = 0; i < n; i++) {
            jobs[i] = (struct job){.o = &o, .index = i};
            if (i < rows[r].n_bg)
                ASSERT_OK(db_write_background(db, DB_CRASH_SAFE, work, done, &jobs[i]));
            else
                ASSERT_OK(db_write(db, DB_CRASH_SAFE, work, done, &jobs[i]));
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_EQ(o.next, n);
        int first_client = n, last_bg = -1;
        for (int i = 0; i < n; i++) {
            ASSERT_OK(o.seen[i]);
            if (i >= rows[r].n_bg && o.pos[i] < first_client)
                first_client = o.pos[i];
            if (i < rows[r].n_bg && o.pos[i] > last_bg)
                last_bg = o.pos[i];
        }
        ASSERT_EQ(first_client, rows[r].want_first_client);
        ASSERT_EQ(last_bg, rows[r].want_last_bg);
        db_close(db, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        ASSERT_OK(uv_loop_close(&loop));
    }
}

/* A steady stream of writes, clients' or background: once a background checkpoint has copied
 * a WAL past a quarter of its bound whole, a RESTART checkpoint starts it over, so the writer
 * never has to checkpoint inside a COMMIT and the WAL stays far below its bound. Nothing
 * written is lost. */
TEST(db_wal_restarted_before_the_writer_must_checkpoint)
{
    for (int background = 0; background <= 1; background++) {
        struct db_stats st;
        int max_seen;
        /* A restart is wanted from 100 frames on (a quarter of the bound). */
        write_stream(20, 400, background, &st, &max_seen);
        ASSERT_GT(st.wal_restarts, 0);
        ASSERT_EQ(st.writer_checkpoints, 0);
        ASSERT_LT(max_seen, 400);
    }
}

/* A long background job and a client's write: the job sees db_clients_waiting once the write
 * is queued (never before), so it can end its batch there; a reader never sees it. A
 * background job after the write sees no client waiting, but clients writing. */
struct yield_job {
    int queue_client;    /* the loop queues a client's write while the job runs */
    _Atomic int running; /* set by the job: the loop may queue the write now */
    int saw_before;      /* db_clients_waiting was 1 before the job let the loop go on */
    int writing_before;  /* ... db_clients_writing */
    int saw;             /* ... and once the write was queued, within 5 s */
    int reader_saw;
    int client_done;
    int waiting_after, writing_after; /* seen by a background job after the client's write */
    struct db *db;
};

static int yield_work(struct db_conn *conn, void *arg)
{
    struct yield_job *y = arg;
    y->saw_before = db_clients_waiting(conn);
    y->writing_before = db_clients_writing(conn);
    atomic_store(&y->running, 1);
    for (int i = 0; i < 5000 && !y->saw; i++) { /* up to 5 s, or 100 ms without a client */
        y->saw = db_clients_waiting(conn);
        if (!y->queue_client && i == 100)
            break;
        uv_sleep(1);
    }
    return db_exec(conn, "INSERT INTO setting(key, value) VALUES ('yield', 'v')");
}

static int yield_read(struct db_conn *conn, void *arg)
{
    ((struct yield_job *)arg)->reader_saw = db_clients_waiting(conn) + db_clients_writing(conn);
    return 0;
}

static int after_client_work(struct db_conn *conn, void *arg)
{
    struct yield_job *y = arg;
    y->waiting_after = db_clients_waiting(conn);
    y->writing_after = db_clients_writing(conn);
    return 0;
}

static void client_done(int status, void *arg)
{
    ASSERT_OK(status);
    struct yield_job *y = arg;
    y->client_done = 1;
    ASSERT_OK(db_write_background(y->db, DB_CRASH_SAFE, after_client_work, ok_done, y));
}

static int client_work(struct db_conn *conn, void *arg)
{
    (void)arg;
    return db_exec(conn, "INSERT INTO setting(key, value) VALUES ('client', 'v')");
}

static void on_yield_tick(uv_timer_t *t)
{
    struct yield_job *y = t->data;
    if (!atomic_load(&y->running))
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    if (y->queue_client) {
        ASSERT_OK(db_write(y->db, DB_CRASH_SAFE, client_work, client_done, y));
        ASSERT_OK(db_read(y->db, yield_read, ok_done, y));
    }
}

TEST(db_background_job_sees_clients_waiting)
{
    for (int queue_client = 0; queue_client <= 1; queue_client++) {
        struct test_db t;
        struct yield_job y = {.queue_client = queue_client};
        uv_timer_t tick;
        test_db_open(&t);
        y.db = t.db;
        ASSERT_OK(db_write_background(t.db, DB_CRASH_SAFE, yield_work, ok_done, &y));
        uv_timer_init(&t.loop, &tick);
        tick.data = &y;
        uv_timer_start(&tick, on_yield_tick, 1, 1);
        uv_run(&t.loop, UV_RUN_DEFAULT);
        ASSERT_EQ(y.saw_before, 0);
        ASSERT_EQ(y.writing_before, 0);
        ASSERT_EQ(y.saw, queue_client);
        ASSERT_EQ(y.client_done, queue_client);
        ASSERT_EQ(y.reader_saw, 0);
        /* after the client's write: none waits, but clients are writing (within a second) */
        ASSERT_EQ(y.waiting_after, 0);
        ASSERT_EQ(y.writing_after, queue_client);
        test_db_close(&t);
    }
}
