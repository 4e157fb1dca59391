#include "sync/repo.h"

#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "core/store.h"
#include "util/debug.h"
#include "util/util.h"

#define RELAY_COLUMNS                                                                              \
    "id, tenant, subdomain, schema, secret, plan, status, info_name, info_icon, "                  \
    "info_description, policy_public_join, policy_strip_signatures, groups_enabled, "              \
    "management_enabled, blossom_enabled, livekit_enabled, push_enabled, synced, "                 \
    "sync_created, sync_attempts, sync_version, sync_config, moderators"

void sync_relay_free(struct sync_relay *r)
{
    if (r->secret)
        secure_zero(r->secret, strlen(r->secret));
    char **strs[] = {
        &r->id,          &r->tenant,    &r->subdomain, &r->schema,    &r->secret,
        &r->plan,        &r->status,    &r->info_name, &r->info_icon, &r->info_description,
        &r->sync_config, &r->moderators};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

int64_t sync_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    return MIN(d, cap_ms);
}

static void read_row(struct db_stmt *st, struct sync_relay *r)
{
    char **strs[] = {&r->id,   &r->tenant, &r->subdomain, &r->schema,    &r->secret,
                     &r->plan, &r->status, &r->info_name, &r->info_icon, &r->info_description};
    int *ints[] = {&r->policy_public_join, &r->policy_strip_signatures,
                   &r->groups_enabled,     &r->management_enabled,
                   &r->blossom_enabled,    &r->livekit_enabled,
                   &r->push_enabled,       &r->synced,
                   &r->sync_created,       &r->sync_attempts};
    int col = 0;
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        char *s = db_col_text(st, col++);
        *strs[i] = s ? s : xstrdup("");
    }
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        *ints[i] = db_col_int(st, col++);
    r->sync_version = db_col_int64(st, col++);
    r->sync_config = db_col_text(st, col++); /* NULL: never synced by this version */
    char *mods = db_col_text(st, col);
    r->moderators = mods ? mods : xstrdup("");
}

int repo_sync_load(struct db_conn *conn, const char *id, struct sync_relay *out)
{
    ASSERT_POOL_THREAD();
    memset(out, 0, sizeof(*out));
    struct db_stmt *st =
        db_query(conn, "SELECT " RELAY_COLUMNS " FROM relay WHERE id = ?", DB_TEXT(id));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW)
        read_row(st, out);
    db_reset(st);
    if (rc == DB_ROW)
        return 0;
    return rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}

int repo_sync_due(struct db_conn *conn, int64_t now, int64_t now_ms, int max_attempts, size_t limit,
                  char ***ids, size_t *n)
{
    ASSERT_POOL_THREAD();
    *ids = NULL;
    *n = 0;
    struct db_stmt *st =
        db_query(conn,
                 "SELECT id FROM relay WHERE synced = 0 AND sync_next_at <= ?1"
                 " AND sync_attempts < ?2 AND (sync_owner IS NULL OR sync_lease_until <= ?3)"
                 " ORDER BY sync_next_at LIMIT ?4",
                 DB_INT(now), DB_INT(max_attempts), DB_INT(now_ms), DB_INT((int64_t)limit));
    if (!st)
        return DB_EGENERIC;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        char *id = db_col_text(st, 0);
        if (!id)
            continue;
        *ids = xrealloc(*ids, (*n + 1) * sizeof(**ids));
        (*ids)[(*n)++] = id;
    }
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

/* tenant, plan, status and sync_attempts of a relay, for its activity row. */
static int load_brief(struct db_conn *conn, const char *id, char **tenant, char **plan,
                      char **status, int *attempts)
{
    struct db_stmt *st = db_query(conn,
                                  "SELECT tenant, plan, status, sync_attempts FROM relay"
                                  " WHERE id = ?",
                                  DB_TEXT(id));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        *tenant = db_col_text(st, 0);
        *plan = db_col_text(st, 1);
        *status = db_col_text(st, 2);
        *attempts = db_col_int(st, 3);
    }
    db_reset(st);
    if (rc == DB_ROW)
        return 0;
    return rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}

static int insert_activity(struct db_conn *conn, const char *id, const char *type, int64_t now,
                           int *attempts)
{
    char *tenant = NULL, *plan = NULL, *status = NULL;
    int n = 0;
    int rc = load_brief(conn, id, &tenant, &plan, &status, &n);
    if (rc == 0)
        rc = repo_activity_insert(conn, tenant, type, "relay", id, plan, status, now);
    if (attempts)
        *attempts = n;
    free(tenant);
    free(plan);
    free(status);
    return rc;
}

int repo_sync_complete(struct db_conn *conn, const char *id, int64_t version, const char *config,
                       int64_t now, int *stale)
{
    ASSERT_POOL_THREAD();
    *stale = 1;
    int rc = db_run(conn, "UPDATE relay SET sync_created = 1, sync_config = ? WHERE id = ?",
                    DB_TEXT(config), DB_TEXT(id));
    if (rc != 0 || db_changes(conn) == 0)
        return rc ? rc : DB_ENOTFOUND;
    rc = db_run(conn,
                "UPDATE relay SET synced = 1, sync_error = NULL, sync_attempts = 0,"
                " sync_next_at = 0 WHERE id = ? AND sync_version = ?",
                DB_TEXT(id), DB_INT(version));
    if (rc != 0)
        return rc;
    if (db_changes(conn) == 0)
        return 0; /* changed meanwhile: sync_created is kept, the rest waits for the next sync */
    *stale = 0;
    return insert_activity(conn, id, "complete_relay_sync", now, NULL);
}

int repo_sync_fail(struct db_conn *conn, const char *id, const char *error, int64_t now,
                   int64_t base_ms, int64_t cap_ms, int *attempts, int64_t *delay_ms)
{
    ASSERT_POOL_THREAD();
    int n = 0;
    int rc = insert_activity(conn, id, "fail_relay_sync", now, &n);
    if (rc != 0)
        return rc;
    n++;
    int64_t delay = sync_backoff_ms(n, base_ms, cap_ms);
    rc = db_run(conn,
                "UPDATE relay SET sync_error = ?, sync_attempts = ?, sync_next_at = ?"
                " WHERE id = ?",
                DB_TEXT(error), DB_INT(n), DB_INT(now + (delay + 999) / 1000), DB_TEXT(id));
    if (rc != 0)
        return rc;
    *attempts = n;
    *delay_ms = delay;
    return 0;
}

int repo_sync_fail_permanent(struct db_conn *conn, const char *id, const char *error, int64_t now,
                             int give_up_at)
{
    ASSERT_POOL_THREAD();
    int rc = insert_activity(conn, id, "fail_relay_sync", now, NULL);
    if (rc != 0)
        return rc;
    return db_run(conn,
                  "UPDATE relay SET sync_error = ?, sync_attempts = ?, sync_next_at = ?"
                  " WHERE id = ?",
                  DB_TEXT(error), DB_INT(give_up_at), DB_INT(now), DB_TEXT(id));
}

int repo_sync_claim(struct db_conn *conn, const char *id, const char *owner, int64_t now_ms,
                    int64_t lease_until, int max_attempts, struct sync_relay *out,
                    int64_t *held_until)
{
    ASSERT_POOL_THREAD();
    *held_until = 0;
    int rc = db_run(conn,
                    "UPDATE relay SET sync_owner = ?1, sync_lease_until = ?2 WHERE id = ?3"
                    " AND synced = 0 AND sync_attempts < ?4 AND (sync_owner IS NULL"
                    " OR sync_owner = ?1 OR sync_lease_until <= ?5)",
                    DB_TEXT(owner), DB_INT(lease_until), DB_TEXT(id), DB_INT(max_attempts),
                    DB_INT(now_ms));
    if (rc != 0)
        return rc;
    int claimed = db_changes(conn) == 1;
    if ((rc = repo_sync_load(conn, id, out)) != 0 || claimed || out->synced ||
        out->sync_attempts >= max_attempts)
        return rc;
    /* Needed, but another instance holds it: until when. */
    struct db_stmt *st =
        db_query(conn, "SELECT sync_lease_until FROM relay WHERE id = ?", DB_TEXT(id));
    if (!st)
        return DB_EGENERIC;
    int step = db_step(st);
    if (step == DB_ROW)
        *held_until = MAX(db_col_int64(st, 0), now_ms + 1);
    db_reset(st);
    return db_status(step);
}

int repo_sync_release(struct db_conn *conn, const char *id, const char *owner)
{
    ASSERT_POOL_THREAD();
    return db_run(conn,
                  "UPDATE relay SET sync_owner = NULL, sync_lease_until = 0"
                  " WHERE id = ? AND sync_owner = ?",
                  DB_TEXT(id), DB_TEXT(owner));
}
