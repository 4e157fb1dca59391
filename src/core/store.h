/* SQL shared by every service. Pool thread only, inside a db_write transaction. */
#ifndef CARAVEL_REPO_COMMON_H
#define CARAVEL_REPO_COMMON_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include "db/db.h"

/* One activity row (PRODUCT.md §4). plan/status may be NULL (non-relay rows). Returns 0 or
 * db_error. */
int repo_activity_insert(struct db_conn *conn, const char *tenant, const char *type,
                         const char *resource_type, const char *resource_id, const char *plan,
                         const char *status, int64_t now);
/* The relay must be (re)sent to zooid: synced=0, version+1, attempts and backoff reset; other
 * instances hear APP_RELAY_CHANGED on commit (core/wake.h). */
int repo_relay_mark_dirty(struct db_conn *conn, const char *relay_id);
/* Column of the current row added to obj under key: text (SQL NULL -> null), integer
 * (NULL -> null), boolean (0/1). For repo_* functions that return API views as cJSON. */
void repo_json_text(cJSON *obj, const char *key, struct db_stmt *st, int col);
void repo_json_int(cJSON *obj, const char *key, struct db_stmt *st, int col);
void repo_json_bool(cJSON *obj, const char *key, struct db_stmt *st, int col);
/* The current row's first n columns as an object under keys[i]: integers as numbers, the
 * rest as text (SQL NULL -> null). */
cJSON *repo_json_columns(struct db_stmt *st, const char *const *keys, int n);
/* Builds one JSON value from the current row; arg is the caller's (borrowed). */
typedef cJSON *repo_row_fn(struct db_stmt *st, const void *arg);
/* Steps a bound statement to its end, appending row(st, arg) for each row to *out (a new
 * array), then resets it. Returns 0 or a db_error (*out stays the caller's to free). */
int repo_json_rows(struct db_stmt *st, repo_row_fn *row, const void *arg, cJSON **out);
/* Steps a bound statement once: *out = row(st, arg) for its row, then resets it. Returns 0,
 * DB_ENOTFOUND when there is no row, or a db_error. */
int repo_json_one(struct db_stmt *st, repo_row_fn *row, const void *arg, cJSON **out);
/* One page of a list (PRODUCT.md §3.1): up to limit rows in the list's order (newest first),
 * after the row the cursor names (has_after), then offset more skipped. The cursor is the
 * text a list answered as "next": "<key>" (activity: its id) or "<key>.<id>" (created_at and
 * the row's id or pubkey), so a page starts where the last one ended whatever was inserted
 * since, and costs the same at any depth. */
#define REPO_CURSOR_MAX 96 /* 19 digits, '.', 64 characters, NUL: with room */
struct repo_page {
    int64_t limit, offset;
    int has_after;
    int64_t after_key;
    char after_id[65]; /* "" for a key-only cursor */
};
/* Parses a cursor into page: with_id says which form the list uses. 0, or -1 when s is not
 * a cursor of that form (digits only, at most 18; id 1-64 of [0-9A-Za-z_-]). */
int repo_cursor_parse(const char *s, int with_id, struct repo_page *page);
/* The cursor bound by the list statements: the page's, or one before every row. */
int64_t repo_page_key(const struct repo_page *page);
const char *repo_page_id(const struct repo_page *page);
/* Steps st, bound with LIMIT page->limit + 1, appending row(st, arg) for up to page->limit
 * rows to *out (a new array), then resets it. When one more row follows, next receives the
 * cursor of the last row kept (integer column key_col, text column id_col or -1), else "".
 * Returns 0 or a db_error (*out stays the caller's to free). */
int repo_json_page(struct db_stmt *st, repo_row_fn *row, const void *arg,
                   const struct repo_page *page, int key_col, int id_col, cJSON **out,
                   char next[REPO_CURSOR_MAX]);
/* The database answers a trivial query: 0 or a db_error (GET /healthz). */
int repo_ping(struct db_conn *conn);
/* Random id: 32 lowercase hex characters + NUL into out (>= 33 bytes). */
void repo_new_id(char out[33]);
/* The same shape (32 lowercase hex digits), ascending as they are made: 8 digits of now
 * (seconds), 8 of a per-process sequence, then 64 random bits. Rows created together then sit
 * together at the end of every index on the id (the primary key's, the activity's resource
 * index, the (created_at, id) ones) instead of one page each anywhere in the second's stretch
 * (with random bits after the second, a group commit of 30 creations wrote ~30 pages of each
 * such index). Not a secret either way. Thread-safe. */
void repo_new_time_id(char out[33], int64_t now);

#endif
