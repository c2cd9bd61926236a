"""How far each follower of a system is behind its leaders."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from eventsourcing_rs.application import Application
from eventsourcing_rs.leases import LeaseBook, lease_book_for
from eventsourcing_rs.persistence import PersistenceError
from eventsourcing_rs.segments import segments


@dataclass(frozen=True)
class EdgeLag:
    """One leader -> follower edge: the leader's last notification id, the
    follower's position in it, and the difference."""

    leader_name: str
    follower_name: str
    leader_last_id: int
    follower_position: int
    # For a follower in segments: which one ("2/4"), else None.
    segment: Optional[str] = None
    # The worker holding the follower's (or the segment's) lease, if any.
    owner: Optional[str] = None

    @property
    def lag(self) -> int:
        return max(0, self.leader_last_id - self.follower_position)

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "lag": self.lag}


def edge_lags(edges: List[tuple[str, str]], apps: Mapping[str, Application]) -> List[EdgeLag]:
    """The lag of each edge, read from the applications' recorders, in the
    order of the edges (leader, then follower, by name); an edge to a
    follower that workers run in segments gives a row per segment."""
    lags = []
    for leader_name, follower_name in sorted(edges):
        leader = apps[leader_name].recorder
        follower = apps[follower_name]
        last = leader.max_notification_id()  # type: ignore[attr-defined]
        book = lease_book_for(follower.recorder)  # type: ignore[arg-type]
        count = _segments_in_use(book, follower_name)
        for segment in segments(count):
            owner = _owner(book, segment.lease_name(follower_name))
            lags.append(
                EdgeLag(
                    leader_name=leader_name,
                    follower_name=follower_name,
                    leader_last_id=last,
                    follower_position=follower.recorder.max_tracking_id(  # type: ignore[attr-defined]
                        segment.tracking_name(leader_name)
                    ),
                    segment=f"{segment.index}/{count}" if count > 1 else None,
                    owner=owner,
                )
            )
    return lags


def _segments_in_use(book: Optional[LeaseBook], follower_name: str) -> int:
    """The number of segments workers last ran the follower with (1 when
    none did)."""
    if book is None:
        return 1
    try:
        return book.recorded_segments(follower_name) or 1
    except PersistenceError:
        return 1  # no leases table: no worker ever ran


def _owner(book: Optional[LeaseBook], lease_name: str) -> Optional[str]:
    if book is None:
        return None
    try:
        holder = book.holder(lease_name)
    except PersistenceError:
        return None
    if holder is None or holder.seconds_left <= 0:
        return None
    return holder.owner


def wait_caught_up(
    lags: Callable[[], List[EdgeLag]],
    timeout: Optional[float],
    errors: Callable[[], List[Exception]] = list,
    interval: float = 0.02,
) -> None:
    """Returns once no edge lags; raises the first of ``errors()`` as soon
    as there is one, or TimeoutError naming the lagging edges."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = errors()
        if found:
            raise found[0]
        behind = [e for e in lags() if e.lag]
        if not behind:
            return
        if deadline is not None and time.monotonic() > deadline:
            said = ", ".join(f"{e.follower_name} is {e.lag} behind {e.leader_name}" for e in behind)
            raise TimeoutError(f"The system did not catch up in {timeout} s: {said}")
        time.sleep(interval)
