#include "api/repo_invoice.h"

#include "db/db.h"
#include "core/store.h"

/* The newest BOLT11 of the invoice (the one to pay) is joined in. */
#define INVOICE_SELECT                                                                         \
    "SELECT i.id, i.tenant, i.amount, i.status, i.period_start, i.period_end, b.bolt11,"       \
    " b.expires_at, i.created_at, i.paid_at FROM invoice i LEFT JOIN bolt11 b ON b.id = ("     \
    "SELECT id FROM bolt11 WHERE invoice = i.id ORDER BY created_at DESC, rowid DESC LIMIT 1)"

static cJSON *invoice_row(sqlite3_stmt *st, const void *arg)
{
    static const char *const keys[] = {"id", "tenant", "amount", "status", "period_start",
                                       "period_end", "bolt11", "bolt11_expires_at",
                                       "created_at", "paid_at"};
    (void)arg;
    return repo_json_columns(st, keys, 10);
}

static int add_items(sqlite3 *conn, cJSON *invoice, const char *id)
{
    sqlite3_stmt *st = db_query(conn, "SELECT relay, plan, hours, amount FROM invoice_item"
                                      " WHERE invoice = ? ORDER BY relay, plan",
                                DB_TEXT(id));
    cJSON *items = cJSON_AddArrayToObject(invoice, "items");
    int rc;
    if (!st)
        return DB_EGENERIC;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *it = cJSON_CreateObject();
        repo_json_text(it, "relay", st, 0);
        repo_json_text(it, "plan", st, 1);
        repo_json_int(it, "hours", st, 2);
        repo_json_int(it, "amount", st, 3);
        cJSON_AddItemToArray(items, it);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

int repo_invoice_list(sqlite3 *conn, const char *tenant, int64_t limit, int64_t offset,
                      cJSON **out)
{
    sqlite3_stmt *st = db_query(conn, INVOICE_SELECT " WHERE (?1 = '' OR i.tenant = ?1)"
                                      " ORDER BY i.created_at DESC, i.id LIMIT ?2 OFFSET ?3",
                                DB_TEXT(tenant), DB_INT(limit), DB_INT(offset));
    if (!st)
        return DB_EGENERIC;
    int rc = repo_json_rows(conn, st, invoice_row, NULL, out);
    if (rc != 0)
        return rc;
    cJSON *inv;
    cJSON_ArrayForEach(inv, *out)
    {
        if ((rc = add_items(conn, inv, cJSON_GetObjectItem(inv, "id")->valuestring)) != 0)
            return rc;
    }
    return 0;
}

int repo_invoice_get(sqlite3 *conn, const char *id, const char *owner, cJSON **out)
{
    sqlite3_stmt *st =
        db_query(conn, INVOICE_SELECT " WHERE i.id = ?1 AND (?2 IS NULL OR i.tenant = ?2)",
                 DB_TEXT(id), DB_TEXT(owner));
    if (!st)
        return DB_EGENERIC;
    int rc = repo_json_one(conn, st, invoice_row, NULL, out);
    return rc ? rc : add_items(conn, *out, id);
}

int repo_invoice_overdue(sqlite3 *conn, const char *tenant, int64_t grace, int64_t now)
{
    return db_exists(conn, "SELECT 1 FROM invoice WHERE tenant = ? AND status = 'pending'"
                           " AND created_at + ? <= ?",
                     DB_TEXT(tenant), DB_INT(grace), DB_INT(now));
}

static cJSON *activity_row(sqlite3_stmt *st, const void *arg)
{
    static const char *const keys[] = {"id", "tenant", "created_at", "activity_type",
                                       "resource_type", "resource_id", "plan", "status"};
    (void)arg;
    return repo_json_columns(st, keys, 8);
}

int repo_activity_list(sqlite3 *conn, const char *tenant, int64_t limit, int64_t offset,
                       cJSON **out)
{
    sqlite3_stmt *st = db_query(conn, "SELECT id, tenant, created_at, activity_type, resource_type,"
                                      " resource_id, plan, status FROM activity"
                                      " WHERE (?1 = '' OR tenant = ?1) ORDER BY id DESC"
                                      " LIMIT ?2 OFFSET ?3",
                                DB_TEXT(tenant), DB_INT(limit), DB_INT(offset));
    if (!st)
        return DB_EGENERIC;
    return repo_json_rows(conn, st, activity_row, NULL, out);
}
