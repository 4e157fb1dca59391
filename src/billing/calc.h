/* Billing arithmetic (PRODUCT.md §8), pure: no loop, no database, thread-safe.
 *
 * Periods are [bound(k), bound(k+1)) from a tenant's anchor: either fixed `period` seconds,
 * or (period == 0) calendar months in UTC — the anchor's day of month and time of day, the
 * day clamped to the target month's end (a Jan 31 anchor gives Feb 28/29, then Mar 31).
 *
 * Usage is replayed from a relay's activity rows (time, plan and status after the change):
 * the state of a row holds until the next row. A relay bills `hours = ceil(active seconds /
 * 3600)` per paid plan and `amount = ceil(sats * min(hours*3600, P) / P)`. */
#ifndef CARAVEL_BILLING_CALC_H
#define CARAVEL_BILLING_CALC_H

#include <stddef.h>
#include <stdint.h>

/* Longest accepted fixed period (10 years): keeps the amount arithmetic inside 64 bits. */
#define BILLING_CALC_MAX_PERIOD (10LL * 366 * 86400)
#define BILLING_CALC_MAX_ITEMS 1024
#define BILLING_CALC_PLAN_MAX 32

/* Monthly price in sats of a plan id (free 0, basic 10000, growth 50000); -1 if unknown. */
int64_t billing_plan_sats(const char *plan);

/* Start of period k (k >= 0) from anchor; period 0 = calendar months. Returns the unix time,
 * or INT64_MIN when out of range (k negative, period > BILLING_CALC_MAX_PERIOD or negative). */
int64_t billing_period_bound(int64_t anchor, int64_t period, int64_t k);
/* Index k of the period containing t (t >= anchor), or -1 if t < anchor or bad period. */
int64_t billing_period_index(int64_t anchor, int64_t period, int64_t t);

/* hours = ceil(seconds / 3600); amount = ceil(sats * min(hours*3600, period_len) /
 * period_len), computed without overflow for sats < 2^62 and period_len <=
 * BILLING_CALC_MAX_PERIOD. Returns the amount, 0 for sats <= 0 or seconds <= 0, -1 if
 * period_len is out of range. *hours (may be NULL) receives the hours. */
int64_t billing_amount(int64_t sats, int64_t seconds, int64_t period_len, int64_t *hours);

/* One activity row of a relay. Strings are borrowed. Rows passed to the functions below
 * are sorted by relay, then by time (then by insertion order). */
struct billing_row {
    const char *relay;
    int64_t at;
    const char *plan;
    const char *status; /* "active", "inactive", "delinquent" */
};

struct billing_item {
    char relay[65];
    char plan[BILLING_CALC_PLAN_MAX];
    int64_t seconds; /* active on that plan inside the period */
    int64_t hours;
    int64_t amount; /* sats */
};

/* Items (one per relay and paid plan with active time inside [start, end)) into items
 * (capacity cap, BILLING_CALC_MAX_ITEMS is plenty); free and unknown plans are left out.
 * Returns the invoice total in sats (>= 0) and *n_items, or -1 when cap is too small or
 * start/end are invalid. */
int64_t billing_compute_items(const struct billing_row *rows, size_t n, int64_t start, int64_t end,
                              struct billing_item *items, size_t cap, size_t *n_items);

/* Earliest time >= since at which some relay is active on a paid plan: 0 and *out, or -1
 * if none (as of the last row). */
int billing_first_paid_active(const struct billing_row *rows, size_t n, int64_t since,
                              int64_t *out);

/* Lookup schedule of an unsettled BOLT11 on the platform wallet: lookup_invoice at base +
 * 1 min, + 5 min, + 30 min, then every hour after base, and once at its expiry (settled or
 * not: the last look before it is replaced). base is when it was last handed to a payer (its
 * creation, a DM, a pay_invoice). With notifications (the wallet pushes payment_received) the
 * periodic lookups are skipped and only the one at expiry remains. Returns the first
 * scheduled time > now, at most expires_at; expires_at itself once now >= expires_at. */
#define BILLING_LOOKUP_HOURLY 3600
int64_t billing_next_lookup(int64_t base, int64_t expires_at, int64_t now, int notifications);

#endif
