"""Scenario 9 of `make bench`: a Django block, the copied snippet against tablelock.django.

The snippet Django projects copy runs LOCK TABLES on Django's own
connection (autocommit on), the ORM statement, then UNLOCK TABLES. The
same block with `from tablelock.django import acquire_table_lock` runs the
same ORM statement on a lease. Both run here back to back against the same
MariaDB and daemon, in the same Django process, the order rotating with
each repetition, with a third mode for reference: the same UPDATE through
tablelock.Client.lock() in raw SQL (what a Django user had to write before).

    with acquire_table_lock(read=[Poll], write=[Choice]):
        Choice.objects.filter(id=1).update(votes=F("votes") + 1)

Latency is one block, from entering it to leaving it (perf_counter), p50
and p99 by nearest rank over every cycle of the measured window. Each run
checks that the counter grew by exactly its cycles.

Usage: /usr/bin/python3 bench/django_cycles.py --mysql-socket PATH --daemon-socket PATH
           [--reps 3] [--duration 2] [--warmup 0.3]
Prints one JSON object per run on stdout (scenario "s9-django"), progress
on stderr. Needs Debian's python3-django and python3-mysqldb.
"""

import argparse
import contextlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "django_project"))

MODES = ("snippet", "tablelock", "client-raw")


def percentile(sorted_values, p):
    """Nearest rank, as bench/samples.c."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def setup(mysql_socket, daemon_socket):
    os.environ["TABLELOCK_TEST_MYSQL_SOCKET"] = mysql_socket
    os.environ["TABLELOCK_TEST_DAEMON_SOCKET"] = daemon_socket
    os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    import django
    django.setup()
    import datetime

    from django.db import connection
    from polls.models import Choice, Poll
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS polls_choice")
        cursor.execute("DROP TABLE IF EXISTS polls_poll")
    with connection.schema_editor() as editor:
        editor.create_model(Poll)
        editor.create_model(Choice)
    poll = Poll.objects.create(id=1, question="Bench?",
                               pub_date=datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc))
    Choice.objects.create(id=1, poll=poll, choice_text="Yes", votes=0)


@contextlib.contextmanager
def snippet_acquire_table_lock(read, write):
    """The context manager Django projects copy (written here from its
    description): LOCK TABLES on Django's own connection, UNLOCK TABLES
    on the way out, autocommit on throughout."""
    from django.db import connection
    cursor = connection.cursor()
    cursor.execute("LOCK TABLES %s READ, %s WRITE" % (
        ", ".join(m._meta.db_table for m in read), ", ".join(m._meta.db_table for m in write)))
    try:
        yield cursor
    finally:
        cursor.execute("UNLOCK TABLES")
        cursor.close()


def cycle_function(mode, client):
    from django.db.models import F
    from polls.models import Choice, Poll
    from tablelock.django import acquire_table_lock

    if mode == "snippet":
        def cycle():
            with snippet_acquire_table_lock(read=[Poll], write=[Choice]):
                Choice.objects.filter(id=1).update(votes=F("votes") + 1)
    elif mode == "tablelock":
        def cycle():
            with acquire_table_lock(read=[Poll], write=[Choice]):
                Choice.objects.filter(id=1).update(votes=F("votes") + 1)
    else:
        def cycle():
            with client.lock(read=[Poll], write=[Choice]) as lease:
                lease.query("UPDATE polls_choice SET votes = votes + 1 WHERE id = ?", [1])
    return cycle


def votes():
    from polls.models import Choice
    return Choice.objects.get(id=1).votes


def run(mode, rep, cycle, duration, warmup):
    deadline = time.monotonic() + warmup
    while time.monotonic() < deadline:
        cycle()
    before = votes()
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    end = start + int(duration * 1e9)
    try:
        while True:
            t0 = clock()
            cycle()
            t1 = clock()
            samples.append(t1 - t0)
            if t1 >= end:
                break
    except Exception as e:  # reported, not raised: the bench reports, never fails
        return {"scenario": "s9-django", "mode": mode, "rep": rep, "placement": "spread",
                "status": "failed", "first_error": "%s: %s" % (type(e).__name__, e)}
    elapsed = (clock() - start) / 1e9
    grown = votes() - before
    samples.sort()
    result = {"scenario": "s9-django", "mode": mode, "rep": rep, "placement": "spread",
              "clients": 1, "cycles": len(samples), "duration_s": round(elapsed, 3),
              "throughput": round(len(samples) / elapsed, 1),
              "p50_us": round(percentile(samples, 50) / 1000.0, 1),
              "p99_us": round(percentile(samples, 99) / 1000.0, 1), "status": "ok"}
    if grown != len(samples):
        result.update(status="failed", first_error="the counter grew by %d in %d cycles"
                      % (grown, len(samples)))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql-socket", required=True)
    parser.add_argument("--daemon-socket", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    args = parser.parse_args()
    try:
        setup(args.mysql_socket, args.daemon_socket)
    except Exception as e:
        print(json.dumps({"scenario": "s9-django", "status": "failed",
                          "first_error": "setup: %s: %s" % (type(e).__name__, e)}))
        return 1
    import tablelock
    client = tablelock.Client(args.daemon_socket, name="bench-django-client")
    cycles = {mode: cycle_function(mode, client) for mode in MODES}
    for rep in range(1, args.reps + 1):
        k = rep % len(MODES)
        for mode in MODES[k:] + MODES[:k]:
            result = run(mode, rep, cycles[mode], args.duration, args.warmup)
            print(json.dumps(result), flush=True)
            sys.stderr.write("bench:   s9-django rep %d %s: p50_us=%s p99_us=%s %s %s\n" % (
                rep, mode, result.get("p50_us"), result.get("p99_us"), result["status"],
                result.get("first_error", "")))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
