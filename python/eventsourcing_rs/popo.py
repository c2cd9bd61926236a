"""In-memory ("plain old Python objects") persistence, the default.

The recorders keep their events in a Rust store behind a lock; they are
safe to use from many threads, and live as long as the recorder object.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence
from uuid import UUID

from eventsourcing_rs import _core
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)


class POPOAggregateRecorder(AggregateRecorder):
    """Records aggregates' stored events in memory."""

    def __init__(self) -> None:
        self._store = _core.MemoryRecorder()

    def insert_events(
        self, stored_events: List[StoredEvent], **kwargs: Any
    ) -> Optional[Sequence[int]]:
        tracking: Optional[Tracking] = kwargs.get("tracking")
        return self._store.insert_events(stored_events, tracking)

    def select_events(
        self,
        originator_id: UUID,
        gt: Optional[int] = None,
        lte: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> List[StoredEvent]:
        return self._store.select_events(originator_id, gt, lte, desc, limit)


class POPOApplicationRecorder(POPOAggregateRecorder, ApplicationRecorder):
    """Records stored events in memory, numbered as notifications."""

    def select_notifications(self, start: int, limit: int) -> List[Notification]:
        return self._store.select_notifications(start, limit)

    def max_notification_id(self) -> int:
        return self._store.max_notification_id()


class POPOProcessRecorder(POPOApplicationRecorder, ProcessRecorder):
    """Records stored events and tracking records in memory."""

    def max_tracking_id(self, application_name: str) -> int:
        return self._store.max_tracking_id(application_name)


class Factory(InfrastructureFactory):
    """Builds in-memory recorders."""

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return POPOAggregateRecorder()

    def application_recorder(self) -> ApplicationRecorder:
        return POPOApplicationRecorder()

    def process_recorder(self) -> ProcessRecorder:
        return POPOProcessRecorder()
