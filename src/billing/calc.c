#include "billing/calc.h"

#include <string.h>
#include <time.h>

#include "core/plans.h"
#include "util/util.h"

#define MONTHS_MAX (12LL * 10000) /* a calendar anchor is good for 10000 years of periods */

int64_t billing_plan_sats(const char *plan)
{
    const struct plan *p = plan_find(plan);
    return p ? p->sats : -1;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t year, int mon)
{
    static const int DAYS[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return mon == 1 && is_leap(year) ? 29 : DAYS[mon];
}

static int64_t month_bound(int64_t anchor, int64_t k)
{
    time_t a = (time_t)anchor;
    struct tm tm;
    if (k < 0 || k > MONTHS_MAX || !gmtime_r(&a, &tm))
        return INT64_MIN;
    int64_t months = (int64_t)tm.tm_mon + k;
    int64_t year = 1900 + (int64_t)tm.tm_year + months / 12;
    int mon = (int)(months % 12);
    tm.tm_year = (int)(year - 1900);
    tm.tm_mon = mon;
    tm.tm_mday = MIN(tm.tm_mday, days_in_month(year, mon));
    tm.tm_isdst = 0;
    return (int64_t)timegm(&tm);
}

int64_t billing_period_bound(int64_t anchor, int64_t period, int64_t k)
{
    if (period == 0)
        return month_bound(anchor, k);
    if (period < 0 || period > BILLING_CALC_MAX_PERIOD || k < 0)
        return INT64_MIN;
    if (k > (INT64_MAX - (anchor > 0 ? anchor : 0)) / period)
        return INT64_MIN;
    return anchor + k * period;
}

int64_t billing_period_index(int64_t anchor, int64_t period, int64_t t)
{
    if (t < anchor || period < 0 || period > BILLING_CALC_MAX_PERIOD)
        return -1;
    if (period > 0)
        return (t - anchor) / period;
    time_t a = (time_t)anchor, tt = (time_t)t;
    struct tm ta, tb;
    if (!gmtime_r(&a, &ta) || !gmtime_r(&tt, &tb))
        return -1;
    int64_t k = ((int64_t)tb.tm_year - ta.tm_year) * 12 + (tb.tm_mon - ta.tm_mon);
    if (k > MONTHS_MAX)
        return -1;
    /* The estimate is off by at most one month either way (day and time of day). */
    while (k > 0 && month_bound(anchor, k) > t)
        k--;
    while (k < MONTHS_MAX && month_bound(anchor, k + 1) <= t)
        k++;
    return k;
}

int64_t billing_amount(int64_t sats, int64_t seconds, int64_t period_len, int64_t *hours)
{
    int64_t h = seconds > 0 ? (seconds + 3599) / 3600 : 0;
    if (hours)
        *hours = h;
    if (period_len <= 0 || period_len > BILLING_CALC_MAX_PERIOD)
        return -1;
    if (sats <= 0 || h == 0)
        return 0;
    int64_t billed = h > period_len / 3600 + 1 ? period_len : MIN(h * 3600, period_len);
    /* sats * billed / P without overflow: sats = q*P + r, so the product is q*billed*P/P +
     * r*billed/P; r < P and billed <= P keep r*billed below 2^57 for P <= 10 years. */
    int64_t q = sats / period_len, r = sats % period_len;
    int64_t rb = r * billed;
    return q * billed + rb / period_len + (rb % period_len != 0);
}

static int is_active_paid(const char *plan, const char *status)
{
    return status && strcmp(status, "active") == 0 && billing_plan_sats(plan) > 0;
}

/* End (exclusive) of the group of rows of the relay at rows[i]. */
static size_t group_end(const struct billing_row *rows, size_t n, size_t i)
{
    size_t j = i + 1;
    while (j < n && strcmp(rows[j].relay, rows[i].relay) == 0)
        j++;
    return j;
}

static struct billing_item *find_item(struct billing_item *items, size_t *n_items, size_t cap,
                                      const char *relay, const char *plan)
{
    for (size_t i = 0; i < *n_items; i++)
        if (strcmp(items[i].relay, relay) == 0 && strcmp(items[i].plan, plan) == 0)
            return &items[i];
    if (*n_items >= cap || strlen(relay) >= sizeof(items->relay) ||
        strlen(plan) >= sizeof(items->plan))
        return NULL;
    struct billing_item *it = &items[(*n_items)++];
    memset(it, 0, sizeof(*it));
    strcpy(it->relay, relay);
    strcpy(it->plan, plan);
    return it;
}

static int add_seconds(struct billing_item *items, size_t *n_items, size_t cap,
                       const struct billing_row *state, int64_t secs)
{
    if (!state || secs <= 0 || !is_active_paid(state->plan, state->status))
        return 0;
    struct billing_item *it = find_item(items, n_items, cap, state->relay, state->plan);
    if (!it)
        return -1;
    it->seconds += secs;
    return 0;
}

/* Replays one relay's rows [i, j) over [start, end). */
static int replay_relay(const struct billing_row *rows, size_t i, size_t j, int64_t start,
                        int64_t end, struct billing_item *items, size_t cap, size_t *n_items)
{
    const struct billing_row *state = NULL;
    int64_t t = start;
    for (size_t r = i; r < j && rows[r].at < end; r++) {
        if (rows[r].at > start) {
            if (add_seconds(items, n_items, cap, state, rows[r].at - t) < 0)
                return -1;
            t = rows[r].at;
        }
        state = &rows[r];
    }
    return add_seconds(items, n_items, cap, state, end - t);
}

int64_t billing_compute_items(const struct billing_row *rows, size_t n, int64_t start, int64_t end,
                              struct billing_item *items, size_t cap, size_t *n_items)
{
    *n_items = 0;
    if (end <= start || end - start > BILLING_CALC_MAX_PERIOD)
        return -1;
    for (size_t i = 0; i < n; i = group_end(rows, n, i))
        if (replay_relay(rows, i, group_end(rows, n, i), start, end, items, cap, n_items) < 0)
            return -1;
    int64_t total = 0;
    for (size_t i = 0; i < *n_items; i++) {
        struct billing_item *it = &items[i];
        it->amount =
            billing_amount(billing_plan_sats(it->plan), it->seconds, end - start, &it->hours);
        total += it->amount;
    }
    return total;
}

/* Earliest paid-active time >= since of one relay's rows [i, j), or INT64_MAX. */
static int64_t relay_first_paid(const struct billing_row *rows, size_t i, size_t j, int64_t since)
{
    const struct billing_row *state = NULL;
    size_t r = i;
    for (; r < j && rows[r].at <= since; r++)
        state = &rows[r];
    if (state && is_active_paid(state->plan, state->status))
        return since;
    for (; r < j; r++)
        if (is_active_paid(rows[r].plan, rows[r].status))
            return rows[r].at;
    return INT64_MAX;
}

int billing_first_paid_active(const struct billing_row *rows, size_t n, int64_t since, int64_t *out)
{
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < n; i = group_end(rows, n, i))
        best = MIN(best, relay_first_paid(rows, i, group_end(rows, n, i), since));
    if (best == INT64_MAX)
        return -1;
    *out = best;
    return 0;
}

int64_t billing_next_lookup(int64_t base, int64_t expires_at, int64_t now, int notifications)
{
    static const int64_t FIRST[] = {60, 300, 1800}; /* then every BILLING_LOOKUP_HOURLY */
    if (now >= expires_at || notifications)
        return expires_at;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < sizeof(FIRST) / sizeof(FIRST[0]) && next == INT64_MAX; i++)
        if (base + FIRST[i] > now)
            next = base + FIRST[i];
    if (next == INT64_MAX) {
        int64_t since = now < base ? 0 : now - base;
        next = base + (since / BILLING_LOOKUP_HOURLY + 1) * BILLING_LOOKUP_HOURLY;
    }
    return MIN(next, expires_at);
}
