# usage: pingticks.py PORT SECONDS -> the ms-in-second of every PING one node sends (ping_sent in CLUSTER NODES, polled every 1 ms), a line per second
import socket, time, sys, collections
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
seen=set()
t0=time.time()
while time.time()-t0<W:
    for l in cmd().splitlines():
        f=l.split()
        if 'myself' in f[2]: continue
        if int(f[4]): seen.add((f[0],int(f[4])))
    time.sleep(0.001)
by=collections.defaultdict(list)
for p,t in seen: by[t//1000].append(t%1000)
for sec in sorted(by)[:8]:
    v=sorted(by[sec]); print(sec%100, len(v), v)
