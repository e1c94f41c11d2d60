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

# One registry node for the whole run (docs/TESTING.md): every test process leases its ports from it, so test
# processes running side by side never get the same port. It binds OS-chosen loopback ports and prints them; they
# are exported for `dotnet test`. A caller that already exports ONEX_REGISTRY_ENDPOINT keeps its own registry.
registry_pid=""
registry_out=""
stop_registry() {
  if [ -n "$registry_pid" ] && kill -0 "$registry_pid" 2>/dev/null; then
    kill -TERM "$registry_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$registry_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$registry_pid" 2>/dev/null && kill -KILL "$registry_pid" 2>/dev/null
    wait "$registry_pid" 2>/dev/null
  fi
  [ -n "$registry_out" ] && rm -f "$registry_out" "$registry_out.err"
}
trap stop_registry EXIT
if [ -z "${ONEX_REGISTRY_ENDPOINT:-}" ]; then
  registry_out=$(mktemp)
  dotnet Onex.RegistryNode.Service/bin/Release/net10.0/onex-registry.dll \
    --endpoint tcp://127.0.0.1:0 --pub-endpoint tcp://127.0.0.1:0 --http none --port-range 20000-24999 --store memory --log-level Warning \
    >"$registry_out" 2>"$registry_out.err" &
  registry_pid=$!
  router=""; pub=""
  for _ in $(seq 1 300); do  # up to 30 s
    router=$(sed -n 's/^registry: router //p' "$registry_out")
    pub=$(sed -n 's/^registry: pub //p' "$registry_out")
    { [ -n "$router" ] && [ -n "$pub" ]; } && break
    kill -0 "$registry_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$router" ] || [ -z "$pub" ]; then
    cat "$registry_out.err" >&2
    echo "tests: 0 passed, 0 failed (the shared test registry did not start)"
    exit 1
  fi
  export ONEX_REGISTRY_ENDPOINT="$router" ONEX_REGISTRY_PUB_ENDPOINT="$pub"
  echo "test registry: $router (broadcasts on $pub), pid $registry_pid"
fi

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

# The names and first message lines of failed tests, repeated here so the end of the output says what failed.
if [ "$failed" -gt 0 ]; then
  echo "failed tests:"
  awk '
    function unescape(s) {
      gsub(/&#xD;/, "", s); gsub(/&#xA;/, " ", s); gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s)
      gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&amp;/, "\\&", s); return s
    }
    /<UnitTestResult / {
      inres = ($0 ~ /outcome="(Failed|Error|Timeout|Aborted)"/)
      if (inres) { name = $0; sub(/.*testName="/, "", name); sub(/".*/, "", name); print "  " unescape(name); shown = 0 }
      if ($0 ~ /\/>[[:space:]]*$/) inres = 0
      next
    }
    inres && /<Message>/ { inmsg = 1; sub(/.*<Message>/, "") }
    inres && inmsg {
      text = $0; done = sub(/<\/Message>.*/, "", text)
      if (shown < 6 && text ~ /[^[:space:]]/) { print "    " substr(unescape(text), 1, 300); shown++ }
      if (done) inmsg = 0
    }
    /<\/UnitTestResult>/ { inres = 0; inmsg = 0 }
  ' "$trx"
fi

line="tests: ${passed:-0} passed, ${failed} failed"
[ "$skipped" -gt 0 ] && line="$line, ${skipped} skipped"
echo "$line"

if [ "${passed:-0}" -eq 0 ] && [ "$failed" -eq 0 ]; then exit 1; fi
if [ "$failed" -gt 0 ] || [ "$skipped" -gt 0 ] || [ "$test_rc" -ne 0 ]; then exit 1; fi
exit 0
