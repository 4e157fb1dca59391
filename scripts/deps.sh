#!/usr/bin/env bash
# Installs what the build (and, with "all", the tests) need on Debian 12, only when missing.
#   scripts/deps.sh build   C toolchain and libraries
#   scripts/deps.sh all     also the test peers (npm), clang/libFuzzer, nginx, wrk, chromium
#                           (browser test), PostgreSQL (the tests start their own throwaway
#                           server as the unprivileged system user caravel-test, made here
#                           when missing: postgres refuses to run as root); with
#                           CARAVEL_IMAGE_CHECK=1 also the image tools
#   scripts/deps.sh image   the image check's tools only (make image-check): podman, buildah,
#                           runc, uidmap (with their recommended packages, as the check was
#                           set up), debootstrap for the base image
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-build}
want=(build-essential pkg-config libuv1-dev libsqlite3-dev libsecp256k1-dev libcjson-dev
      libcurl4-openssl-dev libwslay-dev libmbedtls-dev node-llhttp libpq-dev ca-certificates)
if [ "$mode" = all ]; then
  want+=(nodejs npm clang libclang-rt-14-dev clang-format nginx-light wrk openssl sqlite3
         valgrind chromium postgresql)
fi
image=()
if [ "$mode" = image ] || { [ "$mode" = all ] && [ "${CARAVEL_IMAGE_CHECK:-0}" = 1 ]; }; then
  image=(podman buildah runc uidmap)
  want+=(debootstrap)
  [ "$mode" = image ] && want=(nodejs debootstrap)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # node/npm may come from elsewhere on the machine; don't fight an existing install.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    tmp=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done
    missing=("${tmp[@]+"${tmp[@]}"}")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
missing=()
for p in "${image[@]+"${image[@]}"}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
# The tests' PostgreSQL runs as this user when they run as root (initdb and postgres refuse
# root); test/integration/lib/postgres.mjs names it too.
if [ "$mode" = all ] && [ "$(id -u)" = 0 ] && ! getent passwd caravel-test >/dev/null; then
  echo "deps: creating the system user caravel-test (tests' PostgreSQL)" >&2
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin caravel-test
fi
if [ "$mode" != build ] && [ ! -d test/node_modules/nostr-tools ]; then
  echo "deps: installing test peers (npm ci in test/)" >&2
  (cd test && npm ci --no-audit --no-fund >&2)
fi
