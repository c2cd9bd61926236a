"""Orders -> Reservations -> Payments for the multi-process tests: each
process event says which OS process made it, and the Payments policy can
be made to fail on chosen order numbers by the environment."""

from __future__ import annotations

import os
from uuid import UUID

from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import ProcessApplication, ProcessEvent, System


class Order(Aggregate):
    @event("Placed")
    def __init__(self, number: int):
        self.number = number


class Reservation(Aggregate):
    @event("Made")
    def __init__(self, order_id: UUID, number: int, pid: int):
        self.order_id = order_id
        self.number = number
        self.pid = pid


class Payment(Aggregate):
    @event("Taken")
    def __init__(self, reservation_id: UUID, number: int, pid: int):
        self.reservation_id = reservation_id
        self.number = number
        self.pid = pid


class Orders(Application):
    def place(self, number: int) -> UUID:
        order = Order(number=number)
        self.save(order)
        return order.id


class Reservations(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Order.Placed):
            process_event.save(
                Reservation(
                    order_id=domain_event.originator_id,
                    number=domain_event.number,
                    pid=os.getpid(),
                )
            )


class PaymentRefused(Exception):
    pass


class Payments(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Reservation.Made):
            failing = os.environ.get("TEST_FAILING_PAYMENT", "")
            if failing and int(failing) == domain_event.number:
                raise PaymentRefused(f"cannot take payment {domain_event.number}")
            process_event.save(
                Payment(
                    reservation_id=domain_event.originator_id,
                    number=domain_event.number,
                    pid=os.getpid(),
                )
            )


system = System(pipes=[[Orders, Reservations, Payments]])
