#!/usr/bin/env bash
# Interleaved A/B of POST /relays (the write path): two caravel binaries, ROUNDS rounds of one
# wrk -t1 -c64 run each (bench/lua/create.lua, a unique subdomain per request, the owner's
# session token), each on a fresh temporary database, alternating A and B so both see the
# same machine. Prints req/s, p99 and the server's CPU time per request (all its threads).
#   bash bench/post-ab.sh BIN_A [BIN_B] [ROUNDS]     (BIN_B default build/caravel, ROUNDS 3)
# BENCH_DURATION (default 5) is wrk's -d in seconds. Servers bind 127.0.0.1, stopped by PID.
# Build a binary of another commit with: git worktree add /tmp/ab REV && make -C /tmp/ab.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
A=${1:?usage: bench/post-ab.sh BIN_A [BIN_B] [ROUNDS]}
B=${2:-build/caravel}
ROUNDS=${3:-3}
DUR=${BENCH_DURATION:-5}
command -v wrk >/dev/null || { echo "post-ab: wrk not installed, skipped"; exit 0; }
TMP=$(mktemp -d /tmp/caravel-ab-XXXXXX)
trap 'caravel_stop; rm -rf "$TMP"' EXIT
new_keys
SESSION=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH") # creates relays for bench tenants

# one_run BIN: prints "req/s p99 cpu_us"
one_run () {
  local dir; dir=$(mktemp -d "$TMP/r-XXXX")
  caravel_start "$1" "$dir"
  bench_tenants "$dir/c.db"
  local c0 c1 out n
  c0=$(awk '{print $14 + $15}' "/proc/$CARAVEL_PID/stat")
  out=$(BENCH_TOKEN="$SESSION" BENCH_PREFIX=ab BENCH_TENANTS=1 wrk -t1 -c64 -d"${DUR}s" --latency \
          -s bench/lua/create.lua "$CARAVEL_URL/relays")
  c1=$(awk '{print $14 + $15}' "/proc/$CARAVEL_PID/stat")
  caravel_stop
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(echo "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')" \
       "$(echo "$out" | awk '$1=="99%" {print $2}')" \
       "$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
            'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "n/a" }')"
}

echo "POST /relays A/B, wrk -t1 -c64 -d${DUR}s, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A = $A"
echo "B = $B"
printf '%-6s %-3s %9s %9s %9s\n' round bin "req/s" p99 "CPU us"
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    read -r rps p99 cpu < <(one_run "$bin")
    printf '%-6s %-3s %9s %9s %9s\n' "$r" "$side" "$rps" "$p99" "$cpu"
  done
done
