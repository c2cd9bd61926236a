"""Orders -> Reservations with Reservations in segments, for the segment
tests: each order is placed and then confirmed (two events), and the
Reservations policy keeps, per order, the versions it saw, in the order it
saw them, and the process that saw them."""

from __future__ import annotations

import os
from typing import List
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing_rs.application import AggregateNotFound, Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import ProcessApplication, ProcessEvent, System


class Order(Aggregate):
    @event("Placed")
    def __init__(self, number: int):
        self.number = number
        self.confirmed = False

    @event("Confirmed")
    def confirm(self) -> None:
        self.confirmed = True


class Reservation(Aggregate):
    @staticmethod
    def id_for(order_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"reservation/{order_id}")

    @classmethod
    def create(cls, order_id: UUID) -> Reservation:
        return cls._create(cls.Started, id=cls.id_for(order_id), order_id=order_id)

    class Started(Aggregate.Created):
        order_id: UUID

    def __init__(self, order_id: UUID):
        self.order_id = order_id
        self.seen: List[int] = []
        self.pids: List[int] = []

    @event("Saw")
    def saw(self, version: int, pid: int) -> None:
        self.seen.append(version)
        self.pids.append(pid)


class Orders(Application):
    def place(self, number: int) -> UUID:
        order = Order(number)
        self.save(order)
        return order.id

    def place_and_confirm(self, number: int) -> UUID:
        order = Order(number)
        order.confirm()
        self.save(order)
        return order.id

    def confirm(self, order_id: UUID) -> None:
        order = self.repository.get(order_id)
        order.confirm()
        self.save(order)


class PoisonOrder(Exception):
    pass


# The order number whose Placed event the policy cannot process (None:
# none); also read from the environment, for worker processes.
POISON: List[int] = []


def poisoned(number: int) -> bool:
    return number in POISON or os.environ.get("TEST_POISON_NUMBER") == str(number)


class Reservations(ProcessApplication):
    segments = 4

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if not isinstance(domain_event, (Order.Placed, Order.Confirmed)):
            return
        if isinstance(domain_event, Order.Placed) and poisoned(domain_event.number):
            raise PoisonOrder(f"cannot reserve order {domain_event.number}")
        order_id = domain_event.originator_id
        try:
            reservation = self.repository.get(Reservation.id_for(order_id))
        except AggregateNotFound:
            reservation = Reservation.create(order_id)
        reservation.saw(domain_event.originator_version, os.getpid())
        process_event.save(reservation)


system = System(pipes=[[Orders, Reservations]])
