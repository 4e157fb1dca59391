#include "core/store.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wake.h"
#include "db/db.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/debug.h"

int repo_activity_insert(struct db_conn *conn, const char *tenant, const char *type,
                         const char *resource_type, const char *resource_id, const char *plan,
                         const char *status, int64_t now)
{
    ASSERT_POOL_THREAD();
    return db_run(conn,
                  "INSERT INTO activity(tenant, created_at, activity_type, resource_type,"
                  " resource_id, plan, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  DB_TEXT(tenant), DB_INT(now), DB_TEXT(type), DB_TEXT(resource_type),
                  DB_TEXT(resource_id), DB_TEXT(plan), DB_TEXT(status));
}

int repo_relay_mark_dirty(struct db_conn *conn, const char *relay_id)
{
    ASSERT_POOL_THREAD();
    int rc = db_run(conn,
                    "UPDATE relay SET synced = 0, sync_version = sync_version + 1,"
                    " sync_attempts = 0, sync_next_at = 0 WHERE id = ?",
                    DB_TEXT(relay_id));
    /* Whichever instance's sync worker claims it first syncs it (sync/worker.c). */
    return rc != 0 ? rc : app_publish(conn, APP_RELAY_CHANGED, relay_id);
}

void repo_new_id(char out[33])
{
    uint8_t raw[16];
    nostr_random(raw, sizeof(raw));
    hex_encode(raw, sizeof(raw), out);
}

/* The process's id sequence (see repo_new_time_id): starts at a random point, so the ids of
 * instances sharing a database fall in separate stretches of each second. */
static _Atomic uint32_t id_seq;
static _Atomic int id_seq_ready;

static uint32_t next_id_seq(void)
{
    if (!atomic_load_explicit(&id_seq_ready, memory_order_acquire)) {
        uint32_t start = 0;
        nostr_random((uint8_t *)&start, sizeof(start));
        /* Two first calls racing may both start it: each id is still unique by its random
         * part, only one of them lands out of order. */
        atomic_store(&id_seq, start);
        atomic_store_explicit(&id_seq_ready, 1, memory_order_release);
    }
    return atomic_fetch_add(&id_seq, 1);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void repo_new_time_id(char out[33], int64_t now)
{
    uint8_t raw[16];
    put_be32(raw, now > 0 ? (uint32_t)now : 0);
    put_be32(raw + 4, next_id_seq());
    nostr_random(raw + 8, sizeof(raw) - 8);
    hex_encode(raw, sizeof(raw), out);
}

void repo_json_text(cJSON *obj, const char *key, struct db_stmt *st, int col)
{
    const char *t = db_col_str(st, col);
    if (t)
        cJSON_AddStringToObject(obj, key, t);
    else
        cJSON_AddNullToObject(obj, key);
}

void repo_json_int(cJSON *obj, const char *key, struct db_stmt *st, int col)
{
    if (db_col_is_null(st, col))
        cJSON_AddNullToObject(obj, key);
    else
        cJSON_AddNumberToObject(obj, key, (double)db_col_int64(st, col));
}

void repo_json_bool(cJSON *obj, const char *key, struct db_stmt *st, int col)
{
    cJSON_AddBoolToObject(obj, key, db_col_int(st, col) != 0);
}

int repo_ping(struct db_conn *conn)
{
    ASSERT_POOL_THREAD();
    struct db_stmt *st = db_stmt(conn, "SELECT 1");
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    db_reset(st);
    return rc == DB_ROW ? 0 : db_status(rc);
}

cJSON *repo_json_columns(struct db_stmt *st, const char *const *keys, int n)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) {
        if (db_col_is_int(st, i))
            repo_json_int(o, keys[i], st, i);
        else
            repo_json_text(o, keys[i], st, i);
    }
    return o;
}

int repo_json_one(struct db_stmt *st, repo_row_fn *row, const void *arg, cJSON **out)
{
    ASSERT_POOL_THREAD();
    int rc = db_step(st);
    if (rc == DB_ROW)
        *out = row(st, arg);
    db_reset(st);
    if (rc == DB_ROW)
        return 0;
    return rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
}

int repo_json_rows(struct db_stmt *st, repo_row_fn *row, const void *arg, cJSON **out)
{
    ASSERT_POOL_THREAD();
    int rc;
    *out = cJSON_CreateArray();
    while ((rc = db_step(st)) == DB_ROW)
        cJSON_AddItemToArray(*out, row(st, arg));
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}

int repo_cursor_parse(const char *s, int with_id, struct repo_page *page)
{
    static const char id_chars[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-";
    size_t digits = strspn(s, "0123456789");
    /* 18 digits cannot overflow int64 (created_at and ids are far below). */
    if (digits == 0 || digits > 18)
        return -1;
    const char *rest = s + digits; /* "" or ".<id>" */
    size_t id_len = 0;
    if (with_id) {
        if (*rest != '.')
            return -1;
        rest++;
        id_len = strspn(rest, id_chars);
        if (id_len == 0 || id_len > 64 || rest[id_len] != '\0')
            return -1;
    } else if (*rest) {
        return -1;
    }
    page->has_after = 1;
    page->after_key = strtoll(s, NULL, 10);
    snprintf(page->after_id, sizeof(page->after_id), "%.*s", (int)id_len, rest);
    return 0;
}

/* Without a cursor the statements start before every row: (INT64_MAX, "") is greater than
 * any (created_at, id) and INT64_MAX than any activity id. */
int64_t repo_page_key(const struct repo_page *page)
{
    return page->has_after ? page->after_key : INT64_MAX;
}

const char *repo_page_id(const struct repo_page *page)
{
    return page->has_after ? page->after_id : "";
}

static void cursor_of(struct db_stmt *st, int key_col, int id_col, char next[REPO_CURSOR_MAX])
{
    long long key = (long long)db_col_int64(st, key_col);
    const char *id = id_col >= 0 ? db_col_str(st, id_col) : NULL;
    if (id)
        snprintf(next, REPO_CURSOR_MAX, "%lld.%s", key, id);
    else
        snprintf(next, REPO_CURSOR_MAX, "%lld", key);
}

int repo_json_page(struct db_stmt *st, repo_row_fn *row, const void *arg,
                   const struct repo_page *page, int key_col, int id_col, cJSON **out,
                   char next[REPO_CURSOR_MAX])
{
    ASSERT_POOL_THREAD();
    int rc;
    int64_t n = 0;
    char last[REPO_CURSOR_MAX] = "";
    *out = cJSON_CreateArray();
    next[0] = '\0';
    while ((rc = db_step(st)) == DB_ROW) {
        if (n++ == page->limit) { /* the extra row: there is a next page */
            memcpy(next, last, REPO_CURSOR_MAX);
            rc = DB_DONE;
            break;
        }
        cJSON_AddItemToArray(*out, row(st, arg));
        if (n == page->limit)
            cursor_of(st, key_col, id_col, last);
    }
    db_reset(st);
    return rc == DB_DONE ? 0 : db_status(rc);
}
