"""What the daemon's log says, read as an operator reads it.

- An idle pool is kept, not lost: every session runs with MySQL's
  wait_timeout at max_ttl_ms + 10 s (a safety net for a hung daemon), and a
  session left idle that long used to be closed by MySQL and logged as a
  warning ("MySQL closed an idle session") that nothing had gone wrong to
  deserve, typically a while after a newcomer's first failed acquire.
- Counts read as English: "1 lease", "2 leases".
"""

import re
import signal
import time

from conftest import acquire, error_code, ok, scaled, wait_for


def log_lines(d, pattern):
    return [line for line in d.log_text().splitlines() if re.search(pattern, line)]


def test_idle_sessions_outlive_mysql_wait_timeout(daemon, tables, observer):
    # max_ttl_ms 1000: the sessions' wait_timeout is 1 + 10 = 11 s.
    d = daemon(mysql={"pool_size": 2}, leases={"max_ttl_ms": 1000, "default_ttl_ms": 1000})
    with d.client() as c:
        resp = acquire(c, write=["no_such_table"], ttl_ms=1000)
        assert error_code(resp) == "unknown_table", resp
    wait_for(lambda: len(observer.daemon_threads()) == 3, what="the pool and the control session")
    threads = sorted(r["ID"] for r in observer.daemon_threads())
    time.sleep(scaled(13))  # past the 11 s wait_timeout, with every session idle
    assert sorted(r["ID"] for r in observer.daemon_threads()) == threads, \
        "MySQL closed idle sessions: " + d.log_text()[-3000:]
    assert not log_lines(d, r" (warn|error) "), d.log_text()[-3000:]
    # And the sessions still serve leases.
    with d.client() as c:
        ok(acquire(c, write=["t1"], ttl_ms=1000))
        ok(c.call({"op": "commit"}))


def test_counts_read_as_english(daemon, tables):
    d = daemon(mysql={"pool_size": 1}, daemon={"drain_timeout_ms": 5000})
    assert log_lines(d, r"started \(pool of 1 session, "), d.log_text()
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        wait_for(lambda: log_lines(d, r"lease \d+: held by .* \(1 table, waited"), what="the grant's log line")
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: log_lines(d, r"SIGTERM: draining: 1 held lease may finish"),
                 what="the drain's log line")
        ok(c.call({"op": "commit"}))
    assert d.stop() == 0
    text = d.log_text()
    assert not re.search(r"\b1 (leases|sessions|tables|clients|sockets)\b", text), text
