#!/usr/bin/env bash
# Leak check under load : the ASan/UBSan build of caravel (build-asan/caravel) under
# 60 s of mixed wrk load (bench/lua/mixed.lua: every route, reused and fresh NIP-98 tokens,
# writes, error paths), then SIGTERM; passes when it exits 0 and neither LeakSanitizer nor
# AddressSanitizer/UBSan reported anything.
#   bash bench/leak-check.sh [SECONDS]      (default 60)
# Every 10 s it prints the server's VmRSS and the size of the -wal file. LEAK_BUILD=release
# runs build/caravel instead (no sanitizer: for the RSS and WAL figures of a production build).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SECS=${1:-60}
command -v wrk >/dev/null || { echo "leak-check: wrk not installed, skipped"; exit 0; }
if [ "${LEAK_BUILD:-asan}" = release ]; then
  make -j2 WERROR=1 all >/dev/null; BIN=build/caravel
else
  make -j2 SAN=asan WERROR=1 all >/dev/null; BIN=build-asan/caravel
fi
TMP=$(mktemp -d /tmp/caravel-leak-XXXXXX)
trap 'caravel_stop; rm -rf "$TMP"' EXIT
new_keys
BENCH_BUILD_DIR=$(dirname "$BIN") tokens fresh 2000 "$PUBLIC_URL_BENCH/identity" "$TMP/tokens.txt" 3600
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 caravel_start "$BIN" "$TMP" \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
SESSION=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
api POST /tenants "$SESSION" '{}' >/dev/null
RELAY_ID=$(api POST /relays "$SESSION" '{"subdomain":"leak-one","plan":"free"}' | jq -r .data.id)
echo "== leak check: $BIN under ${SECS} s of mixed load (wrk -t1 -c64)"
BENCH_TOKEN="$SESSION" BENCH_RELAY="$RELAY_ID" BENCH_TOKENS="$TMP/tokens.txt" \
  wrk -t1 -c64 -d"${SECS}s" --latency -s bench/lua/mixed.lua "$CARAVEL_URL" >"$TMP/wrk.txt" &
WRK_PID=$!
for t in $(seq 10 10 "$SECS"); do
  sleep 10
  echo "    t=${t}s VmRSS $(awk '$1=="VmRSS:" {print $2}' "/proc/$CARAVEL_PID/status") KB," \
       "-wal $(du -k "$TMP/c.db-wal" 2>/dev/null | cut -f1) KB"
done
wait "$WRK_PID" || true
sed 's/^/    /' "$TMP/wrk.txt"
RSS=$(awk '$1=="VmRSS:" {print $2}' "/proc/$CARAVEL_PID/status")
caravel_stop
echo "    relays created: $(sqlite3 "$TMP/c.db" 'SELECT count(*) FROM relay'), RSS before SIGTERM $RSS KB ($BIN)"
echo "    exit code after SIGTERM: $CARAVEL_RC"
if grep -E 'LeakSanitizer|AddressSanitizer|runtime error|SUMMARY' "$TMP/caravel.log"; then
  echo "leak-check: FAILED (sanitizer report above)"; exit 1
fi
if [ "$CARAVEL_RC" != 0 ]; then
  tail -20 "$TMP/caravel.log"; echo "leak-check: FAILED (exit code $CARAVEL_RC)"; exit 1
fi
if [ "$BIN" = build/caravel ]; then echo "leak-check: ok (exit 0; release build, no sanitizer)"
else echo "leak-check: ok (no leak or sanitizer report)"; fi
