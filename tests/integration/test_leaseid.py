"""Lease ids with the default state file: short, and strictly increasing
across restarts, kill -9 included (clients use them as fencing tokens).

Without state_file in the config the daemon keeps its ids in lease_id in
its state directory: $STATE_DIRECTORY, which systemd sets from the unit's
StateDirectory= (and these tests set to a temp dir), else
/var/lib/tablelockd. Ids are reserved there 100 at a time, so a restart
skips fewer than 100. A missing state directory is made when its parent
is there; otherwise, or when it cannot be written, the daemon refuses to
start and says what to do.
"""

import os
import signal

from conftest import acquire, ok, scaled

STEP = 100  # daemon/leaseid.c LEASEID_STEP_MIN


def mark(directory):
    with open(os.path.join(directory, "lease_id")) as f:
        return int(f.read())


def take(d, state_dir, n):
    """n leases one after another; checks each id is below the mark on disk."""
    ids = []
    with d.client() as c:
        for _ in range(n):
            lease = ok(acquire(c, write=["t1"]))["lease"]
            assert lease < mark(state_dir), "lease %d handed out before it was reserved" % lease
            ok(c.call({"op": "commit"}))
            ids.append(lease)
    return ids


def test_ids_short_by_default_and_increasing_across_restarts(daemon, tables, tmp_path, monkeypatch):
    state_dir = str(tmp_path)
    monkeypatch.setenv("STATE_DIRECTORY", state_dir)
    d = daemon(daemon={"state_file": None})
    runs = [take(d, state_dir, 3)]
    assert runs[0] == [1, 2, 3], runs
    for how in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
        held = []
        if how == signal.SIGKILL:
            # Killed holding leases: MySQL frees them when the sessions drop.
            held = [d.client(), d.client()]
            runs.append([ok(acquire(held[0], write=["t2"]))["lease"],
                         ok(acquire(held[1], read=["t1"]))["lease"]])
        rc = d.stop(how)
        for c in held:
            c.close()
        assert rc == (0 if how == signal.SIGTERM else -signal.SIGKILL), rc
        d.start()
        runs.append(take(d, state_dir, 3))
    ids = [i for run in runs for i in run]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), runs
    for before, after in zip(runs, runs[1:]):
        assert 0 < after[0] - before[-1] <= STEP, "a restart skipped more than one block: %r" % runs
    assert max(ids) < 1000, "ids are not short: %r" % runs
    assert os.path.isfile(os.path.join(state_dir, "lease_id"))


def test_no_state_directory_refuses_to_start(daemon, tmp_path, monkeypatch):
    # One missing level is made (leaseid_make_dir); two are refused.
    missing = str(tmp_path / "missing" / "deeper")
    monkeypatch.setenv("STATE_DIRECTORY", missing)
    d = daemon(wait=False, daemon={"state_file": None})
    rc = d.proc.wait(timeout=scaled(10))
    d.proc = None
    assert rc == 1, d.log_text()
    log = d.log_text()
    want = ("tablelockd: [daemon] state_file %s/lease_id: cannot create %s/lease_id.tmp: "
            "No such file or directory." % (missing, missing))
    assert want in log, log
    assert "StateDirectory=" in log and "set [daemon] state_file" in log, log


def test_unreadable_mark_refuses_to_start(daemon, tmp_path):
    state = tmp_path / "lease_id"
    state.write_text("garbage\n")
    d = daemon(wait=False, daemon={"state_file": str(state)})
    rc = d.proc.wait(timeout=scaled(10))
    d.proc = None
    assert rc == 1, d.log_text()
    assert "%s: not a lease id high-water mark" % state in d.log_text(), d.log_text()
    assert state.read_text() == "garbage\n", "the daemon must not overwrite a mark it cannot read"
