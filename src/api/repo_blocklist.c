#include "api/repo_blocklist.h"

#include "core/store.h"
#include "db/db.h"

int repo_blocklist_add(struct db_conn *conn, const char *pubkey, const char *reason,
                       const char *admin, int64_t now)
{
    int rc = db_run(conn,
                    "INSERT INTO blocklist(pubkey, reason, state, created_by, created_at,"
                    " updated_at) VALUES (?1, ?2, 'active', ?3, ?4, ?4) ON CONFLICT(pubkey)"
                    " DO UPDATE SET reason = ?2, state = 'active', updated_at = ?4",
                    DB_TEXT(pubkey), DB_TEXT(reason), DB_TEXT(admin), DB_INT(now));
    if (rc == 0)
        rc = db_run(conn,
                    "INSERT INTO blocklist_relay(relay_id, pubkey, want) SELECT id, ?1, 1 FROM"
                    " relay WHERE status = 'active' ON CONFLICT(relay_id, pubkey) DO UPDATE"
                    " SET want = 1, attempts = 0, next_at = 0, error = NULL",
                    DB_TEXT(pubkey));
    return rc;
}

int repo_blocklist_remove(struct db_conn *conn, const char *pubkey, int64_t now)
{
    int rc = db_run(conn,
                    "UPDATE blocklist SET state = 'removed', updated_at = ? WHERE pubkey = ?"
                    " AND state = 'active'",
                    DB_INT(now), DB_TEXT(pubkey));
    if (rc == 0 && db_changes(conn) == 0)
        return DB_ENOTFOUND;
    /* A ban in flight on a dropped row is turned into a lift by the worker when it lands. */
    if (rc == 0)
        rc = db_run(conn, "DELETE FROM blocklist_relay WHERE pubkey = ? AND applied = 0",
                    DB_TEXT(pubkey));
    if (rc == 0)
        rc = db_run(conn,
                    "UPDATE blocklist_relay SET want = 0, attempts = 0, next_at = 0, error = NULL"
                    " WHERE pubkey = ?",
                    DB_TEXT(pubkey));
    if (rc == 0)
        rc = db_run(conn,
                    "DELETE FROM blocklist WHERE pubkey = ?1 AND NOT EXISTS (SELECT 1 FROM"
                    " blocklist_relay WHERE pubkey = ?1)",
                    DB_TEXT(pubkey));
    return rc;
}

/* Counts per entry come from the blocklist_relay_pubkey index: one range per entry. */
#define ENTRY_SQL                                                                                  \
    "SELECT e.pubkey, e.reason, e.state, e.created_by, e.created_at, e.updated_at,"                \
    " (SELECT count(*) FROM blocklist_relay b WHERE b.pubkey = e.pubkey AND b.applied = 1"         \
    "  AND b.want = 1),"                                                                           \
    " (SELECT count(*) FROM blocklist_relay b WHERE b.pubkey = e.pubkey AND b.want != b.applied)," \
    " (SELECT count(*) FROM blocklist_relay b WHERE b.pubkey = e.pubkey AND b.want != b.applied"   \
    "  AND b.attempts > 0),"                                                                       \
    " (SELECT b.error FROM blocklist_relay b WHERE b.pubkey = e.pubkey AND b.error IS NOT NULL"    \
    "  LIMIT 1)"                                                                                   \
    " FROM blocklist e"

static cJSON *entry_row(struct db_stmt *st, const void *arg)
{
    static const char *const keys[] = {
        "pubkey",     "reason",         "state",          "created_by",     "created_at",
        "updated_at", "relays_applied", "relays_pending", "relays_failing", "last_error"};
    (void)arg;
    return repo_json_columns(st, keys, 10);
}

int repo_blocklist_get(struct db_conn *conn, const char *pubkey, cJSON **out)
{
    struct db_stmt *st = db_query(conn, ENTRY_SQL " WHERE e.pubkey = ?", DB_TEXT(pubkey));
    if (!st)
        return DB_EGENERIC;
    return repo_json_one(st, entry_row, NULL, out);
}

int repo_blocklist_list(struct db_conn *conn, cJSON **out)
{
    struct db_stmt *st =
        db_query(conn, ENTRY_SQL " ORDER BY e.created_at DESC, e.pubkey LIMIT ?", DB_INT(10000));
    if (!st)
        return DB_EGENERIC;
    return repo_json_rows(st, entry_row, NULL, out);
}
