/* What a NIP-86 call to a relay needs, read from its row: the host (subdomain.RELAY_DOMAIN),
 * its key pair (derived from the stored secret here, on the pool, so the loop never parses a
 * secret) and what decides whether it can be called (status, management_enabled). Used by the
 * API's relay management routes and by the block-list worker. Pool thread only (SQL); the
 * filled struct may then move to the loop. It holds a secret key: relay_target_wipe it. */
#ifndef CARAVEL_CORE_RELAY_TARGET_H
#define CARAVEL_CORE_RELAY_TARGET_H

#include "db/db.h"

#include "nostr/keys.h"

struct relay_target {
    char id[33];
    char tenant[65];
    char host[254];
    char status[16]; /* "active", "inactive", "delinquent" */
    int management;  /* management_enabled: zooid answers NIP-86 only then */
    struct nostr_keypair kp;
};

/* Loads relay id into out. owner NULL: any relay; else only a relay of that tenant (another
 * tenant's is DB_ENOTFOUND: no existence oracle). domain: RELAY_DOMAIN ("" = host is the
 * subdomain). Returns 0, DB_ENOTFOUND, or a db_error (a secret that does not parse:
 * DB_EGENERIC, logged). */
int relay_target_load(struct db_conn *conn, const char *id, const char *owner, const char *domain,
                      struct relay_target *out);

/* The relay's host: subdomain.RELAY_DOMAIN, or the subdomain alone when domain is NULL or "".
 * The one place this rule lives (the relay JSON, the zooid config and NIP-86 calls use it). */
void relay_target_host(const char *subdomain, const char *domain, char *out, size_t cap);

void relay_target_wipe(struct relay_target *t);

#endif
