"""Running tablelockd in production (issue 6), end to end: SIGHUP reload,
SIGTERM drain, SIGINT, socket activation, sd_notify and the Prometheus
endpoint, against the real daemon, a real MariaDB and an outside observer.

The units, man pages and `make install` are checked in test_ops_files.py.
"""

import copy
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (DAEMON_PASSWORD, REPO, Client, Daemon, _die_with_parent, _short_tempdir,
                      acquire, elapsed_since, error_code, lease_of, named_client, ok, on_unused_ports,
                      query, scaled, send_acquire, status, tcp_listening_ports, wait_for, wait_state)

# ---------------------------------------------------------------- helpers


def start(factory, **sections):
    """factory(**sections) (the daemon fixture), remembering the sections so
    that rewrite() can change some keys and keep the rest."""
    d = factory(**sections)
    d.ops_sections = copy.deepcopy(sections)
    return d


def rewrite(d, **changes):
    """Rewrites d's config file: the sections it was started with, with
    changes applied (a value of None removes a key)."""
    merged = copy.deepcopy(d.ops_sections)
    for section, keys in changes.items():
        merged.setdefault(section, {}).update(keys)
    d._write_config(merged)
    d.ops_sections = merged


def reload_count(d):
    text = d.log_text()
    return text.count("reload done") + text.count("reload failed")


def reload(d):
    """SIGHUP, and waits until the daemon has logged the outcome."""
    before = reload_count(d)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: reload_count(d) > before, timeout=5, what="the reload to finish (log)")


def log_lines(d, pattern):
    return [line for line in d.log_text().splitlines() if re.search(pattern, line)]


def wait_exit(d, timeout):
    """Waits for the daemon to exit by itself; returns the exit code."""
    try:
        rc = d.proc.wait(timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        raise AssertionError("tablelockd did not exit within %.1fs:\n%s" % (scaled(timeout), d.log_text()[-3000:]))
    d.exit_codes.append(rc)
    d.proc = None
    return rc


def connect_refused(path):
    """True when nobody accepts connections on the Unix socket path."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return False
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    finally:
        s.close()


def http_get(port, path, timeout=5.0):
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(timeout))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    finally:
        conn.close()


def with_metrics(factory, **sections):
    """(daemon, port): factory(**sections) with the metrics endpoint on an
    unused port (another, if someone takes it before the daemon binds)."""
    def start_on(port):
        return factory(metrics={"listen": "127.0.0.1:%d" % port}, **sections), port
    return on_unused_ports(start_on)


# ---------------------------------------------------------------- Prometheus text


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % _NAME)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_metrics(text):
    """Parses the Prometheus text format (0.0.4) strictly: every line is a
    HELP, a TYPE or a sample; every sample belongs to a family declared with
    TYPE before it, and every family has a HELP; no series twice.
    Returns ({(name, frozenset(labels)): value}, {family: type})."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    helps, types, samples, seen_families = {}, {}, {}, set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line)
        assert line != "", "empty line in the exposition (%s)" % where
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and help_text, "bad HELP (%s)" % where
            assert name not in helps, "second HELP for %s" % name
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            parts = line[7:].split(" ")
            assert len(parts) == 2 and re.fullmatch(_NAME, parts[0]) and parts[1] in _TYPES, \
                "bad TYPE (%s)" % where
            assert parts[0] not in types, "second TYPE for %s" % parts[0]
            assert parts[0] not in seen_families, "TYPE after samples of %s" % parts[0]
            types[parts[0]] = parts[1]
        elif line.startswith("#"):
            continue
        else:
            m = _SAMPLE_RE.match(line)
            assert m, "not a sample (%s)" % where
            name, label_text, value_text = m.groups()
            labels = {}
            if label_text:
                pairs = _LABEL_RE.findall(label_text)
                rebuilt = ",".join('%s="%s"' % p for p in pairs)
                assert rebuilt == label_text.rstrip(","), "bad labels (%s)" % where
                for k, v in pairs:
                    assert k not in labels, "label %s twice (%s)" % (k, where)
                    labels[k] = v
            try:
                value = float(value_text)
            except ValueError:
                raise AssertionError("bad value (%s)" % where)
            family = name if name in types else None
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[:-len(suffix)]
                if family is None and name.endswith(suffix) and types.get(base) == "histogram":
                    family = base
            assert family is not None, "sample of a metric without a TYPE before it (%s)" % where
            if name.endswith("_bucket") and family != name:
                assert "le" in labels, "bucket without le (%s)" % where
            seen_families.add(family)
            key = (name, frozenset(labels.items()))
            assert key not in samples, "series twice (%s)" % where
            samples[key] = value
    for family in types:
        assert family in helps, "%s has a TYPE but no HELP" % family
        assert family in seen_families, "%s has no samples" % family
    for family in helps:
        assert family in types, "%s has a HELP but no TYPE" % family
    for family, typ in types.items():
        assert family.startswith("tablelockd_"), "%s lacks the tablelockd_ prefix" % family
        if typ == "counter":
            assert family.endswith("_total"), "counter %s does not end in _total" % family
        if typ == "histogram":
            buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                              if k[0] == family + "_bucket"), key=lambda b: b[0])
            assert buckets and buckets[-1][0] == float("inf"), "%s has no +Inf bucket" % family
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), "%s buckets are not cumulative: %r" % (family, buckets)
            assert buckets[-1][1] == samples[(family + "_count", frozenset())], \
                "%s: +Inf bucket differs from _count" % family
    return samples, types


class Scrape:
    def __init__(self, port):
        self.status, self.content_type, self.text = http_get(port, "/metrics")
        assert self.status == 200, "GET /metrics: %d %s" % (self.status, self.text[:300])
        assert self.content_type.startswith("text/plain"), self.content_type
        assert "version=0.0.4" in self.content_type, self.content_type
        self.samples, self.types = parse_metrics(self.text)

    def __call__(self, name, **labels):
        key = (name, frozenset(labels.items()))
        assert key in self.samples, "no sample %s%r in:\n%s" % (name, labels, self.text)
        return self.samples[key]


# ---------------------------------------------------------------- sd_notify


class NotifySocket:
    """The datagram socket systemd listens on ($NOTIFY_SOCKET)."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # every datagram, as {key: value} (in order)
        self.unread = []

    def _pump(self, seconds):
        self.sock.settimeout(max(seconds, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        msg = {}
        for line in data.decode().split("\n"):
            if line:
                key, _, value = line.partition("=")
                msg[key] = value
        self.messages.append(msg)
        self.unread.append(msg)

    def expect(self, key, timeout=5.0, value=None):
        """The first unread message carrying key (with value, if given);
        messages before it are consumed."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            while self.unread:
                msg = self.unread.pop(0)
                if key in msg and (value is None or msg[key] == value):
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %s%s notification within %.1fs; got %r"
                                     % (key, "" if value is None else "=" + value, scaled(timeout),
                                        self.messages))
            self._pump(remaining)

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch):
    """NOTIFY_SOCKET set for daemons started by the test (they inherit the env)."""
    directory = _short_tempdir("tl-n-")
    ns = NotifySocket(directory)
    monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
    yield ns
    ns.close()
    shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------- reload


def test_reload_applies_limits_and_pool_size_and_keeps_the_held_lease(daemon, observer, tables):
    d = start(daemon, mysql={"pool_size": 2},
              leases={"default_ttl_ms": 10000, "max_ttl_ms": 60000})
    with named_client(d, "holder") as holder, d.client() as other:
        # Before: a long TTL is granted as asked.
        held = ok(acquire(holder, write=["t1"], ttl_ms=40000))
        assert held["ttl_ms"] == 40000
        ok(query(holder, "UPDATE t1 SET v = 101 WHERE id = 1"))
        assert status(d)["pool"]["size"] == 2

        rewrite(d, mysql={"pool_size": 5}, leases={"default_ttl_ms": 1000, "max_ttl_ms": 3000})
        reload(d)
        assert log_lines(d, r"reload done"), d.log_text()[-2000:]
        assert log_lines(d, r"pool: 2 -> 5 sessions"), d.log_text()[-2000:]

        # New requests get the new limits: ttl capped to max_ttl_ms, the
        # default TTL is the new one.
        capped = ok(acquire(other, write=["t2"], ttl_ms=40000))
        assert capped["ttl_ms"] == 3000, capped
        ok(other.call({"op": "rollback"}))
        assert ok(acquire(other, write=["t2"], ttl_ms=None))["ttl_ms"] == 1000
        ok(other.call({"op": "rollback"}))

        # The pool follows: five sessions, all connected (one lent).
        wait_for(lambda: (lambda p: p["size"] == 5 and p["idle"] == 4 and p["busy"] == 1)(status(d)["pool"]),
                 timeout=5, what="the pool to grow to 5 sessions")
        wait_for(lambda: len(observer.daemon_threads()) >= 5, timeout=5, what="5 daemon sessions in MySQL")

        # The held lease was not touched: its TTL is still the old one, its
        # tables are still locked, and its holder can work and commit.
        entry = lease_of(d, "holder")
        assert entry is not None and entry["state"] == "held" and entry["lease"] == held["lease"]
        assert entry["expires_in_ms"] > 30000, entry
        assert not observer.can_write("t1")
        ok(query(holder, "UPDATE t1 SET v = v + 1 WHERE id = 1"))
        assert ok(query(holder, "SELECT v FROM t1 WHERE id = 1"))["rows"] == [[102]]
        assert ok(holder.call({"op": "commit"}))["lease"] == held["lease"]
        assert holder.events == []
    assert observer.can_write("t1")
    assert observer.value("t1", 1) == 102
    # Logged when the lease is freed, after its session's reset, which
    # follows the commit's answer.
    wait_for(lambda: log_lines(d, r"lease %d: ended: committed" % held["lease"]), timeout=5,
             what="the commit in the log")

    # Shrinking applies too: surplus idle sessions are closed.
    rewrite(d, mysql={"pool_size": 1})
    reload(d)
    wait_for(lambda: (lambda p: p["size"] == 1 and p["idle"] == 1)(status(d)["pool"]),
             timeout=5, what="the pool to shrink to 1 session")
    wait_for(lambda: len(observer.daemon_threads()) <= 2, timeout=5,
             what="surplus daemon sessions to leave MySQL (1 pooled + control)")
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        ok(c.call({"op": "commit"}))
    assert DAEMON_PASSWORD not in d.log_text()


def test_reload_of_an_invalid_file_keeps_the_old_config(daemon, observer, tables):
    d = start(daemon, leases={"default_ttl_ms": 10000, "max_ttl_ms": 60000})
    with named_client(d, "holder") as holder, d.client() as other:
        ok(acquire(holder, write=["t1"], ttl_ms=30000))
        ok(query(holder, "UPDATE t1 SET v = 77 WHERE id = 1"))

        # A valid change and an unknown key in one file: nothing applies.
        rewrite(d, leases={"max_ttl_ms": 2000, "default_ttl_ms": 1000, "bogus_key": 5},
                mysql={"pool_size": 7})
        with open(d.conf) as f:
            bad_line = 1 + [i for i, line in enumerate(f.read().split("\n")) if line.startswith("bogus_key")][0]
        reload(d)
        errors = log_lines(d, r"reload failed")
        assert len(errors) == 1, d.log_text()[-2000:]
        assert "%s:%d:" % (d.conf, bad_line) in errors[0], errors[0]
        assert "bogus_key" in errors[0], errors[0]
        assert re.search(r"\berror\b|\bERROR\b|\berr\b", errors[0], re.I), "not logged as an error: %r" % errors[0]
        assert not log_lines(d, r"reload done")

        # The old limits are still in force.
        assert ok(acquire(other, write=["t2"], ttl_ms=50000))["ttl_ms"] == 50000
        ok(other.call({"op": "rollback"}))
        assert ok(acquire(other, write=["t2"], ttl_ms=None))["ttl_ms"] == 10000
        ok(other.call({"op": "rollback"}))
        assert status(d)["pool"]["size"] == 4

        # The held lease is untouched.
        assert not observer.can_write("t1")
        ok(holder.call({"op": "commit"}))
    assert observer.value("t1", 1) == 77

    # A file with a bad value is rejected the same way; fixing it applies.
    rewrite(d, leases={"bogus_key": None, "max_ttl_ms": "soon"})
    reload(d)
    assert len(log_lines(d, r"reload failed")) == 2
    rewrite(d, leases={"max_ttl_ms": 2000})
    reload(d)
    assert log_lines(d, r"reload done")
    with d.client() as c:
        assert ok(acquire(c, write=["t2"], ttl_ms=50000))["ttl_ms"] == 2000
        ok(c.call({"op": "rollback"}))


def test_reload_of_fixed_keys_needs_a_restart(daemon, mariadb, observer, tables):
    d = start(daemon, leases={"default_ttl_ms": 1000, "max_ttl_ms": 60000})
    other_sock = os.path.join(d.dir, "moved.sock")
    rewrite(d, daemon={"listen": "unix:" + other_sock},
            mysql={"socket": os.path.join(d.dir, "no-such-mysql.sock")},
            leases={"max_ttl_ms": 4000})
    reload(d)
    assert log_lines(d, r"reload done"), d.log_text()[-2000:]
    listen_warn = log_lines(d, r"\[daemon\] listen .*restart")
    mysql_warn = log_lines(d, r"\[mysql\] socket .*restart")
    assert listen_warn and mysql_warn, d.log_text()[-2000:]
    # The running listener and MySQL address stay; the reloadable key applies.
    assert not os.path.exists(other_sock)
    with d.client() as c:
        resp = ok(acquire(c, write=["t1"], ttl_ms=50000))
        assert resp["ttl_ms"] == 4000
        ok(query(c, "UPDATE t1 SET v = 5 WHERE id = 2"))
        ok(c.call({"op": "commit"}))
    assert observer.value("t1", 2) == 5


# ---------------------------------------------------------------- drain


def test_sigterm_drains_held_leases_then_rolls_back_the_rest(daemon, observer, tables):
    drain_ms = 3000
    d = daemon(daemon={"drain_timeout_ms": drain_ms})
    committer = named_client(d, "committer")
    idler = named_client(d, "idler")
    waiter = named_client(d, "waiter")
    latecomer = d.client()
    try:
        committed = ok(acquire(committer, write=["t1"], ttl_ms=30000))["lease"]
        ok(query(committer, "UPDATE t1 SET v = 111 WHERE id = 1"))
        idle = ok(acquire(idler, write=["t2"], ttl_ms=30000))["lease"]
        ok(query(idler, "UPDATE t2 SET v = 222 WHERE id = 1"))
        send_acquire(waiter, write=["t1"], wait_ms=20000)
        waiting = wait_state(d, "waiter", "waiting")["lease"]

        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)

        # The waiter is ended at once with shutting_down.
        resp = waiter.recv_response(timeout=2)
        assert error_code(resp) == "shutting_down", resp
        assert elapsed_since(t0) < scaled(1.0)
        # The idle lease still holds t2 while the window lasts. Checked now,
        # early in the window, and without letting MySQL wait (a wait of a
        # second, on a busy machine, could run past the window's end).
        assert not observer.can_write_now("t2")
        # Listeners close: the socket file goes, new connections are refused.
        wait_for(lambda: not os.path.exists(d.sock), timeout=1, what="the socket file to be removed")
        assert connect_refused(d.sock)
        # A new acquire on an open connection is refused.
        assert error_code(acquire(latecomer, read=["t2"], wait_ms=0)) == "shutting_down"

        # Inside the window, a held lease works and commits.
        ok(query(committer, "UPDATE t1 SET v = v + 1 WHERE id = 2"))
        assert ok(committer.call({"op": "commit"}))["lease"] == committed
        assert observer.can_write("t1")
        assert observer.value("t1", 1) == 111
        assert observer.value("t1", 2) == 21
        # ... and cannot start another lease.
        assert error_code(acquire(committer, write=["t1"])) == "shutting_down"

        # (That the daemon waited for the window's end is the exit time's
        # lower bound below, which holds however slow the steps above were.)
        rc = wait_exit(d, drain_ms / 1000.0 + 5)
        took = elapsed_since(t0)
        assert rc == 0, d.log_text()[-3000:]
        assert took >= drain_ms / 1000.0 - 0.05, "exited after %.2fs, before the window ended" % took
        assert took < drain_ms / 1000.0 + scaled(2.0), "exited %.2fs after SIGTERM" % took

        # The idle lease was rolled back and t2 is free.
        assert observer.can_write("t2")
        assert observer.value("t2", 1) == 10
        assert idler.closed(2) and committer.closed(2) and latecomer.closed(2)
        wait_for(lambda: observer.daemon_threads() == [], timeout=3, what="the daemon's sessions to go")

        # The log names how each lease ended.
        assert log_lines(d, r"draining: 2 held leases may finish within %d ms" % drain_ms), d.log_text()[-3000:]
        assert log_lines(d, r"lease %d: ended: committed" % committed), d.log_text()[-3000:]
        assert log_lines(d, r"lease %d: ended: daemon shutdown after" % idle), d.log_text()[-3000:]
        assert log_lines(d, r"lease %d: ended before it was held: daemon shutdown" % waiting), d.log_text()[-3000:]
        assert log_lines(d, r"drain_timeout_ms ran out"), d.log_text()[-3000:]
    finally:
        for c in (committer, idler, waiter, latecomer):
            c.close()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["second-SIGTERM", "then-SIGINT"])
def test_second_signal_cuts_the_drain(daemon, observer, tables, second):
    d = daemon(daemon={"drain_timeout_ms": 30000})
    with d.client() as holder:
        lease = ok(acquire(holder, write=["t1"], ttl_ms=60000))["lease"]
        ok(query(holder, "UPDATE t1 SET v = 999 WHERE id = 1"))
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: log_lines(d, r"draining: 1 held lease may"), timeout=2, what="the drain to start (log)")
        time.sleep(0.3)
        assert d.running(), "the daemon did not wait for the held lease"
        assert not observer.can_write("t1")
        t0 = time.monotonic()
        d.proc.send_signal(second)
        rc = wait_exit(d, 5)
        assert rc == 0, d.log_text()[-3000:]
        assert elapsed_since(t0) < scaled(1.5), "exit took %.2fs after the second signal" % elapsed_since(t0)
        assert observer.can_write("t1")
        assert observer.value("t1", 1) == 10
        assert holder.closed(2)
        assert log_lines(d, r"not waiting any longer"), d.log_text()[-3000:]
        assert log_lines(d, r"lease %d: ended: daemon shutdown" % lease), d.log_text()[-3000:]


def test_sigint_does_not_wait(daemon, observer, tables):
    d = daemon(daemon={"drain_timeout_ms": 30000})
    with d.client() as holder, named_client(d, "waiter") as waiter:
        lease = ok(acquire(holder, write=["t1"], ttl_ms=60000))["lease"]
        ok(query(holder, "DELETE FROM t1"))
        send_acquire(waiter, write=["t1"], wait_ms=20000)
        wait_state(d, "waiter", "waiting")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        rc = wait_exit(d, 5)
        assert rc == 0, d.log_text()[-3000:]
        assert elapsed_since(t0) < scaled(1.5), "SIGINT exit took %.2fs" % elapsed_since(t0)
        assert not os.path.exists(d.sock)
        assert observer.can_write("t1")
        assert observer.execute("SELECT COUNT(*) AS n FROM t1")[0]["n"] == 3
        assert holder.closed(2) and waiter.closed(2)
        assert not log_lines(d, r"draining")
        assert log_lines(d, r"lease %d: ended: daemon shutdown" % lease), d.log_text()[-3000:]


def test_drain_ends_early_when_every_lease_is_done(daemon, observer, tables):
    # Nothing left to wait for: the daemon exits without using the window.
    d = daemon(daemon={"drain_timeout_ms": 20000})
    with d.client() as first, d.client() as last:
        committed = ok(acquire(first, write=["t1"], ttl_ms=60000))["lease"]
        ok(query(first, "UPDATE t1 SET v = 7 WHERE id = 3"))
        dropped = ok(acquire(last, write=["t2"], ttl_ms=60000))["lease"]
        ok(query(last, "UPDATE t2 SET v = 7 WHERE id = 3"))
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: log_lines(d, r"draining: 2 held leases"), timeout=2, what="the drain to start (log)")
        ok(first.call({"op": "commit"}))
        time.sleep(0.3)
        assert d.running(), "the daemon exited while a lease was still held"
        last.close()  # the last lease ends: disconnected, rolled back
        rc = wait_exit(d, 5)
        assert rc == 0, d.log_text()[-3000:]
        assert elapsed_since(t0) < scaled(2.0), "the daemon waited %.2fs with nothing left to drain" % elapsed_since(t0)
    assert observer.value("t1", 3) == 7
    assert observer.can_write("t2")
    assert observer.value("t2", 3) == 30
    assert log_lines(d, r"lease %d: ended: committed" % committed)
    assert log_lines(d, r"lease %d: ended: client disconnected" % dropped)


def test_drain_ends_a_lease_running_a_statement_and_one_locking(daemon, mariadb, observer, outside, tables):
    mariadb.fresh_tables(["t3"])
    d = daemon(daemon={"drain_timeout_ms": 1000})
    with named_client(d, "sleeper") as sleeper, named_client(d, "locker") as locker:
        lease = ok(acquire(sleeper, write=["t1"], ttl_ms=60000))["lease"]
        ok(query(sleeper, "UPDATE t1 SET v = 5 WHERE id = 1"))
        with outside.cursor() as cur:
            cur.execute("LOCK TABLES t3 WRITE")
        send_acquire(locker, write=["t3"], wait_ms=20000)
        locking = wait_state(d, "locker", "locking")["lease"]
        sleeper.send({"op": "query", "sql": "SELECT SLEEP(30)"})
        # The drain must find the statement running, not still on its way.
        wait_for(lambda: any((r["INFO"] or "").startswith("SELECT SLEEP") for r in observer.daemon_threads()),
                 timeout=3, what="the SLEEP to run in MySQL")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        resp = locker.recv_response(timeout=3)
        assert error_code(resp) == "shutting_down", resp
        assert elapsed_since(t0) < scaled(1.0)
        rc = wait_exit(d, 6)
        assert rc == 0, d.log_text()[-3000:]
        assert elapsed_since(t0) < 1.0 + scaled(2.0), "exit %.2fs after SIGTERM" % elapsed_since(t0)
        assert sleeper.closed(2)
    assert observer.can_write("t1")
    assert observer.value("t1", 1) == 10
    # The daemon has exited; MySQL ends its connections' threads a moment
    # after they close.
    wait_for(lambda: observer.daemon_threads() == [], timeout=3, what="the daemon's sessions to go")
    assert log_lines(d, r"lease %d: ended: daemon shutdown" % lease), d.log_text()[-3000:]
    assert log_lines(d, r"lease %d: ended before it was held: daemon shutdown" % locking), d.log_text()[-3000:]


def test_reloaded_drain_timeout_applies(daemon, observer, tables):
    d = start(daemon, daemon={"drain_timeout_ms": 30000})
    rewrite(d, daemon={"drain_timeout_ms": 600})
    reload(d)
    with d.client() as holder:
        ok(acquire(holder, write=["t1"], ttl_ms=60000))
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = wait_exit(d, 5)
        assert rc == 0
        assert 0.55 <= elapsed_since(t0) < 0.6 + scaled(1.5), elapsed_since(t0)
    assert observer.can_write("t1")


# ---------------------------------------------------------------- answers at shutdown
#
# PROTOCOL.md §7: on shutdown the daemon "answers running requests and those
# that arrive meanwhile with shutting_down, and closes every connection"; and
# a commit made inside the drain window is answered ok. An answer written
# just before the daemon closes its connections must reach the client, not
# be dropped with the connection's unsent output. Whether it is sent in time
# depends on how fast MySQL answers the last release, so each case is
# repeated on fresh daemons.

REPEAT = 30


def _commit_ends_the_drain(d, observer):
    before = observer.value("t1", 3)
    with d.client() as c:
        ok(acquire(c, write=["t1"], ttl_ms=60000))
        ok(query(c, "UPDATE t1 SET v = v + 1 WHERE id = 3"))
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: log_lines(d, r"draining: 1 held lease may"), timeout=2, what="the drain to start (log)")
        c.send({"op": "commit"})
        resp = c.recv_response(timeout=3)
        assert wait_exit(d, 5) == 0
        committed = observer.value("t1", 3) == before + 1
        return resp, "the commit (%s)" % ("it did commit" if committed else "it did not commit")


def _waiter_on_sigint(d, observer):
    with named_client(d, "holder") as holder, named_client(d, "waiter") as waiter:
        ok(acquire(holder, write=["t1"], ttl_ms=60000))
        ok(query(holder, "UPDATE t1 SET v = 0 WHERE id = 1"))
        send_acquire(waiter, write=["t1"], wait_ms=20000)
        wait_state(d, "waiter", "waiting")
        d.proc.send_signal(signal.SIGINT)
        resp = waiter.recv_response(timeout=3)
        assert wait_exit(d, 5) == 0
        return resp, "the waiting acquire"


def _running_query_on_sigint(d, observer):
    with d.client() as c:
        ok(acquire(c, write=["t1"], ttl_ms=60000))
        c.send({"op": "query", "sql": "SELECT SLEEP(20)"})
        wait_for(lambda: any((r["INFO"] or "").startswith("SELECT SLEEP") for r in observer.daemon_threads()),
                 timeout=3, what="the query to run in MySQL")
        d.proc.send_signal(signal.SIGINT)
        resp = c.recv_response(timeout=5)
        assert wait_exit(d, 8) == 0
        return resp, "the running query"


@pytest.mark.parametrize("case", [_commit_ends_the_drain, _waiter_on_sigint, _running_query_on_sigint],
                         ids=["commit-ends-the-drain", "waiter-on-SIGINT", "running-query-on-SIGINT"])
def test_answers_sent_at_shutdown_are_not_dropped(daemon, observer, tables, case):
    lost = []
    for attempt in range(REPEAT):
        d = daemon(daemon={"drain_timeout_ms": 20000})
        try:
            resp, what = case(d, observer)
        except AssertionError as e:
            # Client.recv_response raises when the connection closes after
            # part of a line; that is a lost answer too.
            if "partial line" not in str(e):
                raise
            resp, what = None, "an answer (cut)"
        if resp is None:
            lost.append("attempt %d: %s got no answer; the connection was closed.%s"
                        % (attempt + 1, what, "" if lost else " Log:\n" + d.log_text()[-1500:]))
            continue
        if case is _commit_ends_the_drain:
            ok(resp)
        else:
            assert error_code(resp) == "shutting_down", resp
        assert observer.can_write("t1")
    assert not lost, "%d of %d shutdowns dropped an answer:\n%s" % (len(lost), REPEAT, "\n".join(lost))


def test_queued_answers_are_flushed_at_shutdown(daemon, observer, tables):
    # Deterministic: a large answer the client has not read yet keeps the
    # daemon's output queued, so the commit's answer is still queued when
    # the last lease ends. The client reads everything right away; it must
    # get the whole result and then the commit's answer.
    d = daemon(daemon={"drain_timeout_ms": 20000})
    with d.client() as c:
        ok(acquire(c, write=["t1"], ttl_ms=60000))
        ok(query(c, "UPDATE t1 SET v = 4242 WHERE id = 1"))
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: log_lines(d, r"draining: 1 held lease may"), timeout=2, what="the drain to start (log)")
        c.send({"op": "query", "sql": "SELECT REPEAT('x', 4000000) AS big"})
        time.sleep(0.3)
        c.send({"op": "commit"})
        # t1 stays locked until the commit: reading it before would wait,
        # and fail after the observer's lock_wait_timeout (1 s), where a
        # busy machine can take longer than that over the 4 MB result.
        wait_for(lambda: observer.can_read_now("t1") and observer.value("t1", 1) == 4242, timeout=10,
                 what="the commit in MySQL")
        try:
            big = c.recv_response(timeout=5)
            commit = c.recv_response(timeout=5)
        except AssertionError as e:
            raise AssertionError("the daemon closed the connection with answers unsent (%s)" % str(e)[:80])
        assert big is not None and len(ok(big)["rows"][0][0]) == 4000000
        assert commit is not None, "the commit's answer was dropped at shutdown"
        ok(commit)
        assert wait_exit(d, 5) == 0


# ---------------------------------------------------------------- socket activation


@pytest.fixture
def spawned(mariadb):
    """Daemons the test starts by hand (own command line and fds); stopped
    with SIGTERM at teardown, which must give 0."""
    binary = os.path.abspath(os.environ.get("TABLELOCKD") or os.path.join(REPO, "daemon", "tablelockd"))
    made = []

    def make(**sections):
        d = Daemon(binary, mariadb, sections)
        made.append(d)
        return d

    yield make
    problems = []
    for d in made:
        problems += d.teardown()
    assert not problems, "\n".join(problems)


def spawn_with_listen_fd(d, listen_sock, listen_pid="$$"):
    """Starts d's daemon the way systemd does socket activation: the
    listening socket as fd 3, LISTEN_FDS=1 and LISTEN_PID = the daemon's pid
    ($$ of the shell that execs it). listen_pid may name another pid."""
    fd = listen_sock.fileno()

    def child():
        _die_with_parent()
        if fd == 3:
            os.set_inheritable(3, True)
        else:
            os.dup2(fd, 3)  # inheritable: survives the exec
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="tablelockd.socket")
    env.pop("NOTIFY_SOCKET", None)
    script = 'export LISTEN_PID=%s; exec "$@"' % listen_pid
    with open(d.stderr_path, "ab") as log:
        # close_fds=False: Python's own descriptors are close-on-exec anyway,
        # and closing would also close the fd 3 made in child().
        d.proc = subprocess.Popen(["sh", "-c", script, "sh", d.binary, "-c", d.conf],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                  close_fds=False, preexec_fn=child)
    return d


def wait_ping(d, path, timeout=10.0):
    def pong():
        if d.proc.poll() is not None:
            raise AssertionError("tablelockd exited with %d:\n%s" % (d.proc.returncode, d.log_text()[-3000:]))
        try:
            with Client(path, timeout=1.0) as c:
                return c.call({"op": "ping"}).get("ok") is True
        except (OSError, AssertionError):
            return False
    wait_for(pong, timeout=timeout, what="ping on %s" % path)


def test_socket_activation_uses_the_passed_socket(spawned, observer, tables):
    d = spawned()
    passed = os.path.join(d.dir, "activated.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lsock.bind(passed)
        lsock.listen(64)
        spawn_with_listen_fd(d, lsock)
        wait_ping(d, passed)
        assert log_lines(d, r"listening on passed descriptor 3"), d.log_text()[-2000:]
        # The configured listen line is not used.
        assert not os.path.exists(d.sock), "the daemon created its configured socket too"
        assert not log_lines(d, r"listening on unix:")
        with Client(passed) as c, Client(passed) as other:
            lease = ok(acquire(c, write=["t1"]))["lease"]
            assert not observer.can_write("t1")
            assert error_code(acquire(other, write=["t1"], wait_ms=0)) == "lock_timeout"
            ok(query(c, "UPDATE t1 SET v = 42 WHERE id = 3"))
            assert ok(c.call({"op": "commit"}))["lease"] == lease
        assert observer.value("t1", 3) == 42
        # systemd owns the socket file: it stays after the daemon exits,
        # and the daemon holds no other listener.
        assert d.stop() == 0
        assert os.path.exists(passed)
        assert not os.path.exists(d.sock)
    finally:
        lsock.close()


def test_socket_activation_for_another_pid_is_ignored(spawned, tables):
    # LISTEN_PID naming another process (here: the test) means the fds are
    # not for this daemon: it opens its own listen lines as usual.
    d = spawned()
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lsock.bind(os.path.join(d.dir, "not-for-me.sock"))
        lsock.listen(4)
        spawn_with_listen_fd(d, lsock, listen_pid=str(os.getpid()))
        wait_ping(d, d.sock)
        assert not log_lines(d, r"passed descriptor")
        assert log_lines(d, r"listening on unix:" + re.escape(d.sock))
        with Client(d.sock) as c:
            ok(acquire(c, write=["t1"]))
            ok(c.call({"op": "rollback"}))
        assert d.stop() == 0
        assert not os.path.exists(d.sock)
    finally:
        lsock.close()


def test_without_listen_fds_the_listen_lines_are_used(daemon, monkeypatch, tables):
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    monkeypatch.delenv("LISTEN_PID", raising=False)
    d = daemon()
    assert os.path.exists(d.sock)
    assert log_lines(d, r"listening on unix:" + re.escape(d.sock))
    assert not log_lines(d, r"passed descriptor")
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        ok(c.call({"op": "commit"}))


# ---------------------------------------------------------------- sd_notify


def test_sd_notify_ready_status_reloading_stopping(daemon, observer, notify_socket, monkeypatch, tables):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    d = daemon(wait=False, daemon={"drain_timeout_ms": 0})
    ready = notify_socket.expect("READY", timeout=10)
    # Readiness only once the listener is open and the pool has a session.
    assert ready["READY"] == "1"
    assert "STATUS" in ready and ready["STATUS"], ready
    assert os.path.exists(d.sock), "READY=1 before the socket exists"
    assert len(observer.daemon_threads()) >= 1, "READY=1 before the pool reached MySQL"
    with d.client() as c:
        assert c.call({"op": "ping"})["ok"] is True
        # STATUS= lines follow the leases held.
        ok(acquire(c, write=["t1"]))
        msg = notify_socket.expect("STATUS", timeout=3)
        while not msg["STATUS"].startswith("1 lease held"):
            msg = notify_socket.expect("STATUS", timeout=3)
        assert re.fullmatch(r"1 lease held, 0 waiting, (1 client|\d+ clients)", msg["STATUS"]), msg
        ok(c.call({"op": "rollback"}))
    notify_socket.expect("WATCHDOG", timeout=2, value="1")
    notify_socket.expect("WATCHDOG", timeout=2, value="1")

    # SIGHUP: RELOADING=1 with the monotonic time, then READY=1.
    before = time.monotonic_ns() // 1000
    d.proc.send_signal(signal.SIGHUP)
    reloading = notify_socket.expect("RELOADING", timeout=5)
    after = time.monotonic_ns() // 1000
    assert reloading["RELOADING"] == "1"
    assert "MONOTONIC_USEC" in reloading, reloading
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after, (before, reloading, after)
    assert notify_socket.expect("READY", timeout=5)["READY"] == "1"

    # A failed reload also ends with READY=1 (the old config serves).
    with open(d.conf, "a") as f:
        f.write("\n[leases]\nnot_a_key = 1\n")
    d.proc.send_signal(signal.SIGHUP)
    notify_socket.expect("RELOADING", timeout=5)
    notify_socket.expect("READY", timeout=5)
    assert log_lines(d, r"reload failed")

    # SIGTERM: STOPPING=1.
    assert d.stop() == 0
    assert notify_socket.expect("STOPPING", timeout=2)["STOPPING"] == "1"


# ---------------------------------------------------------------- metrics


def test_metrics_move_with_the_workload(daemon, observer, tables):
    d, port = with_metrics(daemon)
    assert log_lines(d, r"metrics on http://127.0.0.1:%d/metrics" % port)
    code, ctype, body = http_get(port, "/healthz")
    assert (code, body.strip()) == (200, "ok")
    # All four pooled sessions connected and idle, nothing held.
    wait_for(lambda: Scrape(port)("tablelockd_pool_sessions", state="idle") == 4, timeout=5,
             what="4 idle pool sessions")

    main, blocked, sloppy, expiring = d.client(), d.client(), d.client(), d.client()
    try:
        wait_for(lambda: Scrape(port)("tablelockd_client_connections") == 4, timeout=3,
                 what="client_connections == 4")
        m0 = Scrape(port)
        for name in ("tablelockd_leases_held", "tablelockd_leases_waiting"):
            for mode in ("read", "write"):
                assert m0(name, mode=mode) == 0
        assert m0.types["tablelockd_lock_wait_seconds"] == "histogram"
        assert m0.types["tablelockd_lease_hold_seconds"] == "histogram"
        assert m0.types["tablelockd_leases_held"] == "gauge"
        assert m0.types["tablelockd_leases_ended_total"] == "counter"

        # Three acquire/query/commit cycles.
        for _ in range(3):
            ok(acquire(main, write=["t1"]))
            ok(query(main, "UPDATE t1 SET v = v + 1 WHERE id = 1"))
            ok(main.call({"op": "commit"}))
        assert observer.value("t1", 1) == 13

        # A held lease shows; firewall refusals; a lock timeout behind it;
        # then a rollback.
        ok(acquire(main, write=["t1"], read=["t2"]))
        # The session of the last commit is reset after the commit was
        # answered, and counts as busy until then: wait for it.
        m1 = wait_for(lambda: (lambda m: m if m("tablelockd_pool_sessions", state="idle") == 3 else None)(
            Scrape(port)), timeout=5, what="3 idle pool sessions, one lent")
        assert m1("tablelockd_leases_held", mode="write") == 1
        assert m1("tablelockd_leases_held", mode="read") == 0
        assert m1("tablelockd_pool_sessions", state="busy") == 1
        assert m1("tablelockd_lease_oldest_held_seconds") >= 0
        assert error_code(query(main, "COMMIT")) == "statement_not_allowed"
        assert error_code(query(main, "UNLOCK TABLES")) == "statement_not_allowed"
        assert error_code(acquire(blocked, write=["t1"], wait_ms=200)) == "lock_timeout"
        ok(query(main, "UPDATE t1 SET v = 0 WHERE id = 1"))
        ok(main.call({"op": "rollback"}))
        assert observer.value("t1", 1) == 13

        # Bad requests.
        sloppy.send_raw(b"this is not json\n")
        assert error_code(sloppy.recv_response()) == "bad_request"
        sloppy.send_raw(b"[1, 2]\n")
        assert error_code(sloppy.recv_response()) == "bad_request"
        assert error_code(sloppy.call({"op": "frobnicate"})) == "bad_request"

        # An expiry. The UPDATE is sent with the acquire, so that the daemon
        # runs it within the 300 ms however late this process reads the grant.
        expiring.send({"op": "acquire", "write": ["t2"], "wait_ms": 2000, "ttl_ms": 300})
        expiring.send({"op": "query", "sql": "UPDATE t2 SET v = 0 WHERE id = 1"})
        lease = ok(expiring.recv_response(timeout=5))["lease"]
        ok(expiring.recv_response(timeout=5))
        assert expiring.wait_event("lease_expired", timeout=3)["lease"] == lease
        wait_for(lambda: observer.can_write("t2"), timeout=2, what="t2 to be free after the expiry")
        assert observer.value("t2", 1) == 10

        wait_for(lambda: Scrape(port)("tablelockd_pool_sessions", state="idle") == 4, timeout=3,
                 what="every session back in the pool")
        m2 = Scrape(port)

        def delta(name, **labels):
            return m2(name, **labels) - m0(name, **labels)

        ended = "tablelockd_leases_ended_total"
        # One series per outcome (lease.c's table of names), none twice.
        outcomes = [dict(labels)["outcome"] for name, labels in m2.samples if name == ended]
        assert sorted(outcomes) == sorted(["committed", "rolled_back", "expired", "disconnected",
                                           "lock_timeout", "revoked", "lost", "shutdown",
                                           "failed"]), outcomes
        assert delta(ended, outcome="committed") == 3
        assert delta(ended, outcome="rolled_back") == 1
        assert delta(ended, outcome="expired") == 1
        assert delta(ended, outcome="lock_timeout") == 1
        for outcome in ("disconnected", "revoked", "lost", "shutdown"):
            assert delta(ended, outcome=outcome) == 0, outcome
        assert delta("tablelockd_lock_timeouts_total") == 1
        assert delta("tablelockd_firewall_refusals_total") == 2
        assert delta("tablelockd_bad_requests_total") == 3
        # Acquires: 3 cycles, the held one, the timed out one, the expiring one.
        assert delta("tablelockd_requests_total", op="acquire") == 6
        assert delta("tablelockd_requests_total", op="query") == 3 + 2 + 1 + 1
        assert delta("tablelockd_requests_total", op="commit") == 3
        assert delta("tablelockd_requests_total", op="rollback") == 1
        # Statements that ran (refused ones never reached MySQL).
        assert delta("tablelockd_statements_total") == 5
        assert delta("tablelockd_statement_errors_total") == 0
        # Five leases were granted and five ended after holding.
        assert delta("tablelockd_lock_wait_seconds_count") == 5
        assert delta("tablelockd_lease_hold_seconds_count") == 5
        assert delta("tablelockd_lease_hold_seconds_sum") >= 0.29  # the expired one held 300 ms
        assert delta("tablelockd_mysql_reconnects_total") == 0
        assert delta("tablelockd_client_connections_total") == 0
        for mode in ("read", "write"):
            assert m2("tablelockd_leases_held", mode=mode) == 0
            assert m2("tablelockd_leases_waiting", mode=mode) == 0
        assert m2("tablelockd_lease_oldest_held_seconds") == 0
        assert m2("tablelockd_client_connections") == 4
    finally:
        for c in (main, blocked, sloppy, expiring):
            c.close()
    wait_for(lambda: Scrape(port)("tablelockd_client_connections") == 0, timeout=3,
             what="client_connections == 0 after the clients left")
    # Unknown paths are not served.
    assert http_get(port, "/nope")[0] == 404


def test_metrics_waiting_gauge_and_disconnect(daemon, observer, tables):
    d, port = with_metrics(daemon)
    m0 = Scrape(port)
    with named_client(d, "holder") as holder, named_client(d, "reader") as reader:
        ok(acquire(holder, write=["t1"]))
        send_acquire(reader, read=["t1"], wait_ms=10000)
        wait_state(d, "reader", "waiting")
        m1 = Scrape(port)
        assert m1("tablelockd_leases_held", mode="write") == 1
        assert m1("tablelockd_leases_waiting", mode="read") == 1
        assert m1("tablelockd_leases_waiting", mode="write") == 0
        holder.close()  # its lease ends: disconnected; the reader gets t1
        resp = reader.recv_response(timeout=5)
        ok(resp)
        m2 = Scrape(port)
        assert m2("tablelockd_leases_held", mode="read") == 1
        assert m2("tablelockd_leases_held", mode="write") == 0
        assert m2("tablelockd_leases_waiting", mode="read") == 0
        assert m2("tablelockd_leases_ended_total", outcome="disconnected") - \
            m0("tablelockd_leases_ended_total", outcome="disconnected") == 1
        # The reader waited for the holder: its wait shows in the histogram.
        assert m2("tablelockd_lock_wait_seconds_count") - m0("tablelockd_lock_wait_seconds_count") == 2
        ok(reader.call({"op": "rollback"}))


def test_healthz_is_503_when_mysql_is_unreachable(daemon, notify_socket, tables):
    d, port = with_metrics(daemon, mysql={"socket": "/nonexistent/tl-no-mysql.sock",
                                          "connect_timeout_ms": 500})
    # Ready all the same (clients get `unavailable`), saying why in STATUS=.
    ready = notify_socket.expect("READY", timeout=5)
    assert "unreachable" in ready.get("STATUS", ""), ready
    wait_for(lambda: http_get(port, "/healthz")[0] == 503, timeout=5, what="/healthz 503")
    code, _, body = http_get(port, "/healthz")
    assert code == 503 and "unreachable" in body, (code, body)
    m = Scrape(port)
    assert m("tablelockd_pool_sessions", state="idle") == 0
    with d.client() as c:
        assert error_code(acquire(c, write=["t1"])) == "unavailable"


def test_metrics_address_is_split_as_listen_lines_are(daemon):
    """[metrics] listen is split by util/hostport.c, as listen lines and the
    clients' addresses are: an IPv6 address needs its brackets ("::1:9470"
    could be split two ways), and the daemon says so as it refuses to start."""
    d = daemon(wait=False, metrics={"listen": "::1:9470"})
    rc = d.proc.wait(timeout=scaled(10))
    d.proc = None
    assert rc == 1, d.log_text()
    want = "tablelockd: [metrics] listen ::1:9470: an IPv6 address goes in brackets, as [::1]:7000"
    assert want in d.log_text(), d.log_text()


def test_reload_moves_the_metrics_endpoint(daemon):
    d, first = with_metrics(lambda **sections: start(daemon, **sections))
    assert http_get(first, "/healthz")[0] == 200
    # Whether the daemon listens is read from /proc, not by connecting: a
    # port the daemon does not hold may be anyone else's by now.
    assert tcp_listening_ports(d.proc.pid) == {first}

    def move_to(second):
        # A reload that cannot bind the new address still ends in "reload
        # done", after "reload: [metrics] listen …: cannot bind; metrics
        # endpoint stopped".
        stopped = len(log_lines(d, r"metrics endpoint stopped"))
        rewrite(d, metrics={"listen": "127.0.0.1:%d" % second})
        reload(d)
        assert log_lines(d, r"reload (done|failed)")[-1].find("reload done") >= 0, d.log_text()[-2000:]
        lines = log_lines(d, r"metrics endpoint stopped")
        assert len(lines) == stopped, lines[-1]
        return second
    second = on_unused_ports(move_to)
    assert http_get(second, "/healthz")[0] == 200
    Scrape(second)
    assert tcp_listening_ports(d.proc.pid) == {second}, "the old metrics endpoint is still open"

    # Removing the key stops the endpoint.
    rewrite(d, metrics={"listen": None})
    reload(d)
    assert tcp_listening_ports(d.proc.pid) == set()
    with d.client() as c:
        assert c.call({"op": "ping"})["ok"] is True
