#include "core/relay_target.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "nostr/hex.h"
#include "util/log.h"
#include "util/util.h"

void relay_target_host(const char *subdomain, const char *domain, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", subdomain ? subdomain : "", domain && domain[0] ? "." : "",
             domain ? domain : "");
}

void relay_target_wipe(struct relay_target *t)
{
    secure_zero(t, sizeof(*t));
}

static int fill(struct db_stmt *st, const char *domain, struct relay_target *out)
{
    const char *secret = db_col_str(st, 4);
    uint8_t sk[32];
    int rc = 0;
    snprintf(out->id, sizeof(out->id), "%s", db_col_str(st, 0));
    snprintf(out->tenant, sizeof(out->tenant), "%s", db_col_str(st, 1));
    relay_target_host(db_col_str(st, 2), domain, out->host, sizeof(out->host));
    snprintf(out->status, sizeof(out->status), "%s", db_col_str(st, 3));
    out->management = db_col_int(st, 5);
    if (!secret || hex_decode(secret, strlen(secret), sk, 32) != 0 ||
        nostr_keypair_from_seckey(&out->kp, sk) != 0) {
        LOG_ERROR("relay %s: its stored secret key does not parse", out->id);
        rc = DB_EGENERIC;
    }
    secure_zero(sk, sizeof(sk));
    return rc;
}

int relay_target_load(struct db_conn *conn, const char *id, const char *owner, const char *domain,
                      struct relay_target *out)
{
    memset(out, 0, sizeof(*out));
    struct db_stmt *st = db_query(conn,
                                  "SELECT id, tenant, subdomain, status, secret, management_enabled"
                                  " FROM relay WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)",
                                  DB_TEXT(id), DB_TEXT(owner));
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    int out_rc = DB_ENOTFOUND;
    if (rc == DB_ROW)
        out_rc = fill(st, domain, out);
    else if (rc != DB_DONE)
        out_rc = db_status(rc);
    db_reset(st);
    return out_rc;
}
