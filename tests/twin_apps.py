"""Applications for the twin-follower tests (tests/test_twin_followers.py),
and the code their child processes run: a leader written by one process
while two processes run the same follower against the same store.

Spawned children import this module by name, so it stays free of
test-only imports."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, List, Optional
from uuid import UUID

from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import (
    MultiThreadedRunner,
    ProcessApplication,
    ProcessEvent,
    System,
)


class Item(Aggregate):
    @event("Made")
    def __init__(self, number: int):
        self.number = number


class Copy(Aggregate):
    @event("Copied")
    def __init__(self, origin: UUID, number: int):
        self.origin = origin
        self.number = number


class TwinSource(Application):
    def make(self, number: int) -> UUID:
        item = Item(number)
        self.save(item)
        return item.id


class TwinCopier(ProcessApplication):
    """Copies each item. ``seen`` lists the numbers its policy was given;
    ``fail_at`` makes the policy raise on that number; ``on_first`` is
    called (once) from inside the first policy call."""

    fail_at: Optional[int] = None
    on_first: Optional[Callable[[], None]] = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: List[int] = []

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        assert isinstance(domain_event, Item.Made)
        self.seen.append(domain_event.number)
        hook, self.on_first = self.on_first, None
        if hook is not None:
            hook()
        if domain_event.number == self.fail_at:
            raise RuntimeError(f"cannot copy item {domain_event.number}")
        process_event.save(Copy(domain_event.originator_id, domain_event.number))


class TwinCopierOwnRecord(TwinCopier):
    """A follower that overrides ``record`` (as 9.1 users may): its pull
    records one notification at a time through it."""

    def record(self, process_event: ProcessEvent) -> None:
        super().record(process_event)


def write(count: int) -> None:
    """Writes ``count`` items to the leader, numbered from 1, in bursts."""
    source = TwinSource()
    for number in range(1, count + 1):
        source.make(number)
        if number % 50 == 0:
            time.sleep(0.002)
    print("written", count, flush=True)


def follow(expected: int, seconds: float) -> None:
    """Runs the follower under a MultiThreadedRunner, prompted on a short
    interval (nothing in this process writes to the leader), until its
    position reaches ``expected`` or time runs out; exits non-zero if the
    runner reported an error."""
    batch = os.environ.get("TWIN_BATCH_SIZE")
    if batch:
        TwinCopier.pull_batch_size = int(batch)
    runner = MultiThreadedRunner(System(pipes=[[TwinSource, TwinCopier]]))
    runner.start()
    copier = runner.get(TwinCopier)
    thread = runner.threads["TwinCopier"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if runner.errors or thread.has_stopped.is_set():
            break
        if copier.recorder.max_tracking_id("TwinSource") >= expected:
            break
        thread.receive_prompt("TwinSource")
        time.sleep(0.003)
    stopped = thread.has_stopped.is_set()
    runner.stop()  # raises the first processing error, if any
    if stopped:
        raise SystemExit("the follower's thread stopped by itself")
    print("processed", len(copier.seen), flush=True)


def main() -> None:
    """Run as ``python -c "from tests.twin_apps import main; main()" ...``
    (not as ``__main__``, whose topics the test process could not read)."""
    if sys.argv[1] == "write":
        write(int(sys.argv[2]))
    else:
        follow(int(sys.argv[2]), float(sys.argv[3]))
