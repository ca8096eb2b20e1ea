"""Several daemons on one MySQL (README "Several daemons"): MySQL's locks
arbitrate between them, and the fence, minted by MySQL in the LOCK TABLES
round trip, increases along each table's history across every daemon, a
daemon's kill -9 and restart, and a MariaDB restart."""
import signal
import threading
import time

from conftest import MariaDB, acquire, named_client, ok, query, scaled, status, wait_for


def fence_of(resp):
    fence = ok(resp).get("fence")
    assert isinstance(fence, int) and fence > 0, "no fence in %r" % (resp,)
    return fence


def increments(d, table, cycles, history, errors, name):
    """cycles read-modify-write increments of table row 1 under write
    leases; appends (value read, fence) to history for each."""
    try:
        with named_client(d, name) as c:
            for _ in range(cycles):
                resp = acquire(c, write=[table], wait_ms=20000, ttl_ms=20000,
                               statements=[{"sql": "SELECT v FROM %s WHERE id = 1" % table}])
                fence = fence_of(resp)
                value = resp["results"][0]["rows"][0][0]
                ok(query(c, "UPDATE %s SET v = ? WHERE id = 1" % table, [value + 1]))
                ok(c.call({"op": "commit"}))
                history.append((value, fence))
    except Exception as e:  # reported by the test, not lost in a thread
        errors.append("%s: %r" % (name, e))


def assert_fences_follow_history(history, start, count):
    """history: (value read, fence) per holder. Each value was read by
    exactly one holder (no lost update), and ordered by value, the fences
    strictly increase."""
    values = sorted(v for v, _ in history)
    assert values == list(range(start, start + count)), \
        "lost or duplicated updates: values read %r" % values[:20]
    ordered = [f for _, f in sorted(history)]
    for i in range(1, len(ordered)):
        assert ordered[i] > ordered[i - 1], \
            "fence went down along the table's history at holder %d: %d then %d" % (
                i, ordered[i - 1], ordered[i])


def test_two_daemons_lose_no_update_and_fences_increase(daemon, mariadb, observer):
    mariadb.fresh_tables(["md1", "md2"], rows=((1, 0),))
    a = daemon()
    b = daemon()
    for table in ("md1", "md2"):
        history, errors = [], []
        threads = [threading.Thread(target=increments,
                                    args=(d, table, 25, history, errors, "w%d" % i))
                   for i, d in enumerate([a, b, a, b, a, b])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=scaled(120))
        assert not errors, errors
        assert observer.value(table, 1) == 150
        assert_fences_follow_history(history, 0, 150)


def test_fences_increase_across_kill_and_restart_of_a_daemon(daemon, mariadb):
    mariadb.fresh_tables(["md3"], rows=((1, 0),))
    a = daemon()
    b = daemon()
    fences = []

    def cycle(d):
        with d.client() as c:
            fences.append(fence_of(c.call({"op": "transact", "write": ["md3"], "statements": [
                {"sql": "UPDATE md3 SET v = v + 1 WHERE id = 1"}]})))

    cycle(a)
    cycle(b)
    with a.client() as c:  # a lease held while its daemon dies
        fences.append(fence_of(acquire(c, write=["md3"])))
        a.stop(signal.SIGKILL)
        a.exit_codes.pop()  # killed on purpose
    cycle(b)
    a.start()
    cycle(a)
    cycle(b)
    assert fences == sorted(set(fences)), "fences not strictly increasing: %r" % fences


def test_fences_increase_across_a_mariadb_restart(daemon):
    """A private server: its restart must not disturb the other tests."""
    own = MariaDB()
    own.start()
    try:
        own.fresh_tables(["md4"], rows=((1, 0),))
        d = daemon(mysql={"socket": own.sock})
        fences = []

        def cycle():
            with d.client() as c:
                resp = c.call({"op": "transact", "write": ["md4"], "statements": [
                    {"sql": "UPDATE md4 SET v = v + 1 WHERE id = 1"}]}, timeout=20)
                if resp.get("ok"):
                    fences.append(fence_of(resp))
                return resp

        cycle()
        cycle()
        time.sleep(1.1)  # UUID_SHORT's high part is the start time in seconds
        own.restart()
        wait_for(lambda: cycle().get("ok"), timeout=30, interval=0.2,
                 what="a transact through the daemon after the MariaDB restart")
        cycle()
        assert len(fences) >= 4
        assert fences == sorted(set(fences)), "fences not strictly increasing: %r" % fences
    finally:
        own.stop()


def test_a_lease_waiting_for_another_daemon_is_locking(daemon, mariadb, observer):
    mariadb.fresh_tables(["md5"], rows=((1, 0),))
    a = daemon()
    b = daemon()
    with named_client(a, "holder-a") as ca, named_client(b, "waiter-b") as cb:
        ok(acquire(ca, write=["md5"]))
        holder = [l for l in status(a)["leases"] if l["client"] == "holder-a"][0]
        cb.send({"op": "acquire", "write": ["md5"], "wait_ms": 20000, "ttl_ms": 10000})
        waiting = wait_for(lambda: [l for l in status(b)["leases"]
                                    if l["client"] == "waiter-b" and l["state"] == "locking"],
                           what="b's lease locking behind a's")[0]
        # b's daemon granted it; MySQL queues it behind a's session, which
        # b's status names.
        assert waiting["mysql_thread"] != holder["mysql_thread"]
        blockers = [(e["mysql_thread"], e["lock"]["table"], e["lock"]["type"])
                    for e in waiting["blocked_by"]]
        assert (holder["mysql_thread"], "app.md5", "SHARED_NO_READ_WRITE") in blockers, waiting
        first = holder.get("fence")
        assert isinstance(first, int) and first > 0
        ok(ca.call({"op": "commit"}))
        resp = cb.recv_response(timeout=scaled(10))
        assert fence_of(resp) > first
        ok(cb.call({"op": "commit"}))


def test_no_fence_when_it_does_not_fit_64_signed_bits(daemon):
    """server_id 128 and up sets UUID_SHORT()'s top bit: the daemon leaves
    fence out rather than send a number clients would misread."""
    own = MariaDB(extra_args=("--server-id=200",))
    own.start()
    try:
        own.fresh_tables(["md6"], rows=((1, 0),))
        assert own.sql("SELECT UUID_SHORT() > 9223372036854775807")[0][0] == 1
        d = daemon(mysql={"socket": own.sock})
        with d.client() as c:
            resp = ok(acquire(c, write=["md6"]))
            assert "fence" not in resp and resp["lease"] > 0
            (mine,) = status(d)["leases"]
            assert mine["fence"] is None
            ok(c.call({"op": "commit"}))
            resp = ok(c.call({"op": "transact", "write": ["md6"], "statements": [
                {"sql": "UPDATE md6 SET v = v + 1 WHERE id = 1"}]}))
            assert "fence" not in resp
    finally:
        own.stop()
