"""tablelock.dbapi (PEP 249 over a lease) against the real daemon and MariaDB.

What Django's ORM needs of a DB-API module, and what any other DB-API user
would: paramstyle format turned into the daemon's placeholders without
ever splicing a value into the SQL, Python types both ways, rowcount,
lastrowid and description, the exception classes Django maps (1062 is
IntegrityError, a lock timeout OperationalError), and a connection that is
one lease: committed, rolled back or ended, never quietly reused.
"""

import datetime
import decimal
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "python"))
import tablelock  # noqa: E402
import tablelock.dbapi as dbapi  # noqa: E402

from conftest import wait_for  # noqa: E402

TYPES_TABLE = """CREATE TABLE typed (
    id INT AUTO_INCREMENT PRIMARY KEY,
    d DECIMAL(30, 6), dt DATETIME(6), da DATE, ti TIME(6), vb VARBINARY(32), bl BLOB,
    tx VARCHAR(100), f DOUBLE, n INT NULL, bi BIGINT UNSIGNED, bt BIT(8), ts TIMESTAMP NULL,
    y YEAR, js JSON) ENGINE=InnoDB"""


@pytest.fixture
def typed(mariadb):
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS typed")
        cur.execute(TYPES_TABLE)
    return "typed"


@pytest.fixture
def d(daemon):
    return daemon()


def connect(d, **kwargs):
    kwargs.setdefault("write", ["t1"])
    return dbapi.connect(d.sock, client="dbapi-test", **kwargs)


def test_module_globals():
    assert dbapi.apilevel == "2.0" and dbapi.paramstyle == "format" and dbapi.threadsafety == 1
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                 "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                 "NotSupportedError"):
        assert issubclass(getattr(dbapi, name), Exception)
        assert getattr(dbapi.Connection, name) is getattr(dbapi, name)
    assert issubclass(dbapi.IntegrityError, dbapi.DatabaseError)
    assert issubclass(dbapi.DatabaseError, dbapi.Error)
    assert issubclass(dbapi.LockTimeoutError, dbapi.OperationalError)
    assert issubclass(dbapi.LeaseEndedError, dbapi.OperationalError)
    assert issubclass(dbapi.StatementNotAllowedError, dbapi.ProgrammingError)
    # Code that retries OperationalError must not run a commit twice.
    assert issubclass(dbapi.CommitUnknownError, dbapi.DatabaseError)
    assert not issubclass(dbapi.CommitUnknownError, dbapi.OperationalError)
    assert dbapi.NUMBER == "bigint" and dbapi.STRING == "varchar" and dbapi.DATETIME == "date"
    assert dbapi.BINARY == "blob" and dbapi.NUMBER != "varchar"


def test_commit_at_the_end_of_the_block_and_the_lock_during_it(d, tables, observer):
    with connect(d, read=["t2"]) as conn:
        assert not observer.can_read("t1") and not observer.can_write("t2")
        cur = conn.cursor()
        assert cur.execute("UPDATE t1 SET v = v + %s WHERE id = %s", (5, 1)) == 1
        cur.execute("SELECT v FROM t1 WHERE id = %s", [1])
        assert cur.fetchone() == (15,) and cur.fetchone() is None
        cur.execute("SELECT CONNECTION_ID()")
        thread, = cur.fetchone()
        assert thread == conn.lease.client.status()["leases"][0]["mysql_thread"]
    assert observer.value("t1", 1) == 15
    assert observer.can_write("t1") and observer.can_write("t2")
    with pytest.raises(dbapi.InterfaceError, match="lease is over"):
        conn.cursor()


def test_an_exception_rolls_back_and_close_rolls_back(d, tables, observer):
    with pytest.raises(KeyError):
        with connect(d) as conn:
            conn.cursor().execute("UPDATE t1 SET v = 0")
            raise KeyError("boom")
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")
    conn = connect(d)
    conn.cursor().execute("UPDATE t1 SET v = 0")
    conn.close()
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")
    conn = connect(d)
    conn.cursor().execute("UPDATE t1 SET v = 0")
    conn.rollback()
    assert observer.value("t1", 1) == 10 and observer.can_write("t1")
    with pytest.raises(dbapi.InterfaceError, match="rolled back"):
        conn.commit()


def test_types_come_back_as_python_types(d, typed, observer):
    observer.execute("INSERT INTO typed (id, d, dt, da, ti, vb, bl, tx, f, n, bi, bt, ts, y, js) VALUES "
                     "(1, 12345678901234567890.123456, '2024-05-01 12:00:00.250000', '2024-05-01', "
                     "'13:14:15.5', 0x00FF27, 'blob', 'tekst ü', 0.5, NULL, 18446744073709551615, "
                     "b'101', '2024-05-01 12:00:00', 2024, '{\"a\": 1}')")
    observer.execute("INSERT INTO typed (id, ti, f) VALUES (2, '-01:30:00', 2), (3, '25:00:00.000001', NULL)")
    with connect(d, write=["typed"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT id, d, dt, da, ti, vb, bl, tx, f, n, bi, bt, ts, y, js FROM typed ORDER BY id")
        rows = cur.fetchall()
        names = [c[0] for c in cur.description]
        types = [c[1] for c in cur.description]
        assert all(len(c) == 7 for c in cur.description)
    assert names == ["id", "d", "dt", "da", "ti", "vb", "bl", "tx", "f", "n", "bi", "bt", "ts", "y", "js"]
    assert types[1] == dbapi.NUMBER and types[2] == dbapi.DATETIME and types[5] == dbapi.BINARY
    assert rows[0] == (1, decimal.Decimal("12345678901234567890.123456"),
                       datetime.datetime(2024, 5, 1, 12, 0, 0, 250000), datetime.date(2024, 5, 1),
                       datetime.time(13, 14, 15, 500000), b"\x00\xff'", b"blob", "tekst ü", 0.5,
                       None, 18446744073709551615, b"\x05", datetime.datetime(2024, 5, 1, 12, 0),
                       2024, '{"a": 1}')
    assert type(rows[1][8]) is float and rows[1][8] == 2.0
    # TIME outside a day has no datetime.time: a timedelta, as MySQLdb's.
    assert rows[1][4] == -datetime.timedelta(hours=1, minutes=30)
    assert rows[2][4] == datetime.timedelta(hours=25, microseconds=1)


def test_parameters_of_every_type_are_bound_exactly(d, typed, observer):
    values = (7, decimal.Decimal("-12345678901234567890.000001"),
              datetime.datetime(2023, 12, 31, 23, 59, 58, 123456), datetime.date(1999, 1, 2),
              datetime.time(1, 2, 3, 4), b"\x00'\"\\%s?", bytearray(b"\xff\x00"),
              "x'); DROP TABLE t1; -- %s ? \\", 1e-3, None, 2**64 - 1, True)
    with connect(d, write=["typed"]) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO typed (id, d, dt, da, ti, vb, bl, tx, f, n, bi, y) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 2000 + %s)", values)
        assert cur.rowcount == 1 and cur.lastrowid == 7
        cur.execute("SELECT id, d, dt, da, ti, vb, bl, tx, f, n, bi, y FROM typed WHERE id = %s "
                    "AND vb = %s AND d = %s", (7, values[5], values[1]))
        row = cur.fetchone()
        # "_binary %s", as Django's BinaryField writes it, takes bytes too.
        cur.execute("SELECT _binary %s, _BINARY%s, x_binary FROM (SELECT 1 AS x_binary) t",
                    (b"\x00\xfe", b"'"))
        assert cur.fetchone() == (b"\x00\xfe", b"'", 1)
        cur.execute("SELECT CAST(%s AS TIME(6)), %s, %s", (datetime.timedelta(hours=-26, seconds=1), 2**70, -2**70))
        delta, big, small = cur.fetchone()
    assert row == values[:6] + (b"\xff\x00",) + values[7:11] + (2001,)
    assert delta == -datetime.timedelta(hours=25, minutes=59, seconds=59)
    assert (big, small) == (decimal.Decimal(2**70), decimal.Decimal(-2**70))
    got = observer.execute("SELECT tx, HEX(vb) AS vb FROM typed WHERE id = 7")[0]
    assert got == {"tx": values[7], "vb": values[5].hex().upper()}


def test_format_paramstyle(d, tables):
    with connect(d) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 'a%%b', %s, '%%s' LIKE '%%s'", ("%s%%",))
        assert cur.fetchone() == ("a%b", "%s%%", 1)
        cur.execute("SELECT v FROM t1 WHERE id = %s -- %%, 'x\n  /* %% \"' */ # %%", (2,))
        assert cur.fetchall() == ((20,),)
        cur.execute("SELECT 'it''s %%', \"a\\\"%%\", `v` FROM t1 WHERE id = %s", (3,))
        assert cur.fetchall() == (("it's %", 'a"%', 30),)
        # Executable comments are code: a %s there is a parameter.
        cur.execute("SELECT 1 /*! + %s */", (2,))
        assert cur.fetchone() == (3,)
        # Without parameters the SQL goes as it is, % and all.
        cur.execute("SELECT '%s', '%%'")
        assert cur.fetchone() == ("%s", "%%")
        cur.execute("SELECT '%s'", None)
        assert cur.fetchone() == ("%s",)
        for sql, params, why in [
                ("SELECT '%s'", (1,), "inside a quoted string"),
                ("SELECT 1 /* %s */", (1,), "inside a quoted string, name or comment"),
                ("SELECT 1 -- %s", (1,), "comment"),
                ("SELECT %s, %s", (1,), "not enough parameters"),
                ("SELECT %s", (1, 2), "2 parameters given"),
                ("SELECT %d", (1,), "unsupported format sequence"),
                ("SELECT %(a)s", (1,), "unsupported format sequence"),
                ("SELECT 5 %", (), "unsupported format sequence"),
                ("SELECT ?", (1,), "'?' at offset 7"),
                ("SELECT 'abc", (), "unterminated"),
                ("SELECT 1 /* x", (), "unterminated comment"),
                ("SELECT %s", {"a": 1}, "must be a sequence"),
                ("SELECT %s", "ab", "must be a sequence"),
                ("SELECT %s", ([1, 2],), "a list cannot be one value"),
                ("SELECT %s", (float("nan"),), "finite"),
                ("SELECT %s", (decimal.Decimal("Infinity"),), "finite")]:
            with pytest.raises(dbapi.ProgrammingError, match=why):
                cur.execute(sql, params)
        # None of that reached the daemon: the lease is still held.
        cur.execute("SELECT v FROM t1 WHERE id = %s", (1,))
        assert cur.fetchone() == (10,)


def test_rowcount_description_lastrowid_and_fetching(d, tables, typed):
    with connect(d, write=["t1", "typed"]) as conn:
        cur = conn.cursor()
        assert cur.rowcount == -1 and cur.description is None
        cur.execute("UPDATE t1 SET v = v WHERE id <= 2")
        assert cur.rowcount == 0 and cur.description is None and cur.lastrowid is None
        with pytest.raises(dbapi.ProgrammingError, match="no result set"):
            cur.fetchone()
        cur.execute("SELECT id, v FROM t1 ORDER BY id")
        assert cur.rowcount == 3
        assert [c[0] for c in cur.description] == ["id", "v"]
        assert cur.fetchmany() == ((1, 10),)
        assert cur.fetchmany(5) == ((2, 20), (3, 30))
        assert cur.fetchall() == () and cur.fetchone() is None
        cur.execute("SELECT id FROM t1 ORDER BY id")
        assert list(cur) == [(1,), (2,), (3,)]
        cur.execute("SELECT id FROM t1 WHERE id > 5")
        assert cur.rowcount == 0 and cur.fetchall() == () and cur.description[0][0] == "id"
        cur.execute("INSERT INTO typed (tx) VALUES (%s)", ("a",))
        first = cur.lastrowid
        assert first >= 1 and cur.rowcount == 1
        assert cur.executemany("INSERT INTO typed (tx) VALUES (%s)", [("b",), ("c",)]) == 2
        assert cur.rowcount == 2 and cur.lastrowid == first + 2
        cur.execute("DELETE FROM typed WHERE tx IN (%s, %s)", ("a", "b"))
        assert cur.rowcount == 2
        cur.close()
        with pytest.raises(dbapi.InterfaceError, match="cursor is closed"):
            cur.execute("SELECT 1")
    # found_rows: an UPDATE counts the rows it found, as Django's backend asks.
    with connect(d, found_rows=True) as conn:
        cur = conn.cursor()
        assert cur.execute("UPDATE t1 SET v = v WHERE id <= 2") == 2
        assert cur.execute("/* x */ update t1 SET v = 20 WHERE id <= 2") == 2
        assert cur.execute("INSERT INTO t1 (id, v) VALUES (8, 8), (9, 9)") == 2
        assert cur.execute("DELETE FROM t1 WHERE id >= 8") == 2


def test_errors_map_to_pep_249_classes(d, tables, observer):
    with connect(d, read=["t2"]) as conn:
        cur = conn.cursor()
        with pytest.raises(dbapi.IntegrityError) as e:
            cur.execute("INSERT INTO t1 (id, v) VALUES (%s, %s)", (1, 0))
        assert e.value.args[0] == 1062 and "Duplicate entry" in e.value.args[1]
        assert e.value.code == "mysql" and e.value.mysql_errno == 1062 and e.value.sqlstate == "23000"
        with pytest.raises(dbapi.IntegrityError) as e:
            cur.execute("INSERT INTO t1 (id, v) VALUES (%s, %s)", (7, None))
        assert e.value.args[0] == 1048
        with pytest.raises(dbapi.ProgrammingError) as e:
            cur.execute("SELECT FROM WHERE")
        assert e.value.args[0] == 1064
        with pytest.raises(dbapi.ProgrammingError) as e:
            cur.execute("SELECT nosuch FROM t1")
        assert e.value.args[0] == 1054
        with pytest.raises(dbapi.OperationalError) as e:
            cur.execute("UPDATE t2 SET v = 1")
        assert e.value.args[0] == 1099
        with pytest.raises(dbapi.OperationalError) as e:
            cur.execute("SELECT * FROM t2 FOR UPDATE")
        assert e.value.args[0] == 1099
        with pytest.raises(dbapi.DataError) as e:
            cur.execute("UPDATE t1 SET v = %s WHERE id = 1", (2**40,))
        assert e.value.args[0] == 1264
        with pytest.raises(dbapi.StatementNotAllowedError,
                           match="statement firewall refused the statement: COMMIT is not allowed"):
            cur.execute("COMMIT")
        with pytest.raises(dbapi.StatementNotAllowedError, match="SET of system variable"):
            cur.execute("SET SESSION foreign_key_checks = 0")
        with pytest.raises(dbapi.NotSupportedError):
            conn.autocommit(True)
        conn.autocommit(False)
        # Savepoints are allowed, and FOR UPDATE on a table locked for write.
        cur.execute("SAVEPOINT `a`")
        cur.execute("UPDATE t1 SET v = 11 WHERE id = 1")
        cur.execute("ROLLBACK TO SAVEPOINT `a`")
        cur.execute("RELEASE SAVEPOINT `a`")
        cur.execute("SELECT v FROM t1 WHERE id = 1 FOR UPDATE")
        assert cur.fetchall() == ((10,),)
        # After all those errors the lease is still held, and it commits.
        cur.execute("UPDATE t1 SET v = 12 WHERE id = 2")
        assert not observer.can_read("t1")
    assert observer.value("t1", 1) == 10 and observer.value("t1", 2) == 12


def test_lock_timeout(d, tables, outside):
    with outside.cursor() as cur:
        cur.execute("LOCK TABLES t1 WRITE")
    with pytest.raises(dbapi.LockTimeoutError) as e:
        connect(d, wait_ms=200)
    assert e.value.code == "lock_timeout" and isinstance(e.value, dbapi.OperationalError)


def test_an_expired_lease_raises_on_every_later_call(d, tables, observer):
    conn = connect(d, ttl_ms=300)
    cur = conn.cursor()
    cur.execute("UPDATE t1 SET v = 99 WHERE id = 1")
    wait_for(lambda: observer.can_write("t1"), timeout=5, what="the lease to expire")
    with pytest.raises(dbapi.LeaseEndedError) as e:
        cur.execute("SELECT 1")
    assert e.value.code == "lease_expired"
    with pytest.raises(dbapi.LeaseEndedError):
        cur.execute("SELECT 1")
    with pytest.raises(dbapi.LeaseEndedError):
        conn.commit()  # never a commit that did not happen
    conn.close()
    assert observer.value("t1", 1) == 10


def test_commit_unknown_is_its_own_error(d, tables, observer):
    conn = connect(d, timeout=0.5)
    conn.cursor().execute("UPDATE t1 SET v = 5 WHERE id = 1")
    d.proc.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(dbapi.CommitUnknownError) as e:
            conn.commit()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert e.value.code == "commit_unknown"
    with pytest.raises(dbapi.InterfaceError, match="the commit failed"):
        conn.cursor()
    # Unknown indeed: the daemon reads the commit once it runs again, before
    # it sees the connection gone, so either outcome may be the real one.
    wait_for(lambda: observer.can_write("t1"), timeout=5, what="the lease to end")
    assert observer.value("t1", 1) in (5, 10)


def test_connection_over_a_lease_of_a_client(d, tables, observer):
    client = tablelock.Client(d.sock)
    lease = client.acquire(write=["t1"])
    conn = dbapi.Connection(lease)
    conn.cursor().execute("UPDATE t1 SET v = 1 WHERE id = 1")
    conn.commit()
    assert observer.value("t1", 1) == 1 and client.lease is None
    client.ping()  # the client stays open: close_client was not asked for
    client.close()
