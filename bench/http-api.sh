#!/usr/bin/env bash
# HTTP API benchmark : the real build/caravel against nginx on the same machine, plus
# RSS with 100,000 relays. Run by bench/run.sh (`make bench`); alone:
#   bash bench/http-api.sh [VERIFY_RATE]      (VERIFY_RATE: BIP-340 verifies/s of one core with a
#                                              prepared key; measured with build/bench/nostr_bench
#                                              before the run and around the fresh-token run if
#                                              omitted)
# BENCH_DURATION (default 10) is wrk's -d in seconds. Every server binds 127.0.0.1 and is
# stopped by PID. Fresh NIP-98 tokens are signed by build/tools/nip98_tokens (through
# bench/tokens.mjs) and cached in build/bench/fresh-tokens.txt: the bench server runs with
# PUBLIC_URL=https://api.caravel.bench and the maximum AUTH_MAX_AGE, so they stay valid across
# runs (each run is a new server with an empty token cache, so every token is still unseen by
# it).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DUR=${BENCH_DURATION:-10}
BIN=build/caravel
TMP=$(mktemp -d /tmp/caravel-bench-XXXXXX)
NGINX_PID=
cleanup () {
  nginx_stop
  caravel_stop
  rm -rf "$TMP"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "http-api: wrk not installed, skipped"; exit 0; }

declare -A RPS P99 BAD CPU WRK_CPU
# run_wrk NAME URL [LUA] [VAR=VALUE...]: wrk -t1 -c64 -d$DUR --latency against the server
# SERVER_PID; fills RPS/P99/BAD/CPU[NAME] (CPU: the server's CPU microseconds per request,
# which, unlike req/s, hardly depends on what else the machine is running).
run_wrk () {
  local name=$1 url=$2 lua=${3:-}; shift 3 || shift $#
  local out="$TMP/$name.wrk" c0 c1 n
  c0=$(proc_cpu "$SERVER_PID")
  # wrk's own CPU (user + system, bash's time keyword): on two cores it takes its share from
  # the service, which bounds what the fresh-token ratio can reach.
  local wrk_cpu
  wrk_cpu=$( { TIMEFORMAT='%3U %3S'; time env "$@" wrk -t1 -c64 -d"${DUR}s" --latency \
               ${lua:+-s "$lua"} "$url" >"$out" 2>&1 || true; } 2>&1 )
  c1=$(proc_cpu "$SERVER_PID")
  n=$(awk '/requests in/ {print $1}' "$out")
  CPU[$name]=$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
               'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "n/a" }')
  WRK_CPU[$name]=$(awk -v t="$wrk_cpu" -v n="${n:-0}" \
                   'BEGIN { split(t, a, " "); if (n > 0) printf "%.1f", (a[1] + a[2]) * 1e6 / n; else print "n/a" }')
  sed 's/^/    /' "$out"
  RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  P99[$name]=$(awk '$1=="99%" { v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v);
                  if (u=="us") v/=1000; else if (u=="s") v*=1000; else if (u=="m") v*=60000;
                  printf "%.2f", v }' "$out")
  local non2xx errs
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  errs=$(awk '/Socket errors:/ {gsub(/,/,""); print $4+$6+$8+$10}' "$out")
  BAD[$name]=$(( ${non2xx:-0} + ${errs:-0} ))
  if grep -q 'wrapped=[1-9]' "$out"; then BAD[$name]="${BAD[$name]} (tokens reused!)"; fi
  : "${RPS[$name]:=0}" "${P99[$name]:=nan}"
}

machine () {
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs," \
       "$(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -r)," \
       "load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- 1. single-core verify rate (a prepared key: the verify and nothing else) ----
VERIFY=${1:-}
if [ -z "$VERIFY" ]; then
  read -r VERIFY VERIFY_CPU < <(verify_rate 2)
fi
echo "== HTTP API (wrk -t1 -c64 -d${DUR}s --latency)"
machine
echo "single-core BIP-340 verify, prepared key: $VERIFY /s (${VERIFY_CPU:-?} us CPU each)"

# ---- 2. nginx baseline ----
nginx_start "$TMP/nginx"
SERVER_PID=$NGINX_PID
echo "-- nginx $(nginx -v 2>&1 | cut -d/ -f2), 1 worker, return 200 (fixed JSON)"
run_wrk nginx "$NGINX_URL/healthz"
nginx_stop

# ---- 3. caravel ----
new_keys
# A fresh-token run cannot exceed one verify per request on the loop thread: 1.2 x the verify
# rate is enough, rounded up to 100,000s so a slightly faster verify reuses the cached file.
NEED=$(awk -v v="$VERIFY" -v d="$DUR" 'BEGIN { n = int(v * d * 1.2 / 100000 + 1) * 100000; print n }')
TOKFILE=${BENCH_TOKFILE:-build/bench/fresh-tokens.txt}
tokens fresh "$NEED" "$PUBLIC_URL_BENCH/identity" "$TOKFILE" 30000000
mkdir -p "$TMP/c"
caravel_start "$BIN" "$TMP/c"
SERVER_PID=$CARAVEL_PID
SESSION=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
api POST /tenants "$SESSION" '{}' >/dev/null
RELAY_ID=$(api POST /relays "$SESSION" '{"subdomain":"bench-one","plan":"free"}' | jq -r .data.id)

echo "-- caravel GET /healthz"
run_wrk healthz "$CARAVEL_URL/healthz"
echo "-- caravel GET /identity, one session token reused"
run_wrk identity_reused "$CARAVEL_URL/identity" bench/lua/static.lua BENCH_TOKEN="$SESSION"
echo "-- caravel GET /identity, a fresh token per request ($(wc -l <"$TOKFILE") distinct, each used once)"
# The verify baseline again right before and after (the machine's load moves): the ratio is
# against their mean.
if [ -z "${1:-}" ]; then read -r V1 _ < <(verify_rate 2); else V1=$VERIFY; fi
run_wrk identity_fresh "$CARAVEL_URL/identity" bench/lua/fresh.lua BENCH_TOKENS="$TOKFILE"
if [ -z "${1:-}" ]; then read -r V2 _ < <(verify_rate 2); else V2=$VERIFY; fi
VERIFY_RUN=$(awk -v a="$V1" -v b="$V2" 'BEGIN { printf "%.0f", (a + b) / 2 }')
echo "    verify/s right before and after: $V1 $V2"
echo "-- caravel GET /relays/:id, owner's session token reused"
run_wrk relay_get "$CARAVEL_URL/relays/$RELAY_ID" bench/lua/static.lua BENCH_TOKEN="$SESSION"
echo "-- caravel POST /relays, unique subdomain per request, an admin's session token reused, 3 relays per tenant"
bench_tenants "$TMP/c/c.db"
ADMIN_SESSION_C=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
post_warmup "$CARAVEL_URL/relays" "$ADMIN_SESSION_C"
run_wrk relay_create "$CARAVEL_URL/relays" bench/lua/create.lua BENCH_TOKEN="$ADMIN_SESSION_C" \
  BENCH_PREFIX=w BENCH_TENANTS=1
CREATED=$(sqlite3 "$TMP/c/c.db" "SELECT count(*) FROM relay")
caravel_stop
echo "relays in the database after POST /relays: $CREATED (rc $CARAVEL_RC)"

# ---- 4. table ----
ratio () { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict () { awk -v r="$1" -v t="$2" 'BEGIN { print (r + 0 >= t) ? "ok" : "MISSED" }'; }
p99ok () { awk -v p="$1" -v t="${2:-10}" 'BEGIN { print (p != "nan" && p + 0 < t) ? "ok" : "MISSED" }'; }
echo
printf '%-30s %9s %8s %7s %7s %6s  %-28s %s\n' run "req/s" "p99 ms" "CPU us" "wrk us" errors "ratio (target)" "p99 (target)"
row () {
  local name=$1 label=$2 rtext=${3:-} p99max=${4:-10}
  printf '%-30s %9.0f %8s %7s %7s %6s  %-28s %s\n' "$label" "${RPS[$name]}" "${P99[$name]}" \
    "${CPU[$name]}" "${WRK_CPU[$name]}" "${BAD[$name]}" "$rtext" \
    "$([ "$name" = nginx ] && echo - || echo "<$p99max ms $(p99ok "${P99[$name]}" "$p99max")")"
}
R1=$(ratio "${RPS[healthz]}" "${RPS[nginx]}")
R2=$(ratio "${RPS[identity_reused]}" "${RPS[nginx]}")
R3=$(ratio "${RPS[identity_fresh]}" "$VERIFY_RUN")
R4=$(ratio "${RPS[relay_get]}" "${RPS[nginx]}")
row nginx "nginx (baseline)"
row healthz "GET /healthz" "$R1/nginx (>=0.7) $(verdict "$R1" 0.7)"
row identity_reused "GET /identity reused token" "$R2/nginx (>=0.5) $(verdict "$R2" 0.5)"
row identity_fresh "GET /identity fresh tokens" "$R3/verify (>=1.0) $(verdict "$R3" 1.0)"
row relay_get "GET /relays/:id" "$R4/nginx (>=0.7) $(verdict "$R4" 0.7)"
row relay_create "POST /relays" "" 5
printf '%-30s %9.0f %8s %7s\n' "BIP-340 verify, prepared key" "$VERIFY_RUN" "" "${VERIFY_CPU:-}"
echo "(CPU us: the server's CPU time per request, all its threads; req/s and p99 move with the"
echo " machine's other load, CPU us much less. wrk us: wrk's own CPU time per request, taken"
echo " from the same two cores: at one core's verify rate R, a fresh token has (2 s - wrk us x R)"
echo " / R of server CPU, which is what bounds the fresh-token ratio here.)"

# ---- 5. RSS with 100,000 relays ----
echo
echo "-- RSS with 100,000 relays (1,000 tenants x 100)"
mkdir -p "$TMP/rss"
caravel_start "$BIN" "$TMP/rss"   # applies the migrations
caravel_stop
sqlite3 "$TMP/rss/c.db" <<'SQL'
PRAGMA foreign_keys = ON;
BEGIN;
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 1000)
INSERT INTO tenant(pubkey, created_at) SELECT printf('%064x', n), 1700000000 FROM t;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000)
INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, info_name,
                  created_at, updated_at)
SELECT printf('%032x', n), printf('%064x', 1 + n % 1000), 'relay' || n, 'relay' || n,
       printf('%064x', n * 7919), CASE n % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'basic' ELSE 'growth' END,
       'active', 1, 'Relay number ' || n, 1700000000 + n, 1700000000 + n FROM r;
COMMIT;
SQL
caravel_start "$BIN" "$TMP/rss"
ADMIN_SESSION=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
rss () { awk -v k="$1:" '$1==k {print $2}' "/proc/$CARAVEL_PID/status"; }
RSS0=$(rss VmRSS)
for q in "/relays?limit=500" "/relays?limit=500&offset=99500" "/relays?tenant=$(printf '%064x' 7)" \
         "/relays/$(printf '%032x' 4242)" "/tenants?limit=500" "/activity?limit=500"; do
  n=$(api GET "$q" "$ADMIN_SESSION" | jq '.data | if type == "array" then length else 1 end')
  echo "    GET $q -> $n item(s)"
done
# A short burst of list pages (every page of 500 once), for the steady state.
for off in $(seq 0 500 99500); do api GET "/relays?limit=500&offset=$off" "$ADMIN_SESSION" >/dev/null; done
RSS1=$(rss VmRSS); HWM=$(rss VmHWM)
caravel_stop
echo "    relays: $(sqlite3 "$TMP/rss/c.db" 'SELECT count(*) FROM relay'), database $(du -k "$TMP/rss/c.db" | cut -f1) KB"
echo "    VmRSS after start $RSS0 KB, after 206 list requests $RSS1 KB, peak (VmHWM) $HWM KB" \
     "-> target < 65536 KB: $(awk -v h="$HWM" 'BEGIN { print (h < 65536) ? "ok" : "MISSED" }')"
