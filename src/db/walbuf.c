/* The coalescing WAL VFS (walbuf.h). The layout of a WAL file (SQLite's file format): a
 * 32-byte header, then frames of a 24-byte header and one page; a frame header's second
 * big-endian word is non-zero only in the commit frame of a transaction. */
#include "db/walbuf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define WAL_FILE_HDR 32
#define FRAME_HDR 24
#define BUF_MAX (4 << 20)    /* a larger transaction goes to the file in several flushes */
#define WRITE_MAX (64 << 10) /* per write call of the default VFS (flush) */

struct wb_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, right after this struct */
    int is_wal;
    int commit_page_next; /* the last write was a commit frame's header */
    unsigned char *buf;   /* owned; NULL until the first buffered write */
    size_t len, cap;
    sqlite3_int64 off; /* file offset of buf[0] */
};

static sqlite3_vfs wb_vfs;
static sqlite3_vfs *real_vfs;

#define REAL(f) (((struct wb_file *)(f))->real)

static size_t wrapper_size(void)
{
    return (sizeof(struct wb_file) + 7) & ~(size_t)7; /* the real file after it, aligned */
}

/* Writes what is buffered, in pieces of WRITE_MAX: the unix VFS writes at most 128 KiB per
 * call (it masks the length with 0x1ffff, so 128 KiB exactly would write nothing and fail as
 * SQLITE_FULL). On failure the frames are dropped: SQLite rolls the transaction back and
 * writes them again from the same place. */
static int flush(struct wb_file *w)
{
    int rc = SQLITE_OK;
    for (size_t at = 0; at < w->len && rc == SQLITE_OK; at += WRITE_MAX) {
        size_t n = w->len - at < WRITE_MAX ? w->len - at : WRITE_MAX;
        rc = w->real->pMethods->xWrite(w->real, w->buf + at, (int)n, w->off + (sqlite3_int64)at);
    }
    w->len = 0;
    w->commit_page_next = 0;
    return rc;
}

static int is_commit_header(const void *p, int n, sqlite3_int64 off)
{
    const unsigned char *h = p;
    return n == FRAME_HDR && off >= WAL_FILE_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int buffer(struct wb_file *w, const void *p, size_t n, sqlite3_int64 off)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64 * 1024;
        while (cap < w->len + n)
            cap *= 2;
        unsigned char *b = realloc(w->buf, cap);
        if (!b)
            return SQLITE_NOMEM;
        w->buf = b;
        w->cap = cap;
    }
    if (w->len == 0)
        w->off = off;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return SQLITE_OK;
}

static int wb_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    struct wb_file *w = (struct wb_file *)f;
    if (!w->is_wal)
        return w->real->pMethods->xWrite(w->real, p, n, off);
    int rc = SQLITE_OK;
    if (w->len && (off != w->off + (sqlite3_int64)w->len || w->len + (size_t)n > BUF_MAX))
        rc = flush(w);
    if (rc == SQLITE_OK && n > WRITE_MAX)
        return w->real->pMethods->xWrite(w->real, p, n, off); /* pages are at most 64 KiB */
    if (rc == SQLITE_OK)
        rc = buffer(w, p, (size_t)n, off);
    if (rc != SQLITE_OK)
        return rc;
    if (w->commit_page_next) /* the commit frame's page: the transaction is complete */
        return flush(w);
    w->commit_page_next = is_commit_header(p, n, off);
    return SQLITE_OK;
}

static int wb_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    struct wb_file *w = (struct wb_file *)f;
    if (w->len && off < w->off + (sqlite3_int64)w->len && off + n > w->off) {
        int rc = flush(w);
        if (rc != SQLITE_OK)
            return rc;
    }
    return w->real->pMethods->xRead(w->real, p, n, off);
}

static int wb_close(sqlite3_file *f)
{
    struct wb_file *w = (struct wb_file *)f;
    int rc = flush(w);
    int rc2 = w->real->pMethods->xClose(w->real);
    free(w->buf);
    w->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = flush((struct wb_file *)f);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int wb_sync(sqlite3_file *f, int flags)
{
    int rc = flush((struct wb_file *)f);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int wb_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = flush((struct wb_file *)f);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

/* Other connections see new frames only after this barrier: they must be in the file. (The
 * commit frame's write flushed them already; this is the backstop, and has no way to fail.) */
static void wb_shm_barrier(sqlite3_file *f)
{
    (void)flush((struct wb_file *)f);
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

/* ---- the rest passes through ---- */

static int wb_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int wb_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int wb_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int wb_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int wb_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int wb_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int wb_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static int wb_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int wb_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int wb_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods wb_methods = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct wb_file *w = (struct wb_file *)f;
    memset(w, 0, sizeof(*w));
    w->real = (sqlite3_file *)((char *)f + wrapper_size());
    w->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, w->real, flags, out_flags);
    /* Our methods only over a file the default VFS opened (and with methods this version
     * has: the unix VFS's are version 3); else SQLite must not call xClose on it. */
    if (rc == SQLITE_OK && w->real->pMethods && w->real->pMethods->iVersion >= 3)
        w->base.pMethods = &wb_methods;
    else if (rc == SQLITE_OK && w->real->pMethods) {
        w->real->pMethods->xClose(w->real);
        rc = SQLITE_CANTOPEN;
    }
    return rc;
}

/* The VFS's own calls go to the default VFS with its own pointer. */
static int wb_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int wb_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int wb_sleep(sqlite3_vfs *vfs, int micros)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, micros);
}

static int wb_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int wb_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int wb_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int registered = -1;

static void register_once(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs || real_vfs->iVersion < 2)
        return;
    wb_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)wrapper_size() + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = WALBUF_VFS,
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xDlOpen = real_vfs->xDlOpen,
        .xDlError = real_vfs->xDlError,
        .xDlSym = real_vfs->xDlSym,
        .xDlClose = real_vfs->xDlClose,
        .xRandomness = wb_randomness,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_current_time,
        .xGetLastError = wb_last_error,
        .xCurrentTimeInt64 = wb_current_time64,
    };
    registered = sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK ? 0 : -1;
}

int walbuf_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_once);
    return registered;
}
