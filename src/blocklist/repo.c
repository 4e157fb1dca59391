#include "blocklist/repo.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "nostr/hex.h"
#include "util/log.h"
#include "util/util.h"

/* Rows of relays that are not active wait: zooid does not serve them. Rows another instance
 * (or this one) is sending have a live claim and are left out. */
#define DUE_SQL                                                                                    \
    "SELECT b.relay_id, b.pubkey, b.want, b.attempts, coalesce(e.reason, ''), r.tenant,"           \
    " r.subdomain, r.status, r.secret, r.management_enabled"                                       \
    " FROM blocklist_relay b JOIN relay r ON r.id = b.relay_id"                                    \
    " LEFT JOIN blocklist e ON e.pubkey = b.pubkey"                                                \
    " WHERE b.want != b.applied AND b.next_at <= ?1 AND r.status = 'active'"                       \
    " AND (b.claim_owner IS NULL OR b.claim_until <= ?1) ORDER BY b.next_at LIMIT ?2"

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

/* Two reads that each walk a small part of an index, instead of a minimum over every pending
 * row (a rollout to many relays has that many): the first retry by the pending rows' next_at
 * order, and the live claims of others (at most their call slots) by the claim index. */
static int first_int(struct db_stmt *st, int64_t *out)
{
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    *out = rc == DB_ROW ? db_col_int64(st, 0) : 0;
    db_reset(st);
    return db_status(rc);
}

int repo_bl_next_due(struct db_conn *conn, int64_t now, const char *owner, int64_t *at)
{
    int64_t retry = 0, claim = 0;
    *at = 0;
    int rc = first_int(db_query(conn,
                                "SELECT b.next_at FROM blocklist_relay b JOIN relay r"
                                " ON r.id = b.relay_id WHERE b.want != b.applied AND b.next_at > ?"
                                " AND r.status = 'active' ORDER BY b.next_at LIMIT 1",
                                DB_INT(now)),
                       &retry);
    if (rc == 0)
        rc = first_int(db_query(conn,
                                "SELECT min(claim_until) FROM blocklist_relay WHERE claim_owner"
                                " IS NOT NULL AND claim_owner <> ? AND claim_until > ?",
                                DB_TEXT(owner), DB_INT(now)),
                       &claim);
    *at = retry > 0 && (claim <= 0 || retry < claim) ? retry : claim;
    return rc;
}

int repo_bl_claim(struct db_conn *conn, const char *relay, const char *pubkey, int want,
                  const char *owner, int64_t now, int64_t until, int *claimed)
{
    *claimed = 0;
    int rc = db_run(conn,
                    "UPDATE blocklist_relay SET claim_owner = ?1, claim_until = ?2"
                    " WHERE relay_id = ?3 AND pubkey = ?4 AND want = ?5 AND want != applied"
                    " AND next_at <= ?6 AND (claim_owner IS NULL OR claim_until <= ?6)",
                    DB_TEXT(owner), DB_INT(until), DB_TEXT(relay), DB_TEXT(pubkey), DB_INT(want),
                    DB_INT(now));
    if (rc == 0)
        *claimed = db_changes(conn) == 1;
    return rc;
}

int repo_bl_applied(struct db_conn *conn, const char *relay, const char *pubkey, int sent,
                    const char *owner)
{
    int rc = db_run(conn,
                    "INSERT INTO blocklist_relay(relay_id, pubkey, want, applied) VALUES (?1, ?2,"
                    " 0, ?3) ON CONFLICT(relay_id, pubkey) DO UPDATE SET applied = ?3,"
                    " attempts = 0, next_at = 0, error = NULL",
                    DB_TEXT(relay), DB_TEXT(pubkey), DB_INT(sent));
    if (rc == 0)
        rc = db_run(conn,
                    "UPDATE blocklist_relay SET claim_owner = NULL, claim_until = 0"
                    " WHERE relay_id = ? AND pubkey = ? AND claim_owner = ?",
                    DB_TEXT(relay), DB_TEXT(pubkey), DB_TEXT(owner));
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

int repo_bl_sweep_removed(struct db_conn *conn, int64_t *deleted)
{
    *deleted = 0;
    int rc = db_run(conn, "DELETE FROM blocklist WHERE state = 'removed' AND NOT EXISTS"
                          " (SELECT 1 FROM blocklist_relay b WHERE b.pubkey = blocklist.pubkey)");
    if (rc == 0)
        *deleted = db_changes(conn);
    return rc;
}

int repo_bl_failed(struct db_conn *conn, const char *relay, const char *pubkey, int64_t next_at,
                   const char *error, const char *owner)
{
    return db_run(conn,
                  "UPDATE blocklist_relay SET attempts = attempts + 1, next_at = ?1, error = ?2,"
                  " claim_owner = NULL, claim_until = 0 WHERE relay_id = ?3 AND pubkey = ?4"
                  " AND (claim_owner IS NULL OR claim_owner = ?5)",
                  DB_INT(next_at), DB_TEXT(error), DB_TEXT(relay), DB_TEXT(pubkey), DB_TEXT(owner));
}

int repo_bl_relay_ready(struct db_conn *conn, const char *relay, int64_t *due)
{
    *due = 0;
    int rc = db_run(conn,
                    "INSERT OR IGNORE INTO blocklist_relay(relay_id, pubkey, want)"
                    " SELECT r.id, e.pubkey, 1 FROM relay r, blocklist e WHERE r.id = ?"
                    " AND r.status = 'active' AND e.state = 'active'",
                    DB_TEXT(relay));
    if (rc == 0) {
        *due = db_changes(conn);
        rc = db_run(conn,
                    "UPDATE blocklist_relay SET next_at = 0 WHERE relay_id = ? AND want != applied",
                    DB_TEXT(relay));
    }
    if (rc == 0)
        *due += db_changes(conn);
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
