"""PostgreSQL persistence, through a Rust client (tokio-postgres).

Select it with ``INFRASTRUCTURE_FACTORY=eventsourcing_rs.postgres:Factory``
and the ``POSTGRES_*`` environment variables (see :class:`Factory`). The
tables have the same names and columns as those of ``eventsourcing`` 9.1, so
applications of either library can share a database.

Each thread gets its own connection (opened when it first needs one, kept
for the next call), so recorders are safe to use from many threads.
Connections opened before a ``fork()`` are left to the parent process.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import sys
import threading
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)
from uuid import UUID

from eventsourcing_rs import _core
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    InvalidSetting,
    LeaseLost,
    Notification,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
    TrackingRefused,
)

T = TypeVar("T")

_log = logging.getLogger("eventsourcing_rs")

# A statement and the values for its "%s" placeholders.
Statement = Tuple[str, Sequence[Any]]

_EVENT_KEY_DETAIL = re.compile(
    r"Key \(originator_id, originator_version\)=\((?P<id>[^,]+), (?P<version>-?\d+)\)"
)

# An unquoted SQL name, optionally qualified by a schema. Table names are
# written into statements as they are (folded to lower case by PostgreSQL,
# as 9.1 relied on), so nothing else may get through.
_TABLE_NAME = re.compile(r"[^\W\d]\w{0,62}(\.[^\W\d]\w{0,62})?")

# The most a write's values may hold: PostgreSQL's limit on one message
# (1 GB), less room for the statement and the values' framing.
_MAX_WRITE_BYTES = (1 << 30) - (1 << 20)
# What an event adds to a write besides its state and topic, at most: its
# id and version, and the values' length words (arrays, for large batches).
_WRITE_BYTES_PER_EVENT = 64

# Inserts of up to this many events use statements prepared once per
# connection (one per batch size); larger batches go as arrays.
_PREPARED_BATCH_MAX = 16

# libpq's sslmode values (POSTGRES_SSLMODE), prefer being its default.
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


# PostgreSQL's longest name, in bytes (NAMEDATALEN - 1): a longer one is
# cut silently, so two long names could name one table.
_MAX_NAME_BYTES = 63


def _check_table_name(name: str) -> str:
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise ValueError(
            f"Invalid PostgreSQL table name {name!r}: expected a name of letters, "
            "digits and underscores (optionally 'schema.table')"
        )
    for part in name.split("."):
        if len(part.encode("utf-8")) > _MAX_NAME_BYTES:
            raise ValueError(
                f"Invalid PostgreSQL table name {name!r}: {part!r} is longer than "
                f"PostgreSQL's {_MAX_NAME_BYTES} bytes (as UTF-8), and would be cut "
                "short, perhaps to another table's name"
            )
    return name


def _index_name(table_name: str, suffix: str) -> str:
    """The name of an index of ``table_name``: 9.1's (the table's name and
    ``suffix``) where that fits PostgreSQL's names; else, rather than let
    the server cut it (to the table's own name, even), as much of it as
    fits with a digest of the whole."""
    name = _unqualified(table_name) + suffix
    if len(name.encode("utf-8")) <= _MAX_NAME_BYTES:
        return name
    digest = "_" + hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    head = name.encode("utf-8")[: _MAX_NAME_BYTES - len(digest)]
    return head.decode("utf-8", errors="ignore") + digest


def _unqualified(table_name: str) -> str:
    return table_name.rsplit(".", 1)[-1]


def _lost_connection(context: str, error: BaseException) -> InterfaceError:
    # 9.1 reported a dead connection as InterfaceError (and retried on it);
    # code written for 9.1 may rely on that, so it stays so here.
    return InterfaceError(f"{context}: lost the connection to PostgreSQL: {error}")


class PostgresDatastore:
    """Where to find the database, how to talk to it, and each thread's
    connection to it.

    ``conn_max_age`` (seconds) replaces a connection that old when it is
    next used; ``pre_ping`` checks a connection with ``SELECT 1`` before
    reusing it; ``lock_timeout`` bounds the wait for the table lock on
    insert, and ``idle_in_transaction_session_timeout`` the time the server
    lets a transaction idle (seconds, 0 for no limit).

    ``sslmode`` chooses TLS as libpq does (``disable``, ``allow``,
    ``prefer`` by default, ``require``, ``verify-ca``, ``verify-full``);
    ``sslrootcert`` names a PEM file of trusted roots (or ``system``),
    ``sslcert`` and ``sslkey`` a client certificate and its key.
    """

    def __init__(
        self,
        dbname: str,
        host: str,
        port: str,
        user: str,
        password: str,
        conn_max_age: Optional[float] = None,
        pre_ping: bool = False,
        lock_timeout: float = 0,
        idle_in_transaction_session_timeout: float = 0,
        sslmode: str = "prefer",
        sslrootcert: Optional[str] = None,
        sslcert: Optional[str] = None,
        sslkey: Optional[str] = None,
    ):
        self.dbname = dbname
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.conn_max_age = conn_max_age
        self.pre_ping = pre_ping
        self.lock_timeout = lock_timeout
        self.idle_in_transaction_session_timeout = idle_in_transaction_session_timeout
        self.sslmode = sslmode
        self.sslrootcert = sslrootcert
        self.sslcert = sslcert
        self.sslkey = sslkey
        # The recorders' work goes through these (Rust, the GIL released).
        self._native = _core.PostgresConnections(
            dbname,
            host,
            str(port),
            user,
            password,
            5.0,
            conn_max_age,
            pre_ping,
            idle_in_transaction_session_timeout,
            sslmode=sslmode,
            sslrootcert=sslrootcert,
            sslcert=sslcert,
            sslkey=sslkey,
        )
        # Each thread's psycopg connection, for transaction(): made when
        # first asked for (psycopg is needed only then).
        self._psycopg: Optional[Any] = None
        self._sessions_wait: Optional[bool] = None
        self._psycopg_lock = threading.Lock()

    @property
    def sessions(self) -> Any:
        """Each thread's psycopg connection (``postgres_sessions.Sessions``),
        made when first asked for; it needs psycopg."""
        if self._psycopg is None:
            with self._psycopg_lock:
                if self._psycopg is None:
                    try:
                        from eventsourcing_rs.postgres_sessions import Sessions
                    except ImportError as error:
                        raise ImportError(
                            "PostgresDatastore.transaction() and raw connections need psycopg: "
                            "pip install 'eventsourcing-rs[postgres]' (the recorders do not)"
                        ) from error
                    self._psycopg = Sessions(self)
        return self._psycopg

    def transaction(self, commit: bool) -> Any:
        """A transaction on this thread's (psycopg) connection; ``commit``
        says whether leaving it without an error commits or rolls back."""
        return self.sessions.transaction(commit)

    def get_connection(self) -> Any:
        """This thread's (psycopg) connection, opened (or replaced, when
        closed, expired or failing the pre-ping) as needed."""
        return self.sessions.get_connection()

    @property
    def _connections(self) -> Dict[int, Any]:
        return {} if self._psycopg is None else self._psycopg._connections

    @property
    def native(self) -> "_core.PostgresConnections":
        """The Rust connections, for a recorder's call; refused inside this
        thread's open transaction() (whose locks the call could wait on
        forever)."""
        if self._psycopg is not None and self._psycopg.in_transaction():
            raise ProgrammingError(
                "This thread's PostgreSQL connection is already in a "
                "transaction: transactions of a datastore can't be nested"
            )
        return self._native

    def sessions_wait_for_locks(self) -> bool:
        """Whether the server gives this role's sessions on this database
        no lock timeout (PostgreSQL's default), so that a write need not
        set none for itself (as 9.1 does at every insert, with
        ``SET LOCAL``). Asked once."""
        if self._sessions_wait is None:
            said = self.native.query_text("SHOW lock_timeout", [], "Reading lock_timeout failed")
            self._sessions_wait = said == "0"
        return self._sessions_wait

    def close_connection(self) -> None:
        """Closes this thread's (psycopg) connection, if it has one."""
        if self._psycopg is not None:
            self._psycopg.close_connection()

    def close_all_connections(self, timeout: Optional[float] = None) -> None:
        """Closes every connection. (``timeout`` is accepted for 9.1's
        signature; closing does not wait here.)"""
        self._native.close_all()
        if self._psycopg is not None:
            self._psycopg.close_all()

    def __del__(self) -> None:
        # The Rust connections close with their pool, when the last
        # datastore using it is gone (see PostgresConnections): closing
        # them here would close sessions other datastores are using.
        try:
            if self._psycopg is not None:
                self._psycopg.close_all()
        except Exception:  # noqa: BLE001 - nothing can be done at collection
            pass

    def _run(self, context: str, work: Callable[[Any], T]) -> T:
        """Runs ``work`` on this thread's psycopg connection (see
        ``postgres_sessions.Sessions._run``)."""
        return self.sessions._run(context, work)  # type: ignore[no-any-return]


def _milliseconds(seconds: float) -> int:
    if seconds <= 0:
        return 0
    # Round up tiny positive values, which 0 ("no limit") would invert.
    return max(1, round(seconds * 1000))


@functools.lru_cache(maxsize=4 * _PREPARED_BATCH_MAX)
def _values_table(count: int, first: int) -> str:
    """``new`` as a VALUES list of ``count`` rows, placeholders from
    ``$first`` (typed, as rows of a VALUES list outside an INSERT must be)."""
    rows = []
    for i in range(count):
        n = first + 4 * i
        rows.append(f"({i}, ${n}::uuid, ${n + 1}::integer, ${n + 2}::text, ${n + 3}::bytea)")
    return (
        "new (batch_index, originator_id, originator_version, topic, state) "
        f"AS (VALUES {', '.join(rows)})"
    )


def _new_events(stored_events: Sequence[StoredEvent], first: int) -> Tuple[str, List[Any], bool]:
    """The batch as a table ``new`` (its columns and ``batch_index``), with
    placeholders from ``$first``: the SQL, its values, and whether to
    prepare it."""
    count = len(stored_events)
    if count <= _PREPARED_BATCH_MAX:
        params: List[Any] = []
        for e in stored_events:
            params += (e.originator_id, e.originator_version, e.topic, e.state)
        return _values_table(count, first), params, True
    n = first
    sql = (
        f"new AS (SELECT * FROM unnest(${n}::uuid[], ${n + 1}::integer[], "
        f"${n + 2}::text[], ${n + 3}::bytea[]) WITH ORDINALITY AS batch "
        "(originator_id, originator_version, topic, state, batch_index))"
    )
    arrays = [
        [e.originator_id for e in stored_events],
        [e.originator_version for e in stored_events],
        [e.topic for e in stored_events],
        [e.state for e in stored_events],
    ]
    return sql, arrays, False


class _Notifier:
    """Sends ``NOTIFY channel, 'prefix<id>'`` for the last id posted, from a
    thread of its own: posts made while one is being sent are folded into
    the next. A hint only (followers poll as well), so a failure to send is
    logged, not raised."""

    def __init__(self, datastore: PostgresDatastore, channel: str, prefix: str):
        self.datastore = datastore
        self.channel = channel
        self.prefix = prefix
        self._pending: Optional[int] = None
        self._ready = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._pid = 0

    def post(self, last_id: int) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's thread is not here, and its lock
            # may have been held by a thread that is not here either.
            self._ready = threading.Condition()
            self._pending = None
            self._thread = None
        with self._ready:
            if self._pending is None or last_id > self._pending:
                self._pending = last_id
            if self._thread is None or not self._thread.is_alive():
                # Started on first use, and again in a forked child, which
                # has none of its parent's threads.
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name=f"notify-{self.channel}", daemon=True
                )
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._pending is None:
                    self._ready.wait()
                last_id, self._pending = self._pending, None
            try:
                self.datastore.native.execute_batch(
                    f"NOTIFY \"{self.channel}\", '{self.prefix}{last_id}'",
                    f"Notifying channel '{self.channel}' failed",
                )
            except Exception as error:  # noqa: BLE001 - a hint: never fatal
                _log.warning("%s", error)


class PostgresAggregateRecorder(AggregateRecorder):
    """Records aggregates' stored events in a PostgreSQL table.

    The table has 9.1's columns: ``originator_id`` (uuid),
    ``originator_version`` (integer), ``topic`` (text), ``state`` (bytea),
    keyed by the first two.
    """

    def __init__(self, datastore: PostgresDatastore, events_table_name: str):
        self.datastore = datastore
        self.events_table_name = _check_table_name(events_table_name)
        self.create_table_statements = self.construct_create_table_statements()
        # Completed with the rows: one statement for the whole batch.
        self.insert_events_statement = (
            f"INSERT INTO {self.events_table_name} "
            "(originator_id, originator_version, topic, state)"
        )
        self.select_events_statement = (
            "SELECT originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE originator_id = $1"
        )
        self._select_statements: Dict[Tuple[bool, bool, bool, bool], str] = {}

    def construct_create_table_statements(self) -> List[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {self.events_table_name} ("
            "originator_id uuid NOT NULL, "
            "originator_version integer NOT NULL, "
            "topic text, "
            "state bytea, "
            "PRIMARY KEY (originator_id, originator_version)) "
            "WITH (autovacuum_enabled=false)"
        ]

    def create_table(self) -> None:
        """Creates the table (and index) if they don't exist."""
        # CREATE ... IF NOT EXISTS is not safe against itself: two processes
        # starting at once can both try, and one fails on the catalog's
        # unique index. The advisory lock makes them take turns. One simple
        # query, in one transaction.
        key = ("eventsourcing_rs.create_table:" + self.events_table_name).replace("'", "''")
        statements = "; ".join(self.create_table_statements)
        self.datastore.native.execute_batch(
            f"BEGIN; SELECT pg_advisory_xact_lock(hashtext('{key}')); {statements}; COMMIT",
            f"Creating table '{self.events_table_name}' failed",
        )

    def insert_events(
        self, stored_events: List[StoredEvent], **kwargs: Any
    ) -> Optional[Sequence[int]]:
        """Inserts the events in one statement: all of them or none.

        An event at a version its aggregate already has (in the table, or
        twice in ``stored_events``) raises :class:`IntegrityError`."""
        if not stored_events:
            return None
        new, params, prepared = _new_events(stored_events, 1)
        statement = (
            f"WITH {new} {self.insert_events_statement} "
            "SELECT originator_id, originator_version, topic, state FROM new"
        )

        try:
            self.datastore.native.write("BEGIN", statement, params, self._insert_context)
        except IntegrityError as error:
            described = self._describe_conflict(error, stored_events)
            if described is error:
                raise
            raise described from error
        return None

    @property
    def _insert_context(self) -> str:
        return f"Inserting events into table '{self.events_table_name}' failed"

    def _describe_conflict(
        self, error: IntegrityError, stored_events: Sequence[StoredEvent]
    ) -> IntegrityError:
        """Says which event conflicted, in the words the other stores use."""
        cause = error.__cause__
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(cause, psycopg.errors.UniqueViolation):
            table, detail = cause.diag.table_name, cause.diag.message_detail
        elif getattr(error, "sqlstate", None) == "23505":
            # From the Rust connections, which say what the server said.
            table, detail = getattr(error, "table_name", None), getattr(error, "detail", None)
        else:
            return error
        if table != _unqualified(self.events_table_name):
            return error
        match = _EVENT_KEY_DETAIL.search(detail or "")
        if match is None:
            return error
        originator_id, version = UUID(match["id"]), int(match["version"])
        in_batch = sum(
            1
            for e in stored_events
            if e.originator_version == version and e.originator_id == originator_id
        )
        if in_batch > 1:
            return self._duplicate_error(originator_id, version)
        return self._conflict_error(originator_id, version)

    def _duplicate_error(self, originator_id: UUID, version: int) -> IntegrityError:
        return IntegrityError(
            f"two events at version {version} of aggregate {originator_id} "
            f"in one insert (table '{self.events_table_name}')"
        )

    def _conflict_error(self, originator_id: UUID, version: int) -> IntegrityError:
        return IntegrityError(
            f"event at version {version} of aggregate {originator_id} is already "
            f"recorded (table '{self.events_table_name}')"
        )

    def select_events(
        self,
        originator_id: UUID,
        gt: Optional[int] = None,
        lte: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> List[StoredEvent]:
        params: List[Any] = [originator_id]
        if gt is not None:
            params.append(gt)
        if lte is not None:
            params.append(lte)
        if limit is not None:
            params.append(limit)
        statement = self._select_statement(gt is not None, lte is not None, desc, limit is not None)

        return self.datastore.native.select_events(
            statement, params, f"Selecting events from table '{self.events_table_name}' failed"
        )

    def _select_statement(self, gt: bool, lte: bool, desc: bool, limit: bool) -> str:
        key = (gt, lte, desc, limit)
        cached = self._select_statements.get(key)
        # Checked against the base statement, in case that was replaced.
        if cached is not None and cached.startswith(self.select_events_statement):
            return cached
        parts = [self.select_events_statement]
        n = 1
        if gt:
            n += 1
            parts.append(f"AND originator_version > ${n}")
        if lte:
            n += 1
            parts.append(f"AND originator_version <= ${n}")
        parts.append("ORDER BY originator_version " + ("DESC" if desc else "ASC"))
        if limit:
            n += 1
            parts.append(f"LIMIT ${n}")
        statement = " ".join(parts)
        self._select_statements[key] = statement
        return statement


class PostgresApplicationRecorder(PostgresAggregateRecorder, ApplicationRecorder):
    """Records stored events in a PostgreSQL table, numbering them with a
    ``notification_id`` (a SERIAL column with a unique index, as in 9.1).

    A refused insert (a conflicting event, a stale tracking record) takes
    no notification ids, so ids run without gaps unless a transaction fails
    for other reasons (a lost connection, say).
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        events_table_name: str = "stored_events",
    ):
        super().__init__(datastore, events_table_name)
        self.lock_table_statement = f"LOCK TABLE {self.events_table_name} IN EXCLUSIVE MODE"
        self.select_notifications_statement = (
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} "
            "WHERE notification_id >= $1 ORDER BY notification_id LIMIT $2"
        )
        self.max_notification_id_statement = (
            f"SELECT MAX(notification_id) FROM {self.events_table_name}"
        )
        self.select_segment_statement = (
            "WITH scanned AS (SELECT notification_id, originator_id, originator_version, "
            f"topic, state FROM {self.events_table_name} WHERE notification_id >= $1 "
            "ORDER BY notification_id LIMIT $2) "
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM scanned WHERE ('x' || left(md5(uuid_send(originator_id)), 8))"
            "::bit(32)::bigint % $4::bigint = $3::bigint "
            "OR notification_id = (SELECT MAX(notification_id) FROM scanned) "
            "ORDER BY notification_id"
        )
        # LISTEN/NOTIFY: None until enable_notify() names a channel.
        self.notify_channel: Optional[str] = None
        self._notifier: Optional[_Notifier] = None
        # The statements inserting batches, made once per shape (see
        # _guarded_insert).
        self._statements: Dict[Tuple[int, Optional[bool], str], str] = {}
        # The last batch this recorder committed: its notification ids
        # and stored events (see select_notifications).
        self._last_committed: Tuple[Sequence[int], Sequence[StoredEvent]] = ((), ())

    def construct_create_table_statements(self) -> List[str]:
        index_name = _index_name(self.events_table_name, "_notification_id_idx")
        return [
            f"CREATE TABLE IF NOT EXISTS {self.events_table_name} ("
            "originator_id uuid NOT NULL, "
            "originator_version integer NOT NULL, "
            "topic text, "
            "state bytea, "
            "notification_id SERIAL, "
            "PRIMARY KEY (originator_id, originator_version)) "
            "WITH (autovacuum_enabled=false)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {index_name} "
            f"ON {self.events_table_name} (notification_id ASC)",
        ]

    def enable_notify(self, channel: Optional[str] = None, leader_name: str = "") -> str:
        """From now on, each insert that records events is followed by
        ``NOTIFY channel`` (by default the table's name), with the last new
        notification id as payload (after ``leader_name:`` when one is
        given). It is sent after COMMIT, outside the transaction and its
        table lock (a NOTIFY inside a transaction takes the server's one
        notification lock while committing, which would make every writer
        that notifies commit one at a time), by a thread of its own, so the
        insert does not wait for it; inserts committed while one is being
        sent are told of by the next, which carries the latest id.
        Listeners therefore hear of events only once they are committed,
        and never of a refused or rolled back insert. Returns the
        channel's name."""
        self.notify_channel = channel or _unqualified(self.events_table_name)
        prefix = f"{leader_name}:" if leader_name else ""
        self._notifier = _Notifier(self.datastore, self.notify_channel, prefix)
        return self.notify_channel

    def insert_events(
        self, stored_events: List[StoredEvent], **kwargs: Any
    ) -> Optional[Sequence[int]]:
        """Inserts the events (and the ``tracking`` record, for a process
        recorder) in one transaction, all or nothing, and returns their
        notification ids in the order of ``stored_events``."""
        tracking: Optional[Tracking] = kwargs.get("tracking")
        if not stored_events and tracking is None:
            return []
        self._refuse_duplicates(stored_events)
        self._refuse_oversized(stored_events)
        statement, params, _ = self._guarded_insert(stored_events, tracking)
        expected_rows = len(stored_events) or 1
        lock_timeout = _milliseconds(self.datastore.lock_timeout)
        # Notification ids come from a sequence as rows are inserted, but
        # become visible when transactions commit, in whatever order that
        # happens. Without a lock, a reader could see id 12 committed before
        # id 11 is, move past 11, and never see it. EXCLUSIVE mode lets one
        # writer in at a time, from taking ids to committing them, so ids
        # are committed in order; reads (ACCESS SHARE) are not blocked. It
        # is the lock 9.1 takes, so its writers and ours serialise with each
        # other on a shared table. The lock also makes the guards of the
        # statement (no conflicting event, no later tracking record, the
        # worker's lease) exact. BEGIN, the lock, the statement and COMMIT
        # go in one round trip (a refused statement writes nothing).
        try:
            count, ids = self.datastore.native.write(
                self._opening(lock_timeout) + self._before_write(tracking),
                statement,
                params,
                self._insert_context,
                expected_rows,
            )
        except IntegrityError as error:
            described = self._describe_conflict(error, stored_events)
            if described is error:
                raise
            raise described from error
        if count != expected_rows:
            raise self._refusal(stored_events, tracking)
        if not stored_events:
            return []
        # Ids are taken in the order of the rows, so sorting gives them in
        # the order of the events, whatever order RETURNING used.
        ids = sorted(ids)
        self._last_committed = (ids, tuple(stored_events))
        if self._notifier is not None:
            self._notifier.post(ids[-1])
        return ids

    def _opening(self, lock_timeout: int) -> str:
        """BEGIN and the table lock, waiting at most ``lock_timeout`` ms (0:
        no limit, set only if the sessions have one of their own)."""
        if lock_timeout or not self.datastore.sessions_wait_for_locks():
            return f"BEGIN; SET LOCAL lock_timeout = {lock_timeout}; {self.lock_table_statement}"
        return f"BEGIN; {self.lock_table_statement}"

    def _before_write(self, tracking: Optional[Tracking]) -> str:
        """More of the write's opening statements, for a process recorder."""
        return ""

    def _refuse_oversized(self, stored_events: Sequence[StoredEvent]) -> None:
        # The server takes at most 1 GB in one message, and ends the session
        # on a longer one, which would leave the write's outcome looking
        # unknown: refused here, before anything is sent.
        size = sum(
            len(e.state) + len(e.topic.encode("utf-8")) + _WRITE_BYTES_PER_EVENT
            for e in stored_events
        )
        if size > _MAX_WRITE_BYTES:
            raise DataError(
                f"Insert into table '{self.events_table_name}' refused: its "
                f"{len(stored_events)} events hold {size} bytes, more than PostgreSQL "
                "takes in one message (1 GB); nothing was written"
            )

    def _refuse_duplicates(self, stored_events: Sequence[StoredEvent]) -> None:
        # Found here, before the database, since a failing INSERT would
        # have taken notification ids.
        seen = set()
        for e in stored_events:
            key = (e.originator_id, e.originator_version)
            if key in seen:
                raise self._duplicate_error(e.originator_id, e.originator_version)
            seen.add(key)

    def _guarded_insert(
        self, stored_events: Sequence[StoredEvent], tracking: Optional[Tracking]
    ) -> Tuple[str, List[Any], bool]:
        """The statement that inserts the events (nothing at all if one of
        them is already recorded) and gives their ids; its values; whether
        to prepare it."""
        new, params, prepared = _new_events(stored_events, 1)
        key = (len(stored_events) if prepared else 0, None, "")
        statement = self._statements.get(key)
        if statement is None:
            statement = f"WITH {new} {self._insert_new_events(self._no_conflict())}"
            self._statements[key] = statement
        return statement, params, prepared

    def _no_conflict(self) -> str:
        """True when no event of ``new`` is recorded already."""
        return (
            f"NOT EXISTS (SELECT 1 FROM {self.events_table_name} "
            "JOIN new USING (originator_id, originator_version))"
        )

    def _insert_new_events(self, condition: str) -> str:
        """Inserts the rows of ``new`` if ``condition`` holds."""
        return (
            f"{self.insert_events_statement} "
            "SELECT originator_id, originator_version, topic, state FROM new "
            f"WHERE {condition} "
            # Ids are taken in this order: the order of the events.
            "ORDER BY batch_index RETURNING notification_id"
        )

    def _refusal(
        self,
        stored_events: Sequence[StoredEvent],
        tracking: Optional[Tracking],
    ) -> IntegrityError:
        """Finds out, after the rollback, why the insert was refused."""
        if stored_events:
            ids = list({e.originator_id for e in stored_events})
            # After the rollback (the psycopg path's connection is still
            # marked in use): the Rust connections directly.
            found = self.datastore._native.select_events(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE originator_id = ANY($1::uuid[])",
                [ids],
                f"Selecting events from table '{self.events_table_name}' failed",
            )
            recorded = {(e.originator_id, e.originator_version) for e in found}
            for e in stored_events:
                if (e.originator_id, e.originator_version) in recorded:
                    return self._conflict_error(e.originator_id, e.originator_version)
        return IntegrityError(
            f"Insert into table '{self.events_table_name}' was refused, but no "
            "conflicting event was found (was it removed meanwhile?)"
        )

    def select_notifications(self, start: int, limit: int) -> List[Notification]:
        """Returns up to ``limit`` notifications with ids from ``start``."""
        return self.datastore.native.select_notifications(
            self.select_notifications_statement,
            [start, limit],
            f"Selecting notifications from table '{self.events_table_name}' failed",
        )

    def _select_for_followers(self, start: int, limit: int) -> List[Notification]:
        """:meth:`select_notifications` for a follower's pull in this
        process (see ``shortcuts.follower_calls``), which, prompted by this
        recorder's last insert, asks for the ids that insert committed:
        they are answered from it, without a round trip.

        The answer is what the table would give at that moment, or a prefix
        of it: the batch's ids were committed together, run without a gap
        (one transaction under the table lock), and rows are never changed
        once written. Notifications another writer committed after the
        batch are read by the follower's next pull, which starts past it
        (a short page ends a pull; the next prompt or poll starts one).
        Other readers are given the whole answer by
        :meth:`select_notifications`."""
        ids, events = self._last_committed
        if ids and ids[0] <= start <= ids[-1] and ids[-1] - ids[0] == len(ids) - 1 and limit > 0:
            first = start - ids[0]
            return [
                Notification(
                    id=ids[i],
                    originator_id=events[i].originator_id,
                    originator_version=events[i].originator_version,
                    topic=events[i].topic,
                    state=events[i].state,
                )
                for i in range(first, min(len(ids), first + limit))
            ]
        return self.select_notifications(start, limit)

    # While a class's select_notifications is this one, a follower's pull
    # reads through _select_for_followers (see shortcuts.follower_calls).
    _select_for_followers_stands_for = select_notifications

    def select_segment(
        self, start: int, scan: int, index: int, count: int
    ) -> Tuple[List[Notification], int]:
        """The notifications of segment ``index`` of ``count`` (see
        :mod:`eventsourcing_rs.segments`) among the ``scan`` from
        ``start``, filtered by the server, and the id of the last one
        scanned. The last scanned row comes back whatever its segment, so
        that both are read in one statement (one snapshot)."""
        from eventsourcing_rs.segments import segment_of

        rows = self.datastore.native.select_notifications(
            self.select_segment_statement,
            [start, scan, index, count],
            f"Selecting notifications from table '{self.events_table_name}' failed",
        )
        if not rows:
            return [], start - 1
        upto = rows[-1].id
        if segment_of(rows[-1].originator_id, count) != index:
            rows = rows[:-1]
        return rows, upto

    def max_notification_id(self) -> int:
        """Returns the largest notification id, or 0 when there is none."""

        return self.datastore.native.query_int(
            self.max_notification_id_statement,
            [],
            f"Selecting the max notification id from table '{self.events_table_name}' failed",
        )


class PostgresProcessRecorder(PostgresApplicationRecorder, ProcessRecorder):
    """Records stored events and, in the same transaction, tracking
    records: which notification of which application they came from.

    A tracking record at or below the last one recorded for its application
    is refused (not only an equal one, which the table's key would refuse
    anyway): going backwards would mean processing notifications twice.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        events_table_name: str,
        tracking_table_name: str,
    ):
        self.tracking_table_name = _check_table_name(tracking_table_name)
        super().__init__(datastore, events_table_name)
        # Inserts nothing when the position is not ahead of the last one
        # (or of 0, for an application not tracked yet: ids start at 1),
        # nor, for a record with a previous id ($3), when the last one is
        # not that (a compare-and-set: another instance of the follower
        # recorded from it). Exact under the events table's lock, which
        # every insert of this follower takes first.
        # Two forms, each prepared once. Without a previous id: ahead of
        # every record of the application. With one: a compare-and-set on
        # the last record (which makes it ahead of all of them as well).
        insert = (
            f"INSERT INTO {self.tracking_table_name} (application_name, notification_id) "
            "SELECT $1::text, $2::integer WHERE "
        )
        self.insert_tracking_statement = (
            f"{insert}$3::integer IS NULL AND $2::integer > 0 AND NOT EXISTS ("
            f"SELECT 1 FROM {self.tracking_table_name} "
            "WHERE application_name = $1::text AND notification_id >= $2::integer)"
        )
        self.insert_tracking_from_statement = (
            f"{insert}$2::integer > $3::integer AND $3::integer = COALESCE(("
            f"SELECT MAX(notification_id) FROM {self.tracking_table_name} "
            "WHERE application_name = $1::text), 0)"
        )
        self.max_tracking_id_statement = (
            f"SELECT MAX(notification_id) FROM {self.tracking_table_name} "
            "WHERE application_name = $1"
        )
        # The lease a worker holds on this follower: (table, name, epoch).
        self.fence: Optional[Tuple[str, str, int]] = None
        self._fence_condition = ""

    def set_fence(self, table: Optional[str] = None, name: str = "", epoch: int = 0) -> None:
        """From now on, each tracking write also checks, in its statement
        (under the table lock), that row ``name`` of the lease table
        ``table`` is still at ``epoch``, and is refused with
        :class:`LeaseLost` if not; with no table, no lease is checked."""
        if table is None:
            self.fence = None
            self._fence_condition = ""
            return
        table = _check_table_name(table)
        self.fence = (table, name, int(epoch))
        quoted = name.replace("'", "''")
        # Literals, not parameters: the statement's parameters are numbered
        # from the tracking record's, and a new epoch is rare enough that
        # preparing the statement again for it costs nothing.
        self._fence_condition = (
            f" AND EXISTS (SELECT 1 FROM {table} WHERE name = '{quoted}' AND epoch = {int(epoch)})"
        )

    def _tracking_statement(self, previous_id: Optional[int]) -> str:
        """The statement that records a tracking record (with or without a
        previous id), fenced by the lease if there is one."""
        if previous_id is None:
            return self.insert_tracking_statement + self._fence_condition
        return self.insert_tracking_from_statement + self._fence_condition

    def _before_write(self, tracking: Optional[Tracking]) -> str:
        # A fenced write holds its lease's row (shared) until it commits:
        # a takeover waits for it, so the epoch it checked stays the
        # lease's until then.
        if self.fence is None or tracking is None:
            return ""
        table, name, epoch = self.fence
        quoted = name.replace("'", "''")
        return f"; SELECT 1 FROM {table} WHERE name = '{quoted}' AND epoch = {epoch} FOR SHARE"

    def _lease_lost(self) -> Optional[LeaseLost]:
        """LeaseLost if this recorder's lease is no longer at its epoch."""
        if self.fence is None:
            return None
        table, name, epoch = self.fence
        found = self.datastore._native.query_int(
            f"SELECT COALESCE(MAX(epoch), 0) FROM {table} WHERE name = $1",
            [name],
            f"Reading the lease of '{name}' from table '{table}' failed",
        )
        if found == epoch:
            return None
        return LeaseLost(
            f"the lease of '{name}' is at epoch {found}, not at this worker's epoch "
            f"{epoch}: another worker took it over, so nothing was recorded "
            f"(table '{table}')"
        )

    def construct_create_table_statements(self) -> List[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.tracking_table_name} ("
            "application_name text, "
            "notification_id int, "
            "PRIMARY KEY (application_name, notification_id))"
        )
        return statements

    def _guarded_insert(
        self, stored_events: Sequence[StoredEvent], tracking: Optional[Tracking]
    ) -> Tuple[str, List[Any], bool]:
        if tracking is None:
            return super()._guarded_insert(stored_events, tracking)
        previous_id: Optional[int] = getattr(tracking, "previous_id", None)
        tracked = [tracking.application_name, tracking.notification_id, previous_id]
        statement = self._tracking_statement(previous_id)
        if not stored_events:
            return statement, tracked, True
        # One statement, all or nothing: the tracking record only if it
        # advances and no event conflicts, then the events only if it was
        # written (conflicts are looked for once: the statement reads one
        # snapshot, so a second look would find the same); a refusal writes nothing
        # and takes no notification ids (so the statement's COMMIT can be
        # sent with it).
        new, params, prepared = _new_events(stored_events, 4)
        key = (len(stored_events) if prepared else 0, previous_id is None, self._fence_condition)
        insert = self._statements.get(key)
        if insert is None:
            insert = (
                f"WITH {new}, tracked AS ({statement} AND {self._no_conflict()} RETURNING 1) "
                f"{self._insert_new_events('EXISTS (SELECT 1 FROM tracked)')}"
            )
            self._statements[key] = insert
        return insert, tracked + params, prepared

    def _refusal(
        self,
        stored_events: Sequence[StoredEvent],
        tracking: Optional[Tracking],
    ) -> IntegrityError:
        if tracking is not None:
            lost = self._lease_lost()
            if lost is not None:
                return lost
            last = self.datastore._native.query_int(
                self.max_tracking_id_statement,
                [tracking.application_name],
                f"Selecting the max tracking id from table '{self.tracking_table_name}' failed",
            )
            if tracking.notification_id <= last:
                return TrackingRefused(
                    f"notification {tracking.notification_id} of application "
                    f"'{tracking.application_name}' is already processed (last "
                    f"tracked id is {last}; table '{self.tracking_table_name}')"
                )
            previous = getattr(tracking, "previous_id", None)
            if previous is not None and previous != last:
                return TrackingRefused(
                    f"notifications {previous + 1}..={tracking.notification_id} of "
                    f"application '{tracking.application_name}' were processed from "
                    f"position {previous}, but the last tracked id is now {last} "
                    "(recorded meanwhile by another instance of the follower?; "
                    f"table '{self.tracking_table_name}')"
                )
        return super()._refusal(stored_events, tracking)

    def max_tracking_id(self, application_name: str) -> int:
        """Returns the last notification id processed from the named
        application, or 0."""

        return self.datastore.native.query_int(
            self.max_tracking_id_statement,
            [application_name],
            f"Selecting the max tracking id from table '{self.tracking_table_name}' failed",
        )


# The longest timeout the server takes (2**31 - 1 milliseconds), and the
# longest connection age (a year).
_MAX_SERVER_TIMEOUT = (2**31 - 1) / 1000
_MAX_SECONDS = 366 * 86400.0


class Factory(InfrastructureFactory):
    """Builds PostgreSQL recorders from the environment.

    ``POSTGRES_DBNAME``, ``POSTGRES_HOST``, ``POSTGRES_USER`` and
    ``POSTGRES_PASSWORD`` are required; ``POSTGRES_PORT`` defaults to 5432.
    Optional: ``POSTGRES_CONN_MAX_AGE``, ``POSTGRES_PRE_PING``,
    ``POSTGRES_LOCK_TIMEOUT``, ``POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT``
    , ``POSTGRES_SSLMODE``, ``POSTGRES_SSLROOTCERT``, ``POSTGRES_SSLCERT``,
    ``POSTGRES_SSLKEY`` (see :class:`PostgresDatastore`) and ``CREATE_TABLE``
    (yes by default).
    Each may be prefixed with the upper-cased application name.

    Tables are named after the application: ``<name>_events``,
    ``<name>_snapshots`` and ``<name>_tracking`` (lower case), or
    ``stored_events`` and ``notification_tracking`` without a name.
    """

    POSTGRES_DBNAME = "POSTGRES_DBNAME"
    POSTGRES_HOST = "POSTGRES_HOST"
    POSTGRES_PORT = "POSTGRES_PORT"
    POSTGRES_USER = "POSTGRES_USER"
    POSTGRES_PASSWORD = "POSTGRES_PASSWORD"
    POSTGRES_CONN_MAX_AGE = "POSTGRES_CONN_MAX_AGE"
    POSTGRES_PRE_PING = "POSTGRES_PRE_PING"
    POSTGRES_LOCK_TIMEOUT = "POSTGRES_LOCK_TIMEOUT"
    POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT = "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT"
    POSTGRES_SSLMODE = "POSTGRES_SSLMODE"
    POSTGRES_SSLROOTCERT = "POSTGRES_SSLROOTCERT"
    POSTGRES_SSLCERT = "POSTGRES_SSLCERT"
    POSTGRES_SSLKEY = "POSTGRES_SSLKEY"

    def __init__(self, application_name: str, env: Mapping[str, str]):
        super().__init__(application_name, env)
        dbname = self._required(self.POSTGRES_DBNAME, "database name")
        host = self._required(self.POSTGRES_HOST, "host")
        port = (self.getenv(self.POSTGRES_PORT) or "5432").strip()
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
            raise InvalidSetting(
                f"{self._variable(self.POSTGRES_PORT)}={port!r} is not a port number (1 to 65535)"
            )
        user = self._required(self.POSTGRES_USER, "user")
        password = self._required(self.POSTGRES_PASSWORD, "password")
        conn_max_age = self.env_seconds(self.POSTGRES_CONN_MAX_AGE, _MAX_SECONDS, store="Postgres")
        pre_ping = self.env_flag(self.POSTGRES_PRE_PING, False)
        # The server takes these in milliseconds, as a 32-bit integer.
        lock_timeout = (
            self.env_seconds(self.POSTGRES_LOCK_TIMEOUT, _MAX_SERVER_TIMEOUT, store="Postgres")
            or 0.0
        )
        idle_timeout = (
            self.env_seconds(
                self.POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                _MAX_SERVER_TIMEOUT,
                store="Postgres",
            )
            or 0.0
        )
        sslmode = (self.getenv(self.POSTGRES_SSLMODE) or "prefer").strip()
        if sslmode not in _SSL_MODES:
            raise InvalidSetting(
                f"{self._variable(self.POSTGRES_SSLMODE)}={sslmode!r} is not one of "
                + ", ".join(_SSL_MODES)
            )
        tls_files = {
            name: self.getenv(key) or None
            for name, key in (
                ("sslrootcert", self.POSTGRES_SSLROOTCERT),
                ("sslcert", self.POSTGRES_SSLCERT),
                ("sslkey", self.POSTGRES_SSLKEY),
            )
        }
        try:
            datastore = PostgresDatastore(
                dbname=dbname,
                host=host,
                port=port,
                user=user,
                password=password,
                conn_max_age=conn_max_age,
                pre_ping=pre_ping,
                lock_timeout=lock_timeout,
                idle_in_transaction_session_timeout=idle_timeout,
                sslmode=sslmode,
                **tls_files,
            )
        except ValueError as error:
            # A certificate file that cannot be used: named, with the
            # variables that choose TLS.
            raise InvalidSetting(
                f"{self._variable(self.POSTGRES_SSLMODE)}={sslmode!r}: {error}"
            ) from None
        self.datastore = datastore

    def _required(self, key: str, what: str) -> str:
        value = self.getenv(key)
        if value is None:
            raise EnvironmentError(f"Postgres {what} not found in environment with key '{key}'")
        return value

    def _table_prefix(self, default: str) -> str:
        return self.application_name.lower() or default

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self._with_tables(
            PostgresAggregateRecorder(
                datastore=self.datastore,
                events_table_name=f"{self._table_prefix('stored')}_{purpose}",
            )
        )

    def application_recorder(self) -> ApplicationRecorder:
        return self._with_tables(
            PostgresApplicationRecorder(
                datastore=self.datastore,
                events_table_name=f"{self._table_prefix('stored')}_events",
            )
        )

    def process_recorder(self) -> ProcessRecorder:
        return self._with_tables(
            PostgresProcessRecorder(
                datastore=self.datastore,
                events_table_name=f"{self._table_prefix('stored')}_events",
                tracking_table_name=f"{self._table_prefix('notification')}_tracking",
            )
        )


def __getattr__(name: str) -> Any:
    # The psycopg classes, imported only when asked for (they need psycopg).
    if name in ("Connection", "Transaction"):
        from eventsourcing_rs import postgres_sessions

        return getattr(postgres_sessions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Factory",
    "PostgresAggregateRecorder",
    "PostgresApplicationRecorder",
    "PostgresDatastore",
    "PostgresProcessRecorder",
]
