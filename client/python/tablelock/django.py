"""tablelock.django: acquire_table_lock() for Django, the ORM running on a lease.

Django projects that need table locks copy a small context manager that
runs LOCK TABLES on Django's own connection. This one has the same name
and the same first two parameters, so the switch is the import:

    from tablelock.django import acquire_table_lock

    with acquire_table_lock(read=[Poll], write=[Choice]):
        Choice.objects.filter(id=1).update(votes=F("votes") + 1)
    # committed here; an exception in the block rolls back and propagates

Inside the block, every query the current thread sends through
django.db.connections[using] (querysets, Model.save(), connection.cursor())
runs through tablelockd on the MySQL session that holds the lease's locks,
in one transaction committed when the block ends. Outside it, the
connection is Django's own, as it was.

How: on entry the lease is taken (a tablelock.Client per thread, kept for
the next block), and the DatabaseWrapper's DB-API connection (its
.connection, MySQLdb's) is swapped for a tablelock.dbapi connection over
the lease, with Django's transaction state set as for a transaction
Django does not manage (autocommit off, no atomic block). Django's own
code then runs unchanged on top: transaction.atomic() inside the block is
a savepoint, select_for_update() is allowed, errors come out as Django's
(IntegrityError, OperationalError, ...). Three guards keep every query on
the lease: an execute wrapper refuses a cursor opened before the block
(it would run on Django's own session), the wrapper may not open a new
MySQL connection until the block ends (after a close() inside it), and
the lease's DB-API connection refuses everything once the lease is over.
On exit the saved state is put back.

Configuration: settings.TABLELOCK = {"socket": ..., "client": ...,
"token": ..., "timeout": ...} (all optional: the daemon's address, as
tablelock.Client takes it, else $TABLELOCK_SOCKET, else the default; the
name shown in `tablelock status`, "django" by default; a token for TCP;
seconds a call may wait for an answer, 10 by default). No INSTALLED_APPS
or DATABASES change: DATABASES[using] stays Django's MySQL backend, and
tablelockd's [mysql] database must be its NAME (tables are locked as
NAME.table, so a daemon on another database fails loudly, with MySQL's
error 1100, instead of locking other tables).
"""

import contextlib
import inspect
import logging
import os
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import utils as db_utils
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import TransactionManagementError

import tablelock
from tablelock import dbapi

__all__ = ["acquire_table_lock", "LockTimeoutError", "LeaseEndedError", "CommitUnknownError"]

logger = logging.getLogger("tablelock.django")

_SETTINGS_KEYS = ("socket", "client", "token", "timeout")

# What Django keeps about a connection's transaction: saved on entry, set
# for the block, put back on exit.
_SAVED_STATE = ("connection", "autocommit", "in_atomic_block", "savepoint_ids", "needs_rollback",
                "commit_on_exit", "closed_in_transaction", "errors_occurred", "run_on_commit",
                "run_commit_hooks_on_set_autocommit_on")

# Django 4.2 stores (savepoint ids, func, robust) for on_commit, 3.2 (ids, func).
_ON_COMMIT_ROBUST = "robust" in inspect.signature(BaseDatabaseWrapper.on_commit).parameters


# ---------------------------------------------------------------- errors

class LockTimeoutError(dbapi.LockTimeoutError, db_utils.OperationalError):
    """The tables stayed locked by others for wait_ms: .code "lock_timeout"."""


class LeaseEndedError(dbapi.LeaseEndedError, db_utils.OperationalError):
    """The block's lease ended before its commit (expired, lost, revoked, or
    the connection to tablelockd broke): nothing was committed."""


class CommitUnknownError(dbapi.CommitUnknownError, db_utils.DatabaseError):
    """The connection died during the block's commit: it may or may not have
    committed. Not an OperationalError: a retry could apply the work twice."""


_DJANGO_ERRORS = {
    dbapi.LockTimeoutError: LockTimeoutError,
    dbapi.LeaseEndedError: LeaseEndedError,
    dbapi.CommitUnknownError: CommitUnknownError,
}
_BACKEND_ERRORS = {}  # (dbapi class, Database module) -> combined class
_errors_lock = threading.Lock()


def _pep_name(cls):
    """The PEP 249 class a dbapi error class is, e.g. OperationalError for
    LockTimeoutError."""
    for klass in cls.__mro__:
        if klass.__module__ == dbapi.__name__ and klass.__name__ in dbapi._PEP_ERRORS:
            return klass.__name__
    return "Error"


def _django_class(cls):
    """The class raised at the block's edges for a dbapi error class: also
    Django's own class of the same PEP 249 name (django.db.OperationalError, …)."""
    with _errors_lock:
        if cls not in _DJANGO_ERRORS:
            _DJANGO_ERRORS[cls] = type(cls.__name__, (cls, getattr(db_utils, _pep_name(cls))),
                                       {"__module__": __name__})
        return _DJANGO_ERRORS[cls]


def _django_error(e):
    """A dbapi error (or a client error, on entry) as the block raises it."""
    if isinstance(e, tablelock.TablelockError):
        cls = getattr(dbapi, dbapi._acquire_error_name(e.code, e.mysql_errno))
        return _django_class(cls)(dbapi._error_message(e), code=e.code,
                                  mysql_errno=e.mysql_errno, sqlstate=e.sqlstate)
    for klass in type(e).__mro__:
        if klass.__module__ == dbapi.__name__:
            return _django_class(klass)(e.message, code=e.code, mysql_errno=e.mysql_errno,
                                        sqlstate=e.sqlstate)
    return e


def _backend_connection_class(database):
    """The lease's DB-API connection class for a Django backend whose DB-API
    module is database (MySQLdb): its errors are also that module's, so
    that Django's error wrapper turns them into django.db's classes, as it
    does MySQLdb's own."""
    with _errors_lock:
        cls = _BACKEND_ERRORS.get(database)
        if cls is None:
            attrs = {"__module__": __name__}
            for name in dbapi._PEP_ERRORS + dbapi._OWN_ERRORS:
                ours = getattr(dbapi, name)
                attrs[name] = type(name, (ours, getattr(database, _pep_name(ours))),
                                   {"__module__": __name__})
            cls = _BACKEND_ERRORS[database] = type("LeaseConnection", (_LeaseConnection,), attrs)
        return cls


class _LeaseConnection(dbapi.Connection):
    """The lease's DB-API connection, as Django sees it inside the block:
    the block commits and rolls back, Django code does not."""

    def commit(self):
        raise self.NotSupportedError("commit inside acquire_table_lock(): the block commits when "
                                     "it ends (and frees the tables then)")

    def rollback(self):
        raise self.NotSupportedError("rollback inside acquire_table_lock(): raise an exception out "
                                     "of the block to roll it back, or use transaction.atomic() "
                                     "inside it (a savepoint)")

    def end_commit(self):
        dbapi.Connection.commit(self)

    def end_rollback(self):
        dbapi.Connection.rollback(self)


# ---------------------------------------------------------------- clients

_local = threading.local()


def _config():
    conf = getattr(settings, "TABLELOCK", None)
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        raise ImproperlyConfigured("settings.TABLELOCK must be a dict with the keys %s"
                                   % ", ".join(_SETTINGS_KEYS))
    unknown = sorted(set(conf) - set(_SETTINGS_KEYS))
    if unknown:
        raise ImproperlyConfigured("settings.TABLELOCK: unknown key %s (known: %s)"
                                   % (", ".join(map(repr, unknown)), ", ".join(_SETTINGS_KEYS)))
    address = conf.get("socket") or os.environ.get("TABLELOCK_SOCKET") or tablelock.DEFAULT_SOCKET
    return (address, conf.get("client", "django"), conf.get("token"), conf.get("timeout", 10.0))


def _idle_clients(key):
    pools = getattr(_local, "clients", None)
    if pools is None or getattr(_local, "pid", None) != os.getpid():
        pools = _local.clients = {}  # a forked child makes its own connections
        _local.pid = os.getpid()
    return pools.setdefault(key, [])


def _acquire(key, tables, wait_ms, ttl_ms):
    """A lease from an idle client of this thread, or a new one. A kept
    connection that the daemon closed meanwhile (idle_timeout_ms) is
    replaced once: a closed connection holds no lease, so trying again on
    a new one cannot take two."""
    address, name, token, timeout = key
    idle = _idle_clients(key)
    while True:
        reused = bool(idle)
        client = idle.pop() if reused else tablelock.Client(address, name=name, token=token,
                                                             timeout=timeout)
        try:
            return client.acquire(read=tables[0], write=tables[1], wait_ms=wait_ms, ttl_ms=ttl_ms)
        except tablelock.TablelockError as e:
            if client.fileno() < 0 or e.code in ("connect", "closed", "timeout", "protocol"):
                client.close()
                if reused and e.code in ("connect", "closed"):
                    continue
            else:
                idle.append(client)
            raise


def _release(key, client, healthy):
    if healthy and client.fileno() >= 0 and client.lease is None:
        idle = _idle_clients(key)
        if len(idle) < 2:
            idle.append(client)
            return
    client.close()


# ---------------------------------------------------------------- tables

def _qualified(tables, database):
    """Each table as "database.table" (Django's NAME), so that the lease
    locks the tables Django's unqualified SQL names on a session whose
    database is NAME, and a daemon on another database fails loudly."""
    if tables is None:
        return []
    if isinstance(tables, (str, dict)) or hasattr(tables, "_meta"):
        tables = [tables]

    def one(name):
        name = tablelock._table_name(name)
        return name if not database or "." in name else "%s.%s" % (database, name)

    out = []
    for t in tables:
        if isinstance(t, dict):
            out.append(dict(t, table=one(t["table"])))
        elif isinstance(t, (tuple, list)) and len(t) == 2:
            out.append({"table": one(t[0]), "as": t[1]})
        else:
            out.append(one(t))
    return out


# ---------------------------------------------------------------- the block

class _TableLock(contextlib.ContextDecorator):

    def __init__(self, read, write, wait_ms, ttl_ms, using):
        self.read, self.write = read, write
        self.wait_ms, self.ttl_ms, self.using = wait_ms, ttl_ms, using
        self.lease_connection = None

    @property
    def lease(self):
        """The block's tablelock.Lease (.id, .renew()), while it runs."""
        return self.lease_connection.lease if self.lease_connection is not None else None

    def _recreate_cm(self):
        # As a decorator: a fresh block for each call (threads, recursion).
        return type(self)(self.read, self.write, self.wait_ms, self.ttl_ms, self.using)

    def __enter__(self):
        connection = connections[self.using]
        self._refuse_to_nest(connection)
        database = connection.settings_dict.get("NAME") or ""
        tables = (_qualified(self.read, database), _qualified(self.write, database))
        self.key = _config()
        try:
            lease = _acquire(self.key, tables, self.wait_ms, self.ttl_ms)
        except tablelock.TablelockError as e:
            raise _django_error(e) from e
        self.client = lease.client
        self.lease_connection = _backend_connection_class(connection.Database)(lease, found_rows=True)
        self.connection = connection
        self._swap_in(connection)
        return self

    def _refuse_to_nest(self, connection):
        alias = self.using
        if connection.vendor != "mysql":
            raise ImproperlyConfigured(
                "acquire_table_lock(using=%r): that database's backend is %s; tablelockd lends "
                "MySQL/MariaDB sessions" % (alias, connection.vendor))
        if connection.__dict__.get("_tablelock_block") is not None:
            raise TransactionManagementError(
                "acquire_table_lock() inside acquire_table_lock() on database %r: a block holds one "
                "lease, taken all at once; lock every table in the outer block" % alias)
        if connection.in_atomic_block:
            raise TransactionManagementError(
                "acquire_table_lock() inside transaction.atomic() on database %r: the block's lease "
                "is a transaction of its own, on another MySQL session, so the atomic block's work "
                "could not be part of it (with LOCK TABLES on Django's connection, MySQL would "
                "silently commit it). Take the lock first and use atomic() inside the block."
                % alias)
        if connection.connection is not None and not connection.autocommit:
            raise TransactionManagementError(
                "acquire_table_lock() on database %r while autocommit is off there: a transaction "
                "may be open on Django's connection, and the block could not be part of it; "
                "commit or roll it back first" % alias)

    def _swap_in(self, connection):
        self.saved = {name: getattr(connection, name) for name in _SAVED_STATE}
        connection.connection = self.lease_connection
        connection.autocommit = False
        connection.in_atomic_block = False
        connection.savepoint_ids = []
        connection.needs_rollback = False
        connection.commit_on_exit = True
        connection.closed_in_transaction = False
        connection.run_on_commit = []
        connection.run_commit_hooks_on_set_autocommit_on = False
        # Instance attributes, so only this connection object, and only
        # until the block ends, behaves differently.
        connection.get_new_connection = self._no_new_connection
        connection.on_commit = self._on_commit
        connection.execute_wrappers.append(self._only_on_the_lease)
        connection._tablelock_block = self

    def _swap_out(self):
        connection = self.connection
        for name, value in self.saved.items():
            setattr(connection, name, value)
        for name in ("get_new_connection", "on_commit", "_tablelock_block"):
            connection.__dict__.pop(name, None)
        try:
            connection.execute_wrappers.remove(self._only_on_the_lease)
        except ValueError:
            pass

    # -- the guards

    def _no_new_connection(self, conn_params):
        raise db_utils.InterfaceError(
            "database %r was closed inside acquire_table_lock(): its lease was rolled back, and no "
            "query runs without the lock until the block ends (nothing will be committed)"
            % self.using)

    def _only_on_the_lease(self, execute, sql, params, many, context):
        cursor = getattr(context.get("cursor"), "cursor", None)
        cursor = getattr(cursor, "cursor", cursor)  # the MySQL backend's wrapper, then DB-API's
        if not (isinstance(cursor, dbapi.Cursor) and cursor.connection is self.lease_connection):
            raise db_utils.InterfaceError(
                "a cursor opened before acquire_table_lock() on database %r ran a query inside "
                "the block: it would run on Django's own MySQL session, which does not hold the "
                "lock. Open the cursor inside the block." % self.using)
        return execute(sql, params, many, context)

    def _on_commit(self, func, robust=False):
        if not callable(func):
            raise TypeError("on_commit()'s callback must be a callable.")
        sids = set(self.connection.savepoint_ids)
        entry = (sids, func, robust) if _ON_COMMIT_ROBUST else (sids, func)
        self.connection.run_on_commit.append(entry)

    # -- the end

    def __exit__(self, exc_type, exc, tb):
        connection = self.connection
        lease = self.lease_connection
        healthy = False
        hooks = []
        try:
            if exc_type is not None:
                healthy = self._roll_back()
                return False
            if connection.needs_rollback:
                # An atomic(savepoint=False) block inside failed, and its
                # error was caught: Django marks such a transaction for
                # rollback only. Nothing of the block may be committed.
                healthy = self._roll_back()
                raise TransactionManagementError(
                    "acquire_table_lock() on database %r was rolled back, nothing committed: an "
                    "error inside the block left its transaction marked for rollback (an atomic "
                    "block without a savepoint failed and its error was caught)" % self.using)
            try:
                lease.end_commit()
            except dbapi.Error as e:
                raise _django_error(e) from e
            healthy = True
            hooks = connection.run_on_commit
        finally:
            self._swap_out()
            lease.close()
            _release(self.key, self.client, healthy)
        self._run_hooks(hooks)
        return False

    def _roll_back(self):
        """Rolls the lease back if it is still held; True when the client is
        fit for the next block."""
        lease = self.lease_connection
        if lease._over is not None or lease._ended_by is not None:
            return False
        try:
            lease.end_rollback()
            return True
        except dbapi.Error:
            return False  # the lease is gone either way; the block's error matters

    @staticmethod
    def _run_hooks(hooks):
        # After the commit, with the connection Django's own again, as
        # Django runs them after an atomic block's commit.
        for entry in hooks:
            func = entry[1]
            if len(entry) > 2 and entry[2]:
                try:
                    func()
                except Exception as e:
                    logger.error("Error calling %s in on_commit() (%s).", func.__qualname__, e,
                                 exc_info=True)
            else:
                func()


def acquire_table_lock(read=(), write=(), *, wait_ms=None, ttl_ms=None, using=DEFAULT_DB_ALIAS):
    """A context manager (or decorator): takes a tablelockd lease on the
    tables, runs the block's queries on database `using` on the lease's
    MySQL session, commits when the block ends and rolls back when it
    raises.

    read, write: model classes, table names ("t", "db.t"), or (table,
    alias) pairs for a table that a query names under an alias (MySQL
    wants a lock per alias). Either may be empty, not both. wait_ms: how
    long to wait for the tables (default: the daemon's, 5 s unless
    configured); a wait that runs out raises LockTimeoutError. ttl_ms: how
    long the lease may live (default: the daemon's, 30 s); a lease that
    expires makes the next query raise, and the block's end too: nothing
    of it is committed.

    Raises on entry: TransactionManagementError inside transaction.atomic()
    on the same database (or inside another acquire_table_lock() on it);
    LockTimeoutError; django.db.OperationalError when tablelockd cannot be
    reached. On exit: LeaseEndedError when the lease ended before the
    commit, CommitUnknownError when the commit's outcome is unknown."""
    return _TableLock(read, write, wait_ms, ttl_ms, using)
