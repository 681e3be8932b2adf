#!/bin/bash
for f in ${TMPDIR:-/tmp}/redis-fidelity-rc/*/redis.pid; do [ -f $f ] && kill $(cat $f) 2>/dev/null; done
