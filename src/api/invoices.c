/* /invoices and /activity (spec 3.3): read-only views of what billing and every write
 * recorded. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "db/db.h"
#include "util/util.h"

struct list_in {
    int64_t limit, offset;
    char tenant[65]; /* "" = all (admin) */
};

/* The newest BOLT11 of the invoice (the one to pay) is joined in. */
#define INVOICE_SELECT                                                                         \
    "SELECT i.id, i.tenant, i.amount, i.status, i.period_start, i.period_end, b.bolt11,"       \
    " b.expires_at, i.created_at, i.paid_at FROM invoice i LEFT JOIN bolt11 b ON b.id = ("     \
    "SELECT id FROM bolt11 WHERE invoice = i.id ORDER BY created_at DESC, rowid DESC LIMIT 1)"

static cJSON *invoice_row(sqlite3_stmt *st)
{
    static const char *const keys[] = {"id", "tenant", "amount", "status", "period_start",
                                       "period_end", "bolt11", "bolt11_expires_at",
                                       "created_at", "paid_at"};
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < 10; i++) {
        if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
            api_json_int(o, keys[i], st, i);
        else
            api_json_text(o, keys[i], st, i);
    }
    return o;
}

static int add_items(sqlite3 *conn, cJSON *invoice, const char *id)
{
    sqlite3_stmt *st = db_stmt(conn, "SELECT relay, plan, hours, amount FROM invoice_item"
                                     " WHERE invoice = ? ORDER BY relay, plan");
    cJSON *items = cJSON_AddArrayToObject(invoice, "items");
    int rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *it = cJSON_CreateObject();
        api_json_text(it, "relay", st, 0);
        api_json_text(it, "plan", st, 1);
        api_json_int(it, "hours", st, 2);
        api_json_int(it, "amount", st, 3);
        cJSON_AddItemToArray(items, it);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

static int list_invoices(sqlite3 *conn, struct api_call *call)
{
    struct list_in *in = call->in;
    sqlite3_stmt *st = db_stmt(conn, INVOICE_SELECT " WHERE (?1 = '' OR i.tenant = ?1)"
                                     " ORDER BY i.created_at DESC, i.id LIMIT ?2 OFFSET ?3");
    sqlite3_bind_text(st, 1, in->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, in->limit);
    sqlite3_bind_int64(st, 3, in->offset);
    call->data = cJSON_CreateArray();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(call->data, invoice_row(st));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_rc(conn, rc);
    cJSON *inv;
    cJSON_ArrayForEach(inv, call->data)
    {
        if ((rc = add_items(conn, inv, cJSON_GetObjectItem(inv, "id")->valuestring)) != 0)
            return rc;
    }
    return 0;
}

static struct list_in *list_input(struct api_ctx *ctx)
{
    struct list_in *in = xcalloc(1, sizeof(*in));
    if (api_require_auth(ctx) != 0 || api_paging(ctx, &in->limit, &in->offset) != 0 ||
        api_list_scope(ctx, in->tenant) != 0) {
        free(in);
        return NULL;
    }
    return in;
}

void api_list_invoices(struct api_ctx *ctx)
{
    struct list_in *in = list_input(ctx);
    if (in)
        api_run(ctx, 0, list_invoices, in, free);
}

static int get_invoice(sqlite3 *conn, struct api_call *call)
{
    struct api_ctx *ctx = call->ctx;
    sqlite3_stmt *st =
        db_stmt(conn, INVOICE_SELECT " WHERE i.id = ?1 AND (?2 = 1 OR i.tenant = ?3)");
    sqlite3_bind_text(st, 1, ctx->params[0], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, ctx->is_admin);
    sqlite3_bind_text(st, 3, ctx->pubhex, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        call->data = invoice_row(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return api_fail(call, 404, "not-found", "no such invoice");
    return rc == SQLITE_ROW ? add_items(conn, call->data, ctx->params[0]) : db_rc(conn, rc);
}

void api_get_invoice(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 0, get_invoice, NULL, NULL);
}

static int list_activity(sqlite3 *conn, struct api_call *call)
{
    static const char *const keys[] = {"id", "tenant", "created_at", "activity_type",
                                       "resource_type", "resource_id", "plan", "status"};
    struct list_in *in = call->in;
    sqlite3_stmt *st = db_stmt(conn, "SELECT id, tenant, created_at, activity_type,"
                                     " resource_type, resource_id, plan, status FROM activity"
                                     " WHERE (?1 = '' OR tenant = ?1) ORDER BY id DESC"
                                     " LIMIT ?2 OFFSET ?3");
    sqlite3_bind_text(st, 1, in->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, in->limit);
    sqlite3_bind_int64(st, 3, in->offset);
    call->data = cJSON_CreateArray();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        for (int i = 0; i < 8; i++) {
            if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
                api_json_int(o, keys[i], st, i);
            else
                api_json_text(o, keys[i], st, i);
        }
        cJSON_AddItemToArray(call->data, o);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_rc(conn, rc);
}

void api_list_activity(struct api_ctx *ctx)
{
    struct list_in *in = list_input(ctx);
    if (in)
        api_run(ctx, 0, list_activity, in, free);
}
