"""client/python/tablelock (the package's core, `import tablelock`) against the
real daemon and MariaDB (Debian's python3).

The context manager must commit on normal exit and roll back on an
exception; the observer checks both. Django models are stood in for by a
class with _meta.db_table, which is all the client reads from them.
"""

import decimal
import os
import select
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "python"))
import tablelock  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "tests"))
from clienttest import TCP_TOKEN, tcp_daemon, wait_until  # noqa: E402,F401
from conftest import scaled  # noqa: E402


class _Meta:
    def __init__(self, db_table):
        self.db_table = db_table


class Poll:
    """Looks like a Django model class to the client: only _meta.db_table."""
    _meta = _Meta("t2")


class Choice:
    _meta = _Meta("t1")


@pytest.fixture
def client(daemon):
    d = daemon()
    c = tablelock.Client(d.sock, name="py-test")
    yield c
    c.close()


def test_lock_commits_on_normal_exit(client, tables, observer):
    with client.lock(read=[Poll], write=[Choice]) as lease:
        assert lease.active and lease.id > 0
        assert not observer.can_read("t1") and not observer.can_write("t2")
        before = lease.query("SELECT v FROM t1 WHERE id = ?", [1]).scalar()
        r = lease.query("UPDATE t1 SET v = ? WHERE id = ?", [before + 5, 1])
        assert r.affected_rows == 1 and r.rowcount == 1
        assert r.info == "Rows matched: 1  Changed: 1  Warnings: 0"
        same = lease.query("UPDATE t1 SET v = v WHERE id = ?", [1])
        assert same.affected_rows == 0 and same.info.startswith("Rows matched: 1  Changed: 0")
        assert lease.query("SELECT COUNT(*) FROM t2").scalar() == 3
    assert not lease.active and client.lease is None
    assert observer.value("t1", 1) == 15
    assert observer.can_write("t1") and observer.can_write("t2")
    # The fence: MySQL's, growing along the holders of t1 (a transact too).
    assert lease.fence > 0 and client.last_fence == lease.fence
    with client.lock(write=["t1"]) as second:
        assert second.fence > lease.fence
    client.transact(["UPDATE t1 SET v = v WHERE id = 1"], write=["t1"])
    assert client.last_fence > second.fence


def test_lock_rolls_back_on_exception(client, tables, observer):
    with pytest.raises(ZeroDivisionError):
        with client.lock(write=["t1"]) as lease:
            lease.query("DELETE FROM t1")
            1 / 0
    assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3
    assert observer.can_write("t1")
    client.ping()  # the connection is still good


def test_errors_carry_the_protocol_code(client, tables, observer):
    with pytest.raises(tablelock.MySQLError) as e:
        with client.lock(read=["t1"]) as lease:
            lease.query("UPDATE t1 SET v = 0")
    assert e.value.code == "mysql" and e.value.mysql_errno == 1099
    assert e.value.sqlstate == "HY000" and "1099" in str(e.value)
    assert observer.can_write("t1")

    with pytest.raises(tablelock.TablelockError) as e:
        client.query("SELECT 1")
    assert e.value.code == "no_lease"

    with pytest.raises(tablelock.TablelockError) as e:
        client.transact(["SELECT 1", "UNLOCK TABLES"], write=["t1"])
    assert e.value.code == "statement_not_allowed" and e.value.statement == 1


def test_lock_timeout(daemon, tables):
    d = daemon()
    with tablelock.Client(d.sock) as a, tablelock.Client(d.sock) as b:
        a.acquire(write=["t1"])
        with pytest.raises(tablelock.LockTimeoutError) as e:
            b.acquire(read=["t1"], wait_ms=200)
        assert e.value.code == "lock_timeout"
        a.rollback()
        # The daemon frees the tables once UNLOCK TABLES is done, just after
        # answering the rollback: wait for them rather than try once.
        b.acquire(read=["t1"], wait_ms=2000).rollback()


def test_daemon_not_running(tmp_path):
    with pytest.raises(tablelock.ConnectError) as e:
        tablelock.Client(str(tmp_path / "none.sock"))
    assert e.value.code == "connect" and "none.sock" in str(e.value)


def test_expired_lease_is_raised_by_the_next_call(client, tables, observer):
    lease = client.acquire(write=["t1"], ttl_ms=10000)
    client.query("UPDATE t1 SET v = 0")
    # The short TTL only now that the UPDATE is in (renew counts from now):
    # acquiring with it raced the UPDATE against 300 ms.
    lease.renew(int(scaled(0.3) * 1000))
    wait_until(lambda: observer.can_write("t1"), what="expiry")
    # The event is on its way; once it is here, the next call reports it.
    assert select.select([client.fileno()], [], [], scaled(5))[0], "no event from the daemon"
    with pytest.raises(tablelock.LeaseEndedError) as e:
        client.ping()
    assert e.value.code == "lease_expired" and e.value.lease == lease.id
    assert observer.value("t1", 1) == 10
    client.ping()  # reported once


def test_block_whose_lease_expired_does_not_pass_silently(client, tables, observer):
    with pytest.raises(tablelock.LeaseEndedError) as e:
        with client.lock(write=["t1"], ttl_ms=10000) as lease:
            lease.query("UPDATE t1 SET v = 1")
            # Shortened once the UPDATE is in, not raced against it.
            lease.renew(int(scaled(0.3) * 1000))
            time.sleep(scaled(1.0))
    assert e.value.code == "lease_expired"
    assert observer.value("t1", 1) == 10


def test_poll_and_lease_lost(client, tables, observer):
    lease = client.acquire(write=["t1"])
    client.query("UPDATE t1 SET v = 66 WHERE id = 1")
    assert client.poll(0) is None
    thread = [l for l in client.status()["leases"] if l["lease"] == lease.id][0]["mysql_thread"]
    observer.execute("KILL CONNECTION %d" % thread)
    ev = client.poll(scaled(5.0))
    assert ev["event"] == "lease_lost" and ev["lease"] == lease.id
    assert not lease.active
    assert observer.value("t1", 1) == 10


def test_transact_results_and_types(client, mariadb, tables, observer):
    mariadb.sql("DROP TABLE IF EXISTS pytypes")
    mariadb.sql("CREATE TABLE pytypes (id INT PRIMARY KEY, u BIGINT UNSIGNED, d DECIMAL(10,2), "
                "b VARBINARY(4), s VARCHAR(10))")
    results = client.transact([
        ("INSERT INTO pytypes VALUES (?, ?, ?, UNHEX('00FF'), ?)",
         [1, 2**64 - 1, decimal.Decimal("12.34"), "ünï"]),
        "SELECT id, u, d, b, s FROM pytypes",
        ("UPDATE t1 SET v = v + 1 WHERE id = ?", [3]),
    ], write=["pytypes", "t1"])
    assert client.last_lease > 0 and client.lease is None
    assert results[0].affected_rows == 1
    row = results[1].one()
    assert row == (1, 2**64 - 1, decimal.Decimal("12.34"), b"\x00\xff", "ünï")
    assert results[1].columns == ["id", "u", "d", "b", "s"]
    assert results[1].dicts()[0]["s"] == "ünï"
    assert observer.value("t1", 3) == 31

    with pytest.raises(tablelock.MySQLError) as e:
        client.transact([("UPDATE t1 SET v = 0 WHERE id = 1", []),
                         "INSERT INTO t1 (id, v) VALUES (2, 0)"], write=[Choice])
    assert e.value.statement == 1 and e.value.mysql_errno == 1062
    assert observer.value("t1", 1) == 10


def test_aliases_renew_status_and_revoke(daemon, tables, observer):
    d = daemon()
    with tablelock.Client(d.sock, name="holder") as holder, \
            tablelock.Client(d.sock, name="admin") as admin:
        assert holder.server_version
        lease = holder.acquire(read=[Choice, (Choice, "c2")], ttl_ms=5000)
        n = lease.query("SELECT COUNT(*) FROM t1 JOIN t1 AS c2 ON c2.id = t1.id").scalar()
        assert n == 3
        assert lease.renew(8000) == 8000
        st = admin.status()
        mine = [l for l in st["leases"] if l["lease"] == lease.id][0]
        assert mine["client"] == "holder" and mine["read"] == ["app.t1", "app.t1 AS c2"]
        admin.revoke(lease.id)
        with pytest.raises(tablelock.LeaseEndedError) as e:
            lease.query("SELECT 1")
        assert e.value.code == "lease_revoked"
        assert observer.can_write("t1")
        with pytest.raises(tablelock.TablelockError) as e:
            admin.revoke(lease.id)
        assert e.value.code == "no_lease"


def test_call_timeout_closes_the_connection_and_rolls_back(daemon, tables, observer):
    d = daemon()
    with tablelock.Client(d.sock) as c:
        c.acquire(write=["t1"])
        c.query("UPDATE t1 SET v = 1")
        # The short call timeout for the slow statement only: the setup's
        # calls under it failed whenever the machine was slow for 0.5 s.
        c.timeout = scaled(0.5)
        t0 = time.monotonic()
        with pytest.raises(tablelock.TablelockTimeout) as e:
            c.query("SELECT SLEEP(%d)" % int(scaled(3)))
        assert e.value.code == "timeout" and time.monotonic() - t0 < scaled(2)
        with pytest.raises(tablelock.ConnectError) as e:
            c.ping()
        assert e.value.code == "closed"
    # Closing the connection made the daemon roll back.
    wait_until(lambda: observer.can_write("t1"), what="the lease to end")
    assert observer.value("t1", 1) == 10


def test_usage_errors_send_nothing(client, tables):
    with pytest.raises(tablelock.TablelockError) as e:
        client.acquire()
    assert e.value.code == "usage"
    client.acquire(write=["t1"])
    with pytest.raises(tablelock.TablelockError) as e:
        client.query("SELECT ?", [b"bytes"])
    assert e.value.code == "usage"
    assert client.lease is not None  # still held
    client.rollback()


def test_tcp_with_a_token(tcp_daemon, tables, observer):
    d, address = tcp_daemon()
    with tablelock.Client(address) as c:
        with pytest.raises(tablelock.TablelockError) as e:
            c.acquire(write=["t1"])
        assert e.value.code == "unauthenticated"
    with tablelock.Client(address, name="tcp-py", token=TCP_TOKEN) as c:
        with c.lock(write=[Choice]) as lease:
            lease.query("UPDATE t1 SET v = 4 WHERE id = 1")
    assert observer.value("t1", 1) == 4


# ---------------------------------------------------------------- statements on acquire and commit


def test_lock_with_statements_returns_results_and_holds(client, tables, observer):
    with client.lock(write=[Choice], read=[Poll], statements=[
            ("SELECT v FROM t1 WHERE id = ?", [1]),
            ("UPDATE t1 SET v = v + ? WHERE id = ?", [5, 2]),
            "SELECT COUNT(*) FROM t2"]) as lease:
        assert lease.active and client.lease == lease.id
        assert [r.affected_rows for r in lease.results][1] == 1
        assert lease.results[0].scalar() == 10 and lease.results[2].scalar() == 3
        # Held: the outside session is locked out of t1 and cannot write t2.
        assert not observer.can_read("t1") and not observer.can_write("t2")
        assert lease.query("SELECT v FROM t1 WHERE id = 2").scalar() == 25
    assert observer.value("t1", 2) == 25 and observer.can_write("t1")
    # Without statements, results is empty.
    lease = client.acquire(write=["t1"])
    assert lease.results == []
    client.rollback()


def test_acquire_with_a_failing_statement_holds_nothing(client, tables, observer):
    with pytest.raises(tablelock.MySQLError) as e:
        client.acquire(write=["t1"], statements=["UPDATE t1 SET v = 0 WHERE id = 1",
                                                 "INSERT INTO t1 (id, v) VALUES (2, 0)"])
    assert e.value.statement == 1 and e.value.mysql_errno == 1062
    assert client.lease is None
    assert observer.can_write("t1") and observer.value("t1", 1) == 10
    with pytest.raises(tablelock.TablelockError) as e:
        with client.lock(write=["t1"], statements=["SELECT 1", "LOCK TABLES t2 READ"]):
            pass  # never entered
    assert e.value.code == "statement_not_allowed" and e.value.statement == 1
    with pytest.raises(tablelock.TablelockError) as e:
        client.acquire(write=["t1"], statements=["SELECT 1", ("SELECT ?", [b"x"])])
    assert e.value.code == "usage" and e.value.statement == 1
    assert client.lease is None and observer.can_write("t1")


def test_acquire_result_over_the_limits_is_an_error_in_place(daemon, tables, observer):
    d = daemon(statements={"max_rows": 2})
    with tablelock.Client(d.sock) as c:
        with c.lock(write=["t1"], statements=["SELECT id FROM t1",
                                              "UPDATE t1 SET v = 1 WHERE id = 1"]) as lease:
            big, upd = lease.results
            assert big.error.code == "result_too_large" and big.rows == []
            with pytest.raises(tablelock.TablelockError) as e:
                big.scalar()
            assert e.value.code == "result_too_large"
            assert upd.error is None and upd.affected_rows == 1
    assert observer.value("t1", 1) == 1


def test_statement_timeout_on_acquire_and_commit(daemon, tables, observer):
    d = daemon(statements={"timeout_ms": int(scaled(0.3) * 1000)})
    with tablelock.Client(d.sock) as c:
        with pytest.raises(tablelock.TablelockError) as e:
            c.acquire(write=["t1"], statements=["UPDATE t1 SET v = 0 WHERE id = 1",
                                                "SELECT SLEEP(%d)" % int(scaled(3))])
        assert e.value.code == "statement_timeout" and e.value.statement == 1
        assert c.lease is None and observer.can_write("t1")
        lease = c.acquire(write=["t1"])
        lease.query("UPDATE t1 SET v = 1 WHERE id = 1")
        with pytest.raises(tablelock.TablelockError) as e:
            lease.commit(statements=["UPDATE t1 SET v = 2 WHERE id = 2",
                                     "DO SLEEP(%d)" % int(scaled(3))])
        assert e.value.code == "statement_timeout" and e.value.statement == 1
        assert not lease.active and c.lease is None
    assert observer.can_write("t1")
    assert observer.value("t1", 1) == 10 and observer.value("t1", 2) == 20


def test_commit_with_statements(client, tables, observer):
    with client.lock(write=[Choice], statements=["SELECT v FROM t1 WHERE id = 3"]) as lease:
        v = lease.results[0].scalar()
        results = lease.commit(statements=[("UPDATE t1 SET v = ? WHERE id = 3", [v + 1]),
                                           "SELECT v FROM t1 WHERE id = 3"])
        assert results[0].affected_rows == 1 and results[1].scalar() == 31
        assert not lease.active and client.lease is None
    assert observer.value("t1", 3) == 31 and observer.can_write("t1")
    assert client.acquire(write=["t1"]).id > lease.id
    assert client.commit() == []


def test_commit_with_a_failing_statement_rolls_back(client, tables, observer):
    with pytest.raises(tablelock.MySQLError) as e:
        with client.lock(write=["t1"]) as lease:
            lease.query("UPDATE t1 SET v = 99 WHERE id = 1")
            lease.commit(statements=["UPDATE t1 SET v = 98 WHERE id = 2",
                                     "INSERT INTO t1 (id, v) VALUES (3, 0)"])
    assert e.value.statement == 1 and e.value.mysql_errno == 1062
    assert client.lease is None and not lease.active
    assert observer.can_write("t1")
    assert observer.value("t1", 1) == 10 and observer.value("t1", 2) == 20
    with pytest.raises(tablelock.TablelockError) as e:
        client.query("SELECT 1")
    assert e.value.code == "no_lease"


def test_commit_with_a_refused_statement_keeps_the_lease(client, tables, observer):
    lease = client.acquire(write=["t1"])
    lease.query("UPDATE t1 SET v = 55 WHERE id = 1")
    with pytest.raises(tablelock.TablelockError) as e:
        lease.commit(statements=["UPDATE t1 SET v = 1 WHERE id = 2", "ROLLBACK"])
    assert e.value.code == "statement_not_allowed" and e.value.statement == 1
    assert lease.active and not lease.ended and client.lease == lease.id
    with pytest.raises(tablelock.TablelockError) as e:
        client.commit(statements=[("UPDATE t1 SET v = ? WHERE id = 2", [])])
    assert e.value.code == "bad_params" and e.value.statement == 0 and lease.active
    assert not observer.can_read("t1")
    assert lease.query("SELECT v FROM t1 WHERE id = 2").scalar() == 20
    assert lease.commit() == []
    assert observer.value("t1", 1) == 55 and observer.value("t1", 2) == 20
    assert observer.can_write("t1")


def test_refused_commit_in_a_block_rolls_back_on_the_way_out(client, tables, observer):
    with pytest.raises(tablelock.TablelockError) as e:
        with client.lock(write=["t1"]) as lease:
            lease.query("UPDATE t1 SET v = 7 WHERE id = 1")
            lease.commit(statements=["COMMIT"])
    assert e.value.code == "statement_not_allowed"
    assert client.lease is None and observer.can_write("t1")
    assert observer.value("t1", 1) == 10


# ---------------------------------------------------------------- pipelining


def test_pipelined_cycles_answer_in_order(client, tables, observer):
    with client.pipeline() as p:
        for i in (1, 2, 3):
            p.acquire(write=[Choice], statements=[("SELECT v FROM t1 WHERE id = ?", [i])])
            p.commit(statements=[("UPDATE t1 SET v = v * 2 WHERE id = ?", [i])])
        p.transact(["SELECT SUM(v) FROM t1"], read=["t1"])
        assert len(p) == 7
    answers = p.answers
    assert len(answers) == 7
    for k, i in enumerate((1, 2, 3)):
        lease, committed = answers[2 * k], answers[2 * k + 1]
        assert isinstance(lease, tablelock.Lease) and not lease.active
        assert lease.results[0].scalar() == 10 * i
        assert committed[0].affected_rows == 1
    assert [answers[k].id for k in (0, 2, 4)] == sorted({answers[k].id for k in (0, 2, 4)})
    assert answers[6][0].scalar() == 120
    assert client.lease is None
    assert [observer.value("t1", i) for i in (1, 2, 3)] == [20, 40, 60]


def test_pipelined_failure_does_not_stop_the_rest(daemon, tables, observer):
    d = daemon()
    with tablelock.Client(d.sock, name="holder") as holder, tablelock.Client(d.sock) as c:
        holder.acquire(write=["t2"])
        p = c.pipeline()
        p.acquire(write=["t2"], wait_ms=0).query("UPDATE t2 SET v = 0").commit()
        p.acquire(write=["t1"]).query("UPDATE t1 SET v = ? WHERE id = 1", [5])
        p.commit(statements=["SELECT v FROM t1 WHERE id = 1"])
        with pytest.raises(tablelock.LockTimeoutError) as e:
            p.execute()
        answers = e.value.answers
        assert [a.code for a in answers[:3]] == ["lock_timeout", "no_lease", "no_lease"]
        assert isinstance(answers[3], tablelock.Lease)
        assert answers[4].affected_rows == 1 and answers[5][0].scalar() == 5
        assert p.execute() == []  # nothing left queued
        holder.rollback()
    assert observer.value("t1", 1) == 5 and observer.value("t2", 1) == 10


def test_pipeline_reports_a_pending_event_before_writing(client, tables, observer):
    lease = client.acquire(write=["t1"], ttl_ms=int(scaled(0.3) * 1000))
    assert select.select([client.fileno()], [], [], scaled(5))[0], "no event from the daemon"
    p = client.pipeline().query("UPDATE t1 SET v = 1").commit()
    with pytest.raises(tablelock.LeaseEndedError) as e:
        p.execute(raise_on_error=False)
    assert e.value.code == "lease_expired" and e.value.lease == lease.id
    assert observer.value("t1", 1) == 10
    client.ping()


def test_long_pipeline_is_written_while_answers_come_back(daemon, tables, observer):
    # 3 MB each way against max_output_bytes 1M: the client must read while
    # it writes, or the daemon closes the connection.
    d = daemon(daemon={"max_output_bytes": "1M"})
    pad = "x" * 4000
    with tablelock.Client(d.sock) as c:
        with c.pipeline() as p:
            for _ in range(800):
                p.transact(["UPDATE t1 SET v = v + 1 WHERE id = 1", ("SELECT ?", [pad])],
                           write=["t1"])
        assert all(a[1].scalar() == pad for a in p.answers)
    assert observer.value("t1", 1) == 810
