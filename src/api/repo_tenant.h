/* SQL of the /tenants routes (PRODUCT.md §3.3, 4). Pool thread only: reads inside a db_read job,
 * writes inside a db_write job (each write also records its activity row in the same
 * transaction). Views are returned as the API's Tenant JSON (caller owns *out); the NWC URL
 * is never read into one (only whether it is set). Return codes: 0, DB_ENOTFOUND, or a
 * db_error (db/db.h). */
#ifndef CARAVEL_REPO_TENANT_H
#define CARAVEL_REPO_TENANT_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include "db/db.h"

#include "core/store.h"

/* 1 if pubkey (64 hex) is a tenant, 0 if not, or a negative db_error. */
int repo_tenant_exists(struct db_conn *conn, const char *pubkey);
/* Tenant JSON of pubkey into *out; DB_ENOTFOUND when absent. */
int repo_tenant_get(struct db_conn *conn, const char *pubkey, cJSON **out);
/* One page of Tenant JSON, newest first (then by pubkey); next as in repo_json_page. */
int repo_tenant_list(struct db_conn *conn, const struct repo_page *page, cJSON **out,
                     char next[REPO_CURSOR_MAX]);
/* New active tenant + create_tenant activity. DB_ECONSTRAINT when it already exists. */
int repo_tenant_create(struct db_conn *conn, const char *pubkey, int64_t now);
/* Stores (nwc_url borrowed; NULL clears) the tenant's wallet URL, clears nwc_error, and
 * records update_tenant. DB_ENOTFOUND when there is no such tenant. */
int repo_tenant_set_nwc(struct db_conn *conn, const char *pubkey, const char *nwc_url, int64_t now);

#endif
