"""Proxied statements (issue 3), end to end: the statement firewall, params,
typed results, one-shot transactions, limits and lost sessions, against the
real daemon and a real MariaDB, with an outside MySQL session (the observer)
checking lock state and data independently of the daemon."""

import base64
import time

import pymysql
import pytest

import conftest
from conftest import DATABASE, error_code, ok, query, scaled, settled_status, status, wait_for

# ---------------------------------------------------------------- helpers

ORIGINAL = [(1, 10), (2, 20), (3, 30)]

# MariaDB's max_statement_time exceeded: what the observer's probe gets when
# MySQL makes it wait on the lease's table lock.
ER_STATEMENT_TIMEOUT = 1969
ER_LOCK_WAIT_TIMEOUT = 1205


def acquire(c, write=("t1",), **kwargs):
    """Most tests here lock t1 for write."""
    return conftest.acquire(c, write, **kwargs)


def transact(c, statements, write=("t1",), read=(), wait_ms=2000, ttl_ms=10000, timeout=None):
    req = {"op": "transact", "wait_ms": wait_ms, "ttl_ms": ttl_ms, "statements": []}
    if write:
        req["write"] = list(write)
    if read:
        req["read"] = list(read)
    for s in statements:
        if isinstance(s, str):
            req["statements"].append({"sql": s})
        else:
            sql, params = s
            req["statements"].append({"sql": sql, "params": params})
    return c.call(req, timeout=timeout if timeout is not None else wait_ms / 1000.0 + 10)


def is_int(x):
    return type(x) is int  # bool is an int subclass: refuse it


def result(resp):
    """Asserts a successful query result with the counters every result
    carries (§6.3) and a well-formed result set when there is one."""
    ok(resp)
    for key in ("affected_rows", "insert_id", "warnings"):
        assert key in resp and is_int(resp[key]) and resp[key] >= 0, "result without integer %s: %r" % (key, resp)
    assert ("columns" in resp) == ("rows" in resp), "columns and rows come together: %r" % resp
    if "columns" in resp:
        for col in resp["columns"]:
            assert isinstance(col.get("name"), str), "column without a name: %r" % resp
            assert isinstance(col.get("type"), str) and col["type"], "column without a type: %r" % resp
        for row in resp["rows"]:
            assert isinstance(row, list) and len(row) == len(resp["columns"]), "ragged row in %r" % resp
    return resp


def rows(resp):
    return result(resp)["rows"]


def mysql_error(resp, errno):
    """Asserts a `mysql` error with the given errno; returns the error object."""
    assert error_code(resp) == "mysql", "expected a mysql error %d, got %r" % (errno, resp)
    err = resp["error"]
    assert err.get("mysql_errno") == errno and is_int(err["mysql_errno"]), "expected errno %d: %r" % (errno, resp)
    assert isinstance(err.get("sqlstate"), str) and len(err["sqlstate"]) == 5, "bad sqlstate: %r" % resp
    return err


def lease_entry(d, lease):
    for e in status(d)["leases"]:
        if e.get("lease") == lease:
            return e
    return None


def thread_of(d, lease):
    e = lease_entry(d, lease)
    assert e is not None and e["state"] == "held", "lease %d is not held: %r" % (lease, e)
    assert is_int(e.get("mysql_thread")), "held lease without a mysql_thread: %r" % e
    return e["mysql_thread"]


def probe_blocked(observer, statement, seconds=0.05):
    """True when MySQL makes the observer's statement wait on a lock for at
    least `seconds` (MariaDB's max_statement_time interrupts the wait), False
    when it runs. Faster than the harness's 1-second lock_wait_timeout.

    max_statement_time counts the whole statement, not only the lock wait: on
    a loaded machine a statement that waits for nothing can still take 50 ms.
    So a True from the short probe proves little, and is only used where a
    lock is expected (read_blocked, write_blocked); where the table must be
    free, read_free gives the statement seconds to run (and the observer's
    can_read_now and can_write_now check that no lock is held at all)."""
    try:
        observer.execute("SET STATEMENT max_statement_time=%g FOR %s" % (seconds, statement))
        return False
    except pymysql.err.MySQLError as e:
        if e.args[0] in (ER_STATEMENT_TIMEOUT, ER_LOCK_WAIT_TIMEOUT):
            return True
        raise


def read_blocked(observer, table):
    return probe_blocked(observer, "SELECT COUNT(*) FROM `%s`" % table)


def write_blocked(observer, table):
    return probe_blocked(observer, "UPDATE `%s` SET v = v WHERE 1 = 0" % table)


# Long enough for any statement on a loaded machine, short against a lock
# that is never released (which then fails the test).
FREE_WITHIN_S = 5.0


def read_free(observer, table):
    return not probe_blocked(observer, "SELECT COUNT(*) FROM `%s`" % table, scaled(FREE_WITHIN_S))


def table_rows(observer, table):
    return [(r["id"], r["v"]) for r in observer.execute("SELECT id, v FROM `%s` ORDER BY id" % table)]


def schema_snapshot(observer):
    """Every table and column of the app database, to see that DDL did not run."""
    return [tuple(r.values()) for r in observer.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION", (DATABASE,))]


def running_daemon_queries(observer):
    """Daemon sessions with a statement in MySQL (not idle)."""
    return [r for r in observer.daemon_threads()
            if r["COMMAND"] == "Query" and (r["INFO"] or "") != ""]


def wait_no_daemon_query(observer):
    """Waits until no daemon session runs a statement. Never a single look:
    MySQL still lists a statement for a moment after sending its result
    (an interrupted SLEEP the daemon has already answered for), and a
    session back from a lease runs its reset and settings (mysql_reset_
    connection, SET autocommit=0, …) after the answer that ended the lease."""
    wait_for(lambda: running_daemon_queries(observer) == [], timeout=3,
             what="no daemon query left running in MySQL")


# ---------------------------------------------------------------- firewall

# Base statements, by the rule that refuses them. Table names are
# backquoted so that the case transforms below leave them alone.
REFUSED = {
    "lock_tables": [
        "LOCK TABLES `t1` READ",
        "LOCK TABLE `t2` WRITE",
        "LOCK TABLES `t1` WRITE, `t2` WRITE",
        "UNLOCK TABLES",
        "UNLOCK TABLE",
    ],
    "transaction": [
        "COMMIT",
        "COMMIT WORK",
        "COMMIT AND CHAIN",
        "ROLLBACK",
        "ROLLBACK WORK",
        "ROLLBACK AND CHAIN",
        "ROLLBACK RELEASE",
        # Only ROLLBACK TO is a savepoint statement (allowed, see below).
        "ROLLBACK WORK TO SAVEPOINT s1",
        "BEGIN",
        "BEGIN WORK",
        "BEGIN NOT ATOMIC COMMIT; END",
        "START TRANSACTION",
        "START TRANSACTION READ ONLY",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "RELEASE s1",
        "XA START 'x1'",
        "XA BEGIN 'x1'",
        "XA END 'x1'",
        "XA RECOVER",
    ],
    "set_autocommit": [
        "SET autocommit = 1",
        "SET autocommit=0",
        "SET AUTOCOMMIT = ON",
        "SET `autocommit` = 1",
        "SET @@autocommit = 1",
        "SET @@session.autocommit = 1",
        "SET @@SESSION.AUTOCOMMIT=1",
        "SET @@local.autocommit = 1",
        "SET SESSION autocommit = 1",
        "SET LOCAL autocommit = 1",
        "SET GLOBAL autocommit = 1",
        "SET @@global.autocommit = 1",
        "SET @x = 1, autocommit = 1",
        "SET @x := 1, @@autocommit = 1",
        "SET @x = (SELECT 1), SESSION autocommit = 1",
        "SET @x = CONCAT('a', ','), autocommit = 1",
    ],
    "set_session_settings": [
        "SET wait_timeout = 1",
        "SET SESSION wait_timeout = 1",
        "SET @@wait_timeout = 1",
        "SET @@session.wait_timeout = 1",
        "SET GLOBAL wait_timeout = 1",
        "SET interactive_timeout = 1",
        "SET net_read_timeout = 1",
        "SET net_write_timeout = 1",
        "SET max_statement_time = 100",
        "SET lock_wait_timeout = 1",
        "SET innodb_lock_wait_timeout = 1",
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
        "SET sql_mode = 'ANSI_QUOTES'",
        "SET NAMES latin1",
        "SET CHARACTER SET gbk",
        "SET CHARSET gbk",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET SESSION TRANSACTION READ ONLY",
        "SET STATEMENT wait_timeout = 1 FOR SELECT 1",
        "SET @x = 1, @@session.wait_timeout = 1",
        "SET PASSWORD = PASSWORD('x')",
        "SET ROLE NONE",
    ],
    "ddl": [
        "CREATE TABLE `t9` (a INT)",
        "CREATE TABLE `t9` LIKE `t1`",
        "CREATE OR REPLACE TABLE `t1` (a INT)",
        "CREATE TEMPORARY TABLE `tmp1` (a INT)",
        "CREATE INDEX i1 ON `t1` (v)",
        "CREATE VIEW `v1` AS SELECT 1",
        "CREATE PROCEDURE `p1`() SELECT 1",
        "CREATE TRIGGER `tr1` BEFORE INSERT ON `t1` FOR EACH ROW SET NEW.v = 0",
        "CREATE DATABASE `d9`",
        "CREATE USER `u9`",
        "CREATE SEQUENCE `s9`",
        "ALTER TABLE `t1` ADD COLUMN c INT",
        "ALTER TABLE `t1` ENGINE = InnoDB",
        "DROP TABLE `t1`",
        "DROP TABLE IF EXISTS `t1`, `t2`",
        "DROP TEMPORARY TABLE IF EXISTS `tmp1`",
        "DROP INDEX `PRIMARY` ON `t1`",
        "DROP DATABASE `app`",
        "RENAME TABLE `t1` TO `t9`",
        "TRUNCATE TABLE `t1`",
        "TRUNCATE `t2`",
        "ANALYZE TABLE `t1`",
        "CHECK TABLE `t1`",
        "OPTIMIZE TABLE `t1`",
        "REPAIR TABLE `t1`",
        "GRANT SELECT ON `app`.* TO `tablelockd`@`localhost`",
        "REVOKE SELECT ON `app`.* FROM `tablelockd`@`localhost`",
        "CACHE INDEX `t1` IN hot",
        "LOAD INDEX INTO CACHE `t1`",
        "INSTALL SONAME 'metadata_lock_info'",
        "UNINSTALL SONAME 'metadata_lock_info'",
        "CHANGE MASTER TO MASTER_HOST = 'x'",
        "START SLAVE",
        "STOP SLAVE",
        "RESET MASTER",
        "PURGE BINARY LOGS BEFORE NOW()",
        "SHUTDOWN",
    ],
    "flush_kill_handler_load": [
        "FLUSH TABLES",
        "FLUSH TABLES `t1`",
        "FLUSH TABLES WITH READ LOCK",
        "FLUSH PRIVILEGES",
        "FLUSH LOGS",
        "KILL 1",
        "KILL QUERY 1",
        "KILL CONNECTION 1",
        "KILL HARD QUERY 1",
        "KILL USER `tablelockd`",
        "HANDLER `t1` OPEN",
        "HANDLER `t1` READ FIRST",
        "HANDLER `t1` CLOSE",
        "LOAD DATA INFILE '/etc/hosts' INTO TABLE `t1`",
        "LOAD DATA LOCAL INFILE '/etc/hosts' INTO TABLE `t1`",
        "LOAD XML INFILE '/etc/hosts' INTO TABLE `t1`",
        "BACKUP STAGE START",
    ],
    "into_outfile": [
        "SELECT * FROM `t1` INTO OUTFILE '/tmp/tl-out.txt'",
        "SELECT * INTO OUTFILE '/tmp/tl-out.txt' FROM `t1`",
        "SELECT v FROM `t1` WHERE id = 1 INTO DUMPFILE '/tmp/tl-dump.bin'",
        "SELECT 1 /*! INTO OUTFILE '/tmp/tl-out.txt' */",
        "(SELECT 1) INTO OUTFILE '/tmp/tl-out.txt'",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a INTO OUTFILE '/tmp/tl-out.txt'",
    ],
    "second_statement": [
        "SELECT 1; COMMIT",
        "SELECT 1;COMMIT",
        "SELECT 1 ; /* x */ DROP TABLE `t1`",
        "SELECT 1;\nUNLOCK TABLES",
        "UPDATE `t1` SET v = 1; SELECT 1",
        "SELECT ';' ; COMMIT",
        "SELECT 1 /* ; */ ; ROLLBACK",
        "SET @x = 1; SET autocommit = 1",
        "DO 1; START TRANSACTION",
        "SELECT 1 /*! ; COMMIT */",
        "SELECT 1 /*M!100000 ; COMMIT */",
        "SELECT 1 -- x\n; COMMIT",
        "SELECT 1;;",
        # Quotes, escapes and comment markers inside literals and names:
        # the firewall must end each one where the server does.
        r"SELECT 'a\\'; COMMIT",
        r'SELECT "a\\"; COMMIT',
        "SELECT 'a'''; COMMIT",
        "SELECT '#'; COMMIT",
        "SELECT '-- '; COMMIT",
        'SELECT "/*"; COMMIT',
        r"SELECT 1 AS `a\`; COMMIT",
        "SELECT 1 AS `#`; COMMIT",
        "SELECT 1 AS `a``b`; COMMIT",
    ],
    "prepared_and_other": [
        "PREPARE s1 FROM 'COMMIT'",
        "EXECUTE s1",
        "EXECUTE IMMEDIATE 'COMMIT'",
        "DEALLOCATE PREPARE s1",
        "DROP PREPARE s1",
        "CALL p1()",
        "USE mysql",
        "SHOW TABLES",
        "IF 1 = 1 THEN COMMIT; END IF",
        "WHILE 0 DO SELECT 1; END WHILE",
        "BINLOG 'AAAA'",
        "SIGNAL SQLSTATE '45000'",
    ],
}


def _outside_quotes(s, fn):
    """Applies fn(ch, i) to every character outside '…', "…" and `…`."""
    out, quote = [], None
    for i, ch in enumerate(s):
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            out.append(ch)
        else:
            out.append(fn(ch, i))
    # "/*m!" is a plain comment to the server: keep the marker as written.
    return "".join(out).replace("/*m!", "/*M!")


def _split_first(s):
    head, _, tail = s.partition(" ")
    return head, tail


# Hostile spellings of one statement: every one must be refused too.
SPELLINGS = [
    ("plain", lambda s: s),
    ("lower case", lambda s: _outside_quotes(s, lambda ch, i: ch.lower())),
    ("mixed case", lambda s: _outside_quotes(s, lambda ch, i: ch.upper() if i % 2 else ch.lower())),
    ("leading whitespace", lambda s: " \t\r\n\n\x0b\x0c  " + s),
    ("block comment", lambda s: "/* SELECT 'x' ? */ " + s),
    ("glued comment", lambda s: "/**/" + s),
    ("multi-line comment", lambda s: "/*\n * SELECT 1;\n */\n" + s),
    ("dash comment", lambda s: "-- SELECT\n" + s),
    ("hash comment", lambda s: "# SELECT\r\n" + s),
    ("comments and whitespace", lambda s: "\n  /* a */ -- b\n # c\n\t/**/ " + s),
    ("executable comment", lambda s: "/*! " + s + " */"),
    ("versioned executable comment", lambda s: "/*!50700 " + s + " */"),
    ("MariaDB executable comment", lambda s: "/*M! " + s + " */"),
    ("MariaDB versioned comment", lambda s: "/*M!100100 " + s + " */"),
    ("keyword in executable comment", lambda s: "/*!%s*/ %s" % _split_first(s)),
    ("keyword in MariaDB comment", lambda s: "/*M!%s */ %s" % _split_first(s)),
    # The server (10.11) ignores a comment for a newer version: it runs s.
    ("behind a future-version comment", lambda s: "/*M!999999 SELECT */ " + s),
    ("behind a future MySQL-version comment", lambda s: "/*!99999 SELECT */ " + s),
    ("trailing semicolon", lambda s: s + ";"),
    ("trailing comment", lambda s: s + " -- done"),
]


@pytest.mark.parametrize("rule", sorted(REFUSED))
def test_firewall_refuses_every_spelling_and_keeps_the_lease(daemon, observer, tables, rule):
    """Each statement of the rule, in every hostile spelling, gets
    statement_not_allowed with a reason; afterwards the same lease is held on
    the same MySQL session (t1 still blocks the observer, t2 still refuses
    its writes), its uncommitted write is intact, a later query works, and a
    rollback leaves the data and schema exactly as they were."""
    d = daemon()
    schema = schema_snapshot(observer)
    failures = []
    with d.client() as c:
        for base in REFUSED[rule]:
            resp = ok(acquire(c, write=["t1"], read=["t2"]))
            lease = resp["lease"]
            thread = thread_of(d, lease)
            assert result(query(c, "UPDATE t1 SET v = 999 WHERE id = 1"))["affected_rows"] == 1
            for name, spell in SPELLINGS:
                sql = spell(base)
                resp = query(c, sql)
                if resp.get("ok") is not False or resp.get("error", {}).get("code") != "statement_not_allowed":
                    failures.append("%r (%s): %r" % (sql, name, resp))
                    continue
                message = resp["error"].get("message")
                if not isinstance(message, str) or len(message) < 10:
                    failures.append("%r (%s): no reason given: %r" % (sql, name, resp))
            # The lease is untouched: same lease, same session, same transaction.
            entry = lease_entry(d, lease)
            if entry is None or entry["state"] != "held" or entry["mysql_thread"] != thread:
                failures.append("after %r: lease %d is no longer held on thread %d: %r" % (base, lease, thread, entry))
            got = query(c, "SELECT v FROM t1 WHERE id = 1")
            if got.get("ok") is not True or got["rows"] != [[999]]:
                failures.append("after %r: the lease's uncommitted write is gone: %r" % (base, got))
            if not read_blocked(observer, "t1"):
                failures.append("after %r: the observer can read t1: the WRITE lock is gone" % base)
            if rule in ("lock_tables", "transaction") and not write_blocked(observer, "t2"):
                failures.append("after %r: the observer can write t2: the READ lock is gone" % base)
            ok(c.call({"op": "rollback"}))
            for table in ("t1", "t2"):
                now = table_rows(observer, table)
                if now != ORIGINAL:
                    failures.append("after %r: %s holds %r" % (base, table, now))
                    observer.execute("DELETE FROM `%s`" % table)
                    observer.execute("INSERT INTO `%s` (id, v) VALUES (1, 10), (2, 20), (3, 30)" % table)
            if schema_snapshot(observer) != schema:
                failures.append("after %r: the schema changed" % base)
                break
    assert not failures, "%d problems:\n" % len(failures) + "\n".join(failures)
    assert status(d)["totals"]["committed"] == 0


def test_firewall_refusal_leaves_the_lease_usable_and_committable(daemon, observer, tables):
    """After refusals, the held lease goes on: a later allowed write and a
    commit work, and only that write is kept."""
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        for sql in ("COMMIT", "/*!50000 UNLOCK TABLES */", "SELECT 1; DROP TABLE t1", "SET autocommit = 1"):
            assert error_code(query(c, sql)) == "statement_not_allowed", sql
        assert read_blocked(observer, "t1")
        ok(query(c, "UPDATE t1 SET v = 22 WHERE id = 2"))
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 22), (3, 30)]


def test_savepoints_nest_inside_the_lease(daemon, observer, tables):
    """SAVEPOINT, ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT run on the
    lease's session and end neither its transaction nor its locks: after a
    ROLLBACK TO, the work from before the savepoint is still there,
    uncommitted, the observer is still locked out, and only the lease's
    commit (or rollback) settles it. An unknown savepoint is MySQL's error
    1305 and leaves the transaction intact."""
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c, write=["t1"], read=["t2"]))["lease"]
        thread = thread_of(d, lease)
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        ok(query(c, "SAVEPOINT `s1`"))
        ok(query(c, "UPDATE t1 SET v = 22 WHERE id = 2"))
        ok(query(c, "ROLLBACK TO SAVEPOINT `s1`"))
        entry = lease_entry(d, lease)
        assert entry["state"] == "held" and entry["mysql_thread"] == thread
        assert read_blocked(observer, "t1") and write_blocked(observer, "t2")
        assert rows(query(c, "SELECT id, v FROM t1 ORDER BY id")) == [[1, 11], [2, 20], [3, 30]]
        ok(query(c, "savepoint s2"))
        ok(query(c, "UPDATE t1 SET v = 33 WHERE id = 3"))
        ok(query(c, "RELEASE SAVEPOINT s2"))
        mysql_error(query(c, "ROLLBACK TO s2"), 1305)
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 3")) == [[33]]
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 33)]

    with d.client() as c:
        ok(acquire(c, write=["t1"]))
        ok(query(c, "UPDATE t1 SET v = 1 WHERE id = 1"))
        ok(query(c, "SAVEPOINT s1"))
        ok(query(c, "UPDATE t1 SET v = 2 WHERE id = 2"))
        ok(query(c, "RELEASE SAVEPOINT s1"))
        ok(c.call({"op": "rollback"}))
    # Neither savepoint statement committed anything: the rollback undid all.
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 33)]
    totals = settled_status(d)["totals"]
    assert totals["committed"] == 1 and totals["rolled_back"] == 1


def test_firewall_messages_say_why(daemon, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        expect = {
            "COMMIT": "commit",
            "UNLOCK TABLES": "unlock",
            "SET @@autocommit = 1": "autocommit",
            "SET SESSION wait_timeout = 5": "wait_timeout",
            "DROP TABLE t1": "drop",
            "SELECT 1; SELECT 2": "more than one statement",
            "SELECT * FROM t1 INTO OUTFILE '/tmp/x'": "outfile",
        }
        for sql, word in expect.items():
            resp = query(c, sql)
            assert error_code(resp) == "statement_not_allowed", (sql, resp)
            assert word in resp["error"]["message"].lower(), "the reason for %r does not say %r: %r" % (sql, word, resp)
        ok(c.call({"op": "rollback"}))


def test_allowed_statements_pass(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1"], read=["t2"]))
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 1")) == [[10]]
        assert rows(query(c, "select v from t1 where id = 2")) == [[20]]
        assert rows(query(c, "  \n\t/* c */ -- c\n# c\n SeLeCt 3")) == [[3]]
        assert rows(query(c, "/*!40101 SELECT 4 */")) == [[4]]
        assert rows(query(c, "/*M!100100 SELECT 5 */")) == [[5]]
        assert rows(query(c, "(SELECT 6)")) == [[6]]
        assert rows(query(c, "SELECT 7;")) == [[7]]
        assert rows(query(c, "SELECT 8; -- done\n")) == [[8]]
        assert rows(query(c, "SELECT 9 ; /* done */ ")) == [[9]]
        # A ';' inside a literal, a name or a comment is not a second statement.
        assert rows(query(c, r"SELECT 'a\'; COMMIT'")) == [["a'; COMMIT"]]
        assert rows(query(c, "SELECT 'a''; COMMIT'")) == [["a'; COMMIT"]]
        assert rows(query(c, "SELECT 1 AS `; COMMIT`")) == [[1]]
        assert rows(query(c, "SELECT 1 /* ; COMMIT */")) == [[1]]
        assert rows(query(c, "SELECT 1 -- ; COMMIT")) == [[1]]
        assert rows(query(c, "WITH x AS (SELECT v FROM t2 WHERE id = 3) SELECT v + 1 FROM x")) == [[31]]
        assert rows(query(c, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
                             "SELECT n FROM r")) == [[1], [2], [3]]
        assert rows(query(c, "VALUES (1), (2)")) == [[1], [2]]
        # TABLE is allowed where the server has it; MariaDB 10.11 has not:
        # the server answers, not the firewall.
        resp = query(c, "TABLE t2")
        if resp.get("ok"):
            assert sorted(map(tuple, rows(resp))) == ORIGINAL
        else:
            assert mysql_error(resp, 1064)
        assert "columns" not in result(query(c, "DO 1"))
        assert "columns" not in result(query(c, "DO SLEEP(0)"))
        assert result(query(c, "SET @x = 1"))["affected_rows"] == 0
        assert rows(query(c, "SELECT @x")) == [[1]]
        ok(query(c, "SET @a := 'a', @`b c` = 2, @'d' = @x + 1"))
        assert rows(query(c, "SELECT @a, @`b c`, @d")) == [["a", 2, 2]]
        ok(query(c, "SELECT v INTO @y FROM t1 WHERE id = 3"))
        assert rows(query(c, "SELECT @y")) == [[30]]
        assert result(query(c, "INSERT INTO t1 (id, v) VALUES (4, 40), (5, 50)"))["affected_rows"] == 2
        assert result(query(c, "UPDATE t1 SET v = v + 1 WHERE id >= 4"))["affected_rows"] == 2
        assert result(query(c, "DELETE FROM t1 WHERE id = 5"))["affected_rows"] == 1
        assert result(query(c, "REPLACE INTO t1 (id, v) VALUES (2, 22)"))["affected_rows"] == 2
        assert result(query(c, "INSERT INTO t1 (id, v) VALUES (3, 0) ON DUPLICATE KEY UPDATE v = 33"))[
            "affected_rows"] == 2
        assert result(query(c, "/* w */ update t1 set v = v where id = 1"))["affected_rows"] == 0
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 10), (2, 22), (3, 33), (4, 41)]
    assert table_rows(observer, "t2") == ORIGINAL
    # User variables do not outlive the lease.
    with d.client() as c:
        ok(acquire(c))
        assert rows(query(c, "SELECT @x, @y")) == [[None, None]]
        ok(c.call({"op": "rollback"}))


def test_info_says_how_many_rows_an_update_found(daemon, observer, tables):
    """PROTOCOL.md §6.3: a result carries MySQL's info string when MySQL
    gives one. An UPDATE that finds a row but changes nothing has
    affected_rows 0 and says "Rows matched: 1" (Django's save() of an
    unchanged object needs that count); statements without an info string
    have no "info"."""
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        same = result(query(c, "UPDATE t1 SET v = v WHERE id = 1"))
        assert same["affected_rows"] == 0
        assert same["info"] == "Rows matched: 1  Changed: 0  Warnings: 0", same
        two = result(query(c, "UPDATE t1 SET v = 20 WHERE id <= 2"))
        assert two["affected_rows"] == 1 and two["info"].startswith("Rows matched: 2  Changed: 1"), two
        assert result(query(c, "INSERT INTO t1 (id, v) VALUES (4, 40), (5, 50)"))["info"].startswith(
            "Records: 2  Duplicates: 0")
        for sql in ("INSERT INTO t1 (id, v) VALUES (6, 60)", "DELETE FROM t1 WHERE id = 6",
                    "SELECT v FROM t1 WHERE id = 1", "SET @x = 1"):
            assert "info" not in result(query(c, sql)), sql
        ok(c.call({"op": "rollback"}))
        r = ok(transact(c, ["UPDATE t1 SET v = v WHERE id = 3"]))["results"][0]
        assert r["affected_rows"] == 0 and r["info"].startswith("Rows matched: 1"), r
    assert table_rows(observer, "t1") == ORIGINAL


def test_unterminated_sql_is_refused_as_documented(daemon, observer, tables):
    """PROTOCOL.md §4 (query): an unterminated string, name or comment in sql
    is refused by the firewall (it cannot read the statement). The lease
    stays held."""
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        for sql in ("SELECT 'abc", "SELECT `abc", "SELECT 1 /* abc", 'SELECT "abc'):
            resp = query(c, sql)
            assert error_code(resp) == "statement_not_allowed", "%r: %r" % (sql, resp)
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 1")) == [[10]]
        ok(c.call({"op": "rollback"}))


# ---------------------------------------------------------------- placeholders and params


def test_placeholders_in_literals_names_and_comments_are_not_placeholders(daemon, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        res = result(query(
            c, "SELECT '?' AS a, \"?\" AS b, 'it''s ?' AS c, 'it\\'s ?' AS d, \"a\\\"?\" AS e, "
               "N'?' AS f, _utf8mb4'?' AS g, '#?' AS h, '/* ? */' AS i, ? AS `x?y`, `v` AS `?` "
               "FROM t1 /* ? ' */ WHERE id = ? -- ? '\n # ? \"\n", [5, 2]))
        assert [col["name"] for col in res["columns"]] == ["a", "b", "c", "d", "e", "f", "g", "h", "i", "x?y", "?"]
        assert res["rows"] == [["?", "?", "it's ?", "it's ?", 'a"?', "?", "?", "#?", "/* ? */", 5, 20]]
        # A comment holding a quote does not open a string.
        assert rows(query(c, "/* it's */ SELECT ? /* \" */ + ? # '\n", [1, 2])) == [[3]]
        # Adjacent placeholders, and a param that holds a '?'.
        assert rows(query(c, "SELECT ?+?", [1, 2])) == [[3]]
        assert rows(query(c, "SELECT ?, ?, ?", ["?", "'?'", "x"])) == [["?", "'?'", "x"]]
        # A ? inside an executable comment is code, so it is a placeholder.
        assert rows(query(c, "SELECT 1 /*! + ? */ AS x", [2])) == [[3]]
        # "--" not followed by a space is not a comment in MySQL: 5 - (-2).
        assert rows(query(c, "SELECT 5 --?", [2])) == [[7]]
        # The counts follow the same rules.
        assert error_code(query(c, "SELECT '?'", [1])) == "bad_params"
        assert error_code(query(c, "SELECT 1 /* ? */", [1])) == "bad_params"
        assert error_code(query(c, "SELECT `?` FROM t1", [1])) == "bad_params"
        assert error_code(query(c, "SELECT 1 /*! + ? */")) == "bad_params"
        assert rows(query(c, "SELECT v FROM t1 ORDER BY id LIMIT ?", [2])) == [[10], [20]]
        # A ? in a comment the server ignores (a newer version's) would put
        # the quoted value inside a comment, where its quotes mean nothing:
        # "*/ OR 1=1 /*" would end the comment and become SQL. Never run.
        for sql in ("SELECT v FROM t1 WHERE id = 1 /*M!999999 AND ? */",
                    "SELECT v FROM t1 WHERE id = 1 /*!99999 AND ? */"):
            resp = query(c, sql, ["*/ OR 1=1 /*"])
            assert error_code(resp) in ("bad_params", "statement_not_allowed"), (sql, resp)
        ok(c.call({"op": "rollback"}))


INJECTIONS = [
    "it's",
    'say "hi"',
    "back\\slash",
    "trailing backslash\\",
    "\\'",
    "\\\\'; DROP TABLE t1; --",
    "'; DROP TABLE t1; --",
    "1'; DROP TABLE t1; --",
    "\"; DROP TABLE t1; --",
    "') OR ('1'='1",
    "x' OR 1=1 #",
    "*/ COMMIT /*",
    "?",
    "??",
    "%_",
    "`t1`",
    "nul\x00byte",
    "\x00",
    "\x00'; COMMIT; --",
    "ctrl \x1a \r\n \t \x08 \x7f",
    "unicode é ü ß Ω 日本語 ✓ \u2028 😀 𝄞",
    "\u00bf\u0027",  # ¿' — a multi-byte character right before a quote
    "",
    " ",
    "'" * 50 + "\\" * 51,
    "long " + "x'\\" * 5000,
]


def test_params_that_try_to_inject_sql_stay_data(daemon, mariadb, observer, tables):
    mariadb.sql("DROP TABLE IF EXISTS p")
    mariadb.sql("CREATE TABLE p (id INT AUTO_INCREMENT PRIMARY KEY, "
                "s LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) ENGINE=InnoDB")
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["p", "t1"]))
        ids = []
        for value in INJECTIONS:
            ins = result(query(c, "INSERT INTO p (s) VALUES (?)", [value]))
            assert ins["affected_rows"] == 1 and ins["insert_id"] > 0, (value, ins)
            ids.append(ins["insert_id"])
            assert rows(query(c, "SELECT s FROM p WHERE id = ?", [ins["insert_id"]])) == [[value]], value
            assert rows(query(c, "SELECT ? AS echo", [value])) == [[value]], value
            # (compared as bytes: the collation's PAD SPACE makes '' = ' ')
            assert rows(query(c, "SELECT COUNT(*) FROM p WHERE CAST(s AS BINARY) = CAST(? AS BINARY)",
                              [value])) == [[1]], value
        # NUL may travel in params, never in sql (PROTOCOL.md §2).
        assert error_code(query(c, "SELECT 1 \x00; COMMIT")) == "bad_request"
        # Injection in a WHERE clause matches nothing instead of everything.
        assert rows(query(c, "SELECT COUNT(*) FROM t1 WHERE v = ?", ["1 OR 1=1"])) == [[0]]
        assert rows(query(c, "SELECT COUNT(*) FROM t1 WHERE v = ? OR id = ?", ["99' OR '1'='1", 2])) == [[1]]
        assert rows(query(c, "SELECT COUNT(*) FROM t1 WHERE CAST(v AS CHAR) = ?", ["10' OR '1'='1"])) == [[0]]
        ok(c.call({"op": "commit"}))
    # Byte-exact, seen from outside.
    got = observer.execute("SELECT id, s, HEX(s) AS h FROM p ORDER BY id")
    assert [r["id"] for r in got] == ids
    for r, value in zip(got, INJECTIONS):
        assert r["s"] == value
        assert r["h"] == value.encode("utf-8").hex().upper(), "%r stored as %s" % (value, r["h"])
    assert table_rows(observer, "t1") == ORIGINAL


def test_scalar_params_bind_as_values(daemon, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        res = result(query(c, "SELECT ? AS n, ? AS t, ? AS f, ? AS i, ? AS big, ? AS neg",
                           [None, True, False, 42, 9223372036854775807, -9223372036854775808]))
        assert res["rows"] == [[None, 1, 0, 42, 9223372036854775807, -9223372036854775808]]
        assert float(rows(query(c, "SELECT ? + 0", [1.5]))[0][0]) == 1.5
        assert float(rows(query(c, "SELECT ? * 1", [1e-5]))[0][0]) == 1e-5
        assert rows(query(c, "SELECT v FROM t1 WHERE id = ?", ["2"])) == [[20]]
        ok(c.call({"op": "rollback"}))


@pytest.mark.parametrize("sql,params", [
    ("SELECT v FROM t1 WHERE id = ?", []),
    ("SELECT v FROM t1 WHERE id = ?", None),
    ("SELECT v FROM t1 WHERE id = ? AND v = ?", [1]),
    ("SELECT v FROM t1 WHERE id = ?", [1, 2]),
    ("SELECT v FROM t1 WHERE id = 1", [1]),
    ("UPDATE t1 SET v = ? WHERE id = 2", [{"a": 1}]),
    ("UPDATE t1 SET v = ? WHERE id = 2", [[1, 2]]),
    ("UPDATE t1 SET v = ? WHERE id = 2", [[]]),
    ("UPDATE t1 SET v = ? WHERE id = ?", [1, {}]),
], ids=["none-for-one", "missing-for-one", "one-for-two", "two-for-one", "one-for-none",
        "object", "array", "empty-array", "object-second"])
def test_bad_params_leave_the_lease_untouched(daemon, observer, tables, sql, params):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c))["lease"]
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        resp = query(c, sql, params)
        assert error_code(resp) == "bad_params", resp
        assert lease_entry(d, lease)["state"] == "held"
        assert rows(query(c, "SELECT v FROM t1 ORDER BY id")) == [[11], [20], [30]]
        assert read_blocked(observer, "t1")
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 30)]


# ---------------------------------------------------------------- results

TYPES_DDL = """
CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(65,30),
  dt DATE, tm TIME, tm3 TIME(3), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL DEFAULT NULL, yr YEAR,
  vc VARCHAR(100) CHARACTER SET utf8mb4, tx TEXT CHARACTER SET utf8mb4, ch CHAR(5) CHARACTER SET utf8mb4,
  bn BINARY(4), vb VARBINARY(16), bl BLOB, bt BIT(10), bt64 BIT(64),
  en ENUM('a','b'), st SET('x','y')
) ENGINE=InnoDB
"""

TYPE_NAMES = {
    "id": "int", "ti": "tinyint", "tiu": "tinyint", "si": "smallint", "siu": "smallint",
    "mi": "mediumint", "miu": "mediumint", "i": "int", "iu": "int", "bi": "bigint", "biu": "bigint",
    "f": "float", "d": "double", "dec1": "decimal", "dec2": "decimal",
    "dt": "date", "tm": "time", "tm3": "time", "dtm": "datetime", "dtm6": "datetime", "ts": "timestamp",
    "yr": "year", "vc": "varchar", "tx": "text", "ch": "char",
    "bn": "binary", "vb": "varbinary", "bl": "blob", "bt": "bit", "bt64": "bit",
    "en": "enum", "st": "set",
}

TEXT_VC = "héllo wörld ✓ 日本 😀"
TEXT_TX = 'line1\nline2 "quoted" \\ tab\t ü \u2028 end'
BIN_BN = b"\x00\x01\xfe\xff"
BIN_VB = b"\x00\xff\x80\n\"\\'\xc3"
BIN_BL = bytes(range(256)) * 3

# id 1: minimums and assorted values; id 2: maximums; id 3: all NULL.
TYPE_ROWS = {
    1: dict(ti=-128, tiu=0, si=-32768, siu=0, mi=-8388608, miu=0, i=-2147483648, iu=0,
            bi=-9223372036854775808, biu=9223372036854775807,
            f=-1.5, d=0.1, dec1="-12.30", dec2="-0.000000000000000000000000000001",
            dt="2024-05-01", tm="-838:59:59", tm3="12:00:00.250", dtm="0000-00-00 00:00:00",
            dtm6="2024-05-01 12:00:00.250000", ts="2024-05-01 12:00:00", yr=2024,
            vc=TEXT_VC, tx=TEXT_TX, ch="ab", bn=BIN_BN, vb=BIN_VB, bl=BIN_BL,
            bt=b"\x02\xaa", bt64=b"\x00\x00\x00\x00\x00\x00\x00\x01", en="b", st="x,y"),
    2: dict(ti=127, tiu=255, si=32767, siu=65535, mi=8388607, miu=16777215, i=2147483647, iu=4294967295,
            bi=9223372036854775807, biu="18446744073709551615",
            f=3.25, d=-1.25e300, dec1="12345678.90",
            dec2="12345678901234567890123456789012345.123456789012345678901234567890",
            dt="9999-12-31", tm="838:59:59", tm3="-00:00:00.001", dtm="9999-12-31 23:59:59",
            dtm6="1000-01-01 00:00:00.000001", ts="2030-01-01 00:00:00", yr=1901,
            vc="", tx="", ch="", bn=b"\x00\x00\x00\x00", vb=b"", bl=b"",
            bt=b"\x03\xff", bt64=b"\xff" * 8, en="a", st=""),
}


def _insert_value(col, value):
    if col == "biu" and isinstance(value, str):
        return int(value)
    if col == "bt":
        return int.from_bytes(value, "big")
    if col == "bt64":
        return int.from_bytes(value, "big")
    return value


def test_every_result_type(daemon, mariadb, observer, tables):
    mariadb.sql("DROP TABLE IF EXISTS types")
    mariadb.sql(TYPES_DDL)
    cols = list(TYPE_NAMES)
    with mariadb.connect(charset="utf8mb4") as conn, conn.cursor() as cur:
        for rid, values in TYPE_ROWS.items():
            names = ["id"] + list(values)
            cur.execute("INSERT INTO types (%s) VALUES (%s)" % (", ".join(names), ", ".join(["%s"] * len(names))),
                        [rid] + [_insert_value(k, v) for k, v in values.items()])
        cur.execute("INSERT INTO types (id) VALUES (3)")
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=(), read=["types"]))
        res = result(query(c, "SELECT * FROM types ORDER BY id"))
        assert [col["name"] for col in res["columns"]] == cols
        got_types = {col["name"]: col["type"] for col in res["columns"]}
        assert got_types == TYPE_NAMES
        assert res["affected_rows"] == 3 and res["insert_id"] == 0 and res["warnings"] == 0
        assert len(res["rows"]) == 3
        for row in res["rows"]:
            rid = row[0]
            if rid == 3:
                assert row[1:] == [None] * (len(cols) - 1), "NULL row: %r" % row
                continue
            expected = TYPE_ROWS[rid]
            for name, value in zip(cols[1:], row[1:]):
                want = expected[name]
                where = "row %d column %s: %r" % (rid, name, value)
                if isinstance(want, bytes):
                    assert isinstance(value, dict) and list(value) == ["base64"], where
                    assert base64.b64decode(value["base64"], validate=True) == want, where
                    assert value["base64"] == base64.b64encode(want).decode(), where
                elif isinstance(want, float):
                    assert isinstance(value, (int, float)) and not isinstance(value, bool), where
                    assert value == want, where
                elif isinstance(want, int):
                    assert is_int(value) and value == want, where
                else:
                    assert isinstance(value, str) and value == want, where
        # The same bytes and values as the server gives the observer.
        outside = observer.execute("SELECT bn, vb, bl, vc, tx, dec2 FROM types WHERE id = 1")[0]
        assert outside["bn"] == BIN_BN and outside["vb"] == BIN_VB and outside["bl"] == BIN_BL
        assert outside["vc"] == TEXT_VC and outside["tx"] == TEXT_TX
        ok(c.call({"op": "rollback"}))


def test_expression_results_are_typed(daemon, tables):
    d = daemon()
    with d.client() as c:
        ok(acquire(c))
        res = result(query(
            c, "SELECT CAST(18446744073709551615 AS UNSIGNED) AS umax, "
               "CAST(9223372036854775808 AS UNSIGNED) AS above, "
               "CAST(9223372036854775807 AS UNSIGNED) AS edge, "
               "-9223372036854775808 AS smin, 0.5e0 AS dbl, CAST(1.5 AS DECIMAL(6,3)) AS dc, "
               "X'00FF' AS hx, CAST('é' AS BINARY) AS cb, NULL AS n, 'ü' AS u, "
               "DATE('2024-02-29') AS dd, SEC_TO_TIME(-1) AS tt"))
        assert res["rows"] == [["18446744073709551615", "9223372036854775808", 9223372036854775807,
                                -9223372036854775808, 0.5, "1.500", {"base64": "AP8="},
                                {"base64": base64.b64encode("é".encode()).decode()}, None, "ü",
                                "2024-02-29", "-00:00:01"]]
        types = {col["name"]: col["type"] for col in res["columns"]}
        assert types["dc"] == "decimal" and types["dbl"] == "double" and types["umax"] == "bigint"
        assert types["n"] == "null"
        assert isinstance(res["rows"][0][4], float)
        ok(c.call({"op": "rollback"}))


def test_insert_id_and_warnings_on_results(daemon, mariadb, observer, tables):
    mariadb.sql("DROP TABLE IF EXISTS ai")
    mariadb.sql("CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v TINYINT) ENGINE=InnoDB")
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1", "ai"]))
        # The session's sql_mode is strict: find warnings where strictness
        # does not apply (SELECT, IGNORE, CAST).
        mode = rows(query(c, "SELECT @@SESSION.sql_mode"))[0][0]
        assert "STRICT_TRANS_TABLES" in mode and "ERROR_FOR_DIVISION_BY_ZERO" in mode
        ins = result(query(c, "INSERT INTO ai (v) VALUES (?)", [1]))
        assert (ins["affected_rows"], ins["insert_id"], ins["warnings"]) == (1, 1, 0)
        ins = result(query(c, "INSERT INTO ai (v) VALUES (2), (3), (4)"))
        assert (ins["affected_rows"], ins["insert_id"], ins["warnings"]) == (3, 2, 0)
        div = result(query(c, "SELECT 1/0 AS x"))
        assert div["rows"] == [[None]] and div["warnings"] == 1 and div["insert_id"] == 0
        cast = result(query(c, "SELECT CAST('12abc' AS SIGNED) AS x"))
        assert cast["rows"] == [[12]] and cast["warnings"] == 1
        # Truncation to TINYINT is an error in strict mode, a warning with IGNORE.
        assert mysql_error(query(c, "INSERT INTO ai (v) VALUES (1000)"), 1264)
        trunc = result(query(c, "INSERT IGNORE INTO ai (v) VALUES (1000), (2000)"))
        assert (trunc["affected_rows"], trunc["insert_id"], trunc["warnings"]) == (2, 5, 2)
        dup = result(query(c, "INSERT IGNORE INTO t1 (id, v) VALUES (1, 5)"))
        assert (dup["affected_rows"], dup["insert_id"], dup["warnings"]) == (0, 0, 1)
        upd = result(query(c, "UPDATE t1 SET v = v + 1 WHERE id = 1"))
        assert (upd["affected_rows"], upd["insert_id"], upd["warnings"]) == (1, 0, 0)
        # Each result has its own warnings count.
        assert result(query(c, "SELECT 1"))["warnings"] == 0
        ok(c.call({"op": "commit"}))
    assert [r["v"] for r in observer.execute("SELECT v FROM ai ORDER BY id")] == [1, 2, 3, 4, 127, 127]


# ---------------------------------------------------------------- MySQL errors


def test_locked_table_misuse_errors_arrive_unchanged(daemon, mariadb, observer, outside, tables):
    mariadb.fresh_tables(["t3"])
    misuse = [
        ("UPDATE t2 SET v = 0 WHERE id = 1", 1099),
        ("INSERT INTO t2 (id, v) VALUES (9, 9)", 1099),
        ("DELETE FROM t2", 1099),
        ("SELECT v FROM t3", 1100),
        ("SELECT a.v FROM t1 AS a", 1100),
        ("UPDATE t3 SET v = 0", 1100),
    ]
    # What the server itself says to a session holding the same locks.
    expected = {}
    with outside.cursor() as cur:
        cur.execute("LOCK TABLES t1 WRITE, t2 READ")
        for sql, errno in misuse:
            with pytest.raises(pymysql.err.MySQLError) as e:
                cur.execute(sql)
            assert e.value.args[0] == errno, (sql, e.value.args)
            expected[sql] = e.value.args[1]
        cur.execute("UNLOCK TABLES")
    d = daemon()
    with d.client() as c:
        ok(acquire(c, write=["t1"], read=["t2"]))
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        for sql, errno in misuse:
            err = mysql_error(query(c, sql), errno)
            assert err["sqlstate"] == "HY000", (sql, err)
            assert err["message"] == expected[sql], (sql, err)
        # Other server errors keep their number and state too.
        err = mysql_error(query(c, "INSERT INTO t1 (id, v) VALUES (1, 0)"), 1062)
        assert err["sqlstate"] == "23000" and "Duplicate entry '1'" in err["message"]
        err = mysql_error(query(c, "SELECT nosuch FROM t1"), 1054)
        assert err["sqlstate"] == "42S22"
        # None of them ended the lease or its transaction.
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 1")) == [[11]]
        assert read_blocked(observer, "t1") and write_blocked(observer, "t2")
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 30)]
    assert table_rows(observer, "t2") == ORIGINAL


def test_session_settings_under_a_lease(daemon, tables):
    """autocommit is off, and wait_timeout is a safety net a little above the TTLs."""
    d = daemon()
    with d.client() as c:
        ok(acquire(c, ttl_ms=10000))
        autocommit, wait_timeout = rows(query(c, "SELECT @@SESSION.autocommit, @@SESSION.wait_timeout"))[0]
        assert autocommit == 0
        # harness: default_ttl_ms 10000, max_ttl_ms 60000
        assert 10 < wait_timeout <= 60 + 60, wait_timeout
        ok(c.call({"op": "rollback"}))


# ---------------------------------------------------------------- transact


def test_transact_commits_and_releases(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        resp = ok(transact(c, [
            ("UPDATE t1 SET v = v + ? WHERE id = ?", [5, 1]),
            "INSERT INTO t1 (id, v) VALUES (4, 40)",
            "SELECT id, v FROM t1 ORDER BY id",
            ("SELECT v FROM t2 WHERE id = ?", [2]),
            "SELECT 1/0",
        ], write=["t1"], read=["t2"]))
        assert is_int(resp["lease"]) and resp["lease"] > 0
        res = resp["results"]
        assert len(res) == 5
        for r in res:
            result(dict(r, ok=True))
        assert "columns" not in res[0] and res[0]["affected_rows"] == 1
        assert res[1]["affected_rows"] == 1
        assert res[2]["rows"] == [[1, 15], [2, 20], [3, 30], [4, 40]]
        assert res[3]["rows"] == [[20]]
        assert res[4]["warnings"] == 1
        # Committed and released: the answer came with the tables free, and
        # the observer sees the new data at once.
        assert observer.can_read_now("t1") and observer.can_write_now("t2"), \
            "the tables were still locked when the transact was answered"
        assert table_rows(observer, "t1") == [(1, 15), (2, 20), (3, 30), (4, 40)]
        # No lease is left on the connection.
        assert error_code(query(c, "SELECT 1")) == "no_lease"
        st = settled_status(d)
        assert st["totals"]["committed"] == 1
        # And it can go again.
        ok(transact(c, ["UPDATE t1 SET v = 0 WHERE id = 4"]))
    assert observer.value("t1", 4) == 0


def test_transact_failure_in_the_middle_rolls_back_and_releases(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        resp = transact(c, [
            "UPDATE t1 SET v = 111 WHERE id = 1",
            "INSERT INTO t1 (id, v) VALUES (9, 90)",
            "INSERT INTO t1 (id, v) VALUES (2, 0)",  # duplicate key
            "UPDATE t1 SET v = 333 WHERE id = 3",
        ])
        err = mysql_error(resp, 1062)
        assert err["sqlstate"] == "23000"
        assert resp.get("statement") == 2 and is_int(resp["statement"]), resp
        assert observer.can_write_now("t1"), "t1 was still locked when the failure was answered"
        assert table_rows(observer, "t1") == ORIGINAL
        # A READ-locked table written in a transact: 1099, index 1.
        resp = transact(c, ["UPDATE t1 SET v = 5 WHERE id = 1", "UPDATE t2 SET v = 5 WHERE id = 1"],
                        write=["t1"], read=["t2"])
        assert mysql_error(resp, 1099)["sqlstate"] == "HY000"
        assert resp.get("statement") == 1
        assert table_rows(observer, "t1") == ORIGINAL and table_rows(observer, "t2") == ORIGINAL
        assert observer.can_write_now("t1") and observer.can_write_now("t2")
        st = settled_status(d)
        assert st["totals"]["committed"] == 0 and st["totals"]["rolled_back"] == 2
        assert error_code(c.call({"op": "commit"})) == "no_lease"


@pytest.mark.parametrize("statements,index,code", [
    (["UPDATE t1 SET v = 1 WHERE id = 1", "COMMIT"], 1, "statement_not_allowed"),
    (["/*!50000 UNLOCK TABLES */", "SELECT 1"], 0, "statement_not_allowed"),
    (["SELECT 1", "SELECT 2", "SELECT 3; DROP TABLE t1"], 2, "statement_not_allowed"),
    (["UPDATE t1 SET v = 1 WHERE id = 1", ("UPDATE t1 SET v = ? WHERE id = ?", [1])], 1, "bad_params"),
    ([("SELECT ?", [{"x": 1}])], 0, "bad_params"),
], ids=["commit", "unlock-in-comment", "second-statement", "param-count", "object-param"])
def test_transact_refusal_locks_nothing(daemon, observer, outside, tables, statements, index, code):
    """Refused before any lock is taken: even with t1 locked outside, the
    answer comes at once, nothing waits in MySQL and no lease was granted."""
    d = daemon()
    with outside.cursor() as cur:
        cur.execute("LOCK TABLES t1 WRITE")
    with d.client() as c:
        t0 = time.monotonic()
        resp = transact(c, statements, wait_ms=5000)
        assert time.monotonic() - t0 < scaled(0.5), "the refusal waited for the lock"
        assert error_code(resp) == code, resp
        assert resp.get("statement") == index, resp
        assert observer.daemon_waiting() == []
        st = status(d)
        assert st["leases"] == [] and st["totals"]["acquired"] == 0
    with outside.cursor() as cur:
        cur.execute("UNLOCK TABLES")
    assert table_rows(observer, "t1") == ORIGINAL


def test_transact_while_holding_a_lease_is_lease_held(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c))["lease"]
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        assert error_code(transact(c, ["UPDATE t1 SET v = 0"], write=["t2"])) == "lease_held"
        assert lease_entry(d, lease)["state"] == "held"
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 30)]
    assert table_rows(observer, "t2") == ORIGINAL


# ---------------------------------------------------------------- limits


def _rows_sql(n):
    return ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < %d) "
            "SELECT n, REPEAT('x', 10) AS pad FROM r" % n)


def test_result_too_large_by_rows_and_bytes_keeps_the_lease(daemon, observer, tables):
    d = daemon(statements={"max_rows": 5, "max_result_bytes": 2048})
    with d.client() as c:
        lease = ok(acquire(c, write=["t1", "t2"]))["lease"]
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        assert len(rows(query(c, _rows_sql(5)))) == 5
        assert error_code(query(c, _rows_sql(6))) == "result_too_large"
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 1")) == [[11]]
        # A big result is discarded, not buffered, and the session stays in sync.
        t0 = time.monotonic()
        assert error_code(query(c, _rows_sql(200000), timeout=20)) == "result_too_large"
        assert time.monotonic() - t0 < scaled(5)
        assert rows(query(c, "SELECT 1")) == [[1]]
        # Bytes: one row of 3000 bytes is over 2048.
        assert len(rows(query(c, "SELECT REPEAT('y', 500)"))[0][0]) == 500
        assert error_code(query(c, "SELECT REPEAT('y', 3000)")) == "result_too_large"
        assert error_code(query(c, "SELECT v, REPEAT('z', 700) FROM t1")) == "result_too_large"
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 2")) == [[20]]
        # The statement did run: its changes belong to the transaction.
        assert error_code(query(c, "INSERT INTO t2 (id, v) VALUES (10, 1), (11, 1), (12, 1), (13, 1), "
                                    "(14, 1), (15, 1) RETURNING id")) == "result_too_large"
        assert lease_entry(d, lease)["state"] == "held"
        assert read_blocked(observer, "t1")
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 30)]
    assert [r[0] for r in table_rows(observer, "t2")] == [1, 2, 3, 10, 11, 12, 13, 14, 15]


def test_result_too_large_in_transact_rolls_back(daemon, observer, tables):
    d = daemon(statements={"max_rows": 5})
    with d.client() as c:
        resp = transact(c, ["UPDATE t1 SET v = 0", _rows_sql(6), "UPDATE t1 SET v = 1"])
        assert error_code(resp) == "result_too_large"
        assert resp.get("statement") == 1
        assert table_rows(observer, "t1") == ORIGINAL
        settled_status(d)


def test_result_too_large_in_transact_rolls_back_in_every_reading(daemon, observer, tables):
    """A statement that starts with UPDATE, but is a query where the server
    skips a versioned comment (MariaDB never runs /*!99999), returns rows
    the limit refuses: the commit must wait for its results
    (sqltext_may_return_rows reads every reading)."""
    d = daemon(statements={"max_rows": 5})
    with d.client() as c:
        resp = transact(c, ["UPDATE t1 SET v = 0",
                            "/*!99999 UPDATE t1 SET v = v WHERE 0 AND */ " + _rows_sql(6)])
        assert error_code(resp) == "result_too_large", resp
        assert resp.get("statement") == 1
        assert table_rows(observer, "t1") == ORIGINAL
        settled_status(d)


def test_slow_statement_times_out_and_the_lease_stays_usable(daemon, observer, tables):
    d = daemon(statements={"timeout_ms": 300})
    with d.client() as c:
        lease = ok(acquire(c))["lease"]
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        t0 = time.monotonic()
        resp = query(c, "SELECT SLEEP(5)", timeout=10)
        took = time.monotonic() - t0
        assert error_code(resp) == "statement_timeout", resp
        assert 0.25 <= took < scaled(1.5), "statement_timeout after %.2fs" % took
        wait_no_daemon_query(observer)
        assert lease_entry(d, lease)["state"] == "held"
        # Only the slow statement was rolled back.
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 1")) == [[11]]
        assert read_blocked(observer, "t1")
        t0 = time.monotonic()
        assert error_code(query(c, "UPDATE t1 SET v = v + SLEEP(5) WHERE id = 2", timeout=10)) == \
            "statement_timeout"
        assert time.monotonic() - t0 < scaled(1.5)
        ok(query(c, "UPDATE t1 SET v = 33 WHERE id = 3"))
        ok(c.call({"op": "commit"}))
    assert table_rows(observer, "t1") == [(1, 11), (2, 20), (3, 33)]
    wait_no_daemon_query(observer)


def test_slow_statement_in_transact_times_out_and_rolls_back(daemon, observer, tables):
    d = daemon(statements={"timeout_ms": 300})
    with d.client() as c:
        t0 = time.monotonic()
        resp = transact(c, ["UPDATE t1 SET v = 0", "SELECT SLEEP(5)", "UPDATE t1 SET v = 1"], timeout=10)
        assert error_code(resp) == "statement_timeout", resp
        assert resp.get("statement") == 1
        assert time.monotonic() - t0 < scaled(1.5)
        assert table_rows(observer, "t1") == ORIGINAL
        wait_no_daemon_query(observer)
        settled_status(d)


def test_interrupted_do_sleep_answers_statement_timeout(daemon, observer, tables):
    """An interrupted SLEEP() inside DO ends without a MySQL error (SLEEP
    returns 1 when killed), but the statement was still cut short by
    timeout_ms: the answer must be statement_timeout, in query and transact."""
    d = daemon(statements={"timeout_ms": 300})
    with d.client() as c:
        ok(acquire(c))
        ok(query(c, "UPDATE t1 SET v = 11 WHERE id = 1"))
        t0 = time.monotonic()
        resp = query(c, "DO SLEEP(5)", timeout=10)
        assert time.monotonic() - t0 < scaled(1.5)
        assert error_code(resp) == "statement_timeout", resp
        assert rows(query(c, "SELECT v FROM t1 WHERE id = 1")) == [[11]]
        ok(c.call({"op": "rollback"}))
        resp = transact(c, ["UPDATE t1 SET v = 0", "DO SLEEP(5)"], timeout=10)
        assert error_code(resp) == "statement_timeout", resp
        assert resp.get("statement") == 1
    assert table_rows(observer, "t1") == ORIGINAL


def test_do_is_sent_as_select_where_sqltext_reads_a_do(daemon, observer, tables):
    """The daemon sends a DO as SELECT (so that timeout_ms interrupts it
    with an error) where daemon/sqltext.h's lexer, the firewall's, finds it
    first: after a "--" comment ended by DEL, and inside a versioned
    comment; not where a server that skips the comment runs a query."""
    d = daemon(statements={"timeout_ms": 300})
    with d.client() as c:
        ok(acquire(c))
        for sql in ("--\x7f\nDO SLEEP(5)", "/*!50000 DO SLEEP(5) */", "/*!DO SLEEP(5)*/"):
            t0 = time.monotonic()
            resp = query(c, sql, timeout=10)
            assert error_code(resp) == "statement_timeout", (sql, resp)
            assert time.monotonic() - t0 < scaled(1.5)
        assert "columns" not in result(query(c, "/*!50000 DO 1 */"))
        assert rows(query(c, "/*!99999 DO */ SELECT 1")) == [[1]]
        ok(c.call({"op": "rollback"}))
    assert table_rows(observer, "t1") == ORIGINAL


# ---------------------------------------------------------------- lost sessions


def _pool_recovered(d):
    p = status(d)["pool"]
    return p["broken"] == 0 and p["connecting"] == 0 and p["idle"] == p["size"]


def _kill(observer, thread):
    observer.execute("KILL CONNECTION %d" % thread)


def test_session_killed_from_outside_loses_the_lease(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c))["lease"]
        ok(query(c, "UPDATE t1 SET v = 999 WHERE id = 1"))
        thread = thread_of(d, lease)
        _kill(observer, thread)
        t0 = time.monotonic()
        ev = c.wait_event("lease_lost", timeout=3)
        took = time.monotonic() - t0
        assert took < scaled(1.0), "lease_lost came %.2fs after the kill" % took
        assert ev["lease"] == lease and isinstance(ev.get("reason"), str) and ev["reason"], ev
        assert error_code(query(c, "UPDATE t1 SET v = 1000 WHERE id = 1")) == "lease_lost"
        assert error_code(c.call({"op": "commit"})) == "no_lease"
        # MySQL rolled it back and freed the table. (KILL shuts the killed
        # connection down at once, and the daemon reports that, while the
        # killed thread may still be rolling back and releasing its locks:
        # read_free lets the observer wait for that.)
        assert read_free(observer, "t1")
        assert table_rows(observer, "t1") == ORIGINAL
        st = status(d)
        assert all(e["lease"] != lease for e in st["leases"])
        assert st["totals"]["lost"] == 1 and st["totals"]["committed"] == 0
        # The pool replaces the session.
        wait_for(lambda: _pool_recovered(d), timeout=3, what="the pool to replace the killed session")
        wait_for(lambda: thread not in [r["ID"] for r in observer.daemon_threads()], timeout=3,
                 what="the killed session to leave PROCESSLIST")
        assert ok(acquire(c))["lease"] > lease
        ok(query(c, "UPDATE t1 SET v = 12 WHERE id = 1"))
        ok(c.call({"op": "commit"}))
    assert observer.value("t1", 1) == 12


def test_commit_right_after_a_kill_never_reports_success(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c))["lease"]
        ok(query(c, "UPDATE t1 SET v = 999 WHERE id = 1"))
        _kill(observer, thread_of(d, lease))
        resp = c.call({"op": "commit"})
        assert error_code(resp) in ("lease_lost", "commit_unknown"), resp
        assert table_rows(observer, "t1") == ORIGINAL
        wait_for(lambda: _pool_recovered(d), timeout=3, what="the pool to recover")


def test_session_killed_while_a_statement_runs(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        lease = ok(acquire(c))["lease"]
        ok(query(c, "UPDATE t1 SET v = 999 WHERE id = 1"))
        thread = thread_of(d, lease)
        c.send({"op": "query", "sql": "SELECT SLEEP(5)"})
        wait_for(lambda: any(r["ID"] == thread and "SLEEP" in (r["INFO"] or "") for r in observer.processlist()),
                 timeout=2, what="the SLEEP to run in MySQL")
        _kill(observer, thread)
        t0 = time.monotonic()
        resp = c.recv_response(timeout=3)
        assert time.monotonic() - t0 < scaled(1.0)
        assert error_code(resp) == "lease_lost", resp
        ev = c.wait_event("lease_lost", timeout=1)
        assert ev["lease"] == lease
        assert error_code(query(c, "SELECT 1")) == "no_lease"
        assert table_rows(observer, "t1") == ORIGINAL
        wait_for(lambda: _pool_recovered(d), timeout=3, what="the pool to recover")
        ok(transact(c, ["UPDATE t1 SET v = 13 WHERE id = 1"]))
    assert observer.value("t1", 1) == 13


def test_transact_whose_session_is_killed_commits_nothing(daemon, observer, tables):
    d = daemon()
    with d.client() as c:
        c.send({"op": "transact", "write": ["t1"], "wait_ms": 2000,
                "statements": [{"sql": "UPDATE t1 SET v = 999"}, {"sql": "DO SLEEP(5)"},
                               {"sql": "UPDATE t1 SET v = 1000"}]})
        sleeping = wait_for(lambda: [r for r in observer.daemon_threads() if "SLEEP" in (r["INFO"] or "")],
                            timeout=2, what="the transact's SLEEP to run in MySQL")
        _kill(observer, sleeping[0]["ID"])
        resp = c.recv_response(timeout=3)
        assert error_code(resp) == "lease_lost", resp
        assert table_rows(observer, "t1") == ORIGINAL
        assert status(d)["leases"] == []
        wait_for(lambda: _pool_recovered(d), timeout=3, what="the pool to recover")
