#!/usr/bin/env bash
# HTTP API benchmark (docs/BENCHMARKS.md, "HTTP API"). Not a test: prints numbers.
#   bench/api/run.sh                # everything, 10 s per wrk run
#   BENCH_SECONDS=5 BENCH_FRESH_TOKENS=10000 BENCH_RSS_RELAYS=100000 bench/api/run.sh
# Starts build/caravel (127.0.0.1, free port, temporary database, no workers configured) and
# nginx (one worker, fixed JSON body, its own temporary config) and drives both with
# wrk -t1 -c64 --latency. Every process it starts is stopped by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${BENCH_SECONDS:-10}
NTOK=${BENCH_FRESH_TOKENS:-10000}
NRELAYS=${BENCH_RSS_RELAYS:-100000}
LOGLEVEL=${BENCH_LOG_LEVEL:-info}

make -j2 all >/dev/null
work=$(mktemp -d /tmp/caravel-apibench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"

echo "# generating $NTOK fresh tokens with nostr-tools..." >&2
node bench/api/tokens.mjs "$work/tok" "$base" "$NTOK"
admin=$(cat "$work/tok/admin.hex")
session=$(cat "$work/tok/session.txt")
mkdir -p "$work/db"

cpid=
start_caravel() {
  env -i PATH="$PATH" HOST=127.0.0.1 PORT="$port" DATABASE_URL="sqlite://$work/db/caravel.db" \
    ADMINS="$admin" AUTH_MAX_AGE=3600 LOG_LEVEL="$LOGLEVEL" build/caravel 2>>"$work/caravel.log" &
  cpid=$!
  pids+=("$cpid")
  for _ in $(seq 100); do
    curl -sf "$base/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "caravel did not start:" >&2; tail -20 "$work/caravel.log" >&2; exit 1
}
stop_caravel() { kill -TERM "$cpid"; wait "$cpid" || true; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

api() { # METHOD PATH [BODY]
  curl -sf -X "$1" -H "Authorization: $session" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$base$2"
}

# wrk SCRIPT URL -> "req/s p99_ms non2xx"
run_wrk() {
  local out
  out=$(BENCH_TOKEN="$session" BENCH_TOKENS="$work/tok/fresh.txt" BENCH_RELAY="${relay:-}" \
        BENCH_RUN="$RANDOM$RANDOM" wrk -t1 -c64 -d"${DUR}s" --latency -s "$1" "$2")
  echo "$out" >>"$work/wrk.log"
  local rps p99 bad
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$rps $p99 ${bad:-0}"
}

# ---- nginx baseline ----
nport=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    location / { default_type application/json; return 200 '{"data":{"status":"ok"},"code":"ok"}'; }
  }
}
NGINX
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
npid=$!
pids+=("$npid")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nport/" >/dev/null 2>&1 && break; sleep 0.1; done
read -r n_rps n_p99 _ < <(run_wrk bench/api/healthz.lua "http://127.0.0.1:$nport")
kill "$npid"; wait "$npid" 2>/dev/null || true

# ---- caravel ----
start_caravel
api POST /tenants >/dev/null
relay=$(api POST /relays '{"subdomain":"bench-get","plan":"free"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')

read -r h_rps h_p99 h_bad < <(run_wrk bench/api/healthz.lua "$base")
read -r i_rps i_p99 i_bad < <(run_wrk bench/api/identity_reused.lua "$base")
read -r f_rps f_p99 f_bad < <(run_wrk bench/api/identity_fresh.lua "$base")
read -r g_rps g_p99 g_bad < <(run_wrk bench/api/relay_get.lua "$base")
read -r p_rps p_p99 p_bad < <(run_wrk bench/api/relay_post.lua "$base")
rss_after_load=$(rss_kib "$cpid")
stop_caravel

# ---- verify rate (one core) ----
nb=$(build/bench/nostr_bench 2>&1)
v_rate=$(awk '/^bip340 verify/ {print $(NF-3)}' <<<"$nb")
ev_rate=$(awk '/^event verify/ {print $(NF-3)}' <<<"$nb")

# ---- RSS with many relays ----
sqlite3 "$work/db/caravel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $NRELAYS)
INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, created_at, updated_at)
SELECT lower(hex(randomblob(16))), '$admin', 'rss-' || i, 'rss_' || i, lower(hex(randomblob(32))),
       'free', 'active', 1, 1700000000 + i, 1700000000 + i FROM n;
SQL
total=$(sqlite3 "$work/db/caravel.db" 'SELECT count(*) FROM relay')
start_caravel
rss_idle=$(rss_kib "$cpid")
for _ in $(seq 20); do api GET '/relays?limit=500' >/dev/null; api GET '/relays?limit=100&offset=50000' >/dev/null; done
read -r l_rps l_p99 l_bad < <(run_wrk bench/api/identity_reused.lua "$base")
rss_busy=$(rss_kib "$cpid")
stop_caravel

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
cat <<REPORT
API benchmark: wrk -t1 -c64 -d${DUR}s, LOG_LEVEL=$LOGLEVEL, $(nproc) CPUs ($(uname -m))
| run | req/s | p99 ms | non-2xx | ratio |
|---|---:|---:|---:|---|
| nginx 1 worker, fixed JSON | $n_rps | $n_p99 | 0 | 1.00 |
| GET /healthz | $h_rps | $h_p99 | $h_bad | $(ratio "$h_rps" "$n_rps") x nginx |
| GET /identity, one reused token | $i_rps | $i_p99 | $i_bad | $(ratio "$i_rps" "$n_rps") x nginx |
| GET /identity, $NTOK fresh tokens (cache hit share $(cat "$work/tok/fresh-hit-rate.txt")) | $f_rps | $f_p99 | $f_bad | $(ratio "$f_rps" "$v_rate") x verify |
| GET /relays/:id | $g_rps | $g_p99 | $g_bad | $(ratio "$g_rps" "$n_rps") x nginx |
| POST /relays (unique subdomains) | $p_rps | $p_p99 | $p_bad | $(ratio "$p_rps" "$n_rps") x nginx |
| GET /identity with $total relays in the DB | $l_rps | $l_p99 | $l_bad | $(ratio "$l_rps" "$n_rps") x nginx |
secp256k1 BIP-340 verify, one core: $v_rate/s; event verify (id + sig): $ev_rate/s
RSS: after the load runs ${rss_after_load} KiB; $total relays: idle ${rss_idle} KiB, after list pages and a run ${rss_busy} KiB
REPORT
