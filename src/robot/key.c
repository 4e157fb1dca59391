/* The robot's key (see robot/key.h): its SQL runs on a pool thread in a write transaction. */
#include "robot/key.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip19.h"
#include "util/log.h"
#include "util/util.h"

struct robot_key_job {
    uint8_t seckey[32];
    int generated;
    int status;
};

/* Pool thread, in a write transaction: the stored key into job->seckey; DB_ENOTFOUND when
 * there is none. */
static int read_robot_key(struct db_conn *conn, struct robot_key_job *job)
{
    struct db_stmt *st = db_stmt(conn, "SELECT value FROM setting WHERE key = 'robot_secret'");
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    if (rc == DB_ROW) {
        const char *v = db_col_str(st, 0);
        rc = v && hex_decode(v, strlen(v), job->seckey, 32) == 0 ? 0 : DB_EGENERIC;
    } else {
        rc = rc == DB_DONE ? DB_ENOTFOUND : db_status(rc);
    }
    db_reset(st);
    return rc;
}

/* Pool thread, in a write transaction. Several instances may start together on an empty
 * database (one PostgreSQL behind several processes): each generates a key, the first INSERT
 * wins, the others' are ignored (PostgreSQL makes a concurrent insert of the same key wait for
 * the winner's COMMIT), and every instance then reads back the one stored key. */
static int robot_key_work(struct db_conn *conn, void *arg)
{
    struct robot_key_job *job = arg;
    struct nostr_keypair kp;
    char hex[65];
    job->generated = 0; /* the job may run again (DB_EBUSY) */
    int rc = read_robot_key(conn, job);
    if (rc != DB_ENOTFOUND)
        return rc;
    if (nostr_keypair_generate(&kp) != 0)
        return DB_EGENERIC;
    hex_encode(kp.seckey, 32, hex);
    rc = db_run(conn, "INSERT OR IGNORE INTO setting(key, value) VALUES ('robot_secret', ?)",
                DB_TEXT(hex));
    job->generated = rc == 0 && db_changes(conn) == 1;
    secure_zero(&kp, sizeof(kp));
    secure_zero(hex, sizeof(hex));
    return rc != 0 ? rc : read_robot_key(conn, job);
}

static void on_robot_key(int status, void *arg)
{
    ((struct robot_key_job *)arg)->status = status;
}

int robot_key_load(struct app *app)
{
    struct robot_key_job job = {.status = 1};
    char npub[100];
    if (app->cfg.has_robot_secret) {
        memcpy(job.seckey, app->cfg.robot_secret, 32);
    } else if (db_write(app->db, DB_POWER_SAFE, robot_key_work, on_robot_key, &job) == 0) {
        uv_run(app->loop, UV_RUN_DEFAULT);
    }
    int rc = -1;
    if ((app->cfg.has_robot_secret || job.status == 0) &&
        nostr_keypair_from_seckey(&app->robot_key, job.seckey) == 0)
        rc = 0;
    int generated = job.generated;
    secure_zero(&job, sizeof(job));
    if (rc != 0) {
        LOG_ERROR("cannot load the robot key kept in the database (setting robot_secret)");
        return -1;
    }
    /* npub, not hex: the log never holds 64 hex characters that could be taken for a key. */
    if (nip19_encode_key("npub", app->robot_key.pubkey, npub, sizeof(npub)) != 0)
        snprintf(npub, sizeof(npub), "?");
    if (app->cfg.has_robot_secret)
        LOG_INFO("robot %s (ROBOT_SECRET)", npub);
    else
        LOG_WARN("ROBOT_SECRET is not set: using the robot key %s the database (robot %s);"
                 " set ROBOT_SECRET to choose the robot's identity",
                 generated ? "just generated and stored in" : "stored in", npub);
    return 0;
}
