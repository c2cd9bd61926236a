"""Group commit for followers: many processed notifications, one insert.

A follower processing a batch of notifications keeps the new events of each
policy pending until the batch is recorded, with the tracking record of the
batch's last notification, in one transaction. The batch is all or nothing,
so exactly-once holds as it does for one notification at a time.

While a batch is pending, the follower's event store serves the pending
events too, so a policy reading an aggregate through the repository sees
what the policies before it in the same batch did to it.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional
from uuid import UUID

from eventsourcing_rs.domain import AggregateEvent
from eventsourcing_rs.persistence import EventStore, Tracking


class PendingEvents:
    """The new events of a batch not yet recorded, by aggregate."""

    def __init__(self) -> None:
        self.events: List[AggregateEvent] = []
        self.tracking: Optional[Tracking] = None
        self.notifications = 0
        self.by_aggregate: Dict[UUID, List[AggregateEvent]] = {}

    def add(self, events: List[AggregateEvent], tracking: Optional[Tracking]) -> None:
        self.events += events
        for e in events:
            self.by_aggregate.setdefault(e.originator_id, []).append(e)
        if tracking is not None:
            self.tracking = tracking
        self.notifications += 1

    def clear(self) -> None:
        self.events = []
        self.tracking = None
        self.notifications = 0
        self.by_aggregate.clear()


class PendingAwareEventStore(EventStore):
    """An event store that also serves a batch's pending events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending = PendingEvents()

    def get(
        self,
        originator_id: UUID,
        gt: Optional[int] = None,
        lte: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> Iterator[Any]:
        pending = self.pending.by_aggregate.get(originator_id)
        if not pending:
            return super().get(originator_id, gt, lte, desc, limit)
        recorded = list(super().get(originator_id, gt, lte))
        extra = [
            e
            for e in pending
            if (gt is None or e.originator_version > gt)
            and (lte is None or e.originator_version <= lte)
        ]
        merged = recorded + extra
        if desc:
            merged.reverse()
        if limit is not None:
            merged = merged[:limit]
        return iter(merged)
