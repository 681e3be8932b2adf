#!/usr/bin/env python3
"""Back-of-envelope discrete-event model of Redis 7.0 cluster-bus membership
rules (clusterCron / clusterSendPing / clusterProcessPacket /
clusterProcessGossipSection / markNodeAsFailingIfNeeded) versus gossip's Redis
profile.  The ONLY switch between the two is how a gossip entry's PONG time is
encoded:

  enc='redis' : sender puts pong_received/1000 (absolute wall-clock second,
                floored); receiver adopts sec*1000 if > own and <= now+500.
  enc='ours'  : sender puts ceil((now-pong)/1000 s)*1000 ms as an age;
                receiver adopts now - age if > own.

Everything else is the same rule set (100 ms cron with a per-node phase,
random ping every 10th tick among 5 samples, ping when no ping in flight and
now - pong > NT/2, PFAIL when min(now-ping_sent, now-data_received) > NT,
N/10 (min 3) random entries + all PFAIL, failure reports valid 2 NT, FAIL at
reports+1 >= N/2+1, FAIL broadcast).  Times in ms (floats); loopback latency L.
"""
import heapq, math, random, sys, statistics

def run(N, enc, NT=2000.0, L=0.5, warm=10000.0, meas=30000.0, crash=False,
        seed=1, jitter=0.0, resend=None, extra=0.0, tj=0.0, pfail_lag=False):
    rnd = random.Random(seed)
    half = NT / 2
    wanted = max(3, N // 10)
    wanted = min(wanted, N - 2)
    # per observer a, per peer b
    pong = [[rnd.uniform(-1000, 0) for _ in range(N)] for _ in range(N)]
    ping_sent = [[0.0] * N for _ in range(N)]   # 0 = none (Redis convention)
    data = [[0.0] * N for _ in range(N)]
    pfail = [[False] * N for _ in range(N)]
    fail = [[False] * N for _ in range(N)]
    reports = [[dict() for _ in range(N)] for _ in range(N)]  # a,b -> {sender: t}
    last_tx = [[0.0] * N for _ in range(N)]
    pfail_list = [set() for _ in range(N)]
    pfail_snap = [0] * N  # Redis stats_pfail_nodes, counted at cron start
    alive = [True] * N
    phase = [rnd.uniform(0, 100) for _ in range(N)]
    iteration = [rnd.randrange(10) for _ in range(N)]
    ev = []
    seq = 0
    def push(t, kind, *args):
        nonlocal seq
        seq += 1
        heapq.heappush(ev, (t, seq, kind, args))
    for i in range(N):
        push(phase[i], 'tick', i)
    pings = 0; pongs = 0
    end = warm + meas
    crash_at = None; victim = None
    if crash:
        crash_at = warm + rnd.uniform(0, 1000)
        victim = N - 1
        push(crash_at, 'crash')
        end = crash_at + 15000
    first_pfail = {}; fail_at = {}

    def live_reports(a, b, now):
        r = reports[a][b]
        for s in [s for s, t in r.items() if now - t > 2 * NT]:
            del r[s]
        return len(r)

    def gossip(a, to, now):
        ents = []
        picked = set()
        fresh = N - 2
        tries = wanted * 3
        while fresh > 0 and len(ents) < wanted and tries > 0:
            tries -= 1
            k = rnd.randrange(N)
            if k == a or pfail[a][k] or k in picked:
                continue
            picked.add(k)
            ents.append(entry(a, k, now))
            fresh -= 1
        lim = pfail_snap[a] if pfail_lag else len(pfail_list[a])
        for k in sorted(pfail_list[a])[:lim]:
            ents.append(entry(a, k, now))
        return ents

    def entry(a, k, now):
        bad = pfail[a][k] or fail[a][k]
        if enc == 'redis':
            v = math.floor(pong[a][k]) // 1000
        else:
            age = max(0, math.floor(now - pong[a][k]))
            v = -(-age // 1000) * 1000
        return (k, v, bad)

    def send(a, b, kind, now):
        nonlocal pings, pongs
        if now >= warm and now < end and not crash:
            if kind == 'PING': pings += 1
            elif kind == 'PONG': pongs += 1
        if kind == 'PING':
            ping_sent[a][b] = now   # Redis overwrites on every PING (outbound link)
            last_tx[a][b] = now
        ents = gossip(a, b, now)
        if alive[b]:
            push(now + L * (1 + jitter * rnd.random()), 'msg', a, b, kind, ents)

    def mark_fail_if_needed(a, b, now):
        if not pfail[a][b] or fail[a][b]:
            return
        if live_reports(a, b, now) + 1 >= N // 2 + 1:
            pfail[a][b] = False; pfail_list[a].discard(b)
            fail[a][b] = True
            if crash and b == victim and a not in fail_at:
                fail_at[a] = now - crash_at
            for c in range(N):
                if c != a and c != b and alive[c]:
                    push(now + L, 'failmsg', a, c, b)

    while ev:
        t, _, kind, args = heapq.heappop(ev)
        if t > end:
            break
        if kind == 'crash':
            alive[victim] = False
            continue
        if kind == 'tick':
            a = args[0]
            if not alive[a]:
                continue
            push(t + 100 + extra + (tj * rnd.random()), 'tick', a)
            iteration[a] += 1
            pfail_snap[a] = len(pfail_list[a])
            if iteration[a] % 10 == 0:
                best = None
                for _ in range(5):
                    k = rnd.randrange(N)
                    if k == a or ping_sent[a][k] != 0:
                        continue
                    if best is None or pong[a][k] < pong[a][best]:
                        best = k
                if best is not None:
                    send(a, best, 'PING', t)
            for b in range(N):
                if b == a:
                    continue
                if ping_sent[a][b] == 0 and t - pong[a][b] > half:
                    send(a, b, 'PING', t)
                    continue
                if ping_sent[a][b] == 0:
                    continue
                if resend is not None and t - last_tx[a][b] >= resend:
                    # ours: resend while in flight, keep ping_sent
                    keep = ping_sent[a][b]
                    send(a, b, 'PING', t)
                    ping_sent[a][b] = keep
                nd = min(t - ping_sent[a][b], t - data[a][b])
                if nd > NT and not pfail[a][b] and not fail[a][b]:
                    pfail[a][b] = True; pfail_list[a].add(b)
                    if crash and b == victim and a not in first_pfail:
                        first_pfail[a] = t - crash_at
            continue
        if kind == 'failmsg':
            a, c, b = args
            if not alive[c]:
                continue
            data[c][a] = t
            if not fail[c][b]:
                fail[c][b] = True
                if pfail[c][b]:
                    pfail[c][b] = False; pfail_list[c].discard(b)
                if crash and b == victim and c not in fail_at:
                    fail_at[c] = t - crash_at
            continue
        # message
        a, b, mkind, ents = args
        if not alive[b]:
            continue
        data[b][a] = t
        if mkind == 'PING':
            send(b, a, 'PONG', t)
        else:
            pong[b][a] = t
            ping_sent[b][a] = 0
            if pfail[b][a]:
                pfail[b][a] = False; pfail_list[b].discard(a)
        for (k, v, bad) in ents:
            if k == b:
                continue
            if bad:
                reports[b][k][a] = t
                mark_fail_if_needed(b, k, t)
                continue
            reports[b][k].pop(a, None)
            if ping_sent[b][k] == 0 and live_reports(b, k, t) == 0:
                if enc == 'redis':
                    pt = v * 1000
                    if pt <= t + 500 and pt > pong[b][k]:
                        pong[b][k] = pt
                else:
                    pt = t - v
                    if pt > pong[b][k]:
                        pong[b][k] = pt
    if crash:
        live = [i for i in range(N) if i != victim]
        return first_pfail, fail_at, live
    return pings / N / (meas / 1000), pongs / N / (meas / 1000)

if __name__ == '__main__':
    mode = sys.argv[1]
    if mode == 'steady':
        for N in (48, 96):
            for enc in ('redis', 'ours'):
                p, q = run(N, enc, seed=7)
                print(f"N={N} enc={enc}: PING/node/s={p:.1f} PONG/node/s={q:.1f} msgs={p+q:.1f}")
    elif mode == 'crash':
        trials = int(sys.argv[2]) if len(sys.argv) > 2 else 10
        for N in (48, 96):
            for enc in ('redis', 'ours'):
                fp, fa, allf = [], [], []
                for s in range(trials):
                    first_pfail, fail_at, live = run(N, enc, crash=True, seed=100 + s,
                                                     resend=(1000.0 if enc == 'ours' else None))
                    fp.append(min(first_pfail.values()) / 1000)
                    if len(fail_at) == len(live):
                        allf.append(max(fail_at.values()) / 1000)
                        fa.append(min(fail_at.values()) / 1000)
                print(f"N={N} enc={enc}: first PFAIL p50={statistics.median(fp):.2f}s "
                      f"first FAIL p50={statistics.median(fa):.2f}s "
                      f"FAIL everywhere p50={statistics.median(allf):.2f}s max={max(allf):.2f}s "
                      f"({len(allf)}/{trials} trials)")
