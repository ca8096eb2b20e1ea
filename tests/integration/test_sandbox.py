"""`make run` as a newcomer meets it: scripts/run-sandbox.sh, its banner, its end.

Every test runs the real script the way `make run` does (sh
scripts/run-sandbox.sh), on a run directory of its own (TABLELOCK_RUN_DIR,
short enough for socket paths), as its own session and process group, so a
signal to that group is what Ctrl-C in a terminal does. Whatever ends the
run, no process of it may remain: none in its session, none whose command
line names its run directory (the MariaDB server has a session of its own).

Also here: the tablelock CLI and libtablelock pointed at sockets that are not
tablelockd's (the harness's MariaDB, one that answers text, one that hangs up).
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pymysql
import pytest

from conftest import REPO, scaled, wait_for

sys.path.insert(0, os.path.join(REPO, "client", "tests"))
from clienttest import CLI, Driver  # noqa: E402

SCRIPT = os.path.join("scripts", "run-sandbox.sh")
BANNER_START = "tablelockd is running on "


# ---------------------------------------------------------------- processes


def _stat(pid):
    """(session id, command line) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None  # a zombie has ended; its parent just has not reaped it
    return int(fields[3]), cmdline


def processes_of(sid, run_dir):
    """Live processes in session sid or naming run_dir: {pid: cmdline}."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        st = _stat(int(name))
        if st is not None and (st[0] == sid or run_dir in st[1]):
            found[int(name)] = st[1]
    return found


class Sandbox:
    """One run of the script. pipeline: the shell command line around it
    ({script} is replaced), e.g. "{script} 2>&1 | tee log"."""

    def __init__(self, run_dir, pipeline="exec {script}"):
        self.run_dir = run_dir
        self.sock = os.path.join(run_dir, "tablelockd.sock")
        self.mysql_sock = os.path.join(run_dir, "mysql.sock")
        self.log = run_dir + ".out"
        env = dict(os.environ, TABLELOCK_RUN_DIR=run_dir)
        env.pop("TABLELOCK_SOCKET", None)
        with open(self.log, "wb") as out:
            # start_new_session: the setsid a terminal's job would have.
            self.proc = subprocess.Popen(
                ["sh", "-c", pipeline.format(script="sh " + SCRIPT)], cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.sid = self.proc.pid

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def script_pid(self):
        """The shell running the script itself (the pipeline's sh may be another)."""
        for pid, cmd in processes_of(self.sid, self.run_dir).items():
            if cmd.strip() == "sh " + SCRIPT:
                return pid
        raise AssertionError("no script process in session %d" % self.sid)

    def wait_ready(self, timeout=120):
        """Waits until the daemon answers and the banner is out."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("the script exited (%s):\n%s" % (self.proc.returncode,
                                                                     self.output()))
            return "socat -t 5" in self.output() and answers(self.sock)
        wait_for(ready, timeout=timeout, interval=0.1, what="the sandbox to start")

    def banner(self):
        text = self.output()
        assert BANNER_START in text, text
        return text[text.index(BANNER_START):]

    def signal_group(self, sig):
        os.killpg(self.sid, sig)

    def assert_all_gone(self, timeout=30):
        def gone():
            return not processes_of(self.sid, self.run_dir)
        try:
            wait_for(gone, timeout=timeout, interval=0.1, what="every process of the run to end")
        except AssertionError:
            left = processes_of(self.sid, self.run_dir)
            raise AssertionError("still running: %r\noutput:\n%s" % (left, self.output()))
        self.proc.wait(timeout=scaled(10))

    def kill_leftovers(self):
        for pid in processes_of(self.sid, self.run_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def sql(self, statement):
        conn = pymysql.connect(unix_socket=self.mysql_sock, user="root", database="demo",
                               autocommit=True, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall()
        finally:
            conn.close()


def answers(path):
    """Does something accept connections on the Unix socket path?"""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="module")
def run_root():
    # Unix socket paths hold at most 107 bytes: /tmp, not a deep pytest dir.
    root = tempfile.mkdtemp(prefix="tl-sb-", dir="/tmp")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def run_dir(run_root):
    """One sandbox directory for the module: created by the first run,
    started again by the next ones (as `make run` does day after day)."""
    return os.path.join(run_root, "run")


@pytest.fixture
def sandbox(run_dir):
    """Starts runs of the script; anything they leave running is killed
    (by pid) at teardown, after the test has said whether it should have."""
    made = []

    def start(pipeline="exec {script}", directory=None):
        sb = Sandbox(directory or run_dir, pipeline)
        made.append(sb)
        return sb

    yield start
    for sb in made:
        sb.kill_leftovers()


# ---------------------------------------------------------------- the banner


def banner_blocks(banner):
    """The indented lines of the banner, in blocks of consecutive lines."""
    blocks, current = [], []
    for line in banner.splitlines():
        if line.startswith("  "):
            current.append(line[2:])
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def run_shell(command, cwd, env, stdin=None, timeout=30):
    return subprocess.run(["sh", "-c", command], cwd=cwd, env=env, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=scaled(timeout))


class LineReader:
    """Lines from a child's stdout, each within a timeout."""

    def __init__(self, stream):
        self.stream = stream
        self.buf = b""

    def line(self, timeout=10):
        deadline = time.monotonic() + scaled(timeout)
        fd = self.stream.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "no line within %ss (have %r)" % (timeout, self.buf)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, "end of output (have %r)" % self.buf
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


def test_every_command_the_banner_prints_works(sandbox):
    sb = sandbox()
    sb.wait_ready()
    blocks = banner_blocks(sb.banner())

    cli_block = next(b for b in blocks if b[0].startswith("cd "))
    shell_input = blocks[blocks.index(cli_block) + 1]
    session = next(b for b in blocks if b[0].startswith("socat - UNIX-CONNECT:"))
    observer = next(b for b in blocks if b[0].startswith("mariadb "))
    one_shot = next(b for b in blocks if b[0].startswith("printf "))
    assert len(blocks) == 5, blocks

    # The CLI, in a fresh shell where `tablelock` is not on PATH and
    # TABLELOCK_SOCKET is whatever the banner exports.
    env = {k: v for k, v in os.environ.items() if k != "TABLELOCK_SOCKET"}
    cwd = None
    commands = []
    for line in cli_block:
        if line.startswith("cd "):
            cwd = line[3:]
        elif line.startswith("export "):
            name, value = line[len("export "):].split("=", 1)
            env[name] = value
        else:
            commands.append(line)
    assert cwd == REPO and env.get("TABLELOCK_SOCKET") == sb.sock, cli_block
    assert all(c.startswith("./client/tablelock ") for c in commands), commands
    assert [c.split()[1] for c in commands] == ["status", "exec", "exec", "shell"], commands

    p = run_shell(commands[0], cwd, env)
    assert p.returncode == 0, p.stderr
    assert re.match(r"0 leases", p.stdout) and "pool:" in p.stdout, p.stdout

    before = sb.sql("SELECT v FROM t1 WHERE id = 1")[0][0]
    p = run_shell(commands[1], cwd, env)
    assert p.returncode == 0 and "OK, 1 row affected" in p.stdout, (p.stdout, p.stderr)
    assert sb.sql("SELECT v FROM t1 WHERE id = 1")[0][0] == before + 1

    p = run_shell(commands[2], cwd, env)
    assert p.returncode == 0, p.stderr
    assert "alice" in p.stdout and "balance" in p.stdout, p.stdout

    # The shell, fed the lines the banner says to type.
    assert shell_input[-1] == "commit", shell_input
    balances = dict(sb.sql("SELECT id, balance FROM accounts"))
    transfers = sb.sql("SELECT COUNT(*) FROM transfers")[0][0]
    p = run_shell(commands[3], cwd, env, stdin="\n".join(shell_input) + "\n")
    assert p.returncode == 0, (p.stdout, p.stderr)
    after = dict(sb.sql("SELECT id, balance FROM accounts"))
    assert after[1] == balances[1] - 10 and after[3] == balances[3] + 10, (balances, after)
    assert sb.sql("SELECT COUNT(*) FROM transfers")[0][0] == transfers + 1

    # The socat session, line by line, and the MySQL client it says waits.
    balances = after
    socat = subprocess.Popen(["sh", "-c", session[0]], cwd=cwd, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    reader = LineReader(socat.stdout)
    waiting = None
    try:
        for request in session[1:]:
            json.loads(request)
            socat.stdin.write(request.encode() + b"\n")
            socat.stdin.flush()
            answer = json.loads(reader.line())
            assert answer.get("ok") is True, (request, answer)
            op = json.loads(request)["op"]
            if op == "acquire":
                waiting = subprocess.Popen(["sh", "-c", observer[0]], cwd=cwd, env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True)
                time.sleep(1.0)
                assert waiting.poll() is None, "the MySQL client did not wait for the lease"
            if op == "commit":
                out, err = waiting.communicate(timeout=scaled(20))
                assert waiting.returncode == 0 and "alice" in out, (out, err)
            if op == "status":
                assert answer["leases"] == [] or all(
                    lease.get("client") != "demo-shell" for lease in answer["leases"]), answer
    finally:
        socat.stdin.close()
        socat.wait(timeout=scaled(10))
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    after = dict(sb.sql("SELECT id, balance FROM accounts"))
    assert after[1] == balances[1] - 25 and after[2] == balances[2] + 25, (balances, after)

    # The one-shot pipeline.
    p = run_shell("\n".join(one_shot), cwd, env)
    assert p.returncode == 0, p.stderr
    answers_ = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(answers_) == 3 and all(a.get("ok") is True for a in answers_), answers_
    assert [row[0] for row in answers_[1]["rows"]] == ["alice", "bob", "carol"]

    sb.signal_group(signal.SIGINT)
    sb.assert_all_gone()


# ---------------------------------------------------------------- ending a run


def hold_a_lease(sb):
    """A `tablelock shell` holding a write lease on t1 with an update made,
    from outside the run's process group."""
    env = dict(os.environ, TABLELOCK_SOCKET=sb.sock)
    shell = subprocess.Popen([CLI, "shell", "--write", "t1"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shell.stdin.write(b"UPDATE t1 SET v = v + 1000 WHERE id = 2\n")
    shell.stdin.flush()
    reader = LineReader(shell.stdout)
    assert "1 row affected" in reader.line()
    return shell


def test_ctrl_c_with_the_output_through_tee_stops_everything(sandbox, run_root):
    tee_log = os.path.join(run_root, "tee.log")
    sb = sandbox("{script} 2>&1 | tee " + tee_log)
    sb.wait_ready()
    before = sb.sql("SELECT v FROM t1 WHERE id = 2")[0][0]
    shell = hold_a_lease(sb)
    try:
        # Ctrl-C: SIGINT to the whole foreground group, tee included, so
        # whatever the script writes afterwards meets a closed pipe.
        sb.signal_group(signal.SIGINT)
        sb.assert_all_gone()
        shell.stdin.close()
        assert shell.wait(timeout=scaled(10)) != 0
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    assert "tablelockd is running" in open(tee_log, errors="replace").read()

    # The update under the lease was rolled back, and the next run does not
    # find a server to reuse.
    sb = sandbox()
    sb.wait_ready()
    assert "left running" not in sb.output()
    assert sb.sql("SELECT v FROM t1 WHERE id = 2")[0][0] == before
    sb.signal_group(signal.SIGINT)
    sb.assert_all_gone()


@pytest.mark.parametrize("how", ["SIGTERM to the script", "SIGHUP to the group",
                                 "SIGKILL of the script", "SIGTERM to the group"])
def test_any_end_of_the_script_stops_everything(sandbox, how):
    sb = sandbox()
    sb.wait_ready()
    sig = getattr(signal, how.split()[0])
    if how.endswith("the group"):
        sb.signal_group(sig)
    else:
        os.kill(sb.script_pid(), sig)
    sb.assert_all_gone()
    if sig != signal.SIGKILL:
        assert "stopping the sandbox MariaDB" in sb.output(), sb.output()


def test_a_second_run_is_refused_and_the_first_goes_on(sandbox):
    first = sandbox()
    first.wait_ready()
    second = sandbox()
    assert second.proc.wait(timeout=scaled(20)) == 1
    assert "another 'make run' is using " + first.run_dir in second.output(), second.output()
    p = subprocess.run([CLI, "-s", first.sock, "ping"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=scaled(10))
    assert p.returncode == 0, p.stderr
    first.signal_group(signal.SIGINT)
    first.assert_all_gone()


def test_a_leftover_server_is_stopped_and_an_old_schema_migrated(sandbox, run_dir):
    # First make sure the sandbox exists, then leave its server running the
    # way the script before this one could (and with that script's schema:
    # INT amounts, no t2).
    sb = sandbox()
    sb.wait_ready()
    sb.signal_group(signal.SIGINT)
    sb.assert_all_gone()
    datadir = os.path.join(run_dir, "mariadb")
    old = subprocess.Popen(
        ["setsid", "mariadbd", "--no-defaults", "--datadir=" + datadir,
         "--socket=" + os.path.join(run_dir, "mysql.sock"), "--skip-networking", "--user=root",
         "--pid-file=" + os.path.join(run_dir, "mariadb.pid"),
         "--log-error=" + os.path.join(run_dir, "mariadb.err"), "--innodb-buffer-pool-size=64M"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return sb.sql("SELECT 1")
            except pymysql.err.OperationalError:
                return None
        wait_for(up, timeout=60, interval=0.1, what="the leftover server")
        sb.sql("ALTER TABLE accounts MODIFY balance INT NOT NULL")
        sb.sql("ALTER TABLE transfers MODIFY amount INT NOT NULL")
        sb.sql("DROP TABLE t2")

        sb = sandbox()
        sb.wait_ready()
        out = sb.output()
        assert "stopping the sandbox MariaDB an earlier run left running (pid %d)" % old.pid in out, out
        assert old.wait(timeout=scaled(5)) is not None
        assert "migrating demo.accounts.balance from int to DECIMAL(10,2)" in out, out
        types = dict(sb.sql("SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLUMN_TYPE "
                            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'demo' AND "
                            "COLUMN_NAME IN ('balance', 'amount')"))
        assert types == {"accounts.balance": "decimal(10,2)",
                         "transfers.amount": "decimal(10,2)"}, types
        assert sb.sql("SELECT COUNT(*) FROM t2")[0][0] == 4
        # The daemon has the restored table too (its grant covers demo.*).
        p = subprocess.run([CLI, "-s", sb.sock, "exec", "--read", "t2", "-e",
                            "SELECT COUNT(*) AS n FROM t2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=scaled(10))
        assert p.returncode == 0 and "4" in p.stdout, (p.stdout, p.stderr)
        sb.signal_group(signal.SIGINT)
        sb.assert_all_gone()
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


def test_a_leftover_daemon_is_named_and_refused(sandbox, run_dir):
    sb = sandbox()
    sb.wait_ready()
    sb.signal_group(signal.SIGINT)
    sb.assert_all_gone()
    # A daemon on the sandbox's config, started by hand (or left by a run
    # of an older script): it answers even with its MySQL down.
    conf = os.path.join(run_dir, "tablelockd.conf")
    daemon = subprocess.Popen([os.environ.get("TABLELOCKD", os.path.join(REPO, "daemon",
                                                                          "tablelockd")),
                               "-c", conf], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(sb.sock), timeout=20, what="the hand-started daemon")
        again = sandbox()
        assert again.proc.wait(timeout=scaled(20)) == 1
        out = again.output()
        assert "a tablelockd left running by an earlier run answers on %s (pid %d" % (
            sb.sock, daemon.pid) in out, out
        assert daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.wait(timeout=scaled(20))


def test_your_own_config_is_used_as_it_is(sandbox, run_root, mariadb):
    own = os.path.join(run_root, "own")
    os.makedirs(own)
    sock = os.path.join(own, "d.sock")
    with open(os.path.join(own, "tablelockd.conf"), "w") as f:
        f.write("[daemon]\nlisten = unix:%s\nstate_file = %s/lease_id\n\n[mysql]\nsocket = %s\n"
                "user = tablelockd\npassword = secret-pw\ndatabase = app\npool_size = 1\n"
                % (sock, own, mariadb.sock))
    sb = sandbox(directory=own)
    wait_for(lambda: answers(sock), timeout=20, what="the daemon on your config")
    out = sb.output()
    assert "using your " + os.path.join(own, "tablelockd.conf") in out, out
    assert "MariaDB" not in out and not os.path.exists(os.path.join(own, "mariadb")), out
    p = subprocess.run([CLI, "-s", sock, "ping"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=scaled(10))
    assert p.returncode == 0, p.stderr
    sb.signal_group(signal.SIGINT)
    sb.assert_all_gone()


def test_a_run_directory_too_long_for_sockets_is_refused(sandbox, run_root):
    deep = os.path.join(run_root, "d" * 100)
    sb = sandbox(directory=deep)
    assert sb.proc.wait(timeout=scaled(20)) == 1
    assert "too long a path" in sb.output(), sb.output()


# ---------------------------------------------------------------- not tablelockd


class StrangeServer:
    """A Unix socket that is not tablelockd: it answers each connection with
    reply (bytes; None: hangs up at once)."""

    def __init__(self, path, reply):
        self.path = path
        self.reply = reply
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.reply is not None:
                    conn.settimeout(5)
                    try:
                        conn.recv(4096)
                        conn.sendall(self.reply)
                    except OSError:
                        pass

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def cli_on(sock, *args):
    started = time.monotonic()
    p = subprocess.run([CLI, "-s", sock] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=scaled(30))
    return p, time.monotonic() - started


def test_the_mariadb_socket_is_named_for_what_it_is(mariadb):
    sock = mariadb.sock
    for args in (["ping"], ["status"], ["exec", "--write", "t1", "-e", "SELECT 1"],
                 ["shell", "--write", "t1"]):
        p, took = cli_on(sock, *args)
        assert p.returncode == 3, (args, p.stderr)
        first = p.stderr.splitlines()[0]
        assert first.startswith("tablelock: %s is not a tablelockd socket (it sent a MySQL "
                                "server greeting, version " % sock), p.stderr
        assert "may have stopped" not in p.stderr and "-s PATH" in p.stderr, p.stderr
        # Said at once, not after the call's 10 s timeout.
        assert took < scaled(5), took

    # The library says so itself, with a code from its list.
    with Driver(sock) as d:
        r = d.err("hello", client="x")
        assert r["code"] == "protocol", r
        assert r["message"].startswith("%s is not a tablelockd socket (it sent a MySQL server "
                                       "greeting" % sock), r


@pytest.mark.parametrize("reply,said", [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", 'it answered "HTTP/1.1 400 Bad Request"'),
    (b'{"jsonrpc":"2.0","error":{"code":-32700}}\n', 'it answered "{"jsonrpc":"2.0"'),
    (b"\x16\x03\x01\x00\x02\x02\x28", "it sent binary data"),
    (None, "it closed the connection without answering"),
], ids=["text", "foreign JSON", "binary", "hang-up"])
def test_a_socket_that_answers_something_else_is_named_for_it(run_root, reply, said):
    path = os.path.join(run_root, "strange.sock")
    if os.path.exists(path):
        os.unlink(path)
    server = StrangeServer(path, reply)
    try:
        p, took = cli_on(path, "ping")
        assert p.returncode == 3, p.stderr
        first = p.stderr.splitlines()[0]
        assert first.startswith("tablelock: %s is not a tablelockd socket (" % path), p.stderr
        assert said in first, p.stderr
        assert took < scaled(5), took
        with Driver(path) as d:
            r = d.err("ping")
            assert r["code"] == "protocol", r
            assert "is not a tablelockd socket" in r["message"], r
    finally:
        server.close()
