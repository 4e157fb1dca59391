#!/usr/bin/env bash
# Fails (exit 1) naming every C file under src/, test/ and bench/ that clang-format (with the
# repository's .clang-format) would change. Fix with: scripts/check-format.sh --fix
# One clang-format process checks all the files (one per file took over a minute on a loaded
# machine, most of it process start-up); it names each line that differs, so the files are
# read from its messages.
set -uo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.c' 'src/*.h' 'test/*.c' 'test/*.h' 'bench/*.c' 2>/dev/null)
[ -n "$files" ] || files=$(find src test bench -name '*.[ch]' -not -path '*/node_modules/*')
if [ "${1:-}" = "--fix" ]; then
  echo "$files" | xargs clang-format -i
  exit 0
fi
out=$(echo "$files" | xargs clang-format --dry-run --Werror 2>&1)
rc=$?
bad=$(printf '%s\n' "$out" | sed -n 's/^\([^ :]*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' | sort -u)
if [ -n "$bad" ]; then
  printf 'not formatted: %s (scripts/check-format.sh --fix)\n' $bad
  exit 1
fi
if [ "$rc" -ne 0 ]; then # failed without naming a file (a bad .clang-format, a missing tool)
  printf '%s\n' "$out" | head -20
  exit 1
fi
echo "format: every C file matches .clang-format"
