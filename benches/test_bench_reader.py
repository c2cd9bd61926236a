"""The notification-log reader over 100k notifications, in memory."""

from typing import Any
from uuid import uuid4

from eventsourcing_rs.application import LocalNotificationLog
from eventsourcing_rs.persistence import StoredEvent
from eventsourcing_rs.popo import POPOApplicationRecorder
from eventsourcing_rs.system import NotificationLogReader

COUNT = 100_000


def make_log() -> LocalNotificationLog:
    recorder = POPOApplicationRecorder()
    for _ in range(COUNT // 1000):
        recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"{}") for _ in range(1000)])
    return LocalNotificationLog(recorder, section_size=100)


def test_reader_select_100k(benchmark: Any) -> None:
    reader = NotificationLogReader(make_log(), section_size=100)
    seen = benchmark(lambda: sum(1 for _ in reader.select(start=1)))
    assert seen == COUNT


def test_reader_read_sections_100k(benchmark: Any) -> None:
    reader = NotificationLogReader(make_log(), section_size=100)
    seen = benchmark(lambda: sum(1 for _ in reader.read(start=1)))
    assert seen == COUNT
