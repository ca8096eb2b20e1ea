"""Core leases (issue 2), end to end: the real daemon, a real MariaDB, and an
outside MySQL session that checks every lock claim independently."""

import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (DATABASE, Client, acquire, elapsed_since, error_code, lease_of, named_client, ok,
                      query, scaled, send_acquire, status, wait_for, wait_state)

# ---------------------------------------------------------------- helpers


def short_names(entries):
    """Table names from a status list, without the default database."""
    names = []
    for e in entries:
        if isinstance(e, dict):
            e = e.get("table", "")
        prefix = DATABASE + "."
        names.append(e[len(prefix):] if e.startswith(prefix) else e)
    return sorted(names)


# ---------------------------------------------------------------- basics


def test_ping_and_hello(daemon):
    d = daemon()
    with d.client() as c:
        assert c.call({"op": "ping"}) == {"ok": True}
        resp = ok(c.call({"op": "hello", "client": "pytest-core"}))
        assert resp["server"] == "tablelockd"
        assert isinstance(resp["version"], str) and resp["version"]
        assert resp["protocol"] == 1 and isinstance(resp["protocol"], int)


def test_write_lease_blocks_outside_reads_and_writes(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        resp = ok(acquire(c, write=["t1"], ttl_ms=20000))
        assert isinstance(resp["lease"], int) and resp["lease"] > 0
        assert resp["ttl_ms"] == 20000
        assert isinstance(resp["waited_ms"], int) and resp["waited_ms"] >= 0
        assert not observer.can_read("t1")
        assert not observer.can_write("t1")
        assert observer.can_read("t2") and observer.can_write("t2"), "a table outside the lease was locked"
        ok(c.call({"op": "commit"}))
        assert observer.can_read("t1")


def test_read_lease_blocks_outside_writes_not_reads(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c, read=["t1"], ttl_ms=20000))
        assert observer.can_read("t1")
        assert observer.value("t1", 1) == 10
        assert not observer.can_write("t1")
        assert observer.can_write("t2")
        ok(c.call({"op": "rollback"}))
        assert observer.can_write("t1")


def test_commit_keeps_writes_and_frees(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c, write=["t1"]))["lease"]
        upd = ok(query(c, "UPDATE t1 SET v = 111 WHERE id = 1"))
        assert upd["affected_rows"] == 1
        resp = ok(c.call({"op": "commit"}))
        assert resp["lease"] == lease
        # The answer comes once UNLOCK TABLES is done: t1 is free already.
        assert observer.can_write_now("t1"), "t1 was still locked when the commit was answered"
        assert observer.value("t1", 1) == 111
        # The connection can take a new lease afterwards.
        assert ok(acquire(c, write=["t1"]))["lease"] > lease
        ok(c.call({"op": "commit"}))


def test_rollback_keeps_nothing_and_frees(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c, write=["t1", "t2"]))["lease"]
        ok(query(c, "UPDATE t1 SET v = 111 WHERE id = 1"))
        ok(query(c, "DELETE FROM t2"))
        ok(query(c, "INSERT INTO t1 (id, v) VALUES (9, 90)"))
        resp = ok(c.call({"op": "rollback"}))
        assert resp["lease"] == lease
        assert observer.can_write_now("t1") and observer.can_write_now("t2"), \
            "the tables were still locked when the rollback was answered"
        assert observer.value("t1", 1) == 10
        assert observer.execute("SELECT COUNT(*) AS n FROM t2")[0]["n"] == 3
        assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3


# ---------------------------------------------------------------- every way out


def test_ttl_expiry_rolls_back_frees_and_notifies(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        # The UPDATE is sent with the acquire: the daemon runs it as soon as
        # the lease is granted, well inside the 400 ms, however slowly this
        # process gets to read the grant on a loaded machine.
        c.send({"op": "acquire", "write": ["t1"], "wait_ms": 2000, "ttl_ms": 400})
        c.send({"op": "query", "sql": "UPDATE t1 SET v = 999 WHERE id = 1"})
        resp = ok(c.recv_response(timeout=5))
        lease = resp["lease"]
        assert resp["ttl_ms"] == 400
        ok(c.recv_response(timeout=5))
        t0 = time.monotonic()
        ev = c.wait_event("lease_expired", timeout=3)
        assert ev["lease"] == lease
        assert elapsed_since(t0) < scaled(1.5)
        assert observer.can_write("t1")
        assert observer.value("t1", 1) == 10
        assert error_code(query(c, "SELECT v FROM t1")) == "no_lease"
        assert error_code(c.call({"op": "commit"})) == "no_lease"
        assert error_code(c.call({"op": "rollback"})) == "no_lease"
        wait_for(lambda: all(e.get("lease") != lease for e in status(d)["leases"]), timeout=1,
                 what="the expired lease to leave status")
        assert status(d)["totals"]["expired"] >= 1
        # The connection can lease again after an expiry.
        assert ok(acquire(c, write=["t1"]))["lease"] > lease
        ok(c.call({"op": "rollback"}))


def test_renew_extends_the_lease(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        ttl_s = scaled(1.0)
        t0 = time.monotonic()
        ok(acquire(c, write=["t1"], ttl_ms=int(ttl_s * 1000)))
        # Renewed at once (a sleep first would race the TTL on a loaded
        # machine); its ok says the lease was still alive.
        ok(c.call({"op": "renew", "ttl_ms": 10000}))
        # Past the first TTL, counted from before the acquire was sent.
        time.sleep(max(0.0, t0 + ttl_s + 0.3 - time.monotonic()))
        assert ok(query(c, "SELECT v FROM t1 WHERE id = 1"))["rows"] == [[10]]
        assert c.events == []
        ok(c.call({"op": "commit"}))


# A lease whose client goes away is rolled back at once, not when its TTL
# runs out. How long "at once" takes depends on the machine's load, so the
# bound is a tenth of the TTL, the only other thing that would free the
# table, and the totals say which of the two did.
FREED_TTL_MS = 60000


def assert_freed_by_the_disconnect(d, observer, what):
    # The observer's UPDATE waits in MySQL until the lock goes, so the time
    # it takes is the time the daemon needed to roll back and unlock.
    took = observer.seconds_until_free("t1", timeout=FREED_TTL_MS / 10000.0)
    print("t1 freed %.3fs after %s" % (took, what))
    assert took < FREED_TTL_MS / 10000.0, "lock freed only %.3fs after %s" % (took, what)
    assert observer.value("t1", 1) == 10
    totals = wait_for(lambda: (lambda t: t if t["released_on_disconnect"] >= 1 else None)(status(d)["totals"]),
                      what="released_on_disconnect")
    assert totals["expired"] == 0, totals


def test_close_keeps_nothing_and_frees_within_milliseconds(daemon, observer, tables):
    d = daemon()
    c = d.client()
    ok(acquire(c, write=["t1"], ttl_ms=FREED_TTL_MS))
    ok(query(c, "UPDATE t1 SET v = 999 WHERE id = 1"))
    c.close()
    assert_freed_by_the_disconnect(d, observer, "close")


KILLED_CLIENT = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def call(obj):
    f.write(json.dumps(obj).encode() + b"\n")
    f.flush()
    return json.loads(f.readline())
r = call({"op": "acquire", "write": ["t1"], "wait_ms": 5000, "ttl_ms": int(sys.argv[2])})
assert r["ok"], r
r2 = call({"op": "query", "sql": "UPDATE t1 SET v = 999 WHERE id = 1"})
assert r2["ok"], r2
print("ready", r["lease"], flush=True)
time.sleep(60)
"""


def test_kill_9_of_client_keeps_nothing_and_frees(daemon, observer, tables):
    d = daemon()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, d.sock, str(FREED_TTL_MS)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], scaled(10))
        line = proc.stdout.readline().decode() if ready else ""
        assert line.startswith("ready"), "client did not get its lease: %r" % line
        assert not observer.can_read("t1"), "the client's lease did not lock t1"
        proc.kill()
        proc.wait(timeout=5)
        assert_freed_by_the_disconnect(d, observer, "kill -9")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# SIGTERM with drain_timeout_ms 0 (the harness default), and SIGINT, which
# skips any drain window (set long here to show that it is not waited for).
@pytest.mark.parametrize("sig,drain_ms", [(signal.SIGTERM, 0), (signal.SIGINT, 60000)], ids=["SIGTERM", "SIGINT"])
def test_signal_rolls_back_every_lease_and_exits_0(daemon, observer, tables, sig, drain_ms):
    d = daemon(daemon={"drain_timeout_ms": drain_ms})
    c1 = d.client()
    c2 = d.client()
    waiter = named_client(d, "sig-waiter")
    try:
        ok(acquire(c1, write=["t1"], ttl_ms=30000))
        ok(query(c1, "UPDATE t1 SET v = 555 WHERE id = 1"))
        ok(acquire(c2, write=["t2"], ttl_ms=30000))
        ok(query(c2, "DELETE FROM t2"))
        send_acquire(waiter, write=["t1"], wait_ms=20000)
        wait_state(d, "sig-waiter", "waiting")
        t0 = time.monotonic()
        rc = d.stop(sig)
        assert rc == 0, "exit code %d:\n%s" % (rc, d.log_text()[-3000:])
        assert elapsed_since(t0) < scaled(2.0), "shutdown took %.2fs" % elapsed_since(t0)
        assert not os.path.exists(d.sock), "the socket file was left behind"
        assert observer.can_write("t1") and observer.can_write("t2")
        assert observer.value("t1", 1) == 10
        assert observer.execute("SELECT COUNT(*) AS n FROM t2")[0]["n"] == 3
        assert c1.closed(2) and c2.closed(2)
        wait_for(lambda: observer.daemon_threads() == [], timeout=2, what="the daemon's MySQL sessions to go")
    finally:
        for c in (c1, c2, waiter):
            c.close()


# ---------------------------------------------------------------- queueing


def test_waiter_gets_the_lock_when_the_holder_leaves(daemon, observer, tables):
    d = daemon()
    with d.client() as holder, named_client(d, "waiter") as waiter:
        first = ok(acquire(holder, write=["t1"]))["lease"]
        send_acquire(waiter, write=["t1"], wait_ms=10000)
        wait_state(d, "waiter", "waiting")
        assert waiter.silent(0.3), "the waiter got an answer while t1 was held"
        ok(query(holder, "UPDATE t1 SET v = 11 WHERE id = 1"))
        ok(holder.call({"op": "commit"}))
        t0 = time.monotonic()
        resp = ok(waiter.recv_response(timeout=3))
        assert elapsed_since(t0) < scaled(1.0)
        assert resp["lease"] > first
        assert resp["waited_ms"] >= 250
        assert ok(query(waiter, "SELECT v FROM t1 WHERE id = 1"))["rows"] == [[11]]
        assert not observer.can_read("t1"), "the waiter's lease is not a real lock"
        ok(waiter.call({"op": "commit"}))
        assert observer.can_read("t1")


def test_three_waiters_are_granted_in_fifo_order(daemon, tables):
    d = daemon()
    holder = d.client()
    waiters = [named_client(d, "fifo-%d" % i) for i in range(3)]
    try:
        ok(acquire(holder, write=["t1"]))
        for i, w in enumerate(waiters):
            send_acquire(w, write=["t1"], wait_ms=15000)
            wait_state(d, "fifo-%d" % i, "waiting")
        ok(holder.call({"op": "commit"}))
        leases = []
        for i, w in enumerate(waiters):
            resp = ok(w.recv_response(timeout=5))
            leases.append(resp["lease"])
            for later in waiters[i + 1:]:
                assert later.silent(0.2), "a later waiter was granted before fifo-%d" % i
            # Each grant is a real read-modify-write in order.
            v = ok(query(w, "SELECT v FROM t1 WHERE id = 1"))["rows"][0][0]
            ok(query(w, "UPDATE t1 SET v = ? WHERE id = 1", [v * 10 + i + 1]))
            ok(w.call({"op": "commit"}))
        assert leases == sorted(leases) and len(set(leases)) == 3
        with d.client() as c:
            ok(acquire(c, read=["t1"]))
            assert ok(query(c, "SELECT v FROM t1 WHERE id = 1"))["rows"] == [[10123]]
            ok(c.call({"op": "commit"}))
    finally:
        holder.close()
        for w in waiters:
            w.close()


def test_reader_cannot_overtake_a_waiting_writer(daemon, observer, tables):
    d = daemon()
    with named_client(d, "r-holder") as holder, named_client(d, "writer") as writer, \
            named_client(d, "late-reader") as reader:
        ok(acquire(holder, read=["t1"]))
        send_acquire(writer, write=["t1"], wait_ms=10000)
        wait_state(d, "writer", "waiting")
        send_acquire(reader, read=["t1"], wait_ms=10000)
        wait_for(lambda: lease_of(d, "late-reader"), what="the late reader in status")
        assert reader.silent(0.3), "a reader overtook a waiting writer"
        assert lease_of(d, "late-reader")["state"] == "waiting"
        ok(holder.call({"op": "commit"}))
        ok(writer.recv_response(timeout=3))
        assert reader.silent(0.3), "a reader was granted while the writer held t1"
        ok(query(writer, "UPDATE t1 SET v = 42 WHERE id = 1"))
        ok(writer.call({"op": "commit"}))
        ok(reader.recv_response(timeout=3))
        assert ok(query(reader, "SELECT v FROM t1 WHERE id = 1"))["rows"] == [[42]]
        ok(reader.call({"op": "commit"}))


def test_disconnect_while_waiting_in_the_queue(daemon, observer, tables):
    d = daemon()
    with d.client() as holder:
        ok(acquire(holder, write=["t1"]))
        gone = named_client(d, "gone")
        send_acquire(gone, write=["t1"], wait_ms=20000)
        wait_state(d, "gone", "waiting")
        gone.close()
        wait_for(lambda: lease_of(d, "gone") is None, timeout=1, what="the closed waiter to leave the queue")
        ok(holder.call({"op": "commit"}))
        # Nobody holds t1 now: a try-lock succeeds at once.
        with d.client() as c:
            ok(acquire(c, write=["t1"], wait_ms=0))
            ok(c.call({"op": "commit"}))
        assert observer.can_write("t1")


def test_disconnect_while_lock_tables_is_pending_in_mysql(daemon, observer, outside, tables):
    d = daemon()
    with outside.cursor() as cur:
        cur.execute("LOCK TABLES t1 WRITE")
    pending = named_client(d, "pending")
    send_acquire(pending, write=["t1"], wait_ms=20000)
    wait_state(d, "pending", "locking")
    # "locking" is shown once LOCK TABLES is sent; MySQL shows the wait a
    # moment later.
    wait_for(observer.daemon_waiting, timeout=2,
             what="the daemon's LOCK TABLES to wait in MySQL")
    pending.close()
    t0 = time.monotonic()
    wait_for(lambda: not observer.daemon_waiting(), timeout=1,
             what="the daemon's pending LOCK TABLES to leave MySQL")
    assert elapsed_since(t0) < scaled(1.0)
    wait_for(lambda: lease_of(d, "pending") is None, timeout=1, what="the lease to go from status")
    with outside.cursor() as cur:
        cur.execute("UNLOCK TABLES")
    # Nothing in the daemon took the table once the outside lock went.
    time.sleep(0.1)
    assert observer.can_write("t1")
    assert status(d)["leases"] == [], "a lease appeared after the outside lock went"


def test_outside_lock_makes_acquire_wait_in_locking_then_time_out(daemon, observer, outside, tables):
    d = daemon()
    with outside.cursor() as cur:
        cur.execute("LOCK TABLES t1 WRITE")
    # Both states below must be seen before wait_ms runs out, by polling
    # status and PROCESSLIST: slower runs (valgrind) get a longer wait_ms.
    # (wait_for and recv_response scale their timeouts themselves.)
    wait_s = scaled(1.5)
    with named_client(d, "blocked") as c:
        t0 = time.monotonic()
        send_acquire(c, write=["t1"], wait_ms=int(wait_s * 1000))
        entry = wait_state(d, "blocked", "locking", timeout=1.5)
        assert entry["write"] and short_names(entry["write"]) == ["t1"]
        wait_for(observer.daemon_waiting, timeout=1.5,
                 what="the daemon's LOCK TABLES to wait in MySQL")
        resp = c.recv_response(timeout=1.5 + 5)
        waited = elapsed_since(t0)
        assert error_code(resp) == "lock_timeout"
        assert wait_s - 0.2 <= waited < wait_s + scaled(1.5), \
            "lock_timeout after %.2fs for wait_ms %d" % (waited, wait_s * 1000)
        # The answer follows the interrupted LOCK TABLES' error; MySQL
        # clears the statement from PROCESSLIST just after sending that.
        wait_for(lambda: observer.daemon_waiting() == [], timeout=1,
                 what="no daemon query left waiting in MySQL")
        wait_for(lambda: status(d)["leases"] == [], timeout=1, what="no lease left in status")
        assert status(d)["totals"]["lock_timeouts"] >= 1
        # The connection and the pool are still fine.
        ok(acquire(c, write=["t2"]))
        ok(c.call({"op": "commit"}))
        with outside.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        ok(acquire(c, write=["t1"]))
        ok(query(c, "UPDATE t1 SET v = 12 WHERE id = 1"))
        ok(c.call({"op": "commit"}))
    assert observer.value("t1", 1) == 12


# A try-lock that waited would wait at least this long (the harness's
# default_wait_ms is 2000): half of it tells the two apart on any load.
TRY_LOCK_BOUND_S = 1.0


def test_wait_ms_0_is_a_try_lock(daemon, observer, outside, tables):
    d = daemon()
    with d.client() as holder, d.client() as c:
        ok(acquire(holder, write=["t1"]))
        for kind in ("write", "read"):
            t0 = time.monotonic()
            resp = acquire(c, wait_ms=0, **{kind: ["t1"]})
            assert error_code(resp) == "lock_timeout"
            assert elapsed_since(t0) < scaled(TRY_LOCK_BOUND_S), "try-lock answered after %.2fs" % elapsed_since(t0)
        ok(acquire(c, write=["t2"], wait_ms=0))  # free: granted at once
        ok(c.call({"op": "commit"}))
        ok(holder.call({"op": "commit"}))
        # Against a lock held outside the daemon, too.
        with outside.cursor() as cur:
            cur.execute("LOCK TABLES t2 READ")
        t0 = time.monotonic()
        assert error_code(acquire(c, write=["t2"], wait_ms=0)) == "lock_timeout"
        assert elapsed_since(t0) < scaled(TRY_LOCK_BOUND_S), "try-lock answered after %.2fs" % elapsed_since(t0)
        # NOWAIT failed in MySQL before the answer; MySQL clears the
        # statement from PROCESSLIST just after sending the error.
        wait_for(lambda: observer.daemon_waiting() == [], timeout=1,
                 what="no daemon query left waiting in MySQL")
        with outside.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        ok(acquire(c, write=["t2"], wait_ms=0))
        ok(c.call({"op": "commit"}))


def test_100_concurrent_clients_lose_no_update(daemon, mariadb, observer):
    mariadb.fresh_tables(["counter"], rows=[(1, 1000)])
    d = daemon()
    n = 100
    barrier = threading.Barrier(n)
    leases = [None] * n
    failures = []

    def worker(i):
        try:
            with Client(d.sock, timeout=30) as c:
                barrier.wait(timeout=30)
                lease = ok(acquire(c, write=["counter"], wait_ms=60000, ttl_ms=30000))["lease"]
                v = ok(query(c, "SELECT v FROM counter WHERE id = 1"))["rows"][0][0]
                upd = ok(query(c, "UPDATE counter SET v = ? WHERE id = 1", [v + 1]))
                assert upd["affected_rows"] == 1
                ok(c.call({"op": "commit"}))
                leases[i] = lease
        except BaseException as e:  # reported below, with the others
            failures.append("client %d: %r" % (i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=scaled(90))
    assert not any(t.is_alive() for t in threads), "clients still running"
    assert not failures, "\n".join(failures[:10])
    assert observer.value("counter", 1) == 1000 + n
    assert len(set(leases)) == n


def test_lease_ids_strictly_increase_also_across_restart(daemon, tables):
    d = daemon()
    ids = []
    with d.client() as a, d.client() as b:
        for _ in range(3):
            for c in (a, b):
                ids.append(ok(acquire(c, read=["t1"]))["lease"])
            for c in (a, b):
                ok(c.call({"op": "commit"}))
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    d.restart()
    assert os.path.exists(d.state_file)
    with d.client() as c:
        after = ok(acquire(c, write=["t1"]))["lease"]
        ok(c.call({"op": "rollback"}))
    assert after > max(ids), "lease %d after a restart does not follow %d" % (after, max(ids))


def test_status_shows_held_and_waiting_leases(daemon, observer, tables):
    d = daemon()
    before = status(d)
    with named_client(d, "holder-svc") as holder, named_client(d, "waiter-svc") as waiter:
        held = ok(acquire(holder, write=["t1"], read=["t2"], ttl_ms=20000))["lease"]
        send_acquire(waiter, write=["t1"], wait_ms=10000, ttl_ms=5000)
        wait_state(d, "waiter-svc", "waiting")
        st = status(d)
        fields = {"lease", "client", "peer", "read", "write", "state", "age_ms", "expires_in_ms", "mysql_thread"}
        for entry in st["leases"]:
            missing = fields - set(entry)
            assert not missing, "status entry without %s: %r" % (sorted(missing), entry)
        h = lease_of(d, "holder-svc")
        assert h["lease"] == held
        assert h["state"] == "held"
        assert short_names(h["write"]) == ["t1"] and short_names(h["read"]) == ["t2"]
        assert isinstance(h["age_ms"], int) and 0 <= h["age_ms"] < 10000
        assert isinstance(h["expires_in_ms"], int) and 0 < h["expires_in_ms"] <= 20000
        assert h["peer"].get("uid") == os.getuid() and h["peer"].get("pid") == os.getpid(), h["peer"]
        thread = h["mysql_thread"]
        assert isinstance(thread, int)
        assert thread in [r["ID"] for r in observer.daemon_threads()], \
            "mysql_thread %r is not a daemon session in PROCESSLIST" % thread
        w = lease_of(d, "waiter-svc")
        assert w["state"] == "waiting"
        assert short_names(w["write"]) == ["t1"] and w["read"] == []
        pool = st["pool"]
        for key in ("size", "idle", "busy", "connecting", "broken"):
            assert isinstance(pool.get(key), int), "pool.%s: %r" % (key, pool)
        assert pool["size"] == 4 and pool["busy"] >= 1
        totals = st["totals"]
        # Every key, in proto/PROTOCOL.md's order (lease.c's table of names).
        assert list(totals) == ["acquired", "committed", "rolled_back", "expired",
                                "released_on_disconnect", "lock_timeouts", "revoked", "lost",
                                "shutdown"], totals
        assert all(isinstance(v, int) for v in totals.values()), totals
        assert totals["acquired"] == before["totals"]["acquired"] + 1
        ok(holder.call({"op": "commit"}))
        ok(waiter.recv_response(timeout=3))
        assert lease_of(d, "waiter-svc")["state"] == "held"
        ok(waiter.call({"op": "rollback"}))
    wait_for(lambda: status(d)["leases"] == [], timeout=1, what="no lease left in status")
    after = status(d)
    assert after["totals"]["committed"] == before["totals"]["committed"] + 1
    assert after["totals"]["rolled_back"] == before["totals"]["rolled_back"] + 1
    assert after["leases"] == []


def test_unknown_table(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        assert error_code(acquire(c, write=["no_such_table"])) == "unknown_table"
        assert error_code(acquire(c, write=["t1", "no_such_table"])) == "unknown_table"
        assert observer.can_write("t1"), "t1 stayed locked after a failed acquire"
        # No lease was left behind on the connection.
        ok(acquire(c, write=["t1"]))
        ok(c.call({"op": "commit"}))


# ---------------------------------------------------------------- bad input

BIG = "x" * 65

BAD_REQUESTS = [
    # (id, raw line, code, word the message must name or None)
    ("malformed-json", b'{"op":"ping"', "bad_request", None),
    ("garbage", b"{not json at all}", "bad_request", None),
    ("array", b"[1,2]", "bad_request", None),
    ("string", b'"ping"', "bad_request", None),
    ("number", b"42", "bad_request", None),
    ("null", b"null", "bad_request", None),
    ("unknown-op", b'{"op":"frobnicate"}', "bad_request", "op"),
    ("missing-op", b'{"id":1}', "bad_request", "op"),
    ("op-not-string", b'{"op":5}', "bad_request", "op"),
    ("write-not-list", b'{"op":"acquire","write":"t1"}', "bad_request", "write"),
    ("read-not-list", b'{"op":"acquire","read":{"t1":1}}', "bad_request", "read"),
    ("table-entry-number", b'{"op":"acquire","write":[5]}', "bad_request", "write"),
    ("wait-ms-string", b'{"op":"acquire","write":["t1"],"wait_ms":"soon"}', "bad_request", "wait_ms"),
    ("wait-ms-negative", b'{"op":"acquire","write":["t1"],"wait_ms":-1}', "bad_request", "wait_ms"),
    ("ttl-ms-string", b'{"op":"acquire","write":["t1"],"ttl_ms":"long"}', "bad_request", "ttl_ms"),
    ("hello-client-number", b'{"op":"hello","client":42}', "bad_request", "client"),
    ("query-sql-number", b'{"op":"query","sql":42}', "bad_request", "sql"),
    ("query-without-sql", b'{"op":"query"}', "bad_request", "sql"),
    ("no-tables", b'{"op":"acquire"}', "bad_request", None),
    ("empty-lists", b'{"op":"acquire","write":[],"read":[]}', "bad_request", None),
    ("both-lists", b'{"op":"acquire","write":["t1"],"read":["t1"]}', "bad_request", None),
    ("both-lists-qualified", b'{"op":"acquire","write":["t1"],"read":["app.t1"]}', "bad_request", None),
    ("empty-name", b'{"op":"acquire","write":[""]}', "invalid_table", None),
    ("two-dots", b'{"op":"acquire","write":["a.b.c"]}', "invalid_table", None),
    ("too-long", ('{"op":"acquire","write":["%s"]}' % BIG).encode(), "invalid_table", None),
    ("db-too-long", ('{"op":"acquire","write":["%s.t1"]}' % BIG).encode(), "invalid_table", None),
    # NUL: invalid_table, or bad_request when the JSON decoder refuses \u0000 itself.
    ("nul", b'{"op":"acquire","write":["t\\u0000x"]}', ("invalid_table", "bad_request"), None),
    ("leading-dot", b'{"op":"acquire","write":[".t1"]}', "invalid_table", None),
    ("trailing-dot", b'{"op":"acquire","write":["t1."]}', "invalid_table", None),
    ("trailing-space", b'{"op":"acquire","write":["t1 "]}', "invalid_table", None),
    ("empty-alias", b'{"op":"acquire","write":[{"table":"t1","as":""}]}', "invalid_table", None),
    ("dotted-alias", b'{"op":"acquire","write":[{"table":"t1","as":"a.b"}]}', "invalid_table", None),
]


@pytest.mark.parametrize("line,code,word", [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gets_its_error_and_the_connection_stays(daemon, observer, tables, line, code, word):
    d = daemon()
    with d.client() as c:
        c.send_raw(line + b"\n")
        resp = c.recv_response(timeout=5)
        assert resp is not None, "the daemon closed the connection on %r" % line
        assert error_code(resp) in (code if isinstance(code, tuple) else (code,)), resp
        if word:
            assert word in resp["error"]["message"], "message does not name %r: %r" % (word, resp)
        # Same connection, still usable.
        assert ok(c.call({"op": "ping", "id": "after"}))["id"] == "after"
        ok(acquire(c, write=["t1"]))
        ok(c.call({"op": "commit"}))
    with d.client() as c2:
        ok(c2.call({"op": "ping"}))
    assert observer.can_write("t1")


def test_unknown_op_echoes_id(daemon):
    d = daemon()
    with d.client() as c:
        resp = c.call({"op": "frobnicate", "id": {"a": [1]}})
        assert error_code(resp) == "bad_request"
        assert resp["id"] == {"a": [1]}


def test_duplicate_tables_merge(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1", "t1", "app.t1"], read=["t2", "t2"]))
        assert not observer.can_write("t2")
        ok(c.call({"op": "commit"}))


def test_table_names_are_quoted_never_spliced(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        for evil in ["t1` WRITE; DROP TABLE t2; --", "t1`, `t2", 't1" WRITE, t2 READ --', "t1'"]:
            assert error_code(acquire(c, write=[evil])) == "unknown_table", evil
    assert observer.execute("SELECT COUNT(*) AS n FROM t2")[0]["n"] == 3
    assert observer.can_write("t1") and observer.can_write("t2")


def test_acquire_while_holding_is_lease_held(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c, write=["t1"]))["lease"]
        assert error_code(acquire(c, write=["t2"])) == "lease_held"
        assert error_code(acquire(c, write=["t1"])) == "lease_held"
        assert observer.can_write("t2"), "the refused acquire locked t2"
        assert not observer.can_read("t1"), "the held lease was dropped"
        ok(query(c, "UPDATE t1 SET v = 5 WHERE id = 1"))
        assert ok(c.call({"op": "commit"}))["lease"] == lease
    assert observer.value("t1", 1) == 5


def test_lease_ops_without_a_lease_are_no_lease(daemon):
    d = daemon()
    with d.client() as c:
        assert error_code(query(c, "SELECT 1")) == "no_lease"
        assert error_code(c.call({"op": "commit"})) == "no_lease"
        assert error_code(c.call({"op": "rollback"})) == "no_lease"
        assert error_code(c.call({"op": "renew", "ttl_ms": 1000})) == "no_lease"
        ok(c.call({"op": "ping"}))


def test_oversized_line_is_refused_then_closed(daemon, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        big = b'{"op":"ping","pad":"' + b"x" * (2 << 20) + b'"}\n'
        c.send_raw(big)
        resp = c.recv_response(timeout=10)
        assert resp is not None, "closed without a request_too_large answer"
        assert error_code(resp) == "request_too_large"
        assert c.closed(3), "the connection stayed open after request_too_large"
    with d.client() as c2:
        ok(c2.call({"op": "ping"}))
        ok(acquire(c2, write=["t1"], wait_ms=1000))  # the closed connection's lease is gone
        ok(c2.call({"op": "commit"}))


def test_max_request_bytes_is_configurable(daemon):
    d = daemon(daemon={"max_request_bytes": 4096})
    with d.client() as c:
        fits = {"op": "ping", "id": "x" * 3900}
        assert ok(c.call(fits))["id"] == fits["id"]
        c.send_raw(b'{"op":"ping","id":"' + b"y" * 5000 + b'"}\n')
        assert error_code(c.recv_response(timeout=5)) == "request_too_large"
        assert c.closed(3)
    with d.client() as c2:
        ok(c2.call({"op": "ping"}))


# ---------------------------------------------------------------- statements


def test_params_are_bound_safely(daemon, observer, tables):
    d = daemon()
    evil = "1'; DROP TABLE t1; --"
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        assert ok(query(c, "SELECT v FROM t1 WHERE id = ?", [2]))["rows"] == [[20]]
        assert ok(query(c, "UPDATE t1 SET v = ? WHERE id = ?", [77, 3]))["affected_rows"] == 1
        assert ok(query(c, "SELECT ? AS s", [evil]))["rows"] == [[evil]]
        # Spliced unquoted, "1 OR 1=1" would match every row.
        assert ok(query(c, "SELECT id FROM t1 WHERE id = ? ORDER BY id", ["1 OR 1=1"]))["rows"] == [[1]]
        tricky = "qu'o\"te\\ \u00e9 `x` ? -- /*"
        row = ok(query(c, "SELECT ? AS n, ? AS t, ? AS f, ? AS i, ? AS s, ? AS big",
                       [None, True, False, -42, tricky, 9007199254740993]))["rows"][0]
        assert row == [None, 1, 0, -42, tricky, 9007199254740993]
        assert float(ok(query(c, "SELECT ? + 0 AS f", [1.5]))["rows"][0][0]) == 1.5
        # A ? in a literal, a backquoted name or a comment is not a placeholder.
        res = ok(query(c, "SELECT '?' AS lit, \"?\" AS dq, 'it''s ?' AS esc, 'b\\'?' AS bs, "
                          "? AS p /* ? */, v AS `col?` FROM t1 WHERE id = ? -- ?\n", [5, 1]))
        assert [col["name"] for col in res["columns"]] == ["lit", "dq", "esc", "bs", "p", "col?"]
        assert res["rows"] == [["?", "?", "it's ?", "b'?", 5, 10]]
        assert ok(query(c, "SELECT v FROM t1 WHERE id = ? # ?", [2]))["rows"] == [[20]]
        ok(c.call({"op": "commit"}))
    assert observer.value("t1", 3) == 77
    assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3


def test_results_have_columns_and_typed_rows(daemon, mariadb, observer, tables):
    mariadb.sql("DROP TABLE IF EXISTS ai")
    mariadb.sql("CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s VARCHAR(20)) ENGINE=InnoDB")
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1", "ai"]))
        res = ok(query(c, "SELECT id, v FROM t1 ORDER BY id"))
        assert [col["name"] for col in res["columns"]] == ["id", "v"]
        assert all(isinstance(col["type"], str) and col["type"] for col in res["columns"])
        assert res["rows"] == [[1, 10], [2, 20], [3, 30]]
        assert all(type(x) is int for row in res["rows"] for x in row)
        for key in ("affected_rows", "insert_id", "warnings"):
            assert isinstance(res[key], int), "%s: %r" % (key, res)
        mixed = ok(query(c, "SELECT NULL AS n, 'abc' AS s, 3 AS i, CAST(-5 AS SIGNED) AS neg"))
        assert mixed["rows"] == [[None, "abc", 3, -5]]
        empty = ok(query(c, "SELECT id FROM t1 WHERE 1 = 0"))
        assert empty["rows"] == [] and [col["name"] for col in empty["columns"]] == ["id"]
        ins = ok(query(c, "INSERT INTO ai (v, s) VALUES (?, ?)", [1, "one"]))
        assert ins["affected_rows"] == 1 and ins["insert_id"] == 1
        ins2 = ok(query(c, "INSERT INTO ai (v, s) VALUES (2, 'two'), (3, NULL)"))
        assert ins2["affected_rows"] == 2 and ins2["insert_id"] == 2
        assert ok(query(c, "SELECT s FROM ai ORDER BY id"))["rows"] == [["one"], ["two"], [None]]
        upd = ok(query(c, "UPDATE t1 SET v = v + 1"))
        assert upd["affected_rows"] == 3
        ok(c.call({"op": "commit"}))
    assert observer.value("t1", 3) == 31


ID_VALUES = ["abc", 17, 2.5, {"k": [1, {"x": None}]}, [1, 2], None, True, ""]


def test_id_is_echoed(daemon, tables):
    d = daemon()
    with d.client() as c:
        for value in ID_VALUES:
            resp = ok(c.call({"op": "ping", "id": value}))
            assert "id" in resp and resp["id"] == value, "id %r came back as %r" % (value, resp)
        resp = acquire(c, write=["bad..name"], id={"req": 9})
        assert error_code(resp) == "invalid_table" and resp["id"] == {"req": 9}
        resp = ok(c.call({"op": "acquire", "write": ["t1"], "id": "acq"}))
        assert resp["id"] == "acq"
        assert ok(c.call({"op": "query", "sql": "SELECT 1", "id": 33}))["id"] == 33
        assert ok(c.call({"op": "commit", "id": None}))["id"] is None


def test_pipelined_and_split_requests_answer_in_order(daemon, tables):
    d = daemon()
    with d.client() as c:
        c.send_raw(b'{"op":"ping","id":1}\n{"op":"hello","client":"p","id":2}\r\n'
                   b'{"op":"acquire","write":["t1"],"id":3}\n{"op":"query","sql":"SELECT v FROM t1 WHERE id=1","id":4}\n'
                   b'{"op":"commit","id":5}\n')
        got = [c.recv_response(timeout=5) for _ in range(5)]
        assert [r["id"] for r in got] == [1, 2, 3, 4, 5]
        assert all(r["ok"] for r in got), got
        assert got[3]["rows"] == [[10]]
        # One request split across writes.
        c.send_raw(b'{"op":"pi')
        time.sleep(0.1)
        c.send_raw(b'ng","id":6}')
        time.sleep(0.1)
        c.send_raw(b"\n")
        assert ok(c.recv_response(timeout=5))["id"] == 6
