#include "db/repo_tenant.h"

#include "db/db.h"
#include "db/repo_common.h"

#define TENANT_COLS "pubkey, status, nwc_url IS NOT NULL, nwc_error, billing_anchor, created_at"

static cJSON *tenant_json(sqlite3_stmt *st, const void *arg)
{
    (void)arg;
    cJSON *o = cJSON_CreateObject();
    repo_json_text(o, "pubkey", st, 0);
    repo_json_text(o, "status", st, 1);
    repo_json_bool(o, "nwc_set", st, 2);
    repo_json_text(o, "nwc_error", st, 3);
    repo_json_int(o, "billing_anchor", st, 4);
    repo_json_int(o, "created_at", st, 5);
    return o;
}

int repo_tenant_exists(sqlite3 *conn, const char *pubkey)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1 FROM tenant WHERE pubkey = ?");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, pubkey, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_rc(conn, rc);
    return rc == SQLITE_ROW;
}

int repo_tenant_get(sqlite3 *conn, const char *pubkey, cJSON **out)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT " TENANT_COLS " FROM tenant WHERE pubkey = ?");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, pubkey, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = tenant_json(st, NULL);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? DB_ENOTFOUND : db_rc(conn, rc);
}

int repo_tenant_list(sqlite3 *conn, int64_t limit, int64_t offset, cJSON **out)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT " TENANT_COLS " FROM tenant"
                                     " ORDER BY created_at DESC, pubkey LIMIT ? OFFSET ?");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_int64(st, 1, limit);
    sqlite3_bind_int64(st, 2, offset);
    return repo_json_rows(conn, st, tenant_json, NULL, out);
}

int repo_tenant_create(sqlite3 *conn, const char *pubkey, int64_t now)
{
    sqlite3_stmt *st = db_stmt(conn, "INSERT INTO tenant(pubkey, status, created_at)"
                                     " VALUES (?, 'active', ?) ON CONFLICT DO NOTHING");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, pubkey, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_rc(conn, rc);
    if (sqlite3_changes(conn) == 0)
        return DB_ECONSTRAINT;
    return repo_activity_insert(conn, pubkey, "create_tenant", "tenant", pubkey, NULL, NULL, now);
}

int repo_tenant_set_nwc(sqlite3 *conn, const char *pubkey, const char *nwc_url, int64_t now)
{
    /* A new URL clears the previous wallet's error. */
    sqlite3_stmt *st = db_stmt(conn, "UPDATE tenant SET nwc_url = ?, nwc_error = NULL"
                                     " WHERE pubkey = ?");
    if (!st)
        return DB_EGENERIC;
    sqlite3_bind_text(st, 1, nwc_url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pubkey, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_rc(conn, rc);
    if (sqlite3_changes(conn) == 0)
        return DB_ENOTFOUND;
    return repo_activity_insert(conn, pubkey, "update_tenant", "tenant", pubkey, NULL, NULL, now);
}
