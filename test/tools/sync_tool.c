/* sync_tool: runs the real sync worker (src/sync/worker.c) on a fresh database against a zooid URL,
 * so the integration tests can check it with the test zooid (lib/zooid.mjs) before, and
 * independently of, the HTTP API. Reads one JSON command on stdin:
 *   {"db": path, "zooid_url": "...", "sk": hex (ZOOID_API_SECRET), "tenant": hex pubkey,
 *    "relays": N, "prefix": "t" (lowercase letters), "relay_domain": "", "timeout_ms": 60000}
 * seeds N relays "{prefix}0".."{prefix}{N-1}" (free plan, subdomain/schema "{prefix}s{i}") in one
 * transaction, starts
 * the worker, waits until none is unsynced, stops everything and prints
 *   {"synced": n, "ms": elapsed, "lag_p99_ms": p99 of the loop's timer lateness,
 *    "failures": fail_relay_sync activities recorded, "breaker_opens": times the worker's
 *    circuit breaker opened, "loop_close": uv_loop_close() result}
 * (exit 1 with {"error": ...} on timeout or failure). Test settings such as
 * CARAVEL_TEST_SYNC_RETRY_MS come from the environment, through config_load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "core/app.h"
#include "db/db.h"
#include "sync/worker.h"
#include "nostr/hex.h"
#include "nostr/keys.h"
#include "util/buf.h"
#include "util/util.h"

#define STDIN_MAX (64 * 1024)
#define LAG_MAX 100000
#define TICK_MS 10

static struct {
    struct app app;
    uv_timer_t tick;
    int n, querying, finished, failed;
    int counts[2]; /* unsynced relays, fail_relay_sync activities */
    uint64_t breaker_opens;
    char tenant[65];
    char prefix[17];
    uint64_t t0, deadline, last_tick;
    uint64_t lag[LAG_MAX];
    size_t n_lag;
} t;

static int seed_work(struct db_conn *conn, void *arg)
{
    (void)arg;
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT INTO tenant(pubkey, created_at) VALUES ('%s', 1)", t.tenant);
    int rc = db_exec(conn, sql);
    for (int i = 0; rc == 0 && i < t.n; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, created_at, "
                 "updated_at) VALUES ('%s%d', '%s', '%ss%d', '%ss%d', '%064d', 'free', 1, 1)",
                 t.prefix, i, t.tenant, t.prefix, i, t.prefix, i, i + 1);
        rc = db_exec(conn, sql);
    }
    return rc;
}

static int count_work(struct db_conn *conn, void *arg)
{
    struct db_stmt *st = db_stmt(conn, "SELECT (SELECT count(*) FROM relay WHERE synced = 0),"
                                       " (SELECT count(*) FROM activity"
                                       "  WHERE activity_type = 'fail_relay_sync')");
    if (!st)
        return DB_EGENERIC;
    int rc = db_step(st);
    int *out = arg;
    out[0] = rc == DB_ROW ? db_col_int(st, 0) : -1;
    out[1] = rc == DB_ROW ? db_col_int(st, 1) : -1;
    db_reset(st);
    return rc == DB_ROW ? 0 : db_status(rc);
}

static void on_db_closed(void *arg)
{
    (void)arg;
}

static void on_stopped(void *arg)
{
    (void)arg;
    db_close(t.app.db, on_db_closed, NULL);
}

static void finish(int failed)
{
    struct sync_worker_stats st;
    sync_worker_stats(t.app.sync, &st);
    t.breaker_opens = st.breaker_opens;
    t.finished = 1;
    t.failed = failed;
    uv_close((uv_handle_t *)&t.tick, NULL);
    sync_worker_stop(t.app.sync, on_stopped, NULL);
}

static void on_counted(int status, void *arg)
{
    (void)arg;
    t.querying = 0;
    if (t.finished)
        return;
    if (status == 0 && t.counts[0] == 0)
        finish(0);
}

static void on_tick(uv_timer_t *h)
{
    uint64_t now = uv_now(h->loop);
    if (t.last_tick && t.n_lag < LAG_MAX)
        t.lag[t.n_lag++] = now - t.last_tick > TICK_MS ? now - t.last_tick - TICK_MS : 0;
    t.last_tick = now;
    if (now > t.deadline) {
        finish(1);
        return;
    }
    if (!t.querying && db_read(t.app.db, count_work, on_counted, t.counts) == 0)
        t.querying = 1;
}

static void on_seeded(int status, void *arg)
{
    (void)arg;
    if (status != 0 || sync_worker_start(&t.app.sync, &t.app) != 0 || !t.app.sync) {
        t.failed = 1;
        uv_close((uv_handle_t *)&t.tick, NULL);
        db_close(t.app.db, on_db_closed, NULL);
        return;
    }
    t.t0 = uv_now(t.app.loop);
    uv_timer_start(&t.tick, on_tick, TICK_MS, TICK_MS);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int setup(const cJSON *cmd, uv_loop_t *loop)
{
    const cJSON *db = cJSON_GetObjectItemCaseSensitive(cmd, "db");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(cmd, "zooid_url");
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(cmd, "sk");
    const cJSON *tenant = cJSON_GetObjectItemCaseSensitive(cmd, "tenant");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(cmd, "relays");
    const cJSON *dom = cJSON_GetObjectItemCaseSensitive(cmd, "relay_domain");
    const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(cmd, "timeout_ms");
    if (!cJSON_IsString(db) || !cJSON_IsString(url) || !cJSON_IsString(sk) ||
        !cJSON_IsString(tenant) || strlen(tenant->valuestring) != 64 || !cJSON_IsNumber(n) ||
        hex_decode(sk->valuestring, strlen(sk->valuestring), t.app.cfg.zooid_secret, 32) != 0)
        return -1;
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(cmd, "prefix");
    const char *p = cJSON_IsString(prefix) ? prefix->valuestring : "t";
    if (!*p || strlen(p) >= sizeof(t.prefix) ||
        strspn(p, "abcdefghijklmnopqrstuvwxyz") != strlen(p))
        return -1;
    snprintf(t.prefix, sizeof(t.prefix), "%s", p);
    snprintf(t.tenant, sizeof(t.tenant), "%s", tenant->valuestring);
    t.n = n->valueint;
    t.app.loop = loop;
    char err[256];
    struct config env_cfg;
    if (config_load(&env_cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "sync_tool: %s\n", err);
        return -1;
    }
    t.app.cfg.test = env_cfg.test;
    t.app.cfg.test.clock_file = t.app.cfg.test.crash_at = NULL; /* freed with env_cfg */
    config_free(&env_cfg);
    t.app.cfg.zooid_api_url = url->valuestring;
    t.app.cfg.relay_domain = cJSON_IsString(dom) ? dom->valuestring : "";
    t.deadline = uv_now(loop) + (uint64_t)(cJSON_IsNumber(tmo) ? tmo->valuedouble : 60000);
    if (db_open(&t.app.db, loop, db->valuestring) != 0)
        return -1;
    uv_timer_init(loop, &t.tick);
    return db_write(t.app.db, DB_CRASH_SAFE, seed_work, on_seeded, NULL);
}

static void report(cJSON *out, uv_loop_t *loop)
{
    qsort(t.lag, t.n_lag, sizeof(t.lag[0]), cmp_u64);
    cJSON_AddNumberToObject(out, "synced", t.failed ? t.n - t.counts[0] : t.n);
    cJSON_AddNumberToObject(out, "failures", t.counts[1]);
    cJSON_AddNumberToObject(out, "breaker_opens", (double)t.breaker_opens);
    cJSON_AddNumberToObject(out, "ms", (double)(uv_now(loop) - t.t0));
    cJSON_AddNumberToObject(out, "lag_p99_ms",
                            t.n_lag ? (double)t.lag[MIN(t.n_lag - 1, t.n_lag * 99 / 100)] : 0);
    cJSON_AddNumberToObject(out, "loop_close", uv_loop_close(loop));
}

int main(void)
{
    struct buf in;
    char chunk[4096];
    size_t got;
    uv_loop_t loop;
    buf_init(&in, STDIN_MAX);
    while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (buf_append(&in, chunk, got) != 0)
            break;
    cJSON *cmd = cJSON_ParseWithLength(in.data ? in.data : "", in.len);
    cJSON *out = cJSON_CreateObject();
    uv_loop_init(&loop);
    int rc = nostr_init() == 0 && cmd ? setup(cmd, &loop) : -1;
    if (rc == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        report(out, &loop);
        rc = t.failed ? -1 : 0;
    }
    if (rc != 0)
        cJSON_AddStringToObject(out, "error", t.failed ? "not all relays synced" : "bad command");
    char *s = cJSON_PrintUnformatted(out);
    puts(s ? s : "{}");
    free(s);
    cJSON_Delete(out);
    cJSON_Delete(cmd);
    buf_free(&in);
    return rc ? 1 : 0;
}
