#!/usr/bin/env bash
# Storage engines side by side (not a test): GET /relays/:id (the owner's session token reused)
# and POST /relays (an admin's session token reused, a unique subdomain per request) against
# build/caravel on SQLite and on PostgreSQL, in the same run, with wrk -t1 -c64.
#   BENCH_PG_URL=postgres://USER@127.0.0.1:PORT/postgres bash bench/engines.sh
# BENCH_PG_URL names a database of a role that may CREATE DATABASE: each run creates and drops
# its own database. Unset: the SQLite half only. BENCH_DURATION (default 10) is wrk's -d.
# Every server binds 127.0.0.1 and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DUR=${BENCH_DURATION:-10}
BIN=build/caravel
TMP=$(mktemp -d /tmp/caravel-bench-engines-XXXXXX)
PG_DB=caravel_bench_$$
cleanup () {
  caravel_stop
  if [ -n "${BENCH_PG_URL:-}" ]; then
    psql -q "$BENCH_PG_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "engines: wrk not installed, skipped"; exit 0; }

declare -A RPS P99 CPU
proc_cpu () {
  awk '{print $14 + $15}' "/proc/$1/stat"
}
# run_wrk NAME URL LUA [VAR=VALUE...]
run_wrk () {
  local name=$1 url=$2 lua=$3; shift 3
  local out="$TMP/$name.wrk" c0 c1 n
  c0=$(proc_cpu "$CARAVEL_PID")
  env "$@" wrk -t1 -c64 -d"${DUR}s" --latency -s "$lua" "$url" >"$out" 2>&1 || true
  c1=$(proc_cpu "$CARAVEL_PID")
  n=$(awk '/requests in/ {print $1}' "$out")
  RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  P99[$name]=$(awk '$1=="99%" { v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v);
                  if (u=="us") v/=1000; else if (u=="s") v*=1000; printf "%.2f", v }' "$out")
  CPU[$name]=$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
               'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "n/a" }')
  if grep -q 'Non-2xx' "$out"; then echo "    $name: $(grep 'Non-2xx' "$out")"; fi
}

# The tenants create.lua names (BENCH_TENANTS): 64-hex pubkeys n, 1 <= n <= 200,000.
seed_tenants () {
  case "$1" in
  sqlite) sqlite3 -cmd '.timeout 10000' "$TMP/sqlite/c.db" \
    "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 200000)
     INSERT INTO tenant(pubkey, created_at) SELECT printf('%064x', v), 1700000000 FROM n;" ;;
  postgres) psql -q "$2" -c "INSERT INTO tenant(pubkey, created_at)
     SELECT lpad(to_hex(v), 64, '0'), 1700000000 FROM generate_series(1, 200000) v" ;;
  esac
}

new_keys
run_engine () {
  local engine=$1 url=$2
  mkdir -p "$TMP/$engine"
  caravel_start "$BIN" "$TMP/$engine" DATABASE_URL="$url"
  local session admin relay
  session=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
  admin=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
  api POST /tenants "$session" '{}' >/dev/null
  relay=$(api POST /relays "$session" '{"subdomain":"bench-one","plan":"free"}' | jq -r .data.id)
  run_wrk "get_$engine" "$CARAVEL_URL/relays/$relay" bench/lua/static.lua BENCH_TOKEN="$session"
  seed_tenants "$engine" "$url"
  run_wrk "post_$engine" "$CARAVEL_URL/relays" bench/lua/create.lua BENCH_TOKEN="$admin" \
    BENCH_PREFIX=e BENCH_TENANTS=1
  caravel_stop
}

run_engine sqlite "sqlite://$TMP/sqlite/c.db"
if [ -n "${BENCH_PG_URL:-}" ]; then
  psql -q "$BENCH_PG_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
  PG_URL=$(echo "$BENCH_PG_URL" | sed "s|/[^/?]*\(?.*\)\?$|/$PG_DB\1|")
  run_engine postgres "$PG_URL"
fi

ratio () { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
printf '%-28s %9s %8s %7s  %s\n' run "req/s" "p99 ms" "CPU us" "req/s vs SQLite"
for what in get post; do
  for engine in sqlite postgres; do
    n="${what}_$engine"
    [ -n "${RPS[$n]:-}" ] || continue
    label="$([ "$what" = get ] && echo 'GET /relays/:id' || echo 'POST /relays') $engine"
    printf '%-28s %9.0f %8s %7s  %s\n' "$label" "${RPS[$n]}" "${P99[$n]}" "${CPU[$n]}" \
      "$(ratio "${RPS[$n]}" "${RPS[${what}_sqlite]}")"
  done
done
echo "(CPU us: caravel's CPU time per request; PostgreSQL's own CPU is not in it.)"
