"""client/examples/lease-update: the program make builds, and the three ways
client/README.md ("Building a program") tells a user to build it: in the
source tree without installing, after `make install` to the default prefix,
after `make install PREFIX=/opt/tablelock`, each shared and static. The
recipes are taken from the READMEs and run exactly as written, in a private
copy of the source tree; every run takes a lease and updates a row, which
the observer checks.

The installs write to /usr/local, /opt and the dynamic linker's cache: they
run as root inside a private mount namespace (unshare --mount), over empty
tmpfs mounts of /usr/local and /opt and a copy-on-write overlay of /etc, so
that the machine is left as it was (checked)."""

import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "tests"))
from clienttest import EXAMPLE, REPO, assert_no_sanitizer_report  # noqa: E402

CLIENT_README = os.path.join(REPO, "client", "README.md")
README = os.path.join(REPO, "README.md")
CUSTOM_PREFIX = "/opt/tablelock"
# The directories of /usr/local that Debian's base-files makes, so that the
# empty tmpfs looks like a fresh system's /usr/local.
USR_LOCAL_DIRS = ("bin", "etc", "games", "include", "lib", "sbin", "share", "src")


@pytest.fixture
def accounts(mariadb):
    mariadb.sql("DROP TABLE IF EXISTS accounts")
    # As scripts/demo.sql has it: a DECIMAL balance, which the example
    # prints as MySQL's exact text.
    mariadb.sql("CREATE TABLE accounts (id INT PRIMARY KEY, balance DECIMAL(10,2) NOT NULL) "
                "ENGINE=InnoDB")
    mariadb.sql("INSERT INTO accounts VALUES (1, 100), (2, 50)")


def balance(observer, account):
    return observer.execute("SELECT balance FROM accounts WHERE id = %s", (account,))[0]["balance"]


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, **kw)
    assert_no_sanitizer_report(p.stderr, cmd[0])
    return p


# ------------------------------------------------------------ the built example


def test_example_takes_a_lease_updates_and_commits(daemon, accounts, observer):
    d = daemon()
    p = run([EXAMPLE, d.sock, "1", "10"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("lease ") and "account 1 balance is now 110.00\n" in p.stdout
    assert balance(observer, 1) == 110
    # TABLELOCK_SOCKET works as well; an unknown account rolls back.
    p = run([EXAMPLE], env=dict(os.environ, TABLELOCK_SOCKET=d.sock))
    assert p.returncode == 0 and "balance is now 120.00\n" in p.stdout
    p = run([EXAMPLE, d.sock, "99", "5"])
    assert p.returncode == 1 and "no account 99" in p.stderr
    observer.execute("UPDATE accounts SET balance = balance WHERE 1 = 0")  # not locked


# ------------------------------------------------------------ the recipes


def sh_block(path, lead):
    """The first ```sh block after the first line of the markdown file that
    starts with lead."""
    text = open(path, encoding="utf-8").read()
    at = next((m.start() for m in re.finditer(r"^" + re.escape(lead), text, re.M)), None)
    assert at is not None, "%s: no line starting with %r" % (path, lead)
    m = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M).search(text, at)
    assert m, "%s: no ```sh block after %r" % (path, lead)
    return m.group(1)


IN_TREE = (CLIENT_README, "**In the source tree, without installing.**")
AFTER_INSTALL = (CLIENT_README, "**After `make install`**, as root, to the default prefix")
CUSTOM = (CLIENT_README, "**After `make install PREFIX=/opt/tablelock`**")
STATIC = (CLIENT_README, "**Statically.**")
INSTALL = (README, "### Install")


def test_the_recipes_are_the_ones_described():
    """The markers find the blocks the text talks about."""
    assert "export PKG_CONFIG_PATH=$PWD/client" in sh_block(*IN_TREE)
    assert "make install" not in sh_block(*AFTER_INSTALL)
    assert sh_block(*CUSTOM).startswith("make install PREFIX=%s\n" % CUSTOM_PREFIX)
    assert "/libtablelock.a" in sh_block(*STATIC)
    assert re.search(r"^make install\b", sh_block(*INSTALL), re.M)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A private copy of the source tree as a user has it: the files git
    knows (as they are in the working tree), nothing built."""
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], stdout=subprocess.PIPE, check=True,
                           timeout=60).stdout.decode().split("\0")
    root = tmp_path_factory.mktemp("tree") / "tablelockd"
    for name in files:
        src = os.path.join(REPO, name)
        if name and os.path.isfile(src):  # a tracked file may be deleted
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            shutil.copy2(src, os.path.join(root, name))
    return str(root)


def user_env(home, sock=None):
    """The environment of a user at a shell: the usual PATH and the daemon's
    address, nothing from the test run (no LD_LIBRARY_PATH, MAKEFLAGS,
    PKG_CONFIG_PATH, sanitizer options)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": str(home), "LANG": "C.UTF-8"}
    if sock is not None:
        env["TABLELOCK_SOCKET"] = sock
    return env


def steps(*named):
    """One shell script from (name, commands) pairs; each step's output
    follows a line "=== name" (see sections())."""
    return "set -e\n" + "".join("echo '=== %s'\n%s\n" % (name, cmds) for name, cmds in named)


def sections(stdout):
    out, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("=== "):
            name = line[4:]
            out[name] = ""
        elif name is not None:
            out[name] += line + "\n"
    return out


def run_script(script, cwd, env, namespace=None):
    """Runs script with sh -x (the trace goes to stderr); in a private mount
    namespace when namespace is a tmp dir for its /etc overlay. Returns the
    standard output split by step."""
    if namespace is not None:
        upper, work = os.path.join(namespace, "etc-upper"), os.path.join(namespace, "etc-work")
        os.makedirs(upper)
        os.makedirs(work)
        script = "\n".join([
            "set -e",
            "mount -t tmpfs -o mode=755 tmpfs /usr/local",
            "mkdir %s" % " ".join("/usr/local/" + d for d in USR_LOCAL_DIRS),
            "mount -t tmpfs -o mode=755 tmpfs /opt",
            "mount -t tmpfs -o mode=700 tmpfs /var/cache/ldconfig",
            "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc" % (upper, work),
            "cd %s" % cwd,
            script])
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-xc", script]
    else:
        cmd = ["sh", "-xc", script]
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=600)
    assert p.returncode == 0, "the recipe failed (exit %d):\n%s\n--- stderr:\n%s" % (
        p.returncode, p.stdout[-4000:], p.stderr[-6000:])
    return sections(p.stdout)


def needed(readelf_d):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", readelf_d)


def runpath(readelf_d):
    m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*?)\]", readelf_d)
    return m.group(1) if m else None


def resolved(ldd, lib):
    """Where ldd says the dynamic linker finds lib ("not found" too)."""
    m = re.search(r"^\s*%s => (\S+)" % re.escape(lib), ldd, re.M)
    assert m, ldd
    return m.group(1)


LINKED = "\n".join([
    "readelf -d lease-update",
    "echo '=== ldd'",
    "ldd lease-update",
    "echo '=== static readelf'",
    "readelf -d lease-update-static",
])


def assert_ran(out, observer, balances):
    """The shared and the static program each took a lease and added 10."""
    assert "account 1 balance is now %d.00\n" % balances[0] in out["shared"], out["shared"]
    assert "account 1 balance is now %d.00\n" % balances[1] in out["static"], out["static"]
    assert re.search(r"^lease \d+ committed: ", out["shared"], re.M), out["shared"]
    assert balance(observer, 1) == balances[1]


def assert_static(out):
    libs = needed(out["static readelf"])
    assert libs and not any(lib.startswith("libtablelock") for lib in libs), libs


def test_in_the_tree_without_installing(daemon, accounts, observer, tree, tmp_path):
    d = daemon()
    out = run_script(steps(("shared", sh_block(*IN_TREE)),
                           ("static", sh_block(*STATIC)),
                           ("readelf", LINKED)),
                     tree, user_env(tmp_path, d.sock))
    assert_ran(out, observer, (110, 120))
    client = os.path.join(tree, "client")
    assert "libtablelock.so.1" in needed(out["readelf"])
    assert runpath(out["readelf"]) == client
    assert resolved(out["ldd"], "libtablelock.so.1") == os.path.join(client, "libtablelock.so.1")
    assert_static(out)


class Machine:
    """What an install could leave behind on the real machine."""

    def __init__(self):
        self.cache = self.digest("/etc/ld.so.cache")
        self.found = self.tablelock_files()

    @staticmethod
    def digest(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    @staticmethod
    def tablelock_files():
        found = []
        for top in ("/usr/local", "/opt", "/etc"):
            for dirpath, dirs, files in os.walk(top):
                found += [os.path.join(dirpath, n) for n in files + dirs if "tablelock" in n]
        return sorted(found)

    def assert_untouched(self):
        assert self.digest("/etc/ld.so.cache") == self.cache
        assert self.tablelock_files() == self.found


@pytest.fixture
def machine():
    if os.geteuid() != 0:
        pytest.skip("installing needs root (for a private mount namespace)")
    before = Machine()
    yield
    before.assert_untouched()


def files_under(listing, top):
    return sorted(line[len(top) + 1:] for line in listing.splitlines() if line.startswith(top + "/"))


FIND = "find %s ! -type d | sort"
KEPT = ["etc/tablelockd/tablelockd.conf"]  # the config, which may hold the operator's edits
INSTALLED = sorted(KEPT + [
    "bin/tablelock", "include/tablelock.h", "lib/libtablelock.a", "lib/libtablelock.so",
    "lib/libtablelock.so.0.1.0", "lib/libtablelock.so.1", "lib/pkgconfig/tablelock.pc",
    "lib/systemd/system/tablelockd.service", "lib/systemd/system/tablelockd.socket",
    "lib/sysusers.d/tablelockd.conf", "sbin/tablelockd", "share/man/man1/tablelock.1",
    "share/man/man5/tablelockd.conf.5", "share/man/man8/tablelockd.8",
    "share/tablelockd/prometheus/tablelockd.rules.yml"])


def test_after_make_install_to_the_default_prefix(daemon, accounts, observer, tree, tmp_path,
                                                  machine):
    d = daemon()
    out = run_script(steps(("install", sh_block(*INSTALL)),
                           ("shared", sh_block(*AFTER_INSTALL)),
                           ("static", sh_block(*STATIC)),
                           ("readelf", LINKED),
                           ("pc", "cat /usr/local/lib/pkgconfig/tablelock.pc"),
                           ("installed", FIND % "/usr/local"),
                           ("uninstall", "make uninstall"),
                           ("left", FIND % "/usr/local"),
                           ("cache", "ldconfig -p | grep -c libtablelock || true")),
                     tree, user_env(tmp_path, d.sock), namespace=str(tmp_path))
    # make install ran ldconfig, and the program finds the library through
    # the cache: no rpath, nothing in its environment.
    assert re.search(r"^/\S*ldconfig$", out["install"], re.M), out["install"]
    assert "rpath" not in re.search(r"^Libs:.*", out["pc"], re.M).group(0)
    assert_ran(out, observer, (110, 120))
    assert "libtablelock.so.1" in needed(out["readelf"])
    assert runpath(out["readelf"]) is None
    assert resolved(out["ldd"], "libtablelock.so.1") == "/usr/local/lib/libtablelock.so.1"
    assert_static(out)
    # make uninstall removes every file make install put, but the config,
    # and drops the library from the cache.
    assert files_under(out["installed"], "/usr/local") == INSTALLED
    assert files_under(out["left"], "/usr/local") == KEPT
    assert re.search(r"^/\S*ldconfig$", out["uninstall"], re.M), out["uninstall"]
    assert out["cache"].strip() == "0"


def test_after_make_install_to_a_custom_prefix(daemon, accounts, observer, tree, tmp_path,
                                               machine):
    d = daemon()
    lib = CUSTOM_PREFIX + "/lib"
    out = run_script(steps(("shared", sh_block(*CUSTOM)),
                           ("static", sh_block(*STATIC)),
                           ("readelf", LINKED),
                           ("pc", "cat %s/pkgconfig/tablelock.pc" % lib),
                           ("soname", "readelf -d %s/libtablelock.so" % lib),
                           ("exported", "nm -D --defined-only %s/libtablelock.so" % lib),
                           ("installed", FIND % CUSTOM_PREFIX),
                           ("uninstall", "make uninstall PREFIX=%s" % CUSTOM_PREFIX),
                           ("left", FIND % "/opt")),
                     tree, user_env(tmp_path, d.sock), namespace=str(tmp_path))
    # No ldconfig (it would not look there): the program finds the library
    # through the rpath that tablelock.pc gave it.
    assert not re.search(r"^/\S*ldconfig$", out["shared"], re.M), out["shared"]
    assert not os.path.exists(os.path.join(str(tmp_path), "etc-upper", "ld.so.cache"))
    assert re.search(r"^Libs: -L\$\{libdir\} -Wl,-rpath,\$\{libdir\} -ltablelock$", out["pc"],
                     re.M), out["pc"]
    assert_ran(out, observer, (110, 120))
    assert "libtablelock.so.1" in needed(out["readelf"])
    assert runpath(out["readelf"]) == lib
    assert resolved(out["ldd"], "libtablelock.so.1") == lib + "/libtablelock.so.1"
    assert_static(out)
    # The installed library: its soname, and tablelock_* as its only symbols.
    assert "Library soname: [libtablelock.so.1]" in out["soname"]
    # "0000000000003f20 T tablelock_ping@@TABLELOCK_1"; the version node is type A.
    names = [line.split()[-1].split("@")[0] for line in out["exported"].splitlines()
             if len(line.split()) == 3 and line.split()[1] != "A"]
    assert names and all(n.startswith("tablelock_") for n in names), names
    assert "tablelock_result_from_json" not in names  # internal stays internal
    # make uninstall with the same PREFIX removes all of it but the config.
    assert files_under(out["installed"], CUSTOM_PREFIX) == INSTALLED
    assert files_under(out["left"], CUSTOM_PREFIX) == KEPT


def test_a_staged_install_runs_no_ldconfig(tree, tmp_path, machine):
    """DESTDIR stages files for a package, whose own trigger runs ldconfig;
    tablelock.pc is written for the final place."""
    stage = str(tmp_path / "stage")
    out = run_script(steps(("before", "stat -c %y /etc/ld.so.cache"),
                           ("install", "make install DESTDIR=%s" % stage),
                           ("after", "stat -c %y /etc/ld.so.cache"),
                           ("pc", "cat %s/usr/local/lib/pkgconfig/tablelock.pc" % stage),
                           ("installed", FIND % stage),
                           ("uninstall", "make uninstall DESTDIR=%s" % stage),
                           ("left", FIND % stage)),
                     tree, user_env(tmp_path), namespace=str(tmp_path))
    assert "ldconfig" not in out["install"] + out["uninstall"]
    assert out["before"] == out["after"]
    assert not os.path.exists(os.path.join(str(tmp_path), "etc-upper", "ld.so.cache"))
    assert re.search(r"^libdir=/usr/local/lib$", out["pc"], re.M), out["pc"]
    assert re.search(r"^Libs: -L\$\{libdir\} -ltablelock$", out["pc"], re.M), out["pc"]
    assert files_under(out["installed"], stage + "/usr/local") == INSTALLED
    assert files_under(out["left"], stage + "/usr/local") == KEPT
