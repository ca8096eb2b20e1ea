"""The rebuilt request path: batches, statements on acquire and commit,
session resets only when a lease left state behind.

Everything runs against the real daemon and MariaDB, with an outside
observer session checking data and locks."""

import json
import socket
import urllib.request

import pytest

from conftest import error_code, ok, query, status, wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resets(port):
    """tablelockd_session_resets_total and leases ended, from /metrics."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    total, ended = None, 0
    for line in text.splitlines():
        if line.startswith("tablelockd_session_resets_total "):
            total = int(float(line.split()[1]))
        elif line.startswith("tablelockd_leases_ended_total{"):
            ended += int(float(line.split()[1]))
    assert total is not None, "no tablelockd_session_resets_total in /metrics"
    return total, ended


def stmt(sql, *params):
    s = {"sql": sql}
    if params:
        s["params"] = list(params)
    return s


def acquire(c, write=("t1",), read=(), statements=None, wait_ms=2000, ttl_ms=10000):
    req = {"op": "acquire", "write": list(write), "read": list(read), "wait_ms": wait_ms,
           "ttl_ms": ttl_ms}
    if statements is not None:
        req["statements"] = statements
    return c.call(req)


def commit(c, statements=None):
    req = {"op": "commit"}
    if statements is not None:
        req["statements"] = statements
    return c.call(req)


def one_pool(daemon, port=None, **sections):
    """A daemon with a pool of one session, so every lease gets the same
    MySQL session and what one leaves behind is what the next one sees."""
    sections.setdefault("mysql", {})["pool_size"] = 1
    if port is not None:
        sections["metrics"] = {"listen": "127.0.0.1:%d" % port}
    return daemon(**sections)


# ---------------------------------------------------------------- resets


# What one lease may leave in its session, how the next lease looks at it,
# and what that look must show on a clean session.
LEFTOVERS = [
    ("SET @x = 42", "SELECT @x", [[None]]),
    ("SELECT @y := 2", "SELECT @y", [[None]]),
    ("SELECT 3 INTO @z", "SELECT @z", [[None]]),
    ("SELECT GET_LOCK('tl-test', 0)", "SELECT IS_USED_LOCK('tl-test') = CONNECTION_ID()", [[None]]),
    ("SELECT LAST_INSERT_ID(77)", "SELECT LAST_INSERT_ID()", [[0]]),
    ("INSERT INTO auto (v) VALUES (1)", "SELECT LAST_INSERT_ID()", [[0]]),
]


@pytest.fixture
def auto_table(mariadb, tables):
    mariadb.sql("DROP TABLE IF EXISTS auto")
    mariadb.sql("CREATE TABLE auto (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    return "auto"


@pytest.mark.parametrize("leave,look,clean", LEFTOVERS, ids=[x[0] for x in LEFTOVERS])
@pytest.mark.parametrize("how", ["query", "transact", "acquire", "commit"])
def test_state_left_by_a_lease_is_invisible_to_the_next(daemon, observer, auto_table, leave,
                                                          look, clean, how):
    port = free_port()
    d = one_pool(daemon, port)
    write = ["t1", "auto"]
    with d.client() as c:
        if how == "query":
            ok(acquire(c, write=write))
            ok(query(c, leave))
            ok(commit(c))
        elif how == "transact":
            ok(c.call({"op": "transact", "write": write, "statements": [stmt(leave)]}))
        elif how == "acquire":
            ok(acquire(c, write=write, statements=[stmt(leave)]))
            ok(commit(c))
        else:
            ok(acquire(c, write=write))
            ok(commit(c, [stmt(leave)]))
        first = status(d)
        ok(acquire(c, write=write))
        seen = ok(query(c, look))["rows"]
        ok(commit(c))
    assert seen == clean, "%r left %r behind for the next lease" % (leave, seen)
    assert resets(port)[0] >= 1
    assert first["pool"]["size"] == 1


def test_plain_cycles_reset_nothing(daemon, observer, tables):
    """A lease that changes no session state hands its session back as it is:
    1,000 plain cycles, no reset."""
    port = free_port()
    d = one_pool(daemon, port)
    with d.client() as c:
        for i in range(500):
            ok(acquire(c))
            ok(query(c, "UPDATE t1 SET v = v + 1 WHERE id = 1"))
            ok(query(c, "SELECT v FROM t1 WHERE id = ?", [1]))
            ok(commit(c))
        for i in range(500):
            ok(c.call({"op": "transact", "write": ["t1"],
                       "statements": [stmt("UPDATE t1 SET v = v + 1 WHERE id = ?", 1)]}))
    total, ended = resets(port)
    assert ended >= 1000
    assert total == 0, "%d resets for %d plain leases" % (total, ended)
    assert observer.value("t1", 1) == 1010


def test_settings_come_back_after_a_reset(daemon, observer, tables):
    """After a reset the per-lease settings travel with the next statement:
    autocommit stays off, so a rollback still rolls back."""
    port = free_port()
    d = one_pool(daemon, port)
    with d.client() as c:
        ok(acquire(c))
        ok(query(c, "SET @dirty = 1"))
        ok(commit(c))
        wait_for(lambda: resets(port)[0] == 1, what="the reset")
        ok(acquire(c))
        assert ok(query(c, "SELECT @@autocommit, @@session_track_state_change"))["rows"] == [[0, 1]]
        ok(query(c, "UPDATE t1 SET v = 555 WHERE id = 1"))
        ok(c.call({"op": "rollback"}))
    assert observer.value("t1", 1) == 10


# ---------------------------------------------------------------- statements on acquire and commit


def test_acquire_with_statements_holds_and_answers_results(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        resp = ok(acquire(c, statements=[stmt("SELECT v FROM t1 WHERE id = ?", 2),
                                         stmt("UPDATE t1 SET v = v + 1 WHERE id = 2")]))
        assert resp["results"][0]["rows"] == [[20]]
        assert resp["results"][1]["affected_rows"] == 1
        assert not observer.can_write("t1"), "the lease must still hold t1"
        resp = ok(commit(c, [stmt("UPDATE t1 SET v = ? WHERE id = ?", 99, 3)]))
        assert resp["results"] == [{"affected_rows": 1, "insert_id": 0, "warnings": 0,
                                    "info": "Rows matched: 1  Changed: 1  Warnings: 0"}]
    assert observer.value("t1", 2) == 21 and observer.value("t1", 3) == 99
    assert observer.can_write("t1")


def test_failing_statement_on_acquire_leaves_no_lease(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        resp = acquire(c, statements=[stmt("UPDATE t1 SET v = 0"), stmt("SELECT * FROM t2")])
        assert error_code(resp) == "mysql" and resp["statement"] == 1, resp
        assert observer.can_write("t1")
        assert error_code(query(c, "SELECT 1")) == "no_lease"
    assert observer.value("t1", 1) == 10
    st = status(d)
    assert st["leases"] == []
    assert st["totals"]["acquired"] == 1 and st["totals"]["rolled_back"] == 1, st["totals"]


def test_refused_statement_on_acquire_locks_nothing(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        resp = acquire(c, statements=[stmt("SELECT 1"), stmt("DROP TABLE t1")])
        assert error_code(resp) == "statement_not_allowed" and resp["statement"] == 1
        assert status(d)["totals"]["acquired"] == 0
        assert status(d)["leases"] == []


def test_failing_statement_on_commit_rolls_back_and_ends(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        ok(query(c, "UPDATE t1 SET v = 1 WHERE id = 1"))
        resp = commit(c, [stmt("UPDATE t1 SET v = 2 WHERE id = 2"), stmt("SELECT * FROM t2")])
        assert error_code(resp) == "mysql" and resp["statement"] == 1, resp
        assert observer.can_write("t1")
        assert error_code(commit(c)) == "no_lease"
    assert observer.value("t1", 1) == 10 and observer.value("t1", 2) == 20


def test_refused_statement_on_commit_keeps_the_lease(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        ok(query(c, "UPDATE t1 SET v = 1 WHERE id = 1"))
        resp = commit(c, [stmt("UPDATE t1 SET v = 2 WHERE id = 2"), stmt("UNLOCK TABLES")])
        assert error_code(resp) == "statement_not_allowed" and resp["statement"] == 1
        assert not observer.can_write("t1"), "still held"
        ok(commit(c))
    assert observer.value("t1", 1) == 1 and observer.value("t1", 2) == 20


def test_result_too_large_on_commit_rolls_back(daemon, observer, tables):
    d = daemon(statements={"max_rows": 2})
    with d.client() as c:
        ok(acquire(c))
        resp = commit(c, [stmt("UPDATE t1 SET v = 0"), stmt("SELECT * FROM t1")])
        assert error_code(resp) == "result_too_large" and resp["statement"] == 1, resp
    assert observer.value("t1", 1) == 10


def test_result_too_large_on_acquire_is_that_results_entry(daemon, observer, tables):
    d = daemon(statements={"max_rows": 2})
    with d.client() as c:
        resp = ok(acquire(c, statements=[stmt("SELECT * FROM t1"), stmt("SELECT 1")]))
        assert resp["results"][0]["error"]["code"] == "result_too_large"
        assert resp["results"][1]["rows"] == [[1]]
        ok(commit(c))


# ---------------------------------------------------------------- batching and the firewall


SMUGGLED = [
    "SELECT 1; DELETE FROM t1",
    "SELECT 1;DELETE FROM t1;",
    "SELECT 1 -- x\n; DELETE FROM t1",
    "SELECT 1 # x\n; DELETE FROM t1",
    "SELECT 1 /* ; */ ; DELETE FROM t1",
    "SELECT 1 /*!50000 ; DELETE FROM t1 */",
    "SELECT 1 /*M!100000 ; DELETE FROM t1 */",
    "SELECT '1'; DELETE FROM t1; SELECT '",
    "SELECT 1 ;\n DELETE FROM t1",
]


@pytest.mark.parametrize("sql", SMUGGLED)
@pytest.mark.parametrize("how", ["transact", "acquire", "commit"])
def test_a_smuggled_second_statement_never_runs(daemon, observer, tables, sql, how):
    d = daemon()
    with d.client() as c:
        if how == "transact":
            resp = c.call({"op": "transact", "write": ["t1"],
                           "statements": [stmt("SELECT 0"), stmt(sql)]})
        elif how == "acquire":
            resp = acquire(c, statements=[stmt("SELECT 0"), stmt(sql)])
        else:
            ok(acquire(c))
            resp = commit(c, [stmt("SELECT 0"), stmt(sql)])
            ok(commit(c))
        assert error_code(resp) == "statement_not_allowed" and resp["statement"] == 1, resp
    assert observer.value("t1", 1) == 10 and observer.value("t1", 3) == 30


TRAILING = [
    "UPDATE t1 SET v = v + 1 WHERE id = 1;",
    "UPDATE t1 SET v = v + 1 WHERE id = 1 ;  ",
    "UPDATE t1 SET v = v + 1 WHERE id = 1 -- done",
    "UPDATE t1 SET v = v + 1 WHERE id = 1 # done",
    "UPDATE t1 SET v = v + 1 WHERE id = 1; -- done",
    "UPDATE t1 SET v = v + 1 WHERE id = 1 /* done */",
    "/*!UPDATE*/ t1 SET v = v + 1 WHERE id = 1",
]


@pytest.mark.parametrize("sql", TRAILING)
def test_statements_ending_in_comments_or_semicolons_batch_correctly(daemon, observer, tables, sql):
    """Each statement of a batch ends exactly where its text ends: a trailing
    ';' or comment never swallows the daemon's own UNLOCK TABLES."""
    d = daemon()
    with d.client() as c:
        ok(c.call({"op": "transact", "write": ["t1"], "statements": [stmt(sql), stmt(sql)]}))
        assert observer.can_write("t1")
        ok(acquire(c, statements=[stmt(sql)]))
        ok(commit(c, [stmt(sql)]))
    assert observer.value("t1", 1) == 14
    assert observer.can_write("t1")


def test_do_in_a_batch_is_still_bounded_by_timeout_ms(daemon, observer, tables):
    d = daemon(statements={"timeout_ms": 300})
    with d.client() as c:
        ok(acquire(c))
        resp = commit(c, [stmt("UPDATE t1 SET v = 0"), stmt("DO SLEEP(5)")])
        assert error_code(resp) == "statement_timeout" and resp["statement"] == 1, resp
        resp = ok(c.call({"op": "transact", "write": ["t1"],
                          "statements": [stmt("DO 1, 2"), stmt("UPDATE t1 SET v = 7 WHERE id = 1")]}))
        assert resp["results"][0] == {"affected_rows": 0, "insert_id": 0, "warnings": 0}
    assert observer.value("t1", 1) == 7 and observer.value("t1", 2) == 20


# ---------------------------------------------------------------- pipelined requests in one round trip


def send_lines(c, *objs):
    c.send_raw(b"".join(json.dumps(o).encode() + b"\n" for o in objs))
    return [c.recv_response(timeout=10) for _ in objs]


def test_pipelined_cycle_answers_each_request_in_order(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        rs = send_lines(c, {"id": 1, "op": "acquire", "write": ["t1"]},
                        {"id": 2, "op": "query", "sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"},
                        {"id": 3, "op": "query", "sql": "SELECT v FROM t1 WHERE id = ?", "params": [1]},
                        {"id": 4, "op": "commit"},
                        {"id": 5, "op": "query", "sql": "SELECT 1"})
        assert [r["id"] for r in rs] == [1, 2, 3, 4, 5]
        assert rs[0]["ok"] and rs[1]["affected_rows"] == 1 and rs[2]["rows"] == [[11]]
        assert rs[3] == {"id": 4, "ok": True, "lease": rs[0]["lease"]}
        assert error_code(rs[4]) == "no_lease"
    assert observer.value("t1", 1) == 11 and observer.can_write("t1")


def test_pipelined_failure_stops_the_batch_and_the_rest_runs_in_turn(daemon, observer, tables):
    """MySQL stops a batch at its first error; what it did not run is taken
    in its turn, with the answers one-at-a-time requests would get."""
    d = daemon()
    with d.client() as c:
        rs = send_lines(c, {"op": "acquire", "write": ["t1"]},
                        {"op": "query", "sql": "UPDATE t1 SET v = 100 WHERE id = 1"},
                        {"op": "query", "sql": "SELECT nope FROM t1"},
                        {"op": "query", "sql": "UPDATE t1 SET v = 200 WHERE id = 2"},
                        {"op": "query", "sql": "DROP TABLE t1"},
                        {"op": "query", "sql": "UPDATE t1 SET v = 300 WHERE id = 3"},
                        {"op": "commit"},
                        {"op": "commit"})
        assert rs[0]["ok"] and rs[1]["ok"]
        assert error_code(rs[2]) == "mysql" and rs[2]["error"]["mysql_errno"] == 1054
        assert rs[3]["ok"] and error_code(rs[4]) == "statement_not_allowed" and rs[5]["ok"]
        assert rs[6]["ok"] and error_code(rs[7]) == "no_lease"
    assert [observer.value("t1", i) for i in (1, 2, 3)] == [100, 200, 300]


def test_pipelined_cycle_then_hang_up_never_commits_the_open_lease(daemon, observer, tables):
    """A hang-up right after a pipeline: the first lease may or may not have
    committed before the daemon saw the hang-up (both are legal, as with
    requests sent one by one), but the second, never committed, leaves
    nothing, and no lease or lock is left behind."""
    d = daemon()
    c = d.client()
    c.send_raw(b'{"op":"acquire","write":["t1"]}\n{"op":"query","sql":"UPDATE t1 SET v = 5 WHERE id = 1"}\n'
               b'{"op":"commit"}\n{"op":"acquire","write":["t1"]}\n'
               b'{"op":"query","sql":"UPDATE t1 SET v = 6 WHERE id = 1"}\n')
    c.close()
    wait_for(lambda: status(d)["leases"] == [] and observer.can_write("t1"), what="the second lease rolled back")
    assert observer.value("t1", 1) in (5, 10)
    assert d.running()


def test_lost_lease_is_still_reported_after_a_failed_acquire_and_a_transact(daemon, observer, tables):
    """Found by make soak: a lease is lost, then an acquire fails
    (lock_timeout) and a transact commits; the next lease op still learns
    of the lost lease, since no lease was granted in between (a transact
    leaves none; PROTOCOL.md §7)."""
    d = daemon()
    with d.client() as c, d.client() as other:
        lost = ok(acquire(c, write=["t1"]))["lease"]
        thread = [x for x in status(d)["leases"] if x["lease"] == lost][0]["mysql_thread"]
        ok(acquire(other, write=["t2"]))
        observer.execute("KILL CONNECTION %d" % thread)
        assert c.wait_event("lease_lost")["lease"] == lost
        assert error_code(acquire(c, write=["t2"], wait_ms=50)) == "lock_timeout"
        ok(c.call({"op": "transact", "write": ["t1"], "statements": [stmt("SELECT 1")]}))
        resp = query(c, "SELECT 1")
        assert error_code(resp) == "lease_lost" and str(lost) in resp["error"]["message"], resp
        assert error_code(query(c, "SELECT 1")) == "no_lease"


def test_a_pipeline_then_shutdown_of_the_sending_side_is_answered_whole(daemon, observer, tables):
    """printf '…' | socat: every request written before the client shut its
    sending side is answered, in order, however the answers and the end of
    input interleave in the daemon."""
    d = daemon()
    for round_ in range(20):
        with d.client() as c:
            lines = [{"id": 1, "op": "acquire", "write": ["t1"]},
                     {"id": 2, "op": "query", "sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"},
                     {"id": 3, "op": "commit"},
                     {"id": 4, "op": "ping"},
                     {"id": 5, "op": "transact", "write": ["t1"],
                      "statements": [stmt("UPDATE t1 SET v = v + 1 WHERE id = 2")]},
                     {"id": 6, "op": "status"}]
            c.send_raw(b"".join(json.dumps(o).encode() + b"\n" for o in lines))
            c.sock.shutdown(socket.SHUT_WR)
            got = [c.recv_response(timeout=10) for _ in lines]
            assert [r["id"] for r in got] == [1, 2, 3, 4, 5, 6], got
            assert all(r["ok"] for r in got), got
    assert observer.value("t1", 1) == 30 and observer.value("t1", 2) == 40
