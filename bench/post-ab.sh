#!/usr/bin/env bash
# Interleaved A/B of POST /relays (the write path): bench/api-ab.sh post (see there).
#   bash bench/post-ab.sh BIN_A [BIN_B] [ROUNDS]     (BIN_B default build/caravel, ROUNDS 3)
exec bash "$(dirname "$0")/api-ab.sh" post "$@"
