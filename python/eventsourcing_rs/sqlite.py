"""SQLite persistence, the embedded store.

The recorders here keep the reference library's tables (so either library
opens a database the other wrote) and do their work in Rust, with the GIL
released while the database is busy. Select with the environment::

    INFRASTRUCTURE_FACTORY=eventsourcing_rs.sqlite:Factory
    SQLITE_DBNAME=/path/to/file.db     # or :memory:, or a file: URI
    SQLITE_LOCK_TIMEOUT=5              # seconds to wait for a lock
    CREATE_TABLE=yes

File databases are put in WAL mode, and every commit is synced to disk
before ``insert_events`` returns. Several threads and several processes
may write one file; each write waits up to the lock timeout for the others.

The Rust core carries its own copy of SQLite. Python's :mod:`sqlite3`
module uses another, and two copies of SQLite must not have the same file
open in one process at once (neither sees the other's POSIX locks): look
inside a database with ``SQLiteDatastore.transaction()``, or with
:mod:`sqlite3` from another process, or after ``close_all_connections()``.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

from eventsourcing_rs import _core
from eventsourcing_rs.native_recorder import (
    NativeAggregateRecorder,
    NativeApplicationRecorder,
    NativeProcessRecorder,
)
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)

SQLITE3_DEFAULT_LOCK_TIMEOUT = 5

# A transaction for raw SQL, as ``SQLiteDatastore.transaction()`` returns:
# a context manager whose ``__enter__`` gives an object with ``execute``,
# ``executemany``, ``fetchone``, ``fetchmany`` and ``fetchall``.
Transaction = _core.SQLiteTransaction


class SQLiteDatastore:
    """One SQLite database and the connections to it.

    ``db_name`` is a file path, ``:memory:``, or a URI such as
    ``file:NAME?mode=memory&cache=shared``. ``lock_timeout`` is the number
    of seconds to wait for another connection's lock (5 when not given).
    Connections are opened when first needed.
    """

    def __init__(self, db_name: str, lock_timeout: Optional[int] = None):
        self.db_name = db_name
        self.lock_timeout = lock_timeout
        self.is_sqlite_memory_mode = self.detect_memory_mode(db_name)
        self._datastore = _core.SQLiteDatastore(db_name, lock_timeout)

    def detect_memory_mode(self, db_name: Optional[str]) -> bool:
        """Whether ``db_name`` names an in-memory database."""
        if not isinstance(db_name, str):
            return False
        return ":memory:" in db_name or "mode=memory" in db_name

    @property
    def is_journal_mode_wal(self) -> bool:
        """Whether the database file was found, or put, in WAL mode."""
        return self._datastore.is_journal_mode_wal

    @property
    def journal_mode_was_changed_to_wal(self) -> bool:
        """Whether this datastore put the database file in WAL mode."""
        return self._datastore.journal_mode_was_changed_to_wal

    def transaction(self, commit: bool = False) -> Any:
        """A transaction for raw SQL, used as a context manager; it commits
        at the end only when ``commit`` is true and nothing was raised."""
        return self._datastore.transaction(commit)

    def close_all_connections(self) -> None:
        """Closes the open connections (an in-memory database is then
        gone); new ones are opened when next needed."""
        self._datastore.close_all_connections()


class SQLiteAggregateRecorder(NativeAggregateRecorder):
    """Records aggregates' stored events in an SQLite table."""

    _kind = "aggregate"

    def __init__(
        self,
        datastore: SQLiteDatastore,
        events_table_name: str = "stored_events",
    ):
        if not isinstance(datastore, SQLiteDatastore):
            raise TypeError(f"Not an SQLiteDatastore: {datastore!r}")
        self.datastore = datastore
        self.events_table_name = events_table_name
        self._recorder = _core.SQLiteRecorder(datastore._datastore, events_table_name, self._kind)
        self.create_table_statements = self.construct_create_table_statements()

    def construct_create_table_statements(self) -> List[str]:
        """The statements ``create_table()`` runs."""
        return list(self._recorder.create_table_statements())

    def create_table(self) -> None:
        """Creates the tables if they do not exist, and checks that they
        have the shape this recorder needs."""
        self._recorder.create_table(self.create_table_statements)


class SQLiteApplicationRecorder(SQLiteAggregateRecorder, NativeApplicationRecorder):
    """Records stored events in an SQLite table, numbered as
    notifications by the table's rowid."""

    _kind = "application"


class SQLiteProcessRecorder(SQLiteApplicationRecorder, NativeProcessRecorder):
    """Records stored events and, in the same transaction, tracking
    records in the ``tracking`` table."""

    _kind = "process"

    def set_fence(self, table: Optional[str] = None, name: str = "", epoch: int = 0) -> None:
        """From now on, each tracking write also checks, in its transaction,
        that row ``name`` of the lease table ``table`` is still at
        ``epoch``, and is refused with :class:`LeaseLost` if not; with no
        table, no lease is checked."""
        self._recorder.set_fence(table, name, epoch)

    @property
    def fence(self) -> Optional[Tuple[str, str, int]]:
        """The lease checked by tracking writes: (table, name, epoch)."""
        return self._recorder.fence


class Factory(InfrastructureFactory):
    """Builds SQLite recorders from the environment."""

    SQLITE_DBNAME = "SQLITE_DBNAME"
    SQLITE_LOCK_TIMEOUT = "SQLITE_LOCK_TIMEOUT"

    def __init__(self, application_name: str, env: Mapping[str, str]):
        super().__init__(application_name, env)
        db_name = self.getenv(self.SQLITE_DBNAME)
        if not db_name:
            raise EnvironmentError(
                f"SQLite database name not found in environment with key '{self.SQLITE_DBNAME}'"
            )
        # Whole seconds, as 9.1 takes them; up to a year.
        seconds = self.env_seconds(
            self.SQLITE_LOCK_TIMEOUT, 366 * 86400, whole=True, store="SQLite"
        )
        lock_timeout = int(seconds) if seconds is not None else None
        self.datastore = SQLiteDatastore(db_name=db_name, lock_timeout=lock_timeout)

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self._with_tables(
            SQLiteAggregateRecorder(datastore=self.datastore, events_table_name="stored_" + purpose)
        )

    def application_recorder(self) -> ApplicationRecorder:
        return self._with_tables(SQLiteApplicationRecorder(datastore=self.datastore))

    def process_recorder(self) -> ProcessRecorder:
        return self._with_tables(SQLiteProcessRecorder(datastore=self.datastore))


__all__ = [
    "Factory",
    "SQLiteAggregateRecorder",
    "SQLiteApplicationRecorder",
    "SQLiteDatastore",
    "SQLiteProcessRecorder",
    "Transaction",
]
