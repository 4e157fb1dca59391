/* After-commit events of struct app (see app.h). Loop thread only. */
#include "core/app.h"

#include <assert.h>
#include <stddef.h>

void app_on(struct app *app, enum app_event ev, app_event_fn *fn, void *owner)
{
    struct app_hook *h = app->hooks[ev];
    int i = 0;
    while (i < APP_MAX_HOOKS && h[i].fn)
        i++;
    assert(i < APP_MAX_HOOKS);
    if (i < APP_MAX_HOOKS)
        h[i] = (struct app_hook){fn, owner};
}

void app_off(struct app *app, enum app_event ev, void *owner)
{
    struct app_hook *h = app->hooks[ev];
    int n = 0;
    /* Keep the others in order, packed at the front. */
    for (int i = 0; i < APP_MAX_HOOKS; i++)
        if (h[i].fn && h[i].owner != owner)
            h[n++] = h[i];
    for (; n < APP_MAX_HOOKS; n++)
        h[n] = (struct app_hook){NULL, NULL};
}

void app_emit(struct app *app, enum app_event ev, const char *id)
{
    for (int i = 0; i < APP_MAX_HOOKS && app->hooks[ev][i].fn; i++)
        app->hooks[ev][i].fn(app->hooks[ev][i].owner, id);
}
