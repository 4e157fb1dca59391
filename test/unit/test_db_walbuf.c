/* db/walbuf.c: a transaction's WAL frames reach the file in a few large writes instead of two
 * per frame, and another connection reads every committed row, for transactions below and
 * above the default VFS's 128 KiB per-write limit. pwrite calls are counted through the
 * default VFS's system-call table (xSetSystemCall). */
#include "test.h"
#include "db_fixture.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db/db.h"

static sqlite3_syscall_ptr real_pwrite;
static int pwrites;

static ssize_t counting_pwrite(int fd, const void *p, size_t n, off_t off)
{
    pwrites++;
    return ((ssize_t(*)(int, const void *, size_t, off_t))real_pwrite)(fd, p, n, off);
}

/* Counts the default VFS's pwrite (or pwrite64) calls; returns the name it replaced. */
static const char *count_pwrites(sqlite3_vfs *unix_vfs)
{
    static const char *const names[] = {"pwrite64", "pwrite"};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_syscall_ptr p = unix_vfs->xGetSystemCall(unix_vfs, names[i]);
        if (p && unix_vfs->xSetSystemCall(unix_vfs, names[i],
                                          (sqlite3_syscall_ptr)counting_pwrite) == SQLITE_OK) {
            real_pwrite = p;
            return names[i];
        }
    }
    return NULL;
}

TEST(db_walbuf_frames_leave_together_and_are_read_back)
{
    static const int rows[] = {1, 10, 100, 400}; /* 2 KiB rows in one transaction */
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
    ASSERT_NOT_NULL(unix_vfs);
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        char dir[64], path[128], sql[160];
        struct db_conn *w = NULL, *other = NULL;
        test_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/w%zu.db", dir, r);
        ASSERT_OK(db_conn_open(&w, path, 1));
        ASSERT_OK(db_exec(w, "PRAGMA wal_autocheckpoint=0"));
        const char *name = count_pwrites(unix_vfs);
        ASSERT_NOT_NULL(name);
        pwrites = 0;
        ASSERT_OK(db_exec(w, "BEGIN IMMEDIATE"));
        snprintf(sql, sizeof(sql),
                 "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < %d) "
                 "INSERT INTO setting(key, value) SELECT 'k' || v, hex(randomblob(1024)) FROM n",
                 rows[r]);
        ASSERT_OK(db_exec(w, sql));
        ASSERT_OK(db_exec(w, "COMMIT"));
        int n = pwrites;
        ASSERT_OK(unix_vfs->xSetSystemCall(unix_vfs, name, real_pwrite));
        /* Without the buffer: two writes per frame (its header, its page). With it: the
         * frames in 64 KiB pieces, plus the WAL header's own write at most. */
        struct stat wal;
        snprintf(sql, sizeof(sql), "%s-wal", path);
        ASSERT_OK(stat(sql, &wal));
        long frames = ((long)wal.st_size - 32) / (4096 + 24);
        ASSERT_GT(frames, 0);
        ASSERT_GT(n, 0);
        ASSERT_LE(n, 2 + (long)wal.st_size / (64 * 1024));
        ASSERT_OK(db_conn_open(&other, path, 0));
        ASSERT_EQ(test_db_int(other, "SELECT count(*) FROM setting WHERE key LIKE 'k%'"), rows[r]);
        db_conn_close(other);
        db_conn_close(w);
    }
}
