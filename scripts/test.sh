#!/usr/bin/env bash
# The project's test command (README "Run the tests"): installs what the tests need, restores, builds
# warning-free, runs every test, and ends with one line computed from the real results:
#   tests: N passed, M failed[, K skipped]
# Exits non-zero when a test failed, when the build failed, or when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "tests: 0 passed, 0 failed (dependency install failed)"; exit 1; }

results_dir="TestResults"
rm -rf "$results_dir"

dotnet restore OnexBus.sln || { echo "tests: 0 passed, 0 failed (restore failed)"; exit 1; }
dotnet build OnexBus.sln -c Release --no-restore || { echo "tests: 0 passed, 0 failed (build failed)"; exit 1; }

dotnet test Onex.Tests/Onex.Tests.csproj -c Release --no-build \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" \
  --results-directory "$results_dir" --blame-hang-timeout 5m "$@"
test_rc=$?

trx="$results_dir/results.trx"
if [ ! -f "$trx" ]; then
  echo "tests: 0 passed, 0 failed (no results file: the test run did not start)"
  exit 1
fi

counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
attr() { printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
total=$(attr total); passed=$(attr passed); failed=$(attr failed)
errored=$(attr error); timed_out=$(attr timeout); aborted=$(attr aborted)
executed=$(attr executed)
failed=$(( ${failed:-0} + ${errored:-0} + ${timed_out:-0} + ${aborted:-0} ))
skipped=$(( ${total:-0} - ${executed:-0} ))

line="tests: ${passed:-0} passed, ${failed} failed"
[ "$skipped" -gt 0 ] && line="$line, ${skipped} skipped"
echo "$line"

if [ "${passed:-0}" -eq 0 ] && [ "$failed" -eq 0 ]; then exit 1; fi
if [ "$failed" -gt 0 ] || [ "$skipped" -gt 0 ] || [ "$test_rc" -ne 0 ]; then exit 1; fi
exit 0
