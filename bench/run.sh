#!/usr/bin/env bash
# Runs every benchmark once, after an optimized build (`make bench`):
#   1. each C bench (bench/NAME.c -> build/bench/NAME), except relay_soak, which needs a relay
#      and is driven by test/soak/relay-soak.mjs;
#   2. the HTTP API bench (bench/http-api.sh): nginx baseline, caravel routes under wrk, ratios
#      against the targets in docs/BENCHMARKS.md, RSS with 100,000 relays. It measures the BIP-340
#      verify baseline itself, right around its fresh-token run (the machine's load moves).
# The ASan leak check under load is separate (60 s + an ASan build): bash bench/leak-check.sh.
# Not part of the test suite; record numbers in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 all >/dev/null
out=$(mktemp /tmp/caravel-bench-out-XXXXXX)
trap 'rm -f "$out"' EXIT
for b in build/bench/*; do
  [ -f "$b" ] && [ -x "$b" ] || continue
  case "$(basename "$b")" in relay_soak) continue ;; esac
  echo "== $(basename "$b")"
  "$b" | tee "$out"
done
bash bench/http-api.sh
