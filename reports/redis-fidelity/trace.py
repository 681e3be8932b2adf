import socket, time, sys, collections, statistics
port=int(sys.argv[1]); W=float(sys.argv[2])
s=socket.create_connection(('127.0.0.1',port))
def cmd():
    s.sendall(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n")
    buf=b''
    while True:
        buf+=s.recv(1<<20)
        if b'\r\n' in buf:
            hdr,rest=buf.split(b'\r\n',1); n=int(hdr[1:])
            while len(rest)<n+2: rest+=s.recv(1<<20)
            return rest[:n].decode()
last={}; events=[]  # (t_poll_ms, peer, old, new)
t0=time.time()
while time.time()-t0<W:
    out=cmd(); now=time.time()*1000
    for l in out.splitlines():
        f=l.split()
        if 'myself' in f[2]: continue
        pr=int(f[5]); ps=int(f[4])
        if f[0] in last and last[f[0]]!=pr:
            events.append((now,f[0],last[f[0]],pr))
        last[f[0]]=pr
    time.sleep(0.01)
own=[e for e in events if e[3]%1000!=0]; ad=[e for e in events if e[3]%1000==0]
print("own pong updates",len(own),"adoptions",len(ad))
# own ping intervals per peer: time between successive own pongs
byp=collections.defaultdict(list)
for e in own: byp[e[1]].append(e[3])
iv=[b-a for v in byp.values() for a,b in zip(v,v[1:])]
print("own-pong interval ms: mean %.0f p10 %.0f p50 %.0f p90 %.0f"%(statistics.mean(iv),*[statistics.quantiles(iv,n=10)[i] for i in (0,4,8)]))
# adoption gain: new - old
g=[e[3]-e[2] for e in ad]
print("adoption gain ms: mean %.0f p50 %.0f"%(statistics.mean(g),statistics.median(g)))
# adopted value age at poll
ag=[e[0]-e[3] for e in ad]
print("adopted value age at observation ms: mean %.0f p10 %.0f p50 %.0f p90 %.0f"%(statistics.mean(ag),*[statistics.quantiles(ag,n=10)[i] for i in (0,4,8)]))
# own pong phase within second
ph=[e[3]%1000 for e in own]
hist=collections.Counter(p//100 for p in ph); print("own pong phase-in-second histogram (100ms bins):",[hist[i] for i in range(10)])
