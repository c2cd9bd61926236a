"""Invariant 3 with real threads: leaders saved from many threads prompt a
follower running in the MultiThreadedRunner; no prompt is lost, so every
notification is processed, once."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import MultiThreadedRunner, ProcessApplication, ProcessEvent, System


class Item(Aggregate):
    @event("Made")
    def __init__(self, n: int):
        self.n = n


class Copy(Aggregate):
    @event("Made")
    def __init__(self, source: Any, n: int):
        self.source = source
        self.n = n


class LeaderA(Application):
    def make(self, n: int) -> None:
        self.save(Item(n=n))


class LeaderB(LeaderA):
    pass


class Sink(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Item.Made):
            process_event.save(Copy(source=domain_event.originator_id, n=domain_event.n))


def test_prompts_from_many_threads_are_never_lost() -> None:
    runner = MultiThreadedRunner(System(pipes=[[LeaderA, Sink], [LeaderB, Sink]]))
    runner.start()
    leaders = [runner.get(LeaderA), runner.get(LeaderB)]
    sink = runner.get(Sink)
    per_thread = 300
    errors: List[BaseException] = []

    def write(leader: LeaderA, offset: int) -> None:
        try:
            for i in range(per_thread):
                leader.make(offset + i)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(leaders[t % 2], t * per_thread)) for t in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 6 * per_thread
    deadline = time.monotonic() + 30
    while sink.recorder.max_notification_id() < total and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert errors == []
    for leader in leaders:
        name = type(leader).__name__
        assert sink.recorder.max_tracking_id(name) == leader.recorder.max_notification_id()
    copies = sink.recorder.select_notifications(1, total + 10)
    assert len(copies) == total
    numbers = sorted(sink.mapper.to_domain_event(n).n for n in copies)
    assert numbers == list(range(total))


def test_runners_log_starting_and_stopping(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from eventsourcing_rs.system import MultiThreadedRunner, SingleThreadedRunner, System

    from .system_fixtures import PIPES

    with caplog.at_level(logging.INFO, logger="eventsourcing_rs"):
        for runner_cls in (SingleThreadedRunner, MultiThreadedRunner):
            runner = runner_cls(System(pipes=PIPES))
            runner.start()
            runner.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "eventsourcing_rs"]
    assert "SingleThreadedRunner started: Orders, Payments, Reservations" in said
    assert "MultiThreadedRunner stopped" in said


class Feeder(Application):
    """A leader that a follower's policy keeps saving to."""

    def make(self, n: int) -> None:
        self.save(Item(n=n))


class FeedingSink(ProcessApplication):
    """Each event it processes makes two more in its leader, so its pull
    never comes to a short page."""

    pull_batch_size = 10
    feeder: Any = None

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Item.Made):
            process_event.save(Copy(source=domain_event.originator_id, n=domain_event.n))
            for _ in range(2):
                self.feeder.make(domain_event.n + 1)


def test_stop_ends_a_pull_that_a_busy_leader_keeps_from_ending() -> None:
    runner = MultiThreadedRunner(System(pipes=[[Feeder, FeedingSink]]))
    runner.start()
    feeder = runner.get(Feeder)
    sink = runner.get(FeedingSink)
    sink.feeder = feeder
    feeder.make(0)
    deadline = time.monotonic() + 10
    while sink.recorder.max_tracking_id("Feeder") < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    stopper.join(60)
    assert not stopper.is_alive(), "stop() did not end a pull that never comes up short"
    # It stopped at a recorded page: each event processed up to the
    # tracked position made exactly one copy.
    position = sink.recorder.max_tracking_id("Feeder")
    copies = sink.recorder.select_notifications(1, 10**6)
    sources = [sink.mapper.to_domain_event(n).source for n in copies]
    assert len(sources) == len(set(sources)) == position


class OnePerTransaction(Sink):
    pull_batch_size = 1


@pytest.mark.parametrize("follower", [Sink, OnePerTransaction])
def test_a_stopped_runners_followers_pull_to_the_end_when_called(follower: Any) -> None:
    runner = MultiThreadedRunner(System(pipes=[[LeaderA, follower]]))
    runner.start()
    runner.stop()
    leader, sink = runner.get(LeaderA), runner.get(follower)
    for i in range(25):
        leader.make(i)
    sink.pull_and_process("LeaderA")
    assert sink.recorder.max_tracking_id("LeaderA") == 25


def test_stop_ends_a_pull_through_a_logs_sections() -> None:
    # A log of another type than the stock one is read section by section;
    # stopping ends that pull at a recorded batch as well.
    from eventsourcing_rs.application import LocalNotificationLog

    class SectionedLog(LocalNotificationLog):
        pass

    class Slow(Sink):
        pull_batch_size = 10

        def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
            time.sleep(0.002)
            super().policy(domain_event, process_event)

    leader = LeaderA()
    for i in range(300):
        leader.make(i)
    sink = Slow()
    sink.follow("LeaderA", SectionedLog(leader.recorder, section_size=10))
    stop = threading.Event()
    sink._stop_pulling = stop
    stopper = threading.Timer(0.1, stop.set)
    stopper.start()
    sink.pull_and_process("LeaderA")
    stopper.join()
    position = sink.recorder.max_tracking_id("LeaderA")
    assert 0 < position < 300 and position % 10 == 0
