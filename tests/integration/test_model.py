"""Model-based test of the protocol: Hypothesis drives 2 to 4 clients, an
outside MySQL session and KILL CONNECTION against the real daemon and a
real MariaDB, and model_protocol.py checks every answer, event and value.

`make test` runs a fixed set of seeds (about a minute on 2 cores).
`make soak` runs random seeds for SOAK_MINUTES (tests/soak.sh); SEED=...
replays one. Env:
  TABLELOCK_MODEL_SEEDS      comma-separated seeds for test_model (default 1,2)
  TABLELOCK_MODEL_EXAMPLES   examples per seed (default 20)
  TABLELOCK_MODEL_STEPS      steps per example (default 30)
  TABLELOCK_MODEL_SERIAL=1   one request in flight per connection (pipelines sent one by one)
  TABLELOCK_SOAK_SECONDS     run test_model_soak this long (unset: skipped)
  TABLELOCK_SOAK_SEED        its first seed (default: random, printed)
  TABLELOCK_MODEL_SHRINK_SECONDS  stop shrinking a failure after this long (default 45;
                             a seed after a failed one does not shrink, so that a broken
                             daemon costs make test about two minutes, not ten)
"""

import os
import random
import time

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.stateful import run_state_machine_as_test

from model_protocol import World, make_machine

SEEDS = [int(s) for s in os.environ.get("TABLELOCK_MODEL_SEEDS", "1,2").split(",") if s.strip()]
EXAMPLES = int(os.environ.get("TABLELOCK_MODEL_EXAMPLES", "20"))
STEPS = int(os.environ.get("TABLELOCK_MODEL_STEPS", "30"))
SHRINK_SECONDS = float(os.environ.get("TABLELOCK_MODEL_SHRINK_SECONDS", "45"))


def _limit_shrinking(seconds):
    """Hypothesis stops shrinking after five minutes; a failure here costs a
    daemon restart per attempt, so stop sooner and report what we have.
    (finish_shrinking_deadline is Hypothesis's own cut-off, set once when
    shrinking starts.)"""
    try:
        from hypothesis.internal.conjecture.engine import ConjectureRunner as runner
    except ImportError:  # another Hypothesis: its own five minutes apply
        return
    if isinstance(getattr(runner, "finish_shrinking_deadline", None), property):
        return

    def get(self):
        return self.__dict__.get("_tl_finish_shrinking_deadline")

    def set_(self, value):
        if value is not None:
            value = min(value, time.perf_counter() + seconds)
        self.__dict__["_tl_finish_shrinking_deadline"] = value

    runner.finish_shrinking_deadline = property(get, set_)


_limit_shrinking(SHRINK_SECONDS)


FAILED_SEEDS = []


def model_settings(examples, steps):
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if not FAILED_SEEDS:
        phases.append(Phase.shrink)
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
                    derandomize=False, print_blob=False, report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck),
                    phases=phases)


@pytest.fixture
def world(daemon, mariadb, capsys):
    w = World(daemon, mariadb)
    yield w
    w.close()
    with capsys.disabled():
        print("\nmodel: %s" % w.stats.line())
        if w.failures:
            # Shrinking may end on a different failure, or none (a race):
            # the first one found, with its trace, is kept here.
            print("model: %d failing runs; the first one found:\n%s" % (len(w.failures), w.failures[0]))


def run_seed(world, seed_value, examples, steps):
    machine = make_machine(world)
    try:
        run_state_machine_as_test(seed(seed_value)(lambda: machine()), settings=model_settings(examples, steps))
    except BaseException:
        FAILED_SEEDS.append(seed_value)
        raise
    if world.failures:
        FAILED_SEEDS.append(seed_value)
    # Each failure is an answer no interleaving explains, so one that does
    # not come back when Hypothesis replays it (a race) still fails the test.
    assert not world.failures, "a run failed, and its replay did not:\n" + world.failures[0]


@pytest.mark.parametrize("seed_value", SEEDS)
def test_model(world, seed_value):
    run_seed(world, seed_value, EXAMPLES, STEPS)


@pytest.mark.skipif(not os.environ.get("TABLELOCK_SOAK_SECONDS"), reason="make soak runs it")
def test_model_soak(world, capsys):
    seconds = float(os.environ["TABLELOCK_SOAK_SECONDS"])
    first = os.environ.get("TABLELOCK_SOAK_SEED") or str(random.SystemRandom().randrange(1, 2**31))
    first = int(first)
    end = time.monotonic() + seconds
    rounds = 0
    current = first
    with capsys.disabled():
        print("\nsoak: %.0f s, first seed %d (replay: make soak SEED=%d)" % (seconds, first, first))
    while True:
        with capsys.disabled():
            print("soak: round %d, seed %d; so far %s" % (rounds, current, world.stats.line()), flush=True)
        try:
            run_seed(world, current, 20, 40)
        except BaseException:
            with capsys.disabled():
                print("soak: FAILED on seed %d (replay: make soak SEED=%d)" % (current, current), flush=True)
            raise
        rounds += 1
        if time.monotonic() >= end:
            break
        current = random.Random(current).randrange(1, 2**31)


# ---------------------------------------------------------------- found by the model
# Sequences the model found, kept as plain tests (PROTOCOL.md §4, §7).


def _kill_lease_session(d, lease, mariadb):
    with d.client() as admin:
        entry = [e for e in admin.call({"op": "status"})["leases"] if e["lease"] == lease][0]
    with mariadb.connect() as root, root.cursor() as cur:
        cur.execute("KILL CONNECTION %d" % entry["mysql_thread"])


def test_lost_lease_is_answered_once_and_not_after_a_new_lease(daemon, mariadb, tables):
    """After a lost lease, a new lease is granted, used and committed: no
    later answer may name the lost one (§7: the next request that needs
    *that* lease gets lease_lost)."""
    from conftest import acquire, error_code, ok
    d = daemon()
    with d.client() as c:
        lost = ok(acquire(c, write=["t1"], ttl_ms=30000))["lease"]
        _kill_lease_session(d, lost, mariadb)
        assert c.wait_event("lease_lost")["lease"] == lost
        second = ok(acquire(c, read=["t1"], ttl_ms=30000))["lease"]
        assert ok(c.call({"op": "rollback"}))["lease"] == second
        ok(c.call({"op": "transact", "read": ["t1"], "statements": [{"sql": "SELECT v FROM t1 WHERE id = 1"}]}))
        resp = c.call({"op": "rollback"})
        assert error_code(resp) == "no_lease", resp


def test_renew_without_ttl_uses_the_granted_ttl(daemon, tables):
    """§4 renew: without ttl_ms, the TTL the lease was granted with."""
    from conftest import acquire, ok
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1"], ttl_ms=30000))
        assert ok(c.call({"op": "renew", "ttl_ms": 5000}))["ttl_ms"] == 5000
        assert ok(c.call({"op": "renew"}))["ttl_ms"] == 30000
        ok(c.call({"op": "rollback"}))
