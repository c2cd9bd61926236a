"""Hostile or broken input gets a clear error, never a panic or an
arbitrary object: stored topics naming anything but a domain event, JSON
that Python's json refuses, absurd timeouts."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, List

import pytest
from eventsourcing_rs import _core
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.persistence import DataError, StoredEvent
from eventsourcing_rs.system import (
    MultiThreadedRunner,
    MultiThreadedRunnerThread,
    ProcessApplication,
    ProcessEvent,
    SingleThreadedRunner,
    System,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# Set when a class the stored topic names is built: it must never be.
BUILT: List[str] = []


class NotAnEvent:
    def __init__(self, **kwargs: Any) -> None:  # pragma: no cover - never called
        BUILT.append("init")

    def __setstate__(self, state: Any) -> None:  # pragma: no cover - never called
        BUILT.append("setstate")


class Thing(Aggregate):
    @event("Made")
    def __init__(self, name: str):
        self.name = name


class Things(Application):
    pass


class Watcher(ProcessApplication):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: List[Any] = []

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        self.seen.append(domain_event)


HOSTILE_TOPICS = [
    "logging:Logger",
    "subprocess:Popen",
    f"{__name__}:NotAnEvent",
    "builtins:dict",
    "os:system",
]


@pytest.mark.parametrize("topic", HOSTILE_TOPICS)
def test_a_stored_topic_that_names_no_domain_event_is_refused(topic: str) -> None:
    app = Things()
    originator_id = uuid.uuid4()
    app.recorder.insert_events([StoredEvent(originator_id, 1, topic, b'{"name": "x"}')])
    with pytest.raises(DataError, match=f"topic '{topic}'.*not a domain event"):
        app.repository.get(originator_id)
    assert BUILT == []


@pytest.mark.parametrize("topic", HOSTILE_TOPICS)
def test_a_follower_refuses_it_at_the_notification_and_processes_those_before(
    topic: str,
) -> None:
    runner = SingleThreadedRunner(System(pipes=[[Things, Watcher]]))
    runner.start()
    things = runner.get(Things)
    watcher = runner.get(Watcher)
    things.save(Thing("before"))
    # A row written by someone who can write to the leader's table.
    things.recorder.insert_events([StoredEvent(uuid.uuid4(), 1, topic, b'{"name": "x"}')])
    with pytest.raises(DataError) as info:
        runner.receive_prompt("Things")
    error: Any = info.value
    assert error.notification_id == 2 and error.leader_name == "Things"
    assert topic in str(error)
    assert [type(e) for e in watcher.seen] == [Thing.Made]
    assert watcher.recorder.max_tracking_id("Things") == 1
    assert BUILT == []


DOCUMENTS = [
    r'{"a": "\u0041"}',
    r'{"a": "\u+041"}',
    r'{"a": "\u-041"}',
    r'{"a": "\u 041"}',
    r'{"a": "\u00e9\ud83d\ude00"}',
    r'{"a": "\ud800"}',
    '{"a": 01}',
    '{"a": 1.}',
    '{"a": .5}',
    '{"a": -0}',
    '{"a": 1e5}',
    '{"a": NaN}',
    '{"a": -Infinity}',
    '{"a": [1,]}',
    '{"a": "tab\there"}',
    '{"a": 1} ',
    ' {"a": 1}',
    '{"a": 1}x',
    '{"a": true, "a": false}',
]


def decode_like_python(transcoder: Any, text: str) -> Any:
    try:
        return ("ok", transcoder.decode(text.encode()))
    except Exception as error:
        return ("refused", type(error).__name__)


def python_json(text: str) -> Any:
    try:
        return ("ok", json.loads(text))
    except ValueError:
        return ("refused", None)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_decoder_accepts_exactly_what_pythons_json_accepts(text: str) -> None:
    transcoder = Things().mapper.transcoder
    ours = decode_like_python(transcoder, text)
    theirs = python_json(text)
    assert ours[0] == theirs[0], (text, ours, theirs)
    if ours[0] == "ok":
        assert json.dumps(ours[1], sort_keys=True) == json.dumps(theirs[1], sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]":,\\u0123456789abcdefABCDEF+-. eEtrunlsfINaiy\t\n', max_size=24))
def test_the_decoder_agrees_with_pythons_json_on_arbitrary_text(text: str) -> None:
    if "_type_" in text:  # pragma: no cover - the alphabet cannot spell it
        return
    transcoder = Things().mapper.transcoder
    ours = decode_like_python(transcoder, text)
    theirs = python_json(text)
    assert ours[0] == theirs[0], (text, ours, theirs)


def test_prompt_queue_waits_take_any_non_negative_timeout() -> None:
    queue = _core.PromptQueue()
    queue.put("A")
    assert queue.wait(1e300) == ["A"]
    queue.put("B")
    assert queue.wait(float("inf")) == ["B"]
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            queue.wait(bad)
    # A huge wait ends when the queue is stopped.
    results: List[Any] = []
    waiter = threading.Thread(target=lambda: results.append(queue.wait(1e300)))
    waiter.start()
    time.sleep(0.05)
    queue.stop()
    waiter.join(5)
    assert results == [None]


def test_a_huge_poll_interval_keeps_the_runner_working(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MultiThreadedRunnerThread, "POLL_INTERVAL", 1e300)
    runner = MultiThreadedRunner(System(pipes=[[Things, Watcher]]))
    runner.start()
    runner.get(Things).save(Thing("x"))
    watcher = runner.get(Watcher)
    deadline = time.monotonic() + 10
    while not watcher.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(watcher.seen) == 1
    runner.stop()
    assert runner.errors == []
