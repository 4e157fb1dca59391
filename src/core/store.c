#include "core/store.h"

#include "db/db.h"
#include "nostr/hex.h"
#include "nostr/keys.h"

int repo_activity_insert(sqlite3 *conn, const char *tenant, const char *type,
                         const char *resource_type, const char *resource_id, const char *plan,
                         const char *status, int64_t now)
{
    return db_run(conn, "INSERT INTO activity(tenant, created_at, activity_type, resource_type,"
                        " resource_id, plan, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  DB_TEXT(tenant), DB_INT(now), DB_TEXT(type), DB_TEXT(resource_type),
                  DB_TEXT(resource_id), DB_TEXT(plan), DB_TEXT(status));
}

int repo_relay_mark_dirty(sqlite3 *conn, const char *relay_id)
{
    return db_run(conn, "UPDATE relay SET synced = 0, sync_version = sync_version + 1,"
                        " sync_attempts = 0, sync_next_at = 0 WHERE id = ?",
                  DB_TEXT(relay_id));
}

void repo_new_id(char out[33])
{
    uint8_t raw[16];
    nostr_random(raw, sizeof(raw));
    hex_encode(raw, sizeof(raw), out);
}

void repo_json_text(cJSON *obj, const char *key, sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    if (t)
        cJSON_AddStringToObject(obj, key, t);
    else
        cJSON_AddNullToObject(obj, key);
}

void repo_json_int(cJSON *obj, const char *key, sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        cJSON_AddNullToObject(obj, key);
    else
        cJSON_AddNumberToObject(obj, key, (double)sqlite3_column_int64(st, col));
}

void repo_json_bool(cJSON *obj, const char *key, sqlite3_stmt *st, int col)
{
    cJSON_AddBoolToObject(obj, key, sqlite3_column_int(st, col) != 0);
}

int repo_ping(sqlite3 *conn)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1");
    if (!st)
        return DB_EGENERIC;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : db_rc(conn, rc);
}

cJSON *repo_json_columns(sqlite3_stmt *st, const char *const *keys, int n)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) {
        if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
            repo_json_int(o, keys[i], st, i);
        else
            repo_json_text(o, keys[i], st, i);
    }
    return o;
}

int repo_json_one(sqlite3 *conn, sqlite3_stmt *st, repo_row_fn *row, const void *arg,
                  cJSON **out)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = row(st, arg);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? DB_ENOTFOUND : db_rc(conn, rc);
}

int repo_json_rows(sqlite3 *conn, sqlite3_stmt *st, repo_row_fn *row, const void *arg,
                   cJSON **out)
{
    int rc;
    *out = cJSON_CreateArray();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(*out, row(st, arg));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}
