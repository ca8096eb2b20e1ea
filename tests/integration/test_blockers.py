"""status's blocked_by: who, outside the daemon's pool, holds up a lease in
`locking` (a migration, a backup, a person at a prompt, another daemon),
read from information_schema.METADATA_LOCK_INFO or
performance_schema.metadata_locks, on the control session, at most once a
second; and blockers_unavailable when MySQL shows neither."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import (DAEMON_USER, REPO, MariaDB, acquire, named_client, ok, scaled, status,
                      wait_for)

CLI = os.path.join(REPO, "client", "tablelock")


def locking_lease(d, name):
    return wait_for(lambda: [l for l in status(d)["leases"]
                             if l["client"] == name and l["state"] == "locking"],
                    what="lease of %s locking in MySQL" % name)[0]


def outside_thread(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        return cur.fetchone()[0]


def test_an_outside_transaction_is_named_with_its_lock(daemon, mariadb, tables, outside):
    d = daemon()
    thread = outside_thread(outside)
    with outside.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE t1 SET v = v + 1 WHERE id = 1")  # holds SHARED_WRITE on app.t1
    with named_client(d, "blocked") as c:
        c.send({"op": "acquire", "write": ["t1"], "read": ["t2"], "wait_ms": 20000})
        lease = locking_lease(d, "blocked")
        assert "blockers_unavailable" not in lease, lease
        (entry,) = [e for e in lease["blocked_by"] if e["mysql_thread"] == thread]
        assert entry["user"] == "root" and entry["host"] == "localhost"
        assert entry["db"] == "app" and entry["command"] == "Sleep"
        assert isinstance(entry["time_s"], int) and entry["time_s"] >= 0
        assert entry["lock"] == {"type": "SHARED_WRITE", "status": "granted", "table": "app.t1"}
        assert set(entry) == {"mysql_thread", "user", "host", "db", "command", "time_s", "state",
                              "info", "lock"}
        # No other entry: t2 is read, and nobody writes it.
        assert [e["mysql_thread"] for e in lease["blocked_by"]] == [thread]

        # The CLI prints the blocker under the lease, with the KILL to run.
        out = subprocess.run([CLI, "-s", d.sock, "status"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        at = [i for i, line in enumerate(lines) if " blocked " in line and "locking" in line][0]
        blocker = lines[at + 1]
        assert "blocked by MySQL thread %d" % thread in blocker, out.stdout
        assert "root@localhost" in blocker and "SHARED_WRITE on app.t1" in blocker, blocker
        assert "KILL %d" % thread in blocker, blocker
        js = json.loads(subprocess.run([CLI, "-s", d.sock, "status", "--json"],
                                       stdout=subprocess.PIPE, text=True, timeout=30).stdout)
        assert [e["mysql_thread"] for l in js["leases"] for e in l.get("blocked_by", [])] == [thread]

        outside.rollback()
        ok(c.recv_response(timeout=scaled(10)))
        ok(c.call({"op": "commit"}))


def test_the_answer_is_cached_for_a_second(daemon, mariadb, tables, outside):
    d = daemon()
    thread = outside_thread(outside)
    outside.cursor().execute("LOCK TABLES t1 READ")
    with named_client(d, "w") as c:
        c.send({"op": "acquire", "write": ["t1"], "wait_ms": 20000})
        first = locking_lease(d, "w")["blocked_by"]
        assert [e["mysql_thread"] for e in first] == [thread]
        assert first[0]["lock"]["type"] in ("SHARED_READ", "SHARED_READ_ONLY", "SHARED_NO_WRITE")
        # Within a second, the same answer (time_s included); after it, a new one.
        assert locking_lease(d, "w")["blocked_by"] == first
        time.sleep(1.2)
        later = wait_for(lambda: [e for e in locking_lease(d, "w")["blocked_by"]
                                  if e["time_s"] > first[0]["time_s"]],
                         what="a fresh answer after a second")
        assert later[0]["mysql_thread"] == thread
        outside.cursor().execute("UNLOCK TABLES")
        ok(c.recv_response(timeout=scaled(10)))
        ok(c.call({"op": "rollback"}))


def test_info_is_the_statement_cut_at_200_characters(daemon, mariadb, tables):
    d = daemon()
    sleeper = mariadb.connect()
    thread = outside_thread(sleeper)
    # A statement that holds a write lock on t1 while it runs.
    statement = "UPDATE t1 SET v = v + SLEEP(3) WHERE id = 1 /* %s */" % ("y" * 300)
    runner = threading.Thread(target=lambda: sleeper.cursor().execute(statement))
    runner.start()
    try:
        wait_for(lambda: [r for r in mariadb.sql("SELECT ID FROM information_schema.PROCESSLIST "
                                                 "WHERE ID = %s AND INFO LIKE 'UPDATE%%'", (thread,))],
                 what="the outside UPDATE running")
        with named_client(d, "w") as c:
            c.send({"op": "acquire", "read": ["t1"], "wait_ms": 20000})
            lease = locking_lease(d, "w")
            (entry,) = [e for e in lease["blocked_by"] if e["mysql_thread"] == thread]
            assert entry["command"] == "Query"
            assert entry["info"] == statement[:200]
            assert entry["lock"] == {"type": "SHARED_WRITE", "status": "granted", "table": "app.t1"}
            ok(c.recv_response(timeout=scaled(10)))
            ok(c.call({"op": "rollback"}))
    finally:
        runner.join(timeout=30)
        sleeper.close()


def test_a_backup_lock_blocks_writers_only(daemon, mariadb, tables, outside):
    d = daemon()
    thread = outside_thread(outside)
    outside.cursor().execute("FLUSH TABLES WITH READ LOCK")
    with named_client(d, "writer") as w:
        w.send({"op": "acquire", "write": ["t1"], "wait_ms": 20000})
        lease = locking_lease(d, "writer")
        (entry,) = [e for e in lease["blocked_by"] if e["mysql_thread"] == thread]
        assert entry["lock"]["table"] is None and entry["lock"]["type"].startswith("BACKUP_FTWRL")
        with named_client(d, "reader") as r:
            ok(acquire(r, read=["t2"]))  # a reader is not held up
            ok(r.call({"op": "rollback"}))
        outside.cursor().execute("UNLOCK TABLES")
        ok(w.recv_response(timeout=scaled(10)))
        ok(w.call({"op": "rollback"}))


@pytest.mark.parametrize("setup, expect", [
    ("no-process", "PROCESS"),
    ("no-view", "metadata_lock_info"),
])
def test_unavailable_says_what_would_enable_it(daemon, setup, expect):
    own = MariaDB(extra_args=() if setup == "no-view" else ("--plugin-load-add=metadata_lock_info",),
                  process=setup != "no-process")
    own.start()
    try:
        own.fresh_tables(["t1"])
        d = daemon(mysql={"socket": own.sock})
        with own.connect() as outside, named_client(d, "w") as c:
            outside.cursor().execute("LOCK TABLES t1 WRITE")
            c.send({"op": "acquire", "write": ["t1"], "wait_ms": 20000})
            lease = locking_lease(d, "w")
            assert "blocked_by" not in lease
            assert expect in lease["blockers_unavailable"], lease
            outside.cursor().execute("UNLOCK TABLES")
            ok(c.recv_response(timeout=scaled(10)))
            ok(c.call({"op": "rollback"}))
    finally:
        own.stop()


def test_performance_schema_shows_pending_locks_too(daemon):
    own = MariaDB(extra_args=("--performance-schema=ON",
                              "--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON"))
    own.start()
    try:
        own.fresh_tables(["t1"])
        own.sql("GRANT SELECT ON performance_schema.* TO %s@'localhost'", (DAEMON_USER,))
        d = daemon(mysql={"socket": own.sock})
        with own.connect() as holder, own.connect() as queued, named_client(d, "w") as c:
            holder_thread, queued_thread = outside_thread(holder), outside_thread(queued)
            holder.cursor().execute("LOCK TABLES t1 READ")
            queued.cursor().execute("SET SESSION lock_wait_timeout = 30")
            t = threading.Thread(target=lambda: queued.cursor().execute("LOCK TABLES t1 WRITE"))
            t.start()
            wait_for(lambda: any(r[0] == queued_thread and r[1] == "Waiting for table metadata lock"
                                 for r in own.sql("SELECT ID, STATE FROM information_schema.PROCESSLIST")),
                     what="the second outside session queued")
            c.send({"op": "acquire", "read": ["t1"], "wait_ms": 20000})
            lease = locking_lease(d, "w")
            locks = {e["mysql_thread"]: e["lock"] for e in lease["blocked_by"]}
            # The READ holder does not block a reader; the queued writer does.
            assert holder_thread not in locks
            assert locks[queued_thread] == {"type": "SHARED_NO_READ_WRITE", "status": "pending",
                                            "table": "app.t1"}, lease
            holder.cursor().execute("UNLOCK TABLES")
            t.join(timeout=30)
            queued.cursor().execute("UNLOCK TABLES")
            ok(c.recv_response(timeout=scaled(10)))
            ok(c.call({"op": "rollback"}))
    finally:
        own.stop()


def test_metrics_count_blocked_leases_and_time_in_locking(daemon, tables, outside):
    from test_ops import Scrape, with_metrics
    d, port = with_metrics(daemon)
    before = Scrape(port)
    assert before("tablelockd_leases_blocked") == 0
    count0 = before("tablelockd_locking_seconds_count")
    outside.cursor().execute("LOCK TABLES t1 WRITE")
    with named_client(d, "w") as c:
        c.send({"op": "acquire", "write": ["t1"], "wait_ms": 20000})
        locking_lease(d, "w")
        wait_for(lambda: Scrape(port)("tablelockd_leases_blocked") == 1,
                 what="the lease counted as blocked after 100 ms")
        time.sleep(0.3)
        outside.cursor().execute("UNLOCK TABLES")
        ok(c.recv_response(timeout=scaled(10)))
        after = Scrape(port)
        assert after("tablelockd_leases_blocked") == 0
        assert after("tablelockd_locking_seconds_count") == count0 + 1
        # It waited at least the 0.3 s above in MySQL.
        assert after("tablelockd_locking_seconds_bucket", le="0.25") == \
            before("tablelockd_locking_seconds_bucket", le="0.25")
        ok(c.call({"op": "rollback"}))
