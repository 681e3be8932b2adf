#!/usr/bin/env bash
# One socket per node against shared sockets (with and without UDP GSO/GRO):
# the same 1,000-node Redis-profile cluster, one run each, back to back, on
# loopback. Writes reports/shared-socket/<date>.md with each run's command,
# its final summary line and the CPU time and max RSS from /usr/bin/time.
#
#   reports/shared-socket/compare.sh [NODES] [SECONDS] [THREADS]
#
# Every run stops by itself after SECONDS (default 120, of which the first
# 20 are the join ramp); THREADS I/O threads (default 2), each with one
# shared socket in the shared runs; ports 7000.. on 127.0.0.1-4 must be free.
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=${1:-1000}
seconds=${2:-120}
threads=${3:-2}
slots=$((nodes / threads))
[ $((slots * threads)) -eq "$nodes" ] || { echo "NODES must be a multiple of THREADS" >&2; exit 2; }
cargo build --release -q -p gossip-node --bin gossip-node
bin=${CARGO_TARGET_DIR:-target}/release/gossip-node
out=reports/shared-socket/$(date -u +%F)-n$nodes-t${3:-2}.md
common="--nodes $nodes --threads $threads --node-timeout-ms 15000 --ramp 20 --duration $seconds --rng-seed 11"
{
  echo "# One socket per node vs shared sockets, $nodes nodes, $threads I/O thread(s), $seconds s"
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, Linux $(uname -r); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- node || echo ' (node/ modified)')."
  echo "Command: \`reports/shared-socket/compare.sh $nodes $seconds $threads\`; load average at the start: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine)."
  echo
} > "$out"
run() {
  local name=$1; shift
  echo "== $name: gossip-node $*" >&2
  local log
  log=$(mktemp)
  /usr/bin/time -v "$bin" "$@" 2> "$log" || { cat "$log" >&2; exit 1; }
  local user sys rss summary
  user=$(grep 'User time' "$log" | awk '{print $NF}')
  sys=$(grep 'System time' "$log" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$log" | awk '{print $NF}')
  summary=$(grep 'stopped after' "$log" | sed 's/^gossip-node: //')
  {
    echo "## $name"
    echo
    echo "\`gossip-node $*\`"
    echo
    echo "- CPU: user $user s + system $sys s = $(echo "$user + $sys" | bc) s in $seconds s ($(echo "scale=3; ($user + $sys) / $seconds" | bc) cores)"
    echo "- max RSS: $((rss / 1024)) MB"
    echo "- $summary"
    echo
  } >> "$out"
  rm -f "$log"
}
run "one socket per node, io_uring" $common --ips 4 --datapath uring
run "one socket per node, mmsg" $common --ips 4 --datapath mmsg
run "$threads shared socket(s), mmsg" $common --slots "$slots" --datapath mmsg
run "$threads shared socket(s), mmsg with GSO/GRO" $common --slots "$slots" --offload
echo "wrote $out" >&2
