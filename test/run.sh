#!/usr/bin/env bash
# The one test command (README: `make test`). Installs what is missing, builds with -Werror,
# then runs: the format check, C unit tests (plain and ASan/UBSan), integration tests
# (node:test against the real binary, ASan build) on each database engine, bounded libFuzzer
# runs. Last line: "N passed, N failed"; the line before it gives each stage's wall time.
#   TEST_STAGES="unit integration"  run only some stages (unit asan integration fuzz image)
#   INTEGRATION_FILES="test/integration/a.test.mjs ..."  only these integration files
#   CARAVEL_TEST_ENGINES="sqlite postgres"  the database engines the integration stage runs on,
#                                   one pass after the other (default: both; "sqlite" or
#                                   "postgres" for a quick run). Each pass runs its files two
#                                   at a time (INTEGRATION_JOBS), slowest first, each file in its
#                                   own `node --test`, and prints its wall time and its slowest
#                                   files. One throwaway PostgreSQL cluster serves the whole run
#                                   (test/integration/lib/postgres.mjs; its URL is
#                                   CARAVEL_TEST_PG_URL for the unit and integration tests).
#   FUZZ_SECONDS=30                 per fuzz target
#   CARAVEL_IMAGE_CHECK=1           also the container image check (`make image-check`: builds
#                                   the Dockerfile with podman and runs the image; root only).
#                                   It runs in the background from the start (mostly copying
#                                   and downloading) and is reported last.
#                                   The Dockerfile lint and a fresh-clone build with the
#                                   Dockerfile's steps always run (integration stage).
# Work that only compiles runs alongside the tests at the lowest CPU priority (nice 19), so it
# takes only the time the tests leave idle and cannot slow a test down: the ASan build while
# the plain unit tests run, the fuzz targets' build during the ASan unit tests and the
# integration passes, the image check throughout. Each is put back to normal priority (root
# only) when the run has to wait for it.
# Nothing may outlive the run: the suite runs in its own session with TMPDIR pointing into
# its own folder, and ends with a check that no process of that session is still alive and
# that the folder is empty. Either one is a failure that names the leftover (which is then
# killed or removed). Logs: kept and printed when something failed, removed otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export LC_ALL=C

# Re-run inside a new session (setsid), so that every process the suite starts, however deep,
# can be found by its session id at the end. Ctrl-C or a TERM to this outer shell stops the
# whole session.
if [ "${CARAVEL_TEST_SESSION:-}" != 1 ]; then
  CARAVEL_TEST_SESSION=1 setsid bash "$0" "$@" &
  inner=$!
  trap 'kill -TERM -- "-$inner" 2>/dev/null' INT TERM HUP
  rc=0
  while kill -0 "$inner" 2>/dev/null; do wait "$inner"; rc=$?; done
  exit "$rc"
fi
sid=$$ # the session leader (setsid did not fork: a background job is no group leader)

stages=${TEST_STAGES:-"unit asan integration fuzz"}
[ "${CARAVEL_IMAGE_CHECK:-0}" = 1 ] && [[ " $stages " != *" image "* ]] && stages="$stages image"
passed=0; failed=0
run=$(mktemp -d /tmp/caravel-run-XXXXXX)
log=$run/logs
mkdir -p "$log" "$run/tmp"
# Traversable (not readable) by others: the tests' PostgreSQL runs as an unprivileged user.
chmod 711 "$run" "$run/tmp"
# Short on purpose: unit tests put their scratch directories under it in 64-byte buffers.
export TMPDIR=$run/tmp

# Interrupted (Ctrl-C or a TERM through the outer shell, which signals the whole process
# group; bash runs this once the foreground command is gone): stop what is left of the
# session, remove the temporary folder, keep the logs.
interrupted() {
  trap - INT TERM HUP
  echo "interrupted: stopping what the suite started"
  ps -e -o pid=,sid= > "$run/ps.txt"
  awk -v sid="$sid" '$2 == sid && $1 != sid {print $1}' "$run/ps.txt" | xargs -r kill -KILL 2>/dev/null
  rm -rf "$TMPDIR"
  echo "logs: $log"
  echo "$passed passed, $((failed + 1)) failed"
  exit 130
}
trap interrupted INT TERM HUP

# tally FILE: sets tp/tf to the passed/failed counts of a file with a "N passed, N failed"
# line or node's "# pass N/# fail N/# cancelled N" (no result line: 0 passed, 1 failed, and
# the status is 1). One awk per file: the integration stage tallies ~60 files.
tally() {
  local r
  # node counts a test that timed out (or was cut short with its file) as "cancelled", not
  # "fail": it failed all the same.
  r=$(awk '/^[0-9]+ passed, [0-9]+ failed/ { rp = $1; rf = $3; r = 1 }
    /^# pass [0-9]+/ { np = $3; n = 1 } /^# fail [0-9]+/ { nf = $3 } /^# cancelled [0-9]+/ { nc = $3 }
    END { if (r) print rp, rf; else if (n) print np, nf + nc }' "$1" 2>/dev/null)
  if [ -z "$r" ]; then tp=0; tf=1; return 1; fi
  read -r tp tf <<< "$r"
}
count() { # $1 = a stage's output file: adds its counts to the run's
  tally "$1" || echo "  (no result line: counted as 1 failure)"
  passed=$((passed + tp)); failed=$((failed + tf))
  echo "  => $tp passed, $tf failed"
}

# Each stage's wall time, printed before the last line. stage KEY TITLE ends the previous
# stage; KEY names it in the times line.
stage_name=; stage_note=; stage_t0=0; stage_times=()
stage_end() {
  [ -n "$stage_name" ] && stage_times+=("$stage_name $((SECONDS - stage_t0)) s${stage_note:+ ($stage_note)}")
  stage_name=; stage_note=
}
stage() { stage_end; stage_name=$1; stage_t0=$SECONDS; echo "== $2"; }

# A background job that was started with nice 19, and everything it started, back to normal
# priority (needs root; otherwise it stays niced, which only makes the wait for it longer).
renice_tree() { # $1 = pid
  local pids
  pids=$(ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { todo[root] = 1; out = ""
          while (length(todo) > 0) { for (p in todo) { delete todo[p]; out = out " " p
            n = split(kids[p], k, " "); for (i = 1; i <= n; i++) todo[k[i]] = 1 } }
          print out }')
  # shellcheck disable=SC2086 # a list of pids
  renice -n 0 -p $pids > /dev/null 2>&1 || true
}

stage deps "dependencies"
bash scripts/deps.sh all || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

stage build "build"
if ! make -j2 WERROR=1 all > "$log/build.txt" 2>&1; then
  tail -40 "$log/build.txt"; echo "0 passed, 1 failed"; exit 1
fi

# Formatting: every C file as .clang-format says (Debian's clang-format 14; fix with
# scripts/check-format.sh --fix).
stage format "format"
if bash scripts/check-format.sh > "$log/format.txt" 2>&1; then
  passed=$((passed + 1)); echo "  => 1 passed, 0 failed"
else
  head -20 "$log/format.txt"; failed=$((failed + 1)); echo "  => 0 passed, 1 failed"
fi

image_pid=; image_t0=$SECONDS
if [[ " $stages " == *" image "* ]]; then
  nice -n 19 node scripts/image-check.mjs > "$log/image.txt" 2>&1 & # tools: deps.sh all above
  image_pid=$!
fi

# One PostgreSQL cluster for the run (initdb costs seconds; each test makes its own database).
pg_dir=
if [[ " $stages " == *" unit "* || " $stages " == *" asan "* || " $stages " == *" integration "* ]]; then
  stage postgresql "postgresql cluster"
  pg_dir=$TMPDIR/pg
  if CARAVEL_TEST_PG_URL=$(node test/integration/lib/postgres.mjs start "$pg_dir" 2> "$log/postgres-start.txt"); then
    export CARAVEL_TEST_PG_URL
    cat "$log/postgres-start.txt"
  else
    cat "$log/postgres-start.txt"; failed=$((failed + 1)); pg_dir=
  fi
fi

# The ASan build (for the ASan unit tests and the integration tests) compiles while the plain
# unit tests run.
asan_pid=
if [[ " $stages " == *" asan "* || " $stages " == *" integration "* ]]; then
  nice -n 19 make -j2 SAN=asan WERROR=1 all > "$log/asan-build.txt" 2>&1 &
  asan_pid=$!
fi

if [[ " $stages " == *" unit "* ]]; then
  stage unit "unit tests${asan_pid:+ (the ASan build alongside, niced)}"
  (cd "$PWD" && ./build/unit) > "$log/unit.txt" 2>&1
  grep -E '^FAIL|^  ' "$log/unit.txt" | head -50; count "$log/unit.txt"
fi

if [ -n "$asan_pid" ]; then
  stage asan-build "asan build"
  renice_tree "$asan_pid"
  if ! wait "$asan_pid"; then
    tail -40 "$log/asan-build.txt"; failed=$((failed + 1))
  fi
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The fuzz targets compile (clang, every source file with libFuzzer's instrumentation) while
# the ASan unit tests and the integration passes run; the fuzz stage then finds them built.
fuzz_pid=
if [[ " $stages " == *" fuzz "* ]] && [ -f test/fuzz/run.sh ]; then
  FUZZ_BUILD_ONLY=1 nice -n 19 bash test/fuzz/run.sh > "$log/fuzz-build.txt" 2>&1 &
  fuzz_pid=$!
fi

if [[ " $stages " == *" asan "* ]]; then
  stage unit-asan "unit tests (ASan/UBSan)"
  ./build-asan/unit > "$log/unit-asan.txt" 2>&1
  grep -E '^FAIL|^  |ERROR' "$log/unit-asan.txt" | head -50; count "$log/unit-asan.txt"
fi

# One integration file in its own `node --test` (run by xargs below): its TAP output goes to
# DIR/NAME.tap, its wall time in milliseconds to DIR/times.
#   $1 = engine, $2 = directory, $3 = test file
run_file() {
  local name t0
  name=$(basename "$3" .test.mjs)
  t0=$(date +%s%N)
  CARAVEL_TEST_ENGINE=$1 node --test --test-timeout=600000 --test-reporter=tap "$3" \
    > "$2/$name.tap" 2>&1
  echo "$name $((($(date +%s%N) - t0) / 1000000))" >> "$2/times"
}
export -f run_file

# The files slowest first (a pass ends with its longest file: started last, it would run
# alone): by the times of the last green pass on this engine in this checkout (files it did
# not have first), else by this list (measured on both engines at load ~20: the files that
# took over 45 s, slowest first).
slow_first="clone-build sync billing-leader robot billing sync-worker relay-pool nostr-crosscheck
  members-refresh instances-workers api-validation server migrate"
order_files() { # $1 = engine; stdin: paths; stdout: the same paths, slowest first
  local hist=build-asan/integration-times-$1.txt
  awk -v hist="$hist" -v hints="$slow_first" '
    BEGIN { while ((getline line < hist) > 0) { split(line, f, " "); est[f[1]] = f[2]; known = 1 }
            if (!known) { n = split(hints, h, /[ \n]+/)
                          for (i = 1; i <= n; i++) if (h[i] != "") est[h[i]] = 1000 - i } }
    { name = $0; sub(/.*\//, "", name); sub(/\.test\.mjs$/, "", name)
      # a file the last pass did not have may be slow: it starts first
      printf "%d %s\n", (name in est) ? est[name] : (known ? 1000000 : 0), $0 }' |
    sort -k1,1nr -k2 | cut -d' ' -f2-
}

if [[ " $stages " == *" integration "* ]]; then
  stage integration "integration tests (ASan/UBSan binary)"
  export CARAVEL_BIN=${CARAVEL_BIN:-$PWD/build-asan/caravel}
  # --test-timeout: a test that hangs fails after 10 minutes instead of holding CI until its
  # limit. It also bounds each file as a whole (node runs a file as one test), and
  # clone-build.test.mjs builds a clone twice: ~140 s on a quiet machine, over 300 s on a
  # loaded one.
  # The passes run one after the other, each with the same two files at a time that the
  # suite's stability runs were made with: side by side (four at once) the CPU-bound files
  # timed out on a loaded machine (test/README.md, "Two database engines").
  # On PostgreSQL only the files that start the service, but not clone-build (it tests the
  # build) nor those that choose their engines themselves (migrate, instances,
  # instances-workers, billing-leader).
  jobs=${INTEGRATION_JOBS:-2}
  for engine in ${CARAVEL_TEST_ENGINES:-sqlite postgres}; do
    case $engine in
      sqlite) all=$(ls test/integration/*.test.mjs) ;;
      postgres) all=$(grep -l 'startServer(' test/integration/*.test.mjs |
        grep -v -e clone-build -e migrate -e instances -e billing-leader) ;;
      *) echo "  unknown engine '$engine' in CARAVEL_TEST_ENGINES (sqlite, postgres)"
        failed=$((failed + 1)); continue ;;
    esac
    if [ -n "${INTEGRATION_FILES:-}" ]; then
      # shellcheck disable=SC2086 # a list of paths; a folder stands for its test files
      all=$(for f in $INTEGRATION_FILES; do
        if [ -d "$f" ]; then ls "${f%/}"/*.test.mjs; else echo "$f"; fi; done)
    fi
    [ -n "$all" ] || continue
    dir=$log/integration-$engine
    mkdir -p "$dir"
    files=$(echo "$all" | order_files "$engine")
    t0=$SECONDS
    echo "$files" | xargs -d '\n' -P "$jobs" -n 1 bash -c 'run_file "$@"' _ "$engine" "$dir"
    secs=$((SECONDS - t0))
    pp=0; pf=0
    for f in $files; do
      name=${f##*/}; name=${name%.test.mjs}
      tally "$dir/$name.tap" || echo "  $name: no result line (counted as 1 failure)"
      pp=$((pp + tp)); pf=$((pf + tf))
      [ "$tf" -gt 0 ] && grep -E '^not ok|^# Subtest' "$dir/$name.tap" | grep -B1 '^not ok' |
        sed "s|^|  $name: |" | head -20
    done
    sort -k2,2nr "$dir/times" | awk '{printf "%s %d\n", $1, ($2 + 500) / 1000}' > "$dir/seconds"
    [ "$pf" -eq 0 ] && [ -z "${INTEGRATION_FILES:-}" ] && [ -d build-asan ] &&
      cp "$dir/seconds" "build-asan/integration-times-$engine.txt"
    echo "  engine $engine: $secs s ($(echo "$files" | wc -l) files, $jobs at a time; slowest:" \
      "$(head -8 "$dir/seconds" | tr '\n' ' ' | sed 's/ $//'))"
    passed=$((passed + pp)); failed=$((failed + pf))
    echo "  => $pp passed, $pf failed"
    stage_note="$stage_note${stage_note:+, }$engine $secs s"
  done
fi

if [ -n "$fuzz_pid" ]; then
  stage fuzz "fuzz (bounded; built alongside the tests)"
  renice_tree "$fuzz_pid"
  wait "$fuzz_pid" # a failed build is built and reported again just below
  bash test/fuzz/run.sh > "$log/fuzz.txt" 2>&1
  tail -5 "$log/fuzz.txt"; count "$log/fuzz.txt"
fi

if [ -n "$image_pid" ]; then
  stage image-wait "container image (scripts/image-check.mjs, started after the build)"
  renice_tree "$image_pid"
  wait "$image_pid"
  head -60 "$log/image.txt"; count "$log/image.txt"
  stage_note="the check took $((SECONDS - image_t0)) s from its start"
fi

if [ -n "$pg_dir" ]; then
  node test/integration/lib/postgres.mjs stop "$pg_dir" > "$log/postgres-stop.txt" 2>&1 ||
    { cat "$log/postgres-stop.txt"; failed=$((failed + 1)); }
fi

# ---- leftovers: processes of this session and files under TMPDIR ----
# ps's own line has this shell as parent; zombies are dead already (init reaps them lazily).
leftovers() {
  ps -e -o pid=,ppid=,sid=,stat=,args= > "$run/ps.txt"
  awk -v sid="$sid" '$3 == sid && $1 != sid && $2 != sid && $4 !~ /^Z/' "$run/ps.txt" > "$run/left.txt"
}
stage leftovers "leftover check"
leftovers
if [ -s "$run/left.txt" ]; then
  echo "  FAIL processes started by the suite are still running:"
  sed 's/^/    /' "$run/left.txt" | cut -c1-200
  awk '{print $1}' "$run/left.txt" | xargs -r kill -KILL 2>/dev/null
  failed=$((failed + 1))
else
  passed=$((passed + 1)); echo "  ok   no process left"
fi
if [ -n "$(ls -A "$TMPDIR")" ]; then
  echo "  FAIL temporary files left (TMPDIR=$TMPDIR):"
  ls -A "$TMPDIR" | sed 's/^/    /' | head -40
  failed=$((failed + 1))
else
  passed=$((passed + 1)); echo "  ok   no temporary file left"
fi
stage_end
rm -rf "$TMPDIR"
if [ "$failed" -eq 0 ]; then rm -rf "$run"; else echo "logs: $log"; fi
echo "times: $(printf '%s, ' "${stage_times[@]}" | sed 's/, $//'); total $SECONDS s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
