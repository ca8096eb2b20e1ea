"""Pipelined requests (PROTOCOL.md §3.2), end to end: several requests in one
write, or one request split over several writes, are handled strictly in
order, one response each, each as if the previous one had fully completed.
Every test checks the exact answers in order, that the daemon is still alive,
and what an outside MySQL session sees."""

import json
import random
import time

import pytest

from conftest import acquire, error_code, ok, status, wait_for

# ---------------------------------------------------------------- helpers


def line(obj):
    return json.dumps(obj).encode() + b"\n"


def pipeline(c, requests):
    """Sends requests in ONE write; returns their responses in order."""
    c.send_raw(b"".join(line(r) for r in requests))
    return read_responses(c, requests)


def read_responses(c, requests):
    responses = []
    for i, req in enumerate(requests):
        wait = (req.get("wait_ms") or 0) / 1000.0 + 10
        try:
            resp = c.recv_response(timeout=wait)
        except AssertionError as e:
            raise AssertionError("%s: no answer to request %d of %d, %r (answers so far: %r)"
                                 % (e, i + 1, len(requests), req, responses)) from None
        assert resp is not None, ("daemon closed the connection instead of answering request %d of %d, %r "
                                  "(answers so far: %r)" % (i + 1, len(requests), req, responses))
        responses.append(resp)
    return responses


def assert_alive(d):
    """The daemon process runs and answers a new connection."""
    assert d.running(), "tablelockd died (exit %r):\n%s" % (
        d.proc.poll() if d.proc else None, d.log_text()[-3000:])
    with d.client() as c:
        assert c.call({"op": "ping"}) == {"ok": True}


def assert_no_leases(d):
    wait_for(lambda: status(d)["leases"] == [], timeout=3, what="no lease left in status")


def assert_ids(responses, requests):
    for resp, req in zip(responses, requests):
        if "id" in req:
            assert resp.get("id") == req["id"], "response %r does not echo the id of %r" % (resp, req)
            assert list(resp)[0] == "id", "id is not the first key of %r" % (resp,)


INC = {"op": "query", "sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"}


def inc_transact(rid, table="t1"):
    return {"id": rid, "op": "transact", "write": [table], "wait_ms": 2000,
            "statements": [{"sql": "UPDATE %s SET v = v + 1 WHERE id = 1" % table}]}


# ---------------------------------------------------------------- the three known failures


def test_timed_out_acquire_then_query_in_one_write(daemon, observer, tables):
    """A waiter's acquire runs out while a query sits behind it in the same
    read: lock_timeout, then no_lease, and the daemon lives on."""
    d = daemon()
    with d.client() as a, d.client() as b:
        held = ok(acquire(a, write=["t1"], ttl_ms=30000))["lease"]
        reqs = [{"id": 1, "op": "acquire", "write": ["t1"], "wait_ms": 200},
                {"id": 2, "op": "query", "sql": "SELECT 1"}]
        got = pipeline(b, reqs)
        assert_ids(got, reqs)
        assert error_code(got[0]) == "lock_timeout", got
        assert error_code(got[1]) == "no_lease", got
        assert_alive(d)
        assert ok(a.call({"op": "commit"}))["lease"] == held
        assert observer.can_write("t1")
        # b is still usable and can lease the table now.
        ok(acquire(b, write=["t1"]))
        ok(b.call({"op": "rollback"}))
    assert_alive(d)
    assert_no_leases(d)


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_end_then_acquire_in_one_write(daemon, observer, tables, ending):
    """query + commit|rollback + acquire + commit|rollback in one write, on a
    connection holding a lease: the acquire sees the first lease gone."""
    d = daemon()
    with d.client() as c:
        first = ok(acquire(c, write=["t1"], ttl_ms=30000))["lease"]
        reqs = [dict(INC, id="q"), {"id": "e1", "op": ending},
                {"id": "a", "op": "acquire", "write": ["t1"], "wait_ms": 2000, "ttl_ms": 30000},
                {"id": "e2", "op": ending}]
        got = pipeline(c, reqs)
        assert_ids(got, reqs)
        assert ok(got[0])["affected_rows"] == 1, got
        assert ok(got[1])["lease"] == first, got
        second = ok(got[2])["lease"]
        assert second > first, got
        assert ok(got[3])["lease"] == second, got
        assert c.silent(0.2), "an extra response arrived"
        assert c.events == []
    assert_alive(d)
    assert observer.can_write("t1")
    assert observer.value("t1", 1) == (11 if ending == "commit" else 10)
    assert_no_leases(d)


def test_two_transacts_in_one_write(daemon, observer, tables):
    """A transact leaves no lease, so a second one right behind it runs."""
    d = daemon()
    with d.client() as c:
        reqs = [inc_transact(1), inc_transact(2)]
        got = pipeline(c, reqs)
        assert_ids(got, reqs)
        l1 = ok(got[0])["lease"]
        l2 = ok(got[1])["lease"]
        assert l2 > l1, got
        assert got[0]["results"][0]["affected_rows"] == 1
        assert got[1]["results"][0]["affected_rows"] == 1
    assert_alive(d)
    assert observer.value("t1", 1) == 12
    assert observer.can_write("t1")
    assert_no_leases(d)


# ---------------------------------------------------------------- the same family


def test_acquire_query_commit_in_one_write(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        reqs = [{"id": 1, "op": "acquire", "write": ["t1"], "wait_ms": 2000},
                dict(INC, id=2),
                {"id": 3, "op": "query", "sql": "SELECT v FROM t1 WHERE id = 1"},
                {"id": 4, "op": "commit"}]
        got = pipeline(c, reqs)
        assert_ids(got, reqs)
        lease = ok(got[0])["lease"]
        assert ok(got[1])["affected_rows"] == 1
        assert ok(got[2])["rows"] == [[11]]
        assert ok(got[3])["lease"] == lease
    assert_alive(d)
    assert observer.value("t1", 1) == 11
    assert observer.can_write("t1")
    assert_no_leases(d)


def test_transact_acquire_transact_mix_in_one_write(daemon, observer, tables):
    """transact, then lease ops, then a transact that must see lease_held,
    then commit, then a transact that runs."""
    d = daemon()
    with d.client() as c:
        reqs = [inc_transact(1),
                {"id": 2, "op": "acquire", "write": ["t1", "t2"], "wait_ms": 2000},
                inc_transact(3, "t2"),
                dict(INC, id=4),
                {"id": 5, "op": "commit"},
                inc_transact(6, "t2"),
                {"id": 7, "op": "commit"}]
        got = pipeline(c, reqs)
        assert_ids(got, reqs)
        l1 = ok(got[0])["lease"]
        l2 = ok(got[1])["lease"]
        assert error_code(got[2]) == "lease_held", got
        assert ok(got[3])["affected_rows"] == 1
        assert ok(got[4])["lease"] == l2
        l3 = ok(got[5])["lease"]
        assert l1 < l2 < l3, got
        assert error_code(got[6]) == "no_lease", got
    assert_alive(d)
    assert observer.value("t1", 1) == 12
    assert observer.value("t2", 1) == 11
    assert_no_leases(d)


@pytest.mark.parametrize("seed", range(6))
def test_pipeline_split_at_random_bytes(daemon, observer, tables, seed):
    """The same pipeline, cut into pieces at random byte positions (inside
    lines, between \\r and \\n, ...), sent with short pauses: the same answers."""
    rnd = random.Random(seed)
    d = daemon()
    reqs = [{"id": 1, "op": "acquire", "write": ["t1"], "read": ["t2"], "wait_ms": 2000},
            dict(INC, id=2),
            {"id": 3, "op": "query", "sql": "SELECT v FROM t2 WHERE id = ?", "params": [2]},
            {"id": 4, "op": "commit"},
            {"id": 5, "op": "commit"},
            inc_transact(6),
            {"id": 7, "op": "ping"},
            {"id": 8, "op": "acquire", "write": ["t2"], "wait_ms": 0},
            {"id": 9, "op": "rollback"}]
    data = b"".join(line(r) if i % 2 else line(r).replace(b"\n", b"\r\n") for i, r in enumerate(reqs))
    cuts = sorted(rnd.sample(range(1, len(data)), 12))
    with d.client() as c:
        start = 0
        for cut in cuts + [len(data)]:
            c.send_raw(data[start:cut])
            start = cut
            time.sleep(rnd.choice([0, 0, 0.001, 0.01]))
        got = read_responses(c, reqs)
        assert_ids(got, reqs)
        l1 = ok(got[0])["lease"]
        assert ok(got[1])["affected_rows"] == 1
        assert ok(got[2])["rows"] == [[20]]
        assert ok(got[3])["lease"] == l1
        assert error_code(got[4]) == "no_lease"
        l2 = ok(got[5])["lease"]
        assert got[6] == {"id": 7, "ok": True}
        l3 = ok(got[7])["lease"]
        assert ok(got[8])["lease"] == l3
        assert l1 < l2 < l3
        assert c.silent(0.1)
    assert_alive(d)
    assert observer.value("t1", 1) == 12
    assert observer.value("t2", 2) == 20
    assert_no_leases(d)


@pytest.mark.parametrize("tail", ["nothing", "half a line"])
def test_pipeline_then_hang_up(daemon, observer, tables, tail):
    """acquire + update in one write, then the client closes at once: the
    lease is rolled back and the table freed."""
    d = daemon()
    c = d.client()
    data = line({"op": "acquire", "write": ["t1"], "wait_ms": 2000, "ttl_ms": 60000}) + line(INC)
    if tail == "half a line":
        data += b'{"op":"comm'
    c.send_raw(data)
    c.close()
    wait_for(lambda: observer.can_write("t1"), timeout=3, what="t1 to be free after the hang-up")
    assert observer.value("t1", 1) == 10
    assert_alive(d)
    assert_no_leases(d)
    # A commit that was never sent in full commits nothing either.
    assert observer.value("t1", 1) == 10


def test_pipeline_behind_a_waiter_then_hang_up(daemon, observer, tables):
    """A waiting acquire with requests queued behind it, then a hang-up: the
    waiter leaves the queue, the holder is untouched."""
    d = daemon()
    with d.client() as a:
        held = ok(acquire(a, write=["t1"], ttl_ms=30000))["lease"]
        b = d.client()
        b.send_raw(line({"op": "acquire", "write": ["t1"], "wait_ms": 5000}) + line(INC) + line({"op": "commit"}))
        wait_for(lambda: any(e["state"] == "waiting" for e in status(d)["leases"]), timeout=3,
                 what="b's acquire to wait")
        b.close()
        wait_for(lambda: [e["lease"] for e in status(d)["leases"]] == [held], timeout=3,
                 what="only a's lease left")
        ok(a.call(dict(INC)))
        assert ok(a.call({"op": "commit"}))["lease"] == held
    assert_alive(d)
    assert observer.value("t1", 1) == 11
    assert_no_leases(d)


# ---------------------------------------------------------------- found by the model (test_model.py)


def test_failed_lock_in_mysql_then_acquire_in_one_write(daemon, observer, outside, tables):
    """An outside session holds t1; a try-lock fails in MySQL, and the
    acquire right behind it must not see the failed lease as held."""
    d = daemon()
    with outside.cursor() as cur:
        cur.execute("LOCK TABLES t1 WRITE")
    with d.client() as c:
        reqs = [{"id": 1, "op": "acquire", "write": ["t2"], "read": ["t1"], "wait_ms": 0},
                {"id": 2, "op": "acquire", "write": ["t2"], "wait_ms": 2000},
                {"id": 3, "op": "commit"}]
        got = pipeline(c, reqs)
        assert_ids(got, reqs)
        assert error_code(got[0]) == "lock_timeout", got
        lease = ok(got[1])["lease"]
        assert ok(got[2])["lease"] == lease, got
    with outside.cursor() as cur:
        cur.execute("UNLOCK TABLES")
    assert_alive(d)
    assert_no_leases(d)


def test_failed_transact_then_requests_in_one_write(daemon, observer, tables):
    """A transact whose second statement fails, with requests behind it:
    each gets its answer, and nothing of the transact is kept."""
    d = daemon()
    with d.client() as c:
        reqs = [{"id": 1, "op": "transact", "read": ["t1"], "wait_ms": 2000,
                 "statements": [{"sql": "SELECT v FROM t1 WHERE id = 1"}, {"sql": "SELECT v FROM t2 WHERE id = 1"}]},
                {"id": 2, "op": "status"},
                {"id": 3, "op": "rollback"},
                {"id": 4, "op": "transact", "write": ["t1"], "wait_ms": 2000,
                 "statements": [{"sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"},
                                {"sql": "UPDATE t2 SET v = v + 1 WHERE id = 1"}]},
                {"id": 5, "op": "ping"}]
        got = pipeline(c, reqs)
        assert_ids(got, reqs)
        assert error_code(got[0]) == "mysql" and got[0]["statement"] == 1, got
        ok(got[1])
        assert error_code(got[2]) == "no_lease", got
        assert error_code(got[3]) == "mysql" and got[3]["statement"] == 1, got
        assert got[4] == {"id": 5, "ok": True}
    assert_alive(d)
    assert observer.value("t1", 1) == 10
    assert_no_leases(d)
