"""Helpers for the client tests (tests/integration/test_client_*.py).

The C library is driven through client/tests/tablelock-driver (one JSON
command per line, see driver.c); the CLI and the example are run as the
built binaries. Everything here talks to the real daemon started by the
harness in tests/integration/conftest.py.
"""

import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(REPO, "client", "tablelock")
DRIVER = os.path.join(REPO, "client", "tests", "tablelock-driver")
EXAMPLE = os.path.join(REPO, "client", "examples", "lease-update")
PYTHON_DIR = os.path.join(REPO, "client", "python")

# Runs a command as nobody, without root's groups.
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def assert_no_sanitizer_report(text, what):
    bad = [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]
    assert not bad, "%s: sanitizer report:\n%s" % (what, text[-4000:])


class Driver:
    """The C test driver: each call() sends one command and returns the
    answer (a dict with "ok", and "code", "message", … on failure)."""

    def __init__(self, address=None, connect=True, hello=None):
        assert os.access(DRIVER, os.X_OK), "no driver at %s (run make)" % DRIVER
        self.proc = subprocess.Popen([DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        if connect:
            r = self.call("connect", address=address, timeout=5000)
            assert r["ok"], r
            if hello is not None:
                assert self.call("hello", client=hello)["ok"]

    def call(self, cmd, answer_within=60.0, **fields):
        fields["cmd"] = cmd
        self.proc.stdin.write(json.dumps(fields).encode() + b"\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], answer_within)
        assert ready, "driver gave no answer to %r within %ss" % (fields, answer_within)
        line = self.proc.stdout.readline()
        assert line, "driver died on %r: %s" % (fields, self.proc.stderr.read().decode(errors="replace"))
        return json.loads(line)

    def ok(self, cmd, **fields):
        r = self.call(cmd, **fields)
        assert r.get("ok") is True, "%s failed: %r" % (cmd, r)
        return r

    def err(self, cmd, **fields):
        r = self.call(cmd, **fields)
        assert r.get("ok") is False, "%s should have failed: %r" % (cmd, r)
        return r

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.proc.stdout.close()
        assert_no_sanitizer_report(stderr, "tablelock-driver")
        assert self.proc.returncode == 0, "driver exited with %d: %s" % (self.proc.returncode, stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cli(args, sock=None, input=None, timeout=60, env=None, user=None):
    """Runs client/tablelock; returns the CompletedProcess (text)."""
    assert os.access(CLI, os.X_OK), "no CLI at %s (run make)" % CLI
    cmd = [CLI] + list(args)
    if user == "nobody":
        cmd = AS_NOBODY + cmd
    full_env = dict(os.environ)
    full_env.pop("TABLELOCK_SOCKET", None)
    if sock is not None:
        full_env["TABLELOCK_SOCKET"] = sock
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=full_env, text=True)
    assert_no_sanitizer_report(p.stderr, "tablelock " + " ".join(args[:1]))
    return p


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def lease_states(client):
    """{lease id: state} from a raw status call."""
    st = client.call({"op": "status"})
    assert st.get("ok") is True, st
    return {l["lease"]: l["state"] for l in st["leases"]}


def open_socket_to_everyone(daemon):
    """The harness keeps the daemon's temp dir private (0700); let another
    uid reach the socket (the daemon itself sets the socket's mode)."""
    os.chmod(daemon.dir, 0o711)


TCP_TOKEN = "client-test-token"


@pytest.fixture
def tcp_daemon(daemon):
    """Factory: the daemon listening on its Unix socket and on TCP
    127.0.0.1, with one token ("svc", TCP_TOKEN). Returns (daemon, address)."""
    dirs = []

    def start(**sections):
        sockdir = tempfile.mkdtemp(prefix="tl-c-", dir="/tmp")
        dirs.append(sockdir)
        sock = os.path.join(sockdir, "tl.sock")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        sections.setdefault("daemon", {})["listen"] = ["unix:" + sock, "tcp:127.0.0.1:%d" % port]
        sections["tokens"] = {"svc": hashlib.sha256(TCP_TOKEN.encode()).hexdigest()}
        d = daemon(wait=False, **sections)
        d.sock = sock  # the harness pings it to know the daemon is ready
        d.wait_ready()
        return d, "tcp:127.0.0.1:%d" % port

    yield start
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
