"""Type stubs for the Rust core, ``eventsourcing_rs._core``."""

from datetime import datetime, tzinfo
from typing import Any, Callable, Iterable, Iterator, Sequence, final
from uuid import UUID

from typing_extensions import disjoint_base

__all__ = [
    "ApplicationSave",
    "EventMapper",
    "FollowerPull",
    "JsonCodec",
    "MemoryRecorder",
    "MethodGuard",
    "Notification",
    "PostgresConnections",
    "PostgresListener",
    "PromptQueue",
    "PullKernel",
    "SQLiteDatastore",
    "SQLiteRecorder",
    "SQLiteTransaction",
    "SectionReader",
    "SelectReader",
    "StoredEvent",
    "Tracking",
    "TrackingBook",
    "drain_prompts",
    "format_section_id",
    "instance_with_dict",
    "now",
    "parse_section_id",
    "section_start_and_limit",
    "uuid4",
]

@disjoint_base
class StoredEvent:
    """A recorded domain event: its aggregate, version, topic and state."""

    def __new__(
        cls,
        originator_id: UUID,
        originator_version: int,
        topic: str,
        state: bytes | bytearray | memoryview,
    ) -> StoredEvent: ...
    @property
    def originator_id(self) -> UUID: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...

@disjoint_base
class Notification(StoredEvent):
    """A stored event with its position (id) in the notification log."""

    def __new__(  # type: ignore[override]
        cls,
        originator_id: UUID,
        originator_version: int,
        topic: str,
        state: bytes | bytearray | memoryview,
        id: int,
    ) -> Notification: ...
    @property
    def id(self) -> int: ...

@disjoint_base
class Tracking:
    """The position of a processed notification in a leader's log, and
    the follower's position when its batch was read (``previous_id``): a
    record with one commits only while the stored position is still that."""

    def __new__(
        cls, application_name: str, notification_id: int, previous_id: int | None = None
    ) -> Tracking: ...
    @property
    def application_name(self) -> str: ...
    @property
    def notification_id(self) -> int: ...
    @property
    def previous_id(self) -> int | None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[str, int, int | None]]: ...

@final
class MemoryRecorder:
    """The in-memory event store behind the POPO recorders."""

    def __new__(cls) -> MemoryRecorder: ...
    def insert_events(
        self, stored_events: Iterable[StoredEvent], tracking: Tracking | None = None
    ) -> list[int]: ...
    def select_events(
        self,
        originator_id: UUID,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]: ...
    def select_notifications(self, start: int, limit: int) -> list[Notification]: ...
    def select_segment(
        self, start: int, scan: int, index: int, count: int
    ) -> tuple[list[Notification], int]: ...
    def max_notification_id(self) -> int: ...
    def max_tracking_id(self, application_name: str) -> int: ...

@final
class SQLiteDatastore:
    """One SQLite database and the connections to it."""

    def __new__(cls, db_name: str | None, lock_timeout: float | None = None) -> SQLiteDatastore: ...
    @property
    def db_name(self) -> str: ...
    @property
    def is_memory(self) -> bool: ...
    @property
    def effective_lock_timeout(self) -> float: ...
    @property
    def group_commit_counts(self) -> tuple[int, int]: ...
    @property
    def is_journal_mode_wal(self) -> bool: ...
    @property
    def journal_mode_was_changed_to_wal(self) -> bool: ...
    def connect(self) -> None: ...
    def transaction(self, commit: bool = False) -> SQLiteTransaction: ...
    def close_all_connections(self) -> None: ...

@final
class SQLiteTransaction:
    """A transaction for raw SQL on an SQLite datastore."""

    def __enter__(self) -> SQLiteTransaction: ...
    def __exit__(
        self,
        exc_type: Any = None,
        _exc_value: Any = None,
        _traceback: Any = None,
    ) -> bool: ...
    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> SQLiteTransaction: ...
    def executemany(
        self, sql: str, seq_of_parameters: Iterable[Iterable[Any]]
    ) -> SQLiteTransaction: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...
    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> int | None: ...
    def close(self) -> None: ...

@final
class SQLiteRecorder:
    """An aggregate, application or process recorder on an SQLite table."""

    def __new__(
        cls,
        datastore: SQLiteDatastore,
        events_table_name: str = "stored_events",
        kind: str = "application",
    ) -> SQLiteRecorder: ...
    @property
    def events_table_name(self) -> str: ...
    def create_table_statements(self) -> list[str]: ...
    def set_fence(self, table: str | None = None, name: str = "", epoch: int = 0) -> None: ...
    @property
    def fence(self) -> tuple[str, str, int] | None: ...
    def create_table(self, statements: list[str] | None = None) -> None: ...
    def insert_events(
        self, stored_events: Iterable[StoredEvent], tracking: Tracking | None = None
    ) -> list[int]: ...
    def select_events(
        self,
        originator_id: UUID,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]: ...
    def select_notifications(self, start: int, limit: int) -> list[Notification]: ...
    def select_segment(
        self, start: int, scan: int, index: int, count: int
    ) -> tuple[list[Notification], int]: ...
    def max_notification_id(self) -> int: ...
    def max_tracking_id(self, application_name: str) -> int: ...

@final
class PostgresConnections:
    """A pool of connections to one PostgreSQL database, running the SQL the
    recorders make with the GIL released (prepared once per connection;
    a write is one round trip once prepared)."""

    def __new__(
        cls,
        dbname: str,
        host: str,
        port: str,
        user: str,
        password: str,
        connect_timeout: float = 5.0,
        conn_max_age: float | None = None,
        pre_ping: bool = False,
        idle_in_transaction_session_timeout: float = 0.0,
        sslmode: str = "prefer",
        sslrootcert: str | None = None,
        sslcert: str | None = None,
        sslkey: str | None = None,
    ) -> PostgresConnections: ...
    def write(
        self,
        before: str,
        statement: str,
        params: Sequence[Any],
        context: str,
        expected_rows: int | None = None,
    ) -> tuple[int, list[int]]: ...
    def select_events(
        self, statement: str, params: Sequence[Any], context: str
    ) -> list[StoredEvent]: ...
    def select_notifications(
        self, statement: str, params: Sequence[Any], context: str
    ) -> list[Notification]: ...
    @property
    def group_commit_counts(self) -> tuple[int, int]: ...
    def listen(self, channels: list[str]) -> PostgresListener: ...
    def query_int(self, statement: str, params: Sequence[Any], context: str) -> int: ...
    def query_text(self, statement: str, params: Sequence[Any], context: str) -> str | None: ...
    def execute_batch(self, sql: str, context: str) -> None: ...
    def close_all(self) -> None: ...

@final
class PromptQueue:
    """Leader names waiting to be pulled by one follower."""

    def __new__(cls) -> PromptQueue: ...
    def put(self, leader_name: str) -> bool: ...
    def take(self) -> list[str]: ...
    def wait(self, timeout: float | None = None) -> list[str] | None: ...
    def stop(self) -> None: ...
    @property
    def is_stopped(self) -> bool: ...
    @property
    def pending(self) -> list[str]: ...

@final
class SelectReader:
    """Iterates a notification log by ``select(start, limit)`` pages."""

    def __new__(cls, log: Any, start: int, section_size: int) -> SelectReader: ...
    def __iter__(self) -> Iterator[Notification]: ...
    def __next__(self) -> Notification: ...

@final
class SectionReader:
    """Iterates a notification log by following its sections."""

    def __new__(
        cls,
        log: Any,
        start: int,
        section_size: int,
        direct: tuple[Callable[[int, int], list[Notification]], int] | None = None,
    ) -> SectionReader: ...
    def __iter__(self) -> Iterator[Notification]: ...
    def __next__(self) -> Notification: ...

@final
class JsonCodec:
    """The JSON engine behind JSONTranscoder."""

    def __new__(cls) -> JsonCodec: ...
    def register_native(self, ty: type, name: str, kind: str) -> None: ...
    def register_custom(self, ty: type, name: str, transcoding: Any) -> None: ...
    def encode(self, obj: Any) -> bytes: ...
    def decode(self, data: bytes) -> Any: ...

@final
class EventMapper:
    """The Mapper's conversions, done in one call each."""

    def __new__(
        cls,
        codec: JsonCodec,
        transcoder: Any,
        compressor: Any | None,
        cipher: Any | None,
        get_topic: Any,
        resolve_topic: Any,
        topic_cache: dict[str, Any],
    ) -> EventMapper: ...
    def from_domain_event(self, domain_event: Any) -> StoredEvent: ...
    def to_domain_event(self, stored: StoredEvent) -> Any: ...

@final
class TrackingBook:
    """Per leader, the last notification id a follower has processed."""

    def __new__(cls) -> TrackingBook: ...
    def position(self, leader_name: str) -> int | None: ...
    def learn(self, leader_name: str, position: int) -> None: ...
    def check(self, leader_name: str, notification_id: int) -> None: ...
    def advance(self, leader_name: str, notification_id: int) -> None: ...
    def forget(self, leader_name: str) -> None: ...

@final
class MethodGuard:
    """Whether objects' methods are still those first found: the subjects
    given are those the guard was made for, each watched object has the
    type it had, the type is unmodified, no instance attribute has one of
    the names, and each pinned attribute (owner, name) is still the object
    it was."""

    def __new__(
        cls,
        watched: list[tuple[object, list[str]]],
        pinned: list[tuple[object, str]] = ...,
        subjects: list[object] = ...,
    ) -> MethodGuard: ...
    def holds(self, *subjects: object) -> bool: ...

@final
class PullKernel:
    """The Rust objects behind a follower's pull from a leader in the same
    process (its recorder, the leader's, the mappers, the tracking book);
    a FollowerPull runs each page through it: the position, the leader's
    page, decoding, the policies, and recording the batch with its
    tracking record."""

    def __new__(
        cls,
        follower: MemoryRecorder | SQLiteRecorder,
        leader: MemoryRecorder | SQLiteRecorder,
        decoder: EventMapper,
        encoder: EventMapper,
        book: TrackingBook,
        guard: MethodGuard,
    ) -> PullKernel: ...

@final
class FollowerPull:
    """A follower's whole pull from one leader in Rust, around its kernel,
    while the follower's methods and state on that path are those it was
    made for; failures are handed to the follower's Python methods."""

    def __new__(
        cls,
        follower: Any,
        kernel: PullKernel,
        guard: MethodGuard,
        readers: dict[str, Any],
        reader_entry: Any,
        pending: Any,
        batch_size: int,
        process_events_module: Any,
        stock_init: Callable[..., Any],
        notify: str,
        followers: list[Any] | None = None,
        runner_receive: Callable[..., Any] | None = None,
    ) -> FollowerPull: ...
    def run(self, name: str) -> bool: ...

@final
class ApplicationSave:
    """An application's save in Rust (collecting the aggregates' events,
    encoding, one insert, notifying) while a guard says the methods on that
    path are those it was made for."""

    def __new__(
        cls,
        app: Any,
        guard: MethodGuard,
        encoder: EventMapper,
        recorder: MemoryRecorder | SQLiteRecorder,
        stock_collect: Callable[..., Any],
        notify: str,
        followers: list[Any] | None = None,
        runner_receive: Callable[..., Any] | None = None,
    ) -> ApplicationSave: ...
    def run(self, aggregates: tuple[Any, ...]) -> bool: ...

def drain_prompts(
    runner: Any,
    errors: list[Any],
    processing_error: Callable[[Any, str, Exception], Any],
    stock_pull: Callable[..., Any],
) -> None: ...
def parse_section_id(section_id: str) -> tuple[int, int]: ...
def section_start_and_limit(section_id: str, section_size: int) -> tuple[int, int]: ...
def format_section_id(first: int, last: int) -> str: ...
def uuid4() -> UUID: ...
def instance_with_dict(cls: type[Any], state: dict[str, Any]) -> Any: ...
def now(tz: tzinfo) -> datetime: ...

@final
class PostgresListener:
    """A connection that waits for notifications on the channels it
    LISTENs on."""

    def wait(self, timeout: float) -> list[tuple[str, str]]: ...
    def close(self) -> None: ...
