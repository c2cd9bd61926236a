"""Orders -> Reservations -> Payments: an example system of process
applications.

Each order placed in Orders is reserved by Reservations, whose reservation
is charged by Payments; every policy creates one new aggregate. Run it with
``python -m eventsourcing_rs.examples.orders`` (``--help`` for options).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, List, Type
from uuid import UUID

from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import ProcessApplication, ProcessEvent


class Order(Aggregate):
    @event("Placed")
    def __init__(self, customer: str, amount: Decimal):
        self.customer = customer
        self.amount = amount


class Reservation(Aggregate):
    @event("Made")
    def __init__(self, order_id: UUID, amount: Decimal):
        self.order_id = order_id
        self.amount = amount


class Payment(Aggregate):
    @event("Taken")
    def __init__(self, order_id: UUID, reservation_id: UUID, amount: Decimal):
        self.order_id = order_id
        self.reservation_id = reservation_id
        self.amount = amount


class Orders(Application):
    def place_order(self, customer: str, amount: Decimal) -> UUID:
        order = Order(customer=customer, amount=amount)
        self.save(order)
        return order.id

    def get_order(self, order_id: UUID) -> Order:
        return self.repository.get(order_id)


class Reservations(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Order.Placed):
            reservation = Reservation(
                order_id=domain_event.originator_id, amount=domain_event.amount
            )
            process_event.save(reservation)


class Payments(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Reservation.Made):
            payment = Payment(
                order_id=domain_event.order_id,
                reservation_id=domain_event.originator_id,
                amount=domain_event.amount,
            )
            process_event.save(payment)


PIPES: List[List[Type[Application]]] = [[Orders, Reservations, Payments]]

APPLICATIONS: Dict[str, Type[Application]] = {
    cls.__name__: cls for cls in (Orders, Reservations, Payments)
}


def summary(app: Any) -> str:
    return f"{type(app).__name__}: {app.recorder.max_notification_id()} events"
