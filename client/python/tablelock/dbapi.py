"""tablelock.dbapi: a PEP 249 (DB-API 2.0) connection over a tablelockd lease.

    import tablelock.dbapi

    with tablelock.dbapi.connect(write=["polls_choice"], read=["polls_poll"]) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE polls_choice SET votes = votes + %s WHERE id = %s", (1, 7))
        cur.execute("SELECT votes FROM polls_choice WHERE id = %s", (7,))
        votes, = cur.fetchone()
    # committed here (the tables are free); an exception in the block rolls back

One connection is one lease, so one transaction: the tables are locked when
it is made, and commit() or rollback() ends the lease and the connection
with it (a later call raises InterfaceError; make a new connection for the
next transaction). close() without a commit rolls back. Connection(lease)
wraps a lease taken with tablelock.Client.

paramstyle is "format", as MySQLdb's: %s stands for a value and %% for a
literal %, also inside quoted strings. Each %s becomes one of the daemon's
? placeholders, bound by the daemon (quoted and escaped, never spliced into
the SQL), except that bytes go as FROM_BASE64(?) with their base64 text,
and a Decimal, or an int beyond 64 bits, as its numeric literal (digits,
sign and point only: the exact value, as MySQLdb sends it). A %s inside a
quoted string, a name or a comment, a ? of the daemon's own in the SQL, or
any other % sequence is a ProgrammingError. With parameters None, the SQL
is sent as it is (% left alone).

Values come back as Python types: int, float, str, bytes (binary columns,
BIT), decimal.Decimal, datetime.datetime (DATETIME, TIMESTAMP),
datetime.date, datetime.time (TIME within a day; a TIME outside 00:00:00
to 23:59:59.999999 is a datetime.timedelta), None (NULL, and the zero
dates 0000-00-00, as MySQLdb). rowcount is the rows of a result set, else
MySQL's affected rows; with found_rows=True (what Django's MySQL backend
asks of its server) an UPDATE's rowcount is the rows it found, changed or
not. lastrowid is the AUTO_INCREMENT value the statement generated, or None.

Errors are this module's PEP 249 classes, chosen from the daemon's error
code and, for MySQL's errors, the errno (as MySQLdb does: 1062 duplicate
key is IntegrityError, 1205 lock wait timeout OperationalError, 1064
ProgrammingError, …). Each carries .code (the protocol's, e.g. "mysql",
"lock_timeout"), .mysql_errno and .sqlstate; args is (errno, message) for
MySQL's errors, as MySQLdb's. Four have their own class:

    LockTimeoutError (OperationalError)   the tables stayed locked for wait_ms
    LeaseEndedError (OperationalError)    expired, lost or revoked: rolled back;
                                          every later call raises it again
    CommitUnknownError (DatabaseError)    the commit's outcome is unknown: not an
                                          OperationalError, so that code that
                                          retries those does not run it twice
    StatementNotAllowedError (ProgrammingError)  the daemon's statement firewall
                                          refused it (the message says which rule);
                                          the lease is held and untouched

A Connection has the exception classes as attributes (PEP 249's optional
extension), and raises through them: a subclass may replace them.
"""

import base64
import datetime
import decimal
import re
import time

import tablelock

__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "Connection", "Cursor",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "LockTimeoutError", "LeaseEndedError", "CommitUnknownError", "StatementNotAllowedError",
    "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID",
    "Date", "Time", "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "Binary",
]

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not a connection
paramstyle = "format"


# ---------------------------------------------------------------- errors

class Warning(Exception):  # noqa: A001 (PEP 249's name)
    """PEP 249's Warning (never raised: MySQL's warnings are counted, not raised)."""


class Error(Exception):
    """Every error of this module. code: the protocol's error code ("mysql",
    "lock_timeout", …) or the client's ("connect", "closed", "timeout",
    "usage", "protocol"); None for errors of this module's own (a closed
    connection, a bad %s). mysql_errno, sqlstate: for code "mysql"."""

    def __init__(self, message, code=None, mysql_errno=None, sqlstate=None):
        if mysql_errno is not None:
            super().__init__(mysql_errno, message)
        else:
            super().__init__(message)
        self.message = message
        self.code = code
        self.mysql_errno = mysql_errno
        self.sqlstate = sqlstate

    def __str__(self):
        return self.message


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class LockTimeoutError(OperationalError):
    """The tables stayed locked by others for wait_ms (code "lock_timeout")."""


class LeaseEndedError(OperationalError):
    """The daemon ended the lease (expired, lost, revoked) or the connection
    to it broke: everything was rolled back."""


class CommitUnknownError(DatabaseError):
    """The connection died during the commit: it may or may not have committed."""


class StatementNotAllowedError(ProgrammingError):
    """The daemon's statement firewall refused the statement; nothing ran."""


_PEP_ERRORS = ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
               "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
               "NotSupportedError")
_OWN_ERRORS = ("LockTimeoutError", "LeaseEndedError", "CommitUnknownError",
               "StatementNotAllowedError")

# The protocol's codes (and the Python client's own) -> class name. "mysql"
# is decided by the errno (below); a code not here is InternalError (the
# protocol says: treat an unknown code like internal).
_CODE_ERRORS = {
    "lock_timeout": "LockTimeoutError",
    "lease_expired": "LeaseEndedError",
    "lease_lost": "LeaseEndedError",
    "lease_revoked": "LeaseEndedError",
    "connect": "LeaseEndedError",   # the connection to the daemon broke: the
    "closed": "LeaseEndedError",    # daemon rolled the lease back
    "timeout": "LeaseEndedError",
    "commit_unknown": "CommitUnknownError",
    "statement_not_allowed": "StatementNotAllowedError",
    "bad_params": "ProgrammingError",
    "usage": "ProgrammingError",
    "invalid_table": "ProgrammingError",
    "unknown_table": "ProgrammingError",
    "lease_held": "ProgrammingError",
    "bad_request": "InterfaceError",
    "request_too_large": "InterfaceError",
    "protocol": "InterfaceError",
    "no_lease": "InterfaceError",
    "result_too_large": "OperationalError",
    "statement_timeout": "OperationalError",
    "too_many_waiters": "OperationalError",
    "too_many_clients": "OperationalError",
    "unavailable": "OperationalError",
    "shutting_down": "OperationalError",
    "unauthenticated": "OperationalError",
    "forbidden": "OperationalError",
    "internal": "InternalError",
}

# MySQL errnos -> class name, as MySQLdb classifies them, except that the
# ones Django's MySQL backend reclassifies itself (1048, 1690, 3819, 4025)
# are IntegrityError here already. Other errnos: OperationalError from 1000
# up (lock wait timeout 1205, deadlock 1213, 1099/1100 table not locked),
# InternalError below.
_MYSQL_ERRORS = {}
for _name, _errnos in (
        ("IntegrityError", (1022, 1048, 1052, 1062, 1169, 1215, 1216, 1217, 1451, 1452, 1557,
                            1586, 1690, 1761, 1762, 1859, 3819, 4025)),
        ("ProgrammingError", (1007, 1008, 1044, 1046, 1049, 1050, 1051, 1054, 1060, 1061, 1064,
                              1091, 1102, 1103, 1109, 1110, 1111, 1136, 1146, 1149, 1305)),
        ("DataError", (1264, 1265, 1292, 1365, 1366, 1367, 1406, 1416, 1441)),
        ("NotSupportedError", (1196, 1235, 1286, 1289))):
    for _errno in _errnos:
        _MYSQL_ERRORS[_errno] = _name


def _error_name(code, mysql_errno):
    if code == "mysql":
        if mysql_errno is None:
            return "OperationalError"
        return _MYSQL_ERRORS.get(mysql_errno, "OperationalError" if mysql_errno >= 1000
                                 else "InternalError")
    return _CODE_ERRORS.get(code, "InternalError")


def _acquire_error_name(code, mysql_errno):
    """As _error_name, for the request that takes a lease: a connection that
    broke there ended no lease."""
    if code in ("connect", "closed", "timeout"):
        return "OperationalError"
    return _error_name(code, mysql_errno)


def _error_message(e):
    if e.code == "mysql":
        return e.message
    if e.code == "statement_not_allowed":
        return "tablelockd's statement firewall refused the statement: %s" % e.message
    return "%s [%s]" % (e.message, e.code)


# ---------------------------------------------------------------- types

class _TypeSet(frozenset):
    """A PEP 249 type object: equal to each type name it holds
    (cursor.description's type_code is MySQL's type name, e.g. "varchar")."""

    def __eq__(self, other):
        return other in self if isinstance(other, str) else frozenset.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = frozenset.__hash__


STRING = _TypeSet({"char", "varchar", "text", "enum", "set", "json"})
BINARY = _TypeSet({"binary", "varbinary", "blob", "bit", "geometry"})
NUMBER = _TypeSet({"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float",
                   "double", "year"})
DATETIME = _TypeSet({"date", "time", "datetime", "timestamp"})
ROWID = _TypeSet()

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks):
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks):
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks):
    return Timestamp(*time.localtime(ticks)[:6])


_DATETIME_TEXT = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?$")
_TIME_TEXT = re.compile(r"(-?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$")


def _micro(fraction):
    return int((fraction or "0").ljust(6, "0"))


def _date_value(text):
    m = _DATETIME_TEXT.match(text)
    try:
        return datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except (AttributeError, ValueError):
        return None  # 0000-00-00 and other dates Python has not: None, as MySQLdb


def _datetime_value(text):
    m = _DATETIME_TEXT.match(text)
    try:
        return datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                 int(m.group(4) or 0), int(m.group(5) or 0), int(m.group(6) or 0),
                                 _micro(m.group(7)))
    except (AttributeError, ValueError):
        return None


def _time_value(text):
    m = _TIME_TEXT.match(text)
    if m is None:
        return None
    hours, minutes, seconds = int(m.group(2)), int(m.group(3)), int(m.group(4))
    if not m.group(1) and hours < 24:
        return datetime.time(hours, minutes, seconds, _micro(m.group(5)))
    delta = datetime.timedelta(hours=hours, minutes=minutes, seconds=seconds,
                               microseconds=_micro(m.group(5)))
    return -delta if m.group(1) else delta


def _float_value(v):
    return float(v) if isinstance(v, int) else v


# Column type -> conversion of its non-NULL values (the Python client has
# already made bytes, Decimal and big ints; JSON numbers are int or float).
_CONVERTERS = {
    "date": _date_value,
    "datetime": _datetime_value,
    "timestamp": _datetime_value,
    "time": _time_value,
    "float": _float_value,
    "double": _float_value,
}


def _converted_rows(result):
    converters = [_CONVERTERS.get(t) for t in result.types]
    if not any(converters):
        return result.rows
    rows = []
    for row in result.rows:
        rows.append(tuple(v if f is None or v is None or (isinstance(v, bytes)) else f(v)
                          for v, f in zip(row, converters)))
    return rows


# ---------------------------------------------------------------- parameters

# What matters in SQL text for %s: quoted strings ('…' and "…" with
# backslash escapes and doubled quotes), `names`, comments (# and "-- " to
# the end of the line, /* … */), executable comments (/*! and /*M! open
# code, as for the server), % sequences and ?. The lexical rules are
# MariaDB's, as the daemon's own lexer follows them (sql_mode without
# NO_BACKSLASH_ESCAPES and ANSI_QUOTES, which the daemon guarantees).
_SQL_TOKENS = re.compile(r"""
      (?P<quoted> '(?:[^'\\]|\\.|'')*'
                | "(?:[^"\\]|\\.|"")*"
                | `(?:[^`]|``)*`
                | \#[^\n]*
                | --(?=[\x00-\x20]|$)[^\n]*
                | /\*(?!M?!).*?\*/ )
    | (?P<executable> /\*M?! )
    | (?P<open> ['"`] | /\* )
    | (?P<percent> %(?:\(|.|$) )
    | (?P<question> \? )
""", re.S | re.X)
_PERCENT_INSIDE = re.compile(r"%(.|$)", re.S)
_FIRST_WORD = re.compile(r"(?:[\s(]|\#[^\n]*|--(?=[\x00-\x20]|$)[^\n]*|/\*(?!M?!).*?\*/|/\*M?!\d*)*"
                         r"([A-Za-z]+)", re.S)
_BINARY_INTRODUCER = re.compile(r"(?<![\w$])_binary\s*$", re.I)
_INT64 = (-2**63, 2**63)


def _first_word(sql):
    m = _FIRST_WORD.match(sql)
    return m.group(1).upper() if m else ""


def _literal(value):
    """The exact numeric literal of a Decimal or a big int: nothing but
    digits, a sign and a point, so it needs no quoting."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ProgrammingError("a Decimal parameter must be finite, not %s" % value)
        text = format(value, "f")
    else:
        text = str(int(value))
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        raise ProgrammingError("cannot send %r as a number" % (value,))
    return " " + text if text.startswith("-") else text


def _timedelta_text(delta):
    micro = (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    seconds, micro = divmod(micro, 1000000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return "%s%02d:%02d:%02d.%06d" % (sign, hours, minutes, seconds, micro)


def _bind(value, index):
    """One parameter: (the text that replaces its %s, the value sent for
    the daemon's ?, or no value when the text is a literal)."""
    if value is None or isinstance(value, (bool, str)):
        return "?", (value,)
    if isinstance(value, int):
        if _INT64[0] <= value < _INT64[1]:
            return "?", (value,)
        return _literal(value), ()
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ProgrammingError("parameter %d: a float must be finite, not %r" % (index, value))
        return "?", (value,)
    if isinstance(value, decimal.Decimal):
        return _literal(value), ()
    if isinstance(value, (bytes, bytearray, memoryview)):
        # The protocol carries text: the bytes travel as base64 and MySQL
        # decodes them (a binary string, as MySQLdb's _binary'…').
        return "FROM_BASE64(?)", (base64.b64encode(bytes(value)).decode("ascii"),)
    if isinstance(value, datetime.datetime):
        return "?", (value.replace(tzinfo=None).isoformat(" "),)
    if isinstance(value, datetime.date):
        return "?", (value.isoformat(),)
    if isinstance(value, datetime.time):
        return "?", (value.replace(tzinfo=None).isoformat(),)
    if isinstance(value, datetime.timedelta):
        return "?", (_timedelta_text(value),)
    if isinstance(value, (list, tuple, dict, set)):
        raise ProgrammingError("parameter %d: a %s cannot be one value" % (index, type(value).__name__))
    return "?", (str(value),)


def _percent_inside(token, offset):
    """%% -> % inside a string, name or comment; %s there cannot be a
    parameter (it would not be a value), and any other % is an error."""
    def one(m):
        if m.group(1) == "%":
            return "%"
        if m.group(1) == "s":
            raise ProgrammingError("%%s inside a quoted string, name or comment (offset %d) cannot "
                                   "be a parameter; write %%%% for a literal %%"
                                   % (offset + m.start()))
        raise ProgrammingError("unsupported format sequence %r at offset %d (paramstyle format: "
                               "%%s for a value, %%%% for a literal %%)"
                               % (m.group(0), offset + m.start()))
    return _PERCENT_INSIDE.sub(one, token) if "%" in token else token


def convert(operation, parameters):
    """paramstyle format -> (the daemon's SQL with ? placeholders, params).
    parameters None: the SQL as it is, no params."""
    if not isinstance(operation, str):
        raise ProgrammingError("the operation must be a str, not %s" % type(operation).__name__)
    if parameters is None:
        return operation, None
    if isinstance(parameters, (str, bytes, dict)) or not hasattr(parameters, "__iter__"):
        raise ProgrammingError("parameters must be a sequence for paramstyle format (%%s), not %s"
                               % type(parameters).__name__)
    values = list(parameters)
    pieces, params, used, copied = [], [], 0, 0
    for m in _SQL_TOKENS.finditer(operation):
        kind = m.lastgroup
        if kind == "executable":
            continue
        pieces.append(operation[copied:m.start()])
        copied = m.end()
        text = m.group()
        if kind == "quoted":
            pieces.append(_percent_inside(text, m.start()))
        elif kind == "open":
            raise ProgrammingError("unterminated %s at offset %d" % (
                "comment" if text == "/*" else "quoted string or name", m.start()))
        elif kind == "question":
            raise ProgrammingError("'?' at offset %d: with paramstyle format a parameter is %%s "
                                   "(a ? outside quotes is not SQL MySQL runs)" % m.start())
        elif text == "%%":
            pieces.append("%")
        elif text == "%s":
            if used == len(values):
                raise ProgrammingError("not enough parameters: %d given, more %%s in the SQL"
                                       % len(values))
            placeholder, sent = _bind(values[used], used)
            if placeholder.startswith("FROM_BASE64"):
                # "_binary %s" (Django's BinaryField): FROM_BASE64 returns
                # a binary string already, and an introducer takes only a
                # literal.
                introducer = _BINARY_INTRODUCER.search(pieces[-1])
                if introducer is not None:
                    pieces[-1] = pieces[-1][:introducer.start()]
            pieces.append(placeholder)
            params.extend(sent)
            used += 1
        else:
            raise ProgrammingError("unsupported format sequence %r at offset %d (paramstyle "
                                   "format: %%s for a value, %%%% for a literal %%)"
                                   % (text, m.start()))
    if used != len(values):
        raise ProgrammingError("%d parameters given, but the SQL has %d %%s" % (len(values), used))
    pieces.append(operation[copied:])
    return "".join(pieces), params


# ---------------------------------------------------------------- connection

class Connection:
    """A DB-API connection over a held lease (see the module's doc).

    lease: a tablelock.Lease. found_rows: an UPDATE's rowcount is the rows
    it found, not only those it changed. close_client: close() also closes
    the lease's Client (connect() does this)."""

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError
    LockTimeoutError = LockTimeoutError
    LeaseEndedError = LeaseEndedError
    CommitUnknownError = CommitUnknownError
    StatementNotAllowedError = StatementNotAllowedError

    def __init__(self, lease, found_rows=False, close_client=False):
        self._lease = lease
        self._client = lease.client
        self._found_rows = found_rows
        self._close_client = close_client
        self._over = None        # why the lease is over: "committed", "rolled back", …
        self._ended_by = None    # the error that ended it, raised again by later calls
        self.messages = []

    @property
    def lease(self):
        """The tablelock.Lease this connection runs on."""
        return self._lease

    # -- errors

    def _error(self, e):
        """The PEP 249 error (of this connection's classes) for a client error."""
        cls = getattr(self, _error_name(e.code, e.mysql_errno))
        return cls(_error_message(e), code=e.code, mysql_errno=e.mysql_errno, sqlstate=e.sqlstate)

    def _interface_error(self, message):
        return self.InterfaceError(message)

    def _check_open(self):
        """Raises when the lease is over: the error that ended it again, or
        InterfaceError after commit, rollback or close."""
        if self._ended_by is not None:
            raise self._ended_by
        if self._over is not None:
            raise self._interface_error("the connection's lease is over (%s): a tablelock.dbapi "
                                        "connection is one lease; make a new one" % self._over)

    def _failed(self, e, commits=False):
        """The PEP 249 error for a client error. When the error ended the
        lease, later calls raise: a LeaseEndedError again (also for a
        connection that broke), or, after a failed commit, InterfaceError."""
        err = self._error(e)
        if self._over is None and not self._lease.active:
            self._over = "%s (%s)" % ("the commit failed" if commits else "ended", e.code)
            if not commits:
                self._ended_by = err if isinstance(err, self.LeaseEndedError) else \
                    self.LeaseEndedError("the lease is gone (%s): it was rolled back" % e.code,
                                         code=e.code)
        return err

    # -- PEP 249

    def cursor(self):
        self._check_open()
        return Cursor(self)

    def commit(self):
        """Commits and ends the lease (the tables are free when this returns)."""
        self._check_open()
        try:
            self._lease.commit()
        except tablelock.TablelockError as e:
            raise self._failed(e, commits=True) from e
        self._over = "committed"

    def rollback(self):
        """Rolls back and ends the lease."""
        self._check_open()
        try:
            self._lease.rollback()
        except tablelock.TablelockError as e:
            raise self._failed(e) from e
        finally:
            if self._over is None:
                self._over = "rolled back"

    def close(self):
        """Rolls back a lease still held (PEP 249: closing without a commit
        rolls back); with close_client, closes the Client too."""
        try:
            if self._over is None and self._ended_by is None and self._lease.active:
                try:
                    self._lease.rollback()
                except tablelock.TablelockError:
                    pass  # the lease is gone either way
        finally:
            if self._over is None:
                self._over = "closed"
            if self._close_client:
                self._client.close()

    # -- MySQLdb's extensions that DB-API users (Django among them) call

    def autocommit(self, on):
        """A lease is one transaction: autocommit stays off."""
        if on:
            raise self.NotSupportedError("autocommit cannot be turned on: a tablelock.dbapi "
                                         "connection is one transaction, its lease's")

    def get_autocommit(self):
        return False

    def ping(self, *args):
        """Raises when the lease is over or the daemon does not answer."""
        self._check_open()
        try:
            self._client.ping()
        except tablelock.TablelockError as e:
            raise self._failed(e) from e

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.commit()
            elif self._over is None and self._ended_by is None:
                try:
                    self.rollback()
                except Error:
                    pass  # the block's error matters
        finally:
            self.close()
        return False

    # -- one statement

    def _run(self, sql, params):
        self._check_open()
        try:
            return self._client.query(sql, params or ())
        except tablelock.TablelockError as e:
            raise self._failed(e) from e


class Cursor:
    """A PEP 249 cursor: execute, executemany, fetchone, fetchmany,
    fetchall, description, rowcount, lastrowid, arraysize; iterable."""

    arraysize = 1

    def __init__(self, connection):
        self.connection = connection
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self._rows = []
        self._next = 0
        self._closed = False
        self._executed = None  # the SQL sent, as MySQLdb's (Django logs it)

    def _check(self):
        if self._closed:
            raise self.connection.InterfaceError("the cursor is closed")

    def execute(self, operation, parameters=None):
        """Runs one statement; returns rowcount."""
        self._check()
        self.description, self.rowcount, self.lastrowid = None, -1, None
        self._rows, self._next = [], 0
        try:
            sql, params = convert(operation, parameters)
        except ProgrammingError as e:
            raise self.connection.ProgrammingError(e.message) from None
        self._executed = sql
        result = self.connection._run(sql, params)
        if result.columns:
            self._rows = _converted_rows(result)
            self.description = tuple((name, type_name, None, None, None, None, None)
                                     for name, type_name in zip(result.columns, result.types))
            self.rowcount = len(self._rows)
        else:
            self.rowcount = result.affected_rows
            if self.connection._found_rows and result.info and _first_word(sql) == "UPDATE":
                # "Rows matched: N  Changed: M  Warnings: W", N first in
                # every language.
                digits = re.search(r"\d+", result.info)
                if digits is not None:
                    self.rowcount = int(digits.group())
        self.lastrowid = result.insert_id or None
        return self.rowcount

    def executemany(self, operation, seq_of_parameters):
        """execute() for each parameter sequence, in order, stopping at the
        first error; rowcount is the sum."""
        self._check()
        total = 0
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total
        return total

    def _result_rows(self):
        self._check()
        if self.description is None:
            raise self.connection.ProgrammingError("no result set: the last statement returned no rows")

    def fetchone(self):
        self._result_rows()
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    # fetchmany and fetchall return tuples, as MySQLdb's do: Django's MySQL
    # backend stops reading at an empty tuple (empty_fetchmany_value).

    def fetchmany(self, size=None):
        self._result_rows()
        size = self.arraysize if size is None else size
        rows = tuple(self._rows[self._next:self._next + size])
        self._next += len(rows)
        return rows

    def fetchall(self):
        self._result_rows()
        rows = tuple(self._rows[self._next:])
        self._next = len(self._rows)
        return rows

    def __iter__(self):
        return iter(self.fetchone, None)

    def nextset(self):
        self._check()
        return None

    def callproc(self, procname, parameters=()):
        raise self.connection.NotSupportedError("CALL is refused inside a lease (the firewall: a "
                                                "procedure could end the transaction)")

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def close(self):
        self._closed = True
        self._rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def connect(address=None, *, read=(), write=(), wait_ms=None, ttl_ms=None, client=None,
            token=None, timeout=10.0, found_rows=False):
    """Connects to tablelockd (address: as tablelock.Client's, default
    TABLELOCK_SOCKET, else the default socket), takes a lease on the tables
    (names, "db.name", model classes or (table, alias) pairs) and returns a
    Connection on it. client: the name shown in status. A wait that runs out
    raises LockTimeoutError."""
    c = None
    try:
        c = tablelock.Client(address, name=client, token=token, timeout=timeout)
        lease = c.acquire(read=read, write=write, wait_ms=wait_ms, ttl_ms=ttl_ms)
    except tablelock.TablelockError as e:
        if c is not None:
            c.close()
        cls = globals()[_acquire_error_name(e.code, e.mysql_errno)]
        raise cls(_error_message(e), code=e.code, mysql_errno=e.mysql_errno,
                  sqlstate=e.sqlstate) from e
    return Connection(lease, found_rows=found_rows, close_client=True)
