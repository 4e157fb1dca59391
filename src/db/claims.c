/* Letting go of claims, the same for every kind of work (see claims.h). */
#include "db/claims.h"

#include <stdlib.h>

#include "db/notify.h"
#include "util/debug.h"

/* The statements of one kind, built from its table and columns at compile time; `only` limits
 * them to the rows whose claim still means something (a DM is claimed while it is queued). */
#define CLAIM_SQL(table, owner, until, only)                                                       \
    {                                                                                              \
        "SELECT DISTINCT " owner " FROM " table " WHERE " owner " IS NOT NULL" only,               \
            "UPDATE " table " SET " owner " = NULL, " until " = 0 WHERE " owner " = ?" only        \
    }

static const struct {
    const char *owners;  /* the distinct holders */
    const char *release; /* ?1: the holder */
} claim_sql[DB_CLAIM_KINDS] = {
    [DB_CLAIM_RELAY_SYNC] = CLAIM_SQL("relay", "sync_owner", "sync_lease_until", ""),
    [DB_CLAIM_DM] = CLAIM_SQL("message", "claim_owner", "claim_until", " AND state = 'queued'"),
    [DB_CLAIM_BLOCKLIST] = CLAIM_SQL("blocklist_relay", "claim_owner", "claim_until", ""),
};

int db_claims_release_owner(struct db_conn *conn, enum db_claim_kind kind, const char *owner,
                            int64_t *n)
{
    ASSERT_POOL_THREAD();
    *n = 0;
    if ((unsigned)kind >= DB_CLAIM_KINDS)
        return DB_EGENERIC;
    int rc = db_run(conn, claim_sql[kind].release, DB_TEXT(owner));
    if (rc == 0)
        *n = db_changes(conn);
    return rc;
}

int db_claims_release_stale(struct db_conn *conn, enum db_claim_kind kind, int shared, int64_t *n)
{
    ASSERT_POOL_THREAD();
    *n = 0;
    if ((unsigned)kind >= DB_CLAIM_KINDS)
        return DB_EGENERIC;
    /* Collected first, released after: the SELECT's statement is reset before the UPDATEs. */
    char *owners[DB_CLAIM_STALE_OWNERS_MAX];
    size_t k = 0;
    struct db_stmt *st = db_stmt(conn, claim_sql[kind].owners);
    if (!st)
        return DB_EGENERIC;
    int rc = DB_DONE;
    while (k < DB_CLAIM_STALE_OWNERS_MAX && (rc = db_step(st)) == DB_ROW) {
        char *o = db_col_text(st, 0);
        if (o && (!shared || db_instance_gone(o)))
            owners[k++] = o;
        else
            free(o);
    }
    db_reset(st);
    rc = k == DB_CLAIM_STALE_OWNERS_MAX ? 0 : db_status(rc);
    for (size_t i = 0; i < k; i++) {
        int64_t one = 0;
        if (rc == 0 && (rc = db_claims_release_owner(conn, kind, owners[i], &one)) == 0)
            *n += one;
        free(owners[i]);
    }
    return rc;
}
