"""Persistence: transcoding, mapping, recorders, event stores and factories.

The value types (:class:`StoredEvent`, :class:`Notification`,
:class:`Tracking`) and the JSON engine are implemented in Rust
(``eventsourcing_rs._core``); the abstract classes users subclass stay here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from abc import ABC, abstractmethod
from datetime import datetime
from decimal import Decimal
from typing import (
    Any,
    Dict,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    cast,
)
from uuid import UUID

from eventsourcing_rs import _core, utils
from eventsourcing_rs.domain import DomainEvent, TDomainEvent
from eventsourcing_rs.utils import get_topic, resolve_topic, strtobool

StoredEvent = _core.StoredEvent
Notification = _core.Notification
Tracking = _core.Tracking


# 9.1's value types are frozen dataclasses, and code written for it may use
# them as such (dataclasses.fields, asdict, astuple, replace): these Rust
# types carry the fields dataclasses reads, taken from dataclasses of the
# same fields, in the same order.
@dataclasses.dataclass(frozen=True)
class _StoredEventFields:
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


@dataclasses.dataclass(frozen=True)
class _NotificationFields(_StoredEventFields):
    id: int


@dataclasses.dataclass(frozen=True)
class _TrackingFields:
    application_name: str
    notification_id: int
    previous_id: Optional[int] = None


for _rust, _fields in (
    (StoredEvent, _StoredEventFields),
    (Notification, _NotificationFields),
    (Tracking, _TrackingFields),
):
    setattr(_rust, "__dataclass_fields__", getattr(_fields, "__dataclass_fields__"))  # noqa: B009, B010
    setattr(_rust, "__dataclass_params__", getattr(_fields, "__dataclass_params__"))  # noqa: B009, B010

DEFAULT_FACTORY_TOPIC = "eventsourcing_rs.popo:Factory"
DEFAULT_CIPHER_TOPIC = "eventsourcing_rs.cipher:AESCipher"


class Transcoding(ABC):
    """A way of representing objects of one type in a transcoder's format."""

    @property
    @abstractmethod
    def type(self) -> type:
        """The type of object this transcoding represents."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The name recorded alongside the representation."""

    @abstractmethod
    def encode(self, obj: Any) -> Any:
        """Returns a representation of ``obj`` the transcoder can encode."""

    @abstractmethod
    def decode(self, data: Any) -> Any:
        """Returns the object the representation ``data`` stands for."""


class Transcoder(ABC):
    """Turns objects into bytes and back, extensible with transcodings."""

    def __init__(self) -> None:
        self.types: Dict[type, Transcoding] = {}
        self.names: Dict[str, Transcoding] = {}

    def register(self, transcoding: Transcoding) -> None:
        """Adds ``transcoding``, keyed by its type and by its name."""
        self.types[transcoding.type] = transcoding
        self.names[transcoding.name] = transcoding

    @abstractmethod
    def encode(self, obj: Any) -> bytes:
        """Encodes ``obj`` as bytes."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """Decodes bytes written by :func:`encode`."""


class UUIDAsHex(Transcoding):
    """Represents :class:`~uuid.UUID` objects by their 32 hex digits."""

    type = UUID
    name = "uuid_hex"

    def encode(self, obj: UUID) -> str:
        return obj.hex

    def decode(self, data: str) -> UUID:
        assert isinstance(data, str)
        return UUID(data)


class DecimalAsStr(Transcoding):
    """Represents :class:`~decimal.Decimal` objects by their text."""

    type = Decimal
    name = "decimal_str"

    def encode(self, obj: Decimal) -> str:
        return str(obj)

    def decode(self, data: str) -> Decimal:
        return Decimal(data)


class DatetimeAsISO(Transcoding):
    """Represents :class:`~datetime.datetime` objects in ISO 8601 form."""

    type = datetime
    name = "datetime_iso"

    def encode(self, obj: datetime) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> datetime:
        assert isinstance(data, str)
        return datetime.fromisoformat(data)


# The standard transcodings are run natively by the Rust engine; any other
# transcoding (or a subclass of these) is called through its methods.
_NATIVE_KINDS: Dict[type, str] = {
    UUIDAsHex: "uuid",
    DecimalAsStr: "decimal",
    DatetimeAsISO: "datetime",
}

# How the Rust engine's messages begin when it cannot parse the text.
_PARSE_ERROR_PREFIX = "invalid JSON: "


class JSONTranscoder(Transcoder):
    """JSON transcoder whose encoding and decoding run in Rust.

    It writes what Python's :mod:`json` writes with default settings, so
    stored events move freely between this library and the reference one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._codec = _core.JsonCodec()

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        kind = _NATIVE_KINDS.get(type(transcoding))
        if kind is not None and transcoding.type is type(transcoding).type:
            self._codec.register_native(transcoding.type, transcoding.name, kind)
        else:
            self._codec.register_custom(transcoding.type, transcoding.name, transcoding)

    def encode(self, obj: Any) -> bytes:
        return self._codec.encode(obj)

    def decode(self, data: bytes) -> Any:
        try:
            return self._codec.decode(data)
        except ValueError as error:
            # Text the Rust parser refuses (lone surrogates, nesting deeper
            # than it goes, or simply invalid): Python's json gives the
            # authoritative answer. A ValueError from a transcoding's decode
            # is the answer already.
            if not str(error).startswith(_PARSE_ERROR_PREFIX):
                raise
        return json.loads(data.decode("utf8"), object_hook=self._decode_obj)

    def _decode_obj(self, d: Dict[str, Any]) -> Any:
        if d.keys() == {"_type_", "_data_"}:
            name = d["_type_"]
            try:
                transcoding = self.names[name]
            except KeyError:
                raise TypeError(
                    f"Data serialized with name '{name}' is not deserializable. "
                    "Please register a custom transcoding for this type."
                ) from None
            return transcoding.decode(d["_data_"])
        return d


class Compressor(ABC):
    """Compresses and decompresses bytes."""

    @abstractmethod
    def compress(self, data: bytes) -> bytes:
        """Returns ``data`` compressed."""

    @abstractmethod
    def decompress(self, data: bytes) -> bytes:
        """Returns the bytes that were compressed into ``data``."""


class Cipher(ABC):
    """Encrypts and decrypts bytes with a key."""

    @abstractmethod
    def __init__(self, cipher_key: str):
        """Keeps the key the cipher will use."""

    @abstractmethod
    def encrypt(self, plaintext: bytes) -> bytes:
        """Returns the ciphertext of ``plaintext``."""

    @abstractmethod
    def decrypt(self, ciphertext: bytes) -> bytes:
        """Returns the plaintext of ``ciphertext``."""


class Mapper(Generic[TDomainEvent]):
    """Converts domain events to stored events and back.

    The event's attributes are encoded by the transcoder, then compressed
    and encrypted when a compressor and a cipher are given.
    """

    def __init__(
        self,
        transcoder: Transcoder,
        compressor: Optional[Compressor] = None,
        cipher: Optional[Cipher] = None,
    ):
        self.transcoder = transcoder
        self.compressor = compressor
        self.cipher = cipher
        self._topics: Dict[type, str] = {}
        self._use_rust_mapper()

    def _use_rust_mapper(self) -> None:
        # With the stock JSON transcoder, both conversions run in Rust in
        # one call each. A subclass overriding either method, or another
        # transcoder, keeps the Python path below.
        transcoder = self.transcoder
        if not (
            isinstance(transcoder, JSONTranscoder)
            and type(transcoder).encode is JSONTranscoder.encode
            and type(transcoder).decode is JSONTranscoder.decode
        ):
            return
        fast = _core.EventMapper(
            transcoder._codec,
            transcoder,
            self.compressor,
            self.cipher,
            get_topic,
            resolve_topic,
            utils._objs_cache,
        )
        cls = type(self)
        if cls.from_domain_event is Mapper.from_domain_event:
            self.from_domain_event = fast.from_domain_event  # type: ignore[method-assign]
        if cls.to_domain_event is Mapper.to_domain_event:
            self.to_domain_event = fast.to_domain_event  # type: ignore[method-assign]

    def from_domain_event(self, domain_event: TDomainEvent) -> StoredEvent:
        """Returns a :class:`StoredEvent` for ``domain_event``."""
        cls = type(domain_event)
        try:
            topic = self._topics[cls]
        except KeyError:
            topic = self._topics[cls] = get_topic(cls)
        state = domain_event.__dict__.copy()
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        data = self.transcoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            if getattr(self.cipher, "bound_to_position", False):
                data = self.cipher.encrypt_at(  # type: ignore[attr-defined]
                    data, originator_id, originator_version, topic
                )
            else:
                data = self.cipher.encrypt(data)
        return StoredEvent(originator_id, originator_version, topic, data)

    def to_domain_event(self, stored: StoredEvent) -> TDomainEvent:
        """Returns the domain event that ``stored`` records, upcast to the
        current version of its class."""
        try:
            data = stored.state
            if self.cipher:
                if getattr(self.cipher, "bound_to_position", False):
                    data = self.cipher.decrypt_at(  # type: ignore[attr-defined]
                        data, stored.originator_id, stored.originator_version, stored.topic
                    )
                else:
                    data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = self.transcoder.decode(data)
            cls = resolve_topic(stored.topic)
            if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
                # Whoever can write a row must not be able to make the
                # application construct an arbitrary object.
                raise DataError(
                    f"topic '{stored.topic}' names {cls!r}, which is not a domain "
                    "event class: refused"
                )
        except Exception as error:
            error.add_note(
                f"while reading stored event {stored.originator_version} of "
                f"aggregate {stored.originator_id} (topic '{stored.topic}')"
            )
            raise
        if not isinstance(state, dict):
            raise DataError(
                f"stored event {stored.originator_version} of aggregate "
                f"{stored.originator_id} (topic '{stored.topic}') does not hold "
                f"an object's attributes"
            )
        state["originator_id"] = stored.originator_id
        state["originator_version"] = stored.originator_version
        version = state.pop("class_version", 1)
        target = getattr(cls, "class_version", 1)
        while version < target:
            getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
            version += 1
        domain_event = object.__new__(cls)
        domain_event.__dict__.update(state)
        return cast(TDomainEvent, domain_event)


class RecordConflictError(Exception):
    """Legacy name for a conflicting record; see :class:`IntegrityError`."""


class PersistenceError(Exception):
    """Base of the persistence errors, named as in PEP 249."""


class InterfaceError(PersistenceError):
    """An error of the database interface rather than the database."""


class DatabaseError(PersistenceError):
    """An error of the database."""


class DataError(DatabaseError):
    """An error in the data being processed."""


class OperationalError(DatabaseError):
    """An error in the database's operation, often outside the program's
    control: a lost connection, a missing file, a lock that timed out."""


class IntegrityError(DatabaseError, RecordConflictError):
    """A write would break the database's integrity: a record at that
    position, or a tracking record at that notification, already exists."""


class TrackingRefused(IntegrityError):
    """A process recorder refused a tracking record: it does not advance
    the follower's position for its leader, or that position is no longer
    the one its batch was read from (``Tracking.previous_id``: another
    instance of the follower recorded from it). Nothing of the insert was
    written. An :class:`IntegrityError`, as 9.1 raises for it."""


class LeaseLost(IntegrityError):
    """A worker's tracking write was refused because another worker took
    over its lease of the follower (the lease's epoch moved on): this
    worker is no longer the active one and must step down. Nothing of the
    insert was written."""


class InternalError(DatabaseError):
    """The database found itself in an inconsistent state."""


class ProgrammingError(DatabaseError):
    """A programming error: a missing or malformed table, a bad statement."""


class NotSupportedError(DatabaseError):
    """A feature the database does not support."""


class Recorder(ABC):
    """Base of the stored event recorders."""


class AggregateRecorder(Recorder):
    """Records and selects the stored events of aggregates."""

    @abstractmethod
    def insert_events(
        self, stored_events: List[StoredEvent], **kwargs: Any
    ) -> Optional[Sequence[int]]:
        """Writes ``stored_events`` all together, or none of them."""

    @abstractmethod
    def select_events(
        self,
        originator_id: UUID,
        gt: Optional[int] = None,
        lte: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> List[StoredEvent]:
        """Reads one aggregate's stored events, filtered by version."""


class ApplicationRecorder(AggregateRecorder):
    """An aggregate recorder that also gives every stored event a
    notification id, so they can be read in the order they were recorded.

    Notification ids start at 1; a ``start`` below 1 reads from the first
    notification, on every store.
    """

    @abstractmethod
    def select_notifications(self, start: int, limit: int) -> List[Notification]:
        """Returns up to ``limit`` notifications with ids from ``start``."""

    @abstractmethod
    def max_notification_id(self) -> int:
        """Returns the largest notification id, or 0 when there is none."""


class ProcessRecorder(ApplicationRecorder):
    """An application recorder that records, with each insert, how far the
    application has processed the notifications of another application."""

    @abstractmethod
    def max_tracking_id(self, application_name: str) -> int:
        """Returns the last notification id processed from the named
        application, or 0."""


class EventStore(Generic[TDomainEvent]):
    """Puts domain events into a recorder and gets them back."""

    def __init__(
        self,
        mapper: Mapper[TDomainEvent],
        recorder: AggregateRecorder,
    ):
        self.mapper = mapper
        self.recorder = recorder

    def put(self, events: Sequence[TDomainEvent], **kwargs: Any) -> Any:
        """Records ``events`` in one insert (with any tracking record)."""
        # map, not a comprehension: no Python frame per put.
        stored = list(map(self.mapper.from_domain_event, events))
        return self.recorder.insert_events(stored, **kwargs)

    def get(
        self,
        originator_id: UUID,
        gt: Optional[int] = None,
        lte: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> Iterator[TDomainEvent]:
        """Returns one aggregate's events, filtered by version."""
        return map(
            self.mapper.to_domain_event,
            self.recorder.select_events(
                originator_id=originator_id,
                gt=gt,
                lte=lte,
                desc=desc,
                limit=limit,
            ),
        )


class _Tabled(Protocol):
    def create_table(self) -> None: ...


TTabled = TypeVar("TTabled", bound=_Tabled)


# The reference's later versions select the store by module.
PERSISTENCE_MODULE = "PERSISTENCE_MODULE"

# Client libraries that a store's module imports, and the extra of this
# package that installs each.
_EXTRAS = {"psycopg": "postgres", "psycopg_pool": "postgres"}


class NotificationPage(List[Notification]):
    """Notifications read up to a stored row that could not be read (a
    NULL version, say): ``select_notifications`` gives the rows before it
    in one of these, with that row's error (naming its notification id and
    column) as ``stopped_by``, so a reader processes them and then raises
    it. A page with no bad row is a plain list."""

    stopped_by: Optional[BaseException] = None


class InvalidSetting(EnvironmentError, ValueError):
    """An environment variable's value is not one its setting takes. An
    ``EnvironmentError`` (as 9.1 raises for a bad timeout) and a
    ``ValueError`` (as 9.1 raises for a bad truth value), so code catching
    either goes on working."""


class InfrastructureFactory(ABC):
    """Builds an application's persistence from its environment."""

    TOPIC = "INFRASTRUCTURE_FACTORY"
    MAPPER_TOPIC = "MAPPER_TOPIC"
    CIPHER_TOPIC = "CIPHER_TOPIC"
    CIPHER_KEY = "CIPHER_KEY"
    # Beyond 9.1: bind each ciphertext to its event's aggregate id, version
    # and topic (AES-GCM associated data), so rows cannot be swapped.
    CIPHER_BIND_TO_POSITION = "CIPHER_BIND_TO_POSITION"
    COMPRESSOR_TOPIC = "COMPRESSOR_TOPIC"
    IS_SNAPSHOTTING_ENABLED = "IS_SNAPSHOTTING_ENABLED"
    CREATE_TABLE = "CREATE_TABLE"

    @classmethod
    def construct(
        cls,
        application_name: str = "",
        env: Optional[Mapping[str, str]] = None,
    ) -> "InfrastructureFactory":
        """Returns the factory named by ``INFRASTRUCTURE_FACTORY`` (the
        in-memory one by default) for the named application."""
        env = env if env is not None else os.environ
        topic, variable = cls._factory_topic(env)
        try:
            factory_cls = resolve_topic(topic)
        except ModuleNotFoundError as error:
            extra = _EXTRAS.get(error.name or "")
            if extra is not None:
                # The store's module is there, its client library is not.
                raise EnvironmentError(
                    f"{topic} (from {variable}) needs the package {error.name!r}: "
                    f"install it with: pip install 'eventsourcing-rs[{extra}]'"
                ) from error
            raise EnvironmentError(
                f"Failed to resolve infrastructure factory topic: '{topic}' "
                f"from environment variable '{variable}'"
            ) from error
        except (AttributeError, ValueError) as error:
            raise EnvironmentError(
                f"Failed to resolve infrastructure factory topic: '{topic}' "
                f"from environment variable '{variable}'"
            ) from error
        if not (isinstance(factory_cls, type) and issubclass(factory_cls, InfrastructureFactory)):
            raise AssertionError(f"Not an infrastructure factory: {topic}")
        return factory_cls(application_name=application_name, env=env)

    @classmethod
    def _factory_topic(cls, env: Mapping[str, str]) -> Tuple[str, str]:
        """The factory's topic and the variable that named it.

        ``PERSISTENCE_MODULE`` (the setting of the reference's later
        versions: a module with a ``Factory``, such as
        ``eventsourcing_rs.sqlite``) is accepted as an alias; naming a
        different store in both variables is an error."""
        topic = env.get(cls.TOPIC)
        module = env.get(PERSISTENCE_MODULE)
        if module:
            aliased = module if ":" in module else f"{module}:Factory"
            if topic and topic != aliased:
                raise EnvironmentError(
                    f"{cls.TOPIC}={topic!r} and {PERSISTENCE_MODULE}={module!r} "
                    "name different stores: set one of them"
                )
            return aliased, PERSISTENCE_MODULE
        return topic or DEFAULT_FACTORY_TOPIC, cls.TOPIC

    def __init__(self, application_name: str, env: Mapping[str, str]):
        self.application_name = application_name
        self.env = env

    def getenv(
        self, key: str, default: Optional[str] = None, application_name: str = ""
    ) -> Optional[str]:
        """Returns ``APPNAME_KEY`` if set, else ``KEY``, else ``default``."""
        name = application_name or self.application_name
        for candidate in (f"{name.upper()}_{key}", key):
            value = self.env.get(candidate)
            if value is not None:
                return value
        return default

    def mapper(self, transcoder: Transcoder, application_name: str = "") -> Mapper:
        """Returns a mapper, with the cipher and compressor the
        environment asks for."""
        return Mapper(
            transcoder=transcoder,
            cipher=self.cipher(application_name),
            compressor=self.compressor(application_name),
        )

    def cipher(self, application_name: str) -> Optional[Cipher]:
        """Returns the cipher named by ``CIPHER_TOPIC`` (AES-GCM when only
        ``CIPHER_KEY`` is set), or None."""
        topic = self.getenv(self.CIPHER_TOPIC, application_name=application_name)
        key = self.getenv(self.CIPHER_KEY, application_name=application_name)
        if topic and not key:
            raise EnvironmentError(
                f"'{self.CIPHER_KEY}' not set in env, although '{self.CIPHER_TOPIC}' was set"
            )
        if not key:
            return None
        cipher_cls: Type[Cipher] = resolve_topic(topic or DEFAULT_CIPHER_TOPIC)
        cipher = cipher_cls(cipher_key=key)
        if self.env_flag(self.CIPHER_BIND_TO_POSITION, False, application_name):
            if not hasattr(cipher, "encrypt_at"):
                raise InvalidSetting(
                    f"{self.CIPHER_BIND_TO_POSITION} is set, but the cipher "
                    f"{cipher_cls.__qualname__} cannot bind a ciphertext to its event "
                    "(it has no encrypt_at)"
                )
            cipher.bound_to_position = True  # type: ignore[attr-defined]
        return cipher

    def compressor(self, application_name: str) -> Optional[Compressor]:
        """Returns the compressor named by ``COMPRESSOR_TOPIC``, or None.
        The topic may name a class or a module (``zlib``, say)."""
        topic = self.getenv(self.COMPRESSOR_TOPIC, application_name=application_name)
        if not topic:
            return None
        compressor = resolve_topic(topic)
        if isinstance(compressor, type):
            return cast(Compressor, compressor())
        return cast(Compressor, compressor)

    @staticmethod
    def event_store(**kwargs: Any) -> EventStore:
        """Returns an event store."""
        return EventStore(**kwargs)

    @abstractmethod
    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """Returns an aggregate recorder (``purpose`` names its table)."""

    @abstractmethod
    def application_recorder(self) -> ApplicationRecorder:
        """Returns an application recorder."""

    @abstractmethod
    def process_recorder(self) -> ProcessRecorder:
        """Returns a process recorder."""

    def is_snapshotting_enabled(self) -> bool:
        """Whether ``IS_SNAPSHOTTING_ENABLED`` is true (it is off by default)."""
        return self.env_flag(self.IS_SNAPSHOTTING_ENABLED, False)

    def env_create_table(self) -> bool:
        """Whether ``CREATE_TABLE`` asks recorders of database tables to
        create them (it does unless set to a false value)."""
        return self.env_flag(self.CREATE_TABLE, True)

    def _variable(self, key: str, application_name: str = "") -> str:
        """The name of the variable that gives ``key`` its value."""
        name = application_name or self.application_name
        prefixed = f"{name.upper()}_{key}"
        return prefixed if name and prefixed in self.env else key

    def env_flag(self, key: str, default: bool, application_name: str = "") -> bool:
        """A truth value (``yes``/``no``, ``true``/``false``, ``1``/``0``,
        ...) for this application (or the named one, as :func:`getenv`
        takes it); empty or unset means ``default``."""
        value = (self.getenv(key, application_name=application_name) or "").strip()
        if not value:
            return default
        try:
            return bool(strtobool(value))
        except ValueError:
            raise InvalidSetting(
                f"{self._variable(key, application_name)}={value!r} is not a truth value "
                "(expected yes or no, true or false, on or off, 1 or 0)"
            ) from None

    def env_seconds(
        self, key: str, maximum: float, *, whole: bool = False, store: str = ""
    ) -> Optional[float]:
        """A duration in seconds, from 0 to ``maximum`` (a whole number if
        ``whole``); None when empty or unset. ``store`` names the store in
        the message for a value that is no number (worded as 9.1's)."""
        value = (self.getenv(key) or "").strip()
        if not value:
            return None
        kind = "a whole number of seconds" if whole else "a number of seconds"
        try:
            # Digits only, before converting: int() of a thousand digits
            # is slow, and float() of one overflows.
            if whole and not value.lstrip("+-").isdigit():
                raise ValueError(value)
            seconds = float(int(value)) if whole and len(value) < 20 else float(value)
        except (ValueError, OverflowError):
            expected = "an int" if whole else "a float"
            raise InvalidSetting(
                f"{store} environment value for key '{key}' is invalid. If set, "
                f"{expected} or empty string is expected: '{value}'"
            ) from None
        if not 0 <= seconds <= maximum:  # also refuses nan
            raise InvalidSetting(
                f"{self._variable(key)}={value!r} is out of range: expected {kind} "
                f"from 0 to {maximum:g}"
            )
        return seconds

    def _with_tables(self, recorder: TTabled) -> TTabled:
        """``recorder``, its tables created first if ``CREATE_TABLE`` asks."""
        if self.env_create_table():
            recorder.create_table()
        return recorder


__all__ = [
    "InvalidSetting",
    "TrackingRefused",
    "LeaseLost",
    "NotificationPage",
    "AggregateRecorder",
    "ApplicationRecorder",
    "Cipher",
    "Compressor",
    "DatabaseError",
    "DataError",
    "DatetimeAsISO",
    "DecimalAsStr",
    "EventStore",
    "InfrastructureFactory",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "JSONTranscoder",
    "Mapper",
    "Notification",
    "NotSupportedError",
    "OperationalError",
    "PersistenceError",
    "ProcessRecorder",
    "ProgrammingError",
    "RecordConflictError",
    "Recorder",
    "StoredEvent",
    "Tracking",
    "Transcoder",
    "Transcoding",
    "UUIDAsHex",
]
