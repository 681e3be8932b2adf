import socket, time, sys, random, os, signal, statistics
N=int(sys.argv[1]); victim=int(sys.argv[2]); base=12000
socks={}
for p in range(base,base+N):
    if p==base+victim: continue
    try: socks[p]=socket.create_connection(('127.0.0.1',p))
    except OSError: pass
def rd(s):
    buf=b''
    while True:
        buf+=s.recv(1<<20)
        if b'\r\n' in buf:
            hdr,rest=buf.split(b'\r\n',1); n=int(hdr[1:])
            while len(rest)<n+2: rest+=s.recv(1<<20)
            return rest[:n].decode()
def vid():
    s=socks[base+(victim+1)%N if base+(victim+1)%N in socks else base]
    s.sendall(b"*3\r\n$7\r\nCLUSTER\r\n$5\r\nMYID\r\n") if False else None
    out=socket.create_connection(('127.0.0.1',base+victim)); out.sendall(b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nMYID\r\n")
    r=out.recv(100).decode().split('\r\n')[1]; out.close(); return r
V=vid()
pid=int(open(os.environ.get('TMPDIR','/tmp')+f'/redis-fidelity-rc/{base+victim}/redis.pid').read())
# wait a random time so the crash lands at a random phase of the second
time.sleep(random.uniform(0,1))
tc=time.time(); os.kill(pid, signal.SIGKILL)
pf={}; fl={}
while time.time()-tc<8 and len(fl)<len(socks):
    for s in socks.values(): s.sendall(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n")
    now=time.time()
    for p,s in socks.items():
        out=rd(s)
        for l in out.splitlines():
            if l.startswith(V):
                f=l.split()[2]
                if 'fail?' in f and p not in pf: pf[p]=now-tc
                if 'fail' in f.split(',') and p not in fl: fl[p]=now-tc
    time.sleep(0.01)
u=(tc%1.0)
v=sorted(pf.values())
print(f"crash at +{u:.3f}s into its wall-clock second; PFAIL seen at {len(pf)} nodes: first {v[0]:.2f} p50 {statistics.median(v):.2f} last {v[-1]:.2f}; "
      f"FAIL: first {min(fl.values()):.2f} all {max(fl.values()):.2f} ({len(fl)}/{len(socks)})")
print("pfail:", " ".join(f"{x:.2f}" for x in v))
print("phase-shifted (crash second start = 0): first pfail %.2f fail-all %.2f" % (v[0]+u, max(fl.values())+u))
