"""Persistence: the mapper, the stored-event value types, the infrastructure
factory, the exception hierarchy and the event store."""

from __future__ import annotations

import json
import pickle
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Type
from uuid import UUID, uuid4

import pytest
from eventsourcing_rs.cipher import AESCipher
from eventsourcing_rs.compressor import ZlibCompressor
from eventsourcing_rs.domain import DomainEvent
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    Cipher,
    DatabaseError,
    DataError,
    DatetimeAsISO,
    DecimalAsStr,
    EventStore,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    InternalError,
    JSONTranscoder,
    Mapper,
    Notification,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    RecordConflictError,
    StoredEvent,
    Tracking,
    UUIDAsHex,
)
from eventsourcing_rs.popo import (
    Factory as POPOFactory,
)
from eventsourcing_rs.popo import (
    POPOAggregateRecorder,
    POPOApplicationRecorder,
    POPOProcessRecorder,
)
from eventsourcing_rs.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None)


class Deposited(DomainEvent):
    amount: Decimal
    note: str
    tags: List[str]


class Renamed(DomainEvent):
    """Version 3: v1 called the field ``old_name``; v3 added ``reason``."""

    class_version = 3

    name: str
    reason: str

    @staticmethod
    def upcast_v1_v2(state: Dict[str, Any]) -> None:
        state["name"] = state.pop("old_name")

    @staticmethod
    def upcast_v2_v3(state: Dict[str, Any]) -> None:
        state["reason"] = "not recorded"


def transcoder() -> JSONTranscoder:
    t = JSONTranscoder()
    t.register(UUIDAsHex())
    t.register(DecimalAsStr())
    t.register(DatetimeAsISO())
    return t


def reference_json(state: Dict[str, Any]) -> bytes:
    """The bytes the reference's JSON transcoder writes for ``state``."""

    def default(o: Any) -> Dict[str, Any]:
        if isinstance(o, UUID):
            return {"_type_": "uuid_hex", "_data_": o.hex}
        if isinstance(o, Decimal):
            return {"_type_": "decimal_str", "_data_": str(o)}
        if isinstance(o, datetime):
            return {"_type_": "datetime_iso", "_data_": o.isoformat()}
        raise TypeError(o)

    return json.JSONEncoder(default=default).encode(state).encode("utf8")


class PythonPathMapper(Mapper):
    """Overrides both conversions (calling the base class), which keeps the
    mapper off its native fast path: both paths must behave alike."""

    def from_domain_event(self, domain_event: Any) -> StoredEvent:
        return super().from_domain_event(domain_event)

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return super().to_domain_event(stored)


@pytest.fixture(params=[Mapper, PythonPathMapper], ids=["native", "python"])
def mapper_cls(request: pytest.FixtureRequest) -> Type[Mapper]:
    return request.param  # type: ignore[no-any-return]


KEY = AESCipher.create_key(32)


def make_mapper(
    mapper_cls: Type[Mapper],
    compress: bool = False,
    key: Optional[str] = None,
) -> Mapper:
    return mapper_cls(
        transcoder=transcoder(),
        compressor=ZlibCompressor() if compress else None,
        cipher=AESCipher(key) if key else None,
    )


def deposited(version: int = 1, **kwargs: Any) -> Deposited:
    fields: Dict[str, Any] = dict(
        originator_id=uuid4(),
        originator_version=version,
        timestamp=datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        amount=Decimal("12.50"),
        note="caf\u00e9 \U0001f600",
        tags=["a", "b"],
    )
    fields.update(kwargs)
    return Deposited(**fields)  # type: ignore[call-arg]


def state_without_position(event: DomainEvent) -> Dict[str, Any]:
    state = dict(event.__dict__)
    del state["originator_id"], state["originator_version"]
    return state


# Mapper ----------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "zlib"])
@pytest.mark.parametrize("encrypt", [False, True], ids=["clear", "aes"])
def test_mapper_round_trip(mapper_cls: Type[Mapper], compress: bool, encrypt: bool) -> None:
    mapper = make_mapper(mapper_cls, compress, KEY if encrypt else None)
    event = deposited(version=7)
    stored = mapper.from_domain_event(event)
    assert type(stored) is StoredEvent
    assert stored.originator_id == event.originator_id
    assert stored.originator_version == 7
    assert stored.topic == "tests.test_persistence:Deposited" == get_topic(Deposited)
    # The state is the reference's JSON, then compressed, then encrypted.
    data = stored.state
    if encrypt:
        data = AESCipher(KEY).decrypt(data)
        assert reference_json(state_without_position(event)) not in stored.state
    if compress:
        data = zlib.decompress(data)
    assert data == reference_json(state_without_position(event))
    copy = mapper.to_domain_event(stored)
    assert type(copy) is Deposited
    assert copy == event
    assert copy.__dict__ == event.__dict__


@SETTINGS
@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False),
    note=st.text(),
    tags=st.lists(st.text(max_size=5), max_size=3),
    version=st.integers(min_value=1, max_value=2**62),
)
def test_mapper_round_trip_any_values(
    amount: Decimal, note: str, tags: List[str], version: int
) -> None:
    mapper: Mapper = make_mapper(Mapper)
    event = deposited(version=version, amount=amount, note=note, tags=tags)
    stored = mapper.from_domain_event(event)
    assert stored.state == reference_json(state_without_position(event))
    assert mapper.to_domain_event(stored) == event


def test_mapper_reads_what_either_path_writes() -> None:
    native: Mapper = make_mapper(Mapper, compress=True, key=KEY)
    python: Mapper = make_mapper(PythonPathMapper, compress=True, key=KEY)
    event = deposited()
    assert python.to_domain_event(native.from_domain_event(event)) == event
    assert native.to_domain_event(python.from_domain_event(event)) == event


def renamed_v1_stored(mapper: Mapper, originator_id: UUID) -> StoredEvent:
    state = {"timestamp": datetime(2020, 1, 1, tzinfo=UTC), "old_name": "x"}
    return StoredEvent(originator_id, 1, get_topic(Renamed), mapper.transcoder.encode(state))


def test_upcasting_from_v1_and_v2(mapper_cls: Type[Mapper]) -> None:
    mapper = make_mapper(mapper_cls)
    originator_id = uuid4()
    event = mapper.to_domain_event(renamed_v1_stored(mapper, originator_id))
    assert type(event) is Renamed
    assert event.name == "x"
    assert event.reason == "not recorded"
    assert event.originator_id == originator_id
    assert "old_name" not in event.__dict__
    assert "class_version" not in event.__dict__

    v2_state = {
        "timestamp": datetime(2020, 1, 1, tzinfo=UTC),
        "name": "y",
        "class_version": 2,
    }
    stored = StoredEvent(originator_id, 2, get_topic(Renamed), mapper.transcoder.encode(v2_state))
    event = mapper.to_domain_event(stored)
    assert (event.name, event.reason) == ("y", "not recorded")


def test_current_class_version_is_recorded_and_not_upcast(
    mapper_cls: Type[Mapper],
) -> None:
    mapper = make_mapper(mapper_cls)
    event = Renamed(  # type: ignore[call-arg]
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.now(UTC),
        name="z",
        reason="because",
    )
    stored = mapper.from_domain_event(event)
    expected_state = {**state_without_position(event), "class_version": 3}
    assert stored.state == reference_json(expected_state)
    copy = mapper.to_domain_event(stored)
    assert copy == event
    assert copy.reason == "because"
    assert "class_version" not in copy.__dict__


def test_class_version_1_is_not_recorded(mapper_cls: Type[Mapper]) -> None:
    stored = make_mapper(mapper_cls).from_domain_event(deposited())
    assert "class_version" not in json.loads(stored.state)


def test_wrong_cipher_key_is_a_value_error(mapper_cls: Type[Mapper]) -> None:
    stored = make_mapper(mapper_cls, key=KEY).from_domain_event(deposited())
    other = make_mapper(mapper_cls, key=AESCipher.create_key(32))
    with pytest.raises(ValueError, match="MAC check failed") as caught:
        other.to_domain_event(stored)
    assert "wrong key" in str(caught.value)
    assert str(stored.originator_id) in "\n".join(caught.value.__notes__)


def error_text(error: BaseException) -> str:
    return "\n".join([str(error), *getattr(error, "__notes__", [])])


def assert_names_the_event(error: BaseException, stored: StoredEvent) -> None:
    text = error_text(error)
    assert str(stored.originator_id) in text
    assert f"stored event {stored.originator_version} " in text
    assert stored.topic in text


CORRUPT_STATES = [
    # (compress, encrypt, state, expected error)
    (False, False, b"\xff\xfe\x00", ValueError),
    (False, False, b"not json", ValueError),
    (False, False, b'{"amount": ', ValueError),
    (False, False, b"[1, 2]", DataError),
    (False, False, b'"text"', DataError),
    (False, False, b"null", DataError),
    (False, False, b'{"_type_": "uuid_hex", "_data_": "%s"}' % (b"0" * 32), DataError),
    (False, False, b'{"_type_": "martian", "_data_": 1}', TypeError),
    (True, False, b"not zlib", zlib.error),
    (True, False, zlib.compress(b"[]"), DataError),
    (False, True, b"short", ValueError),
    (False, True, b"\x00" * 60, ValueError),
]


@pytest.mark.parametrize("compress, encrypt, state, error", CORRUPT_STATES)
def test_corrupt_stored_event_is_a_clear_error(
    mapper_cls: Type[Mapper],
    compress: bool,
    encrypt: bool,
    state: bytes,
    error: Type[Exception],
) -> None:
    mapper = make_mapper(mapper_cls, compress, KEY if encrypt else None)
    stored = StoredEvent(uuid4(), 42, get_topic(Deposited), state)
    with pytest.raises(error) as caught:
        mapper.to_domain_event(stored)
    assert_names_the_event(caught.value, stored)


@pytest.mark.parametrize(
    "topic, error",
    [
        ("tests.no_such_module:Deposited", ModuleNotFoundError),
        ("tests.test_persistence:NoSuchEvent", AttributeError),
        ("tests.test_persistence:Deposited.Missing", AttributeError),
    ],
)
def test_unknown_topic_names_the_topic(
    mapper_cls: Type[Mapper],
    topic: str,
    error: Type[Exception],
) -> None:
    mapper = make_mapper(mapper_cls)
    good = mapper.from_domain_event(deposited())
    stored = StoredEvent(good.originator_id, 1, topic, good.state)
    with pytest.raises(error) as caught:
        mapper.to_domain_event(stored)
    assert topic in str(caught.value)
    assert_names_the_event(caught.value, stored)


# Stored events, notifications, tracking records --------------------------------

ids = st.uuids()
versions = st.integers(min_value=0, max_value=2**63 - 1)
topics = st.text(max_size=20)
states = st.binary(max_size=20)


def dataclass_repr(name: str, **fields: Any) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


@SETTINGS
@given(ids, versions, topics, states, versions)
def test_value_types_behave_like_frozen_dataclasses(
    originator_id: UUID, version: int, topic: str, state: bytes, position: int
) -> None:
    fields: Dict[str, Any] = dict(
        originator_id=originator_id,
        originator_version=version,
        topic=topic,
        state=state,
    )
    stored = StoredEvent(originator_id, version, topic, state)
    same = StoredEvent(**fields)
    notification = Notification(originator_id, version, topic, state, position)
    tracking = Tracking(topic, position)

    for name, value in fields.items():
        assert getattr(stored, name) == value
        assert getattr(notification, name) == value
    assert notification.id == position
    assert (tracking.application_name, tracking.notification_id) == (topic, position)

    assert stored == same and not stored != same
    assert hash(stored) == hash(same)
    assert notification == Notification(**fields, id=position)
    assert hash(notification) == hash(Notification(**fields, id=position))
    assert tracking == Tracking(topic, position)
    assert hash(tracking) == hash(Tracking(topic, position))
    assert len({stored, same}) == 1

    # Different class or different field: not equal.
    assert stored != notification and notification != stored
    assert stored != StoredEvent(originator_id, version, topic, state + b"x")
    assert notification != Notification(**fields, id=position ^ 1)
    assert tracking != Tracking(topic + "x", position)
    assert stored != (originator_id, version, topic, state)

    assert repr(stored) == dataclass_repr("StoredEvent", **fields)
    assert repr(notification) == dataclass_repr("Notification", **fields, id=position)
    assert repr(tracking) == dataclass_repr(
        "Tracking", application_name=topic, notification_id=position
    )

    for value in (stored, notification, tracking):
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            copy = pickle.loads(pickle.dumps(value, protocol))
            assert type(copy) is type(value)
            assert copy == value


def test_notification_is_a_stored_event() -> None:
    notification = Notification(uuid4(), 1, "t", b"{}", 3)
    assert isinstance(notification, StoredEvent)
    assert issubclass(Notification, StoredEvent)
    assert not isinstance(StoredEvent(uuid4(), 1, "t", b"{}"), Notification)


def test_value_types_are_immutable() -> None:
    stored = StoredEvent(uuid4(), 1, "t", b"{}")
    notification = Notification(uuid4(), 1, "t", b"{}", 3)
    tracking = Tracking("app", 1)
    for value, name in [
        (stored, "topic"),
        (stored, "state"),
        (notification, "id"),
        (tracking, "notification_id"),
    ]:
        before = getattr(value, name)
        with pytest.raises(AttributeError):
            setattr(value, name, before)
        assert getattr(value, name) == before


def test_value_types_have_the_documented_modules() -> None:
    for cls in (StoredEvent, Notification, Tracking):
        assert cls.__module__.startswith("eventsourcing_rs")
        assert cls.__name__ in {"StoredEvent", "Notification", "Tracking"}


# Infrastructure factory ------------------------------------------------------


class ReversingCipher(Cipher):
    """A (useless) cipher, to show CIPHER_TOPIC is honoured."""

    def __init__(self, cipher_key: str):
        self.key = cipher_key

    def encrypt(self, plaintext: bytes) -> bytes:
        return plaintext[::-1]

    def decrypt(self, ciphertext: bytes) -> bytes:
        return ciphertext[::-1]


class CustomFactory(POPOFactory):
    pass


def construct(env: Mapping[str, str], name: str = "") -> InfrastructureFactory:
    return InfrastructureFactory.construct(application_name=name, env=env)


def test_factory_defaults_to_popo() -> None:
    factory = construct({}, "Bank")
    assert type(factory) is POPOFactory
    assert factory.application_name == "Bank"
    assert isinstance(factory.aggregate_recorder(), POPOAggregateRecorder)
    assert isinstance(factory.application_recorder(), POPOApplicationRecorder)
    assert isinstance(factory.process_recorder(), POPOProcessRecorder)
    assert isinstance(factory.process_recorder(), ProcessRecorder)
    assert factory.cipher("") is None
    assert factory.compressor("") is None
    assert factory.is_snapshotting_enabled() is False


def test_factory_constructed_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRASTRUCTURE_FACTORY", get_topic(CustomFactory))
    factory = InfrastructureFactory.construct("App")
    assert type(factory) is CustomFactory


@pytest.mark.parametrize(
    "topic",
    ["eventsourcing_rs.popo:Factory", get_topic(CustomFactory)],
)
def test_factory_named_by_topic(topic: str) -> None:
    factory = construct({"INFRASTRUCTURE_FACTORY": topic})
    assert get_topic(type(factory)) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "no_such_package.factory:Factory",
        "eventsourcing_rs.popo:NoSuchFactory",
        ":Factory",
    ],
)
def test_unknown_factory_topic_is_an_environment_error(topic: str) -> None:
    with pytest.raises(EnvironmentError) as caught:
        construct({"INFRASTRUCTURE_FACTORY": topic})
    assert isinstance(caught.value, OSError)
    assert topic in str(caught.value)
    assert "INFRASTRUCTURE_FACTORY" in str(caught.value)


def test_cipher_key_alone_implies_aes() -> None:
    factory = construct({"CIPHER_KEY": KEY})
    cipher = factory.cipher("")
    assert type(cipher) is AESCipher
    assert AESCipher(KEY).decrypt(cipher.encrypt(b"secret")) == b"secret"


def test_cipher_topic_names_the_cipher() -> None:
    env = {"CIPHER_TOPIC": get_topic(ReversingCipher), "CIPHER_KEY": "k"}
    cipher = construct(env).cipher("")
    assert type(cipher) is ReversingCipher
    assert cipher.key == "k"


def test_cipher_topic_without_key_is_an_error() -> None:
    factory = construct({"CIPHER_TOPIC": "eventsourcing_rs.cipher:AESCipher"})
    with pytest.raises(EnvironmentError, match="CIPHER_KEY"):
        factory.cipher("")
    with pytest.raises(EnvironmentError, match="CIPHER_KEY"):
        factory.mapper(transcoder())


def test_bad_cipher_key_is_a_value_error() -> None:
    factory = construct({"CIPHER_KEY": "c2hvcnQ="})  # "short": 5 bytes
    with pytest.raises(ValueError, match="key size"):
        factory.cipher("")


def test_compressor_topic_as_class_and_as_module() -> None:
    as_class = construct({"COMPRESSOR_TOPIC": "eventsourcing_rs.compressor:ZlibCompressor"})
    assert type(as_class.compressor("")) is ZlibCompressor
    as_module = construct({"COMPRESSOR_TOPIC": "zlib"})
    assert as_module.compressor("") is zlib

    mapper = as_module.mapper(transcoder())
    event = deposited()
    stored = mapper.from_domain_event(event)
    assert zlib.decompress(stored.state) == reference_json(state_without_position(event))
    assert mapper.to_domain_event(stored) == event


def test_per_application_prefixes() -> None:
    env = {
        "BANK_COMPRESSOR_TOPIC": "zlib",
        "COMPRESSOR_TOPIC": "eventsourcing_rs.compressor:ZlibCompressor",
        "BANK_CIPHER_KEY": KEY,
        "BANK_IS_SNAPSHOTTING_ENABLED": "yes",
        "IS_SNAPSHOTTING_ENABLED": "no",
    }
    bank = construct(env, "Bank")
    other = construct(env, "Other")
    assert bank.getenv("COMPRESSOR_TOPIC") == "zlib"
    assert other.getenv("COMPRESSOR_TOPIC") == env["COMPRESSOR_TOPIC"]
    assert other.getenv("MISSING", "default") == "default"
    assert bank.compressor("") is zlib
    assert type(other.compressor("")) is ZlibCompressor
    assert type(bank.cipher("")) is AESCipher
    assert other.cipher("") is None
    # An explicit application name overrides the factory's own.
    assert type(other.cipher("Bank")) is AESCipher
    assert other.getenv("CIPHER_KEY", application_name="bank") == KEY
    assert bank.is_snapshotting_enabled() is True
    assert other.is_snapshotting_enabled() is False

    mapper = bank.mapper(transcoder())
    assert mapper.compressor is zlib and type(mapper.cipher) is AESCipher
    stored = mapper.from_domain_event(deposited())
    # The other application reads without the key, so zlib sees ciphertext.
    with pytest.raises(zlib.error):
        other.mapper(transcoder()).to_domain_event(stored)


@pytest.mark.parametrize(
    "value, enabled",
    [("y", True), ("yes", True), ("True", True), ("1", True), ("on", True)]
    + [("n", False), ("no", False), ("false", False), ("0", False), ("OFF", False)],
)
def test_is_snapshotting_enabled(value: str, enabled: bool) -> None:
    factory = construct({"IS_SNAPSHOTTING_ENABLED": value})
    assert factory.is_snapshotting_enabled() is enabled


def test_is_snapshotting_enabled_rejects_other_values() -> None:
    factory = construct({"IS_SNAPSHOTTING_ENABLED": "perhaps"})
    with pytest.raises(ValueError, match="perhaps"):
        factory.is_snapshotting_enabled()


# Exceptions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, bases",
    [
        (PersistenceError, [Exception]),
        (InterfaceError, [PersistenceError]),
        (DatabaseError, [PersistenceError]),
        (DataError, [DatabaseError, PersistenceError]),
        (OperationalError, [DatabaseError, PersistenceError]),
        (IntegrityError, [DatabaseError, PersistenceError, RecordConflictError]),
        (InternalError, [DatabaseError, PersistenceError]),
        (ProgrammingError, [DatabaseError, PersistenceError]),
        (NotSupportedError, [DatabaseError, PersistenceError]),
        (RecordConflictError, [Exception]),
    ],
)
def test_exception_hierarchy(cls: type, bases: List[type]) -> None:
    for base in bases:
        assert issubclass(cls, base)
    assert cls.__module__ == "eventsourcing_rs.persistence"


def test_exception_hierarchy_exclusions() -> None:
    assert not issubclass(InterfaceError, DatabaseError)
    assert not issubclass(RecordConflictError, PersistenceError)
    for cls in (DataError, OperationalError, InternalError, ProgrammingError):
        assert not issubclass(cls, RecordConflictError)


# Event store -----------------------------------------------------------------


def make_store(mapper_cls: Type[Mapper] = Mapper) -> EventStore:
    return EventStore(mapper=make_mapper(mapper_cls), recorder=POPOApplicationRecorder())


def sequence(originator_id: UUID, count: int) -> List[Deposited]:
    return [
        deposited(
            originator_id=originator_id,
            version=v,
            amount=Decimal(v),
            timestamp=datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=v),
        )
        for v in range(1, count + 1)
    ]


def test_event_store_put_and_get(mapper_cls: Type[Mapper]) -> None:
    store = make_store(mapper_cls)
    a, b = uuid4(), uuid4()
    events_a = sequence(a, 5)
    events_b = sequence(b, 2)
    store.put(events_a[:3])
    store.put([events_b[0], events_a[3], events_b[1], events_a[4]])

    assert list(store.get(a)) == events_a
    assert list(store.get(b)) == events_b
    assert list(store.get(uuid4())) == []
    assert list(store.get(a, gt=2)) == events_a[2:]
    assert list(store.get(a, lte=2)) == events_a[:2]
    assert list(store.get(a, gt=1, lte=3)) == events_a[1:3]
    assert list(store.get(a, desc=True)) == events_a[::-1]
    assert list(store.get(a, desc=True, limit=2)) == events_a[:2:-1]
    assert list(store.get(a, limit=2)) == events_a[:2]
    assert list(store.get(a, desc=True, lte=3, limit=1)) == [events_a[2]]

    recorder = store.recorder
    assert isinstance(recorder, POPOApplicationRecorder)
    assert recorder.max_notification_id() == 7
    notifications = recorder.select_notifications(1, 10)
    assert [n.id for n in notifications] == [1, 2, 3, 4, 5, 6, 7]
    assert [(n.originator_id, n.originator_version) for n in notifications] == [
        (a, 1), (a, 2), (a, 3), (b, 1), (a, 4), (b, 2), (a, 5),
    ]  # fmt: skip


def test_event_store_put_returns_notification_ids() -> None:
    store = make_store()
    ids = store.put(sequence(uuid4(), 3))
    assert list(ids) == [1, 2, 3]


def test_conflicting_insert_writes_nothing_of_that_call() -> None:
    store = make_store()
    recorder = store.recorder
    assert isinstance(recorder, POPOApplicationRecorder)
    a, b = uuid4(), uuid4()
    events_a = sequence(a, 3)
    store.put(events_a[:2])

    def recorded() -> Any:
        return recorder.max_notification_id(), recorder.select_notifications(1, 10)

    before = recorded()

    # b's event and a's third come before the conflict in the same call.
    conflicting = deposited(originator_id=a, version=2, note="again")
    with pytest.raises(IntegrityError) as caught:
        store.put([sequence(b, 1)[0], events_a[2], conflicting])
    assert isinstance(caught.value, RecordConflictError)
    assert str(a) in str(caught.value)
    assert "2" in str(caught.value).replace(str(a), "")

    assert (
        recorder.max_notification_id(),
        recorder.select_notifications(1, 10),
    ) == before
    assert list(store.get(a)) == events_a[:2]
    assert list(store.get(b)) == []

    # The store still accepts the events that did not conflict.
    store.put([events_a[2]])
    assert list(store.get(a)) == events_a
    assert recorder.max_notification_id() == 3


def test_conflict_within_one_insert_writes_nothing() -> None:
    store = make_store()
    a = uuid4()
    first = deposited(originator_id=a, version=1)
    with pytest.raises(IntegrityError, match=str(a)):
        store.put([first, deposited(originator_id=a, version=1)])
    assert list(store.get(a)) == []
    assert isinstance(store.recorder, POPOApplicationRecorder)
    assert store.recorder.max_notification_id() == 0


def test_conflicting_tracking_record_writes_nothing() -> None:
    recorder = POPOProcessRecorder()
    store = EventStore(mapper=make_mapper(Mapper), recorder=recorder)
    a = uuid4()
    events = sequence(a, 2)
    store.put(events[:1], tracking=Tracking("upstream", 1))
    with pytest.raises(IntegrityError, match="upstream"):
        store.put(events[1:], tracking=Tracking("upstream", 1))
    assert list(store.get(a)) == events[:1]
    assert recorder.max_tracking_id("upstream") == 1
    assert recorder.max_notification_id() == 1


def test_aggregate_recorder_has_no_notifications() -> None:
    recorder = POPOFactory("App", {}).aggregate_recorder("snapshots")
    assert isinstance(recorder, AggregateRecorder)
    assert not isinstance(recorder, ApplicationRecorder)
    store = EventStore(mapper=make_mapper(Mapper), recorder=recorder)
    events = sequence(uuid4(), 2)
    store.put(events)
    assert list(store.get(events[0].originator_id)) == events


# The value types as 9.1's frozen dataclasses ------------------------------


def test_value_types_work_with_the_dataclasses_functions() -> None:
    import dataclasses

    stored = StoredEvent(uuid4(), 1, "a:B", b"{}")
    assert dataclasses.is_dataclass(stored)
    assert [f.name for f in dataclasses.fields(stored)] == [
        "originator_id",
        "originator_version",
        "topic",
        "state",
    ]
    assert dataclasses.asdict(stored)["state"] == b"{}"
    moved = dataclasses.replace(stored, originator_version=2)
    assert type(moved) is StoredEvent and moved.originator_version == 2
    notification = Notification(uuid4(), 1, "a:B", b"{}", 7)
    assert dataclasses.astuple(notification)[-1] == 7
    assert dataclasses.replace(notification, id=8).id == 8
    tracking = Tracking("Leader", 5, 4)
    assert dataclasses.asdict(tracking) == {
        "application_name": "Leader",
        "notification_id": 5,
        "previous_id": 4,
    }
    assert dataclasses.replace(tracking, notification_id=6) == Tracking("Leader", 6, 4)


@pytest.mark.parametrize("state", [bytearray(b"{}"), memoryview(b"{}")])
def test_a_state_given_as_a_bytes_like_object_is_stored_as_bytes(state: Any) -> None:
    # As a database client may give a binary column (psycopg2: memoryview).
    stored = StoredEvent(uuid4(), 1, "a:B", state)
    assert type(stored.state) is bytes and stored.state == b"{}"
    assert Notification(uuid4(), 1, "a:B", state, 1).state == b"{}"


def test_a_state_that_is_not_bytes_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="state must be bytes"):
        StoredEvent(uuid4(), 1, "a:B", "{}")


def test_the_value_types_can_be_subclassed() -> None:
    class Numbered(Notification):
        pass

    class Positioned(Tracking):
        pass

    numbered = Numbered(uuid4(), 1, "a:B", b"{}", 3)
    assert isinstance(numbered, Notification) and numbered.id == 3
    positioned = Positioned("Leader", 2)
    assert positioned.notification_id == 2
    # As dataclasses compare: equal only to one of the same type.
    assert positioned == Positioned("Leader", 2)
    assert positioned != Tracking("Leader", 2)
    assert repr(positioned).endswith(".Positioned(application_name='Leader', notification_id=2)")
