"""tablelock.django against the real daemon, a real MariaDB and Debian's
python3-django, with the small project in tests/integration/django_project
(Poll and Choice, Django's MySQL backend for its own connection).

The snippet Django projects copy runs LOCK TABLES on Django's connection;
here only its import changes, and the outside observer checks that the
tables are really locked during the block, that the block's queries run on
the lease's MySQL session, and what was committed.
"""

import datetime
import decimal
import os
import signal
import subprocess
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "django_project")
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))
sys.path.insert(0, PROJECT)

# Debian's python3-django and python3-mysqldb are test dependencies: a
# missing one fails these tests, it does not skip them.
import django  # noqa: E402

from conftest import scaled, status, wait_for  # noqa: E402

ER_TABLE_NOT_LOCKED_FOR_WRITE = 1099


@pytest.fixture(scope="module")
def dj(mariadb):
    """Django set up on the test MariaDB (once per module)."""
    os.environ["TABLELOCK_TEST_MYSQL_SOCKET"] = mariadb.sock
    os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    django.setup()
    yield django
    from django.db import connections
    connections.close_all()


@pytest.fixture
def tl(dj, daemon):
    """A daemon, and Django's settings.TABLELOCK pointing at it."""
    from django.conf import settings
    d = daemon()
    saved = settings.TABLELOCK
    settings.TABLELOCK = {"socket": d.sock, "client": "django-test"}
    yield d
    settings.TABLELOCK = saved


@pytest.fixture
def polls(dj, mariadb):
    """Fresh polls tables (made by Django's schema editor, as a migration
    would), two polls and three choices; Django's connection closed."""
    from django.db import connection
    from polls.models import Choice, Poll
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS polls_choice")
        cur.execute("DROP TABLE IF EXISTS polls_poll")
    with connection.schema_editor() as editor:
        editor.create_model(Poll)
        editor.create_model(Choice)
    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
    p1 = Poll.objects.create(id=1, question="What's up?", pub_date=when)
    p2 = Poll.objects.create(id=2, question="Tabs or spaces?", pub_date=when)
    Choice.objects.create(id=1, poll=p1, choice_text="Not much", votes=0)
    Choice.objects.create(id=2, poll=p1, choice_text="The sky", votes=5)
    Choice.objects.create(id=3, poll=p2, choice_text="Tabs", votes=7)
    connection.close()
    return Poll, Choice


def can_write(observer, table):
    """The observer's write probe, for tables without the harness's v column."""
    return observer._runs("UPDATE `%s` SET id = id WHERE 1 = 0" % table)


def votes(observer):
    return {r["id"]: r["votes"] for r in observer.execute("SELECT id, votes FROM polls_choice")}


def lease_threads(d):
    return [e["mysql_thread"] for e in status(d)["leases"] if e["state"] == "held"]


# ---------------------------------------------------------------- the snippet's usage


def test_the_snippet_with_only_the_import_changed(tl, polls, observer):
    from django.db import connection
    from django.db.models import F
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    assert connection.connection is None
    with acquire_table_lock(read=[Poll], write=[Choice]):
        # Really locked, for every MySQL client.
        assert not observer.can_read("polls_choice")
        assert not can_write(observer, "polls_poll") and observer.can_read("polls_poll")
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            thread, = cursor.fetchone()
        held = status(tl)["leases"]
        assert [e["mysql_thread"] for e in held] == [thread]
        assert held[0]["client"] == "django-test"
        assert held[0]["write"] == ["app.polls_choice"] and held[0]["read"] == ["app.polls_poll"]
        assert Choice.objects.filter(id=1).update(votes=F("votes") + 1) == 1
    assert votes(observer)[1] == 1
    assert can_write(observer, "polls_choice") and can_write(observer, "polls_poll")
    assert status(tl)["totals"]["committed"] == 1
    # Django's own connection was never needed, and is untouched.
    assert connection.connection is None
    assert Choice.objects.get(id=1).votes == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        assert cursor.fetchone()[0] != thread
    assert connection.get_autocommit() is True


def test_djangos_own_connection_is_the_same_before_and_after(tl, polls, observer):
    from django.db import connection
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        own, = cursor.fetchone()
    raw = connection.connection
    with acquire_table_lock(write=[Choice]):
        assert connection.connection is not raw
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            inside, = cursor.fetchone()
        assert inside != own and lease_threads(tl) == [inside]
        assert not connection.get_autocommit()
    assert connection.connection is raw and connection.get_autocommit()
    assert not connection.in_atomic_block and connection.savepoint_ids == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        assert cursor.fetchone() == (own,)
    assert Poll.objects.count() == 2


# ---------------------------------------------------------------- the ORM inside a block


def test_the_orm_inside_a_block(tl, polls, observer):
    from django.db import IntegrityError, connection, transaction
    from django.db.models import Count, F, Sum
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls
    when = datetime.datetime(2024, 6, 2, 8, 30, 15, 250000, tzinfo=datetime.timezone.utc)
    committed = []

    with acquire_table_lock(write=[Poll, Choice]):
        assert Choice.objects.get(id=2).choice_text == "The sky"
        assert Choice.objects.filter(poll_id=1).update(votes=F("votes") + 10) == 2
        # save() of an unchanged row: MySQL changes nothing, Django must
        # still see the row found (else it would INSERT a duplicate).
        same = Choice.objects.get(id=1)
        same.save()
        poll = Poll.objects.create(question="New?", pub_date=when, closes_on=datetime.date(2024, 7, 1),
                                   opens_at=datetime.time(9, 15, 30, 5), banner=b"\x00\xff'\\%s?")
        assert poll.id == 3
        made = Choice.objects.bulk_create([Choice(poll=poll, choice_text="Yes", weight=decimal.Decimal("0.1")),
                                           Choice(poll=poll, choice_text="No", weight=decimal.Decimal("2.5"))])
        assert all(c.id is not None for c in made)
        back = Poll.objects.get(id=3)
        assert (back.pub_date, back.closes_on, back.opens_at, bytes(back.banner)) == \
            (when, datetime.date(2024, 7, 1), datetime.time(9, 15, 30, 5), b"\x00\xff'\\%s?")
        assert Choice.objects.get(choice_text="Yes").weight == decimal.Decimal("0.1000")
        assert [c.poll.question for c in Choice.objects.select_related("poll").order_by("id")] == \
            ["What's up?", "What's up?", "Tabs or spaces?", "New?", "New?"]
        totals = Choice.objects.aggregate(n=Count("id"), total=Sum("votes"), weight=Sum("weight"))
        assert totals == {"n": 5, "total": 10 + 15 + 7, "weight": decimal.Decimal("2.6000")}
        raw = list(Choice.objects.raw("SELECT id, choice_text, votes FROM polls_choice "
                                      "WHERE votes > %s AND choice_text LIKE %s ORDER BY id", [6, "T%%"]))
        assert [(c.id, c.choice_text) for c in raw] == [(2, "The sky"), (3, "Tabs")]
        assert Choice.objects.filter(choice_text__contains="%").count() == 0
        assert list(Choice.objects.select_for_update().filter(id=3).values_list("votes", flat=True)) == [7]
        assert Choice.objects.filter(choice_text="No").delete() == (1, {"polls.Choice": 1})

        # A nested atomic block is a savepoint: its failure undoes only it.
        with pytest.raises(ZeroDivisionError):
            with transaction.atomic():
                Choice.objects.filter(id=3).update(votes=1000)
                transaction.on_commit(lambda: committed.append("rolled back savepoint"))
                1 / 0
        with transaction.atomic():
            with transaction.atomic():
                Choice.objects.filter(id=3).update(votes=F("votes") + 1)
            transaction.on_commit(lambda: committed.append("kept"))
        assert Choice.objects.get(id=3).votes == 8

        # An IntegrityError caught inside the block, with or without a
        # savepoint around it; the block goes on and commits the rest.
        with pytest.raises(IntegrityError):
            Poll.objects.create(question="What's up?", pub_date=when)
        with pytest.raises(IntegrityError):
            with transaction.atomic():
                Poll.objects.create(question="Tabs or spaces?", pub_date=when)
        Poll.objects.filter(id=2).update(question="Spaces or tabs?")
        transaction.on_commit(lambda: committed.append("block"))
        assert committed == []
        assert connection.connection.lease.active

    assert committed == ["kept", "block"]
    assert votes(observer) == {1: 10, 2: 15, 3: 8, 4: 0}
    assert [r["question"] for r in observer.execute("SELECT question FROM polls_poll ORDER BY id")] == \
        ["What's up?", "Spaces or tabs?", "New?"]
    row = observer.execute("SELECT HEX(banner) AS b, opens_at, closes_on, pub_date FROM polls_poll "
                           "WHERE id = 3")[0]
    assert row["b"] == b"\x00\xff'\\%s?".hex().upper()
    assert str(row["opens_at"]) == "9:15:30.000005" and str(row["closes_on"]) == "2024-07-01"
    assert str(row["pub_date"]) == "2024-06-02 08:30:15.250000"
    assert status(tl)["totals"]["committed"] == 1


def test_the_firewall_decisions_for_what_django_sends(tl, polls, observer):
    from django.db import DatabaseError, OperationalError, ProgrammingError, connection
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    with acquire_table_lock(read=[Poll], write=[Choice]):
        with connection.cursor() as cursor:
            # Session settings (Django's connection setup, constraint
            # checks): refused, naming the rule; the lease goes on.
            for sql, rule in (("SET SQL_AUTO_IS_NULL = 0", "SET of system variable 'SQL_AUTO_IS_NULL'"),
                              ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                               "SET TRANSACTION is not allowed"),
                              ("SET foreign_key_checks=0", "SET of system variable 'foreign_key_checks'")):
                with pytest.raises(ProgrammingError) as e:
                    cursor.execute(sql)
                assert isinstance(e.value, DatabaseError)
                assert "statement firewall refused the statement: " + rule in str(e.value)
                assert e.value.__cause__.code == "statement_not_allowed"
            with pytest.raises(ProgrammingError, match="COMMIT is not allowed"):
                cursor.execute("COMMIT")
            # FOR UPDATE is a SELECT: fine on a table locked for write,
            # MySQL's own error on one locked for read.
            cursor.execute("SELECT votes FROM polls_choice WHERE id = 1 FOR UPDATE")
            with pytest.raises(OperationalError) as e:
                list(Poll.objects.select_for_update().all())
            assert e.value.args[0] == ER_TABLE_NOT_LOCKED_FOR_WRITE
        Choice.objects.filter(id=1).update(votes=42)
    assert votes(observer)[1] == 42


# ---------------------------------------------------------------- failures


def test_an_exception_rolls_everything_back(tl, polls, observer):
    from django.db import transaction
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    with pytest.raises(KeyError):
        with acquire_table_lock(write=[Poll, Choice]):
            Choice.objects.filter(id=1).update(votes=100)
            with transaction.atomic():
                Choice.objects.filter(id=2).update(votes=200)
            Poll.objects.filter(id=1).delete()
            transaction.on_commit(lambda: pytest.fail("on_commit ran after a rollback"))
            raise KeyError("boom")
    assert votes(observer) == {1: 0, 2: 5, 3: 7}
    assert observer.execute("SELECT COUNT(*) AS n FROM polls_poll")[0]["n"] == 2
    assert can_write(observer, "polls_choice")
    totals = status(tl)["totals"]
    assert totals["rolled_back"] == 1 and totals["committed"] == 0


def test_a_lock_timeout_raises_the_agreed_type(tl, polls, outside):
    from django.db import OperationalError
    from tablelock.django import LockTimeoutError, acquire_table_lock
    Poll, Choice = polls

    with outside.cursor() as cur:
        cur.execute("LOCK TABLES polls_choice WRITE")
    with pytest.raises(LockTimeoutError) as e:
        with acquire_table_lock(write=[Choice], wait_ms=200):
            pytest.fail("the block ran without its lock")
    assert isinstance(e.value, OperationalError) and e.value.code == "lock_timeout"


def test_expiry_mid_block_raises_at_the_next_query_and_at_the_end(tl, polls, observer):
    from django.db import OperationalError
    from tablelock.django import LeaseEndedError, acquire_table_lock
    Poll, Choice = polls

    with pytest.raises(LeaseEndedError) as end:
        with acquire_table_lock(write=[Choice], ttl_ms=500):
            Choice.objects.filter(id=1).update(votes=99)
            wait_for(lambda: can_write(observer, "polls_choice"), timeout=5, what="the lease to expire")
            with pytest.raises(OperationalError) as e:
                Choice.objects.filter(id=2).update(votes=99)
            assert e.value.__cause__.code == "lease_expired"
            # Caught: later queries raise too, and nothing runs unlocked.
            with pytest.raises(OperationalError):
                Choice.objects.count()
    assert end.value.code == "lease_expired"
    # An expiry with no query after it: the end of the block says so.
    with pytest.raises(LeaseEndedError):
        with acquire_table_lock(write=[Choice], ttl_ms=200):
            Choice.objects.filter(id=3).update(votes=99)
            wait_for(lambda: can_write(observer, "polls_choice"), timeout=5, what="the lease to expire")
    assert votes(observer) == {1: 0, 2: 5, 3: 7}
    assert status(tl)["totals"]["committed"] == 0
    # The next block is fine.
    with acquire_table_lock(write=[Choice]):
        Choice.objects.filter(id=3).update(votes=8)
    assert votes(observer)[3] == 8


def test_commit_unknown_is_raised_as_its_own_error(tl, polls, observer):
    from django.conf import settings
    from django.db import OperationalError
    from tablelock.django import CommitUnknownError, acquire_table_lock
    Poll, Choice = polls

    settings.TABLELOCK = dict(settings.TABLELOCK, timeout=0.5)
    with pytest.raises(CommitUnknownError) as e:
        with acquire_table_lock(write=[Choice]):
            Choice.objects.filter(id=1).update(votes=5)
            tl.proc.send_signal(signal.SIGSTOP)
    tl.proc.send_signal(signal.SIGCONT)
    assert e.value.code == "commit_unknown" and not isinstance(e.value, OperationalError)
    wait_for(lambda: can_write(observer, "polls_choice"), timeout=5, what="the lease to end")
    assert votes(observer)[1] in (0, 5)  # unknown, really


def test_refused_inside_an_atomic_block_or_another_lock(tl, polls, observer):
    from django.db import connection, transaction
    from django.db.transaction import TransactionManagementError
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    with transaction.atomic():
        Choice.objects.filter(id=1).update(votes=1)
        with pytest.raises(TransactionManagementError, match="inside transaction.atomic"):
            with acquire_table_lock(write=[Choice]):
                pytest.fail("entered")
    with acquire_table_lock(write=[Choice]):
        with pytest.raises(TransactionManagementError, match="inside acquire_table_lock"):
            with acquire_table_lock(write=[Poll]):
                pytest.fail("entered")
        Choice.objects.filter(id=2).update(votes=2)
    assert votes(observer) == {1: 1, 2: 2, 3: 7}
    assert status(tl)["totals"]["acquired"] == 1
    assert not connection.in_atomic_block


def test_no_query_runs_on_a_session_without_the_lock(tl, polls, observer):
    from django.db import InterfaceError, NotSupportedError, connection, transaction
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    before = connection.cursor()  # Django's own session
    with acquire_table_lock(write=[Choice]):
        with pytest.raises(InterfaceError, match="opened before acquire_table_lock"):
            before.execute("UPDATE polls_choice SET votes = 50 WHERE id = 1")
        inside = connection.cursor()
        inside.execute("UPDATE polls_choice SET votes = 51 WHERE id = 1")
        with pytest.raises(NotSupportedError, match="the block commits when it ends"):
            transaction.commit()
        with pytest.raises(NotSupportedError):
            transaction.set_autocommit(True)
    with pytest.raises(Exception, match="lease is over"):
        inside.execute("UPDATE polls_choice SET votes = 52 WHERE id = 1")
    before.execute("SELECT votes FROM polls_choice WHERE id = 1")
    assert before.fetchone() == (51,)

    # Closing Django's connection inside the block rolls the lease back;
    # no new connection is opened until the block ends, which raises.
    with pytest.raises(InterfaceError, match="lease is over"):
        with acquire_table_lock(write=[Choice]):
            Choice.objects.filter(id=2).update(votes=60)
            connection.close()
            with pytest.raises(InterfaceError, match="was closed inside acquire_table_lock"):
                Choice.objects.filter(id=3).update(votes=60)
    assert votes(observer) == {1: 51, 2: 5, 3: 7}
    assert Choice.objects.get(id=2).votes == 5  # and Django's connection works again


def test_each_thread_has_its_own_lease_and_connection(tl, polls, observer):
    """A block in one thread leaves other threads' connections alone: the
    main thread's queries run on Django's own session meanwhile, and a
    second thread's block waits for the first one's tables."""
    from django.db import connection, connections
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls
    seen, errors = {}, []
    inside, go = threading.Event(), threading.Event()

    def work(name, choice_id, hold):
        try:
            with acquire_table_lock(write=[Choice], wait_ms=10000):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT CONNECTION_ID()")
                    seen[name] = cursor.fetchone()[0]
                Choice.objects.filter(id=choice_id).update(votes=100 + choice_id)
                if hold:
                    inside.set()
                    go.wait(scaled(20))
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            connections.close_all()

    first = threading.Thread(target=work, args=("first", 1, True))
    first.start()
    assert inside.wait(scaled(20))
    # The main thread is not in the block: Django's own session, and
    # (Choice being locked for write) a read of Poll, which MariaDB allows.
    assert Poll.objects.count() == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        own, = cursor.fetchone()
    assert own != seen["first"] and lease_threads(tl) == [seen["first"]]
    second = threading.Thread(target=work, args=("second", 2, False))
    second.start()
    wait_for(lambda: len(status(tl)["leases"]) == 2, what="the second block to wait")
    go.set()
    first.join(scaled(20))
    second.join(scaled(20))
    # (The second lease may get the first one's pooled session back.)
    assert not errors and own not in (seen["first"], seen["second"])
    assert votes(observer) == {1: 101, 2: 102, 3: 7}
    assert status(tl)["totals"]["committed"] == 2


def test_configuration(dj, daemon, polls, observer, monkeypatch):
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.db import OperationalError
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls
    d = daemon()

    monkeypatch.setattr(settings, "TABLELOCK", {"sockt": d.sock})
    with pytest.raises(ImproperlyConfigured, match="unknown key 'sockt'"):
        with acquire_table_lock(write=[Choice]):
            pass
    # Without TABLELOCK: $TABLELOCK_SOCKET.
    monkeypatch.setattr(settings, "TABLELOCK", None)
    monkeypatch.setenv("TABLELOCK_SOCKET", d.sock)
    with acquire_table_lock(write=[Choice]):
        assert status(d)["leases"][0]["client"] == "django"
        Choice.objects.filter(id=1).update(votes=3)
    assert votes(observer)[1] == 3
    monkeypatch.setenv("TABLELOCK_SOCKET", d.sock + ".nowhere")
    with pytest.raises(OperationalError, match="cannot connect to tablelockd"):
        with acquire_table_lock(write=[Choice]):
            pass
    monkeypatch.setattr(settings, "TABLELOCK", {"socket": "unix:" + d.sock, "client": "polls-svc"})
    with acquire_table_lock(read=Poll, write=()):
        assert status(d)["leases"][0]["client"] == "polls-svc"
        assert Poll.objects.count() == 2


def test_as_a_decorator_with_aliases(tl, polls, observer):
    """A decorator, like the snippet (a @contextmanager); and a table that a
    query names under an alias needs a lock under that alias too (MySQL's
    LOCK TABLES rule): Django names a subquery's table U0."""
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls

    @acquire_table_lock(read=[Poll, (Poll, "U0")], write=[Choice])
    def vote_in_open_polls(n):
        open_polls = Poll.objects.filter(question__startswith="What")
        return Choice.objects.filter(poll__in=open_polls).update(votes=n)

    assert vote_in_open_polls(3) == 2
    assert vote_in_open_polls(4) == 2
    assert votes(observer) == {1: 4, 2: 4, 3: 7}
    assert status(tl)["totals"]["committed"] == 2


def test_a_kept_connection_the_daemon_closed_is_replaced(dj, daemon, polls, observer):
    """The thread keeps its tablelockd connection for the next block; one
    that the daemon closed meanwhile (idle_timeout_ms) is replaced, and the
    block does not notice."""
    from django.conf import settings
    from tablelock.django import acquire_table_lock
    Poll, Choice = polls
    d = daemon(daemon={"idle_timeout_ms": 200})
    saved, settings.TABLELOCK = settings.TABLELOCK, {"socket": d.sock, "client": "idle-test"}
    try:
        with acquire_table_lock(write=[Choice]):
            Choice.objects.filter(id=1).update(votes=1)
        wait_for(lambda: status(d)["clients"] == 1, timeout=5,
                 what="the daemon to close the idle connection")  # (status's own is the 1)
        with acquire_table_lock(write=[Choice]):
            Choice.objects.filter(id=2).update(votes=2)
    finally:
        settings.TABLELOCK = saved
    assert votes(observer) == {1: 1, 2: 2, 3: 7}
    assert status(d)["totals"]["committed"] == 2


# ---------------------------------------------------------------- no lost update


def test_no_lost_update_8_processes_100_increments_each(tl, polls, observer):
    """Each increment reads the row, adds one in Python and saves it: without
    the lock, concurrent blocks would lose updates."""
    env = dict(os.environ, TABLELOCK_TEST_DAEMON_SOCKET=tl.sock, PYTHONDONTWRITEBYTECODE="1")
    procs = [subprocess.Popen([sys.executable, os.path.join(PROJECT, "increment.py"), "1", "100"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(8)]
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=scaled(240))
        outputs.append((p.returncode, out.decode(errors="replace")[-2000:]))
    assert all(rc == 0 for rc, _ in outputs), outputs
    assert votes(observer)[1] == 800
    totals = status(tl)["totals"]
    assert totals["committed"] == 800 and totals["rolled_back"] == 0
