"""One version, one protocol number, one default socket.

client/tablelock.h is their one source: the daemon and the C client compile
it in, and client/client.mk names the shared library after its version. The
Python client cannot read a C header at run time, so it repeats them; these
tests hold it, the daemon's own answers, and the files that name the
default socket (the sample config, the socket unit) to the header.
"""

import os
import re
import subprocess
import sys

from conftest import REPO, ok

sys.path.insert(0, os.path.join(REPO, "client", "python"))
import tablelock  # noqa: E402

HEADER = os.path.join(REPO, "client", "tablelock.h")


def header_define(name):
    """The value of `#define NAME value` in client/tablelock.h (strings unquoted)."""
    with open(HEADER) as f:
        text = f.read()
    found = re.findall(r"^#define %s[ \t]+(\S+)" % name, text, re.M)
    assert len(found) == 1, "client/tablelock.h defines %s %d times" % (name, len(found))
    value = found[0]
    return value[1:-1] if value.startswith('"') else int(value)


def test_default_socket_everywhere():
    """Clients look where the shipped config and socket unit listen."""
    path = header_define("TABLELOCK_DEFAULT_SOCKET")
    with open(os.path.join(REPO, "conf", "tablelockd.conf")) as f:
        assert re.findall(r"^listen = (.*)$", f.read(), re.M) == ["unix:" + path]
    with open(os.path.join(REPO, "systemd", "tablelockd.socket")) as f:
        assert re.findall(r"^ListenStream=(.*)$", f.read(), re.M) == [path]


def daemon_binary():
    return os.path.abspath(os.environ.get("TABLELOCKD") or os.path.join(REPO, "daemon", "tablelockd"))


def test_python_client_agrees_with_the_header():
    assert re.fullmatch(r"\d+\.\d+\.\d+", header_define("TABLELOCK_VERSION"))
    assert tablelock.__version__ == header_define("TABLELOCK_VERSION")
    assert tablelock.PROTOCOL == header_define("TABLELOCK_PROTOCOL")
    assert tablelock.DEFAULT_SOCKET == header_define("TABLELOCK_DEFAULT_SOCKET")


def test_daemon_version_option():
    r = subprocess.run([daemon_binary(), "--version"], stdout=subprocess.PIPE, text=True, timeout=10)
    assert r.returncode == 0
    assert r.stdout == "tablelockd %s\n" % header_define("TABLELOCK_VERSION")


def test_daemon_hello_and_startup_log(daemon):
    d = daemon()
    with d.client() as c:
        resp = ok(c.call({"op": "hello", "client": "version-check"}))
    assert resp["server"] == "tablelockd"
    assert resp["version"] == header_define("TABLELOCK_VERSION")
    assert resp["protocol"] == header_define("TABLELOCK_PROTOCOL")
    assert "tablelockd %s started" % header_define("TABLELOCK_VERSION") in d.log_text()
