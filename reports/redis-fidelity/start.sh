#!/bin/bash
# usage: start.sh N  -> starts N redis-servers on 12000.., forms a cluster (all masters)
N=$1; base=12000
rm -rf ${TMPDIR:-/tmp}/redis-fidelity-rc/*; 
for ((i=0;i<N;i++)); do p=$((base+i)); d=${TMPDIR:-/tmp}/redis-fidelity-rc/$p; mkdir -p $d
cat > $d/redis.conf <<C
port $p
bind 127.0.0.1
daemonize yes
dir $d
logfile $d/redis.log
pidfile $d/redis.pid
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
cluster-require-full-coverage no
save ""
appendonly no
C
redis-server $d/redis.conf
done
sleep 1
hosts=""; for ((i=0;i<N;i++)); do hosts="$hosts 127.0.0.1:$((base+i))"; done
yes yes | redis-cli --cluster create $hosts --cluster-replicas 0 > ${TMPDIR:-/tmp}/redis-fidelity-rc/create.log 2>&1
echo created rc=$?
