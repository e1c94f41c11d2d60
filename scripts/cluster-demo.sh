#!/usr/bin/env bash
# Cluster mode on one machine (docs/CLUSTER.md): a three-server nats-server cluster (routes, JetStream, a store
# directory each) and one registry per simulated host (host-a, host-b, host-c: own endpoints, port range, data
# directory), all on 127.0.0.1. Registers a tool on host A, shows it from host C, then stops everything it started
# (by pid) and removes its directories. --keep leaves it all running and prints how to stop it.
# Ports: BASE..BASE+20 (BASE from --base-port, default 17400); leased ranges 30000-30999 per host.
set -euo pipefail
cd "$(dirname "$0")/.."

base=17400
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --base-port) base="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: scripts/cluster-demo.sh [--base-port N] [--keep]" >&2; exit 2 ;;
  esac
done
command -v nats-server >/dev/null || { echo "cluster-demo: nats-server is missing; run scripts/install-deps.sh" >&2; exit 1; }

dotnet build Onex.RegistryNode.Service -c Release -v quiet -nologo >/dev/null
dotnet build Onex.Cli -c Release -v quiet -nologo >/dev/null
registry_dll=Onex.RegistryNode.Service/bin/Release/net10.0/onex-registry.dll
onex() { dotnet Onex.Cli/bin/Release/net10.0/onex.dll "$@"; }

work=$(mktemp -d -t onex-cluster-demo-XXXXXX)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
if [[ $keep -eq 0 ]]; then trap stop_all EXIT; fi

routes=""
for i in 0 1 2; do routes+="nats-route://127.0.0.1:$((base + 10 + i)),"; done
urls=""
for i in 0 1 2; do
  mkdir -p "$work/nats$i"
  cat >"$work/nats$i/nats.conf" <<CONF
server_name: "demo-n$i"
cluster { name: "onex-demo", listen: "127.0.0.1:$((base + 10 + i))", routes: [ ${routes%,} ] }
CONF
  nats-server -js -a 127.0.0.1 -p $((base + i)) -sd "$work/nats$i/store" -c "$work/nats$i/nats.conf" >"$work/nats$i/log" 2>&1 &
  pids+=($!)
  urls+="nats://127.0.0.1:$((base + i)),"
done
urls=${urls%,}
echo "cluster-demo: nats-server cluster on $urls"

hosts=(host-a host-b host-c)
for i in 0 1 2; do
  host=${hosts[$i]}
  dotnet "$registry_dll" --endpoint tcp://127.0.0.1:$((base + 3 + 2 * i)) --pub-endpoint tcp://127.0.0.1:$((base + 4 + 2 * i)) \
    --http none --port-range $((30000 + 1000 * i))-$((30999 + 1000 * i)) --data-dir "$work/$host" \
    --cluster "$urls" --host-name "$host" --log-level Warning >"$work/$host.out" 2>"$work/$host.err" &
  pids+=($!)
done
for i in 0 1 2; do
  for _ in $(seq 1 300); do grep -q '^registry: cluster' "$work/${hosts[$i]}.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^registry: cluster' "$work/${hosts[$i]}.out" || { echo "cluster-demo: ${hosts[$i]} did not start:" >&2; cat "$work/${hosts[$i]}.err" >&2; exit 1; }
  echo "cluster-demo: ${hosts[$i]} registry on tcp://127.0.0.1:$((base + 3 + 2 * i))"
done

# A tool registered on host A, held while a sleeper lives.
sleep 60 & sleeper=$!
pids+=($sleeper)
onex tools register samples/tools/greet.tool.json --registry tcp://127.0.0.1:$((base + 3)) --until-pid $sleeper >"$work/tool.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^registered' "$work/tool.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/tool.out"
for _ in $(seq 1 100); do onex tools list --registry tcp://127.0.0.1:$((base + 7)) 2>/dev/null | grep -q greet && break; sleep 0.1; done
echo "cluster-demo: host C sees:"
onex describe --scope cluster --registry tcp://127.0.0.1:$((base + 7))

if [[ $keep -eq 1 ]]; then
  echo "cluster-demo: left running; stop with: kill ${pids[*]}; rm -rf $work"
fi
