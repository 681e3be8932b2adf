import subprocess, time, sys
N=int(sys.argv[1]); base=12000; W=float(sys.argv[2]) if len(sys.argv)>2 else 20
def info(p):
    out=subprocess.run(['redis-cli','-p',str(p),'cluster','info'],capture_output=True,text=True).stdout
    d={}
    for l in out.splitlines():
        if ':' in l:
            k,v=l.strip().split(':',1); d[k]=v
    return d
def snap():
    return {p: (int(info(p).get('cluster_stats_messages_ping_sent',0)), int(info(p).get('cluster_stats_messages_pong_sent',0))) for p in range(base,base+N)}
st=info(base)['cluster_state']; print('state',st, 'known', info(base)['cluster_known_nodes'])
a=snap(); t0=time.time()
# sample pong_received of one observer
aligned=0; total=0
while time.time()-t0 < W:
    out=subprocess.run(['redis-cli','-p',str(base),'cluster','nodes'],capture_output=True,text=True).stdout
    for l in out.splitlines():
        f=l.split()
        if 'myself' in f[2]: continue
        pr=int(f[5]); total+=1
        if pr%1000==0: aligned+=1
    time.sleep(0.1)
b=snap(); t1=time.time()
dt=t1-t0
pings=sum(b[p][0]-a[p][0] for p in b)/N/dt; pongs=sum(b[p][1]-a[p][1] for p in b)/N/dt
print(f"N={N} PING/node/s={pings:.1f} PONG/node/s={pongs:.1f}; observer's pong_received multiples of 1000: {aligned}/{total} = {aligned/total:.2%}")
