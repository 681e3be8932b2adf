#!/bin/sh
# Issue 18's matrix: ours (udp world) against real Redis 7 (redis world), one
# `gossip-loadgen compare` per point, N in {6, 24, 48, 96} x node_timeout in
# {1000, 2000} ms, steady and crash; then matrix.py gathers the points into
# matrix.md. Each point's `uptime` goes beside its report: Redis's figures
# fall when other work shares the cores.
#
#   reports/redis-fidelity/matrix.sh [OUT]      (default reports/reference/redis-matrix)
#
# Environment: NODES, TIMEOUTS, SCENARIOS (space-separated), TRIALS (crash
# trials, default 8), STEADY_S / CRASH_S (measured windows, default 30 / 20),
# LOADGEN (default: cargo run --release -p gossip-loadgen --).
# Points already reported are skipped, so an interrupted matrix resumes.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-reports/reference/redis-matrix}
NODES=${NODES:-48 96 24 6}
TIMEOUTS=${TIMEOUTS:-2000 1000}
SCENARIOS=${SCENARIOS:-steady crash}
TRIALS=${TRIALS:-8}
STEADY_S=${STEADY_S:-30}
CRASH_S=${CRASH_S:-20}
LOADGEN=${LOADGEN:-cargo run --release -q -p gossip-loadgen --}
mkdir -p "$OUT"
for t in $TIMEOUTS; do
  for n in $NODES; do
    for s in $SCENARIOS; do
      dir="$OUT/$s-n$n-nt$t"
      [ -f "$dir/report.json" ] && continue
      case $s in
        crash) extra="--trials $TRIALS --duration $CRASH_S" ;;
        *) extra="--duration $STEADY_S" ;;
      esac
      rm -rf "$dir"
      mkdir -p "$dir"
      uptime > "$dir/uptime-before.txt"
      # shellcheck disable=SC2086
      $LOADGEN compare --scenario "$s" --nodes "$n" --worlds udp,redis \
        --set profile.node_timeout_ms="$t" $extra --out "$dir" --force > "$dir/stdout.txt"
      uptime > "$dir/uptime-after.txt"
    done
  done
done
python3 reports/redis-fidelity/matrix.py "$OUT" > "$OUT/matrix.md"
cat "$OUT/matrix.md"
