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
from eventsourcing_rs.persistence import EventStore


class PendingEvents:
    """The new events of a batch not yet recorded.

    The follower extends :attr:`events` in place as each policy returns, and
    calls :func:`clear` when the batch is taken to be recorded. The index by
    aggregate is built only when the event store is asked for an aggregate
    while a batch is pending, and then only for the events added since it
    was last asked: followers whose policies never read an aggregate back
    pay nothing for it.
    """

    def __init__(self) -> None:
        self.events: List[AggregateEvent] = []
        self._by_aggregate: Dict[UUID, List[AggregateEvent]] = {}
        self._indexed = 0

    def for_aggregate(self, originator_id: UUID) -> Optional[List[AggregateEvent]]:
        """The pending events of one aggregate, in the order added."""
        if not self.events:
            return None
        index = self._by_aggregate
        for event in self.events[self._indexed :]:
            index.setdefault(event.originator_id, []).append(event)
        self._indexed = len(self.events)
        return index.get(originator_id)

    def clear(self) -> None:
        """Starts a new batch (a new list: the old one is being recorded)."""
        self.events = []
        if self._indexed:
            self._by_aggregate.clear()
            self._indexed = 0


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
        pending = self.pending.for_aggregate(originator_id)
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
