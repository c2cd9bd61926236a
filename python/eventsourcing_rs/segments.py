"""Segments: one follower processed in parallel, still exactly once.

A follower may be split into N segments (the class attribute ``segments``,
or the environment variable ``SEGMENTS``, prefixed with the application's
name: ``RESERVATIONS_SEGMENTS=4``). A leader's notification belongs to
segment::

    int.from_bytes(md5(originator_id.bytes).digest()[:4], "big") % N

(the first four bytes of the MD5 digest of the originator id's sixteen
bytes, as an unsigned big-endian integer, modulo N): the same in every
process, language and version, so all the events of one aggregate go to
one segment, and are processed there in order. In SQL (PostgreSQL):
``('x' || left(md5(uuid_send(originator_id)), 8))::bit(32)::bigint % N``.

Each segment keeps its own position per leader, written in the same
transaction as the events it produced, in the follower's tracking table
under the name ``<leader>#<index>/<N>`` (so the table keeps 9.1's
columns). A follower of one segment tracks exactly as 9.1 does, under the
leader's name. A segment reads every notification after its position and
processes those of its segment; its position moves past the others.

Changing N on a follower that has run: the new segments start from the
position all the old ones have reached, and only if they have all reached
the same one (so nothing is processed twice or skipped). Otherwise the
follower refuses to start (:class:`SegmentsChanged`); to change N, stop
the follower's workers, let it catch up with writers to its leaders
stopped (or run it once more with the old N until its segments are level),
then start it with the new N.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, List, Mapping, Optional, Tuple
from uuid import UUID

from eventsourcing_rs.persistence import (
    InvalidSetting,
    LeaseLost,
    Notification,
    NotificationPage,
    Tracking,
    TrackingRefused,
)

if TYPE_CHECKING:  # pragma: no cover
    from eventsourcing_rs.leases import LeaseBook
    from eventsourcing_rs.system import Follower

SEGMENTS = "SEGMENTS"


class SegmentsChanged(Exception):
    """A follower's number of segments changed while its segments were not
    all at the same position of a leader: changing it now could process a
    notification twice or skip one."""


def segment_of(originator_id: UUID, count: int) -> int:
    """The segment, of ``count``, that the aggregate's events belong to."""
    if count == 1:
        return 0
    digest = hashlib.md5(originator_id.bytes, usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") % count


@dataclass(frozen=True)
class Segment:
    """Segment ``index`` of ``count``."""

    index: int
    count: int

    def tracking_name(self, leader_name: str) -> str:
        """The name the segment's position in the leader is tracked under."""
        if self.count == 1:
            return leader_name
        return f"{leader_name}#{self.index}/{self.count}"

    def lease_name(self, follower_name: str) -> str:
        """The name of the lease that says which worker runs the segment."""
        if self.count == 1:
            return follower_name
        return f"{follower_name}#{self.index}/{self.count}"

    def holds(self, originator_id: UUID) -> bool:
        return segment_of(originator_id, self.count) == self.index


def segment_count(follower_cls: type, env: Mapping[str, str]) -> int:
    """A follower class's number of segments: ``<NAME>_SEGMENTS`` or
    ``SEGMENTS`` in ``env`` (as applications read their variables), else
    the class's ``segments``. Read before any application is made."""
    name = f"{follower_cls.__name__.upper()}_{SEGMENTS}"
    value = (env.get(name) or env.get(SEGMENTS) or "").strip()
    if not value:
        count = getattr(follower_cls, "segments", 1)
    else:
        try:
            count = int(value)
        except ValueError:
            raise InvalidSetting(f"{name}={value!r} is not a whole number of segments") from None
    if not isinstance(count, int) or count < 1 or count > 4096:
        raise InvalidSetting(f"{name}={count!r}: a follower has from 1 to 4096 segments")
    return count


def refuse_if_run_in_segments(follower: Follower) -> None:
    """Raises :class:`SegmentsChanged` if workers last ran the follower in
    more than one segment: a runner in this process tracks it as one
    segment, from a position the segments have left behind, and would
    process their notifications again."""
    from eventsourcing_rs.leases import lease_book_for
    from eventsourcing_rs.persistence import PersistenceError

    book = lease_book_for(follower.recorder)  # type: ignore[arg-type]
    if book is None:
        return
    try:
        recorded = book.recorded_segments(type(follower).__name__)
    except PersistenceError:
        return  # no leases table: no worker ever ran it
    if recorded is not None and recorded > 1:
        raise SegmentsChanged(
            f"{type(follower).__name__} was last run by workers in {recorded} segments: a "
            "runner in one process would track it as one, from a position they have left "
            "behind. Run it with workers, or with workers in one segment first (its "
            "segments must be level: see eventsourcing_rs.segments)"
        )


def segments(count: int) -> List[Segment]:
    return [Segment(index, count) for index in range(count)]


def prepare(follower: Follower, leader_names: Iterable[str], count: int, book: LeaseBook) -> None:
    """Makes the follower's tracking ready for ``count`` segments (see the
    module on changing N); records ``count``."""
    name = type(follower).__name__
    recorded = book.recorded_segments(name)
    if recorded == count:
        return
    old = recorded or 1
    for leader_name in leader_names:
        positions = [
            follower.recorder.max_tracking_id(s.tracking_name(leader_name))  # type: ignore[attr-defined]
            for s in segments(old)
        ]
        if len(set(positions)) > 1:
            raise SegmentsChanged(
                f"{name} had {old} segment(s), now {count}: its segments are at "
                f"different positions of {leader_name} ({positions}), so changing the "
                f"number now could process a notification twice or skip one. Stop its "
                f"workers, run it with {old} segment(s) until they are level (writers to "
                f"{leader_name} stopped), then start it with {count}"
            )
        level = positions[0]
        if level:
            for segment in segments(count):
                key = segment.tracking_name(leader_name)
                at = follower.recorder.max_tracking_id(key)  # type: ignore[attr-defined]
                if at < level:
                    follower.recorder.insert_events(  # type: ignore[attr-defined]
                        [], tracking=Tracking(key, level, at if at else None)
                    )
    book.record_segments(name, count)


def _select(follower: Follower, leader_name: str, segment: Segment) -> Any:
    """``select(start) -> (notifications of the segment, last id scanned)``
    on the leader's log: filtered by the database or in Rust where the
    leader's recorder can (PostgreSQL, SQLite, in memory), else here."""
    reader, _ = follower.readers[leader_name]
    log = reader.notification_log
    recorder = getattr(log, "recorder", None)
    scan = follower.pull_batch_size
    if recorder is not None and hasattr(recorder, "select_segment"):
        select_segment = recorder.select_segment

        def select(start: int) -> Tuple[List[Notification], int]:
            return select_segment(start, scan, segment.index, segment.count)  # type: ignore[no-any-return]

        return select, scan
    if recorder is not None and hasattr(recorder, "select_notifications"):
        page_of, limit = recorder.select_notifications, scan
    else:
        page_of, limit = log.select, getattr(log, "section_size", 10)

    def select_here(start: int) -> Tuple[List[Notification], int]:
        page = page_of(start, limit)
        if not page:
            return page, start - 1
        mine = [n for n in page if segment.holds(n.originator_id)]
        stopped_by = getattr(page, "stopped_by", None)
        if stopped_by is not None:
            mine = NotificationPage(mine)
            mine.stopped_by = stopped_by
        return mine, page[-1].id

    return select_here, limit


def pull_segment(follower: Follower, leader_name: str, segment: Segment) -> int:
    """Processes the leader's notifications of ``segment`` after the
    segment's position, in batches, each recorded with the segment's
    tracking record (compare-and-set on the position it was read from);
    returns how many notifications it moved past. A policy's error records
    what came before it and propagates, as for a whole follower."""
    from eventsourcing_rs.system import PendingAwareEventStore, PendingEvents, ProcessEvent

    key = segment.tracking_name(leader_name)
    _, mapper = follower.readers[leader_name]
    select, scan = _select(follower, leader_name, segment)
    store = follower.events
    pending = store.pending if isinstance(store, PendingAwareEventStore) else PendingEvents()
    moved = 0
    while True:
        position = follower.recorder.max_tracking_id(key)  # type: ignore[attr-defined]
        page, upto = select(position + 1)
        if upto <= position:
            return moved
        events = pending.events
        last = position
        notification: Optional[Notification] = None
        try:
            for notification in page:
                process_event = ProcessEvent(Tracking(key, notification.id, position))
                follower.policy(mapper.to_domain_event(notification), process_event)
                events += process_event.events
                last = notification.id
        except Exception as error:
            pending.clear()
            if last > position:
                follower._put_tracked(events, Tracking(key, last, position))
                follower.notify(events)
            follower.processing = (leader_name, notification.id if notification else last)
            follower._note_failure(
                error, leader_name, notification.id if notification is not None else None, None
            )
            raise
        pending.clear()
        stopped_by = getattr(page, "stopped_by", None)
        # Past the others of the scan too (not past a row that could not
        # be read: the scan stopped before it).
        last = max(last, upto)
        try:
            follower._put_tracked(events, Tracking(key, last, position))
        except TrackingRefused as error:
            if isinstance(error, LeaseLost):
                raise
            # Another instance recorded from this position: from where it
            # got to, then.
            continue
        follower.notify(events)
        moved += last - position
        if stopped_by is not None:
            raise stopped_by
        if upto - position < scan or follower._pulls_stop():
            return moved
