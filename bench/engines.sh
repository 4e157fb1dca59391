#!/usr/bin/env bash
# Storage engines and several instances, every figure in one run on one machine (not a test):
#   bash bench/engines.sh                         (after make all)
# One PostgreSQL serves every PostgreSQL part: a throwaway cluster started and removed here
# (test/integration/lib/postgres.mjs: 127.0.0.1, fsync off like the tests' clusters), or
# BENCH_PG_URL=postgres://USER@HOST:PORT/postgres (a role that may CREATE DATABASE; the
# databases made here are dropped at the end). The parts, in order (BENCH_PARTS picks some,
# default "routes failover billing migrate"):
#   routes    GET /relays/:id (the owner's session token reused), POST /relays (an admin's
#             session token reused, a unique subdomain and a seeded tenant per request) and
#             GET /identity with a fresh NIP-98 token per request (each token new to the server
#             that verifies it; bench/tokens.mjs signs them once and caches them), wrk -t1 -c64
#             for BENCH_DURATION s (default 10), on three set-ups running side by side: one
#             instance on SQLite, one on PostgreSQL, and two instances on one PostgreSQL
#             database behind nginx (bench/instances.sh). Each route runs on the three in turn,
#             so the figures compared were taken within a minute of each other.
#   failover  a steady mixed load through nginx (bench/failover.mjs, FAILOVER_SECONDS, default
#             15), instance A killed with SIGKILL after a third of it: failed requests, and the
#             time from the kill until every request succeeds again.
#   billing   the billing leader killed with SIGKILL: time until the standby logs "is the leader
#             now" (the default 10 s lease), LEASE_ROUNDS (default 3) times.
#   migrate   `caravel migrate` of a MIGRATE_RELAYS-relay (default 100,000) SQLite database
#             into an empty PostgreSQL database: bench/scale.sh's migrate scenario, on this
#             run's PostgreSQL.
# Prints one table: per route and set-up req/s, p99, caravel's CPU per request and
# PostgreSQL's (its backends'), with the ratios PostgreSQL / SQLite and two instances / one
# (on PostgreSQL); then the failover, takeover and migration figures. BENCH_BIN (default
# build/caravel). Every process binds 127.0.0.1 and is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source bench/instances.sh
DUR=${BENCH_DURATION:-10}
BIN=${BENCH_BIN:-build/caravel}
read -r -a PARTS <<<"${BENCH_PARTS:-routes failover billing migrate}"
for tool in wrk nginx psql jq sqlite3 node; do
  command -v "$tool" >/dev/null || { echo "engines: $tool is not installed" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "engines: $BIN missing (make all)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/caravel-bench-engines-XXXXXX)
chmod 711 "$TMP" # the cluster runs as an unprivileged user when this runs as root
NGINX_PID=
cleanup () {
  servers_stop
  nginx_stop
  pg_cluster_stop
  rm -rf "$TMP"
}
trap cleanup EXIT
part () { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
load () { cut -d' ' -f1-3 /proc/loadavg; }

echo "== engines: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs," \
     "load $(load); parts: ${PARTS[*]}; wrk -t1 -c64 -d${DUR}s"
pg_cluster "$TMP/pg"
new_keys
read -r ROBOT_SK _ < <(tokens key)
SESSION=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
ADMIN=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")

# ---- the three set-ups ----
declare -A RELAY PIDS BASE # set-up -> the owner's relay, its caravel PIDs, the URL wrk calls
# setup SETUP NAME...: the servers NAME... on SQLite (sqlite) or on a new PostgreSQL database,
# the tenants of wrk's POST run and of bench/failover.mjs (3,000,000 on) seeded once the first
# has applied the migrations, the owner's tenant and relay made through the first; with two
# servers wrk calls nginx in front of them.
setup () {
  local setup=$1 db="" name; shift
  [ "$setup" = sqlite ] || db=$(pg_create "$setup")
  for name; do server "$name" ${db:+"DATABASE_URL=$db"} ROBOT_SECRET="$ROBOT_SK"; done
  if [ -z "$db" ]; then bench_tenants "$TMP/$1/c.db"; else pg_tenants "$db" 1 200000 3000000 3100000; fi
  CARAVEL_URL=${URL[$1]}
  api POST /tenants "$SESSION" '{}' >/dev/null
  RELAY[$setup]=$(api POST /relays "$SESSION" "{\"subdomain\":\"bench-$setup\",\"plan\":\"free\"}" | jq -r .data.id)
  BASE[$setup]=${URL[$1]}
  PIDS[$setup]=
  for name; do PIDS[$setup]="${PIDS[$setup]} ${PID[$name]}"; done
  [ $# -lt 2 ] || { nginx_instances "$1" "$2"; BASE[$setup]=$NGINX_URL; }
}

# ---- routes ----
declare -A RPS P99 CPU PGCPU
TOKFILE=${BENCH_TOKFILE:-build/bench/fresh-tokens.txt}
# measure ROUTE SETUP: one wrk run; fills RPS/P99/CPU/PGCPU[ROUTE/SETUP] (CPU: microseconds
# per request of the set-up's caravel processes; PGCPU: of PostgreSQL's, all of its backends).
measure () {
  local route=$1 setup=$2 k="$1/$2" out="$TMP/$1-$2.wrk" base=${BASE[$2]} lua url p0 p1 n bad
  local -a env
  case $route in
  get) env=(BENCH_TOKEN="$SESSION") lua=static url=$base/relays/${RELAY[$setup]} ;;
  post) env=(BENCH_TOKEN="$ADMIN" BENCH_PREFIX="$setup" BENCH_TENANTS=1) lua=create url=$base/relays ;;
  fresh) env=(BENCH_TOKENS="$TOKFILE") lua=fresh url=$base/identity ;;
  esac
  # shellcheck disable=SC2086 # a list of PIDs (none with BENCH_PG_URL)
  p0=$(proc_cpu $PG_PID)
  read -r "RPS[$k]" "P99[$k]" "CPU[$k]" < <(export "${env[@]}"
    wrk_run "${PIDS[$setup]}" "$out" -s "bench/lua/$lua.lua" "$url")
  # shellcheck disable=SC2086
  p1=$(proc_cpu $PG_PID)
  n=$(awk '/requests in/ {print $1}' "$out")
  PGCPU[$k]=$(awk -v c=$((p1 - p0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" -v pg="$PG_PID" \
              'BEGIN { if (n > 0 && pg != "") printf "%.1f", c * 1e6 / hz / n; else print "n/a" }')
  bad=$(awk '/Non-2xx or 3xx responses:/ {b += $NF} /Socket errors:/ {gsub(/,/, ""); b += $4 + $6 + $8 + $10}
             /wrapped=[1-9]/ {w = 1} END { printf "%d%s", b, w ? " (fresh tokens reused!)" : "" }' "$out")
  printf '  %-6s %-9s %8s req/s  p99 %8s ms  CPU %6s us  PostgreSQL %6s us  errors %s  (load %s)\n' \
    "$route" "$setup" "${RPS[$k]}" "${P99[$k]}" "${CPU[$k]}" "${PGCPU[$k]}" "$bad" "$(load)"
}

SETUPS=(sqlite postgres two)
ROUTES=(get post fresh)
if part routes; then
  # Enough fresh tokens for the fastest set-up: two instances may verify on two cores.
  read -r VERIFY _ < <(verify_rate 2)
  tokens fresh "$(awk -v v="$VERIFY" -v d="$DUR" 'BEGIN { print int(v * d * 2.4 / 100000 + 1) * 100000 }')" \
    "$PUBLIC_URL_BENCH/identity" "$TOKFILE" 30000000
  setup sqlite sqlite
  setup postgres pg
  setup two a b
  echo "routes: BIP-340 verify on one core, prepared key: $VERIFY/s"
  for route in "${ROUTES[@]}"; do
    for setup in "${SETUPS[@]}"; do measure "$route" "$setup"; done
  done
fi

# ---- failover, billing leader, migration ----
FAILOVER=
if part failover; then
  [ -n "${BASE[two]:-}" ] || setup two a b
  echo "failover: instance A killed with SIGKILL under load through nginx (load $(load))"
  FAILOVER=$(node bench/failover.mjs "$NGINX_URL" "${RELAY[two]}" "$SESSION" "$ADMIN" "${PID[a]}" \
    "${FAILOVER_SECONDS:-15}")
  echo "  $FAILOVER"
  disown "${PID[a]}" 2>/dev/null || true
  unset "PID[a]"
fi
TAKEOVERS=
if part billing; then
  echo "billing: the leader killed with SIGKILL, ${LEASE_ROUNDS:-3} times (load $(load))"
  TAKEOVERS=$(lease_takeovers "$(pg_create lease)" "${LEASE_ROUNDS:-3}")
  echo "  takeover times: $TAKEOVERS ms"
fi
declare -A MIG
if part migrate; then
  echo "migrate: ${MIGRATE_RELAYS:=100000} relays (bench/scale.sh's migrate scenario; load $(load))"
  BENCH_PG_URL=$PG_BASE SCALE_BIN=$BIN SCALE_SCENARIOS=migrate bash bench/scale.sh "$MIGRATE_RELAYS" \
    >"$TMP/migrate.txt"
  # scale.sh's figure lines: "    LABEL    VALUE UNIT"
  while read -r key value; do MIG[$key]=$value; done < <(awk '
    /^    migrate SQLite -> PostgreSQL / {print "ms", $(NF-1)} /^    rows copied / {print "rows", $(NF-1)}
    /^    reference: pg_dump / {print "pg_dump", $(NF-1)}
    /^    reference: sqlite3 .backup / {print "backup", $(NF-1)}
    /^-- [0-9]+ relays:/ {print "shape", $0}' "$TMP/migrate.txt")
  echo "  ${MIG[shape]#-- }"
  echo "  migrate ${MIG[ms]} ms, ${MIG[rows]} rows; pg_dump of the result ${MIG[pg_dump]} ms, sqlite3 .backup ${MIG[backup]} ms"
fi

# ---- the table ----
ratio () { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "n/a" && b > 0) printf "%.2f", a / b; else print "" }'; }
echo
echo "(load at the end: $(load))"
if part routes; then
  echo "| route, figure | SQLite | PostgreSQL | PostgreSQL / SQLite | 2 instances + nginx | 2 instances / 1 |"
  echo "|---|---:|---:|---:|---:|---:|"
  declare -A LABEL=([get]="GET /relays/:id" [post]="POST /relays" [fresh]="GET /identity, fresh token")
  for route in "${ROUTES[@]}"; do
    for fig in RPS P99 CPU PGCPU; do
      declare -n F=$fig
      s=${F[$route/sqlite]} p=${F[$route/postgres]} t=${F[$route/two]}
      case $fig in
      RPS) what="req/s" ;; P99) what="p99 ms" ;; CPU) what="caravel CPU us/req" ;;
      PGCPU) what="PostgreSQL CPU us/req"; s=- ;;
      esac
      printf '| %s, %s | %s | %s | %s | %s | %s |\n' "${LABEL[$route]}" "$what" "$s" "$p" \
        "$(ratio "$p" "$s")" "$t" "$(ratio "$t" "$p")"
      unset -n F
    done
  done
fi
echo "| figure | value |"
echo "|---|---:|"
if [ -n "$FAILOVER" ]; then
  jq -r '"| API failover, kill -9 of A under load: failed requests | \(.failed) of \(.requests)\(if .failed > 0 then " (" + (.failures | to_entries | map("\(.key): \(.value)") | join(", ")) + ")" else "" end) |",
         "| API failover: from the kill until every request succeeds | \(.recovered_ms) ms |"' <<<"$FAILOVER"
fi
[ -z "$TAKEOVERS" ] || echo "| billing leader takeover after kill -9 (lease TTL 10 s) | ${TAKEOVERS// / ms, } ms |"
if [ -n "${MIG[ms]:-}" ]; then
  echo "| caravel migrate, $MIGRATE_RELAYS relays (${MIG[rows]} rows) | ${MIG[ms]} ms |"
  echo "| migrate / pg_dump of the result (${MIG[pg_dump]} ms) | $(ratio "${MIG[ms]}" "${MIG[pg_dump]}") |"
  echo "| migrate / sqlite3 .backup of the source (${MIG[backup]} ms) | $(ratio "${MIG[ms]}" "${MIG[backup]}") |"
fi
