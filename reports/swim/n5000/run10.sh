#!/bin/bash
# 5,000 swim nodes, 30 s ramp, 10 minutes after the formation window; alive pairs and events every 5 s.
/usr/bin/time -v /work/main/target/release/gossip-node --profile swim --nodes 5000 --slots 2500 --offload --bind 127.0.0.1:17000 --ramp 30 --duration 700 --rng-seed 11 --metrics 127.0.0.1:19700 > /tmp/n5k10.out 2> /tmp/n5k10.err &
start=$(date +%s.%N)
sleep 2
while pgrep -f "gossip-node --profile swim --nodes 5000" > /dev/null; do
  t=$(echo "$(date +%s.%N) - $start" | bc)
  m=$(curl -s --max-time 2 127.0.0.1:19700/metrics)
  alive=$(echo "$m" | grep 'gossip_peers{state="alive"}' | awk '{print $2}')
  pfail=$(echo "$m" | grep 'gossip_peers{state="pfail"}' | awk '{print $2}')
  ev=$(echo "$m" | grep -E 'gossip_events_total\{kind="peer_(pfail|fail)"\}' | awk '{printf "%s ", $2}')
  echo "$t alive=$alive pfail=$pfail pfail_fail_events=$ev" >> /tmp/n5k10.poll
  sleep 5
done
