"""Integration harness: a throwaway MariaDB, the real daemon, a raw client, an observer.

Every test that touches SQL talks to a real MariaDB started here in a temp
dir (networking off, never the system service) and to the real tablelockd
binary ($TABLELOCKD) on a private Unix socket. An outside pymysql session
(`observer`) checks lock state independently of the daemon: with
lock_wait_timeout=1, a statement that MySQL makes wait on a table lock fails
with error 1205 after one second.

Env:
  TABLELOCKD                path of the daemon binary (default daemon/tablelockd)
  TABLELOCK_VALGRIND=1      run the daemon under valgrind (errors fail the test)
  TABLELOCK_TIMEOUT_SCALE   multiply harness timeouts (default 1; 5 under valgrind)
"""

import ctypes
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pymysql
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON_USER = "tablelockd"
DAEMON_PASSWORD = "secret-pw"
DATABASE = "app"
VALGRIND = os.environ.get("TABLELOCK_VALGRIND", "") not in ("", "0")
SCALE = float(os.environ.get("TABLELOCK_TIMEOUT_SCALE", "5" if VALGRIND else "1"))

# MySQL's "Lock wait timeout exceeded": what a statement blocked by a table
# lock gets once lock_wait_timeout runs out.
ER_LOCK_WAIT_TIMEOUT = 1205


def scaled(seconds):
    """A harness timeout, stretched for slow runs (valgrind, sanitizers)."""
    return seconds * SCALE


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Polls predicate until it returns a true value, which is returned.
    Fails the test when timeout (scaled) runs out."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (scaled(timeout), what))
        time.sleep(interval)


# Children die with the test run: if pytest itself is killed, the kernel
# sends SIGKILL to mariadbd and the daemon, so nothing outlives the suite.
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# Client.as_user's child: connects to argv[1] as the user it runs as and
# hands the connected socket back over the inherited socket argv[2].
_CONNECT_AND_HAND_BACK = r"""
import socket, sys
back = socket.socket(fileno=int(sys.argv[2]))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    back.sendall(b"errno %d" % e.errno)
    sys.exit(0)
socket.send_fds(back, [b"ok"], [s.fileno()])
"""


def _sigterm_as_interrupt(signum, frame):
    # A runner's timeout sends SIGTERM: unwind like Ctrl-C so that fixture
    # teardown stops the servers and removes the temp dirs.
    raise KeyboardInterrupt("SIGTERM")


signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def _short_tempdir(prefix):
    # Unix socket paths are limited to 107 bytes; keep ours short.
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


# ---------------------------------------------------------------- TCP ports
#
# A test's daemon listens on a port chosen here, and nothing stops another
# process from taking that port between the choice and the daemon's bind:
# another suite running on the machine, or any outgoing connection, which
# the kernel gives a port from its ephemeral range (where bind(0) picks too).
# So ports come from below that range, and a daemon that could not bind one
# is started again on another.


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def unused_port():
    """A TCP port of 127.0.0.1 that nobody is bound to now, below the
    kernel's ephemeral range."""
    high = max(_ephemeral_low(), 12000)
    for _ in range(200):
        port = random.randrange(10000, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no unused TCP port found below %d" % high)


# What the daemon says when a listen or metrics address is taken.
BIND_FAILURES = ("Address already in use", "cannot bind")


def on_unused_ports(start, count=1, attempts=5):
    """Returns start(*ports) for count distinct unused ports. When start
    fails because the daemon could not bind one of them (its log, in the
    AssertionError, says so), tries again with other ports."""
    for attempt in range(attempts):
        ports = []
        while len(ports) < count:
            port = unused_port()
            if port not in ports:
                ports.append(port)
        try:
            return start(*ports)
        except AssertionError as e:
            if attempt + 1 == attempts or not any(m in str(e) for m in BIND_FAILURES):
                raise
            print("ports %r were taken meanwhile (%s); trying others" % (ports, str(e).splitlines()[0]))


def tcp_listening_ports(pid):
    """The TCP ports process pid listens on (from /proc, so a port that
    another process listens on does not count)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address rem_address st ... inode; st 0A is LISTEN
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# ---------------------------------------------------------------- MariaDB


class MariaDB:
    """A private MariaDB server in a temp dir, reachable only over its socket.

    By default it shows metadata locks (the metadata_lock_info plugin) and
    the daemon's user may see other sessions (PROCESS), as status's
    blocked_by needs; extra_args are more mariadbd options."""

    def __init__(self, extra_args=("--plugin-load-add=metadata_lock_info",), process=True):
        self.dir = _short_tempdir("tl-mdb-")
        self.datadir = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.errlog = os.path.join(self.dir, "err.log")
        self.proc = None
        self.extra_args = list(extra_args)
        self.process = process

    def start(self):
        # A private tmpdir: the bootstrap names its temporary tables by pid,
        # and two installs sharing /tmp (parallel suites) can collide.
        self.tmpdir = os.path.join(self.dir, "tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        install = subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--datadir=" + self.datadir,
             "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
             "--tmpdir=" + self.tmpdir],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if install.returncode != 0:
            raise RuntimeError("mariadb-install-db failed:\n" + install.stdout.decode(errors="replace"))
        self._launch()
        with self.connect(database=None) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE `%s`" % DATABASE)
            cur.execute("CREATE USER %s@'localhost' IDENTIFIED BY %s", (DAEMON_USER, DAEMON_PASSWORD))
            # The narrow grant the daemon must manage with.
            cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE, LOCK TABLES ON `%s`.* TO %%s@'localhost'"
                        % DATABASE, (DAEMON_USER,))
            if self.process:
                cur.execute("GRANT PROCESS ON *.* TO %s@'localhost'", (DAEMON_USER,))

    def restart(self):
        """Stops the server cleanly and starts it again on the same data."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=scaled(60))
        self._launch()

    def _launch(self):
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--datadir=" + self.datadir, "--socket=" + self.sock,
             "--skip-networking", "--user=root", "--pid-file=" + os.path.join(self.dir, "pid"),
             "--log-error=" + self.errlog, "--innodb-buffer-pool-size=64M",
             "--tmpdir=" + self.tmpdir] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + scaled(60)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited with %d:\n%s" % (self.proc.returncode, self.error_log()))
            try:
                self.connect(database=None).close()
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not come up:\n" + self.error_log())
                time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def error_log(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no error log)"

    def connect(self, user="root", password="", database=DATABASE, **kwargs):
        """A new pymysql connection over the sandbox socket (autocommit on)."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 5)
        return pymysql.connect(unix_socket=self.sock, user=user, password=password,
                               database=database, **kwargs)

    def sql(self, statement, args=None):
        """Runs one statement as root; returns all rows."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout=10")
            cur.execute(statement, args)
            return cur.fetchall()

    def fresh_tables(self, names, rows=((1, 10), (2, 20), (3, 30))):
        """(Re)creates app.<name> for each name as an InnoDB table
        (id INT PRIMARY KEY, v INT NOT NULL DEFAULT 0) holding rows."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout=10")
            for name in names:
                quoted = "`%s`" % name.replace("`", "``")
                cur.execute("DROP TABLE IF EXISTS " + quoted)
                cur.execute("CREATE TABLE %s (id INT PRIMARY KEY, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB"
                            % quoted)
                if rows:
                    cur.executemany("INSERT INTO %s (id, v) VALUES (%%s, %%s)" % quoted, list(rows))


@pytest.fixture(scope="session")
def mariadb():
    server = MariaDB()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def tables(mariadb):
    """Fresh t1 and t2, rows (1,10), (2,20), (3,30)."""
    mariadb.fresh_tables(["t1", "t2"])
    return ["t1", "t2"]


# ---------------------------------------------------------------- client


class Client:
    """A raw protocol client: one JSON object per line, over a Unix socket
    (Client(path)), TCP (Client.tcp), TLS (Client.tls), or a Unix socket
    connected by another user (Client.as_user).

    call() sends a request and returns the next response; unsolicited events
    (objects with "event") seen on the way are kept in .events. Every read has
    a timeout, so a daemon that never answers fails the test instead of
    stalling the suite. A connection that fails while reading (reset, a TLS
    alert) reads as closed, and .error keeps why."""

    def __init__(self, path=None, timeout=10.0, sock=None):
        self.path = path
        self.timeout = timeout
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(scaled(timeout))
            try:
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.buf = b""
        self.events = []        # every event received, in order
        self._unread_events = []  # events not yet returned by wait_event
        self._responses = []    # responses read while looking for an event
        self.eof = False
        self.error = None       # what ended the connection while reading, if not a clean close

    @classmethod
    def tcp(cls, port, timeout=10.0, host="127.0.0.1"):
        """A client on the daemon's TCP listener host:port."""
        return cls(timeout=timeout, sock=socket.create_connection((host, port), timeout=scaled(timeout)))

    @classmethod
    def tls(cls, port, ctx, timeout=10.0, host="127.0.0.1"):
        """A client on the daemon's TLS listener, handshake done with the
        ssl.SSLContext ctx (an ssl.SSLError when the daemon refuses it)."""
        raw = socket.create_connection((host, port), timeout=scaled(timeout))
        try:
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        return cls(timeout=timeout, sock=sock)

    @classmethod
    def as_user(cls, path, uid, gid, timeout=10.0):
        """A client on the Unix socket path, connected by a child process
        running as uid/gid with no supplementary groups, which hands the
        connected socket back and exits: the daemon's SO_PEERCRED sees that
        user (and the child's pid), while this process talks. Raises the
        child's OSError when it cannot connect (PermissionError: the socket's
        mode or directory keeps that user out)."""
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            child = subprocess.run(
                ["/usr/bin/python3", "-c", _CONNECT_AND_HAND_BACK, path, str(there.fileno())],
                user=uid, group=gid, extra_groups=[], pass_fds=[there.fileno()], cwd="/",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=scaled(timeout) + 10,
                preexec_fn=_die_with_parent)
            there.close()
            here.settimeout(scaled(timeout))
            msg, fds, _, _ = socket.recv_fds(here, 64, 1)
        finally:
            here.close()
            there.close()
        if not fds:
            text = msg.decode(errors="replace")
            if text.startswith("errno "):
                code = int(text.split()[1])
                raise OSError(code, os.strerror(code), path)
            raise AssertionError("the connecting child (uid %d) failed (rc %d): %r %s"
                                 % (uid, child.returncode, text, child.stdout.decode(errors="replace")))
        sock = socket.socket(fileno=fds[0])
        sock.settimeout(scaled(timeout))
        return cls(path, timeout=timeout, sock=sock)

    def local_address(self):
        """host:port of this end of a TCP or TLS connection (as the daemon's
        status shows the peer)."""
        host, port = self.sock.getsockname()[:2]
        return "%s:%d" % (host, port)

    # -- sending

    def send_raw(self, data):
        """Sends bytes as they are. A peer that already closed is not an error
        here (the test looks at what comes back)."""
        self.sock.settimeout(scaled(self.timeout))
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def send(self, obj):
        """Sends one request line without waiting for its response."""
        self.send_raw(json.dumps(obj).encode() + b"\n")

    # -- receiving

    def _read_line(self, seconds):
        """Next raw line, None at EOF; raises TimeoutError after seconds (real
        time). Reads with a socket timeout rather than select(): a TLS socket
        may hold data already decrypted that select() cannot see."""
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buf:
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            except (OSError, ssl.SSLError) as e:  # reset, a TLS alert: the connection is over
                self.error = e
                chunk = b""
            if not chunk:
                self.eof = True
                if self.buf:
                    raise AssertionError("connection closed after a partial line: %r" % self.buf[:200])
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def _read_message(self, seconds):
        """Next message (events are also recorded), None at EOF; raises TimeoutError."""
        line = self._read_line(seconds)
        if line is None:
            return None
        try:
            msg = json.loads(line)
        except ValueError:
            raise AssertionError("daemon sent a line that is not JSON: %r" % line[:200])
        assert isinstance(msg, dict), "daemon sent a JSON value that is not an object: %r" % line[:200]
        if "event" in msg:
            assert "ok" not in msg, "an event must not carry \"ok\": %r" % msg
            self.events.append(msg)
            self._unread_events.append(msg)
        return msg

    def _deadline(self, timeout):
        return time.monotonic() + scaled(self.timeout if timeout is None else timeout)

    def recv(self, timeout=None):
        """The next message (response or event). None when the daemon closed
        the connection. Fails the test when nothing arrives within timeout."""
        if self._responses:
            return self._responses.pop(0)
        deadline = self._deadline(timeout)
        try:
            return self._read_message(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError("no message from the daemon within %.1fs"
                                 % scaled(self.timeout if timeout is None else timeout))

    def recv_response(self, timeout=None):
        """The next response, skipping (and keeping) events. None at EOF.
        Fails the test when none arrives within timeout."""
        if self._responses:
            return self._responses.pop(0)
        deadline = self._deadline(timeout)
        while True:
            try:
                msg = self._read_message(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError("no response from the daemon within %.1fs"
                                     % scaled(self.timeout if timeout is None else timeout))
            if msg is None or "event" not in msg:
                return msg

    def call(self, obj, timeout=None):
        """Sends one request and returns its response (events are skipped)."""
        self.send(obj)
        resp = self.recv_response(timeout)
        assert resp is not None, "daemon closed the connection instead of answering %r" % (obj,)
        return resp

    def silent(self, timeout=0.2):
        """True when no response arrives within timeout (events are kept; a
        response that does arrive is kept for the next recv). Not scaled: it
        asserts that something does NOT happen."""
        if self._responses:
            return False
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            try:
                msg = self._read_message(remaining)
            except TimeoutError:
                return True
            if msg is None:
                return False
            if "event" not in msg:
                self._responses.append(msg)
                return False

    def wait_event(self, name, timeout=5.0):
        """Returns the first not yet consumed event called name, waiting for it."""
        deadline = self._deadline(timeout)
        while True:
            for ev in self._unread_events:
                if ev.get("event") == name:
                    self._unread_events.remove(ev)
                    return ev
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %r event within %.1fs (events: %r)" % (name, scaled(timeout), self.events))
            try:
                msg = self._read_message(remaining)
            except TimeoutError:
                continue
            if msg is None:
                raise AssertionError("connection closed while waiting for a %r event" % name)
            if "event" not in msg:
                self._responses.append(msg)

    def closed(self, timeout=2.0):
        """True when the daemon closes the connection within timeout (messages
        before the close are read; events are kept, responses dropped)."""
        deadline = self._deadline(timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                msg = self._read_message(remaining)
            except TimeoutError:
                return False
            if msg is None:
                return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ok(resp):
    """Asserts a success response and returns it."""
    assert isinstance(resp, dict) and resp.get("ok") is True, "expected ok, got %r" % (resp,)
    return resp


def error_code(resp):
    """Asserts an error response of the documented shape; returns its code."""
    assert isinstance(resp, dict), "expected an error response, got %r" % (resp,)
    assert resp.get("ok") is False, "expected an error, got %r" % (resp,)
    err = resp.get("error")
    assert isinstance(err, dict), "error response without an error object: %r" % (resp,)
    assert isinstance(err.get("code"), str) and isinstance(err.get("message"), str), \
        "error needs a code and a message: %r" % (resp,)
    return err["code"]


# ---------------------------------------------------------------- daemon


# Connector/C's non-blocking API runs each call on its own small stack and
# switches to it by hand; memcheck cannot follow that and reports reads of
# "uninitialised" bytes inside the library. Errors in our code still count.
VALGRIND_SUPPRESSIONS = """
{
   libmariadb-nonblocking-cond
   Memcheck:Cond
   obj:*/libmariadb.so*
}
{
   libmariadb-nonblocking-value8
   Memcheck:Value8
   obj:*/libmariadb.so*
}
{
   libmariadb-nonblocking-send
   Memcheck:Param
   socketcall.sendto(msg)
   fun:send
   obj:*/libmariadb.so*
}
"""



# ---------------------------------------------------------------- request helpers
# Shared by the test files: one way to spell each request.


def acquire(c, write=(), read=(), wait_ms=2000, ttl_ms=10000, **extra):
    req = {"op": "acquire"}
    if write:
        req["write"] = list(write)
    if read:
        req["read"] = list(read)
    if wait_ms is not None:
        req["wait_ms"] = wait_ms
    if ttl_ms is not None:
        req["ttl_ms"] = ttl_ms
    req.update(extra)
    return c.call(req, timeout=(wait_ms or 0) / 1000.0 + 10)


def send_acquire(c, write=(), read=(), wait_ms=20000, ttl_ms=10000):
    """Sends an acquire without waiting for its answer (for waiters)."""
    req = {"op": "acquire", "wait_ms": wait_ms, "ttl_ms": ttl_ms}
    if write:
        req["write"] = list(write)
    if read:
        req["read"] = list(read)
    c.send(req)


def query(c, sql, params=None, timeout=None):
    req = {"op": "query", "sql": sql}
    if params is not None:
        req["params"] = params
    return c.call(req, timeout=timeout)


def named_client(d, name):
    c = d.client()
    ok(c.call({"op": "hello", "client": name}))
    return c


def status(d):
    with d.client() as c:
        resp = ok(c.call({"op": "status"}))
    assert isinstance(resp.get("leases"), list), "status without a leases list: %r" % resp
    return resp


def lease_of(d, client_name):
    """The status entry of the lease whose client said hello as client_name, or None."""
    for entry in status(d)["leases"]:
        if entry.get("client") == client_name:
            return entry
    return None


def wait_state(d, client_name, state, timeout=3.0):
    """client_name's status entry once its lease is in state (waiting,
    locking, held); fails the test after timeout."""
    return wait_for(lambda: (lambda e: e if e and e.get("state") == state else None)(lease_of(d, client_name)),
                    timeout=timeout, what="%s's lease in state %r" % (client_name, state))


def elapsed_since(t0):
    """Seconds since the time.monotonic() reading t0."""
    return time.monotonic() - t0


def settled_status(d, timeout=5.0):
    """status once no lease is left in it. A lease leaves status, and is
    counted in totals, only when its session's release has finished in
    MySQL, which is after the answer that ended it (a commit's or rollback's
    answer goes out before the session reset; a lease_expired or
    lease_revoked event before the rollback): right after such an answer,
    status may still show the lease, releasing, and totals without it."""
    return wait_for(lambda: (lambda st: st if st["leases"] == [] else None)(status(d)),
                    timeout=timeout, what="no lease left in status")

def daemon_binary():
    """The daemon under test: $TABLELOCKD, else the tree's daemon/tablelockd."""
    return os.path.abspath(os.environ.get("TABLELOCKD") or os.path.join(REPO, "daemon", "tablelockd"))


class Daemon:
    """The real tablelockd on a private socket, configured by a file in a temp dir."""

    def __init__(self, binary, mariadb, sections, harness_defaults=True):
        self.binary = binary
        self.mariadb = mariadb
        self.dir = _short_tempdir("tl-d-")
        self.sock = os.path.join(self.dir, "tl.sock")
        self.conf = os.path.join(self.dir, "tablelockd.conf")
        self.state_file = os.path.join(self.dir, "lease_id")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.exit_codes = []
        self.harness_defaults = harness_defaults
        self._write_config(sections)

    def _write_config(self, overrides):
        """Writes the config file: the harness's defaults (or, without
        harness_defaults, only this daemon's socket and state file) with
        overrides applied."""
        if not self.harness_defaults:
            sections = {"daemon": {"listen": "unix:" + self.sock, "state_file": self.state_file}}
        else:
            sections = self._harness_sections()
        for section, keys in overrides.items():
            sections.setdefault(section, {})
            for key, value in keys.items():
                if value is None:
                    sections[section].pop(key, None)
                else:
                    sections[section][key] = value
        lines = ["; written by tests/integration/conftest.py"]
        for section, keys in sections.items():
            if not keys:
                continue
            lines.append("[%s]" % section)
            for key, value in keys.items():
                for one in (value if isinstance(value, (list, tuple)) else [value]):
                    lines.append("%s = %s" % (key, one))
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def _harness_sections(self):
        return {
            "daemon": {
                "listen": "unix:" + self.sock,
                "state_file": self.state_file,
                # SIGTERM ends every lease at once (issue 6's drain is off):
                # teardown never waits for a lease a test left behind.
                "drain_timeout_ms": 0,
            },
            "mysql": {
                "socket": self.mariadb.sock,
                "user": DAEMON_USER,
                "password": DAEMON_PASSWORD,
                "database": DATABASE,
                "pool_size": 4,
            },
            # Short defaults, so that a test that forgets wait_ms/ttl_ms
            # cannot stall the suite.
            "leases": {
                "default_wait_ms": 2000,
                "default_ttl_ms": 10000,
                "max_ttl_ms": 60000,
                "max_waiters": 1000,
            },
            "statements": {},
        }

    def start(self, wait=True):
        cmd = [self.binary, "-c", self.conf]
        if VALGRIND:
            supp = os.path.join(self.dir, "valgrind.supp")
            with open(supp, "w") as f:
                f.write(VALGRIND_SUPPRESSIONS)
            cmd = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "--suppressions=" + supp] + cmd
        with open(self.stderr_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_die_with_parent)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.exit_codes.append(rc)
                self.proc = None
                raise AssertionError("tablelockd exited with %d during startup:\n%s" % (rc, self.log_text()[-4000:]))
            try:
                with Client(self.sock, timeout=1.0) as c:
                    if c.call({"op": "ping"}).get("ok") is True:
                        return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("tablelockd did not answer ping within %.1fs:\n%s"
                                     % (scaled(timeout), self.log_text()[-4000:]))
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig and returns the exit code (negative: killed by a signal)."""
        assert self.proc is not None, "daemon is not running"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("tablelockd did not exit within %.1fs of signal %d:\n%s"
                                     % (scaled(timeout), sig, self.log_text()[-4000:]))
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        self.proc = None
        return rc

    def restart(self):
        rc = self.stop()
        assert rc == 0, "tablelockd exited with %d on SIGTERM:\n%s" % (rc, self.log_text()[-4000:])
        return self.start()

    def log_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def teardown(self):
        """Stops the daemon (SIGTERM must give 0), removes its dir, and
        returns what went wrong, with the log tail (printed too: pytest
        shows it when the test failed)."""
        problems = []
        print("---- tablelockd log (%s), last 6000 chars:\n%s" % (self.dir, self.log_text()[-6000:]))
        if self.running():
            rc = self.stop()
            if rc != 0:
                problems.append("tablelockd exited with %d on SIGTERM at teardown" % rc)
        reports = self.sanitizer_reports()
        if reports:
            problems.append("sanitizer reports:\n" + "\n".join(reports[:20]))
        if problems:
            problems.append("daemon log tail:\n" + self.log_text()[-4000:])
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def sanitizer_reports(self):
        return [line for line in self.log_text().splitlines()
                if "AddressSanitizer" in line or "LeakSanitizer" in line or "runtime error" in line
                or ("ERROR SUMMARY:" in line and "ERROR SUMMARY: 0 " not in line)]

    def client(self, timeout=10.0):
        return Client(self.sock, timeout=timeout)


@pytest.fixture
def daemon(mariadb):
    """Factory: daemon(leases={"default_ttl_ms": 500}, daemon={...}, ...)
    starts the real tablelockd with per-section config overrides (a value of
    None removes a default key; a list repeats a key); with
    harness_defaults=False, the config holds only its socket, its state file
    and the sections given. Each one is stopped at teardown with SIGTERM,
    which must give exit code 0, and its stderr must hold no sanitizer
    report."""
    binary = daemon_binary()
    started = []

    def start(wait=True, harness_defaults=True, **sections):
        assert os.access(binary, os.X_OK), "no daemon binary at %s (set TABLELOCKD)" % binary
        d = Daemon(binary, mariadb, sections, harness_defaults=harness_defaults)
        started.append(d)
        return d.start(wait=wait)

    yield start

    problems = []
    for d in started:
        problems += d.teardown()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- observer


class Observer:
    """An outside MySQL session (root, autocommit, lock_wait_timeout=1)."""

    def __init__(self, mariadb):
        self.mariadb = mariadb
        self.conn = mariadb.connect(cursorclass=pymysql.cursors.DictCursor)
        self.execute("SET SESSION lock_wait_timeout=1")

    def execute(self, statement, args=None):
        with self.conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()

    def _runs(self, statement):
        try:
            self.execute(statement)
            return True
        except pymysql.err.OperationalError as e:
            if e.args[0] == ER_LOCK_WAIT_TIMEOUT:
                return False
            raise

    def can_read(self, table):
        """True when a SELECT on app.<table> runs; False when MySQL makes it
        wait past lock_wait_timeout (1205)."""
        return self._runs("SELECT COUNT(*) FROM `%s`" % table)

    def can_write(self, table):
        """True when an UPDATE on app.<table> runs (it changes no row)."""
        return self._runs("UPDATE `%s` SET v = v WHERE 1 = 0" % table)

    # The checks above let MySQL make the statement wait up to a second, so
    # a lock released a moment later still counts as free; the ones below
    # do not let it wait at all (lock_wait_timeout=0: MySQL fails at once
    # if the table lock is taken), whatever the machine's load.

    def can_read_now(self, table):
        """True when a SELECT on app.<table> runs without waiting for a lock:
        nobody holds a WRITE lock on it at this instant. For an answer that
        must come with its tables already free (commit, rollback)."""
        return self._runs("SET STATEMENT lock_wait_timeout=0 FOR SELECT COUNT(*) FROM `%s`" % table)

    def can_write_now(self, table):
        """True when an UPDATE on app.<table> runs without waiting for a
        lock: nobody holds a lock on it at this instant."""
        return self._runs("SET STATEMENT lock_wait_timeout=0 FOR UPDATE `%s` SET v = v WHERE 1 = 0" % table)

    def seconds_until_free(self, table, timeout=30.0):
        """Lets an UPDATE on app.<table> wait in MySQL until every lock on
        the table is gone, and returns how long that took (seconds); fails
        the test when it is still locked after timeout."""
        t0 = time.monotonic()
        if not self._runs("SET STATEMENT lock_wait_timeout=%d FOR UPDATE `%s` SET v = v WHERE 1 = 0"
                          % (max(1, int(scaled(timeout))), table)):
            raise AssertionError("%s still locked after %.0fs" % (table, scaled(timeout)))
        return time.monotonic() - t0

    def value(self, table, row_id):
        rows = self.execute("SELECT v FROM `%s` WHERE id = %%s" % table, (row_id,))
        assert rows, "no row %r in %s" % (row_id, table)
        return rows[0]["v"]

    def processlist(self):
        return self.execute("SELECT * FROM information_schema.PROCESSLIST")

    def daemon_threads(self):
        return [r for r in self.processlist() if r["USER"] == DAEMON_USER]

    def daemon_waiting(self):
        """Daemon-user threads waiting for a table lock in MySQL."""
        return [r for r in self.daemon_threads()
                if (r["STATE"] or "").startswith("Waiting for table")
                or (r["INFO"] or "").upper().startswith("LOCK TABLES")]

    def close(self):
        self.conn.close()


@pytest.fixture
def observer(mariadb):
    obs = Observer(mariadb)
    yield obs
    obs.close()


@pytest.fixture
def outside(mariadb):
    """Another root session (not the observer) for holding locks outside the daemon."""
    conn = mariadb.connect()
    yield conn
    try:
        with conn.cursor() as cur:
            cur.execute("UNLOCK TABLES")
    except pymysql.err.Error:
        pass
    conn.close()
