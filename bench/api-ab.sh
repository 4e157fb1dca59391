#!/usr/bin/env bash
# Interleaved A/B of one API route against its baseline, for a machine too busy for separate
# runs to compare: ROUNDS rounds, each running A then B (two caravel binaries, each on a fresh
# temporary database and an empty token cache), and right before each of them the route's
# baseline, so every ratio compares two measurements taken seconds apart.
#   bash bench/api-ab.sh ROUTE BIN_A [BIN_B] [ROUNDS]   (BIN_B default build/caravel, ROUNDS 3)
# ROUTE:
#   fresh    GET /identity, a new NIP-98 token per request (bench/lua/fresh.lua); baseline: one
#            core's BIP-340 verify with a prepared key (build/bench/nostr_bench, 2 s); target
#            req/s >= 1.0 x verify/s
#   relay    GET /relays/:id, the owner's session token; baseline: nginx (one worker, fixed
#            JSON, the same wrk); target >= 0.7 x nginx
#   healthz  GET /healthz; baseline nginx
#   post     POST /relays, a unique subdomain per request (bench/lua/create.lua), an admin's
#            session token; no baseline; target p99 < 5 ms
# BENCH_ENGINE=postgres runs every server on a new database of one throwaway PostgreSQL cluster
# (bench/lib.sh's pg_cluster, or BENCH_PG_URL's server) and adds PostgreSQL's CPU per request.
# Each run is wrk -t1 -c64 (BENCH_CONNECTIONS) -d${BENCH_DURATION:-5}s --latency. Printed per run: the baseline,
# req/s, p99 (ms), the server's CPU time per request (all threads, from /proc: it moves much
# less with the machine's load than req/s), the ratio, and the load average.
# Servers bind 127.0.0.1 and are stopped by PID. A binary of another commit:
#   git worktree add /tmp/ab REV && make -C /tmp/ab all && bash bench/api-ab.sh fresh /tmp/ab/build/caravel
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUTE=${1:?usage: bench/api-ab.sh fresh|relay|healthz|post BIN_A [BIN_B] [ROUNDS]}
A=${2:?usage: bench/api-ab.sh ROUTE BIN_A [BIN_B] [ROUNDS]}
B=${3:-build/caravel}
ROUNDS=${4:-3}
DUR=${BENCH_DURATION:-5}
command -v wrk >/dev/null || { echo "api-ab: wrk not installed, skipped"; exit 0; }
TMP=$(mktemp -d /tmp/caravel-ab-XXXXXX)
trap 'nginx_stop; caravel_stop; pg_cluster_stop; rm -rf "$TMP"' EXIT
ENGINE=${BENCH_ENGINE:-sqlite}
if [ "$ENGINE" = postgres ]; then
  chmod 711 "$TMP" # the cluster runs as an unprivileged user when this runs as root
  pg_cluster "$TMP/pg"
fi
new_keys
TOKFILE=${BENCH_TOKFILE:-build/bench/fresh-tokens.txt}
if [ "$ROUTE" = fresh ]; then
  # enough for a run at 40k/s; signed once, reused while valid (see bench/http-api.sh)
  tokens fresh $((DUR * 40000)) "$PUBLIC_URL_BENCH/identity" "$TOKFILE" 30000000
fi

# baseline: prints "rate unit" (rate 0 when the route has none)
baseline () {
  case $ROUTE in
    fresh) verify_rate 2 | awk '{print $1, "verify/s (" $2 " cpu us)"}' ;;
    relay|healthz)
      nginx_start "$TMP/nginx"
      read -r rps _ cpu < <(wrk_run "$NGINX_PID" "$TMP/nginx.wrk" "$NGINX_URL/healthz")
      nginx_stop
      echo "$rps nginx req/s ($cpu cpu us)" ;;
    *) echo "0 -" ;;
  esac
}

# one_run BIN NAME: prints "req/s p99 cpu_us pg_cpu_us" (NAME: the run's database, postgres)
one_run () {
  local dir session id db="" p0 p1; dir=$(mktemp -d "$TMP/r-XXXX")
  [ "$ENGINE" != postgres ] || db=$(pg_create "$2")
  caravel_start "$1" "$dir" ${db:+"DATABASE_URL=$db"}
  if [ "$ROUTE" = post ]; then
    if [ -n "$db" ]; then pg_tenants "$db" >/dev/null; else bench_tenants "$dir/c.db"; fi
  fi
  # shellcheck disable=SC2086 # the postmaster's PID, none on SQLite
  p0=$(proc_cpu $PG_PID)
  {
  case $ROUTE in
    fresh) BENCH_TOKENS="$TOKFILE" wrk_run "$CARAVEL_PID" "$dir/wrk" -s bench/lua/fresh.lua \
             "$CARAVEL_URL/identity" ;;
    healthz) wrk_run "$CARAVEL_PID" "$dir/wrk" "$CARAVEL_URL/healthz" ;;
    relay)
      session=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
      api POST /tenants "$session" '{}' >/dev/null
      id=$(api POST /relays "$session" '{"subdomain":"bench-one","plan":"free"}' | jq -r .data.id)
      BENCH_TOKEN="$session" wrk_run "$CARAVEL_PID" "$dir/wrk" -s bench/lua/static.lua \
        "$CARAVEL_URL/relays/$id" ;;
    post)
      post_warmup "$CARAVEL_URL/relays" "$ADMIN_SESSION"
      BENCH_TOKEN="$ADMIN_SESSION" BENCH_PREFIX=ab BENCH_TENANTS=1 \
        wrk_run "$CARAVEL_PID" "$dir/wrk" -s bench/lua/create.lua "$CARAVEL_URL/relays" ;;
  esac
  } | tr '\n' ' '
  # shellcheck disable=SC2086
  p1=$(proc_cpu $PG_PID)
  awk -v c=$((p1 - p0)) -v hz="$(getconf CLK_TCK)" -v pg="$PG_PID" '/requests in/ { n = $1 }
      END { if (n > 0 && pg != "") printf "%.1f\n", c * 1e6 / hz / n; else print "-" }' "$dir/wrk"
  if grep -q 'wrapped=[1-9]' "$dir/wrk"; then echo "api-ab: fresh tokens ran out" >&2; fi
  local bad; bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$dir/wrk")
  [ -z "$bad" ] || echo "api-ab: $bad non-2xx answers" >&2
  caravel_stop
}
ADMIN_SESSION=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")

echo "$ROUTE A/B, wrk -t1 -c${BENCH_CONNECTIONS:-64} -d${DUR}s, $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A = $A"
echo "B = $B"
echo "engine: $ENGINE"
printf '%-5s %-3s %-34s %9s %8s %8s %7s %7s  %s\n' round bin baseline "req/s" "p99 ms" "CPU us" \
  "PG us" ratio load
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    # In this shell, not in a process substitution: `read` returns at the first line, and the
    # substitution's server (or nginx) would still be stopping, or be orphaned, when the script
    # went on or ended.
    baseline > "$TMP/baseline.txt"
    read -r base unit < "$TMP/baseline.txt"
    one_run "$bin" "ab_$r${side,,}" > "$TMP/one_run.txt"
    read -r rps p99 cpu pgcpu < "$TMP/one_run.txt"
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-5s %-3s %-34s %9s %8s %8s %7s %7s  %s\n' "$r" "$side" "$base $unit" "$rps" "$p99" \
      "$cpu" "$pgcpu" "$ratio" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
