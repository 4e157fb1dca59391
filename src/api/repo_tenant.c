#include "api/repo_tenant.h"

#include "db/db.h"
#include "core/store.h"
#include "util/debug.h"

#define TENANT_COLS "pubkey, status, nwc_url IS NOT NULL, nwc_error, billing_anchor, created_at"

static cJSON *tenant_json(struct db_stmt *st, const void *arg)
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

int repo_tenant_exists(struct db_conn *conn, const char *pubkey)
{
    ASSERT_POOL_THREAD();
    return db_exists(conn, "SELECT 1 FROM tenant WHERE pubkey = ?", DB_TEXT(pubkey));
}

int repo_tenant_get(struct db_conn *conn, const char *pubkey, cJSON **out)
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st =
        db_query(conn, "SELECT " TENANT_COLS " FROM tenant WHERE pubkey = ?", DB_TEXT(pubkey));
    return st ? repo_json_one(st, tenant_json, NULL, out) : DB_EGENERIC;
}

/* A range of tenant_created, in its order. */
int repo_tenant_list(struct db_conn *conn, const struct repo_page *page, cJSON **out,
                     char next[REPO_CURSOR_MAX])
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st = db_query(conn,
                                  "SELECT " TENANT_COLS " FROM tenant"
                                  " WHERE (created_at, pubkey) < (?1, ?2)"
                                  " ORDER BY created_at DESC, pubkey DESC LIMIT ?3 OFFSET ?4",
                                  DB_INT(repo_page_key(page)), DB_TEXT(repo_page_id(page)),
                                  DB_INT(page->limit + 1), DB_INT(page->offset));
    return st ? repo_json_page(st, tenant_json, NULL, page, 5, 0, out, next) : DB_EGENERIC;
}

int repo_tenant_create(struct db_conn *conn, const char *pubkey, int64_t now)
{
    ASSERT_POOL_THREAD();
    int rc = db_run(conn,
                    "INSERT INTO tenant(pubkey, status, created_at)"
                    " VALUES (?, 'active', ?) ON CONFLICT DO NOTHING",
                    DB_TEXT(pubkey), DB_INT(now));
    if (rc != 0 || db_changes(conn) == 0)
        return rc ? rc : DB_ECONSTRAINT;
    return repo_activity_insert(conn, pubkey, "create_tenant", "tenant", pubkey, NULL, NULL, now);
}

int repo_tenant_set_nwc(struct db_conn *conn, const char *pubkey, const char *nwc_url, int64_t now)
{
    ASSERT_POOL_THREAD();
    /* A new URL clears the previous wallet's error. */
    int rc = db_run(conn, "UPDATE tenant SET nwc_url = ?, nwc_error = NULL WHERE pubkey = ?",
                    DB_TEXT(nwc_url), DB_TEXT(pubkey));
    if (rc != 0 || db_changes(conn) == 0)
        return rc ? rc : DB_ENOTFOUND;
    return repo_activity_insert(conn, pubkey, "update_tenant", "tenant", pubkey, NULL, NULL, now);
}
