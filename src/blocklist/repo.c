#include "blocklist/repo.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "nostr/hex.h"
#include "util/log.h"
#include "util/util.h"

/* Rows of relays that are not active wait: zooid does not serve them. */
#define DUE_SQL                                                                                    \
    "SELECT b.relay_id, b.pubkey, b.want, b.attempts, coalesce(e.reason, ''), r.tenant,"           \
    " r.subdomain, r.status, r.secret, r.management_enabled"                                       \
    " FROM blocklist_relay b JOIN relay r ON r.id = b.relay_id"                                    \
    " LEFT JOIN blocklist e ON e.pubkey = b.pubkey"                                                \
    " WHERE b.want != b.applied AND b.next_at <= ? AND r.status = 'active'"                        \
    " ORDER BY b.next_at LIMIT ?"

static int read_item(struct db_stmt *st, const char *domain, struct bl_item *it)
{
    const char *secret = db_col_str(st, 8);
    uint8_t sk[32];
    memset(it, 0, sizeof(*it));
    snprintf(it->t.id, sizeof(it->t.id), "%s", db_col_str(st, 0));
    snprintf(it->pubkey, sizeof(it->pubkey), "%s", db_col_str(st, 1));
    it->want = db_col_int(st, 2);
    it->attempts = db_col_int(st, 3);
    snprintf(it->reason, sizeof(it->reason), "%s", db_col_str(st, 4));
    snprintf(it->t.tenant, sizeof(it->t.tenant), "%s", db_col_str(st, 5));
    relay_target_host(db_col_str(st, 6), domain, it->t.host, sizeof(it->t.host));
    snprintf(it->t.status, sizeof(it->t.status), "%s", db_col_str(st, 7));
    it->t.management = db_col_int(st, 9);
    int ok = secret && hex_decode(secret, strlen(secret), sk, 32) == 0 &&
             nostr_keypair_from_seckey(&it->t.kp, sk) == 0;
    secure_zero(sk, sizeof(sk));
    if (!ok)
        LOG_ERROR("blocklist: relay %s: its stored secret key does not parse", it->t.id);
    return ok ? 0 : -1;
}

int repo_bl_due(struct db_conn *conn, int64_t now, const char *domain, struct bl_item *items,
                size_t max, size_t *n)
{
    *n = 0;
    struct db_stmt *st = db_query(conn, DUE_SQL, DB_INT(now), DB_INT((int64_t)max));
    if (!st)
        return DB_EGENERIC;
    int rc;
    while ((rc = db_step(st)) == DB_ROW && *n < max) {
        if (read_item(st, domain, &items[*n]) == 0)
            (*n)++;
    }
    db_reset(st);
    return rc == DB_DONE || rc == DB_ROW ? 0 : db_status(rc);
}

int repo_bl_applied(struct db_conn *conn, const char *relay, const char *pubkey, int sent)
{
    int rc = db_run(conn,
                    "INSERT INTO blocklist_relay(relay_id, pubkey, want, applied) VALUES (?1, ?2,"
                    " 0, ?3) ON CONFLICT(relay_id, pubkey) DO UPDATE SET applied = ?3,"
                    " attempts = 0, next_at = 0, error = NULL",
                    DB_TEXT(relay), DB_TEXT(pubkey), DB_INT(sent));
    if (rc == 0)
        rc = db_run(conn,
                    "DELETE FROM blocklist_relay WHERE relay_id = ? AND pubkey = ? AND want = 0"
                    " AND applied = 0",
                    DB_TEXT(relay), DB_TEXT(pubkey));
    if (rc == 0)
        rc = db_run(conn,
                    "DELETE FROM blocklist WHERE pubkey = ?1 AND state = 'removed' AND NOT EXISTS"
                    " (SELECT 1 FROM blocklist_relay WHERE pubkey = ?1)",
                    DB_TEXT(pubkey));
    return rc;
}

int repo_bl_failed(struct db_conn *conn, const char *relay, const char *pubkey, int64_t next_at,
                   const char *error)
{
    return db_run(conn,
                  "UPDATE blocklist_relay SET attempts = attempts + 1, next_at = ?, error = ?"
                  " WHERE relay_id = ? AND pubkey = ?",
                  DB_INT(next_at), DB_TEXT(error), DB_TEXT(relay), DB_TEXT(pubkey));
}

int repo_bl_relay_ready(struct db_conn *conn, const char *relay)
{
    int rc = db_run(conn,
                    "INSERT OR IGNORE INTO blocklist_relay(relay_id, pubkey, want)"
                    " SELECT r.id, e.pubkey, 1 FROM relay r, blocklist e WHERE r.id = ?"
                    " AND r.status = 'active' AND e.state = 'active'",
                    DB_TEXT(relay));
    if (rc == 0)
        rc = db_run(conn,
                    "UPDATE blocklist_relay SET next_at = 0 WHERE relay_id = ? AND want != applied",
                    DB_TEXT(relay));
    return rc;
}

int repo_bl_reconcile(struct db_conn *conn, int64_t *added)
{
    *added = 0;
    int rc = db_run(conn, "INSERT OR IGNORE INTO blocklist_relay(relay_id, pubkey, want)"
                          " SELECT r.id, e.pubkey, 1 FROM relay r, blocklist e"
                          " WHERE r.status = 'active' AND e.state = 'active'");
    if (rc == 0)
        *added = db_changes(conn);
    return rc;
}
