"""Application end to end over the in-memory store: saving, the repository,
snapshots, configuration by environment, transcodings and the notification
log."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional
from uuid import UUID, uuid4

import pytest
from eventsourcing_rs.application import (
    AggregateNotFound,
    Application,
    LocalNotificationLog,
    Repository,
    Section,
)
from eventsourcing_rs.cipher import AESCipher
from eventsourcing_rs.domain import Aggregate, Snapshot, event
from eventsourcing_rs.persistence import (
    Notification,
    StoredEvent,
    Transcoder,
    Transcoding,
)
from eventsourcing_rs.popo import Factory as POPOFactory
from eventsourcing_rs.popo import POPOApplicationRecorder

CONFIG_KEYS = [
    "INFRASTRUCTURE_FACTORY",
    "IS_SNAPSHOTTING_ENABLED",
    "CIPHER_KEY",
    "CIPHER_TOPIC",
    "COMPRESSOR_TOPIC",
    "PRECEDENCE_PROBE",
]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests configure applications themselves."""
    for name in list(os.environ):
        if any(name == key or name.endswith("_" + key) for key in CONFIG_KEYS):
            monkeypatch.delenv(name)


class Account(Aggregate):
    @event("Opened")
    def __init__(self, owner: str):
        self.owner = owner
        self.balance = Decimal("0")
        self.history: List[str] = []

    @event("Credited")
    def credit(self, amount: Decimal, memo: str = "") -> None:
        self.balance += amount
        self.history.append(memo)


class Bank(Application):
    pass


def open_account(app: Application, credits: int = 0) -> Account:
    account = Account(owner="Ada")
    for i in range(credits):
        account.credit(Decimal(i + 1), memo=f"credit {i + 1}")
    app.save(account)
    return account


def state_of(account: Account) -> Dict[str, Any]:
    return {
        "id": account.id,
        "version": account.version,
        "owner": account.owner,
        "balance": account.balance,
        "history": account.history,
        "created_on": account.created_on,
        "modified_on": account.modified_on,
    }


# Saving and getting ----------------------------------------------------------


def test_save_and_get() -> None:
    app = Bank()
    account = open_account(app, credits=3)
    assert account.version == 4
    assert account.pending_events == []

    copy = app.repository.get(account.id)
    assert type(copy) is Account
    assert copy is not account
    assert state_of(copy) == state_of(account)
    assert copy.balance == Decimal("6")

    # Saving more events of the same aggregate appends to its sequence.
    account.credit(Decimal("0.25"))
    app.save(account)
    assert app.repository.get(account.id).balance == Decimal("6.25")
    assert app.recorder.max_notification_id() == 5


def test_get_at_a_version() -> None:
    app = Bank()
    account = open_account(app, credits=3)
    for version, balance in [(1, "0"), (2, "1"), (3, "3"), (4, "6"), (99, "6")]:
        copy = app.repository.get(account.id, version=version)
        assert copy.version == min(version, 4)
        assert copy.balance == Decimal(balance)


def test_aggregate_not_found() -> None:
    app = Bank()
    missing = uuid4()
    with pytest.raises(AggregateNotFound) as caught:
        app.repository.get(missing)
    assert str(missing) in str(caught.value)
    account = open_account(app)
    with pytest.raises(AggregateNotFound):
        app.repository.get(account.id, version=0)


def test_save_several_aggregates_in_one_call() -> None:
    app = Bank()
    first, second = Account(owner="a"), Account(owner="b")
    second.credit(Decimal("2"))
    app.save(first, second)
    assert app.repository.get(first.id).owner == "a"
    assert app.repository.get(second.id).balance == Decimal("2")
    notifications = app.log.select(1, 10)
    assert [(n.originator_id, n.originator_version) for n in notifications] == [
        (first.id, 1),
        (second.id, 1),
        (second.id, 2),
    ]


def test_failed_save_records_nothing() -> None:
    app = Bank()
    account = open_account(app)
    stale = app.repository.get(account.id)
    account.credit(Decimal("1"))
    app.save(account)
    other = Account(owner="b")
    stale.credit(Decimal("5"))  # version 2 again: conflicts
    with pytest.raises(Exception, match=str(account.id)):
        app.save(other, stale)
    assert app.recorder.max_notification_id() == 2
    with pytest.raises(AggregateNotFound):
        app.repository.get(other.id)
    assert app.repository.get(account.id).balance == Decimal("1")


def test_notify_is_called_with_the_new_events() -> None:
    seen: List[Any] = []

    class Watched(Application):
        def notify(self, new_events: List[Any]) -> None:
            seen.append([(e.originator_id, e.originator_version) for e in new_events])

    app = Watched()
    account = open_account(app, credits=1)
    assert seen == [[(account.id, 1), (account.id, 2)]]


# Snapshotting ----------------------------------------------------------------


def spy_on_event_store_get(app: Application) -> List[Dict[str, Any]]:
    calls: List[Dict[str, Any]] = []
    original = app.events.get

    def get(originator_id: UUID, **kwargs: Any) -> Iterator[Any]:
        calls.append(kwargs)
        return original(originator_id, **kwargs)

    app.events.get = get  # type: ignore[method-assign, assignment]
    return calls


def test_snapshotting_disabled_by_default() -> None:
    app = Bank()
    assert app.snapshots is None
    account = open_account(app)
    with pytest.raises(AssertionError, match="IS_SNAPSHOTTING_ENABLED"):
        app.take_snapshot(account.id)


@pytest.mark.parametrize("where", ["constructor", "os.environ", "class env"])
def test_snapshotting_enabled_by_environment(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "constructor":
        app = Bank(env={"IS_SNAPSHOTTING_ENABLED": "y"})
    elif where == "os.environ":
        monkeypatch.setenv("BANK_IS_SNAPSHOTTING_ENABLED", "yes")
        app = Bank()
    else:

        class Configured(Bank):
            env = {"IS_SNAPSHOTTING_ENABLED": "true"}

        app = Configured()
    assert app.snapshots is not None

    account = open_account(app, credits=2)
    app.take_snapshot(account.id)
    snapshots = list(app.snapshots.get(account.id))
    assert len(snapshots) == 1
    assert type(snapshots[0]) is Snapshot
    assert snapshots[0].originator_version == 3
    # Snapshots have their own store: the notification log holds events only.
    assert app.recorder.max_notification_id() == 3

    account.credit(Decimal("10"))
    app.save(account)
    calls = spy_on_event_store_get(app)
    copy = app.repository.get(account.id)
    assert calls[-1]["gt"] == 3  # only the events after the snapshot are read
    assert state_of(copy) == state_of(account)
    # Asking for a version before the snapshot reads the events.
    earlier = app.repository.get(account.id, version=2)
    assert calls[-1]["gt"] is None
    assert earlier.balance == Decimal("1")


def test_snapshot_at_a_version() -> None:
    app = Bank(env={"IS_SNAPSHOTTING_ENABLED": "y"})
    account = open_account(app, credits=3)
    app.take_snapshot(account.id, version=2)
    assert app.snapshots is not None
    (snapshot,) = app.snapshots.get(account.id)
    assert snapshot.originator_version == 2
    assert app.repository.get(account.id).balance == Decimal("6")
    assert app.repository.get(account.id, version=2).balance == Decimal("1")


def test_a_snapshot_stored_by_the_reference_library_is_read() -> None:
    # 9.1 stores its snapshots under the topic of its own Snapshot class.
    app = Bank(env={"IS_SNAPSHOTTING_ENABLED": "y"})
    account = open_account(app, credits=3)
    app.take_snapshot(account.id)
    assert app.snapshots is not None
    recorder = app.snapshots.recorder
    (ours,) = recorder.select_events(account.id)
    assert ours.topic == "eventsourcing_rs.domain:Snapshot"
    theirs = Bank(env={"IS_SNAPSHOTTING_ENABLED": "y"})
    theirs.recorder.insert_events(app.recorder.select_events(account.id))
    assert theirs.snapshots is not None
    theirs.snapshots.recorder.insert_events(
        [
            StoredEvent(
                originator_id=ours.originator_id,
                originator_version=ours.originator_version,
                topic="eventsourcing.domain:Snapshot",
                state=ours.state,
            )
        ]
    )
    calls = spy_on_event_store_get(theirs)
    assert theirs.repository.get(account.id).balance == account.balance
    assert calls[-1]["gt"] == ours.originator_version


def test_snapshotting_enabled_by_class_attribute() -> None:
    class Snapshotting(Bank):
        is_snapshotting_enabled = True

    app = Snapshotting()
    assert app.snapshots is not None
    # The constructor's env has the last word.
    assert Snapshotting(env={"IS_SNAPSHOTTING_ENABLED": "no"}).snapshots is None


def test_snapshotting_intervals() -> None:
    class Snapshotting(Bank):
        snapshotting_intervals = {Account: 2}

    app = Snapshotting()
    assert app.snapshots is not None
    account = Account(owner="x")
    app.save(account)  # version 1
    account.credit(Decimal(1))
    account.credit(Decimal(1))
    app.save(account)  # versions 2, 3
    for _ in range(3):
        account.credit(Decimal(1))
        app.save(account)  # 4, 5, 6
    other = open_account(app)  # another aggregate: version 1 only
    versions = [s.originator_version for s in app.snapshots.get(account.id)]
    assert versions == [2, 4, 6]
    assert list(app.snapshots.get(other.id)) == []
    balances = [
        s.mutate().balance
        for s in app.snapshots.get(account.id)  # type: ignore[attr-defined]
    ]
    assert balances == [Decimal(1), Decimal(3), Decimal(5)]
    assert state_of(app.repository.get(account.id)) == state_of(account)


def test_intervals_ignore_other_aggregate_types() -> None:
    class Other(Aggregate):
        @event("Poked")
        def poke(self) -> None:
            pass

    class Snapshotting(Bank):
        snapshotting_intervals = {Other: 1}

    app = Snapshotting()
    assert app.snapshots is not None
    account = open_account(app, credits=3)
    assert list(app.snapshots.get(account.id)) == []
    other = Other()
    other.poke()
    app.save(other)
    assert [s.originator_version for s in app.snapshots.get(other.id)] == [1, 2]


# Environment -----------------------------------------------------------------


def test_env_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    class Configured(Bank):
        env = {"PRECEDENCE_PROBE": "class", "CLASS_ONLY": "class"}

    assert Configured().env["PRECEDENCE_PROBE"] == "class"
    monkeypatch.setenv("PRECEDENCE_PROBE", "environ")
    app = Configured()
    assert app.env["PRECEDENCE_PROBE"] == "environ"
    assert app.env["CLASS_ONLY"] == "class"
    app = Configured(env={"PRECEDENCE_PROBE": "constructor"})
    assert app.env["PRECEDENCE_PROBE"] == "constructor"
    # The class's own mapping is left as it was.
    assert Configured.env == {"PRECEDENCE_PROBE": "class", "CLASS_ONLY": "class"}


def test_env_precedence_applies_to_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Configured(Bank):
        env = {"IS_SNAPSHOTTING_ENABLED": "y"}

    assert Configured().snapshots is not None
    monkeypatch.setenv("IS_SNAPSHOTTING_ENABLED", "n")
    assert Configured().snapshots is None
    assert Configured(env={"IS_SNAPSHOTTING_ENABLED": "y"}).snapshots is not None


def test_factory_chosen_and_prefixed_by_application_name() -> None:
    key = AESCipher.create_key(16)
    app = Bank(env={"BANK_CIPHER_KEY": key, "OTHER_CIPHER_KEY": "unused"})
    assert type(app.factory) is POPOFactory
    assert app.factory.application_name == "Bank"
    assert type(app.mapper.cipher) is AESCipher
    assert isinstance(app.recorder, POPOApplicationRecorder)
    account = open_account(app, credits=1)
    (notification, _) = app.log.select(1, 2)
    assert b"Ada" not in notification.state
    assert app.repository.get(account.id).balance == Decimal("1")


def test_compressed_and_encrypted_application() -> None:
    app = Bank(
        env={
            "COMPRESSOR_TOPIC": "eventsourcing_rs.compressor:ZlibCompressor",
            "CIPHER_KEY": AESCipher.create_key(32),
            "IS_SNAPSHOTTING_ENABLED": "y",
        }
    )
    account = open_account(app, credits=2)
    app.take_snapshot(account.id)
    assert state_of(app.repository.get(account.id)) == state_of(account)


def test_unknown_factory_topic_fails_construction() -> None:
    with pytest.raises(EnvironmentError, match="nowhere:Factory"):
        Bank(env={"INFRASTRUCTURE_FACTORY": "nowhere:Factory"})


# Transcodings ----------------------------------------------------------------


class Money:
    def __init__(self, amount: Decimal, currency: str):
        self.amount = amount
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Money({self.amount!r}, {self.currency!r})"


class MoneyAsDict(Transcoding):
    type = Money
    name = "money"

    def encode(self, obj: Money) -> Dict[str, Any]:
        return {"amount": obj.amount, "currency": obj.currency}

    def decode(self, data: Dict[str, Any]) -> Money:
        return Money(**data)


class Wallet(Aggregate):
    @event("Created")
    def __init__(self, limit: Money):
        self.limit = limit
        self.payments: List[Money] = []

    @event("Paid")
    def pay(self, money: Money) -> None:
        self.payments.append(money)


class Payments(Application):
    def register_transcodings(self, transcoder: Transcoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(MoneyAsDict())


def test_register_transcodings_for_a_custom_type() -> None:
    app = Payments()
    wallet = Wallet(limit=Money(Decimal("100"), "EUR"))
    wallet.pay(Money(Decimal("9.99"), "GBP"))
    app.save(wallet)
    copy = app.repository.get(wallet.id)
    assert copy.limit == Money(Decimal("100"), "EUR")
    assert copy.payments == [Money(Decimal("9.99"), "GBP")]
    (created, _) = app.log.select(1, 2)
    assert b'{"_type_": "money", "_data_": {"amount": {"_type_": "decimal_str"' in (created.state)


def test_unregistered_custom_type_fails_save_and_records_nothing() -> None:
    app = Bank()
    wallet = Wallet(limit=Money(Decimal("1"), "EUR"))
    with pytest.raises(TypeError, match="Money"):
        app.save(wallet)
    assert app.recorder.max_notification_id() == 0


def test_without_the_standard_transcodings_decimals_cannot_be_saved() -> None:
    class Bare(Application):
        def register_transcodings(self, transcoder: Transcoder) -> None:
            pass

    with pytest.raises(TypeError):
        open_account(Bare())


# Notification log --------------------------------------------------------------


@pytest.fixture
def app_with_13_events() -> Application:
    app = Bank()
    open_account(app, credits=4)  # 5 events
    open_account(app, credits=7)  # 8 events
    assert app.recorder.max_notification_id() == 13
    return app


def ids_of(section: Section) -> List[int]:
    return [n.id for n in section.items]


@pytest.mark.parametrize(
    "requested, section_id, first, last, next_id",
    [
        ("1,10", "1,10", 1, 10, "11,20"),
        ("11,20", "11,13", 11, 13, None),
        ("3,7", "3,7", 3, 7, "8,12"),
        ("0,9", "1,9", 1, 9, "10,18"),
        ("1,1000", "1,10", 1, 10, "11,20"),
        ("13,13", "13,13", 13, 13, "14,14"),
        ("12,15", "12,13", 12, 13, None),
    ],
)
def test_sections(
    app_with_13_events: Application,
    requested: str,
    section_id: str,
    first: int,
    last: int,
    next_id: Optional[str],
) -> None:
    section = app_with_13_events.log[requested]
    assert isinstance(section, Section)
    assert section.id == section_id
    assert ids_of(section) == list(range(first, last + 1))
    assert section.next_id == next_id
    assert all(type(n) is Notification for n in section.items)


@pytest.mark.parametrize("requested", ["14,20", "3,2", "100,200", "0,0"])
def test_empty_sections(app_with_13_events: Application, requested: str) -> None:
    section = app_with_13_events.log[requested]
    assert section == Section(id=None, items=[], next_id=None)


def test_empty_log() -> None:
    section = Bank().log["1,10"]
    assert section.id is None and section.items == [] and section.next_id is None


def test_following_next_ids_reads_every_notification(
    app_with_13_events: Application,
) -> None:
    seen: List[int] = []
    next_id: Optional[str] = "1,10"
    while next_id is not None:
        section = app_with_13_events.log[next_id]
        seen += ids_of(section)
        next_id = section.next_id
    assert seen == list(range(1, 14))


def test_notifications_map_back_to_events(app_with_13_events: Application) -> None:
    app = app_with_13_events
    events = [app.mapper.to_domain_event(n) for n in app.log["1,10"].items]
    assert [type(e).__name__ for e in events[:2]] == ["Opened", "Credited"]
    assert events[1].amount == Decimal(1)


@pytest.mark.parametrize(
    "section_id",
    ["", "5", "1,2,3", "a,b", "-1,5", "1,99999999999999999999", "1,", ",1", "1.5,2"],
)
def test_malformed_section_ids(
    app_with_13_events: Application,
    section_id: str,
) -> None:
    with pytest.raises(ValueError) as caught:
        app_with_13_events.log[section_id]
    assert repr(section_id) in str(caught.value)


def test_select(app_with_13_events: Application) -> None:
    log = app_with_13_events.log
    assert [n.id for n in log.select(5, 3)] == [5, 6, 7]
    assert [n.id for n in log.select(1, 10)] == list(range(1, 11))
    assert [n.id for n in log.select(12, 10)] == [12, 13]
    assert [n.id for n in log.select(0, 2)] == [1, 2]
    assert log.select(14, 10) == []


def test_select_limit_greater_than_section_size(
    app_with_13_events: Application,
) -> None:
    with pytest.raises(ValueError, match="11") as caught:
        app_with_13_events.log.select(1, 11)
    assert "10" in str(caught.value)


def test_custom_section_size(app_with_13_events: Application) -> None:
    log = LocalNotificationLog(app_with_13_events.recorder, section_size=5)
    section = log["1,10"]
    assert (section.id, section.next_id) == ("1,5", "6,10")
    assert ids_of(log["11,20"]) == [11, 12, 13]
    with pytest.raises(ValueError):
        log.select(1, 6)
    assert LocalNotificationLog.DEFAULT_SECTION_SIZE == 10
    assert LocalNotificationLog.format_section_id(3, 12) == "3,12"


def test_repository_without_snapshot_store() -> None:
    app = Bank()
    account = open_account(app, credits=1)
    repository: Repository[Account] = Repository(app.events)
    assert repository.snapshot_store is None
    assert state_of(repository.get(account.id)) == state_of(account)
