"""Cost of a status call: no lease, one lease held, one lease blocked in
MySQL (answered from the one-second cache, and when the cache is stale).
Run after make: /usr/bin/python3 bench/status_cost.py"""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("TABLELOCKD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon", "tablelockd"))
from conftest import MariaDB, Daemon, daemon_binary, ok

TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(p * len(xs)))]

def run(c, pid, n, label):
    for _ in range(100): ok(c.call({"op": "status"}))
    t, c0 = [], cpu(pid)
    for _ in range(n):
        a = time.perf_counter(); r = ok(c.call({"op": "status"})); t.append(time.perf_counter() - a)
    used = cpu(pid) - c0
    print("%-58s p50 %6.1f us  p99 %6.1f us  daemon CPU %5.1f us/call" % (
        label, pct(t, .5) * 1e6, pct(t, .99) * 1e6, used / n * 1e6))
    return r

m = MariaDB(); m.start()
try:
    m.fresh_tables(["t1", "t2"])
    d = Daemon(daemon_binary(), m, {}); d.start()
    pid = d.proc.pid
    with d.client() as c:
        run(c, pid, 20000, "status, no lease")
        h = d.client(); ok(h.call({"op": "acquire", "write": ["t2"], "ttl_ms": 60000}))
        run(c, pid, 20000, "status, one lease held")
        ok(h.call({"op": "rollback"})); h.close()
        outside = m.connect(); outside.cursor().execute("LOCK TABLES t1 WRITE")
        w = d.client(); w.send({"op": "acquire", "write": ["t1"], "wait_ms": 120000, "ttl_ms": 60000})
        time.sleep(0.3)
        r = run(c, pid, 20000, "status, one lease blocked (1 s cache; ~1 query/s)")
        assert r["leases"][0]["blocked_by"]
        fresh, cpu_fresh = [], []
        for _ in range(30):
            time.sleep(1.05)
            c0 = cpu(pid); a = time.perf_counter(); ok(c.call({"op": "status"}))
            fresh.append(time.perf_counter() - a); cpu_fresh.append(cpu(pid) - c0)
        print("%-58s p50 %6.1f us  max %6.1f us  (n=30)" % (
            "status, one lease blocked, cache stale (asks MySQL)", pct(fresh, .5) * 1e6, max(fresh) * 1e6))
        outside.cursor().execute("UNLOCK TABLES"); ok(w.recv_response(timeout=10))
        ok(w.call({"op": "rollback"})); w.close()
    d.stop()
finally:
    m.stop()
