"""PostgreSQL persistence: the factory and its environment, the recorders'
guarantees on a real server, error mapping, reconnection, threads, fork,
LISTEN/NOTIFY and the table layout shared with eventsourcing 9.1.

The behaviour every store shares is tested by the recorder contract
(tests/recorder_contract.py, with a PostgreSQL store in test_recorders.py);
these tests are about what is particular to PostgreSQL. Tests needing a
server skip when none answers (see tests/pg_server.py).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple, Type
from uuid import UUID, uuid4

import pytest

psycopg = pytest.importorskip("psycopg", reason="the 'postgres' extra is not installed")

from eventsourcing_rs.persistence import (  # noqa: E402
    DataError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    InvalidSetting,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing_rs.postgres import (  # noqa: E402
    Factory,
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresProcessRecorder,
)
from eventsourcing_rs.postgres_sessions import _commit  # noqa: E402
from eventsourcing_rs.system import SingleThreadedRunner, System  # noqa: E402

from . import pg_server  # noqa: E402
from .system_fixtures import Orders, Payments, Reservations  # noqa: E402

BASE_ENV = {
    "POSTGRES_DBNAME": "db",
    "POSTGRES_HOST": "host",
    "POSTGRES_USER": "user",
    "POSTGRES_PASSWORD": "secret",
    "CREATE_TABLE": "no",
}


def event(originator_id: UUID, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator_id, version, "topic", state)


@pytest.fixture
def server() -> None:
    pg_server.require_server()


@pytest.fixture
def store(server: None) -> Iterator[pg_server.PostgresStore]:
    store = pg_server.PostgresStore()
    yield store
    store.close()


def backend_pids(datastore: PostgresDatastore) -> List[int]:
    """The server sessions of the datastore's connections: psycopg's, and
    the one the Rust connections reuse next."""
    psycopg_pids = [c.c.info.backend_pid for c in datastore._connections.values()]
    native_pid = datastore._native.query_int("SELECT pg_backend_pid()", [], "backend pid")
    return psycopg_pids + [native_pid]


def terminate(pids: List[int]) -> None:
    """Ends server sessions, as an administrator or a restart would."""
    with pg_server.connect() as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.05)


# The factory and its environment (no server needed).


class TestFactory:
    def test_reads_settings_with_defaults(self) -> None:
        factory = Factory("App", BASE_ENV)
        ds = factory.datastore
        assert (ds.dbname, ds.host, ds.port, ds.user, ds.password) == (
            "db",
            "host",
            "5432",
            "user",
            "secret",
        )
        assert ds.conn_max_age is None
        assert ds.pre_ping is False
        assert ds.lock_timeout == 0
        assert ds.idle_in_transaction_session_timeout == 0

    def test_reads_optional_settings(self) -> None:
        env = {
            **BASE_ENV,
            "POSTGRES_PORT": "6543",
            "POSTGRES_CONN_MAX_AGE": "2.5",
            "POSTGRES_PRE_PING": "on",
            "POSTGRES_LOCK_TIMEOUT": "1.25",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "7",
        }
        ds = Factory("App", env).datastore
        assert ds.port == "6543"
        assert ds.conn_max_age == 2.5
        assert ds.pre_ping is True
        assert ds.lock_timeout == 1.25
        assert ds.idle_in_transaction_session_timeout == 7.0

    def test_empty_values_mean_defaults(self) -> None:
        env = {
            **BASE_ENV,
            "POSTGRES_CONN_MAX_AGE": "",
            "POSTGRES_LOCK_TIMEOUT": "",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "",
        }
        ds = Factory("App", env).datastore
        assert ds.conn_max_age is None
        assert ds.lock_timeout == 0
        assert ds.idle_in_transaction_session_timeout == 0

    def test_application_prefix_wins(self) -> None:
        env = {**BASE_ENV, "MYAPP_POSTGRES_DBNAME": "mine", "MYAPP_POSTGRES_PORT": "1"}
        assert Factory("MyApp", env).datastore.dbname == "mine"
        assert Factory("MyApp", env).datastore.port == "1"
        assert Factory("Other", env).datastore.dbname == "db"

    @pytest.mark.parametrize(
        "key, what",
        [
            ("POSTGRES_DBNAME", "database name"),
            ("POSTGRES_HOST", "host"),
            ("POSTGRES_USER", "user"),
            ("POSTGRES_PASSWORD", "password"),
        ],
    )
    def test_missing_setting_is_named(self, key: str, what: str) -> None:
        env = {k: v for k, v in BASE_ENV.items() if k != key}
        with pytest.raises(EnvironmentError) as caught:
            Factory("App", env)
        assert caught.value.args[0] == (
            f"Postgres {what} not found in environment with key '{key}'"
        )

    @pytest.mark.parametrize(
        "key",
        [
            "POSTGRES_CONN_MAX_AGE",
            "POSTGRES_LOCK_TIMEOUT",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
        ],
    )
    def test_invalid_number_is_named(self, key: str) -> None:
        with pytest.raises(EnvironmentError) as caught:
            Factory("App", {**BASE_ENV, key: "soon"})
        assert caught.value.args[0] == (
            f"Postgres environment value for key '{key}' is invalid. "
            "If set, a float or empty string is expected: 'soon'"
        )

    @pytest.mark.parametrize(
        "port", ["0", "65536", "54x2", "-1", "\uff15\uff14\uff13\uff12", "\u00b2"]
    )
    def test_a_port_that_is_no_port_is_named(self, port: str) -> None:
        # Digits of other scripts included: the server's port is ASCII.
        with pytest.raises(InvalidSetting, match="POSTGRES_PORT.*not a port number"):
            Factory("App", {**BASE_ENV, "POSTGRES_PORT": port})

    def test_table_names_follow_the_application(self) -> None:
        factory = Factory("BankAccounts", BASE_ENV)
        events = factory.application_recorder()
        snapshots = factory.aggregate_recorder("snapshots")
        process = factory.process_recorder()
        assert isinstance(events, PostgresApplicationRecorder)
        assert isinstance(snapshots, PostgresAggregateRecorder)
        assert isinstance(process, PostgresProcessRecorder)
        assert events.events_table_name == "bankaccounts_events"
        assert snapshots.events_table_name == "bankaccounts_snapshots"
        assert process.events_table_name == "bankaccounts_events"
        assert process.tracking_table_name == "bankaccounts_tracking"

    def test_table_names_without_an_application(self) -> None:
        factory = Factory("", BASE_ENV)
        process = factory.process_recorder()
        assert isinstance(process, PostgresProcessRecorder)
        assert process.events_table_name == "stored_events"
        assert process.tracking_table_name == "notification_tracking"
        snapshots = factory.aggregate_recorder("snapshots")
        assert isinstance(snapshots, PostgresAggregateRecorder)
        assert snapshots.events_table_name == "stored_snapshots"

    def test_constructed_from_its_topic(self) -> None:
        env = {
            **BASE_ENV,
            "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.postgres:Factory",
        }
        factory = InfrastructureFactory.construct("App", env)
        assert isinstance(factory, Factory)

    @pytest.mark.parametrize("name", ["", "1abc", "a b", "x;DROP TABLE y", "a.b.c"])
    def test_refuses_table_names_that_are_not_plain_names(self, name: str) -> None:
        datastore = PostgresDatastore("db", "host", "5432", "user", "secret")
        with pytest.raises(ValueError, match="table name"):
            PostgresApplicationRecorder(datastore, name)

    @pytest.mark.parametrize("name", ["\u00fc" * 32, "s.\u00fc" + "a" * 62])
    def test_refuses_names_postgresql_would_cut_short(self, name: str) -> None:
        # 63 bytes at most: "\u00fc" * 32 is 32 characters but 64 bytes.
        datastore = PostgresDatastore("db", "host", "5432", "user", "secret")
        with pytest.raises(ValueError, match="63 bytes"):
            PostgresApplicationRecorder(datastore, name)

    def test_unreachable_server_is_an_interface_error(self) -> None:
        # Port 1 on the loopback interface: refused at once.
        datastore = PostgresDatastore("db", "127.0.0.1", "1", "user", "secret")
        with pytest.raises(InterfaceError, match="127.0.0.1:1"):
            datastore.transaction(commit=False)
        recorder = PostgresApplicationRecorder(datastore)
        with pytest.raises(InterfaceError):
            recorder.max_notification_id()

    def test_a_lost_commit_is_reported_as_unknown(self) -> None:
        class LostConnection:
            closed = False

            def commit(self) -> None:
                self.closed = True
                raise psycopg.OperationalError("server closed the connection")

        with pytest.raises(InterfaceError, match="unknown"):
            _commit(LostConnection())  # type: ignore[arg-type]


# Recorders on a server.


class TestRecorders:
    def test_insert_returns_ids_and_select_reads_back(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()
        a, b = uuid4(), uuid4()
        big = [event(b, v, bytes(range(256)) * 4) for v in range(40)]
        assert recorder.insert_events([event(a, 1), event(a, 2)]) == [1, 2]
        # Over the size of prepared batches: sent as arrays.
        assert recorder.insert_events(big) == list(range(3, 43))
        assert recorder.insert_events([]) == []
        assert recorder.select_events(b) == big
        assert recorder.select_events(a, desc=True, limit=1) == [event(a, 2)]
        notifications = recorder.select_notifications(2, 3)
        assert [(n.id, n.originator_id, n.originator_version) for n in notifications] == [
            (2, a, 2),
            (3, b, 0),
            (4, b, 1),
        ]
        aggregate = store.aggregate_recorder()
        assert aggregate.insert_events([event(a, 1)]) is None
        assert aggregate.insert_events(big) is None
        assert aggregate.select_events(b, gt=37) == big[38:]

    def test_refused_inserts_take_no_notification_ids(self, store: pg_server.PostgresStore) -> None:
        recorder = store.process_recorder()
        a = uuid4()
        recorder.insert_events([event(a, 1)], tracking=Tracking("up", 3))
        refused: List[Tuple[List[StoredEvent], Tracking]] = [
            ([event(a, 1)], Tracking("up", 4)),
            ([event(a, 2)], Tracking("up", 3)),
            ([event(a, 2)], Tracking("up", 2)),
            ([event(uuid4(), v) for v in range(30)] + [event(a, 1)], Tracking("up", 9)),
        ]
        for events, tracking in refused:
            with pytest.raises(IntegrityError):
                recorder.insert_events(events, tracking=tracking)
        assert recorder.insert_events([event(a, 2)], tracking=Tracking("up", 4)) == [2]
        assert recorder.max_tracking_id("up") == 4

    def test_conflicts_name_the_aggregate_the_version_and_the_table(
        self, store: pg_server.PostgresStore
    ) -> None:
        for recorder in (store.aggregate_recorder(), store.application_recorder()):
            a = uuid4()
            recorder.insert_events([event(a, 1)])
            with pytest.raises(IntegrityError) as caught:
                recorder.insert_events([event(a, 2), event(a, 1)])
            message = str(caught.value)
            assert "version 1" in message and str(a) in message
            assert recorder.events_table_name in message  # type: ignore[attr-defined]
            with pytest.raises(IntegrityError, match="two events at version 3"):
                recorder.insert_events([event(a, 3), event(a, 3)])

    def test_stale_tracking_names_the_application_and_last_position(
        self, store: pg_server.PostgresStore
    ) -> None:
        recorder = store.process_recorder()
        a = uuid4()
        recorder.insert_events([], tracking=Tracking("leader", 7))
        with pytest.raises(IntegrityError) as caught:
            recorder.insert_events([event(a, 1)], tracking=Tracking("leader", 5))
        message = str(caught.value)
        assert "notification 5" in message and "'leader'" in message
        assert "last tracked id is 7" in message
        assert recorder.select_events(a) == []
        assert recorder.max_notification_id() == 0

    def test_missing_table_is_a_programming_error_naming_it(self, server: None) -> None:
        datastore = pg_server.datastore()
        table = f"esrs_test_{uuid4().hex[:12]}_missing"
        recorder = PostgresProcessRecorder(datastore, table, table + "_tracking")
        calls: List[Any] = [
            lambda: recorder.insert_events([event(uuid4(), 1)]),
            lambda: recorder.select_events(uuid4()),
            lambda: recorder.select_notifications(1, 10),
            lambda: recorder.max_notification_id(),
            lambda: recorder.max_tracking_id("up"),
        ]
        for call in calls:
            with pytest.raises(ProgrammingError, match=table):
                call()
        datastore.close_all_connections()

    def test_a_table_of_the_longest_name_has_its_own_notification_index(self, server: None) -> None:
        # 9.1's index name for it would be cut to the table's own name.
        table = ("esrs_" + uuid4().hex + "x" * 63)[:63]
        try:
            recorder = PostgresApplicationRecorder(pg_server.datastore(), table)
            recorder.create_table()
            with pg_server.connect() as admin:
                rows = admin.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                    [table],
                ).fetchall()
            assert any(
                "UNIQUE" in definition
                and "(notification_id)" in definition
                and name != table
                and len(name.encode()) <= 63
                for name, definition in rows
            ), rows
        finally:
            pg_server.drop_tables([table])

    def test_a_write_larger_than_a_message_is_refused_before_it_is_sent(
        self, store: pg_server.PostgresStore
    ) -> None:
        # The server would end the session on it, leaving the outcome
        # looking unknown. (One state shared by the events: 128 MiB held.)
        recorder = store.application_recorder()
        state = b"x" * (1 << 27)
        a = uuid4()
        events = [StoredEvent(a, v, "a:B", state) for v in range(1, 10)]
        with pytest.raises(DataError, match="1 GB.*nothing was written"):
            recorder.insert_events(events)
        assert recorder.select_events(a) == []
        assert recorder.insert_events([event(uuid4(), 1)]) == [1]

    def test_out_of_range_values_are_data_errors(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()
        with pytest.raises(DataError):
            recorder.insert_events([event(uuid4(), 2**31)])
        with pytest.raises(DataError):
            recorder.insert_events([StoredEvent(uuid4(), 1, "nul\x00topic", b"")])
        assert recorder.max_notification_id() == 0

    def test_lock_timeout_is_an_operational_error(self, server: None) -> None:
        store = pg_server.PostgresStore()
        store.datastore.lock_timeout = 0.2
        try:
            recorder = store.application_recorder()
            table = recorder.events_table_name  # type: ignore[attr-defined]
            with pg_server.connect() as other:
                other.execute("BEGIN")
                other.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
                started = time.monotonic()
                with pytest.raises(OperationalError, match="lock"):
                    recorder.insert_events([event(uuid4(), 1)])
                assert time.monotonic() - started < 5
                # Readers are not blocked by writers' lock.
                assert recorder.select_notifications(1, 10) == []
                other.execute("ROLLBACK")
            assert recorder.insert_events([event(uuid4(), 1)]) == [1]
        finally:
            store.close()

    def test_no_lock_timeout_means_none_whatever_the_servers_default(self, server: None) -> None:
        """As 9.1 (which sets it at every insert): POSTGRES_LOCK_TIMEOUT
        unset is no limit, also for a role whose sessions have one."""
        role = "esrs_lock_timeout_test"
        with pg_server.connect(user="postgres", password="postgres") as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'secret'")
            admin.execute(f"ALTER ROLE {role} SET lock_timeout = '50ms'")
            admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        s = pg_server.settings()
        datastore = PostgresDatastore(s["dbname"], s["host"], s["port"], role, "secret")
        recorder = PostgresApplicationRecorder(datastore, f"esrs_lock_{uuid4().hex[:10]}")
        try:
            recorder.create_table()
            assert not datastore.sessions_wait_for_locks()
            with psycopg.connect(
                dbname=s["dbname"], host=s["host"], port=s["port"], user=role, password="secret"
            ) as other:
                other.execute(f"LOCK TABLE {recorder.events_table_name} IN EXCLUSIVE MODE")
                releaser = threading.Timer(0.5, other.rollback)
                releaser.start()
                started = time.monotonic()
                assert recorder.insert_events([event(uuid4(), 1)]) == [1]
                assert time.monotonic() - started >= 0.4
                releaser.join()
        finally:
            with pg_server.connect(user="postgres", password="postgres") as admin:
                admin.execute(f"DROP TABLE IF EXISTS {recorder.events_table_name}")
                datastore.close_all_connections()
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (role,),
                )
                admin.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
                admin.execute(f"DROP ROLE {role}")

    def test_reconnects_after_the_server_ends_the_session(
        self, store: pg_server.PostgresStore
    ) -> None:
        recorder = store.process_recorder()
        a = uuid4()
        recorder.insert_events([event(a, 1)], tracking=Tracking("up", 1))
        calls: List[Any] = [
            lambda: recorder.insert_events([event(a, 2)], tracking=Tracking("up", 2)),
            lambda: recorder.select_events(a),
            lambda: recorder.select_notifications(1, 5),
            lambda: recorder.max_notification_id(),
            lambda: recorder.max_tracking_id("up"),
        ]
        for call in calls:
            terminate(backend_pids(store.datastore))
            call()
        assert [e.originator_version for e in recorder.select_events(a)] == [1, 2]
        assert recorder.max_tracking_id("up") == 2

    def test_nested_use_of_a_threads_connection_is_refused(
        self, store: pg_server.PostgresStore
    ) -> None:
        recorder = store.application_recorder()
        with store.datastore.transaction(commit=False):
            with pytest.raises(ProgrammingError, match="nested"):
                recorder.max_notification_id()
        assert recorder.max_notification_id() == 0


class TestDatastore:
    def test_transaction_commits_or_rolls_back(self, store: pg_server.PostgresStore) -> None:
        table = store.table("plain")
        with store.datastore.transaction(commit=True) as conn:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE TABLE {table} (x int)")
                cursor.execute(f"INSERT INTO {table} VALUES (1)")
        with store.datastore.transaction(commit=False) as conn:
            with conn.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} VALUES (2)")
        with store.datastore.transaction(commit=False) as conn:
            with conn.cursor() as cursor:
                cursor.execute(f"SELECT x FROM {table}")
                rows = cursor.fetchall()
        assert rows == [[1]]
        assert rows[0]["x"] == 1
        with pytest.raises(PersistenceError):
            with store.datastore.transaction(commit=True) as conn:
                with conn.c.cursor() as cursor:
                    cursor.execute(f"INSERT INTO {table} VALUES ('not a number')")

    def test_connection_settings_reach_the_session(self, server: None) -> None:
        datastore = pg_server.datastore(idle_in_transaction_session_timeout=1.5)
        with datastore.transaction(commit=False) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SHOW idle_in_transaction_session_timeout")
                assert cursor.fetchall() == [["1500ms"]]
        datastore.close_all_connections()

    def test_old_connections_are_replaced(self, server: None) -> None:
        datastore = pg_server.datastore(conn_max_age=0)
        first = datastore.get_connection().c.info.backend_pid
        second = datastore.get_connection().c.info.backend_pid
        assert first != second
        datastore.close_all_connections()

    def test_pre_ping_replaces_a_dead_connection(self, server: None) -> None:
        datastore = pg_server.datastore(pre_ping=True)
        with datastore.transaction(commit=False):
            pass
        terminate(backend_pids(datastore))
        with datastore.transaction(commit=False) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchall() == [[1]]
        datastore.close_all_connections()

    def test_connections_of_ended_threads_are_closed(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()

        def work() -> None:
            recorder.insert_events([event(uuid4(), 1)])

        for _ in range(5):
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        assert recorder.max_notification_id() == 5
        # The main thread's connection and at most the last thread's.
        assert len(store.datastore._connections) <= 2

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
    def test_a_forked_child_opens_its_own_connection(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()
        recorder.insert_events([event(uuid4(), 1)])
        parent_pid = backend_pids(store.datastore)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports by exit status
            code = 1
            try:
                ids = recorder.insert_events([event(uuid4(), 1)])
                mine = backend_pids(store.datastore)
                code = 0 if ids == [2] and mine != parent_pid else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's session survived the child (and its exit).
        assert backend_pids(store.datastore) == parent_pid
        assert recorder.insert_events([event(uuid4(), 1)]) == [3]


class TestConcurrency:
    def test_readers_never_miss_a_notification(self, store: pg_server.PostgresStore) -> None:
        """Invariant 2: a reader tailing the log from the last id it saw
        ends up with every notification, though writers race."""
        recorder = store.application_recorder()
        writers, inserts, batch = 6, 25, 3
        done = threading.Event()
        errors: List[BaseException] = []
        seen: List[int] = []
        results: List[List[int]] = []

        def write() -> None:
            try:
                for _ in range(inserts):
                    a = uuid4()
                    ids = recorder.insert_events([event(a, v) for v in range(batch)])
                    results.append(list(ids or []))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        def read() -> None:
            try:
                while True:
                    finished = done.is_set()
                    start = seen[-1] + 1 if seen else 1
                    seen.extend(n.id for n in recorder.select_notifications(start, 50))
                    if finished:
                        return
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        reader.join()
        assert errors == []
        total = writers * inserts * batch
        assert seen == list(range(1, total + 1))
        for ids in results:
            assert ids == list(range(ids[0], ids[0] + batch))

    def test_racing_trackers_never_go_backwards(self, store: pg_server.PostgresStore) -> None:
        recorder = store.process_recorder()
        accepted: Dict[int, List[int]] = {}
        errors: List[BaseException] = []

        def track(worker: int) -> None:
            accepted[worker] = []
            for position in range(1, 41):
                try:
                    recorder.insert_events([event(uuid4(), 1)], tracking=Tracking("up", position))
                except IntegrityError:
                    continue
                except BaseException as error:  # pragma: no cover
                    errors.append(error)
                    return
                accepted[worker].append(position)

        threads = [threading.Thread(target=track, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        every = sorted(p for positions in accepted.values() for p in positions)
        assert len(every) == len(set(every)), "a position was recorded twice"
        assert recorder.max_tracking_id("up") == 40
        assert recorder.max_notification_id() == len(every)


class TestReadsOfTheLastBatch:
    """A follower's read of the ids a recorder's own last insert committed
    is answered from that insert (as a follower prompted by it reads them);
    other readers' reads always go to the table."""

    @staticmethod
    def fields(notifications: Any) -> List[Tuple[Any, ...]]:
        return [
            (n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in notifications
        ]

    def test_they_match_the_table(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()
        other = PostgresApplicationRecorder(pg_server.datastore(), recorder.events_table_name)
        recorder.insert_events([event(uuid4(), 1)])
        a = uuid4()
        ids = recorder.insert_events([event(a, v) for v in range(1, 5)])
        assert ids == [2, 3, 4, 5]
        # Nothing was committed after the batch: every answer is the table's.
        for start in range(0, 8):
            for limit in range(0, 7):
                got = self.fields(recorder._select_for_followers(start, limit))
                assert got == self.fields(other.select_notifications(start, limit)), (start, limit)

    def test_they_need_no_round_trip(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()
        ids = recorder.insert_events([event(uuid4(), 1), event(uuid4(), 1)])
        assert ids == [1, 2]
        with pg_server.connect() as admin:
            admin.execute(f"DROP TABLE {recorder.events_table_name}")
        # Only a read outside the batch goes to the (now missing) table.
        assert [n.id for n in recorder._select_for_followers(1, 10)] == [1, 2]
        with pytest.raises(ProgrammingError):
            recorder._select_for_followers(3, 10)
        with pytest.raises(ProgrammingError):
            recorder.select_notifications(1, 10)

    def test_another_writers_commits_are_read_from_the_table(
        self, store: pg_server.PostgresStore
    ) -> None:
        recorder = store.application_recorder()
        other = PostgresApplicationRecorder(pg_server.datastore(), recorder.events_table_name)
        mine = recorder.insert_events([event(uuid4(), 1) for _ in range(3)])
        theirs = other.insert_events([event(uuid4(), 1) for _ in range(2)])
        assert (mine, theirs) == ([1, 2, 3], [4, 5])
        # A reader tailing the log from the batch gets everything, in order.
        seen: List[int] = []
        while True:
            page = recorder._select_for_followers(seen[-1] + 1 if seen else 2, 10)
            if not page:
                break
            seen.extend(n.id for n in page)
        assert seen == [2, 3, 4, 5]
        # A batch whose ids have a gap (not from one locked insert) is never
        # used: here the last batch is [6, 8] once a row between is deleted.
        more = recorder.insert_events([event(uuid4(), 1) for _ in range(3)])
        assert more == [6, 7, 8]
        recorder._last_committed = ([6, 8], recorder._last_committed[1][::2])
        assert [n.id for n in recorder._select_for_followers(6, 10)] == [6, 7, 8]

    def test_other_readers_get_the_whole_answer(self, store: pg_server.PostgresStore) -> None:
        # Two instances of one application (two processes, say).
        one = store.application_recorder()
        two = PostgresApplicationRecorder(pg_server.datastore(), one.events_table_name)
        one.insert_events([event(uuid4(), 1)])
        two.insert_events([event(uuid4(), 1) for _ in range(5)])
        assert [n.id for n in one.select_notifications(1, 100)] == [1, 2, 3, 4, 5, 6]
        assert [n.id for n in one._select_for_followers(1, 100)] == [1]

    def test_a_follower_reads_through_it_and_a_log_does_not(
        self, store: pg_server.PostgresStore
    ) -> None:
        from eventsourcing_rs import shortcuts
        from eventsourcing_rs.application import LocalNotificationLog

        follower = store.process_recorder()
        leader = store.application_recorder()
        log = LocalNotificationLog(leader, section_size=10)
        _, select, _ = shortcuts.follower_calls(follower, None, log, LocalNotificationLog)
        assert select == leader._select_for_followers

        class Subclassed(PostgresApplicationRecorder):
            def select_notifications(self, start: int, limit: int) -> List[Any]:
                return super().select_notifications(start, limit)

        custom = Subclassed(pg_server.datastore(), leader.events_table_name)
        log = LocalNotificationLog(custom, section_size=10)
        _, select, _ = shortcuts.follower_calls(follower, None, log, LocalNotificationLog)
        assert select == custom.select_notifications


class TestNotify:
    def test_listeners_hear_of_committed_inserts_only(self, store: pg_server.PostgresStore) -> None:
        recorder = store.application_recorder()
        assert isinstance(recorder, PostgresApplicationRecorder)
        channel = recorder.enable_notify()
        assert channel == recorder.events_table_name
        a = uuid4()
        with pg_server.connect() as listener:
            listener.execute(f"LISTEN {channel}")
            recorder.insert_events([event(a, 1), event(a, 2)])
            with pytest.raises(IntegrityError):
                recorder.insert_events([event(a, 2)])
            recorder.insert_events([event(a, 3)])
            payloads: List[str] = []
            while payloads[-1:] != ["3"]:
                heard = [n.payload for n in listener.notifies(timeout=2.0, stop_after=1)]
                assert heard, f"no notification after {payloads}"
                payloads.extend(heard)
            # Inserts committed while one NOTIFY is sent are told of by the
            # next (with the latest id): "2" may be folded into "3".
            assert payloads in (["2", "3"], ["3"])
            assert list(listener.notifies(timeout=0.2)) == []


class TestListener:
    def test_a_listener_in_rust_hears_committed_inserts(
        self, store: pg_server.PostgresStore
    ) -> None:
        recorder = store.application_recorder()
        assert isinstance(recorder, PostgresApplicationRecorder)
        channel = recorder.enable_notify(leader_name="Leader")
        listener = recorder.datastore.native.listen([channel])
        try:
            assert listener.wait(0.05) == []
            a = uuid4()
            recorder.insert_events([event(a, 1)])
            heard: List[Tuple[str, str]] = []
            deadline = time.monotonic() + 5
            while not heard and time.monotonic() < deadline:
                heard = listener.wait(0.5)
            assert heard == [(channel, "Leader:1")]
        finally:
            listener.close()
        with pytest.raises(InterfaceError, match="closed"):
            listener.wait(0.01)


class TestTables:
    def test_layout_matches_eventsourcing_9_1(self, store: pg_server.PostgresStore) -> None:
        recorder = store.process_recorder()
        assert isinstance(recorder, PostgresProcessRecorder)
        events, tracking = recorder.events_table_name, recorder.tracking_table_name
        with pg_server.connect() as conn:

            def columns(table: str) -> List[Tuple[str, str, str]]:
                return conn.execute(
                    "SELECT column_name, data_type, is_nullable "
                    "FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    (table,),
                ).fetchall()

            def index_definitions(table: str) -> List[str]:
                rows = conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
                    (table,),
                ).fetchall()
                return [row[0].replace(f"public.{table}", "T") for row in rows]

            assert columns(events) == [
                ("originator_id", "uuid", "NO"),
                ("originator_version", "integer", "NO"),
                ("topic", "text", "YES"),
                ("state", "bytea", "YES"),
                ("notification_id", "integer", "NO"),
            ]
            assert index_definitions(events) == [
                f"CREATE UNIQUE INDEX {events}_notification_id_idx "
                "ON T USING btree (notification_id)",
                f"CREATE UNIQUE INDEX {events}_pkey "
                "ON T USING btree (originator_id, originator_version)",
            ]
            assert columns(tracking) == [
                ("application_name", "text", "NO"),
                ("notification_id", "integer", "NO"),
            ]
            assert index_definitions(tracking) == [
                f"CREATE UNIQUE INDEX {tracking}_pkey "
                "ON T USING btree (application_name, notification_id)"
            ]

    def test_create_table_is_idempotent_and_safe_to_race(
        self, store: pg_server.PostgresStore
    ) -> None:
        events, tracking = store.table("events"), store.table("tracking")
        errors: List[BaseException] = []

        def create() -> None:
            try:
                PostgresProcessRecorder(store.datastore, events, tracking).create_table()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=create) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        create()
        assert errors == []


# Applications and systems on PostgreSQL.


def unique(cls: Type[Any]) -> Type[Any]:
    """A subclass with a name (hence tables) no other test uses."""
    return type(f"{cls.__name__}{uuid4().hex[:8]}", (cls,), {})


@pytest.fixture
def postgres_env(server: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[List[str]]:
    """Points applications at the test server; drops their tables after."""
    settings = pg_server.settings()
    monkeypatch.setenv("INFRASTRUCTURE_FACTORY", "eventsourcing_rs.postgres:Factory")
    for key in ("dbname", "host", "port", "user", "password"):
        monkeypatch.setenv(f"POSTGRES_{key.upper()}", settings[key])
    names: List[str] = []
    yield names
    pg_server.drop_application_tables(names)


def test_application_saves_snapshots_and_reads_its_log(
    postgres_env: List[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app_cls = unique(Orders)
    postgres_env.append(app_cls.__name__)
    monkeypatch.setenv("IS_SNAPSHOTTING_ENABLED", "yes")
    app = app_cls()
    ids = [app.place(n) for n in range(12)]
    app.take_snapshot(ids[0])
    assert app.repository.get(ids[3]).number == 3
    assert app.repository.get(ids[0]).number == 0
    section = app.log["1,10"]
    assert [n.originator_id for n in section.items] == ids[:10]
    assert section.next_id == "11,20"
    # Another instance (another process, say) sees the same state.
    again = app_cls()
    assert again.repository.get(ids[11]).number == 11
    assert again.recorder.max_notification_id() == 12


def test_system_processes_each_order_once(postgres_env: List[str]) -> None:
    orders_cls, reservations_cls, payments_cls = (
        unique(Orders),
        unique(Reservations),
        unique(Payments),
    )
    postgres_env.extend(c.__name__ for c in (orders_cls, reservations_cls, payments_cls))
    system = System(pipes=[[orders_cls, reservations_cls, payments_cls]])
    runner = SingleThreadedRunner(system)
    runner.start()
    try:
        orders = runner.get(orders_cls)
        for n in range(5):
            orders.place(n)
        payments = runner.get(payments_cls)
        assert payments.recorder.max_notification_id() == 5
        reservations = runner.get(reservations_cls)
        assert reservations.recorder.max_tracking_id(orders_cls.__name__) == 5
        assert payments.recorder.max_tracking_id(reservations_cls.__name__) == 5
    finally:
        runner.stop()


WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # any import of psycopg now fails
sys.path.insert(0, {root!r})
from eventsourcing_rs.system import MultiThreadedRunner, System
from tests.system_fixtures import PIPES, Orders, Payments, Reservations

runner = MultiThreadedRunner(System(pipes=PIPES))
runner.start()
orders = runner.get(Orders)
ids = [orders.place(n) for n in range(20)]
runner.wait(timeout=30)
assert orders.repository.get(ids[3]).number == 3
assert runner.get(Payments).recorder.max_tracking_id("Reservations") == 20
try:
    orders.recorder.datastore.transaction(commit=False)
except ImportError as error:
    assert "eventsourcing-rs[postgres]" in str(error), error
else:
    raise AssertionError("transaction() without psycopg")
runner.stop()
print("ok")
"""


def test_the_store_works_without_psycopg(server: None) -> None:
    """psycopg is an extra: the recorders, runners and workers use the Rust
    client; only ``PostgresDatastore.transaction()`` needs psycopg."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    pg_server.drop_application_tables(["orders", "reservations", "payments"])
    env = {**os.environ, **pg_server.application_env()}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG.format(root=root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
