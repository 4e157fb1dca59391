/* Wake-ups between the instances that share one database (docs/ARCHITECTURE.md "Several
 * instances"). A write says, inside its own transaction, that something other instances may
 * have to act on changed (db_notify_send); every instance's listener hears it once the
 * transaction commits (never for a rollback) and calls its callback on the loop.
 *
 * PostgreSQL: NOTIFY (pg_notify) in the writing transaction; the listener is a dedicated libpq
 * connection in non-blocking mode that LISTENs on the channels, its socket watched by uv_poll on
 * the loop (like the curl glue in net/). It reconnects by itself (250 ms, doubling to 30 s);
 * notifications sent while it was away are lost, so each time it is listening again (the first
 * time too) it calls back with channel NULL: "anything may have changed, reconcile".
 * SQLite: one process owns the file; the in-process after-commit events (core/app.h) are the
 * wake-ups, so db_notify_send does nothing and there is no listener.
 *
 * A process never hears its own notifications (the payload carries db_instance()): it has
 * already acted on its commits in-process. */
#ifndef CARAVEL_DB_NOTIFY_H
#define CARAVEL_DB_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "db/db.h"

/* A channel name: lower-case letters, digits and '_', at most this long. */
#define DB_CHANNEL_MAX 48
/* The id a notification carries: at most this many bytes (relay ids and pubkeys fit). */
#define DB_NOTIFY_ID_MAX 128
/* db_instance(): host name (cut), pid and 8 random bytes in hex, at most this long. */
#define DB_INSTANCE_MAX 80

/* This process's name in claims (who holds a relay's sync, a batch of DMs) and notifications:
 * "host:pid:16hex", unique per process start. Any thread; the same string for the process's
 * life. */
const char *db_instance(void);
/* 1 when the process `owner` names (another db_instance() string) is certainly not running:
 * it names this host and a pid that does not exist, or this process's own pid with another
 * random part (an earlier run: in a container every run is pid 1). A claim it left can be
 * taken at once instead of after its lease. 0 when it may be alive. Any thread. */
int db_instance_gone(const char *owner);

/* Pool thread, inside a db_write job: every other instance's listener on channel hears id
 * (may be "") once the transaction commits. Identical notifications of one transaction are
 * delivered once. SQLite: 0 and nothing. 0 or a db_error (the transaction then fails). */
int db_notify_send(struct db_conn *conn, const char *channel, const char *id);

struct db_notify;
/* channel: one of the listened channels, id: what db_notify_send gave (borrowed during the
 * call). channel NULL, id NULL: the listener is (again) listening and may have missed
 * notifications: reconcile. Loop thread. */
typedef void db_notify_fn(const char *channel, const char *id, void *arg);

/* Loop thread. url: DATABASE_URL. channels: n names (copied). PostgreSQL: starts connecting
 * and returns at once (*out set; failures are logged and retried, never fatal). Any other
 * engine: *out = NULL, 0. -1 only for an invalid channel name (a programming error). */
int db_notify_start(struct db_notify **out, uv_loop_t *loop, const char *url,
                    const char *const *channels, size_t n, db_notify_fn *fn, void *arg);
/* 1 while the listener is connected and listening (PostgreSQL), else 0. Loop thread. */
int db_notify_listening(const struct db_notify *n);
/* Loop thread: no more callbacks; closes the connection and the handles, frees, then cb(arg).
 * NULL: cb at once. */
void db_notify_stop(struct db_notify *n, void (*cb)(void *arg), void *arg);

#endif
