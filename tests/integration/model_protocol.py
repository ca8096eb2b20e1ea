"""A reference model of the tablelockd protocol (proto/PROTOCOL.md), checked
against the real daemon and a real MariaDB by a Hypothesis state machine.

The machine drives 2 to 4 raw line clients, an outside MySQL session that
takes LOCK TABLES ... WRITE for a moment, and KILL CONNECTION of a lease's
session. Every response and event is checked when it arrives, in order, by
the model below; an outside observer session compares the counters it reads
with the values the model allows.

How a verdict is reached. Timing is only known from our side of the socket:
a request was handled after we sent it (S) and before we read its answer
(R). So a lease is *certainly* held from the moment we read its grant until
the first moment it may have ended: when we sent the request ending it, when
its TTL may have run out (counted from the S of the request that set it),
when we killed its session, or when we hung up. It is *possibly* held from
the S of its acquire until we read the answer or event ending it. Each
timing-dependent answer (lock_timeout, lease_expired, lease_lost, no_lease
after a TTL, ...) is legal when some claim that was possibly held explains it,
and the model then follows the answer it got. An answer is a failure only
when no interleaving explains it: two conflicting leases certainly held at
once, a timeout with no possible conflict, an answer that needs a lease
state this connection cannot be in, a value no set of commits produces.

Data: each counter row has a set of possible committed values, plus the
increments "in flight" (sent on a lease or transact whose fate is not
known yet), each of which may or may not have landed. commit ok adds a
lease's increments; rollback, expiry, loss, a failed transact drop them;
commit_unknown and a hang-up with a commit unanswered keep both outcomes.
Every value read (by the observer, or through a lease) must be one of them.
"""

import dataclasses
import functools
import json
import os
import signal
import socket
import select
import time
import traceback

import pymysql
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from conftest import DATABASE, scaled

TABLES = ("mt1", "mt2", "mt3")
ROWS = (1, 2)
POOL_SIZE = 16
MAX_TTL_MS = 60000
# The daemon counts TTLs in whole milliseconds on its own clock: a TTL may run
# out up to this much before S + ttl_ms by our clock.
SLACK = 0.02
# How long past its own wait_ms a request may go unanswered before it is a wedge.
ANSWER_BOUND = 5.0
# A table the model knows is free may stay locked this long (a killed
# session's thread exits, a closed client's lease is rolled back).
SETTLE_BOUND = 3.0
INF = float("inf")
# TABLELOCK_MODEL_SERIAL=1: never more than one request in flight per
# connection (a pipeline is sent one request at a time, each after the
# previous answer). Runs the model without the daemon's pipelining path.
SERIAL = os.environ.get("TABLELOCK_MODEL_SERIAL", "") not in ("", "0")

ER_LOCK_WAIT_TIMEOUT = 1205
ER_TABLE_NOT_LOCKED = 1100
ER_TABLE_NOT_LOCKED_FOR_WRITE = 1099


class ModelFailure(AssertionError):
    """The daemon gave an answer that no legal interleaving explains."""


# ---------------------------------------------------------------- requests


def _tables(names):
    return ",".join(names) if names else "-"


@dataclasses.dataclass(frozen=True)
class Inc:
    """UPDATE <table> SET v = v + delta WHERE id = row"""
    table: str
    row: int
    delta: int

    def sql(self):
        return {"sql": "UPDATE %s SET v = v + ? WHERE id = ?" % self.table, "params": [self.delta, self.row]}

    def __repr__(self):
        return "inc(%s.%d+%d)" % (self.table, self.row, self.delta)


@dataclasses.dataclass(frozen=True)
class Sel:
    """SELECT v FROM <table> WHERE id = row"""
    table: str
    row: int

    def sql(self):
        return {"sql": "SELECT v FROM %s WHERE id = ?" % self.table, "params": [self.row]}

    def __repr__(self):
        return "sel(%s.%d)" % (self.table, self.row)


@dataclasses.dataclass(frozen=True)
class Acquire:
    write: tuple
    read: tuple
    wait_ms: int
    ttl_ms: int
    op = "acquire"

    def body(self):
        body = {"op": "acquire", "wait_ms": self.wait_ms, "ttl_ms": self.ttl_ms}
        if self.write:
            body["write"] = list(self.write)
        if self.read:
            body["read"] = list(self.read)
        return body

    def __repr__(self):
        return "acquire(w=%s r=%s wait=%d ttl=%d)" % (_tables(self.write), _tables(self.read),
                                                      self.wait_ms, self.ttl_ms)


@dataclasses.dataclass(frozen=True)
class Transact:
    write: tuple
    read: tuple
    wait_ms: int
    ttl_ms: int
    statements: tuple
    op = "transact"

    def __post_init__(self):
        object.__setattr__(self, "statements", tuple(self.statements))

    def body(self):
        body = Acquire(self.write, self.read, self.wait_ms, self.ttl_ms).body()
        body["op"] = "transact"
        body["statements"] = [s.sql() for s in self.statements]
        return body

    def __repr__(self):
        return "transact(w=%s r=%s wait=%d ttl=%d %s)" % (
            _tables(self.write), _tables(self.read), self.wait_ms, self.ttl_ms,
            " ".join(map(repr, self.statements)))


@dataclasses.dataclass(frozen=True)
class Query:
    statement: object
    op = "query"

    def body(self):
        return dict(self.statement.sql(), op="query")

    def __repr__(self):
        return "query(%r)" % (self.statement,)


@dataclasses.dataclass(frozen=True)
class Simple:
    """commit, rollback, status, ping"""
    op: str

    def body(self):
        return {"op": self.op}

    def __repr__(self):
        return self.op


@dataclasses.dataclass(frozen=True)
class Renew:
    ttl_ms: object  # None: the TTL the lease was granted with
    op = "renew"

    def body(self):
        return {"op": "renew"} if self.ttl_ms is None else {"op": "renew", "ttl_ms": self.ttl_ms}

    def __repr__(self):
        return "renew(%s)" % ("granted" if self.ttl_ms is None else self.ttl_ms)


# Bad requests: every one is bad_request, and changes nothing.
BAD_LINES = {
    "json": b'{"op":"ping",',
    "not_object": b'[1, 2]',
    "unknown_op": b'{"op":"frob"}',
    "bad_field": b'{"op":"acquire","write":["mt1"],"wait_ms":"5"}',
    "no_tables": b'{"op":"acquire","write":[]}',
}


@dataclasses.dataclass(frozen=True)
class Bad:
    kind: str
    op = "bad"

    def __repr__(self):
        return "bad(%s)" % self.kind


LEASE_OPS = ("query", "commit", "rollback", "renew")


# ---------------------------------------------------------------- strategies

# Every table list, as sampled_from values so that a failing example prints them plainly.
TABLE_LISTS = [(), ("mt1",), ("mt2",), ("mt3",), ("mt1", "mt2"), ("mt2", "mt3"), ("mt1", "mt3"),
               ("mt1", "mt2", "mt3")]
write_st = st.sampled_from(TABLE_LISTS[1:] + TABLE_LISTS[:1])
read_st = st.sampled_from(TABLE_LISTS)
wait_st = st.sampled_from([0, 50, 250, 700])
ttl_st = st.sampled_from([30000, 150, 600, 3000])
statement_st = st.one_of(
    st.builds(Inc, st.sampled_from(TABLES), st.sampled_from(ROWS), st.integers(1, 3)),
    st.builds(Sel, st.sampled_from(TABLES), st.sampled_from(ROWS)))


def _lockable(spec):
    return bool(spec.write or spec.read) and not set(spec.write) & set(spec.read)


acquire_st = st.builds(Acquire, write_st, read_st, wait_st, ttl_st).filter(_lockable)
transact_st = st.builds(Transact, write_st, read_st, wait_st, st.sampled_from([30000, 100]),
                        st.lists(statement_st, min_size=1, max_size=3)).filter(_lockable)
query_st = st.builds(Query, statement_st)
renew_st = st.builds(Renew, st.sampled_from([None, 30000, 200]))
bad_st = st.builds(Bad, st.sampled_from(sorted(BAD_LINES)))
request_st = st.one_of(acquire_st, query_st, query_st, st.just(Simple("commit")), st.just(Simple("rollback")),
                       renew_st, transact_st, st.just(Simple("status")), st.just(Simple("ping")), bad_st)
client_st = st.integers(0, 3)


# ---------------------------------------------------------------- model objects


class Claim:
    """Something that may hold (or queue for) table locks: a lease, an acquire
    or transact not answered yet, an outside LOCK TABLES, an observer read."""

    def __init__(self, who, write, read, t_start, conn=None):
        self.who = who
        self.write = frozenset(write)
        self.read = frozenset(read)
        self.conn = conn
        self.t_start = t_start      # possibly held or queued from here
        self.t_end = None           # ... until here (None: not known to have ended)
        self.granted_at = None      # certainly held from here
        self.end_sent = INF         # certainly held until the earliest of these
        self.expiry_floor = INF
        self.killed_at = INF
        self.hangup_at = INF
        self.proven_alive = -INF    # held at least until here (a later request succeeded)

    def conflicts(self, other):
        return bool(self.write & (other.write | other.read) or other.write & self.read)

    def floor(self):
        """The earliest time its TTL may run out."""
        return self.expiry_floor

    def certain(self):
        """(start, end) of the time it is certainly held, or None."""
        if self.granted_at is None:
            return None
        end = max(self.proven_alive, min(self.end_sent, self.floor(), self.killed_at, self.hangup_at,
                                         INF if self.t_end is None else self.t_end))
        return (self.granted_at, end) if end >= self.granted_at else None

    def possibly_open(self, t0, t1):
        """True when it may have held or queued for locks between t0 and t1."""
        return self.t_start < t1 and (self.t_end is None or self.t_end > t0)

    def __repr__(self):
        return "%s[w=%s r=%s]" % (self.who, _tables(sorted(self.write)), _tables(sorted(self.read)))


class Lease(Claim):
    def __init__(self, conn, spec, t_start):
        Claim.__init__(self, "%s acquire" % conn.name, spec.write, spec.read, t_start, conn)
        self.spec = spec
        self.id = None
        self.ttl_ms = None
        self.incs_ok = []        # Delta objects of increments answered ok
        self.event = None        # the end event received, if any
        self.end_answered = False
        self.ended_by = None     # commit, rollback, expired, lost, commit_unknown, gone, hangup
        self.kill_done = INF     # requests sent after this run on a dead session
        self.last_ttl_ms = None  # the TTL set by the last renew (or the grant)

    def tables(self):
        return self.write | self.read

    def floor(self):
        """A renew sent and not answered yet may set a sooner expiry: it
        counts from the moment it was sent."""
        f = self.expiry_floor
        for p in self.conn.pending:
            if isinstance(p.spec, Renew) and p.t_sent is not None:
                f = min(f, p.t_sent + self.renew_ttl(p.spec) / 1000.0 - SLACK)
        return f

    def renew_ttl(self, spec):
        """The shortest TTL a renew may set (without ttl_ms: the granted TTL
        per §4; the last one set, to be safe, if that is shorter)."""
        if spec.ttl_ms is not None:
            return min(spec.ttl_ms, MAX_TTL_MS)
        return min(self.ttl_ms or 0, self.last_ttl_ms or 0)


class Delta:
    """An increment in flight: it may or may not be committed yet."""

    def __init__(self, key, delta, owner):
        self.key = key
        self.delta = delta
        self.owner = owner

    def __repr__(self):
        return "%s.%d+%d" % (self.key[0], self.key[1], self.delta)


class Pending:
    """A request sent and not answered yet."""

    def __init__(self, spec, rid, has_id, text):
        self.spec = spec
        self.rid = rid
        self.has_id = has_id
        self.text = text
        self.t_sent = None
        self.deadline = None
        self.claim = None        # Lease (acquire) or Claim (transact)
        self.id_floor = 0        # the answer's lease id must be above this
        self.deltas = []         # a transact's or query's increments in flight


def subset_sums(deltas):
    sums = {0}
    for d in deltas:
        sums |= {s + d for s in sums}
    return sums


# ---------------------------------------------------------------- the world


class Stats:
    def __init__(self):
        self.requests = 0
        self.leases = 0
        self.events = 0
        self.examples = 0
        self.steps = 0
        self.kills = 0
        self.outside_locks = 0
        self.hangups = 0
        self.started = time.monotonic()

    def line(self):
        return ("%d requests, %d leases granted, %d events, %d kills, %d outside locks, %d hang-ups; "
                "%d examples, %d steps in %.0f s" % (
                    self.requests, self.leases, self.events, self.kills, self.outside_locks, self.hangups,
                    self.examples, self.steps, time.monotonic() - self.started))


class World:
    """What outlives one example: the daemon (restarted after a failure), the
    MariaDB, the observer and outside sessions, the counters."""

    def __init__(self, start_daemon, mariadb):
        self.start_daemon = start_daemon
        self.mariadb = mariadb
        self.stats = Stats()
        self.daemon = None
        self.failures = []       # the first lines of every failure seen, shrinking included
        self.restart_daemon()
        mariadb.fresh_tables(TABLES, rows=[(r, 0) for r in ROWS])
        self.observer = mariadb.connect()
        self.outside = mariadb.connect()
        for conn in (self.observer, self.outside):
            with conn.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout=0")

    def restart_daemon(self):
        if self.daemon is not None and self.daemon.running():
            try:
                self.daemon.stop(signal.SIGKILL)
            except AssertionError:
                pass
        self.daemon = self.start_daemon(mysql={"pool_size": POOL_SIZE}, leases={"max_ttl_ms": MAX_TTL_MS})

    def sql(self, conn, statement, args=None):
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()

    def close(self):
        for conn in (self.observer, self.outside):
            try:
                conn.close()
            except pymysql.err.Error:
                pass


class Conn:
    """One client connection of the model: a raw socket, the requests sent and
    not answered (answers come strictly in this order), and the lease the
    model says it holds."""

    def __init__(self, machine, slot, gen):
        self.m = machine
        self.slot = slot
        self.name = "m%d.%d" % (slot, gen)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(10))
        self.sock.connect(machine.world.daemon.sock)
        self.buf = b""
        self.pending = []
        self.lease = None        # the lease this connection holds, as far as the model knows
        self.lost_pending = None # a lost lease whose lease_lost answer is still due (§7)
        self.leases = {}         # every lease granted here, by id
        self.open = True
        self.hello()

    def hello(self):
        self.sock.sendall(json.dumps({"op": "hello", "client": self.name}).encode() + b"\n")
        self.m.world.stats.requests += 1
        deadline = time.monotonic() + scaled(ANSWER_BOUND)
        while b"\n" not in self.buf:
            self.m.check(time.monotonic() < deadline, "%s: no answer to hello" % self.name)
            self._recv(deadline - time.monotonic())
        line, self.buf = self.buf.split(b"\n", 1)
        resp = json.loads(line)
        self.m.check(resp.get("ok") is True and resp.get("protocol") == 1, "%s: hello got %r" % (self.name, resp))

    def _recv(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            self.m.daemon_died_check(grace=scaled(1))
            self.m.fail("%s: the daemon closed the connection (unanswered: %s; partial line %r)"
                        % (self.name, [p.text for p in self.pending], self.buf[:200]))
        self.buf += chunk
        return True

    def read(self, timeout):
        """Reads what arrives within timeout; returns [(t_read, message)]."""
        got = self._recv(timeout)
        while got:
            got = self._recv(0)
        t = time.monotonic()
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                self.m.fail("%s: the daemon sent a line that is not JSON: %r" % (self.name, line[:300]))
            self.m.check(isinstance(msg, dict), "%s: not an object: %r" % (self.name, line[:300]))
            out.append((t, msg))
        return out

    def send_bytes(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
            self.m.daemon_died_check(grace=scaled(1))
            self.m.fail("%s: sending failed: %r" % (self.name, e))

    def close(self):
        self.open = False
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the machine


def guarded(method):
    """A rule that fails records the failure and returns; every later rule
    does nothing, and teardown raises it. So a failure found at a step that
    depends on timing does not change which data Hypothesis draws next (it
    would call that flaky generation), and shrinking simply drops the rest."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.failure is not None:
            return
        try:
            method(self, *args, **kwargs)
        except ModelFailure:
            pass
        except Exception as e:
            self.failure = "%s raised %r\n%s" % (method.__name__, e, traceback.format_exc())
            self.failed = True

    return wrapper



class ProtocolMachine(RuleBasedStateMachine):
    """Subclassed by make_machine() with a World in .world."""

    world = None

    def __init__(self):
        super().__init__()
        self.conns = []
        self.claims = []         # every Claim of this example
        self.base = {(t, r): {0} for t in TABLES for r in ROWS}
        self.inflight = []       # Delta objects
        self.id_seen = 0         # highest lease id read so far
        self.seq = 0
        self.trace = []
        self.failed = False
        self.kills = 0
        self.outside_claim = None
        self.outside_steps = 0
        self.gens = {}
        self.failure = None      # the first failure: later rules do nothing, teardown raises it
        self.t0 = time.monotonic()
        self.world.stats.examples += 1

    # -- verdicts

    def log(self, text):
        self.trace.append("%8.3f %s" % (time.monotonic() - self.t0, text))

    def fail(self, message):
        self.failed = True
        if self.failure is None:
            self.failure = message
        if not self.world.failures:
            self.world.failures.append(message + "\n" + "\n".join(self.trace[-30:]))
        else:
            self.world.failures.append(message.splitlines()[0][:300])
        tail = "\n".join(self.trace[-60:])
        if self.failure == message:
            self.failure = "%s\n---- the trace's last steps (s since start, > sent, < read):\n%s" % (message, tail)
        raise ModelFailure(message)

    def check(self, condition, message):
        if not condition:
            self.fail(message)

    def daemon_died_check(self, grace=0.0):
        """Fails when the daemon has exited (waiting up to grace seconds for
        it to, after a connection closed under us)."""
        d = self.world.daemon
        deadline = time.monotonic() + grace
        while d.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not d.running():
            rc = d.proc.poll() if d.proc else None
            sig = ""
            if rc is not None and rc < 0:
                sig = " (%s)" % signal.Signals(-rc).name
            self.fail("tablelockd died: exit status %r%s; log tail:\n%s" % (rc, sig, d.log_text()[-2500:]))

    # -- setup and teardown

    @initialize(clients=st.integers(2, 4))
    @guarded
    def setup(self, clients):
        if not self.world.daemon.running():
            self.world.restart_daemon()
        with self.world.mariadb.connect() as root, root.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout=10")
            for t in TABLES:
                cur.execute("UPDATE %s SET v = 0" % t)
        for slot in range(clients):
            self.conns.append(self.connect(slot))
        self.log("%d clients" % clients)

    def connect(self, slot):
        gen = self.gens.get(slot, 0)
        self.gens[slot] = gen + 1
        return Conn(self, slot, gen)

    def teardown(self):
        if self.failure is None:
            try:
                self.finish()
            except ModelFailure:
                pass
            except Exception as e:
                self.fail("teardown raised %r\n%s" % (e, traceback.format_exc()))
        self.cleanup()
        if self.failure is not None:
            raise ModelFailure(self.failure)

    def finish(self):
        """The end of an example: every answer in, every lease gone, the
        data as the model says, no two conflicting leases at once."""
        for c in self.conns:
            self.drain(c)
        self.outside_unlock()
        # Every lease that ended by expiry or loss gets its event.
        for c in self.conns:
            for lease in c.leases.values():
                if lease.ended_by in ("expired", "lost") and lease.event is None:
                    deadline = time.monotonic() + scaled(2)
                    while lease.event is None and time.monotonic() < deadline:
                        self.pump([c], 0.05)
                    self.check(lease.event is not None, "%s: lease %d ended (%s) without a %s event"
                               % (c.name, lease.id, lease.ended_by, "lease_" + lease.ended_by))
        t = time.monotonic()
        for c in self.conns:
            if c.lease is not None:
                c.lease.hangup_at = t
            c.close()
        self.settle(set(c.name for c in self.conns), expect_clients=0)
        t = time.monotonic()
        for k in self.claims:
            if k.t_end is None:
                k.t_end = t
        self.conns = []
        self.observe(final=True)
        self.check_overlaps()

    def cleanup(self):
        for c in self.conns:
            c.close()
        try:
            self.outside_unlock()
        except Exception:
            pass
        if self.failed:
            # A fresh daemon for the next example (shrinking replays many).
            self.world.restart_daemon()

    # -- sending and reading

    def new_rid(self):
        self.seq += 1
        n = self.seq
        if n % 4 == 3:
            return None, False
        if n % 8 == 5:
            return None, True
        return (n if n % 4 != 2 else "r%d" % n), True

    def encode(self, spec):
        """(Pending, bytes) for one request."""
        if isinstance(spec, Bad):
            rid, has_id = None, False
            line = BAD_LINES[spec.kind]
            text = line.decode()
        else:
            rid, has_id = self.new_rid()
            body = spec.body()
            obj = {"id": rid, **body} if has_id else body
            line = json.dumps(obj).encode()
            text = line.decode()
        end = b"\r\n" if self.seq % 5 == 0 else b"\n"
        return Pending(spec, rid, has_id, text), line + end

    def send(self, c, specs, cuts=None, half_line=None):
        """Sends specs on c, in one write, or cut at the given permille positions."""
        if SERIAL and len(specs) > 1:
            for i, spec in enumerate(specs):
                self.drain(c)
                self.send(c, [spec], cuts=cuts, half_line=half_line if i == len(specs) - 1 else None)
            return
        if SERIAL:
            self.drain(c)
        items = [self.encode(s) for s in specs]
        data = b"".join(b for _, b in items)
        if half_line:
            data += half_line
        ends = []
        pos = 0
        for _, b in items:
            pos += len(b)
            ends.append(pos)
        points = sorted(set(max(1, min(len(data) - 1, len(data) * p // 1000)) for p in (cuts or [])))
        pieces = []
        start = 0
        for p in points + [len(data)]:
            if p > start:
                pieces.append((start, p))
                start = p
        sent_upto = 0
        k = 0
        for a, b in pieces:
            c.send_bytes(data[a:b])
            t = time.monotonic()
            sent_upto = b
            while k < len(items) and ends[k] <= sent_upto:
                self.sent(c, items[k][0], t)
                k += 1
            if len(pieces) > 1:
                time.sleep(0.002)
        assert k == len(items)

    def sent(self, c, p, t):
        """Registers a request as sent at t."""
        self.world.stats.requests += 1
        p.t_sent = t
        wait = getattr(p.spec, "wait_ms", 0) / 1000.0
        before = c.pending[-1].deadline if c.pending else t
        p.deadline = max(t, before - scaled(ANSWER_BOUND)) + wait + scaled(ANSWER_BOUND)
        p.id_floor = self.id_seen
        spec = p.spec
        if isinstance(spec, Acquire):
            p.claim = Lease(c, spec, t)
            self.claims.append(p.claim)
        elif isinstance(spec, Transact):
            p.claim = Claim("%s transact" % c.name, spec.write, spec.read, t, c)
            self.claims.append(p.claim)
            for s in spec.statements:
                if isinstance(s, Inc):
                    p.deltas.append(Delta((s.table, s.row), s.delta, p.claim))
            self.inflight += p.deltas
        elif isinstance(spec, Query) and isinstance(spec.statement, Inc):
            # Owned by whatever lease the connection holds when it runs.
            s = spec.statement
            p.deltas.append(Delta((s.table, s.row), s.delta, c))
            self.inflight += p.deltas
        elif spec.op in ("commit", "rollback"):
            # Whichever lease it ends was certainly held only until now.
            for lease in [c.lease] + [q.claim for q in c.pending if isinstance(q.claim, Lease)]:
                if lease is not None:
                    lease.end_sent = min(lease.end_sent, t)
        c.pending.append(p)
        self.log("%s > %s" % (c.name, p.text))

    def pump(self, conns=None, timeout=0.0):
        """Reads and checks what has arrived on conns (all by default)."""
        conns = [c for c in (self.conns if conns is None else conns) if c.open]
        if not conns:
            return
        if timeout > 0:
            select.select([c.sock for c in conns], [], [], timeout)
        for c in conns:
            for t, msg in c.read(0):
                self.on_message(c, msg, t)

    def drain(self, c):
        """Waits for every answer c is owed; a missing one is a wedge."""
        # Every connection is read meanwhile, so that answers are timed
        # when they arrive.
        self.pump()
        while c.pending:
            head = c.pending[0]
            remaining = head.deadline - time.monotonic()
            if remaining <= 0:
                self.daemon_died_check()
                self.fail("wedge: %s got no answer to %s within %.1f s (%d requests unanswered)"
                          % (c.name, head.text, time.monotonic() - head.t_sent, len(c.pending)))
            self.pump(timeout=min(remaining, 0.5))
            self.daemon_died_check()

    def step_done(self, wait_for=None):
        """After every rule: answers in, the daemon alive, the data checked."""
        self.world.stats.steps += 1
        if wait_for is not None:
            self.drain(wait_for)
        self.pump()
        now = time.monotonic()
        for c in self.conns:
            if c.pending and c.pending[0].deadline < now:
                self.drain(c)
        self.daemon_died_check()
        if self.outside_claim is not None:
            self.outside_steps -= 1
            if self.outside_steps <= 0:
                self.outside_unlock()
        self.observe()
        self.prune()

    def prune(self):
        """Forgets observer claims nobody can be judged against any more."""
        oldest = min([p.t_sent for c in self.conns for p in c.pending], default=time.monotonic())
        self.claims = [k for k in self.claims
                       if not (k.who == "observer" and k.t_end is not None and k.t_end < oldest)]

    # -- the model

    def on_message(self, c, msg, t):
        if "event" in msg:
            self.world.stats.events += 1
            self.log("%s < %s" % (c.name, json.dumps(msg)))
            self.on_event(c, msg, t)
            return
        self.check(c.pending, "%s: a response to no request: %r" % (c.name, msg))
        p = c.pending.pop(0)
        self.log("%s < %s" % (c.name, json.dumps(msg)[:300]))
        # Shape: the id first and echoed, ok a boolean, errors with code and message.
        if p.has_id:
            self.check("id" in msg and list(msg)[0] == "id" and msg["id"] == p.rid,
                       "%s: %s answered without its id first: %r" % (c.name, p.text, msg))
        else:
            self.check("id" not in msg, "%s: %s carries no id, its answer has one: %r" % (c.name, p.text, msg))
        self.check(msg.get("ok") in (True, False), "%s: answer without ok: %r" % (c.name, msg))
        code = None
        if msg["ok"] is False:
            err = msg.get("error")
            self.check(isinstance(err, dict) and isinstance(err.get("code"), str)
                       and isinstance(err.get("message"), str), "%s: malformed error %r" % (c.name, msg))
            code = err["code"]
        handler = {"acquire": self.on_acquire, "transact": self.on_transact, "query": self.on_query,
                   "commit": self.on_end, "rollback": self.on_end, "renew": self.on_renew,
                   "status": self.on_status, "ping": self.on_ping, "bad": self.on_bad}[p.spec.op]
        try:
            handler(c, p, msg, code, t)
        finally:
            for d in p.deltas:
                if d in self.inflight and d.owner is c:
                    # A query's increment that did not run on a lease.
                    self.inflight.remove(d)

    def illegal(self, c, p, msg, why):
        lease = c.lease
        state = "no lease" if lease is None else "lease %s (%s)%s%s%s" % (
            lease.id, _tables(sorted(lease.write)) + " w, " + _tables(sorted(lease.read)) + " r",
            ", TTL may have run out" if p.t_sent is not None and time.monotonic() >= lease.floor() else "",
            ", session killed" if lease.killed_at < INF else "",
            ", event %s" % lease.event if lease.event else "")
        self.fail("%s: %s -> %s is not a legal answer: %s [model: %s]" % (
            c.name, p.text, json.dumps(msg), why, state))

    def lease_may_be_gone(self, lease, t):
        """True when lease may have ended (TTL, kill, event) before a request
        answered at t was handled."""
        return lease.event is not None or t >= lease.floor() or lease.killed_at < INF

    def end_lease(self, c, lease, how, t, commit=False, unknown=False):
        """The lease is over: its increments are committed, dropped, or both."""
        lease.ended_by = lease.ended_by or how
        if lease.t_end is None:
            lease.t_end = t
        if c.lease is lease:
            c.lease = None
        mine = [d for d in self.inflight if d.owner is lease]
        for d in mine:
            self.inflight.remove(d)
        if commit or unknown:
            for d in lease.incs_ok:
                vals = self.base[d.key]
                self.base[d.key] = {v + d.delta for v in vals} | (vals if unknown else set())

    # acquire / transact

    def lease_held_or_gone(self, c, p, msg, code, t):
        """For acquire and transact on a connection the model says holds a
        lease: True when the answer was lease_held (and was legal)."""
        lease = c.lease
        if lease is None:
            return False
        if code == "lease_held":
            if lease.event is not None and lease.event != "lease_lost":
                self.illegal(c, p, msg, "the lease had already ended (%s)" % lease.event)
            return True
        if not self.lease_may_be_gone(lease, t):
            self.illegal(c, p, msg, "this connection holds lease %s, so the answer must be lease_held" % lease.id)
        # It ended unseen (TTL or kill); its event is due, and after a loss
        # the next request that needs the lease gets lease_lost.
        killed = lease.killed_at < INF
        self.end_lease(c, lease, "lost" if killed else "expired", t)
        if killed:
            c.lost_pending = lease
        else:
            lease.end_answered = True
        return False

    def check_lease_id(self, c, p, msg, t):
        lid = msg.get("lease")
        if not (isinstance(lid, int) and not isinstance(lid, bool)):
            self.illegal(c, p, msg, "no integer lease id")
        if lid <= p.id_floor:
            self.illegal(c, p, msg, "lease id %d is not above %d, an id read before this request was sent"
                         % (lid, p.id_floor))
        for other in self.claims:
            if isinstance(other, Lease) and other.id == lid or getattr(other, "lease_id", None) == lid:
                self.illegal(c, p, msg, "lease id %d was already given to %s" % (lid, other.who))
        self.id_seen = max(self.id_seen, lid)
        return lid

    def timeout_legal(self, claim, p, t):
        """Whether lock_timeout can be explained: a conflicting claim possibly
        held or queued during the request, or a pool short of sessions."""
        for k in self.claims:
            if k is claim or (k.conn is not None and k.conn is claim.conn):
                continue
            if k.conflicts(claim) and k.possibly_open(p.t_sent, t):
                return True
        return self.kills + 2 * len(self.conns) >= POOL_SIZE

    def check_grant(self, lease, t):
        """A lease just granted (certainly held from t, if its TTL cannot
        have run out yet) against every lock certainly held meanwhile."""
        mine = lease.certain()
        if mine is None:
            return
        for k in self.claims:
            if k is lease or k.conn is lease.conn:
                continue
            span = k.certain()
            if span and span[0] <= mine[1] and mine[0] <= span[1] and k.conflicts(lease):
                self.fail("two conflicting leases at once: %r was granted (read at %.3f, certainly held until "
                          "%.3f) while %r was certainly held (%.3f to %.3f)"
                          % (lease, t - self.t0, mine[1] - self.t0, k, span[0] - self.t0, span[1] - self.t0))

    def on_acquire(self, c, p, msg, code, t):
        lease = p.claim
        if self.lease_held_or_gone(c, p, msg, code, t):
            lease.t_end = t
            return
        if code is None:
            lid = self.check_lease_id(c, p, msg, t)
            want_ttl = min(p.spec.ttl_ms, MAX_TTL_MS)
            if msg.get("ttl_ms") != want_ttl:
                self.illegal(c, p, msg, "ttl_ms should be %d" % want_ttl)
            w = msg.get("waited_ms")
            if not (isinstance(w, int) and w >= 0):
                self.illegal(c, p, msg, "waited_ms must be an integer >= 0")
            lease.id = lid
            lease.who = "%s lease %d" % (c.name, lid)
            lease.ttl_ms = want_ttl
            lease.last_ttl_ms = want_ttl
            lease.granted_at = t
            lease.expiry_floor = p.t_sent + want_ttl / 1000.0 - SLACK
            c.lease = lease
            c.lost_pending = None  # a new lease: no answer may name the old one
            c.leases[lid] = lease
            self.world.stats.leases += 1
            self.check_grant(lease, t)
            return
        lease.t_end = t
        if code == "lock_timeout":
            if not self.timeout_legal(lease, p, t):
                self.illegal(c, p, msg, "nothing could hold a conflicting lock while it waited")
            return
        self.illegal(c, p, msg, "unexpected error")

    def statement_outcome(self, statement, write, read):
        """(ok, mysql_errno) of a statement on a lease holding these tables."""
        if statement.table not in write | read:
            return False, ER_TABLE_NOT_LOCKED
        if isinstance(statement, Inc) and statement.table not in write:
            return False, ER_TABLE_NOT_LOCKED_FOR_WRITE
        return True, None

    def check_read(self, c, p, msg, result, statement, own, exclude):
        """A value read through a lease: committed value + own increments."""
        rows = result.get("rows")
        if not (isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], list) and len(rows[0]) == 1):
            self.illegal(c, p, msg, "expected one row with one value")
        v = rows[0][0]
        key = (statement.table, statement.row)
        others = [d.delta for d in self.inflight if d.key == key and d.owner not in exclude]
        mine = sum(d.delta for d in own if d.key == key)
        possible = {b + s + mine for b in self.base[key] for s in subset_sums(others)}
        if v not in possible:
            self.illegal(c, p, msg, "%s.%d = %r, but the committed value is one of %s and this lease added %d "
                         "(a lost or phantom commit, or two writers at once)"
                         % (key[0], key[1], v, sorted(self.base[key]), mine))
        if not others:
            self.base[key] = {v - mine}

    def on_transact(self, c, p, msg, code, t):
        claim = p.claim
        claim.t_end = t
        drop = list(p.deltas)
        try:
            if self.lease_held_or_gone(c, p, msg, code, t):
                return
            spec = p.spec
            outcomes = [self.statement_outcome(s, frozenset(spec.write), frozenset(spec.read))
                        for s in spec.statements]
            first_bad = next((i for i, (good, _) in enumerate(outcomes) if not good), None)
            if code is None:
                lid = self.check_lease_id(c, p, msg, t)
                claim.lease_id = lid
                self.world.stats.leases += 1
                if first_bad is not None:
                    self.illegal(c, p, msg, "statement %d must fail" % first_bad)
                results = msg.get("results")
                if not (isinstance(results, list) and len(results) == len(spec.statements)):
                    self.illegal(c, p, msg, "one result per statement expected")
                own = []
                for s, r in zip(spec.statements, results):
                    if isinstance(s, Inc):
                        if r.get("affected_rows") != 1:
                            self.illegal(c, p, msg, "%r should change 1 row" % (s,))
                        own.append(Delta((s.table, s.row), s.delta, claim))
                    else:
                        self.check_read(c, p, msg, r, s, own, exclude=(claim,))
                for d in p.deltas:
                    self.inflight.remove(d)
                drop = []
                for d in own:
                    self.base[d.key] = {v + d.delta for v in self.base[d.key]}
                return
            if code == "lock_timeout":
                if not self.timeout_legal(claim, p, t):
                    self.illegal(c, p, msg, "nothing could hold a conflicting lock while it waited")
                return
            if code == "mysql":
                if first_bad is None or msg.get("statement") != first_bad \
                        or msg["error"].get("mysql_errno") != outcomes[first_bad][1]:
                    self.illegal(c, p, msg, "expected statement %r to fail with %r"
                                 % (first_bad, None if first_bad is None else outcomes[first_bad][1]))
                return
            if code == "lease_expired":
                if t < p.t_sent + spec.ttl_ms / 1000.0 - SLACK:
                    self.illegal(c, p, msg, "the TTL cannot have run out yet")
                return
            self.illegal(c, p, msg, "unexpected error")
        finally:
            for d in drop:
                if d in self.inflight:
                    self.inflight.remove(d)

    # lease ops

    def gone_answer(self, c, p, msg, code, t):
        """For a lease op whose answer says the lease is over (or was never
        there): checks it is legal and ends the model's lease. Returns True
        when the answer was one of those."""
        lease = c.lease
        if code not in ("no_lease", "lease_expired", "lease_lost", "lease_revoked", "commit_unknown"):
            return False
        if code == "lease_revoked":
            self.illegal(c, p, msg, "nobody revoked anything")
        if lease is None:
            lost = c.lost_pending
            if lost is not None:
                may_have_expired = t >= lost.floor()
                if code == "lease_lost" or (code in ("no_lease", "lease_expired") and may_have_expired):
                    c.lost_pending = None
                    lost.end_answered = True
                    return True
                self.illegal(c, p, msg, "lease %s was lost and no lease granted since: lease_lost expected"
                             % lost.id)
            if code != "no_lease":
                self.illegal(c, p, msg, "the connection holds no lease: no_lease expected")
            return True
        killed = lease.killed_at < INF
        ttl_out = t >= lease.floor()
        if code == "no_lease":
            if not ttl_out and not (lease.event == "lease_expired"):
                self.illegal(c, p, msg, "lease %s cannot have ended unseen%s" % (
                    lease.id, " (a lost lease answers lease_lost once)" if killed else ""))
            self.end_lease(c, lease, "lost" if killed and not ttl_out else "expired", t)
        elif code == "lease_expired":
            if not ttl_out:
                self.illegal(c, p, msg, "the TTL of lease %s cannot have run out" % lease.id)
            self.end_lease(c, lease, "expired", t)
        elif code == "lease_lost":
            if not killed:
                self.illegal(c, p, msg, "lease %s's session was not killed" % lease.id)
            self.end_lease(c, lease, "lost", t)
        elif code == "commit_unknown":
            if p.spec.op != "commit" or not killed:
                self.illegal(c, p, msg, "only a commit on a killed session may be commit_unknown")
            self.end_lease(c, lease, "commit_unknown", t, unknown=True)
        lease.end_answered = True
        return True

    def alive_answer_legal(self, c, p, msg, lease):
        if lease.event is not None:
            self.illegal(c, p, msg, "the lease had already ended: %s arrived before this answer" % lease.event)
        if p.t_sent > lease.kill_done:
            self.illegal(c, p, msg, "lease %s's MySQL session was killed before this request was sent"
                         % lease.id)
        lease.proven_alive = max(lease.proven_alive, p.t_sent)

    def on_query(self, c, p, msg, code, t):
        if self.gone_answer(c, p, msg, code, t):
            return
        lease = c.lease
        if lease is None:
            self.illegal(c, p, msg, "no lease: no_lease expected")
        s = p.spec.statement
        good, errno = self.statement_outcome(s, lease.write, lease.read)
        if code == "mysql":
            if good or msg["error"].get("mysql_errno") != errno:
                self.illegal(c, p, msg, "expected %s" % ("success" if good else "mysql error %d" % errno))
            self.alive_answer_legal(c, p, msg, lease)
            return
        if code is not None:
            self.illegal(c, p, msg, "unexpected error")
        self.alive_answer_legal(c, p, msg, lease)
        if not good:
            self.illegal(c, p, msg, "expected mysql error %d" % errno)
        if isinstance(s, Inc):
            if msg.get("affected_rows") != 1:
                self.illegal(c, p, msg, "should change 1 row")
            d = p.deltas[0]
            d.owner = lease       # in flight until the lease ends
            lease.incs_ok.append(d)
        else:
            self.check_read(c, p, msg, msg, s, lease.incs_ok, exclude=(lease, c))

    def on_end(self, c, p, msg, code, t):
        if self.gone_answer(c, p, msg, code, t):
            return
        lease = c.lease
        if lease is None:
            self.illegal(c, p, msg, "no lease: no_lease expected")
        if code is not None:
            self.illegal(c, p, msg, "unexpected error")
        self.alive_answer_legal(c, p, msg, lease)
        if msg.get("lease") != lease.id:
            self.illegal(c, p, msg, "should name lease %s" % lease.id)
        commit = p.spec.op == "commit"
        self.end_lease(c, lease, "commit" if commit else "rollback", t, commit=commit)
        lease.end_answered = True

    def on_renew(self, c, p, msg, code, t):
        if self.gone_answer(c, p, msg, code, t):
            return
        lease = c.lease
        if lease is None:
            self.illegal(c, p, msg, "no lease: no_lease expected")
        if code is not None:
            self.illegal(c, p, msg, "unexpected error")
        self.alive_answer_legal(c, p, msg, lease)
        ttl = min(p.spec.ttl_ms if p.spec.ttl_ms is not None else lease.ttl_ms, MAX_TTL_MS)
        if msg.get("lease") != lease.id or msg.get("ttl_ms") != ttl:
            self.illegal(c, p, msg, "expected lease %s, ttl_ms %d" % (lease.id, ttl))
        lease.expiry_floor = p.t_sent + ttl / 1000.0 - SLACK
        lease.last_ttl_ms = ttl

    def on_ping(self, c, p, msg, code, t):
        rest = {k: v for k, v in msg.items() if k != "id"}
        if rest != {"ok": True}:
            self.illegal(c, p, msg, 'expected {"ok":true}')

    def on_bad(self, c, p, msg, code, t):
        # Which check comes first is not specified for an acquire that is
        # both malformed and sent while holding a lease.
        if code == "lease_held" and p.spec.kind in ("bad_field", "no_tables") and c.lease is not None:
            return
        if code != "bad_request":
            self.illegal(c, p, msg, "expected bad_request")

    def on_status(self, c, p, msg, code, t):
        if code is not None or not isinstance(msg.get("leases"), list):
            self.illegal(c, p, msg, "expected ok with a leases list")
        held = [e for e in msg["leases"] if e.get("state") == "held"]
        for e in msg["leases"]:
            if e.get("state") not in ("waiting", "locking", "held"):
                self.illegal(c, p, msg, "unknown state in %r" % (e,))
        names = lambda xs: frozenset(x.split(" AS ")[0] for x in xs)
        for i, a in enumerate(held):
            for b in held[i + 1:]:
                aw, ar, bw, br = names(a["write"]), names(a["read"]), names(b["write"]), names(b["read"])
                if aw & (bw | br) or bw & ar:
                    self.illegal(c, p, msg, "leases %s and %s are both held on a shared table"
                                 % (a.get("lease"), b.get("lease")))
        listed = {e.get("lease"): e for e in msg["leases"]}
        for k in self.claims:
            span = k.certain()
            if isinstance(k, Lease) and span and span[0] <= p.t_sent and t <= span[1]:
                e = listed.get(k.id)
                want = sorted("%s.%s" % (DATABASE, x) for x in k.write)
                if e is None or e.get("state") != "held" or sorted(e.get("write", [])) != want:
                    self.illegal(c, p, msg, "lease %d (%r) is certainly held, status shows %r" % (k.id, k, e))

    def on_event(self, c, msg, t):
        kind = msg.get("event")
        lid = msg.get("lease")
        self.check("ok" not in msg and "id" not in msg, "%s: an event with ok or id: %r" % (c.name, msg))
        if kind == "lease_revoked":
            self.fail("%s: %r, but nobody revoked anything" % (c.name, msg))
        if kind not in ("lease_expired", "lease_lost"):
            return  # unknown events are ignored (§3.1)
        lease = c.leases.get(lid)
        if lease is None:
            # A transact's lease has no id we know; only its own TTL may end it.
            tr = [k for k in self.claims if k.conn is c and isinstance(k, Claim) and not isinstance(k, Lease)
                  and getattr(k, "lease_id", lid) == lid]
            self.check(kind == "lease_expired" and tr, "%s: %r names no lease of this connection"
                       % (c.name, msg))
            return
        self.check(lease.event is None, "%s: a second end event for lease %s: %r" % (c.name, lid, msg))
        self.check(lease.ended_by not in ("commit", "rollback"),
                   "%s: %r after lease %s was answered %s ok" % (c.name, msg, lid, lease.ended_by))
        if kind == "lease_expired":
            self.check(t >= lease.floor(), "%s: %r, but its TTL cannot have run out (%.3f s left)"
                       % (c.name, msg, lease.floor() - t))
            # (A killed lease whose TTL ran out first may end either way.)
            self.check(lease.ended_by in (None, "expired") or lease.ended_by == "lost" and lease.killed_at < INF,
                       "%s: %r after the lease ended as %s" % (c.name, msg, lease.ended_by))
        else:
            self.check(lease.killed_at < INF, "%s: %r, but its session was not killed" % (c.name, msg))
            self.check(lease.ended_by in (None, "lost", "commit_unknown", "expired"),
                       "%s: %r after the lease ended as %s" % (c.name, msg, lease.ended_by))
        lease.event = kind
        if lease.t_end is None:
            lease.t_end = t
        if lease.ended_by is None:
            # Over: the first lease op after it still gets the error (§7).
            mine = [d for d in self.inflight if d.owner is lease]
            for d in mine:
                self.inflight.remove(d)
            lease.incs_ok = []
            lease.ended_by = "expired" if kind == "lease_expired" else "lost"

    # -- the observer

    def observe(self, final=False):
        """Reads every counter with an outside session that does not wait for
        locks; a table that is locked is skipped, unless the model says
        nothing may hold it, which is a leaked lock after SETTLE_BOUND."""
        for table in TABLES:
            deadline = time.monotonic() + scaled(SETTLE_BOUND)
            while True:
                claim = Claim("observer", (), (table,), time.monotonic())
                self.claims.append(claim)
                try:
                    rows = self.world.sql(self.world.observer, "SELECT id, v FROM %s ORDER BY id" % table)
                except pymysql.err.OperationalError as e:
                    claim.t_end = time.monotonic()
                    if e.args[0] != ER_LOCK_WAIT_TIMEOUT:
                        raise
                    holders = [k for k in self.claims if k.who != "observer" and k.conflicts(claim)
                               and k.t_end is None]
                    if holders and not final:
                        break
                    if time.monotonic() > deadline:
                        self.fail("%s stays locked for %.1f s though the model has no lease that may hold it%s"
                                  % (table, scaled(SETTLE_BOUND),
                                     " (claims still open: %r)" % holders if holders else ""))
                    time.sleep(0.02)
                    continue
                claim.t_end = time.monotonic()
                for row_id, v in rows:
                    key = (table, row_id)
                    others = [d.delta for d in self.inflight if d.key == key]
                    possible = {b + s for b in self.base[key] for s in subset_sums(others)}
                    if v not in possible:
                        self.fail("observer: %s.%d = %r, the model allows only %s (committed %s, in flight %s)"
                                  % (table, row_id, v, sorted(possible), sorted(self.base[key]), others))
                    if not others:
                        self.base[key] = {v}
                break

    def check_overlaps(self):
        spans = [(k, k.certain()) for k in self.claims]
        spans = [(k, s) for k, s in spans if s]
        for i, (a, sa) in enumerate(spans):
            for b, sb in spans[i + 1:]:
                if a.conn is not None and a.conn is b.conn:
                    continue
                if a.conflicts(b) and sa[0] <= sb[1] and sb[0] <= sa[1]:
                    self.fail("two conflicting locks at once: %r certainly held %.3f-%.3f, %r %.3f-%.3f"
                              % (a, sa[0] - self.t0, sa[1] - self.t0, b, sb[0] - self.t0, sb[1] - self.t0))

    def settle(self, gone_names, expect_clients):
        """Waits until the daemon has let go of the named connections: they
        are no longer counted and none of their leases is listed."""
        deadline = time.monotonic() + scaled(SETTLE_BOUND + 2)
        last = None
        while True:
            self.daemon_died_check()
            try:
                with self.world.daemon.client(timeout=5) as admin:
                    last = admin.call({"op": "status"})
            except (OSError, AssertionError) as e:
                last = repr(e)
            if isinstance(last, dict) and last.get("ok"):
                # A lease whose client is gone is listed without a client
                # ("client": null) until it is released: a transact read
                # just before the hang-up may still be running, and commit.
                mine = [e for e in last["leases"]
                        if e.get("client") in gone_names or e.get("client") is None]
                # The admin connection itself is one client.
                if not mine and last.get("clients") == expect_clients + 1:
                    return
            if time.monotonic() > deadline:
                self.fail("closed connections %s still hold something after %.1f s: status %s"
                          % (sorted(gone_names), scaled(SETTLE_BOUND + 2), json.dumps(last)[:1500]))
            time.sleep(0.02)

    # -- outside session

    def outside_unlock(self):
        k = self.outside_claim
        if k is None:
            return
        k.end_sent = time.monotonic()
        self.world.sql(self.world.outside, "UNLOCK TABLES")
        k.t_end = time.monotonic()
        self.outside_claim = None
        self.log("outside: UNLOCK TABLES")

    # ---------------------------------------------------------------- rules

    def conn(self, c):
        return self.conns[c % len(self.conns)]

    @rule(c=client_st, req=acquire_st, wait=st.booleans())
    @guarded
    def acquire(self, c, req, wait):
        self.one(c, req, wait)

    @rule(c=client_st, req=query_st, wait=st.booleans())
    @guarded
    def query(self, c, req, wait):
        self.one(c, req, wait)

    @rule(c=client_st, op=st.sampled_from(["commit", "rollback"]), wait=st.booleans())
    @guarded
    def end(self, c, op, wait):
        self.one(c, Simple(op), wait)

    @rule(c=client_st, req=renew_st, wait=st.booleans())
    @guarded
    def renew(self, c, req, wait):
        self.one(c, req, wait)

    @rule(c=client_st, req=transact_st, wait=st.booleans())
    @guarded
    def transact(self, c, req, wait):
        self.one(c, req, wait)

    @rule(c=client_st, req=st.sampled_from([Simple("status"), Simple("ping")]) | bad_st)
    @guarded
    def status_ping_or_bad(self, c, req):
        self.one(c, req, True)

    def one(self, c, req, wait):
        conn = self.conn(c)
        self.send(conn, [req])
        self.step_done(wait_for=conn if wait else None)

    @rule(c=client_st, reqs=st.lists(request_st, min_size=2, max_size=5),
          cuts=st.none() | st.lists(st.integers(1, 999), min_size=1, max_size=6), wait=st.booleans())
    @guarded
    def pipeline(self, c, reqs, cuts, wait):
        """Several requests in one write (cuts=None), or the same bytes cut
        at the given permille positions and sent in pieces."""
        conn = self.conn(c)
        self.send(conn, reqs, cuts=cuts)
        self.step_done(wait_for=conn if wait else None)

    @rule(c=client_st, req=acquire_st, statements=st.lists(statement_st, max_size=4),
          end=st.sampled_from(["commit", "rollback", "keep"]), together=st.booleans())
    @guarded
    def lease_cycle(self, c, req, statements, end, together):
        """The common use: acquire, a few statements, commit or rollback (or
        keep the lease), one request at a time or all in one write."""
        conn = self.conn(c)
        specs = [req] + [Query(s) for s in statements] + ([Simple(end)] if end != "keep" else [])
        if together:
            self.send(conn, specs)
        else:
            for spec in specs:
                self.send(conn, [spec])
                self.drain(conn)
        self.step_done(wait_for=conn)

    @rule(c=client_st, a=st.sampled_from(TABLES), b=st.sampled_from(TABLES), delta=st.integers(1, 3),
          wait_ms=wait_st, together=st.booleans())
    @guarded
    def transfer(self, c, a, b, delta, wait_ms, together):
        """Two writes under one lease, committed: both or neither must land."""
        tables = tuple(sorted({a, b}))
        specs = [Acquire(tables, (), wait_ms, 30000), Query(Inc(a, 1, delta)), Query(Inc(b, 2, delta)),
                 Simple("commit")]
        conn = self.conn(c)
        if together:
            self.send(conn, specs)
        else:
            for spec in specs:
                self.send(conn, [spec])
                self.drain(conn)
        self.step_done(wait_for=conn)

    @rule(c=client_st, reqs=st.lists(request_st, max_size=3), half_line=st.booleans())
    @guarded
    def hang_up(self, c, reqs, half_line):
        """Sends reqs (and maybe half a request) and closes at once, with
        whatever is unanswered. The daemon must let go of everything."""
        conn = self.conn(c)
        self.send(conn, reqs, half_line=b'{"op":"commit"' if half_line else None)
        t = time.monotonic()
        self.pump([conn])
        conn.close()
        self.world.stats.hangups += 1
        self.log("%s: hung up with %d unanswered" % (conn.name, len(conn.pending)))
        for k in self.claims:
            if isinstance(k, Lease) and k.conn is conn:
                k.hangup_at = min(k.hangup_at, t)
                k.expiry_floor = k.floor()  # before its pending renews are dropped
        self.settle({conn.name}, expect_clients=len(self.conns) - 1)
        t_settled = time.monotonic()
        for k in self.claims:
            if k.conn is conn and k.t_end is None:
                k.t_end = t_settled
        # What the unanswered requests may have committed: the increments
        # that a commit or transact behind them could have made durable.
        maybe = []
        current = list(conn.lease.incs_ok) if conn.lease is not None else []
        for p in conn.pending:
            s = p.spec
            if isinstance(s, Query) and isinstance(s.statement, Inc):
                current += p.deltas
            elif s.op == "commit":
                maybe += current
                current = []
            elif s.op in ("rollback", "acquire"):
                current = []
            elif isinstance(s, Transact):
                maybe += p.deltas
        owned = [d for d in self.inflight
                 if d.owner is conn or d.owner is conn.lease or getattr(d.owner, "conn", None) is conn]
        for d in owned:
            self.inflight.remove(d)
        for d in maybe:
            vals = self.base[d.key]
            self.base[d.key] = vals | {v + d.delta for v in vals}
        if conn.lease is not None:
            conn.lease.ended_by = "hangup"
        conn.pending = []
        self.conns[self.conns.index(conn)] = self.connect(conn.slot)
        self.step_done()

    @rule(table=st.sampled_from(TABLES), steps=st.integers(1, 3))
    @guarded
    def outside_lock(self, table, steps):
        """An outside session takes LOCK TABLES ... WRITE (without waiting)
        and keeps it for a few steps."""
        if self.outside_claim is not None:
            self.outside_unlock()
        k = Claim("outside", (table,), (), time.monotonic())
        self.claims.append(k)
        try:
            self.world.sql(self.world.outside, "LOCK TABLES %s WRITE" % table)
        except pymysql.err.OperationalError as e:
            k.t_end = time.monotonic()
            if e.args[0] != ER_LOCK_WAIT_TIMEOUT:
                raise
            self.log("outside: LOCK TABLES %s WRITE refused (locked)" % table)
        else:
            k.granted_at = time.monotonic()
            self.log("outside: LOCK TABLES %s WRITE" % table)
            self.world.stats.outside_locks += 1
            self.outside_claim = k
            self.outside_steps = steps
            for other in self.claims:
                span = other.certain()
                if other is not k and span and span[0] <= k.granted_at <= span[1] and other.conflicts(k):
                    self.fail("an outside session got LOCK TABLES %s WRITE while %r certainly held it"
                              % (table, other))
        self.step_done()

    def killable(self):
        now = time.monotonic()
        return [c for c in self.conns if c.lease is not None and not c.pending and c.lease.event is None
                and c.lease.killed_at == INF and c.lease.floor() - now > scaled(3)]

    @rule(c=client_st)
    @guarded
    def kill_session(self, c):
        """KILL CONNECTION of the MySQL session of a held lease (its thread
        id read from status); the lease must end as lost. (No precondition:
        which rules may run must not depend on timing, or a replay differs.)"""
        candidates = self.killable() if self.kills < 4 else []
        if not candidates:
            self.step_done()
            return
        conn = candidates[c % len(candidates)]
        lease = conn.lease
        with self.world.daemon.client(timeout=5) as admin:
            st_resp = admin.call({"op": "status"})
        entry = [e for e in st_resp.get("leases", []) if e.get("lease") == lease.id]
        self.check(entry and entry[0].get("state") == "held" and isinstance(entry[0].get("mysql_thread"), int),
                   "%s: lease %s is held, status shows %r" % (conn.name, lease.id, entry))
        if entry[0].get("expires_in_ms", 0) < 2000:
            self.step_done()
            return
        thread = entry[0]["mysql_thread"]
        lease.killed_at = time.monotonic()
        try:
            self.world.sql(self.world.observer, "KILL CONNECTION %d" % thread)
        except pymysql.err.OperationalError as e:
            self.fail("KILL CONNECTION %d of lease %s failed: %r" % (thread, lease.id, e))
        lease.kill_done = time.monotonic()
        self.kills += 1
        self.world.stats.kills += 1
        self.log("killed MySQL thread %d of %s's lease %s" % (thread, conn.name, lease.id))
        self.step_done()

    @rule(ms=st.sampled_from([10, 100, 300]))
    @guarded
    def pause(self, ms):
        """Lets time pass: waits run out, TTLs expire, events arrive."""
        self.pump(timeout=ms / 1000.0)
        time.sleep(ms / 2000.0)
        self.step_done()


def make_machine(world):
    return type("TablelockdProtocol", (ProtocolMachine,), {"world": world})
