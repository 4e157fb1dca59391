/* The process: command line, configuration, start-up and graceful shutdown (PRODUCT.md §2, §9),
 * in the order docs/ARCHITECTURE.md gives (stop the sources of work first, close the
 * database last). Nothing else lives here.
 *
 * Start-up: config -> nostr -> database (migrations) -> robot key -> relay pool -> NIP-86
 * client -> workers (sync, block list, robot, member counts, billing) -> metrics listener
 * (METRICS_PORT) -> HTTP listener -> "listening on http://HOST:PORT". Shutdown (SIGTERM/SIGINT,
 * or a start-up failure): close the metrics listener, stop accepting (connections the kernel
 * already accepted are served), let requests under way finish and idle keep-alive connections
 * bring a last request for HTTP_SHUTDOWN_IDLE (all within 10 s), then stop billing, sync (which
 * cancels the member-count reads in flight), the member counts, the block list (its calls in flight
 * are cancelled: their rows stay pending), the NIP-86 client and the robot one after the other
 * (each waits for its own work to reach a safe point), free the relay pool, close the database
 * (queued jobs still run), close the signal handles; the loop then ends and the exit code is 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "api/api.h"
#include "core/app.h"
#include "billing/worker.h"
#include "blocklist/worker.h"
#include "core/config.h"
#include "core/wake.h"
#include "db/db.h"
#include "db/sqlite_to_pg.h"
#include "http/server.h"
#include "members/worker.h"
#include "sync/worker.h"
#include "metrics/metrics.h"
#include "net/nip86.h"
#include "net/relay_pool.h"
#include "nostr/keys.h"
#include "robot/key.h"
#include "robot/robot.h"
#include "util/clock.h"
#include "util/debug.h"
#include "util/log.h"
#include "util/util.h"

#define CARAVEL_VERSION "0.1.0"
#define SHUTDOWN_GRACE_MS 10000
/* Last resort if a module never calls back: the process must still end. */
#define SHUTDOWN_WATCHDOG_MS 30000

static struct app app;
static uv_signal_t sig_term, sig_int;
static uv_timer_t watchdog;
static int exit_code;

/* ---- command line ---- */

/* caravel migrate --from sqlite://PATH --to postgres://... (docs/OPERATIONS.md): exit 0 when
 * committed, 1 when nothing was, 2 on a usage error. */
static int migrate_command(int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--from") == 0)
            from = argv[i + 1];
        else if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
        else
            return migrate_command(0, argv); /* the usage */
    }
    if (!from || !to || argc != 6) {
        fprintf(stderr, "usage: caravel migrate --from sqlite://PATH --to postgres://...\n"
                        "copies a stopped SQLite deployment into an empty PostgreSQL database\n");
        return 2;
    }
    return db_sqlite_to_pg(from, to, stdout);
}

/* Returns -1 to go on, else the exit code. */
static int handle_args(int argc, char **argv)
{
    if (argc < 2)
        return -1;
    if (strcmp(argv[1], "migrate") == 0)
        return migrate_command(argc, argv);
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        config_print_help(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--config-table") == 0) {
        config_print_markdown(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("caravel %s\n", CARAVEL_VERSION);
        return 0;
    }
    fprintf(stderr, "caravel: unknown argument \"%.100s\"\n", argv[1]);
    config_print_help(stderr);
    return 2;
}

/* ---- services ---- */

/* Past the descriptor limit accepts fail (counted, warned, and the oldest idle connection is
 * closed each time); say so at start-up rather than under load. */
static void warn_fd_limit(size_t max_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= max_conns + 256)
        return;
    LOG_WARN("HTTP_MAX_CONNECTIONS=%zu but the open-file limit is %llu: raise it (ulimit -n) "
             "to at least %zu, or lower HTTP_MAX_CONNECTIONS",
             max_conns, (unsigned long long)rl.rlim_cur, max_conns + 256);
}

static int start_http(void)
{
    struct http_server_config hc = {
        .host = app.cfg.host,
        .port = app.cfg.port,
        .request_timeout_ms = (uint64_t)app.cfg.http_request_timeout * 1000,
        .stop_idle_ms = (uint64_t)app.cfg.http_shutdown_idle * 1000,
        .request_buffer_max = app.cfg.http_request_buffer,
        .head_handler = api_head,
        .response_buffer_max = app.cfg.http_response_buffer,
        .max_conns = app.cfg.http_max_conns,
        .max_conns_per_addr =
            app.cfg.http_max_conns_per_ip ? app.cfg.http_max_conns_per_ip : SIZE_MAX,
    };
    warn_fd_limit(app.cfg.http_max_conns);
    int rc = http_server_start(&app.http, app.loop, &hc, api_handle, &app);
    if (rc != 0) {
        app.http = NULL;
        LOG_ERROR("HOST/PORT: cannot listen on %s:%d: %s", app.cfg.host, app.cfg.port,
                  uv_strerror(rc));
        return -1;
    }
    /* Tokens must name HOST unless PUBLIC_URL is set (PRODUCT.md §3.2); no client calls 0.0.0.0. */
    if (config_origin_unreachable(&app.cfg))
        LOG_WARN("PUBLIC_URL is not set and HOST=%s: every NIP-98 token would have to name "
                 "http://%s:%d; set PUBLIC_URL to the origin clients call",
                 app.cfg.host, app.cfg.host, http_server_port(app.http));
    /* Printed whatever LOG_LEVEL says: operators and tests wait for this line. */
    int v6 = strchr(app.cfg.host, ':') != NULL;
    log_write(LOG_LEVEL_INFO, __FILE__, __LINE__, "listening on http://%s%s%s:%d", v6 ? "[" : "",
              app.cfg.host, v6 ? "]" : "", http_server_port(app.http));
    return 0;
}

static int start_services(void)
{
    const struct config *c = &app.cfg;
    /* The pool serves the robot and NWC; without their settings nothing would use it. */
    int need_pool =
        c->outbox_relays.n || c->indexer_relays.n || c->messaging_relays.n || c->nwc_url;
    if (need_pool && relay_pool_new(&app.pool, app.loop, app.cfg.ca_file) != 0) {
        LOG_ERROR("cannot start the relay pool (CARAVEL_CA_FILE?)");
        return -1;
    }
    /* Relay management (invites, bans) calls each relay's own NIP-86 endpoint. */
    if (nip86_new(&app.nip86, app.loop, c->relay_url_template, 0) != 0) {
        LOG_ERROR("cannot start the NIP-86 client (libcurl)");
        return -1;
    }
    if (sync_worker_start(&app.sync, &app) != 0)
        return -1;
    /* The operator block list reaches every relay through NIP-86 (its own client). */
    if (blocklist_start(&app.blocklist, &app) != 0)
        return -1;
    if (!app.sync)
        LOG_WARN("sync: ZOOID_API_URL is not set: the zooid sync worker is off and relays "
                 "stay unsynced (set ZOOID_API_URL and ZOOID_API_SECRET)");
    /* Logs its own warning naming ROBOT_*_RELAYS when they are missing. */
    if (robot_start(&app.robot, &app) != 0)
        return -1;
    /* Reads member counts through the sync worker's client; DMs through the robot's outbox. */
    if (members_start(&app.members, &app) != 0)
        return -1;
    /* Owns the NWC client (app->nwc); logs the one line naming NWC_URL when it is unset. */
    if (billing_start(&app.billing, &app) != 0)
        return -1;
    /* After every worker registered its hooks: other instances' commits wake them. */
    if (app_listen_start(&app) != 0)
        return -1;
    /* Before the API: every answered request is counted from the first one on. */
    if (metrics_start(&app.metrics, &app) != 0)
        return -1;
    return start_http();
}

/* ---- shutdown ---- */

enum stage {
    STAGE_WAKE,
    STAGE_METRICS,
    STAGE_HTTP,
    STAGE_BILLING,
    STAGE_INFRA,
    STAGE_MEMBERS,
    STAGE_BLOCKLIST,
    STAGE_NIP86,
    STAGE_ROBOT,
    STAGE_POOL,
    STAGE_DB,
    N_STAGES
};

static int stage;
static void **stage_ptr; /* the service being stopped: NULL once its callback ran */

static void shutdown_next(void *arg);

/* Starts stopping one service; returns 1 when shutdown_next will be called back. The
 * pointer in struct app stays valid until then, so nothing else sees a freed service. */
static int stop_stage(enum stage s)
{
    void **ptrs[N_STAGES] = {(void **)&app.wake,      (void **)&app.metrics, (void **)&app.http,
                             (void **)&app.billing,   (void **)&app.sync,    (void **)&app.members,
                             (void **)&app.blocklist, (void **)&app.nip86,   (void **)&app.robot,
                             (void **)&app.pool,      (void **)&app.db};
    stage_ptr = ptrs[s];
    if (!*stage_ptr)
        return 0;
    switch (s) {
    case STAGE_WAKE:
        app_listen_stop(&app, shutdown_next, NULL);
        break;
    case STAGE_METRICS:
        metrics_stop(app.metrics, shutdown_next, NULL);
        break;
    case STAGE_HTTP:
        http_server_stop(app.http, SHUTDOWN_GRACE_MS, shutdown_next, NULL);
        break;
    case STAGE_BILLING:
        billing_stop(app.billing, shutdown_next, NULL);
        break;
    case STAGE_INFRA:
        sync_worker_stop(app.sync, shutdown_next, NULL);
        break;
    case STAGE_MEMBERS: /* after sync, which cancelled its reads in flight */
        members_stop(app.members, shutdown_next, NULL);
        break;
    case STAGE_BLOCKLIST:
        blocklist_stop(app.blocklist, shutdown_next, NULL);
        break;
    case STAGE_NIP86:
        nip86_close(app.nip86, shutdown_next, NULL);
        break;
    case STAGE_ROBOT:
        robot_stop(app.robot, shutdown_next, NULL);
        break;
    case STAGE_POOL:
        relay_pool_free(app.pool, shutdown_next, NULL);
        break;
    default:
        db_close(app.db, shutdown_next, NULL);
        break;
    }
    return 1;
}

static void close_loop_handles(void)
{
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&watchdog, NULL);
}

/* One service after the other (each one's callback calls this again). */
static void shutdown_next(void *arg)
{
    (void)arg;
    if (stage_ptr)
        *stage_ptr = NULL;
    stage_ptr = NULL;
    while (stage < N_STAGES)
        if (stop_stage((enum stage)stage++))
            return;
    LOG_INFO("stopped");
    close_loop_handles();
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    LOG_ERROR("shutdown did not finish in %d s (stuck at step %d); exiting",
              SHUTDOWN_WATCHDOG_MS / 1000, stage);
    _exit(1);
}

static void begin_shutdown(int code)
{
    if (app.stopping)
        return;
    app.stopping = 1;
    exit_code = code;
    uv_timer_start(&watchdog, on_watchdog, SHUTDOWN_WATCHDOG_MS, 0);
    shutdown_next(NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (app.stopping) {
        LOG_WARN("%s again: already shutting down", strsignal(signum));
        return;
    }
    LOG_INFO("%s: shutting down", strsignal(signum));
    begin_shutdown(0);
}

static void init_loop_handles(void)
{
    uv_signal_init(app.loop, &sig_term);
    uv_signal_init(app.loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_init(app.loop, &watchdog);
    /* The watchdog must never keep the loop alive by itself. */
    uv_unref((uv_handle_t *)&watchdog);
}

/* ---- main ---- */

static int setup(void)
{
    char err[512];
    if (nostr_init() != 0) {
        fprintf(stderr, "caravel: cannot initialise secp256k1\n");
        return 1;
    }
    if (config_load(&app.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "caravel: configuration error: %s\n", err);
        return 2;
    }
    clock_use_file(app.cfg.test.clock_file);
    app.loop = uv_default_loop();
    /* A postgres:// URL may hold a password: only a path is named in the log. */
    const char *db_name = strstr(app.cfg.db_path, "://") ? "(postgres)" : app.cfg.db_path;
    if (db_open(&app.db, app.loop, app.cfg.db_path) != 0) {
        LOG_ERROR("DATABASE_URL: cannot open the database %s", db_name);
        return 1;
    }
    if (app.cfg.test.db_max_pages)
        db_set_max_pages(app.db, app.cfg.test.db_max_pages);
    if (db_read_only(app.db) && !app.cfg.allow_read_only_db) {
        LOG_ERROR("DATABASE_URL: the database %s is read-only (file permissions or a read-only "
                  "mount): no write could be saved; fix that, or set DATABASE_READ_ONLY_OK=1 to "
                  "serve reads only",
                  db_name);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = handle_args(argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    debug_set_loop_thread(); /* this thread runs the loop (util/debug.h) */
    /* The pool is shared by SQLite (1 writer + readers), DNS and files: a little headroom.
     * Read by libuv when the pool first starts, i.e. at the robot key job below. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);
    if ((rc = setup()) != 0) {
        config_free(&app.cfg);
        nostr_shutdown();
        return rc;
    }
    /* Before the signal handles exist: it runs the loop until the key job is done. */
    int key_rc = robot_key_load(&app);
    init_loop_handles();
    if (key_rc != 0 || start_services() != 0)
        begin_shutdown(1);
    uv_run(app.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(app.loop) != 0) {
        LOG_ERROR("handles left open at exit");
        exit_code = exit_code ? exit_code : 1;
    }
    secure_zero(&app.robot_key, sizeof(app.robot_key));
    config_free(&app.cfg);
    nostr_shutdown();
    return exit_code;
}
