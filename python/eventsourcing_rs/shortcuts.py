"""Direct calls into the Rust recorders, taken only where stock classes are
in use.

The recorder, event store and notification log classes are thin: a call
passes through one or two Python methods before it reaches a Rust
recorder. On the hot paths (saving, pulling a leader's notifications,
recording a follower's batch) those layers cost more than the work itself.
Where an object's method is the stock one (its class does not override it
and no instance attribute shadows it), the hot paths call the Rust method
directly; whatever a user has customised keeps its Python path.

Callers work a shortcut out when they first need it and keep it while the
objects it was found for are in place (a method set on an instance after
that is seen for saves, which check each time, not for reads).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from eventsourcing_rs.native_recorder import (
    NativeAggregateRecorder,
    NativeApplicationRecorder,
    NativeProcessRecorder,
)
from eventsourcing_rs.persistence import EventStore, Notification, Tracking

Inserter = Callable[[List[Any], Optional[Tracking]], Any]


def _is_stock(obj: Any, base: type, name: str) -> bool:
    # Compares the methods themselves (an isinstance check against these
    # abstract classes would cost more than the shortcut saves).
    return getattr(type(obj), name, None) is getattr(base, name) and name not in getattr(
        obj, "__dict__", ()
    )


def _native(recorder: Any, base: type, name: str) -> Optional[Callable[..., Any]]:
    if not _is_stock(recorder, base, name):
        return None
    return getattr(recorder._recorder, name, None)


def inserter(event_store: Any) -> Optional[Inserter]:
    """``event_store.put(events, tracking=...)`` as one direct call, or
    None when the store or its recorder is customised."""
    if not _is_stock(event_store, EventStore, "put"):
        return None
    insert = _native(event_store.recorder, NativeAggregateRecorder, "insert_events")
    if insert is None:
        return None

    def put(events: List[Any], tracking: Optional[Tracking] = None) -> Any:
        to_stored = event_store.mapper.from_domain_event
        return insert([to_stored(e) for e in events], tracking)

    return put


def still_stock(event_store: Any) -> bool:
    """Whether what :func:`inserter` found is still so: neither ``put`` nor
    the recorder's ``insert_events`` has since been set on the instance."""
    return "put" not in event_store.__dict__ and "insert_events" not in getattr(
        event_store.recorder, "__dict__", ()
    )


def selector(log: Any, local_log_type: Any) -> Optional[Callable[[int, int], List[Notification]]]:
    """The Rust ``select_notifications(start, limit)`` behind a stock local
    notification log (of exactly ``local_log_type``), or None for any
    other log."""
    if type(log) is not local_log_type or "select" in log.__dict__:
        return None
    return _native(log.recorder, NativeApplicationRecorder, "select_notifications")


def tracking_reader(recorder: Any) -> Callable[[str], int]:
    """``recorder.max_tracking_id``, direct when the recorder is stock."""
    native = _native(recorder, NativeProcessRecorder, "max_tracking_id")
    return native if native is not None else recorder.max_tracking_id
