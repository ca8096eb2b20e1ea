"""libtablelock against the real daemon and MariaDB, through client/tests/tablelock-driver.

Every library call is exercised; outcomes are checked through the observer
(an outside MySQL session), not only through what the library says.
"""

import errno
import os
import signal
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "tests"))
from clienttest import TCP_TOKEN, Driver, tcp_daemon, wait_until  # noqa: E402,F401
from conftest import scaled  # noqa: E402


def ms(seconds):
    """Milliseconds for the driver, stretched for slow runs (valgrind)."""
    return int(scaled(seconds) * 1000)

# The protocol's error codes, in the order of proto/proto_error.h: the
# library's enum must keep the same numbers.
PROTOCOL_CODES = [
    "ok", "bad_request", "request_too_large", "invalid_table", "unknown_table", "lease_held",
    "no_lease", "lock_timeout", "too_many_waiters", "unavailable", "mysql", "commit_unknown",
    "internal", "statement_not_allowed", "result_too_large", "statement_timeout", "bad_params",
    "lease_lost", "lease_expired", "lease_revoked", "unauthenticated", "forbidden",
    "too_many_clients", "shutting_down",
]


@pytest.fixture
def drivers():
    """Factory of drivers connected to a socket; all closed (and checked) at teardown."""
    made = []

    def make(sock, hello="lib-test", **kw):
        d = Driver(sock, hello=hello, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def test_codes_and_version_match_the_protocol():
    with Driver(connect=False) as d:
        r = d.ok("codes")
        assert r["version"] == "0.1.0"
        for number, name in enumerate(PROTOCOL_CODES):
            assert r["codes"][name] == number, name
        for name in ("connect", "timeout", "closed", "protocol", "usage", "unknown"):
            assert r["codes"][name] >= 100


def test_daemon_not_running_names_the_socket(tmp_path):
    missing = str(tmp_path / "nothing.sock")
    with Driver(connect=False) as d:
        r = d.err("connect", address=missing, timeout=2000)
        assert r["code"] == "connect"
        assert r["sys_errno"] == errno.ENOENT
        assert missing in r["message"]
        # A socket file nobody listens on: refused, not a hang.
        dead = str(tmp_path / "dead.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(dead)
        s.close()
        r = d.err("connect", address="unix:" + dead, timeout=2000)
        assert r["code"] == "connect" and r["sys_errno"] == errno.ECONNREFUSED
        # Calls on no handle are refused by the driver, not crashed.
        assert d.err("ping")["code"] == "no_handle"
        r = d.err("connect", address="tcp:nohostport", timeout=2000)
        assert r["code"] == "usage"


def test_connect_ping_hello_and_addresses(daemon, drivers):
    d = daemon()
    a = drivers(d.sock, hello=None)
    a.ok("ping")
    r = a.ok("hello", client="lib-hello")
    assert r["server_version"]
    # "unix:" prefix and a bare path are the same address.
    b = drivers("unix:" + d.sock, hello=None)
    b.ok("ping")
    st = b.ok("status")
    assert st["clients"] >= 2


def test_acquire_query_commit(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    r = c.ok("acquire", write=["t1"], read=["t2"], wait=2000, ttl=10000)
    lease = r["acquired"]
    assert lease > 0 and r["held"] == lease and r["ttl"] == 10000
    fence = r["fence"]
    assert fence > 0
    assert [l["fence"] for l in c.ok("status")["leases"] if l["lease"] == lease] == [fence]
    assert not observer.can_read("t1")
    assert observer.can_read("t2") and not observer.can_write("t2")

    r = c.ok("query", sql="UPDATE t1 SET v = v + ? WHERE id = ?", params=[5, 1])
    assert r["result"]["affected_rows"] == 1 and r["result"]["columns"] == []
    r = c.ok("query", sql="SELECT id, v FROM t1 WHERE id <= ? ORDER BY id", params=[2])
    res = r["result"]
    assert [col["name"] for col in res["columns"]] == ["id", "v"]
    assert [[cell["int64"] for cell in row] for row in res["rows"]] == [[1, 15], [2, 20]]
    assert res["out_of_range_is_null"]
    # Not committed yet: the lock keeps the observer out (and MySQL would
    # show the old value to a reader that got in).
    assert not observer.can_read("t1")

    c.ok("commit")
    assert c.ok("ping")["held"] == 0
    assert observer.value("t1", 1) == 15
    assert observer.can_write("t1") and observer.can_write("t2")
    # The next holder of t1 gets a greater fence, a transact too.
    r = c.ok("transact", write=["t1"], statements=[{"sql": "UPDATE t1 SET v = 0 WHERE id = 3"}])
    assert r["fence"] > fence
    # A statement after the commit: no lease.
    assert c.err("query", sql="SELECT 1")["code"] == "no_lease"


def test_rollback_keeps_nothing(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("query", sql="DELETE FROM t1")
    c.ok("rollback")
    assert observer.can_write("t1")
    assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3


def test_result_types_and_typed_access(daemon, drivers, mariadb, observer):
    mariadb.sql("DROP TABLE IF EXISTS types")
    mariadb.sql("CREATE TABLE types (id INT PRIMARY KEY, u BIGINT UNSIGNED, d DECIMAL(20,4), "
                "f DOUBLE, s VARCHAR(20), b VARBINARY(8), n INT NULL, dt DATE)")
    mariadb.sql("INSERT INTO types VALUES (1, 18446744073709551615, 12345678901234.5678, 2.5, "
                "'héllo', 0x00FF10, NULL, '2024-02-29')")
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", read=["types"], wait=2000)
    res = c.ok("query", sql="SELECT id, u, d, f, s, b, n, dt FROM types")["result"]
    types = [col["type"] for col in res["columns"]]
    assert types[0] == "int" and types[2] == "decimal" and types[5] == "varbinary"
    idc, u, dec, f, s, b, n, dt = res["rows"][0]
    assert idc["type"] == "int" and idc["int64"] == 1 and idc["uint64"] == "1"
    # Above 2^63-1: exact text, readable as uint64 but not as int64.
    assert u["type"] == "string" and u["text"] == "18446744073709551615"
    assert u["uint64"] == "18446744073709551615" and "int64" not in u
    assert dec["type"] == "string" and dec["text"] == "12345678901234.5678"
    assert "int64" not in dec and abs(dec["double"] - 12345678901234.5678) < 1e-3
    assert f["type"] == "double" and f["double"] == 2.5 and f["text"] == "2.5"
    assert s["type"] == "string" and s["text"] == "héllo"
    assert b["type"] == "binary" and b["hex"] == "00ff10"
    assert n["type"] == "null" and n["null"] is True and "text" not in n
    assert dt["text"] == "2024-02-29"
    c.ok("rollback")


def test_params_are_typed_and_stay_data(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000)
    r = c.ok("query", sql="SELECT ?, ?, ?, ?, ?, ?",
             params=[True, None, 1.25, {"uint": "18446744073709551615"}, "x'; DROP TABLE t1; --",
                     -7])["result"]
    row = r["rows"][0]
    assert row[0]["int64"] == 1
    assert row[1]["null"] is True
    assert row[2]["double"] == 1.25
    assert row[3]["text"] == "18446744073709551615"
    assert row[4]["text"] == "x'; DROP TABLE t1; --"
    assert row[5]["int64"] == -7
    # Binary parameters cannot travel as JSON text: refused by the library,
    # which sends nothing and keeps the connection and the lease.
    r = c.err("query", sql="SELECT ?", params=[{"binary": "x"}])
    assert r["code"] == "usage" and r["held"] != 0
    r = c.err("query", sql="SELECT ?", params=[])
    assert r["code"] == "bad_params"
    c.ok("commit")
    assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3


def test_mysql_errors_arrive_unchanged_and_keep_the_lease(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", read=["t1"], wait=2000)
    r = c.err("query", sql="UPDATE t1 SET v = 0")
    assert r["code"] == "mysql" and r["mysql_errno"] == 1099 and r["sqlstate"] == "HY000"
    assert "READ lock" in r["message"]
    r = c.err("query", sql="SELECT * FROM t2")
    assert r["code"] == "mysql" and r["mysql_errno"] == 1100
    # The lease is still held.
    assert r["held"] != 0
    assert not observer.can_write("t1")
    r = c.err("query", sql="UNLOCK TABLES")
    assert r["code"] == "statement_not_allowed"
    c.ok("rollback")
    assert observer.value("t1", 1) == 10


def test_transact_success_failure_and_refusal(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    r = c.ok("transact", write=["t1"], read=["t2"], wait=2000, statements=[
        {"sql": "UPDATE t1 SET v = v + ? WHERE id = ?", "params": [1, 1]},
        {"sql": "SELECT v FROM t1 WHERE id = 1"},
        {"sql": "SELECT COUNT(*) FROM t2"},
    ])
    assert r["transacted"] > 0 and r["held"] == 0  # none left on the handle
    assert r["results"][0]["affected_rows"] == 1
    assert r["results"][1]["rows"][0][0]["int64"] == 11
    assert r["results"][2]["rows"][0][0]["int64"] == 3
    assert observer.value("t1", 1) == 11 and observer.can_write("t1")

    # Second statement fails: everything rolled back, index reported.
    r = c.err("transact", write=["t1"], wait=2000, statements=[
        {"sql": "UPDATE t1 SET v = 100 WHERE id = 2"},
        {"sql": "INSERT INTO t1 (id, v) VALUES (1, 0)"},
    ])
    assert r["code"] == "mysql" and r["mysql_errno"] == 1062 and r["statement"] == 1
    assert r["results_null"]
    assert observer.value("t1", 2) == 20 and observer.can_write("t1")

    # Refused by the firewall before anything is locked.
    r = c.err("transact", write=["t1"], statements=[{"sql": "SELECT 1"}, {"sql": "COMMIT"}])
    assert r["code"] == "statement_not_allowed" and r["statement"] == 1

    # Usage errors are the library's and send nothing.
    assert c.err("transact", write=["t1"], statements=[])["code"] == "usage"
    assert c.err("acquire", write=[], read=[])["code"] == "usage"
    c.ok("ping")


def test_renew_extends_the_lease(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    ttl = ms(1.0)
    c.ok("acquire", write=["t1"], wait=2000, ttl=ttl)
    for _ in range(5):
        time.sleep(scaled(0.3))
        assert c.ok("renew", ttl=ttl)["ttl"] == ttl
    # 1.5 s after the acquire, a 1 s lease is still held thanks to renew.
    c.ok("query", sql="UPDATE t1 SET v = 1 WHERE id = 1")
    r = c.ok("renew", ttl=5000)
    assert r["ttl"] == 5000
    c.ok("commit")
    assert observer.value("t1", 1) == 1


def test_lease_that_expires_between_calls_is_reported_by_the_next_call(daemon, drivers, tables,
                                                                      observer):
    d = daemon()
    c = drivers(d.sock)
    lease = c.ok("acquire", write=["t1"], wait=2000, ttl=10000)["acquired"]
    c.ok("query", sql="UPDATE t1 SET v = 99 WHERE id = 1")
    # The short TTL only now that the UPDATE is in (renew counts from
    # now): acquiring with it raced the UPDATE against 300 ms.
    c.ok("renew", ttl=ms(0.3))
    wait_until(lambda: observer.can_write("t1"), what="the expired lease to unlock t1")
    # Once the event has arrived (the socket is readable), the next call,
    # whatever it is, reports it.
    assert c.ok("wait_readable", timeout=ms(5))["readable"]
    r = c.err("ping")
    assert r["code"] == "lease_expired" and r["lease"] == lease
    assert "expired" in r["message"]
    assert observer.value("t1", 1) == 10  # rolled back
    # Reported once; the next lease op is simply without a lease.
    assert c.err("query", sql="SELECT 1")["code"] == "no_lease"
    c.ok("ping")


def test_expiry_during_a_statement_is_reported_once(daemon, drivers, tables):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000, ttl=ms(0.4))
    r = c.err("query", sql="SELECT SLEEP(%d)" % int(scaled(3)))
    assert r["code"] == "lease_expired"
    c.ok("ping")  # the event that came with it is not reported again


def test_poll_reports_the_event_without_a_request(daemon, drivers, tables):
    d = daemon()
    c = drivers(d.sock)
    lease = c.ok("acquire", write=["t1"], wait=2000, ttl=10000)["acquired"]
    assert c.ok("poll", timeout=0)["event"] is None
    # Shortened only after the poll that must find nothing, which a 300 ms
    # lease could already have outlived on a busy machine.
    c.ok("renew", ttl=ms(0.3))
    r = c.ok("poll", timeout=ms(5))
    assert r["event"] == {"name": "lease_expired", "code": PROTOCOL_CODES.index("lease_expired"),
                          "lease": lease, "reason": ""}
    assert r["held"] == 0
    c.ok("ping")  # consumed by poll


def test_lease_lost_when_mysql_kills_the_session(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    lease = c.ok("acquire", write=["t1"], wait=2000, ttl=10000)["acquired"]
    c.ok("query", sql="UPDATE t1 SET v = 77 WHERE id = 1")
    thread = [l for l in c.ok("status")["leases"] if l["lease"] == lease][0]["mysql_thread"]
    assert thread > 0
    observer.execute("KILL CONNECTION %d" % thread)
    r = c.ok("poll", timeout=ms(5))
    assert r["event"]["name"] == "lease_lost" and r["event"]["lease"] == lease
    assert r["event"]["reason"]
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")


def test_lease_lost_is_the_error_of_the_next_call(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    lease = c.ok("acquire", write=["t1"], wait=2000, ttl=10000)["acquired"]
    c.ok("query", sql="UPDATE t1 SET v = 78 WHERE id = 1")
    thread = [l for l in c.ok("status")["leases"] if l["lease"] == lease][0]["mysql_thread"]
    observer.execute("KILL CONNECTION %d" % thread)
    wait_until(lambda: observer.can_write("t1"), what="MySQL to free t1")
    assert c.ok("wait_readable", timeout=ms(5))["readable"]  # the lease_lost event
    r = c.err("commit")
    assert r["code"] == "lease_lost" and r["lease"] == lease
    assert observer.value("t1", 1) == 10  # never committed


def test_call_timeout_closes_the_connection_and_frees_the_waiter(daemon, drivers, tables):
    d = daemon()
    holder = drivers(d.sock, hello="holder")
    holder.ok("acquire", write=["t1"], wait=2000)
    waiter = drivers(d.sock, hello="waiter")
    t0 = time.monotonic()
    r = waiter.err("acquire", write=["t1"], wait=5000, timeout=300)
    took = time.monotonic() - t0
    assert r["code"] == "timeout" and took < scaled(2.0)
    assert "300 ms" in r["message"]
    # The handle is closed, and the daemon dropped the waiting request.
    assert waiter.err("ping")["code"] == "closed"
    wait_until(lambda: all(l["state"] != "waiting" for l in holder.ok("status")["leases"]),
               what="the waiter to leave the queue")
    holder.ok("commit")


def test_timeout_against_a_daemon_that_does_not_answer(daemon, drivers, tables):
    d = daemon()
    c = drivers(d.sock)
    d.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = c.err("ping", timeout=300)
        assert r["code"] == "timeout" and time.monotonic() - t0 < scaled(2.0)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert c.err("ping")["code"] == "closed"


def test_commit_unknown_when_the_answer_never_comes(daemon, drivers, tables):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("query", sql="UPDATE t1 SET v = 5 WHERE id = 1")
    d.proc.send_signal(signal.SIGSTOP)
    try:
        r = c.err("commit", timeout=300)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    # The COMMIT was sent: the library cannot know whether it ran.
    assert r["code"] == "commit_unknown"
    assert r["held"] == 0


def test_lock_timeout_and_try_lock(daemon, drivers, tables):
    d = daemon()
    a = drivers(d.sock)
    a.ok("acquire", write=["t1"], wait=2000)
    b = drivers(d.sock)
    r = b.err("acquire", read=["t1"], wait=200)
    assert r["code"] == "lock_timeout"
    r = b.err("acquire", read=["t1"], wait=0)
    assert r["code"] == "lock_timeout"
    a.ok("rollback")
    # The daemon frees the tables once UNLOCK TABLES is done, just after
    # answering the rollback: wait for them rather than try once.
    b.ok("acquire", read=["t1"], wait=2000)
    b.ok("rollback")


def test_lease_held_and_aliases(daemon, drivers, tables):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", read=["t1", {"table": "t1", "as": "a"}], wait=2000)
    r = c.ok("query", sql="SELECT COUNT(*) FROM t1 JOIN t1 AS a ON a.id = t1.id")
    assert r["result"]["rows"][0][0]["int64"] == 3
    assert c.err("acquire", write=["t2"])["code"] == "lease_held"
    c.ok("rollback")


def test_revoke_by_an_admin(daemon, drivers, tables, observer):
    d = daemon()
    holder = drivers(d.sock, hello="holder")
    lease = holder.ok("acquire", write=["t1"], wait=2000)["acquired"]
    holder.ok("query", sql="UPDATE t1 SET v = 55 WHERE id = 1")
    admin = drivers(d.sock, hello="admin")  # root, by peer credentials
    admin.ok("revoke", lease=lease)
    assert holder.ok("wait_readable", timeout=ms(5))["readable"]
    r = holder.err("query", sql="SELECT 1")
    assert r["code"] == "lease_revoked" and r["lease"] == lease
    assert observer.value("t1", 1) == 10
    assert admin.err("revoke", lease=lease)["code"] == "no_lease"
    assert admin.err("revoke", lease=0)["code"] == "usage"


def test_status_shows_held_and_waiting(daemon, drivers, tables):
    d = daemon()
    holder = drivers(d.sock, hello="holder")
    held = holder.ok("acquire", write=["t1"], read=["t2"], wait=2000, ttl=30000)["acquired"]
    waiter = Driver(d.sock, hello="waiter")
    try:
        waiter.proc.stdin.write(b'{"cmd":"acquire","write":["t1"],"wait":10000}\n')
        waiter.proc.stdin.flush()
        st = wait_until(lambda: (lambda s: s if len(s["leases"]) == 2 else None)(holder.ok("status")),
                        what="the waiter in status")
        by_id = {l["lease"]: l for l in st["leases"]}
        h = by_id[held]
        assert h["state"] == "held" and h["client"] == "holder"
        assert h["write"] == ["app.t1"] and h["read"] == ["app.t2"]
        assert h["uid"] == os.getuid() and h["pid"] == holder.proc.pid
        assert h["mysql_thread"] > 0 and 0 < h["expires_in_ms"] <= 30000 and h["held_ms"] >= 0
        w = [l for l in st["leases"] if l["lease"] != held][0]
        assert w["state"] == "waiting" and w["client"] == "waiter" and w["lease"] > held
        assert w["expires_in_ms"] == -1 and w["mysql_thread"] == -1 and w["held_ms"] == -1
        assert st["pool"]["size"] == 4 and st["pool"]["busy"] >= 1
        assert st["totals"]["acquired"] >= 1
        holder.ok("commit")
        line = waiter.proc.stdout.readline()
        assert b'"ok":true' in line
        waiter.ok("rollback")
    finally:
        waiter.close()


def test_daemon_shutdown_closes_the_connection(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("query", sql="UPDATE t1 SET v = 3 WHERE id = 1")
    assert d.stop() == 0
    r = c.err("query", sql="SELECT 1")
    assert r["code"] == "closed" and "closed the connection" in r["message"]
    assert observer.value("t1", 1) == 10
    assert c.err("ping")["code"] == "closed"


def test_last_response_is_the_raw_line(daemon, drivers):
    d = daemon()
    c = drivers(d.sock)
    c.ok("ping")
    raw = c.ok("last_response")["raw"]
    assert '"ok":true' in raw and raw.startswith("{")


def test_close_with_a_lease_rolls_back(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("query", sql="UPDATE t1 SET v = 1")
    c.ok("close")
    wait_until(lambda: observer.can_write("t1"), what="close to release t1")
    assert observer.value("t1", 1) == 10


def test_tcp_with_a_token(tcp_daemon, drivers, tables, observer):
    d, address = tcp_daemon()
    c = drivers(address, hello=None)
    c.ok("ping")  # allowed before hello
    r = c.err("acquire", write=["t1"])
    assert r["code"] == "unauthenticated"
    r = c.err("hello", client="tcp-test", token="wrong")
    assert r["code"] == "unauthenticated"
    c = drivers(address, hello=None)
    c.ok("hello", client="tcp-test", token=TCP_TOKEN)
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("query", sql="UPDATE t1 SET v = 8 WHERE id = 1")
    assert not observer.can_read("t1")
    c.ok("commit")
    assert observer.value("t1", 1) == 8
    # IPv6 brackets and names parse too (a refused port is "connect", not "usage").
    r = Driver(connect=False)
    try:
        assert r.err("connect", address="tcp:[::1]:1", timeout=2000)["code"] == "connect"
        assert r.err("connect", address="tcp:localhost:1", timeout=2000)["code"] == "connect"
    finally:
        r.close()


# ---------------------------------------------------------------- statements on acquire and commit


def test_acquire_with_statements_holds_the_lease(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    r = c.ok("acquire", write=["t1"], read=["t2"], wait=2000, ttl=10000, statements=[
        {"sql": "SELECT v FROM t1 WHERE id = ?", "params": [1]},
        {"sql": "UPDATE t1 SET v = v + ? WHERE id = ?", "params": [7, 2]},
        {"sql": "SELECT COUNT(*) FROM t2"},
    ])
    lease = r["acquired"]
    assert lease > 0 and r["held"] == lease and r["ttl"] == 10000
    assert r["results"][0]["rows"][0][0]["int64"] == 10
    assert r["results"][1]["affected_rows"] == 1 and "error" not in r["results"][1]
    assert r["results"][2]["rows"][0][0]["int64"] == 3
    # Held: the outside session sees the lock, and not the uncommitted write.
    assert not observer.can_read("t1")
    assert observer.can_read("t2") and not observer.can_write("t2")
    r = c.ok("query", sql="SELECT v FROM t1 WHERE id = 2")
    assert r["result"]["rows"][0][0]["int64"] == 27
    c.ok("commit")
    assert observer.value("t1", 2) == 27 and observer.can_write("t1")


def test_acquire_with_a_failing_statement_holds_nothing(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    r = c.err("acquire", write=["t1"], wait=2000, statements=[
        {"sql": "UPDATE t1 SET v = 0 WHERE id = 1"},
        {"sql": "INSERT INTO t1 (id, v) VALUES (2, 0)"},
    ])
    assert r["code"] == "mysql" and r["mysql_errno"] == 1062 and r["statement"] == 1
    assert r["held"] == 0 and r["results_null"]
    assert observer.can_write("t1") and observer.value("t1", 1) == 10
    # Refused by the firewall: nothing was locked at all.
    r = c.err("acquire", write=["t1"], wait=2000, statements=[
        {"sql": "SELECT 1"}, {"sql": "SELECT 2"}, {"sql": "UNLOCK TABLES"}])
    assert r["code"] == "statement_not_allowed" and r["statement"] == 2 and r["held"] == 0
    r = c.err("acquire", write=["t1"], wait=2000, statements=[{"sql": "SELECT ?"}])
    assert r["code"] == "bad_params" and r["statement"] == 0
    # A usage error names the statement too, and sends nothing.
    r = c.err("acquire", write=["t1"], statements=[{"sql": "SELECT 1"},
                                                   {"sql": "SELECT ?", "params": [{"binary": "x"}]}])
    assert r["code"] == "usage" and r["statement"] == 1
    # The connection is fine, and free to acquire.
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("rollback")


def test_acquire_with_a_result_over_the_limits(daemon, drivers, tables, observer):
    d = daemon(statements={"max_rows": 2})
    c = drivers(d.sock)
    r = c.ok("acquire", write=["t1"], wait=2000, statements=[
        {"sql": "SELECT id FROM t1"},
        {"sql": "UPDATE t1 SET v = 1 WHERE id = 1"},
    ])
    err = r["results"][0]["error"]
    assert err["code"] == "result_too_large" and r["results"][0]["rows"] == []
    assert r["results"][1]["affected_rows"] == 1 and "error" not in r["results"][1]
    assert r["held"] != 0
    c.ok("commit")
    assert observer.value("t1", 1) == 1


def test_commit_with_statements(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    v = c.ok("acquire", write=["t1"], wait=2000, statements=[
        {"sql": "SELECT v FROM t1 WHERE id = 3"}])["results"][0]["rows"][0][0]["int64"]
    assert v == 30
    r = c.ok("commit", statements=[
        {"sql": "UPDATE t1 SET v = ? WHERE id = 3", "params": [v + 1]},
        {"sql": "SELECT v FROM t1 WHERE id = 3"},
    ])
    assert r["held"] == 0
    assert r["results"][0]["affected_rows"] == 1
    assert r["results"][1]["rows"][0][0]["int64"] == 31
    assert observer.value("t1", 3) == 31 and observer.can_write("t1")


def test_commit_with_a_failing_statement_rolls_back(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    c.ok("acquire", write=["t1"], wait=2000)
    c.ok("query", sql="UPDATE t1 SET v = 99 WHERE id = 1")
    r = c.err("commit", statements=[
        {"sql": "UPDATE t1 SET v = 98 WHERE id = 2"},
        {"sql": "INSERT INTO t1 (id, v) VALUES (3, 0)"},
    ])
    assert r["code"] == "mysql" and r["mysql_errno"] == 1062 and r["statement"] == 1
    assert r["held"] == 0 and r["results_null"]
    assert observer.can_write("t1")
    assert observer.value("t1", 1) == 10 and observer.value("t1", 2) == 20
    assert c.err("query", sql="SELECT 1")["code"] == "no_lease"


def test_commit_with_a_refused_statement_keeps_the_lease(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    lease = c.ok("acquire", write=["t1"], wait=2000)["acquired"]
    c.ok("query", sql="UPDATE t1 SET v = 55 WHERE id = 1")
    r = c.err("commit", statements=[{"sql": "UPDATE t1 SET v = 1 WHERE id = 2"},
                                    {"sql": "COMMIT"}])
    assert r["code"] == "statement_not_allowed" and r["statement"] == 1
    assert r["held"] == lease
    r = c.err("commit", statements=[{"sql": "UPDATE t1 SET v = ? WHERE id = 2"}])
    assert r["code"] == "bad_params" and r["statement"] == 0 and r["held"] == lease
    r = c.err("commit", statements=[{"sql": "SELECT ?", "params": [{"binary": "x"}]}])
    assert r["code"] == "usage" and r["statement"] == 0 and r["held"] == lease
    # Nothing of those ran; the lease and its transaction are as they were.
    assert not observer.can_read("t1")
    assert c.ok("query", sql="SELECT v FROM t1 WHERE id = 2")["result"]["rows"][0][0]["int64"] == 20
    c.ok("commit")
    assert observer.value("t1", 1) == 55 and observer.value("t1", 2) == 20
    assert observer.can_write("t1")


# ---------------------------------------------------------------- pipelining


def test_pipelined_cycles_answer_in_order(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    # Three read-decide-write cycles and a transact, written at once.
    for i in (1, 2, 3):
        assert c.ok("queue", op="acquire", write=["t1"], wait=2000, statements=[
            {"sql": "SELECT v FROM t1 WHERE id = ?", "params": [i]}])["pending"] == 2 * i - 1
        c.ok("queue", op="commit", statements=[
            {"sql": "UPDATE t1 SET v = v * 2 WHERE id = ?", "params": [i]}])
    c.ok("queue", op="transact", read=["t1"], statements=[{"sql": "SELECT SUM(v) FROM t1"}])
    assert c.ok("flush")["pending"] == 7
    # Synchronous calls wait their turn.
    assert c.err("ping")["code"] == "usage"
    assert c.err("poll", timeout=0)["code"] == "usage"
    leases = []
    for i in (1, 2, 3):
        r = c.ok("receive", n=1)
        assert r["results"][0]["rows"][0][0]["int64"] == 10 * i
        assert r["held"] == r["answer_lease"] > 0
        leases.append(r["answer_lease"])
        r = c.ok("receive", n=1)
        assert r["results"][0]["affected_rows"] == 1
        assert r["held"] == 0 and r["answer_lease"] == leases[-1]
    assert leases == sorted(leases) and len(set(leases)) == 3
    r = c.ok("receive", n=2)
    assert r["results"][0]["rows"][0][0]["double"] == 120.0 and r["results"][1] is None
    assert r["pending"] == 0
    assert c.err("receive")["code"] == "usage"
    assert [observer.value("t1", i) for i in (1, 2, 3)] == [20, 40, 60]
    c.ok("ping")


def test_pipelined_failure_does_not_stop_the_rest(daemon, drivers, tables, observer):
    d = daemon()
    holder = drivers(d.sock, hello="holder")
    holder.ok("acquire", write=["t2"], wait=2000)
    c = drivers(d.sock)
    c.ok("queue", op="acquire", write=["t2"], wait=0)
    c.ok("queue", op="query", sql="UPDATE t2 SET v = 0")
    c.ok("queue", op="commit")
    c.ok("queue", op="acquire", write=["t1"], wait=2000)
    c.ok("queue", op="query", sql="UPDATE t1 SET v = ? WHERE id = 1", params=[5])
    c.ok("queue", op="commit", statements=[{"sql": "SELECT v FROM t1 WHERE id = 1"}])
    assert c.err("receive")["code"] == "lock_timeout"
    assert c.err("receive", n=1)["code"] == "no_lease"
    assert c.err("receive")["code"] == "no_lease"
    assert c.ok("receive")["held"] != 0
    assert c.ok("receive", n=1)["results"][0]["affected_rows"] == 1
    r = c.ok("receive", n=1)
    assert r["results"][0]["rows"][0][0]["int64"] == 5 and r["held"] == 0
    assert observer.value("t1", 1) == 5
    holder.ok("rollback")
    assert observer.value("t2", 1) == 10


def test_pipeline_reports_a_pending_event_before_writing(daemon, drivers, tables, observer):
    d = daemon()
    c = drivers(d.sock)
    lease = c.ok("acquire", write=["t1"], wait=2000, ttl=ms(0.3))["acquired"]
    assert c.ok("wait_readable", timeout=ms(5))["readable"]  # lease_expired is here
    c.ok("queue", op="query", sql="UPDATE t1 SET v = 1")
    c.ok("queue", op="commit")
    r = c.err("flush")
    assert r["code"] == "lease_expired" and r["lease"] == lease and r["pending"] == 0
    assert observer.value("t1", 1) == 10
    c.ok("ping")


def test_pipelined_commit_of_unknown_outcome(daemon, drivers, tables):
    d = daemon()
    c = drivers(d.sock)
    c.ok("queue", op="acquire", write=["t1"], wait=2000)
    c.ok("queue", op="query", sql="UPDATE t1 SET v = 5 WHERE id = 1")
    c.ok("flush")
    assert c.ok("receive")["held"] != 0
    assert c.ok("receive", n=1)["results"][0]["affected_rows"] == 1
    d.proc.send_signal(signal.SIGSTOP)
    try:
        c.ok("queue", op="query", sql="SELECT 1")
        c.ok("queue", op="commit")
        assert c.err("receive", n=1, timeout=300)["code"] == "timeout"
        # The commit was written: its outcome is unknown, and said so.
        r = c.err("receive")
        assert r["code"] == "commit_unknown" and r["held"] == 0 and r["pending"] == 0
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert c.err("ping")["code"] == "closed"


def test_long_pipeline_is_written_while_answers_come_back(daemon, drivers, tables, observer):
    d = daemon(daemon={"max_output_bytes": "1M"})
    c = drivers(d.sock)
    # ~4 KB requests and answers, 3 MB each way: more than the socket
    # buffers and than the daemon keeps for a client that does not read
    # (max_output_bytes, 1 MB here), so the library must read while it
    # writes, or the daemon closes the connection.
    pad = "x" * 4000
    n = 800
    for i in range(n):
        c.ok("queue", op="transact", write=["t1"], statements=[
            {"sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"},
            {"sql": "SELECT ?", "params": [pad]}])
    c.ok("flush", timeout=ms(30))
    for i in range(n):
        r = c.ok("receive", n=2)
        assert r["results"][1]["rows"][0][0]["text"] == pad
    assert observer.value("t1", 1) == 10 + n
