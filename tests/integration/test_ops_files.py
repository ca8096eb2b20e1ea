"""Operator files: the systemd units, the sysusers.d snippet, the man pages
and `make install`, checked with the tools an operator's machine has
(systemd-analyze, systemd-sysusers, mandoc, groff, make).

Needs no MariaDB and no running daemon. Run from the repository root by
tests/run.sh after `make` has built everything.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("tablelockd.service", "tablelockd.socket")
MAN_PAGES = {  # file under man/ -> (name, section)
    "tablelock.1": ("tablelock", "1"),
    "tablelockd.conf.5": ("tablelockd.conf", "5"),
    "tablelockd.8": ("tablelockd", "8"),
}
# The ExecStart line as written in systemd/tablelockd.service; mk/install.mk
# rewrites it to the installed paths.
EXECSTART_SRC = "ExecStart=/usr/local/sbin/tablelockd -c /etc/tablelockd/tablelockd.conf"
# Highest `systemd-analyze security` exposure accepted (0 safest, 10 worst).
# 1.2 on Debian 12's systemd 252 when written; a rise means hardening was lost.
MAX_EXPOSURE = 1.5


def daemon_path():
    """The daemon the suite tests (tests/run.sh sets TABLELOCKD), absolute."""
    path = Path(os.environ.get("TABLELOCKD", ROOT / "daemon" / "tablelockd"))
    if not path.is_absolute():
        path = ROOT / path
    return path


def run(args, **kwargs):
    kwargs.setdefault("cwd", ROOT)
    return subprocess.run(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, **kwargs
    )


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def unit_settings(text):
    """{(section, key): [values]} of a unit file."""
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def conf_keys():
    """conf/conf.c's key table: {(section, name): (default or None, reloadable)}."""
    text = (ROOT / "conf" / "conf.c").read_text()
    table = text[text.index("conf_keys[] = {") :]
    table = table[: table.index("\n};")]
    entry = re.compile(
        r'\{"(\w+)",\s*"(\w+)",\s*CONF_\w+,\s*CONF_FIELD\(\w+\),\s*[^,]+,\s*[^,]+,\s*'
        r'(NULL|"[^"]*"),\s*\w+,\s*(true|false),',
        re.S,
    )
    keys = {}
    for section, name, default, reloadable in entry.findall(table):
        keys[(section, name)] = (None if default == "NULL" else default[1:-1], reloadable == "true")
    # Every entry must have been understood, or the comparison means nothing.
    assert len(keys) == table.count('{"'), "conf.c's key table changed shape: update conf_keys()"
    return keys


def man_key_table():
    """The KEYS table of tablelockd.conf(5): {(section, name): (default, reloads)}."""
    text = (ROOT / "man" / "tablelockd.conf.5").read_text()
    start = text.index(".Sh KEYS")
    block = text[start : text.index(".El", start)]
    rows = {}
    for line in block.splitlines():
        if not line.startswith(".It ") or " Ta " not in line or line.startswith(".It Sy"):
            continue
        section, key, default, reloads = [cell.strip() for cell in line[4:].split(" Ta ")]
        key = key.removeprefix("Cm ").strip()
        assert (section, key) not in rows, f"tablelockd.conf(5) lists [{section}] {key} twice"
        rows[(section, key)] = (default, reloads)
    return rows


def substituted_units(directory):
    """Copies both units into directory with ExecStart on the built daemon."""
    daemon = daemon_path()
    assert daemon.is_file() and os.access(daemon, os.X_OK), f"{daemon} is not built"
    for unit in UNITS:
        text = (ROOT / "systemd" / unit).read_text()
        if unit.endswith(".service"):
            assert EXECSTART_SRC in text.splitlines()
            text = text.replace(
                EXECSTART_SRC,
                f"ExecStart={daemon} -c {ROOT / 'conf' / 'tablelockd.conf'}",
            )
        (directory / unit).write_text(text)
    return [str(directory / unit) for unit in UNITS]


def man_tree(directory):
    """A man hierarchy (man1, man5, man8) holding the three pages."""
    for page, (_, section) in MAN_PAGES.items():
        (directory / f"man{section}").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "man" / page, directory / f"man{section}" / page)
    return directory


# ------------------------------------------------------------------ units


def test_units_verify(tmp_path):
    """systemd-analyze verify passes on both units, Documentation= included."""
    need("systemd-analyze")
    units = substituted_units(tmp_path)
    env = dict(os.environ)
    args = ["systemd-analyze", "verify"]
    if shutil.which("man") is not None:
        # Documentation=man:… is checked with man(1): let it find our pages.
        system = run(["manpath"]).stdout.strip() if shutil.which("manpath") else ""
        env["MANPATH"] = f"{man_tree(tmp_path / 'man')}:{system or '/usr/share/man'}"
    else:
        args.append("--man=no")
    r = run(args + units, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout


def test_service_settings():
    """The service is what the daemon and operators rely on."""
    s = unit_settings((ROOT / "systemd" / "tablelockd.service").read_text())
    expect = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "KillSignal": "SIGTERM",
        "Restart": "on-failure",
        "User": "tablelockd",
        "Group": "tablelockd",
        "DynamicUser": "no",
        "RuntimeDirectory": "tablelockd",
        "StateDirectory": "tablelockd",
        "UMask": "0027",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallArchitectures": "native",
        "LimitNOFILE": "65536",
    }
    for key, value in expect.items():
        assert s.get(("Service", key)) == [value], f"[Service] {key}: {s.get(('Service', key))}"
    assert "@system-service" in s[("Service", "SystemCallFilter")]
    assert s[("Service", "ExecStart")] == [EXECSTART_SRC.partition("=")[2]]

    # systemd's SIGKILL must not cut the default drain short: the drain,
    # then up to 5 s of rollbacks (SERVER_SHUTDOWN_GRACE_MS), then exit.
    stop = s[("Service", "TimeoutStopSec")][0]
    m = re.fullmatch(r"(\d+)(s|min)?", stop)
    assert m, f"TimeoutStopSec={stop}: write it in s or min"
    stop_ms = int(m.group(1)) * (60000 if m.group(2) == "min" else 1000)
    drain_ms = int(conf_keys()[("daemon", "drain_timeout_ms")][0])
    assert stop_ms >= drain_ms + 10000, f"TimeoutStopSec={stop} vs drain_timeout_ms={drain_ms}"


def test_socket_settings():
    s = unit_settings((ROOT / "systemd" / "tablelockd.socket").read_text())
    assert s[("Socket", "ListenStream")] == ["/run/tablelockd/tablelockd.sock"]
    assert s[("Socket", "SocketMode")] == ["0660"]
    assert s[("Socket", "SocketUser")] == ["tablelockd"]
    assert s[("Socket", "SocketGroup")] == ["tablelockd"]
    assert s[("Socket", "Service")] == ["tablelockd.service"]
    # The service must not delete the directory the socket lives in when it
    # stops, or socket activation loses its path.
    service = unit_settings((ROOT / "systemd" / "tablelockd.service").read_text())
    assert service[("Service", "RuntimeDirectoryPreserve")] == ["yes"]


def test_service_exposure(tmp_path):
    """`systemd-analyze security` keeps the service's exposure low."""
    need("systemd-analyze")
    service = substituted_units(tmp_path)[0]
    r = run(["systemd-analyze", "security", "--offline=true", "--no-pager", service])
    if "--offline" in r.stdout and r.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline")
    m = re.search(r"Overall exposure level for tablelockd\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout
    print(f"systemd-analyze security: exposure {m.group(1)}")
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_sysusers_creates_user_and_group(tmp_path):
    need("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    r = run(["systemd-sysusers", f"--root={tmp_path}", str(ROOT / "systemd" / "tablelockd.sysusers")])
    assert r.returncode == 0, r.stdout
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    group = (tmp_path / "etc" / "group").read_text().splitlines()
    user = [line.split(":") for line in passwd if line.startswith("tablelockd:")]
    grp = [line.split(":") for line in group if line.startswith("tablelockd:")]
    assert len(user) == 1 and len(grp) == 1, (passwd, group)
    assert user[0][3] == grp[0][2], "the user's primary group is tablelockd"
    assert user[0][6].endswith("nologin")


# ------------------------------------------------------------------ man pages


@pytest.mark.parametrize("page", sorted(MAN_PAGES))
def test_man_page_lint(page):
    """mandoc -T lint finds nothing, except cross-references to pages that
    are not installed here (mandoc looks only in /usr/share/man, so the
    three pages' references to each other resolve once installed)."""
    need("mandoc")
    r = run(["mandoc", "-T", "lint", f"man/{page}"])
    ours = {f"{name} {section}" for name, section in MAN_PAGES.values()}
    problems = []
    for line in r.stdout.splitlines():
        if not line.startswith(f"mandoc: man/{page}:"):
            continue  # "outdated mandoc.db lacks …" notes about the system
        m = re.search(r"STYLE: referenced manual not found: Xr (\S+) (\S+)", line)
        if m and (
            f"{m.group(1)} {m.group(2)}" in ours
            or not list(Path("/usr/share/man").glob(f"man{m.group(2)}/{m.group(1)}.{m.group(2)}*"))
        ):
            continue
        problems.append(line)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", sorted(MAN_PAGES))
def test_man_page_groff(page):
    need("groff")
    r = subprocess.run(
        ["groff", "-ww", "-mandoc", "-Tutf8", f"man/{page}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_conf_man_page_matches_key_table():
    """tablelockd.conf(5) lists every key of conf/conf.c, with its default and
    whether it reloads, and nothing else; each key is also described."""
    keys = conf_keys()
    rows = man_key_table()
    missing = sorted(set(keys) - set(rows))
    extra = sorted(set(rows) - set(keys))
    assert not missing, f"keys missing from tablelockd.conf(5)'s KEYS table: {missing}"
    assert not extra, f"tablelockd.conf(5) lists keys conf.c does not have: {extra}"
    text = (ROOT / "man" / "tablelockd.conf.5").read_text()
    wrong = []
    for (section, name), (default, reloadable) in sorted(keys.items()):
        heading = f".Ss The [{section}] section"
        assert heading in text, f"no subsection {heading!r}"
        body = text[text.index(heading) :]
        body = body[: body.index("\n.Ss ")] if "\n.Ss " in body else body
        m = re.search(rf"^\.It Cm {name}\b.*?(?=^\.It Cm |^\.El)", body, re.M | re.S)
        assert m, f"[{section}] {name} is not described under {heading!r}"
        want = (default if default is not None else "unset", "yes" if reloadable else "no")
        got = rows[(section, name)]
        # A default too long for the table is written in full in the text.
        if got[0] == "see below" and default is not None and default in m.group(0):
            got = (default, got[1])
        if got != want:
            wrong.append(f"[{section}] {name}: man page says {got}, conf.c says {want}")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------ make install


def make_install(destdir, *settings, target="install"):
    """`make install DESTDIR=… …` without rebuilding anything: the built
    daemon and client are taken as they are (-o), so that this test never
    replaces what the rest of the suite runs, e.g. the sanitizer builds of
    `make test-asan`."""
    need("make")
    args = ["make", "--no-print-directory"]
    if "mk/install.mk" not in (ROOT / "Makefile").read_text():
        args += ["-f", "Makefile", "-f", "mk/install.mk"]
    daemon = daemon_path()
    args += ["-o", str(daemon), f"DAEMON={daemon}"]
    for built in ("client/tablelock", "client/libtablelock.a", "client/libtablelock.so"):
        if (ROOT / built).exists():
            args += ["-o", built]
    r = run(args + [target, f"DESTDIR={destdir}", *settings])
    assert r.returncode == 0, r.stdout
    return r.stdout


def test_make_install_layout_prefix_usr(tmp_path):
    dest = tmp_path / "dest"
    make_install(dest, "PREFIX=/usr")

    def mode(rel):
        return (dest / rel).stat().st_mode & 0o777

    expect = {
        "usr/sbin/tablelockd": 0o755,
        "etc/tablelockd/tablelockd.conf": 0o644,
        "lib/systemd/system/tablelockd.service": 0o644,
        "lib/systemd/system/tablelockd.socket": 0o644,
        "usr/lib/sysusers.d/tablelockd.conf": 0o644,
        "usr/share/man/man1/tablelock.1": 0o644,
        "usr/share/man/man5/tablelockd.conf.5": 0o644,
        "usr/share/man/man8/tablelockd.8": 0o644,
        "usr/share/tablelockd/prometheus/tablelockd.rules.yml": 0o644,
    }
    if (ROOT / "client" / "client.mk").exists():
        expect.update(
            {
                "usr/bin/tablelock": 0o755,
                "usr/include/tablelock.h": 0o644,
                "usr/lib/pkgconfig/tablelock.pc": 0o644,
                "usr/lib/libtablelock.a": 0o644,
            }
        )
    for rel, want in expect.items():
        assert (dest / rel).is_file(), f"{rel} not installed"
        assert mode(rel) == want, f"{rel}: mode {mode(rel):o}, want {want:o}"
    if (ROOT / "client" / "client.mk").exists():
        assert list((dest / "usr/lib").glob("libtablelock.so*")), "no shared library"
        assert "prefix=/usr" in (dest / "usr/lib/pkgconfig/tablelock.pc").read_text()

    assert (dest / "usr/sbin/tablelockd").read_bytes() == daemon_path().read_bytes()
    service = unit_settings((dest / "lib/systemd/system/tablelockd.service").read_text())
    assert service[("Service", "ExecStart")] == [
        "/usr/sbin/tablelockd -c /etc/tablelockd/tablelockd.conf"
    ]
    assert (dest / "etc/tablelockd/tablelockd.conf").read_text() == (
        ROOT / "conf/tablelockd.conf"
    ).read_text()
    # Nothing lands outside DESTDIR's usr, etc and lib.
    assert sorted(p.name for p in dest.iterdir()) == ["etc", "lib", "usr"]

    # The installed unit verifies against the installed man pages.
    if shutil.which("systemd-analyze") and shutil.which("man"):
        units = tmp_path / "units"
        units.mkdir()
        for unit in UNITS:
            text = (dest / "lib/systemd/system" / unit).read_text()
            (units / unit).write_text(
                text.replace("ExecStart=/usr/sbin/tablelockd", f"ExecStart={daemon_path()}")
            )
        r = run(
            ["systemd-analyze", "verify", *(str(units / u) for u in UNITS)],
            env=dict(os.environ, MANPATH=f"{dest / 'usr/share/man'}:/usr/share/man"),
        )
        assert r.returncode == 0 and r.stdout.strip() == "", r.stdout

    # A second install keeps the operator's config; uninstall leaves it too.
    conf = dest / "etc/tablelockd/tablelockd.conf"
    conf.write_text("[daemon]\nlisten = unix:/run/tablelockd/tablelockd.sock\n")
    out = make_install(dest, "PREFIX=/usr")
    assert "kept" in out and conf.read_text().startswith("[daemon]\nlisten")
    make_install(dest, "PREFIX=/usr", target="uninstall")
    assert conf.is_file()
    assert not (dest / "usr/sbin/tablelockd").exists()
    assert not (dest / "lib/systemd/system/tablelockd.service").exists()
    assert not (dest / "usr/share/man/man8/tablelockd.8").exists()
    assert not (dest / "usr/share/tablelockd").exists()


def test_make_install_layout_default_prefix(tmp_path):
    """PREFIX defaults to /usr/local: config in /usr/local/etc, units where
    systemd reads local units, ExecStart pointing at both."""
    dest = tmp_path / "dest"
    make_install(dest)
    for rel in (
        "usr/local/sbin/tablelockd",
        "usr/local/etc/tablelockd/tablelockd.conf",
        "usr/local/lib/systemd/system/tablelockd.service",
        "usr/local/lib/systemd/system/tablelockd.socket",
        "usr/local/lib/sysusers.d/tablelockd.conf",
        "usr/local/share/man/man8/tablelockd.8",
    ):
        assert (dest / rel).is_file(), f"{rel} not installed"
    service = unit_settings((dest / "usr/local/lib/systemd/system/tablelockd.service").read_text())
    assert service[("Service", "ExecStart")] == [
        "/usr/local/sbin/tablelockd -c /usr/local/etc/tablelockd/tablelockd.conf"
    ]
    assert sorted(p.name for p in dest.iterdir()) == ["usr"]
