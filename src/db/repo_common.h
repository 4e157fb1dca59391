/* SQL shared by every service. Pool thread only, inside a db_write transaction. */
#ifndef CARAVEL_REPO_COMMON_H
#define CARAVEL_REPO_COMMON_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

/* One activity row (spec 4). plan/status may be NULL (non-relay rows). Returns 0 or db_error. */
int repo_activity_insert(sqlite3 *conn, const char *tenant, const char *type,
                         const char *resource_type, const char *resource_id, const char *plan,
                         const char *status, int64_t now);
/* The relay must be (re)sent to zooid: synced=0, version+1, attempts and backoff reset. */
int repo_relay_mark_dirty(sqlite3 *conn, const char *relay_id);
/* Column of the current row added to obj under key: text (SQL NULL -> null), integer
 * (NULL -> null), boolean (0/1). For repo_* functions that return API views as cJSON. */
void repo_json_text(cJSON *obj, const char *key, sqlite3_stmt *st, int col);
void repo_json_int(cJSON *obj, const char *key, sqlite3_stmt *st, int col);
void repo_json_bool(cJSON *obj, const char *key, sqlite3_stmt *st, int col);
/* The database answers a trivial query: 0 or a db_error (GET /healthz). */
int repo_ping(sqlite3 *conn);
/* Random id: 32 lowercase hex characters + NUL into out (>= 33 bytes). */
void repo_new_id(char out[33]);

#endif
