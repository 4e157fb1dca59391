/* SQL of the /invoices and /activity routes (PRODUCT.md §3.3): read-only views of what billing and
 * every write recorded, returned as the API's Invoice / activity JSON (caller owns *out).
 * Pool thread only, inside a db_read or db_write job. Return codes: 0, DB_ENOTFOUND, or a
 * db_error (db/db.h). tenant "" means every tenant. */
#ifndef CARAVEL_REPO_INVOICE_H
#define CARAVEL_REPO_INVOICE_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include "db/db.h"

#include "core/store.h"

/* One page of Invoice JSON (with items and the newest BOLT11), newest first (then by id);
 * next as in repo_json_page. */
int repo_invoice_list(struct db_conn *conn, const char *tenant, const struct repo_page *page,
                      cJSON **out, char next[REPO_CURSOR_MAX]);
/* Invoice id, if it belongs to `owner` (NULL = anyone's). DB_ENOTFOUND otherwise. */
int repo_invoice_get(struct db_conn *conn, const char *id, const char *owner, cJSON **out);
/* 1 if the tenant has a pending invoice created at least `grace` seconds before now
 * (overdue, PRODUCT.md §3.3, §8), 0 if not, or a negative db_error. */
int repo_invoice_overdue(struct db_conn *conn, const char *tenant, int64_t grace, int64_t now);
/* One page of activity rows, newest first; its cursor is the id (next as in repo_json_page). */
int repo_activity_list(struct db_conn *conn, const char *tenant, const struct repo_page *page,
                       cJSON **out, char next[REPO_CURSOR_MAX]);

#endif
