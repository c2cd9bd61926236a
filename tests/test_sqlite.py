"""SQLite persistence: the factory and its environment, WAL and durability
settings, bad input, the reference library's tables, many threads and
processes on one file, and crashes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any, Dict, List
from uuid import UUID, uuid4

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, event
from eventsourcing_rs.persistence import (
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing_rs.sqlite import (
    Factory,
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteDatastore,
    SQLiteProcessRecorder,
)

from .sqlite_workers import batch, write_batches

ROOT = Path(__file__).resolve().parent.parent
FACTORY_TOPIC = "eventsourcing_rs.sqlite:Factory"


def ev(originator_id: UUID, version: int) -> StoredEvent:
    return StoredEvent(originator_id, version, "topic", b"state")


# Python's sqlite3 module links its own copy of SQLite. Two copies in one
# process must not have a file open at the same time (POSIX locks are per
# process, so neither sees the other's, and the one that closes last may
# delete the other's WAL): these tests use sqlite3 only on files that no
# datastore of this process has open, and look inside files through a
# datastore otherwise.


def query(path: Path, sql: str, *params: Any) -> List[Any]:
    datastore = SQLiteDatastore(str(path))
    with datastore.transaction() as cursor:
        rows = cursor.execute(sql, params).fetchall()
    datastore.close_all_connections()
    return rows


def tables(path: Path) -> List[str]:
    rows = query(path, "SELECT name FROM sqlite_master WHERE type='table'")
    return sorted(name for (name,) in rows)


def sqlite_env(db_name: str, **more: str) -> Dict[str, str]:
    return {"INFRASTRUCTURE_FACTORY": FACTORY_TOPIC, "SQLITE_DBNAME": db_name, **more}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


# -- the factory and its environment ------------------------------------------


def test_factory_builds_sqlite_recorders_with_tables(db: Path) -> None:
    factory = InfrastructureFactory.construct("Orders", sqlite_env(str(db)))
    assert isinstance(factory, Factory)
    assert type(factory.aggregate_recorder("snapshots")) is SQLiteAggregateRecorder
    assert type(factory.application_recorder()) is SQLiteApplicationRecorder
    assert type(factory.process_recorder()) is SQLiteProcessRecorder
    assert tables(db) == ["stored_events", "stored_snapshots", "tracking"]


def test_per_application_settings_come_first(tmp_path: Path) -> None:
    env = sqlite_env(
        str(tmp_path / "shared.db"),
        ORDERS_SQLITE_DBNAME=str(tmp_path / "orders.db"),
        ORDERS_SQLITE_LOCK_TIMEOUT="7",
    )
    orders = InfrastructureFactory.construct("Orders", env)
    other = InfrastructureFactory.construct("Other", env)
    assert isinstance(orders, Factory) and isinstance(other, Factory)
    assert orders.datastore.db_name == str(tmp_path / "orders.db")
    assert orders.datastore.lock_timeout == 7
    assert other.datastore.db_name == str(tmp_path / "shared.db")
    assert other.datastore.lock_timeout is None


def test_missing_database_name_is_an_environment_error() -> None:
    with pytest.raises(EnvironmentError) as caught:
        InfrastructureFactory.construct("App", {"INFRASTRUCTURE_FACTORY": FACTORY_TOPIC})
    assert caught.value.args[0] == (
        "SQLite database name not found in environment with key 'SQLITE_DBNAME'"
    )


@pytest.mark.parametrize(
    "value, expected, seconds", [("", None, 5.0), (" 10 ", 10, 10.0), ("0", 0, 5.0)]
)
def test_lock_timeout_setting(value: str, expected: Any, seconds: float, db: Path) -> None:
    factory = Factory("App", sqlite_env(str(db), SQLITE_LOCK_TIMEOUT=value))
    assert factory.datastore.lock_timeout == expected
    assert factory.datastore._datastore.effective_lock_timeout == seconds


def test_lock_timeout_that_is_not_an_int_is_an_environment_error(db: Path) -> None:
    with pytest.raises(EnvironmentError) as caught:
        Factory("App", sqlite_env(str(db), SQLITE_LOCK_TIMEOUT="abc"))
    assert caught.value.args[0] == (
        "SQLite environment value for key 'SQLITE_LOCK_TIMEOUT' is invalid. "
        "If set, an int or empty string is expected: 'abc'"
    )


@pytest.mark.parametrize("create", ["no", "false", "0"])
def test_create_table_can_be_turned_off(create: str, db: Path) -> None:
    factory = Factory("App", sqlite_env(str(db), CREATE_TABLE=create))
    recorder = factory.application_recorder()
    assert tables(db) == []
    with pytest.raises(OperationalError, match="'stored_events'.*no such table"):
        recorder.insert_events([ev(uuid4(), 1)])


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: List[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application):
    def register(self, name: str) -> UUID:
        dog = Dog(name)
        self.save(dog)
        return dog.id

    def add_trick(self, dog_id: UUID, trick: str) -> None:
        dog = self.repository.get(dog_id)
        dog.add_trick(trick)
        self.save(dog)


def test_an_application_keeps_its_events_in_the_file(db: Path) -> None:
    env = sqlite_env(f"file:{db}", IS_SNAPSHOTTING_ENABLED="y")
    school = DogSchool(env=env)
    dog_id = school.register("Fido")
    school.add_trick(dog_id, "roll over")
    school.take_snapshot(dog_id)
    school.add_trick(dog_id, "play dead")
    del school
    reopened = DogSchool(env=env)
    dog = reopened.repository.get(dog_id)
    assert dog.tricks == ["roll over", "play dead"]
    assert [n.id for n in reopened.log.select(1, 10)] == [1, 2, 3]
    assert tables(db) == ["stored_events", "stored_snapshots"]


def test_in_memory_databases() -> None:
    a = SQLiteApplicationRecorder(SQLiteDatastore(":memory:"))
    b = SQLiteApplicationRecorder(SQLiteDatastore(":memory:"))
    a.create_table()
    b.create_table()
    a.insert_events([ev(uuid4(), 1)])
    assert (a.max_notification_id(), b.max_notification_id()) == (1, 0)
    assert not a.datastore.is_journal_mode_wal

    # A named, shared-cache database is one database for every datastore
    # of the process that names it, while any of them is open.
    name = f"file:{uuid4().hex}?mode=memory&cache=shared"
    c = SQLiteApplicationRecorder(SQLiteDatastore(name))
    d = SQLiteApplicationRecorder(SQLiteDatastore(name))
    c.create_table()
    d.create_table()
    c.insert_events([ev(uuid4(), 1)])
    d.insert_events([ev(uuid4(), 1)])
    assert c.datastore.is_sqlite_memory_mode
    assert [n.id for n in c.select_notifications(1, 10)] == [1, 2]
    assert not c.datastore.is_journal_mode_wal


def test_threads_of_several_datastores_share_a_named_in_memory_database() -> None:
    # Shared-cache connections lock tables rather than the database; each
    # waits for the others instead of failing with "table is locked".
    name = f"file:{uuid4().hex}?mode=memory&cache=shared"
    recorders = [SQLiteApplicationRecorder(SQLiteDatastore(name)) for _ in range(3)]
    for recorder in recorders:
        recorder.create_table()
    errors: List[BaseException] = []

    def work(recorder: SQLiteApplicationRecorder) -> None:
        try:
            for _ in range(100):
                recorder.insert_events(batch(uuid4(), 2))
                recorder.select_notifications(1, 10)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(r,)) for r in recorders * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [n.id for n in recorders[0].select_notifications(1, 10_000)]
    assert ids == list(range(1, 1201))


def test_reads_stop_at_the_limit_and_keep_each_event_whole(db: Path) -> None:
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
    recorder.create_table()
    a, b = uuid4(), uuid4()
    # Two topics, interleaved; states of different lengths, one empty.
    events = [
        StoredEvent(a, 1, "t1", b"a1"),
        StoredEvent(a, 2, "t2", b""),
        StoredEvent(b, 1, "t1", b"b1" * 300),
        StoredEvent(a, 3, "t1", b"a3"),
        StoredEvent(b, 2, "t2", b"\x00b2"),
    ]
    recorder.insert_events(events)
    everything = recorder.select_notifications(1, 10)
    assert [n.id for n in everything] == [1, 2, 3, 4, 5]
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in everything] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in events
    ]
    assert all(type(n.originator_id) is UUID for n in everything)
    # Each limit is honoured, whatever limit the statement ran with before.
    for start, limit in [(1, 2), (2, 1), (1, 5), (3, 100), (5, 1), (6, 3), (1, 0)]:
        page = recorder.select_notifications(start, limit)
        assert page == everything[start - 1 : start - 1 + limit]
    assert [e.originator_version for e in recorder.select_events(a)] == [1, 2, 3]
    assert [e.state for e in recorder.select_events(a, desc=True, limit=2)] == [b"a3", b""]
    assert [e.originator_version for e in recorder.select_events(a, gt=1, limit=1)] == [2]
    assert [e.originator_version for e in recorder.select_events(a, lte=2, desc=True)] == [2, 1]
    assert [e.topic for e in recorder.select_events(b, gt=1, lte=2)] == ["t2"]
    assert recorder.select_events(b, limit=0) == []


# -- WAL, durability and the raw-SQL transaction ------------------------------


def test_file_databases_are_put_in_wal_mode_with_full_sync(db: Path) -> None:
    first = SQLiteDatastore(str(db))
    with first.transaction() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchall() == [(2,)]  # FULL
    assert first.is_journal_mode_wal and first.journal_mode_was_changed_to_wal
    # The header's read and write format versions say WAL (2), not rollback.
    assert db.read_bytes()[18:20] == b"\x02\x02"
    second = SQLiteDatastore(f"file:{db}")
    second.transaction()
    assert second.is_journal_mode_wal and not second.journal_mode_was_changed_to_wal
    # The writer checkpoints every 1000 pages of log.
    with first.transaction(commit=True) as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchall() == [(1000,)]


def test_transaction_commits_or_rolls_back(db: Path) -> None:
    datastore = SQLiteDatastore(str(db))
    with datastore.transaction(commit=True) as c:
        c.execute("CREATE TABLE t (x)")
        c.executemany("INSERT INTO t VALUES (?)", [(1,), ("two",), (None,), (b"4",)])
        assert c.rowcount == 4
    with datastore.transaction() as c:
        c.execute("INSERT INTO t VALUES (?)", [5.5])
    with pytest.raises(KeyError):
        with datastore.transaction(commit=True) as c:
            c.execute("INSERT INTO t VALUES (6)")
            raise KeyError("abandoned")
    with datastore.transaction() as c:
        c.execute("SELECT x FROM t ORDER BY rowid")
        assert c.fetchone() == (1,)
        assert c.fetchall() == [("two",), (None,), (b"4",)]
        assert c.fetchone() is None
        with pytest.raises(OperationalError, match="no such table"):
            c.execute("SELECT * FROM missing")
        with pytest.raises(ProgrammingError):
            c.execute("SELECT 1; SELECT 2")
    transaction = datastore.transaction()
    with pytest.raises(ProgrammingError, match="not open"):
        transaction.execute("SELECT 1")


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_another_process_holding_the_write_lock_times_out_writers(
    db: Path,
) -> None:
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(db), lock_timeout=1))
    recorder.create_table()
    blocker = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert blocker.stdout is not None and blocker.stdin is not None
    assert blocker.stdout.readline() == "locked\n"
    started = time.monotonic()
    with pytest.raises(OperationalError, match="locked") as caught:
        recorder.insert_events([ev(uuid4(), 1)])
    assert time.monotonic() - started >= 0.9
    assert str(db) in str(caught.value)
    # Readers are not blocked by the writer.
    assert recorder.max_notification_id() == 0
    blocker.stdin.close()
    blocker.wait()
    assert recorder.insert_events([ev(uuid4(), 1)]) == [1]


# -- bad input ------------------------------------------------------------------


def test_a_path_in_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "events.db"
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(path)))
    with pytest.raises(InterfaceError, match="unable to open") as caught:
        recorder.create_table()
    assert str(path) in str(caught.value)
    assert not path.parent.exists()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = b"These are not the pages of a database.\n" * 200
    path.write_bytes(content)
    recorder = SQLiteProcessRecorder(SQLiteDatastore(str(path)))
    with pytest.raises(InterfaceError, match="not a database") as caught:
        recorder.create_table()
    assert str(path) in str(caught.value)
    with pytest.raises(InterfaceError):
        recorder.insert_events([ev(uuid4(), 1)], tracking=Tracking("up", 1))
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_no_database_name() -> None:
    with pytest.raises(InterfaceError):
        SQLiteDatastore(None).transaction()  # type: ignore[arg-type]
    with pytest.raises(InterfaceError):
        SQLiteDatastore(42)  # type: ignore[arg-type]


def test_a_read_only_database(db: Path) -> None:
    writer = SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
    writer.create_table()
    writer.insert_events([ev(uuid4(), 1)])
    writer.datastore.close_all_connections()
    if os.geteuid() == 0:
        # File permissions do not bind root: open the file read-only instead.
        name = f"file:{db}?mode=ro"
    else:
        db.chmod(0o444)
        name = str(db)
    reader = SQLiteApplicationRecorder(SQLiteDatastore(name))
    assert reader.max_notification_id() == 1
    with pytest.raises(OperationalError, match="readonly") as caught:
        reader.insert_events([ev(uuid4(), 1), ev(uuid4(), 1)])
    assert str(db) in str(caught.value) and "'stored_events'" in str(caught.value)
    assert reader.max_notification_id() == 1


def test_a_table_of_the_wrong_shape(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE stored_events (id INTEGER PRIMARY KEY, data BLOB)")
    recorder = SQLiteProcessRecorder(SQLiteDatastore(str(db)))
    with pytest.raises(ProgrammingError, match="wrong shape") as caught:
        recorder.create_table()
    assert "'stored_events'" in str(caught.value) and str(db) in str(caught.value)
    assert tables(db) == ["stored_events"]  # not even the tracking table

    # An application recorder cannot number a WITHOUT ROWID table.
    datastore = SQLiteDatastore(str(db))
    SQLiteAggregateRecorder(datastore, "stored_snapshots").create_table()
    numbered = SQLiteApplicationRecorder(datastore, "stored_snapshots")
    with pytest.raises(ProgrammingError, match="WITHOUT ROWID"):
        numbered.create_table()


def test_create_table_statements_can_be_replaced() -> None:
    recorder = SQLiteAggregateRecorder(SQLiteDatastore(":memory:"))
    assert len(recorder.create_table_statements) == 1
    recorder.create_table_statements = ["BLAH"]
    with pytest.raises(OperationalError, match="syntax error"):
        recorder.create_table()


# -- the reference library's tables ---------------------------------------------

REFERENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT,
  originator_version INTEGER, topic TEXT, state BLOB,
  PRIMARY KEY (originator_id, originator_version));
CREATE TABLE IF NOT EXISTS tracking (application_name text, notification_id int,
  PRIMARY KEY (application_name, notification_id)) WITHOUT ROWID;
"""


def test_databases_move_between_this_and_the_reference_library(db: Path) -> None:
    a = uuid4()
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(REFERENCE_SCHEMA)
        conn.execute("INSERT INTO stored_events VALUES (?,?,?,?)", (a.hex, 0, "t0", b"s0"))
        conn.execute("INSERT INTO tracking VALUES (?,?)", ("up", 3))
        conn.commit()
    recorder = SQLiteProcessRecorder(SQLiteDatastore(str(db)))
    recorder.create_table()
    assert recorder.select_events(a) == [StoredEvent(a, 0, "t0", b"s0")]
    assert recorder.max_tracking_id("up") == 3
    recorder.insert_events([StoredEvent(a, 1, "t1", b"s1")], tracking=Tracking("up", 4))
    recorder.datastore.close_all_connections()

    # Read back the way the reference reads.
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT rowid, * FROM stored_events WHERE rowid>=? ORDER BY rowid LIMIT ?",
            (1, 10),
        ).fetchall()
        assert [(r["rowid"], UUID(r["originator_id"]), r["topic"]) for r in rows] == [
            (1, a, "t0"),
            (2, a, "t1"),
        ]
        assert rows[1]["state"] == b"s1"
        max_tracked = conn.execute(
            "SELECT MAX(notification_id) FROM tracking WHERE application_name=?",
            ("up",),
        ).fetchone()
        assert tuple(max_tracked) == (4,)

    ours = Path(str(db) + ".ours")
    SQLiteProcessRecorder(SQLiteDatastore(str(ours))).create_table()
    info = query(ours, "SELECT name, type, pk FROM pragma_table_info('stored_events')")
    assert info == [
        ("originator_id", "TEXT", 1),
        ("originator_version", "INTEGER", 2),
        ("topic", "TEXT", 0),
        ("state", "BLOB", 0),
    ]
    info = query(ours, "SELECT name, type, pk FROM pragma_table_info('tracking')")
    assert info == [("application_name", "TEXT", 1), ("notification_id", "INT", 2)]
    with closing(sqlite3.connect(ours)) as conn:
        b = uuid4()
        conn.execute("INSERT INTO stored_events VALUES (?,?,?,?)", (b.hex, 0, "t", b""))
        conn.commit()
    assert SQLiteProcessRecorder(SQLiteDatastore(str(ours))).select_events(b) == [
        StoredEvent(b, 0, "t", b"")
    ]


# -- many threads, many processes -------------------------------------------------


class Follower:
    """Reads the notification log as it grows, checking it never skips."""

    def __init__(self, recorder: SQLiteApplicationRecorder):
        self.recorder = recorder
        self.seen: List[int] = []
        self.problems: List[str] = []

    def poll(self) -> None:
        last = self.seen[-1] if self.seen else 0
        for n in self.recorder.select_notifications(last + 1, 500):
            if n.id != last + 1:
                self.problems.append(f"after {last} came {n.id}")
            last = n.id
            self.seen.append(n.id)

    def follow_while(self, alive: Any) -> None:
        while alive():
            self.poll()
            time.sleep(0.001)
        self.poll()


def test_threads_write_while_a_reader_follows(db: Path) -> None:
    datastore = SQLiteDatastore(str(db))
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    taken = uuid4()
    recorder.insert_events([ev(taken, 1)])
    given: List[List[int]] = []
    refused: List[int] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        # Half the writers share the datastore, half have their own.
        r = recorder if n % 2 else SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
        for i in range(25):
            ids = list(r.insert_events(batch(uuid4(), 3)) or [])
            with lock:
                given.append(ids)
            if i % 10 == 0:
                try:
                    r.insert_events([ev(uuid4(), 1), ev(taken, 1)])
                except IntegrityError:
                    with lock:
                        refused.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    follower = Follower(SQLiteApplicationRecorder(SQLiteDatastore(str(db))))
    follower.follow_while(lambda: any(t.is_alive() for t in threads))
    assert follower.problems == []
    assert len(refused) == 6 * 3
    every = sorted(i for ids in given for i in ids)
    assert every == list(range(2, 2 + 6 * 25 * 3))
    assert follower.seen == [1, *every]
    assert all(ids == list(range(ids[0], ids[0] + 3)) for ids in given)


def test_processes_write_while_a_reader_follows(db: Path) -> None:
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
    recorder.create_table()
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        results = pool.starmap_async(write_batches, [(str(db), 50, 4)] * 3)
        follower = Follower(recorder)
        follower.follow_while(lambda: not results.ready())
        outcomes = results.get(timeout=60)
    assert follower.problems == []
    given = [i for ids, _ in outcomes for i in ids]
    assert sorted(given) == list(range(1, 3 * 50 * 4 + 1)), "unique, no gaps"
    assert follower.seen == sorted(given)
    assert [refused for _, refused in outcomes] == [1, 1, 1]
    assert recorder.max_notification_id() == 3 * 50 * 4


def test_a_forked_child_opens_connections_of_its_own(db: Path) -> None:
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
    recorder.create_table()
    recorder.insert_events([ev(uuid4(), 1)])
    assert recorder.max_notification_id() == 1  # a reader is open, too

    def child() -> None:
        ids = recorder.insert_events([ev(uuid4(), 1), ev(uuid4(), 1)])
        if list(ids or []) != [2, 3] or recorder.max_notification_id() != 3:
            raise SystemExit(3)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=30)
    assert process.exitcode == 0
    assert recorder.max_notification_id() == 3
    assert recorder.insert_events([ev(uuid4(), 1)]) == [4]


def test_a_child_forked_from_a_forked_child_opens_connections_of_its_own(db: Path) -> None:
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
    recorder.create_table()
    recorder.insert_events([ev(uuid4(), 1)])
    assert recorder.max_notification_id() == 1
    context = multiprocessing.get_context("fork")

    def grandchild() -> None:
        if list(recorder.insert_events([ev(uuid4(), 1)]) or []) != [3]:
            raise SystemExit(3)

    def child() -> None:
        # Connections of its own, then a fork of its own: the grandchild
        # must not use them either.
        if list(recorder.insert_events([ev(uuid4(), 1)]) or []) != [2]:
            raise SystemExit(3)
        process = context.Process(target=grandchild)
        process.start()
        process.join(timeout=30)
        if process.exitcode != 0 or recorder.insert_events([ev(uuid4(), 1)]) != [4]:
            raise SystemExit(4)

    process = context.Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert recorder.max_notification_id() == 4
    assert recorder.insert_events([ev(uuid4(), 1)]) == [5]


# -- crashes ------------------------------------------------------------------------


def kill_mid_insert(db: Path, after: int) -> int:
    """Starts a child inserting batches and kills it with SIGKILL once it
    has started ``after`` inserts; returns how many it had started."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite_workers", str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if int(line) >= after:
                break
        # An insert takes milliseconds: land at different points in one.
        time.sleep(0.002 * (after % 4))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # The child says which insert it starts before starting it.
    started = max(int(line) for line in [str(after), *child.stdout.read().split()])
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return started


def check_whole_batches(db: Path) -> List[int]:
    """Sizes of the batches found, each checked to be whole."""
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    ids = [i for (i,) in query(db, "SELECT rowid FROM stored_events ORDER BY 1")]
    assert ids == list(range(1, len(ids) + 1))
    counts = Counter(query(db, "SELECT originator_id, topic FROM stored_events"))
    for (_, topic), count in counts.items():
        assert count == int(topic.removeprefix("size=")), "part of a batch"
    return list(counts.values())


def test_killed_writer_leaves_whole_batches_and_a_database_that_opens(
    db: Path,
) -> None:
    recorded = 0
    for round_ in range(5):
        started = kill_mid_insert(db, after=3 + round_)
        batches = check_whole_batches(db)
        # Every insert before the last one started is there; the last one
        # is there entirely or not at all.
        assert len(batches) - recorded in (started - 1, started)
        recorded = len(batches)
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(db)))
    recorder.create_table()
    last = recorder.max_notification_id()
    assert recorder.insert_events([ev(uuid4(), 1)]) == [last + 1]
