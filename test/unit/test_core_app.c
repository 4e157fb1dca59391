/* After-commit events of struct app: order, removal by owner, and no hooks = no-op. */
#include "test.h"

#include <string.h>

#include "core/app.h"

struct seen {
    char log[128];
};

static void record(void *owner, const char *id)
{
    struct seen *s = owner;
    strcat(s->log, id);
    strcat(s->log, ";");
}

static void record_upper(void *owner, const char *id)
{
    struct seen *s = owner;
    strcat(s->log, "U");
    strcat(s->log, id);
    strcat(s->log, ";");
}

TEST(app_events_reach_each_hook_in_order_and_only_their_event)
{
    static struct app app; /* zeroed: no hooks */
    struct seen a = {""}, b = {""};
    app_emit(&app, APP_RELAY_CHANGED, "none"); /* feature off: nothing happens */
    app_on(&app, APP_RELAY_CHANGED, record, &a);
    app_on(&app, APP_RELAY_CHANGED, record_upper, &b);
    app_on(&app, APP_TENANT_BILLING_CHANGED, record, &b);
    app_emit(&app, APP_RELAY_CHANGED, "r1");
    app_emit(&app, APP_TENANT_BILLING_CHANGED, "t1");
    ASSERT_STR_EQ(a.log, "r1;");
    ASSERT_STR_EQ(b.log, "Ur1;t1;");
}

TEST(app_off_removes_only_that_owner_and_keeps_the_order)
{
    static struct app app;
    struct seen a = {""}, b = {""}, c = {""};
    app_on(&app, APP_RELAY_CHANGED, record, &a);
    app_on(&app, APP_RELAY_CHANGED, record, &b);
    app_on(&app, APP_RELAY_CHANGED, record, &c);
    app_off(&app, APP_RELAY_CHANGED, &b);
    app_off(&app, APP_TENANT_BILLING_CHANGED, &a); /* not registered there: no-op */
    app_emit(&app, APP_RELAY_CHANGED, "x");
    ASSERT_STR_EQ(a.log, "x;");
    ASSERT_STR_EQ(b.log, "");
    ASSERT_STR_EQ(c.log, "x;");
    ASSERT(app.hooks[APP_RELAY_CHANGED][2].fn.event == NULL);
    app_off(&app, APP_RELAY_CHANGED, &a);
    app_off(&app, APP_RELAY_CHANGED, &c);
    app_emit(&app, APP_RELAY_CHANGED, "y");
    ASSERT_STR_EQ(a.log, "x;");
    ASSERT(app.hooks[APP_RELAY_CHANGED][0].fn.event == NULL);
}

struct fake_gauges {
    int calls;
};

static void sample_a(void *owner, struct metrics_gauges *g)
{
    ((struct fake_gauges *)(void *)g)->calls += *(int *)owner;
}

TEST(app_samplers_are_called_until_removed)
{
    static struct app app;
    int one = 1, ten = 10;
    struct fake_gauges g = {0};
    app_sample(&app, (struct metrics_gauges *)(void *)&g); /* none: no-op */
    app_add_sampler(&app, sample_a, &one);
    app_add_sampler(&app, sample_a, &ten);
    app_sample(&app, (struct metrics_gauges *)(void *)&g);
    ASSERT_EQ(g.calls, 11);
    app_remove_sampler(&app, &one);
    app_sample(&app, (struct metrics_gauges *)(void *)&g);
    ASSERT_EQ(g.calls, 21);
    app_remove_sampler(&app, &ten);
    app_sample(&app, (struct metrics_gauges *)(void *)&g);
    ASSERT_EQ(g.calls, 21);
}
