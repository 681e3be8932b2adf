#!/usr/bin/env bash
# Regenerates reports/reference/: the loadgen runs the README quotes (about
# twenty minutes on 2 cores; the comparison with real Redis takes seven of them,
# the lab's runs ten). As root: the lab's runs build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p gossip-loadgen -p gossip-node
lg="${CARGO_TARGET_DIR:-target}/release/gossip-loadgen"
out=reports/reference
rm -rf "$out" && mkdir -p "$out"
"$lg" run --out "$out/demo-udp"
"$lg" run --scenario steady --world udp --nodes 48 --set profile.node_timeout_ms=2000 --out "$out/steady-udp-n48"
"$lg" run --scenario crash --trials 10 --out "$out/crash-sim-n100"
"$lg" run --scenario rumor --world sim --nodes 1000 --trials 200 --stop feedback-counter --k 1 --out "$out/rumor-n1000-fc-k1"
"$lg" sweep --scenario crash --nodes 100 \
  --sweep profile.node_timeout_ms=1000,2000,5000,15000 --sweep profile.random_ping_fanout=1,3 \
  --target detect_all_fail_s.p99=6 --target false_fails=0 --trials auto --budget 20m \
  --out "$out/sweep-crash-timeout-fanout"
# diff: the main job with node_timeout 3 s (its default) against 2 s, 6 trials a side.
"$lg" run --trials 6 --out "$out/diff-demo-nt3-nt2/nt3"
"$lg" run --trials 6 --set profile.node_timeout_ms=2000 --out "$out/diff-demo-nt3-nt2/nt2"
"$lg" diff "$out/diff-demo-nt3-nt2/nt3" "$out/diff-demo-nt3-nt2/nt2" > "$out/diff-demo-nt3-nt2/diff.md"
# diff: two runs of the same build (on a quiet host: "No change beyond noise").
"$lg" run --trials 6 --out "$out/diff-demo-same/a"
"$lg" run --trials 6 --out "$out/diff-demo-same/b"
"$lg" diff "$out/diff-demo-same/a" "$out/diff-demo-same/b" > "$out/diff-demo-same/diff.md"
# Needs redis-server (Debian package; scripts/test installs it).
"$lg" compare --scenario crash --nodes 48 --worlds udp,redis --set profile.node_timeout_ms=2000 --trials 3 \
  --out "$out/compare-redis-n48"
# The lab: 4 hosts as network namespaces (root; Debian iproute2 and nftables),
# an agent in each: the racks scenario at 4 x 50 nodes (4 x 250 overloads 2
# cores: the lab's datagrams cross two veths and a bridge) and the partition
# scenario across hosts.
"$lg" lab up --hosts 4 --name ref
trap '"$lg" lab down --name ref' EXIT
"$lg" run --scenario racks --hosts lab:ref --nodes 200 --out "$out/racks-lab4-n200"
"$lg" run --scenario partition --hosts lab:ref --trials 3 --out "$out/partition-lab4"
"$lg" run --scenario racks --hosts lab:ref --set profile.name=lean --set cluster.slots=250 \
  --set cluster.offload=true --set cluster.ramp_s=20 --out "$out/racks-lab4-n1000-lean"
"$lg" run --scenario crash --hosts lab:ref --nodes 1000 --set profile.node_timeout_ms=15000 \
  --set cluster.slots=250 --set cluster.offload=true --set cluster.ramp_s=30 \
  --set run.warmup_s=45 --set run.duration_s=40 --out "$out/crash-lab4-n1000-redis"
# The same 1,000 lean-profile nodes in the udp world and on 4 lab hosts.
lean1000=(--scenario crash --nodes 1000 --trials 3 --set profile.name=lean
  --set cluster.slots=250 --set cluster.offload=true --set cluster.ramp_s=10)
"$lg" run "${lean1000[@]}" --world udp --out "$out/lab4-vs-udp-n1000-lean/udp"
"$lg" run "${lean1000[@]}" --hosts lab:ref --out "$out/lab4-vs-udp-n1000-lean/lab"
"$lg" diff "$out/lab4-vs-udp-n1000-lean/udp" "$out/lab4-vs-udp-n1000-lean/lab" \
  > "$out/lab4-vs-udp-n1000-lean/diff.md"
# The swim profile (issue 13): a crash at N = 64 and 256 on real UDP nodes, a
# third of 300 nodes at once in the simulator, a stalling node with local
# health awareness off and on.
for n in 64 256; do
  "$lg" run --scenario crash --world udp --nodes $n --set profile.name=swim --trials 3 \
    --out "$out/swim-crash-udp-n$n"
done
# The fast points: at most memberlist "fast"'s bytes at half its detection.
"$lg" run --scenario crash --world udp --nodes 64 --set profile.name=swim \
  --set profile.probe_interval_ms=100 --set profile.probe_timeout_ms=70 --trials 3 \
  --out "$out/swim-crash-udp-n64-fast"
"$lg" run --scenario crash --world udp --nodes 256 --set profile.name=swim \
  --set profile.probe_interval_ms=120 --trials 3 --out "$out/swim-crash-udp-n256-fast"
# 5,000 nodes in one process, shared sockets with GSO/GRO, started over 30 s
# (6.3 GB of memory; both cores for the ramp).
"$lg" run --scenario crash --world udp --nodes 5000 --set profile.name=swim \
  --set cluster.slots=2500 --set cluster.offload=true --set cluster.ramp_s=30 \
  --set run.warmup_s=90 --set run.duration_s=30 --trials 2 --out "$out/swim-crash-udp-n5000"
"$lg" run --scenario mass-failure --world sim --trials 2 --out "$out/mass-failure-sim-n300"
"$lg" sweep --scenario slow-node --world udp --trials 1 --sweep profile.awareness_max=1,8 \
  --out "$out/slow-node-udp-n64"
"$lg" sweep --scenario crash --world sim --nodes 64 --set profile.name=swim \
  --sweep profile.probe_interval_ms=150,200,300,500 --sweep profile.indirect_probes=1,3 \
  --sweep profile.retransmit_mult=2,4 --trials 5 --out "$out/swim-pareto-sim-n64"
# User updates riding swim's datagrams (design §6): 40 single updates and a
# burst of 1,000, N = 256 on real UDP nodes.
for s in updates burst; do
  "$lg" run --scenario reports/swim/$s.toml --world udp --nodes 256 --set profile.name=swim \
    --trials 3 --out "$out/swim-$s-udp-n256"
done
# The burst's report.json holds 3,000 items seen at 255 nodes each (16 MB):
# kept gzipped (gunzip it for `gossip-loadgen report` or `diff`).
gzip -9f "$out/swim-burst-udp-n256/report.json"
