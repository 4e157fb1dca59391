#!/usr/bin/env bash
# Runs every benchmark (bench/NAME.c -> build/bench/NAME) once, after an optimized build.
# Not part of the test suite; record numbers in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 all >/dev/null
for b in build/bench/*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done
