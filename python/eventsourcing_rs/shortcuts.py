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

A follower's insert (events with a tracking record) goes straight to the
Rust recorder as well. The shortcuts are found afresh on each pull (and
each batch), so that a method replaced on an instance or patched on a
class since the last one, as tests injecting failures do, is honoured.
Saving and reading aggregates take no shortcut: there, checking on each
call that one still applies costs as much as the layers it would skip.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from eventsourcing_rs.native_recorder import (
    NativeAggregateRecorder,
    NativeApplicationRecorder,
    NativeProcessRecorder,
)
from eventsourcing_rs.persistence import EventStore, Notification


def _native(obj: Any, base: type, name: str) -> Optional[Callable[..., Any]]:
    """The Rust method behind ``obj.name`` when that is the stock one from
    ``base`` (its class does not override it, nor its instance shadow it),
    else None. Compares the methods themselves: an isinstance check against
    these abstract classes would cost more than the shortcut saves."""
    if getattr(type(obj), name, None) is not getattr(base, name) or name in getattr(
        obj, "__dict__", ()
    ):
        return None
    return getattr(getattr(obj, "_recorder", None), name, None)


def native_insert(event_store: Any) -> Optional[Callable[[List[Any], Any], Any]]:
    """The Rust ``insert_events(stored_events, tracking)`` that a stock
    ``event_store.put`` ends in, or None when the store or its recorder is
    customised."""
    if getattr(type(event_store), "put", None) is not EventStore.put or "put" in getattr(
        event_store, "__dict__", ()
    ):
        return None
    return _native(event_store.recorder, NativeAggregateRecorder, "insert_events")


def page_reader(
    log: Any, local_log_type: Any
) -> Optional[Callable[[int, int], List[Notification]]]:
    """``select_notifications(start, limit)`` of the recorder behind a stock
    local notification log (of exactly ``local_log_type``): the Rust method
    when the recorder's is the stock one, else the recorder's own. None for
    any other log, or one whose ``select`` is set on the instance."""
    if type(log) is not local_log_type or "select" in log.__dict__:
        return None
    recorder = log.recorder
    native = _native(recorder, NativeApplicationRecorder, "select_notifications")
    return native if native is not None else recorder.select_notifications


def tracking_reader(recorder: Any) -> Callable[[str], int]:
    """``recorder.max_tracking_id``, direct when the recorder is stock."""
    native = _native(recorder, NativeProcessRecorder, "max_tracking_id")
    return native if native is not None else recorder.max_tracking_id
