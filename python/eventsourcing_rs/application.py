"""Applications: the facade over an event store, a repository, snapshots
and a notification log."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    Generic,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
)
from uuid import UUID

from eventsourcing_rs import _core, shortcuts
from eventsourcing_rs.domain import (
    Aggregate,
    AggregateEvent,
    Snapshot,
    TAggregate,
)
from eventsourcing_rs.persistence import (
    ApplicationRecorder,
    DatetimeAsISO,
    DecimalAsStr,
    EventStore,
    InfrastructureFactory,
    JSONTranscoder,
    Mapper,
    Notification,
    Transcoder,
    UUIDAsHex,
)


class AggregateNotFound(Exception):
    """No aggregate has the requested id (at the requested version)."""


class Repository(Generic[TAggregate]):
    """Rebuilds aggregates from their events, starting from the latest
    snapshot when a snapshot store is given."""

    def __init__(
        self,
        event_store: EventStore[AggregateEvent],
        snapshot_store: Optional[EventStore[Snapshot]] = None,
    ):
        self.event_store = event_store
        self.snapshot_store = snapshot_store

    def get(self, aggregate_id: UUID, version: Optional[int] = None) -> TAggregate:
        """Returns the aggregate, as it was at ``version`` if given."""
        aggregate: Any = None
        gt: Optional[int] = None
        if self.snapshot_store is not None:
            for snapshot in self.snapshot_store.get(
                originator_id=aggregate_id, desc=True, limit=1, lte=version
            ):
                gt = snapshot.originator_version
                aggregate = snapshot.mutate()
        for domain_event in self.event_store.get(originator_id=aggregate_id, gt=gt, lte=version):
            aggregate = domain_event.mutate(aggregate)
        if aggregate is None:
            raise AggregateNotFound((aggregate_id, version))
        return aggregate


@dataclass(frozen=True)
class Section:
    """A section of a notification log.

    ``id`` is "first,last" for the notifications it holds (None when it
    holds none); ``next_id`` names the following section and is set only
    when the section was full.
    """

    id: Optional[str]
    items: List[Notification]
    next_id: Optional[str]


class NotificationLog(ABC):
    """A log of an application's event notifications, read by section or
    by ``select(start, limit)``."""

    @abstractmethod
    def __getitem__(self, section_id: str) -> Section:
        """Returns the section named by ``section_id`` ("first,last")."""

    @abstractmethod
    def select(self, start: int, limit: int) -> List[Notification]:
        """Returns up to ``limit`` notifications from id ``start``."""


class LocalNotificationLog(NotificationLog):
    """A notification log over an application recorder in this process.

    Section ids are parsed in Rust: a malformed one ("", "5", "1,2,3",
    "a,b", "-1,5", or an id beyond 2**63-1) raises ValueError naming it. A
    first id of 0 reads from the start of the log; a last id below the
    first names an empty section.
    """

    DEFAULT_SECTION_SIZE = 10

    def __init__(
        self,
        recorder: ApplicationRecorder,
        section_size: int = DEFAULT_SECTION_SIZE,
    ):
        self.recorder = recorder
        self.section_size = section_size

    def __getitem__(self, requested_section_id: str) -> Section:
        start, limit = _core.section_start_and_limit(requested_section_id, self.section_size)
        notifications = self.select(start, limit) if limit else []
        if not notifications:
            return Section(id=None, items=notifications, next_id=None)
        first = notifications[0].id
        last = notifications[-1].id
        next_id = None
        if len(notifications) == limit:
            next_id = self.format_section_id(last + 1, last + limit)
        return Section(
            id=self.format_section_id(first, last),
            items=notifications,
            next_id=next_id,
        )

    def select(self, start: int, limit: int) -> List[Notification]:
        if limit > self.section_size:
            raise ValueError(
                f"Requested limit {limit} greater than section size {self.section_size}"
            )
        return self.recorder.select_notifications(start, limit)

    @staticmethod
    def format_section_id(first_id: int, last_id: int) -> str:
        return _core.format_section_id(first_id, last_id)


# Marks an application whose save in Rust is yet to be made.
_UNMADE = object()


class Application(ABC, Generic[TAggregate]):
    """Base class for event-sourced applications.

    Configuration comes from the class attribute ``env``, then the process
    environment, then the ``env`` argument, later ones winning.
    """

    env: Mapping[str, str] = {}
    is_snapshotting_enabled: bool = False
    # The save in Rust (see save()); _UNMADE until the first save.
    _saving: Any = _UNMADE
    snapshotting_intervals: Optional[Dict[Type[Aggregate], int]] = None

    def __init__(self, env: Optional[Mapping[str, str]] = None) -> None:
        self.env = self.construct_env(env)
        self.factory = self.construct_factory()
        self.mapper = self.construct_mapper()
        self.recorder = self.construct_recorder()
        self.events = self.construct_event_store()
        self.snapshots = self.construct_snapshot_store()
        self.repository = self.construct_repository()
        self.log = self.construct_notification_log()

    def construct_env(self, env: Optional[Mapping[str, str]] = None) -> Mapping[str, str]:
        """Merges the class's env, the process environment and ``env``."""
        merged = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            merged["IS_SNAPSHOTTING_ENABLED"] = "y"
        merged.update(os.environ)
        if env is not None:
            merged.update(env)
        return merged

    def construct_factory(self) -> InfrastructureFactory:
        return InfrastructureFactory.construct(type(self).__name__, env=self.env)

    def construct_mapper(self, application_name: str = "") -> Mapper:
        return self.factory.mapper(
            transcoder=self.construct_transcoder(),
            application_name=application_name,
        )

    def construct_transcoder(self) -> Transcoder:
        transcoder = JSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: Transcoder) -> None:
        """Registers the transcodings the application's events need;
        override to add your own (call super() to keep the standard ones)."""
        transcoder.register(UUIDAsHex())
        transcoder.register(DecimalAsStr())
        transcoder.register(DatetimeAsISO())

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.application_recorder()

    def construct_event_store(self) -> EventStore[AggregateEvent]:
        return self.factory.event_store(mapper=self.mapper, recorder=self.recorder)

    def construct_snapshot_store(self) -> Optional[EventStore[Snapshot]]:
        if not self.factory.is_snapshotting_enabled():
            return None
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return self.factory.event_store(mapper=self.mapper, recorder=recorder)

    def construct_repository(self) -> Repository[TAggregate]:
        return Repository(event_store=self.events, snapshot_store=self.snapshots)

    def construct_notification_log(self) -> LocalNotificationLog:
        return LocalNotificationLog(self.recorder, section_size=10)

    def save(self, *aggregates: Aggregate, **kwargs: Any) -> None:
        """Records the pending events of ``aggregates`` in one insert, takes
        any snapshots the intervals call for, then calls :func:`notify`."""
        if not kwargs:
            # All of it in Rust while the methods on its path are the stock
            # ones (see shortcuts.application_save): made on the first save,
            # made again if it no longer applies, None if it cannot.
            saving = self._saving
            if saving is not None:
                if saving is not _UNMADE and saving.run(aggregates):
                    return
                self._saving = saving = shortcuts.application_save(self)
                if saving is not None:
                    if saving.run(aggregates):
                        return
                    self._saving = None
        events: List[AggregateEvent] = []
        for aggregate in aggregates:
            events += aggregate.collect_events()
        self.events.put(events, **kwargs)
        if self.snapshots is not None and self.snapshotting_intervals:
            self._take_due_snapshots(aggregates, events)
        self.notify(events)

    def _take_due_snapshots(
        self, aggregates: Sequence[Aggregate], events: Sequence[AggregateEvent]
    ) -> None:
        assert self.snapshotting_intervals is not None
        types = {a.id: type(a) for a in aggregates}
        for event in events:
            interval = self.snapshotting_intervals.get(types[event.originator_id])
            if interval is not None and event.originator_version % interval == 0:
                self.take_snapshot(event.originator_id, event.originator_version)

    def notify(self, new_events: List[AggregateEvent]) -> None:
        """Called after new events are recorded; does nothing here, and
        is extended by leaders to prompt their followers."""

    def _notify_mode(self) -> Tuple[str, Optional[List[Any]], Any]:
        """How a save or pull run in Rust notifies for this application:
        ("nothing", None, None) while its notify is Application's alone
        (none on the instance either), else ("method", None, None), calling
        it. Leaders extend it."""
        notifies = _definitions(type(self), "notify")
        if notifies == [_APPLICATION_NOTIFY] and "notify" not in vars(self):
            return ("nothing", None, None)
        return ("method", None, None)

    def take_snapshot(self, aggregate_id: UUID, version: Optional[int] = None) -> None:
        """Records a snapshot of the aggregate (at ``version`` if given)."""
        if self.snapshots is None:
            raise AssertionError(
                "Can't take snapshot without snapshots store. Please "
                "set environment variable IS_SNAPSHOTTING_ENABLED to "
                "a true value (e.g. 'y'), or set 'is_snapshotting_enabled' "
                "on application class, or set 'snapshotting_intervals' on "
                "application class."
            )
        aggregate: Aggregate = self.repository.get(aggregate_id, version)
        self.snapshots.put([Snapshot.take(aggregate)])


_APPLICATION_NOTIFY = Application.notify


def _definitions(cls: type, name: str) -> List[Any]:
    """What ``cls`` and each of its bases define as ``name`` in their own
    namespace, in method resolution order: which methods an override
    chain through ``super()`` would reach."""
    return [c.__dict__[name] for c in cls.__mro__ if name in c.__dict__]


TApplication = TypeVar("TApplication", bound=Application)

__all__ = [
    "AggregateNotFound",
    "Application",
    "LocalNotificationLog",
    "NotificationLog",
    "Repository",
    "Section",
    "TApplication",
]
