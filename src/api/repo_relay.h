/* SQL of the /relays routes (PRODUCT.md §3.3, 4). Pool thread only, inside a db_read (get, list,
 * load) or db_write job. Views are the API's Relay JSON (caller owns *out; the secret is
 * never read into one). `owner` NULL means any relay (admin); otherwise a relay of another
 * tenant is DB_ENOTFOUND (no existence oracle). Return codes: 0, DB_ENOTFOUND,
 * DB_ECONSTRAINT (a UNIQUE subdomain/schema), or a db_error (db/db.h). Activity rows and the
 * sync flag of a change are written by the caller (core/store.h), in the same transaction. */
#ifndef CARAVEL_REPO_RELAY_H
#define CARAVEL_REPO_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include "db/db.h"

#include "core/store.h"

enum relay_flag {
    RF_PUBLIC_JOIN,
    RF_STRIP_SIGNATURES,
    RF_GROUPS,
    RF_MANAGEMENT,
    RF_BLOSSOM,
    RF_LIVEKIT,
    RF_PUSH,
    RF_COUNT
};

/* Column / JSON names of the flags, in enum order. */
extern const char *const relay_flag_names[RF_COUNT];

/* The writable fields of a relay. In an input, NULL strings / has_flag 0 mean "not given". */
struct relay_fields {
    char *tenant; /* POST by an admin only */
    char *subdomain;
    char *plan;
    char *info_name, *info_icon, *info_description;
    char *moderators; /* comma-separated lowercase hex pubkeys, "" = none */
    int flags[RF_COUNT];
    int has_flag[RF_COUNT];
};

/* Relay JSON of id into *out; host = subdomain + "." + domain (domain "" = subdomain). */
int repo_relay_get(struct db_conn *conn, const char *id, const char *owner, const char *domain,
                   cJSON **out);
/* One page of Relay JSON of a tenant ("" = all), newest first (then by id); next: the
 * cursor of the following page, "" at the end (repo_json_page). */
int repo_relay_list(struct db_conn *conn, const char *tenant, const struct repo_page *page,
                    const char *domain, cJSON **out, char next[REPO_CURSOR_MAX]);
/* The writable fields of relay id into out (strings owned by out: relay_fields_free), and its
 * tenant and status. */
int repo_relay_load(struct db_conn *conn, const char *id, const char *owner,
                    struct relay_fields *out, char tenant[65], char status[16]);
/* 1 if another relay than except_id ("" = none) has the subdomain, 0 if not, or < 0. */
int repo_relay_subdomain_taken(struct db_conn *conn, const char *subdomain, const char *except_id);
/* 1 if the tenant already has `max` relays on plan, not counting except_id ("" = none);
 * 0 if not, or < 0. */
int repo_relay_plan_full(struct db_conn *conn, const char *tenant, const char *plan,
                         const char *except_id, int64_t max);
/* base if no relay has that schema yet, else base_2, base_3, ... (out, cap >= 96). */
int repo_relay_unique_schema(struct db_conn *conn, const char *base, char *out, size_t cap);
/* New active relay (f complete: tenant, subdomain, plan; NULL info_* = ""); secret is 64 hex. */
int repo_relay_insert(struct db_conn *conn, const struct relay_fields *f, const char *id,
                      const char *schema, const char *secret, int64_t now);
/* The Relay JSON of the relay repo_relay_insert(f, id, schema, now) just inserted, built from
 * those values instead of read back (the database adds nothing a new relay shows: not synced,
 * no sync error, no member count yet). Any thread. */
cJSON *repo_relay_new_json(const struct relay_fields *f, const char *id, const char *schema,
                           int64_t now, const char *domain);
/* A new relay's block-list rows: one to ban per active entry of the operator's block list
 * (PRODUCT.md §3.3: the list reaches every relay created later), written in the creating
 * transaction, so no new relay is ever without them; the block-list worker sends them once
 * zooid serves the relay (APP_RELAY_SYNCED). */
int repo_relay_blocklist_rows(struct db_conn *conn, const char *id);
/* Replaces the writable fields (f complete) and updated_at. */
int repo_relay_update(struct db_conn *conn, const char *id, const struct relay_fields *f,
                      int64_t now);
/* status: "active", "inactive" or "delinquent". */
int repo_relay_set_status(struct db_conn *conn, const char *id, const char *status, int64_t now);
/* The last member count recorded, -1 when unknown. */
int repo_relay_members_count(struct db_conn *conn, const char *id, int64_t *count);
/* Forgets the last sync error (POST /relays/:id/sync; repo_relay_mark_dirty resets the rest). */
int repo_relay_clear_sync_error(struct db_conn *conn, const char *id);

#endif
