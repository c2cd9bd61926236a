"""The behaviour every store's recorders share, as one suite.

A store is anything with ``aggregate_recorder()``, ``application_recorder()``
and ``process_recorder()`` methods, each returning a recorder on fresh,
empty storage. ``tests/test_recorders.py`` runs :class:`RecorderContract`
once per store through its ``store`` fixture; a new store joins by adding
one parameter to that fixture.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple
from uuid import UUID, uuid4

import pytest
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    ProcessRecorder,
    RecordConflictError,
    StoredEvent,
    Tracking,
    TrackingRefused,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)


class Store(Protocol):
    def aggregate_recorder(self) -> AggregateRecorder: ...

    def application_recorder(self) -> ApplicationRecorder: ...

    def process_recorder(self) -> ProcessRecorder: ...


def event(originator_id: UUID, version: int, topic: str = "t") -> StoredEvent:
    return StoredEvent(originator_id, version, topic, f"{topic}:{version}".encode())


def versions(events: List[StoredEvent]) -> List[int]:
    return [e.originator_version for e in events]


def as_tuple(n: Any) -> Tuple[Any, ...]:
    return (n.originator_id, n.originator_version, n.topic, n.state)


def all_kinds(store: Store) -> List[AggregateRecorder]:
    return [
        store.aggregate_recorder(),
        store.application_recorder(),
        store.process_recorder(),
    ]


def numbered_kinds(store: Store) -> List[ApplicationRecorder]:
    return [store.application_recorder(), store.process_recorder()]


class RecorderContract:
    """Run by a test class that provides a ``store`` fixture."""

    def test_insert_and_select(self, store: Store) -> None:
        for recorder in all_kinds(store):
            a, b = uuid4(), uuid4()
            assert recorder.select_events(a) == []
            recorder.insert_events([])
            recorder.insert_events([event(a, 1), event(a, 2, "é topic")])
            recorder.insert_events([event(b, 1)])
            got = recorder.select_events(a)
            assert got == [event(a, 1), event(a, 2, "é topic")]
            assert isinstance(got[0].originator_id, UUID)
            assert got[0].originator_id == a
            assert recorder.select_events(b) == [event(b, 1)]
            assert recorder.select_events(uuid4()) == []

    def test_select_filters(self, store: Store) -> None:
        for recorder in all_kinds(store):
            a = uuid4()
            recorder.insert_events([event(a, v) for v in range(1, 6)])
            select = recorder.select_events
            assert versions(select(a, gt=2)) == [3, 4, 5]
            assert versions(select(a, lte=2)) == [1, 2]
            assert versions(select(a, gt=1, lte=3)) == [2, 3]
            assert versions(select(a, gt=3, lte=3)) == []
            assert versions(select(a, gt=4, lte=2)) == []
            assert versions(select(a, desc=True)) == [5, 4, 3, 2, 1]
            assert versions(select(a, limit=2)) == [1, 2]
            assert versions(select(a, limit=0)) == []
            assert versions(select(a, desc=True, limit=1)) == [5]
            assert versions(select(a, lte=3, desc=True, limit=1)) == [3]
            assert versions(select(a, gt=1, lte=4, desc=True, limit=2)) == [4, 3]
            assert versions(select(a, gt=10)) == []

    def test_conflicting_insert_raises_and_writes_nothing(self, store: Store) -> None:
        for recorder in all_kinds(store):
            a, b = uuid4(), uuid4()
            recorder.insert_events([event(a, 1)])
            with pytest.raises(IntegrityError) as caught:
                recorder.insert_events([event(b, 1), event(a, 2), event(a, 1, "x")])
            assert str(a) in str(caught.value) and "1" in str(caught.value)
            assert isinstance(caught.value, RecordConflictError)
            with pytest.raises(IntegrityError) as caught:
                recorder.insert_events([event(b, 1), event(b, 1)])
            assert str(b) in str(caught.value)
            assert recorder.select_events(a) == [event(a, 1)]
            assert recorder.select_events(b) == []
            if isinstance(recorder, ApplicationRecorder):
                assert recorder.max_notification_id() == 1
                assert [n.id for n in recorder.select_notifications(1, 10)] == [1]
            recorder.insert_events([event(b, 1), event(a, 2)])
            assert versions(recorder.select_events(a)) == [1, 2]

    def test_notification_ids_number_inserts_in_order(self, store: Store) -> None:
        for recorder in numbered_kinds(store):
            a, b = uuid4(), uuid4()
            assert recorder.max_notification_id() == 0
            assert recorder.select_notifications(1, 10) == []
            assert list(recorder.insert_events([event(a, 1), event(a, 2)]) or []) == [
                1,
                2,
            ]
            assert list(recorder.insert_events([event(b, 1)]) or []) == [3]
            assert list(recorder.insert_events([]) or []) == []
            assert recorder.max_notification_id() == 3
            notifications = recorder.select_notifications(1, 10)
            assert [n.id for n in notifications] == [1, 2, 3]
            assert [as_tuple(n) for n in notifications] == [
                as_tuple(event(a, 1)),
                as_tuple(event(a, 2)),
                as_tuple(event(b, 1)),
            ]

    def test_select_notifications_pages(self, store: Store) -> None:
        for recorder in numbered_kinds(store):
            for _ in range(7):
                recorder.insert_events([event(uuid4(), 1)])

            def ids(start: int, limit: int, r: ApplicationRecorder = recorder) -> List[int]:
                return [n.id for n in r.select_notifications(start, limit)]

            assert ids(1, 3) == [1, 2, 3]
            assert ids(4, 3) == [4, 5, 6]
            assert ids(7, 3) == [7]
            assert ids(8, 3) == []
            assert ids(2, 0) == []
            # A start below 1 reads from the first notification.
            assert ids(0, 2) == [1, 2]
            assert ids(-10, 1) == [1]
            assert ids(1, 100) == list(range(1, 8))

    def test_tracking_moves_forward_with_its_events(self, store: Store) -> None:
        recorder = store.process_recorder()
        a = uuid4()
        assert recorder.max_tracking_id("up") == 0
        recorder.insert_events([event(a, 1)], tracking=Tracking("up", 1))
        assert recorder.max_tracking_id("up") == 1
        for stale in (1, 0):
            with pytest.raises(IntegrityError):
                recorder.insert_events([event(a, 2)], tracking=Tracking("up", stale))
        assert recorder.select_events(a) == [event(a, 1)]
        assert recorder.max_notification_id() == 1
        # A conflicting event refuses its tracking record too.
        with pytest.raises(IntegrityError):
            recorder.insert_events([event(a, 1)], tracking=Tracking("up", 5))
        assert recorder.max_tracking_id("up") == 1
        # Gaps are fine; applications are tracked separately.
        recorder.insert_events([event(a, 2)], tracking=Tracking("up", 5))
        recorder.insert_events([event(a, 3)], tracking=Tracking("other", 2))
        recorder.insert_events([event(a, 4)])
        recorder.insert_events([], tracking=Tracking("up", 6))
        assert recorder.max_tracking_id("up") == 6
        assert recorder.max_tracking_id("other") == 2
        assert recorder.max_tracking_id("nobody") == 0
        assert versions(recorder.select_events(a)) == [1, 2, 3, 4]

    def test_a_batch_overlapping_a_recorded_one_is_refused_whole(self, store: Store) -> None:
        # Two instances of a follower read from position 0; one records
        # notifications 1-5, then the other tries its batch 1-10.
        recorder = store.process_recorder()
        a, b = uuid4(), uuid4()
        recorder.insert_events([event(a, 1)], tracking=Tracking("up", 5, 0))
        # Refused as a tracking conflict (an IntegrityError, as in 9.1).
        with pytest.raises(TrackingRefused, match="position 0"):
            recorder.insert_events([event(b, 1), event(b, 2)], tracking=Tracking("up", 10, 0))
        with pytest.raises(TrackingRefused):
            recorder.insert_events([], tracking=Tracking("up", 10, 0))
        # Also when the batch's events conflict with the other instance's.
        with pytest.raises(TrackingRefused):
            recorder.insert_events([event(a, 1)], tracking=Tracking("up", 10, 0))
        assert recorder.select_events(b) == []
        assert recorder.max_notification_id() == 1
        assert recorder.max_tracking_id("up") == 5
        # From the stored position, it commits.
        recorder.insert_events([event(b, 1)], tracking=Tracking("up", 10, 5))
        assert recorder.max_tracking_id("up") == 10
        assert recorder.max_notification_id() == 2
        # A previous id ahead of the stored position is refused too.
        with pytest.raises(IntegrityError):
            recorder.insert_events([], tracking=Tracking("up", 14, 12))
        # Another leader's position is its own.
        recorder.insert_events([], tracking=Tracking("side", 3, 0))
        assert recorder.max_tracking_id("side") == 3

    def test_concurrent_compare_and_set_lets_one_instance_record_each_batch(
        self, store: Store
    ) -> None:
        # Threads race to record batches from the position they all read;
        # exactly one wins each round, the others are refused whole.
        recorder = store.process_recorder()
        wins: List[int] = []
        lock = threading.Lock()
        errors: List[BaseException] = []

        def work(worker: int) -> None:
            try:
                for _ in range(15):
                    position = recorder.max_tracking_id("up")
                    batch = [event(uuid4(), 1) for _ in range(3)]
                    try:
                        recorder.insert_events(
                            batch, tracking=Tracking("up", position + 1 + worker % 2, position)
                        )
                    except IntegrityError:
                        continue
                    with lock:
                        wins.append(position)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(wins) == len(set(wins)), "two batches recorded from one position"
        assert recorder.max_notification_id() == 3 * len(wins)

    def test_concurrent_inserts_get_unique_unbroken_ids(self, store: Store) -> None:
        recorder = store.application_recorder()
        results: List[List[int]] = []
        errors: List[BaseException] = []
        lock = threading.Lock()

        def work() -> None:
            try:
                for _ in range(10):
                    a = uuid4()
                    ids = recorder.insert_events([event(a, v) for v in range(4)])
                    with lock:
                        results.append(list(ids or []))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for ids in results:
            assert ids == list(range(ids[0], ids[0] + 4)), "one insert, one run"
        every = sorted(i for ids in results for i in ids)
        assert every == list(range(1, 241))
        notifications = recorder.select_notifications(1, 1000)
        assert [n.id for n in notifications] == every

    @pytest.mark.parametrize("kind", ["aggregate", "application", "process"])
    def test_matches_a_plain_python_model(self, store: Store, kind: str) -> None:
        make: Callable[[], AggregateRecorder] = getattr(store, f"{kind}_recorder")

        class Machine(RecorderModelMachine):
            def __init__(self) -> None:
                super().__init__(make(), kind)

        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=30,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


ORIGINATORS = [UUID(int=n) for n in (1, 2, 0xFFFF_FFFF_FFFF_FFFF_FFFF_FFFF_FFFF_FFFF)]
TOPICS = ["a", "b.c:D", "é"]

new_events = st.lists(
    st.tuples(
        st.sampled_from(ORIGINATORS),
        st.integers(0, 4),
        st.sampled_from(TOPICS),
        st.binary(max_size=6),
    ),
    max_size=4,
)
maybe_version = st.none() | st.integers(-1, 5)


class RecorderModelMachine(RuleBasedStateMachine):
    """Random inserts (with conflicts and stale tracking records) and
    selects, checked against lists and dicts."""

    def __init__(self, recorder: AggregateRecorder, kind: str):
        super().__init__()
        self.recorder = recorder
        self.kind = kind
        self.positions: Dict[Tuple[UUID, int], StoredEvent] = {}
        self.log: List[StoredEvent] = []
        self.tracked: Dict[str, int] = {}

    def numbered(self) -> bool:
        return self.kind != "aggregate"

    def tracks(self) -> bool:
        return self.kind == "process"

    @rule(
        batch=new_events,
        tracking=st.none()
        | st.tuples(
            st.sampled_from(["up", "side"]), st.integers(0, 6), st.none() | st.integers(0, 6)
        ),
    )
    def insert(
        self,
        batch: List[Tuple[UUID, int, str, bytes]],
        tracking: Optional[Tuple[str, int, Optional[int]]],
    ) -> None:
        if not self.tracks():
            tracking = None
        events = [StoredEvent(*fields) for fields in batch]
        keys = [(e.originator_id, e.originator_version) for e in events]
        conflict = len(set(keys)) < len(keys) or any(k in self.positions for k in keys)
        stale = False
        if tracking is not None:
            name, notification_id, previous = tracking
            last = self.tracked.get(name, 0)
            # Must advance; with a previous id, also start where it stands.
            stale = notification_id <= last or (previous is not None and previous != last)
        record = Tracking(*tracking) if tracking else None
        if conflict or stale:
            with pytest.raises(IntegrityError):
                self.recorder.insert_events(events, tracking=record)
            return
        ids = self.recorder.insert_events(events, tracking=record)
        if self.numbered():
            first = len(self.log) + 1
            assert list(ids or []) == list(range(first, first + len(events)))
        for key, e in zip(keys, events, strict=True):
            self.positions[key] = e
            self.log.append(e)
        if tracking is not None:
            self.tracked[tracking[0]] = tracking[1]

    @rule(
        originator_id=st.sampled_from(ORIGINATORS),
        gt=maybe_version,
        lte=maybe_version,
        desc=st.booleans(),
        limit=st.none() | st.integers(0, 5),
    )
    def select_events(
        self,
        originator_id: UUID,
        gt: Optional[int],
        lte: Optional[int],
        desc: bool,
        limit: Optional[int],
    ) -> None:
        expected = sorted(
            (
                e
                for (oid, v), e in self.positions.items()
                if oid == originator_id and (gt is None or v > gt) and (lte is None or v <= lte)
            ),
            key=lambda e: e.originator_version,
            reverse=desc,
        )
        if limit is not None:
            expected = expected[:limit]
        got = self.recorder.select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        assert got == expected

    @precondition(lambda self: self.numbered())
    @rule(start=st.integers(-2, 14), limit=st.integers(0, 14))
    def select_notifications(self, start: int, limit: int) -> None:
        assert isinstance(self.recorder, ApplicationRecorder)
        first = max(start, 1)
        expected = [(i, *as_tuple(e)) for i, e in enumerate(self.log, start=1) if i >= first][
            :limit
        ]
        got = self.recorder.select_notifications(start, limit)
        assert [(n.id, *as_tuple(n)) for n in got] == expected

    @invariant()
    def positions_agree(self) -> None:
        if isinstance(self.recorder, ApplicationRecorder):
            assert self.recorder.max_notification_id() == len(self.log)
        if isinstance(self.recorder, ProcessRecorder):
            for name in ("up", "side"):
                assert self.recorder.max_tracking_id(name) == self.tracked.get(name, 0)
