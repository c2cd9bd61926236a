"""Orders -> Reservations with a CPU-heavy policy, for benches/segments.py.

Each order placed makes one reservation. Before saving it, the policy runs
``BENCH_POLICY_LOOPS`` iterations of pure-Python arithmetic: a fixed amount
of work, calibrated once by the bench and passed to every worker through
the environment, so that each process does the same work per event (rather
than spinning on the clock, which would count time spent waiting for a
core as work done). The reservation's id is derived from the order's, so
reserving an order twice would conflict, and it records the process that
made it, so the bench can see how the work was shared.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import ProcessApplication, ProcessEvent, System

POLICY_LOOPS = "BENCH_POLICY_LOOPS"


def burn(loops: int) -> int:
    """Pure-Python CPU work, ``loops`` iterations: it holds the GIL
    throughout, as a policy doing real work in Python would."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


class Order(Aggregate):
    @event("Placed")
    def __init__(self, number: int):
        self.number = number


class Reservation(Aggregate):
    class Started(Aggregate.Created):
        order_id: UUID
        pid: int

    @staticmethod
    def id_for(order_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"bench-reservation/{order_id}")

    @classmethod
    def create(cls, order_id: UUID) -> Reservation:
        return cls._create(cls.Started, id=cls.id_for(order_id), order_id=order_id, pid=os.getpid())

    def __init__(self, order_id: UUID, pid: int):
        self.order_id = order_id
        self.pid = pid


class Orders(Application):
    pass


class Reservations(ProcessApplication):
    def __init__(self, env: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(env=env)
        # Read once: the environment is fixed for the process's life.
        self.policy_loops = int(self.env.get(POLICY_LOOPS) or 0)

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if not isinstance(domain_event, Order.Placed):
            return
        burn(self.policy_loops)
        process_event.save(Reservation.create(domain_event.originator_id))


system = System(pipes=[[Orders, Reservations]])
