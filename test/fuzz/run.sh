#!/usr/bin/env bash
# Bounded libFuzzer runs (make fuzz; test/run.sh calls this). One target per
# test/fuzz/fuzz_NAME.c, each linked with every src/**/*.c except main.c, the embedded
# migrations and llhttp's C, built with clang -fsanitize=fuzzer,address,undefined.
#   FUZZ_SECONDS=20     seconds per target        FUZZ_TARGETS="fuzz_event"  only these
#   FUZZ_JOBS=2         parallel compile jobs, and targets run at once
#   FUZZ_BUILD_ONLY=1   build the targets, run none (test/run.sh builds them while other
#                       stages run; a target newer than its source and every object is not
#                       linked again)
# Seeds: test/fuzz/seeds/NAME/ (copied to a scratch corpus, so the committed seeds stay
# small). A target may set its input cap with a line "// FUZZ_MAX_LEN: N" (default 65536).
# Last line: "N passed, N failed" (a target passes when it ran without a crash).
set -uo pipefail
cd "$(dirname "$0")/../.."
CC=${FUZZ_CC:-clang}
SECONDS_PER=${FUZZ_SECONDS:-20}
JOBS=${FUZZ_JOBS:-2}
OUT=${FUZZ_BUILD:-build-fuzz}
LLHTTP_SRC=${LLHTTP_SRC:-/usr/share/llhttp}
LLHTTP_INC=${LLHTTP_INC:-/usr/share/include/llhttp}
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile) # the same libraries as the service build
passed=0; failed=0

if ! command -v "$CC" >/dev/null; then
  echo "clang not found"; echo "0 passed, 1 failed"; exit 1
fi
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $SAN -Isrc -I$LLHTTP_INC $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lmbedtls -lmbedx509 -lmbedcrypto -lwslay -lm -lpthread"
mkdir -p "$OUT/obj" "$OUT/gen"

# Library objects, compiled once with fuzzer instrumentation but without libFuzzer's main.
# Replaced only when it changed, so that an unchanged tree compiles and links nothing.
bash scripts/embed-migrations.sh migrations > "$OUT/gen/migrations.c.new" || exit 1
if cmp -s "$OUT/gen/migrations.c.new" "$OUT/gen/migrations.c"; then
  rm "$OUT/gen/migrations.c.new"
else
  mv "$OUT/gen/migrations.c.new" "$OUT/gen/migrations.c"
fi
srcs=$(find src -name '*.c' ! -name main.c | sort)
srcs="$srcs $OUT/gen/migrations.c $(ls "$LLHTTP_SRC"/*.c 2>/dev/null)"
compile() { # $1 = source; object path mirrors it under $OUT/obj
  $CC $CFLAGS -fsanitize=fuzzer-no-link -w -c -o "$OUT/obj/$(echo "$1" | tr '/' '_').o" "$1"
}
export -f compile; export CC CFLAGS OUT
# The sources to compile: no object yet, or the source or any header of the tree newer than
# the object (one find and one awk: a process per file took half a minute on a loaded machine).
# shellcheck disable=SC2046 # a list of folders
find src "$OUT/gen" "$OUT/obj" $(ls -d "$LLHTTP_SRC" 2>/dev/null) \
  \( -name '*.[ch]' -o -name '*.o' \) -printf '%T@ %p\n' > "$OUT/mtimes.txt"
stale=$(printf '%s\n' $srcs | awk -v obj="$OUT/obj/" '
  NR == FNR { sp = index($0, " "); f = substr($0, sp + 1); t[f] = substr($0, 1, sp - 1) + 0
              if (f ~ /\.h$/ && t[f] > newest_h) newest_h = t[f]; next }
  { o = $0; gsub("/", "_", o); o = obj o ".o"
    if (!(o in t) || t[$0] >= t[o] || newest_h >= t[o]) print $0 }' "$OUT/mtimes.txt" -)
if [ -n "$stale" ] && ! printf '%s\n' $stale | xargs -P "$JOBS" -I{} bash -c 'compile {}'; then
  echo "library build failed"; echo "0 passed, 1 failed"; exit 1
fi
objs=$(for s in $srcs; do echo "$OUT/obj/${s//\//_}.o"; done)

targets=${FUZZ_TARGETS:-$(ls test/fuzz/fuzz_*.c 2>/dev/null | xargs -n1 basename | sed 's/\.c$//')}
built=
for t in $targets; do
  bin="$OUT/$t"
  # shellcheck disable=SC2086 # a list of paths
  if [ ! -x "$bin" ] || [ -n "$(find "test/fuzz/$t.c" $objs -newer "$bin" | head -1)" ]; then
    if ! $CC $CFLAGS -fsanitize=fuzzer -Wall -Wextra -o "$bin" "test/fuzz/$t.c" $objs $LIBS; then
      echo "FAIL $t (build)"; failed=$((failed + 1)); rm -f "$bin"; continue
    fi
  fi
  built="$built $t"
done
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && built=

# One target's bounded run; its result line goes to $OUT/$1.result.
run_target() {
  local t=$1 max_len corpus log
  max_len=$(sed -n 's|^// FUZZ_MAX_LEN: *\([0-9]*\).*|\1|p' "test/fuzz/$t.c" | head -1)
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/caravel-fuzz-$t-XXXXXX")
  [ -d "test/fuzz/seeds/$t" ] && cp -r "test/fuzz/seeds/$t/." "$corpus/"
  log="$OUT/$t.log"
  if (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "./$t" -max_total_time="$SECONDS_PER" \
        -max_len="${max_len:-65536}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus") > "$log" 2>&1; then
    echo "ok   $t ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}') runs)"
  else
    echo "FAIL $t (see $log; crash input in $OUT/)"; tail -30 "$log"
  fi > "$OUT/$t.result"
  rm -rf "$corpus"
}

# The targets run FUZZ_JOBS at a time (each is one process on one core for its seconds).
running=0
for t in $built; do
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  rm -f "$OUT/$t.result"
  run_target "$t" &
  running=$((running + 1))
done
wait
for t in $built; do
  if [ ! -f "$OUT/$t.result" ]; then
    echo "FAIL $t (no result)"; failed=$((failed + 1))
  elif grep -q '^ok ' "$OUT/$t.result"; then
    cat "$OUT/$t.result"; passed=$((passed + 1))
  else
    cat "$OUT/$t.result"; failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
