/* SQL of the block-list worker (tables blocklist, blocklist_relay). Pool thread only, inside
 * the worker's db_read / db_write jobs. Return codes: 0 or a db_error (db/db.h). */
#ifndef CARAVEL_BLOCKLIST_REPO_H
#define CARAVEL_BLOCKLIST_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

#include "core/relay_target.h"

#define BLOCKLIST_REASON_MAX 500

/* One (relay, pubkey) that must change: want 1 = ban, 0 = lift. */
struct bl_item {
    char pubkey[65];
    int want;
    int attempts;
    char reason[BLOCKLIST_REASON_MAX + 1];
    struct relay_target t; /* holds the relay's key: relay_target_wipe */
};

/* Up to max rows with want != applied, next_at <= now (unix ms), on active relays, oldest first,
 * into items (caller's array of max). *n is how many were read. Relays whose secret does not parse
 * are skipped (logged). */
int repo_bl_due(struct db_conn *conn, int64_t now, const char *domain, struct bl_item *items,
                size_t max, size_t *n);

/* The relay confirmed `sent` (1 banned, 0 lifted) for (relay, pubkey). The row records it even
 * if the entry was removed meanwhile (then it is re-created as "lift"); a row with nothing left
 * to do is deleted, and so is a removed entry without rows. */
int repo_bl_applied(struct db_conn *conn, const char *relay, const char *pubkey, int sent);

/* A call failed: attempts + 1, next_at (unix ms), the error text. */
int repo_bl_failed(struct db_conn *conn, const char *relay, const char *pubkey, int64_t next_at,
                   const char *error);

/* A relay appeared, came back, or was just accepted by zooid: it gets a row for every active
 * entry it lacks (only when the relay is active), and its pending rows are due now. */
int repo_bl_relay_ready(struct db_conn *conn, const char *relay);

/* Start-up: every active relay gets a row for every active entry it lacks (covers a crash
 * between a relay's commit and its relay_ready). Returns rows added in *added. */
int repo_bl_reconcile(struct db_conn *conn, int64_t *added);

#endif
