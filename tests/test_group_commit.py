"""Group commit: a follower records a batch of processed notifications in one
insert, exactly once, each policy seeing the batch's earlier writes."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest
from eventsourcing_rs.application import AggregateNotFound, Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.persistence import IntegrityError
from eventsourcing_rs.system import ProcessApplication, ProcessEvent

from tests.cpython_switch import needs_shortcuts, shortcuts_off

TALLY_ID = uuid5(NAMESPACE_URL, "tally")


class Tick(Aggregate):
    @event("Ticked")
    def __init__(self, n: int):
        self.n = n


class Tally(Aggregate):
    @classmethod
    def create_id(cls, **kwargs: Any) -> UUID:
        return TALLY_ID

    @event("Started")
    def __init__(self) -> None:
        self.seen: List[int] = []

    @event("Counted")
    def count(self, n: int) -> None:
        self.seen.append(n)


class Clock(Application):
    def tick(self, count: int) -> None:
        self.save(*[Tick(n=i) for i in range(count)])


class Counter(ProcessApplication):
    fail_at: Optional[int] = None

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        assert isinstance(domain_event, Tick.Ticked)
        if domain_event.n == self.fail_at:
            raise RuntimeError(f"cannot count {domain_event.n}")
        try:
            tally: Tally = self.repository.get(TALLY_ID)
        except AggregateNotFound:
            tally = Tally()
        tally.count(domain_event.n)
        process_event.save(tally)


def make(batch_size: int, ticks: int, spied: bool = True) -> tuple[Clock, Counter, List[int]]:
    """A clock ticked ``ticks`` times and a counter following it. With
    ``spied``, the counter's inserts are counted by a method set on its
    recorder, which takes its pulls off the Rust pull kernel (the stock
    path); without, nothing is counted and the kernel runs them."""
    clock = Clock()
    clock.tick(ticks)
    counter = Counter()
    counter.pull_batch_size = batch_size
    counter.follow("Clock", clock.log)
    inserts: List[int] = []
    if not spied:
        return clock, counter, inserts
    original = counter.recorder.insert_events

    def counting_insert(stored_events: Any, **kwargs: Any) -> Any:
        inserts.append(len(stored_events))
        return original(stored_events, **kwargs)

    counter.recorder.insert_events = counting_insert  # type: ignore[method-assign]
    return clock, counter, inserts


def uses_kernel(counter: Counter) -> bool:
    return counter._calls["Clock"].kernel is not None


@pytest.mark.parametrize("spied", [True, False], ids=["python", "kernel"])
@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_batches_see_earlier_writes_and_match_one_at_a_time(batch_size: int, spied: bool) -> None:
    _, counter, inserts = make(batch_size, 250, spied)
    counter.pull_and_process("Clock")
    tally = counter.repository.get(TALLY_ID)
    assert tally.seen == list(range(250))
    assert tally.version == 251
    assert counter.recorder.max_tracking_id("Clock") == 250
    assert counter.recorder.max_notification_id() == 251  # Started + 250 Counted
    if spied:
        expected_inserts = -(-250 // batch_size)
        assert len(inserts) == expected_inserts
        assert sum(inserts) == 251
    elif batch_size > 1:
        assert uses_kernel(counter)


@pytest.mark.parametrize("spied", [True, False], ids=["python", "kernel"])
def test_failure_mid_batch_keeps_what_came_before_and_resumes(spied: bool) -> None:
    _, counter, inserts = make(100, 150, spied)
    counter.fail_at = 57
    with pytest.raises(RuntimeError, match="cannot count 57") as info:
        counter.pull_and_process("Clock")
    assert uses_kernel(counter) is not spied
    assert any("notification 58 from Clock" in note for note in info.value.__notes__)
    assert counter.processing == ("Clock", 58)
    assert counter.recorder.max_tracking_id("Clock") == 57
    assert counter.repository.get(TALLY_ID).seen == list(range(57))
    counter.fail_at = None
    counter.pull_and_process("Clock")
    assert counter.processing is None
    assert counter.repository.get(TALLY_ID).seen == list(range(150))


class Marker(Aggregate):
    @classmethod
    def create_id(cls, n: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"marker-{n}")

    @event("Placed")
    def __init__(self, n: int):
        self.n = n


class Marking(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        assert isinstance(domain_event, Tick.Ticked)
        process_event.save(Marker(n=domain_event.n))


# (ticks, batch size, the tick whose marker exists already)
CONFLICTS = [(30, 1000, 12), (3, 1, 0), (3, 100, 0), (1, 100, 0)]


@pytest.mark.parametrize(
    "ticks, batch_size, taken", CONFLICTS, ids=["batch", "one-at-a-time", "first", "alone"]
)
def test_a_conflicting_write_names_its_notification_and_keeps_the_ones_before(
    ticks: int, batch_size: int, taken: int
) -> None:
    clock = Clock()
    clock.tick(ticks)
    marking = Marking()
    marking.pull_batch_size = batch_size
    marking.follow("Clock", clock.log)
    # The marker exists already: the policy's write for that tick conflicts.
    marking.save(Marker(n=taken))
    with pytest.raises(IntegrityError) as info:
        marking.pull_and_process("Clock")
    culprit = taken + 1
    notes = [n for n in info.value.__notes__ if "from Clock" in n]
    assert len(notes) == 1 and f"notification {culprit} from Clock" in notes[0]
    assert marking.processing == ("Clock", culprit)
    # A batch fails whole, then the retry records the ticks before the
    # culprit one by one.
    assert marking.recorder.max_tracking_id("Clock") == taken
    assert marking.recorder.max_notification_id() == taken + 1


def test_a_follower_reads_a_users_own_log_through_it() -> None:
    from eventsourcing_rs.application import LocalNotificationLog, NotificationLog, Section
    from eventsourcing_rs.persistence import Notification

    clock = Clock()
    clock.tick(25)
    calls: List[int] = []

    class CountingLog(NotificationLog):
        def __init__(self, inner: LocalNotificationLog) -> None:
            self.inner = inner

        def __getitem__(self, section_id: str) -> Section:
            return self.inner[section_id]

        def select(self, start: int, limit: int) -> List[Notification]:
            calls.append(start)
            return self.inner.select(start, limit)

    marking = Marking()
    marking.follow("Clock", CountingLog(clock.log))
    marking.pull_and_process("Clock")
    assert calls == [1, 11, 21]
    assert marking.recorder.max_tracking_id("Clock") == 25


def test_a_follower_pages_through_a_local_leader_a_batch_at_a_time() -> None:
    clock = Clock()
    clock.tick(25)
    pages: List[tuple[int, int]] = []
    original = clock.recorder.select_notifications

    def counting_select(start: int, limit: int) -> Any:
        pages.append((start, limit))
        return original(start, limit)

    # A method set on the leader's recorder is honoured, not skipped.
    clock.recorder.select_notifications = counting_select  # type: ignore[method-assign]
    marking = Counter()
    marking.pull_batch_size = 10
    marking.follow("Clock", clock.log)
    marking.pull_and_process("Clock")
    assert pages == [(1, 10), (11, 10), (21, 10)]
    assert marking.recorder.max_tracking_id("Clock") == 25
    clock.tick(3)
    marking.pull_and_process("Clock")
    assert pages[3:] == [(26, 10)]
    assert marking.recorder.max_tracking_id("Clock") == 28


def test_a_follower_notices_a_leaders_log_replaced() -> None:
    clock = Clock()
    clock.tick(5)
    marking = Counter()
    marking.follow("Clock", clock.log)
    marking.pull_and_process("Clock")
    recorded = marking.recorder.max_notification_id()
    other = Clock()
    other.tick(8)
    marking.follow("Clock", other.log)
    marking.pull_and_process("Clock")
    # Positions 6 to 8 of the new log, read from its own recorder.
    assert marking.recorder.max_tracking_id("Clock") == 8
    assert marking.recorder.max_notification_id() == recorded + 3


def counted_clock(ticks: int) -> Tuple[Clock, Counter]:
    """A clock ticked ``ticks`` times, and a counter that has pulled them."""
    clock = Clock()
    counter = Counter()
    counter.follow("Clock", clock.log)
    clock.tick(ticks)
    counter.pull_and_process("Clock")
    return clock, counter


# A follower calls the Rust recorders directly while the stock methods are
# in place; a method replaced later, on an instance or patched on a class
# (as tests that inject failures do), must be called from then on.
REPLACEMENTS = [
    ("leader", "instance", "select_notifications"),
    ("follower", "instance", "max_tracking_id"),
    ("follower", "instance", "insert_events"),
    ("follower", "class", "max_tracking_id"),
    ("follower", "class", "insert_events"),
    ("leader", "class", "select_notifications"),
]


@pytest.mark.parametrize(
    "whose, where, method", REPLACEMENTS, ids=["-".join(r) for r in REPLACEMENTS]
)
def test_methods_replaced_after_the_first_pull_are_called(
    whose: str, where: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, counter = counted_clock(ticks=3)
    recorder = clock.recorder if whose == "leader" else counter.recorder
    calls: List[str] = []
    original = getattr(type(recorder), method)

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return original(self, *args, **kwargs)

    if where == "instance":
        monkeypatch.setattr(recorder, method, spy.__get__(recorder))
    else:
        monkeypatch.setattr(type(recorder), method, spy)
    clock.tick(2)
    counter.pull_and_process("Clock")
    assert calls, f"{whose} recorder's replaced {method} was not called"
    assert counter.recorder.max_tracking_id("Clock") == 5


def test_a_batch_whose_insert_fails_once_is_recorded_exactly_once_on_retry() -> None:
    # The first insert of a full batch fails (say, a lock held too long);
    # recorded again one notification at a time it succeeds, and the rest
    # of the pull carries on from there without processing anything twice.
    clock = Clock()
    clock.tick(25)
    counter = Counter()
    counter.pull_batch_size = 10
    counter.follow("Clock", clock.log)
    original = counter.recorder.insert_events
    failures = [1]

    def flaky_insert(stored_events: Any, **kwargs: Any) -> Any:
        if failures and len(stored_events) > 1:
            failures.pop()
            raise IntegrityError("transient failure")
        return original(stored_events, **kwargs)

    counter.recorder.insert_events = flaky_insert  # type: ignore[method-assign]
    policy_calls: List[int] = []
    policy = counter.policy

    def counting_policy(domain_event: Any, process_event: ProcessEvent) -> None:
        policy_calls.append(domain_event.n)
        policy(domain_event, process_event)

    counter.policy = counting_policy  # type: ignore[method-assign]
    counter.pull_and_process("Clock")
    assert counter.recorder.max_tracking_id("Clock") == 25
    assert counter.repository.get(TALLY_ID).seen == list(range(25))
    # Each policy was called once: the failed batch's notifications were
    # recorded one at a time from what their policies had made.
    assert policy_calls == list(range(25))


@needs_shortcuts
def test_a_followers_recorder_calls_are_kept_between_pulls_until_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, counter = counted_clock(ticks=2)
    kept = counter._calls["Clock"]
    clock.tick(2)
    counter.pull_and_process("Clock")
    assert counter._calls["Clock"] is kept
    # Rebinding what the calls were taken from makes the follower find them
    # again: here the leader's log is pointed at another recorder.
    other = Clock()
    other.tick(7)
    monkeypatch.setattr(clock.log, "recorder", other.recorder)
    counter.pull_and_process("Clock")
    assert counter._calls["Clock"] is not kept
    assert counter.recorder.max_tracking_id("Clock") == 7


@pytest.mark.parametrize("spied", [True, False], ids=["python", "kernel"])
def test_an_interrupted_batch_leaves_nothing_pending_and_is_processed_once(spied: bool) -> None:
    _, counter, _ = make(100, 10, spied)
    counting = counter.policy
    interrupted: List[int] = []

    def policy(domain_event: Any, process_event: ProcessEvent) -> None:
        if domain_event.n == 5 and not interrupted:
            interrupted.append(5)
            raise KeyboardInterrupt
        counting(domain_event, process_event)

    counter.policy = policy  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        counter.pull_and_process("Clock")
    assert counter.events.pending.events == []
    counter.pull_and_process("Clock")
    assert counter.repository.get(TALLY_ID).seen == list(range(10))


@pytest.mark.parametrize("python_path", [True, False], ids=["python", "kernel"])
def test_a_method_a_policy_replaces_mid_page_is_called_for_that_page(python_path: bool) -> None:
    from unittest import mock

    from eventsourcing_rs.native_recorder import NativeAggregateRecorder

    _, counter, _ = make(10, 30, spied=False)
    if python_path:
        # An instance attribute shadowing a method takes pulls off the kernel.
        counter.recorder.max_tracking_id = counter.recorder.max_tracking_id  # type: ignore[method-assign]
    original = NativeAggregateRecorder.insert_events
    batches: List[int] = []

    def spy(self: Any, stored_events: Any, **kwargs: Any) -> Any:
        batches.append(len(stored_events))
        return original(self, stored_events, **kwargs)

    patcher = mock.patch.object(NativeAggregateRecorder, "insert_events", spy)
    counting = counter.policy

    def policy(domain_event: Any, process_event: ProcessEvent) -> None:
        if domain_event.n == 5 and not batches and not patcher_started:
            patcher_started.append(patcher.start())
        counting(domain_event, process_event)

    patcher_started: List[Any] = []
    counter.policy = policy  # type: ignore[method-assign]
    try:
        counter.pull_and_process("Clock")
    finally:
        patcher.stop()
    # The first page (the tally's creation and ten counts) included.
    assert batches == [11, 10, 10]
    assert counter.recorder.max_tracking_id("Clock") == 30


def test_a_replaced_process_event_class_is_used_and_then_left() -> None:
    from unittest import mock

    from eventsourcing_rs import system

    clock, counter, _ = make(100, 2, spied=False)
    made: List[str] = []

    class Noted(ProcessEvent):
        def __init__(self, tracking: Any = None) -> None:
            super().__init__(tracking)
            made.append("noted")

    seen: List[type] = []
    counting = counter.policy

    def policy(domain_event: Any, process_event: ProcessEvent) -> None:
        seen.append(type(process_event))
        counting(domain_event, process_event)

    counter.policy = policy  # type: ignore[method-assign]
    with mock.patch.object(system, "ProcessEvent", Noted):
        counter.pull_and_process("Clock")
    clock.tick(2)
    counter.pull_and_process("Clock")
    assert uses_kernel(counter)
    assert seen == [Noted, Noted, ProcessEvent, ProcessEvent]
    assert made == ["noted", "noted"]
    assert counter.repository.get(TALLY_ID).seen == [0, 1, 0, 1]


def test_a_follower_that_has_pulled_can_be_collected() -> None:
    import gc
    import weakref

    _, counter, _ = make(100, 3, spied=False)
    counter.pull_and_process("Clock")
    assert uses_kernel(counter)
    # A cycle through the recorder: the guard and kernel hold the recorder.
    counter.recorder.owner = counter  # type: ignore[attr-defined]
    ref = weakref.ref(counter)
    del counter
    gc.collect()
    assert ref() is None


@needs_shortcuts
def test_a_policy_that_breaks_its_tracking_record_adds_nothing_in_the_kernel() -> None:
    _, counter, _ = make(100, 3, spied=False)
    counting = counter.policy

    def policy(domain_event: Any, process_event: ProcessEvent) -> None:
        counting(domain_event, process_event)
        if domain_event.n == 1:
            process_event.tracking = None

    counter.policy = policy  # type: ignore[method-assign]
    with pytest.raises(TypeError):
        counter.pull_and_process("Clock")
    assert counter.processing == ("Clock", 2)
    assert counter.recorder.max_tracking_id("Clock") == 1
    # The tally's creation and the count of tick 0; nothing of tick 1.
    assert counter.recorder.max_notification_id() == 2


@pytest.mark.parametrize("spied", [True, False], ids=["python", "kernel"])
def test_when_recording_after_a_policy_error_fails_both_errors_are_kept(spied: bool) -> None:
    # A policy fails after one processed event, and recording that fails.
    _, counter, _ = make(100, 3, spied)
    counter.fail_at = 1
    counting = counter.policy

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    def policy(domain_event: Any, process_event: ProcessEvent) -> None:
        if domain_event.n == 1:
            # Replaced once the page is under way (on the kernel, if used).
            counter.recorder.insert_events = refuse  # type: ignore[method-assign]
        counting(domain_event, process_event)

    counter.policy = policy  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full") as info:
        counter.pull_and_process("Clock")
    assert isinstance(info.value.__context__, RuntimeError)
    assert "cannot count 1" in str(info.value.__context__)
    assert counter.processing == ("Clock", 2)
    assert counter.recorder.max_tracking_id("Clock") == 0


class Welcome(Aggregate):
    """One per address: a second for the same address conflicts."""

    @staticmethod
    def create_id(address: str) -> UUID:
        return uuid5(NAMESPACE_URL, address)

    def __init__(self, address: str):
        self.address = address


class Signup(Aggregate):
    def __init__(self, address: str):
        self.address = address


class Signups(Application):
    pass


class Mailer(ProcessApplication):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: List[str] = []

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        self.sent.append(domain_event.address)  # a side effect: mail sent
        process_event.save(Welcome(domain_event.address))


@pytest.mark.parametrize("spied", [True, False], ids=["python", "kernel"])
def test_a_batch_whose_insert_fails_is_recorded_up_to_the_fault_without_calling_policies_again(
    spied: bool,
) -> None:
    signups = Signups()
    signups.save(*[Signup(a) for a in ["a@x", "b@x", "c@x", "a@x", "d@x"]])
    mailer = Mailer()
    mailer.follow("Signups", signups.log)
    if spied:
        original = mailer.recorder.insert_events
        mailer.recorder.insert_events = lambda *a, **k: original(*a, **k)  # type: ignore[method-assign]
    with pytest.raises(IntegrityError) as info:
        mailer.pull_and_process("Signups")
    if not shortcuts_off:
        assert (mailer._calls["Signups"].kernel is not None) is not spied
    # As one notification at a time would: the three before the repeated
    # address are recorded, and the error names the fourth.
    assert mailer.recorder.max_tracking_id("Signups") == 3
    assert mailer.processing == ("Signups", 4)
    assert "notification 4" in "".join(getattr(info.value, "__notes__", []))
    # Each policy ran once (the fifth's, after the fault, is not recorded
    # and will run again once the fault is dealt with).
    assert mailer.sent == ["a@x", "b@x", "c@x", "a@x", "d@x"]


def test_a_leader_whose_recorder_is_a_proxy_is_followed() -> None:
    # A recorder that forwards to another, with no methods of its own.
    class Forwarding:
        def __init__(self, inner: Any):
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    class ProxiedClock(Clock):
        def construct_recorder(self) -> Any:
            return Forwarding(super().construct_recorder())

    clock = ProxiedClock()
    clock.tick(3)
    counter = Counter()
    counter.follow("ProxiedClock", clock.log)
    counter.pull_and_process("ProxiedClock")
    assert counter.recorder.max_tracking_id("ProxiedClock") == 3
