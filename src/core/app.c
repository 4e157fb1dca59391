/* After-commit events and gauge samplers of struct app (see app.h). Loop thread only. */
#include "core/app.h"

#include <stddef.h>

#include "util/debug.h"

static int hook_used(const struct app_hook *h)
{
    return h->owner != NULL || h->fn.event != NULL;
}

/* Appends to a packed list of APP_MAX_HOOKS entries. */
static void hook_add(struct app_hook *list, struct app_hook hook)
{
    int i = 0;
    while (i < APP_MAX_HOOKS && hook_used(&list[i]))
        i++;
    DEBUG_ASSERT(i < APP_MAX_HOOKS);
    if (i < APP_MAX_HOOKS)
        list[i] = hook;
}

/* Removes every entry of owner, keeping the others in order, packed at the front. */
static void hook_remove(struct app_hook *list, void *owner)
{
    int n = 0;
    for (int i = 0; i < APP_MAX_HOOKS; i++)
        if (hook_used(&list[i]) && list[i].owner != owner)
            list[n++] = list[i];
    for (; n < APP_MAX_HOOKS; n++)
        list[n] = (struct app_hook){{NULL}, NULL};
}

void app_on(struct app *app, enum app_event ev, app_event_fn *fn, void *owner)
{
    ASSERT_LOOP_THREAD();
    hook_add(app->hooks[ev], (struct app_hook){.fn.event = fn, .owner = owner});
}

void app_off(struct app *app, enum app_event ev, void *owner)
{
    ASSERT_LOOP_THREAD();
    hook_remove(app->hooks[ev], owner);
}

void app_emit(struct app *app, enum app_event ev, const char *id)
{
    ASSERT_LOOP_THREAD();
    for (int i = 0; i < APP_MAX_HOOKS && hook_used(&app->hooks[ev][i]); i++)
        app->hooks[ev][i].fn.event(app->hooks[ev][i].owner, id);
}

void app_add_sampler(struct app *app, app_sample_fn *fn, void *owner)
{
    ASSERT_LOOP_THREAD();
    hook_add(app->samplers, (struct app_hook){.fn.sample = fn, .owner = owner});
}

void app_remove_sampler(struct app *app, void *owner)
{
    ASSERT_LOOP_THREAD();
    hook_remove(app->samplers, owner);
}

void app_sample(const struct app *app, struct metrics_gauges *g)
{
    ASSERT_LOOP_THREAD();
    for (int i = 0; i < APP_MAX_HOOKS && hook_used(&app->samplers[i]); i++)
        app->samplers[i].fn.sample(app->samplers[i].owner, g);
}
