# Shared helpers of bench/http-api.sh and bench/leak-check.sh (sourced, bash).
# Every process started here binds 127.0.0.1 and is stopped by its PID.

PUBLIC_URL_BENCH=https://api.caravel.bench   # fixed origin: cached tokens stay valid across runs
BENCH_AUTH_MAX_AGE=31536000                  # the maximum AUTH_MAX_AGE (cached fresh tokens)

# caravel_start BIN DIR [VAR=VALUE...] -> sets CARAVEL_PID, CARAVEL_URL (stderr in DIR/caravel.log)
caravel_start () {
  local bin=$1 dir=$2; shift 2
  env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 DATABASE_URL="sqlite://$dir/c.db" \
    ADMINS="$ADMIN_PK" LOG_LEVEL=warn PUBLIC_URL="$PUBLIC_URL_BENCH" \
    AUTH_MAX_AGE="$BENCH_AUTH_MAX_AGE" ASAN_OPTIONS="${ASAN_OPTIONS:-}" "$@" \
    "$bin" >"$dir/caravel.log" 2>&1 &
  CARAVEL_PID=$!
  local port="" i
  for i in $(seq 1 150); do
    port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$dir/caravel.log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$CARAVEL_PID" 2>/dev/null || { cat "$dir/caravel.log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "caravel did not start" >&2; cat "$dir/caravel.log" >&2; return 1; }
  CARAVEL_URL="http://127.0.0.1:$port"
}

# caravel_stop: SIGTERM, wait up to 30 s (then SIGKILL); sets CARAVEL_RC.
caravel_stop () {
  [ -n "${CARAVEL_PID:-}" ] || return 0
  kill -TERM "$CARAVEL_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 300); do kill -0 "$CARAVEL_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$CARAVEL_PID" 2>/dev/null && kill -KILL "$CARAVEL_PID" 2>/dev/null
  CARAVEL_RC=0
  wait "$CARAVEL_PID" 2>/dev/null || CARAVEL_RC=$?
  CARAVEL_PID=
}

# api METHOD PATH TOKEN [JSON] -> prints the body; fails unless 2xx.
api () {
  curl -sS -f -X "$1" -H "Authorization: $3" -H 'Content-Type: application/json' \
    ${4:+--data "$4"} "$CARAVEL_URL$2"
}

tokens () { node bench/tokens.mjs "$@"; }

# bench_tenants DB: inserts the tenants bench/lua/create.lua names with BENCH_TENANTS (two
# wrk threads x 200,000 tenants: 600,000 relay creations per thread at 3 free relays each).
bench_tenants () {
  sqlite3 -cmd '.timeout 10000' "$1" <<'SQL'
WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 200000)
INSERT INTO tenant(pubkey, created_at) SELECT printf('%064x', t * 1000000 + v), 1700000000
  FROM n, (SELECT 0 AS t UNION ALL SELECT 1);
SQL
}

# new_keys: sets USER_SK/USER_PK (a tenant) and ADMIN_SK/ADMIN_PK.
new_keys () {
  read -r USER_SK USER_PK < <(tokens key)
  read -r ADMIN_SK ADMIN_PK < <(tokens key)
}
