#!/usr/bin/env bash
# Same-run A/B of `onex bench bus` between an earlier commit and this checkout (Onex.Benchmarks/README.md, "Comparing
# two commits"). Bus/raw ratios from different days are taken on different machines and loads, so they cannot show a
# regression by themselves; this builds BASELINE in a temporary git worktree, builds this checkout, runs the two benches
# one after the other, RUNS times each (taking turns at going first), and prints every run and the medians.
#
#   scripts/bench-bus-ab.sh [--runs N] [--backend zmq|ipc|memory|jetstream] BASELINE [-- more bench options]
#   e.g. scripts/bench-bus-ab.sh --runs 5 5ef8efd -- --round-trips 500
#
# BASELINE is any commit that has `onex bench bus --json` (2026-11-24 or later). Figures per run: throughput bus/raw,
# joined -> joined / raw (zmq only) and, where the commit reports it, the bus's CPU time per event over raw's (robust to
# machine load, where events/s is not), and the slow-consumer case: fast subscriptions beside a stalled one / alone,
# their unstalled events/s and CPU time per event, and stalled / unstalled CPU per event. Needs git, the .NET SDK and jq. Removes its worktree when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
backend=zmq
baseline=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) if [ -z "$baseline" ]; then baseline="$1"; shift; else echo "bench-bus-ab: unexpected argument '$1'" >&2; exit 2; fi ;;
  esac
done
[ -n "$baseline" ] || { echo "bench-bus-ab: name the baseline commit, e.g. scripts/bench-bus-ab.sh 5ef8efd" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench-bus-ab: needs jq (apt-get install jq)" >&2; exit 1; }
git rev-parse --verify --quiet "$baseline^{commit}" >/dev/null || { echo "bench-bus-ab: '$baseline' is not a commit here" >&2; exit 2; }

work=$(mktemp -d)
cleanup() { git worktree remove --force "$work/baseline" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
git worktree add --detach "$work/baseline" "$baseline" >/dev/null 2>&1

echo "bench-bus-ab: building the baseline ($(git rev-parse --short "$baseline")) and this checkout ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with uncommitted changes'))" >&2
(cd "$work/baseline" && dotnet build -c Release Onex.Cli/Onex.Cli.csproj >"$work/build-baseline.log" 2>&1) \
  || { echo "bench-bus-ab: the baseline did not build, see its log:" >&2; tail -20 "$work/build-baseline.log" >&2; exit 1; }
dotnet build -c Release Onex.Cli/Onex.Cli.csproj >"$work/build-current.log" 2>&1 \
  || { echo "bench-bus-ab: this checkout did not build:" >&2; tail -20 "$work/build-current.log" >&2; exit 1; }

# One bench run; prints "throughput-ratio joined-ratio cpu-ratio load slow-consumer-ratio unstalled-events/s
# unstalled-cpu-µs/event stalled/unstalled-cpu" (a dash where the commit does not report it).
bench() {
  local dir="$1" out
  out=$(cd "$dir" && dotnet Onex.Cli/bin/Release/net10.0/onex.dll bench bus --backend "$backend" --json --timeout 900 "${extra[@]}" 2>/dev/null) || { echo "- - - - - - - -"; return; }
  jq -r 'def r2: . * 100 | round / 100 | tostring;
    [
      (.throughput.ratio | r2),
      ((.throughputComparisons // [])[0].rawRatio // null | if . == null then "-" else r2 end),
      (if .throughput.bus.cpuMicrosecondsPerEvent then (.throughput.bus.cpuMicrosecondsPerEvent / .throughput.raw.cpuMicrosecondsPerEvent | r2) else "-" end),
      (.machine.loadAverageBefore // "-" | split(" ")[0]),
      (.slowConsumer.ratio // null | if . == null then "-" else r2 end),
      (.slowConsumer.unstalled.eventsPerSecond // null | if . == null then "-" else round | tostring end),
      (.slowConsumer.unstalled.cpuMicrosecondsPerEvent // null | if . == null or . == 0 then "-" else r2 end),
      (if (.slowConsumer.unstalled.cpuMicrosecondsPerEvent // 0) > 0 then (.slowConsumer.stalled.cpuMicrosecondsPerEvent / .slowConsumer.unstalled.cpuMicrosecondsPerEvent | r2) else "-" end)
    ] | join(" ")' <<<"$out"
}

printf '%-4s %-9s %-10s %-10s %-10s %-6s %-6s %-12s %-10s %s\n' run variant bus/raw joined/raw cpu-b/r load slow unstalled/s cpu-µs-uns cpu-s/u
base_file="$work/baseline.txt"; cur_file="$work/current.txt"
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) -eq 1 ]; then order="baseline current"; else order="current baseline"; fi
  for variant in $order; do
    if [ "$variant" = baseline ]; then line=$(bench "$work/baseline"); echo "$line" >>"$base_file"
    else line=$(bench "$PWD"); echo "$line" >>"$cur_file"; fi
    read -r t j c l sc su sp sr <<<"$line"
    printf '%-4s %-9s %-10s %-10s %-10s %-6s %-6s %-12s %-10s %s\n' "$i" "$variant" "$t" "$j" "$c" "$l" "$sc" "$su" "$sp" "$sr"
  done
done

median() { grep -v '^-$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
echo
for variant in baseline current; do
  file="$base_file"; [ "$variant" = current ] && file="$cur_file"
  printf 'median %-9s bus/raw %s, joined/raw %s, cpu bus/raw %s, slow consumer %s, unstalled %s/s at %s µs CPU/event, stalled/unstalled CPU %s\n' "$variant" \
    "$(cut -d' ' -f1 "$file" | median)" "$(cut -d' ' -f2 "$file" | median)" "$(cut -d' ' -f3 "$file" | median)" \
    "$(cut -d' ' -f5 "$file" | median)" "$(cut -d' ' -f6 "$file" | median)" "$(cut -d' ' -f7 "$file" | median)" "$(cut -d' ' -f8 "$file" | median)"
done
