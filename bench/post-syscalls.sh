#!/usr/bin/env bash
# System calls per POST /relays request, under `strace -c -f` (which slows the service down:
# read the counts per request, not the rate). For each binary: a fresh SQLite database with
# the tenants bench/lua/create.lua names, wrk -t1 -c64 for BENCH_DURATION (default 5) seconds,
# then the requests answered, pwrite calls per request (WAL frames and checkpoint copies) and
# all system calls per request.
#   bash bench/post-syscalls.sh [BIN ...]        (default build/caravel)
# Not a test; record the figures in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DUR=${BENCH_DURATION:-5}
command -v wrk >/dev/null || { echo "post-syscalls: wrk not installed, skipped"; exit 0; }
command -v strace >/dev/null || { echo "post-syscalls: strace not installed, skipped"; exit 0; }
[ $# -gt 0 ] || set -- build/caravel
TMP=$(mktemp -d /tmp/caravel-syscalls-XXXXXX)
STRACE_PID=
trap '[ -z "$STRACE_PID" ] || kill "$STRACE_PID" 2>/dev/null || true; caravel_stop; rm -rf "$TMP"' EXIT
new_keys
ADMIN_SESSION=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
printf '%-40s %9s %14s %16s\n' binary requests "pwrite/req" "syscalls/req"
for bin in "$@"; do
  dir=$(mktemp -d "$TMP/r-XXXX")
  caravel_start "$bin" "$dir"
  bench_tenants "$dir/c.db"
  strace -c -f -p "$CARAVEL_PID" -o "$dir/strace" 2>/dev/null &
  STRACE_PID=$!
  sleep 0.5 # attached to every thread before the load starts
  BENCH_TOKEN="$ADMIN_SESSION" BENCH_PREFIX=sc BENCH_TENANTS=1 \
    wrk_run "$CARAVEL_PID" "$dir/wrk" -s bench/lua/create.lua "$CARAVEL_URL/relays" >/dev/null
  kill -INT "$STRACE_PID"; wait "$STRACE_PID" 2>/dev/null || true; STRACE_PID=
  caravel_stop
  n=$(awk '/requests in/ {print $1}' "$dir/wrk")
  awk -v n="$n" -v bin="$bin" '
    $NF ~ /^pwrite/ { pw += $4 }
    $NF == "total" { tot = $4 }
    END { printf "%-40s %9d %14.2f %16.2f\n", bin, n, pw / n, tot / n }' "$dir/strace"
done
