/* SQL shared by every service. Pool thread only, inside a db_write transaction. */
#ifndef CARAVEL_REPO_COMMON_H
#define CARAVEL_REPO_COMMON_H

#include <stdint.h>

#include <sqlite3.h>

/* One activity row (spec 4). plan/status may be NULL (non-relay rows). Returns 0 or db_error. */
int repo_activity_insert(sqlite3 *conn, const char *tenant, const char *type,
                         const char *resource_type, const char *resource_id, const char *plan,
                         const char *status, int64_t now);
/* The relay must be (re)sent to zooid: synced=0, version+1, attempts and backoff reset. */
int repo_relay_mark_dirty(sqlite3 *conn, const char *relay_id);
/* Random id: 32 lowercase hex characters + NUL into out (>= 33 bytes). */
void repo_new_id(char out[33]);

#endif
