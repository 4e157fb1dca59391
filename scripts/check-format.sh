#!/usr/bin/env bash
# Fails (exit 1) naming every C file under src/, test/ and bench/ that clang-format (with the
# repository's .clang-format) would change. Fix with: scripts/check-format.sh --fix
set -uo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.c' 'src/*.h' 'test/*.c' 'test/*.h' 'bench/*.c' 2>/dev/null)
[ -n "$files" ] || files=$(find src test bench -name '*.[ch]' -not -path '*/node_modules/*')
if [ "${1:-}" = "--fix" ]; then
  echo "$files" | xargs clang-format -i
  exit 0
fi
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (scripts/check-format.sh --fix)"
    bad=1
  fi
done
[ "$bad" = 0 ] && echo "format: every C file matches .clang-format"
exit "$bad"
