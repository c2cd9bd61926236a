"""The notification log reader (Rust iterators over any NotificationLog)."""

import threading
from typing import List
from uuid import uuid4

import pytest
from eventsourcing_rs.application import LocalNotificationLog, NotificationLog, Section
from eventsourcing_rs.persistence import Notification, StoredEvent
from eventsourcing_rs.popo import POPOApplicationRecorder
from eventsourcing_rs.system import NotificationLogReader
from hypothesis import given, settings
from hypothesis import strategies as st


def recorder_with(count: int, batch: int = 3) -> POPOApplicationRecorder:
    recorder = POPOApplicationRecorder()
    events = [StoredEvent(uuid4(), 1, f"topic{i}", f"state{i}".encode()) for i in range(count)]
    for i in range(0, count, batch):
        recorder.insert_events(events[i : i + batch])
    return recorder


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=60),
    log_size=st.integers(min_value=1, max_value=15),
    reader_size=st.integers(min_value=1, max_value=15),
    start=st.integers(min_value=-3, max_value=70),
)
def test_read_yields_every_notification_from_start_in_order(
    count: int, log_size: int, reader_size: int, start: int
) -> None:
    recorder = recorder_with(count)
    log = LocalNotificationLog(recorder, section_size=log_size)
    reader = NotificationLogReader(log, section_size=reader_size)
    expected = recorder.select_notifications(1, count + 1)[max(start, 1) - 1 :]
    assert list(reader.read(start=start)) == expected
    if reader_size <= log_size:
        assert list(reader.select(start=start)) == expected
    else:
        with pytest.raises(ValueError, match="greater than section size"):
            list(reader.select(start=start))


def test_reader_uses_a_users_own_log() -> None:
    calls: List[str] = []

    class CountingLog(NotificationLog):
        def __init__(self, inner: LocalNotificationLog) -> None:
            self.inner = inner

        def __getitem__(self, section_id: str) -> Section:
            calls.append(section_id)
            return self.inner[section_id]

        def select(self, start: int, limit: int) -> List[Notification]:
            calls.append(f"select {start} {limit}")
            return self.inner.select(start, limit)

    log = CountingLog(LocalNotificationLog(recorder_with(12), section_size=5))
    reader = NotificationLogReader(log, section_size=5)
    assert [n.id for n in reader.read(start=1)] == list(range(1, 13))
    assert calls == ["1,5", "6,10", "11,15"]
    calls.clear()
    assert [n.id for n in reader.select(start=4)] == list(range(4, 13))
    assert calls == ["select 4 5", "select 9 5"]


def test_bad_next_id_from_a_log_is_reported() -> None:
    class BrokenLog(NotificationLog):
        def __getitem__(self, section_id: str) -> Section:
            return Section(id="1,1", items=[], next_id="2;3")

        def select(self, start: int, limit: int) -> List[Notification]:
            return []

    with pytest.raises(ValueError, match="'2;3'"):
        list(NotificationLogReader(BrokenLog()).read(start=1))


def test_bad_section_size_is_refused() -> None:
    log = LocalNotificationLog(recorder_with(1))
    with pytest.raises(ValueError, match="section size"):
        NotificationLogReader(log, section_size=0).select(start=1)


def test_reader_following_a_writer_never_skips() -> None:
    """Invariant 2: a reader that has seen id n never later finds an id
    below n it did not see."""
    recorder = POPOApplicationRecorder()
    reader = NotificationLogReader(LocalNotificationLog(recorder))
    total = 3000
    done = threading.Event()

    def write() -> None:
        for _ in range(total // 3):
            recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"s") for _ in range(3)])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen: List[int] = []
    while not (done.is_set() and len(seen) == total):
        for notification in reader.select(start=len(seen) + 1):
            seen.append(notification.id)
    writer.join()
    assert seen == list(range(1, total + 1))
