/* HTTP server throughput against nginx on a trivial route, both single-threaded, measured
 * with wrk (64 connections, keep-alive). Not a test: prints numbers for docs/BENCHMARKS.md.
 *   build/bench/http_bench [seconds]     (default 5; skips what is not installed)
 * HTTP_BENCH_LOG=info keeps the per-request log line on (default warn: the line costs one
 * write(2) to stderr per request, which is a deployment choice, not server speed). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>
#include <uv.h>

#include "http/server.h"
#include "util/log.h"

static const char body[] = "{\"data\":{\"status\":\"ok\"},\"code\":\"ok\"}";

static uv_loop_t loop;
static uv_async_t stop_async;
static struct http_server *srv;

static void handler(struct http_exchange *ex, void *arg)
{
    (void)arg;
    http_respond(ex, 200, "application/json; charset=utf-8", NULL, body, sizeof(body) - 1);
}

static void on_stop(uv_async_t *a)
{
    http_server_stop(srv, 1000, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs wrk and returns requests/second (0 when wrk is missing or failed). */
static double run_wrk(int port, int seconds)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c64 -d%ds http://127.0.0.1:%d/healthz 2>&1", seconds,
             port);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0;
    char line[512];
    double rps = 0;
    while (fgets(line, sizeof(line), p)) {
        fputs("    ", stdout);
        fputs(line, stdout);
        sscanf(line, "Requests/sec: %lf", &rps);
    }
    pclose(p);
    return rps;
}

static double bench_caravel(int seconds)
{
    uv_loop_init(&loop);
    struct http_server_config cfg = {.host = "127.0.0.1"};
    if (http_server_start(&srv, &loop, &cfg, handler, NULL) != 0)
        return 0;
    uv_async_init(&loop, &stop_async, on_stop);
    pthread_t t;
    pthread_create(&t, NULL, loop_main, NULL);
    printf("caravel http (1 loop thread):\n");
    double rps = run_wrk(http_server_port(srv), seconds);
    uv_async_send(&stop_async);
    pthread_join(t, NULL);
    uv_loop_close(&loop);
    return rps;
}

static double bench_nginx(int seconds)
{
    char dir[] = "/tmp/caravel-nginx-XXXXXX", conf[128];
    if (access("/usr/sbin/nginx", X_OK) != 0 || !mkdtemp(dir))
        return 0;
    int port = 20000 + (int)(getpid() % 20000);
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return 0;
    fprintf(f,
            "daemon off; master_process off; worker_processes 1; pid %s/pid; error_log stderr "
            "crit;\nevents { worker_connections 1024; }\nhttp { access_log off; "
            "client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; "
            "uwsgi_temp_path %s; scgi_temp_path %s;\n server { listen 127.0.0.1:%d; location / "
            "{ default_type \"application/json; charset=utf-8\"; return 200 '%s'; } } }\n",
            dir, dir, dir, dir, dir, dir, port, body);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/sbin/nginx", "nginx", "-p", dir, "-c", conf, (char *)NULL);
        _exit(127);
    }
    usleep(300000);
    printf("nginx (1 worker, return 200):\n");
    double rps = run_wrk(port, seconds);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return rps;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 5;
    const char *lvl = getenv("HTTP_BENCH_LOG");
    log_set_level(lvl ? lvl : "warn");
    signal(SIGPIPE, SIG_IGN);
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        printf("http_bench: wrk not installed, skipped\n");
        return 0;
    }
    double ours = bench_caravel(seconds);
    double theirs = bench_nginx(seconds);
    printf("http_bench: caravel %.0f req/s, nginx %.0f req/s", ours, theirs);
    if (theirs > 0)
        printf(", ratio %.2f", ours / theirs);
    printf("\n");
    return 0;
}
