#!/usr/bin/env python3
"""Redis cluster-bus timing from the wire (docs/redis-fidelity.md §12).

    capture.py SECONDS OUT      record for SECONDS, write OUT, print the summary
    capture.py --read OUT       print the summary of an earlier recording

Records every cluster-bus message header that crosses `lo` (AF_PACKET, root
only) with the kernel's receive timestamp, then prints:

- PING-to-PONG round trips (a PING on a node's outbound link to the next PONG
  back on that link): the time Redis takes to answer, its event loop's queue
  included;
- each node's cron period (PINGs sent within 20 ms are one cron; the gap
  between crons divided by the whole ticks in it);
- how a second's PINGs fall into its crons: the share in the first cron after
  the wall-clock second starts, and of the PINGs to the node on base port +
  N - 1, the index of the cron they went in (0: the first).

The capture reads packets as fast as Python can and parses after the window.
It costs most of a core: at 48 nodes and more it misses some packets (the
count read is printed) and its load lengthens Redis's round trips a little.
"""
import collections
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
PING, PONG = 0, 1


def record(seconds, path):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    s.bind(("lo", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 27)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    raw, t0 = [], time.time()
    while time.time() - t0 < seconds:
        raw.append(s.recvmsg(200, 64))
    n = 0
    with open(path, "w") as out:
        for pkt, anc, _, addr in raw:
            # Loopback shows each packet twice; keep the receive side.
            if addr[2] == PACKET_OUTGOING or len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
            if ip[9] != 6 or not anc:
                continue
            sec, ns = struct.unpack("qq", anc[0][2][:16])
            tcp = ip[(ip[0] & 15) * 4:]
            sport, dport = struct.unpack("!HH", tcp[:4])
            pay = tcp[(tcp[12] >> 4) * 4:]
            if pay[:4] == b"RCmb" and len(pay) >= 14:
                port, kind = struct.unpack("!HH", pay[10:14])
                out.write(f"{sec + ns / 1e9:.6f} {port} {sport} {dport} {kind}\n")
                n += 1
    print(f"packets read {len(raw)}, cluster-bus messages {n}")


def load(path):
    rows = []
    for line in open(path):
        t, port, sport, dport, kind = line.split()
        rows.append((float(t), int(port), int(sport), int(dport), int(kind)))
    rows.sort()
    return rows


def q(v, p):
    return v[int(p * (len(v) - 1))]


def summary(rows):
    cports = {port + 10000 for _, port, _, _, _ in rows}
    # Round trips: a PING goes from an ephemeral port to the peer's bus port,
    # its PONG comes back on the same connection.
    pending, rtt = {}, []
    for t, _, sport, dport, kind in rows:
        if kind == PING and dport in cports:
            pending[(sport, dport)] = t
        elif kind == PONG and sport in cports and (dport, sport) in pending:
            rtt.append((t - pending.pop((dport, sport))) * 1e3)
    rtt.sort()
    if rtt:
        print("PING-to-PONG ms: n %d p10 %.2f p50 %.2f p75 %.2f p90 %.2f p95 %.2f p99 %.2f"
              % (len(rtt), q(rtt, .1), q(rtt, .5), q(rtt, .75), q(rtt, .9), q(rtt, .95), q(rtt, .99)))
    # Crons: a node's PINGs within 20 ms of the cron's first.
    crons = collections.defaultdict(list)  # port -> [[t, [dport...]]]
    for t, port, _, dport, kind in rows:
        if kind != PING:
            continue
        c = crons[port]
        if c and t - c[-1][0] < 0.02:
            c[-1][1].append(dport)
        else:
            c.append([t, [dport]])
    period = []
    for c in crons.values():
        for (a, _), (b, _) in zip(c, c[1:]):
            ticks = round((b - a) * 10)
            if ticks >= 1:
                period.append((b - a) * 1e3 / ticks)
    period.sort()
    if period:
        print("cron period ms: n %d p5 %.1f p25 %.1f p50 %.1f p75 %.1f p95 %.1f mean %.2f"
              % (len(period), q(period, .05), q(period, .25), q(period, .5), q(period, .75),
                 q(period, .95), sum(period) / len(period)))
    victim = max(crons) + 10000 if crons else None
    first = total = 0
    index = collections.Counter()
    for c in crons.values():
        by_second = collections.defaultdict(list)
        for t, dports in c:
            by_second[int(t)].append(dports)
        seconds = sorted(by_second)[1:-1]  # whole seconds only
        for s in seconds:
            first += len(by_second[s][0])
            total += sum(len(d) for d in by_second[s])
            for k, dports in enumerate(by_second[s]):
                index[k] += dports.count(victim)
    if total:
        print("share of a second's PINGs in its first cron: %.2f" % (first / total))
        print("PINGs to port %d by cron index: %s" % (victim - 10000, dict(sorted(index.items()))))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        summary(load(sys.argv[2]))
    elif len(sys.argv) == 3:
        record(float(sys.argv[1]), sys.argv[2])
        summary(load(sys.argv[2]))
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
