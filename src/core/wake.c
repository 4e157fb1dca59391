/* Sharing after-commit events between instances (see wake.h) over db/notify.h. */
#include "core/wake.h"

#include <string.h>

#include "db/notify.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

/* The channel of each shared event (NULL: not shared). */
static const char *const channel_of[APP_EVENT_COUNT] = {
    [APP_RELAY_CHANGED] = "caravel_relay_changed",
    [APP_DM_QUEUED] = "caravel_dm_queued",
    [APP_BLOCKLIST_CHANGED] = "caravel_blocklist_changed",
    [APP_RECONCILE] = "caravel_reconcile",
};

int app_publish(struct db_conn *conn, enum app_event ev, const char *id)
{
    ASSERT_POOL_THREAD();
    /* Other instances hear a new relay as a change: their sync workers may claim it. */
    if (ev == APP_RELAY_CREATED)
        ev = APP_RELAY_CHANGED;
    if ((unsigned)ev >= APP_EVENT_COUNT || !channel_of[ev])
        return 0;
    return db_notify_send(conn, channel_of[ev], id ? id : "");
}

/* Another instance committed ev (or, channel NULL, the listener may have missed some). */
static void on_notify(const char *channel, const char *id, void *arg)
{
    struct app *app = arg;
    if (app->stopping)
        return;
    if (!channel) {
        app_emit(app, APP_RECONCILE, "");
        return;
    }
    for (int ev = 0; ev < APP_EVENT_COUNT; ev++) {
        if (channel_of[ev] && strcmp(channel_of[ev], channel) == 0) {
            app_emit(app, (enum app_event)ev, id);
            return;
        }
    }
}

int app_listen_start(struct app *app)
{
    ASSERT_LOOP_THREAD();
    const char *channels[APP_EVENT_COUNT];
    size_t n = 0;
    for (int ev = 0; ev < APP_EVENT_COUNT; ev++)
        if (channel_of[ev])
            channels[n++] = channel_of[ev];
    if (db_notify_start(&app->wake, app->loop, app->cfg.db_path, channels, n, on_notify, app) !=
        0) {
        LOG_ERROR("cannot listen for other instances' changes");
        return -1;
    }
    return 0;
}

void app_listen_stop(struct app *app, void (*cb)(void *arg), void *arg)
{
    ASSERT_LOOP_THREAD();
    struct db_notify *n = app->wake;
    app->wake = NULL;
    db_notify_stop(n, cb, arg);
}
