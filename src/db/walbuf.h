/* A SQLite VFS over the default one whose write-ahead log files coalesce writes: SQLite writes
 * each WAL frame as two pwrite calls (its 24-byte header, then the page), so a group commit of
 * 130 frames cost 260 system calls on the writer, the one thread every write waits for. Here
 * the frames of a transaction collect in memory and reach the file in 64 KiB writes when its
 * commit frame is written (errors are then returned to SQLite by that very write, as before),
 * and before anything that could look at the file: a read of the buffered range, a sync, a
 * truncation, the file's size, a shared-memory barrier (SQLite publishes new frames to other
 * connections only after one) and close. Every other file passes straight through.
 *
 * Thread: walbuf_register from any thread (conn.c calls it before each SQLite open; the first
 * call registers); a file is used by one connection, so by one thread at a time (db.c). */
#ifndef CARAVEL_DB_WALBUF_H
#define CARAVEL_DB_WALBUF_H

#define WALBUF_VFS "caravel-walbuf"

/* Registers WALBUF_VFS (not as the default) over the default VFS, once. 0 or -1. */
int walbuf_register(void);

#endif
