#!/usr/bin/env bash
# Scale benchmark: what a request costs with 1,000, 10,000 and 100,000 relays. For each size it
# builds a database through the real schema (the binary applies the migrations, then SQL
# inserts the rows directly: tenants, relays on mixed plans, their activity, invoices with
# items and BOLT11s), runs each scenario on a fresh copy of it, and prints every figure per
# size with the ratio of the largest size to the smallest (goal: every per-request figure
# within 2x between 1k and 100k).
#
#   bash bench/scale.sh [SIZE...]            (default: 1000 10000 100000 relays)
#
# SCALE_DURATION   seconds per wrk measurement (default 5)
# SCALE_BIN        the binary (default build/caravel, the optimized build: make all)
# SCALE_SCENARIOS  scenarios to run, in order (default "lists reads rss sync billing"; also
#                  "migrate", bench/scale-migrate.sh; see below)
# SCALE_KEEP=1     keep the work directory (each size's database as built, and the logs)
# SCALE_BASELINE_BIN  another build (say, of an older commit) run through the same scenarios on
#                  a database it built itself, in the same run: its figures are labelled
#                  "baseline:" and printed under the same figure of SCALE_BIN. Routes it lacks
#                  (a list without "next") are skipped.
#
# Every server binds 127.0.0.1 and is stopped by its PID; the work directory is removed at exit.
#
# ---- adding a scenario ----
# A scenario is a function `scenario_NAME SIZE DB` run once per size with DB, a fresh copy of
# that size's database (it may write to it). Start the service with `scale_start DB [VAR=VALUE...]`
# (sets CARAVEL_PID/CARAVEL_URL; ADMIN_SESSION and USER_SESSION are valid tokens), stop it with
# `caravel_stop`, and report each number with `figure SIZE "label" VALUE UNIT`: the summary
# table collects figures by label across sizes and prints the ratio. Then add NAME to
# SCALE_SCENARIOS (or to DEFAULT_SCENARIOS below). Helpers: wrk_latency (p50/p99 of one URL),
# proc_rss, scale_start. The sizes' shape (tenants, plans, invoices) is in build_db.
# The sync scenario lives in bench/scale-sync.sh (its knobs are there); the billing one runs
# bench/billing-scale.mjs (its knobs are there).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DUR=${SCALE_DURATION:-5}
MAIN_BIN=${SCALE_BIN:-build/caravel}
BASE_BIN=${SCALE_BASELINE_BIN:-}
BIN=$MAIN_BIN
FIG_PREFIX=""
DEFAULT_SCENARIOS="lists reads rss sync billing"
read -r -a SCENARIOS <<<"${SCALE_SCENARIOS:-$DEFAULT_SCENARIOS}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 100000)
WORK=$(mktemp -d /tmp/caravel-scale-XXXXXX)
BG_PIDS=()
cleanup () {
  local p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  caravel_stop
  ! declare -F migrate_cleanup >/dev/null || migrate_cleanup
  if [ "${SCALE_KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
for tool in wrk sqlite3 jq node; do
  command -v "$tool" >/dev/null || { echo "scale: $tool is not installed" >&2; exit 1; }
done
for b in "$MAIN_BIN" $BASE_BIN; do
  [ -x "$b" ] || { echo "scale: $b missing (make all)" >&2; exit 1; }
done

# ---- figures ----
declare -A FIG      # "SIZE|label" -> value
declare -A FIG_UNIT # label -> unit
FIG_ORDER=()        # labels, first-seen order
figure () { # SIZE LABEL VALUE UNIT
  local size=$1 label="$FIG_PREFIX$2" value=$3 unit=$4
  [ -n "${FIG_UNIT[$label]+x}" ] || FIG_ORDER+=("$label")
  FIG_UNIT[$label]=$unit
  FIG["$size|$label"]=$value
  printf '    %-58s %10s %s\n' "$label" "$value" "$unit"
}

# ---- helpers for scenarios ----
# wrk_latency URL CONNECTIONS [TOKEN] -> prints "p50_ms p99_ms req_per_s bad cpu_us" (wrk -t1,
# --latency, SCALE_DURATION seconds, the token reused on every request; cpu_us: the server's
# CPU time per request, all its threads, which moves much less with the machine's other load
# than latency does; bad: non-2xx answers and requests over wrk's 2 s timeout). When no request
# was answered within 2 s, every figure is "none".
wrk_latency () {
  local url=$1 conns=$2 token=${3:-} out c0 c1
  c0=$(proc_cpu_ticks)
  out=$(BENCH_TOKEN="$token" wrk -t1 -c"$conns" -d"${DUR}s" --latency -s bench/lua/static.lua "$url" 2>&1 || true)
  c1=$(proc_cpu_ticks)
  awk -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '
    function ms(v,  u) { u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                         if (u == "us") return v / 1000; if (u == "s") return v * 1000
                         if (u == "m") return v * 60000; return v + 0 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /requests in/ { n = $1 }
    /^Requests\/sec:/ { rps = $2 } /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(/,/, ""); timeouts = $NF }
    END { if (n == 0) { print "none none 0 0 none"; exit } # nothing answered within 2 s
          printf "%.2f %.2f %.0f %d %.0f\n", p50, p99, rps, bad + timeouts, ticks * 1e6 / hz / n }' <<<"$out"
}

# proc_cpu_ticks -> user + system clock ticks of CARAVEL_PID so far
proc_cpu_ticks () { awk '{ print $14 + $15 }' "/proc/$CARAVEL_PID/stat"; }

# proc_rss FIELD -> kB of /proc/CARAVEL_PID/status FIELD (VmRSS, VmHWM)
proc_rss () { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$CARAVEL_PID/status"; }

# scale_start DB [VAR=VALUE...]: the service on DB (a file named c.db in its own directory).
scale_start () {
  local db=$1; shift
  caravel_start "$BIN" "$(dirname "$db")" "$@"
}

# ---- the databases ----
# build_db SIZE DIR: SIZE relays over SIZE/5 tenants. Tenant 1 is USER_PK (a real key, so the
# bench can sign as it); the others are made-up pubkeys. Relays are spread over the tenants
# round-robin and over time (one a minute), plans free/basic/growth in turn, a tenth inactive.
# Activity: create_tenant per tenant, create_relay + update_relay per relay and a
# deactivate/activate pair for every third (~3 rows a relay, ~15 a tenant). Invoices: three
# past periods for every tenant with a paid relay, one item per paid relay, one BOLT11 each
# and an older expired one for every fourth.
build_db () {
  local size=$1 dir=$2 tenants=$(( $1 / 5 ))
  mkdir -p "$dir"
  caravel_start "$BIN" "$dir" # applies the migrations
  caravel_stop
  sqlite3 "$dir/c.db" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < $tenants)
INSERT INTO tenant(pubkey, created_at)
SELECT CASE n WHEN 1 THEN '$USER_PK' ELSE printf('%064x', n) END, 1600000000 + n * 60 FROM t;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < $size)
INSERT INTO relay(id, tenant, subdomain, schema, secret, plan, status, synced, sync_created,
                  info_name, created_at, updated_at)
SELECT printf('%08x%024x', n * 2654435761 % 4294967296, n),
       CASE (n - 1) % $tenants WHEN 0 THEN '$USER_PK' ELSE printf('%064x', 1 + (n - 1) % $tenants) END,
       'relay' || n, 'relay' || n, printf('%064x', n * 7919),
       CASE n % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'basic' ELSE 'growth' END,
       CASE WHEN n % 10 = 0 THEN 'inactive' ELSE 'active' END, 1, 1,
       'Relay number ' || n, 1610000000 + n * 60, 1610000000 + n * 60 FROM r;
INSERT INTO activity(tenant, created_at, activity_type, resource_type, resource_id, plan, status)
SELECT tenant, at, type, rtype, rid, plan, status FROM (
  SELECT pubkey AS tenant, created_at AS at, 'create_tenant' AS type, 'tenant' AS rtype,
         pubkey AS rid, NULL AS plan, NULL AS status FROM tenant
  UNION ALL SELECT tenant, created_at, 'create_relay', 'relay', id, plan, 'active' FROM relay
  UNION ALL SELECT tenant, created_at + 30, 'update_relay', 'relay', id, plan, 'active' FROM relay
  UNION ALL SELECT tenant, created_at + 40, 'deactivate_relay', 'relay', id, plan, 'inactive'
            FROM relay WHERE rowid % 3 = 0
  UNION ALL SELECT tenant, created_at + 50, 'activate_relay', 'relay', id, plan, status
            FROM relay WHERE rowid % 3 = 0)
ORDER BY at;
WITH RECURSIVE p(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM p WHERE k < 2)
INSERT INTO invoice(id, tenant, amount, status, period_start, period_end, created_at, paid_at)
SELECT printf('%032x', t.rowid * 3 + p.k), t.pubkey, 0,
       CASE WHEN p.k < 2 THEN 'paid' ELSE 'pending' END,
       1700000000 + p.k * 2592000, 1700000000 + (p.k + 1) * 2592000,
       1700000000 + (p.k + 1) * 2592000 + t.rowid % 3600,
       CASE WHEN p.k < 2 THEN 1700000000 + (p.k + 1) * 2592000 + 7200 END
FROM tenant t, p WHERE EXISTS (SELECT 1 FROM relay WHERE tenant = t.pubkey AND plan <> 'free');
INSERT INTO invoice_item(invoice, relay, plan, hours, amount)
SELECT i.id, r.id, r.plan, 720, CASE r.plan WHEN 'basic' THEN 10000 ELSE 50000 END
FROM invoice i JOIN relay r ON r.tenant = i.tenant AND r.plan <> 'free';
UPDATE invoice SET amount = (SELECT sum(amount) FROM invoice_item WHERE invoice = invoice.id);
INSERT INTO bolt11(id, invoice, bolt11, payment_hash, amount_msats, expires_at, created_at)
SELECT 'b' || id, id, 'lnbc' || amount || 'n1p' || id, printf('%064x', rowid), amount * 1000,
       created_at + 86400, created_at + 60 FROM invoice;
INSERT INTO bolt11(id, invoice, bolt11, payment_hash, amount_msats, expires_at, created_at)
SELECT 'o' || id, id, 'lnbc' || amount || 'n1old' || id, printf('%064x', rowid + 10000000),
       amount * 1000, created_at + 30, created_at FROM invoice WHERE rowid % 4 = 0;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
}

# count TABLE DB
count () { sqlite3 "$2" "SELECT count(*) FROM $1"; }

# ---- scenarios ----

# The list routes of the table in docs/BENCHMARKS.md ("Scale"), one connection (latency, not
# throughput). Deep pages both ways: offset (cost grows with the offset, by nature) and the
# cursor of the same position (should not).
scenario_lists () {
  local size=$1 db=$2 n i cur_r cur_i t2
  n=$(count relay "$db"); i=$(count invoice "$db")
  t2=$(sqlite3 "$db" "SELECT pubkey FROM tenant WHERE rowid = 2")
  scale_start "$db"
  # The cursor that starts the page at offset N-500: the "next" of the page ending just before.
  cur_r=$(api GET "/relays?limit=1&offset=$((n - 501))" "$ADMIN_SESSION" | jq -r .next)
  cur_i=$(api GET "/invoices?limit=1&offset=$((i - 501))" "$ADMIN_SESSION" | jq -r .next)
  local -a runs=(
    "GET /relays (tenant, own: 5 items)|/relays|$USER_SESSION"
    "GET /activity (tenant, own: ~15 items)|/activity|$USER_SESSION"
    "GET /relays?tenant=X (admin)|/relays?tenant=$t2|$ADMIN_SESSION"
    "GET /relays?limit=500 (admin, first page)|/relays?limit=500|$ADMIN_SESSION"
    "GET /relays?limit=500&offset=N-500 (admin)|/relays?limit=500&offset=$((n - 500))|$ADMIN_SESSION"
    "GET /relays?limit=500&after=<cursor at N-500> (admin)|/relays?limit=500&after=$cur_r|$ADMIN_SESSION"
    "GET /invoices (tenant, own: 3 items)|/invoices|$USER_SESSION"
    "GET /invoices?limit=500&offset=I-500 (admin)|/invoices?limit=500&offset=$((i - 500))|$ADMIN_SESSION"
    "GET /invoices?limit=500&after=<cursor at I-500> (admin)|/invoices?limit=500&after=$cur_i|$ADMIN_SESSION"
    "GET /tenants?limit=100 (admin)|/tenants?limit=100|$ADMIN_SESSION"
    "GET /activity?limit=500 (admin)|/activity?limit=500|$ADMIN_SESSION"
  )
  local run label path token p50 p99 rps bad cpu
  for run in "${runs[@]}"; do
    IFS='|' read -r label path token <<<"$run"
    case $path in *after=null*) continue ;; esac # a binary without cursors (a baseline)
    # One request first: the answer must be a page (a failure would be measured as fast 4xx).
    api GET "$path" "$token" | jq -e '.data | type == "array"' >/dev/null
    read -r p50 p99 rps bad cpu < <(wrk_latency "$CARAVEL_URL$path" 1 "$token")
    [ "$bad" = 0 ] || echo "    ($label: $bad non-2xx answers)"
    figure "$size" "$label p50" "$p50" ms
    figure "$size" "$label p99" "$p99" ms
    figure "$size" "$label CPU" "$cpu" us
  done
  caravel_stop
}

# A point read alone and while 8 clients list deep offset pages (the slowest list) without
# pause: lists have a lane of their own in the database job runner.
scenario_reads () {
  local size=$1 db=$2 n id p50 p99 rps bad cpu lp50 lp99 lrps lbad lcpu
  n=$(count relay "$db")
  id=$(sqlite3 "$db" "SELECT id FROM relay WHERE tenant = '$USER_PK' LIMIT 1")
  scale_start "$db"
  read -r p50 p99 rps bad cpu < <(wrk_latency "$CARAVEL_URL/relays/$id" 1 "$USER_SESSION")
  figure "$size" "GET /relays/:id alone p50" "$p50" ms
  figure "$size" "GET /relays/:id alone p99" "$p99" ms
  local list="$CARAVEL_URL/relays?limit=500&offset=$((n - 500))" out="$WORK/lists-$size.txt"
  DUR=$((DUR + 2)) wrk_latency "$list" 8 "$ADMIN_SESSION" >"$out" &
  BG_PIDS+=($!)
  sleep 1
  read -r p50 p99 rps bad cpu < <(wrk_latency "$CARAVEL_URL/relays/$id" 1 "$USER_SESSION")
  wait "${BG_PIDS[-1]}"
  unset 'BG_PIDS[-1]'
  read -r lp50 lp99 lrps lbad lcpu <"$out"
  figure "$size" "GET /relays/:id while 8 clients list p50" "$p50" ms
  figure "$size" "GET /relays/:id while 8 clients list p99" "$p99" ms
  figure "$size" "the 8 listing clients (deep offset page) p50" "$lp50" ms
  caravel_stop
}

# Resident memory: after start, and the peak after every list page of 500 relays once.
scenario_rss () {
  local size=$1 db=$2 n off
  n=$(count relay "$db")
  scale_start "$db"
  figure "$size" "VmRSS after start" "$(proc_rss VmRSS)" kB
  local next="" q
  for ((off = 0; off < n; off += 500)); do # every page once, by cursor (offset without one)
    q="/relays?limit=500&offset=$off"
    [ -z "$next" ] || q="/relays?limit=500&after=$next"
    next=$(api GET "$q" "$ADMIN_SESSION" | jq -r '.next // empty')
  done
  figure "$size" "VmRSS after every relay page" "$(proc_rss VmRSS)" kB
  figure "$size" "VmHWM (peak)" "$(proc_rss VmHWM)" kB
  caravel_stop
}

# The sync worker: first sync of every relay with zooid healthy, then zooid answering 500
# (scenario_sync, in its own file with its helpers).
source bench/scale-sync.sh
# `caravel migrate` to PostgreSQL (bench/scale-migrate.sh).
source bench/scale-migrate.sh

# One billing period at this size (bench/billing-scale.mjs, with BIN): wallet requests, CPU
# and the API's write latency while it runs. That bench builds its own database of SIZE relays
# (every tenant with a wallet connection, on the test relay and the real NWC wallet services
# of the integration suite: test/node_modules), so DB is not used. ~1 / 3 / 16 minutes at
# 1k / 10k / 100k relays.
scenario_billing () {
  local size=$1 out json n
  out="$WORK/billing-$size.out"
  CARAVEL_BIN="$(realpath "$BIN")" node bench/billing-scale.mjs "$size" >"$out" 2>&1 ||
    { tail -20 "$out" >&2; echo "scale: billing at $size failed" >&2; return 1; }
  json=$(grep '^{' "$out" | tail -1)
  n=$(jq -r .invoices <<<"$json")
  figure "$size" "billing: invoices in one period" "$n" invoices
  figure "$size" "billing: wallet requests per invoice" "$(jq -r .requests_per_invoice <<<"$json")" requests
  figure "$size" "billing: CPU per invoice (the API probe's excluded)" \
    "$(jq -r --argjson n "$n" '(((.period_cpu_s | tonumber) - (.writes_cpu_s | tonumber)) * 1000 / $n) * 100 | round / 100' <<<"$json")" ms
  figure "$size" "billing: CPU of the period (the API probe's excluded)" \
    "$(jq -r '((.period_cpu_s | tonumber) - (.writes_cpu_s | tonumber)) * 10 | round / 10' <<<"$json")" s
  figure "$size" "billing: API write p99 during the period" "$(jq -r .write_p99_ms <<<"$json")" ms
  figure "$size" "billing: invoices unpaid at the end" "$(jq -r .unpaid <<<"$json")" invoices
  figure "$size" "billing: loop iterations over 50 ms" "$(jq -r .loop_stalls_50ms <<<"$json")" iterations
}

# ---- run ----
new_keys
ADMIN_SESSION=$(tokens session "$ADMIN_SK" "$PUBLIC_URL_BENCH")
USER_SESSION=$(tokens session "$USER_SK" "$PUBLIC_URL_BENCH")
# caravel_start passes ADMINS=$ADMIN_PK.
echo "== scale: ${SIZES[*]} relays; scenarios: ${SCENARIOS[*]}; wrk -t1 -d${DUR}s --latency"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs," \
     "load $(cut -d' ' -f1-3 /proc/loadavg); binary $MAIN_BIN${BASE_BIN:+, baseline $BASE_BIN}"
# run_size SIZE: builds the database with BIN, runs every scenario on a copy of it.
run_size () {
  local size=$1 t0 base sc
  t0=$(date +%s.%N)
  build_db "$size" "$WORK/base-$size"
  base="$WORK/base-$size/c.db"
  echo "-- ${FIG_PREFIX}$size relays: $(count tenant "$base") tenants, $(count activity "$base") activity rows," \
       "$(count invoice "$base") invoices, $(count invoice_item "$base") items;" \
       "database $(du -k "$base" | cut -f1) kB, built in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  for sc in "${SCENARIOS[@]}"; do
    declare -F "scenario_$sc" >/dev/null || { echo "scale: no scenario_$sc" >&2; exit 1; }
    mkdir -p "$WORK/$sc-$size"
    cp "$base" "$WORK/$sc-$size/c.db"
    "scenario_$sc" "$size" "$WORK/$sc-$size/c.db"
    rm -f "$WORK/$sc-$size/c.db"*
  done
  [ "${SCALE_KEEP:-0}" = 1 ] || rm -f "$base"*
}

for size in "${SIZES[@]}"; do
  if [ -n "$BASE_BIN" ]; then
    BIN=$BASE_BIN FIG_PREFIX="baseline: " run_size "$size"
  fi
  BIN=$MAIN_BIN FIG_PREFIX="" run_size "$size"
done

# ---- summary ----
echo
first=${SIZES[0]}; last=${SIZES[-1]}
printf '| %s |' "measurement"; for s in "${SIZES[@]}"; do printf ' %s |' "$s"; done; printf ' %s/%s |\n' "$last" "$first"
printf '|---|'; for _ in "${SIZES[@]}"; do printf -- '---:|'; done; printf -- '---:|\n'
row () { # LABEL
  local label=$1 s
  printf '| %s (%s) |' "$label" "${FIG_UNIT[$label]}"
  for s in "${SIZES[@]}"; do printf ' %s |' "${FIG["$s|$label"]:-}"; done
  awk -v a="${FIG["$first|$label"]:-0}" -v b="${FIG["$last|$label"]:-0}" \
      'BEGIN { if (a > 0) printf " %.2f |\n", b / a; else print " n/a |" }'
}
for label in "${FIG_ORDER[@]}"; do # each figure, then its baseline
  case $label in "baseline: "*) continue ;; esac
  row "$label"
  [ -z "${FIG_UNIT["baseline: $label"]+x}" ] || row "baseline: $label"
done
