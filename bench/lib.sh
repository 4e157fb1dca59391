# Shared helpers of bench/http-api.sh and bench/leak-check.sh (sourced, bash).
# Every process started here binds 127.0.0.1 and is stopped by its PID.

PUBLIC_URL_BENCH=https://api.caravel.bench   # fixed origin: cached tokens stay valid across runs
BENCH_AUTH_MAX_AGE=31536000                  # the maximum AUTH_MAX_AGE (cached fresh tokens)

# caravel_start BIN DIR [VAR=VALUE...] -> sets CARAVEL_PID, CARAVEL_URL (stderr in DIR/caravel.log)
caravel_start () {
  local bin=$1 dir=$2; shift 2
  env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 DATABASE_URL="sqlite://$dir/c.db" \
    ADMINS="$ADMIN_PK" LOG_LEVEL=warn PUBLIC_URL="$PUBLIC_URL_BENCH" \
    AUTH_MAX_AGE="$BENCH_AUTH_MAX_AGE" ASAN_OPTIONS="${ASAN_OPTIONS:-}" "$@" \
    "$bin" >"$dir/caravel.log" 2>&1 &
  CARAVEL_PID=$!
  local port="" i
  for i in $(seq 1 150); do
    port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$dir/caravel.log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$CARAVEL_PID" 2>/dev/null || { cat "$dir/caravel.log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "caravel did not start" >&2; cat "$dir/caravel.log" >&2; return 1; }
  CARAVEL_URL="http://127.0.0.1:$port"
}

# caravel_stop: SIGTERM, wait up to 30 s (then SIGKILL); sets CARAVEL_RC.
caravel_stop () {
  [ -n "${CARAVEL_PID:-}" ] || return 0
  kill -TERM "$CARAVEL_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 300); do kill -0 "$CARAVEL_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$CARAVEL_PID" 2>/dev/null && kill -KILL "$CARAVEL_PID" 2>/dev/null
  CARAVEL_RC=0
  wait "$CARAVEL_PID" 2>/dev/null || CARAVEL_RC=$?
  CARAVEL_PID=
}

# api METHOD PATH TOKEN [JSON] -> prints the body; fails unless 2xx.
api () {
  curl -sS -f -X "$1" -H "Authorization: $3" -H 'Content-Type: application/json' \
    ${4:+--data "$4"} "$CARAVEL_URL$2"
}

tokens () { node bench/tokens.mjs "$@"; }

# bench_tenants DB: inserts the tenants bench/lua/create.lua names with BENCH_TENANTS (two
# wrk threads x 200,000 tenants: 600,000 relay creations per thread at 3 free relays each).
bench_tenants () {
  sqlite3 -cmd '.timeout 10000' "$1" >/dev/null <<'SQL'
WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 200000)
INSERT INTO tenant(pubkey, created_at) SELECT printf('%064x', t * 1000000 + v), 1700000000
  FROM n, (SELECT 0 AS t UNION ALL SELECT 1);
-- The 60 MB this wrote into the WAL, copied now: else the run's first COMMIT found the WAL
-- past its bound and the writer copied it all itself (a 270-390 ms stall in some runs).
PRAGMA wal_checkpoint(TRUNCATE);
SQL
}

# post_warmup URL TOKEN: 3 s of POST /relays (bench/lua/create.lua) on tenants the measured run
# does not use (from 150,000 on; the measured run, at BENCH_TENANT_BASE 0, would need over
# 450,000 creations to reach them) and subdomains of their own, not recorded. The first
# second after bench_tenants (another process wrote 60 MB into the file the service has
# open) stalled all 64 connections once for ~300 ms in 4 of 10 runs (the service's own
# histogram: 64 requests at 0.25-0.5 s, every other one under 25 ms), which alone put wrk's
# p99 at 220-308 ms (docs/BENCHMARKS.md, session 10).
post_warmup () {
  BENCH_TOKEN="$2" BENCH_PREFIX=warm BENCH_TENANTS=1 BENCH_TENANT_BASE=150000 \
    wrk -t1 -c"${BENCH_CONNECTIONS:-64}" -d3s -s bench/lua/create.lua "$1" >/dev/null 2>&1 || true
}

# new_keys: sets USER_SK/USER_PK (a tenant) and ADMIN_SK/ADMIN_PK.
new_keys () {
  read -r USER_SK USER_PK < <(tokens key)
  read -r ADMIN_SK ADMIN_PK < <(tokens key)
}

free_port () {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# nginx_start DIR -> sets NGINX_PID, NGINX_URL: nginx with one worker answering every path with
# the fixed healthz JSON (the HTTP baseline), on a free 127.0.0.1 port. nginx_stop stops it.
nginx_start () {
  local dir=$1 port i
  port=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log stderr crit;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    location / { default_type "application/json; charset=utf-8";
                 return 200 '{"data":{"status":"ok"},"code":"ok"}'; }
  }
}
CONF
  nginx -e stderr -p "$dir" -c "$dir/nginx.conf" &
  NGINX_PID=$!
  NGINX_URL="http://127.0.0.1:$port"
  for i in $(seq 1 50); do curl -sf "$NGINX_URL/" >/dev/null && break; sleep 0.1; done
}

nginx_stop () {
  [ -n "${NGINX_PID:-}" ] || return 0
  kill "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
}

# proc_cpu PID... : CPU clock ticks (user + system) of the processes and their children
# (nginx's worker, PostgreSQL's backends). A child that has just exited counts 0.
proc_cpu () {
  local t=0 p
  [ $# -gt 0 ] || { echo 0; return; }   # no process (PostgreSQL's PID on SQLite)
  for p in "$@" $(pgrep -P "$(IFS=,; echo "$*")" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# wrk_run "PID..." OUT ARGS... : wrk -t1 -c64 -d${DUR}s --latency ARGS (environment as given)
# into OUT; prints "req/s p99_ms cpu_us_per_request" (cpu: the PIDs and their children, all
# threads). BENCH_CONNECTIONS replaces the 64 (1: one request at a time, no batching).
wrk_run () {
  local pids=$1 out=$2 c0 c1 n; shift 2
  # shellcheck disable=SC2086 # a list of PIDs
  c0=$(proc_cpu $pids)
  wrk -t1 -c"${BENCH_CONNECTIONS:-64}" -d"${DUR}s" --latency "$@" >"$out" 2>&1 || true
  # shellcheck disable=SC2086
  c1=$(proc_cpu $pids)
  n=$(awk '/requests in/ {print $1}' "$out")
  echo "$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")" \
       "$(awk '$1=="99%" { v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v);
              if (u=="us") v/=1000; else if (u=="s") v*=1000; else if (u=="m") v*=60000;
              printf "%.2f", v }' "$out")" \
       "$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
            'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "n/a" }')"
}

# verify_rate [SECONDS]: "rate/s cpu_us_per_op" of one core's BIP-340 verify with a prepared key
# (build/bench/nostr_bench, BENCH_BUILD_DIR respected).
verify_rate () {
  BENCH_SECONDS=${1:-2} "${BENCH_BUILD_DIR:-build}/bench/nostr_bench" |
    awk '/bip340 verify, prepared key/ {print $5, $9}'
}

# ---- PostgreSQL for the benches ----
# pg_cluster DIR: the server of BENCH_PG_URL when set (a role that may CREATE DATABASE), else a
# throwaway PostgreSQL cluster started in DIR (test/integration/lib/postgres.mjs: 127.0.0.1, a
# free port, fsync off like the tests' clusters; DIR's parents must be traversable by its
# unprivileged user when this runs as root). Sets PG_BASE (a URL of its postgres database),
# PG_PID (the postmaster, for its CPU; empty with BENCH_PG_URL). pg_cluster_stop stops the
# cluster and removes DIR, or drops the databases pg_create made on BENCH_PG_URL's server.
PG_DIR=
PG_PID=
PG_PREFIX=caravel_bench_$$_
pg_cluster () {
  if [ -n "${BENCH_PG_URL:-}" ]; then
    PG_BASE=$BENCH_PG_URL
    return 0
  fi
  PG_DIR=$1
  PG_BASE=$(node test/integration/lib/postgres.mjs start "$PG_DIR")
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
}

pg_cluster_stop () {
  if [ -n "$PG_DIR" ]; then
    node test/integration/lib/postgres.mjs stop "$PG_DIR" >/dev/null 2>&1 || true
    PG_DIR=
  elif [ -n "${BENCH_PG_URL:-}" ]; then
    psql -X -q -A -t "$BENCH_PG_URL" -c "SELECT datname FROM pg_database
        WHERE datname LIKE '${PG_PREFIX}%'" 2>/dev/null | while read -r db; do
      psql -X -q "$BENCH_PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
  fi
}

# pg_create NAME -> creates the database PG_PREFIX+NAME on PG_BASE's server, prints its URL.
pg_create () {
  psql -X -q "$PG_BASE" -c "CREATE DATABASE $PG_PREFIX$1" >/dev/null
  echo "$PG_BASE" | sed "s|/[^/?]*\(?.*\)\?$|/$PG_PREFIX$1\1|"
}

# pg_tenants URL [FIRST LAST]...: inserts the tenants bench/lua/create.lua and bench/failover.mjs
# name (64-hex pubkeys n for each range FIRST..LAST; default 1..200,000: 600,000 relay creations
# at 3 free relays each).
pg_tenants () {
  local url=$1 ranges="" sep=""; shift
  [ $# -gt 0 ] || set -- 1 200000
  while [ $# -ge 2 ]; do
    ranges="$ranges$sep SELECT generate_series($1, $2)"; sep=" UNION ALL"; shift 2
  done
  psql -X -q "$url" -c "INSERT INTO tenant(pubkey, created_at)
    SELECT lpad(to_hex(v), 64, '0'), 1700000000 FROM ($ranges) s(v)"
}
