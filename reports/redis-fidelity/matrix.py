#!/usr/bin/env python3
"""Gathers matrix.sh's compare reports into one markdown table (stdout).

Per point: messages and PINGs per node per second on both sides and their
ratio; FAIL at every node, p50 and the range over trials; false FAILs; the
load average before and after the point. A mark says whether the point meets
issue 18's bar: messages within +-10 %, FAIL p50 within +-15 % or each
side's p50 inside the other's range over trials, no false FAIL.
"""
import json
import os
import re
import sys

out = sys.argv[1]


def side(d, world):
    for s in d["compare"]["sides"]:
        if s["world"] == world:
            return s
    return None


def ping(s):
    for t in s["summary"].get("overhead_by_type", []):
        if t["kind"] == "ping":
            return t["msgs_per_node_s"]
    return None


def fails(s):
    return sorted(
        det["all_fail_s"]
        for t in s["trials"]
        for det in t.get("detections", [])
        if det.get("all_fail_s") is not None
    )


def load(path):
    try:
        m = re.search(r"load average: ([\d.]+)", open(path).read())
        return m.group(1) if m else "?"
    except OSError:
        return "?"


def fmt(x, p=1):
    return "–" if x is None else f"{x:.{p}f}"


rows = []
for name in sorted(os.listdir(out)):
    path = os.path.join(out, name, "report.json")
    m = re.fullmatch(r"(steady|crash)-n(\d+)-nt(\d+)", name)
    if not m or not os.path.exists(path):
        continue
    d = json.load(open(path))
    u, r = side(d, "udp"), side(d, "redis")
    if u is None or r is None:
        continue
    scen, n, nt = m.group(1), int(m.group(2)), int(m.group(3))
    um, rm = u["summary"]["msgs_per_node_s"]["mean"], r["summary"]["msgs_per_node_s"]["mean"]
    ratio = um / rm if rm else None
    ok = ratio is not None and 0.9 <= ratio <= 1.1
    uf, rf = fails(u), fails(r)
    fail_cell = "–"
    if scen == "crash":
        up = u["summary"].get("detect_all_fail_s", {}).get("p50")
        rp = r["summary"].get("detect_all_fail_s", {}).get("p50")
        if up and rp and uf and rf:
            close = abs(up / rp - 1) <= 0.15
            # Each side's p50 inside the other's range over trials.
            inside = rf[0] <= up <= rf[-1] and uf[0] <= rp <= uf[-1]
            ok = ok and (close or inside)
            fail_cell = (
                f"{up:.2f} ({uf[0]:.2f}–{uf[-1]:.2f}) / {rp:.2f} ({rf[0]:.2f}–{rf[-1]:.2f}) "
                f"= {up / rp:.2f}"
            )
        else:
            ok = False
            fail_cell = "missing"
    ff = (u["summary"]["false_fails"], r["summary"]["false_fails"])
    ok = ok and ff == (0, 0)
    loads = f"{load(os.path.join(out, name, 'uptime-before.txt'))}→{load(os.path.join(out, name, 'uptime-after.txt'))}"
    rows.append(
        (scen, nt, n, f"| {scen} | {nt} | {n} | {fmt(um)} ({fmt(ping(u))}) | {fmt(rm)} ({fmt(ping(r))}) "
         f"| {fmt(ratio, 2)} | {fail_cell} | {ff[0]} / {ff[1]} | {loads} | {'yes' if ok else '**no**'} |")
    )

print("# Issue 18 matrix: ours (udp) against Redis 7.0.15 (redis)\n")
print("Regenerate: `reports/redis-fidelity/matrix.sh` (one `gossip-loadgen compare` a point).")
print("Messages per node per second (PINGs in brackets); FAIL at every node p50 and the")
print("range over trials, ours / Redis = ratio; load average before→after the point.")
print("Within bar (issue 18): messages within ±10 %, FAIL p50 within ±15 % or each side's")
print("p50 inside the other's range, no false FAIL on either side.\n")
print("| scenario | node_timeout ms | N | ours msgs/s/node (PING) | Redis msgs/s/node (PING) | ratio | FAIL everywhere s | false FAIL ours / Redis | load | within bar |")
print("|---|---:|---:|---:|---:|---:|---|---|---|---|")
for _, _, _, line in sorted(rows, key=lambda r: (r[0] != "steady", r[1], r[2])):
    print(line)
