"""The psycopg side of the PostgreSQL store: each thread's psycopg
connection, for ``PostgresDatastore.transaction()`` and raw SQL. It needs
psycopg (``pip install 'eventsourcing-rs[postgres]'``); the recorders do
not: their work goes through the Rust client."""

from __future__ import annotations

import itertools
import os
import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

import psycopg
import psycopg.errors
from psycopg.pq import TransactionStatus

from eventsourcing_rs.persistence import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
)
from eventsourcing_rs.postgres import _lost_connection, _milliseconds

T = TypeVar("T")

# A statement and the values for its "%s" placeholders.
Statement = Tuple[str, Sequence[Any]]

# Most specific first: psycopg's classes follow PEP 249, as ours do.
_ERROR_CLASSES: Sequence[Tuple[Type[psycopg.Error], Type[PersistenceError]]] = (
    (psycopg.InterfaceError, InterfaceError),
    (psycopg.DataError, DataError),
    (psycopg.OperationalError, OperationalError),
    (psycopg.IntegrityError, IntegrityError),
    (psycopg.InternalError, InternalError),
    (psycopg.ProgrammingError, ProgrammingError),
    (psycopg.NotSupportedError, NotSupportedError),
    (psycopg.DatabaseError, DatabaseError),
)


def _translate(error: psycopg.Error, context: str) -> PersistenceError:
    """The persistence error for a psycopg error, its message saying what
    was being done (and to which table)."""
    for psycopg_class, our_class in _ERROR_CLASSES:
        if isinstance(error, psycopg_class):
            return our_class(f"{context}: {error}")
    return PersistenceError(f"{context}: {error}")


class _Row(List[Any]):
    """A row that is a list (so it compares equal to one) and can also be
    indexed by column name, like the rows 9.1's cursors gave."""

    def __init__(self, values: Sequence[Any], names: Dict[str, int]):
        super().__init__(values)
        self._names = names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> List[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    description = cursor.description or ()
    names = {column.name: i for i, column in enumerate(description)}
    return lambda values: _Row(values, names)


class Connection:
    """A thread's connection to the database, with what the datastore
    needs to know about it (its age, which process opened it, what has
    been prepared on it)."""

    def __init__(self, c: psycopg.Connection[Any], max_age: Optional[float]):
        self.c = c
        self.max_age = max_age
        self.created = time.monotonic()
        self.pid = os.getpid()
        # Whether the connection has served a call before: only then may a
        # failure be blamed on the connection having gone stale.
        self.uses = 0
        # Whether a transaction or a recorder call is running on it now.
        self.in_use = False
        # Prepared statements' names, by their SQL text. Names are never
        # reused, even after the map is cleared (see PostgresDatastore._run).
        self.prepared: Dict[str, str] = {}
        self._names = itertools.count(1)

    def cursor(self) -> psycopg.Cursor[Any]:
        """A cursor whose rows are lists that can also be indexed by
        column name."""
        return self.c.cursor(row_factory=_row_factory)

    def prepare(self, statement: str) -> str:
        """The name of ``statement`` (with ``$n`` placeholders) prepared on
        this connection, preparing it the first time."""
        name = self.prepared.get(statement)
        if name is None:
            name = self.new_name()
            self.c.execute(f"PREPARE {name} AS {statement}")
            self.prepared[statement] = name
        return name

    def new_name(self) -> str:
        """A name for a statement to prepare."""
        # Numbered, not derived from the text: names can't collide, even
        # between tables whose long names share a prefix.
        return f"esrs_{next(self._names)}"

    def query(self, statement: str, params: Sequence[Any] = ()) -> List[Any]:
        """The rows of ``statement`` (with ``$n`` placeholders), prepared
        on this connection, run with ``params``."""
        execute = _execute(self.prepare(statement), params)
        return _send_together(self.c, [execute])[0][1]

    def begin(self) -> None:
        self.c.execute("BEGIN")

    def commit(self) -> None:
        self.c.commit()

    def rollback(self) -> None:
        self.c.rollback()

    def close(self) -> None:
        self.c.close()

    @property
    def is_closed(self) -> bool:
        return self.c.closed

    @property
    def is_expired(self) -> bool:
        return self.max_age is not None and (time.monotonic() - self.created >= self.max_age)


class Transaction:
    """A database transaction on a connection, as a context manager.

    Entering begins the transaction and gives the :class:`Connection`;
    leaving commits it (if ``commit`` is true and nothing was raised) or
    rolls it back. psycopg errors leave as persistence errors.
    """

    def __init__(self, c: Connection, commit: bool):
        self.c = c
        self.commit = commit

    def __enter__(self) -> Connection:
        try:
            self.c.begin()
        except psycopg.Error as error:
            raise self._error(error) from error
        self.c.in_use = True
        return self.c

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        self.c.in_use = False
        try:
            if exc_val is None and self.commit:
                self.c.commit()
            else:
                self.c.rollback()
        except psycopg.Error as error:
            if exc_val is None:
                raise self._error(error) from error
            # The rollback failed too (the connection has gone, say): the
            # error that made us roll back is the one worth reporting.
        if isinstance(exc_val, psycopg.Error):
            raise self._error(exc_val) from exc_val

    def _error(self, error: psycopg.Error) -> PersistenceError:
        if self.c.is_closed:
            return _lost_connection("transaction", error)
        return _translate(error, "transaction")


class Sessions:
    """Each thread's psycopg connection to a PostgreSQL datastore's
    database: for ``transaction()`` and raw SQL (the recorders use the
    datastore's Rust connections)."""

    def __init__(self, datastore: Any):
        self.dbname = datastore.dbname
        self.host = datastore.host
        self.port = datastore.port
        self.user = datastore.user
        self.password = datastore.password
        self.conn_max_age = datastore.conn_max_age
        self.pre_ping = datastore.pre_ping
        self.idle_in_transaction_session_timeout = datastore.idle_in_transaction_session_timeout
        # TLS as the native connections negotiate it (libpq's own names).
        self.tls = {
            name: value
            for name in ("sslmode", "sslrootcert", "sslcert", "sslkey")
            if (value := getattr(datastore, name, None)) is not None
        }
        self._connections: Dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Connections inherited through fork(): closing them in the child
        # would end the parent's sessions (libpq tells the server goodbye
        # on the shared socket), so they are kept here, never used again.
        self._inherited: List[Connection] = []

    def transaction(self, commit: bool) -> Transaction:
        """A transaction on this thread's connection; ``commit`` says
        whether leaving it without an error commits or rolls back."""
        return Transaction(self.get_connection(), commit=commit)

    def get_connection(self) -> Connection:
        """This thread's connection, opened (or replaced, when closed,
        expired or failing the pre-ping) as needed."""
        if self._pid != os.getpid():
            self._after_fork()
        conn = self._connections.get(threading.get_ident())
        if conn is not None:
            if conn.in_use:
                # Running a recorder (or another transaction) inside an open
                # transaction on the same thread would commit or roll back
                # the outer one from underneath it.
                raise ProgrammingError(
                    "This thread's PostgreSQL connection is already in a "
                    "transaction: transactions of a datastore can't be nested"
                )
            if conn.is_closed or conn.is_expired:
                self._discard(conn)
            elif conn.c.info.transaction_status != TransactionStatus.IDLE:
                # Left inside a transaction by a call that was interrupted,
                # or by a thread that ended and whose id this one now has.
                try:
                    conn.rollback()
                except psycopg.Error:
                    self._discard(conn)
                else:
                    return conn
            elif self.pre_ping and not self._ping(conn):
                self._discard(conn)
            else:
                return conn
        return self._create_connection()

    def _ping(self, conn: Connection) -> bool:
        try:
            conn.c.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _after_fork(self) -> None:
        with self._lock:
            self._inherited.extend(self._connections.values())
            self._connections = {}
            self._pid = os.getpid()

    def _create_connection(self) -> Connection:
        timeout_ms = _milliseconds(self.idle_in_transaction_session_timeout)
        try:
            # Autocommit, so that a read is one round trip; writes open
            # their own transactions explicitly.
            pg = psycopg.connect(
                dbname=self.dbname,
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                connect_timeout=5,
                autocommit=True,
                # psycopg's own automatic preparing is off: after a rollback
                # it deallocates every prepared statement of the session,
                # ours included. We prepare what we run often ourselves.
                prepare_threshold=None,
                options=f"-c idle_in_transaction_session_timeout={timeout_ms}",
                **self.tls,
            )
        except psycopg.Error as error:
            raise InterfaceError(
                f"Could not connect to PostgreSQL database '{self.dbname}' at "
                f"{self.host}:{self.port} as '{self.user}': {error}"
            ) from error
        conn = Connection(pg, max_age=self.conn_max_age)
        # Registers threads not started by the threading module (so the
        # sweep below sees them as running) and gives this thread's id.
        ident = threading.current_thread().ident or threading.get_ident()
        with self._lock:
            self._connections[ident] = conn
            stale = self._connections_of_ended_threads()
        for other in stale:
            _close_quietly(other)
        return conn

    def _connections_of_ended_threads(self) -> List[Connection]:
        # Threads come and go (executors, servers): without this each one
        # would leave an idle connection open on the server.
        running = {thread.ident for thread in threading.enumerate()}
        ended = [ident for ident in self._connections if ident not in running]
        return [self._connections.pop(ident) for ident in ended]

    def _discard(self, conn: Connection) -> None:
        with self._lock:
            for ident, candidate in list(self._connections.items()):
                if candidate is conn:
                    del self._connections[ident]
        _close_quietly(conn)

    def close_connection(self) -> None:
        """Closes this thread's connection, if it has one."""
        with self._lock:
            conn = self._connections.pop(threading.get_ident(), None)
        if conn is not None:
            _close_quietly(conn)

    def _run(self, context: str, work: Callable[[Connection], T]) -> T:
        """Runs ``work`` on this thread's connection and translates errors.

        A connection left idle may have been closed by the server (restart,
        administrator, timeout) without the client knowing until it is used.
        If a reused connection fails that way, ``work`` runs once more on a
        fresh one. That is safe because ``work`` functions that write send
        their COMMIT on its own, after everything else has succeeded, and
        a lost COMMIT is reported as such (see :func:`_commit`), not retried.
        """
        for attempt in range(2):
            conn = self.get_connection()
            try:
                return self._run_on(conn, context, work)
            except _Retry as retry:
                if attempt or not retry.reused:
                    raise retry.error from retry.cause
        raise AssertionError("unreachable")

    def _run_on(self, conn: Connection, context: str, work: Callable[[Connection], T]) -> T:
        reused = conn.uses > 0
        conn.uses += 1
        conn.in_use = True
        pg = conn.c
        try:
            return work(conn)
        except psycopg.Error as error:
            if not pg.closed:
                try:
                    pg.rollback()
                except psycopg.Error:
                    pass
            if pg.closed:
                self._discard(conn)
                lost = _lost_connection(context, error)
                raise _Retry(lost, error, reused) from None
            if isinstance(error, psycopg.errors.InvalidSqlStatementName):
                # A prepared statement has gone (DISCARD ALL, say): prepare
                # again, and run again, as on a new connection.
                conn.prepared.clear()
                raise _Retry(_translate(error, context), error, reused) from None
            raise _translate(error, context) from error
        except BaseException:
            # Our own errors (a refused tracking record, a lost commit) and
            # interruptions: the transaction must not stay open.
            try:
                pg.rollback()
            except psycopg.Error:
                self._discard(conn)
            raise
        finally:
            conn.in_use = False

    def close_all(self) -> None:
        """Closes every thread's connection (in a forked child, sets the
        parent's aside instead)."""
        if self._pid != os.getpid():
            self._after_fork()
            return
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            _close_quietly(conn)

    def in_transaction(self) -> bool:
        """Whether this thread's connection is in a transaction() now."""
        conn = self._connections.get(threading.get_ident())
        return conn is not None and conn.in_use


class _Retry(Exception):
    """Carries the error of a call that may be run again."""

    def __init__(self, error: PersistenceError, cause: psycopg.Error, reused: bool):
        super().__init__(str(error))
        self.error = error
        self.cause = cause
        self.reused = reused


def _commit(pg: psycopg.Connection[Any]) -> None:
    """Commits; if the connection is lost on the way, says that the outcome
    is unknown (the server may or may not have committed) instead of
    letting the call be retried, which could then do it twice."""
    try:
        pg.commit()
    except psycopg.Error as error:
        if not pg.closed:
            raise
        raise InterfaceError(
            f"Lost the connection to PostgreSQL while committing; whether the "
            f"transaction was committed is unknown: {error}"
        ) from error


def _send_together(
    pg: psycopg.Connection[Any], statements: Sequence[Statement]
) -> List[Tuple[int, List[Any]]]:
    """Runs the statements in one round trip, as one query with the values
    bound on the client; returns each one's row count and rows."""
    query = "; ".join(statement for statement, _ in statements)
    params = [value for _, values in statements for value in values]
    with psycopg.ClientCursor(pg) as cursor:
        cursor.execute(query, params)
        results = []
        while True:
            rows = cursor.fetchall() if cursor.description is not None else []
            results.append((cursor.rowcount, rows))
            if not cursor.nextset():
                return results


def _execute(name: str, params: Sequence[Any]) -> Statement:
    """EXECUTE of a prepared statement, its values bound on the client."""
    if not params:
        return f"EXECUTE {name}", ()
    return f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - a failing close leaves nothing to do
        pass
