#!/usr/bin/env bash
# Interleaved A/B of nginx's upstream keepalive pool in front of two instances: the upstream
# block and location of deploy/nginx-instances.conf with `keepalive A` and then `keepalive B`,
# ROUNDS times, GET /healthz through nginx with wrk -t1 -c64 (BENCH_CONNECTIONS) for
# BENCH_DURATION (default 8) s. Printed per run: req/s, p99 ms and the two instances' CPU
# microseconds per request (it moves much less with the machine's load than req/s does).
#   bash bench/proxy-pool-ab.sh [A] [B] [ROUNDS]      (defaults 16 64 3; after `make all`)
# Servers and nginx bind 127.0.0.1 and are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
BIN=build/caravel
DUR=${BENCH_DURATION:-8}
TMP=$(mktemp -d /tmp/caravel-pool-ab-XXXXXX)
source bench/instances.sh
trap 'nginx_stop; servers_stop; rm -rf "$TMP"' EXIT
command -v wrk >/dev/null || { echo "proxy-pool-ab: wrk not installed, skipped"; exit 0; }
new_keys
server a
server b
echo "keepalive A/B through deploy/nginx-instances.conf, $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-9s %9s %8s %8s  %s\n' round keepalive "req/s" "p99 ms" "CPU us" load
for r in $(seq 1 "${3:-3}"); do
  for k in "${1:-16}" "${2:-64}"; do
    sed "s/^    keepalive [0-9]*;/    keepalive $k;/" deploy/nginx-instances.conf >"$TMP/pool.conf"
    NGINX_INSTANCES_CONF=$TMP/pool.conf nginx_instances a b
    read -r rps p99 cpu < <(wrk_run "${PID[a]} ${PID[b]}" "$TMP/wrk.txt" "$NGINX_URL/healthz")
    nginx_stop
    printf '%-5s %-9s %9s %8s %8s  %s\n' "$r" "$k" "$rps" "$p99" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
