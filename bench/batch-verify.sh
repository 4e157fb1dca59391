#!/usr/bin/env bash
# BIP-340 batch verification against one verification at a time (bench/batch-verify/
# batch_verify.c): the sources of the libsecp256k1 version installed (Debian's source package,
# fetched with apt into a temporary folder; the system's apt lists and cache are not touched),
# compiled with the program into one translation unit. Needs gcc and network access to Debian.
#   bash bench/batch-verify.sh
# Not part of the test suite; docs/BENCHMARKS.md ("Session 10") has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/caravel-batch-verify-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
VER=$(dpkg-query -W -f '${source:Version}' libsecp256k1-dev)
mkdir -p "$TMP/lists/partial" "$TMP/cache/archives/partial" "$TMP/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
  "http://deb.debian.org/debian $(. /etc/os-release && echo "$VERSION_CODENAME") main" >"$TMP/sources.list"
APT=(-o "Dir::Etc::sourcelist=$TMP/sources.list" -o "Dir::Etc::sourceparts=-"
     -o "Dir::State::Lists=$TMP/lists" -o "Dir::Cache=$TMP/cache" -o "APT::Sandbox::User=root")
apt-get "${APT[@]}" -qq update
(cd "$TMP/src" && apt-get "${APT[@]}" -qq source --download-only "libsecp256k1=$VER" >/dev/null)
tar -xf "$TMP"/src/libsecp256k1_*.orig.tar.* -C "$TMP/src"
SRC=$(find "$TMP/src" -maxdepth 1 -type d -name 'libsecp256k1-*' | head -1)
echo "libsecp256k1 $VER, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
gcc -O2 -w -I"$SRC/src" -I"$SRC" -I"$SRC/include" bench/batch-verify/batch_verify.c -o "$TMP/bv"
"$TMP/bv"
