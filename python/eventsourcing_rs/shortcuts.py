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
Rust recorder as well, and when every call on a pull's path is a Rust one,
a PullKernel runs each page of the pull in Rust, and a FollowerPull (made
by the follower) the whole pull around it. A follower keeps what it found
per leader (FollowerCalls), and its guards are asked, for every page,
whether they still apply, so that a method replaced on an instance or
patched on a class since, as tests injecting failures do, is honoured.
An application's save runs in Rust likewise (ApplicationSave): collecting
the aggregates' events, encoding, the insert and notifying, under a guard
over the methods those stand for. Reading aggregates takes no shortcut:
there, checking on each call that one still applies costs as much as the
layers it would skip.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, cast

from eventsourcing_rs import _core
from eventsourcing_rs.domain import Aggregate
from eventsourcing_rs.native_recorder import (
    NativeAggregateRecorder,
    NativeApplicationRecorder,
    NativeProcessRecorder,
)
from eventsourcing_rs.persistence import EventStore, Notification

_STOCK_PUT = EventStore.put
_STOCK_TRACKING = NativeProcessRecorder.max_tracking_id
_STOCK_SELECT = NativeApplicationRecorder.select_notifications
_STOCK_INSERT = NativeAggregateRecorder.insert_events
_STOCK_COLLECT = Aggregate.collect_events


def local_log_select(
    log: Any, local_log_type: Any, stock: Tuple[Any, Any]
) -> Optional[Tuple[Callable[[int, int], List[Notification]], int]]:
    """For a reader following ``log``'s sections: the Rust
    ``select_notifications`` of the recorder behind it and the log's
    section size, when the log is a stock local notification log (exactly
    ``local_log_type``, whose ``__getitem__`` and ``select`` are still
    ``stock``, and not set on the instance) over a stock Rust recorder;
    else None."""
    if (
        type(log) is not local_log_type
        or (local_log_type.__getitem__, local_log_type.select) != stock
        or "select" in log.__dict__
    ):
        return None
    recorder = log.recorder
    rust = getattr(recorder, "_recorder", None)
    if (
        rust is None
        or getattr(type(recorder), "select_notifications", None) is not _STOCK_SELECT
        or "select_notifications" in getattr(recorder, "__dict__", ())
    ):
        return None
    return rust.select_notifications, log.section_size


def follower_calls(
    recorder: Any, event_store: Any, log: Any, local_log_type: Any
) -> Tuple[
    Callable[[str], int],
    Optional[Callable[[int, int], List[Notification]]],
    Optional[Callable[[List[Any], Any], Any]],
]:
    """The calls a follower's pull makes, direct where stock:

    - ``max_tracking_id(name)`` of the follower's recorder: the Rust method
      when the recorder's is the stock one, else the recorder's own;
    - ``select_notifications(start, limit)`` of the recorder behind a
      stock local notification log (of exactly ``local_log_type``), Rust
      or the recorder's own likewise (a stock PostgreSQL recorder's read
      for followers, which answers from its last insert where it can);
      None for any other log, or one whose ``select`` is set on the
      instance;
    - the Rust ``insert_events(stored_events, tracking)`` that a stock
      ``event_store.put`` ends in; None when the store or its recorder is
      customised.

    A method is stock when its class does not override it and no instance
    attribute shadows it. The methods themselves are compared: an
    isinstance check against these abstract classes would cost more than
    the shortcut saves. The checks are written out in one function because
    the Python paths (a customised follower, its inserts) make them for
    every batch, and each level of Python call costs about as much as one.
    """
    rust = getattr(recorder, "_recorder", None)
    if (
        rust is not None
        and getattr(type(recorder), "max_tracking_id", None) is _STOCK_TRACKING
        and "max_tracking_id" not in getattr(recorder, "__dict__", ())
    ):
        position: Callable[[str], int] = rust.max_tracking_id
    else:
        position = recorder.max_tracking_id

    select: Optional[Callable[[int, int], List[Notification]]] = None
    if type(log) is local_log_type and "select" not in getattr(log, "__dict__", ()):
        leader = log.recorder
        leader_rust = getattr(leader, "_recorder", None)
        method = getattr(type(leader), "select_notifications", None)
        if "select_notifications" in getattr(leader, "__dict__", ()):
            select = leader.select_notifications
        elif leader_rust is not None and method is _STOCK_SELECT:
            select = leader_rust.select_notifications
        elif method is not None and method is getattr(
            type(leader), "_select_for_followers_stands_for", None
        ):
            # A stock PostgreSQL recorder: its read for followers answers
            # from its last insert where it can.
            select = leader._select_for_followers
        else:
            select = leader.select_notifications

    return position, select, _rust_insert(recorder, event_store)


def _rust_insert(recorder: Any, event_store: Any) -> Optional[Callable[[List[Any], Any], Any]]:
    """The Rust ``insert_events(stored_events, tracking)`` that a stock
    ``event_store.put`` into ``recorder`` ends in; None if customised."""
    rust = getattr(recorder, "_recorder", None)
    if (
        getattr(type(event_store), "put", None) is _STOCK_PUT
        and "put" not in getattr(event_store, "__dict__", ())
        and event_store.recorder is recorder
        and rust is not None
        and getattr(type(recorder), "insert_events", None) is _STOCK_INSERT
        and "insert_events" not in getattr(recorder, "__dict__", ())
    ):
        return cast(Callable[[List[Any], Any], Any], rust.insert_events)
    return None


class FollowerCalls:
    """What :func:`follower_calls` found for one leader, kept while it
    still applies; and, when every call is a Rust one and the follower's
    mappers are the Rust ones, a :class:`~eventsourcing_rs._core.PullKernel`
    that runs a whole page of the pull in Rust.

    Finding the calls afresh costs more than the layers they skip, so a
    follower keeps them per leader and asks ``guard.holds(recorder,
    event_store, log, mapper, tracking_book)`` on each pull: true while
    those are the objects the calls were found for, and (see
    :class:`~eventsourcing_rs._core.MethodGuard`) the objects behind them
    are too and none of the methods the calls stand for has been replaced
    since, on a class (the type's version tag changes) or on an instance.
    """

    __slots__ = ("calls", "kernel", "guard")

    def __init__(
        self,
        recorder: Any,
        event_store: Any,
        log: Any,
        local_log_type: Any,
        mapper: Any,
        tracking_book: Any,
    ):
        self.calls = follower_calls(recorder, event_store, log, local_log_type)
        watched: List[Tuple[Any, List[str]]] = [
            (recorder, ["max_tracking_id", "insert_events"]),
            (event_store, ["put"]),
            (log, ["select"]),
        ]
        pinned: List[Tuple[Any, str]] = [(event_store, "recorder")]
        if hasattr(recorder, "_recorder"):
            pinned.append((recorder, "_recorder"))
        leader = getattr(log, "recorder", None)
        if leader is not None:
            watched.append((leader, ["select_notifications"]))
            pinned.append((log, "recorder"))
            if hasattr(leader, "_recorder"):
                pinned.append((leader, "_recorder"))
        native = _kernel_parts(self.calls, event_store, mapper, tracking_book)
        if native is not None:
            # The Rust mapper methods are instance attributes of the stock
            # mappers: replacing one rebinds it.
            pinned += [
                (mapper, "to_domain_event"),
                (event_store, "mapper"),
                (event_store.mapper, "from_domain_event"),
            ]
        self.guard = _core.MethodGuard(
            watched, pinned, [recorder, event_store, log, mapper, tracking_book]
        )
        # The kernel asks the guard again before it records a page.
        self.kernel = None if native is None else _core.PullKernel(*native, self.guard)


def _rust_method_owner(method: Any, owner_type: Any) -> Any:
    """The object a Rust method is bound to, if it is of ``owner_type``."""
    owner = getattr(method, "__self__", None)
    return owner if type(owner) is owner_type else None


def _kernel_parts(
    calls: Tuple[Any, Any, Any], event_store: Any, mapper: Any, tracking_book: Any
) -> Optional[Tuple[Any, Any, Any, Any, Any]]:
    """The Rust objects a PullKernel is made of (follower's recorder,
    leader's recorder, decoder, encoder, tracking book), when every call
    on the pull's path is one of theirs; else None."""
    max_tracking_id, select, insert = calls
    if select is None or insert is None:
        return None
    follower: Any = getattr(max_tracking_id, "__self__", None)
    leader: Any = getattr(select, "__self__", None)
    native = (_core.MemoryRecorder, _core.SQLiteRecorder)
    if type(follower) not in native or type(leader) not in native:
        return None
    inserts_into: Any = getattr(insert, "__self__", None)
    if inserts_into is not follower:
        return None
    decoder = _rust_method_owner(getattr(mapper, "to_domain_event", None), _core.EventMapper)
    encoder = _rust_method_owner(
        getattr(getattr(event_store, "mapper", None), "from_domain_event", None),
        _core.EventMapper,
    )
    if decoder is None or encoder is None or type(tracking_book) is not _core.TrackingBook:
        return None
    return (follower, leader, decoder, encoder, tracking_book)


def application_save(app: Any) -> Optional[_core.ApplicationSave]:
    """An ApplicationSave for ``app``: when it takes no snapshots, its event
    store's ``put`` ends in a Rust recorder's insert through the stock
    methods and its mapper is a Rust one; else None."""
    if getattr(app, "snapshots", None) is not None:
        return None
    store = getattr(app, "events", None)
    recorder = getattr(store, "recorder", None)
    rust: Any = getattr(_rust_insert(recorder, store), "__self__", None)
    if type(rust) not in (_core.MemoryRecorder, _core.SQLiteRecorder):
        return None
    mapper = getattr(store, "mapper", None)
    encoder = _rust_method_owner(getattr(mapper, "from_domain_event", None), _core.EventMapper)
    if encoder is None:
        return None
    notify, followers, runner_receive = app._notify_mode()
    watched: List[Tuple[Any, List[str]]] = [
        # Unless notify is called as a method anyway, instance attributes
        # that would replace it.
        (app, [] if notify == "method" else ["notify", "prompt_followers"]),
        (store, ["put"]),
        (recorder, ["insert_events"]),
    ]
    pinned: List[Tuple[Any, str]] = [
        (app, "events"),
        (app, "snapshots"),
        (store, "mapper"),
        (store, "recorder"),
        (recorder, "_recorder"),
        (mapper, "from_domain_event"),
    ]
    if followers is not None:
        pinned.append((app, "followers"))
    return _core.ApplicationSave(
        app,
        _core.MethodGuard(watched, pinned),
        encoder,
        rust,
        _STOCK_COLLECT,
        notify,
        followers,
        runner_receive,
    )
