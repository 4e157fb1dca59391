/* API entry point: CORS preflight, routing, and the public health route. The resource
 * routes (spec 3.3) plug into the route table below. Loop thread only. */
#include "api/api.h"

#include <string.h>

#include "app.h"
#include "db/db.h"
#include "http/server.h"
#include "util/util.h"

#define JSON_TYPE "application/json; charset=utf-8"

static void respond_json(struct http_exchange *ex, int status, const char *body)
{
    http_respond(ex, status, JSON_TYPE, NULL, body, strlen(body));
}

/* ---- GET /healthz: 200 when the database answers a query, else 503 ---- */

static int ping_db(sqlite3 *conn, void *arg)
{
    (void)arg;
    sqlite3_stmt *st = db_stmt(conn, "SELECT 1");
    return st && sqlite3_step(st) == SQLITE_ROW ? 0 : DB_EGENERIC;
}

static void on_ping(int status, void *arg)
{
    struct http_exchange *ex = arg;
    if (status == 0)
        respond_json(ex, 200, "{\"data\":{\"status\":\"ok\"},\"code\":\"ok\"}");
    else
        respond_json(ex, 503, "{\"error\":\"database unavailable\",\"code\":\"unavailable\"}");
}

static void get_healthz(struct http_exchange *ex, struct app *app)
{
    if (db_read(app->db, ping_db, on_ping, ex) != 0)
        on_ping(DB_EGENERIC, ex);
}

void api_handle(struct http_exchange *ex, void *arg)
{
    static const char not_allowed[] =
        "{\"error\":\"method not allowed\",\"code\":\"method-not-allowed\"}";
    struct app *app = arg;
    if (strcmp(ex->req.path, "/healthz") == 0) {
        if (strcmp(ex->req.method, "GET") == 0)
            get_healthz(ex, app);
        else
            http_respond(ex, 405, JSON_TYPE, "Allow: GET\r\n", not_allowed, strlen(not_allowed));
        return;
    }
    respond_json(ex, 404, "{\"error\":\"not found\",\"code\":\"not-found\"}");
}
