#!/usr/bin/env bash
# Bounded libFuzzer runs (make fuzz; test/run.sh calls this). One target per
# test/fuzz/fuzz_NAME.c, each linked with every src/**/*.c except main.c, the embedded
# migrations and llhttp's C, built with clang -fsanitize=fuzzer,address,undefined.
#   FUZZ_SECONDS=20     seconds per target        FUZZ_TARGETS="fuzz_event"  only these
#   FUZZ_JOBS=2         parallel compile jobs
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
bash scripts/embed-migrations.sh migrations > "$OUT/gen/migrations.c" || exit 1
srcs=$(find src -name '*.c' ! -name main.c | sort)
srcs="$srcs $OUT/gen/migrations.c $(ls "$LLHTTP_SRC"/*.c 2>/dev/null)"
compile() { # $1 = source; object path mirrors it under $OUT/obj
  local o="$OUT/obj/$(echo "$1" | tr '/' '_').o"
  if [ ! -f "$o" ] || [ "$1" -nt "$o" ]; then
    $CC $CFLAGS -fsanitize=fuzzer-no-link -w -c -o "$o" "$1" || return 1
  fi
}
export -f compile; export CC CFLAGS OUT
if ! printf '%s\n' $srcs | xargs -P "$JOBS" -I{} bash -c 'compile {}'; then
  echo "library build failed"; echo "0 passed, 1 failed"; exit 1
fi
objs=$(for s in $srcs; do echo "$OUT/obj/$(echo "$s" | tr '/' '_').o"; done)

targets=${FUZZ_TARGETS:-$(ls test/fuzz/fuzz_*.c 2>/dev/null | xargs -n1 basename | sed 's/\.c$//')}
for t in $targets; do
  bin="$OUT/$t"
  if ! $CC $CFLAGS -fsanitize=fuzzer -Wall -Wextra -o "$bin" "test/fuzz/$t.c" $objs $LIBS; then
    echo "FAIL $t (build)"; failed=$((failed + 1)); continue
  fi
  max_len=$(sed -n 's|^// FUZZ_MAX_LEN: *\([0-9]*\).*|\1|p' "test/fuzz/$t.c" | head -1)
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/caravel-fuzz-$t-XXXXXX")
  [ -d "test/fuzz/seeds/$t" ] && cp -r "test/fuzz/seeds/$t/." "$corpus/"
  log="$OUT/$t.log"
  if (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "./$t" -max_total_time="$SECONDS_PER" \
        -max_len="${max_len:-65536}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus") > "$log" 2>&1; then
    echo "ok   $t ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}') runs)"
    passed=$((passed + 1))
  else
    echo "FAIL $t (see $log; crash input in $OUT/)"; tail -30 "$log"
    failed=$((failed + 1))
  fi
  rm -rf "$corpus"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
