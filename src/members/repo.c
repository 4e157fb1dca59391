/* SQL of the member counts (see repo.h). */
#include "members/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plans.h"
#include "core/relay_target.h"
#include "db/db.h"
#include "robot/robot.h"
#include "util/debug.h"
#include "util/util.h"

#define MEMBERS_DM_MAX 1024

/* The relays whose counts are read: zooid serves them (the partial index relay_members_due). */
#define COUNTED " status = 'active' AND sync_created = 1"

/* A 64-bit mix (splitmix64): jitter that differs per relay and per claim without a shared PRNG
 * state on the pool thread. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t id_hash(const char *id, uint64_t seed)
{
    uint64_t h = seed;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = mix(h ^ *p);
    return h;
}

/* Steps st (a SELECT of ids, prepared by the caller) into up to max ids, then resets it. */
static int read_ids(struct db_stmt *st, char (*ids)[33], size_t max, size_t *n)
{
    *n = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = DB_DONE;
    while (*n < max && (rc = db_step(st)) == DB_ROW)
        snprintf(ids[(*n)++], 33, "%s", db_col_str(st, 0));
    if (rc == DB_ROW)
        rc = DB_DONE; /* max reached */
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

/* Moves the relay's next read to `at` if it is still at or before `due` (*taken = 1). Of
 * several instances claiming at once, one moves it: PostgreSQL re-checks the condition on the
 * row another's claim has just committed. */
static int set_next(struct db_conn *conn, const char *id, int64_t at, int64_t due, int *taken)
{
    int rc =
        db_run(conn, "UPDATE relay SET members_next_at = ? WHERE id = ? AND members_next_at <= ?",
               DB_INT(at), DB_TEXT(id), DB_INT(due));
    *taken = rc == 0 && db_changes(conn) == 1;
    return rc;
}

/* Relays never placed get a random point of the next interval. */
static int place_new(struct db_conn *conn, int64_t now, int64_t interval, uint64_t seed)
{
    char(*ids)[33] = xcalloc(MEMBERS_PLACE_MAX, sizeof(*ids));
    size_t n = 0;
    int rc = read_ids(db_query(conn,
                               "SELECT id FROM relay WHERE" COUNTED " AND members_next_at = 0"
                               " LIMIT ?",
                               DB_INT(MEMBERS_PLACE_MAX)),
                      ids, MEMBERS_PLACE_MAX, &n);
    int taken;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = set_next(conn, ids[i], now + (int64_t)(id_hash(ids[i], seed) % (uint64_t)interval), 0,
                      &taken);
    free(ids);
    return rc;
}

static int earliest(struct db_conn *conn, int64_t *out)
{
    struct db_stmt *st = db_stmt(conn, "SELECT min(members_next_at) FROM relay WHERE" COUNTED);
    *out = 0;
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW)
        *out = db_col_int64(st, 0);
    db_reset(st);
    return rc == DB_ROW ? 0 : db_status(rc);
}

int repo_members_claim(struct db_conn *conn, int64_t now, int64_t interval, uint64_t seed,
                       char (*ids)[33], size_t max, size_t *n, int64_t *next_due)
{
    ASSERT_POOL_THREAD();
    *n = 0;
    *next_due = 0;
    if (interval < 1)
        interval = 1;
    int rc = place_new(conn, now, interval, seed);
    if (rc == 0)
        rc = read_ids(db_query(conn,
                               "SELECT id FROM relay WHERE" COUNTED " AND members_next_at <= ?"
                               " ORDER BY members_next_at LIMIT ?",
                               DB_INT(now), DB_INT((int64_t)max)),
                      ids, max, n);
    /* interval +- 10 %: relays read together drift apart instead of staying in step. */
    int64_t spread = interval / 5;
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        int64_t jitter = spread ? (int64_t)(id_hash(ids[i], ~seed) % (uint64_t)(spread + 1)) : 0;
        int taken = 0;
        rc = set_next(conn, ids[i], now + interval - spread / 2 + jitter, now, &taken);
        if (taken) /* else another instance claimed it meanwhile: its read */
            memmove(ids[kept++], ids[i], sizeof(ids[i]));
    }
    *n = kept;
    if (rc == 0)
        rc = earliest(conn, next_due);
    if (rc != 0)
        *n = 0;
    return rc;
}

struct relay_row {
    char tenant[65], subdomain[64], plan[32];
    int notified;
};

static int load_relay(struct db_conn *conn, const char *id, struct relay_row *r)
{
    struct db_stmt *st = db_query(conn,
                                  "SELECT tenant, subdomain, plan, over_cap_notified_at IS NOT NULL"
                                  " FROM relay WHERE id = ?",
                                  DB_TEXT(id));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        snprintf(r->tenant, sizeof(r->tenant), "%s", db_col_str(st, 0));
        snprintf(r->subdomain, sizeof(r->subdomain), "%s", db_col_str(st, 1));
        snprintf(r->plan, sizeof(r->plan), "%s", db_col_str(st, 2));
        r->notified = db_col_int(st, 3);
    }
    db_reset(st);
    if (rc == DB_ROW)
        return 0;
    return rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}

/* The one DM of a crossing, queued in this transaction with the mark that it was sent. */
static int tell_owner(struct db_conn *conn, const char *id, const struct relay_row *r,
                      const struct plan *p, int64_t count, int64_t now, const char *domain)
{
    char host[300], text[MEMBERS_DM_MAX];
    relay_target_host(r->subdomain, domain, host, sizeof(host));
    snprintf(text, sizeof(text),
             "Caravel: your relay %s has %lld members, more than the %lld its %s plan allows. "
             "Move it to a larger plan, or remove members, to stay within it.",
             host, (long long)count, (long long)p->members, p->name);
    int rc = robot_queue_dm_sql(conn, r->tenant, text, now);
    if (rc == 0)
        rc = db_run(conn, "UPDATE relay SET over_cap_notified_at = ? WHERE id = ?", DB_INT(now),
                    DB_TEXT(id));
    return rc;
}

int repo_members_record(struct db_conn *conn, const char *id, int known, int64_t count, int64_t now,
                        const char *domain, int *dm)
{
    ASSERT_POOL_THREAD();
    struct relay_row r;
    *dm = 0;
    int rc = load_relay(conn, id, &r);
    /* Unknown is a NULL written by the statement itself: a parameter would be typed text,
     * which PostgreSQL refuses for an integer column. */
    if (rc == 0 && known)
        rc = db_run(conn, "UPDATE relay SET members_count = ?, members_fetched_at = ? WHERE id = ?",
                    DB_INT(count), DB_INT(now), DB_TEXT(id));
    else if (rc == 0)
        rc = db_run(conn,
                    "UPDATE relay SET members_count = NULL, members_fetched_at = ? WHERE id = ?",
                    DB_INT(now), DB_TEXT(id));
    if (rc != 0 || !known)
        return rc;
    const struct plan *p = plan_find(r.plan);
    int over = p && p->members >= 0 && count > p->members;
    if (over && !r.notified) {
        rc = tell_owner(conn, id, &r, p, count, now, domain);
        *dm = rc == 0;
    } else if (!over && r.notified) {
        rc = db_run(conn, "UPDATE relay SET over_cap_notified_at = NULL WHERE id = ?", DB_TEXT(id));
    }
    return rc;
}
