"""The Rust prompt queue: de-duplicating, lock-protected, GIL-free waits."""

import threading
import time
from typing import List, Set

from eventsourcing_rs._core import PromptQueue
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule


def test_put_dedups_and_take_drains_in_order() -> None:
    q = PromptQueue()
    assert q.put("a") and q.put("b")
    assert not q.put("a")
    assert q.pending == ["a", "b"]
    assert q.take() == ["a", "b"]
    assert q.take() == []


def test_wait_times_out_with_an_empty_list_and_returns_none_once_stopped() -> None:
    q = PromptQueue()
    assert q.wait(0.01) == []
    q.put("x")
    q.stop()
    assert q.is_stopped
    assert q.wait(0.01) == ["x"], "pending prompts are still handed out"
    assert q.wait(0.01) is None
    assert q.wait() is None


def test_stop_wakes_every_waiter() -> None:
    q = PromptQueue()
    results: List[object] = []
    waiters = [threading.Thread(target=lambda: results.append(q.wait(30))) for _ in range(4)]
    for w in waiters:
        w.start()
    time.sleep(0.05)
    q.stop()
    for w in waiters:
        w.join(5)
    assert results == [None] * 4


def test_wait_releases_the_gil() -> None:
    q = PromptQueue()
    waiter = threading.Thread(target=q.wait, args=(1.0,))
    waiter.start()
    # If the wait held the GIL this loop could not run until it ended.
    started = time.perf_counter()
    count = 0
    while time.perf_counter() - started < 0.2:
        count += 1
    assert waiter.is_alive()
    q.stop()
    waiter.join()
    assert count > 1000


def test_no_prompt_is_lost_while_the_consumer_is_busy() -> None:
    """Invariant 3: a prompt that arrives while the follower is busy causes
    another pull. Every producer's last prompt comes after its last piece
    of work, so the consumer must see all the work."""
    q = PromptQueue()
    produced: Set[int] = set()
    consumed: Set[int] = set()
    lock = threading.Lock()
    producers = 4
    per_producer = 2000

    def produce(p: int) -> None:
        for i in range(per_producer):
            with lock:
                produced.add(p * per_producer + i)
            q.put(f"leader{p}")

    def consume() -> None:
        while True:
            names = q.wait(5)
            if names is None:
                return
            # "Pull": take everything produced so far, slowly.
            with lock:
                consumed.update(produced)
            time.sleep(0.0005)

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 10
    while consumed != produced and time.monotonic() < deadline:
        time.sleep(0.01)
    q.stop()
    consumer.join(10)
    assert len(produced) == producers * per_producer
    assert consumed == produced


class PromptQueueMachine(RuleBasedStateMachine):
    """The queue against a plain list model."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = PromptQueue()
        self.model: List[str] = []
        self.stopped = False

    @rule(name=st.sampled_from(["A", "B", "C", "D"]))
    def put(self, name: str) -> None:
        added = self.queue.put(name)
        assert added == (name not in self.model)
        if added:
            self.model.append(name)

    @rule()
    def take(self) -> None:
        assert self.queue.take() == self.model
        self.model = []

    @rule()
    def wait(self) -> None:
        got = self.queue.wait(0)
        if self.model:
            assert got == self.model
        elif self.stopped:
            assert got is None
        else:
            assert got == []
        self.model = []

    @rule()
    def stop(self) -> None:
        self.queue.stop()
        self.stopped = True

    @invariant()
    def pending_matches(self) -> None:
        assert self.queue.pending == self.model
        assert self.queue.is_stopped == self.stopped


TestPromptQueueMachine = PromptQueueMachine.TestCase
TestPromptQueueMachine.settings = settings(max_examples=50, deadline=None)
