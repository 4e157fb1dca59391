#!/usr/bin/env bash
# The one test command (README: `make test`). Installs what is missing, builds with -Werror,
# then runs: C unit tests (plain and ASan/UBSan), integration tests (node:test against the
# real binary, ASan build), bounded libFuzzer runs. Last line: "N passed, N failed".
#   TEST_STAGES="unit integration"  run only some stages
#   INTEGRATION_FILES="test/integration/a.test.mjs ..."  only these integration files
#   FUZZ_SECONDS=30                 per fuzz target
#   CARAVEL_TEST_ENGINES="sqlite postgres"  the database engines the integration stage runs on
#                                   (default: sqlite; postgres is opt-in until the suite
#                                   passes on it). One throwaway PostgreSQL cluster serves the
#                                   whole run (test/integration/lib/postgres.mjs; its URL is
#                                   CARAVEL_TEST_PG_URL for the unit and integration tests).
#   CARAVEL_IMAGE_CHECK=1           also the container image check (`make image-check`: builds
#                                   the Dockerfile with podman and runs the image; root only).
#                                   It runs in the background from the start (mostly copying
#                                   and downloading) and is reported last.
#                                   The Dockerfile lint and a fresh-clone build with the
#                                   Dockerfile's steps always run (integration stage).
# Nothing may outlive the run: the suite runs in its own session with TMPDIR pointing into
# its own folder, and ends with a check that no process of that session is still alive and
# that the folder is empty. Either one is a failure that names the leftover (which is then
# killed or removed). Logs: kept and printed when something failed, removed otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
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

count() { # $1 = file with a "N passed, N failed" line or node's "# pass N/# fail N/# cancelled N"
  local p f
  p=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1 | awk '{print $1}')
  f=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1 | awk '{print $3}')
  if [ -z "$p" ]; then
    # node counts a test that timed out (or was cut short with its file) as "cancelled", not
    # "fail": it failed all the same.
    local c
    p=$(grep -E '^# pass [0-9]+' "$1" | tail -1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+' "$1" | tail -1 | awk '{print $3}')
    c=$(grep -E '^# cancelled [0-9]+' "$1" | tail -1 | awk '{print $3}')
    [ -n "$f" ] && f=$((f + ${c:-0}))
  fi
  if [ -z "$p" ]; then echo "  (no result line: counted as 1 failure)"; p=0; f=1; fi
  passed=$((passed + p)); failed=$((failed + ${f:-0}))
  echo "  => $p passed, ${f:-0} failed"
}

stage() { echo "== $1"; }

bash scripts/deps.sh all || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

stage build
if ! make -j2 WERROR=1 all > "$log/build.txt" 2>&1; then
  tail -40 "$log/build.txt"; echo "0 passed, 1 failed"; exit 1
fi

# Formatting: every C file as .clang-format says (Debian's clang-format 14; fix with
# scripts/check-format.sh --fix).
stage format
if bash scripts/check-format.sh > "$log/format.txt" 2>&1; then
  passed=$((passed + 1)); echo "  => 1 passed, 0 failed"
else
  head -20 "$log/format.txt"; failed=$((failed + 1)); echo "  => 0 passed, 1 failed"
fi

image_pid=
if [[ " $stages " == *" image "* ]]; then
  node scripts/image-check.mjs > "$log/image.txt" 2>&1 & # tools: deps.sh all above
  image_pid=$!
fi

# One PostgreSQL cluster for the run (initdb costs seconds; each test makes its own database).
pg_dir=
if [[ " $stages " == *" unit "* || " $stages " == *" asan "* || " $stages " == *" integration "* ]]; then
  stage "postgresql cluster"
  pg_dir=$TMPDIR/pg
  if CARAVEL_TEST_PG_URL=$(node test/integration/lib/postgres.mjs start "$pg_dir" 2> "$log/postgres-start.txt"); then
    export CARAVEL_TEST_PG_URL
    cat "$log/postgres-start.txt"
  else
    cat "$log/postgres-start.txt"; failed=$((failed + 1)); pg_dir=
  fi
fi

if [[ " $stages " == *" unit "* ]]; then
  stage "unit tests"
  (cd "$PWD" && ./build/unit) > "$log/unit.txt" 2>&1
  grep -E '^FAIL|^  ' "$log/unit.txt" | head -50; count "$log/unit.txt"
fi

if [[ " $stages " == *" asan "* || " $stages " == *" integration "* ]]; then
  stage "asan build"
  if ! make -j2 SAN=asan WERROR=1 all > "$log/asan-build.txt" 2>&1; then
    tail -40 "$log/asan-build.txt"; failed=$((failed + 1))
  fi
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [[ " $stages " == *" asan "* ]]; then
  stage "unit tests (ASan/UBSan)"
  ./build-asan/unit > "$log/unit-asan.txt" 2>&1
  grep -E '^FAIL|^  |ERROR' "$log/unit-asan.txt" | head -50; count "$log/unit-asan.txt"
fi

if [[ " $stages " == *" integration "* ]]; then
  stage "integration tests (ASan/UBSan binary)"
  export CARAVEL_BIN=${CARAVEL_BIN:-$PWD/build-asan/caravel}
  # --test-timeout: a test that hangs fails after 10 minutes instead of holding CI until its
  # limit. It also bounds each file as a whole (node runs a file as one test), and
  # clone-build.test.mjs builds a clone twice: ~140 s on a quiet machine, over 300 s on a
  # loaded one.
  # On PostgreSQL only the files that start the service, but not clone-build (it tests the
  # build) nor those that choose their engines themselves (migrate, instances, billing-leader).
  pg_files=$(grep -l 'startServer(' test/integration/*.test.mjs |
    grep -v -e clone-build -e migrate -e instances -e billing-leader | tr '\n' ' ')
  for engine in ${CARAVEL_TEST_ENGINES:-sqlite}; do
    files=${INTEGRATION_FILES:-test/integration/}
    [ "$engine" = postgres ] && [ -z "${INTEGRATION_FILES:-}" ] && files=$pg_files
    echo "  engine: $engine"
    t0=$SECONDS
    # shellcheck disable=SC2086 # a list of paths
    CARAVEL_TEST_ENGINE=$engine node --test --test-concurrency=2 --test-timeout=600000 \
      --test-reporter=tap --test-reporter-destination=stdout \
      --test-reporter=./test/integration/lib/file-times.mjs \
      --test-reporter-destination="$log/integration-$engine.times" \
      $files > "$log/integration-$engine.txt" 2>&1
    grep -E '^not ok|^# Subtest' "$log/integration-$engine.txt" | grep -B1 '^not ok' | head -60
    echo "  ($engine: $((SECONDS - t0)) s; slowest files:" \
      "$(head -8 "$log/integration-$engine.times" | tr '\n' ' ' | sed 's/ $//'))"
    count "$log/integration-$engine.txt"
  done
fi

if [[ " $stages " == *" fuzz "* ]] && [ -f test/fuzz/run.sh ]; then
  stage "fuzz (bounded)"
  bash test/fuzz/run.sh > "$log/fuzz.txt" 2>&1
  tail -5 "$log/fuzz.txt"; count "$log/fuzz.txt"
fi

if [ -n "$image_pid" ]; then
  stage "container image (scripts/image-check.mjs, started with the unit tests)"
  wait "$image_pid"
  head -60 "$log/image.txt"; count "$log/image.txt"
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
stage "leftover check"
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
rm -rf "$TMPDIR"
if [ "$failed" -eq 0 ]; then rm -rf "$run"; else echo "logs: $log"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
