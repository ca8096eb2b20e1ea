"""Security (issue 4), end to end: identities (Unix peer, token, TLS
certificate), access rules, status redaction, revoke, per-connection and
per-identity limits, timeouts, request caps, secrets kept out of logs, and a
flood of 10,000 hostile connections (plus a slow-loris) while a legitimate
client keeps its latency.

Lock state is always checked from outside the daemon by the `observer`
(a root MySQL session with lock_wait_timeout=1).

Clients are conftest's Client, over TCP and TLS (Client.tcp, Client.tls) and
as the unprivileged user `nobody` (Client.as_user). Helpers here: a throwaway
PKI made with the openssl CLI, and `serve`, which starts the daemon on a Unix
socket in a world-searchable directory plus any TCP/TLS listeners.
"""

import hashlib
import json
import logging
import os
import resource
import select
import shutil
import signal
import socket
import ssl
import stat
import statistics
import subprocess
import tempfile
import time

import pytest

from conftest import (DAEMON_PASSWORD, Client, _die_with_parent, acquire, daemon_binary, error_code,
                      named_client, ok, on_unused_ports, scaled, unused_port, wait_for)

LOG = logging.getLogger("test_security")

NOBODY_UID = 65534
NOBODY_GID = 65534

TOKEN_NAME = "billing"
TOKEN = "tl-tok-Qv7rW2mZk9Xa41"
TOKEN_SHA256 = hashlib.sha256(TOKEN.encode()).hexdigest()
BAD_TOKEN = "tl-wrong-Hj3nB8cVu0Lp"


# ---------------------------------------------------------------- daemon setup


@pytest.fixture(scope="session")
def secdir():
    """A short, world-searchable directory for the daemons' Unix sockets (so
    that `nobody` can reach them), removed after every daemon has stopped."""
    d = tempfile.mkdtemp(prefix="tl-sec-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def serve(daemon, secdir):
    """serve(listen=[...], wait=True, **sections): the daemon factory, but
    with the Unix socket in secdir (0755) and extra listen addresses."""
    counter = [0]

    def start(listen=(), wait=True, **sections):
        counter[0] += 1
        sub = tempfile.mkdtemp(prefix="%d-" % counter[0], dir=secdir)
        os.chmod(sub, 0o755)
        path = os.path.join(sub, "tl.sock")
        dsec = dict(sections.get("daemon", {}))
        dsec["listen"] = ["unix:" + path] + list(listen)
        sections["daemon"] = dsec
        d = daemon(wait=False, **sections)
        d.sock = path
        if wait:
            d.wait_ready()
        return d

    return start


def serve_on_port(serve, scheme, **sections):
    """(daemon, port): serve() with one more listener, SCHEME:127.0.0.1:PORT,
    on an unused port (started again on another if someone took it before
    the daemon could bind it)."""
    return on_unused_ports(
        lambda port: (serve(listen=["%s:127.0.0.1:%d" % (scheme, port)], **sections), port))


def clients_count(c):
    return ok(c.call({"op": "status"}))["clients"]


def settle(c, expected):
    """Waits until the daemon counts exactly `expected` open connections
    (wait_ready's probe connection may still be closing)."""
    wait_for(lambda: clients_count(c) == expected, timeout=5, what="%d open connections" % expected)




def leases_on(status_resp, table):
    return [e for e in status_resp["leases"] if table in e.get("write", []) + e.get("read", [])]


def nobody(path):
    """A client connected to the Unix socket path by uid/gid 65534
    (`nobody`/`nogroup`, no supplementary groups): the daemon sees that
    peer through SO_PEERCRED."""
    return Client.as_user(path, NOBODY_UID, NOBODY_GID)


# ---------------------------------------------------------------- PKI


def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert r.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode(errors="replace"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate, client certificates good-client and
    stranger-client signed by it, and a rogue CA's good-client certificate,
    made with the README's openssl commands."""
    d = str(tmp_path_factory.mktemp("pki"))
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tl-test-" + ca,
                 "-keyout", ca + ".key", "-out", ca + ".pem", cwd=d)
    for name, cn, ca in (("server", "localhost", "ca"), ("good", "good-client", "ca"),
                         ("stranger", "stranger-client", "ca"), ("rogue", "good-client", "rogue-ca")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-keyout", name + ".key",
                 "-out", name + ".csr", cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-days", "2", "-out", name + ".pem", cwd=d)
    return {name: os.path.join(d, name) for name in ("ca", "server", "good", "stranger", "rogue")}


def tls_section(pki, client_ca=True):
    sec = {"cert": pki["server"] + ".pem", "key": pki["server"] + ".key"}
    if client_ca:
        sec["client_ca"] = pki["ca"] + ".pem"
    return sec


def client_context(pki, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki["ca"] + ".pem")  # the server's certificate is verified
    if cert is not None:
        ctx.load_cert_chain(pki[cert] + ".pem", pki[cert] + ".key")
    return ctx


def tls_refusal(port, ctx):
    """Connects and tries a ping. Returns a description of how the daemon
    refused (handshake error, alert on first read, close), or fails the test
    when a ping is answered."""
    try:
        c = Client.tls(port, ctx, timeout=5)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return "handshake failed: %s" % e
    with c:
        c.send({"op": "ping"})
        msg = c.recv(timeout=5)
        assert msg is None, "daemon answered %r over a TLS session it should have refused" % (msg,)
        return "closed after the handshake: %r" % (c.error,)


# ================================================================ identities: Unix peer


def test_unix_user_rule_allows_and_refuses(serve, tables, observer):
    d = serve(access={"allow": "user:root write app.t1"})
    with d.client() as c, d.client() as other:
        hello = ok(c.call({"op": "hello", "client": "root-holder"}))
        assert hello["identity"] == "user:root"
        ok(acquire(c, write=["t1"]))
        assert not observer.can_write("t1"), "root's write lease on t1 is not a real lock"

        for req in (dict(write=["t2"]), dict(read=["t2"]), dict(write=["app.t2"])):
            resp = acquire(other, **req)
            assert error_code(resp) == "forbidden", resp
            msg = resp["error"]["message"]
            assert "app.t2" in msg and "user:root" in msg, "forbidden must name table and identity: %r" % msg
        assert observer.can_write("t2") and observer.can_read("t2"), "a forbidden acquire locked t2"
        st = ok(other.call({"op": "status"}))
        assert leases_on(st, "app.t2") == [] and len(st["leases"]) == 1, st
        ok(c.call({"op": "commit"}))

    # A request naming an allowed and a forbidden table locks neither.
    with d.client() as c:
        resp = acquire(c, write=["t1", "t2"])
        assert error_code(resp) == "forbidden" and "app.t2" in resp["error"]["message"], resp
        assert observer.can_write("t1") and observer.can_write("t2")
        resp = c.call({"op": "transact", "write": ["t2"], "wait_ms": 1000,
                       "statements": [{"sql": "UPDATE t2 SET v = 999 WHERE id = 1"}]})
        assert error_code(resp) == "forbidden", resp
        assert ok(c.call({"op": "status"}))["leases"] == []
    assert observer.value("t2", 1) == 10, "a forbidden transact ran its statement"


def test_unix_socket_mode_and_group(serve):
    # Default 0660 root:root: nobody cannot even connect.
    d = serve()
    st = os.stat(d.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0 and st.st_gid == 0, oct(st.st_mode)
    try:
        nobody(d.sock).close()
    except PermissionError:
        pass
    else:
        raise AssertionError("nobody connected to a 0660 root:root socket")

    # socket_group = nogroup: nobody's primary group may connect.
    d2 = serve(daemon={"socket_group": "nogroup"})
    st = os.stat(d2.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOBODY_GID, (oct(st.st_mode), st.st_gid)
    with nobody(d2.sock) as nb:
        ok(nb.call({"op": "ping"}))
        assert ok(nb.call({"op": "hello"}))["identity"] == "user:nobody"


def test_unix_nobody_refused_and_group_rules(serve, tables, observer):
    rules = ["user:root admin write app.*", "group:nogroup read app.t1"]
    d = serve(daemon={"socket_mode": "0666"}, access={"allow": rules})
    with nobody(d.sock) as nb:
        assert ok(nb.call({"op": "hello"}))["identity"] == "user:nobody"
        # group:nogroup may read t1 ...
        ok(nb.call({"op": "acquire", "read": ["t1"], "wait_ms": 2000}))
        assert observer.can_read("t1") and not observer.can_write("t1"), "nobody's read lease is not a real lock"
        ok(nb.call({"op": "rollback"}))
        # ... but not write it, nor touch t2.
        for req, table in (({"write": ["t1"]}, "app.t1"), ({"read": ["t2"]}, "app.t2")):
            resp = nb.call(dict(op="acquire", wait_ms=2000, **req))
            assert error_code(resp) == "forbidden", resp
            assert table in resp["error"]["message"] and "user:nobody" in resp["error"]["message"], resp
            assert observer.can_write("t1") and observer.can_write("t2")

    # Rules that name neither nobody nor nogroup: nobody may lock nothing.
    d2 = serve(daemon={"socket_mode": "0666"}, access={"allow": "user:root write app.*"})
    with nobody(d2.sock) as nb:
        resp = nb.call({"op": "acquire", "read": ["t1"], "wait_ms": 2000})
        assert error_code(resp) == "forbidden" and "user:nobody" in resp["error"]["message"], resp
        resp = nb.call({"op": "transact", "read": ["t1"], "statements": [{"sql": "SELECT 1"}]})
        assert error_code(resp) == "forbidden", resp
    assert observer.can_write("t1")
    with d2.client() as c:  # root still may
        ok(acquire(c, write=["t1"]))
        assert not observer.can_write("t1")


def test_access_rules_reload_on_sighup(serve, tables, observer):
    d = serve(access={"allow": "user:root write app.t1"})
    with d.client() as c:
        assert error_code(acquire(c, write=["t2"])) == "forbidden"
        with open(d.conf) as f:
            text = f.read()
        assert "allow = user:root write app.t1" in text
        with open(d.conf, "w") as f:
            f.write(text.replace("allow = user:root write app.t1", "allow = user:root write app.t2"))
        d.proc.send_signal(signal.SIGHUP)

        def t2_allowed():
            resp = acquire(c, write=["t2"])
            return resp.get("ok") is True
        wait_for(t2_allowed, timeout=5, what="the reloaded rules to allow t2")
        assert not observer.can_write("t2")
        ok(c.call({"op": "rollback"}))
        resp = acquire(c, write=["t1"])
        assert error_code(resp) == "forbidden", "the old rule still applies after reload: %r" % resp


# ================================================================ identities: token over TCP


def tcp_token_daemon(serve, **extra):
    sections = {"tokens": {TOKEN_NAME: TOKEN_SHA256},
                "access": {"allow": ["user:root admin write app.*", "token:%s write app.t1" % TOKEN_NAME]}}
    for k, v in extra.items():
        sections.setdefault(k, {}).update(v)
    return serve_on_port(serve, "tcp", **sections)


def test_token_over_tcp_allowed(serve, tables, observer):
    d, port = tcp_token_daemon(serve)
    with Client.tcp(port) as c:
        hello = ok(c.call({"op": "hello", "client": "billing-svc", "token": TOKEN}))
        assert hello["identity"] == "token:%s" % TOKEN_NAME
        ok(acquire(c, write=["t1"]))
        assert not observer.can_write("t1"), "the token client's lease is not a real lock"
        ok(c.call({"op": "query", "sql": "UPDATE t1 SET v = v + ? WHERE id = ?", "params": [5, 1]}))
        ok(c.call({"op": "commit"}))
        assert observer.can_write("t1") and observer.value("t1", 1) == 15
        # The token's rules do not reach t2.
        resp = acquire(c, write=["t2"])
        assert error_code(resp) == "forbidden", resp
        assert "token:billing" in resp["error"]["message"] and "app.t2" in resp["error"]["message"], resp
        assert observer.can_write("t2")
        # status shows the TCP peer's address for its own lease.
        ok(acquire(c, write=["t1"]))
        st = ok(c.call({"op": "status"}))
        assert st["leases"][0]["peer"] == {"address": c.local_address()}, st


def test_tcp_without_hello_is_unauthenticated(serve, tables, observer):
    d, port = tcp_token_daemon(serve)
    with Client.tcp(port) as c:
        ok(c.call({"op": "ping"}))
        for req in ({"op": "acquire", "write": ["t1"], "wait_ms": 1000},
                    {"op": "transact", "write": ["t1"], "statements": [{"sql": "UPDATE t1 SET v = 0"}]},
                    {"op": "status"},
                    {"op": "query", "sql": "SELECT 1"},
                    {"op": "commit"},
                    {"op": "revoke", "lease": 1}):
            resp = c.call(req)
            assert error_code(resp) == "unauthenticated", (req, resp)
        # A hello without a token names the client but does not authenticate it.
        hello = ok(c.call({"op": "hello", "client": "no-token"}))
        assert hello["identity"].startswith("unauthenticated"), hello
        assert error_code(acquire(c, write=["t1"])) == "unauthenticated"
        ok(c.call({"op": "ping"}))
    assert observer.can_write("t1") and observer.value("t1", 1) == 10


def test_tcp_bad_token_is_delayed_and_logged_without_the_token(serve, tables, observer):
    d, port = tcp_token_daemon(serve)
    with Client.tcp(port) as bad, Client.tcp(port) as other:
        bad_addr = bad.local_address()
        t0 = time.monotonic()
        bad.send({"op": "hello", "token": BAD_TOKEN})
        # The delay is per connection: the daemon keeps serving others
        # meanwhile, so other's ping is answered while bad still waits. (Its
        # order, not a time bound on the ping, which a busy machine can
        # slow.)
        ok(other.call({"op": "ping"}))
        assert not bad.buf and not select.select([bad.sock], [], [], 0)[0], \
            "a failed authentication stalled other clients: the ping was answered after it"
        resp = bad.recv_response(timeout=5)
        elapsed = time.monotonic() - t0
        assert error_code(resp) == "unauthenticated", resp
        assert 0.9 <= elapsed < scaled(3.0), "bad token answered after %.3fs, not about 1s" % elapsed
        assert error_code(acquire(bad, write=["t1"])) == "unauthenticated"
        # The right token on the same connection still works afterwards.
        ok(bad.call({"op": "hello", "token": TOKEN}))
        ok(acquire(bad, write=["t1"]))
        assert not observer.can_write("t1")
    log = wait_for(lambda: (lambda t: t if "authentication failed" in t else None)(d.log_text()),
                   what="the authentication failure in the log")
    failures = [line for line in log.splitlines() if "authentication failed" in line]
    assert any(bad_addr in line for line in failures), "no failure line names %s:\n%s" % (bad_addr, failures)
    assert BAD_TOKEN not in log and TOKEN not in log, "a token appears in the daemon log"


# ================================================================ identities: TLS certificates


def test_tls_certificate_identity(serve, tables, observer, pki):
    _, port = serve_on_port(serve, "tls", tls=tls_section(pki),
                            access={"allow": ["user:root admin write app.*", "cn:good-client write app.*"]})

    with Client.tls(port, client_context(pki, "good")) as c:
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        hello = ok(c.call({"op": "hello", "client": "tls-good"}))
        assert hello["identity"] == "cn:good-client"
        ok(acquire(c, write=["t1"]))
        assert not observer.can_write("t1"), "the TLS client's lease is not a real lock"
        ok(c.call({"op": "query", "sql": "UPDATE t1 SET v = 11 WHERE id = 1"}))
        ok(c.call({"op": "commit"}))
    assert observer.can_write("t1") and observer.value("t1", 1) == 11

    with Client.tls(port, client_context(pki, "stranger")) as c:
        assert ok(c.call({"op": "hello"}))["identity"] == "cn:stranger-client"
        resp = acquire(c, write=["t1"])
        assert error_code(resp) == "forbidden", resp
        assert "cn:stranger-client" in resp["error"]["message"] and "app.t1" in resp["error"]["message"], resp
        assert observer.can_write("t1")

    # No client certificate; a certificate with an allowed CN from another CA.
    print("no client cert:", tls_refusal(port, client_context(pki, None)))
    print("rogue CA cert:", tls_refusal(port, client_context(pki, "rogue")))
    assert observer.can_write("t1")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_refuses_tls_1_1(serve, pki):
    _, port = serve_on_port(serve, "tls", tls=tls_section(pki), access={"allow": "cn:good-client write app.*"})
    ctx = client_context(pki, "good")
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        pytest.skip("this Python/OpenSSL cannot offer TLS 1.1: %s" % e)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
    except ssl.SSLError as e:
        if "NO_PROTOCOLS_AVAILABLE" in str(e) or "no protocols available" in str(e):
            pytest.skip("this Python/OpenSSL cannot offer TLS 1.1: %s" % e)
        print("TLS 1.1 refused: %s" % e)
        return
    except (ConnectionResetError, BrokenPipeError) as e:
        print("TLS 1.1 refused: %s" % e)
        return
    finally:
        raw.close()
    version = s.version()
    s.close()
    pytest.fail("the daemon accepted a %s handshake" % version)


# ================================================================ a TCP listener must authenticate


def test_tcp_listener_without_auth_refuses_to_start(serve, pki):
    port = unused_port()
    d = serve(listen=["tcp:127.0.0.1:%d" % port], wait=False)
    rc = d.proc.wait(timeout=scaled(10))
    log = d.log_text()
    assert rc != 0, "the daemon started a TCP listener without authentication"
    assert "tcp:127.0.0.1:%d" % port in log and "authentication" in log and "[tokens]" in log, log
    # From the log, not by connecting: once the daemon is gone, whoever
    # answers on that port is someone else.
    assert "listening on tcp:" not in log, log

    # tls: without client_ca and without tokens: the same.
    port = unused_port()
    d = serve(listen=["tls:127.0.0.1:%d" % port], tls=tls_section(pki, client_ca=False), wait=False)
    rc = d.proc.wait(timeout=scaled(10))
    log = d.log_text()
    assert rc != 0, "the daemon started a TLS listener without client certificates or tokens"
    assert "tls:127.0.0.1:%d" % port in log and "client_ca" in log and "[tokens]" in log, log


def test_check_config_reports_tcp_without_auth(tmp_path, pki):
    def check(listen, extra=""):
        conf = tmp_path / ("c%d.conf" % len(list(tmp_path.iterdir())))
        conf.write_text("[daemon]\nlisten = %s\n\n[mysql]\nuser = u\n%s" % (listen, extra))
        r = subprocess.run([daemon_binary(), "--check-config", "-c", str(conf)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        return r.returncode, r.stdout.decode(errors="replace")

    tls = "\n[tls]\ncert = %s.pem\nkey = %s.key\n" % (pki["server"], pki["server"])
    rc, out = check("tcp:127.0.0.1:7000")
    assert rc != 0 and "tcp:127.0.0.1:7000" in out and "authentication" in out and "[tokens]" in out, (rc, out)
    rc, out = check("tls:127.0.0.1:7443", tls)
    assert rc != 0 and "authentication" in out and "client_ca" in out, (rc, out)
    rc, out = check("tcp:127.0.0.1:7000", "\n[tokens]\nbilling = %s\n" % TOKEN_SHA256)
    assert rc == 0, out
    rc, out = check("tls:127.0.0.1:7443", tls + "client_ca = %s.pem\n" % pki["ca"])
    assert rc == 0, out


# ================================================================ status redaction, revoke


def test_status_redaction_for_non_admins(serve, tables, observer):
    d = serve(daemon={"socket_mode": "0666"},
              access={"allow": ["user:root admin write app.*", "group:nogroup read app.t1 write app.t2"]})
    with d.client() as root, nobody(d.sock) as nb:
        ok(root.call({"op": "hello", "client": "root-holder"}))
        ok(acquire(root, write=["t1"]))
        ok(nb.call({"op": "hello", "client": "nobody-client"}))
        ok(nb.call({"op": "acquire", "write": ["t2"], "wait_ms": 2000}))
        assert not observer.can_write("t1") and not observer.can_write("t2")

        st = ok(nb.call({"op": "status"}))
        (own,) = leases_on(st, "app.t2")
        (other,) = leases_on(st, "app.t1")
        # Its own lease in full ...
        assert own["client"] == "nobody-client" and own["peer"]["uid"] == NOBODY_UID, own
        assert isinstance(own["mysql_thread"], int) and own["state"] == "held", own
        # ... others' only as tables, mode, state and age.
        for key in ("client", "peer", "mysql_thread"):
            assert other.get(key) is None, "non-admin sees %s of another client's lease: %r" % (key, other)
        assert other["write"] == ["app.t1"] and other["state"] == "held" and isinstance(other["age_ms"], int)
        assert "root-holder" not in json.dumps(st)

        # An admin sees everything.
        st = ok(root.call({"op": "status"}))
        (nobodys,) = leases_on(st, "app.t2")
        assert nobodys["client"] == "nobody-client" and nobodys["peer"]["uid"] == NOBODY_UID, nobodys
        assert isinstance(nobodys["mysql_thread"], int), nobodys
        threads = {r["ID"] for r in observer.daemon_threads()}
        assert nobodys["mysql_thread"] in threads


def test_revoke_refused_to_non_admins_allowed_to_admin(serve, tables, observer):
    d = serve(daemon={"socket_mode": "0666"},
              access={"allow": ["user:root admin write app.*", "group:nogroup write app.*"]})
    with d.client() as holder, d.client() as admin, nobody(d.sock) as nb:
        lease = ok(acquire(holder, write=["t1"]))["lease"]
        ok(holder.call({"op": "query", "sql": "UPDATE t1 SET v = 777 WHERE id = 1"}))

        resp = nb.call({"op": "revoke", "lease": lease})
        assert error_code(resp) == "forbidden" and "user:nobody" in resp["error"]["message"], resp
        assert not observer.can_write("t1"), "a refused revoke released the lease"
        assert ok(holder.call({"op": "query", "sql": "SELECT v FROM t1 WHERE id = 1"}))["rows"] == [[777]]

        assert ok(admin.call({"op": "revoke", "lease": lease}))["lease"] == lease
        assert holder.wait_event("lease_revoked")["lease"] == lease
        assert observer.can_write("t1"), "t1 still locked after revoke"
        assert observer.value("t1", 1) == 10, "the revoked lease's uncommitted write survived"
        assert error_code(holder.call({"op": "query", "sql": "SELECT 1"})) == "no_lease"
        assert error_code(admin.call({"op": "revoke", "lease": lease})) == "no_lease"
        # Counted when the lease is freed, once the daemon has its UNLOCK
        # TABLES back, which may be after the observer saw t1 free.
        wait_for(lambda: ok(admin.call({"op": "status"}))["totals"]["revoked"] == 1,
                 what="the revoke in totals")

    # Without any rule, admin is root (or the daemon's user) only.
    d2 = serve(daemon={"socket_mode": "0666"})
    with d2.client() as holder, nobody(d2.sock) as nb:
        lease = ok(acquire(holder, write=["t2"]))["lease"]
        assert error_code(nb.call({"op": "revoke", "lease": lease})) == "forbidden"
        assert not observer.can_write("t2")


# ================================================================ limits


def test_max_clients(serve):
    d = serve(daemon={"max_clients": 3})
    c1 = d.client()
    settle(c1, 1)
    c2, c3 = d.client(), d.client()
    try:
        ok(c2.call({"op": "ping"}))
        ok(c3.call({"op": "ping"}))
        with d.client() as c4:
            msg = c4.recv()
            assert error_code(msg) == "too_many_clients" and "id" not in msg, msg
            assert c4.closed(), "the refused connection stays open"
        assert clients_count(c1) == 3
        c3.close()
        settle(c1, 2)
        with d.client() as c5:
            ok(c5.call({"op": "ping"}))
    finally:
        for c in (c1, c2, c3):
            c.close()


def test_max_connections_per_identity(serve):
    d = serve(daemon={"max_connections_per_identity": 2, "socket_mode": "0666"})
    c1 = d.client()
    settle(c1, 1)
    c2 = d.client()
    try:
        ok(c2.call({"op": "ping"}))
        with d.client() as c3:
            msg = c3.recv()
            assert error_code(msg) == "too_many_clients", msg
            assert "max_connections_per_identity" in msg["error"]["message"], msg
            assert c3.closed()
        # Per identity: nobody is not root.
        with nobody(d.sock) as nb:
            ok(nb.call({"op": "ping"}))
            assert ok(nb.call({"op": "status"}))["clients"] == 3
        c2.close()
        wait_for(lambda: clients_count(c1) == 1, what="c2 gone")
        with d.client() as c4:
            ok(c4.call({"op": "ping"}))
    finally:
        c1.close()
        c2.close()


def test_max_connections_per_identity_for_tokens(serve, tables, observer):
    """Two connections may authenticate as token:billing; the third's hello
    is refused, and that connection must stay unauthenticated (no lease, not
    counted as billing's) -- else the cap is void."""
    d, port = tcp_token_daemon(serve, daemon={"max_connections_per_identity": 2})
    conns = [Client.tcp(port) for _ in range(4)]
    try:
        t1, t2, t3, t4 = conns
        ok(t1.call({"op": "hello", "token": TOKEN}))
        ok(t2.call({"op": "hello", "token": TOKEN}))
        resp = t3.call({"op": "hello", "token": TOKEN}, timeout=5)
        assert resp.get("ok") is not True, "a third token:billing connection was admitted: %r" % resp
        resp = acquire(t3, write=["t1"])
        assert resp.get("ok") is not True, \
            "max_connections_per_identity bypassed: the refused connection got a lease: %r" % resp
        assert error_code(resp) == "unauthenticated", resp
        assert observer.can_write("t1")
        # Nor does the refused connection leave billing's count off by one.
        t1.close()
        with d.client() as root:
            wait_for(lambda: clients_count(root) == 4, what="t1's close (t2, t3, t4 and this one left)")
        ok(t4.call({"op": "hello", "token": TOKEN}))
    finally:
        for c in conns:
            c.close()


def test_max_waiting_per_identity(serve, tables, observer):
    d = serve(daemon={"max_waiting_per_identity": 2, "socket_mode": "0666"})
    holder, w1, w2, w3 = d.client(), d.client(), d.client(), d.client()
    try:
        ok(acquire(holder, write=["t1"]))
        for w in (w1, w2):
            w.send({"op": "acquire", "write": ["t1"], "wait_ms": 10000})
        wait_for(lambda: ok(holder.call({"op": "status"}))["waiting"] == 2, what="two waiters")
        t0 = time.monotonic()
        resp = acquire(w3, write=["t1"], wait_ms=10000)
        assert error_code(resp) == "too_many_waiters", resp
        assert "max_waiting_per_identity" in resp["error"]["message"] and "2" in resp["error"]["message"], resp
        assert time.monotonic() - t0 < 1.0, "too_many_waiters should come at once"
        # Another identity may still queue (and times out normally).
        with nobody(d.sock) as nb:
            resp = nb.call({"op": "acquire", "read": ["t1"], "wait_ms": 300})
            assert error_code(resp) == "lock_timeout", resp
        # The queue drains in order once the holder commits.
        ok(holder.call({"op": "commit"}))
        ok(w1.recv_response())
        ok(w1.call({"op": "rollback"}))
        ok(w2.recv_response())
        ok(w2.call({"op": "commit"}))
        ok(acquire(w3, write=["t1"]))
        ok(w3.call({"op": "commit"}))
        assert observer.can_write("t1")
    finally:
        for c in (holder, w1, w2, w3):
            c.close()


def _closed_raw(sock, timeout):
    """Reads and drops whatever comes until EOF; True when EOF came within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], remaining)
        if ready:
            try:
                if not sock.recv(1 << 20):
                    return True
            except ConnectionResetError:
                return True


def test_request_timeout_closes_incomplete_lines(serve):
    d = serve(daemon={"request_timeout_ms": 1000})
    # A line left incomplete.
    with d.client() as c:
        c.send_raw(b'{"op":"pi')
        t0 = time.monotonic()
        assert c.closed(timeout=4), "an incomplete line was kept open"
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed <= scaled(2.5), "closed after %.2fs, request_timeout_ms is 1000" % elapsed

    # A slow loris: one byte every 200 ms, each byte well within the timeout,
    # the line as a whole not: cut off about a second after its first byte.
    line = b'{"op":"ping","pad":"' + b"x" * 100 + b'"}\n'
    with d.client() as c:
        t0 = time.monotonic()
        sent = 0
        cut = None
        while sent < len(line):
            c.send_raw(line[sent:sent + 1])
            sent += 1
            if _closed_raw(c.sock, 0.2):
                cut = time.monotonic() - t0
                break
        assert cut is not None, "a slow-loris line dripped for %.1fs and was never cut off" % (time.monotonic() - t0)
        assert 0.8 <= cut <= scaled(2.5), "slow loris cut off after %.2fs" % cut
        assert sent < 20, "the loris got %d bytes in" % sent
        print("slow loris cut off after %.2fs and %d bytes" % (cut, sent))

    # Complete requests, even slow ones, are not cut: the clock runs per line.
    with d.client() as c:
        for _ in range(4):
            c.send_raw(b'{"op":')
            time.sleep(0.3)
            c.send_raw(b'"ping"}\n')
            ok(c.recv_response())
            time.sleep(0.4)
    assert d.running()


def test_idle_timeout(serve, tables, observer):
    d = serve(daemon={"idle_timeout_ms": 500})
    # The lease first: the idle connection's clock starts when it connects,
    # and the acquire's time (long on a loaded machine) must not count.
    leased = d.client()
    ok(leased.call({"op": "hello"}))
    ok(acquire(leased, write=["t1"]))
    t0 = time.monotonic()
    idle, busy = d.client(), d.client()
    with leased, idle, busy:
        # busy pings every ~100 ms, well inside the 500; leased holds a
        # lease and says nothing.
        idle_closed_at = None
        while time.monotonic() - t0 < 1.5:
            ok(busy.call({"op": "ping"}))
            if idle_closed_at is None and idle.closed(timeout=0.1):
                idle_closed_at = time.monotonic() - t0
            elif idle_closed_at is not None:
                time.sleep(0.1)
        assert idle_closed_at is not None, "an idle connection outlived idle_timeout_ms"
        assert 0.4 <= idle_closed_at <= scaled(1.5), idle_closed_at
        ok(busy.call({"op": "ping"}))
        assert not observer.can_write("t1"), "the leased connection was closed while idle"
        ok(leased.call({"op": "query", "sql": "UPDATE t1 SET v = 1 WHERE id = 1"}))
        ok(leased.call({"op": "commit"}))
        assert observer.value("t1", 1) == 1
        # Once it has said something after its lease, it idles out as usual.
        ok(leased.call({"op": "ping"}))
        t1 = time.monotonic()
        assert leased.closed(timeout=3), "an idle connection without a lease outlived idle_timeout_ms"
        assert time.monotonic() - t1 >= 0.3


@pytest.mark.parametrize("ending", ["commit", "rollback", "transact", "revoke"])
def test_idle_timeout_runs_after_a_lease_ends(serve, tables, observer, ending):
    """A connection whose lease has ended holds no lease: it must idle out
    within idle_timeout_ms even if it sends nothing more."""
    d = serve(daemon={"idle_timeout_ms": 500})
    with d.client() as c, d.client() as admin:
        if ending == "transact":
            ok(c.call({"op": "transact", "write": ["t1"], "statements": [{"sql": "UPDATE t1 SET v = 2 WHERE id = 1"}]}))
        else:
            lease = ok(acquire(c, write=["t1"]))["lease"]
            if ending == "revoke":
                ok(admin.call({"op": "revoke", "lease": lease}))
                c.wait_event("lease_revoked")
            else:
                ok(c.call({"op": ending}))
        t0 = time.monotonic()
        for _ in range(10):  # the admin stays busy, so only c may idle out
            ok(admin.call({"op": "ping"}))
            if c.closed(timeout=0.2):
                break
        closed_after = time.monotonic() - t0
        assert closed_after < 1.9, \
            "after %s, a connection without a lease stayed open %.1fs past idle_timeout_ms=500" % (ending, closed_after)
        assert observer.can_write("t1")


def test_max_output_bytes_closes_a_client_that_does_not_read(serve, tables, observer):
    d = serve(daemon={"max_output_bytes": "1M"})
    big = {"op": "query", "sql": "SELECT id, REPEAT('x', 100000) AS s FROM t1"}  # ~300 KB per answer
    # A client that reads gets such answers without trouble.
    with d.client() as reader:
        ok(acquire(reader, read=["t1"]))
        for _ in range(5):
            assert len(ok(reader.call(big))["rows"]) == 3
        ok(reader.call({"op": "rollback"}))

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(d.sock)
    try:
        s.sendall(b'{"op":"acquire","read":["t1"],"wait_ms":2000}\n' + (json.dumps(big).encode() + b"\n") * 200)
        wait_for(lambda: "max_output_bytes" in d.log_text(), timeout=20, what="the max_output_bytes close")
        assert _closed_raw(s, scaled(10)), "the daemon did not close the connection that does not read"
    finally:
        s.close()
    assert d.running()
    line = [l for l in d.log_text().splitlines() if "max_output_bytes" in l]
    print(line)
    wait_for(lambda: observer.can_write("t1"), what="the non-reader's lease released")
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        ok(c.call({"op": "commit"}))
    rss_kb = int([l for l in open("/proc/%d/status" % d.proc.pid) if l.startswith("VmRSS")][0].split()[1])
    assert rss_kb < 200 * 1024, "daemon RSS %d kB after the non-reader" % rss_kb


def test_request_caps_answered_with_bad_request(serve, tables, observer):
    d = serve(daemon={"max_request_bytes": "64K"})
    with d.client() as c:
        def nested(k):
            v = 0
            for _ in range(k):
                v = [v]
            return {"op": "ping", "x": v}
        ok(c.call(nested(31)))  # the object plus 31 arrays: 32 levels
        resp = c.call(nested(32))
        assert error_code(resp) == "bad_request" and "32" in resp["error"]["message"], resp
        assert "nest" in resp["error"]["message"], resp

        many = ["t%d" % i for i in range(257)]
        resp = acquire(c, write=many)
        assert error_code(resp) == "bad_request" and "256" in resp["error"]["message"], resp
        resp = acquire(c, write=many[:256])
        assert error_code(resp) != "bad_request", resp  # (those tables do not exist)
        ok(acquire(c, write=["t1", "t2"] * 200))  # 400 entries merge into 2
        ok(c.call({"op": "rollback"}))
        assert observer.can_write("t1")

        stmt = {"sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"}
        resp = c.call({"op": "transact", "write": ["t1"], "statements": [stmt] * 257})
        assert error_code(resp) == "bad_request" and "256" in resp["error"]["message"], resp
        assert observer.value("t1", 1) == 10, "an over-cap transact ran"
        assert len(ok(c.call({"op": "transact", "write": ["t1"], "statements": [stmt] * 256}))["results"]) == 256
        assert observer.value("t1", 1) == 266

        ok(acquire(c, read=["t1"]))
        resp = c.call({"op": "query", "sql": "SELECT ?", "params": [1] * 4097})
        assert error_code(resp) == "bad_request" and "4096" in resp["error"]["message"], resp
        resp = c.call({"op": "query", "sql": "SELECT ?", "params": [1] * 4096})
        assert error_code(resp) == "bad_params", resp
        assert not observer.can_write("t1"), "a refused request ended the lease"
        ok(c.call({"op": "ping"}))

        # SQL longer than max_request_bytes cannot fit in a request line: the
        # line itself is over the cap, which is request_too_large and a close.
        resp = c.call({"op": "query", "sql": "SELECT '" + "y" * 70000 + "'"})
        assert error_code(resp) == "request_too_large" and "max_request_bytes" in resp["error"]["message"], resp
        assert c.closed()
    wait_for(lambda: observer.can_write("t1"), what="the lease released with the connection")


def test_no_secrets_in_logs_or_status(serve, mariadb, tables, observer):
    param = "pz-Unique-Param-8812"
    num_param = 7391864205513
    mariadb.sql("DROP TABLE IF EXISTS sec_s")
    mariadb.sql("CREATE TABLE sec_s (k VARCHAR(64) PRIMARY KEY, n BIGINT) ENGINE=InnoDB")
    d, port = tcp_token_daemon(serve, daemon={"log_level": "debug"},
                               access={"allow": ["user:root admin write app.*",
                                                 "token:%s write app.t1 app.sec_s" % TOKEN_NAME]})
    with Client.tcp(port) as bad:
        assert error_code(bad.call({"op": "hello", "token": BAD_TOKEN})) == "unauthenticated"
    statuses = []
    with Client.tcp(port) as c, d.client() as admin:
        ok(c.call({"op": "hello", "client": "secret-test", "token": TOKEN}))
        ok(acquire(c, write=["sec_s", "t1"]))
        ins = {"op": "query", "sql": "INSERT INTO sec_s (k, n) VALUES (?, ?)", "params": [param, num_param]}
        ok(c.call(ins))
        assert error_code(c.call(ins)) == "mysql"  # duplicate key: MySQL's message quotes the value
        assert error_code(c.call({"op": "query", "sql": "SELECT ?, ?", "params": [param]})) == "bad_params"
        assert error_code(c.call({"op": "query", "sql": "DROP TABLE sec_s /* ? */", "params": [param]})) \
            == "statement_not_allowed"
        rows = ok(c.call({"op": "query", "sql": "SELECT n FROM sec_s WHERE k = ?", "params": [param]}))["rows"]
        assert rows == [[num_param]]
        statuses.append(ok(admin.call({"op": "status"})))
        statuses.append(ok(c.call({"op": "status"})))
        ok(c.call({"op": "commit"}))
        resp = c.call({"op": "transact", "write": ["t1"], "statements": [
            {"sql": "UPDATE t1 SET v = ? WHERE id = 1", "params": [num_param % 1000]},
            {"sql": "SELECT ? FROM t1", "params": [param]},
            {"sql": "SELECT nope FROM t1 WHERE v = ?", "params": [param]}]})
        assert error_code(resp) == "mysql"
        statuses.append(ok(admin.call({"op": "status"})))
    log = d.log_text()
    assert "authenticated as token:%s" % TOKEN_NAME in log and "lease" in log, "the log recorded nothing:\n" + log
    for secret, what in ((DAEMON_PASSWORD, "the MySQL password"), (TOKEN, "the token"),
                         (BAD_TOKEN, "the rejected token"), (param, "a statement parameter"),
                         (str(num_param), "a numeric statement parameter")):
        hits = [line for line in log.splitlines() if secret in line]
        assert not hits, "%s appears in the daemon log:\n%s" % (what, "\n".join(hits[:5]))
        for st in statuses:
            assert secret not in json.dumps(st), "%s appears in status: %r" % (what, st)


# ================================================================ the flood

HOSTILE_SCRIPT = r"""
import json, os, select, socket, sys, time
path, n, nloris, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
stats = {"errors": {}, "failed": 0}

def out(**kw):
    print(json.dumps(kw), flush=True)

def connect():
    # Blocking connect: a full listen backlog makes it wait for the daemon
    # to accept (a non-blocking one would fail with EAGAIN at once).
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.setblocking(False)
        s.send(b'{"op":"ping"}\n')  # and never read the answer
        return s
    except OSError as e:
        stats["errors"][str(e.errno)] = stats["errors"].get(str(e.errno), 0) + 1
        stats["failed"] += 1
        s.close()
        return None

# The slow loris: a few connections, each dripping one byte a second of a
# request line that would take minutes to finish.
loris = [s for s in (connect() for _ in range(nloris)) if s is not None]
payload = b'{"op":"status","pad":"' + b"z" * 500 + b'"}\n'
drip = {"pos": 0, "next": time.monotonic(), "cut": 0}

def tick():
    now = time.monotonic()
    if now < drip["next"]:
        return
    drip["next"] += 1.0
    for s in list(loris):
        try:
            s.send(payload[drip["pos"]:drip["pos"] + 1])
        except OSError:
            loris.remove(s)
            drip["cut"] += 1
    drip["pos"] += 1

def stop_requested():
    return bool(select.select([sys.stdin], [], [], 0)[0])

out(state="started", loris=len(loris))
conns = []
t0 = time.monotonic()
while len(conns) < n and stats["failed"] < 1000:
    s = connect()
    if s is not None:
        conns.append(s)
    if len(conns) % 100 == 0:
        tick()
opened_s = time.monotonic() - t0
out(state="opened", count=len(conns), seconds=round(opened_s, 3), errors=stats["errors"])

# Then, until told to stop: "storm" keeps opening new connections as fast as
# the daemon takes them (closing its oldest, so that n stay open); "hold"
# keeps them and reconnects 500 a second.
churned = 0
oldest = 0
t1 = time.monotonic()
while not stop_requested():
    tick()
    batch = 100 if mode == "storm" else 5
    for _ in range(batch):
        conns[oldest].close()
        conns[oldest] = connect() or socket.socket(socket.AF_UNIX)
        oldest = (oldest + 1) % len(conns)
        churned += 1
    if mode != "storm":
        time.sleep(0.01)
elapsed = time.monotonic() - t1
out(state="stopped", churned=churned, churn_per_s=round(churned / max(elapsed, 1e-3)),
    open_per_s=round(n / max(opened_s, 1e-3)), failed=stats["failed"], errors=stats["errors"],
    loris_bytes=drip["pos"], loris_cut=drip["cut"], loris_left=len(loris))
for s in conns + loris:
    s.close()
"""


def _cycle(c, pid):
    """One acquire/UPDATE/commit on c, served by the daemon pid: (seconds it
    took, the same less the time the daemon spent meanwhile runnable but
    waiting for a CPU, which is the machine's, not the daemon's)."""
    waited0 = _sched_seconds(pid)[1]
    t0 = time.perf_counter()
    ok(c.call({"op": "acquire", "write": ["t1"], "wait_ms": 5000, "ttl_ms": 10000}))
    ok(c.call({"op": "query", "sql": "UPDATE t1 SET v = v + 1 WHERE id = 1"}))
    ok(c.call({"op": "commit"}))
    took = time.perf_counter() - t0
    return took, took - (_sched_seconds(pid)[1] - waited0)


def _stats(samples, own=True):
    """Median and p99 of _cycle samples: of their own time (without the
    daemon's wait for a CPU), or with own=False of the whole time."""
    s = sorted(x[1] if own else x[0] for x in samples)
    if not s:
        return {"n": 0, "median_ms": float("nan"), "p99_ms": float("nan")}
    return {"n": len(s), "median_ms": statistics.median(s) * 1000.0,
            "p99_ms": s[max(0, int(round(0.99 * len(s))) - 1)] * 1000.0}


FLOOD_CONNECTIONS = 10000
FLOOD_LORIS = 5
FLOOD_PACE_S = 0.01  # the legit client runs one cycle every ~10 ms, before and during
# The medians are sub-millisecond to a few ms, where scheduler noise alone is
# a sizeable fraction; the bound is median_during <= 2 * median_before + this
# (before times the machine's slowdown, see _run_flood).
LATENCY_FLOOR_S = 0.001


def _sched_seconds(pid):
    """(seconds on a CPU, seconds runnable but waiting for one) of pid's main
    thread, from /proc/PID/schedstat: the second tells whether the machine,
    rather than the daemon, was short of CPU."""
    with open("/proc/%d/schedstat" % pid) as f:
        run_ns, wait_ns = f.read().split()[:2]
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def _run_flood(serve, observer, record_property, mode, cycles, max_during_s):
    """Runs the legit client's paced cycles before and during a flood by the
    hostile child (HOSTILE_SCRIPT in `mode`); returns (report, during
    median, bound), after the checks that do not depend on latency.

    The latency before and during the flood is measured at different times,
    and a busy machine (other work beside the suite, and the hostile child's
    own CPU) slows the cycles during the flood whatever the daemon does. Two
    measurements in the same run take that share out:

    - each cycle does not count the time the daemon spent runnable but
      waiting for a CPU (its run queue delay, /proc/PID/schedstat). Serving
      the flood, the daemon uses CPU, so the kernel's fair scheduler makes
      it wait its turn behind a CPU-bound neighbour at each wake-up, for
      milliseconds, where an idle daemon would run at once;
    - each cycle on the flooded daemon is paired with one on a second
      daemon, the control, which nobody floods: how much slower the
      control's cycles got (MySQL and this process share the machine too)
      stretches the bound by that factor (never shrinks it).

    What remains is the daemon's own doing: time it spent on other work
    while the legit request waited, which is what a flood must not take."""
    started = time.monotonic()
    need = FLOOD_CONNECTIONS + 2000
    old_limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    if old_limits[0] < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, 32768), max(old_limits[1], need, 32768)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (old_limits[1], old_limits[1]))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        pytest.fail("cannot raise RLIMIT_NOFILE to %d (limits %r)" % (need, resource.getrlimit(resource.RLIMIT_NOFILE)))
    hostile = None
    legit = None
    reference = None
    try:
        # The daemon (and the hostile child) inherit the raised limit.
        d = serve(daemon={"max_clients": FLOOD_CONNECTIONS + 5000})
        with open("/proc/%d/limits" % d.proc.pid) as f:
            daemon_limit = [l for l in f if l.startswith("Max open files")][0]
        assert int(daemon_limit.split()[3]) >= need, daemon_limit
        control = serve()

        legit = d.client()
        ok(legit.call({"op": "hello", "client": "legit"}))
        reference = control.client()
        ok(reference.call({"op": "hello", "client": "legit-control"}))

        def paced_cycles(count, poll=None, max_s=None):
            """count cycles on the flooded daemon, each paired with one on
            the control (in turns first, so that neither always runs right
            after the pause): (samples, control samples)."""
            samples, controls = [], []
            t0 = time.monotonic()
            while len(samples) < count and (max_s is None or time.monotonic() - t0 < max_s):
                if len(samples) % 2 == 0:
                    samples.append(_cycle(legit, d.proc.pid))
                    controls.append(_cycle(reference, control.proc.pid))
                else:
                    controls.append(_cycle(reference, control.proc.pid))
                    samples.append(_cycle(legit, d.proc.pid))
                if poll is not None:
                    poll(len(samples))
                time.sleep(FLOOD_PACE_S)
            return samples, controls

        paced_cycles(30)  # warm up the pools and caches
        before, control_before = paced_cycles(cycles)

        hostile = subprocess.Popen(
            ["/usr/bin/python3", "-c", HOSTILE_SCRIPT, d.sock, str(FLOOD_CONNECTIONS), str(FLOOD_LORIS), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)

        def hostile_line(timeout):
            ready, _, _ = select.select([hostile.stdout], [], [], timeout)
            if not ready:
                return None
            line = hostile.stdout.readline()
            assert line, "the hostile client died (rc %r)" % hostile.poll()
            return json.loads(line)

        first = hostile_line(10)
        assert first and first["state"] == "started" and first["loris"] == FLOOD_LORIS, first
        opened = {}

        def poll(n):
            if not opened:
                msg = hostile_line(0)
                if msg is not None:
                    opened.update(msg, at_cycle=n)
        sched0, t0 = _sched_seconds(d.proc.pid), time.monotonic()
        during, control_during = paced_cycles(cycles, poll, max_during_s)
        sched1, window = _sched_seconds(d.proc.pid), time.monotonic() - t0
        cpu, runq = (sched1[0] - sched0[0]) / window, (sched1[1] - sched0[1]) / window
        while not opened and time.monotonic() - started < 40:
            poll(len(during))
            time.sleep(0.01)
        assert opened.get("state") == "opened" and opened["count"] == FLOOD_CONNECTIONS, opened
        st = ok(legit.call({"op": "status"}))
        hostile.stdin.close()
        stopped = hostile_line(20)
        hostile.wait(timeout=20)
        assert stopped and stopped["state"] == "stopped", stopped

        b, dr = _stats(before), _stats(during)
        raw_b, raw_dr = _stats(before, own=False), _stats(during, own=False)
        cb, cdr = _stats(control_before), _stats(control_during)
        burst, after = _stats(during[:opened["at_cycle"]]), _stats(during[opened["at_cycle"]:])
        machine = max(1.0, cdr["median_ms"] / cb["median_ms"])
        bound_ms = 2 * b["median_ms"] * machine + LATENCY_FLOOR_S * 1000
        report = (
            "flood (%s): %d hostile connections opened in %.2fs (%d/s), then %d more opened and closed "
            "(%d/s), %d failed connects %r; %d slow-loris connections dripped %d bytes each (%d cut off); "
            "daemon counted %d clients at the end; during the flood it ran %.0f%% of the time and waited for "
            "a CPU %.0f%% (load average %.1f). "
            "Legit acquire/UPDATE/commit cycle, one every ~%d ms, as measured (the daemon's waits for a "
            "CPU included): BEFORE median %.3f ms p99 %.3f ms; DURING median %.3f ms p99 %.3f ms. "
            "Without those waits: BEFORE median %.3f ms p99 %.3f ms (n=%d); DURING median %.3f ms p99 "
            "%.3f ms (n=%d) [while the "
            "first 10,000 opened: median %.3f p99 %.3f n=%d; after: median %.3f p99 %.3f n=%d]; "
            "the same on an unflooded control daemon: BEFORE median %.3f ms, DURING median %.3f ms, "
            "so the machine itself was %.2f times slower; "
            "bound median_during <= 2 * median_before * %.2f + %.1f ms = %.3f ms"
            % (mode, opened["count"], opened["seconds"], stopped["open_per_s"], stopped["churned"],
               stopped["churn_per_s"], stopped["failed"], stopped["errors"], FLOOD_LORIS, stopped["loris_bytes"],
               stopped["loris_cut"], st["clients"], cpu * 100, runq * 100, os.getloadavg()[0], FLOOD_PACE_S * 1000,
               raw_b["median_ms"], raw_b["p99_ms"], raw_dr["median_ms"], raw_dr["p99_ms"], b["median_ms"], b["p99_ms"],
               b["n"], dr["median_ms"], dr["p99_ms"], dr["n"], burst["median_ms"], burst["p99_ms"], burst["n"],
               after["median_ms"], after["p99_ms"], after["n"], cb["median_ms"], cdr["median_ms"], machine,
               machine, LATENCY_FLOOR_S * 1000, bound_ms))
        print(report)
        LOG.warning(report)
        record_property("flood_latency_" + mode, report)

        assert d.running(), "the daemon died under the flood"
        assert st["clients"] >= FLOOD_CONNECTIONS, "the daemon held only %d connections" % st["clients"]
        assert stopped["loris_bytes"] >= 2, "the slow loris did not get to drip"
        cycles_run = 2 * 30 + len(before) + len(control_before) + len(during) + len(control_during)
        assert observer.value("t1", 1) == 10 + cycles_run, "legit cycles lost updates"
        wait_for(lambda: clients_count(legit) == 1, timeout=20, what="the hostile connections closed")
        assert time.monotonic() - started < 45, "the flood test took %.1fs" % (time.monotonic() - started)
        return report, dr["median_ms"], bound_ms
    finally:
        if legit is not None:
            legit.close()
        if reference is not None:
            reference.close()
        if hostile is not None:
            if hostile.poll() is None:
                hostile.kill()
                hostile.wait()
            hostile.stdout.close()
            try:
                hostile.stdin.close()
            except OSError:
                pass
        resource.setrlimit(resource.RLIMIT_NOFILE, old_limits)


def test_flood_of_connections_and_slow_loris_keeps_legit_latency(serve, tables, observer, record_property):
    """The issue's flood: a hostile client opens 10,000 connections as fast as
    the daemon accepts them, each sending a ping it never reads, and keeps
    them open (reconnecting ~500 a second); a slow loris drips one byte a
    second on 5 more. Over 200 cycles from the flood's start, a legitimate
    client's acquire/UPDATE/commit keeps its median latency within
    2 * its median over 200 cycles before the flood + 1 ms. What the machine
    adds is taken out on both sides (see _run_flood): the time the daemon
    waited for a CPU does not count, and "before" is stretched by however
    much slower the same cycles on an unflooded control daemon got."""
    report, median, bound = _run_flood(serve, observer, record_property, "hold", 200, None)
    assert median <= bound, report


@pytest.mark.skipif(os.environ.get("TABLELOCK_STORM", "") in ("", "0"),
                    reason="opt-in (TABLELOCK_STORM=1): saturates the machine's CPUs for ~10 s")
def test_connection_storm_keeps_legit_latency(serve, tables, observer, record_property):
    """Harsher than the issue asks, and opt-in: after its 10,000 connections
    the hostile client keeps opening new ones as fast as the daemon accepts
    them (~15,000/s, closing its oldest, so 10,000 stay open). The legit
    client's median must still stay within the same bound (100 cycles, at
    most 8 s, before and during). On a small shared machine this measures
    CPU contention as much as the daemon: the report gives the daemon's CPU
    use so the two can be told apart."""
    report, median, bound = _run_flood(serve, observer, record_property, "storm", 100, 8.0)
    assert median <= bound, report


def test_blockers_are_shown_to_the_admin_and_the_holder_only(serve, tables, outside):
    """status's blocked_by names other MySQL sessions and their statements:
    a non-admin sees another client's locking lease without them."""
    d = serve(daemon={"socket_mode": "0666"})
    outside.cursor().execute("LOCK TABLES t1 WRITE")
    with named_client(d, "root-lease") as c:
        c.send({"op": "acquire", "write": ["t1"], "wait_ms": 20000})
        with d.client() as admin:  # root: the admin, by peer credentials
            mine = wait_for(lambda: [l for l in ok(admin.call({"op": "status"}))["leases"]
                                     if l["state"] == "locking"], what="the lease locking")[0]
        assert "blocked_by" in mine
        with nobody(d.sock) as other:
            (seen,) = ok(other.call({"op": "status"}))["leases"]
            assert seen["state"] == "locking"
            assert "blocked_by" not in seen and "blockers_unavailable" not in seen
        outside.cursor().execute("UNLOCK TABLES")
        ok(c.recv_response(timeout=scaled(10)))
        ok(c.call({"op": "rollback"}))
