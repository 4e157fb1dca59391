/* The list statements of the API (relays, tenants, invoices, activity) on the project's schema
 * (every migration): each is planned as a range of an index, never a scan of its table or a
 * sort of it, on a fresh database without statistics and again after ANALYZE; a walk with
 * the cursor returns every row once, in order; an invoice page carries the newest BOLT11
 * and the items of each invoice; the cursor parser refuses what is not a cursor. */
#include "test.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "api/repo_invoice.h"
#include "api/repo_relay.h"
#include "api/repo_tenant.h"
#include "core/store.h"
#include "db/db.h"
#include "db/migrations.h"
#include "util/util.h"

#define T1 "1111111111111111111111111111111111111111111111111111111111111111"
#define T2 "2222222222222222222222222222222222222222222222222222222222222222"
#define T3 "3333333333333333333333333333333333333333333333333333333333333333"
#define MAX_SQL 32

/* Every distinct statement text the list functions ran (sqlite3_trace_v2). */
struct seen {
    char *sql[MAX_SQL];
    int n;
};

static int on_trace(unsigned type, void *ctx, void *p, void *x)
{
    struct seen *s = ctx;
    (void)type;
    const char *sql = sqlite3_sql(p);
    (void)x;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->sql[i], sql) == 0)
            return 0;
    ASSERT_LT(s->n, MAX_SQL);
    s->sql[s->n++] = strdup(sql);
    return 0;
}

static void exec(struct db_conn *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db_conn_sqlite(db), sql, NULL, NULL, &err) != SQLITE_OK)
        TEST_FAIL_("%s: %s", sql, err);
}

/* T1 has most rows (a skew ANALYZE can see), T2 a few, T3 none; created_at has ties, so the
 * id decides the order within a second. */
static struct db_conn *open_db(void)
{
    struct db_conn *db = NULL;
    ASSERT_EQ(db_conn_open(&db, ":memory:", 0), SQLITE_OK);
    for (size_t i = 0; i < n_migrations; i++)
        exec(db, migrations[i].sql);
    exec(db, "INSERT INTO tenant(pubkey, created_at) VALUES ('" T1 "', 5), ('" T2 "', 5),"
             " ('" T3 "', 7);"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
             " INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, created_at,"
             " updated_at) SELECT printf('r%02d', i), CASE WHEN i % 20 = 0 THEN '" T2 "' ELSE '" T1
             "' END, 's' || i, 's' || i, 'x', 'free', 1000 + i / 4, 1 FROM n;"
             "INSERT INTO activity(tenant, created_at, activity_type, resource_type, resource_id)"
             " SELECT tenant, created_at, 'create_relay', 'relay', id FROM relay ORDER BY id;"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)"
             " INSERT INTO invoice(id, tenant, amount, period_start, period_end, created_at)"
             " SELECT printf('i%02d', i), CASE WHEN i % 5 = 0 THEN '" T2 "' ELSE '" T1 "' END,"
             " i, i, i + 1, 2000 + i / 3 FROM n;"
             "INSERT INTO invoice_item(invoice, relay, plan, hours, amount)"
             " SELECT id, 'r01', 'free', 1, 0 FROM invoice UNION ALL"
             " SELECT id, 'r02', 'basic', 2, amount FROM invoice;"
             "INSERT INTO bolt11(id, invoice, bolt11, payment_hash, amount_msats, expires_at,"
             " created_at) SELECT 'old-' || id, id, 'lnold', 'h', 1, 10, 100 FROM invoice"
             " UNION ALL SELECT 'new-' || id, id, 'ln' || id, 'h', 1, 20, 200 FROM invoice"
             " WHERE amount % 2 = 0;");
    return db;
}

/* 1 if the plan of sql reads a table without an index range, or sorts rows that do not come
 * from the page's ids (a virtual table, json_each). */
static int plan_is_bad(struct db_conn *db, const char *sql, int verbose)
{
    char eqp[4096];
    sqlite3_stmt *st = NULL;
    int scan = 0, sort = 0, vtab = 0;
    snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
    ASSERT_EQ(sqlite3_prepare_v2(db_conn_sqlite(db), eqp, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        if (verbose)
            fprintf(stderr, "    %s\n", d);
        vtab |= strstr(d, "VIRTUAL TABLE") != NULL;
        scan |= strncmp(d, "SCAN ", 5) == 0 && !strstr(d, "VIRTUAL TABLE");
        sort |= strstr(d, "USE TEMP B-TREE") != NULL;
    }
    sqlite3_finalize(st);
    return scan || (sort && !vtab);
}

/* Runs every list function in every shape (all, one tenant; first page, after a cursor) plus
 * the invoice of GET /invoices/:id, recording the statements they ran. */
static void run_lists(struct db_conn *db, struct seen *seen)
{
    static const char *const scopes[] = {"", T1};
    cJSON *out = NULL;
    char next[REPO_CURSOR_MAX];
    sqlite3_trace_v2(db_conn_sqlite(db), SQLITE_TRACE_STMT, on_trace, seen);
    for (int s = 0; s < 2; s++) {
        for (int after = 0; after < 2; after++) {
            struct repo_page page = {.limit = 3, .offset = 1};
            if (after) {
                ASSERT_OK(repo_cursor_parse("1005.r20", 1, &page));
                page.limit = 3;
            }
            ASSERT_OK(repo_relay_list(db, scopes[s], &page, "d", &out, next));
            cJSON_Delete(out);
            ASSERT_OK(repo_invoice_list(db, scopes[s], &page, &out, next));
            cJSON_Delete(out);
            ASSERT_OK(repo_tenant_list(db, &page, &out, next));
            cJSON_Delete(out);
            page.after_key = 40;
            ASSERT_OK(repo_activity_list(db, scopes[s], &page, &out, next));
            cJSON_Delete(out);
        }
    }
    ASSERT_OK(repo_invoice_get(db, "i04", NULL, &out));
    cJSON_Delete(out);
    sqlite3_trace_v2(db_conn_sqlite(db), 0, NULL, NULL);
}

static void check_plans(struct db_conn *db, const struct seen *seen)
{
    int lists = 0;
    for (int i = 0; i < seen->n; i++) {
        if (plan_is_bad(db, seen->sql[i], 0)) {
            fprintf(stderr, "  bad plan for %s\n", seen->sql[i]);
            plan_is_bad(db, seen->sql[i], 1);
            TEST_FAIL_("a list statement scans or sorts its table");
        }
        lists += strstr(seen->sql[i], "LIMIT") != NULL;
    }
    /* Relays, invoices and activity x 2 shapes, tenants; the two statements of an invoice
     * page's BOLT11s and items; the invoice by id. */
    ASSERT_EQ(lists, 7);
    ASSERT_EQ(seen->n, 10);
}

TEST(api_lists_use_an_index_without_and_with_statistics)
{
    struct db_conn *db = open_db();
    struct seen seen = {0};
    run_lists(db, &seen);
    check_plans(db, &seen);
    exec(db, "ANALYZE");
    check_plans(db, &seen);
    /* The checker catches what these statements replaced: the OR keeps the tenant index out
     * (a scan of relay_created), and a plain ORDER BY id on a slice sorts it. */
    ASSERT(plan_is_bad(db,
                       "SELECT id FROM relay WHERE (?1 = '' OR tenant = ?1)"
                       " ORDER BY created_at DESC, id LIMIT 5",
                       0));
    ASSERT(plan_is_bad(db, "SELECT id FROM invoice WHERE tenant = ? ORDER BY id LIMIT 5", 0));
    ASSERT(!plan_is_bad(db, "SELECT id FROM relay WHERE tenant = ? LIMIT 5", 0));
    for (int i = 0; i < seen.n; i++)
        free(seen.sql[i]);
    db_conn_close(db);
}

/* The ids of a list, walked page by page with the cursor, joined by ','. */
typedef int list_fn(struct db_conn *db, const char *tenant, const struct repo_page *page,
                    cJSON **out, char next[REPO_CURSOR_MAX]);

static int relays(struct db_conn *db, const char *tenant, const struct repo_page *page, cJSON **out,
                  char next[REPO_CURSOR_MAX])
{
    return repo_relay_list(db, tenant, page, "", out, next);
}

static int tenants(struct db_conn *db, const char *tenant, const struct repo_page *page,
                   cJSON **out, char next[REPO_CURSOR_MAX])
{
    (void)tenant;
    return repo_tenant_list(db, page, out, next);
}

static void walk(struct db_conn *db, list_fn *fn, const char *tenant, int with_id, const char *key,
                 int limit, char *ids, size_t cap)
{
    struct repo_page page = {.limit = limit};
    char next[REPO_CURSOR_MAX];
    size_t len = 0;
    ids[0] = '\0';
    for (int pages = 0;; pages++) {
        cJSON *out = NULL, *it;
        ASSERT_LT(pages, 100);
        ASSERT_OK(fn(db, tenant, &page, &out, next));
        ASSERT_LE(cJSON_GetArraySize(out), limit);
        cJSON_ArrayForEach(it, out)
        {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, key);
            char one[80];
            if (cJSON_IsNumber(v))
                snprintf(one, sizeof(one), "%.0f", v->valuedouble);
            else
                snprintf(one, sizeof(one), "%s", v->valuestring);
            len += (size_t)snprintf(ids + len, cap - len, "%s%s", len ? "," : "", one);
            ASSERT_LT(len, cap);
        }
        /* A full page has a next exactly when rows follow. */
        if (!next[0]) {
            cJSON_Delete(out);
            return;
        }
        ASSERT_EQ(cJSON_GetArraySize(out), limit);
        page = (struct repo_page){.limit = limit};
        ASSERT_OK(repo_cursor_parse(next, with_id, &page));
        page.limit = limit;
        cJSON_Delete(out);
    }
}

static void expect(struct db_conn *db, const char *sql, const char *ids)
{
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db_conn_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR_EQ(ids, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

TEST(api_lists_cursor_walks_every_row_once_in_order)
{
    struct db_conn *db = open_db();
    static char ids[8192];
    static const int limits[] = {1, 4, 7, 60, 500};
    for (size_t i = 0; i < ARRAY_SIZE(limits); i++) {
        walk(db, relays, "", 1, "id", limits[i], ids, sizeof(ids));
        expect(db,
               "SELECT group_concat(id) FROM (SELECT id FROM relay"
               " ORDER BY created_at DESC, id DESC)",
               ids);
        walk(db, relays, T1, 1, "id", limits[i], ids, sizeof(ids));
        expect(db,
               "SELECT group_concat(id) FROM (SELECT id FROM relay WHERE tenant = '" T1 "'"
               " ORDER BY created_at DESC, id DESC)",
               ids);
        walk(db, relays, T3, 1, "id", limits[i], ids, sizeof(ids));
        ASSERT_STR_EQ(ids, "");
        walk(db, repo_invoice_list, "", 1, "id", limits[i], ids, sizeof(ids));
        expect(db,
               "SELECT group_concat(id) FROM (SELECT id FROM invoice"
               " ORDER BY created_at DESC, id DESC)",
               ids);
        walk(db, repo_invoice_list, T2, 1, "id", limits[i], ids, sizeof(ids));
        ASSERT_STR_EQ(ids, "i10,i05");
        walk(db, repo_activity_list, "", 0, "id", limits[i], ids, sizeof(ids));
        expect(db, "SELECT group_concat(id) FROM (SELECT id FROM activity ORDER BY id DESC)", ids);
        walk(db, repo_activity_list, T2, 0, "id", limits[i], ids, sizeof(ids));
        expect(db,
               "SELECT group_concat(id) FROM (SELECT id FROM activity WHERE tenant = '" T2
               "' ORDER BY id DESC)",
               ids);
        walk(db, tenants, "", 1, "pubkey", limits[i], ids, sizeof(ids));
        ASSERT_STR_EQ(ids, T3 "," T2 "," T1);
    }
    db_conn_close(db);
}

TEST(api_lists_invoice_page_has_newest_bolt11_and_items)
{
    struct db_conn *db = open_db();
    struct repo_page page = {.limit = 500};
    char next[REPO_CURSOR_MAX];
    cJSON *out = NULL, *inv;
    ASSERT_OK(repo_invoice_list(db, "", &page, &out, next));
    ASSERT_STR_EQ(next, "");
    ASSERT_EQ(cJSON_GetArraySize(out), 12);
    cJSON_ArrayForEach(inv, out)
    {
        const char *id = cJSON_GetObjectItemCaseSensitive(inv, "id")->valuestring;
        double amount = cJSON_GetObjectItemCaseSensitive(inv, "amount")->valuedouble;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(inv, "bolt11");
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(inv, "items");
        char want[16];
        snprintf(want, sizeof(want), "ln%s", id);
        /* Even amounts have a newer BOLT11 than the old one every invoice has. */
        ASSERT_STR_EQ(b->valuestring, (int)amount % 2 == 0 ? want : "lnold");
        ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(inv, "bolt11_expires_at")->valuedouble,
                  (int)amount % 2 == 0 ? 20 : 10);
        ASSERT_EQ(cJSON_GetArraySize(items), 2);
        ASSERT_STR_EQ(cJSON_GetArrayItem(items, 0)->child->valuestring, "r01");
        ASSERT_EQ(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 1), "amount")->valuedouble,
            amount);
    }
    cJSON_Delete(out);
    /* No BOLT11 at all: null, as before; and the same view by id. */
    exec(db, "DELETE FROM bolt11 WHERE invoice = 'i03'");
    ASSERT_OK(repo_invoice_get(db, "i03", T1, &out));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(out, "bolt11")));
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(out, "items")), 2);
    cJSON_Delete(out);
    ASSERT_EQ(repo_invoice_get(db, "i03", T2, &out), DB_ENOTFOUND);
    db_conn_close(db);
}

TEST(api_lists_cursor_parse)
{
    static const struct {
        const char *text;
        int with_id;
        int ok;
        int64_t key;
        const char *id;
    } cases[] = {
        {"1700000000.abcdef0123", 1, 1, 1700000000, "abcdef0123"},
        {"0.x", 1, 1, 0, "x"},
        {"5.inv_1-A", 1, 1, 5, "inv_1-A"},
        {"42", 0, 1, 42, ""},
        {"999999999999999999", 0, 1, 999999999999999999LL, ""},
        {"1000000000000000000", 0, 0, 0, ""}, /* 19 digits */
        {"42", 1, 0, 0, ""},                  /* the id is missing */
        {"42.", 1, 0, 0, ""},
        {".abc", 1, 0, 0, ""},
        {"42.abc", 0, 0, 0, ""}, /* an activity cursor has no id */
        {"42.a b", 1, 0, 0, ""},
        {"42.a.b", 1, 0, 0, ""},
        {"-1.abc", 1, 0, 0, ""},
        {"+1", 0, 0, 0, ""},
        {"", 0, 0, 0, ""},
        {"1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, 1, 1,
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        {"1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, 0, 0, ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct repo_page page = {0};
        int rc = repo_cursor_parse(cases[i].text, cases[i].with_id, &page);
        if ((rc == 0) != cases[i].ok)
            TEST_FAIL_("cursor \"%s\": rc %d", cases[i].text, rc);
        ASSERT_EQ(page.has_after, cases[i].ok);
        if (!cases[i].ok)
            continue;
        ASSERT_EQ(page.after_key, cases[i].key);
        ASSERT_STR_EQ(page.after_id, cases[i].id);
    }
}
