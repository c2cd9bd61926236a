"""The single-threaded runner's prompt loop and a follower's whole pull in
Rust (FollowerPull): taken while the classes on the path are stock, and
left for whatever a user customises, before or during a run."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, List

import pytest
from eventsourcing_rs import _core
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import AggregateEvent
from eventsourcing_rs.system import (
    Leader,
    ProcessApplication,
    ProcessEvent,
    SingleThreadedRunner,
    System,
)

from tests.cpython_switch import needs_shortcuts
from tests.system_fixtures import PIPES, Order, Orders, Payments, Reservations, numbers


def start(pipes: Any = PIPES, runner_cls: Any = SingleThreadedRunner) -> Any:
    runner = runner_cls(System(pipes=pipes))
    runner.start()
    return runner


@needs_shortcuts
def test_stock_followers_are_pulled_in_rust_and_process_every_order() -> None:
    runner = start()
    orders = runner.get(Orders)
    for i in range(20):
        orders.place(i)
    reservations, payments = runner.get(Reservations), runner.get(Payments)
    assert type(reservations._pull_steps["Orders"]) is _core.FollowerPull
    assert type(payments._pull_steps["Reservations"]) is _core.FollowerPull
    assert numbers(reservations) == list(range(20))
    assert numbers(payments) == list(range(20))
    assert payments.recorder.max_tracking_id("Reservations") == 20
    assert runner.prompts_received == [] and runner.is_prompting is False


class CountingReservations(Reservations):
    notified: List[int] = []

    def notify(self, new_events: List[AggregateEvent]) -> None:
        self.notified.append(len(new_events))
        super().notify(new_events)


def test_a_followers_own_notify_is_called_and_still_prompts() -> None:
    CountingReservations.notified = []
    runner = start([[Orders, CountingReservations, Payments]])
    for i in range(3):
        runner.get(Orders).place(i)
    assert CountingReservations.notified == [1, 1, 1]
    assert numbers(runner.get(Payments)) == [0, 1, 2]


class Announcing(Application):
    announced: List[str] = []

    def notify(self, new_events: List[AggregateEvent]) -> None:
        self.announced.append(type(self).__name__)
        super().notify(new_events)


class AnnouncingReservations(Reservations, Announcing):
    """A mixin whose notify comes between Leader's and Application's in
    the method order, reached by Leader's super().notify()."""


def test_a_notify_later_in_the_method_order_is_called() -> None:
    Announcing.announced = []
    assert AnnouncingReservations()._notify_mode()[0] == "method"
    runner = start([[Orders, AnnouncingReservations, Payments]])
    runner.get(Orders).place(0)
    runner.get(Orders).place(1)
    assert Announcing.announced == ["AnnouncingReservations"] * 2
    assert numbers(runner.get(Payments)) == [0, 1]


def test_notify_modes_of_stock_classes() -> None:
    assert Reservations()._notify_mode()[0] == "prompt"
    assert Leader()._notify_mode()[0] == "prompt"
    assert Orders()._notify_mode()[0] == "nothing"
    assert CountingReservations()._notify_mode()[0] == "method"


def test_a_notify_set_on_an_instance_during_a_run_is_called() -> None:
    runner = start()
    orders, reservations = runner.get(Orders), runner.get(Reservations)
    orders.place(0)
    seen: List[int] = []
    original = reservations.notify

    def spy(new_events: List[AggregateEvent]) -> None:
        seen.append(len(new_events))
        original(new_events)

    reservations.notify = spy  # type: ignore[method-assign]
    orders.place(1)
    orders.place(2)
    assert seen == [1, 1]
    assert numbers(runner.get(Payments)) == [0, 1, 2]


class LoggingRunner(SingleThreadedRunner):
    def __init__(self, system: System):
        super().__init__(system)
        self.log: List[str] = []

    def receive_prompt(self, leader_name: str) -> None:
        self.log.append(leader_name)
        super().receive_prompt(leader_name)


def test_a_runners_own_receive_prompt_is_called_for_every_prompt() -> None:
    runner = start(runner_cls=LoggingRunner)
    runner.get(Orders).place(0)
    runner.get(Orders).place(1)
    assert runner.log == ["Orders", "Reservations"] * 2
    assert numbers(runner.get(Payments)) == [0, 1]


class CountingPulls(Reservations):
    pulls: List[str] = []

    def pull_and_process(self, name: str) -> None:
        self.pulls.append(name)
        super().pull_and_process(name)


@needs_shortcuts
def test_a_followers_own_pull_and_process_is_called_by_the_runner() -> None:
    CountingPulls.pulls = []
    runner = start([[Orders, CountingPulls, Payments]])
    for i in range(3):
        runner.get(Orders).place(i)
    assert CountingPulls.pulls == ["Orders"] * 3
    # Its pull still runs in Rust, through the override.
    assert type(runner.get(CountingPulls)._pull_steps["Orders"]) is _core.FollowerPull
    assert numbers(runner.get(Payments)) == [0, 1, 2]


def test_a_pull_and_process_set_on_an_instance_is_called_by_the_runner() -> None:
    runner = start()
    reservations = runner.get(Reservations)
    runner.get(Orders).place(0)
    pulls: List[str] = []
    original = reservations.pull_and_process

    def spy(name: str) -> None:
        pulls.append(name)
        original(name)

    reservations.pull_and_process = spy  # type: ignore[method-assign]
    runner.get(Orders).place(1)
    assert pulls == ["Orders"]
    assert numbers(runner.get(Payments)) == [0, 1]


class Interrupting(ProcessApplication):
    interrupt = True

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if self.interrupt:
            raise KeyboardInterrupt
        Reservations.policy(self, domain_event, process_event)  # type: ignore[arg-type]


def test_an_interrupt_leaves_the_runner_and_nothing_recorded() -> None:
    runner = start([[Orders, Interrupting]])
    with pytest.raises(KeyboardInterrupt):
        runner.get(Orders).place(0)
    interrupting = runner.get(Interrupting)
    assert runner.is_prompting is False
    assert interrupting.recorder.max_tracking_id("Orders") == 0
    assert interrupting.events.pending.events == []
    interrupting.interrupt = False
    runner.get(Orders).place(1)
    assert numbers(interrupting) == [0, 1]


def test_an_error_from_one_follower_leaves_the_next_one_its_pull() -> None:
    runner = start([[Orders, Reservations], [Orders, Payments], [Orders, CountingReservations]])
    CountingReservations.notified = []
    reservations = runner.get(Reservations)

    def failing(domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        raise ValueError("refused")

    reservations.policy = failing  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="refused") as info:
        runner.get(Orders).place(5)
    error: Any = info.value
    assert error.application_name == "Reservations"
    assert error.notification_id == 1
    assert runner.get(Payments).recorder.max_tracking_id("Orders") == 1
    assert numbers(runner.get(CountingReservations)) == [5]
    assert runner.prompts_received == [] and runner.is_prompting is False


class SwitchingReservations(Reservations):
    """Replaces its own notify from inside a policy, mid-pull."""

    notified: List[int] = []

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        super().policy(domain_event, process_event)
        if domain_event.number == 2:
            stock = self.notify

            def spy(new_events: List[AggregateEvent]) -> None:
                self.notified.append(len(new_events))
                stock(new_events)

            self.notify = spy  # type: ignore[method-assign]


def test_a_notify_a_policy_replaces_is_called_for_that_page_and_after() -> None:
    SwitchingReservations.notified = []
    orders = Orders()
    for i in range(7):
        orders.place(i)
    follower = SwitchingReservations()
    follower.pull_batch_size = 2
    follower.follow("Orders", orders.log)
    follower.pull_and_process("Orders")
    # Pages of two: [0, 1] notified before the switch, [2, 3] by the spy,
    # and every page after it.
    assert SwitchingReservations.notified == [2, 2, 1]
    assert numbers(follower) == list(range(7))


def python_calls_during(action: Any) -> List[str]:
    """The qualified names of the Python functions ``action`` calls."""
    called: List[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            called.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return called


@needs_shortcuts
def test_a_stock_pipeline_calls_no_python_of_the_runner_or_the_pull() -> None:
    runner = start()
    orders = runner.get(Orders)
    orders.place(0)  # the pulls and saves in Rust are made on first use
    called = python_calls_during(lambda: orders.place(1))
    # The example's own code, the aggregates', and the runner's entry.
    assert "Orders.place" in called and "Reservations.policy" in called
    assert "SingleThreadedRunner.receive_prompt" in called
    for name in (
        "Follower.pull_and_process",
        "Follower._pull_without_step",
        "Follower._pull_in_python",
        "Leader.notify",
        "Leader.prompt_followers",
        "EventStore.put",
        "NativeAggregateRecorder.insert_events",
        "PendingEvents.clear",
    ):
        assert name not in called
    assert numbers(runner.get(Payments)) == [0, 1]


def test_a_leader_prompts_a_follower_that_is_no_runner_nor_promptable_class() -> None:
    prompted: List[str] = []
    leader = Leader()
    leader.lead(SimpleNamespace(receive_prompt=prompted.append))  # type: ignore[arg-type]
    leader.save(Order(number=1))
    orders = Orders()
    orders.place(0)
    follower = Reservations()
    follower.follow("Orders", orders.log)
    follower.lead(SimpleNamespace(receive_prompt=prompted.append))  # type: ignore[arg-type]
    follower.pull_and_process("Orders")
    assert prompted == ["Leader", "Reservations"]
    assert follower.recorder.max_tracking_id("Orders") == 1


class Switching(Reservations):
    """Replaces its policy on the instance during a pull."""

    seen: List[str] = []

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        self.seen.append("class")
        super().policy(domain_event, process_event)
        if domain_event.number == 1:

            def other(domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
                self.seen.append("instance")
                Reservations.policy(self, domain_event, process_event)

            self.policy = other  # type: ignore[method-assign]


def test_a_pull_keeps_the_policy_it_began_with() -> None:
    Switching.seen = []
    orders = Orders()
    for i in range(6):
        orders.place(i)
    follower = Switching()
    follower.pull_batch_size = 2
    follower.follow("Orders", orders.log)
    follower.pull_and_process("Orders")
    assert Switching.seen == ["class"] * 6
    orders.place(6)
    follower.pull_and_process("Orders")
    assert Switching.seen[-1] == "instance"
    assert numbers(follower) == list(range(7))


def test_a_follower_with_its_own_notify_on_the_instance_keeps_its_pull() -> None:
    orders = Orders()
    follower = Reservations()
    follower.follow("Orders", orders.log)
    made: List[str] = []
    make = follower._make_pull_step

    def counting(*args: Any) -> Any:
        made.append("made")
        return make(*args)

    follower._make_pull_step = counting  # type: ignore[method-assign]
    notified: List[int] = []
    follower.notify = lambda new_events: notified.append(len(new_events))  # type: ignore[method-assign]
    for i in range(5):
        orders.place(i)
        follower.pull_and_process("Orders")
    assert notified == [1] * 5
    assert made == ["made"]
