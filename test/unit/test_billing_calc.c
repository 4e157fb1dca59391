/* Billing arithmetic (PRODUCT.md §8): periods, replay of activity, rounding. Expected values are
 * worked out by hand from the spec's formula, not from the code. */
#include "test.h"

#include "billing/calc.h"

#define H 3600LL
#define DAY 86400LL
/* 2024-01-31T10:00:00Z, 2023-01-31T10:00:00Z, 2024-03-15T00:00:00Z */
#define JAN31_2024 1706695200LL
#define JAN31_2023 1675159200LL
#define MAR15_2024 1710460800LL

TEST(billing_plan_prices)
{
    ASSERT_EQ(billing_plan_sats("free"), 0);
    ASSERT_EQ(billing_plan_sats("basic"), 10000);
    ASSERT_EQ(billing_plan_sats("growth"), 50000);
    ASSERT_EQ(billing_plan_sats("nope"), -1);
    ASSERT_EQ(billing_plan_sats(NULL), -1);
}

TEST(billing_fixed_periods)
{
    ASSERT_EQ(billing_period_bound(1000, 60, 0), 1000);
    ASSERT_EQ(billing_period_bound(1000, 60, 3), 1180);
    ASSERT_EQ(billing_period_bound(1000, 60, -1), INT64_MIN);
    ASSERT_EQ(billing_period_bound(1000, -5, 1), INT64_MIN);
    ASSERT_EQ(billing_period_bound(1000, 60, INT64_MAX / 2), INT64_MIN);
    ASSERT_EQ(billing_period_index(1000, 60, 999), -1);
    ASSERT_EQ(billing_period_index(1000, 60, 1000), 0);
    ASSERT_EQ(billing_period_index(1000, 60, 1059), 0);
    ASSERT_EQ(billing_period_index(1000, 60, 1060), 1);
}

static const struct {
    int64_t anchor, k, want;
} MONTHS[] = {
    {JAN31_2024, 0, JAN31_2024},
    {JAN31_2024, 1, 1709200800LL},  /* 2024-02-29T10:00Z: leap February clamps to 29 */
    {JAN31_2024, 2, 1711879200LL},  /* 2024-03-31T10:00Z: back to the anchor's day */
    {JAN31_2024, 3, 1714471200LL},  /* 2024-04-30T10:00Z: 30-day month */
    {JAN31_2024, 11, 1735639200LL}, /* 2024-12-31T10:00Z */
    {JAN31_2024, 12, 1738317600LL}, /* 2025-01-31T10:00Z: year rolls over */
    {JAN31_2024, 13, 1740736800LL}, /* 2025-02-28T10:00Z: common February */
    {JAN31_2023, 1, 1677578400LL},  /* 2023-02-28T10:00Z */
    {MAR15_2024, 1, 1713139200LL},  /* 2024-04-15T00:00Z */
};

TEST(billing_calendar_months_clamp_to_month_end)
{
    for (size_t i = 0; i < sizeof(MONTHS) / sizeof(MONTHS[0]); i++) {
        ASSERT_EQ(billing_period_bound(MONTHS[i].anchor, 0, MONTHS[i].k), MONTHS[i].want);
        ASSERT_EQ(billing_period_index(MONTHS[i].anchor, 0, MONTHS[i].want), MONTHS[i].k);
        if (MONTHS[i].k > 0)
            ASSERT_EQ(billing_period_index(MONTHS[i].anchor, 0, MONTHS[i].want - 1),
                      MONTHS[i].k - 1);
    }
    /* Lengths of 29, 31, 30, 28 days. */
    ASSERT_EQ(billing_period_bound(JAN31_2024, 0, 2) - billing_period_bound(JAN31_2024, 0, 1),
              31 * DAY);
    ASSERT_EQ(billing_period_bound(JAN31_2024, 0, 1) - JAN31_2024, 29 * DAY);
    ASSERT_EQ(billing_period_bound(JAN31_2024, 0, 4) - billing_period_bound(JAN31_2024, 0, 3),
              31 * DAY); /* Apr 30 -> May 31 */
    ASSERT_EQ(billing_period_bound(JAN31_2023, 0, 1) - JAN31_2023, 28 * DAY);
    ASSERT_EQ(billing_period_index(JAN31_2024, 0, JAN31_2024 - 1), -1);
}

static const struct {
    int64_t sats, seconds, period, want_amount, want_hours;
} AMOUNTS[] = {
    {10000, 720 * H, 720 * H, 10000, 720},    /* all period: exactly the monthly price */
    {10000, 101 * H, 720 * H, 1403, 101},     /* ceil(10000*101/720) = ceil(1402.77) */
    {10000, 100 * H + 1, 720 * H, 1403, 101}, /* a started hour counts */
    {10000, 1, 720 * H, 14, 1},               /* ceil(10000/720) = ceil(13.88) */
    {50000, 744 * H, 744 * H, 50000, 744},    /* 31-day month */
    {50000, 672 * H, 672 * H, 50000, 672},    /* 28-day month */
    {10000, 60, 60, 10000, 1},                /* hour longer than the period: capped at P */
    {10000, 30, 60, 10000, 1},
    {0, 720 * H, 720 * H, 0, 720}, /* free plan */
    {10000, 0, 720 * H, 0, 0},
    {(1LL << 62) - 1, 720 * H, 720 * H, (1LL << 62) - 1, 720}, /* no 64-bit overflow */
    {(1LL << 62) - 1, 360 * H, 720 * H, 1LL << 61, 360},
};

TEST(billing_amount_rounding)
{
    for (size_t i = 0; i < sizeof(AMOUNTS) / sizeof(AMOUNTS[0]); i++) {
        int64_t hours = -1;
        int64_t got =
            billing_amount(AMOUNTS[i].sats, AMOUNTS[i].seconds, AMOUNTS[i].period, &hours);
        if (got != AMOUNTS[i].want_amount)
            fprintf(stderr, "  row %zu\n", i);
        ASSERT_EQ(got, AMOUNTS[i].want_amount);
        ASSERT_EQ(hours, AMOUNTS[i].want_hours);
    }
    ASSERT_EQ(billing_amount(10000, 10, 0, NULL), -1);
}

#define P (720 * H) /* a 30-day fixed period starting at T0 */
#define T0 1000000LL

static int64_t items_of(const struct billing_row *rows, size_t n, struct billing_item *items,
                        size_t *n_items)
{
    return billing_compute_items(rows, n, T0, T0 + P, items, BILLING_CALC_MAX_ITEMS, n_items);
}

TEST(billing_relay_active_all_period_pays_monthly_price)
{
    struct billing_row rows[] = {{"r1", T0 - 5 * DAY, "basic", "active"}};
    struct billing_item items[BILLING_CALC_MAX_ITEMS];
    size_t n = 0;
    ASSERT_EQ(items_of(rows, 1, items, &n), 10000);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(items[0].relay, "r1");
    ASSERT_STR_EQ(items[0].plan, "basic");
    ASSERT_EQ(items[0].hours, 720);
    ASSERT_EQ(items[0].amount, 10000);
}

TEST(billing_mid_period_creation_and_free_plan)
{
    struct billing_row rows[] = {
        {"r1", T0 + 619 * H, "basic", "active"}, /* 101 h before the end */
        {"r2", T0, "free", "active"},
        {"r3", T0 + P, "growth", "active"}, /* created exactly at the end: next period */
    };
    struct billing_item items[BILLING_CALC_MAX_ITEMS];
    size_t n = 0;
    ASSERT_EQ(items_of(rows, 3, items, &n), 1403);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(items[0].hours, 101);
}

TEST(billing_upgrade_and_downgrade_split_items)
{
    struct billing_row rows[] = {
        {"r1", T0 - 10, "basic", "active"},
        {"r1", T0 + 100 * H, "growth", "active"}, /* upgrade */
        {"r1", T0 + 300 * H, "basic", "active"},  /* downgrade */
        {"r1", T0 + 700 * H, "free", "active"},
    };
    struct billing_item items[BILLING_CALC_MAX_ITEMS];
    size_t n = 0;
    /* basic 100 h + 400 h = 500 h -> ceil(10000*500/720) = 6945; growth 200 h -> 13889 */
    ASSERT_EQ(items_of(rows, 4, items, &n), 6945 + 13889);
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(items[0].plan, "basic");
    ASSERT_EQ(items[0].hours, 500);
    ASSERT_EQ(items[0].amount, 6945);
    ASSERT_STR_EQ(items[1].plan, "growth");
    ASSERT_EQ(items[1].hours, 200);
    ASSERT_EQ(items[1].amount, 13889);
}

TEST(billing_deactivate_reactivate_and_delinquency)
{
    struct billing_row rows[] = {
        {"r1", T0, "basic", "active"},
        {"r1", T0 + 10 * H, "basic", "inactive"},
        {"r1", T0 + 20 * H, "basic", "active"},
        {"r1", T0 + 30 * H + 1, "basic", "delinquent"}, /* 20 h + 1 s active: 21 h */
        {"r1", T0 + 30 * H + 5, "basic", "delinquent"}, /* a sync row: no change */
        {"r2", T0 + 50 * H, "growth", "delinquent"},    /* never active: not billed */
        {"r2", T0 + 60 * H, "growth", "inactive"},
    };
    struct billing_item items[BILLING_CALC_MAX_ITEMS];
    size_t n = 0;
    ASSERT_EQ(items_of(rows, 7, items, &n), 292); /* ceil(10000*21/720) = ceil(291.67) */
    ASSERT_EQ(n, 1);
    ASSERT_EQ(items[0].seconds, 20 * H + 1);
    ASSERT_EQ(items[0].hours, 21);
}

TEST(billing_two_relays_and_nothing_active)
{
    struct billing_row rows[] = {
        {"a", T0 - 1, "basic", "active"},
        {"b", T0 + 360 * H, "growth", "active"},
    };
    struct billing_item items[BILLING_CALC_MAX_ITEMS];
    size_t n = 0;
    ASSERT_EQ(items_of(rows, 2, items, &n), 10000 + 25000);
    ASSERT_EQ(n, 2);
    struct billing_row idle[] = {{"a", T0 - 1, "basic", "inactive"}};
    ASSERT_EQ(items_of(idle, 1, items, &n), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(items_of(NULL, 0, items, &n), 0);
    ASSERT_EQ(billing_compute_items(rows, 2, T0, T0, items, 4, &n), -1);
    ASSERT_EQ(billing_compute_items(rows, 2, T0, T0 + P, items, 1, &n), -1); /* cap */
}

TEST(billing_first_paid_active_time)
{
    struct billing_row rows[] = {
        {"a", 100, "free", "active"},   {"a", 200, "basic", "inactive"},
        {"a", 300, "basic", "active"},  {"a", 400, "basic", "inactive"},
        {"b", 250, "growth", "active"}, {"b", 260, "growth", "delinquent"},
    };
    int64_t t = 0;
    ASSERT_OK(billing_first_paid_active(rows, 6, 0, &t));
    ASSERT_EQ(t, 250);
    ASSERT_OK(billing_first_paid_active(rows, 6, 255, &t));
    ASSERT_EQ(t, 255); /* b is active at 255 */
    ASSERT_OK(billing_first_paid_active(rows, 6, 270, &t));
    ASSERT_EQ(t, 300);
    ASSERT_OK(billing_first_paid_active(rows, 6, 350, &t));
    ASSERT_EQ(t, 350);
    ASSERT_EQ(billing_first_paid_active(rows, 6, 400, &t), -1);
    ASSERT_EQ(billing_first_paid_active(rows, 0, 0, &t), -1);
}
