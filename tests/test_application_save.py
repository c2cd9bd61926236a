"""Application.save in Rust (ApplicationSave): taken while the methods on
its path are the stock ones, on either Rust recorder, and left for
whatever a user customises, before or after the first save."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, List

import pytest
from eventsourcing_rs import _core
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.persistence import EventStore, Tracking
from eventsourcing_rs.system import ProcessApplication, ProcessEvent

from tests.cpython_switch import needs_shortcuts
from tests.test_application import Account, Bank, clean_environ, open_account
from tests.test_follower_pull import python_calls_during

__all__ = ["clean_environ"]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        monkeypatch.setenv("INFRASTRUCTURE_FACTORY", "eventsourcing_rs.sqlite:Factory")
        monkeypatch.setenv("SQLITE_DBNAME", str(tmp_path / "bank.db"))
    return str(request.param)


def versions(app: Application) -> List[int]:
    return [n.originator_version for n in app.recorder.select_notifications(1, 100)]


@needs_shortcuts
def test_a_stock_application_saves_in_rust(store: str) -> None:
    app = Bank()
    account = open_account(app, credits=2)
    assert type(app._saving) is _core.ApplicationSave
    other = Account(owner="Bo")
    app.save(account, other)  # nothing pending on account: only other's event
    assert versions(app) == [1, 2, 3, 1]
    assert account.pending_events == [] and other.pending_events == []
    copy = app.repository.get(account.id)
    assert (copy.balance, copy.history) == (Decimal("3"), ["credit 1", "credit 2"])


COLLECTED: List[int] = []


class Audited(Aggregate):
    @event("Opened")
    def __init__(self, owner: str):
        self.owner = owner

    @event("Renamed")
    def rename(self, owner: str) -> None:
        self.owner = owner

    def collect_events(self) -> List[AggregateEvent]:
        events = super().collect_events()
        COLLECTED.append(len(events))
        return events


def test_an_aggregates_own_collect_events_is_called() -> None:
    COLLECTED.clear()
    app = Bank()
    audited = Audited(owner="Cy")
    audited.rename(owner="Cyd")
    app.save(audited, Account(owner="Di"))
    assert COLLECTED == [2]
    assert versions(app) == [1, 2, 1]


def test_an_applications_own_notify_is_called_after_the_first_save() -> None:
    app = Bank()
    open_account(app)
    seen: List[int] = []
    app.notify = lambda new_events: seen.append(len(new_events))  # type: ignore[method-assign]
    open_account(app, credits=1)
    assert seen == [2]


def test_a_put_set_on_the_event_store_is_called() -> None:
    app = Bank()
    open_account(app)
    puts: List[int] = []
    original = app.events.put

    def put(events: List[Any], **kwargs: Any) -> Any:
        puts.append(len(events))
        return original(events, **kwargs)

    app.events.put = put  # type: ignore[method-assign]
    open_account(app)
    assert puts == [1]
    assert app.recorder.max_notification_id() == 2


def test_an_insert_patched_on_the_recorder_class_is_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = Bank()
    open_account(app)
    inserts: List[int] = []
    recorder_class = type(app.recorder)
    original = recorder_class.insert_events

    def insert_events(self: Any, stored_events: List[Any], **kwargs: Any) -> Any:
        inserts.append(len(stored_events))
        return original(self, stored_events, **kwargs)

    monkeypatch.setattr(recorder_class, "insert_events", insert_events)
    open_account(app, credits=2)
    assert inserts == [3]


class LoggingStore(EventStore):
    puts = 0

    def put(self, events: Any, **kwargs: Any) -> Any:
        LoggingStore.puts += 1
        return super().put(events, **kwargs)


class LoggingBank(Application):
    def construct_event_store(self) -> EventStore[AggregateEvent]:
        return LoggingStore(mapper=self.mapper, recorder=self.recorder)


def test_a_customised_event_store_takes_the_python_path() -> None:
    LoggingStore.puts = 0
    app = LoggingBank()
    open_account(app)
    open_account(app)
    assert LoggingStore.puts == 2
    assert app._saving is None


def test_snapshots_on_save_take_the_python_path() -> None:
    class Snapshotting(Application):
        snapshotting_intervals = {Account: 2}

    app = Snapshotting()
    account = open_account(app, credits=3)
    assert app._saving is None
    assert app.snapshots is not None
    assert [s.originator_version for s in app.snapshots.get(account.id)] == [2, 4]


def test_keyword_arguments_go_to_the_event_store() -> None:
    class Tracked(ProcessApplication):
        def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
            pass

    app = Tracked()
    open_account(app)
    app.save(Account(owner="Ed"), tracking=Tracking("Elsewhere", 4))
    assert app.recorder.max_tracking_id("Elsewhere") == 4
    assert app.recorder.max_notification_id() == 2


@needs_shortcuts
def test_a_stock_save_calls_no_python_of_the_store_or_recorder() -> None:
    app = Bank()
    open_account(app)
    called = python_calls_during(lambda: open_account(app, credits=1))
    assert "open_account" in called
    for name in ("EventStore.put", "NativeAggregateRecorder.insert_events", "Application.notify"):
        assert name not in called
    assert app.recorder.max_notification_id() == 3


def test_an_aggregate_with_collect_events_on_the_instance_is_collected_through_it() -> None:
    app = Bank()
    account = Account(owner="Fay")
    other = Account(owner="Gus")
    taken = other.collect_events()
    other.collect_events = lambda: taken  # type: ignore[method-assign]
    app.save(account, other)
    assert versions(app) == [1, 1]
    assert app.repository.get(other.id).owner == "Gus"


class StoreWithoutRecorder:
    """An event store of the application's own, not built on EventStore."""

    def __init__(self, inner: EventStore[AggregateEvent]):
        self.inner = inner
        self.put_calls = 0

    def put(self, events: Any, **kwargs: Any) -> Any:
        self.put_calls += 1
        return self.inner.put(events, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get(*args, **kwargs)


def test_an_event_store_without_a_recorder_attribute_saves_through_its_put() -> None:
    class OwnStore(Application):
        def construct_event_store(self) -> Any:
            return StoreWithoutRecorder(super().construct_event_store())

    app = OwnStore()
    open_account(app)
    open_account(app)
    assert app.events.put_calls == 2
    assert app.recorder.max_notification_id() == 2


def test_intervals_changed_in_place_are_honoured() -> None:
    class Snapshotting(Application):
        is_snapshotting_enabled = True

    app = Snapshotting()
    app.snapshotting_intervals = {}
    account = open_account(app)
    app.snapshotting_intervals[Account] = 1
    account.credit(Decimal("1"))
    app.save(account)
    assert app.snapshots is not None
    assert [s.originator_version for s in app.snapshots.get(account.id)] == [2]
