"""Turns bench/results/raw.jsonl (one line per benchmark run) into the report.

Writes, into the results directory: one JSON file per scenario (its runs and
the medians over repetitions), summary.json (every target with its measured
ratio), summary.md, and the data files that plot.gp draws.

Usage: python3 bench/report.py RESULTS_DIR
Standard library only: it runs wherever the test suite's python3 runs.
"""

import json
import os
import statistics
import sys

MODE_LABELS = {
    "direct": "direct (warm connection, 4 round trips)",
    "floor": "direct multi-statement (1 round trip): the floor",
    "connect": "connect per cycle",
    "daemon": "tablelockd acquire/query/commit, one at a time",
    "pipelined": "tablelockd acquire+query+commit in one write()",
    "transact": "tablelockd transact",
    "direct-rdw": "read-decide-write, direct (LOCK, SELECT, UPDATE, UNLOCK)",
    "daemon-rdw": "read-decide-write, tablelockd (acquire+SELECT, commit+UPDATE)",
}
MODE_ORDER = ["direct", "floor", "connect", "daemon", "pipelined", "transact", "direct-rdw",
              "daemon-rdw"]
PLOT_LABELS = {"direct": "direct", "floor": "floor", "connect": "connect",
               "daemon": "one at a time", "pipelined": "pipelined", "transact": "transact",
               "direct-rdw": "rdw direct", "daemon-rdw": "rdw daemon"}
PLACEMENT_NOTE = {
    "spread": "scheduler's choice (unpinned)",
    "one-cpu": "every process pinned to CPU 0",
}


def load_runs(path):
    runs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                runs.append(json.loads(line))
            except ValueError:
                runs.append({"scenario": "?", "status": "failed",
                             "first_error": "unparsable result on line %d" % n})
    return runs


def load_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    meta[key] = value
    return meta


def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def group(runs, scenario, **match):
    """The successful runs of scenario whose fields equal match."""
    return [r for r in runs if r.get("scenario") == scenario and r.get("status") == "ok"
            and all(r.get(k) == v for k, v in match.items())]


def medians(rows):
    """Median over repetitions of every numeric field."""
    keys = sorted({k for r in rows for k, v in r.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "rep"})
    out = {k: median([r.get(k) for r in rows]) for k in keys}
    out["repetitions"] = len(rows)
    return out


def fmt(value, digits=0, unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, float) and digits == 0 and abs(value) < 10:
        digits = 2
    return ("{:,.%df}" % digits).format(value) + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cpu(m):
    """CPU time per cycle of the load generator, the daemon and mariadbd."""
    return " / ".join(fmt(m.get("cpu_%s_us_per_cycle" % who), 1)
                      for who in ("client", "daemon", "mysqld"))


class Targets:
    """Every target (issue 10 for scenarios 1-3, issue 7 for the others):
    what was measured, its ratio, met or missed."""

    def __init__(self):
        self.rows = []

    def add(self, scenario, target, measured, value, limit, higher_is_better, note="",
            issue="7"):
        if value is None:
            verdict = "not measured"
        elif higher_is_better:
            verdict = "met" if value >= limit else "missed"
        else:
            verdict = "met" if value <= limit else "missed"
        self.rows.append({"scenario": scenario, "target": target, "measured": measured,
                          "value": value, "limit": limit, "verdict": verdict, "note": note,
                          "issue": issue})


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS_DIR")
    out = sys.argv[1]
    runs = load_runs(os.path.join(out, "raw.jsonl"))
    meta = load_meta(os.path.join(out, "meta.txt"))
    targets = Targets()
    md = []
    files = {}

    def runs_of(scenario):
        return [r for r in runs if r.get("scenario") == scenario]

    # ------------------------------------------------------------ scenario 1
    s1 = {}
    s1_rows = []
    s1_unsupported = {}
    placements = [p for p in ("spread", "one-cpu") if group(runs, "s1-latency", placement=p)]
    for placement in placements:
        for mode in MODE_ORDER:
            rows = group(runs, "s1-latency", placement=placement, mode=mode)
            if rows:
                s1[(placement, mode)] = medians(rows)
                s1_rows.append(dict(placement=placement, mode=mode, **s1[(placement, mode)]))
            refused = [r for r in runs_of("s1-latency") if r.get("placement") == placement
                       and r.get("mode") == mode and r.get("status") == "unsupported"]
            if refused and not rows:
                s1_unsupported[(placement, mode)] = refused[0].get("first_error", "")
    files["s1-latency.json"] = {"runs": runs_of("s1-latency"), "medians": s1_rows}
    md.append("## Scenario 1: one client, one table, cycles back to back\n")
    md.append("Latency of one cycle (lock t1 WRITE, `UPDATE t1 SET v=v+1 WHERE id=1`, commit, "
              "unlock), from the client's first write to its last answer. Every ratio divides "
              "by `direct` of the same run and placement. Medians over %s interleaved "
              "repetitions unpinned, %s on one CPU.\n" % (
                  meta.get("reps_s1", "?"), meta.get("reps_s1_pinned", "?")))
    md.append("| placement | mode | p50 µs | p99 µs | cycles/s | p50 vs direct "
              "| CPU µs per cycle: client / daemon / mariadbd |")
    md.append("|---|---|---:|---:|---:|---:|---:|")
    for placement in placements:
        base = s1.get((placement, "direct"), {}).get("p50_us")
        for mode in MODE_ORDER:
            m = s1.get((placement, mode))
            if m is None:
                if (placement, mode) in s1_unsupported:
                    md.append("| %s | %s | unsupported | | | | |" % (placement, MODE_LABELS[mode]))
                continue
            md.append("| %s | %s | %s | %s | %s | %s× | %s |" % (
                placement, MODE_LABELS[mode], fmt(m.get("p50_us"), 1), fmt(m.get("p99_us"), 1),
                fmt(m.get("throughput")), fmt(ratio(m.get("p50_us"), base), 2), cpu(m)))
    md.append("")
    for placement in placements:
        base = s1.get((placement, "direct"), {}).get("p50_us")
        for mode, what, limit in (
                ("transact", "1 client p50, `transact`", 0.50),
                ("daemon", "1 client p50, acquire/UPDATE/commit one at a time", 1.25),
                ("pipelined", "1 client p50, the three requests in one write()", 0.90)):
            v = s1.get((placement, mode), {}).get("p50_us")
            targets.add("1", "%s ≤ %.2f× direct (%s)" % (what, limit, placement),
                        "%s µs vs %s µs" % (fmt(v, 1), fmt(base, 1)), ratio(v, base), limit,
                        False, issue="10")

    # The floor and read-decide-write: figures without a target.
    md.append("### The floor and read, decide, write\n")
    for placement in placements:
        base = s1.get((placement, "direct"), {}).get("p50_us")
        floor = s1.get((placement, "floor"), {}).get("p50_us")
        md.append("- **Floor** (%s): a direct client sending `LOCK TABLES t1 WRITE;UPDATE "
                  "…;UNLOCK TABLES` as one multi-statement round trip "
                  "(CLIENT_MULTI_STATEMENTS; UNLOCK TABLES commits): p50 %s µs, %s× the "
                  "4-round-trip direct cycle." % (placement, fmt(floor, 1),
                                                  fmt(ratio(floor, base), 2)))
        drdw = s1.get((placement, "direct-rdw"), {}).get("p50_us")
        rdw = s1.get((placement, "daemon-rdw"), {}).get("p50_us")
        if rdw is not None:
            rdw_text = "p50 %s µs: %s× direct read-decide-write, %s× the plain direct cycle" % (
                fmt(rdw, 1), fmt(ratio(rdw, drdw), 2), fmt(ratio(rdw, base), 2))
        elif (placement, "daemon-rdw") in s1_unsupported:
            rdw_text = "**unsupported** by this daemon (%s)" % s1_unsupported[
                (placement, "daemon-rdw")][:160]
        else:
            rdw_text = "not measured"
        md.append("- **Read, decide, write** (%s): direct `LOCK TABLES`, `SELECT v`, `UPDATE "
                  "… SET v=<v+1>`, `UNLOCK TABLES` (4 round trips) p50 %s µs; through the "
                  "daemon in 2 round trips (`acquire` with `statements:[SELECT]` answering "
                  "`results`, then `commit` with `statements:[UPDATE]`): %s." % (
                      placement, fmt(drdw, 1), rdw_text))
    md.append("")
    with open(os.path.join(out, "s1-latency.dat"), "w") as f:
        f.write("# mode p50_spread p99_spread p50_onecpu p99_onecpu\n")
        for mode in MODE_ORDER:
            a = s1.get(("spread", mode), {})
            b = s1.get(("one-cpu", mode), {})
            f.write('"%s" %s %s %s %s\n' % (PLOT_LABELS[mode],
                                             a.get("p50_us", 0) or 0, a.get("p99_us", 0) or 0,
                                             b.get("p50_us", 0) or 0, b.get("p99_us", 0) or 0))

    # Session resets per lease, from the daemon's /metrics around the plain
    # (one request at a time) cycle runs.
    plain = group(runs, "s1-latency", mode="daemon")
    resets = median([r.get("resets_per_1000_leases") for r in plain])
    leases = sum(r.get("metrics_leases_ended") or 0 for r in plain)
    reset_count = [r.get("metrics_session_resets") for r in plain]
    md.append("### Session resets\n")
    if resets is not None:
        md.append("`tablelockd_session_resets_total` per 1,000 `tablelockd_leases_ended_total`, "
                  "over the scenario 1 one-at-a-time runs: **%s** (%s leases, %s resets).\n" % (
                      fmt(resets, 1), fmt(leases),
                      fmt(sum(x for x in reset_count if isinstance(x, (int, float))))))
    else:
        md.append("Resets per 1,000 leases: **n/a**: the daemon's /metrics has no "
                  "`tablelockd_session_resets_total` (leases ended over the scenario 1 "
                  "one-at-a-time runs: %s).\n" % (fmt(leases) if plain else "n/a"))

    # ------------------------------------------------- syscalls per cycle
    sc_runs = runs_of("s8-syscalls")
    files["s8-syscalls.json"] = {"runs": sc_runs}
    md.append("## Daemon syscalls and wake-ups per cycle (1 client)\n")
    md.append("Exactly %s cycles per mode with `strace -c -f -p <daemon pid>` attached "
              "(%s); counts divided by the cycles. Wake-ups are `epoll_wait` returns. strace "
              "slows every syscall: no time from these runs is used anywhere. The counts "
              "depend on timing: a daemon that finds MySQL's answer already there skips a "
              "read that would fail and a sleep, and strace's slowdown makes that more "
              "likely; on one CPU mariadbd often preempts the daemon and answers before the "
              "daemon reads. So they are taken in both placements (`one-cpu`: daemon, "
              "mariadbd, client and strace on CPU 0): compare a before and an after in the "
              "same placement. The last column is counted without strace, in scenario 1's "
              "timed runs (same placement, median): the daemon's voluntary context switches "
              "per cycle (/proc/PID/task/*/status), how often it slept and was woken.\n" % (
                  meta.get("syscall_cycles", "?"), meta.get("strace_version", "strace")))
    md.append("| placement | mode | syscalls per cycle | wake-ups per cycle "
              "| by syscall, per cycle | sleeps per cycle, no strace |")
    md.append("|---|---|---:|---:|---|---:|")
    for r in sc_runs:
        mode = r.get("mode", "?")
        placement = r.get("placement", "spread")
        sleeps = fmt(s1.get((placement, mode), {}).get("daemon_sleeps_per_cycle"), 2)
        if r.get("status") != "ok":
            md.append("| %s | %s | %s | | %s | %s |" % (
                placement, MODE_LABELS.get(mode, mode), r.get("status"),
                r.get("first_error", "")[:120], sleeps))
            continue
        by = r.get("syscalls_by_name_per_cycle", {})
        md.append("| %s | %s | %s | %s | %s | %s |" % (
            placement, MODE_LABELS.get(mode, mode), fmt(r.get("syscalls_per_cycle"), 1),
            fmt(r.get("wakeups_per_cycle"), 2),
            ", ".join("%s %s" % (k, fmt(v, 2)) for k, v in list(by.items())[:8]), sleeps))
    md.append("")

    # ------------------------------------------------------- scenarios 2, 3
    s23 = {}
    for scenario, title, number in (
            ("s2-throughput", "Scenario 2: 16 clients on 16 tables", "2"),
            ("s3-contention", "Scenario 3: 64 clients on one table (full contention)", "3")):
        rows_out = []
        for mode in MODE_ORDER:
            rows = group(runs, scenario, mode=mode)
            if rows:
                s23[(scenario, mode)] = medians(rows)
                rows_out.append(dict(mode=mode, **s23[(scenario, mode)]))
        files[scenario + ".json"] = {"runs": runs_of(scenario), "medians": rows_out}
        md.append("## %s\n" % title)
        md.append("Medians over %s interleaved repetitions. *wait* is the time to get the lock "
                  "(LOCK TABLES directly, `acquire` through the daemon); fairness is its "
                  "p99/p50. CPU per cycle is each process's utime+stime (/proc/PID/stat) over "
                  "the measured window ÷ cycles completed in it.\n" % meta.get("reps", "?"))
        md.append("| mode | cycles/s | vs direct | p50 µs | p99 µs | wait p50 µs | wait p99 µs "
                  "| wait p99/p50 | cycles per client min–max "
                  "| CPU µs per cycle: client / daemon / mariadbd |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = s23.get((scenario, "direct"), {}).get("throughput")
        for mode in MODE_ORDER:
            m = s23.get((scenario, mode))
            if m is None:
                continue
            md.append("| %s | %s | %s× | %s | %s | %s | %s | %s | %s–%s | %s |" % (
                MODE_LABELS[mode], fmt(m.get("throughput")), fmt(ratio(m.get("throughput"), base), 2),
                fmt(m.get("p50_us"), 1), fmt(m.get("p99_us"), 1), fmt(m.get("wait_p50_us"), 1),
                fmt(m.get("wait_p99_us"), 1), fmt(m.get("wait_fairness"), 2),
                fmt(m.get("client_cycles_min")), fmt(m.get("client_cycles_max")), cpu(m)))
        md.append("")
        limits = {"2": {"transact": 1.00, "daemon": 0.80},
                  "3": {"transact": 1.20, "daemon": 0.60}}[number]
        shape = {"2": "16 clients, 16 tables", "3": "64 clients, 1 table"}[number]
        for mode, what in (("transact", "`transact`"), ("daemon", "one request at a time")):
            thr = s23.get((scenario, mode), {}).get("throughput")
            targets.add(number, "%s, cycles/s, %s ≥ %.2f× direct" % (shape, what, limits[mode]),
                        "%s/s vs %s/s" % (fmt(thr), fmt(base)), ratio(thr, base),
                        limits[mode], True, issue="10")
    # CPU per cycle at 16 clients: the daemon's against mariadbd's direct
    # cost, and what the daemon's way of working costs mariadbd.
    mysqld_direct = s23.get(("s2-throughput", "direct"), {}).get("cpu_mysqld_us_per_cycle")
    for mode, what in (("daemon", "one request at a time"), ("transact", "`transact`")):
        m = s23.get(("s2-throughput", mode), {})
        d = m.get("cpu_daemon_us_per_cycle")
        targets.add("2", "daemon CPU per cycle at 16 clients, %s ≤ 0.50× mariadbd's per direct "
                    "cycle" % what, "%s µs vs %s µs" % (fmt(d, 1), fmt(mysqld_direct, 1)),
                    ratio(d, mysqld_direct), 0.50, False, issue="10")
    for mode, what in (("daemon", "one request at a time"), ("transact", "`transact`")):
        v = s23.get(("s2-throughput", mode), {}).get("cpu_mysqld_us_per_cycle")
        targets.add("2", "mariadbd CPU per cycle at 16 clients, %s ≤ 1.10× direct" % what,
                    "%s µs vs %s µs" % (fmt(v, 1), fmt(mysqld_direct, 1)),
                    ratio(v, mysqld_direct), 1.10, False, issue="10")
    with open(os.path.join(out, "s23-throughput.dat"), "w") as f:
        f.write("# mode s2_cycles_per_s s3_cycles_per_s\n")
        for mode in MODE_ORDER:
            if (("s2-throughput", mode) in s23) or (("s3-contention", mode) in s23):
                f.write('"%s" %s %s\n' % (
                    PLOT_LABELS[mode],
                    s23.get(("s2-throughput", mode), {}).get("throughput", 0) or 0,
                    s23.get(("s3-contention", mode), {}).get("throughput", 0) or 0))

    # ------------------------------------------------------------ scenario 4
    s4 = {}
    s4_rows = []
    for n in sorted({r.get("clients") for r in group(runs, "s4-connections", mode="daemon")}):
        s4[n] = medians(group(runs, "s4-connections", mode="daemon", clients=n))
        s4_rows.append(dict(mode="daemon", **s4[n]))
    direct4 = [r for r in runs_of("s4-connections") if r.get("mode") == "direct"]
    files["s4-connections.json"] = {"runs": runs_of("s4-connections"), "medians": s4_rows}
    md.append("## Scenario 4: many client connections, 4 of them taking leases\n")
    md.append("Each count on a freshly started daemon; memory is the daemon's VmRSS growth "
              "divided by the idle connections (each has sent one `ping`). Acquire latency "
              "is measured on the 4 active clients (acquire, UPDATE, commit on their own "
              "tables) while the others stay open.\n")
    md.append("| connections | daemon RSS before → idle KiB | bytes per idle connection "
              "| acquire p50 µs | acquire p99 µs | cycles/s |")
    md.append("|---:|---:|---:|---:|---:|---:|")
    for n, m in sorted(s4.items()):
        md.append("| %s | %s → %s | %s | %s | %s | %s |" % (
            fmt(n), fmt(m.get("daemon_rss_before_kib")), fmt(m.get("daemon_rss_idle_kib")),
            fmt(m.get("daemon_bytes_per_connection")), fmt(m.get("acquire_p50_us"), 1),
            fmt(m.get("acquire_p99_us"), 1), fmt(m.get("throughput"))))
    md.append("")
    for r in direct4:
        md.append("Direct clients, for comparison: asking MariaDB (max_connections=500 in this "
                  "sandbox, 151 by default) for %s connections opened %s before `%s`; each "
                  "cost mariadbd %s bytes of RSS.\n" % (
                      fmt(r.get("clients")), fmt(r.get("idle_connections")),
                      r.get("first_error", "no error"),
                      fmt(r.get("mysqld_bytes_per_connection"))))
    biggest = max(s4) if s4 else None
    smallest = min(s4) if s4 else None
    for n in sorted(s4):
        if n >= 1000:
            v = s4[n].get("daemon_bytes_per_connection")
            targets.add("4", "≤ 8 KiB daemon memory per idle connection (%s connections)" % fmt(n),
                        "%s bytes" % fmt(v), None if v is None else v / 8192.0, 1.0, False)
    if biggest is not None and smallest is not None and biggest != smallest:
        a = s4[biggest].get("acquire_p99_us")
        b = s4[smallest].get("acquire_p99_us")
        targets.add("4", "acquire p99 with %s connections ≤ 2× with %s" % (fmt(biggest), fmt(smallest)),
                    "%s µs vs %s µs" % (fmt(a, 1), fmt(b, 1)), ratio(a, b), 2.0, False)

    # ------------------------------------------------------------ scenario 5
    rows = group(runs, "s5-waiters", mode="daemon")
    files["s5-waiters.json"] = {"runs": runs_of("s5-waiters"),
                                "medians": [medians(rows)] if rows else []}
    md.append("## Scenario 5: queued waiters on one table, pool of 16 sessions\n")
    if rows:
        m = medians(rows)
        md.append("| waiters | enqueue s | daemon RSS before → queued KiB | bytes per waiter "
                  "(connection + queued acquire) | drain s | leases/s while draining "
                  "| grant to next grant p50 / p99 µs |")
        md.append("|---:|---:|---:|---:|---:|---:|---:|")
        md.append("| %s | %s | %s → %s | %s | %s | %s | %s / %s |\n" % (
            fmt(m.get("waiters")), fmt(m.get("enqueue_s"), 2), fmt(m.get("daemon_rss_before_kib")),
            fmt(m.get("daemon_rss_queued_kib")), fmt(m.get("daemon_bytes_per_waiter")),
            fmt(m.get("drain_s"), 2), fmt(m.get("throughput")), fmt(m.get("p50_us"), 1),
            fmt(m.get("p99_us"), 1)))
        md.append("The queue drains one lease at a time (every waiter wants t1 WRITE): each "
                  "waiter commits as soon as it holds. No target in issue 7; reported for "
                  "scale.\n")
    else:
        md.append("No successful run.\n")

    # ------------------------------------------------------------ scenario 6
    md.append("## Scenario 6: release latency\n")
    rel = {mode: medians(group(runs, "s6-release", mode=mode)) for mode in ("daemon", "direct")
           if group(runs, "s6-release", mode=mode)}
    exp = group(runs, "s6-expiry", mode="daemon")
    expm = medians(exp) if exp else None
    files["s6-release.json"] = {"runs": runs_of("s6-release") + runs_of("s6-expiry"),
                                "medians": [dict(mode=k, **v) for k, v in rel.items()] +
                                ([dict(mode="daemon", scenario="s6-expiry", **expm)] if expm else [])}
    md.append("Kill -9 of the process holding t1 WRITE while another client waits for it; time "
              "from `kill()` until the waiter holds the lock (daemon: `acquire` answered; "
              "direct: its blocked `LOCK TABLES` returns).\n")
    md.append("| mode | rounds | p50 µs | p99 µs | max µs |")
    md.append("|---|---:|---:|---:|---:|")
    for mode, m in rel.items():
        label = {"daemon": "tablelockd (acquire waiting in its queue)",
                 "direct": "direct (LOCK TABLES waiting in MariaDB)"}[mode]
        md.append("| %s | %s | %s | %s | %s |" % (label, fmt(m.get("cycles")),
                                                 fmt(m.get("p50_us"), 1), fmt(m.get("p99_us"), 1),
                                                 fmt(m.get("max_us"), 1)))
    md.append("")
    if expm:
        md.append("TTL expiry: `acquire` with `ttl_ms` 50, then the time until the "
                  "`lease_expired` event arrives, minus 50 ms. Measured from the acquire's "
                  "answer: p50 %s µs, p99 %s µs, max %s µs (from the acquire's sending, an "
                  "upper bound: p50 %s µs, p99 %s µs).\n" % (
                      fmt(expm.get("p50_us"), 1), fmt(expm.get("p99_us"), 1),
                      fmt(expm.get("max_us"), 1), fmt(expm.get("from_send_p50_us"), 1),
                      fmt(expm.get("from_send_p99_us"), 1)))
    d = rel.get("daemon", {}).get("p99_us")
    targets.add("6", "next waiter holds ≤ 5 ms (p99) after the holder's kill -9",
                "%s µs" % fmt(d, 1), None if d is None else d / 5000.0, 1.0, False)
    e = expm.get("p99_us") if expm else None
    targets.add("6", "expiry fires ≤ 10 ms late (p99)", "%s µs" % fmt(e, 1),
                None if e is None else e / 10000.0, 1.0, False)

    # ------------------------------------------------------------ scenario 7
    md.append("## Scenario 7: ping\n")
    md.append("| connections | in flight per connection | pings/s | p50 µs | p99 µs |")
    md.append("|---:|---:|---:|---:|---:|")
    s7_rows = []
    for clients, depth in sorted({(r.get("clients"), r.get("depth"))
                                  for r in group(runs, "s7-ping")}):
        m = medians(group(runs, "s7-ping", clients=clients, depth=depth))
        s7_rows.append(m)
        md.append("| %s | %s | %s | %s | %s |" % (fmt(clients), fmt(depth), fmt(m.get("throughput")),
                                                 fmt(m.get("p50_us"), 1), fmt(m.get("p99_us"), 1)))
        what = "%s connection%s, %s" % (clients, "" if clients == 1 else "s",
                                        "pipelined %s deep" % depth if depth > 1
                                        else "one request at a time")
        targets.add("7", "≥ 50,000 pings/s (%s)" % what, "%s/s" % fmt(m.get("throughput")),
                    None if m.get("throughput") is None else m["throughput"] / 50000.0, 1.0, True)
    md.append("")
    files["s7-ping.json"] = {"runs": runs_of("s7-ping"), "medians": s7_rows}

    # ------------------------------------------------------------ scenario 9
    md.append("## Scenario 9: Django, the copied snippet against tablelock.django\n")
    md.append("One block, `with acquire_table_lock(read=[Poll], write=[Choice]): "
              "Choice.objects.filter(id=1).update(votes=F(\"votes\") + 1)`, timed from entering "
              "it to leaving it, in one Django process (Django's MySQL backend, same MariaDB). "
              "`snippet`: the context manager projects copy, LOCK TABLES and UNLOCK TABLES on "
              "Django's own connection with autocommit on (3 round trips to MariaDB). "
              "`tablelock`: the same block with `from tablelock.django import "
              "acquire_table_lock` (acquire, the UPDATE, commit: 3 round trips to the daemon). "
              "`client-raw`, for reference: `tablelock.Client.lock()` with the UPDATE in raw SQL, "
              "no ORM.\n")
    md.append("| mode | cycles/s | p50 µs | p99 µs |")
    md.append("|---|---:|---:|---:|")
    s9 = {}
    for mode in ("snippet", "tablelock", "client-raw"):
        rows = group(runs, "s9-django", mode=mode)
        if rows:
            s9[mode] = medians(rows)
            md.append("| %s | %s | %s | %s |" % (mode, fmt(s9[mode].get("throughput")),
                                                fmt(s9[mode].get("p50_us"), 1),
                                                fmt(s9[mode].get("p99_us"), 1)))
    md.append("")
    files["s9-django.json"] = {"runs": runs_of("s9-django"),
                               "medians": [dict(mode=k, **v) for k, v in s9.items()]}

    # ------------------------------------------------------------ summary
    failed = [r for r in runs if r.get("status") not in ("ok", "unsupported")]
    unsupported = [r for r in runs if r.get("status") == "unsupported"]

    def target_table(rows):
        lines = ["| scenario | target | measured | ratio | verdict |", "|---|---|---|---:|---|"]
        for t in rows:
            lines.append("| %s | %s | %s | %s | **%s** |" % (
                t["scenario"], t["target"], t["measured"], fmt(t["value"], 2), t["verdict"]))
        return lines + [""]

    head = ["# tablelockd benchmark report\n",
            "Generated by `make bench` (bench/run.sh) on %s in %s s. Every scenario ran the "
            "daemon and its baselines in the same run, interleaved (the order of modes rotates "
            "with each repetition); figures are medians over the repetitions.\n" % (
                meta.get("started", "?"), meta.get("elapsed_s", "?")),
            "## Targets (issue 10)\n",
            "Each ratio is the daemon's figure ÷ the direct client's figure from the same run: "
            "one C client on a warm MariaDB connection sending LOCK TABLES, UPDATE, COMMIT, "
            "UNLOCK TABLES as 4 round trips. MariaDB runs with "
            "`innodb_flush_log_at_trx_commit=2` (benchmark only). CPU is utime+stime from "
            "/proc/PID/stat over the measured window ÷ cycles completed.\n"]
    head += target_table([t for t in targets.rows if t["issue"] == "10"])
    head.append("Also measured, without a target (details below):\n")
    for placement in placements:
        base = s1.get((placement, "direct"), {}).get("p50_us")
        floor = s1.get((placement, "floor"), {}).get("p50_us")
        rdw = s1.get((placement, "daemon-rdw"), {}).get("p50_us")
        drdw = s1.get((placement, "direct-rdw"), {}).get("p50_us")
        head.append("- %s: floor (one multi-statement round trip) p50 %s µs = %s× direct; "
                    "read-decide-write through the daemon %s" % (
                        placement, fmt(floor, 1), fmt(ratio(floor, base), 2),
                        "p50 %s µs = %s× direct read-decide-write (%s µs)" % (
                            fmt(rdw, 1), fmt(ratio(rdw, drdw), 2), fmt(drdw, 1))
                        if rdw is not None else "**unsupported** by this daemon"))
    for r in sc_runs:
        if r.get("status") == "ok":
            placement = r.get("placement", "spread")
            head.append("- daemon syscalls per cycle, %s, %s: %s, wake-ups (epoll_wait "
                        "returns) %s under strace; %s sleeps per cycle without strace" % (
                MODE_LABELS.get(r.get("mode"), r.get("mode")), placement,
                fmt(r.get("syscalls_per_cycle"), 1), fmt(r.get("wakeups_per_cycle"), 2),
                fmt(s1.get((placement, r.get("mode")), {}).get("daemon_sleeps_per_cycle"), 2)))
    if "snippet" in s9 or "tablelock" in s9:
        snip = s9.get("snippet", {}).get("p50_us")
        ours = s9.get("tablelock", {}).get("p50_us")
        head.append("- Django block (scenario 9): the copied snippet on Django's own connection "
                    "p50 %s µs; the same block with tablelock.django p50 %s µs (%s×)" % (
                        fmt(snip, 1), fmt(ours, 1), fmt(ratio(ours, snip), 2)))
    head.append("- session resets per 1,000 leases: %s\n" % (
        fmt(resets, 1) if resets is not None else "n/a (no tablelockd_session_resets_total)"))
    head += ["## Other targets (issue 7)\n",
             "Measured ÷ limit; scenario 4's latency row is p99 at the largest count ÷ p99 at "
             "the smallest.\n"]
    head += target_table([t for t in targets.rows if t["issue"] != "10"])
    if unsupported:
        head.append("**%d run(s) need a protocol feature this daemon lacks** (reported as "
                    "unsupported):\n" % len(unsupported))
        for r in unsupported:
            head.append("- %s %s %s rep %s: %s" % (r.get("scenario"), r.get("mode", ""),
                                                  r.get("placement", ""), r.get("rep", "?"),
                                                  r.get("first_error", "")[:200]))
        head.append("")
    if failed:
        head.append("**%d run(s) failed or were skipped** (not in the medians):\n" % len(failed))
        for r in failed:
            head.append("- %s %s rep %s: %s — %s" % (r.get("scenario"), r.get("mode", ""),
                                                   r.get("rep", "?"), r.get("status"),
                                                   r.get("first_error", "")))
        head.append("")
    env = ["## Environment\n",
           "- Machine: %s CPUs (%s), %s, kernel %s, virtualization %s/%s, cpuidle %s "
           "(guest_halt_poll_ns=%s)" % (
               meta.get("host_cpus", "?"), meta.get("host_cpu_model", "?"),
               meta.get("host_memory", "?"), meta.get("host_kernel", "?"),
               meta.get("host_hypervisor", "?"), meta.get("host_hypervisor_vendor", "?"), meta.get("host_cpuidle", "?"),
               meta.get("host_guest_halt_poll_ns", "?")),
           "- Other load on the machine: %s%% of all CPUs busy in the second before the run "
           "(top: %s), %s%% after it; load average %s before, %s after. Interleaving spreads "
           "such noise over every mode, but a busy machine makes all figures worse." % (
               meta.get("background_busy_before_pct", "?"), meta.get("top_processes_before", "?"),
               meta.get("background_busy_after_pct", "?"), meta.get("loadavg_before", "?"),
               meta.get("loadavg_after", "?")),
           "- MariaDB %s, started as `mariadbd %s`. `innodb_flush_log_at_trx_commit=2` is for "
           "benchmarks only. Every server variable: `mariadb-variables.txt`." % (
               meta.get("mariadb_version", "?"), meta.get("mariadbd_args", "?")),
           "- tablelockd: %s (%s, sha256 %s), config `daemon.conf` (pool_size 16)." % (
               meta.get("daemon_binary", "?"), meta.get("daemon_version", "?"),
               meta.get("daemon_sha256", "?")[:16]),
           "- Runs: %s s measured after %s s of warm-up; %s repetitions of scenario 1 "
           "(unpinned; %s on one CPU), %s of "
           "the others; %s rounds per repetition in scenario 6; open files limit %s." % (
               meta.get("duration_s", "?"), meta.get("warmup_s", "?"), meta.get("reps_s1", "?"),
               meta.get("reps_s1_pinned", "?"),
               meta.get("reps", "?"), meta.get("rounds", "?"), meta.get("nofile", "?")),
           "- Placement: `spread` = %s; `one-cpu` = %s (client, daemon and mariadbd share one "
           "CPU, so no wake-up crosses CPUs)." % (PLACEMENT_NOTE["spread"],
                                                  PLACEMENT_NOTE["one-cpu"]),
           "- Raw results: `raw.jsonl` (one line per run), one JSON file per scenario, "
           "`summary.json`; plot `latency-throughput.svg`.\n"]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(head + env + md))
    for name, obj in files.items():
        write_json(os.path.join(out, name), obj)
    write_json(os.path.join(out, "summary.json"), {"meta": meta, "targets": targets.rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
