# The sync scenario of bench/scale.sh (sourced by it; uses its scale_start, figure,
# proc_cpu_ticks, BG_PIDS and WORK). Every relay of the size's database is marked unsynced and
# the service starts with ZOOID_API_URL pointing at bench/zooid-fast.mjs:
#   idle     nothing to sync (the database as built), 10 s: the machine's own noise floor,
#            the baseline of the figures below;
#   healthy  zooid answers at once: time until every relay is synced, relays/s, CPU;
#   500      zooid answers 500 to everything for SCALE_SYNC_OUTAGE_S seconds (default 60):
#            CPU used, requests zooid received, fail activities written, relays that used up
#            their 6 attempts, breaker openings.
# Both report GET /healthz p50/p99/max from its own process (bench/healthz-probe.mjs, one
# request every 10 ms) and the loop's longest iteration (caravel_loop_stall_max_ms from
# /metrics: wall time, which includes time the machine gave to other processes, and the loop
# thread's CPU time, which does not) and iterations over 50 ms. Goals: /healthz p99 < 10 ms, no
# stall over 50 ms.
# SCALE_SYNC_TIMEOUT_S bounds the healthy run (default 900); SCALE_SYNC_RUNS picks the runs
# (default "idle healthy outage"). For an A/B, run it once more with SCALE_BIN set to the other
# binary (one without the loop gauges leaves those figures empty).

# free_port -> a TCP port free on 127.0.0.1 right now
free_port () {
  node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })"
}

# metric PORT NAME -> the value of an unlabelled series of GET /metrics
metric () {
  curl -sS "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# bg_stop PID: SIGTERM a background helper of this scenario and wait for it.
bg_stop () {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local i kept=()
  for i in "${BG_PIDS[@]}"; do [ "$i" = "$1" ] || kept+=("$i"); done
  BG_PIDS=("${kept[@]}")
}

# sync_run SIZE DB MODE SECONDS: one run (SECONDS 0: until every relay is synced). Sets SR_SECS,
# SR_CPU (s), SR_P50/SR_P99/SR_MAX (ms), SR_STALL/SR_STALL_CPU (ms), SR_STALLS, SR_OPENS,
# SR_REQS, SR_RUNQ (% of the run the loop thread was ready to run but waited for a CPU).
sync_run () {
  SR_LEFT=0
  local size=$1 db=$2 mode=$3 secs=$4 dir zpid zport mport ppid t0 c0 w0 w1 left i n err
  dir=$(dirname "$db")
  node bench/zooid-fast.mjs "$mode" >"$dir/zooid.log" 2>&1 &
  zpid=$!; BG_PIDS+=("$zpid")
  for i in $(seq 1 100); do
    zport=$(sed -n 's/^port //p' "$dir/zooid.log"); [ -n "$zport" ] && break; sleep 0.1
  done
  mport=$(free_port)
  scale_start "$db" ZOOID_API_URL="http://127.0.0.1:$zport" \
    ZOOID_API_SECRET="$(printf '%064x' 7)" METRICS_PORT="$mport"
  t0=$(date +%s.%N); c0=$(proc_cpu_ticks)
  read -r _ w0 _ <"/proc/$CARAVEL_PID/schedstat" # the loop thread's (the main thread's) wait for a CPU
  metric "$mport" caravel_loop_stall_max_ms >/dev/null # the gauges restart from here
  node bench/healthz-probe.mjs "$CARAVEL_URL/healthz" 10 >"$dir/probe.log" 2>&1 &
  ppid=$!; BG_PIDS+=("$ppid")
  if [ "$secs" = 0 ]; then
    for ((i = 0; i < ${SCALE_SYNC_TIMEOUT_S:-900} * 2; i++)); do
      left=$(sqlite3 -cmd '.timeout 5000' "$db" "SELECT count(*) FROM relay WHERE synced = 0")
      [ "$left" = 0 ] && break
      sleep 0.5
    done
    [ "$left" = 0 ] || echo "    (sync: $left relays still unsynced after ${SCALE_SYNC_TIMEOUT_S:-900} s)"
    SR_LEFT=$left
  else
    sleep "$secs"
  fi
  SR_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  read -r _ w1 _ <"/proc/$CARAVEL_PID/schedstat"
  SR_RUNQ=$(awk -v w=$((w1 - w0)) -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", w / 1e7 / (b - a) }')
  SR_CPU=$(awk -v t=$(($(proc_cpu_ticks) - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')
  SR_STALL=$(metric "$mport" caravel_loop_stall_max_ms)
  SR_STALL_CPU=$(metric "$mport" caravel_loop_stall_cpu_max_ms)
  SR_STALLS=$(metric "$mport" caravel_loop_stalls_over_50ms_total)
  SR_OPENS=$(metric "$mport" caravel_sync_breaker_opens_total)
  bg_stop "$ppid"
  read -r SR_P50 SR_P99 SR_MAX n err <"$dir/probe.log"
  [ "$err" = 0 ] || echo "    (/healthz: $err of $n probes failed)"
  caravel_stop
  bg_stop "$zpid"
  SR_REQS=$(sed -n 's/^requests //p' "$dir/zooid.log")
}

# sync_figures SIZE PREFIX: the probe and loop figures of the last run
sync_figures () {
  figure "$1" "$2: /healthz p50" "$SR_P50" ms
  figure "$1" "$2: /healthz p99" "$SR_P99" ms
  figure "$1" "$2: /healthz max" "$SR_MAX" ms
  figure "$1" "$2: longest loop iteration (wall)" "$SR_STALL" ms
  figure "$1" "$2: longest loop iteration (loop thread CPU)" "$SR_STALL_CPU" ms
  figure "$1" "$2: loop iterations over 50 ms (wall)" "$SR_STALLS" ""
  figure "$1" "$2: loop thread waiting for a CPU" "$SR_RUNQ" "% of the time"
}

scenario_sync () {
  local size=$1 db=$2 odb runs=" ${SCALE_SYNC_RUNS:-idle healthy outage} "
  if [[ $runs == *" idle "* ]]; then
    sync_run "$size" "$db" ok 10
    figure "$size" "sync idle, 10 s (baseline): CPU" "$SR_CPU" s
    sync_figures "$size" "sync idle, 10 s (baseline)"
  fi
  sqlite3 "$db" "UPDATE relay SET synced = 0, sync_created = 0, sync_attempts = 0,
                 sync_next_at = 0, sync_error = NULL"
  odb="$(dirname "$db")-outage/c.db"
  mkdir -p "$(dirname "$odb")"
  cp "$db" "$odb"

  if [[ $runs == *" healthy "* ]]; then
    sync_run "$size" "$db" ok 0
    local synced=$((size - SR_LEFT))
    figure "$size" "sync healthy: time to sync every relay (or to the timeout)" "$SR_SECS" s
    figure "$size" "sync healthy: relays synced" "$synced" ""
    figure "$size" "sync healthy: relays/s" "$(awk -v n="$synced" -v s="$SR_SECS" 'BEGIN { printf "%.0f", n / s }')" /s
    figure "$size" "sync healthy: CPU per relay" "$(awk -v c="$SR_CPU" -v n="$synced" 'BEGIN { printf "%.0f", n ? c * 1e6 / n : 0 }')" us
    sync_figures "$size" "sync healthy"
  fi
  [[ $runs == *" outage "* ]] || { rm -rf "$(dirname "$odb")"; return 0; }

  local secs=${SCALE_SYNC_OUTAGE_S:-60}
  sync_run "$size" "$odb" 500 "$secs"
  figure "$size" "sync, zooid 500 for ${secs} s: CPU" "$SR_CPU" s
  figure "$size" "sync, zooid 500 for ${secs} s: requests to zooid" "$SR_REQS" ""
  figure "$size" "sync, zooid 500 for ${secs} s: fail activities written" \
    "$(sqlite3 "$odb" "SELECT count(*) FROM activity WHERE activity_type = 'fail_relay_sync'")" ""
  figure "$size" "sync, zooid 500 for ${secs} s: relays that used up 6 attempts" \
    "$(sqlite3 "$odb" "SELECT count(*) FROM relay WHERE sync_attempts >= 6")" ""
  figure "$size" "sync, zooid 500 for ${secs} s: breaker openings" "$SR_OPENS" ""
  sync_figures "$size" "sync, zooid 500 for ${secs} s"
  rm -rf "$(dirname "$odb")"
}
