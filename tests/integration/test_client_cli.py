"""The tablelock CLI against the real daemon and MariaDB: status, exec, shell,
ping, version, revoke. Outcomes are checked through the observer."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "tests"))
from clienttest import (AS_NOBODY, CLI, TCP_TOKEN, cli, open_socket_to_everyone,  # noqa: E402,F401
                        tcp_daemon, wait_until)
from conftest import scaled  # noqa: E402

COMMANDS = ["status", "exec", "shell", "ping", "version", "revoke"]


def ok(resp):
    assert resp.get("ok") is True, resp
    return resp


def status_rows(stdout):
    """The lease rows of `tablelock status`: lists of cells, split on 2+ blanks."""
    lines = stdout.splitlines()
    start = [i for i, l in enumerate(lines) if l.startswith("LEASE")]
    assert start, "no table header in:\n" + stdout
    rows = []
    for line in lines[start[0] + 1:]:
        if not line.strip():
            break
        if re.match(r"^ {6}(blocked by|blockers unknown)", line):
            continue  # a blocker under a locking lease (blocker_lines)
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def blocker_lines(stdout):
    return [l.strip() for l in stdout.splitlines() if re.match(r"^ {6}blocked by ", l)]


# ---------------------------------------------------------------- help, errors

def test_help_on_every_command():
    top = cli(["--help"])
    assert top.returncode == 0 and "usage: tablelock" in top.stdout
    for name in COMMANDS:
        assert name in top.stdout
        for args in ([name, "--help"], [name, "-h"], ["help", name]):
            p = cli(args)
            assert p.returncode == 0, (args, p.stderr)
            assert p.stdout.startswith("usage: tablelock " + name), (args, p.stdout)
    p = cli(["frobnicate"])
    assert p.returncode == 2 and "unknown command" in p.stderr
    p = cli(["exec", "--bogus"])
    assert p.returncode == 2


def test_daemon_not_running_says_which_socket(tmp_path):
    missing = str(tmp_path / "gone.sock")
    for args, env_sock in ((["ping"], missing), (["-s", missing, "status"], "/elsewhere.sock"),
                           (["exec", "-s", missing, "-w", "t1", "-e", "SELECT 1"], None)):
        p = cli(args, sock=env_sock)
        assert p.returncode == 3, (args, p.stderr)
        assert missing in p.stderr and "is tablelockd running?" in p.stderr
    if not os.path.exists("/run/tablelockd/tablelockd.sock"):
        p = cli(["ping"])
        assert p.returncode == 3 and "/run/tablelockd/tablelockd.sock" in p.stderr


def test_ping_and_version(daemon):
    d = daemon()
    p = cli(["ping"], sock=d.sock)
    assert p.returncode == 0 and d.sock in p.stdout and "ping" in p.stdout
    p = cli(["version"], sock=d.sock)
    assert p.returncode == 0
    assert p.stdout.splitlines()[0].startswith("tablelock 0.1.0")
    assert p.stdout.splitlines()[1].startswith("tablelockd ")


# ---------------------------------------------------------------- status

def test_status_shows_held_locking_and_waiting_in_order(daemon, tables, mariadb, observer,
                                                        outside):
    mariadb.fresh_tables(["t3"])
    d = daemon()
    with d.client() as holder, d.client() as locking, d.client() as w1, d.client() as w2:
        ok(holder.call({"op": "hello", "client": "orders-svc"}))
        held = ok(holder.call({"op": "acquire", "write": ["t1"], "read": ["t2"],
                               "ttl_ms": 30000}))["lease"]
        assert not observer.can_read("t1")  # the lock is real
        # A lock taken outside the daemon keeps this one in LOCK TABLES.
        with outside.cursor() as cur:
            cur.execute("LOCK TABLES t3 WRITE")
        ok(locking.call({"op": "hello", "client": "report-job"}))
        locking.send({"op": "acquire", "read": ["t3"], "wait_ms": 20000})
        ok(w1.call({"op": "hello", "client": "first-waiter"}))
        w1.send({"op": "acquire", "write": ["t1"], "wait_ms": 20000})
        ok(w2.call({"op": "hello", "client": "second-waiter"}))
        w2.send({"op": "acquire", "read": ["t1", "t2"], "wait_ms": 20000})

        def states():
            st = ok(holder.call({"op": "status"}))
            got = sorted(l["state"] for l in st["leases"])
            return st if got == ["held", "locking", "waiting", "waiting"] else None

        raw = wait_until(states, what="held, locking and two waiting leases")
        threads = {l["lease"]: l["mysql_thread"] for l in raw["leases"]}

        p = cli(["status"], sock=d.sock)
        assert p.returncode == 0, p.stderr
        print(p.stdout)  # the screen, for the README
        assert re.match(r"4 leases: 1 held, 1 locking, 2 waiting; \d+ clients; up ", p.stdout)
        rows = status_rows(p.stdout)
        assert [r[1] for r in rows] == ["orders-svc", "report-job", "first-waiter",
                                        "second-waiter"]
        lease_col = [int(r[0]) for r in rows]
        assert lease_col[0] == held and lease_col[2] < lease_col[3]  # queue order
        h = rows[0]
        assert h[2] == "uid %d pid %d" % (os.getuid(), os.getpid())
        assert h[3] == "WRITE app.t1; READ app.t2"
        assert h[4] == "held" and h[6] != "-" and int(h[7]) == threads[held]
        assert rows[1][3] == "READ app.t3" and rows[1][4] == "locking"
        # The outside session that holds t3 is named under the locking lease.
        (blocker,) = blocker_lines(p.stdout)
        assert "SHARED_NO_READ_WRITE on app.t3" in blocker and "KILL " in blocker, p.stdout
        assert rows[2][3] == "WRITE app.t1" and rows[2][4] == "waiting"
        assert rows[3][3] == "READ app.t1, app.t2"
        assert all(r[6] == "-" and r[7] == "-" for r in rows[2:])
        assert re.search(r"^pool: +4 sessions: \d+ busy, \d+ idle, \d+ connecting, \d+ broken$",
                         p.stdout, re.M)
        assert re.search(r"^totals: \d+ acquired, \d+ committed", p.stdout, re.M)

        # --json: the daemon's own answer.
        p = cli(["status", "--json"], sock=d.sock)
        assert p.returncode == 0
        j = json.loads(p.stdout)
        assert j["ok"] is True and "id" not in j
        assert sorted(l["lease"] for l in j["leases"]) == sorted(threads)
        assert set(j["pool"]) >= {"size", "idle", "busy", "connecting", "broken"}

        with outside.cursor() as cur:
            cur.execute("UNLOCK TABLES")


def test_status_counts_one_in_the_singular(daemon, tables):
    """A count of one reads "1 lease", "1 client", "1 session", "1 lock
    timeout"; any other count takes the plural (util/plural.h)."""
    d = daemon(mysql={"pool_size": 1})
    with d.client() as holder, d.client() as other:
        ok(holder.call({"op": "acquire", "write": ["t1"]}))
        resp = other.call({"op": "acquire", "write": ["t1"], "wait_ms": 0})
        assert resp["error"]["code"] == "lock_timeout", resp
        other.close()
        p = cli(["status"], sock=d.sock)
        assert p.returncode == 0, p.stderr
        assert re.match(r"1 lease: 1 held, 0 locking, 0 waiting; 2 clients; up ", p.stdout), \
            p.stdout
        assert re.search(r"^pool: +1 session: ", p.stdout, re.M), p.stdout
        assert re.search(r"^ +1 lock timeout, 0 revoked, ", p.stdout, re.M), p.stdout
        ok(holder.call({"op": "rollback"}))
    p = cli(["status"], sock=d.sock)
    assert p.returncode == 0, p.stderr
    assert re.match(r"0 leases: 0 held, 0 locking, 0 waiting; 1 client; up ", p.stdout), p.stdout
    assert re.search(r"^totals: 1 acquired, 0 committed, 1 rolled back, ", p.stdout, re.M)


def test_status_hides_other_clients_from_non_admins(daemon, tables):
    d = daemon(daemon={"socket_mode": "0666"})
    open_socket_to_everyone(d)
    with d.client() as holder:
        ok(holder.call({"op": "hello", "client": "secret-svc"}))
        lease = ok(holder.call({"op": "acquire", "write": ["t1"]}))["lease"]
        p = cli(["status"], sock=d.sock, user="nobody")
        assert p.returncode == 0, p.stderr
        rows = status_rows(p.stdout)
        assert len(rows) == 1
        row = rows[0]
        # Tables, state and age only: no id, name, peer or thread.
        assert row[0] == "-" and row[1] == "-" and row[2] == "-" and row[7] == "-"
        assert row[3] == "WRITE app.t1" and row[4] == "held"
        assert "secret-svc" not in p.stdout
        # The admin sees it all.
        p = cli(["status"], sock=d.sock)
        row = status_rows(p.stdout)[0]
        assert int(row[0]) == lease and row[1] == "secret-svc" and row[7] != "-"


def test_status_watch_refreshes(daemon, tables):
    d = daemon()
    env = dict(os.environ, TABLELOCK_SOCKET=d.sock)
    proc = subprocess.Popen([CLI, "status", "--watch", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    out = b""

    def read_until(text, timeout=10.0):
        nonlocal out
        deadline = time.monotonic() + scaled(timeout)
        while text not in out:
            left = deadline - time.monotonic()
            assert left > 0, "no %r in --watch output:\n%s" % (text, out.decode())
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, "status --watch ended:\n" + out.decode()
                out += chunk

    try:
        read_until(b"0 leases")
        with d.client() as c:
            ok(c.call({"op": "hello", "client": "watched"}))
            ok(c.call({"op": "acquire", "write": ["t1"]}))
            read_until(b"watched")
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
    out += rest
    assert proc.returncode == 0, err
    screens = [s for s in out.decode().split("tablelockd at ") if s.strip()]
    assert len(screens) >= 2
    assert "0 leases" in screens[0]
    watched = [s for s in screens if "watched" in s][0]
    assert "1 lease: 1 held" in watched and "WRITE app.t1" in watched


# ---------------------------------------------------------------- exec

def test_exec_commits_and_prints_a_table(daemon, tables, observer):
    d = daemon()
    p = cli(["exec", "--write", "t1", "--read", "t2",
             "-e", "UPDATE t1 SET v = v + ? WHERE id = ?", "--param", "5", "--param", "2",
             "-e", "SELECT t1.id, t1.v, t2.v AS w FROM t1 JOIN t2 ON t2.id = t1.id "
                   "WHERE t1.id = ?", "-p", "2"], sock=d.sock)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("OK, 1 row affected\n"
                        "\n"
                        "id   v   w\n"
                        "--  --  --\n"
                        " 2  25  20\n"
                        "(1 row)\n")
    assert observer.value("t1", 2) == 25 and observer.can_write("t1")


def test_exec_json_lines(daemon, tables):
    d = daemon()
    p = cli(["exec", "-r", "t1", "-e", "SELECT id FROM t1 ORDER BY id", "-e",
             "SELECT ? AS s, ? AS n", "--string", "007", "--null", "--json"], sock=d.sock)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    assert lines[0]["statement"] == 0 and lines[0]["rows"] == [[1], [2], [3]]
    assert lines[1]["statement"] == 1 and lines[1]["rows"] == [["007", None]]


def test_exec_failure_exits_non_zero_and_commits_nothing(daemon, tables, observer):
    d = daemon()
    p = cli(["exec", "-w", "t1", "-r", "t2", "-e", "UPDATE t1 SET v = 0",
             "-e", "UPDATE t2 SET v = 0"], sock=d.sock)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "statement 2 of 2 (UPDATE t2 SET v = 0)" in p.stderr
    assert "MySQL error 1099, SQLSTATE HY000" in p.stderr
    assert "nothing was committed" in p.stderr
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")


def test_exec_lock_timeout_says_what_to_do(daemon, tables):
    d = daemon()
    with d.client() as holder:
        ok(holder.call({"op": "acquire", "write": ["t1"]}))
        p = cli(["exec", "-r", "t1", "--wait", "200ms", "-e", "SELECT 1"], sock=d.sock)
        assert p.returncode == 1
        assert "[lock_timeout]" in p.stderr and "tablelock status" in p.stderr


def test_exec_usage_errors(daemon):
    d = daemon()
    for args in (["exec", "-e", "SELECT 1"], ["exec", "-w", "t1"],
                 ["exec", "-w", "t1", "-p", "1", "-e", "SELECT ?"],
                 ["exec", "-w", "t1", "-e", "SELECT 1", "--wait", "soon"]):
        p = cli(args, sock=d.sock)
        assert p.returncode == 2, (args, p.stderr)
        assert "tablelock exec --help" in p.stderr


# ---------------------------------------------------------------- shell

def test_shell_from_a_pipe_commits(daemon, tables, observer):
    d = daemon()
    script = ("UPDATE t1 SET v = v + 1 WHERE id = 1;\n"
              "-- a comment line\n"
              "\n"
              "SELECT v FROM t1 WHERE id = 1\n"
              "commit\n"
              "UPDATE t1 SET v = 0\n")  # after commit: never run
    p = cli(["shell", "-w", "t1"], sock=d.sock, input=script)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "OK, 1 row affected\n v\n--\n11\n(1 row)\n"
    assert observer.value("t1", 1) == 11 and observer.value("t1", 2) == 20
    assert observer.can_write("t1")


def test_shell_end_of_input_rolls_back(daemon, tables, observer):
    d = daemon()
    p = cli(["shell", "-w", "t1"], sock=d.sock, input="UPDATE t1 SET v = 99\n")
    assert p.returncode == 1
    assert "input ended without commit" in p.stderr and "rolled back" in p.stderr
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")


def test_shell_typed_rollback(daemon, tables, observer):
    d = daemon()
    p = cli(["shell", "-w", "t1"], sock=d.sock, input="DELETE FROM t1\nROLLBACK;\n")
    assert p.returncode == 0, p.stderr
    assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3


def test_shell_failed_statement_from_a_pipe_rolls_back(daemon, tables, observer):
    d = daemon()
    p = cli(["shell", "-w", "t1"], sock=d.sock,
            input="UPDATE t1 SET v = 1\nUPDATE t2 SET v = 1\ncommit\n")
    assert p.returncode == 1
    assert "1100" in p.stderr and "rolled back" in p.stderr
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")


def test_shell_renews_while_waiting_for_input(daemon, tables, observer):
    d = daemon()
    env = dict(os.environ, TABLELOCK_SOCKET=d.sock)
    ttl = scaled(0.9)
    proc = subprocess.Popen([CLI, "shell", "-w", "t1", "--ttl", "%dms" % (ttl * 1000)],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.stdin.write("UPDATE t1 SET v = 42 WHERE id = 1\n")
        proc.stdin.flush()
        wait_until(lambda: not observer.can_write("t1"), what="the shell's lease")
        time.sleep(3 * ttl)  # three TTLs of silence on stdin
        assert proc.poll() is None
        assert not observer.can_write("t1")  # still held: renewed
        out, err = proc.communicate(input="commit\n", timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert observer.value("t1", 1) == 42


# ---------------------------------------------------------------- revoke

def test_revoke_refused_for_others_and_allowed_for_root(daemon, tables, observer):
    d = daemon(daemon={"socket_mode": "0666"})
    open_socket_to_everyone(d)
    with d.client() as holder:
        ok(holder.call({"op": "hello", "client": "victim"}))
        lease = ok(holder.call({"op": "acquire", "write": ["t1"]}))["lease"]
        ok(holder.call({"op": "query", "sql": "UPDATE t1 SET v = 1000 WHERE id = 1"}))

        p = cli(["revoke", str(lease)], sock=d.sock, user="nobody")
        assert p.returncode == 1
        assert "[forbidden]" in p.stderr and "admin right" in p.stderr
        assert not observer.can_write("t1")  # untouched

        p = cli(["revoke", str(lease)], sock=d.sock)
        assert p.returncode == 0, p.stderr
        assert "lease %d revoked" % lease in p.stdout
        ev = holder.wait_event("lease_revoked")
        assert ev["lease"] == lease
        wait_until(lambda: observer.can_write("t1"), what="the revoked lease's tables")
        assert observer.value("t1", 1) == 10

        p = cli(["revoke", str(lease)], sock=d.sock)
        assert p.returncode == 1 and "[no_lease]" in p.stderr and "tablelock status" in p.stderr
        p = cli(["revoke", "seventeen"], sock=d.sock)
        assert p.returncode == 2


def test_shell_reports_a_revoked_lease_at_once(daemon, tables, observer):
    d = daemon()
    env = dict(os.environ, TABLELOCK_SOCKET=d.sock)
    proc = subprocess.Popen([CLI, "shell", "-w", "t1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.stdin.write("UPDATE t1 SET v = 5\n")
        proc.stdin.flush()
        with d.client() as admin:
            def shell_lease():
                leases = ok(admin.call({"op": "status"}))["leases"]
                return leases[0]["lease"] if leases else None
            lease = wait_until(shell_lease, what="the shell's lease")
            wait_until(lambda: not observer.can_write("t1"), what="the shell's lock")
        p = cli(["revoke", str(lease)], sock=d.sock)
        assert p.returncode == 0, p.stderr
        # The shell is waiting for input, not calling: it sees the event.
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert "revoked" in err and "nothing was committed" in err
    assert observer.value("t1", 1) == 10


def test_nobody_can_run_the_cli(daemon):
    """Sanity for the refused-revoke test: nobody reaches the daemon at all."""
    d = daemon(daemon={"socket_mode": "0666"})
    open_socket_to_everyone(d)
    p = subprocess.run(AS_NOBODY + ["id", "-u"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.strip() == "65534"
    p = cli(["ping"], sock=d.sock, user="nobody")
    assert p.returncode == 0, p.stderr


def test_tcp_address_and_token(tcp_daemon, tables, observer):
    d, address = tcp_daemon()
    p = cli(["-s", address, "exec", "-w", "t1", "-e", "UPDATE t1 SET v = 9 WHERE id = 1"],
            env={"TABLELOCK_TOKEN": TCP_TOKEN})
    assert p.returncode == 0, p.stderr
    assert observer.value("t1", 1) == 9
    p = cli(["-s", address, "status"], env={"TABLELOCK_TOKEN": "not-it"})
    assert p.returncode == 1
    assert "[unauthenticated]" in p.stderr and "TABLELOCK_TOKEN" in p.stderr
