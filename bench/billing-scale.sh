#!/usr/bin/env bash
# One billing period at 1k / 10k / 100k relays (or the sizes given): wallet requests, CPU and
# time of the service, API write latency during the invoice pass. Optimized build, the test
# relay and wallets of the integration suite (test/node_modules: cd test && npm ci).
#   bash bench/billing-scale.sh [1000 10000 100000]
# Not part of the test suite; record the table in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 build/caravel >/dev/null
CARAVEL_BIN="${CARAVEL_BIN:-$PWD/build/caravel}" exec node bench/billing-scale.mjs "$@"
