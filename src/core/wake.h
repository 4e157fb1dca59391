/* The after-commit events (core/app.h) that other instances on the same database must hear:
 * a write publishes its event inside its transaction (app_publish); every other instance's
 * listener turns it back into the same app_emit once the transaction commits. On SQLite (one
 * instance) publishing does nothing and nothing listens: the in-process app_emit after the
 * commit is the whole story. docs/ARCHITECTURE.md "Several instances".
 *
 *   event                          published by                     heard by
 *   APP_RELAY_CHANGED (relay id)   repo_relay_mark_dirty            sync worker, block list
 *   APP_RELAY_CREATED (relay id)   POST /relays, heard elsewhere as APP_RELAY_CHANGED
 *   APP_DM_QUEUED ("")             robot_queue_dm_sql               robot outbox
 *   APP_BLOCKLIST_CHANGED (pubkey) the API's block-list writes       block list
 *   (any shared event)             the API's write (api/respond.c)
 * (Billing wakes its leader over a channel of its own, billing/worker.c: a wallet change is
 * not re-emitted on every instance.)
 *   APP_RECONCILE ("")             a worker letting go of its claims at a graceful stop
 *                                  (sync, block list)               sync, robot, block list
 * The listener's (re)connection emits APP_RECONCILE too: notifications may have been missed
 * while it was away, so every worker looks at the database again. */
#ifndef CARAVEL_CORE_WAKE_H
#define CARAVEL_CORE_WAKE_H

#include "core/app.h"
#include "db/db.h"

/* Pool thread, inside a db_write job: other instances emit ev with id once the transaction
 * commits. Events that are not shared: 0 and nothing. 0 or a db_error. */
int app_publish(struct db_conn *conn, enum app_event ev, const char *id);

/* Loop thread, after the workers registered their hooks: starts listening (PostgreSQL; a
 * failure to connect is logged and retried, never fatal). Sets app->wake. 0, or -1 logged. */
int app_listen_start(struct app *app);
/* Loop thread: stops listening, then cb(arg) (at once when nothing listens). */
void app_listen_stop(struct app *app, void (*cb)(void *arg), void *arg);

#endif
