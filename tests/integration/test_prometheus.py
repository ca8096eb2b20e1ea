"""The shipped alert rules (prometheus/tablelockd.rules.yml) against a real
Prometheus (Debian's) scraping the real daemon: every series the rules
name exists under that name, every rule evaluates without error on real
data, and the rules see a real daemon's trouble (a full pool, a lost lease,
MySQL unreachable, the daemon stopped). Also the two gauges added for them,
read straight from /metrics.

The rules' logic, threshold by threshold, is unit-tested by promtool
(prometheus/tablelockd.rules.test.yml, run by tests/run.sh).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import (REPO, _die_with_parent, _short_tempdir, acquire, named_client, ok,
                      on_unused_ports, query, scaled, send_acquire, status, wait_for, wait_state)
from test_ops import Scrape, with_metrics

RULES = os.path.join(REPO, "prometheus", "tablelockd.rules.yml")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "tablelockd"  # the job name the daemon-down rule expects


# ---------------------------------------------------------------- the rules file


def rules_in(path):
    """[(kind, name, expr)] of a Prometheus rules file, kind "record" or
    "alert". Reads the file's own layout (a list item per rule, `expr:` on
    one line or as a `|` block) rather than needing a YAML library."""
    rules, current = [], None
    lines = open(path).read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*-\s+(record|alert):\s*(\S+)\s*$", line)
        if m:
            current = [m.group(1), m.group(2), None]
            rules.append(current)
        m = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if m:
            assert current is not None and current[2] is None, "expr outside a rule: line %d" % (i + 1)
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in ("|", ">", "|-", ">-"):
                block = []
                while i + 1 < len(lines) and (lines[i + 1].strip() == "" or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    block.append(lines[i].strip())
                value = "\n".join(block).strip()
            current[2] = value
        i += 1
    for kind, name, expr in rules:
        assert expr, "%s %s has no expr" % (kind, name)
    return [tuple(r) for r in rules]


# Keywords, and the aggregation operators (which may be followed by
# `by (...)` or `without (...)` rather than by their parenthesis).
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "offset", "bool", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev",
             "stdvar", "count", "count_values", "bottomk", "topk", "quantile"}


def series_names(expr):
    """The metric names a PromQL expression selects: every identifier that
    is not a function, a keyword, a label name, a duration or a string."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"#[^\n]*", "", s)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        word, rest = m.group(), s[m.end():].lstrip()
        if word.lower() in _KEYWORDS or rest.startswith("("):
            continue
        names.add(word)
    return names


def test_series_names_reads_promql():
    """The extractor the next tests rely on: what it must find and skip."""
    assert series_names('up{job="tablelockd"} == 0 or absent(up{job="tablelockd"})') == {"up"}
    assert series_names("histogram_quantile(0.99, rate(a_bucket[1d])) >= 0") == {"a_bucket"}
    assert series_names("sum without (mode) (a_waiting) > 100") == {"a_waiting"}
    assert series_names("rate(c[10m]) > 3 * (avg_over_time(rate(c[10m])[1d:10m] offset 10m) or "
                        "rate(c[10m]) * 0)") == {"c"}
    assert series_names("x > on (job, instance) group_left clamp_min(10 * rec:p99_1d, 60)") == \
        {"x", "rec:p99_1d"}
    assert series_names('increase(e_total{outcome="lost"}[10m]) > 0') == {"e_total"}


def test_the_rules_file_names_the_series_it_uses():
    rules = rules_in(RULES)
    assert [r[1] for r in rules if r[0] == "alert"] == [
        "TablelockdDown", "TablelockdMySQLUnavailable", "TablelockdPoolExhausted",
        "TablelockdWaiterQueueDeep", "TablelockdLeaseHeldTooLong", "TablelockdLockTimeoutsRising",
        "TablelockdLeaseLost"]
    for kind, name, expr in rules:
        assert series_names(expr), "%s %s: no series found in %r" % (kind, name, expr)


# ---------------------------------------------------------------- a real Prometheus


class Prometheus:
    """Debian's Prometheus on 127.0.0.1, in a temp dir with its own config
    and storage: scrapes the given metrics ports as job tablelockd every
    second and evaluates the project's rules every second."""

    def __init__(self, metrics_ports):
        self.dir = _short_tempdir("tl-prom-")
        self.targets = ["127.0.0.1:%d" % p for p in metrics_ports]
        self.conf = os.path.join(self.dir, "prometheus.yml")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        with open(self.conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: %s\n    static_configs:\n"
                    "      - targets: [%s]\n"
                    % (json.dumps(RULES), JOB, ", ".join(json.dumps(t) for t in self.targets)))
        self.proc = None
        self.port = None

    def start(self, port):
        assert os.access(PROMETHEUS, os.X_OK), \
            "no prometheus binary at %s (Debian package prometheus)" % PROMETHEUS
        self.port = port
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.conf,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + scaled(30)
        while True:
            if self.proc.poll() is not None:
                log = self.log_text()
                self.proc = None
                # on_unused_ports tries another port on "Address already in use".
                taken = " (Address already in use)" if "address already in use" in log.lower() else ""
                raise AssertionError("prometheus exited during startup%s:\n%s" % (taken, log[-3000:]))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("prometheus not ready within %.0fs:\n%s"
                                     % (scaled(30), self.log_text()[-3000:]))
            time.sleep(0.1)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def api(self, path, **params):
        """The "data" of GET /api/v1/<path>?params (a list value repeats the key)."""
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=scaled(5)) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        """{instance: value} of an instant query (float values)."""
        data = self.api("query", query=expr)
        return {s["metric"].get("instance"): float(s["value"][1]) for s in data["result"]}

    def alerts(self, name, instance=None):
        """{state} of the active alerts called name (for that instance)."""
        return {a["state"] for a in self.api("alerts")["alerts"]
                if a["labels"]["alertname"] == name
                and (instance is None or a["labels"].get("instance") == instance)}

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus():
    """Factory: prometheus(metrics_port, ...) starts one on an unused port;
    each is stopped and its directory removed at teardown."""
    started = []

    def start(*metrics_ports):
        def on(port):
            p = Prometheus(metrics_ports)
            started.append(p)
            return p.start(port)
        return on_unused_ports(on)

    yield start
    for p in started:
        if p.proc is not None:
            print("---- prometheus log, last 3000 chars:\n" + p.log_text()[-3000:])
        p.stop()


def target(port):
    return "127.0.0.1:%d" % port


def wait_target_up(prom, port):
    def up():
        for t in prom.api("targets", state="active")["activeTargets"]:
            if t["labels"].get("instance") == target(port) and t["health"] == "up":
                return t
        return None
    t = wait_for(up, timeout=15, interval=0.2, what="target %s up" % target(port))
    assert t["labels"]["job"] == JOB and t["scrapeUrl"] == "http://%s/metrics" % target(port), t
    assert prom.query('up{job="%s", instance="%s"}' % (JOB, target(port))) == {target(port): 1.0}


def test_prometheus_scrapes_every_series_the_rules_use(daemon, tables, prometheus):
    d, port = with_metrics(daemon)
    prom = prometheus(port)
    wait_target_up(prom, port)

    # A few leases end, so that the hold histogram moves and the recording
    # rule (the day's p99 of hold times) has a value.
    with d.client() as c:
        for _ in range(3):
            ok(acquire(c, write=["t1"]))
            ok(query(c, "UPDATE t1 SET v = v + 1 WHERE id = 1"))
            ok(c.call({"op": "commit"}))

    rules = rules_in(RULES)
    recorded = {name for kind, name, _ in rules if kind == "record"}
    used = set().union(*(series_names(expr) for _, _, expr in rules))
    assert "up" in used and len(used - recorded) >= 8, used
    for name in sorted(used):
        # A recorded series is Prometheus's own, from the scraped ones.
        selector = '%s{job="%s", instance="%s"}' % (name, JOB, target(port))
        found = wait_for(lambda: prom.api("series", **{"match[]": selector}), timeout=15,
                         interval=0.2, what="series %s in Prometheus" % selector)
        assert all(s["__name__"] == name for s in found), found
    assert 0 < prom.query("tablelockd:lease_hold_seconds:p99_1d")[target(port)] <= 60

    # Every rule has been evaluated on this data, without an error (a
    # matching error, say, shows only on real series).
    def all_evaluated():
        groups = prom.api("rules")["groups"]
        got = [r for g in groups for r in g["rules"]]
        if len(got) != len(rules) or any(r["lastEvaluation"].startswith("0001-") for r in got):
            return None
        return got
    got = wait_for(all_evaluated, timeout=15, interval=0.2, what="every rule evaluated")
    assert [r["name"] for r in got] == [name for _, name, _ in rules]
    for r in got:
        assert r["health"] == "ok", r
    # A healthy daemon under no load: nothing pending or firing.
    assert prom.api("alerts")["alerts"] == []


def test_the_rules_see_a_real_daemons_trouble(daemon, tables, observer, prometheus):
    # One daemon with a single MySQL session; one that cannot reach MySQL.
    d, port = with_metrics(daemon, mysql={"pool_size": 1})
    down, down_port = with_metrics(daemon, mysql={"socket": "/nonexistent/tl-no-mysql.sock",
                                                  "connect_timeout_ms": 500})
    prom = prometheus(port, down_port)
    wait_target_up(prom, port)
    wait_target_up(prom, down_port)

    # MySQL unreachable: pending for its minute, on that daemon only.
    wait_for(lambda: prom.alerts("TablelockdMySQLUnavailable", target(down_port)) == {"pending"},
             timeout=15, interval=0.2, what="TablelockdMySQLUnavailable pending")
    assert prom.alerts("TablelockdMySQLUnavailable", target(port)) == set()
    assert prom.query("tablelockd_mysql_up") == {target(port): 1.0, target(down_port): 0.0}

    with named_client(d, "holder") as holder, named_client(d, "waiter") as waiter:
        # The holder has the only session; the waiter's acquire, on another
        # table, waits for a session: the pool is exhausted.
        lease = ok(acquire(holder, write=["t1"]))["lease"]
        send_acquire(waiter, write=["t2"], wait_ms=30000)
        wait_state(d, "waiter", "waiting")
        wait_for(lambda: prom.alerts("TablelockdPoolExhausted", target(port)) == {"pending"},
                 timeout=15, interval=0.2, what="TablelockdPoolExhausted pending")
        assert prom.query("tablelockd_pool_waiters")[target(port)] == 1
        assert prom.alerts("TablelockdLeaseLost") == set()

        # MySQL kills the holder's session: the lease is lost, which fires
        # at once; the waiter gets the session back.
        thread = [e for e in status(d)["leases"] if e["lease"] == lease][0]["mysql_thread"]
        assert thread > 0
        observer.execute("KILL CONNECTION %d" % thread)
        wait_for(lambda: prom.alerts("TablelockdLeaseLost", target(port)) == {"firing"},
                 timeout=15, interval=0.2, what="TablelockdLeaseLost firing")
        ok(waiter.recv_response(timeout=10))
        ok(waiter.call({"op": "rollback"}))
        # (TablelockdPoolExhausted stays pending for the minute it looks back.)
        wait_for(lambda: prom.query("tablelockd_pool_waiters")[target(port)] == 0,
                 timeout=15, interval=0.2, what="no acquire waiting for a session")

    # The daemon stops: its target is down.
    assert prom.alerts("TablelockdDown") == set()
    assert d.stop() == 0
    wait_for(lambda: prom.alerts("TablelockdDown", target(port)) == {"pending"},
             timeout=15, interval=0.2, what="TablelockdDown pending")
    assert prom.alerts("TablelockdDown", target(down_port)) == set()


# ---------------------------------------------------------------- the gauges the rules need


def test_pool_waiters_counts_only_acquires_waiting_for_a_session(daemon, tables):
    d, port = with_metrics(daemon, mysql={"pool_size": 1})
    wait_for(lambda: Scrape(port)("tablelockd_pool_sessions", state="idle") == 1, timeout=5,
             what="the pool's session idle")
    m = Scrape(port)
    assert m.types["tablelockd_pool_waiters"] == "gauge"
    assert m.types["tablelockd_mysql_up"] == "gauge"
    assert m("tablelockd_pool_waiters") == 0 and m("tablelockd_mysql_up") == 1

    with named_client(d, "holder") as holder, named_client(d, "same") as same, \
            named_client(d, "other") as other:
        ok(acquire(holder, write=["t1"]))
        # Behind the holder on the same table: waits in the daemon's queue,
        # not for a session.
        send_acquire(same, write=["t1"], wait_ms=30000)
        wait_state(d, "same", "waiting")
        m = Scrape(port)
        assert m("tablelockd_leases_waiting", mode="write") == 1
        assert m("tablelockd_pool_waiters") == 0
        # Another table: the daemon's queue lets it through, but the only
        # session is lent.
        send_acquire(other, write=["t2"], wait_ms=30000)
        wait_state(d, "other", "waiting")
        wait_for(lambda: Scrape(port)("tablelockd_pool_waiters") == 1, timeout=3,
                 what="one acquire waiting for a session")
        assert Scrape(port)("tablelockd_leases_waiting", mode="write") == 2
        # The session goes to the first in the pool's queue (other); same,
        # let through by the daemon's queue now, waits for it in turn.
        ok(holder.call({"op": "commit"}))
        ok(other.recv_response(timeout=5))
        wait_for(lambda: Scrape(port)("tablelockd_pool_waiters") == 1, timeout=3,
                 what="same waiting for the session")
        ok(other.call({"op": "commit"}))
        ok(same.recv_response(timeout=5))
        wait_for(lambda: Scrape(port)("tablelockd_pool_waiters") == 0, timeout=3,
                 what="nobody waiting for a session")
        ok(same.call({"op": "rollback"}))
    assert Scrape(port)("tablelockd_mysql_up") == 1


def test_mysql_up_is_0_while_mysql_is_unreachable(daemon):
    d, port = with_metrics(daemon, mysql={"socket": "/nonexistent/tl-no-mysql.sock",
                                          "connect_timeout_ms": 500})
    wait_for(lambda: Scrape(port)("tablelockd_mysql_up") == 0, timeout=5, what="mysql_up 0")
    m = Scrape(port)
    assert m("tablelockd_pool_waiters") == 0
    assert m("tablelockd_pool_sessions", state="idle") == 0
