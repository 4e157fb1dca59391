/* Start-up and shutdown of the whole process (spec 9; notes/c-style-anchors.md 2.5).
 *
 * Start-up: configuration → Nostr context → database (migrations) → robot key → relay pool →
 * workers (zooid sync, robot, billing) → HTTP listener. Shutdown on SIGTERM/SIGINT runs the
 * reverse order as a chain of asynchronous steps: stop accepting and finish in-flight requests
 * (10 s at most), stop the workers at a safe point, close the relay pool, close the database,
 * exit 0. Everything here runs on the loop thread. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "api/api.h"
#include "app.h"
#include "db/db.h"
#include "http/server.h"
#include "infra.h"
#include "net/relay_pool.h"
#include "nostr/hex.h"
#include "robot.h"
#include "util/log.h"
#include "util/util.h"

#define CARAVEL_VERSION "0.1.0"
#define SHUTDOWN_GRACE_MS 10000

static const char usage[] =
    "Usage: caravel [--help | --version]\n"
    "Caravel backend: NIP-98 JSON API, zooid sync, Nostr robot and Lightning billing.\n"
    "Configuration comes from the environment (defaults in brackets):\n"
    "  DATABASE_URL        sqlite://PATH, sqlite:PATH or PATH [sqlite://data/caravel.db]\n"
    "  HOST, PORT          bind address; HOST is also the NIP-98 host [127.0.0.1, 3000]\n"
    "  PUBLIC_URL          public origin behind a reverse proxy, e.g. https://api.example.com\n"
    "  ADMINS              comma-separated admin pubkeys (hex or npub)\n"
    "  ALLOW_ORIGINS       comma-separated CORS origins [empty: permissive]\n"
    "  ZOOID_API_URL       zooid API base URL [unset: sync disabled]\n"
    "  ZOOID_API_SECRET    key signing requests to zooid (hex or nsec)\n"
    "  RELAY_DOMAIN        base domain of relay hosts [empty]\n"
    "  LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET   sent to zooid for LiveKit relays\n"
    "  NWC_URL             platform wallet (NIP-47 URI) [unset: no invoices]\n"
    "  ROBOT_SECRET        robot key (hex or nsec) [generated once, kept in the database]\n"
    "  ROBOT_NAME, ROBOT_DESCRIPTION, ROBOT_PICTURE       robot profile\n"
    "  ROBOT_OUTBOX_RELAYS, ROBOT_INDEXER_RELAYS, ROBOT_MESSAGING_RELAYS  relay lists\n"
    "  AUTH_MAX_AGE        NIP-98 token lifetime in seconds [600]\n"
    "  BILLING_INTERVAL    seconds between billing runs [3600]\n"
    "  BILLING_PERIOD      billing period in seconds [unset: calendar month]\n"
    "  BILLING_GRACE       seconds before unpaid relays become delinquent [604800]\n"
    "  METRICS_PORT        Prometheus /metrics port on HOST [0: off]\n"
    "  LOG_LEVEL           debug, info, warn, error [info]\n";

static struct app app;
static uv_signal_t sig_term, sig_int;

/* ---- robot key: ROBOT_SECRET, or generated once and kept in the setting table ---- */

struct key_job {
    uint8_t seckey[32];
    int generated;
    int done;
    int status;
};

static int load_or_create_key(sqlite3 *conn, void *arg)
{
    struct key_job *job = arg;
    char hex[65];
    sqlite3_stmt *st = db_stmt(conn, "SELECT value FROM setting WHERE key = 'robot_secret'");
    if (!st)
        return DB_EGENERIC;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        int rc = v && hex_decode(v, strlen(v), job->seckey, 32) == 0 ? 0 : DB_EGENERIC;
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    struct nostr_keypair kp;
    if (nostr_keypair_generate(&kp) != 0)
        return DB_EGENERIC;
    memcpy(job->seckey, kp.seckey, 32);
    hex_encode(kp.seckey, 32, hex);
    secure_zero(&kp, sizeof(kp));
    st = db_stmt(conn, "INSERT INTO setting(key, value) VALUES ('robot_secret', ?)");
    sqlite3_bind_text(st, 1, hex, 64, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_rc(conn, SQLITE_ERROR);
    sqlite3_reset(st);
    secure_zero(hex, sizeof(hex));
    job->generated = rc == 0;
    return rc;
}

static void on_key(int status, void *arg)
{
    struct key_job *job = arg;
    job->status = status;
    job->done = 1;
}

/* Start-up only: runs the loop until the key job is done. */
static int robot_key_init(void)
{
    struct key_job job = {0};
    int rc = 0;
    if (app.cfg.has_robot_secret)
        return nostr_keypair_from_seckey(&app.robot_key, app.cfg.robot_secret);
    if ((rc = db_write(app.db, load_or_create_key, on_key, &job)) != 0)
        return rc;
    while (!job.done)
        uv_run(app.loop, UV_RUN_ONCE);
    if (job.status == 0)
        rc = nostr_keypair_from_seckey(&app.robot_key, job.seckey);
    secure_zero(job.seckey, sizeof(job.seckey));
    if (job.status != 0 || rc != 0)
        return -1;
    LOG_WARN("ROBOT_SECRET is not set: using the robot key %s the database",
             job.generated ? "just generated and stored in" : "stored in");
    return 0;
}

/* ---- workers ---- */

static int start_workers(void)
{
    /* The pool opens no connection until the robot or the wallet client uses it. */
    if (relay_pool_new(&app.pool, app.loop, getenv("CARAVEL_CA_FILE")) != 0) {
        LOG_ERROR("cannot create the relay pool (CARAVEL_CA_FILE unreadable?)");
        return -1;
    }
    if (!app.cfg.zooid_api_url)
        LOG_WARN("zooid sync is disabled: set ZOOID_API_URL (and ZOOID_API_SECRET) to enable it");
    else if (infra_start(&app.infra, &app) != 0)
        return -1;
    /* Warns once naming the ROBOT_*_RELAYS variables when they are missing. */
    if (robot_start(&app.robot, &app) != 0)
        return -1;
    if (!app.cfg.nwc_url)
        LOG_WARN("invoices are not issued: set NWC_URL to enable billing");
    return 0;
}

/* ---- shutdown: one asynchronous step after another ---- */

static void shutdown_next(void *arg);

static void on_http_stopped(void *arg)
{
    shutdown_next(arg);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Each step clears its pointer before stopping the service, so a stop function that calls
 * back synchronously re-enters here safely and moves on to the next step. */
static void shutdown_next(void *arg)
{
    (void)arg;
    if (app.http) {
        struct http_server *http = app.http;
        app.http = NULL;
        http_server_stop(http, SHUTDOWN_GRACE_MS, on_http_stopped, NULL);
    } else if (app.infra) {
        struct infra *infra = app.infra;
        app.infra = NULL;
        infra_stop(infra, shutdown_next, NULL);
    } else if (app.robot) {
        /* Before the pool: the robot waits for its publishes and outbox writes. */
        struct robot *robot = app.robot;
        app.robot = NULL;
        robot_stop(robot, shutdown_next, NULL);
    } else if (app.pool) {
        struct relay_pool *pool = app.pool;
        app.pool = NULL;
        relay_pool_free(pool, shutdown_next, NULL);
    } else if (app.db) {
        struct db *db = app.db;
        app.db = NULL;
        db_close(db, shutdown_next, NULL);
    } else {
        uv_walk(app.loop, close_walk, NULL);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (app.stopping)
        return;
    app.stopping = 1;
    LOG_INFO("signal %d: shutting down", signum);
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_int);
    shutdown_next(NULL);
}

/* ---- main ---- */

static int start(void)
{
    struct http_server_config hc = {.host = app.cfg.host, .port = app.cfg.port};
    if (db_open(&app.db, app.loop, app.cfg.db_path) != 0)
        return -1;
    if (robot_key_init() != 0) {
        LOG_ERROR("cannot load or create the robot key");
        return -1;
    }
    if (start_workers() != 0)
        return -1;
    int rc = http_server_start(&app.http, app.loop, &hc, api_handle, &app);
    if (rc != 0) {
        LOG_ERROR("cannot listen on %s:%d: %s", app.cfg.host, app.cfg.port, uv_strerror(rc));
        return -1;
    }
    uv_signal_init(app.loop, &sig_term);
    uv_signal_init(app.loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    /* Tests and supervisors wait for this line: signals are handled from here on. */
    LOG_INFO("listening on http://%s:%d", app.cfg.host, http_server_port(app.http));
    return 0;
}

int main(int argc, char **argv)
{
    char err[512];
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("caravel " CARAVEL_VERSION);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "caravel: unknown argument %s\n%s", argv[1], usage);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(err, sizeof(err), "secp256k1 context or randomness unavailable");
    if (nostr_init() != 0 || config_load(&app.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "caravel: configuration error: %s\n", err);
        return 2;
    }
    app.loop = uv_default_loop();
    int failed = start() != 0;
    if (failed) {
        app.stopping = 1;
        shutdown_next(NULL);
    }
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    config_free(&app.cfg);
    nostr_shutdown();
    if (!failed)
        LOG_INFO("stopped");
    return failed ? 1 : 0;
}
