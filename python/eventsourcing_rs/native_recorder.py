"""Recorder classes that hand every call to a Rust recorder object.

The in-memory and SQLite recorders are implemented in Rust with one method
surface (``insert_events(stored_events, tracking)``, ``select_events``,
``select_notifications``, ``max_notification_id``, ``max_tracking_id``);
these classes adapt it to the recorder ABCs, so the Python classes users
see and subclass stay thin.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple
from uuid import UUID

from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    Notification,
    ProcessRecorder,
    StoredEvent,
)


class NativeAggregateRecorder(AggregateRecorder):
    """An aggregate recorder whose work is done by ``self._recorder``."""

    _recorder: Any

    def insert_events(
        self, stored_events: List[StoredEvent], **kwargs: Any
    ) -> Optional[Sequence[int]]:
        return self._recorder.insert_events(stored_events, kwargs.get("tracking"))

    def select_events(
        self,
        originator_id: UUID,
        gt: Optional[int] = None,
        lte: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> List[StoredEvent]:
        return self._recorder.select_events(originator_id, gt, lte, desc, limit)


class NativeApplicationRecorder(NativeAggregateRecorder, ApplicationRecorder):
    """An application recorder whose work is done by ``self._recorder``."""

    def select_notifications(self, start: int, limit: int) -> List[Notification]:
        return self._recorder.select_notifications(start, limit)

    def select_segment(
        self, start: int, scan: int, index: int, count: int
    ) -> Tuple[List[Notification], int]:
        """The notifications of segment ``index`` of ``count`` among the
        ``scan`` from ``start`` (filtered in Rust), and the id of the last
        one scanned."""
        return self._recorder.select_segment(start, scan, index, count)

    def max_notification_id(self) -> int:
        return self._recorder.max_notification_id()


class NativeProcessRecorder(NativeApplicationRecorder, ProcessRecorder):
    """A process recorder whose work is done by ``self._recorder``."""

    def max_tracking_id(self, application_name: str) -> int:
        return self._recorder.max_tracking_id(application_name)
