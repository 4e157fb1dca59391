#!/usr/bin/env bash
# Several instances (not a test): two caravel instances on one PostgreSQL database behind nginx
# against one of them called directly, in the same run, then the failover time.
#   bash bench/instances.sh
# 1. GET /relays/:id (the owner's session token reused) and POST /relays (an admin's session
#    token reused, a unique subdomain and a seeded tenant per request) with wrk -t1 -c64 for
#    BENCH_DURATION s (default 10): instance A directly, then nginx in front of A and B
#    (deploy/nginx-instances.conf's upstream block and location, over plain HTTP: the proxy hop
#    is measured, not TLS). Prints req/s, p99 and the ratio nginx+2 / direct.
# 2. Failover: a steady mixed load through nginx (bench/failover.mjs, FAILOVER_SECONDS, default
#    15), instance A killed with SIGKILL after a third of it; prints the failed requests and the
#    time from the kill until every request succeeds again.
# PostgreSQL: BENCH_PG_URL (a role that may CREATE DATABASE; the run creates and drops its own
# database), else a throwaway cluster (test/integration/lib/postgres.mjs) started and removed
# here. BENCH_BIN (default build/caravel). Every process binds 127.0.0.1 and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DUR=${BENCH_DURATION:-10}
BIN=${BENCH_BIN:-build/caravel}
TMP=$(mktemp -d /tmp/caravel-bench-instances-XXXXXX)
chmod 711 "$TMP" # a cluster started here runs as the unprivileged test user when we are root
PG_DIR=
PG_DB=caravel_bench_inst_$$
A_PID=""
B_PID=""
command -v wrk >/dev/null || { echo "instances: wrk not installed, skipped"; exit 0; }

cleanup () {
  for p in $A_PID $B_PID; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $A_PID $B_PID; do wait "$p" 2>/dev/null || true; done
  nginx_stop
  if [ -n "$PG_DIR" ]; then
    node test/integration/lib/postgres.mjs stop "$PG_DIR" >/dev/null 2>&1 || true
  elif [ -n "${BENCH_PG_URL:-}" ]; then
    psql -X -q "$BENCH_PG_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ -n "${BENCH_PG_URL:-}" ]; then
  base=$BENCH_PG_URL
else
  PG_DIR=$TMP/pg
  base=$(node test/integration/lib/postgres.mjs start "$PG_DIR")
fi
psql -X -q "$base" -c "CREATE DATABASE $PG_DB" >/dev/null
DB_URL=$(echo "$base" | sed "s|/[^/?]*\(?.*\)\?$|/$PG_DB\1|")

# instance NAME PORT: starts build/caravel on PORT (sets NAME_PID).
instance () {
  mkdir -p "$TMP/$1"
  caravel_start "$BIN" "$TMP/$1" DATABASE_URL="$DB_URL" PORT="$2" ROBOT_SECRET="$ROBOT_SK"
  eval "${1}_PID=$CARAVEL_PID"
  CARAVEL_PID= # stopped by cleanup, not by caravel_stop
}

# The shipped example's upstream block and location, with plain HTTP on a free port.
nginx_instances () {
  local port=$1 a=$2 b=$3 dir=$TMP/nginx
  mkdir -p "$dir"
  local upstream location
  upstream=$(awk '/^upstream caravel \{/,/^\}/' deploy/nginx-instances.conf |
    sed -e "s/127.0.0.1:3001 /127.0.0.1:$a /" -e "s/127.0.0.1:3002 /127.0.0.1:$b /")
  location=$(awk '/^    location \/ \{/,/^    \}/' deploy/nginx-instances.conf)
  cat >"$dir/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
$upstream
  server {
    listen 127.0.0.1:$port;
    server_name localhost;
$location
  }
}
CONF
  nginx -e stderr -p "$dir" -c "$dir/nginx.conf" &
  NGINX_PID=$!
  NGINX_URL="http://127.0.0.1:$port"
  local _
  for _ in $(seq 1 50); do curl -s -o /dev/null "$NGINX_URL/healthz" && break; sleep 0.1; done
}

new_keys
read -r ROBOT_SK _ < <(tokens key)
PA=$(free_port) PB=$(free_port) PN=$(free_port)
instance A "$PA"
instance B "$PB"
nginx_instances "$PN" "$PA" "$PB"
DIRECT="http://127.0.0.1:$PA"
CARAVEL_URL=$DIRECT
session=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
admin=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
api POST /tenants "$session" '{}' >/dev/null
relay=$(api POST /relays "$session" '{"subdomain":"bench-inst","plan":"free"}' | jq -r .data.id)
# Tenants for the three POST runs: wrk direct (1...), wrk via nginx (1000001...), failover
# (3000000...).
psql -X -q "$DB_URL" -c "INSERT INTO tenant(pubkey, created_at)
  SELECT lpad(to_hex(v), 64, '0'), 1700000000 FROM (
    SELECT generate_series(1, 200000) UNION ALL SELECT generate_series(1000001, 1200000)
    UNION ALL SELECT generate_series(3000000, 3100000)) s(v)"

echo "instances: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), wrk -t1 -c64 -d${DUR}s"
declare -A R
# measure NAME PID URL LUA [VAR=VALUE...]
measure () {
  local name=$1 pid=$2 url=$3 lua=$4; shift 4
  # shellcheck disable=SC2163 # VAR=VALUE arguments
  R[$name]=$(export "$@"; wrk_run "$pid" "$TMP/$name.wrk" -s "$lua" "$url") # a subshell
  if grep -q 'Non-2xx' "$TMP/$name.wrk"; then echo "  $name: $(grep 'Non-2xx' "$TMP/$name.wrk")"; fi
}
measure get_direct "$A_PID" "$DIRECT/relays/$relay" bench/lua/static.lua BENCH_TOKEN="$session"
measure get_nginx "$NGINX_PID" "$NGINX_URL/relays/$relay" bench/lua/static.lua BENCH_TOKEN="$session"
measure post_direct "$A_PID" "$DIRECT/relays" bench/lua/create.lua BENCH_TOKEN="$admin" \
  BENCH_PREFIX=d BENCH_TENANTS=1
measure post_nginx "$NGINX_PID" "$NGINX_URL/relays" bench/lua/create.lua BENCH_TOKEN="$admin" \
  BENCH_PREFIX=n BENCH_TENANTS=1 BENCH_TENANT_BASE=1000000

printf '  %-26s %10s %10s %10s\n' "" "req/s" "p99 ms" "req/s x"
for op in get post; do
  read -r rd pd _ <<<"${R[${op}_direct]}"
  read -r rn pn _ <<<"${R[${op}_nginx]}"
  label=$([ "$op" = get ] && echo "GET /relays/:id" || echo "POST /relays")
  printf '  %-26s %10s %10s\n' "$label, A directly" "$rd" "$pd"
  printf '  %-26s %10s %10s %10s\n' "$label, nginx + A + B" "$rn" "$pn" \
    "$(awk -v a="$rn" -v b="$rd" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done

echo "failover: instance A killed with SIGKILL under load through nginx"
disown "$A_PID" # no "Killed" line from bash
node bench/failover.mjs "$NGINX_URL" "$relay" "$session" "$admin" "$A_PID" "${FAILOVER_SECONDS:-15}"
A_PID=""
