#!/usr/bin/env bash
# Hostile-client floods at full size (not a test; the bounded versions are
# test/integration/hostile.test.mjs): 10,000 slow connections (trickled heads, and bodies behind
# a valid token) and then 1,000 clients that pipeline the largest list answer and never read,
# each while a normal client sends GET /healthz; prints its p50/p99, failures and the server's
# RSS. 500 relays with 4000-byte descriptions make GET /relays?limit=500 ~2.3 MB.
#   bash bench/flood.sh        (FLOOD_BUILD=asan for the sanitizer build; FLOOD_BIN=path;
#                               FLOOD_SECS=30; FLOOD_SLOW=10000; FLOOD_READERS=1000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD_DIR=build${FLOOD_BUILD:+-$FLOOD_BUILD}
make -s -j2 ${FLOOD_BUILD:+SAN=$FLOOD_BUILD} "$BUILD_DIR/caravel" >/dev/null
BIN=${FLOOD_BIN:-$BUILD_DIR/caravel}   # FLOOD_BIN: another binary, e.g. one from before the limits
TMP=$(mktemp -d /tmp/caravel-flood-XXXXXX)
trap 'caravel_stop; rm -rf "$TMP"' EXIT
# 10,000 connections on each side of loopback plus the server's: needs the descriptors.
ulimit -n "$(ulimit -Hn)"
new_keys

caravel_start "$BIN" "$TMP"   # applies the migrations
caravel_stop
sqlite3 -cmd '.timeout 10000' "$TMP/c.db" <<'SQL'
BEGIN;
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10)
INSERT INTO tenant(pubkey, created_at) SELECT printf('%064x', n), 1700000000 FROM t;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 500)
INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, info_name,
                  info_description, created_at, updated_at)
SELECT printf('%032x', n), printf('%064x', 1 + n % 10), 'flood' || n, 'flood' || n,
       printf('%064x', n * 7919), 'growth', 'active', 1, 'Relay number ' || n,
       substr(replace(hex(zeroblob(2000)), '0', 'd'), 1, 4000), 1700000000 + n, 1700000000 + n
  FROM r;
COMMIT;
SQL
METRICS_PORT_FLOOD=$((20000 + RANDOM % 20000))
caravel_start "$BIN" "$TMP" METRICS_PORT="$METRICS_PORT_FLOOD"
ADMIN_SESSION=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
LIST_BYTES=$(curl -sS -H "Authorization: $ADMIN_SESSION" "$CARAVEL_URL/relays?limit=500" | wc -c)
echo "flood: $BIN, GET /relays?limit=500 is $LIST_BYTES bytes, load $(cut -d' ' -f1-3 /proc/loadavg)"
URL=$CARAVEL_URL PID=$CARAVEL_PID TOKEN=$ADMIN_SESSION METRICS="http://127.0.0.1:$METRICS_PORT_FLOOD/metrics" \
  SLOW=${FLOOD_SLOW:-10000} READERS=${FLOOD_READERS:-1000} SECS=${FLOOD_SECS:-30} \
  node bench/flood.mjs
STOP_T0=$(date +%s.%N)
caravel_stop
echo "caravel exit code $CARAVEL_RC, stopped in $(echo "$(date +%s.%N) - $STOP_T0" | bc) s" \
  "(SIGTERM 2 s after the non-reading clients left; watchdog 30 s)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg); warnings and errors it logged:"
grep -E ' (WARN|ERROR) ' "$TMP/caravel.log" | cut -c1-200 | sort -k3 | uniq -c -f3 | head -20
