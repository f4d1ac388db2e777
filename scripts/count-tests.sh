#!/usr/bin/env bash
# Runs a test command and fails when it passed without running a single test (a wasm32 run
# that silently finds no tests would otherwise look green).
set -uo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$out" | head -n1)
if [ -z "$passed" ] || [ "$passed" -eq 0 ]; then
  echo "error: no test ran in: $*" >&2
  exit 1
fi
