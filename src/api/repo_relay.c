#include "api/repo_relay.h"

#include <stdio.h>
#include <string.h>

#include "core/plans.h"
#include "core/relay_target.h"
#include "db/db.h"
#include "core/store.h"
#include "util/debug.h"
#include "util/util.h"

const char *const relay_flag_names[RF_COUNT] = {
    "policy_public_join", "policy_strip_signatures", "groups_enabled", "management_enabled",
    "blossom_enabled",    "livekit_enabled",         "push_enabled",
};

/* `synced` as a client sees it: zooid accepted the current config (relay.synced, written by the
 * sync worker) and, for an active relay, the relay confirmed every active entry of the operator's
 * block list (rows want = 1, applied = 1 of blocklist_relay: one per active entry once applied).
 * So a new or reactivated relay is reported synced only once it holds the operator's bans; the
 * block-list worker can only send them after zooid serves the relay, i.e. after relay.synced.
 * A relay with management turned off cannot take them (zooid answers NIP-86 only with it on):
 * it is synced without them. */
#define RELAY_SYNCED                                                                               \
    "(synced <> 0 AND (status != 'active' OR management_enabled = 0 OR (SELECT count(*)"           \
    " FROM blocklist_relay b"                                                                      \
    " WHERE b.relay_id = relay.id AND b.want = 1 AND b.applied = 1) >="                            \
    " (SELECT count(*) FROM blocklist e WHERE e.state = 'active')))"

#define RELAY_COLS                                                                                 \
    "id, tenant, subdomain, schema, plan, status, " RELAY_SYNCED ", sync_error, info_name, "       \
    "info_icon, "                                                                                  \
    "info_description, policy_public_join, policy_strip_signatures, groups_enabled, "              \
    "management_enabled, blossom_enabled, livekit_enabled, push_enabled, created_at, updated_at,"  \
    " moderators, members_count"

/* Only the owner (or an admin: owner NULL) sees a relay. */
#define RELAY_VISIBLE " (?2 IS NULL OR tenant = ?2)"

/* moderators: "hex,hex" as stored (NULL or "" = none) -> a JSON array of hex pubkeys. */
static void add_moderators(cJSON *o, const char *m)
{
    cJSON *mods = cJSON_AddArrayToObject(o, "moderators");
    for (size_t i = 0; m && strlen(m) >= i + 64; i += 65) {
        char pk[65];
        snprintf(pk, sizeof(pk), "%.64s", m + i);
        cJSON_AddItemToArray(mods, cJSON_CreateString(pk));
    }
}

static cJSON *relay_row(struct db_stmt *st, const void *arg)
{
    const char *domain = arg; /* RELAY_DOMAIN, "" when unset */
    cJSON *o = cJSON_CreateObject();
    const char *sub = db_col_str(st, 2);
    char host[512];
    repo_json_text(o, "id", st, 0);
    repo_json_text(o, "tenant", st, 1);
    repo_json_text(o, "subdomain", st, 2);
    relay_target_host(sub, domain, host, sizeof(host));
    cJSON_AddStringToObject(o, "host", host);
    repo_json_text(o, "schema", st, 3);
    repo_json_text(o, "plan", st, 4);
    repo_json_text(o, "status", st, 5);
    repo_json_bool(o, "synced", st, 6);
    repo_json_text(o, "sync_error", st, 7);
    repo_json_text(o, "info_name", st, 8);
    repo_json_text(o, "info_icon", st, 9);
    repo_json_text(o, "info_description", st, 10);
    for (int i = 0; i < RF_COUNT; i++)
        repo_json_bool(o, relay_flag_names[i], st, 11 + i);
    repo_json_int(o, "created_at", st, 18);
    repo_json_int(o, "updated_at", st, 19);
    repo_json_int(o, "members_count", st, 21);
    const struct plan *p = plan_find(db_col_str(st, 4));
    cJSON_AddBoolToObject(o, "over_member_limit",
                          !db_col_is_null(st, 21) && p && p->members >= 0 &&
                              db_col_int64(st, 21) > p->members);
    add_moderators(o, db_col_str(st, 20));
    return o;
}

cJSON *repo_relay_new_json(const struct relay_fields *f, const char *id, const char *schema,
                           int64_t now, const char *domain)
{
    cJSON *o = cJSON_CreateObject();
    char host[512];
    relay_target_host(f->subdomain, domain, host, sizeof(host));
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "tenant", f->tenant);
    cJSON_AddStringToObject(o, "subdomain", f->subdomain);
    cJSON_AddStringToObject(o, "host", host);
    cJSON_AddStringToObject(o, "schema", schema);
    cJSON_AddStringToObject(o, "plan", f->plan);
    cJSON_AddStringToObject(o, "status", "active");
    cJSON_AddBoolToObject(o, "synced", 0); /* zooid has not accepted it yet */
    cJSON_AddNullToObject(o, "sync_error");
    cJSON_AddStringToObject(o, "info_name", f->info_name ? f->info_name : "");
    cJSON_AddStringToObject(o, "info_icon", f->info_icon ? f->info_icon : "");
    cJSON_AddStringToObject(o, "info_description", f->info_description ? f->info_description : "");
    for (int i = 0; i < RF_COUNT; i++)
        cJSON_AddBoolToObject(o, relay_flag_names[i], f->flags[i] != 0);
    cJSON_AddNumberToObject(o, "created_at", (double)now);
    cJSON_AddNumberToObject(o, "updated_at", (double)now);
    cJSON_AddNullToObject(o, "members_count"); /* never read yet */
    cJSON_AddBoolToObject(o, "over_member_limit", 0);
    add_moderators(o, f->moderators);
    return o;
}

int repo_relay_blocklist_rows(struct db_conn *conn, const char *id)
{
    ASSERT_POOL_THREAD();
    return db_run(conn,
                  "INSERT INTO blocklist_relay(relay_id, pubkey, want)"
                  " SELECT ?, pubkey, 1 FROM blocklist WHERE state = 'active'",
                  DB_TEXT(id));
}

int repo_relay_get(struct db_conn *conn, const char *id, const char *owner, const char *domain,
                   cJSON **out)
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st =
        db_query(conn, "SELECT " RELAY_COLS " FROM relay WHERE id = ?1 AND" RELAY_VISIBLE,
                 DB_TEXT(id), DB_TEXT(owner));
    if (!st)
        return DB_EGENERIC;
    return repo_json_one(st, relay_row, domain, out);
}

/* One statement per shape, each a range of the index that gives its order (relay_tenant,
 * relay_created): the cost is the page's, not the table's. */
#define RELAY_PAGE                                                                                 \
    " (created_at, id) < (?1, ?2) ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4"

int repo_relay_list(struct db_conn *conn, const char *tenant, const struct repo_page *page,
                    const char *domain, cJSON **out, char next[REPO_CURSOR_MAX])
{
    ASSERT_POOL_THREAD();
    struct db_param p[] = {DB_INT(repo_page_key(page)), DB_TEXT(repo_page_id(page)),
                           DB_INT(page->limit + 1), DB_INT(page->offset), DB_TEXT(tenant)};
    struct db_stmt *st =
        tenant[0]
            ? db_query_params(conn,
                              "SELECT " RELAY_COLS " FROM relay WHERE tenant = ?5"
                              " AND" RELAY_PAGE,
                              p, 5)
            : db_query_params(conn, "SELECT " RELAY_COLS " FROM relay WHERE" RELAY_PAGE, p, 4);
    if (!st)
        return DB_EGENERIC;
    return repo_json_page(st, relay_row, domain, page, 18, 0, out, next);
}

int repo_relay_load(struct db_conn *conn, const char *id, const char *owner,
                    struct relay_fields *out, char tenant[65], char status[16])
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st =
        db_query(conn, "SELECT " RELAY_COLS " FROM relay WHERE id = ?1 AND" RELAY_VISIBLE,
                 DB_TEXT(id), DB_TEXT(owner));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        snprintf(tenant, 65, "%s", db_col_str(st, 1));
        out->subdomain = db_col_text(st, 2);
        out->plan = db_col_text(st, 4);
        snprintf(status, 16, "%s", db_col_str(st, 5));
        out->info_name = db_col_text(st, 8);
        out->info_icon = db_col_text(st, 9);
        out->info_description = db_col_text(st, 10);
        for (int i = 0; i < RF_COUNT; i++)
            out->flags[i] = db_col_int(st, 11 + i);
        out->moderators = db_col_text(st, 20);
    }
    db_reset(st);
    if (rc == DB_ROW)
        return 0;
    return rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}

int repo_relay_subdomain_taken(struct db_conn *conn, const char *subdomain, const char *except_id)
{
    ASSERT_POOL_THREAD();
    return db_exists(conn, "SELECT 1 FROM relay WHERE subdomain = ? AND id <> ?",
                     DB_TEXT(subdomain), DB_TEXT(except_id));
}

int repo_relay_plan_full(struct db_conn *conn, const char *tenant, const char *plan,
                         const char *except_id, int64_t max)
{
    ASSERT_POOL_THREAD();
    /* A row at offset max - 1 exists iff there are at least max: no full count. */
    return db_exists(conn,
                     "SELECT 1 FROM relay WHERE tenant = ? AND plan = ? AND id <> ? "
                     "LIMIT 1 OFFSET ?",
                     DB_TEXT(tenant), DB_TEXT(plan), DB_TEXT(except_id), DB_INT(max - 1));
}

int repo_relay_unique_schema(struct db_conn *conn, const char *base, char *out, size_t cap)
{
    ASSERT_POOL_THREAD();
    snprintf(out, cap, "%s", base);
    for (int i = 2;; i++) {
        int taken = db_exists(conn, "SELECT 1 FROM relay WHERE schema = ?", DB_TEXT(out));
        if (taken <= 0)
            return taken;
        snprintf(out, cap, "%s_%d", base, i);
    }
}

/* The text columns, then the RF_COUNT flags, as parameters into p; returns how many. */
static size_t text_and_flags(struct db_param *p, const char *const *text, size_t n_text,
                             const struct relay_fields *f)
{
    size_t n = 0;
    for (size_t i = 0; i < n_text; i++)
        p[n++] = DB_TEXT(text[i]);
    for (int i = 0; i < RF_COUNT; i++)
        p[n++] = DB_INT(f->flags[i]);
    return n;
}

int repo_relay_insert(struct db_conn *conn, const struct relay_fields *f, const char *id,
                      const char *schema, const char *secret, int64_t now)
{
    ASSERT_POOL_THREAD();
    const char *text[] = {id,
                          f->tenant,
                          f->subdomain,
                          schema,
                          secret,
                          f->plan,
                          f->info_name ? f->info_name : "",
                          f->info_icon ? f->info_icon : "",
                          f->info_description ? f->info_description : "",
                          f->moderators ? f->moderators : ""};
    struct db_param p[ARRAY_SIZE(text) + RF_COUNT + 2];
    size_t n = text_and_flags(p, text, ARRAY_SIZE(text), f);
    p[n++] = DB_INT(now); /* created_at */
    p[n++] = DB_INT(now); /* updated_at */
    return db_run_params(
        conn,
        "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, info_name,"
        " info_icon, info_description, moderators, policy_public_join,"
        " policy_strip_signatures, groups_enabled, management_enabled, blossom_enabled,"
        " livekit_enabled, push_enabled, created_at, updated_at, sync_version)"
        " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        p, n);
}

int repo_relay_update(struct db_conn *conn, const char *id, const struct relay_fields *f,
                      int64_t now)
{
    ASSERT_POOL_THREAD();
    const char *text[] = {f->subdomain,        f->plan,
                          f->info_name,        f->info_icon,
                          f->info_description, f->moderators ? f->moderators : ""};
    struct db_param p[ARRAY_SIZE(text) + RF_COUNT + 2];
    size_t n = text_and_flags(p, text, ARRAY_SIZE(text), f);
    p[n++] = DB_INT(now);
    p[n++] = DB_TEXT(id);
    return db_run_params(conn,
                         "UPDATE relay SET subdomain = ?, plan = ?, info_name = ?, info_icon = ?,"
                         " info_description = ?, moderators = ?, policy_public_join = ?,"
                         " policy_strip_signatures = ?,"
                         " groups_enabled = ?, management_enabled = ?, blossom_enabled = ?,"
                         " livekit_enabled = ?, push_enabled = ?, updated_at = ? WHERE id = ?",
                         p, n);
}

/* An UPDATE of one relay: DB_ENOTFOUND when it matched no row. */
static int updated(struct db_conn *conn, int rc)
{
    return rc != 0 ? rc : db_changes(conn) ? 0 : DB_ENOTFOUND;
}

int repo_relay_set_status(struct db_conn *conn, const char *id, const char *status, int64_t now)
{
    ASSERT_POOL_THREAD();
    return updated(conn, db_run(conn, "UPDATE relay SET status = ?, updated_at = ? WHERE id = ?",
                                DB_TEXT(status), DB_INT(now), DB_TEXT(id)));
}

int repo_relay_clear_sync_error(struct db_conn *conn, const char *id)
{
    ASSERT_POOL_THREAD();
    return updated(conn,
                   db_run(conn, "UPDATE relay SET sync_error = NULL WHERE id = ?", DB_TEXT(id)));
}

int repo_relay_members_count(struct db_conn *conn, const char *id, int64_t *count)
{
    *count = -1;
    struct db_stmt *st =
        db_query(conn, "SELECT members_count FROM relay WHERE id = ?", DB_TEXT(id));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW && !db_col_is_null(st, 0))
        *count = db_col_int64(st, 0);
    db_reset(st);
    if (rc == DB_ROW)
        return 0;
    return rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}
