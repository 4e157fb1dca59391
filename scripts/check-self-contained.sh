#!/usr/bin/env bash
# The repository stands alone: no file in it may read or cite something a person who clones
# it does not have (a sibling shared folder, outside notes or specification documents, issue
# numbers of a tracker that is not in the repository). Product rules are cited as
# "PRODUCT.md §N" (docs/PRODUCT.md). Prints every offending line and exits 1, or exits 0.
#   scripts/check-self-contained.sh [DIR]   (default: the repository this script is in)
# Searches the tracked files with git grep, or every file but build output and node_modules
# when DIR is not a git checkout. Run by test/integration/self-contained.test.mjs and, in a
# fresh clone, by test/integration/clone-build.test.mjs.
set -uo pipefail
dir=${1:-"$(dirname "$0")/.."}
cd "$dir" || exit 2

# Written so that this file does not match itself.
w=work
patterns=(
  '\.\./shared'             # a sibling folder of the checkout
  "/$w/shared"              # the same by absolute path
  'spec[ ]§'                # section numbers of a specification outside the repository
  'issue[ ]#?[0-9]'         # issue numbers of an outside tracker
  'notes/[a-z0-9-]+[.]md'   # notes outside the repository
)
regex=$(IFS='|'; echo "${patterns[*]}")

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  out=$(git grep -nIiE "$regex" -- . 2>&1)
else
  out=$(grep -rnIiE "$regex" --exclude-dir=.git --exclude-dir='build*' \
        --exclude-dir=node_modules --exclude-dir=vendor . 2>&1)
fi
if [ -n "$out" ]; then
  echo "$out"
  echo "check-self-contained: the lines above read or cite something outside the repository" \
       "(cite docs/PRODUCT.md §N, and say what an issue or note says instead of citing it)" >&2
  exit 1
fi
exit 0
