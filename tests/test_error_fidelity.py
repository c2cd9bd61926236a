"""A follower's error reaches the caller as 9.1 raises it: the policy's
own exception class (so ``except InsufficientStock:`` around a command
still catches it), carrying where it happened as attributes and a note;
and no way a follower's thread can end goes unseen."""

from __future__ import annotations

import logging
from typing import Any, Iterator, Type

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import (
    MultiThreadedRunner,
    ProcessApplication,
    ProcessEvent,
    ProcessingError,
    SingleThreadedRunner,
    System,
)

from .test_system import wait_for


class InsufficientStock(Exception):
    pass


class Order(Aggregate):
    @event("Created")
    def __init__(self, quantity: int):
        self.quantity = quantity


class Stock(Aggregate):
    @event("Reserved")
    def __init__(self, order_id: Any):
        self.order_id = order_id


class FidelityOrders(Application):
    def create_order(self, quantity: int) -> Any:
        order = Order(quantity)
        self.save(order)
        return order.id


class FidelityStock(ProcessApplication):
    # What ends the policy when an order asks for more than this.
    available = 10
    raises: Type[BaseException] = InsufficientStock

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Order.Created):
            if domain_event.quantity > self.available:  # type: ignore[attr-defined]
                raise self.raises(f"only {self.available} left")
            process_event.save(Stock(domain_event.originator_id))


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    FidelityStock.raises = InsufficientStock


def test_single_threaded_runner_raises_the_policys_own_exception() -> None:
    runner = SingleThreadedRunner(System(pipes=[[FidelityOrders, FidelityStock]]))
    runner.start()
    orders = runner.get(FidelityOrders)
    orders.create_order(1)
    try:
        orders.create_order(11)
    except InsufficientStock as error:
        caught: Any = error
    else:  # pragma: no cover - the assertion says what went wrong
        pytest.fail("InsufficientStock did not reach the caller")
    assert type(caught) is InsufficientStock
    assert (caught.application_name, caught.leader_name, caught.notification_id) == (
        "FidelityStock",
        "FidelityOrders",
        2,
    )
    assert "while FidelityStock processed notification 2 from FidelityOrders" in (caught.__notes__)
    # Nothing recorded for it; the runner goes on.
    stock = runner.get(FidelityStock)
    assert stock.recorder.max_tracking_id("FidelityOrders") == 1
    FidelityStock.available = 100
    try:
        orders.create_order(12)
    finally:
        FidelityStock.available = 10
    assert stock.recorder.max_tracking_id("FidelityOrders") == 3
    runner.stop()


def test_multi_threaded_runner_keeps_and_reraises_the_policys_own_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = MultiThreadedRunner(System(pipes=[[FidelityOrders, FidelityStock]]))
    runner.start()
    with caplog.at_level(logging.ERROR, logger="eventsourcing_rs"):
        runner.get(FidelityOrders).create_order(11)
        wait_for(lambda: runner.threads["FidelityStock"].has_stopped.is_set())
    assert [type(e) for e in runner.errors] == [InsufficientStock]
    with pytest.raises(InsufficientStock) as info:
        runner.stop()
    error: Any = info.value
    assert error.notification_id == 1 and error.leader_name == "FidelityOrders"
    logged = [r for r in caplog.records if r.name == "eventsourcing_rs"]
    assert logged and "FidelityStock" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is InsufficientStock


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt])
def test_a_thread_ended_by_a_base_exception_is_seen_at_stop(
    ending: Type[BaseException],
) -> None:
    FidelityStock.raises = ending
    runner = MultiThreadedRunner(System(pipes=[[FidelityOrders, FidelityStock]]))
    runner.start()
    runner.get(FidelityOrders).create_order(11)
    wait_for(lambda: runner.threads["FidelityStock"].has_stopped.is_set())
    assert len(runner.errors) == 1
    with pytest.raises(ProcessingError) as info:
        runner.stop()
    assert isinstance(info.value.__cause__, ending)
    assert info.value.application_name == "FidelityStock"
    assert info.value.notification_id == 1
