"""In-memory ("plain old Python objects") persistence, the default.

The recorders keep their events in a Rust store behind a lock; they are
safe to use from many threads, and live as long as the recorder object.
"""

from __future__ import annotations

from eventsourcing_rs import _core
from eventsourcing_rs.native_recorder import (
    NativeAggregateRecorder,
    NativeApplicationRecorder,
    NativeProcessRecorder,
)
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)


class POPOAggregateRecorder(NativeAggregateRecorder):
    """Records aggregates' stored events in memory."""

    def __init__(self) -> None:
        self._recorder = _core.MemoryRecorder()


class POPOApplicationRecorder(POPOAggregateRecorder, NativeApplicationRecorder):
    """Records stored events in memory, numbered as notifications."""


class POPOProcessRecorder(POPOApplicationRecorder, NativeProcessRecorder):
    """Records stored events and tracking records in memory."""


class Factory(InfrastructureFactory):
    """Builds in-memory recorders."""

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return POPOAggregateRecorder()

    def application_recorder(self) -> ApplicationRecorder:
        return POPOApplicationRecorder()

    def process_recorder(self) -> ProcessRecorder:
        return POPOProcessRecorder()
