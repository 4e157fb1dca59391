#include "api/repo_invoice.h"

#include <stdlib.h>

#include "core/store.h"
#include "db/db.h"
#include "util/debug.h"
#include "util/util.h"

/* bolt11 and bolt11_expires_at are filled in afterwards for the whole page (attach). */
#define INVOICE_SELECT                                                                             \
    "SELECT id, tenant, amount, status, period_start, period_end, NULL, NULL, created_at,"         \
    " paid_at FROM invoice"

static cJSON *invoice_row(struct db_stmt *st, const void *arg)
{
    static const char *const keys[] = {"id",           "tenant",     "amount", "status",
                                       "period_start", "period_end", "bolt11", "bolt11_expires_at",
                                       "created_at",   "paid_at"};
    (void)arg;
    return repo_json_columns(st, keys, 10);
}

/* The invoice at position j.key of the page, or NULL if the database answered nonsense. */
static cJSON *slot_of(struct db_stmt *st, cJSON **slots, int n)
{
    int64_t k = db_col_int64(st, 0);
    return k >= 0 && k < n ? slots[k] : NULL;
}

/* The newest BOLT11 of every invoice of the page (the one to pay), in one statement over
 * the page's ids (ids: a JSON array, slots[i] the invoice of ids[i]). Rows come newest first
 * per invoice: the first one of each is kept. */
static int attach_bolt11(struct db_conn *conn, const char *ids, cJSON **slots, int n)
{
    struct db_stmt *st = db_query(conn,
                                  "SELECT j.key, b.bolt11, b.expires_at FROM json_each(?1) j"
                                  " JOIN bolt11 b ON b.invoice = j.value"
                                  " ORDER BY j.key, b.created_at DESC, b.rowid DESC",
                                  DB_TEXT(ids));
    cJSON *prev = NULL, *inv;
    int rc;
    if (!st)
        return DB_EGENERIC;
    while ((rc = db_step(st)) == DB_ROW) {
        if ((inv = slot_of(st, slots, n)) == NULL || inv == prev)
            continue;
        prev = inv;
        cJSON_ReplaceItemInObjectCaseSensitive(inv, "bolt11",
                                               cJSON_CreateString(db_col_str(st, 1)));
        cJSON_ReplaceItemInObjectCaseSensitive(inv, "bolt11_expires_at",
                                               cJSON_CreateNumber((double)db_col_int64(st, 2)));
    }
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

/* The items of every invoice of the page, in one statement (as attach_bolt11). */
static int attach_items(struct db_conn *conn, const char *ids, cJSON **slots, int n)
{
    struct db_stmt *st = db_query(conn,
                                  "SELECT j.key, it.relay, it.plan, it.hours, it.amount"
                                  " FROM json_each(?1) j JOIN invoice_item it"
                                  " ON it.invoice = j.value ORDER BY j.key, it.relay, it.plan",
                                  DB_TEXT(ids));
    cJSON *inv;
    int rc;
    if (!st)
        return DB_EGENERIC;
    while ((rc = db_step(st)) == DB_ROW) {
        if ((inv = slot_of(st, slots, n)) == NULL)
            continue;
        cJSON *it = cJSON_CreateObject();
        repo_json_text(it, "relay", st, 1);
        repo_json_text(it, "plan", st, 2);
        repo_json_int(it, "hours", st, 3);
        repo_json_int(it, "amount", st, 4);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(inv, "items"), it);
    }
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

/* Completes every invoice of the array with its newest BOLT11 and its items: two statements
 * for the whole page instead of two per invoice. */
static int attach(struct db_conn *conn, cJSON *invoices)
{
    int n = cJSON_GetArraySize(invoices), i = 0, rc = DB_EGENERIC;
    if (n == 0)
        return 0;
    cJSON **slots = xcalloc((size_t)n, sizeof(*slots));
    cJSON *ids = cJSON_CreateArray(), *inv;
    cJSON_ArrayForEach(inv, invoices)
    {
        slots[i++] = inv;
        cJSON_AddItemToArray(
            ids, cJSON_CreateString(cJSON_GetObjectItemCaseSensitive(inv, "id")->valuestring));
        cJSON_AddArrayToObject(inv, "items");
    }
    char *text = cJSON_PrintUnformatted(ids);
    if (text && (rc = attach_bolt11(conn, text, slots, n)) == 0)
        rc = attach_items(conn, text, slots, n);
    cJSON_free(text);
    cJSON_Delete(ids);
    free(slots);
    return rc;
}

#define INVOICE_PAGE                                                                               \
    " (created_at, id) < (?1, ?2) ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4"

/* One statement per shape, each a range of invoice_tenant or invoice_created. */
int repo_invoice_list(struct db_conn *conn, const char *tenant, const struct repo_page *page,
                      cJSON **out, char next[REPO_CURSOR_MAX])
{
    ASSERT_POOL_THREAD();
    struct db_param p[] = {DB_INT(repo_page_key(page)), DB_TEXT(repo_page_id(page)),
                           DB_INT(page->limit + 1), DB_INT(page->offset), DB_TEXT(tenant)};
    struct db_stmt *st =
        tenant[0]
            ? db_query_params(conn, INVOICE_SELECT " WHERE tenant = ?5 AND" INVOICE_PAGE, p, 5)
            : db_query_params(conn, INVOICE_SELECT " WHERE" INVOICE_PAGE, p, 4);
    if (!st)
        return DB_EGENERIC;
    int rc = repo_json_page(st, invoice_row, NULL, page, 8, 0, out, next);
    return rc ? rc : attach(conn, *out);
}

int repo_invoice_get(struct db_conn *conn, const char *id, const char *owner, cJSON **out)
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st =
        db_query(conn, INVOICE_SELECT " WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)", DB_TEXT(id),
                 DB_TEXT(owner));
    if (!st)
        return DB_EGENERIC;
    cJSON *one = NULL;
    int rc = repo_json_one(st, invoice_row, NULL, &one);
    if (rc != 0)
        return rc;
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, one);
    rc = attach(conn, arr);
    *out = cJSON_DetachItemFromArray(arr, 0);
    cJSON_Delete(arr);
    return rc;
}

int repo_invoice_overdue(struct db_conn *conn, const char *tenant, int64_t grace, int64_t now)
{
    ASSERT_POOL_THREAD();
    /* created_at as a range of invoice_tenant: the tenant's few rows, whatever others owe. */
    return db_exists(conn,
                     "SELECT 1 FROM invoice WHERE tenant = ? AND created_at <= ?"
                     " AND status = 'pending'",
                     DB_TEXT(tenant), DB_INT(now - grace));
}

#define ACTIVITY_SELECT                                                                            \
    "SELECT id, tenant, created_at, activity_type, resource_type, resource_id, plan, status"       \
    " FROM activity"
#define ACTIVITY_PAGE " id < ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"

static cJSON *activity_row(struct db_stmt *st, const void *arg)
{
    static const char *const keys[] = {
        "id",          "tenant", "created_at", "activity_type", "resource_type",
        "resource_id", "plan",   "status"};
    (void)arg;
    return repo_json_columns(st, keys, 8);
}

/* One statement per shape: a range of the primary key, or of activity_tenant. */
int repo_activity_list(struct db_conn *conn, const char *tenant, const struct repo_page *page,
                       cJSON **out, char next[REPO_CURSOR_MAX])
{
    ASSERT_POOL_THREAD();
    struct db_param p[] = {DB_INT(repo_page_key(page)), DB_INT(page->limit + 1),
                           DB_INT(page->offset), DB_TEXT(tenant)};
    struct db_stmt *st =
        tenant[0]
            ? db_query_params(conn, ACTIVITY_SELECT " WHERE tenant = ?4 AND" ACTIVITY_PAGE, p, 4)
            : db_query_params(conn, ACTIVITY_SELECT " WHERE" ACTIVITY_PAGE, p, 3);
    if (!st)
        return DB_EGENERIC;
    return repo_json_page(st, activity_row, NULL, page, 0, -1, out, next);
}
