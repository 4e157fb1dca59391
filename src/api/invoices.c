/* /invoices and /activity (PRODUCT.md §3.3): read-only views of what billing and every write
 * recorded (SQL: api/repo_invoice.h). */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "db/db.h"
#include "api/repo_invoice.h"
#include "util/util.h"

struct list_in {
    struct repo_page page;
    char tenant[65]; /* "" = all (admin) */
};

static int list_invoices(struct db_conn *conn, struct api_call *call)
{
    struct list_in *in = call->in;
    call->paged = 1;
    return repo_invoice_list(conn, in->tenant, &in->page, &call->data, call->next);
}

/* with_id: the list's cursor form (api_page). */
static struct list_in *list_input(struct api_ctx *ctx, int with_id)
{
    struct list_in *in = xcalloc(1, sizeof(*in));
    if (api_require_auth(ctx) != 0 || api_page(ctx, with_id, &in->page) != 0 ||
        api_list_scope(ctx, in->tenant) != 0) {
        free(in);
        return NULL;
    }
    return in;
}

void api_list_invoices(struct api_ctx *ctx)
{
    struct list_in *in = list_input(ctx, 1);
    if (in)
        api_run_list(ctx, list_invoices, in, free);
}

/* Admins see any invoice; others only their own, and no existence oracle (404). */
static int get_invoice(struct db_conn *conn, struct api_call *call)
{
    struct api_ctx *ctx = call->ctx;
    int rc =
        repo_invoice_get(conn, ctx->params[0], ctx->is_admin ? NULL : ctx->pubhex, &call->data);
    return rc == DB_ENOTFOUND ? api_fail(call, 404, "not-found", "no such invoice") : rc;
}

void api_get_invoice(struct api_ctx *ctx)
{
    if (api_require_auth(ctx) == 0)
        api_run(ctx, 0, get_invoice, NULL, NULL);
}

static int list_activity(struct db_conn *conn, struct api_call *call)
{
    struct list_in *in = call->in;
    call->paged = 1;
    return repo_activity_list(conn, in->tenant, &in->page, &call->data, call->next);
}

void api_list_activity(struct api_ctx *ctx)
{
    struct list_in *in = list_input(ctx, 0);
    if (in)
        api_run_list(ctx, list_activity, in, free);
}
