from sim import run
import sys, statistics
variants = {
 'V0 ours as is (ceil-age, tick exactly 100 ms, no pfail lag)': dict(enc='ours', extra=0, tj=0, lag=False, resend=1000.0),
 'V1 + Redis second-floor encoding only': dict(enc='redis', extra=0, tj=0, lag=False, resend=1000.0),
 'V2 + Redis encoding + tick re-armed after cron (100.1+U(0,0.2) ms)': dict(enc='redis', extra=0.1, tj=0.2, lag=False, resend=1000.0),
 'V3 = V2 + pfail lag (stats_pfail_nodes)': dict(enc='redis', extra=0.1, tj=0.2, lag=True, resend=1000.0),
 'V4 Redis as measured here (period 100.8+U(0,1) @48, 103.7+U(0,5) @96, lag)': dict(enc='redis', extra=None, tj=None, lag=True, resend=None),
}
which = sys.argv[1]
v = variants[[k for k in variants if k.startswith(which)][0]]
name=[k for k in variants if k.startswith(which)][0]
out=[]
for N in (48,96):
    extra = v['extra'] if v['extra'] is not None else (0.8 if N==48 else 3.7)
    tj = v['tj'] if v['tj'] is not None else (1.0 if N==48 else 5.0)
    p,_ = run(N, v['enc'], seed=11, meas=20000, extra=extra, tj=tj)
    fa=[]
    for s in range(12):
        fp, fail_at, live = run(N, v['enc'], crash=True, seed=500+s, extra=extra, tj=tj, resend=v['resend'], pfail_lag=v['lag'])
        fa.append(max(fail_at.values())/1000)
    out.append((p, statistics.median(fa), min(fa), max(fa)))
print(f"{name}: PING/node/s N=48 {out[0][0]:.1f}, N=96 {out[1][0]:.1f} (x{out[1][0]/out[0][0]:.2f}); FAIL-everywhere p50 N=48 {out[0][1]:.2f}s [{out[0][2]:.2f}-{out[0][3]:.2f}], N=96 {out[1][1]:.2f}s [{out[1][2]:.2f}-{out[1][3]:.2f}]", flush=True)
