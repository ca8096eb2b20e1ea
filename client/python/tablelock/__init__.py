"""tablelock: a Python client for tablelockd (standard library only).

tablelockd lends MariaDB sessions that hold a real LOCK TABLES; the
statements of a lease run on that very session, so every MySQL client sees
the lock until the lease commits or rolls back.

    import tablelock

    client = tablelock.Client(name="polls")        # $TABLELOCK_SOCKET or the default
    with client.lock(read=["polls_poll"], write=[Choice]) as lease:
        row = lease.query("SELECT votes FROM polls_choice WHERE id = ?", [7]).one()
        lease.query("UPDATE polls_choice SET votes = ? WHERE id = ?", [row[0] + 1, 7])
    # committed here; an exception inside the block rolls back instead

Tables are names ("t", "db.t"), Django model classes (their _meta.db_table is
used; Django itself is never imported), or (table, alias) pairs. Statements
take '?' placeholders, bound by the daemon (never spliced into the SQL).

Statements may ride on the acquire and on the commit, in the same MySQL
round trip as LOCK TABLES or the commit, so a read, decide, write cycle
costs two requests:

    with client.lock(write=[Choice], statements=[
            ("SELECT votes FROM polls_choice WHERE id = ?", [7])]) as lease:
        votes = lease.results[0].scalar()
        lease.commit(statements=[
            ("UPDATE polls_choice SET votes = ? WHERE id = ?", [votes + 1, 7])])

and requests may be pipelined (written together, answered in order):

    with client.pipeline() as p:
        for i in ids:
            p.transact([("UPDATE t SET n = n + 1 WHERE id = ?", [i])], write=["t"])
    p.answers   # one per request, in order

Errors are TablelockError (or a subclass) with .code from the protocol's
list ("lock_timeout", "mysql", …) or this module's own ("connect",
"timeout", "closed", "protocol"), plus .mysql_errno and .sqlstate for MySQL
errors, and .statement, the index of the failing statement of a request
that carries several. When the daemon ends a lease on its own (lease_expired, lease_lost,
lease_revoked), the next call on the Client raises that as its error; poll()
reports it without a request.

One Client is one connection and holds at most one lease: use one per
thread. A call that times out closes the connection, which makes the daemon
roll back any lease it held.

Two modules build on this one: tablelock.dbapi, a PEP 249 (DB-API 2.0)
connection over a lease, and tablelock.django, acquire_table_lock() for
Django projects, whose ORM queries inside the block run on the lease.
Neither is imported here: `import tablelock` stays standard-library only.
"""

import base64
import decimal
import json
import os
import select
import socket
import time

__all__ = [
    "Client", "Lease", "Pipeline", "Result", "TablelockError", "ConnectError", "TablelockTimeout",
    "MySQLError", "LockTimeoutError", "LeaseEndedError", "CommitUnknownError",
    "DEFAULT_SOCKET", "PROTOCOL",
]

__version__ = "0.1.0"
PROTOCOL = 1
DEFAULT_SOCKET = "/run/tablelockd/tablelockd.sock"

# Events that end a lease; a request on that lease gets an error of the same name.
_LEASE_EVENTS = ("lease_expired", "lease_lost", "lease_revoked")
_INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "bigint", "year")


# ---------------------------------------------------------------- errors

class TablelockError(Exception):
    """An error from tablelockd or from talking to it.

    code: the protocol's code ("lock_timeout", "mysql", "no_lease", …) or
    this module's ("connect", "timeout", "closed", "protocol", "usage").
    mysql_errno, sqlstate: for code "mysql" (else None). statement: for
    a request with statements (transact, acquire, commit), the index of the
    failing one (else None). lease: for the lease_* codes, the lease that
    ended (else None)."""

    def __init__(self, code, message, mysql_errno=None, sqlstate=None, statement=None,
                 lease=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.mysql_errno = mysql_errno
        self.sqlstate = sqlstate
        self.statement = statement
        self.lease = lease

    def __str__(self):
        text = "%s [%s]" % (self.message, self.code)
        if self.mysql_errno is not None:
            text += " (MySQL error %s, SQLSTATE %s)" % (self.mysql_errno, self.sqlstate)
        return text


class ConnectError(TablelockError):
    """The daemon cannot be reached, or the connection broke ("connect", "closed")."""


class TablelockTimeout(TablelockError):
    """No answer within the timeout ("timeout"); the connection was closed."""


class MySQLError(TablelockError):
    """MySQL refused the statement ("mysql"): see mysql_errno and sqlstate."""


class LockTimeoutError(TablelockError):
    """The tables stayed locked by others for wait_ms ("lock_timeout")."""


class LeaseEndedError(TablelockError):
    """The lease is gone: expired, lost (its MySQL session died) or revoked;
    it was rolled back."""


class CommitUnknownError(TablelockError):
    """The connection died during COMMIT: whether it committed is unknown."""


# A commit refused with these ran nothing: the lease is still held.
_COMMIT_REFUSED = ("statement_not_allowed", "bad_params", "bad_request", "usage")

_ERROR_CLASSES = {
    "connect": ConnectError,
    "closed": ConnectError,
    "timeout": TablelockTimeout,
    "mysql": MySQLError,
    "lock_timeout": LockTimeoutError,
    "lease_expired": LeaseEndedError,
    "lease_lost": LeaseEndedError,
    "lease_revoked": LeaseEndedError,
    "commit_unknown": CommitUnknownError,
}


def _error(code, message, **fields):
    return _ERROR_CLASSES.get(code, TablelockError)(code, message, **fields)


def _response_error(resp):
    """The error of an answer ({"ok":false,"error":{…},"statement":i}), or of
    a results[] entry of the same shape."""
    err = resp.get("error") or {}
    code = err.get("code", "protocol")
    return _error(code, err.get("message", code), mysql_errno=err.get("mysql_errno"),
                  sqlstate=err.get("sqlstate"), statement=resp.get("statement"))


# ---------------------------------------------------------------- results

class Result:
    """One statement's result.

    columns: names; types: MySQL type names ("int", "varchar", "decimal", …);
    rows: a list of tuples. Values are Python values: int, float, str,
    bytes (binary columns), decimal.Decimal (DECIMAL), None (NULL); dates
    and times are strings as MySQL prints them. affected_rows, insert_id,
    warnings are always set; info is MySQL's info string or None (for an
    UPDATE, "Rows matched: 2  Changed: 1  Warnings: 0": the rows it
    found, where affected_rows counts those it changed).

    error: None, or, for a statement that ran but whose result was over
    the daemon's limits (max_rows, max_result_bytes), the TablelockError
    ("result_too_large") that one(), scalar() and dicts() raise; rows is
    then empty."""

    def __init__(self, obj):
        self.error = _response_error(obj) if "error" in obj else None
        cols = obj.get("columns") or []
        self.columns = [c.get("name") for c in cols]
        self.types = [c.get("type") for c in cols]
        self.rows = [tuple(_value(v, t) for v, t in zip(row, self.types))
                     for row in obj.get("rows") or []]
        self.affected_rows = obj.get("affected_rows", 0)
        self.insert_id = obj.get("insert_id", 0)
        self.warnings = obj.get("warnings", 0)
        self.info = obj.get("info")

    @property
    def rowcount(self):
        return len(self.rows) if self.columns else self.affected_rows

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def dicts(self):
        """The rows as dicts keyed by column name."""
        if self.error is not None:
            raise self.error
        return [dict(zip(self.columns, row)) for row in self.rows]

    def one(self):
        """The only row, or None when there is none; more than one is an error."""
        if self.error is not None:
            raise self.error
        if len(self.rows) > 1:
            raise TablelockError("usage", "expected at most one row, got %d" % len(self.rows))
        return self.rows[0] if self.rows else None

    def scalar(self):
        """The first column of the only row (None when there is no row)."""
        row = self.one()
        return row[0] if row is not None else None

    def __repr__(self):
        if self.error is not None:
            return "<Result error: %s>" % self.error.code
        if self.columns:
            n = len(self.rows)
            return "<Result %d row%s: %s>" % (n, "" if n == 1 else "s", ", ".join(self.columns))
        return "<Result %d affected>" % self.affected_rows


def _value(v, type_name):
    if isinstance(v, dict) and "base64" in v:
        return base64.b64decode(v["base64"])
    if isinstance(v, str):
        if type_name == "decimal":
            return decimal.Decimal(v)
        if type_name in _INTEGER_TYPES:
            return int(v)  # unsigned above 2^63-1 comes as exact text
    return v


# ---------------------------------------------------------------- tables

def _table_name(t):
    """A name, a Django model class (or instance), or anything with _meta.db_table."""
    if isinstance(t, str):
        return t
    meta = getattr(t, "_meta", None)
    name = getattr(meta, "db_table", None)
    if isinstance(name, str):
        return name
    raise TablelockError("usage", "a table must be a name or a model with _meta.db_table, not %r"
                         % (t,))


def _table_entry(t):
    if isinstance(t, (tuple, list)):
        if len(t) != 2:
            raise TablelockError("usage", "a (table, alias) pair has two items, not %r" % (t,))
        return {"table": _table_name(t[0]), "as": t[1]}
    if isinstance(t, dict):
        return {"table": _table_name(t["table"]), "as": t["as"]}
    return _table_name(t)


def _tables(tables):
    if tables is None:
        return []
    if isinstance(tables, str) or hasattr(tables, "_meta") or isinstance(tables, dict):
        tables = [tables]
    return [_table_entry(t) for t in tables]


def _lock_request(op, read, write, wait_ms, ttl_ms):
    req = {"op": op}
    w, r = _tables(write), _tables(read)
    if not w and not r:
        raise TablelockError("usage", "%s: no tables to lock (give read= or write=)" % op)
    if w:
        req["write"] = w
    if r:
        req["read"] = r
    if wait_ms is not None:
        req["wait_ms"] = int(wait_ms)
    if ttl_ms is not None:
        req["ttl_ms"] = int(ttl_ms)
    return req


def _params(params):
    out = []
    for p in params or ():
        if isinstance(p, decimal.Decimal):
            p = str(p)
        elif isinstance(p, int) and not isinstance(p, bool) and not -2**63 <= p < 2**63:
            p = str(p)  # JSON integers stop at 64 bits signed
        elif isinstance(p, (bytes, bytearray, memoryview)):
            raise TablelockError("usage", "binary parameters cannot be sent: the protocol "
                                 "takes text (decode it, or use a hex literal)")
        elif p is not None and not isinstance(p, (bool, int, float, str)):
            p = str(p)  # dates and the like: as MySQL reads them from text
        out.append(p)
    return out


def _statement(sql, params=()):
    st = {"sql": sql}
    if params:
        st["params"] = _params(params)
    return st


def _statements(statements, op):
    """SQL strings or (sql, params) pairs into the wire's list. A usage
    error names the statement's index, as the daemon's errors do."""
    if isinstance(statements, str):
        raise TablelockError("usage", "%s: statements is a list of SQL strings or (sql, params) "
                             "pairs, not one string" % op)
    out = []
    for i, st in enumerate(statements):
        try:
            out.append(_statement(st) if isinstance(st, str) else _statement(*st))
        except TablelockError as e:
            e.statement = i
            raise
    return out


# ---------------------------------------------------------------- client

class Lease:
    """A lease held by a Client: run statements, then commit or roll back."""

    def __init__(self, client, lease_id, ttl_ms, results=(), fence=None):
        self.client = client
        self.id = lease_id
        # MySQL's number for this hold (UUID_SHORT() right after LOCK
        # TABLES): strictly increasing along each table's holders, across
        # every daemon on that server. A fencing token; None if the daemon
        # sent none (PROTOCOL.md §7, "Fences").
        self.fence = fence
        self.ttl_ms = ttl_ms
        self.results = list(results)  # of the statements sent with the acquire
        self.ended = False  # committed or rolled back through this object

    @property
    def active(self):
        """True while the Client believes it holds this lease."""
        return self.client._lease == self.id

    def query(self, sql, params=()):
        return self.client.query(sql, params)

    def renew(self, ttl_ms=None):
        self.ttl_ms = self.client.renew(ttl_ms)
        return self.ttl_ms

    def commit(self, statements=None):
        """Runs statements (if any), then commits; returns their Results. A
        statement the daemon refuses before running anything leaves the
        lease held (and this block's rollback to come)."""
        try:
            return self.client.commit(statements)
        finally:
            self.ended = not self.active

    def rollback(self):
        self.ended = True
        self.client.rollback()

    def __repr__(self):
        return "<Lease %d%s>" % (self.id, "" if self.active else " (ended)")


class _LockContext:
    def __init__(self, client, read, write, wait_ms, ttl_ms, statements):
        self.client = client
        self.args = (read, write, wait_ms, ttl_ms, statements)
        self.lease = None

    def __enter__(self):
        read, write, wait_ms, ttl_ms, statements = self.args
        self.lease = self.client.acquire(read=read, write=write, wait_ms=wait_ms, ttl_ms=ttl_ms,
                                         statements=statements)
        return self.lease

    def __exit__(self, exc_type, exc, tb):
        if self.lease.ended:
            return False  # the block committed or rolled back itself
        if exc_type is None:
            # Also when the daemon ended the lease inside the block: commit
            # then raises why (lease_expired, …), so a block that ends
            # normally has always committed.
            self.lease.commit()
            return False
        if self.lease.active:
            try:
                self.lease.rollback()
            except TablelockError:
                pass  # the lease is gone either way; the block's error matters
        return False


class Client:
    """One connection to tablelockd.

    address: "unix:/path", "/path" or "tcp:host:port" (default: the
    TABLELOCK_SOCKET environment variable, else DEFAULT_SOCKET). name: shown
    in `tablelock status`. token: for TCP connections that must authenticate.
    timeout: seconds any one call may wait for its answer; calls that wait
    for tables add their wait_ms."""

    def __init__(self, address=None, name=None, token=None, timeout=10.0):
        self.address = address or os.environ.get("TABLELOCK_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        self.server_version = None
        self._sock = None
        self._buf = b""
        self._events = []
        self._lease = None
        self._ttl_ms = None
        self._next_id = 1
        self.last_lease = None  # the lease id of the last transact
        self.last_fence = None  # the fence of the last acquire or transact
        self._connect()
        if name is not None or token is not None:
            self.hello(name, token)

    # -- connection

    def _connect(self):
        addr = self.address
        try:
            if addr.startswith("tcp:"):
                host, _, port = addr[4:].rpartition(":")
                if host.startswith("[") and host.endswith("]"):
                    host = host[1:-1]
                if not host or not port.isdigit():
                    raise TablelockError("usage", "address %s: expected tcp:HOST:PORT" % addr)
                self._sock = socket.create_connection((host, int(port)), timeout=self.timeout)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                path = addr[5:] if addr.startswith("unix:") else addr
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(self.timeout)
                try:
                    self._sock.connect(path)
                except OSError:
                    self._sock.close()
                    self._sock = None
                    raise
        except socket.timeout:
            raise _error("timeout", "cannot connect to tablelockd at %s: timed out" % addr)
        except OSError as e:
            hint = ""
            if isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
                hint = " (is tablelockd running? give its socket as address= or TABLELOCK_SOCKET)"
            raise _error("connect", "cannot connect to tablelockd at %s: %s%s"
                         % (addr, e.strerror or e, hint)) from None
        self._sock.setblocking(False)

    def close(self):
        """Closes the connection; the daemon rolls back a lease still held."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._lease = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def fileno(self):
        """The socket, readable when the daemon pushed an event (see poll)."""
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def lease(self):
        """The id of the lease held, or None."""
        return self._lease

    # -- I/O

    def _shut(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._lease = None

    def _read_line(self, deadline):
        """The next line, None when nothing came before the deadline (None:
        no wait at all when deadline is 0). Raises on a closed connection."""
        while b"\n" not in self._buf:
            if self._sock is None:
                raise _error("closed", "the connection to tablelockd at %s is closed" % self.address)
            if deadline is None:
                wait = None
            else:
                wait = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._sock], [], [], wait)
            if not ready:
                return None
            try:
                chunk = self._sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                self._shut()
                raise _error("closed", "connection to tablelockd at %s failed: %s"
                             % (self.address, e))
            if not chunk:
                self._shut()
                if self._buf.strip():
                    self._buf += b"\n"
                    break
                raise _error("closed", "tablelockd at %s closed the connection (a lease it "
                             "held is rolled back)" % self.address)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _message(self, deadline, stop_at_event=False):
        """The next message: a response dict, or None when none came in time
        (or, with stop_at_event, as soon as an event came). Events are queued
        on the way."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                return None
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                self._shut()
                raise _error("protocol", "tablelockd sent a line that is not JSON: %r" % line[:100])
            if not isinstance(msg, dict):
                self._shut()
                raise _error("protocol", "tablelockd sent JSON that is not an object")
            if "event" in msg and "ok" not in msg:
                if msg.get("event") in _LEASE_EVENTS:
                    self._events.append(msg)
                    if msg.get("lease") == self._lease:
                        self._lease = None
                    if stop_at_event:
                        return None
                continue
            return msg

    def _drain(self):
        """Reads whatever already arrived (events), without waiting."""
        while self._sock is not None:
            try:
                msg = self._message(0)
            except TablelockError:
                return
            if msg is None:
                return
            self._shut()
            raise _error("protocol", "tablelockd sent a response nobody asked for")

    @staticmethod
    def _event_error(ev):
        what = {
            "lease_expired": "expired: it was not committed or renewed within its TTL",
            "lease_lost": "was lost: its MySQL session died",
            "lease_revoked": "was revoked by an administrator",
        }.get(ev.get("event"), "ended")
        reason = ev.get("reason")
        message = "lease %s %s%s; it was rolled back" % (
            ev.get("lease"), what, " (%s)" % reason if reason else "")
        return _error(ev["event"], message, lease=ev.get("lease"))

    # -- requests: every one, alone or pipelined, goes _send, then _answer

    def _before_send(self):
        """With nothing in flight: a lease-ending event that came in since the
        last answer is raised instead of sending anything, as is a closed
        connection."""
        if self._sock is not None and not self._events:
            self._drain()
        while self._events:
            ev = self._events.pop(0)
            if self._lease is not None and ev.get("lease") not in (None, self._lease):
                continue  # a lease that ended before the one now held
            raise self._event_error(ev)
        if self._sock is None:
            raise _error("closed", "the connection to tablelockd at %s is closed; make a new "
                         "Client" % self.address)

    def _send(self, requests, timeout):
        """Numbers the requests and writes them all. While the socket takes no
        more, what the daemon answers meanwhile is read into the buffer: a
        long pipeline must not fill the daemon's output (it closes a client
        that leaves max_output_bytes unread). timeout: the longest time
        without progress. Raises ("timeout", "closed") with the connection
        shut."""
        chunks = []
        for request in requests:
            request["id"] = self._next_id
            self._next_id += 1
            chunks.append(json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()
                          + b"\n")
        data = memoryview(b"".join(chunks))
        reading = True
        while data:
            try:
                n = self._sock.send(data)
                data = data[n:]
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._shut()
                raise _error("closed", "connection to tablelockd at %s failed: %s"
                             % (self.address, e))
            readable, writable, _ = select.select([self._sock] if reading else [],
                                                  [self._sock], [], timeout)
            if not readable and not writable:
                self._shut()
                raise _error("timeout", "tablelockd at %s took no request within %ss; the "
                             "connection was closed (a lease it held is rolled back)"
                             % (self.address, timeout))
            if readable:
                try:
                    chunk = self._sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    self._shut()
                    raise _error("closed", "connection to tablelockd at %s failed: %s"
                                 % (self.address, e))
                if chunk:
                    self._buf += chunk
                else:
                    reading = False  # closed: the next send says so

    def _answer(self, request, timeout, commits):
        """The answer to request, the oldest one in flight: its successful
        response, or raises its error. What the answer does to the Client's
        lease and events is done here, for every request alike."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            resp = self._message(deadline)
        except ConnectError as e:
            self._lease = None
            if self._events:
                raise self._event_error(self._events.pop(0))
            if commits:
                raise _error("commit_unknown", "whether the transaction committed is "
                             "unknown: %s" % e.message)
            raise
        if resp is None:
            self._shut()
            if commits:
                raise _error("commit_unknown", "whether the transaction committed is unknown: "
                             "no answer within %ss (connection closed)" % timeout)
            raise _error("timeout", "no answer from tablelockd at %s within %ss; the connection "
                         "was closed (a lease it held is rolled back)" % (self.address, timeout))
        if "id" in resp and resp["id"] != request["id"]:
            self._shut()
            raise _error("protocol", "tablelockd answered another request")
        op = request.get("op")
        if resp.get("ok") is True:
            if op in ("commit", "rollback"):
                self._lease = None
            return resp
        exc = _response_error(resp)
        code = exc.code
        if code in _LEASE_EVENTS:
            # The answer reports the ending: its event needs no second report.
            for i, ev in enumerate(self._events):
                if ev.get("event") == code:
                    exc.lease = ev.get("lease")
                    del self._events[i]
                    break
            self._lease = None
        elif code == "no_lease":
            # The lease ended while the request was on its way: say how.
            if self._events:
                exc = self._event_error(self._events.pop(0))
            self._lease = None
        elif code == "commit_unknown":
            self._lease = None
        if op == "rollback" or (op == "commit" and code not in _COMMIT_REFUSED):
            self._lease = None
        raise exc

    def _call(self, request, timeout=None, commits=False):
        """Sends request and returns its successful response; raises otherwise."""
        timeout = self.timeout if timeout is None else timeout
        self._before_send()
        try:
            self._send([request], timeout)
        except TablelockError as e:
            self._lease = None
            if commits:
                raise _error("commit_unknown", "whether the transaction committed is unknown: "
                             "%s" % e.message)
            raise
        return self._answer(request, timeout, commits)

    def _pipeline(self, items):
        """items: (request, timeout, commits, finish) in order. Writes every
        request, then reads every answer; returns one per item: finish(response),
        or the TablelockError it failed with."""
        self._before_send()
        timeouts = [t for _, t, _, _ in items]
        stall = None if None in timeouts else max(timeouts)
        sent_error = None
        try:
            self._send([req for req, _, _, _ in items], stall)
        except TablelockError as e:
            self._lease = None
            sent_error = e
        answers = []
        for request, timeout, commits, finish in items:
            try:
                if sent_error is not None:
                    if commits:
                        raise _error("commit_unknown", "whether the transaction committed is "
                                     "unknown: %s" % sent_error.message)
                    raise _error(sent_error.code, sent_error.message)
                answers.append(finish(self._answer(request, timeout, commits)))
            except TablelockError as e:
                answers.append(e)
        return answers

    # -- operations

    def ping(self):
        self._call({"op": "ping"})

    def hello(self, name=None, token=None):
        """Names this client in status; token authenticates on TCP."""
        req = {"op": "hello"}
        if name is not None:
            req["client"] = name
        if token is not None:
            req["token"] = token
        resp = self._call(req)
        self.server_version = resp.get("version")
        return resp

    def _lock_timeout(self, wait_ms):
        if self.timeout is None:
            return None
        return self.timeout + (wait_ms / 1000.0 if wait_ms is not None else 600.0)

    # Each op is built once, as (request, timeout, commits, finish), for the
    # call and for the pipeline alike; finish turns the response into the
    # op's value.

    def _op_acquire(self, read, write, wait_ms, ttl_ms, statements):
        req = _lock_request("acquire", read, write, wait_ms, ttl_ms)
        if statements:
            req["statements"] = _statements(statements, "acquire")

        def finish(resp):
            self._lease = resp["lease"]
            self._ttl_ms = resp.get("ttl_ms", ttl_ms)
            self.last_fence = resp.get("fence")
            return Lease(self, self._lease, self._ttl_ms,
                         [Result(r) for r in resp.get("results", [])], resp.get("fence"))
        return req, self._lock_timeout(wait_ms), False, finish

    def _op_query(self, sql, params):
        return {"op": "query", **_statement(sql, params)}, self.timeout, False, Result

    def _op_commit(self, statements):
        req = {"op": "commit"}
        if statements:
            req["statements"] = _statements(statements, "commit")
        return req, self.timeout, True, lambda resp: [Result(r) for r in resp.get("results", [])]

    def _op_rollback(self):
        return {"op": "rollback"}, self.timeout, False, lambda resp: None

    def _op_transact(self, statements, read, write, wait_ms, ttl_ms):
        sts = _statements(statements, "transact")
        if not sts:
            raise TablelockError("usage", "transact: no statements")
        req = _lock_request("transact", read, write, wait_ms, ttl_ms)
        req["statements"] = sts

        def finish(resp):
            self.last_lease = resp.get("lease")
            self.last_fence = resp.get("fence")
            return [Result(r) for r in resp.get("results", [])]
        return req, self._lock_timeout(wait_ms), True, finish

    def _run(self, op):
        request, timeout, commits, finish = op
        return finish(self._call(request, timeout=timeout, commits=commits))

    def acquire(self, read=(), write=(), wait_ms=None, ttl_ms=None, statements=None):
        """Takes a lease on the tables; returns a Lease. wait_ms 0 tries once.

        statements (SQL strings or (sql, params) pairs) run right after the
        tables are locked, in the same round trip; their Results are the
        Lease's .results and the lease stays held. If one fails, nothing is
        held (all rolled back and unlocked) and the error's .statement is its
        index; one the firewall refuses is refused before anything is locked."""
        return self._run(self._op_acquire(read, write, wait_ms, ttl_ms, statements))

    def lock(self, read=(), write=(), wait_ms=None, ttl_ms=None, statements=None):
        """A context manager: the lease is taken on entry (with statements, as
        for acquire: see the Lease's .results), committed when the block ends
        normally and rolled back when it raises."""
        return _LockContext(self, read, write, wait_ms, ttl_ms, statements)

    def query(self, sql, params=()):
        """Runs one statement under the lease; returns its Result."""
        return self._run(self._op_query(sql, params))

    def commit(self, statements=None):
        """Runs statements (SQL strings or (sql, params) pairs), then commits
        and unlocks, in one round trip; returns their Results.

        If a statement fails, everything is rolled back and the lease is over
        (the error's .statement is its index). If the daemon refuses one
        before running anything (statement_not_allowed, bad_params), nothing
        ran and the lease is still held: commit again or roll back."""
        return self._run(self._op_commit(statements))

    def rollback(self):
        try:
            self._run(self._op_rollback())
        finally:
            self._lease = None

    def renew(self, ttl_ms=None):
        """Resets the lease's expiry; returns the TTL granted (ms)."""
        req = {"op": "renew"}
        if ttl_ms is not None:
            req["ttl_ms"] = int(ttl_ms)
        resp = self._call(req)
        self._ttl_ms = resp.get("ttl_ms", ttl_ms)
        return self._ttl_ms

    def transact(self, statements, read=(), write=(), wait_ms=None, ttl_ms=None):
        """Lock, run the statements, commit, in one round trip. statements:
        SQL strings or (sql, params) pairs. Returns a list of Results; the
        first failing statement rolls everything back (its index is the
        error's .statement)."""
        return self._run(self._op_transact(statements, read, write, wait_ms, ttl_ms))

    def pipeline(self):
        """A Pipeline: requests queued, then written together and answered in
        order (see Pipeline)."""
        return Pipeline(self)

    def status(self):
        """The daemon's status: {"leases": [...], "pool": {...}, "totals": {...}, …}."""
        resp = self._call({"op": "status"})
        resp.pop("id", None)
        resp.pop("ok", None)
        return resp

    def revoke(self, lease_id):
        """Ends another client's lease (admin only, else code "forbidden")."""
        self._call({"op": "revoke", "lease": int(lease_id)})

    def poll(self, timeout=0.0):
        """A pending lease-ending event ({"event": "lease_expired", "lease": 17,
        …}) waiting up to timeout seconds, or None. A returned event is
        consumed: no later call raises it."""
        if not self._events and self._sock is not None:
            deadline = time.monotonic() + timeout if timeout is not None else None
            while not self._events:
                try:
                    msg = self._message(deadline, stop_at_event=True)
                except ConnectError:
                    if self._events:
                        break  # an event read just before the connection closed
                    raise
                if msg is None:
                    break
                self._shut()
                raise _error("protocol", "tablelockd sent a response nobody asked for")
        if self._events:
            return self._events.pop(0)
        if self._sock is None:
            raise _error("closed", "the connection to tablelockd at %s is closed" % self.address)
        return None


class Pipeline:
    """Requests queued, then written in one go and answered in order.

        with client.pipeline() as p:
            p.acquire(write=["t1"], statements=["SELECT v FROM t1 WHERE id = 1"])
            p.commit(statements=[("UPDATE t1 SET v = v + 1 WHERE id = ?", [1])])
        lease, results = p.answers

    acquire, query, commit, rollback and transact take the Client's
    arguments and queue the request (a usage error raises at once and
    queues nothing). execute() -- run on leaving the block, unless it
    raised -- writes them all, reads every answer, and returns one per
    request, as the Client's call would return it (a Lease, a Result, a
    list of Results, None), also kept as .answers.

    The daemon handles them strictly in order, each as if the previous one
    had completed, so a request that fails does not stop the ones behind it
    (a failed acquire makes the queries and the commit after it fail with
    no_lease). The failures are in .answers, in place, as TablelockError
    instances; execute(raise_on_error=True), the default, then raises the
    first of them, after every answer is read, with .answers on it.

    Events are handled as for a call: one that came in before is raised by
    execute() instead of writing anything. A connection that fails makes
    every request still unanswered fail too (commit_unknown for a commit or
    transact that was written)."""

    def __init__(self, client):
        self.client = client
        self._ops = []
        self.answers = None

    def __len__(self):
        return len(self._ops)

    def acquire(self, read=(), write=(), wait_ms=None, ttl_ms=None, statements=None):
        self._ops.append(self.client._op_acquire(read, write, wait_ms, ttl_ms, statements))
        return self

    def query(self, sql, params=()):
        self._ops.append(self.client._op_query(sql, params))
        return self

    def commit(self, statements=None):
        self._ops.append(self.client._op_commit(statements))
        return self

    def rollback(self):
        self._ops.append(self.client._op_rollback())
        return self

    def transact(self, statements, read=(), write=(), wait_ms=None, ttl_ms=None):
        self._ops.append(self.client._op_transact(statements, read, write, wait_ms, ttl_ms))
        return self

    def execute(self, raise_on_error=True):
        ops, self._ops = self._ops, []
        self.answers = self.client._pipeline(ops) if ops else []
        if raise_on_error:
            for answer in self.answers:
                if isinstance(answer, TablelockError):
                    answer.answers = self.answers
                    raise answer
        return self.answers

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.execute()
        else:
            self._ops = []  # nothing was written
        return False
