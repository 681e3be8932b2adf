# usage: rtt.py PORT SECONDS -> one node's PING-to-PONG round trips (ms, from CLUSTER NODES ping_sent/pong_recv polled every 2 ms)
import socket, time, sys, statistics
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
ps={}; lastpong={}; rtt=[]
t0=time.time()
while time.time()-t0<W:
    for l in cmd().splitlines():
        f=l.split()
        if 'myself' in f[2]: continue
        sent=int(f[4]); pong=int(f[5])
        if sent: ps[f[0]]=sent
        if f[0] in lastpong and pong!=lastpong[f[0]] and pong%1000!=0 and f[0] in ps:
            rtt.append(pong-ps.pop(f[0]))
        lastpong[f[0]]=pong
    time.sleep(0.002)
rtt=[r for r in rtt if 0<=r<1000]
q=statistics.quantiles(rtt,n=10)
print("n",len(rtt),"rtt ms p10 %.0f p50 %.0f p90 %.0f max %d"%(q[0],q[4],q[8],max(rtt)))
