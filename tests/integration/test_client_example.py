"""client/examples/lease-update: built by make, and buildable by a user from the
public header and either library alone; it takes a lease, updates a row and
commits, which the observer checks."""

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "tests"))
from clienttest import EXAMPLE, REPO, assert_no_sanitizer_report  # noqa: E402

CLIENT = os.path.join(REPO, "client")


@pytest.fixture
def accounts(mariadb):
    mariadb.sql("DROP TABLE IF EXISTS accounts")
    mariadb.sql("CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB")
    mariadb.sql("INSERT INTO accounts VALUES (1, 100), (2, 50)")


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, **kw)
    assert_no_sanitizer_report(p.stderr, cmd[0])
    return p


def sanitizer_flags():
    """The library may come from `make test-asan`: link the same runtime."""
    nm = run(["nm", os.path.join(CLIENT, "libtablelock.a")])
    return ["-fsanitize=address,undefined"] if "__asan" in nm.stdout else []


def test_example_takes_a_lease_updates_and_commits(daemon, accounts, observer):
    d = daemon()
    p = run([EXAMPLE, d.sock, "1", "10"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("lease ") and "account 1 balance is now 110" in p.stdout
    assert observer.execute("SELECT balance FROM accounts WHERE id = 1")[0]["balance"] == 110
    # TABLELOCK_SOCKET works as well; an unknown account rolls back.
    p = run([EXAMPLE], env=dict(os.environ, TABLELOCK_SOCKET=d.sock))
    assert p.returncode == 0 and "balance is now 120" in p.stdout
    p = run([EXAMPLE, d.sock, "99", "5"])
    assert p.returncode == 1 and "no account 99" in p.stderr
    observer.execute("UPDATE accounts SET balance = balance WHERE 1 = 0")  # not locked


def test_example_builds_from_the_public_header_and_libraries(daemon, accounts, observer,
                                                             tmp_path):
    d = daemon()
    include = tmp_path / "include"
    lib = tmp_path / "lib"
    include.mkdir()
    lib.mkdir()
    # Only what `make install` installs: the header and the libraries.
    shutil.copy(os.path.join(CLIENT, "tablelock.h"), include / "tablelock.h")
    shutil.copy(os.path.join(CLIENT, "libtablelock.a"), lib / "libtablelock.a")
    shutil.copy(os.path.join(CLIENT, "libtablelock.so"), lib / "libtablelock.so.0.1.0")
    os.symlink("libtablelock.so.0.1.0", lib / "libtablelock.so.1")
    os.symlink("libtablelock.so.1", lib / "libtablelock.so")
    src = os.path.join(CLIENT, "examples", "lease-update.c")
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(include)] + sanitizer_flags()

    static = str(tmp_path / "static")
    p = run(["cc"] + flags + ["-o", static, src, str(lib / "libtablelock.a"), "-ljansson"])
    assert p.returncode == 0, p.stderr
    shared = str(tmp_path / "shared")
    p = run(["cc"] + flags + ["-o", shared, src, "-L", str(lib), "-ltablelock"])
    assert p.returncode == 0, p.stderr

    soname = run(["readelf", "-d", os.path.join(CLIENT, "libtablelock.so")]).stdout
    assert "Library soname: [libtablelock.so.1]" in soname
    exported = run(["nm", "-D", "--defined-only", os.path.join(CLIENT, "libtablelock.so")]).stdout
    # "0000000000003f20 T tablelock_ping@@TABLELOCK_1"; the version node is type A.
    names = [line.split()[-1].split("@")[0] for line in exported.splitlines()
             if len(line.split()) == 3 and line.split()[1] != "A"]
    assert names and all(n.startswith("tablelock_") for n in names), names
    assert "tablelock_result_from_json" not in names  # internal stays internal

    p = run([static, d.sock, "2", "5"])
    assert p.returncode == 0, p.stderr
    p = run([shared, d.sock, "2", "5"], env=dict(os.environ, LD_LIBRARY_PATH=str(lib)))
    assert p.returncode == 0, p.stderr
    assert "balance is now 60" in p.stdout
    assert observer.execute("SELECT balance FROM accounts WHERE id = 2")[0]["balance"] == 60
