"""Direct calls into the Rust recorders, taken only where stock classes are
in use.

The notification log and recorder classes are thin: a call passes through
one or two Python methods before it reaches a Rust recorder. A follower
pulling a leader in the same process would pay those layers on every pull
(twice: reading the leader, recording what it made of it), and with the
single-threaded runner a pull usually carries one notification. Where an
object's method is the stock one (its class does not override it and no
instance attribute shadows it), the follower calls the Rust method
directly; whatever a user has customised keeps its Python path.

The follower works a shortcut out on its first pull from a leader and keeps
it while the log and recorder it was found for are in place.

A follower's insert (events with a tracking record) goes straight to the
Rust recorder as well, the shortcut checked on each batch. Saving and
reading aggregates take no shortcut: checking, on each call, that one
still applies costs as much as the layers it would skip there.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from eventsourcing_rs.native_recorder import (
    NativeAggregateRecorder,
    NativeApplicationRecorder,
    NativeProcessRecorder,
)
from eventsourcing_rs.persistence import EventStore, Notification


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


def native_insert(event_store: Any) -> Optional[Callable[[List[Any], Any], Any]]:
    """The Rust ``insert_events(stored_events, tracking)`` that a stock
    ``event_store.put`` ends in, or None when the store or its recorder is
    customised."""
    if not _is_stock(event_store, EventStore, "put"):
        return None
    return _native(event_store.recorder, NativeAggregateRecorder, "insert_events")


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
