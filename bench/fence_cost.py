"""What the fence adds to a lock's round trip: MariaDB's CPU and the round
trip's latency for LOCK TABLES;UNLOCK TABLES with and without
SELECT UUID_SHORT() between, interleaved, on one connection (README
"Benchmarks"). Run: /usr/bin/python3 bench/fence_cost.py"""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from conftest import MariaDB
from pymysql.constants import CLIENT
TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK
m = MariaDB(); m.start()
try:
    m.fresh_tables(["t1"])
    conn = m.connect(client_flag=CLIENT.MULTI_STATEMENTS, autocommit=False)
    cur = conn.cursor()
    batches = {"without fence": "LOCK TABLES t1 WRITE;UPDATE t1 SET v=v+1 WHERE id=1;UNLOCK TABLES",
               "with fence": "LOCK TABLES t1 WRITE;SELECT UUID_SHORT();UPDATE t1 SET v=v+1 WHERE id=1;UNLOCK TABLES"}
    res = {k: ([], 0.0, 0) for k in batches}
    for rep in range(10):
        for name, sql in (list(batches.items()) if rep % 2 == 0 else list(batches.items())[::-1]):
            lat, c, n = res[name]
            c0 = cpu(m.proc.pid)
            for _ in range(1000):
                a = time.perf_counter()
                cur.execute(sql)
                while cur.nextset():
                    pass
                lat.append(time.perf_counter() - a)
            res[name] = (lat, c + cpu(m.proc.pid) - c0, n + 1000)
    for name, (lat, c, n) in res.items():
        lat.sort()
        print("%-14s p50 %.1f us  p99 %.1f us  mariadbd CPU %.1f us/cycle" % (
            name, lat[len(lat)//2] * 1e6, lat[int(len(lat)*.99)] * 1e6, c / n * 1e6))
finally:
    m.stop()
