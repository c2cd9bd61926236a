"""A small system used by the system tests: Orders -> Reservations -> Payments,
with a switch to make the Payments policy fail on chosen orders."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Set
from uuid import UUID

from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.persistence import Notification
from eventsourcing_rs.system import ProcessApplication, ProcessEvent


class Order(Aggregate):
    @event("Placed")
    def __init__(self, number: int):
        self.number = number


class Reservation(Aggregate):
    @event("Made")
    def __init__(self, order_id: UUID, number: int):
        self.order_id = order_id
        self.number = number


class Payment(Aggregate):
    @event("Taken")
    def __init__(self, reservation_id: UUID, number: int):
        self.reservation_id = reservation_id
        self.number = number


class Orders(Application):
    def place(self, number: int) -> UUID:
        order = Order(number=number)
        self.save(order)
        return order.id


class Reservations(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Order.Placed):
            process_event.save(
                Reservation(order_id=domain_event.originator_id, number=domain_event.number)
            )


class PolicyFailure(Exception):
    pass


class Payments(ProcessApplication):
    # Order numbers whose payment fails (a stand-in for a bug in a policy).
    failing: Set[int] = set()

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Reservation.Made):
            if domain_event.number in self.failing:
                raise PolicyFailure(f"cannot take payment {domain_event.number}")
            process_event.save(
                Payment(
                    reservation_id=domain_event.originator_id,
                    number=domain_event.number,
                )
            )


PIPES = [[Orders, Reservations, Payments]]


def all_notifications(app: Application) -> List[Notification]:
    return app.recorder.select_notifications(1, 10**9)


def numbers(app: Application) -> List[int]:
    """The order numbers an application has recorded, in log order."""
    mapper = app.mapper
    return [mapper.to_domain_event(n).number for n in all_notifications(app)]


@contextmanager
def use_sqlite_files(directory: Path) -> Iterator[None]:
    """Points every application at its own SQLite file in ``directory``."""
    saved = dict(os.environ)
    os.environ["INFRASTRUCTURE_FACTORY"] = "eventsourcing_rs.sqlite:Factory"
    for cls in (Orders, Reservations, Payments):
        os.environ[f"{cls.__name__.upper()}_SQLITE_DBNAME"] = str(directory / f"{cls.__name__}.db")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
