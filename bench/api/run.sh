#!/usr/bin/env bash
# HTTP API benchmark (docs/BENCHMARKS.md, "HTTP API"). Not a test: prints numbers.
#   bench/api/run.sh                # everything, 10 s per wrk run
#   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_FRESH_TOKENS=10000 BENCH_RSS_RELAYS=100000 bench/api/run.sh
#   BENCH_KEEP=DIR keeps the raw wrk output and the per-round results there.
# Starts build/caravel (127.0.0.1, free port, temporary database, no workers configured) and
# nginx (one worker, fixed JSON body, its own temporary config) and drives both with
# wrk -t1 -c64 --latency. Every process it starts is stopped by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${BENCH_SECONDS:-10}
NTOK=${BENCH_FRESH_TOKENS:-10000}
NRELAYS=${BENCH_RSS_RELAYS:-100000}
LOGLEVEL=${BENCH_LOG_LEVEL:-info}
ROUNDS=${BENCH_ROUNDS:-3}

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

# ---- caravel ----
start_caravel
api POST /tenants >/dev/null
relay=$(api POST /relays '{"subdomain":"bench-get","plan":"free"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')

# Rounds of paired runs: every caravel number is compared with the nginx run (and the
# fresh-token run with the verify rate) of the same round, which tames a noisy machine.
results="$work/results.txt"
measure() { # NAME SCRIPT URL
  local rps p99 bad
  read -r rps p99 bad < <(run_wrk "bench/api/$2" "$3")
  echo "$round $1 $rps $p99 $bad" >>"$results"
}
for round in $(seq "$ROUNDS"); do
  echo "# round $round of $ROUNDS" >&2
  measure nginx healthz.lua "http://127.0.0.1:$nport"
  measure healthz healthz.lua "$base"
  measure identity_reused identity_reused.lua "$base"
  measure identity_fresh identity_fresh.lua "$base"
  nb=$(build/bench/nostr_bench 2>&1)
  echo "$round verify $(awk '/^bip340 verify/ {print $(NF-3)}' <<<"$nb") 0 0" >>"$results"
  echo "$round event_verify $(awk '/^event verify/ {print $(NF-3)}' <<<"$nb") 0 0" >>"$results"
  measure relay_get relay_get.lua "$base"
  measure relay_post relay_post.lua "$base"
done
rss_after_load=$(rss_kib "$cpid")
stop_caravel
kill "$npid"; wait "$npid" 2>/dev/null || true

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
run_wrk bench/api/identity_reused.lua "$base" >/dev/null
rss_busy=$(rss_kib "$cpid")
stop_caravel

echo "API benchmark: wrk -t1 -c64 -d${DUR}s, $ROUNDS rounds, LOG_LEVEL=$LOGLEVEL, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" "$(cat "$work/tok/fresh-hit-rate.txt")" "$NTOK" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for rnd, name, rps, p99, bad in rows:
    by.setdefault(name, {})[rnd] = (float(rps), float(p99), int(bad))
def ratios(name, base):
    return [by[name][r][0] / by[base][r][0] for r in by[name] if r in by[base] and by[base][r][0] > 0]
label = {
    'nginx': ('nginx 1 worker, fixed JSON', None),
    'healthz': ('GET /healthz', 'nginx'),
    'identity_reused': ('GET /identity, one reused token', 'nginx'),
    'identity_fresh': (f'GET /identity, {sys.argv[3]} fresh tokens (cache hit share {sys.argv[2]})', 'verify'),
    'relay_get': ('GET /relays/:id', 'nginx'),
    'relay_post': ('POST /relays, unique subdomains', 'nginx'),
}
print('| run | req/s best (all rounds) | p99 ms median | non-2xx | ratio, median of rounds |')
print('|---|---:|---:|---:|---|')
for name, (text, base) in label.items():
    v = by[name]
    rps = sorted(x[0] for x in v.values())
    p99 = statistics.median(x[1] for x in v.values())
    bad = sum(x[2] for x in v.values())
    ratio = f'{statistics.median(ratios(name, base)):.2f} x {base}' if base else '1'
    print(f'| {text} | {rps[-1]:,.0f} ({", ".join(f"{x:,.0f}" for x in rps)}) | {p99:.2f} | {bad} | {ratio} |')
for name in ('verify', 'event_verify'):
    v = sorted(x[0] for x in by[name].values())
    print(f'{name} rate, one core: {", ".join(f"{x:,.0f}" for x in v)} /s')
PY
echo "RSS: after the load runs ${rss_after_load} KiB; with $total relays in the database: idle ${rss_idle} KiB, after list pages and a reused-token run ${rss_busy} KiB"
echo "raw wrk output: kept in \$BENCH_KEEP if set" >&2
[ -n "${BENCH_KEEP:-}" ] && cp "$work/wrk.log" "$results" "$BENCH_KEEP/" || true
