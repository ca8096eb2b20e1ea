"""The fence's limits, measured on this machine's MariaDB: its layout,
a server restart, a failover to another server_id and back, a server_id
too large for a signed 64-bit integer, and the counter's rate. Run with
/usr/bin/python3 bench/fence_limits.py (PROTOCOL.md section 7, "Fences")."""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from conftest import MariaDB

def us(m):
    return m.sql("SELECT UUID_SHORT(), @@server_id")[0]

m = MariaDB(extra_args=("--server-id=1",)); m.start()
try:
    a = us(m); b = us(m)
    print("server_id 1: %d then %d (+%d per call)" % (a[0], b[0], b[0]-a[0]))
    hi = a[0] >> 24 & ((1 << 32) - 1)
    print("  bits 24..55 = %d = start time (now %d)" % (hi, int(time.time())))
    time.sleep(1.1); m.restart(); c = us(m)
    print("restart, server_id 1: %d (> before: %s, +%d)" % (c[0], c[0] > b[0], c[0]-b[0]))
    m.extra_args = ["--server-id=2"]; time.sleep(1.1); m.restart(); d = us(m)
    print("failover-like restart, server_id 2: %d (> before: %s)" % (d[0], d[0] > c[0]))
    m.extra_args = ["--server-id=1"]; time.sleep(1.1); m.restart(); e = us(m)
    print("back to server_id 1: %d (> server_id 2's: %s)" % (e[0], e[0] > d[0]))
    m.extra_args = ["--server-id=200"]; time.sleep(1.1); m.restart(); f = us(m)
    print("server_id 200: %d (> 2^63-1: %s)" % (f[0], f[0] > (1 << 63) - 1))
    # the counter's rate: how fast can one session draw?
    t0 = time.perf_counter(); n = 0
    with m.connect() as conn, conn.cursor() as cur:
        while time.perf_counter() - t0 < 1:
            cur.execute("SELECT UUID_SHORT()"); n += 1
    print("one session draws %d fences/s; the counter allows 2^24 = %d per second of uptime" % (n, 1 << 24))
finally:
    m.stop()
